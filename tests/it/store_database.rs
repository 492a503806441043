//! The store's handle as other code sees it: its `Debug` names the backend and never the
//! URL (which may carry a password), and `Store::database()` is the same database, for
//! another crate's own tables.

use hangar_workers::db::Pool;
use hangar_workers::job::NewJob;
use hangar_workers::store::Store;
use serde_json::json;

use crate::support::{Backend, TestDb};

async fn debug_and_database(backend: Backend) {
    let db = TestDb::new(backend).await;
    // PostgreSQL trusts local connections, so a password in the URL is accepted and unused.
    let url = db.url.replacen("postgres@", "postgres:hunter2@", 1);
    if matches!(backend, Backend::Postgres) {
        assert!(
            url.contains("hunter2"),
            "no password in {url}: the test proves nothing"
        );
    }
    let store = Store::connect(&url, 4).await.expect("connect");
    store.migrate().await.expect("migrate");

    let shown = format!("{store:?}");
    assert!(shown.contains(store.backend_name()), "{shown}");
    assert!(!shown.contains("hunter2"), "the password leaks: {shown}");
    assert!(!shown.contains(&db.url), "the URL leaks: {shown}");

    // Another crate's own table on the store's database, through `database()`.
    let database = store.database();
    assert_eq!(database.backend_name(), store.backend_name());
    let create = "CREATE TABLE other_crate_rows (name TEXT NOT NULL)";
    let insert = "INSERT INTO other_crate_rows (name) VALUES ('kept')";
    let count = "SELECT count(*) FROM other_crate_rows";
    let rows: i64 = match database.pool() {
        Pool::Postgres(pool) => {
            sqlx::query(create).execute(pool).await.expect("create");
            sqlx::query(insert).execute(pool).await.expect("insert");
            sqlx::query_scalar(count)
                .fetch_one(pool)
                .await
                .expect("count")
        }
        Pool::Sqlite(pool) => {
            sqlx::query(create).execute(pool).await.expect("create");
            sqlx::query(insert).execute(pool).await.expect("insert");
            sqlx::query_scalar(count)
                .fetch_one(pool)
                .await
                .expect("count")
        }
    };
    assert_eq!(rows, 1);
    assert_eq!(
        db.query_i64(count).await,
        1,
        "the same database as the test's"
    );

    // The job tables stay the store's: a job enqueued through it is there for both.
    store
        .enqueue(&NewJob::new("noop", json!({})))
        .await
        .expect("enqueue");
    assert_eq!(db.query_i64("SELECT count(*) FROM hangar_jobs").await, 1);
    store.close().await;
}

#[tokio::test]
async fn the_store_shows_its_backend_not_its_url_and_lends_its_database_on_postgres() {
    debug_and_database(Backend::Postgres).await;
}

#[tokio::test]
async fn the_store_shows_its_backend_not_its_url_and_lends_its_database_on_sqlite() {
    debug_and_database(Backend::Sqlite).await;
}
