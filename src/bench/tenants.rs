//! `hangar bench tenants`: issue 14's "10 000 workspaces, 100 000 schedules, 1 000 webhook
//! endpoints: planner lag and claim latency stay flat", at one size per run
//! (`benches/tenants.sh` runs several and plots them).
//!
//! Setup: S API schedules spread over W workspaces (`ws_tenants_<i mod W>`), cron
//! `"<i mod 60> * * * * *"` (each due once a minute, S/60 due every second), and E webhook
//! endpoints spread over the same workspaces, pointing at a receiver on loopback in this
//! process. One planner, one `noop` pool (concurrency 100) that runs the schedules' jobs and
//! the probes, and the built-in webhooks pool on a queue of its own, all in this process.
//!
//! Once every schedule has planned its first slot (up to a minute), for `seconds`:
//! - *planner lag*: of each schedule job started in the window, `created_at - run_at` (slot
//!   time to row inserted, the database's clock on PostgreSQL);
//! - *claim latency*: a probe `noop` job (in a random workspace) enqueued every
//!   `probe_interval_ms`, from just before the enqueue call to its handler's start, in
//!   competition with the schedules' jobs in the same queue;
//! - *delivery latency*: one event a second per `events_per_sec` to a workspace that has
//!   endpoints, from just before `publish_event` to each arrival at the receiver.
//!
//! Everything is removed after (schedules by name prefix, both queues, the endpoints).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hangar_schedules::{NewSchedule, Planner, PlannerConfig, Schedules};
use hangar_workers::job::{ClaimedJob, JobId, NewJob};
use hangar_workers::kinds::{BoxFuture, Handler, JobFailure, Registry};
use hangar_workers::pool::{Pool, PoolDeps};
use hangar_workers::refresher::NoRefresher;
use hangar_workers::routes::Routes;
use hangar_workers::secrets::{Keyring, MasterKey};
use hangar_workers::store::Store;
use hangar_workers::targets::TargetPolicy;
use hangar_workers::webhooks::{self, Limits, NewEndpoint, WebhookContext, endpoint};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::webhooks::{Arrivals, event, receiver};
use super::{BENCH_QUEUE, bench_pool, peak_rss_mib, percentile, prepare};
use crate::config::Config;
use crate::exit::Fatal;

const PREFIX: &str = "bench-tenants-";
const HOOKS_QUEUE: &str = "hangar-bench-hooks";
const INSERT_BATCH: usize = 5_000;

/// How large a run is and how long it measures.
#[derive(Debug, Clone, Copy)]
pub struct TenantsRun {
    /// Workspaces the schedules and endpoints are spread over.
    pub workspaces: usize,
    /// Schedules, each due once a minute.
    pub schedules: usize,
    /// Webhook endpoints.
    pub endpoints: usize,
    /// How long the measurement lasts, in seconds.
    pub seconds: u64,
    /// Pause between probe jobs, in milliseconds.
    pub probe_interval_ms: u64,
    /// Events published per second during the measurement.
    pub events_per_sec: u64,
}

/// What the handler saw of one job: its id, when its handler started, whether it is a probe,
/// and its planner lag in ms (`created_at - run_at`).
type Started = (JobId, Instant, bool, f64);

/// The `noop` of this bench: reports each start with its planner lag (schedule jobs) or
/// marks it a probe.
struct Recorder {
    started: mpsc::UnboundedSender<Started>,
}

impl Handler for Recorder {
    fn validate(&self, _args: &serde_json::Value) -> Result<(), hangar_workers::kinds::ArgsError> {
        Ok(())
    }

    fn run(&self, job: ClaimedJob) -> BoxFuture<'static, Result<(), JobFailure>> {
        let now = Instant::now();
        let probe = job.args.get("probe").is_some();
        let lag_ms = (job.created_at - job.run_at)
            .num_microseconds()
            .unwrap_or(0) as f64
            / 1000.0;
        let _ = self.started.send((job.id, now, probe, lag_ms));
        Box::pin(async { Ok(()) })
    }
}

fn workspace(i: usize, workspaces: usize) -> String {
    format!("ws_tenants_{}", i % workspaces)
}

async fn clean(store: &Store, schedules: &Schedules) -> Result<(), Fatal> {
    schedules.delete_prefixed(PREFIX).await?;
    store.delete_queue(BENCH_QUEUE).await?;
    store.delete_queue(HOOKS_QUEUE).await?;
    Ok(())
}

async fn store_schedules(schedules: &Schedules, run: &TenantsRun) -> Result<(), Fatal> {
    let mut batch = Vec::with_capacity(INSERT_BATCH);
    for i in 0..run.schedules {
        let mut schedule = NewSchedule::new(
            format!("{PREFIX}{i}"),
            format!("{} * * * * *", i % 60),
            "noop",
        );
        schedule.queue = Some(BENCH_QUEUE.to_owned());
        schedule.workspace_id = Some(workspace(i, run.workspaces));
        batch.push(schedule);
        if batch.len() == INSERT_BATCH || i + 1 == run.schedules {
            schedules.upsert_many(&batch).await?;
            batch.clear();
        }
    }
    Ok(())
}

/// Creates the endpoints; returns their ids and, per workspace index, how many it has.
async fn store_endpoints(
    context: &WebhookContext,
    base: &str,
    run: &TenantsRun,
) -> Result<(Vec<String>, HashMap<usize, usize>), Fatal> {
    let mut ids = Vec::with_capacity(run.endpoints);
    let mut per_workspace = HashMap::new();
    for i in 0..run.endpoints {
        let new = NewEndpoint {
            workspace_id: workspace(i, run.workspaces),
            url: format!("{base}/ok/{i}"),
            event_types: vec!["trip.created".to_owned()],
            description: "bench tenants".to_owned(),
            safety_allowed: false,
            others_allowed: true,
            limits: Limits::default(),
        };
        let (created, _) = endpoint::create(context, &new)
            .await
            .map_err(|e| Fatal::runtime(format!("bench: endpoint: {e}")))?;
        ids.push(created.id);
        *per_workspace.entry(i % run.workspaces).or_insert(0) += 1;
    }
    Ok((ids, per_workspace))
}

/// Waits until every bench schedule has planned a slot, or fails after `limit`.
async fn wait_planned(schedules: &Schedules, n: usize, limit: Duration) -> Result<(), Fatal> {
    let deadline = Instant::now() + limit;
    while schedules.count_planned(PREFIX).await?.1 < n as u64 {
        if Instant::now() > deadline {
            return Err(Fatal::runtime(format!(
                "bench: not every schedule was planned within {} s",
                limit.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

/// Sorts what the handler reported since the last call into planner lags and probe claim
/// latencies.
fn drain(
    rx: &mut mpsc::UnboundedReceiver<Started>,
    probes: &HashMap<JobId, Instant>,
    lag_ms: &mut Vec<f64>,
    claim_ms: &mut Vec<f64>,
) {
    while let Ok((id, at, probe, lag)) = rx.try_recv() {
        if probe {
            if let Some(sent) = probes.get(&id) {
                claim_ms.push(at.duration_since(*sent).as_secs_f64() * 1000.0);
            }
        } else {
            lag_ms.push(lag);
        }
    }
}

fn p50_p99(mut values: Vec<f64>) -> (f64, f64, usize) {
    values.sort_by(f64::total_cmp);
    (
        percentile(&values, 50.0),
        percentile(&values, 99.0),
        values.len(),
    )
}

/// `hangar bench tenants`.
pub async fn tenants(config: &Config, run: TenantsRun, json: bool) -> Result<(), Fatal> {
    if run.workspaces == 0 || run.schedules == 0 || run.seconds == 0 {
        return Err(Fatal::config(
            "--workspaces, --schedules and --seconds: must be at least 1",
        ));
    }
    let store = prepare(config).await?;
    let schedules = Schedules::new(store.clone());
    clean(&store, &schedules).await?;

    let arrivals: Arrivals = Arc::default();
    let base = receiver(arrivals.clone()).await?;
    let mut hooks_spec = hangar_workers::pool_config::builtin()
        .into_iter()
        .find(|p| p.kinds.iter().any(|k| k == webhooks::KIND))
        .ok_or_else(|| Fatal::runtime("bench: no built-in webhooks pool"))?;
    hooks_spec.name = "bench-hooks".to_owned();
    hooks_spec.queue = HOOKS_QUEUE.to_owned();
    let jobs_spec = bench_pool(config, 100);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut registry = Registry::builtin_with(TargetPolicy::allow_all());
    registry.register("noop", Recorder { started: tx });
    let routes = Routes::new(&[jobs_spec.clone(), hooks_spec.clone()], &registry);
    let keyring = Arc::new(Keyring::new(MasterKey::generate()));
    let context = WebhookContext::new(store.clone(), keyring, TargetPolicy::allow_all(), &routes);
    webhooks::register(&mut registry, &context);

    let setup = Instant::now();
    store_schedules(&schedules, &run).await?;
    let (endpoint_ids, per_workspace) = store_endpoints(&context, &base, &run).await?;
    eprintln!(
        "stored {} schedules over {} workspaces and {} endpoints in {:.2}s",
        run.schedules,
        run.workspaces,
        run.endpoints,
        setup.elapsed().as_secs_f64()
    );

    let shutdown = CancellationToken::new();
    let deps = PoolDeps {
        store: store.clone(),
        registry: Arc::new(registry),
        refresher: Arc::new(NoRefresher),
        worker_id: crate::runtime::worker_id(),
    };
    let (listener, stop) = (store.clone(), shutdown.clone());
    tokio::spawn(async move { listener.listen(stop).await });
    let jobs_pool = tokio::spawn(Pool::new(jobs_spec, deps.clone()).run(shutdown.clone()));
    let hooks_pool = tokio::spawn(Pool::new(hooks_spec, deps).run(shutdown.clone()));
    let planner = Planner::new(
        schedules.clone(),
        Routes::new(&config.pools, &Registry::builtin()),
        PlannerConfig::default(),
    );
    let planning = tokio::spawn(planner.run(shutdown.clone()));
    wait_planned(&schedules, run.schedules, Duration::from_secs(150)).await?;
    // Forget what started before the window.
    while rx.try_recv().is_ok() {}
    arrivals.lock().unwrap_or_else(|e| e.into_inner()).clear();

    let window = Duration::from_secs(run.seconds);
    let started = Instant::now();
    let mut probes: HashMap<JobId, Instant> = HashMap::new();
    let mut events: HashMap<String, Instant> = HashMap::new();
    let mut expected_arrivals = 0usize;
    let mut lag_ms = Vec::new();
    let mut claim_ms = Vec::new();
    let mut next_probe = Instant::now();
    let mut next_event = Instant::now();
    let event_every = Duration::from_millis(1_000 / run.events_per_sec.max(1));
    let hooked: Vec<usize> = {
        let mut w: Vec<usize> = per_workspace.keys().copied().collect();
        w.sort_unstable();
        w
    };
    let mut n = 0usize;
    while started.elapsed() < window {
        let now = Instant::now();
        if now >= next_probe {
            n += 1;
            let mut job = NewJob::new("noop", serde_json::json!({"probe": n}));
            job.queue = BENCH_QUEUE.to_owned();
            job.workspace_id = Some(workspace(n * 7919, run.workspaces));
            let sent = Instant::now();
            let id = store.enqueue(&job).await?.id;
            probes.insert(id, sent);
            next_probe += Duration::from_millis(run.probe_interval_ms);
        }
        if run.events_per_sec > 0 && !hooked.is_empty() && now >= next_event {
            let ws_index = hooked[(events.len() * 7919) % hooked.len()];
            let id = format!("evt_tenants_{}_{}", std::process::id(), events.len());
            let e = event(&workspace(ws_index, run.workspaces), &id)?;
            let sent = Instant::now();
            store.publish_event(&e, &context.route()).await?;
            events.insert(id, sent);
            expected_arrivals += per_workspace[&ws_index];
            next_event += event_every;
        }
        drain(&mut rx, &probes, &mut lag_ms, &mut claim_ms);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // The last probes and deliveries still on their way.
    let deadline = Instant::now() + Duration::from_secs(30);
    while (claim_ms.len() < probes.len()
        || arrivals.lock().unwrap_or_else(|e| e.into_inner()).len() < expected_arrivals)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
        drain(&mut rx, &probes, &mut lag_ms, &mut claim_ms);
    }
    shutdown.cancel();
    let _ = tokio::join!(jobs_pool, hooks_pool, planning);
    // A probe still waiting 30 s after the window is a figure too (the system did not keep
    // up at this size), not a failure of the bench.
    let unstarted = probes.len() - claim_ms.len();
    let delivery_ms: Vec<f64> = arrivals
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter_map(|(id, at)| {
            events
                .get(id)
                .map(|sent| at.duration_since(*sent).as_secs_f64() * 1000.0)
        })
        .collect();
    clean(&store, &schedules).await?;
    for id in &endpoint_ids {
        store.delete_webhook_endpoint(id).await?;
    }

    let (lag50, lag99, planned) = p50_p99(lag_ms);
    let (claim50, claim99, probed) = p50_p99(claim_ms);
    let (dlv50, dlv99, delivered) = p50_p99(delivery_ms);
    let per_minute = planned as f64 * 60.0 / run.seconds as f64;
    eprintln!(
        "backend={} workspaces={} schedules={} endpoints={} window_s={}: {planned} schedule jobs \
         started ({per_minute:.0}/min), {probed} probes, {delivered}/{expected_arrivals} \
         deliveries; peak_rss_mib={:.1}",
        store.backend_name(),
        run.workspaces,
        run.schedules,
        run.endpoints,
        run.seconds,
        peak_rss_mib()
    );
    if json {
        println!(
            "{}",
            serde_json::json!({"backend": store.backend_name(), "workspaces": run.workspaces,
                "schedules": run.schedules, "endpoints": run.endpoints, "seconds": run.seconds,
                "schedule_jobs": planned, "planner_lag_p50_ms": lag50, "planner_lag_p99_ms": lag99,
                "probes": probed, "probes_unstarted": unstarted, "claim_p50_ms": claim50,
                "claim_p99_ms": claim99,
                "deliveries": delivered, "delivery_p50_ms": dlv50, "delivery_p99_ms": dlv99,
                "peak_rss_mib": peak_rss_mib()})
        );
    }
    println!(
        "planner_lag_p50_ms={lag50:.1} planner_lag_p99_ms={lag99:.1} claim_p50_ms={claim50:.1} \
         claim_p99_ms={claim99:.1} delivery_p50_ms={dlv50:.1} delivery_p99_ms={dlv99:.1} \
         schedule_jobs={planned} probes_unstarted={unstarted}"
    );
    Ok(())
}
