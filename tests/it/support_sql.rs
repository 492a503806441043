//! Test support: raw SQL on a test's database behind the store's back (triggers, fault
//! injection, inspection, a caller's own transaction), through a connection pool of the
//! test's own, never the store's.

use hangar_workers::db::{Database, Pool};

use crate::support::TestDb;

impl TestDb {
    /// A connection pool of the test's own on this database, for what a test does behind
    /// the store's back (triggers, fault injection, inspection, a caller's own
    /// transaction): match on its `pool()` for the backend's dialect.
    pub async fn database(&self) -> Database {
        Database::connect(&self.url).await.expect("connect")
    }

    /// Runs an SQL script (one or more statements, no parameters) on this database.
    pub async fn sql(&self, sql: &str) {
        let database = self.database().await;
        let script = sqlx::AssertSqlSafe(sql.to_owned());
        match database.pool() {
            Pool::Postgres(pg) => sqlx::raw_sql(script).execute(pg).await.map(drop),
            Pool::Sqlite(lite) => sqlx::raw_sql(script).execute(lite).await.map(drop),
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
        database.close().await;
    }

    /// The integer in the first column of the first row of `sql` (no parameters).
    pub async fn query_i64(&self, sql: &str) -> i64 {
        let database = self.database().await;
        let query = sqlx::AssertSqlSafe(sql.to_owned());
        let value = match database.pool() {
            Pool::Postgres(pg) => sqlx::query_scalar(query).fetch_one(pg).await,
            Pool::Sqlite(lite) => sqlx::query_scalar(query).fetch_one(lite).await,
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
        database.close().await;
        value
    }
}
