//! `hangar_sync_conflicts`: financial records held for an admin, listed and resolved (take
//! ours: the platform's side stays and the provider's version is acknowledged; take theirs:
//! the provider's version is applied and handed to the main app as an `updated` change).
//! Both dialects side by side.

use chrono::{DateTime, Utc};
use hangar_workers::db::Pool;
use serde::Serialize;
use sqlx::Row;
use sqlx::types::Json;

use super::sync_changes::ChangeRow;
use super::sync_store::{SyncStore, SyncStoreError, begin_immediate, json_text, ms, to_time};

/// A conflict as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConflictRow {
    pub id: String,
    pub integration_id: String,
    pub workspace_id: String,
    pub provider: String,
    pub data_type: String,
    pub sync_run_id: String,
    pub object_type: String,
    pub external_id: String,
    pub internal_id: Option<String>,
    pub reason: String,
    pub ours: Option<serde_json::Value>,
    pub theirs: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolution: Option<String>,
    /// The provider's concurrency token of `theirs` (QuickBooks `SyncToken`).
    #[serde(skip)]
    pub theirs_token: Option<String>,
}

/// Which side an admin keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Take {
    Ours,
    Theirs,
}

impl Take {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Take::Ours => "ours",
            Take::Theirs => "theirs",
        }
    }
}

const COLUMNS: &str = "id, integration_id, workspace_id, provider, data_type, run_id, object_type, \
     external_id, internal_id, reason, ours, theirs, theirs_hash, created_at, resolved_at, resolution, \
     theirs_token";

impl SyncStore {
    /// Conflicts, newest first: of one workspace (or all when `None`), open only or all.
    pub async fn conflicts(
        &self,
        workspace: Option<&str>,
        open_only: bool,
        limit: i64,
    ) -> Result<Vec<ConflictRow>, SyncStoreError> {
        self.conflicts_where(workspace, None, open_only, limit)
            .await
    }

    /// One conflict.
    pub async fn conflict(&self, id: &str) -> Result<ConflictRow, SyncStoreError> {
        self.conflicts_where(None, Some(id), false, 1)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| SyncStoreError::NotFound(format!("conflict {id}")))
    }

    async fn conflicts_where(
        &self,
        workspace: Option<&str>,
        id: Option<&str>,
        open_only: bool,
        limit: i64,
    ) -> Result<Vec<ConflictRow>, SyncStoreError> {
        match self.db.pool() {
            Pool::Postgres(pool) => {
                let sql = format!(
                    "SELECT {COLUMNS} FROM hangar_sync_conflicts WHERE ($1::text IS NULL OR workspace_id = $1) \
                     AND ($2::text IS NULL OR id = $2) AND (NOT $3 OR resolved_at IS NULL) \
                     ORDER BY created_at DESC, id DESC LIMIT $4"
                );
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(workspace)
                    .bind(id)
                    .bind(open_only)
                    .bind(limit)
                    .fetch_all(pool)
                    .await?;
                rows.iter().map(pg_row).collect()
            }
            Pool::Sqlite(pool) => {
                let sql = format!(
                    "SELECT {COLUMNS} FROM hangar_sync_conflicts WHERE (?1 IS NULL OR workspace_id = ?1) \
                     AND (?2 IS NULL OR id = ?2) AND (NOT ?3 OR resolved_at IS NULL) \
                     ORDER BY created_at DESC, id DESC LIMIT ?4"
                );
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(workspace)
                    .bind(id)
                    .bind(open_only)
                    .bind(limit)
                    .fetch_all(pool)
                    .await?;
                rows.iter().map(sqlite_row).collect()
            }
        }
    }

    /// Resolves an open conflict by `take`, by `who`. Taking theirs applies the provider's
    /// version to the mapping and returns the `updated` change to hand to the main app;
    /// taking ours acknowledges the provider's version (an unchanged re-read is skipped) and
    /// keeps the platform's side. A resolved conflict is refused.
    pub async fn resolve_conflict(
        &self,
        id: &str,
        take: Take,
        who: &str,
    ) -> Result<(ConflictRow, Option<ChangeRow>), SyncStoreError> {
        let conflict = self.conflict(id).await?;
        if conflict.resolved_at.is_some() {
            return Err(SyncStoreError::Conflict(format!(
                "conflict {id} was already resolved ({})",
                conflict.resolution.as_deref().unwrap_or("?")
            )));
        }
        let now = Utc::now();
        let hash = crate::sync::rules::payload_hash(&conflict.theirs);
        let change = (take == Take::Theirs).then(|| ChangeRow {
            id: 0,
            sync_run_id: conflict.sync_run_id.clone(),
            workspace_id: conflict.workspace_id.clone(),
            provider: conflict.provider.clone(),
            object_type: conflict.object_type.clone(),
            external_id: conflict.external_id.clone(),
            internal_id: conflict.internal_id.clone(),
            action: "updated".to_owned(),
            record: conflict.theirs.clone(),
            changed_at: now,
        });
        let change_id = match self.db.pool() {
            Pool::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                let done = sqlx::query(
                    "UPDATE hangar_sync_conflicts SET resolved_at = $2, resolution = $3, resolved_by = $4 \
                     WHERE id = $1 AND resolved_at IS NULL",
                )
                .bind(id)
                .bind(now)
                .bind(take.as_str())
                .bind(who)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 0 {
                    return Err(SyncStoreError::Conflict(format!(
                        "conflict {id} was resolved meanwhile"
                    )));
                }
                // Theirs: the provider's version is applied. Ours: it is acknowledged (a
                // re-read of it is skipped) and the platform's side kept. Either way the
                // provider's concurrency token is the current one.
                let theirs = take == Take::Theirs;
                sqlx::query(
                    "UPDATE hangar_sync_mappings SET applied_hash = $4, \
                     payload = CASE WHEN $7 THEN $5 ELSE payload END, last_synced_at = $6, \
                     ours = CASE WHEN $7 THEN NULL ELSE COALESCE(ours, payload) END, \
                     ours_modified_at = CASE WHEN $7 THEN NULL ELSE $6 END, \
                     concurrency_token = COALESCE($8, concurrency_token) \
                     WHERE integration_id = $1 AND object_type = $2 AND external_id = $3",
                )
                .bind(&conflict.integration_id)
                .bind(&conflict.object_type)
                .bind(&conflict.external_id)
                .bind(&hash)
                .bind(Json(&conflict.theirs))
                .bind(now)
                .bind(theirs)
                .bind(&conflict.theirs_token)
                .execute(&mut *tx)
                .await?;
                // An outbound record waiting on this conflict: superseded (theirs), or pushed
                // again over theirs by the next run (ours).
                sqlx::query(
                    "UPDATE hangar_sync_outbox SET \
                     pushed_at = CASE WHEN $3 THEN $2 ELSE pushed_at END, \
                     conflict_id = CASE WHEN $3 THEN conflict_id ELSE NULL END \
                     WHERE conflict_id = $1",
                )
                .bind(id)
                .bind(now)
                .bind(theirs)
                .execute(&mut *tx)
                .await?;
                let mut change_id = None;
                if let Some(change) = &change {
                    change_id = Some(
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
                        .fetch_one(&mut *tx)
                        .await?,
                    );
                }
                tx.commit().await?;
                change_id
            }
            Pool::Sqlite(pool) => {
                let mut tx = begin_immediate(pool).await?;
                let done = sqlx::query(
                    "UPDATE hangar_sync_conflicts SET resolved_at = ?2, resolution = ?3, resolved_by = ?4 \
                     WHERE id = ?1 AND resolved_at IS NULL",
                )
                .bind(id)
                .bind(ms(now))
                .bind(take.as_str())
                .bind(who)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 0 {
                    return Err(SyncStoreError::Conflict(format!(
                        "conflict {id} was resolved meanwhile"
                    )));
                }
                let theirs = take == Take::Theirs;
                sqlx::query(
                    "UPDATE hangar_sync_mappings SET applied_hash = ?4, \
                     payload = CASE WHEN ?7 THEN ?5 ELSE payload END, last_synced_at = ?6, \
                     ours = CASE WHEN ?7 THEN NULL ELSE COALESCE(ours, payload) END, \
                     ours_modified_at = CASE WHEN ?7 THEN NULL ELSE ?6 END, \
                     concurrency_token = COALESCE(?8, concurrency_token) \
                     WHERE integration_id = ?1 AND object_type = ?2 AND external_id = ?3",
                )
                .bind(&conflict.integration_id)
                .bind(&conflict.object_type)
                .bind(&conflict.external_id)
                .bind(&hash)
                .bind(conflict.theirs.to_string())
                .bind(ms(now))
                .bind(theirs)
                .bind(&conflict.theirs_token)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE hangar_sync_outbox SET \
                     pushed_at = CASE WHEN ?3 THEN ?2 ELSE pushed_at END, \
                     conflict_id = CASE WHEN ?3 THEN conflict_id ELSE NULL END \
                     WHERE conflict_id = ?1",
                )
                .bind(id)
                .bind(ms(now))
                .bind(theirs)
                .execute(&mut *tx)
                .await?;
                let mut change_id = None;
                if let Some(change) = &change {
                    change_id = Some(
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
                        .fetch_one(&mut *tx)
                        .await?,
                    );
                }
                tx.commit().await?;
                change_id
            }
        };
        let resolved = self.conflict(id).await?;
        let change = change.zip(change_id).map(|(c, id)| ChangeRow { id, ..c });
        Ok((resolved, change))
    }
}

fn pg_row(row: &sqlx::postgres::PgRow) -> Result<ConflictRow, SyncStoreError> {
    Ok(ConflictRow {
        id: row.try_get("id")?,
        integration_id: row.try_get("integration_id")?,
        workspace_id: row.try_get("workspace_id")?,
        provider: row.try_get("provider")?,
        data_type: row.try_get("data_type")?,
        sync_run_id: row.try_get("run_id")?,
        object_type: row.try_get("object_type")?,
        external_id: row.try_get("external_id")?,
        internal_id: row.try_get("internal_id")?,
        reason: row.try_get("reason")?,
        ours: row
            .try_get::<Option<Json<serde_json::Value>>, _>("ours")?
            .map(|j| j.0),
        theirs: row.try_get::<Json<serde_json::Value>, _>("theirs")?.0,
        created_at: row.try_get("created_at")?,
        resolved_at: row.try_get("resolved_at")?,
        resolution: row.try_get("resolution")?,
        theirs_token: row.try_get("theirs_token")?,
    })
}

fn sqlite_row(row: &sqlx::sqlite::SqliteRow) -> Result<ConflictRow, SyncStoreError> {
    Ok(ConflictRow {
        id: row.try_get("id")?,
        integration_id: row.try_get("integration_id")?,
        workspace_id: row.try_get("workspace_id")?,
        provider: row.try_get("provider")?,
        data_type: row.try_get("data_type")?,
        sync_run_id: row.try_get("run_id")?,
        object_type: row.try_get("object_type")?,
        external_id: row.try_get("external_id")?,
        internal_id: row.try_get("internal_id")?,
        reason: row.try_get("reason")?,
        ours: row
            .try_get::<Option<String>, _>("ours")?
            .map(|t| json_text(&t))
            .transpose()?,
        theirs: json_text(&row.try_get::<String, _>("theirs")?)?,
        created_at: to_time(row.try_get("created_at")?),
        resolved_at: row.try_get::<Option<i64>, _>("resolved_at")?.map(to_time),
        resolution: row.try_get("resolution")?,
        theirs_token: row.try_get("theirs_token")?,
    })
}
