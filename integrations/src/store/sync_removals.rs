//! Removals, the same for every source of them: a complete full reconciliation's vanished
//! records ([`super::sync_scan`]) and the deletions a provider reports record by record in a
//! feed of its own (Salesforce's `deleted`; [`SyncStore::apply_removals`]). A removed
//! financial record is held as a conflict for review (`removed_at_source`), a safety one is
//! appended ("removed at source" beside the held record, which stays), any other is marked
//! removed (the contract's changes name no removal: counted, not handed on). Both dialects
//! side by side.

use chrono::{DateTime, Utc};
use hangar_workers::db::Pool;
use sqlx::Row;

use super::sync_changes::ChangeRow;
use super::sync_pages::{PageApplied, PageTarget};
use super::sync_runs::Counts;
use super::sync_store::{SyncStore, SyncStoreError, begin_immediate, json_text};
use super::sync_tx::Tx;
use crate::sync::rules::ConflictReason;
use crate::sync::{InboundRecord, RecordClass};

/// A mapped record that is gone at the source.
pub(super) struct Gone {
    pub object_type: String,
    pub external_id: String,
    pub internal_id: Option<String>,
    /// The payload last applied.
    pub payload: serde_json::Value,
}

/// Removes `gone` (of class `class`) in `tx`, at `now`: counted in `counts`, its change (if
/// the main app is told) pushed to `changes`.
pub(super) async fn remove(
    tx: &mut Tx,
    target: &PageTarget,
    gone: Gone,
    class: RecordClass,
    now: DateTime<Utc>,
    counts: &mut Counts,
    changes: &mut Vec<ChangeRow>,
) -> Result<(), SyncStoreError> {
    let record = InboundRecord {
        object_type: gone.object_type.clone(),
        external_id: gone.external_id.clone(),
        modified_at: now,
        payload: serde_json::json!({"removed_at_source": true, "record": gone.payload}),
        concurrency_token: None,
        deleted: true,
    };
    let action = match class {
        RecordClass::Financial => {
            let hash = crate::sync::rules::payload_hash(&record.payload);
            tx.upsert_conflict(
                target,
                &record,
                gone.internal_id.as_deref(),
                ConflictReason::RemovedAtSource,
                Some(gone.payload.clone()),
                &hash,
                now,
            )
            .await?;
            counts.conflicted += 1;
            "conflict"
        }
        RecordClass::Safety => {
            tx.mark_removed(&target.integration_id, &record, now)
                .await?;
            counts.updated += 1;
            "appended"
        }
        RecordClass::Ordinary => {
            tx.mark_removed(&target.integration_id, &record, now)
                .await?;
            counts.removed += 1;
            return Ok(());
        }
    };
    let change = ChangeRow {
        id: 0,
        sync_run_id: target.run_id.clone(),
        workspace_id: target.workspace_id.clone(),
        provider: target.provider.clone(),
        object_type: record.object_type.clone(),
        external_id: record.external_id.clone(),
        internal_id: gone.internal_id.clone(),
        action: action.to_owned(),
        record: record.payload.clone(),
        changed_at: now,
    };
    let id = tx.insert_change(&change).await?;
    changes.push(ChangeRow { id, ..change });
    Ok(())
}

impl SyncStore {
    /// Applies the deletions a provider reported (`records`, each with its class) in one
    /// transaction, under the (integration, data type) lock: each record Hangar holds and has
    /// not removed yet is removed (module doc); one never seen, or removed before, is
    /// skipped. The position does not move (a deletion feed is re-read from the changes
    /// feed's cursor; a second report of a deletion finds it removed and skips it).
    pub async fn apply_removals(
        &self,
        target: &PageTarget,
        records: &[(InboundRecord, RecordClass)],
    ) -> Result<PageApplied, SyncStoreError> {
        let mut tx = match self.db.pool() {
            Pool::Postgres(pool) => Tx::Pg(pool.begin().await?),
            Pool::Sqlite(pool) => Tx::Lite(begin_immediate(pool).await?),
        };
        tx.lock_cursor(&target.integration_id, &target.data_type)
            .await?;
        let now = Utc::now();
        let mut applied = PageApplied::default();
        for (record, class) in records {
            applied.counts.read += 1;
            match held_for_removal(&mut tx, &target.integration_id, record).await? {
                Some(gone) => {
                    remove(
                        &mut tx,
                        target,
                        gone,
                        *class,
                        now,
                        &mut applied.counts,
                        &mut applied.changes,
                    )
                    .await?
                }
                None => applied.counts.skipped += 1,
            }
        }
        tx.add_counts(&target.run_id, &applied.counts).await?;
        tx.commit().await?;
        Ok(applied)
    }
}

/// The mapping of `record` if Hangar holds it and has not removed it (locked on PostgreSQL;
/// SQLite's `BEGIN IMMEDIATE` holds the database).
async fn held_for_removal(
    tx: &mut Tx,
    integration_id: &str,
    record: &InboundRecord,
) -> Result<Option<Gone>, SyncStoreError> {
    let (internal_id, payload): (Option<String>, String) = match tx {
        Tx::Pg(tx) => {
            let row = sqlx::query(
                "SELECT internal_id, payload::text AS payload FROM hangar_sync_mappings \
                 WHERE integration_id = $1 AND object_type = $2 AND external_id = $3 \
                 AND removed_at IS NULL FOR UPDATE",
            )
            .bind(integration_id)
            .bind(&record.object_type)
            .bind(&record.external_id)
            .fetch_optional(&mut **tx)
            .await?;
            let Some(row) = row else { return Ok(None) };
            (row.try_get("internal_id")?, row.try_get("payload")?)
        }
        Tx::Lite(tx) => {
            let row = sqlx::query(
                "SELECT internal_id, payload FROM hangar_sync_mappings \
                 WHERE integration_id = ?1 AND object_type = ?2 AND external_id = ?3 \
                 AND removed_at IS NULL",
            )
            .bind(integration_id)
            .bind(&record.object_type)
            .bind(&record.external_id)
            .fetch_optional(&mut **tx)
            .await?;
            let Some(row) = row else { return Ok(None) };
            (row.try_get("internal_id")?, row.try_get("payload")?)
        }
    };
    Ok(Some(Gone {
        object_type: record.object_type.clone(),
        external_id: record.external_id.clone(),
        internal_id,
        payload: json_text(&payload)?,
    }))
}
