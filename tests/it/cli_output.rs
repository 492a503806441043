//! What the operator commands print: `jobs list` in columns sized to their content, several
//! states and a queue as filters, a completed job's old error labelled as an earlier
//! attempt's; `migrate` naming what it applied (and nothing of sqlx's notices); an unreachable
//! database reported at once, by its redacted URL and the first connection error.

use std::time::{Duration, Instant};

use hangar_workers::job::{JobId, JobState, NewJob};
use hangar_workers::store::Store;
use serde_json::json;

use crate::support::{
    ANY_PORT, Backend, Receiver, TestDb, enqueue_http, fast_pools, stdout_ok, wait_final,
};

/// A job of `queue` that nothing runs (scheduled a day ahead).
async fn parked(store: &Store, queue: &str) -> JobId {
    let mut job = NewJob::new("noop", json!({}));
    job.queue = queue.to_owned();
    job.run_at = Some(chrono::Utc::now() + chrono::Duration::days(1));
    store.enqueue(&job).await.expect("enqueue").id
}

/// The ids listed by `jobs list ARGS` (first column).
fn listed(db: &TestDb, args: &[&str]) -> Vec<i64> {
    let mut all = vec!["jobs", "list"];
    all.extend_from_slice(args);
    let out = stdout_ok(&db.run(&all));
    let mut ids: Vec<i64> = out
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    ids.sort_unstable();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_list_lines_up_filters_by_states_and_queue_and_labels_old_errors() {
    let db = TestDb::new(Backend::Sqlite).await;
    let store = db.store().await;
    db.pools(&fast_pools("", ""));
    let receiver = Receiver::start().await;
    let _worker = db.spawn("worker", &["worker", "--bind", ANY_PORT]);
    // A 500 first, then 200: completed, with the first attempt's error still on the job.
    let flaky = enqueue_http(&store, &receiver.url("/flaky/cli/1/500"), json!({})).await;
    let done = wait_final(&store, flaky, Duration::from_secs(30)).await;
    assert_eq!(done.state, JobState::Completed);
    assert!(
        done.last_error.is_some(),
        "the earlier error is kept: {done:?}"
    );
    let scheduled = parked(&store, "reconciliation").await;
    let cancelled = parked(&store, "reconciliation").await;
    store
        .cancel_job(cancelled, &crate::support::test_actor())
        .await
        .expect("cancel");
    let other = parked(&store, "default").await;

    let out = stdout_ok(&db.run(&["jobs", "list"]));
    let mut lines = out.lines();
    let header = lines.next().expect("a header");
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 4, "{out}");
    let column = |name: &str| {
        header
            .find(name)
            .unwrap_or_else(|| panic!("{name}: {header}"))
    };
    for row in &rows {
        let id: i64 = row.split_whitespace().next().unwrap().parse().unwrap();
        let job = store.job(JobId(id)).await.expect("job");
        for (name, value) in [
            ("STATE", job.state.as_str()),
            ("KIND", job.kind.as_str()),
            ("QUEUE", job.queue.as_str()),
        ] {
            assert!(
                row[column(name)..].starts_with(value),
                "{name} of job {id} does not start under its header:\n{out}"
            );
        }
        assert!(
            row[column("RUN AT")..].starts_with(&job.run_at.format("%Y-%m-%d").to_string()),
            "{out}"
        );
        let error = &row[column("LAST ERROR").min(row.len())..];
        if id == flaky.0 {
            assert!(error.starts_with("earlier attempt: "), "{out}");
        } else {
            assert!(!error.contains("earlier attempt"), "{out}");
        }
    }

    let both = vec![scheduled.0, cancelled.0, other.0];
    let mut both_sorted = both.clone();
    both_sorted.sort_unstable();
    assert_eq!(
        listed(&db, &["--state", "scheduled,cancelled"]),
        both_sorted
    );
    assert_eq!(
        listed(&db, &["--state", "scheduled", "--state", "cancelled"]),
        both_sorted
    );
    assert_eq!(
        listed(&db, &["--state", "scheduled", "--queue", "reconciliation"]),
        vec![scheduled.0]
    );
    let out = db.run(&["jobs", "list", "--state", "failed,sleeping"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown job state 'sleeping'"));
}

async fn migrate_says_what_it_applied(backend: Backend) {
    let db = TestDb::new(backend).await;
    let first = db.run(&["migrate"]);
    let text = stdout_ok(&first);
    assert!(
        text.starts_with("applied 0001_jobs, 0002_events"),
        "the first run names each migration: {text}"
    );
    let second = db.run(&["migrate"]);
    let text = stdout_ok(&second);
    assert!(text.starts_with("up to date"), "{text}");
    for output in [&first, &second] {
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            !all.contains("_sqlx_migrations") && !all.contains("skipping"),
            "no notice of the driver: {all}"
        );
    }
}

#[tokio::test]
async fn migrate_says_what_it_applied_on_postgres() {
    migrate_says_what_it_applied(Backend::Postgres).await;
}

#[tokio::test]
async fn migrate_says_what_it_applied_on_sqlite() {
    migrate_says_what_it_applied(Backend::Sqlite).await;
}

#[tokio::test]
async fn an_unreachable_database_is_reported_at_once_without_its_password() {
    let db = TestDb::new(Backend::Sqlite).await;
    let started = Instant::now();
    let output = db
        .command(&["jobs", "list"])
        .env(
            "HANGAR_DATABASE_URL",
            "postgres://postgres:s3cret-pw@127.0.0.1:1/nothing",
        )
        .output()
        .unwrap();
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(took < Duration::from_secs(4), "took {took:?}: {stderr}");
    assert!(
        stderr.contains(
            "cannot connect to postgres://postgres:***@127.0.0.1:1/nothing: connection refused"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("s3cret-pw"), "the password was printed");
}
