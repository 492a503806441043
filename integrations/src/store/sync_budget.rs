//! `hangar_sync_rate_budgets`: one row per provider account (QuickBooks: per realm) shared by
//! every job and process that calls it: requests used in the current window, calls in
//! flight, and a pause the provider imposed (a 429's `Retry-After`). Taking a request locks
//! the row (PostgreSQL `FOR UPDATE`, SQLite `BEGIN IMMEDIATE`), so two processes never
//! spend the same request. Both dialects side by side.

use std::time::Duration;

use chrono::{DateTime, Utc};
use hangar_workers::db::Pool;
use sqlx::Row;

use super::sync_store::{SyncStore, SyncStoreError, begin_immediate, ms, to_time};
use crate::sync::connector::RateLimit;

/// A call in flight is forgotten after this long without any call on the account (a process
/// that died holding it); longer than any call's timeout.
const STALE_IN_FLIGHT: chrono::Duration = chrono::Duration::seconds(120);

/// The answer to "may I call now?".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grant {
    /// Yes: one request of the window is spent and one call is in flight (release it).
    Go,
    /// No: the budget refills (or the provider's pause ends) after this long.
    Wait(Duration),
}

/// The budget row as read.
#[derive(Clone, Copy, Debug)]
struct Budget {
    window_started_at: DateTime<Utc>,
    window_used: i64,
    in_flight: i64,
    last_call_at: Option<DateTime<Utc>>,
    blocked_until: Option<DateTime<Utc>>,
}

/// The decision on a locked row: the grant and the row to write back.
fn decide(limit: &RateLimit, mut b: Budget, now: DateTime<Utc>) -> (Grant, Budget) {
    let window = chrono::Duration::from_std(limit.window).unwrap_or(chrono::Duration::MAX);
    let until = |t: DateTime<Utc>| (t - now).to_std().unwrap_or(Duration::ZERO);
    if let Some(blocked) = b.blocked_until.filter(|t| *t > now) {
        return (Grant::Wait(until(blocked)), b);
    }
    if now - b.window_started_at >= window || b.window_started_at > now {
        b.window_started_at = now;
        b.window_used = 0;
    }
    if b.last_call_at.is_none_or(|t| now - t > STALE_IN_FLIGHT) {
        b.in_flight = 0;
    }
    if b.window_used >= limit.per_window {
        return (Grant::Wait(until(b.window_started_at + window)), b);
    }
    if b.in_flight >= limit.concurrent {
        return (Grant::Wait(Duration::from_secs(1)), b);
    }
    b.window_used += 1;
    b.in_flight += 1;
    b.last_call_at = Some(now);
    (Grant::Go, b)
}

impl SyncStore {
    /// Takes one request of `limit.account`'s budget, or says how long until it refills.
    pub async fn take_request(&self, limit: &RateLimit) -> Result<Grant, SyncStoreError> {
        let now = Utc::now();
        match self.db.pool() {
            Pool::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                sqlx::query(
                    "INSERT INTO hangar_sync_rate_budgets (account, window_started_at) VALUES ($1, $2) \
                     ON CONFLICT DO NOTHING",
                )
                .bind(&limit.account)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                let row = sqlx::query(
                    "SELECT window_started_at, window_used, in_flight, last_call_at, blocked_until \
                     FROM hangar_sync_rate_budgets WHERE account = $1 FOR UPDATE",
                )
                .bind(&limit.account)
                .fetch_one(&mut *tx)
                .await?;
                let budget = Budget {
                    window_started_at: row.try_get("window_started_at")?,
                    window_used: row.try_get("window_used")?,
                    in_flight: row.try_get("in_flight")?,
                    last_call_at: row.try_get("last_call_at")?,
                    blocked_until: row.try_get("blocked_until")?,
                };
                // The time once the row is locked: a taker that waited for the lock must
                // not judge a window another taker opened meanwhile as one in its future.
                let now = Utc::now();
                let (grant, b) = decide(limit, budget, now);
                sqlx::query(
                    "UPDATE hangar_sync_rate_budgets SET window_started_at = $2, window_used = $3, \
                     in_flight = $4, last_call_at = $5 WHERE account = $1",
                )
                .bind(&limit.account)
                .bind(b.window_started_at)
                .bind(b.window_used)
                .bind(b.in_flight)
                .bind(b.last_call_at)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(grant)
            }
            Pool::Sqlite(pool) => {
                let mut tx = begin_immediate(pool).await?;
                sqlx::query(
                    "INSERT INTO hangar_sync_rate_budgets (account, window_started_at) VALUES (?1, ?2) \
                     ON CONFLICT DO NOTHING",
                )
                .bind(&limit.account)
                .bind(ms(now))
                .execute(&mut *tx)
                .await?;
                let row = sqlx::query(
                    "SELECT window_started_at, window_used, in_flight, last_call_at, blocked_until \
                     FROM hangar_sync_rate_budgets WHERE account = ?1",
                )
                .bind(&limit.account)
                .fetch_one(&mut *tx)
                .await?;
                let budget = Budget {
                    window_started_at: to_time(row.try_get("window_started_at")?),
                    window_used: row.try_get("window_used")?,
                    in_flight: row.try_get("in_flight")?,
                    last_call_at: row.try_get::<Option<i64>, _>("last_call_at")?.map(to_time),
                    blocked_until: row.try_get::<Option<i64>, _>("blocked_until")?.map(to_time),
                };
                let now = Utc::now();
                let (grant, b) = decide(limit, budget, now);
                sqlx::query(
                    "UPDATE hangar_sync_rate_budgets SET window_started_at = ?2, window_used = ?3, \
                     in_flight = ?4, last_call_at = ?5 WHERE account = ?1",
                )
                .bind(&limit.account)
                .bind(ms(b.window_started_at))
                .bind(b.window_used)
                .bind(b.in_flight)
                .bind(b.last_call_at.map(ms))
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(grant)
            }
        }
    }

    /// A call taken with [`SyncStore::take_request`] is over.
    pub async fn release_request(&self, account: &str) -> Result<(), SyncStoreError> {
        match self.db.pool() {
            Pool::Postgres(pool) => sqlx::query(
                "UPDATE hangar_sync_rate_budgets SET in_flight = GREATEST(in_flight - 1, 0) WHERE account = $1",
            )
            .bind(account)
            .execute(pool)
            .await
            .map(drop)?,
            Pool::Sqlite(pool) => sqlx::query(
                "UPDATE hangar_sync_rate_budgets SET in_flight = MAX(in_flight - 1, 0) WHERE account = ?1",
            )
            .bind(account)
            .execute(pool)
            .await
            .map(drop)?,
        }
        Ok(())
    }

    /// The provider paused the account (a 429 with `Retry-After`): nobody calls it before
    /// `until`. A later pause already recorded is kept.
    pub async fn pause_account(
        &self,
        account: &str,
        until: DateTime<Utc>,
    ) -> Result<(), SyncStoreError> {
        match self.db.pool() {
            Pool::Postgres(pool) => sqlx::query(
                "UPDATE hangar_sync_rate_budgets SET blocked_until = GREATEST(COALESCE(blocked_until, $2), $2) \
                 WHERE account = $1",
            )
            .bind(account)
            .bind(until)
            .execute(pool)
            .await
            .map(drop)?,
            Pool::Sqlite(pool) => sqlx::query(
                "UPDATE hangar_sync_rate_budgets SET blocked_until = MAX(COALESCE(blocked_until, ?2), ?2) \
                 WHERE account = ?1",
            )
            .bind(account)
            .bind(ms(until))
            .execute(pool)
            .await
            .map(drop)?,
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn limit() -> RateLimit {
        RateLimit {
            account: "quickbooks:1".into(),
            per_window: 2,
            window: Duration::from_secs(60),
            concurrent: 10,
        }
    }

    #[test]
    fn a_spent_window_waits_until_it_refills_and_a_pause_is_kept() {
        let t0 = Utc.with_ymd_and_hms(2026, 11, 20, 10, 0, 0).unwrap();
        let mut b = Budget {
            window_started_at: t0,
            window_used: 0,
            in_flight: 0,
            last_call_at: None,
            blocked_until: None,
        };
        for _ in 0..2 {
            let (g, next) = decide(&limit(), b, t0 + chrono::Duration::seconds(10));
            assert_eq!(g, Grant::Go);
            b = next;
        }
        let (g, _) = decide(&limit(), b, t0 + chrono::Duration::seconds(10));
        assert_eq!(g, Grant::Wait(Duration::from_secs(50)));
        let (g, b2) = decide(&limit(), b, t0 + chrono::Duration::seconds(61));
        assert_eq!((g, b2.window_used), (Grant::Go, 1));
        b.blocked_until = Some(t0 + chrono::Duration::seconds(90));
        let (g, _) = decide(&limit(), b, t0 + chrono::Duration::seconds(61));
        assert_eq!(g, Grant::Wait(Duration::from_secs(29)));
    }

    #[test]
    fn ten_calls_at_once_and_a_dead_holder_is_forgotten() {
        let t0 = Utc.with_ymd_and_hms(2026, 11, 20, 10, 0, 0).unwrap();
        let limit = RateLimit {
            per_window: 500,
            ..limit()
        };
        let busy = Budget {
            window_started_at: t0,
            window_used: 10,
            in_flight: 10,
            last_call_at: Some(t0),
            blocked_until: None,
        };
        let (g, b) = decide(&limit, busy, t0 + chrono::Duration::seconds(1));
        assert_eq!(
            (g, b.window_used),
            (Grant::Wait(Duration::from_secs(1)), 10)
        );
        // Nobody called for longer than any call lasts: the holders died.
        let (g, b) = decide(&limit, busy, t0 + chrono::Duration::seconds(121));
        assert_eq!((g, b.in_flight), (Grant::Go, 1));
    }
}
