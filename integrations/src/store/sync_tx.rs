//! The statements of a page's transaction ([`Tx`]), both dialects side by side: lock the
//! cursor row, read a record's mapping and open conflict, write mappings, changes and
//! conflicts, add the run's counters, save the position.

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{Postgres, Row, Sqlite, Transaction};

use super::sync_changes::ChangeRow;
use super::sync_pages::{Mapping, PageTarget, conflict_id, held_of};
use super::sync_runs::Counts;
use super::sync_store::{SyncStoreError, json_text, ms, to_time};
use crate::sync::rules::{ConflictReason, Held};
use crate::sync::{InboundRecord, Position};

/// A page's transaction on either backend.
pub(super) enum Tx {
    Pg(Transaction<'static, Postgres>),
    Lite(Transaction<'static, Sqlite>),
}

const HELD_PG: &str = "SELECT m.applied_hash, m.last_synced_at, m.ours_modified_at, m.internal_id, \
     COALESCE(m.ours, m.payload) AS ours, \
     (SELECT c.theirs_hash FROM hangar_sync_conflicts c WHERE c.integration_id = m.integration_id \
       AND c.object_type = m.object_type AND c.external_id = m.external_id AND c.resolved_at IS NULL) AS open_hash \
     FROM hangar_sync_mappings m \
     WHERE m.integration_id = $1 AND m.object_type = $2 AND m.external_id = $3 FOR UPDATE OF m";

const HELD_LITE: &str = "SELECT m.applied_hash, m.last_synced_at, m.ours_modified_at, m.internal_id, \
     COALESCE(m.ours, m.payload) AS ours, \
     (SELECT c.theirs_hash FROM hangar_sync_conflicts c WHERE c.integration_id = m.integration_id \
       AND c.object_type = m.object_type AND c.external_id = m.external_id AND c.resolved_at IS NULL) AS open_hash \
     FROM hangar_sync_mappings m \
     WHERE m.integration_id = ?1 AND m.object_type = ?2 AND m.external_id = ?3";

impl Tx {
    pub(super) async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Pg(tx) => tx.commit().await,
            Tx::Lite(tx) => tx.commit().await,
        }
    }

    /// Locks (creating it if needed) the position row: one page of a stream at a time.
    pub(super) async fn lock_cursor(
        &mut self,
        integration_id: &str,
        data_type: &str,
    ) -> Result<(), sqlx::Error> {
        match self {
            Tx::Pg(tx) => {
                sqlx::query(
                    "INSERT INTO hangar_sync_cursors (integration_id, data_type, updated_at) \
                     VALUES ($1, $2, now()) ON CONFLICT DO NOTHING",
                )
                .bind(integration_id)
                .bind(data_type)
                .execute(&mut **tx)
                .await?;
                sqlx::query(
                    "SELECT 1 FROM hangar_sync_cursors WHERE integration_id = $1 AND data_type = $2 FOR UPDATE",
                )
                .bind(integration_id)
                .bind(data_type)
                .execute(&mut **tx)
                .await?;
            }
            Tx::Lite(tx) => {
                sqlx::query(
                    "INSERT INTO hangar_sync_cursors (integration_id, data_type, updated_at) \
                     VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                )
                .bind(integration_id)
                .bind(data_type)
                .bind(ms(Utc::now()))
                .execute(&mut **tx)
                .await?;
            }
        }
        Ok(())
    }

    /// What Hangar holds for `record`, its row locked.
    pub(super) async fn held(
        &mut self,
        integration_id: &str,
        record: &InboundRecord,
    ) -> Result<Option<(Held, Mapping)>, SyncStoreError> {
        match self {
            Tx::Pg(tx) => {
                let row = sqlx::query(HELD_PG)
                    .bind(integration_id)
                    .bind(&record.object_type)
                    .bind(&record.external_id)
                    .fetch_optional(&mut **tx)
                    .await?;
                let Some(row) = row else { return Ok(None) };
                let ours: Json<serde_json::Value> = row.try_get("ours")?;
                Ok(Some((
                    held_of(
                        row.try_get("applied_hash")?,
                        row.try_get("last_synced_at")?,
                        row.try_get("ours_modified_at")?,
                        row.try_get("open_hash")?,
                    ),
                    Mapping {
                        internal_id: row.try_get("internal_id")?,
                        ours: ours.0,
                    },
                )))
            }
            Tx::Lite(tx) => {
                let row = sqlx::query(HELD_LITE)
                    .bind(integration_id)
                    .bind(&record.object_type)
                    .bind(&record.external_id)
                    .fetch_optional(&mut **tx)
                    .await?;
                let Some(row) = row else { return Ok(None) };
                let ours: String = row.try_get("ours")?;
                Ok(Some((
                    held_of(
                        row.try_get("applied_hash")?,
                        to_time(row.try_get("last_synced_at")?),
                        row.try_get::<Option<i64>, _>("ours_modified_at")?
                            .map(to_time),
                        row.try_get("open_hash")?,
                    ),
                    Mapping {
                        internal_id: row.try_get("internal_id")?,
                        ours: json_text(&ours)?,
                    },
                )))
            }
        }
    }

    pub(super) async fn insert_mapping(
        &mut self,
        integration_id: &str,
        record: &InboundRecord,
        hash: &str,
        now: DateTime<Utc>,
    ) -> Result<(), sqlx::Error> {
        match self {
            Tx::Pg(tx) => sqlx::query(
                "INSERT INTO hangar_sync_mappings (integration_id, object_type, external_id, \
                 applied_hash, payload, provider_modified_at, concurrency_token, last_synced_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(integration_id)
            .bind(&record.object_type)
            .bind(&record.external_id)
            .bind(hash)
            .bind(Json(&record.payload))
            .bind(record.modified_at)
            .bind(&record.concurrency_token)
            .bind(now)
            .execute(&mut **tx)
            .await
            .map(drop),
            Tx::Lite(tx) => sqlx::query(
                "INSERT INTO hangar_sync_mappings (integration_id, object_type, external_id, \
                 applied_hash, payload, provider_modified_at, concurrency_token, last_synced_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .bind(integration_id)
            .bind(&record.object_type)
            .bind(&record.external_id)
            .bind(hash)
            .bind(record.payload.to_string())
            .bind(ms(record.modified_at))
            .bind(&record.concurrency_token)
            .bind(ms(now))
            .execute(&mut **tx)
            .await
            .map(drop),
        }
    }

    /// Replaces the applied payload (the provider's change is applied).
    pub(super) async fn update_mapping(
        &mut self,
        integration_id: &str,
        record: &InboundRecord,
        hash: &str,
        now: DateTime<Utc>,
    ) -> Result<(), sqlx::Error> {
        match self {
            Tx::Pg(tx) => sqlx::query(
                "UPDATE hangar_sync_mappings SET applied_hash = $4, payload = $5, \
                 provider_modified_at = $6, concurrency_token = $7, last_synced_at = $8, \
                 ours = NULL, ours_modified_at = NULL \
                 WHERE integration_id = $1 AND object_type = $2 AND external_id = $3",
            )
            .bind(integration_id)
            .bind(&record.object_type)
            .bind(&record.external_id)
            .bind(hash)
            .bind(Json(&record.payload))
            .bind(record.modified_at)
            .bind(&record.concurrency_token)
            .bind(now)
            .execute(&mut **tx)
            .await
            .map(drop),
            Tx::Lite(tx) => sqlx::query(
                "UPDATE hangar_sync_mappings SET applied_hash = ?4, payload = ?5, \
                 provider_modified_at = ?6, concurrency_token = ?7, last_synced_at = ?8, \
                 ours = NULL, ours_modified_at = NULL \
                 WHERE integration_id = ?1 AND object_type = ?2 AND external_id = ?3",
            )
            .bind(integration_id)
            .bind(&record.object_type)
            .bind(&record.external_id)
            .bind(hash)
            .bind(record.payload.to_string())
            .bind(ms(record.modified_at))
            .bind(&record.concurrency_token)
            .bind(ms(now))
            .execute(&mut **tx)
            .await
            .map(drop),
        }
    }

    /// A safety record changed externally: the held payload stays; only the hash of what
    /// was seen moves, so the same external version is appended once.
    pub(super) async fn mark_seen_hash(
        &mut self,
        integration_id: &str,
        record: &InboundRecord,
        hash: &str,
        now: DateTime<Utc>,
    ) -> Result<(), sqlx::Error> {
        match self {
            Tx::Pg(tx) => sqlx::query(
                "UPDATE hangar_sync_mappings SET applied_hash = $4, last_synced_at = $5 \
                 WHERE integration_id = $1 AND object_type = $2 AND external_id = $3",
            )
            .bind(integration_id)
            .bind(&record.object_type)
            .bind(&record.external_id)
            .bind(hash)
            .bind(now)
            .execute(&mut **tx)
            .await
            .map(drop),
            Tx::Lite(tx) => sqlx::query(
                "UPDATE hangar_sync_mappings SET applied_hash = ?4, last_synced_at = ?5 \
                 WHERE integration_id = ?1 AND object_type = ?2 AND external_id = ?3",
            )
            .bind(integration_id)
            .bind(&record.object_type)
            .bind(&record.external_id)
            .bind(hash)
            .bind(ms(now))
            .execute(&mut **tx)
            .await
            .map(drop),
        }
    }

    /// The record vanished from a complete scan.
    pub(super) async fn mark_removed(
        &mut self,
        integration_id: &str,
        record: &InboundRecord,
        now: DateTime<Utc>,
    ) -> Result<(), sqlx::Error> {
        match self {
            Tx::Pg(tx) => sqlx::query(
                "UPDATE hangar_sync_mappings SET removed_at = $4 \
                 WHERE integration_id = $1 AND object_type = $2 AND external_id = $3",
            )
            .bind(integration_id)
            .bind(&record.object_type)
            .bind(&record.external_id)
            .bind(now)
            .execute(&mut **tx)
            .await
            .map(drop),
            Tx::Lite(tx) => sqlx::query(
                "UPDATE hangar_sync_mappings SET removed_at = ?4 \
                 WHERE integration_id = ?1 AND object_type = ?2 AND external_id = ?3",
            )
            .bind(integration_id)
            .bind(&record.object_type)
            .bind(&record.external_id)
            .bind(ms(now))
            .execute(&mut **tx)
            .await
            .map(drop),
        }
    }

    pub(super) async fn mark_seen_scan(
        &mut self,
        integration_id: &str,
        record: &InboundRecord,
        scan: &str,
    ) -> Result<(), sqlx::Error> {
        let sql = "UPDATE hangar_sync_mappings SET seen_scan = $4 \
                   WHERE integration_id = $1 AND object_type = $2 AND external_id = $3";
        match self {
            Tx::Pg(tx) => sqlx::query(sql)
                .bind(integration_id)
                .bind(&record.object_type)
                .bind(&record.external_id)
                .bind(scan)
                .execute(&mut **tx)
                .await
                .map(drop),
            Tx::Lite(tx) => sqlx::query(
                "UPDATE hangar_sync_mappings SET seen_scan = ?4 \
                 WHERE integration_id = ?1 AND object_type = ?2 AND external_id = ?3",
            )
            .bind(integration_id)
            .bind(&record.object_type)
            .bind(&record.external_id)
            .bind(scan)
            .execute(&mut **tx)
            .await
            .map(drop),
        }
    }

    /// Opens a conflict for the record, or puts the newer "theirs" into the open one.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn upsert_conflict(
        &mut self,
        target: &PageTarget,
        record: &InboundRecord,
        internal_id: Option<&str>,
        reason: ConflictReason,
        ours: Option<serde_json::Value>,
        hash: &str,
        now: DateTime<Utc>,
    ) -> Result<(), sqlx::Error> {
        let id = conflict_id();
        match self {
            Tx::Pg(tx) => sqlx::query(
                "INSERT INTO hangar_sync_conflicts (id, integration_id, workspace_id, provider, \
                 data_type, run_id, object_type, external_id, internal_id, reason, ours, theirs, \
                 theirs_hash, created_at, theirs_token) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
                 ON CONFLICT (integration_id, object_type, external_id) WHERE resolved_at IS NULL \
                 DO UPDATE SET theirs = EXCLUDED.theirs, theirs_hash = EXCLUDED.theirs_hash, \
                 theirs_token = EXCLUDED.theirs_token, reason = EXCLUDED.reason, run_id = EXCLUDED.run_id",
            )
            .bind(id)
            .bind(&target.integration_id)
            .bind(&target.workspace_id)
            .bind(&target.provider)
            .bind(&target.data_type)
            .bind(&target.run_id)
            .bind(&record.object_type)
            .bind(&record.external_id)
            .bind(internal_id)
            .bind(reason.as_str())
            .bind(ours.map(Json))
            .bind(Json(&record.payload))
            .bind(hash)
            .bind(now)
            .bind(&record.concurrency_token)
            .execute(&mut **tx)
            .await
            .map(drop),
            Tx::Lite(tx) => sqlx::query(
                "INSERT INTO hangar_sync_conflicts (id, integration_id, workspace_id, provider, \
                 data_type, run_id, object_type, external_id, internal_id, reason, ours, theirs, \
                 theirs_hash, created_at, theirs_token) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15) \
                 ON CONFLICT (integration_id, object_type, external_id) WHERE resolved_at IS NULL \
                 DO UPDATE SET theirs = excluded.theirs, theirs_hash = excluded.theirs_hash, \
                 theirs_token = excluded.theirs_token, reason = excluded.reason, run_id = excluded.run_id",
            )
            .bind(id)
            .bind(&target.integration_id)
            .bind(&target.workspace_id)
            .bind(&target.provider)
            .bind(&target.data_type)
            .bind(&target.run_id)
            .bind(&record.object_type)
            .bind(&record.external_id)
            .bind(internal_id)
            .bind(reason.as_str())
            .bind(ours.map(|o| o.to_string()))
            .bind(record.payload.to_string())
            .bind(hash)
            .bind(ms(now))
            .bind(&record.concurrency_token)
            .execute(&mut **tx)
            .await
            .map(drop),
        }
    }

    pub(super) async fn insert_change(&mut self, change: &ChangeRow) -> Result<i64, sqlx::Error> {
        match self {
            Tx::Pg(tx) => {
                sqlx::query_scalar(
                    "INSERT INTO hangar_sync_changes (run_id, workspace_id, provider, object_type, \
                     external_id, internal_id, action, record, changed_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
                )
                .bind(&change.sync_run_id)
                .bind(&change.workspace_id)
                .bind(&change.provider)
                .bind(&change.object_type)
                .bind(&change.external_id)
                .bind(&change.internal_id)
                .bind(&change.action)
                .bind(Json(&change.record))
                .bind(change.changed_at)
                .fetch_one(&mut **tx)
                .await
            }
            Tx::Lite(tx) => {
                sqlx::query_scalar(
                    "INSERT INTO hangar_sync_changes (run_id, workspace_id, provider, object_type, \
                     external_id, internal_id, action, record, changed_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) RETURNING id",
                )
                .bind(&change.sync_run_id)
                .bind(&change.workspace_id)
                .bind(&change.provider)
                .bind(&change.object_type)
                .bind(&change.external_id)
                .bind(&change.internal_id)
                .bind(&change.action)
                .bind(change.record.to_string())
                .bind(ms(change.changed_at))
                .fetch_one(&mut **tx)
                .await
            }
        }
    }

    pub(super) async fn add_counts(&mut self, run_id: &str, c: &Counts) -> Result<(), sqlx::Error> {
        match self {
            Tx::Pg(tx) => sqlx::query(
                "UPDATE hangar_sync_runs SET records_read = records_read + $2, \
                 records_created = records_created + $3, records_updated = records_updated + $4, \
                 records_removed = records_removed + $5, records_conflicted = records_conflicted + $6, \
                 records_skipped = records_skipped + $7 WHERE id = $1",
            )
            .bind(run_id)
            .bind(c.read)
            .bind(c.created)
            .bind(c.updated)
            .bind(c.removed)
            .bind(c.conflicted)
            .bind(c.skipped)
            .execute(&mut **tx)
            .await
            .map(drop),
            Tx::Lite(tx) => sqlx::query(
                "UPDATE hangar_sync_runs SET records_read = records_read + ?2, \
                 records_created = records_created + ?3, records_updated = records_updated + ?4, \
                 records_removed = records_removed + ?5, records_conflicted = records_conflicted + ?6, \
                 records_skipped = records_skipped + ?7 WHERE id = ?1",
            )
            .bind(run_id)
            .bind(c.read)
            .bind(c.created)
            .bind(c.updated)
            .bind(c.removed)
            .bind(c.conflicted)
            .bind(c.skipped)
            .execute(&mut **tx)
            .await
            .map(drop),
        }
    }

    pub(super) async fn save_position(
        &mut self,
        integration_id: &str,
        data_type: &str,
        next: &Position,
        now: DateTime<Utc>,
    ) -> Result<(), sqlx::Error> {
        let cursor_at = next.cursor.as_ref().map(|c| c.at);
        let cursor_id = next.cursor.as_ref().map(|c| c.id.clone());
        let scan_position = next.scan.as_ref().map(|s| s.position.clone());
        let scan_started_at = next.scan.as_ref().map(|s| s.started_at);
        let scan_id = next.scan.as_ref().map(|s| s.id.clone());
        match self {
            Tx::Pg(tx) => sqlx::query(
                "UPDATE hangar_sync_cursors SET cursor_at = $3, cursor_id = $4, scan_position = $5, \
                 scan_started_at = $6, scan_run_id = $7, updated_at = $8 \
                 WHERE integration_id = $1 AND data_type = $2",
            )
            .bind(integration_id)
            .bind(data_type)
            .bind(cursor_at)
            .bind(cursor_id)
            .bind(scan_position.clone())
            .bind(scan_started_at)
            .bind(scan_id)
            .bind(now)
            .execute(&mut **tx)
            .await
            .map(drop),
            Tx::Lite(tx) => sqlx::query(
                "UPDATE hangar_sync_cursors SET cursor_at = ?3, cursor_id = ?4, scan_position = ?5, \
                 scan_started_at = ?6, scan_run_id = ?7, updated_at = ?8 \
                 WHERE integration_id = ?1 AND data_type = ?2",
            )
            .bind(integration_id)
            .bind(data_type)
            .bind(cursor_at.map(ms))
            .bind(cursor_id)
            .bind(scan_position.clone())
            .bind(scan_started_at.map(ms))
            .bind(scan_id)
            .bind(ms(now))
            .execute(&mut **tx)
            .await
            .map(drop),
        }
    }
}
