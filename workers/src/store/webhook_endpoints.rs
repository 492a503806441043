//! Webhook endpoints (`hangar_webhook_endpoints`): create (with the first secret), read,
//! change, enable and disable, pause, delete, count by health.
//! Both dialects side by side; PostgreSQL selects its times as Unix milliseconds and its
//! filter as JSON text so one decoder reads either backend's rows.

use chrono::Utc;
use sqlx::Row;

use super::rows::{now_ms, opt_time, to_time};
use super::{Store, StoreError};
use crate::db::Pool;
use crate::webhooks::{Circuit, Endpoint, Health, Limits};

/// A new endpoint row with its first secret.
#[derive(Debug)]
pub struct NewEndpointRow<'a> {
    /// `ep_…`.
    pub id: &'a str,
    /// Its workspace.
    pub workspace_id: &'a str,
    /// Where deliveries go.
    pub url: &'a str,
    /// The checked filter (empty = all).
    pub event_types: &'a [String],
    /// Free text.
    pub description: &'a str,
    /// Whether its creator could subscribe to safety events.
    pub safety_allowed: bool,
    /// The secret, sealed.
    pub sealed: &'a str,
    /// The master key that sealed it.
    pub key_id: &'a str,
}

macro_rules! endpoint_columns {
    (pg) => {
        "id, workspace_id, url, array_to_json(event_types)::text AS event_types, description, \
         safety_allowed, enabled, failure_streak, max_in_flight, disabled_reason, \
         rate_limit_per_s, ordering_key_path, circuit_state, \
         (extract(epoch FROM circuit_open_until) * 1000)::bigint AS circuit_open_until, \
         (extract(epoch FROM paused_at) * 1000)::bigint AS paused_at, \
         (extract(epoch FROM disabled_at) * 1000)::bigint AS disabled_at, \
         (extract(epoch FROM last_success_at) * 1000)::bigint AS last_success_at, \
         (extract(epoch FROM last_failure_at) * 1000)::bigint AS last_failure_at, \
         (extract(epoch FROM failing_since) * 1000)::bigint AS failing_since, \
         (extract(epoch FROM created_at) * 1000)::bigint AS created_at, \
         (extract(epoch FROM updated_at) * 1000)::bigint AS updated_at"
    };
    (sqlite) => {
        "id, workspace_id, url, event_types, description, safety_allowed, enabled, \
         failure_streak, max_in_flight, disabled_reason, rate_limit_per_s, ordering_key_path, \
         circuit_state, circuit_open_until, paused_at, disabled_at, \
         last_success_at, last_failure_at, failing_since, created_at, updated_at"
    };
}

/// Decodes an endpoint row of either backend (see `endpoint_columns!`).
macro_rules! endpoint_from_row {
    ($row:expr) => {{
        let row = $row;
        let types: String = row.try_get("event_types")?;
        let event_types: Vec<String> =
            serde_json::from_str(&types).map_err(|e| StoreError::Corrupt {
                table: "hangar_webhook_endpoints",
                detail: format!("event_types: {e}"),
            })?;
        let enabled: bool = row.try_get("enabled")?;
        let paused_at = opt_time(row.try_get("paused_at")?);
        let failure_streak: i32 = row.try_get("failure_streak")?;
        Endpoint {
            id: row.try_get("id")?,
            workspace_id: row.try_get("workspace_id")?,
            url: row.try_get("url")?,
            event_types,
            description: row.try_get("description")?,
            enabled,
            health: Health::of(enabled, paused_at.is_some(), failure_streak),
            safety_allowed: row.try_get("safety_allowed")?,
            paused_at,
            disabled_at: opt_time(row.try_get("disabled_at")?),
            disabled_reason: row.try_get("disabled_reason")?,
            last_success_at: opt_time(row.try_get("last_success_at")?),
            last_failure_at: opt_time(row.try_get("last_failure_at")?),
            failing_since: opt_time(row.try_get("failing_since")?),
            failure_streak,
            max_in_flight: row.try_get("max_in_flight")?,
            rate_limit_per_s: row.try_get("rate_limit_per_s")?,
            ordering_key: row.try_get("ordering_key_path")?,
            circuit: Circuit::of(&row.try_get::<String, _>("circuit_state")?),
            circuit_open_until: opt_time(row.try_get("circuit_open_until")?),
            created_at: to_time(row.try_get("created_at")?),
            updated_at: to_time(row.try_get("updated_at")?),
        }
    }};
}

impl Store {
    /// Inserts an endpoint and its first secret in one transaction.
    pub async fn insert_webhook_endpoint(
        &self,
        new: &NewEndpointRow<'_>,
    ) -> Result<(), StoreError> {
        match self.pool() {
            Pool::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                sqlx::query(
                    "INSERT INTO hangar_webhook_endpoints (id, workspace_id, url, event_types, \
                         description, safety_allowed) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(new.id)
                .bind(new.workspace_id)
                .bind(new.url)
                .bind(new.event_types)
                .bind(new.description)
                .bind(new.safety_allowed)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO hangar_webhook_secrets (endpoint_id, seq, sealed, key_id) \
                     VALUES ($1, 1, $2, $3)",
                )
                .bind(new.id)
                .bind(new.sealed)
                .bind(new.key_id)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
            }
            Pool::Sqlite(pool) => {
                let now = now_ms();
                let types = serde_json::to_string(new.event_types).unwrap_or_else(|_| "[]".into());
                let mut tx = pool.begin().await?;
                sqlx::query(
                    "INSERT INTO hangar_webhook_endpoints (id, workspace_id, url, event_types, \
                         description, safety_allowed, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
                )
                .bind(new.id)
                .bind(new.workspace_id)
                .bind(new.url)
                .bind(types)
                .bind(new.description)
                .bind(new.safety_allowed)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO hangar_webhook_secrets (endpoint_id, seq, sealed, key_id, \
                         created_at) VALUES ($1, 1, $2, $3, $4)",
                )
                .bind(new.id)
                .bind(new.sealed)
                .bind(new.key_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
            }
        }
        Ok(())
    }

    /// One endpoint.
    pub async fn webhook_endpoint(&self, id: &str) -> Result<Option<Endpoint>, StoreError> {
        Ok(match self.pool() {
            Pool::Postgres(pool) => {
                let sql = concat!(
                    "SELECT ",
                    endpoint_columns!(pg),
                    " FROM hangar_webhook_endpoints WHERE id = $1"
                );
                match sqlx::query(sql).bind(id).fetch_optional(pool).await? {
                    Some(row) => Some(endpoint_from_row!(&row)),
                    None => None,
                }
            }
            Pool::Sqlite(pool) => {
                let sql = concat!(
                    "SELECT ",
                    endpoint_columns!(sqlite),
                    " FROM hangar_webhook_endpoints WHERE id = $1"
                );
                match sqlx::query(sql).bind(id).fetch_optional(pool).await? {
                    Some(row) => Some(endpoint_from_row!(&row)),
                    None => None,
                }
            }
        })
    }

    /// A workspace's endpoints (every workspace's with `None`), oldest first.
    pub async fn webhook_endpoints(
        &self,
        workspace: Option<&str>,
    ) -> Result<Vec<Endpoint>, StoreError> {
        let mut endpoints = Vec::new();
        match self.pool() {
            Pool::Postgres(pool) => {
                let sql = concat!(
                    "SELECT ",
                    endpoint_columns!(pg),
                    " FROM hangar_webhook_endpoints WHERE $1::text IS NULL OR workspace_id = $1 \
                     ORDER BY created_at, id"
                );
                for row in sqlx::query(sql).bind(workspace).fetch_all(pool).await? {
                    endpoints.push(endpoint_from_row!(&row));
                }
            }
            Pool::Sqlite(pool) => {
                let sql = concat!(
                    "SELECT ",
                    endpoint_columns!(sqlite),
                    " FROM hangar_webhook_endpoints WHERE $1 IS NULL OR workspace_id = $1 \
                     ORDER BY created_at, id"
                );
                for row in sqlx::query(sql).bind(workspace).fetch_all(pool).await? {
                    endpoints.push(endpoint_from_row!(&row));
                }
            }
        }
        Ok(endpoints)
    }

    /// Sets an endpoint's limits: the fields of `limits` that are present.
    pub async fn set_webhook_endpoint_limits(
        &self,
        id: &str,
        limits: &Limits,
    ) -> Result<(), StoreError> {
        let sql = "UPDATE hangar_webhook_endpoints SET \
                       max_in_flight = COALESCE($2, max_in_flight), \
                       rate_limit_per_s = CASE WHEN $3 THEN $4 ELSE rate_limit_per_s END, \
                       ordering_key_path = CASE WHEN $5 THEN $6 ELSE ordering_key_path END \
                   WHERE id = $1";
        let rate = limits.rate_limit_per_s.flatten();
        let key = limits.ordering_key.clone().flatten();
        match self.pool() {
            Pool::Postgres(pool) => {
                sqlx::query(sql)
                    .bind(id)
                    .bind(limits.max_in_flight)
                    .bind(limits.rate_limit_per_s.is_some())
                    .bind(rate)
                    .bind(limits.ordering_key.is_some())
                    .bind(key)
                    .execute(pool)
                    .await?;
            }
            Pool::Sqlite(pool) => {
                sqlx::query(sql)
                    .bind(id)
                    .bind(limits.max_in_flight)
                    .bind(limits.rate_limit_per_s.is_some())
                    .bind(rate)
                    .bind(limits.ordering_key.is_some())
                    .bind(key)
                    .execute(pool)
                    .await?;
            }
        }
        Ok(())
    }

    /// Changes an endpoint's URL, filter (with the safety right of whoever set it) and
    /// description; absent values stay.
    pub async fn update_webhook_endpoint(
        &self,
        id: &str,
        url: Option<&str>,
        event_types: Option<&[String]>,
        description: Option<&str>,
        safety_allowed: Option<bool>,
    ) -> Result<(), StoreError> {
        match self.pool() {
            Pool::Postgres(pool) => {
                sqlx::query(
                    "UPDATE hangar_webhook_endpoints SET url = COALESCE($2, url), \
                         event_types = COALESCE($3, event_types), \
                         description = COALESCE($4, description), \
                         safety_allowed = COALESCE($5, safety_allowed), updated_at = now() \
                     WHERE id = $1",
                )
                .bind(id)
                .bind(url)
                .bind(event_types)
                .bind(description)
                .bind(safety_allowed)
                .execute(pool)
                .await?;
            }
            Pool::Sqlite(pool) => {
                let types = event_types.map(|t| serde_json::to_string(t).unwrap_or_default());
                sqlx::query(
                    "UPDATE hangar_webhook_endpoints SET url = COALESCE($2, url), \
                         event_types = COALESCE($3, event_types), \
                         description = COALESCE($4, description), \
                         safety_allowed = COALESCE($5, safety_allowed), updated_at = $6 \
                     WHERE id = $1",
                )
                .bind(id)
                .bind(url)
                .bind(types)
                .bind(description)
                .bind(safety_allowed)
                .bind(now_ms())
                .execute(pool)
                .await?;
            }
        }
        Ok(())
    }

    /// Disables an enabled endpoint with a reason; false when it was not enabled.
    pub async fn disable_webhook_endpoint(
        &self,
        id: &str,
        reason: &str,
    ) -> Result<bool, StoreError> {
        let sql = "UPDATE hangar_webhook_endpoints SET enabled = false, disabled_at = $3, \
                   disabled_reason = $2, updated_at = $3 WHERE id = $1 AND enabled";
        let n = match self.pool() {
            Pool::Postgres(pool) => sqlx::query(sql)
                .bind(id)
                .bind(reason)
                .bind(Utc::now())
                .execute(pool)
                .await?
                .rows_affected(),
            Pool::Sqlite(pool) => sqlx::query(sql)
                .bind(id)
                .bind(reason)
                .bind(now_ms())
                .execute(pool)
                .await?
                .rows_affected(),
        };
        Ok(n == 1)
    }

    /// Enables an endpoint again with a clean failure record.
    pub async fn enable_webhook_endpoint(&self, id: &str) -> Result<bool, StoreError> {
        let sql = "UPDATE hangar_webhook_endpoints SET enabled = true, disabled_at = NULL, \
                   disabled_reason = NULL, failure_streak = 0, failing_since = NULL, \
                   updated_at = $2 WHERE id = $1 AND NOT enabled";
        let n = match self.pool() {
            Pool::Postgres(pool) => sqlx::query(sql)
                .bind(id)
                .bind(Utc::now())
                .execute(pool)
                .await?
                .rows_affected(),
            Pool::Sqlite(pool) => sqlx::query(sql)
                .bind(id)
                .bind(now_ms())
                .execute(pool)
                .await?
                .rows_affected(),
        };
        Ok(n == 1)
    }

    /// Pauses or resumes an endpoint; false when it already was.
    pub async fn set_webhook_endpoint_paused(
        &self,
        id: &str,
        paused: bool,
    ) -> Result<bool, StoreError> {
        let sql = if paused {
            "UPDATE hangar_webhook_endpoints SET paused_at = $2, updated_at = $2 \
             WHERE id = $1 AND paused_at IS NULL"
        } else {
            "UPDATE hangar_webhook_endpoints SET paused_at = NULL, updated_at = $2 \
             WHERE id = $1 AND paused_at IS NOT NULL"
        };
        let n = match self.pool() {
            Pool::Postgres(pool) => sqlx::query(sql)
                .bind(id)
                .bind(Utc::now())
                .execute(pool)
                .await?
                .rows_affected(),
            Pool::Sqlite(pool) => sqlx::query(sql)
                .bind(id)
                .bind(now_ms())
                .execute(pool)
                .await?
                .rows_affected(),
        };
        Ok(n == 1)
    }

    /// Deletes an endpoint with its secrets, deliveries and attempts; false when absent.
    pub async fn delete_webhook_endpoint(&self, id: &str) -> Result<bool, StoreError> {
        let sql = "DELETE FROM hangar_webhook_endpoints WHERE id = $1";
        let n = match self.pool() {
            Pool::Postgres(pool) => sqlx::query(sql)
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected(),
            Pool::Sqlite(pool) => sqlx::query(sql)
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected(),
        };
        Ok(n == 1)
    }

    /// How many endpoints are in each health (for the `hangar_webhook_endpoints` gauge).
    pub async fn webhook_health_counts(&self) -> Result<Vec<(Health, i64)>, StoreError> {
        let sql = format!(
            "SELECT CASE WHEN NOT enabled THEN 'disabled' WHEN paused_at IS NOT NULL THEN 'paused' \
                 WHEN failure_streak >= {} THEN 'degraded' ELSE 'healthy' END AS health, \
                 count(*) AS n FROM hangar_webhook_endpoints GROUP BY 1",
            crate::webhooks::endpoint::DEGRADED_AFTER
        );
        let rows: Vec<(String, i64)> = match self.pool() {
            Pool::Postgres(pool) => {
                sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .fetch_all(pool)
                    .await?
            }
            Pool::Sqlite(pool) => {
                sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .fetch_all(pool)
                    .await?
            }
        };
        Ok(Health::ALL
            .into_iter()
            .map(|h| {
                let n = rows
                    .iter()
                    .find(|(name, _)| name == h.as_str())
                    .map_or(0, |r| r.1);
                (h, n)
            })
            .collect())
    }

    /// Resolves the open alert of `incident_key`, if any.
    pub async fn resolve_alert_incident(&self, incident_key: &str) -> Result<bool, StoreError> {
        let sql = "UPDATE hangar_alerts SET resolved_at = $2 \
                   WHERE incident_key = $1 AND resolved_at IS NULL";
        let n = match self.pool() {
            Pool::Postgres(pool) => sqlx::query(sql)
                .bind(incident_key)
                .bind(Utc::now())
                .execute(pool)
                .await?
                .rows_affected(),
            Pool::Sqlite(pool) => sqlx::query(sql)
                .bind(incident_key)
                .bind(now_ms())
                .execute(pool)
                .await?
                .rows_affected(),
        };
        Ok(n > 0)
    }
}
