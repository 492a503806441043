//! Issue 15's operator actions on both backends: bulk retry and bulk cancel by ids and by
//! filter over jobs in mixed states (counts, skips by state, completed jobs never retried),
//! the dry run, workspace scoping and roles in the API; the recorded action (who, from where,
//! which batch) on `GET /api/v1/jobs/{id}`, the job page and `jobs show`; run again of a
//! completed job and the 409 its retry answers; the CLI through the binary; and a bulk retry
//! across several chunks. The dashboard's flow is in `jobs_bulk_dashboard.rs`.

use std::time::{Duration, Instant};

use hangar_workers::db::Pool;
use hangar_workers::job::{JobFilter, JobId, JobState, NewJob};
use hangar_workers::job_action::{BulkTarget, JobAction};
use hangar_workers::store::{BULK_CHUNK, Store};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::dashboard::Dash;
use crate::support::{Backend, TestDb, stdout_ok, test_actor};

/// A queue no pool serves: jobs put back to `available` stay there for the test to see.
pub(crate) const QUEUE: &str = "bulk_parked";

/// A job of `kind` in `workspace` on [`QUEUE`], put in `state` (a finished one with its one
/// attempt started and finished a minute ago, as the pool leaves it).
pub(crate) async fn job_in(store: &Store, kind: &str, workspace: &str, state: JobState) -> JobId {
    let mut job = NewJob::new(kind, json!({}));
    job.queue = QUEUE.to_owned();
    job.workspace_id = Some(workspace.to_owned());
    job.run_at = Some(chrono::Utc::now() + chrono::Duration::days(1));
    let id = store.enqueue(&job).await.expect("enqueue").id;
    set_state(store, &[id.0], state).await;
    id
}

/// Puts jobs in `state` as the engine would have left them (test setup only).
async fn set_state(store: &Store, ids: &[i64], state: JobState) {
    let attempted = !matches!(state, JobState::Scheduled | JobState::Available);
    let finished = state.is_final();
    let now = chrono::Utc::now();
    let started = now - chrono::Duration::minutes(1);
    match store.database().pool() {
        Pool::Postgres(pool) => {
            sqlx::query(
                "UPDATE hangar_jobs SET state = $1, attempt = CASE WHEN $3 THEN 1 ELSE 0 END, \
                     attempted_at = CASE WHEN $3 THEN $4 END, \
                     finalized_at = CASE WHEN $5 THEN $6 END, \
                     last_error = CASE WHEN $1 = 'failed' THEN 'HTTP 400' END \
                 WHERE id = ANY($2)",
            )
            .bind(state.as_str())
            .bind(ids)
            .bind(attempted)
            .bind(started)
            .bind(finished)
            .bind(now)
            .execute(pool)
            .await
            .expect("set state");
        }
        Pool::Sqlite(pool) => {
            sqlx::query(
                "UPDATE hangar_jobs SET state = ?1, attempt = CASE WHEN ?3 THEN 1 ELSE 0 END, \
                     attempted_at = CASE WHEN ?3 THEN ?4 END, \
                     finalized_at = CASE WHEN ?5 THEN ?6 END, \
                     last_error = CASE WHEN ?1 = 'failed' THEN 'HTTP 400' END \
                 WHERE id IN (SELECT value FROM json_each(?2))",
            )
            .bind(state.as_str())
            .bind(json!(ids).to_string())
            .bind(attempted)
            .bind(started.timestamp_millis())
            .bind(finished)
            .bind(now.timestamp_millis())
            .execute(pool)
            .await
            .expect("set state");
        }
    }
}

/// `POST path` with `token` and a JSON body: status and body.
async fn post(dash: &Dash, token: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut request = dash
        .http
        .post(format!("{}{path}", dash.base))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("response");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// `GET /api/v1/jobs/{id}` with `token`.
async fn get_job(dash: &Dash, token: &str, id: JobId) -> Value {
    let response = dash
        .http
        .get(format!("{}/api/v1/jobs/{id}", dash.base))
        .bearer_auth(token)
        .send()
        .await
        .expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.expect("json")
}

pub(crate) async fn states(store: &Store, ids: &[JobId]) -> Vec<JobState> {
    let mut out = Vec::new();
    for id in ids {
        out.push(store.job(*id).await.expect("job").state);
    }
    out
}

async fn api_bulk_actions(backend: Backend) {
    let dash = Dash::start_on(backend, false).await;
    let store = dash.db.store().await;
    let operator = dash.token(&[
        "--role",
        "operator",
        "--name",
        "ops-ws1",
        "--workspace",
        "ws_1",
    ]);
    let viewer = dash.token(&["--role", "viewer"]);

    let failed = [
        job_in(&store, "http", "ws_1", JobState::Failed).await,
        job_in(&store, "http", "ws_1", JobState::Failed).await,
        job_in(&store, "http", "ws_1", JobState::Failed).await,
    ];
    let cancelled = job_in(&store, "http", "ws_1", JobState::Cancelled).await;
    let completed = [
        job_in(&store, "http", "ws_1", JobState::Completed).await,
        job_in(&store, "http", "ws_1", JobState::Completed).await,
    ];
    let running = job_in(&store, "http", "ws_1", JobState::Running).await;
    let scheduled = job_in(&store, "http", "ws_1", JobState::Scheduled).await;
    let other_kind = job_in(&store, "noop", "ws_1", JobState::Failed).await;
    let other_ws = job_in(&store, "http", "ws_2", JobState::Failed).await;

    // A viewer may not; neither ids nor filter, both, an empty filter, a bad state, another
    // workspace's filter: refused with the field named, nothing changed.
    let (status, body) = post(
        &dash,
        &viewer,
        "/api/v1/jobs/retry",
        Some(json!({"ids": [failed[0].0]})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    for (body, expected, what) in [
        (
            json!({}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "exactly one of",
        ),
        (
            json!({"ids": [1], "filter": {"kind": "http"}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "exactly one of",
        ),
        (
            json!({"filter": {}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "\"all\": true",
        ),
        (
            json!({"filter": {"state": ["done"]}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "filter.state",
        ),
        (
            json!({"filter": {"since": "yesterday"}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "filter.since",
        ),
        (
            json!({"filter": {"kind": "http"}, "dryrun": true}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "dryrun",
        ),
        (
            json!({"filter": {"workspace_id": "ws_2"}}),
            StatusCode::FORBIDDEN,
            "ws_2",
        ),
    ] {
        let (status, answer) =
            post(&dash, &operator, "/api/v1/jobs/retry", Some(body.clone())).await;
        assert_eq!(status, expected, "{body}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap_or("");
        assert!(message.contains(what), "{body}: {answer}");
    }
    assert_eq!(store.job(failed[0]).await.unwrap().state, JobState::Failed);

    // The dry run counts and changes nothing.
    let filter = json!({"filter": {"kind": "http"}, "dry_run": true});
    let (status, dry) = post(&dash, &operator, "/api/v1/jobs/retry", Some(filter)).await;
    assert_eq!(status, StatusCode::OK, "{dry}");
    assert_eq!(
        dry,
        json!({"matched": 8, "changed": 4, "dry_run": true,
            "skipped": {"completed": 2, "running": 1, "scheduled": 1}})
    );
    assert_eq!(store.job(failed[0]).await.unwrap().state, JobState::Failed);

    // The retry: the failed and cancelled http jobs of ws_1 only; completed ones are never
    // retried; ws_2's failed job and the noop are untouched.
    let (status, done) = post(
        &dash,
        &operator,
        "/api/v1/jobs/retry",
        Some(json!({"filter": {"kind": "http", "state": ["failed", "cancelled", "completed"]}})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(
        (done["matched"].as_u64(), done["changed"].as_u64()),
        (Some(6), Some(4)),
        "{done}"
    );
    assert_eq!(done["skipped"], json!({"completed": 2}), "{done}");
    let batch = done["batch_id"].as_str().expect("a batch id").to_owned();
    let mut retried = failed.to_vec();
    retried.push(cancelled);
    assert!(
        states(&store, &retried)
            .await
            .iter()
            .all(|s| *s == JobState::Available)
    );
    assert_eq!(states(&store, &completed).await, [JobState::Completed; 2]);
    assert_eq!(store.job(other_ws).await.unwrap().state, JobState::Failed);
    assert_eq!(store.job(other_kind).await.unwrap().state, JobState::Failed);

    // Each changed job records who, from where, which batch; the fresh budget shows.
    let job = get_job(&dash, &operator, failed[1]).await;
    assert_eq!(job["actions"].as_array().map(Vec::len), Some(1), "{job}");
    let action = &job["actions"][0];
    assert_eq!(
        (
            &action["action"],
            &action["actor"],
            &action["source"],
            &action["batch_id"]
        ),
        (
            &json!("retry"),
            &json!("ops-ws1"),
            &json!("api"),
            &json!(batch)
        ),
        "{job}"
    );
    assert!(
        action["at"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{job}"
    );
    assert_eq!(
        get_job(&dash, &operator, completed[0]).await["actions"],
        json!([])
    );

    // Cancel by ids: the unfinished ones change; a finished one, an unknown id and another
    // workspace's job are skipped (the last as not found: a workspace token never sees it).
    let ids = json!([
        scheduled.0,
        running.0,
        completed[0].0,
        99_999_999,
        other_ws.0
    ]);
    let (status, cancel) = post(
        &dash,
        &operator,
        "/api/v1/jobs/cancel",
        Some(json!({"ids": ids})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{cancel}");
    assert_eq!(
        (cancel["matched"].as_u64(), cancel["changed"].as_u64()),
        (Some(3), Some(2)),
        "{cancel}"
    );
    assert_eq!(cancel["skipped"], json!({"completed": 1, "not_found": 2}));
    assert_eq!(
        states(&store, &[scheduled, running, other_ws]).await,
        [JobState::Cancelled, JobState::Cancelled, JobState::Failed]
    );
    // The running job's interrupted attempt is kept, as a single cancel keeps it.
    let job = store.job(running).await.unwrap();
    assert_eq!(job.attempts.len(), 1, "{job:?}");
    assert_eq!(
        job.attempts[0].error.as_deref(),
        Some(hangar_workers::store::CANCELLED)
    );
    assert_eq!(
        get_job(&dash, &operator, running).await["actions"][0]["action"],
        "cancel"
    );
}

#[tokio::test]
async fn bulk_retry_and_cancel_by_ids_and_filter_through_the_api_on_postgres() {
    api_bulk_actions(Backend::Postgres).await;
}

#[tokio::test]
async fn bulk_retry_and_cancel_by_ids_and_filter_through_the_api_on_sqlite() {
    api_bulk_actions(Backend::Sqlite).await;
}

async fn run_again_and_single_actions(backend: Backend) {
    let dash = Dash::start_on(backend, false).await;
    let store = dash.db.store().await;
    let operator = dash.token(&["--role", "operator", "--name", "night-shift"]);
    let completed = job_in(&store, "noop", "ws_1", JobState::Completed).await;
    let failed = job_in(&store, "noop", "ws_1", JobState::Failed).await;
    let scheduled = job_in(&store, "noop", "ws_1", JobState::Scheduled).await;

    // Retry of a completed job: 409, naming the run-again route; nothing changed.
    let (status, body) = post(
        &dash,
        &operator,
        &format!("/api/v1/jobs/{completed}/retry"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or("");
    assert!(
        message.contains(&format!("/api/v1/jobs/{completed}/run-again")),
        "{body}"
    );
    assert_eq!(
        store.job(completed).await.unwrap().state,
        JobState::Completed
    );

    // Run again: queued once more, its successful attempt kept, a fresh budget.
    let (status, job) = post(
        &dash,
        &operator,
        &format!("/api/v1/jobs/{completed}/run-again"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{job}");
    assert_eq!(job["state"], "available", "{job}");
    let detail = get_job(&dash, &operator, completed).await;
    assert_eq!(
        detail["attempts"].as_array().map(Vec::len),
        Some(1),
        "{detail}"
    );
    assert_eq!(detail["attempts"][0]["error"], Value::Null, "{detail}");
    assert_eq!(detail["actions"][0]["action"], "run_again", "{detail}");
    assert_eq!(detail["actions"][0]["actor"], "night-shift", "{detail}");
    assert_eq!(detail["actions"][0]["batch_id"], Value::Null, "{detail}");
    // Only a completed job runs again.
    let (status, body) = post(
        &dash,
        &operator,
        &format!("/api/v1/jobs/{failed}/run-again"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    // A waiting job's retry is "run now" (CONTRACT.md's route keeps doing it); a failed
    // one's is "retry"; a cancel is recorded too.
    let (status, job) = post(
        &dash,
        &operator,
        &format!("/api/v1/jobs/{scheduled}/retry"),
        None,
    )
    .await;
    assert_eq!(
        (status, &job["state"]),
        (StatusCode::OK, &json!("available")),
        "{job}"
    );
    let (status, _) = post(
        &dash,
        &operator,
        &format!("/api/v1/jobs/{failed}/retry"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = post(
        &dash,
        &operator,
        &format!("/api/v1/jobs/{failed}/cancel"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        get_job(&dash, &operator, scheduled).await["actions"][0]["action"],
        "run_now"
    );
    let actions: Vec<Value> = get_job(&dash, &operator, failed).await["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].clone())
        .collect();
    assert_eq!(actions, [json!("retry"), json!("cancel")]);
}

#[tokio::test]
async fn run_again_requeues_a_completed_job_and_retry_refuses_it_on_postgres() {
    run_again_and_single_actions(Backend::Postgres).await;
}

#[tokio::test]
async fn run_again_requeues_a_completed_job_and_retry_refuses_it_on_sqlite() {
    run_again_and_single_actions(Backend::Sqlite).await;
}

async fn cli_actions(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let a = job_in(&store, "http", "ws_1", JobState::Failed).await;
    let b = job_in(&store, "http", "ws_1", JobState::Failed).await;
    let c = job_in(&store, "noop", "ws_1", JobState::Failed).await;
    let done = job_in(&store, "http", "ws_1", JobState::Completed).await;
    let run = |args: &[&str]| db.command(args).env("USER", "ana").output().expect("runs");

    // No ids and no filter: refused without --all.
    let refused = run(&["jobs", "retry"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--all"));
    // A dry run over every job with --all counts and changes nothing.
    let dry: Value = serde_json::from_str(&stdout_ok(&run(&[
        "jobs",
        "retry",
        "--all",
        "--dry-run",
        "--json",
    ])))
    .expect("json");
    assert_eq!(
        (dry["matched"].as_u64(), dry["changed"].as_u64()),
        (Some(4), Some(3)),
        "{dry}"
    );
    assert_eq!(store.job(a).await.unwrap().state, JobState::Failed);

    // By filter (not a terminal: no question asked).
    let out = stdout_ok(&run(&[
        "jobs", "retry", "--state", "failed", "--kind", "http", "--queue", QUEUE,
    ]));
    assert!(out.contains("retried 2 of 2 matching"), "{out}");
    assert_eq!(
        states(&store, &[a, b, c]).await,
        [JobState::Available, JobState::Available, JobState::Failed]
    );
    // By ids, JSON: a completed job is skipped, not retried.
    let ids = [c.0.to_string(), done.0.to_string()];
    let outcome: Value = serde_json::from_str(&stdout_ok(&run(&[
        "jobs", "retry", &ids[0], &ids[1], "--json",
    ])))
    .expect("json");
    assert_eq!(outcome["changed"], 1, "{outcome}");
    assert_eq!(outcome["skipped"], json!({"completed": 1}), "{outcome}");
    // One completed job: the error names run-again; run-again does it.
    let refused = run(&["jobs", "retry", &ids[1]]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains(&format!("hangar jobs run-again {done}")),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let job: Value =
        serde_json::from_str(&stdout_ok(&run(&["jobs", "run-again", &ids[1], "--json"])))
            .expect("json");
    assert_eq!(job["state"], "available");
    // Cancel by ids, then `show` tells who did what.
    let out = stdout_ok(&run(&[
        "jobs",
        "cancel",
        &a.0.to_string(),
        &b.0.to_string(),
    ]));
    assert!(out.contains("cancelled 2 of 2 matching"), "{out}");
    let shown: Value = serde_json::from_str(&stdout_ok(&run(&[
        "jobs",
        "show",
        &a.0.to_string(),
        "--json",
    ])))
    .expect("json");
    let actions: Vec<(&str, &str, &str)> = shown["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .map(|x| {
            (
                x["action"].as_str().unwrap(),
                x["actor"].as_str().unwrap(),
                x["source"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(actions, [("retry", "ana", "cli"), ("cancel", "ana", "cli")]);
    let text = stdout_ok(&run(&["jobs", "show", &a.0.to_string()]));
    assert!(text.contains("Cancelled by ana (cli)"), "{text}");
}

#[tokio::test]
async fn cli_retries_and_cancels_by_ids_and_filters_and_runs_again_on_postgres() {
    cli_actions(Backend::Postgres).await;
}

#[tokio::test]
async fn cli_retries_and_cancels_by_ids_and_filters_and_runs_again_on_sqlite() {
    cli_actions(Backend::Sqlite).await;
}

async fn many_chunks(backend: Backend, n: usize) -> Duration {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let jobs: Vec<NewJob> = (0..n)
        .map(|i| {
            let mut job = NewJob::new(if i % 10 == 0 { "noop" } else { "http" }, json!({}));
            job.queue = QUEUE.to_owned();
            job
        })
        .collect();
    for batch in jobs.chunks(5_000) {
        store.enqueue_many(batch).await.expect("enqueue");
    }
    let ids: Vec<i64> = match store.database().pool() {
        Pool::Postgres(pool) => {
            sqlx::query_scalar("SELECT id FROM hangar_jobs")
                .fetch_all(pool)
                .await
        }
        Pool::Sqlite(pool) => {
            sqlx::query_scalar("SELECT id FROM hangar_jobs")
                .fetch_all(pool)
                .await
        }
    }
    .expect("ids");
    set_state(&store, &ids, JobState::Failed).await;
    let filter = JobFilter {
        states: vec![JobState::Failed],
        kind: Some("http".to_owned()),
        ..JobFilter::default()
    };
    let started = Instant::now();
    let outcome = store
        .bulk_action(
            JobAction::Retry,
            &BulkTarget::Filter(filter.clone()),
            None,
            &test_actor(),
            false,
        )
        .await
        .expect("bulk retry");
    let took = started.elapsed();
    let http = n - n.div_ceil(10);
    assert_eq!(
        (outcome.matched, outcome.changed),
        (http as u64, http as u64)
    );
    assert!(outcome.skipped.is_empty(), "{outcome:?}");
    // Every one once: none left failed, one action each, all of one batch.
    let left = store.job_counts_by_state(&filter).await.expect("counts");
    assert!(left.is_empty(), "{left:?}");
    let (actions, batches): (i64, i64) = match store.database().pool() {
        Pool::Postgres(pool) => {
            sqlx::query_as("SELECT count(*), count(DISTINCT batch_id) FROM hangar_job_actions")
                .fetch_one(pool)
                .await
        }
        Pool::Sqlite(pool) => {
            sqlx::query_as("SELECT count(*), count(DISTINCT batch_id) FROM hangar_job_actions")
                .fetch_one(pool)
                .await
        }
    }
    .expect("actions");
    assert_eq!((actions, batches), (http as i64, 1));
    took
}

#[tokio::test]
async fn a_bulk_retry_across_several_chunks_changes_each_job_once_on_postgres() {
    many_chunks(Backend::Postgres, 2 * BULK_CHUNK + 500).await;
}

#[tokio::test]
async fn a_bulk_retry_across_several_chunks_changes_each_job_once_on_sqlite() {
    many_chunks(Backend::Sqlite, 2 * BULK_CHUNK + 500).await;
}

/// The figure of the README: a bulk retry of 10⁵ failed jobs (`--run-ignored only`).
#[tokio::test]
#[ignore = "a measurement: 10^5 jobs per backend"]
async fn a_bulk_retry_of_100k_jobs() {
    for backend in [Backend::Postgres, Backend::Sqlite] {
        let took = many_chunks(backend, 100_000).await;
        eprintln!("bulk retry of 90000 of 100000 jobs on {backend:?}: {took:?}");
    }
}
