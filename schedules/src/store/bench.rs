//! What `hangar bench planner` needs of the planner's table: count the schedules of a name
//! prefix and those that planned a slot, make them all due now, delete them. Names are
//! matched with `LIKE … ESCAPE '\'`; the SQL is the same on both backends but for its
//! parameters and SQLite's times in integer Unix milliseconds.

use chrono::Utc;
use hangar_workers::db::Pool;

use super::rows::ms;
use super::{ScheduleError, Schedules};

impl Schedules {
    /// How many schedules have a name starting with `prefix`, and how many of those have
    /// enqueued a job for some slot (`hangar bench planner` waits on it).
    pub async fn count_planned(&self, prefix: &str) -> Result<(u64, u64), ScheduleError> {
        let name_like = like_prefix(prefix);
        let (all, planned): (i64, i64) = match self.db.pool() {
            Pool::Postgres(pool) => {
                sqlx::query_as(
                    "SELECT count(*), count(last_slot_at) FROM hangar_schedules \
                     WHERE name LIKE $1 ESCAPE '\\'",
                )
                .bind(&name_like)
                .fetch_one(pool)
                .await?
            }
            Pool::Sqlite(pool) => {
                sqlx::query_as(
                    "SELECT count(*), count(last_slot_at) FROM hangar_schedules \
                     WHERE name LIKE ?1 ESCAPE '\\'",
                )
                .bind(&name_like)
                .fetch_one(pool)
                .await?
            }
        };
        Ok((all as u64, planned as u64))
    }

    /// Makes every schedule whose name starts with `prefix` due now, as if it had never
    /// enqueued a job (`hangar bench planner`'s burst); returns how many.
    pub async fn make_due_now(&self, prefix: &str) -> Result<u64, ScheduleError> {
        let name_like = like_prefix(prefix);
        let done = match self.db.pool() {
            Pool::Postgres(pool) => sqlx::query(
                "UPDATE hangar_schedules \
                     SET next_run_at = now(), last_slot_at = NULL, last_job_id = NULL \
                     WHERE name LIKE $1 ESCAPE '\\'",
            )
            .bind(&name_like)
            .execute(pool)
            .await?
            .rows_affected(),
            Pool::Sqlite(pool) => sqlx::query(
                "UPDATE hangar_schedules \
                     SET next_run_at = ?2, last_slot_at = NULL, last_job_id = NULL \
                     WHERE name LIKE ?1 ESCAPE '\\'",
            )
            .bind(&name_like)
            .bind(ms(Utc::now()))
            .execute(pool)
            .await?
            .rows_affected(),
        };
        Ok(done)
    }

    /// Deletes every schedule whose name starts with `prefix`; returns how many.
    pub async fn delete_prefixed(&self, prefix: &str) -> Result<u64, ScheduleError> {
        let name_like = like_prefix(prefix);
        let done = match self.db.pool() {
            Pool::Postgres(pool) => {
                sqlx::query("DELETE FROM hangar_schedules WHERE name LIKE $1 ESCAPE '\\'")
                    .bind(&name_like)
                    .execute(pool)
                    .await?
                    .rows_affected()
            }
            Pool::Sqlite(pool) => {
                sqlx::query("DELETE FROM hangar_schedules WHERE name LIKE ?1 ESCAPE '\\'")
                    .bind(&name_like)
                    .execute(pool)
                    .await?
                    .rows_affected()
            }
        };
        Ok(done)
    }
}

/// A `LIKE` pattern (escape `\`) matching the names that start with `prefix`.
fn like_prefix(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}
