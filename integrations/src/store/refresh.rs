//! The single-flight token refresh, as SQL: a process takes the connection's refresh lease
//! under the row lock (PostgreSQL `SELECT … FOR UPDATE`, SQLite `BEGIN IMMEDIATE`), after
//! re-reading the row and deciding that a refresh is still needed; it calls the token
//! endpoint with no lock held (a slow endpoint must not stall SQLite's one writer, nor pin a
//! PostgreSQL row for seconds); then saves the new tokens with
//! `WHERE credential_version = $read`, bumping the version, clearing the lease and, in the
//! same transaction, enqueueing the next refresh job. A refresher whose read version moved
//! saves nothing: another one won. `needs_reauth` is fenced the same way.

use chrono::{DateTime, Duration, Utc};
use hangar_workers::client::Conn;
use hangar_workers::db::Pool;
use hangar_workers::job::NewJob;

use super::{
    COLUMNS, IntegrationRows, IntegrationStoreError, StoredIntegration, from_pg, from_sqlite, ms,
};
use crate::integration::Status;

/// When a refresh is still needed, judged on the row re-read under its lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshNeed {
    /// The credential is still the one read at this version (a 401 with that token, a
    /// refresh job planned for that version).
    VersionIs(i64),
    /// The access token expires within this margin.
    ExpiresWithin(Duration),
    /// The credential was saved at or before this time (a job's 401 on an attempt that
    /// started then: a later save is the refresh it asks for).
    SavedBefore(DateTime<Utc>),
}

impl RefreshNeed {
    /// Whether `row` still needs the refresh at `now`.
    pub fn holds(self, row: &StoredIntegration, now: DateTime<Utc>) -> bool {
        match self {
            RefreshNeed::VersionIs(v) => row.integration.credential_version == v,
            RefreshNeed::ExpiresWithin(margin) => row
                .integration
                .access_token_expires_at
                .is_some_and(|e| e <= now + margin),
            RefreshNeed::SavedBefore(t) => row.credential_saved_at.is_none_or(|s| s <= t),
        }
    }
}

/// What the claim found.
#[derive(Debug)]
pub enum Claim {
    /// This process holds the lease: call the token endpoint, then save or release.
    Claimed(StoredIntegration),
    /// No refresh is needed any more (another process refreshed): use the row's credential.
    NotNeeded(StoredIntegration),
    /// Another process holds a live lease: wait for its save.
    Busy,
    /// The integration is disabled or needs re-authorisation.
    Inactive(StoredIntegration),
}

fn decide(row: StoredIntegration, need: RefreshNeed, now: DateTime<Utc>) -> (Claim, bool) {
    if row.integration.status != Status::Active {
        return (Claim::Inactive(row), false);
    }
    if !need.holds(&row, now) {
        return (Claim::NotNeeded(row), false);
    }
    if row.refresh_lease_until.is_some_and(|until| until > now) {
        return (Claim::Busy, false);
    }
    (Claim::Claimed(row), true)
}

impl IntegrationRows {
    /// Re-reads integration `id` under its row lock and takes the refresh lease for `lease`
    /// when `need` still holds and no other process holds it.
    pub async fn claim_refresh(
        &self,
        id: &str,
        need: RefreshNeed,
        owner: &str,
        lease: Duration,
    ) -> Result<Claim, IntegrationStoreError> {
        let select = sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM hangar_integrations WHERE id = $1"
        ));
        let take = "UPDATE hangar_integrations SET refresh_lease_until = $2, \
                    refresh_lease_owner = $3 WHERE id = $1";
        let now = Utc::now();
        match self.db().pool() {
            Pool::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                let select = sqlx::AssertSqlSafe(format!("{} FOR UPDATE", select.0));
                let row = sqlx::query(select)
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?
                    .ok_or_else(|| IntegrationStoreError::NotFound(id.to_owned()))?;
                let (claim, take_lease) = decide(from_pg(&row)?, need, now);
                if take_lease {
                    sqlx::query(take)
                        .bind(id)
                        .bind(now + lease)
                        .bind(owner)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(claim)
            }
            Pool::Sqlite(pool) => {
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                let row = sqlx::query(select)
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?
                    .ok_or_else(|| IntegrationStoreError::NotFound(id.to_owned()))?;
                let (claim, take_lease) = decide(from_sqlite(&row)?, need, now);
                if take_lease {
                    sqlx::query(take)
                        .bind(id)
                        .bind(ms(now + lease))
                        .bind(owner)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(claim)
            }
        }
    }

    /// Saves refreshed tokens if the credential is still at `read_version`: the version goes
    /// up, the lease ends, and `next` (the next refresh job) is enqueued in the same
    /// transaction. False when the version moved (nothing written).
    pub async fn save_refreshed(
        &self,
        id: &str,
        read_version: i64,
        sealed: &str,
        key_id: &str,
        expires_at: Option<DateTime<Utc>>,
        next: Option<&NewJob>,
    ) -> Result<bool, IntegrationStoreError> {
        let update = "UPDATE hangar_integrations SET credential_sealed = $3, \
                          credential_key_id = $4, access_expires_at = $5, \
                          credential_version = credential_version + 1, \
                          credential_saved_at = $6, last_refreshed_at = $6, updated_at = $6, \
                          refresh_lease_until = NULL, refresh_lease_owner = NULL \
                      WHERE id = $1 AND credential_version = $2";
        let now = Utc::now();
        match self.db().pool() {
            Pool::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                let saved = sqlx::query(update)
                    .bind(id)
                    .bind(read_version)
                    .bind(sealed)
                    .bind(key_id)
                    .bind(expires_at)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if saved == 0 {
                    return Ok(false);
                }
                if let Some(job) = next {
                    (*tx).insert_job(job).await?;
                }
                tx.commit().await?;
            }
            Pool::Sqlite(pool) => {
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                let saved = sqlx::query(update)
                    .bind(id)
                    .bind(read_version)
                    .bind(sealed)
                    .bind(key_id)
                    .bind(expires_at.map(ms))
                    .bind(ms(now))
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if saved == 0 {
                    return Ok(false);
                }
                if let Some(job) = next {
                    (*tx).insert_job(job).await?;
                }
                tx.commit().await?;
            }
        }
        Ok(true)
    }

    /// Gives up this process's refresh lease (the token endpoint failed transiently), so the
    /// next attempt need not wait for it to run out.
    pub async fn release_refresh(
        &self,
        id: &str,
        owner: &str,
    ) -> Result<(), IntegrationStoreError> {
        let sql = "UPDATE hangar_integrations SET refresh_lease_until = NULL, \
                   refresh_lease_owner = NULL WHERE id = $1 AND refresh_lease_owner = $2";
        match self.db().pool() {
            Pool::Postgres(pool) => {
                sqlx::query(sql).bind(id).bind(owner).execute(pool).await?;
            }
            Pool::Sqlite(pool) => {
                sqlx::query(sql).bind(id).bind(owner).execute(pool).await?;
            }
        }
        Ok(())
    }

    /// Marks integration `id` `needs_reauth` with `reason`, if its credential is still at
    /// `read_version` (false otherwise: another refresher saved new tokens, which is a
    /// success) and it is active.
    pub async fn mark_needs_reauth(
        &self,
        id: &str,
        read_version: i64,
        reason: &str,
    ) -> Result<bool, IntegrationStoreError> {
        let sql = "UPDATE hangar_integrations SET status = 'needs_reauth', status_reason = $3, \
                       refresh_lease_until = NULL, refresh_lease_owner = NULL, updated_at = $4 \
                   WHERE id = $1 AND credential_version = $2 AND status = 'active'";
        let now = Utc::now();
        let marked = match self.db().pool() {
            Pool::Postgres(pool) => sqlx::query(sql)
                .bind(id)
                .bind(read_version)
                .bind(reason)
                .bind(now)
                .execute(pool)
                .await?
                .rows_affected(),
            Pool::Sqlite(pool) => sqlx::query(sql)
                .bind(id)
                .bind(read_version)
                .bind(reason)
                .bind(ms(now))
                .execute(pool)
                .await?
                .rows_affected(),
        };
        Ok(marked > 0)
    }
}
