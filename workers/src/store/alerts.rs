//! Alerts as operators read them (`hangar_alerts`): one alert by id, a page of alerts filtered
//! by workspace and state in SQL (newest first, with the id as the cursor), the count per
//! state, and the acknowledgement. Both dialects side by side; times are read as Unix
//! milliseconds on both so one decoder serves. Alerts are raised and resolved by the failure
//! handling and the completer (see the backends), never here.
//!
//! An alert is in exactly one [`AlertState`], derived from its two times: `resolved_at` set
//! means resolved (whether or not someone acknowledged it), else `acknowledged_at` set means
//! acknowledged, else open.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{AlertRow, Store, StoreError};
use crate::alerts::model::{AlertKind, Severity};
use crate::db::Pool;
use crate::job::JobId;

/// How many alerts one page holds unless the caller asks for another size.
pub const DEFAULT_ALERT_PAGE: i64 = 100;
/// The most alerts one page may hold.
pub const MAX_ALERT_PAGE: i64 = 1_000;

/// Where an alert is in its life. In: the failure handling raises an alert `open`; an
/// operator's acknowledgement moves it to `acknowledged`; the condition clearing (a later
/// success, a channel enabled again) moves either to `resolved`, which is final (a repeat of
/// the condition opens a new alert).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    /// Not acknowledged and not resolved: someone should look.
    Open,
    /// Acknowledged by an operator; the condition has not cleared yet.
    Acknowledged,
    /// The condition cleared.
    Resolved,
}

impl AlertState {
    /// Every state, in lifecycle order.
    pub const ALL: [AlertState; 3] = [
        AlertState::Open,
        AlertState::Acknowledged,
        AlertState::Resolved,
    ];

    /// The name in the API, the CLI and the alert JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Open => "open",
            AlertState::Acknowledged => "acknowledged",
            AlertState::Resolved => "resolved",
        }
    }

    /// The state of an alert with these times.
    pub fn of(
        acknowledged_at: Option<DateTime<Utc>>,
        resolved_at: Option<DateTime<Utc>>,
    ) -> AlertState {
        match (acknowledged_at, resolved_at) {
            (_, Some(_)) => AlertState::Resolved,
            (Some(_), None) => AlertState::Acknowledged,
            (None, None) => AlertState::Open,
        }
    }

    /// The SQL condition of this state (the same on both backends).
    fn condition(self) -> &'static str {
        match self {
            AlertState::Open => "(resolved_at IS NULL AND acknowledged_at IS NULL)",
            AlertState::Acknowledged => "(resolved_at IS NULL AND acknowledged_at IS NOT NULL)",
            AlertState::Resolved => "(resolved_at IS NOT NULL)",
        }
    }
}

impl fmt::Display for AlertState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A state name that is not one of [`AlertState::ALL`].
#[derive(Debug, thiserror::Error)]
#[error("unknown alert state '{0}' (expected one of open, acknowledged, resolved)")]
pub struct UnknownAlertState(pub String);

impl FromStr for AlertState {
    type Err = UnknownAlertState;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AlertState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| UnknownAlertState(s.to_owned()))
    }
}

/// Which alerts a page holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertFilter {
    /// Only this workspace's alerts; `None` = every workspace's (and the global ones).
    pub workspace_id: Option<String>,
    /// Only alerts in one of these states; empty = every state.
    pub states: Vec<AlertState>,
    /// Only alerts older than this id (the cursor of the previous page).
    pub before: Option<i64>,
    /// At most this many (1 to [`MAX_ALERT_PAGE`]).
    pub limit: i64,
}

impl Default for AlertFilter {
    /// The first page of every workspace's alerts in every state.
    fn default() -> Self {
        AlertFilter {
            workspace_id: None,
            states: Vec::new(),
            before: None,
            limit: DEFAULT_ALERT_PAGE,
        }
    }
}

/// One page of alerts, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertPage {
    /// The alerts.
    pub alerts: Vec<AlertRow>,
    /// The `before` of the next page; `None` when this page is the last.
    pub next_before: Option<i64>,
}

/// An alert to raise that no job failure raises (a channel disabled, an operator's tool).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAlert {
    /// The workspace it concerns; `None` = the operator's (every workspace).
    pub workspace_id: Option<String>,
    /// What kind of condition.
    pub kind: AlertKind,
    /// How urgent.
    pub severity: Severity,
    /// What happened, for a person.
    pub message: String,
    /// One open alert per key: raising it again while open counts an occurrence.
    pub incident_key: String,
    /// The integration it concerns (its provider id), if any.
    pub integration: Option<String>,
}

/// An alert row as the queries here read it: times in Unix milliseconds.
type AlertTuple = (
    i64,
    Option<String>,
    String,
    String,
    String,
    Option<i64>,
    Option<String>,
    i64,
    i64,
    i32,
    Option<i64>,
    Option<i64>,
);

fn to_time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// The typed alert of a row; a kind or severity that is not one is a corrupt row.
fn from_tuple(row: AlertTuple) -> Result<AlertRow, StoreError> {
    let (id, workspace_id, kind, severity, message, job_id, integration) =
        (row.0, row.1, row.2, row.3, row.4, row.5, row.6);
    let (created_ms, last_seen_ms, occurrences, acknowledged_ms, resolved_ms) =
        (row.7, row.8, row.9, row.10, row.11);
    let corrupt = |detail: String| StoreError::Corrupt {
        table: "hangar_alerts",
        detail: format!("alert {id}: {detail}"),
    };
    let kind = kind.parse().map_err(|e| corrupt(format!("{e}")))?;
    let severity = severity
        .parse()
        .map_err(|e| corrupt(format!("severity {e}")))?;
    let acknowledged_at = acknowledged_ms.map(to_time);
    let resolved_at = resolved_ms.map(to_time);
    Ok(AlertRow {
        id,
        workspace_id,
        kind,
        severity,
        message,
        job_id: job_id.map(JobId),
        integration,
        created_at: to_time(created_ms),
        last_seen_at: to_time(last_seen_ms),
        occurrences,
        acknowledged_at,
        resolved_at,
        state: AlertState::of(acknowledged_at, resolved_at),
    })
}

/// `SELECT … FROM hangar_alerts` with every time column as Unix milliseconds.
fn select(store: &Store) -> String {
    let ms = |column: &str| alert_ms(store, column);
    format!(
        "SELECT id, workspace_id, kind, severity, message, job_id, integration, {}, {}, \
             occurrences, {}, {} FROM hangar_alerts",
        ms("created_at"),
        ms("last_seen_at"),
        ms("acknowledged_at"),
        ms("resolved_at")
    )
}

/// The `WHERE` clause of `filter` (the cursor only with `cursor`), its parameters numbered
/// workspace first, then the cursor; it binds only what is present.
fn conditions(filter: &AlertFilter, cursor: bool) -> String {
    let mut parts = Vec::new();
    let mut n = 0;
    if filter.workspace_id.is_some() {
        n += 1;
        parts.push(format!("workspace_id = ${n}"));
    }
    if cursor && filter.before.is_some() {
        n += 1;
        parts.push(format!("id < ${n}"));
    }
    let every = AlertState::ALL.iter().all(|s| filter.states.contains(s));
    if !filter.states.is_empty() && !every {
        let states: Vec<&str> = filter.states.iter().map(|s| s.condition()).collect();
        parts.push(format!("({})", states.join(" OR ")));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", parts.join(" AND "))
    }
}

/// A time column of `hangar_alerts` as Unix milliseconds, on `store`'s backend.
pub(super) fn alert_ms(store: &Store, column: &str) -> String {
    match store.pool() {
        Pool::Postgres(_) => format!("(EXTRACT(EPOCH FROM {column}) * 1000)::BIGINT"),
        Pool::Sqlite(_) => column.to_owned(),
    }
}

impl Store {
    /// One alert by id ([`StoreError::AlertNotFound`] when there is none).
    pub async fn alert(&self, id: i64) -> Result<AlertRow, StoreError> {
        let sql = format!("{} WHERE id = $1", select(self));
        let sql = sqlx::AssertSqlSafe(sql);
        let row: Option<AlertTuple> = match self.pool() {
            Pool::Postgres(pool) => sqlx::query_as(sql).bind(id).fetch_optional(pool).await?,
            Pool::Sqlite(pool) => sqlx::query_as(sql).bind(id).fetch_optional(pool).await?,
        };
        row.map(from_tuple).ok_or(StoreError::AlertNotFound(id))?
    }

    /// A page of alerts, newest first: the workspace and states are filtered in SQL, so a
    /// page is full whenever that many alerts match, however many others there are.
    pub async fn list_alerts(&self, filter: &AlertFilter) -> Result<AlertPage, StoreError> {
        let limit = filter.limit.clamp(1, MAX_ALERT_PAGE);
        // One more than asked tells whether another page follows.
        let sql = format!(
            "{}{} ORDER BY id DESC LIMIT {}",
            select(self),
            conditions(filter, true),
            limit + 1
        );
        let sql = sqlx::AssertSqlSafe(sql);
        // The parameters `conditions` numbered: the workspace, then the cursor.
        let (workspace, before) = (&filter.workspace_id, filter.before);
        let rows: Vec<AlertTuple> = match self.pool() {
            Pool::Postgres(pool) => {
                let mut query = sqlx::query_as(sql);
                if let Some(workspace) = workspace {
                    query = query.bind(workspace);
                }
                if let Some(before) = before {
                    query = query.bind(before);
                }
                query.fetch_all(pool).await?
            }
            Pool::Sqlite(pool) => {
                let mut query = sqlx::query_as(sql);
                if let Some(workspace) = workspace {
                    query = query.bind(workspace);
                }
                if let Some(before) = before {
                    query = query.bind(before);
                }
                query.fetch_all(pool).await?
            }
        };
        let more = rows.len() as i64 > limit;
        let alerts: Vec<AlertRow> = rows
            .into_iter()
            .take(limit as usize)
            .map(from_tuple)
            .collect::<Result<_, _>>()?;
        let next_before = if more {
            alerts.last().map(|a| a.id)
        } else {
            None
        };
        Ok(AlertPage {
            alerts,
            next_before,
        })
    }

    /// How many alerts match `filter` (its cursor and limit are ignored).
    pub async fn count_alerts(&self, filter: &AlertFilter) -> Result<i64, StoreError> {
        let sql = format!(
            "SELECT count(*) FROM hangar_alerts{}",
            conditions(filter, false)
        );
        let sql = sqlx::AssertSqlSafe(sql);
        Ok(match self.pool() {
            Pool::Postgres(pool) => {
                let mut query = sqlx::query_scalar(sql);
                if let Some(workspace) = &filter.workspace_id {
                    query = query.bind(workspace);
                }
                query.fetch_one(pool).await?
            }
            Pool::Sqlite(pool) => {
                let mut query = sqlx::query_scalar(sql);
                if let Some(workspace) = &filter.workspace_id {
                    query = query.bind(workspace);
                }
                query.fetch_one(pool).await?
            }
        })
    }

    /// The newest alerts of every workspace, at most [`MAX_ALERT_PAGE`]: the open and
    /// acknowledged ones, or every state with `all`. A first page of [`Store::list_alerts`]
    /// for tools and tests; operators page through [`Store::list_alerts`].
    pub async fn alerts(&self, all: bool) -> Result<Vec<AlertRow>, StoreError> {
        let states = if all {
            Vec::new()
        } else {
            vec![AlertState::Open, AlertState::Acknowledged]
        };
        let filter = AlertFilter {
            states,
            limit: MAX_ALERT_PAGE,
            ..AlertFilter::default()
        };
        Ok(self.list_alerts(&filter).await?.alerts)
    }

    /// Raises `alerts` in one transaction and returns their ids, in order. An alert whose
    /// incident is still open is not raised twice: the open one's `occurrences` and
    /// `last_seen_at` go up instead.
    pub async fn raise_alerts(&self, alerts: &[NewAlert]) -> Result<Vec<i64>, StoreError> {
        let upsert = "ON CONFLICT (incident_key) WHERE resolved_at IS NULL DO UPDATE SET \
             occurrences = hangar_alerts.occurrences + 1, last_seen_at = EXCLUDED.last_seen_at \
             RETURNING id";
        let mut ids = Vec::with_capacity(alerts.len());
        match self.pool() {
            Pool::Postgres(pool) => {
                let sql = format!(
                    "INSERT INTO hangar_alerts (workspace_id, kind, severity, message, \
                         incident_key, integration) VALUES ($1, $2, $3, $4, $5, $6) {upsert}"
                );
                let mut tx = pool.begin().await?;
                for alert in alerts {
                    let id: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.as_str()))
                        .bind(&alert.workspace_id)
                        .bind(alert.kind.as_str())
                        .bind(alert.severity.as_str())
                        .bind(&alert.message)
                        .bind(&alert.incident_key)
                        .bind(&alert.integration)
                        .fetch_one(&mut *tx)
                        .await?;
                    ids.push(id);
                }
                tx.commit().await?;
            }
            Pool::Sqlite(pool) => {
                let sql = format!(
                    "INSERT INTO hangar_alerts (workspace_id, kind, severity, message, \
                         incident_key, integration, created_at, last_seen_at) \
                     VALUES ($1, $2, $3, $4, $5, $7, $6, $6) {upsert}"
                );
                let now = Utc::now().timestamp_millis();
                let mut tx = pool.begin().await?;
                for alert in alerts {
                    let id: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.as_str()))
                        .bind(&alert.workspace_id)
                        .bind(alert.kind.as_str())
                        .bind(alert.severity.as_str())
                        .bind(&alert.message)
                        .bind(&alert.incident_key)
                        .bind(now)
                        .bind(&alert.integration)
                        .fetch_one(&mut *tx)
                        .await?;
                    ids.push(id);
                }
                tx.commit().await?;
            }
        }
        Ok(ids)
    }

    /// Resolves the open alert of `incident_key` (the condition cleared: a connection that
    /// recovered), appending `note` to its message (what the `resolved` notice the dispatcher
    /// then sends says, e.g. "recovered: new credentials saved"). False when none was open.
    pub async fn resolve_incident(
        &self,
        incident_key: &str,
        note: &str,
    ) -> Result<bool, StoreError> {
        let resolved = match self.pool() {
            Pool::Postgres(pool) => sqlx::query(
                "UPDATE hangar_alerts SET resolved_at = now(), message = message || ' — ' || $2 \
                 WHERE incident_key = $1 AND resolved_at IS NULL",
            )
            .bind(incident_key)
            .bind(note)
            .execute(pool)
            .await?
            .rows_affected(),
            Pool::Sqlite(pool) => sqlx::query(
                "UPDATE hangar_alerts SET resolved_at = $2, message = message || ' — ' || $3 \
                 WHERE incident_key = $1 AND resolved_at IS NULL",
            )
            .bind(incident_key)
            .bind(Utc::now().timestamp_millis())
            .bind(note)
            .execute(pool)
            .await?
            .rows_affected(),
        };
        Ok(resolved > 0)
    }

    /// Acknowledges an alert (idempotent: the first acknowledgement's time stays).
    pub async fn ack_alert(&self, id: i64) -> Result<AlertRow, StoreError> {
        let updated = match self.pool() {
            Pool::Postgres(pool) => sqlx::query(
                "UPDATE hangar_alerts SET acknowledged_at = COALESCE(acknowledged_at, now()) \
                 WHERE id = $1",
            )
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected(),
            Pool::Sqlite(pool) => sqlx::query(
                "UPDATE hangar_alerts SET acknowledged_at = COALESCE(acknowledged_at, $2) \
                 WHERE id = $1",
            )
            .bind(id)
            .bind(Utc::now().timestamp_millis())
            .execute(pool)
            .await?
            .rows_affected(),
        };
        if updated == 0 {
            return Err(StoreError::AlertNotFound(id));
        }
        self.alert(id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_follows_the_two_times() {
        let t = Some(Utc::now());
        assert_eq!(AlertState::of(None, None), AlertState::Open);
        assert_eq!(AlertState::of(t, None), AlertState::Acknowledged);
        assert_eq!(AlertState::of(None, t), AlertState::Resolved);
        assert_eq!(AlertState::of(t, t), AlertState::Resolved);
        for state in AlertState::ALL {
            assert_eq!(state.as_str().parse::<AlertState>().unwrap(), state);
        }
        assert!("closed".parse::<AlertState>().is_err());
    }

    #[test]
    fn conditions_bind_only_what_is_present_in_order() {
        let mut filter = AlertFilter::default();
        assert_eq!(conditions(&filter, true), "");
        filter.before = Some(7);
        assert_eq!(conditions(&filter, true), " WHERE id < $1");
        assert_eq!(conditions(&filter, false), "");
        filter.workspace_id = Some("ws".to_owned());
        filter.states = vec![AlertState::Open];
        assert_eq!(
            conditions(&filter, true),
            " WHERE workspace_id = $1 AND id < $2 AND \
             ((resolved_at IS NULL AND acknowledged_at IS NULL))"
        );
        filter.states = AlertState::ALL.to_vec();
        assert_eq!(
            conditions(&filter, false),
            " WHERE workspace_id = $1",
            "every state is no filter"
        );
    }
}
