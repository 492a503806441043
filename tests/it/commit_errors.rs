//! An error raised at the commit of an autocommit `… RETURNING` statement reaches the caller
//! (issue 14's audit, RELIABILITY.md "Errors after the first row"). The statement's row comes
//! back before its implicit commit; a caller that stops reading at the first row can be
//! answered with the id of a row that was rolled back (SQLite on a full disk did exactly
//! that). Here the commit is made to fail on purpose: a trigger on the written table inserts
//! a row that breaks a *deferred* foreign key, which both backends check only at commit. The
//! store's enqueue (one and many), the maintenance lease and `hangar tokens create` must each
//! fail with that error and leave no row. A control shows the trap is real: read only up to
//! the first row, the same statement answers a row that does not exist.

use std::time::Duration;

use futures_util::StreamExt;
use hangar_workers::db::Pool;
use hangar_workers::job::NewJob;

use crate::support::{Backend, TestDb};

/// Makes every insert into `tables` fail at its commit (not before), on either backend.
async fn fail_at_commit(db: &TestDb, backend: Backend, tables: &[&str]) {
    let parent = "CREATE TABLE hangar_test_parent (id INTEGER PRIMARY KEY); \
         CREATE TABLE hangar_test_child (parent_id INTEGER \
             REFERENCES hangar_test_parent (id) DEFERRABLE INITIALLY DEFERRED);";
    let mut script = parent.to_owned();
    match backend {
        Backend::Postgres => {
            script.push_str(
                "CREATE FUNCTION hangar_test_orphan() RETURNS trigger LANGUAGE plpgsql AS \
                 $$ BEGIN INSERT INTO hangar_test_child VALUES (-1); RETURN NULL; END $$;",
            );
            for table in tables {
                script.push_str(&format!(
                    "CREATE TRIGGER hangar_test_orphan AFTER INSERT ON {table} \
                     FOR EACH ROW EXECUTE FUNCTION hangar_test_orphan();"
                ));
            }
        }
        Backend::Sqlite => {
            for table in tables {
                script.push_str(&format!(
                    "CREATE TRIGGER hangar_test_orphan_{table} AFTER INSERT ON {table} \
                     BEGIN INSERT INTO hangar_test_child VALUES (-1); END;"
                ));
            }
        }
    }
    db.sql(&script).await;
}

/// The foreign-key error each backend reports at commit.
fn is_fk_error(message: &str) -> bool {
    message.contains("FOREIGN KEY constraint failed") // SQLite
        || message.contains("violates foreign key constraint") // PostgreSQL
}

async fn count(db: &TestDb, table: &str) -> i64 {
    db.query_i64(&format!("SELECT count(*) FROM {table}")).await
}

async fn commit_errors_reach_the_caller(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    fail_at_commit(
        &db,
        backend,
        &[
            "hangar_jobs",
            "hangar_maintenance_leases",
            "hangar_api_tokens",
        ],
    )
    .await;

    // The control: read to the first row only, the statement answers an id whose row its
    // failed commit took away. This is what the store must never do.
    let database = db.database().await;
    let answered: Option<i64> = match database.pool() {
        Pool::Postgres(pg) => {
            let mut rows = sqlx::query_scalar(
                "INSERT INTO hangar_jobs (kind, queue, args, state, max_attempts, run_at) \
                 VALUES ('noop', 'default', '{}', 'available', 1, now()) RETURNING id",
            )
            .fetch(pg);
            rows.next().await.transpose().expect("the first row")
        }
        Pool::Sqlite(lite) => sqlx::query_scalar(
            "INSERT INTO hangar_jobs (kind, queue, args, state, max_attempts, run_at, \
                 created_at, updated_at) \
             VALUES ('noop', 'default', '{}', 'available', 1, 0, 0, 0) RETURNING id",
        )
        .fetch_optional(lite)
        .await
        .expect("the first row"),
    };
    database.close().await;
    assert!(
        answered.is_some(),
        "the control's statement answered no row"
    );
    assert_eq!(
        count(&db, "hangar_jobs").await,
        0,
        "the control's row was kept"
    );

    // The store: every autocommit RETURNING statement reports the commit's error.
    let error = store
        .enqueue(&NewJob::new("noop", serde_json::json!({})))
        .await
        .expect_err("enqueue answered Ok for a rolled-back row");
    assert!(is_fk_error(&error.to_string()), "{error}");
    let mut keyed = NewJob::new("noop", serde_json::json!({}));
    keyed.idempotency_key = Some("audit-1".to_owned());
    let error = store
        .enqueue(&keyed)
        .await
        .expect_err("a keyed enqueue answered Ok for a rolled-back row");
    assert!(is_fk_error(&error.to_string()), "{error}");
    let many: Vec<NewJob> = (0..3)
        .map(|_| NewJob::new("noop", serde_json::json!({})))
        .collect();
    let error = store
        .enqueue_many(&many)
        .await
        .expect_err("enqueue_many answered Ok for rolled-back rows");
    assert!(is_fk_error(&error.to_string()), "{error}");
    assert_eq!(count(&db, "hangar_jobs").await, 0);

    let error = store
        .take_maintenance_lease("audit", "me", Duration::from_secs(30))
        .await
        .expect_err("a lease taken whose row was rolled back");
    assert!(is_fk_error(&error.to_string()), "{error}");
    assert_eq!(count(&db, "hangar_maintenance_leases").await, 0);

    // A token printed whose row is gone would be a credential that never works.
    let output = db.run(&["tokens", "create", "--role", "owner"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "token created: {stdout}");
    assert!(is_fk_error(&stderr), "a clear error: {stderr}");
    assert!(!stdout.contains("hgr_"), "a token was printed: {stdout}");
    assert_eq!(count(&db, "hangar_api_tokens").await, 0);
}

#[tokio::test]
async fn commit_errors_reach_the_caller_postgres() {
    commit_errors_reach_the_caller(Backend::Postgres).await;
}

#[tokio::test]
async fn commit_errors_reach_the_caller_sqlite() {
    commit_errors_reach_the_caller(Backend::Sqlite).await;
}
