//! Clock skew of ±5 minutes (issue 14): `hangar worker` processes whose wall clock is shifted
//! by an `LD_PRELOAD` shim (compiled here with the system's C compiler: it adds
//! `HANGAR_TEST_CLOCK_SKEW_S` seconds to `CLOCK_REALTIME`; the monotonic clock is left
//! alone). No early rescue: a job held by a killed worker is taken over only once its lease
//! ran out, and not minutes late either. No early retry: a `429` with `Retry-After: 2` is
//! called again after two seconds of real time, not before.
//!
//! On PostgreSQL the two workers are skewed in opposite directions (+5 and −5 min), and the
//! test enqueues with the true clock: every time comparison is the database's `now()`. On
//! SQLite there is no database clock: every process on the machine shares one, so the whole
//! machine is skewed (the enqueue, through `hangar enqueue`, too) against the real time the
//! receiver measures.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use hangar_workers::job::{JobId, JobState};
use hangar_workers::store::Store;

use crate::support::{
    ANY_PORT, Backend, Proc, Receiver, TestDb, enqueue_http, fast_pools, stdout_ok, wait_final,
    wait_for,
};

const SHIM: &str = r#"
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>
static long skew(void) { const char *s = getenv("HANGAR_TEST_CLOCK_SKEW_S"); return s ? atol(s) : 0; }
int clock_gettime(clockid_t id, struct timespec *ts) {
    static int (*real)(clockid_t, struct timespec *);
    if (!real) real = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime");
    int r = real(id, ts);
    if (r == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE)) ts->tv_sec += skew();
    return r;
}
int gettimeofday(struct timeval *tv, void *tz) {
    struct timespec ts; int r = clock_gettime(CLOCK_REALTIME, &ts);
    if (tv) { tv->tv_sec = ts.tv_sec; tv->tv_usec = ts.tv_nsec / 1000; }
    return r;
}
time_t time(time_t *t) {
    struct timespec ts; clock_gettime(CLOCK_REALTIME, &ts);
    if (t) *t = ts.tv_sec;
    return ts.tv_sec;
}
"#;

/// Builds the shim into `dir`; returns the library's path.
fn build_shim(dir: &Path) -> PathBuf {
    let source = dir.join("skew.c");
    let library = dir.join("libskew.so");
    std::fs::write(&source, SHIM).expect("write the shim");
    let status = Command::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(&library)
        .arg(&source)
        .arg("-ldl")
        .status()
        .expect("a C compiler (cc) for the clock shim");
    assert!(status.success(), "cc failed on the clock shim");
    library
}

/// A `hangar ARGS…` command of `db` whose wall clock is `skew` seconds off.
fn skewed(db: &TestDb, shim: &Path, skew: i64, args: &[&str]) -> Command {
    let mut command = db.command(args);
    command
        .env("LD_PRELOAD", shim)
        .env("HANGAR_TEST_CLOCK_SKEW_S", skew.to_string());
    command
}

/// Enqueues an `http` job: on PostgreSQL with the test's (true) clock, on SQLite through
/// `hangar enqueue` under the machine's skew.
async fn enqueue(db: &TestDb, store: &Store, shim: &Path, skew: i64, url: &str) -> JobId {
    if db.url.starts_with("postgres") {
        return enqueue_http(store, url, serde_json::json!({"timeout_ms": 60000})).await;
    }
    let args = serde_json::json!({"url": url, "method": "POST", "timeout_ms": 60000});
    let output = skewed(
        db,
        shim,
        skew,
        &["enqueue", "http", "--args", &args.to_string()],
    )
    .output()
    .expect("hangar enqueue");
    let id = stdout_ok(&output).trim().parse().expect("a job id");
    // The shim works: the row carries the skewed clock's time.
    let job = store.job(JobId(id)).await.expect("the job");
    let off = (job.created_at - chrono::Utc::now()).num_seconds();
    assert!((off - skew).abs() < 30, "created {off} s off, skew {skew}");
    JobId(id)
}

/// Worker A (clock `skew_a`) takes a job that hangs at the provider and is killed; worker B
/// (clock `skew_b`) takes it over once the lease ran out; a rate-limited job waits its whole
/// `Retry-After` under B.
async fn skew_case(backend: Backend, skew_a: i64, skew_b: i64) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let shim = build_shim(db.dir.path());
    let receiver = Receiver::start().await;
    db.pools(&fast_pools("", ""));
    let spawn = |name: &str, skew: i64| -> Proc {
        db.spawn_command(
            name,
            skewed(&db, &shim, skew, &["worker", "--bind", ANY_PORT]),
        )
    };

    let mut a = spawn("worker-a", skew_a);
    let held = enqueue(
        &db,
        &store,
        &shim,
        skew_a,
        &receiver.url("/script/held/hang"),
    )
    .await;
    wait_for(
        "A to call the provider",
        Duration::from_secs(20),
        || async { (!receiver.hits_on("/script/held").is_empty()).then_some(()) },
    )
    .await;
    a.kill9();
    let mut b = spawn("worker-b", skew_b);
    let job = wait_final(&store, held, Duration::from_secs(30)).await;
    assert_eq!(job.state, JobState::Completed, "{job:?}");
    assert_eq!(job.attempts.len(), 2, "{job:?}");
    let lost = job.attempts[0].error.clone().unwrap_or_default();
    assert!(lost.contains("lease expired"), "{job:?}");
    // Both starts are on one clock (the database's, or the machine's on SQLite).
    let gap = (job.attempts[1].started_at - job.attempts[0].started_at)
        .to_std()
        .expect("the rescue comes after the claim");
    assert!(
        gap >= Duration::from_secs(2),
        "rescued {gap:?} after the claim: before the 2 s lease ran out"
    );
    let hits = receiver.hits_on("/script/held");
    assert_eq!(hits.len(), 2, "one call per run");
    let real = hits[1].at - hits[0].at;
    assert!(
        real >= Duration::from_millis(1900) && real < Duration::from_secs(20),
        "taken over after {real:?} of real time (lease 2 s)"
    );

    let limited = enqueue(
        &db,
        &store,
        &shim,
        skew_b,
        &receiver.url("/ratelimited/skew/1/2"),
    )
    .await;
    let job = wait_final(&store, limited, Duration::from_secs(30)).await;
    assert_eq!(job.state, JobState::Completed, "{job:?}");
    let hits = receiver.hits_on("/ratelimited/skew/");
    assert_eq!(hits.len(), 2, "{job:?}");
    let real = hits[1].at - hits[0].at;
    assert!(
        real >= Duration::from_millis(1990) && real < Duration::from_secs(10),
        "called again after {real:?} of real time (Retry-After: 2)"
    );
    b.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clock_skew_postgres_ahead_then_behind() {
    skew_case(Backend::Postgres, 300, -300).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clock_skew_postgres_behind_then_ahead() {
    skew_case(Backend::Postgres, -300, 300).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clock_skew_sqlite_machine_ahead() {
    skew_case(Backend::Sqlite, 300, 300).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clock_skew_sqlite_machine_behind() {
    skew_case(Backend::Sqlite, -300, -300).await;
}
