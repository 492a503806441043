//! `hangar bench http`: the HTTP API under a sustained load from loopback (issue 14). An open
//! model: requests leave at a fixed rate whether or not earlier ones were answered, half
//! `GET /api/v1/jobs`, half `POST /api/v1/events`, each authenticated with one of enough
//! tokens that no token passes the per-token rate; latency is counted from the moment a
//! request was due, so a stalled server shows as latency, not as a slower sender. Then one
//! token alone at four times its rate: the limiter must answer 429 with `Retry-After`, never
//! 5xx. The tokens are created in the configured database (the server's) and revoked after.

use std::time::Duration;

use tokio::sync::mpsc;

use super::percentile;
use crate::api::{RATE_PER_SEC, Role, create_token, revoke_token};
use crate::config::Config;
use crate::exit::Fatal;

const WORKSPACE: &str = "bench-http";

/// What one request came back with.
struct Outcome {
    post: bool,
    /// The status, or `None` for a transport error (refused, reset, timed out).
    status: Option<u16>,
    /// Whether a 429 carried a `Retry-After` of whole seconds ≥ 1.
    retry_after: bool,
    /// From the moment the request was due to the end of the answer.
    ms: f64,
}

/// One endpoint's figures.
#[derive(Default)]
struct Tally {
    latencies: Vec<f64>,
    ok: usize,
    limited: usize,
    limited_with_retry_after: usize,
    client_errors: usize,
    server_errors: usize,
    transport_errors: usize,
}

impl Tally {
    fn add(&mut self, outcome: &Outcome) {
        self.latencies.push(outcome.ms);
        match outcome.status {
            None => self.transport_errors += 1,
            Some(429) => {
                self.limited += 1;
                self.limited_with_retry_after += usize::from(outcome.retry_after);
            }
            Some(s) if s < 400 => self.ok += 1,
            Some(s) if s < 500 => self.client_errors += 1,
            Some(_) => self.server_errors += 1,
        }
    }

    fn sorted(&mut self) -> &[f64] {
        self.latencies.sort_by(f64::total_cmp);
        &self.latencies
    }
}

/// Sends `rate` requests a second for `seconds` to `base`, spread over `tokens`; `post_every`
/// = 2 alternates GET and POST, 0 sends GETs only.
async fn open_load(
    client: &reqwest::Client,
    base: &str,
    tokens: &[String],
    rate: f64,
    seconds: f64,
    post_every: usize,
    run: &str,
) -> (Vec<Outcome>, f64) {
    let total = (rate * seconds).round().max(1.0) as usize;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let started = tokio::time::Instant::now();
    for i in 0..total {
        let due = started + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(due).await;
        let post = post_every > 0 && i % post_every == 1;
        let request = if post {
            let event = serde_json::json!({
                "id": format!("evt_{run}_{i}"), "type": "trip.created",
                "workspace_id": WORKSPACE, "timestamp": chrono::Utc::now(),
                "data": {"trip_id": format!("trp_{i}")},
            });
            client.post(format!("{base}/api/v1/events")).json(&event)
        } else {
            client.get(format!("{base}/api/v1/jobs?limit=20"))
        };
        let request = request.bearer_auth(&tokens[i % tokens.len()]);
        let tx = tx.clone();
        tokio::spawn(async move {
            let answer = request.send().await;
            let (status, retry_after) = match answer {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let retry_after = response
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<u64>().ok())
                        .is_some_and(|s| s >= 1);
                    // Read the body: the request is over when the answer is.
                    let ok = response.bytes().await.is_ok();
                    (ok.then_some(status), retry_after)
                }
                Err(_) => (None, false),
            };
            let ms = due.elapsed().as_secs_f64() * 1000.0;
            let _ = tx.send(Outcome {
                post,
                status,
                retry_after,
                ms,
            });
        });
    }
    drop(tx);
    let mut outcomes = Vec::with_capacity(total);
    while let Some(outcome) = rx.recv().await {
        outcomes.push(outcome);
    }
    (outcomes, started.elapsed().as_secs_f64())
}

fn line(name: &str, tally: &mut Tally, secs: f64) -> String {
    let count = tally.latencies.len();
    let sorted = tally.sorted();
    format!(
        "{name}: {count} requests, {:.0}/s answered, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; \
         2xx {}, 429 {}, other 4xx {}, 5xx {}, transport errors {}",
        count as f64 / secs,
        percentile(sorted, 50.0),
        percentile(sorted, 99.0),
        sorted.last().copied().unwrap_or(0.0),
        tally.ok,
        tally.limited,
        tally.client_errors,
        tally.server_errors,
        tally.transport_errors
    )
}

/// `hangar bench http`.
pub async fn http(
    config: &Config,
    base: &str,
    rate: f64,
    seconds: f64,
    limit_seconds: f64,
    json: bool,
) -> Result<(), Fatal> {
    if !(rate >= 1.0 && seconds > 0.0) {
        return Err(Fatal::config("--rate and --seconds must be positive"));
    }
    let base = base.trim_end_matches('/').to_owned();
    let store = crate::connect(config).await?;
    // Each token at most half its rate, so the load phase never meets the limiter.
    let count = ((rate / (RATE_PER_SEC / 2.0)).ceil() as usize).max(1);
    let mut ids = Vec::with_capacity(count + 1);
    let mut tokens = Vec::with_capacity(count);
    for n in 0..=count {
        let (id, token) = create_token(
            &store,
            &format!("bench-http-{n}"),
            Role::Operator,
            Some(WORKSPACE),
        )
        .await?;
        ids.push(id);
        tokens.push(token);
    }
    let lone = tokens.pop().expect("one more token than the load uses");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1_024)
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| Fatal::runtime(format!("bench: HTTP client: {e}")))?;
    let run = chrono::Utc::now().timestamp_millis().to_string();
    // A short warm-up opens the connections.
    let _ = open_load(
        &client,
        &base,
        &tokens,
        rate.min(200.0),
        1.0,
        2,
        &format!("{run}w"),
    )
    .await;
    let (outcomes, secs) = open_load(&client, &base, &tokens, rate, seconds, 2, &run).await;
    let (mut get, mut post) = (Tally::default(), Tally::default());
    for outcome in &outcomes {
        if outcome.post {
            post.add(outcome)
        } else {
            get.add(outcome)
        }
    }
    let mut all = Tally::default();
    outcomes.iter().for_each(|o| all.add(o));
    eprintln!(
        "load: {rate:.0} req/s offered for {seconds:.0} s over {count} tokens ({:.0} req/s each) to {base}",
        rate / count as f64
    );
    eprintln!("{}", line("GET /api/v1/jobs", &mut get, secs));
    eprintln!("{}", line("POST /api/v1/events", &mut post, secs));
    let errors = all.client_errors + all.server_errors + all.transport_errors + all.limited;
    let answered_rps = outcomes.len() as f64 / secs;
    let sorted = all.sorted().to_vec();
    let (p50, p99) = (percentile(&sorted, 50.0), percentile(&sorted, 99.0));

    // One token at four times its rate: the limiter's answer.
    let limit_rate = RATE_PER_SEC * 4.0;
    let (limited, _) = open_load(
        &client,
        &base,
        &[lone],
        limit_rate,
        limit_seconds.max(1.0),
        0,
        &run,
    )
    .await;
    let mut limit = Tally::default();
    limited.iter().for_each(|o| limit.add(o));
    eprintln!(
        "{}",
        line(
            &format!("one token at {limit_rate:.0} req/s"),
            &mut limit,
            limit_seconds.max(1.0)
        )
    );
    for id in ids {
        revoke_token(&store, id).await?;
    }
    let limit_ok = limit.server_errors == 0
        && limit.transport_errors == 0
        && limit.limited > 0
        && limit.limited == limit.limited_with_retry_after;
    if json {
        println!(
            "{}",
            serde_json::json!({"offered_rps": rate, "answered_rps": answered_rps, "p50_ms": p50,
                "p99_ms": p99, "errors": errors, "limit_429": limit.limited,
                "limit_429_with_retry_after": limit.limited_with_retry_after,
                "limit_5xx": limit.server_errors, "limit_ok": limit_ok})
        );
    }
    println!(
        "offered_rps={rate:.0} answered_rps={answered_rps:.0} p50_ms={p50:.2} p99_ms={p99:.2} errors={errors} \
         limit_2xx={} limit_429={} limit_429_with_retry_after={} limit_5xx={} limit_ok={limit_ok}",
        limit.ok, limit.limited, limit.limited_with_retry_after, limit.server_errors
    );
    Ok(())
}
