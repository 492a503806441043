//! `hangar_sync_rate_budgets`: one row per provider account (QuickBooks: per realm) shared by
//! every job and process that calls it: a paced budget (GCRA), calls in flight, and a pause
//! the provider imposed (a 429's `Retry-After`). Taking a request locks the row (PostgreSQL
//! `FOR UPDATE`, SQLite `BEGIN IMMEDIATE`), so two processes never spend the same request.
//! Both dialects side by side.
//!
//! The pace ([`Pace`]): requests are spaced at 95 % of the provider's rate with a burst of
//! the other 5 % (QuickBooks' 500 a minute: one every 126.3 ms, 24 at once), so that *any*
//! window of the provider's length holds fewer requests than its limit, wherever it starts
//! (a fixed window that opens at its first call lets a burst at its edge fall within one
//! minute of the previous window's late calls). A caller reserves the next free slot when it
//! is near (at most the `max_ahead` it is ready to sleep) and calls at that slot; a slot
//! further off is not reserved, and the caller yields until then.

use std::time::Duration;

use chrono::{DateTime, Utc};
use hangar_workers::db::Pool;
use sqlx::Row;

use super::sync_store::{SyncStore, SyncStoreError, begin_immediate, ms, to_time};
use crate::sync::connector::RateLimit;

/// A call in flight is forgotten after this long without any call on the account (a process
/// that died holding it); longer than any call's timeout.
const STALE_IN_FLIGHT: chrono::Duration = chrono::Duration::seconds(120);

/// The share of the provider's rate the budget paces at (the rest is the burst).
const PACED_SHARE: f64 = 0.95;

/// The answer to "may I call?".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grant {
    /// Yes, after this long (zero: now): the request is reserved and counted in flight
    /// (release it after the call).
    Go(Duration),
    /// Not within the time the caller would wait: the next slot (or the end of the
    /// provider's pause, or of a full house of calls in flight) is this far off. Nothing was
    /// taken.
    Wait(Duration),
}

/// The pace of a [`RateLimit`]: one request per `interval`, `burst` at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pace {
    /// The time one request pays for.
    pub interval: chrono::Duration,
    /// Requests that may go at once from an idle budget.
    pub burst: i64,
}

impl Pace {
    /// 95 % of `limit`'s rate (the interval rounded up to the microsecond), with a burst of
    /// what is left of the limit (at least 1): `window / interval + burst` stays under
    /// `per_window`, so no window of that length holds `per_window` requests.
    pub fn of(limit: &RateLimit) -> Pace {
        let window_us = i64::try_from(limit.window.as_micros()).unwrap_or(i64::MAX);
        let per_window = limit.per_window.max(1);
        let interval_us = ((window_us as f64) / (PACED_SHARE * per_window as f64))
            .ceil()
            .max(1.0) as i64;
        let paced = (window_us as f64 / interval_us as f64).ceil() as i64;
        Pace {
            interval: chrono::Duration::microseconds(interval_us),
            burst: (per_window - paced).max(1),
        }
    }
}

/// The budget row as read.
#[derive(Clone, Copy, Debug)]
struct Budget {
    /// The theoretical arrival time: requests are paid for up to here (`None`: nothing owed).
    paced_until: Option<DateTime<Utc>>,
    in_flight: i64,
    last_call_at: Option<DateTime<Utc>>,
    blocked_until: Option<DateTime<Utc>>,
}

/// The decision on a locked row for a caller ready to wait `max_ahead` for its slot: the
/// grant and the row to write back.
fn decide(
    limit: &RateLimit,
    mut b: Budget,
    now: DateTime<Utc>,
    max_ahead: Duration,
) -> (Grant, Budget) {
    let until = |t: DateTime<Utc>| (t - now).to_std().unwrap_or(Duration::ZERO);
    if let Some(blocked) = b.blocked_until.filter(|t| *t > now) {
        return (Grant::Wait(until(blocked)), b);
    }
    if b.last_call_at.is_none_or(|t| now - t > STALE_IN_FLIGHT) {
        b.in_flight = 0;
    }
    if b.in_flight >= limit.concurrent {
        return (Grant::Wait(Duration::from_secs(1)), b);
    }
    let pace = Pace::of(limit);
    let paid = b.paced_until.filter(|t| *t > now).unwrap_or(now);
    // The slot: when the debt is at most the burst's worth (one interval per request).
    let slot = (paid - pace.interval * (pace.burst - 1) as i32).max(now);
    let ahead = until(slot);
    if ahead > max_ahead {
        return (Grant::Wait(ahead), b);
    }
    b.paced_until = Some(paid + pace.interval);
    b.in_flight += 1;
    b.last_call_at = Some(now);
    (Grant::Go(ahead), b)
}

/// A time as this table's SQLite column keeps it: Unix microseconds.
fn us(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// Unix microseconds, read back.
fn from_us(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

impl SyncStore {
    /// Takes one request of `limit.account`'s budget for a caller ready to wait up to
    /// `max_ahead` for its slot: [`Grant::Go`] with the time to wait before calling, or
    /// [`Grant::Wait`] with how long until a request can be had (nothing taken).
    pub async fn take_request(
        &self,
        limit: &RateLimit,
        max_ahead: Duration,
    ) -> Result<Grant, SyncStoreError> {
        match self.db.pool() {
            Pool::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                sqlx::query(
                    "INSERT INTO hangar_sync_rate_budgets (account) VALUES ($1) ON CONFLICT DO NOTHING",
                )
                .bind(&limit.account)
                .execute(&mut *tx)
                .await?;
                let row = sqlx::query(
                    "SELECT paced_until, in_flight, last_call_at, blocked_until \
                     FROM hangar_sync_rate_budgets WHERE account = $1 FOR UPDATE",
                )
                .bind(&limit.account)
                .fetch_one(&mut *tx)
                .await?;
                let budget = Budget {
                    paced_until: row.try_get("paced_until")?,
                    in_flight: row.try_get("in_flight")?,
                    last_call_at: row.try_get("last_call_at")?,
                    blocked_until: row.try_get("blocked_until")?,
                };
                // The time once the row is locked: a taker that waited for the lock must not
                // judge a slot another taker took meanwhile as one in its future.
                let now = Utc::now();
                let (grant, b) = decide(limit, budget, now, max_ahead);
                sqlx::query(
                    "UPDATE hangar_sync_rate_budgets SET paced_until = $2, in_flight = $3, \
                     last_call_at = $4 WHERE account = $1",
                )
                .bind(&limit.account)
                .bind(b.paced_until)
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
                    "INSERT INTO hangar_sync_rate_budgets (account) VALUES (?1) ON CONFLICT DO NOTHING",
                )
                .bind(&limit.account)
                .execute(&mut *tx)
                .await?;
                let row = sqlx::query(
                    "SELECT paced_until, in_flight, last_call_at, blocked_until \
                     FROM hangar_sync_rate_budgets WHERE account = ?1",
                )
                .bind(&limit.account)
                .fetch_one(&mut *tx)
                .await?;
                let budget = Budget {
                    paced_until: row.try_get::<Option<i64>, _>("paced_until")?.map(from_us),
                    in_flight: row.try_get("in_flight")?,
                    last_call_at: row.try_get::<Option<i64>, _>("last_call_at")?.map(to_time),
                    blocked_until: row.try_get::<Option<i64>, _>("blocked_until")?.map(to_time),
                };
                // The time once the row is locked: a taker that waited for the lock must not
                // judge a slot another taker took meanwhile as one in its future.
                let now = Utc::now();
                let (grant, b) = decide(limit, budget, now, max_ahead);
                sqlx::query(
                    "UPDATE hangar_sync_rate_budgets SET paced_until = ?2, in_flight = ?3, \
                     last_call_at = ?4 WHERE account = ?1",
                )
                .bind(&limit.account)
                .bind(b.paced_until.map(us))
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

    fn quickbooks() -> RateLimit {
        RateLimit {
            account: "quickbooks:1".into(),
            per_window: 500,
            window: Duration::from_secs(60),
            concurrent: 10,
        }
    }

    fn idle() -> Budget {
        Budget {
            paced_until: None,
            in_flight: 0,
            last_call_at: None,
            blocked_until: None,
        }
    }

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 20, 10, 0, 0).unwrap()
    }

    #[test]
    fn the_pace_is_95_percent_with_the_rest_as_burst() {
        let pace = Pace::of(&quickbooks());
        assert_eq!(
            (pace.interval, pace.burst),
            (chrono::Duration::microseconds(126_316), 25)
        );
        let stripe_test = RateLimit {
            per_window: 25,
            window: Duration::from_secs(1),
            ..quickbooks()
        };
        assert_eq!(Pace::of(&stripe_test).burst, 1);
        let salesforce = RateLimit {
            per_window: 15_000,
            window: Duration::from_secs(24 * 3600),
            ..quickbooks()
        };
        assert_eq!(Pace::of(&salesforce).burst, 750);
    }

    #[test]
    fn a_burst_goes_at_once_then_each_request_waits_its_slot() {
        let limit = RateLimit {
            concurrent: 100,
            ..quickbooks()
        };
        let mut b = idle();
        for _ in 0..25 {
            let (g, next) = decide(&limit, b, t0(), Duration::ZERO);
            assert_eq!(g, Grant::Go(Duration::ZERO));
            b = next;
        }
        // The 26th: its slot is one interval off. A caller that will not wait takes nothing.
        let (g, same) = decide(&limit, b, t0(), Duration::ZERO);
        assert_eq!(g, Grant::Wait(Duration::from_micros(126_316)));
        assert_eq!((same.paced_until, same.in_flight), (b.paced_until, 25));
        // One ready to wait reserves it, and the next one after it.
        let (g, b) = decide(&limit, b, t0(), Duration::from_secs(1));
        assert_eq!(g, Grant::Go(Duration::from_micros(126_316)));
        let (g, _) = decide(&limit, b, t0(), Duration::from_secs(1));
        assert_eq!(g, Grant::Go(Duration::from_micros(2 * 126_316)));
        // A minute later the budget is idle again: a whole burst.
        let (g, _) = decide(
            &limit,
            b,
            t0() + chrono::Duration::seconds(60),
            Duration::ZERO,
        );
        assert_eq!(g, Grant::Go(Duration::ZERO));
    }

    /// A greedy caller (each call as soon as its slot comes, with idle spells that let the
    /// burst refill, the edge a fixed window got wrong): no 60 s anywhere holds 500
    /// requests, and over the whole run it uses at least 95 % of the provider's rate.
    #[test]
    fn no_minute_holds_the_providers_limit_and_95_percent_is_used() {
        let limit = quickbooks();
        let mut b = idle();
        let mut now = t0();
        let mut calls: Vec<DateTime<Utc>> = Vec::new();
        let mut idle_spells = chrono::Duration::zero();
        for i in 0..12_000u32 {
            if i % 1_500 == 1_499 {
                let spell = chrono::Duration::seconds(7 + i64::from(i % 40));
                now += spell;
                idle_spells += spell;
            }
            let (g, next) = decide(&limit, b, now, Duration::from_secs(2));
            let Grant::Go(after) = g else {
                panic!("a caller ready to wait two seconds always gets a slot: {g:?}")
            };
            now += chrono::Duration::from_std(after).unwrap();
            calls.push(now);
            // The call lasts a few milliseconds, then is released.
            now += chrono::Duration::milliseconds(i64::from(i % 7));
            b = Budget {
                in_flight: next.in_flight - 1,
                ..next
            };
        }
        let minute = chrono::Duration::seconds(60);
        let mut most = 0;
        let mut start = 0;
        for (end, at) in calls.iter().enumerate() {
            while *at - calls[start] >= minute {
                start += 1;
            }
            most = most.max(end - start + 1);
        }
        assert!(most < 500, "{most} requests in one minute");
        let busy = *calls.last().unwrap() - calls[0] - idle_spells;
        let rate = calls.len() as f64 / (busy.num_milliseconds() as f64 / 60_000.0);
        assert!(rate >= 475.0, "{rate:.1} requests a minute");
    }

    #[test]
    fn a_provider_pause_is_kept() {
        let mut b = idle();
        b.blocked_until = Some(t0() + chrono::Duration::seconds(90));
        let (g, _) = decide(
            &quickbooks(),
            b,
            t0() + chrono::Duration::seconds(61),
            Duration::from_secs(60),
        );
        assert_eq!(g, Grant::Wait(Duration::from_secs(29)));
        let (g, _) = decide(
            &quickbooks(),
            b,
            t0() + chrono::Duration::seconds(90),
            Duration::ZERO,
        );
        assert_eq!(g, Grant::Go(Duration::ZERO));
    }

    #[test]
    fn ten_calls_at_once_and_a_dead_holder_is_forgotten() {
        let busy = Budget {
            in_flight: 10,
            last_call_at: Some(t0()),
            ..idle()
        };
        let (g, b) = decide(
            &quickbooks(),
            busy,
            t0() + chrono::Duration::seconds(1),
            Duration::ZERO,
        );
        assert_eq!((g, b.in_flight), (Grant::Wait(Duration::from_secs(1)), 10));
        // Nobody called for longer than any call lasts: the holders died.
        let (g, b) = decide(
            &quickbooks(),
            busy,
            t0() + chrono::Duration::seconds(121),
            Duration::ZERO,
        );
        assert_eq!((g, b.in_flight), (Grant::Go(Duration::ZERO), 1));
    }
}
