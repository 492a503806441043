//! `hangar bench faults`: jobs drained by several `hangar worker` processes while one of them
//! is killed with SIGKILL every few seconds (issue 14, RELIABILITY.md). Each job is an `http`
//! job that calls a recorder in this process, so every run of every job is counted outside
//! the database: a job *lost* is one that never completed or completed without a recorded
//! run; a job that *ran twice* (or more) must carry a `lease expired` attempt, the rescuer's
//! record of the worker that died holding it. Jobs can be enqueued all at once or at a rate
//! throughout (`--enqueue-rate`), retried through database outages with the same idempotency
//! key, so the script can also restart the database under enqueue and drain load.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use hangar_workers::job::{JobState, NewJob};
use hangar_workers::store::Store;

use crate::config::Config;
use crate::exit::Fatal;

const QUEUE: &str = "hangar-faults";
const WORKSPACE: &str = "bench-faults";

/// What `hangar bench faults` does.
pub struct FaultsRun {
    /// How many jobs.
    pub jobs: usize,
    /// How many worker processes.
    pub workers: usize,
    /// SIGKILL one worker this often (round robin), 0: never.
    pub kill_every_ms: u64,
    /// Jobs enqueued per second throughout; 0: all before the workers start.
    pub enqueue_rate: f64,
    /// How long each run takes at the recorder.
    pub work_ms: u64,
    /// Where the workers' logs go (kept for the script).
    pub log_dir: PathBuf,
    /// Give up after this long.
    pub timeout: Duration,
}

struct Recorder {
    runs: Vec<AtomicU32>,
    work: Duration,
}

async fn record(State(recorder): State<Arc<Recorder>>, Path(seq): Path<usize>) -> &'static str {
    if let Some(count) = recorder.runs.get(seq) {
        count.fetch_add(1, Ordering::Relaxed);
    }
    tokio::time::sleep(recorder.work).await;
    "ok"
}

fn pool_file(dir: &std::path::Path) -> Result<PathBuf, Fatal> {
    let workers_dir = dir.join("pools");
    std::fs::create_dir_all(&workers_dir)
        .and_then(|_| {
            std::fs::write(
                workers_dir.join("faults.toml"),
                format!(
                    "[[pool]]\nname = \"faults\"\nqueue = \"{QUEUE}\"\nkinds = [\"http\"]\n\
                     concurrency = 50\nlease_ms = 2000\ntimeout_ms = 10000\nmax_attempts = 25\n\
                     poll_interval_ms = 500\n[pool.retry.internal]\nmax_retries = 20\n\
                     base_delay_ms = 100\nmax_delay_ms = 1000\n\
                     [pool.retry.timeout]\nmax_retries = 20\nbase_delay_ms = 100\nmax_delay_ms = 1000\n"
                ),
            )
        })
        .map_err(|e| Fatal::runtime(format!("bench: cannot write the pool file: {e}")))?;
    Ok(workers_dir)
}

fn spawn_worker(
    config: &Config,
    workers_dir: &std::path::Path,
    log: PathBuf,
) -> Result<Child, Fatal> {
    let exe = std::env::current_exe().map_err(|e| Fatal::runtime(format!("bench: {e}")))?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .map_err(|e| Fatal::runtime(format!("bench: {}: {e}", log.display())))?;
    Command::new(exe)
        .args(["worker", "--pool", "faults", "--bind", "127.0.0.1:0"])
        .arg("--workers-dir")
        .arg(workers_dir)
        .env("HANGAR_DATABASE_URL", &config.database_url)
        .env("HANGAR_ALLOW_PRIVATE_TARGETS", "1")
        .env_remove("HANGAR_REDIS_URL")
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .map_err(|e| Fatal::runtime(format!("bench: cannot start a worker: {e}")))
}

fn job(url: &str, seq: usize, run: &str) -> NewJob {
    let mut job = NewJob::new(
        "http",
        serde_json::json!({"url": format!("{url}/run/{seq}"), "timeout_ms": 5000}),
    );
    job.queue = QUEUE.to_owned();
    job.max_attempts = 25;
    job.workspace_id = Some(WORKSPACE.to_owned());
    job.idempotency_key = Some(format!("faults-{run}-{seq}"));
    job
}

/// Enqueues `jobs` in batches at `rate` per second (0: as fast as it can), retrying a batch
/// through database errors (the idempotency keys make a retry of a batch that did commit a
/// no-op). Returns how many batches had to be retried.
async fn enqueue_all(store: Store, url: String, run: String, jobs: usize, rate: f64) -> u64 {
    let batch = if rate > 0.0 {
        (rate / 10.0).clamp(1.0, 5_000.0) as usize
    } else {
        5_000
    };
    let started = tokio::time::Instant::now();
    let mut retries = 0;
    let mut seq = 0;
    while seq < jobs {
        let end = (seq + batch).min(jobs);
        let batch_jobs: Vec<NewJob> = (seq..end).map(|s| job(&url, s, &run)).collect();
        if rate > 0.0 {
            tokio::time::sleep_until(started + Duration::from_secs_f64(seq as f64 / rate)).await;
        }
        while store.enqueue_many(&batch_jobs).await.is_err() {
            retries += 1;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        seq = end;
    }
    retries
}

/// `hangar bench faults`.
pub async fn faults(config: &Config, run: FaultsRun) -> Result<(), Fatal> {
    if run.jobs == 0 || run.workers == 0 {
        return Err(Fatal::config("--jobs and --workers must be at least 1"));
    }
    let store = crate::connect(config).await?;
    crate::store::migrate(store.database()).await?;
    store.delete_queue(QUEUE).await?;
    std::fs::create_dir_all(&run.log_dir)
        .map_err(|e| Fatal::runtime(format!("bench: {}: {e}", run.log_dir.display())))?;
    let workers_dir = pool_file(&run.log_dir)?;

    let recorder = Arc::new(Recorder {
        runs: (0..run.jobs).map(|_| AtomicU32::new(0)).collect(),
        work: Duration::from_millis(run.work_ms),
    });
    let app = axum::Router::new()
        .route("/run/{seq}", axum::routing::post(record))
        .with_state(recorder.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| Fatal::runtime(format!("bench: recorder: {e}")))?;
    let url = format!(
        "http://{}",
        listener
            .local_addr()
            .map_err(|e| Fatal::runtime(e.to_string()))?
    );
    tokio::spawn(async move { axum::serve(listener, app).await });

    let tag = chrono::Utc::now().timestamp_millis().to_string();
    let enqueuer = {
        let (store, url, tag) = (store.clone(), url.clone(), tag.clone());
        let (jobs, rate) = (run.jobs, run.enqueue_rate);
        tokio::spawn(enqueue_all(store, url, tag, jobs, rate))
    };
    if run.enqueue_rate <= 0.0 {
        // All jobs first, as in `bench throughput`.
        while !enqueuer.is_finished() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let started = Instant::now();
    let log = |i: usize| run.log_dir.join(format!("worker-{i}.log"));
    let mut children = (0..run.workers)
        .map(|i| spawn_worker(config, &workers_dir, log(i)))
        .collect::<Result<Vec<Child>, Fatal>>()?;
    let mut kills = 0u64;
    let mut next_kill = Instant::now() + Duration::from_millis(run.kill_every_ms);
    let mut enqueue_retries = None;
    let mut enqueuer = Some(enqueuer);
    let outcome = loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if run.kill_every_ms > 0 && Instant::now() >= next_kill {
            let i = (kills as usize) % children.len();
            let _ = children[i].kill();
            let _ = children[i].wait();
            kills += 1;
            children[i] = spawn_worker(config, &workers_dir, log(i))?;
            next_kill = Instant::now() + Duration::from_millis(run.kill_every_ms);
        }
        if enqueuer.as_ref().is_some_and(|e| e.is_finished()) {
            enqueue_retries = Some(enqueuer.take().expect("checked").await.unwrap_or(0));
        }
        // A database error (an outage) just means: look again next time.
        if enqueue_retries.is_some()
            && let Ok(0) = store
                .count_in_queue(QUEUE, JobState::Completed, false)
                .await
        {
            break Ok(());
        }
        if started.elapsed() > run.timeout {
            break Err(Fatal::runtime(
                "bench: the jobs did not all complete in time",
            ));
        }
    };
    let drain_secs = started.elapsed().as_secs_f64();
    for child in &mut children {
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let _ = child.wait();
    }
    outcome?;
    let completed = store
        .count_in_queue(QUEUE, JobState::Completed, true)
        .await? as usize;

    let counts: Vec<u32> = recorder
        .runs
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .collect();
    let never_ran = counts.iter().filter(|&&n| n == 0).count();
    let mut histogram: HashMap<u32, usize> = HashMap::new();
    counts
        .iter()
        .for_each(|&n| *histogram.entry(n).or_default() += 1);
    let (mut twice, mut explained) = (0, 0);
    let mut unexplained: Vec<String> = Vec::new();
    for (seq, _) in counts.iter().enumerate().filter(|(_, n)| **n >= 2) {
        twice += 1;
        // The same idempotency key answers with the existing job.
        let id = store.enqueue(&job(&url, seq, &tag)).await?.id;
        let job = store.job(id).await?;
        let lease_expired = job.attempts.iter().any(|a| {
            a.error
                .as_deref()
                .is_some_and(|e| e.contains("lease expired"))
        });
        explained += usize::from(lease_expired);
        if !lease_expired && unexplained.len() < 5 {
            // What the other runs' attempts say, for the report to attribute them.
            let errors: Vec<String> = job
                .attempts
                .iter()
                .map(|a| format!("{}: {}", a.attempt, a.error.as_deref().unwrap_or("ok")))
                .collect();
            unexplained.push(format!("job {} ({})", job.id.0, errors.join("; ")));
        }
    }
    if !unexplained.is_empty() {
        eprintln!(
            "ran twice without a lease expiry: {}",
            unexplained.join(" | ")
        );
    }
    let lost = (run.jobs - completed.min(run.jobs)) + never_ran;
    store.delete_queue(QUEUE).await?;
    let mut runs: Vec<_> = histogram.into_iter().collect();
    runs.sort_unstable();
    eprintln!(
        "{} jobs over {} workers, a SIGKILL every {} ms ({kills} kills), drained in {drain_secs:.1} s; \
         runs per job: {}",
        run.jobs,
        run.workers,
        run.kill_every_ms,
        runs.iter()
            .map(|(n, c)| format!("{n}x{c}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "jobs={} completed={completed} lost={lost} ran_twice={twice} twice_after_lease_expired={explained} \
         kills={kills} enqueue_retries={} drain_s={drain_secs:.1} jobs_per_sec={:.0}",
        run.jobs,
        enqueue_retries.unwrap_or(0),
        run.jobs as f64 / drain_secs
    );
    Ok(())
}
