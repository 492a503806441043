//! `hangar_sync_changes`: every applied inbound change in order, what goes to
//! `{prefix}:changes` after commit (rows not yet published are found again after a crash)
//! and what `GET …/sync-runs/{id}/changes` returns. Both dialects side by side.

use chrono::{DateTime, Utc};
use hangar_workers::db::Pool;
use sqlx::Row;
use sqlx::types::Json;

use super::sync_store::{SyncStore, SyncStoreError, json_text, ms, to_time};

/// One applied change.
#[derive(Clone, Debug, PartialEq)]
pub struct ChangeRow {
    /// Its position in the table (the order of application).
    pub id: i64,
    pub sync_run_id: String,
    pub workspace_id: String,
    pub provider: String,
    pub object_type: String,
    pub external_id: String,
    pub internal_id: Option<String>,
    /// `created`, `updated`, `appended` or `conflict`.
    pub action: String,
    pub record: serde_json::Value,
    pub changed_at: DateTime<Utc>,
}

impl ChangeRow {
    /// The JSON of CONTRACT.md ("Changes handed to the main app").
    pub fn contract_json(&self) -> serde_json::Value {
        serde_json::json!({
            "sync_run_id": self.sync_run_id,
            "workspace_id": self.workspace_id,
            "provider": self.provider,
            "object_type": self.object_type,
            "external_id": self.external_id,
            "internal_id": self.internal_id,
            "action": self.action,
            "record": self.record,
            "changed_at": self.changed_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        })
    }
}

/// The contract's JSON of a change, borrowed (fields in the order `serde_json` writes a map:
/// the text is the same as [`ChangeRow::contract_json`]'s).
#[derive(serde::Serialize)]
struct ContractChange<'a> {
    action: &'a str,
    changed_at: String,
    external_id: &'a str,
    internal_id: Option<&'a str>,
    object_type: &'a str,
    provider: &'a str,
    record: &'a serde_json::Value,
    sync_run_id: &'a str,
    workspace_id: &'a str,
}

impl ChangeRow {
    /// [`ChangeRow::contract_json`] as text, without copying the record (what goes to the
    /// stream: one per change, up to 1 000 a page).
    pub fn contract_text(&self) -> String {
        let change = ContractChange {
            action: &self.action,
            changed_at: self
                .changed_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            external_id: &self.external_id,
            internal_id: self.internal_id.as_deref(),
            object_type: &self.object_type,
            provider: &self.provider,
            record: &self.record,
            sync_run_id: &self.sync_run_id,
            workspace_id: &self.workspace_id,
        };
        serde_json::to_string(&change).unwrap_or_else(|_| self.contract_json().to_string())
    }
}

const COLUMNS: &str = "id, run_id, workspace_id, provider, object_type, external_id, internal_id, \
     action, record, changed_at";

impl SyncStore {
    /// The changes of run `run_id` after position `after`, in order, at most `limit`.
    pub async fn changes(
        &self,
        run_id: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<ChangeRow>, SyncStoreError> {
        match self.db.pool() {
            Pool::Postgres(pool) => {
                let sql = format!(
                    "SELECT {COLUMNS} FROM hangar_sync_changes WHERE run_id = $1 AND id > $2 \
                     ORDER BY id LIMIT $3"
                );
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(run_id)
                    .bind(after)
                    .bind(limit)
                    .fetch_all(pool)
                    .await?;
                rows.iter().map(pg_row).collect()
            }
            Pool::Sqlite(pool) => {
                let sql = format!(
                    "SELECT {COLUMNS} FROM hangar_sync_changes WHERE run_id = ?1 AND id > ?2 \
                     ORDER BY id LIMIT ?3"
                );
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(run_id)
                    .bind(after)
                    .bind(limit)
                    .fetch_all(pool)
                    .await?;
                rows.iter().map(sqlite_row).collect()
            }
        }
    }

    /// Changes not yet on the Redis stream (a publisher that crashed after commit), oldest
    /// first.
    pub async fn unpublished_changes(&self, limit: i64) -> Result<Vec<ChangeRow>, SyncStoreError> {
        match self.db.pool() {
            Pool::Postgres(pool) => {
                let sql = format!(
                    "SELECT {COLUMNS} FROM hangar_sync_changes WHERE published_at IS NULL ORDER BY id LIMIT $1"
                );
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(limit)
                    .fetch_all(pool)
                    .await?;
                rows.iter().map(pg_row).collect()
            }
            Pool::Sqlite(pool) => {
                let sql = format!(
                    "SELECT {COLUMNS} FROM hangar_sync_changes WHERE published_at IS NULL ORDER BY id LIMIT ?1"
                );
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(limit)
                    .fetch_all(pool)
                    .await?;
                rows.iter().map(sqlite_row).collect()
            }
        }
    }

    /// Marks changes as written to the Redis stream.
    pub async fn mark_published(&self, ids: &[i64]) -> Result<(), SyncStoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let now = Utc::now();
        match self.db.pool() {
            Pool::Postgres(pool) => {
                sqlx::query("UPDATE hangar_sync_changes SET published_at = $2 WHERE id = ANY($1)")
                    .bind(ids)
                    .bind(now)
                    .execute(pool)
                    .await?;
            }
            Pool::Sqlite(pool) => {
                sqlx::query(
                    "UPDATE hangar_sync_changes SET published_at = ?2 \
                     WHERE id IN (SELECT value FROM json_each(?1))",
                )
                .bind(serde_json::Value::from(ids.to_vec()).to_string())
                .bind(ms(now))
                .execute(pool)
                .await?;
            }
        }
        Ok(())
    }
}

impl SyncStore {
    /// Deletes at most `batch` changes applied by runs that started before `before` (oldest
    /// first), published or not; returns how many. The runs themselves stay (the audit).
    pub async fn prune_changes(
        &self,
        before: DateTime<Utc>,
        batch: i64,
    ) -> Result<u64, SyncStoreError> {
        let deleted = match self.db.pool() {
            Pool::Postgres(pool) => sqlx::query(
                "DELETE FROM hangar_sync_changes WHERE id IN (SELECT c.id FROM hangar_sync_changes c \
                 JOIN hangar_sync_runs r ON r.id = c.run_id WHERE r.started_at < $1 \
                 ORDER BY c.id LIMIT $2)",
            )
            .bind(before)
            .bind(batch)
            .execute(pool)
            .await?
            .rows_affected(),
            Pool::Sqlite(pool) => sqlx::query(
                "DELETE FROM hangar_sync_changes WHERE id IN (SELECT c.id FROM hangar_sync_changes c \
                 JOIN hangar_sync_runs r ON r.id = c.run_id WHERE r.started_at < ?1 \
                 ORDER BY c.id LIMIT ?2)",
            )
            .bind(ms(before))
            .bind(batch)
            .execute(pool)
            .await?
            .rows_affected(),
        };
        Ok(deleted)
    }
}

fn pg_row(row: &sqlx::postgres::PgRow) -> Result<ChangeRow, SyncStoreError> {
    let record: Json<serde_json::Value> = row.try_get("record")?;
    Ok(ChangeRow {
        id: row.try_get("id")?,
        sync_run_id: row.try_get("run_id")?,
        workspace_id: row.try_get("workspace_id")?,
        provider: row.try_get("provider")?,
        object_type: row.try_get("object_type")?,
        external_id: row.try_get("external_id")?,
        internal_id: row.try_get("internal_id")?,
        action: row.try_get("action")?,
        record: record.0,
        changed_at: row.try_get("changed_at")?,
    })
}

fn sqlite_row(row: &sqlx::sqlite::SqliteRow) -> Result<ChangeRow, SyncStoreError> {
    Ok(ChangeRow {
        id: row.try_get("id")?,
        sync_run_id: row.try_get("run_id")?,
        workspace_id: row.try_get("workspace_id")?,
        provider: row.try_get("provider")?,
        object_type: row.try_get("object_type")?,
        external_id: row.try_get("external_id")?,
        internal_id: row.try_get("internal_id")?,
        action: row.try_get("action")?,
        record: json_text(&row.try_get::<String, _>("record")?)?,
        changed_at: to_time(row.try_get("changed_at")?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_contract_text_is_the_contract_json() {
        let mut change = ChangeRow {
            id: 7,
            sync_run_id: "run_1".into(),
            workspace_id: "ws_1".into(),
            provider: "quickbooks".into(),
            object_type: "Payment".into(),
            external_id: "42".into(),
            internal_id: None,
            action: "created".into(),
            record: serde_json::json!({"Id": "42", "b": [1, 2.5, null], "a": {"z": "é\"", "y": true}}),
            changed_at: DateTime::from_timestamp(1_790_000_000, 123_000_000).unwrap(),
        };
        assert_eq!(change.contract_text(), change.contract_json().to_string());
        change.internal_id = Some("pay_9".into());
        assert_eq!(change.contract_text(), change.contract_json().to_string());
    }
}
