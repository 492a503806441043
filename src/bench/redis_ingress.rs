//! `hangar bench ingress`: the Redis ingress from `XADD` to committed job, on the configured
//! database and Redis, with streams of the bench's own (`<prefix>-bench-<pid>`) that are
//! deleted afterwards. Throughput: a backlog of N entries drained by one consumer.
//! Latency: entries sent one at a time to an idle consumer, timed from just before `XADD`
//! to the consumer's post-commit wake-up of the queue.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hangar_workers::client::Client;
use hangar_workers::job::JobState;
use hangar_workers::kinds::Registry;
use hangar_workers::routes::Routes;
use tokio_util::sync::CancellationToken;

use super::{BENCH_QUEUE, bench_pool, peak_rss_mib, percentile, prepare};
use crate::config::Config;
use crate::exit::Fatal;
use crate::redis_ingress::{Consumer, ConsumerConfig, redis_client};

fn job_msg(run: &str, i: usize) -> String {
    serde_json::json!({"kind": "job", "job": {"kind": "noop", "workspace_id": "ws_bench",
        "args": {"n": i}, "idempotency_key": format!("{run}-{i}"), "queue": BENCH_QUEUE}})
    .to_string()
}

fn redis_error(e: redis::RedisError) -> Fatal {
    Fatal::runtime(format!("bench: Redis: {e}"))
}

/// `hangar bench ingress`.
pub async fn ingress(
    config: &Config,
    entries: usize,
    latency_entries: usize,
    interval_ms: u64,
    json: bool,
) -> Result<(), Fatal> {
    let Some(redis_config) = &config.redis else {
        return Err(Fatal::config(
            "bench ingress: HANGAR_REDIS_URL is not set (the bench needs a Redis)",
        ));
    };
    let mut redis_config = redis_config.clone();
    redis_config.prefix = format!("{}-bench-{}", redis_config.prefix, std::process::id());
    let store = prepare(config).await?;
    let registry = Registry::builtin();
    let routes = Routes::new(&[bench_pool(config, 1)], &registry);
    let client = Arc::new(Client::new(Arc::new(registry), Arc::new(routes)));
    let redis = redis_client(&redis_config.url)?;
    let mut conn = redis
        .get_multiplexed_async_connection()
        .await
        .map_err(redis_error)?;
    let stream = redis_config.stream();
    let _: () = redis::cmd("DEL")
        .arg(&stream)
        .arg(redis_config.dead_stream())
        .query_async(&mut conn)
        .await
        .map_err(redis_error)?;

    // Throughput: the backlog first, then one consumer drains it.
    let run = format!("bench-{}", std::process::id());
    let xadd_started = Instant::now();
    for chunk in (0..entries).collect::<Vec<_>>().chunks(1_000) {
        let mut pipe = redis::pipe();
        for &i in chunk {
            pipe.cmd("XADD")
                .arg(&stream)
                .arg("*")
                .arg("msg")
                .arg(job_msg(&run, i))
                .ignore();
        }
        pipe.query_async::<()>(&mut conn)
            .await
            .map_err(redis_error)?;
    }
    let xadd_secs = xadd_started.elapsed().as_secs_f64();
    let shutdown = CancellationToken::new();
    let consumer = Consumer::new(
        store.clone(),
        client.clone(),
        ConsumerConfig::new(redis_config.clone(), crate::runtime::worker_id()),
    )?;
    let drain_started = Instant::now();
    let task = tokio::spawn(consumer.run(shutdown.clone()));
    loop {
        let committed = store
            .count_in_queue(BENCH_QUEUE, JobState::Available, true)
            .await?;
        if committed as usize >= entries {
            break;
        }
        if drain_started.elapsed() > Duration::from_secs(300) {
            return Err(Fatal::runtime(format!(
                "bench: only {committed} of {entries} entries committed after 300 s"
            )));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let drain_secs = drain_started.elapsed().as_secs_f64();
    let entries_per_sec = entries as f64 / drain_secs;

    // Latency: one entry at a time into the idle consumer.
    let wake = store.wakeups().queue(BENCH_QUEUE);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = tokio::time::timeout(Duration::ZERO, wake.notified()).await;
    let mut latencies = Vec::with_capacity(latency_entries);
    for i in 0..latency_entries {
        tokio::time::sleep(Duration::from_millis(interval_ms)).await;
        let sent = Instant::now();
        let _: String = redis::cmd("XADD")
            .arg(&stream)
            .arg("*")
            .arg("msg")
            .arg(job_msg(&run, entries + i))
            .query_async(&mut conn)
            .await
            .map_err(redis_error)?;
        tokio::time::timeout(Duration::from_secs(10), wake.notified())
            .await
            .map_err(|_| Fatal::runtime("bench: an entry was not committed within 10 s"))?;
        latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
    }
    shutdown.cancel();
    let _ = task.await;
    let _: () = redis::cmd("DEL")
        .arg(&stream)
        .arg(redis_config.dead_stream())
        .query_async(&mut conn)
        .await
        .map_err(redis_error)?;
    store.delete_queue(BENCH_QUEUE).await?;

    latencies.sort_by(f64::total_cmp);
    let (p50, p99) = (percentile(&latencies, 50.0), percentile(&latencies, 99.0));
    let max = latencies.last().copied().unwrap_or(0.0);
    eprintln!(
        "backend={} entries={entries} batch={} xadd_s={xadd_secs:.3} drain_s={drain_secs:.3} latency_entries={latency_entries} peak_rss_mib={:.1}",
        store.backend_name(),
        redis_config.batch,
        peak_rss_mib()
    );
    if json {
        println!(
            "{}",
            serde_json::json!({"backend": store.backend_name(), "entries": entries,
                "entries_per_sec": entries_per_sec, "p50_ms": p50, "p99_ms": p99, "max_ms": max,
                "peak_rss_mib": peak_rss_mib()})
        );
    }
    println!(
        "entries_per_sec={entries_per_sec:.0} p50_ms={p50:.2} p99_ms={p99:.2} max_ms={max:.2}"
    );
    Ok(())
}
