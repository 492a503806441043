//! Applying one inbound page in one transaction: the (integration, data type) row of
//! `hangar_sync_cursors` is locked first (PostgreSQL `FOR UPDATE`, SQLite `BEGIN
//! IMMEDIATE`), then the page's mappings are read and locked in one statement, each record
//! is decided by [`rules::decide`] on its mapping, the mappings, changes and conflicts are
//! written (new and changed mappings, scan marks and changes one statement each for the
//! page: `sync_batch.rs`), the run's counters added, and the position advanced — all
//! committed together, so a crash re-reads a page, never skips one.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use hangar_workers::db::Pool;
use sqlx::Row;
use sqlx::types::Json;

use super::sync_changes::ChangeRow;
use super::sync_runs::Counts;
use super::sync_store::{SyncStore, SyncStoreError, begin_immediate, json_text, ms, to_time};
use super::sync_tx::Tx;
use crate::sync::rules::{self, Decision, Held};
use crate::sync::{InboundRecord, Position, RecordClass, new_id};

/// Whose page it is.
#[derive(Clone, Debug)]
pub struct PageTarget {
    pub run_id: String,
    pub integration_id: String,
    pub workspace_id: String,
    pub provider: String,
    pub data_type: String,
}

/// What applying a page did.
#[derive(Clone, Debug, Default)]
pub struct PageApplied {
    /// The counters it added to the run.
    pub counts: Counts,
    /// The changes it recorded, in order (to publish after commit).
    pub changes: Vec<ChangeRow>,
}

impl SyncStore {
    /// The stored position of (integration, data type): none before its first page.
    pub async fn position(
        &self,
        integration_id: &str,
        data_type: &str,
    ) -> Result<Position, SyncStoreError> {
        match self.db.pool() {
            Pool::Postgres(pool) => {
                let row = sqlx::query(
                    "SELECT cursor_at, cursor_id, scan_position, scan_started_at, scan_run_id \
                     FROM hangar_sync_cursors WHERE integration_id = $1 AND data_type = $2",
                )
                .bind(integration_id)
                .bind(data_type)
                .fetch_optional(pool)
                .await?;
                let Some(row) = row else {
                    return Ok(Position::default());
                };
                position_of(
                    row.try_get("cursor_at")?,
                    row.try_get("cursor_id")?,
                    row.try_get("scan_position")?,
                    row.try_get("scan_started_at")?,
                    row.try_get("scan_run_id")?,
                )
            }
            Pool::Sqlite(pool) => {
                let row = sqlx::query(
                    "SELECT cursor_at, cursor_id, scan_position, scan_started_at, scan_run_id \
                     FROM hangar_sync_cursors WHERE integration_id = ?1 AND data_type = ?2",
                )
                .bind(integration_id)
                .bind(data_type)
                .fetch_optional(pool)
                .await?;
                let Some(row) = row else {
                    return Ok(Position::default());
                };
                position_of(
                    row.try_get::<Option<i64>, _>("cursor_at")?.map(to_time),
                    row.try_get("cursor_id")?,
                    row.try_get("scan_position")?,
                    row.try_get::<Option<i64>, _>("scan_started_at")?
                        .map(to_time),
                    row.try_get("scan_run_id")?,
                )
            }
        }
    }

    /// Applies `records` (each with its class) and moves the position to `next`, in one
    /// transaction. During a full scan (`scan_id`), every record read is marked seen by it.
    pub async fn apply_page(
        &self,
        target: &PageTarget,
        records: &[(InboundRecord, RecordClass)],
        next: &Position,
        scan_id: Option<&str>,
    ) -> Result<PageApplied, SyncStoreError> {
        let mut tx = match self.db.pool() {
            Pool::Postgres(pool) => Tx::Pg(pool.begin().await?),
            Pool::Sqlite(pool) => Tx::Lite(begin_immediate(pool).await?),
        };
        tx.lock_cursor(&target.integration_id, &target.data_type)
            .await?;
        let now = Utc::now();
        let mut applied = PageApplied::default();
        // One statement per kind of write for the whole page, unless a record comes twice
        // (its second decision must see the first one's write): then one by one.
        let keys: HashSet<(&str, &str)> = records
            .iter()
            .map(|(r, _)| (r.object_type.as_str(), r.external_id.as_str()))
            .collect();
        let batched = keys.len() == records.len();
        let all: Vec<&InboundRecord> = records.iter().map(|(r, _)| r).collect();
        let mut held_all = if batched {
            tx.held_many(&target.integration_id, &all).await?
        } else {
            HashMap::new()
        };
        let mut creates: Vec<(&InboundRecord, String)> = Vec::new();
        let mut updates: Vec<(&InboundRecord, String)> = Vec::new();
        let mut changes: Vec<ChangeRow> = Vec::new();
        for (record, class) in records {
            applied.counts.read += 1;
            let held = if batched {
                held_all.remove(&(record.object_type.clone(), record.external_id.clone()))
            } else {
                tx.held(&target.integration_id, record).await?
            };
            let hash = rules::payload_hash(&record.payload);
            let decision =
                rules::decide_hashed(*class, record, &hash, held.as_ref().map(|(h, _)| h));
            let internal_id = held.as_ref().and_then(|(_, m)| m.internal_id.clone());
            let action = match decision {
                Decision::Create => {
                    if batched {
                        creates.push((record, hash));
                    } else {
                        tx.insert_mapping(&target.integration_id, record, &hash, now)
                            .await?;
                    }
                    applied.counts.created += 1;
                    Some("created")
                }
                Decision::Update => {
                    if batched {
                        updates.push((record, hash));
                    } else {
                        tx.update_mapping(&target.integration_id, record, &hash, now)
                            .await?;
                    }
                    applied.counts.updated += 1;
                    Some("updated")
                }
                Decision::Append => {
                    tx.mark_seen_hash(&target.integration_id, record, &hash, now)
                        .await?;
                    applied.counts.updated += 1;
                    Some("appended")
                }
                Decision::Conflict(reason) => {
                    let ours = held.as_ref().map(|(_, m)| m.ours.clone());
                    tx.upsert_conflict(
                        target,
                        record,
                        internal_id.as_deref(),
                        reason,
                        ours,
                        &hash,
                        now,
                    )
                    .await?;
                    applied.counts.conflicted += 1;
                    Some("conflict")
                }
                Decision::Skip(_) => {
                    applied.counts.skipped += 1;
                    None
                }
            };
            if let Some(scan) = scan_id
                && !batched
            {
                tx.mark_seen_scan(&target.integration_id, record, scan)
                    .await?;
            }
            if let Some(action) = action {
                let mut payload = record.payload.clone();
                if record.deleted && action == "appended" {
                    payload = serde_json::json!({"removed_at_source": true, "record": payload});
                }
                changes.push(ChangeRow {
                    id: 0,
                    sync_run_id: target.run_id.clone(),
                    workspace_id: target.workspace_id.clone(),
                    provider: target.provider.clone(),
                    object_type: record.object_type.clone(),
                    external_id: record.external_id.clone(),
                    internal_id,
                    action: action.to_owned(),
                    record: payload,
                    changed_at: record.modified_at,
                });
            }
        }
        tx.write_mappings(&target.integration_id, &creates, false, now)
            .await?;
        tx.write_mappings(&target.integration_id, &updates, true, now)
            .await?;
        if let Some(scan) = scan_id
            && batched
        {
            tx.mark_seen_scan_many(&target.integration_id, &all, scan)
                .await?;
        }
        let ids = tx.insert_changes(&changes).await?;
        applied.changes = changes
            .into_iter()
            .zip(ids)
            .map(|(change, id)| ChangeRow { id, ..change })
            .collect();
        tx.add_counts(&target.run_id, &applied.counts).await?;
        tx.save_position(&target.integration_id, &target.data_type, next, now)
            .await?;
        tx.commit().await?;
        Ok(applied)
    }

    /// Records the platform's side ("ours") of a record, changed at `at`: the next inbound
    /// change of a financial record then meets it as a change on both sides.
    pub async fn record_ours(
        &self,
        integration_id: &str,
        object_type: &str,
        external_id: &str,
        ours: &serde_json::Value,
        at: DateTime<Utc>,
    ) -> Result<(), SyncStoreError> {
        let updated = match self.db.pool() {
            Pool::Postgres(pool) => sqlx::query(
                "UPDATE hangar_sync_mappings SET ours = $4, ours_modified_at = $5 \
                 WHERE integration_id = $1 AND object_type = $2 AND external_id = $3",
            )
            .bind(integration_id)
            .bind(object_type)
            .bind(external_id)
            .bind(Json(ours))
            .bind(at)
            .execute(pool)
            .await?
            .rows_affected(),
            Pool::Sqlite(pool) => sqlx::query(
                "UPDATE hangar_sync_mappings SET ours = ?4, ours_modified_at = ?5 \
                 WHERE integration_id = ?1 AND object_type = ?2 AND external_id = ?3",
            )
            .bind(integration_id)
            .bind(object_type)
            .bind(external_id)
            .bind(ours.to_string())
            .bind(ms(at))
            .execute(pool)
            .await?
            .rows_affected(),
        };
        if updated == 0 {
            return Err(SyncStoreError::NotFound(format!(
                "mapping of {object_type} {external_id}"
            )));
        }
        Ok(())
    }

    /// The payload last applied for a record, if it is mapped.
    pub async fn mapped_payload(
        &self,
        integration_id: &str,
        object_type: &str,
        external_id: &str,
    ) -> Result<Option<serde_json::Value>, SyncStoreError> {
        match self.db.pool() {
            Pool::Postgres(pool) => {
                let row: Option<Json<serde_json::Value>> = sqlx::query_scalar(
                    "SELECT payload FROM hangar_sync_mappings \
                     WHERE integration_id = $1 AND object_type = $2 AND external_id = $3",
                )
                .bind(integration_id)
                .bind(object_type)
                .bind(external_id)
                .fetch_optional(pool)
                .await?;
                Ok(row.map(|j| j.0))
            }
            Pool::Sqlite(pool) => {
                let row: Option<String> = sqlx::query_scalar(
                    "SELECT payload FROM hangar_sync_mappings \
                     WHERE integration_id = ?1 AND object_type = ?2 AND external_id = ?3",
                )
                .bind(integration_id)
                .bind(object_type)
                .bind(external_id)
                .fetch_optional(pool)
                .await?;
                row.map(|t| json_text(&t)).transpose()
            }
        }
    }
}

fn position_of(
    cursor_at: Option<DateTime<Utc>>,
    cursor_id: Option<String>,
    scan_position: Option<String>,
    scan_started_at: Option<DateTime<Utc>>,
    scan_run_id: Option<String>,
) -> Result<Position, SyncStoreError> {
    let cursor = match (cursor_at, cursor_id) {
        (Some(at), Some(id)) => Some(crate::sync::Cursor { at, id }),
        _ => None,
    };
    let scan = match (scan_position, scan_started_at, scan_run_id) {
        (Some(position), Some(started_at), Some(id)) => Some(crate::sync::Scan {
            position,
            started_at,
            id,
        }),
        _ => None,
    };
    Ok(Position { cursor, scan })
}

/// A mapping as the rules need it, plus what a conflict row copies.
#[derive(Clone, Debug)]
pub(super) struct Mapping {
    pub internal_id: Option<String>,
    pub ours: serde_json::Value,
}

/// A new conflict id.
pub(super) fn conflict_id() -> String {
    new_id("cfl")
}

pub(super) fn held_of(
    applied_hash: String,
    last_synced_at: DateTime<Utc>,
    ours_modified_at: Option<DateTime<Utc>>,
    open_conflict_hash: Option<String>,
) -> Held {
    Held {
        applied_hash,
        last_synced_at: Some(last_synced_at),
        ours_modified_at,
        open_conflict_hash,
    }
}
