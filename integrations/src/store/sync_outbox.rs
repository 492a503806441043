//! `hangar_sync_outbox`: outbound records taken from catalog events, waiting for their push,
//! and what a push leaves behind: the mapping (internal id ↔ the provider's id, with the
//! provider's copy and its hash, so the inbound read of Hangar's own write is skipped as
//! unchanged — the echo suppression) or, on a stale concurrency token, a conflict. Both
//! dialects side by side.

use chrono::{DateTime, Utc};
use hangar_workers::db::Pool;
use sqlx::Row;
use sqlx::types::Json;

use super::sync_pages::PageTarget;
use super::sync_store::{SyncStore, SyncStoreError, begin_immediate, json_text, ms, to_time};
use crate::sync::InboundRecord;
use crate::sync::connector::Pushed;
use crate::sync::new_id;
use crate::sync::rules::payload_hash;

/// An outbound record to store.
#[derive(Clone, Debug)]
pub struct NewOutbound {
    pub integration_id: String,
    pub workspace_id: String,
    pub data_type: String,
    pub object_type: String,
    pub internal_id: String,
    pub event_id: String,
    pub event_type: String,
    /// The provider's body, built from the event's data.
    pub data: serde_json::Value,
    pub occurred_at: DateTime<Utc>,
}

/// A stored outbound record.
#[derive(Clone, Debug, PartialEq)]
pub struct OutboxRow {
    pub id: i64,
    pub object_type: String,
    pub internal_id: String,
    pub event_id: String,
    pub data: serde_json::Value,
    pub occurred_at: DateTime<Utc>,
}

impl SyncStore {
    /// Stores an outbound record once per (integration, event); false when it was there.
    ///
    /// In the same transaction, a record already mapped (pushed or read before) is marked as
    /// changed on the platform's side at the event's time, with the body the event makes: an
    /// inbound read of the provider's copy before this push then meets a change on both sides
    /// (a financial record becomes a conflict for review; an ordinary one goes by the later
    /// modification time) instead of overwriting the platform's pending change.
    pub async fn enqueue_outbound(&self, new: &NewOutbound) -> Result<bool, SyncStoreError> {
        let now = Utc::now();
        let inserted = match self.db.pool() {
            Pool::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                let inserted = sqlx::query(
                    "INSERT INTO hangar_sync_outbox (integration_id, workspace_id, data_type, object_type, \
                     internal_id, event_id, event_type, data, occurred_at, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING",
                )
                .bind(&new.integration_id)
                .bind(&new.workspace_id)
                .bind(&new.data_type)
                .bind(&new.object_type)
                .bind(&new.internal_id)
                .bind(&new.event_id)
                .bind(&new.event_type)
                .bind(Json(&new.data))
                .bind(new.occurred_at)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if inserted == 1 {
                    sqlx::query(
                        "UPDATE hangar_sync_mappings SET ours = $4, ours_modified_at = $5 \
                         WHERE integration_id = $1 AND object_type = $2 AND internal_id = $3 \
                         AND (ours_modified_at IS NULL OR ours_modified_at < $5)",
                    )
                    .bind(&new.integration_id)
                    .bind(&new.object_type)
                    .bind(&new.internal_id)
                    .bind(Json(&new.data))
                    .bind(new.occurred_at)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                inserted
            }
            Pool::Sqlite(pool) => {
                let mut tx = begin_immediate(pool).await?;
                let inserted = sqlx::query(
                    "INSERT INTO hangar_sync_outbox (integration_id, workspace_id, data_type, object_type, \
                     internal_id, event_id, event_type, data, occurred_at, created_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT DO NOTHING",
                )
                .bind(&new.integration_id)
                .bind(&new.workspace_id)
                .bind(&new.data_type)
                .bind(&new.object_type)
                .bind(&new.internal_id)
                .bind(&new.event_id)
                .bind(&new.event_type)
                .bind(new.data.to_string())
                .bind(ms(new.occurred_at))
                .bind(ms(now))
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if inserted == 1 {
                    sqlx::query(
                        "UPDATE hangar_sync_mappings SET ours = ?4, ours_modified_at = ?5 \
                         WHERE integration_id = ?1 AND object_type = ?2 AND internal_id = ?3 \
                         AND (ours_modified_at IS NULL OR ours_modified_at < ?5)",
                    )
                    .bind(&new.integration_id)
                    .bind(&new.object_type)
                    .bind(&new.internal_id)
                    .bind(new.data.to_string())
                    .bind(ms(new.occurred_at))
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                inserted
            }
        };
        Ok(inserted == 1)
    }

    /// The integration's records of `data_type` waiting for their push, oldest first.
    pub async fn pending_outbound(
        &self,
        integration_id: &str,
        data_type: &str,
        limit: i64,
    ) -> Result<Vec<OutboxRow>, SyncStoreError> {
        match self.db.pool() {
            Pool::Postgres(pool) => {
                let rows = sqlx::query(
                    "SELECT id, object_type, internal_id, event_id, data, occurred_at FROM hangar_sync_outbox \
                     WHERE integration_id = $1 AND data_type = $2 AND pushed_at IS NULL AND conflict_id IS NULL \
                     ORDER BY id LIMIT $3",
                )
                .bind(integration_id)
                .bind(data_type)
                .bind(limit)
                .fetch_all(pool)
                .await?;
                rows.iter()
                    .map(|r| {
                        Ok(OutboxRow {
                            id: r.try_get("id")?,
                            object_type: r.try_get("object_type")?,
                            internal_id: r.try_get("internal_id")?,
                            event_id: r.try_get("event_id")?,
                            data: r.try_get::<Json<serde_json::Value>, _>("data")?.0,
                            occurred_at: r.try_get("occurred_at")?,
                        })
                    })
                    .collect()
            }
            Pool::Sqlite(pool) => {
                let rows = sqlx::query(
                    "SELECT id, object_type, internal_id, event_id, data, occurred_at FROM hangar_sync_outbox \
                     WHERE integration_id = ?1 AND data_type = ?2 AND pushed_at IS NULL AND conflict_id IS NULL \
                     ORDER BY id LIMIT ?3",
                )
                .bind(integration_id)
                .bind(data_type)
                .bind(limit)
                .fetch_all(pool)
                .await?;
                rows.iter()
                    .map(|r| {
                        Ok(OutboxRow {
                            id: r.try_get("id")?,
                            object_type: r.try_get("object_type")?,
                            internal_id: r.try_get("internal_id")?,
                            event_id: r.try_get("event_id")?,
                            data: json_text(&r.try_get::<String, _>("data")?)?,
                            occurred_at: to_time(r.try_get("occurred_at")?),
                        })
                    })
                    .collect()
            }
        }
    }

    /// Whether outbox row `id` still waits for its push (another run of the same integration
    /// may have pushed it while this one waited for its slot of the budget).
    pub async fn outbound_pending(&self, id: i64) -> Result<bool, SyncStoreError> {
        let sql = "SELECT count(*) FROM hangar_sync_outbox \
                   WHERE id = $1 AND pushed_at IS NULL AND conflict_id IS NULL";
        let n: i64 = match self.db.pool() {
            Pool::Postgres(pool) => sqlx::query_scalar(sql).bind(id).fetch_one(pool).await?,
            Pool::Sqlite(pool) => sqlx::query_scalar(sql).bind(id).fetch_one(pool).await?,
        };
        Ok(n == 1)
    }

    /// The provider's id and concurrency token of a record Hangar pushed before.
    pub async fn pushed_before(
        &self,
        integration_id: &str,
        object_type: &str,
        internal_id: &str,
    ) -> Result<Option<(String, Option<String>)>, SyncStoreError> {
        let row = match self.db.pool() {
            Pool::Postgres(pool) => {
                sqlx::query_as(
                    "SELECT external_id, concurrency_token FROM hangar_sync_mappings \
                 WHERE integration_id = $1 AND object_type = $2 AND internal_id = $3",
                )
                .bind(integration_id)
                .bind(object_type)
                .bind(internal_id)
                .fetch_optional(pool)
                .await?
            }
            Pool::Sqlite(pool) => {
                sqlx::query_as(
                    "SELECT external_id, concurrency_token FROM hangar_sync_mappings \
                 WHERE integration_id = ?1 AND object_type = ?2 AND internal_id = ?3",
                )
                .bind(integration_id)
                .bind(object_type)
                .bind(internal_id)
                .fetch_optional(pool)
                .await?
            }
        };
        Ok(row)
    }

    /// A push succeeded: the mapping holds the provider's copy (its hash is what the next
    /// inbound read of it is recognised by) and the platform's side; the outbox row is done.
    pub async fn record_pushed(
        &self,
        target: &PageTarget,
        row: &OutboxRow,
        pushed: &Pushed,
    ) -> Result<(), SyncStoreError> {
        let now = Utc::now();
        let hash = payload_hash(&pushed.payload);
        match self.db.pool() {
            Pool::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                sqlx::query(
                    "INSERT INTO hangar_sync_mappings (integration_id, object_type, external_id, internal_id, \
                     applied_hash, payload, provider_modified_at, concurrency_token, ours, ours_modified_at, last_synced_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) \
                     ON CONFLICT (integration_id, object_type, external_id) DO UPDATE SET \
                     internal_id = EXCLUDED.internal_id, applied_hash = EXCLUDED.applied_hash, \
                     payload = EXCLUDED.payload, provider_modified_at = EXCLUDED.provider_modified_at, \
                     concurrency_token = EXCLUDED.concurrency_token, ours = EXCLUDED.ours, \
                     ours_modified_at = EXCLUDED.ours_modified_at, last_synced_at = EXCLUDED.last_synced_at",
                )
                .bind(&target.integration_id)
                .bind(&row.object_type)
                .bind(&pushed.external_id)
                .bind(&row.internal_id)
                .bind(&hash)
                .bind(Json(&pushed.payload))
                .bind(pushed.modified_at)
                .bind(&pushed.concurrency_token)
                .bind(Json(&row.data))
                .bind(now)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE hangar_sync_outbox SET pushed_at = $2, run_id = $3, external_id = $4 WHERE id = $1",
                )
                .bind(row.id)
                .bind(now)
                .bind(&target.run_id)
                .bind(&pushed.external_id)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
            }
            Pool::Sqlite(pool) => {
                let mut tx = begin_immediate(pool).await?;
                sqlx::query(
                    "INSERT INTO hangar_sync_mappings (integration_id, object_type, external_id, internal_id, \
                     applied_hash, payload, provider_modified_at, concurrency_token, ours, ours_modified_at, last_synced_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10) \
                     ON CONFLICT (integration_id, object_type, external_id) DO UPDATE SET \
                     internal_id = excluded.internal_id, applied_hash = excluded.applied_hash, \
                     payload = excluded.payload, provider_modified_at = excluded.provider_modified_at, \
                     concurrency_token = excluded.concurrency_token, ours = excluded.ours, \
                     ours_modified_at = excluded.ours_modified_at, last_synced_at = excluded.last_synced_at",
                )
                .bind(&target.integration_id)
                .bind(&row.object_type)
                .bind(&pushed.external_id)
                .bind(&row.internal_id)
                .bind(&hash)
                .bind(pushed.payload.to_string())
                .bind(ms(pushed.modified_at))
                .bind(&pushed.concurrency_token)
                .bind(row.data.to_string())
                .bind(ms(now))
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE hangar_sync_outbox SET pushed_at = ?2, run_id = ?3, external_id = ?4 WHERE id = ?1",
                )
                .bind(row.id)
                .bind(ms(now))
                .bind(&target.run_id)
                .bind(&pushed.external_id)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
            }
        }
        Ok(())
    }

    /// A push met a stale concurrency token: the provider's current copy (`theirs`) and the
    /// platform's (`row.data`) become a conflict; the outbox row waits on it.
    pub async fn record_push_conflict(
        &self,
        target: &PageTarget,
        row: &OutboxRow,
        theirs: &InboundRecord,
    ) -> Result<String, SyncStoreError> {
        let now = Utc::now();
        let hash = payload_hash(&theirs.payload);
        let id = new_id("cfl");
        let conflict_id: String = match self.db.pool() {
            Pool::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                let conflict_id: String = sqlx::query_scalar(
                    "INSERT INTO hangar_sync_conflicts (id, integration_id, workspace_id, provider, \
                     data_type, run_id, object_type, external_id, internal_id, reason, ours, theirs, \
                     theirs_hash, created_at, theirs_token) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'stale_concurrency_token', $10, $11, $12, $13, $14) \
                     ON CONFLICT (integration_id, object_type, external_id) WHERE resolved_at IS NULL \
                     DO UPDATE SET ours = EXCLUDED.ours, theirs = EXCLUDED.theirs, \
                     theirs_hash = EXCLUDED.theirs_hash, theirs_token = EXCLUDED.theirs_token, \
                     run_id = EXCLUDED.run_id RETURNING id",
                )
                .bind(&id)
                .bind(&target.integration_id)
                .bind(&target.workspace_id)
                .bind(&target.provider)
                .bind(&target.data_type)
                .bind(&target.run_id)
                .bind(&row.object_type)
                .bind(&theirs.external_id)
                .bind(&row.internal_id)
                .bind(Json(&row.data))
                .bind(Json(&theirs.payload))
                .bind(&hash)
                .bind(now)
                .bind(&theirs.concurrency_token)
                .fetch_one(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE hangar_sync_outbox SET conflict_id = $2, run_id = $3 WHERE id = $1",
                )
                .bind(row.id)
                .bind(&conflict_id)
                .bind(&target.run_id)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                conflict_id
            }
            Pool::Sqlite(pool) => {
                let mut tx = begin_immediate(pool).await?;
                let conflict_id: String = sqlx::query_scalar(
                    "INSERT INTO hangar_sync_conflicts (id, integration_id, workspace_id, provider, \
                     data_type, run_id, object_type, external_id, internal_id, reason, ours, theirs, \
                     theirs_hash, created_at, theirs_token) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'stale_concurrency_token', ?10, ?11, ?12, ?13, ?14) \
                     ON CONFLICT (integration_id, object_type, external_id) WHERE resolved_at IS NULL \
                     DO UPDATE SET ours = excluded.ours, theirs = excluded.theirs, \
                     theirs_hash = excluded.theirs_hash, theirs_token = excluded.theirs_token, \
                     run_id = excluded.run_id RETURNING id",
                )
                .bind(&id)
                .bind(&target.integration_id)
                .bind(&target.workspace_id)
                .bind(&target.provider)
                .bind(&target.data_type)
                .bind(&target.run_id)
                .bind(&row.object_type)
                .bind(&theirs.external_id)
                .bind(&row.internal_id)
                .bind(row.data.to_string())
                .bind(theirs.payload.to_string())
                .bind(&hash)
                .bind(ms(now))
                .bind(&theirs.concurrency_token)
                .fetch_one(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE hangar_sync_outbox SET conflict_id = ?2, run_id = ?3 WHERE id = ?1",
                )
                .bind(row.id)
                .bind(&conflict_id)
                .bind(&target.run_id)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                conflict_id
            }
        };
        Ok(conflict_id)
    }
}
