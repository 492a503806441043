//! `hangar bench webhooks`: outbound webhook deliveries on the configured database to a
//! receiver on loopback in this process, through the normal pool runtime and the
//! `webhook_delivery` handler (signed, gated, every attempt logged), on a queue of the
//! bench's own, in workspaces of its own (`ws_bench_<pid>_…`).
//!
//! 1. Throughput: N events stored first (batches of 500, each fanned out to E endpoints),
//!    then drained: deliveries per second until every one is logged; against the raw rate of
//!    the same HTTP client sending the same signed requests with the same concurrency, no
//!    database.
//! 2. Ingress → first attempt: events published one at a time into an idle pool, timed from
//!    just before the store call to the receiver's arrival.
//! 3. One endpoint dead (never answering: the client's 30 s timeout) and nine healthy,
//!    against ten healthy: the healthy deliveries' latency at the same light load.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Path;
use axum::http::HeaderMap;
use axum::routing::post;
use hangar_workers::job::JobState;
use hangar_workers::kinds::Registry;
use hangar_workers::pool::{Pool, PoolDeps};
use hangar_workers::refresher::NoRefresher;
use hangar_workers::routes::Routes;
use hangar_workers::secrets::{Keyring, MasterKey};
use hangar_workers::signing::{SignedRequest, WebhookSecret, signature_headers};
use hangar_workers::store::Store;
use hangar_workers::targets::TargetPolicy;
use hangar_workers::webhooks::{self, Limits, NewEndpoint, WebhookContext, endpoint};
use hangar_workers::wire::{EventEnvelope, parse_event_body};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::{BENCH_QUEUE, peak_rss_mib, percentile, prepare};
use crate::config::Config;
use crate::exit::Fatal;

/// Arrivals at the receiver: (event id, when).
pub(super) type Arrivals = Arc<Mutex<Vec<(String, Instant)>>>;

/// The receiver: `/ok/{n}` answers 200 and notes the arrival; `/dead` never answers in time.
pub(super) async fn receiver(arrivals: Arrivals) -> Result<String, Fatal> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| Fatal::runtime(format!("bench: receiver: {e}")))?;
    let base = format!(
        "http://{}",
        listener
            .local_addr()
            .map_err(|e| Fatal::runtime(format!("bench: receiver: {e}")))?
    );
    let app = Router::new()
        .route(
            "/ok/{n}",
            post(move |Path(_n): Path<String>, headers: HeaderMap| {
                let arrivals = arrivals.clone();
                async move {
                    let id = headers
                        .get("webhook-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned();
                    arrivals
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((id, Instant::now()));
                    "ok"
                }
            }),
        )
        .route(
            "/dead",
            post(|| async {
                tokio::time::sleep(Duration::from_secs(120)).await;
                "late"
            }),
        );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(base)
}

pub(super) fn event(ws: &str, id: &str) -> Result<EventEnvelope, Fatal> {
    let body = serde_json::json!({"id": id, "type": "trip.created", "workspace_id": ws,
        "timestamp": "2026-11-22T10:00:00Z", "data": {"trip_id": id, "tail": "N123HG"}});
    parse_event_body(body.to_string().as_bytes())
        .map_err(|e| Fatal::runtime(format!("bench: event: {e}")))
}

async fn create(
    context: &WebhookContext,
    ws: &str,
    url: String,
    max_in_flight: i32,
    created: &mut Vec<String>,
) -> Result<(), Fatal> {
    let new = NewEndpoint {
        workspace_id: ws.to_owned(),
        url,
        event_types: vec!["trip.created".to_owned()],
        description: "bench".to_owned(),
        safety_allowed: false,
        others_allowed: true,
        limits: Limits {
            max_in_flight: Some(max_in_flight),
            ..Limits::default()
        },
    };
    let (endpoint, _) = endpoint::create(context, &new)
        .await
        .map_err(|e| Fatal::runtime(format!("bench: endpoint: {e}")))?;
    created.push(endpoint.id);
    Ok(())
}

/// Waits until `arrivals` has `n` entries (at most `limit`).
async fn arrived(arrivals: &Arrivals, n: usize, limit: Duration) -> Result<(), Fatal> {
    let deadline = Instant::now() + limit;
    while arrivals.lock().unwrap_or_else(|e| e.into_inner()).len() < n {
        if Instant::now() > deadline {
            return Err(Fatal::runtime(
                "bench: deliveries stopped arriving; giving up",
            ));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(())
}

/// Events published one at a time, `interval` apart; each one's latency (ms) to every
/// arrival of it on the receiver, once `per_event` arrived.
async fn one_at_a_time(
    store: &Store,
    context: &WebhookContext,
    arrivals: &Arrivals,
    ws: &str,
    count: usize,
    interval: Duration,
    per_event: usize,
) -> Result<Vec<f64>, Fatal> {
    arrivals.lock().unwrap_or_else(|e| e.into_inner()).clear();
    let mut sent = Vec::with_capacity(count);
    for i in 0..count {
        let id = format!("{ws}_{i}");
        let e = event(ws, &id)?;
        let at = Instant::now();
        store.publish_event(&e, &context.route()).await?;
        sent.push((id, at));
        tokio::time::sleep(interval).await;
    }
    arrived(arrivals, count * per_event, Duration::from_secs(60)).await?;
    let got = arrivals.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut ms: Vec<f64> = got
        .iter()
        .filter_map(|(id, at)| {
            sent.iter()
                .find(|(s, _)| s == id)
                .map(|(_, t)| at.duration_since(*t).as_secs_f64() * 1000.0)
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    Ok(ms)
}

/// The raw rate: `n` signed requests to the same receiver with `concurrency` in flight.
async fn raw_rate(
    context: &WebhookContext,
    base: &str,
    n: usize,
    endpoints: usize,
    concurrency: usize,
) -> Result<f64, Fatal> {
    let secret = Arc::new(vec![WebhookSecret::generate()]);
    let body: Arc<String> = Arc::new(
        serde_json::json!({"id": "evt_raw", "type": "trip.created", "workspace_id": "ws",
        "timestamp": "2026-11-22T10:00:00Z", "data": {"tail": "N123HG", "trip_id": "evt_raw"}})
        .to_string(),
    );
    let slots = Arc::new(Semaphore::new(concurrency));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let permit = slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Fatal::runtime("bench"))?;
        let (http, secret, body) = (context.http.clone(), secret.clone(), body.clone());
        let url = format!("{base}/ok/{}", i % endpoints);
        tasks.spawn(async move {
            let delivery = format!("dlv_raw_{i}");
            let headers = signature_headers(
                &secret,
                &SignedRequest {
                    event_type: "trip.created",
                    message_id: "evt_raw",
                    delivery_id: &delivery,
                    body: body.as_bytes(),
                    at: chrono::Utc::now(),
                },
            );
            let mut request = http.post(url).body(body.as_str().to_owned());
            for (name, value) in headers {
                request = request.header(name, value);
            }
            let ok = matches!(request.send().await, Ok(r) if r.status().is_success());
            drop(permit);
            ok
        });
    }
    let mut failed = 0;
    while let Some(ok) = tasks.join_next().await {
        if !matches!(ok, Ok(true)) {
            failed += 1;
        }
    }
    if failed > 0 {
        return Err(Fatal::runtime(format!(
            "bench: {failed} raw requests failed"
        )));
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// `hangar bench webhooks`.
pub async fn webhooks(
    config: &Config,
    events: usize,
    endpoints: usize,
    latency_events: usize,
    interval_ms: u64,
    concurrency: usize,
    json: bool,
) -> Result<(), Fatal> {
    if events == 0 || endpoints == 0 {
        return Err(Fatal::config(
            "--events and --endpoints: must be at least 1",
        ));
    }
    let store = prepare(config).await?;
    let arrivals: Arrivals = Arc::default();
    let base = receiver(arrivals.clone()).await?;
    let mut spec = hangar_workers::pool_config::builtin()
        .into_iter()
        .find(|p| p.kinds.iter().any(|k| k == webhooks::KIND))
        .ok_or_else(|| Fatal::runtime("bench: no built-in webhooks pool"))?;
    spec.name = "bench-webhooks".to_owned();
    spec.queue = BENCH_QUEUE.to_owned();
    if concurrency > 0 {
        spec.concurrency = concurrency;
        spec.prefetch = concurrency;
    }
    let concurrency = spec.concurrency;
    let per_endpoint = i32::try_from((concurrency / endpoints).max(1))
        .unwrap_or(10)
        .min(100);
    let mut registry = Registry::builtin_with(TargetPolicy::allow_all());
    let routes = Routes::new(std::slice::from_ref(&spec), &registry);
    let keyring = Arc::new(Keyring::new(MasterKey::generate()));
    let mut context =
        WebhookContext::new(store.clone(), keyring, TargetPolicy::allow_all(), &routes);
    context.shares.workspace = concurrency as i64;
    webhooks::register(&mut registry, &context);
    let run = format!("ws_bench_{}", std::process::id());
    let mut created = Vec::new();

    // 1. Throughput: stored first, then drained.
    let ws = format!("{run}_t");
    for i in 0..endpoints {
        create(
            &context,
            &ws,
            format!("{base}/ok/{i}"),
            per_endpoint,
            &mut created,
        )
        .await?;
    }
    let mut batch = Vec::with_capacity(500);
    for i in 0..events {
        batch.push(event(&ws, &format!("{ws}_{i}"))?);
        if batch.len() == 500 || i + 1 == events {
            store.ingest(&batch, &[], &context.route()).await?;
            batch.clear();
        }
    }
    let deliveries = events * endpoints;
    let shutdown = CancellationToken::new();
    let deps = PoolDeps {
        store: store.clone(),
        registry: Arc::new(registry),
        refresher: Arc::new(NoRefresher),
        worker_id: crate::runtime::worker_id(),
    };
    let (listener, stop) = (store.clone(), shutdown.clone());
    tokio::spawn(async move { listener.listen(stop).await });
    let started = Instant::now();
    let pool = tokio::spawn(Pool::new(spec, deps).run(shutdown.clone()));
    arrived(&arrivals, deliveries, Duration::from_secs(600)).await?;
    while store
        .count_in_queue(BENCH_QUEUE, JobState::Completed, false)
        .await?
        > 0
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let rate = deliveries as f64 / started.elapsed().as_secs_f64();
    let in_flight = (per_endpoint as usize * endpoints).min(concurrency);
    let raw = raw_rate(&context, &base, deliveries, endpoints, in_flight).await?;
    eprintln!(
        "throughput: {deliveries} deliveries ({events} events x {endpoints} endpoints), \
         {rate:.0}/s logged vs {raw:.0}/s raw ({:.0} %), {in_flight} in flight",
        rate / raw * 100.0
    );

    // 2. Ingress to first attempt, one endpoint, light load.
    let ws = format!("{run}_l");
    create(&context, &ws, format!("{base}/ok/l"), 10, &mut created).await?;
    let interval = Duration::from_millis(interval_ms);
    let lat = one_at_a_time(
        &store,
        &context,
        &arrivals,
        &ws,
        latency_events,
        interval,
        1,
    )
    .await?;
    let (l50, l99) = (percentile(&lat, 50.0), percentile(&lat, 99.0));
    eprintln!("ingress -> first attempt: p50 {l50:.1} ms, p99 {l99:.1} ms");

    // 3. Ten healthy endpoints, then nine healthy and one dead, at the same rate.
    let ws = format!("{run}_h");
    for i in 0..10 {
        create(&context, &ws, format!("{base}/ok/h{i}"), 10, &mut created).await?;
    }
    let healthy = one_at_a_time(
        &store,
        &context,
        &arrivals,
        &ws,
        latency_events,
        interval,
        10,
    )
    .await?;
    let ws = format!("{run}_d");
    for i in 0..9 {
        create(&context, &ws, format!("{base}/ok/d{i}"), 10, &mut created).await?;
    }
    create(&context, &ws, format!("{base}/dead"), 10, &mut created).await?;
    let beside = one_at_a_time(
        &store,
        &context,
        &arrivals,
        &ws,
        latency_events,
        interval,
        9,
    )
    .await?;
    let (h99, d99) = (percentile(&healthy, 99.0), percentile(&beside, 99.0));
    eprintln!(
        "healthy endpoints' p99: {h99:.1} ms with ten healthy, {d99:.1} ms beside a dead one \
         ({:.2}x); peak RSS {:.1} MiB",
        d99 / h99.max(0.001),
        peak_rss_mib()
    );
    shutdown.cancel();
    let _ = pool.await;
    store.delete_queue(BENCH_QUEUE).await?;
    for id in &created {
        store.delete_webhook_endpoint(id).await?;
    }
    if json {
        println!(
            "{}",
            serde_json::json!({"backend": store.backend_name(), "deliveries": deliveries,
                "deliveries_per_sec": rate, "raw_per_sec": raw, "ingress_p50_ms": l50,
                "ingress_p99_ms": l99, "healthy_p99_ms": h99, "beside_dead_p99_ms": d99,
                "in_flight": in_flight})
        );
    }
    println!(
        "deliveries_per_sec={rate:.0} raw_per_sec={raw:.0} ratio={:.2} ingress_p50_ms={l50:.1} \
         ingress_p99_ms={l99:.1} healthy_p99_ms={h99:.1} beside_dead_p99_ms={d99:.1} \
         in_flight={in_flight}",
        rate / raw
    );
    Ok(())
}
