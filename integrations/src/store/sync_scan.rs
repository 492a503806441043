//! The end of a complete full reconciliation, in one transaction: the mapped records of the
//! scanned object types that the scan did not see are the removals — refused whole when
//! more than the allowed share would vanish (the run stops and alerts instead), otherwise
//! removed as [`super::sync_removals`] says (financial ones held as conflicts for review,
//! safety ones appended, the others marked removed) — and the position moves on to the
//! changes feed. Both dialects side by side.

use chrono::Utc;
use hangar_workers::db::Pool;
use sqlx::Row;

use super::sync_changes::ChangeRow;
use super::sync_pages::PageTarget;
use super::sync_removals::{Gone, remove};
use super::sync_runs::Counts;
use super::sync_store::{SyncStore, SyncStoreError, begin_immediate, json_text};
use super::sync_tx::Tx;
use crate::sync::{Position, RecordClass};

/// What the end of a scan did.
#[derive(Debug)]
pub enum ScanEnd {
    /// Removals applied (counts and changes), position moved on.
    Done {
        counts: Counts,
        changes: Vec<ChangeRow>,
    },
    /// More than the allowed share would vanish: nothing changed.
    TooManyRemovals { vanished: i64, total: i64 },
}

impl SyncStore {
    /// Ends scan `scan_id` of `object_types` (classes by `class`): removals, unless more than
    /// `max_share` (0.2: 20 %) of the mapped records would vanish; then `next`.
    pub async fn finish_scan(
        &self,
        target: &PageTarget,
        scan_id: &str,
        object_types: &[&str],
        class: &(dyn Fn(&str) -> RecordClass + Send + Sync),
        max_share: f64,
        next: &Position,
    ) -> Result<ScanEnd, SyncStoreError> {
        let types = serde_json::to_string(object_types).unwrap_or_default();
        let mut tx = match self.db.pool() {
            Pool::Postgres(pool) => Tx::Pg(pool.begin().await?),
            Pool::Sqlite(pool) => Tx::Lite(begin_immediate(pool).await?),
        };
        tx.lock_cursor(&target.integration_id, &target.data_type)
            .await?;
        let (total, vanished) = match &mut tx {
            Tx::Pg(tx) => {
                let total: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM hangar_sync_mappings WHERE integration_id = $1 \
                     AND object_type IN (SELECT jsonb_array_elements_text($2::jsonb)) AND removed_at IS NULL",
                )
                .bind(&target.integration_id)
                .bind(&types)
                .fetch_one(&mut **tx)
                .await?;
                let rows = sqlx::query(
                    "SELECT object_type, external_id, internal_id, payload::text AS payload FROM hangar_sync_mappings \
                     WHERE integration_id = $1 AND object_type IN (SELECT jsonb_array_elements_text($2::jsonb)) \
                     AND removed_at IS NULL AND seen_scan IS DISTINCT FROM $3 ORDER BY object_type, external_id",
                )
                .bind(&target.integration_id)
                .bind(&types)
                .bind(scan_id)
                .fetch_all(&mut **tx)
                .await?;
                (total, vanished_rows(rows.iter())?)
            }
            Tx::Lite(tx) => {
                let total: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM hangar_sync_mappings WHERE integration_id = ?1 \
                     AND object_type IN (SELECT value FROM json_each(?2)) AND removed_at IS NULL",
                )
                .bind(&target.integration_id)
                .bind(&types)
                .fetch_one(&mut **tx)
                .await?;
                let rows = sqlx::query(
                    "SELECT object_type, external_id, internal_id, payload FROM hangar_sync_mappings \
                     WHERE integration_id = ?1 AND object_type IN (SELECT value FROM json_each(?2)) \
                     AND removed_at IS NULL AND seen_scan IS NOT ?3 ORDER BY object_type, external_id",
                )
                .bind(&target.integration_id)
                .bind(&types)
                .bind(scan_id)
                .fetch_all(&mut **tx)
                .await?;
                (total, vanished_rows(rows.iter())?)
            }
        };
        let count = vanished.len() as i64;
        if count > 0 && (count as f64) > max_share * (total as f64) {
            return Ok(ScanEnd::TooManyRemovals {
                vanished: count,
                total,
            });
        }
        let now = Utc::now();
        let mut counts = Counts::default();
        let mut changes = Vec::new();
        for gone in vanished {
            let class = class(&gone.object_type);
            remove(&mut tx, target, gone, class, now, &mut counts, &mut changes).await?;
        }
        tx.add_counts(&target.run_id, &counts).await?;
        tx.save_position(&target.integration_id, &target.data_type, next, now)
            .await?;
        tx.commit().await?;
        Ok(ScanEnd::Done { counts, changes })
    }
}

fn vanished_rows<'r, R: Row + 'r>(
    rows: impl Iterator<Item = &'r R>,
) -> Result<Vec<Gone>, SyncStoreError>
where
    for<'c> &'c str: sqlx::ColumnIndex<R>,
    String: for<'d> sqlx::Decode<'d, R::Database> + sqlx::Type<R::Database>,
    Option<String>: for<'d> sqlx::Decode<'d, R::Database> + sqlx::Type<R::Database>,
{
    rows.map(|r| {
        Ok(Gone {
            object_type: r.try_get("object_type")?,
            external_id: r.try_get("external_id")?,
            internal_id: r.try_get("internal_id")?,
            payload: json_text(&r.try_get::<String, _>("payload")?)?,
        })
    })
    .collect()
}
