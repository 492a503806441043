//! The integrations' benchmarks (issue 11, "Performance"), ignored by default and run by
//! `benches/sync.sh` on a release build against PostgreSQL; each prints one `BENCH` line
//! that the script collects into its report.
//!
//! - **throughput**: payments synced per second from the QuickBooks simulator by a `hangar
//!   serve` (changes to Redis too), no limit anywhere (pages of 1 000), beside the rate at
//!   which a bare HTTP client reads the same pages from the simulator (what it can serve);
//! - **budget**: a backfill under QuickBooks' 500 requests a minute, the simulator enforcing
//!   it as a sliding window with 429s, pages of 10 so that requests are the limit; after
//!   [`BUDGET_RUN`] the share of the budget used and the 429s received;
//! - **refresh**: 10 000 OAuth connections due for a token refresh at once, refreshed by one
//!   `hangar worker`; the time until every one has its new token.

use std::time::{Duration, Instant};

use hangar_workers::job::JobState;
use serde_json::json;

use crate::integrations_e2e::World;
use crate::integrations_support::{context, request};
use crate::qbo_sim::{QboSim, REALM, oauth};
use crate::support::{ANY_PORT, Backend, TestDb, wait_for};

/// How long the budget run lasts (the backfill of 100 000 records takes 20 minutes
/// at pages of 1 000 records… or 200 at pages of 10: two minutes shows the same rate).
const BUDGET_RUN: Duration = Duration::from_secs(120);

fn count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The number after `name` in a log line (text `name=12` or JSON `"name":12`), or `?`.
fn field(line: &str, name: &str) -> String {
    line.split_once(name)
        .map(|(_, rest)| {
            rest.trim_start_matches(['=', '"', ':'])
                .chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
        })
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "?".to_owned())
}

#[tokio::test]
#[ignore = "benchmark: benches/sync.sh"]
async fn bench_sync_throughput() {
    let n = count("HANGAR_BENCH_RECORDS", 50_000);
    let w = World::start(Backend::Postgres).await;
    w.put_quickbooks(&["payments"]).await;
    // The first sync sets the cursor (an empty full scan); what follows is the changes feed.
    assert_eq!(w.sync("payments").await.state, JobState::Completed);
    // Changed after the cursor (one second apart from now on).
    w.sim
        .add_payments(n, -chrono::Duration::seconds(n as i64 + 1));

    // What the simulator serves to a bare client: every page, the same queries.
    let http = reqwest::Client::new();
    let started = Instant::now();
    let mut since = (chrono::Utc::now() - chrono::Duration::days(1)).to_rfc3339();
    let mut read = 0;
    loop {
        let page: serde_json::Value = http
            .get(format!("{}/v3/company/{REALM}/cdc", w.sim.base))
            .query(&[("entities", "Payment"), ("changedSince", since.as_str())])
            .bearer_auth("access-0")
            .send()
            .await
            .expect("page")
            .json()
            .await
            .expect("json");
        let items = page["CDCResponse"][0]["QueryResponse"][0]["Payment"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let last = items
            .last()
            .map(|p| p["MetaData"]["LastUpdatedTime"].clone());
        read += items.len();
        if items.len() < 1000 || read >= n {
            break;
        }
        // Past the last second read (the simulator's times are one second apart).
        let last: chrono::DateTime<chrono::Utc> =
            serde_json::from_value(last.expect("a last item")).expect("time");
        since = (last + chrono::Duration::seconds(1)).to_rfc3339();
    }
    let bare = read as f64 / started.elapsed().as_secs_f64();

    let started = Instant::now();
    let job = w.sync("payments").await;
    let elapsed = started.elapsed();
    assert_eq!(job.state, JobState::Completed, "{job:?}");
    let run = w.runs().await.into_iter().next().expect("a run");
    let created = run["records"]["created"].as_u64().unwrap_or(0);
    assert_eq!(created as usize, n, "{run}");
    let log = std::fs::read_to_string(&w.serve.log).unwrap_or_default();
    let finished = log
        .lines()
        .rfind(|l| l.contains("sync run finished"))
        .unwrap_or_default();
    println!(
        "BENCH throughput records={n} hangar_seconds={:.2} hangar_records_per_s={:.0} \
         simulator_alone_records_per_s={bare:.0} ratio={:.0}% pages={} fetch_ms={} apply_ms={} publish_ms={}",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64(),
        100.0 * n as f64 / elapsed.as_secs_f64() / bare,
        w.sim.calls("cdc"),
        field(finished, "fetch_ms"),
        field(finished, "apply_ms"),
        field(finished, "publish_ms"),
    );
}

#[tokio::test]
#[ignore = "benchmark: benches/sync.sh"]
async fn bench_sync_budget() {
    let run_for = Duration::from_secs(count(
        "HANGAR_BENCH_BUDGET_SECS",
        BUDGET_RUN.as_secs() as usize,
    ) as u64);
    let w = World::start(Backend::Postgres).await;
    w.put_quickbooks(&["payments"]).await;
    assert_eq!(w.sync("payments").await.state, JobState::Completed);
    // More than the run can read: the budget, not the data, ends it.
    let records = 12_000;
    w.sim
        .add_payments(records, -chrono::Duration::seconds(records as i64 + 1));
    w.sim.switch(|s| {
        s.page_size = 10;
        s.per_minute = Some(500);
    });
    let before = w.sim.calls("cdc") + w.sim.calls("query");
    let job = w.start_sync("payments").await;
    let started = Instant::now();
    tokio::time::sleep(run_for).await;
    let calls = w.sim.calls("cdc") + w.sim.calls("query") - before;
    let throttled = w.sim.calls("429");
    let budget = 500.0 * run_for.as_secs_f64() / 60.0;
    let state = w.store.job(job).await.expect("job").state;
    let mut runs = w.runs().await;
    runs.pop(); // the first, empty sync
    let rate_limited = runs
        .iter()
        .filter(|r| r["status"] == "rate_limited")
        .count();
    let read: u64 = runs
        .iter()
        .filter_map(|r| r["records"]["read"].as_u64())
        .sum();
    println!(
        "BENCH budget seconds={:.0} calls={calls} budget={budget:.0} share={:.1}% \
         throttled_429={throttled} runs={} rate_limited_runs={rate_limited} records_read={read} job={state}",
        started.elapsed().as_secs_f64(),
        100.0 * calls as f64 / budget,
        runs.len(),
    );
    assert_eq!(throttled, 0, "no 429 from QuickBooks");
}

#[tokio::test]
#[ignore = "benchmark: benches/sync.sh"]
async fn bench_token_refresh() {
    let n = count("HANGAR_BENCH_CONNECTIONS", 10_000);
    let concurrency = count("HANGAR_BENCH_REFRESH_CONCURRENCY", 50);
    let db = TestDb::new(Backend::Postgres).await;
    let (store, context) = context(&db).await;
    let sim = QboSim::start().await;
    let tokens = sim.add_refresh_tokens(n);
    // Due at once: every access token expires within the refresh margin.
    let expires = (chrono::Utc::now() + chrono::Duration::minutes(5)).to_rfc3339();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in tokens.chunks(n.div_ceil(16)) {
        let (context, chunk, base, token_url, expires) = (
            context.clone(),
            chunk.to_vec(),
            sim.base.clone(),
            sim.token_url(),
            expires.clone(),
        );
        tasks.spawn(async move {
            for refresh in chunk {
                let body = json!({
                    "enabled": true, "data_types": ["payments"], "frequency": "manual",
                    "settings": {"realm_id": REALM, "base_url": base},
                    "credentials": {"oauth": {
                        "access_token": "access-0", "refresh_token": refresh,
                        "expires_at": expires, "token_url": token_url,
                        "client_id": oauth::CLIENT_ID, "client_secret": oauth::CLIENT_SECRET,
                        "scopes": ["com.intuit.quickbooks.accounting"],
                    }},
                });
                let workspace = format!("ws_{refresh}");
                context
                    .put(
                        &workspace,
                        hangar_integrations::provider::Provider::Quickbooks,
                        request(body),
                    )
                    .await
                    .expect("put");
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("a put task");
    }
    let setup = started.elapsed();
    db.pools(&format!(
        "[[pool]]\nname = \"integrations\"\nqueue = \"integrations\"\nkinds = [\"token_refresh\"]\n\
         concurrency = {concurrency}\npoll_interval_ms = 100\n"
    ));
    let started = Instant::now();
    let worker = db.spawn(
        "worker",
        &["worker", "--pool", "integrations", "--bind", ANY_PORT],
    );
    wait_for(
        "every connection refreshed",
        Duration::from_secs(1800),
        || async {
            let left = db
                .query_i64("SELECT count(*) FROM hangar_integrations WHERE credential_version < 2")
                .await;
            (left == 0).then_some(())
        },
    )
    .await;
    let elapsed = started.elapsed();
    drop(worker);
    let failed = db
        .query_i64("SELECT count(*) FROM hangar_integrations WHERE status <> 'active'")
        .await;
    println!(
        "BENCH refresh connections={n} worker_concurrency={concurrency} seconds={:.1} \
         refreshes_per_s={:.0} token_calls={} not_active={failed} setup_seconds={:.1}",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64(),
        sim.calls("token"),
        setup.as_secs_f64(),
    );
    assert_eq!(
        sim.calls("token") as usize,
        n,
        "one token call per connection"
    );
    let _ = store;
}
