//! The schedules API: upsert by name (one statement for many rows, also behind the file
//! sync, whose pruning is here too), change the spec, delete, get and list (an operator's
//! enable, disable and run now are in `operator.rs`).
//! Both dialects side by side: batches travel as `UNNEST` arrays on PostgreSQL and as one
//! JSON array read with `json_each` on SQLite; PostgreSQL takes `now()` where SQLite binds
//! this process's clock in integer Unix milliseconds.

use chrono::Utc;
use hangar_workers::db::Pool;

use super::rows::{
    ROW_COLUMNS, begin_immediate, last_job_states, listed_job_ids, ms, row_from_pg, row_from_sqlite,
};
use super::{
    NewSchedule, Prepared, Prune, ScheduleError, ScheduleFilter, ScheduleRow, Schedules, Source,
    SyncCounts, prepare,
};
use crate::file::FileSchedule;
use crate::spec::Spec;

impl Schedules {
    /// Creates or replaces the API schedule `schedule.name`. A changed spec recomputes the
    /// next due time; an unchanged one keeps it (no run is lost or added by a re-upsert).
    pub async fn upsert(&self, schedule: &NewSchedule) -> Result<ScheduleRow, ScheduleError> {
        self.upsert_many(std::slice::from_ref(schedule)).await?;
        self.get(&schedule.name).await
    }

    /// Creates or replaces many API schedules in one statement; returns how many.
    pub async fn upsert_many(&self, schedules: &[NewSchedule]) -> Result<u64, ScheduleError> {
        self.write(schedules, Source::Api, Prune::Keep)
            .await
            .map(|c| c.upserted)
    }

    /// Upserts `files` as file schedules (source `file`), in name order, in one statement.
    /// Every planner calls it at start with [`Prune::Keep`]: a process never deletes what it
    /// did not declare, so processes with different files (or none) keep each other's rows,
    /// and concurrent starts neither deadlock nor lose rows. [`Prune::Delete`] also deletes
    /// the file schedules that are not in `files`. API schedules are never touched.
    pub async fn sync_files(
        &self,
        files: &[FileSchedule],
        prune: Prune,
    ) -> Result<SyncCounts, ScheduleError> {
        let rows: Vec<NewSchedule> = files.iter().map(NewSchedule::from).collect();
        self.write(&rows, Source::File, prune).await
    }

    async fn write(
        &self,
        rows: &[NewSchedule],
        source: Source,
        prune: Prune,
    ) -> Result<SyncCounts, ScheduleError> {
        let now = Utc::now();
        let mut prepared = rows
            .iter()
            .map(|r| prepare(r, now))
            .collect::<Result<Vec<_>, _>>()?;
        // One lock order for every writer: concurrent syncs wait instead of deadlocking.
        prepared.sort_by(|a, b| a.row.name.cmp(&b.row.name));
        prepared.dedup_by(|a, b| a.row.name == b.row.name);
        self.write_prepared(&prepared, source, prune).await
    }

    /// Upserts `rows` of `source` (refusing names of the other source) and prunes or counts
    /// that source's rows not among them, in one transaction.
    async fn write_prepared(
        &self,
        rows: &[Prepared],
        source: Source,
        prune: Prune,
    ) -> Result<SyncCounts, ScheduleError> {
        let names: Vec<&str> = rows.iter().map(|p| p.row.name.as_str()).collect();
        match self.db.pool() {
            Pool::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                let taken: Option<(String, String)> = sqlx::query_as(
                    "SELECT name, source FROM hangar_schedules WHERE name = ANY($1) AND source <> $2 \
                     ORDER BY name LIMIT 1",
                )
                .bind(&names)
                .bind(source.as_str())
                .fetch_optional(&mut *tx)
                .await?;
                if let Some((name, owner)) = taken {
                    return Err(ScheduleError::NameTaken {
                        name,
                        owner: Source::parse(&owner)?.owner(),
                    });
                }
                let upserted = if rows.is_empty() {
                    0
                } else {
                    let col =
                        |f: fn(&Prepared) -> Option<&str>| rows.iter().map(f).collect::<Vec<_>>();
                    sqlx::query(
                        "INSERT INTO hangar_schedules (name, source, workspace_id, integration, data_type, \
                             spec, kind, args, queue, priority, enabled, offset_ms, next_run_at, \
                             source_file, definition_digest) \
                         SELECT name, $2, workspace_id, integration, data_type, spec, kind, args, queue, \
                             priority, enabled, offset_ms, next_run_at, source_file, definition_digest \
                         FROM UNNEST($1::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], \
                             $8::jsonb[], $9::text[], $10::smallint[], $11::bool[], $12::bigint[], \
                             $13::timestamptz[], $14::text[], $15::text[]) \
                             AS t(name, workspace_id, integration, data_type, spec, kind, args, queue, \
                                  priority, enabled, offset_ms, next_run_at, source_file, definition_digest) \
                         ORDER BY name \
                         ON CONFLICT (name) DO UPDATE SET \
                             workspace_id = EXCLUDED.workspace_id, integration = EXCLUDED.integration, \
                             data_type = EXCLUDED.data_type, kind = EXCLUDED.kind, args = EXCLUDED.args, \
                             queue = EXCLUDED.queue, priority = EXCLUDED.priority, \
                             source_file = EXCLUDED.source_file, \
                             definition_digest = EXCLUDED.definition_digest, \
                             enabled = CASE WHEN hangar_schedules.operator_enabled IS NOT NULL \
                                 AND COALESCE(hangar_schedules.definition_digest, EXCLUDED.definition_digest) \
                                     = EXCLUDED.definition_digest \
                                 THEN hangar_schedules.enabled ELSE EXCLUDED.enabled END, \
                             operator_enabled = CASE \
                                 WHEN COALESCE(hangar_schedules.definition_digest, EXCLUDED.definition_digest) \
                                     = EXCLUDED.definition_digest \
                                 THEN hangar_schedules.operator_enabled END, \
                             operator_changed_at = CASE \
                                 WHEN COALESCE(hangar_schedules.definition_digest, EXCLUDED.definition_digest) \
                                     = EXCLUDED.definition_digest \
                                 THEN hangar_schedules.operator_changed_at END, \
                             next_run_at = CASE \
                                 WHEN hangar_schedules.operator_enabled IS NOT NULL \
                                   AND COALESCE(hangar_schedules.definition_digest, EXCLUDED.definition_digest) \
                                       = EXCLUDED.definition_digest \
                                   AND hangar_schedules.spec = EXCLUDED.spec \
                                 THEN hangar_schedules.next_run_at \
                                 WHEN EXCLUDED.next_run_at IS NULL THEN NULL \
                                 WHEN hangar_schedules.next_run_at IS NULL \
                                   OR hangar_schedules.spec <> EXCLUDED.spec \
                                   OR hangar_schedules.offset_ms <> EXCLUDED.offset_ms \
                                 THEN EXCLUDED.next_run_at \
                                 ELSE hangar_schedules.next_run_at END, \
                             spec = EXCLUDED.spec, offset_ms = EXCLUDED.offset_ms, updated_at = now() \
                         WHERE hangar_schedules.source = EXCLUDED.source",
                    )
                    .bind(&names)
                    .bind(source.as_str())
                    .bind(col(|p| p.row.workspace_id.as_deref()))
                    .bind(col(|p| p.row.integration.as_deref()))
                    .bind(col(|p| p.row.data_type.as_deref()))
                    .bind(rows.iter().map(|p| p.row.spec.as_str()).collect::<Vec<_>>())
                    .bind(rows.iter().map(|p| p.row.kind.as_str()).collect::<Vec<_>>())
                    .bind(rows.iter().map(|p| &p.row.args).collect::<Vec<_>>())
                    .bind(col(|p| p.row.queue.as_deref()))
                    .bind(rows.iter().map(|p| p.row.priority).collect::<Vec<_>>())
                    .bind(rows.iter().map(|p| p.row.enabled).collect::<Vec<_>>())
                    .bind(rows.iter().map(|p| p.offset_ms).collect::<Vec<_>>())
                    .bind(rows.iter().map(|p| p.next_run_at).collect::<Vec<_>>())
                    .bind(col(|p| p.row.source_file.as_deref()))
                    .bind(rows.iter().map(|p| p.digest.as_str()).collect::<Vec<_>>())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                };
                let (deleted, stale) = match prune {
                    Prune::Delete => {
                        let deleted = sqlx::query(
                            "DELETE FROM hangar_schedules WHERE source = $1 AND NOT (name = ANY($2))",
                        )
                        .bind(source.as_str())
                        .bind(&names)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                        (deleted, 0)
                    }
                    Prune::Keep => {
                        let stale: i64 = sqlx::query_scalar(
                            "SELECT count(*) FROM hangar_schedules WHERE source = $1 AND NOT (name = ANY($2))",
                        )
                        .bind(source.as_str())
                        .bind(&names)
                        .fetch_one(&mut *tx)
                        .await?;
                        (0, u64::try_from(stale).unwrap_or(0))
                    }
                };
                tx.commit().await?;
                Ok(SyncCounts {
                    upserted,
                    deleted,
                    stale,
                })
            }
            Pool::Sqlite(pool) => {
                let names_json = serde_json::to_string(&names).unwrap_or_else(|_| "[]".to_owned());
                let now = Utc::now().timestamp_millis();
                let mut tx = begin_immediate(pool).await?;
                let taken: Option<(String, String)> = sqlx::query_as(
                    "SELECT name, source FROM hangar_schedules \
                     WHERE name IN (SELECT value FROM json_each(?1)) AND source <> ?2 \
                     ORDER BY name LIMIT 1",
                )
                .bind(&names_json)
                .bind(source.as_str())
                .fetch_optional(&mut *tx)
                .await?;
                if let Some((name, owner)) = taken {
                    return Err(ScheduleError::NameTaken {
                        name,
                        owner: Source::parse(&owner)?.owner(),
                    });
                }
                let batch: Vec<serde_json::Value> = rows
                    .iter()
                    .map(|p| {
                        serde_json::json!([
                            p.row.name,
                            p.row.workspace_id,
                            p.row.integration,
                            p.row.data_type,
                            p.row.spec,
                            p.row.kind,
                            p.row.args.to_string(),
                            p.row.queue,
                            p.row.priority,
                            i32::from(p.row.enabled),
                            p.offset_ms,
                            p.next_run_at.map(ms),
                            p.row.source_file,
                            p.digest,
                        ])
                    })
                    .collect();
                let upserted = if rows.is_empty() {
                    0
                } else {
                    sqlx::query(
                        "INSERT INTO hangar_schedules (name, source, workspace_id, integration, data_type, \
                             spec, kind, args, queue, priority, enabled, offset_ms, next_run_at, \
                             source_file, definition_digest, created_at, updated_at) \
                         SELECT value ->> 0, ?2, value ->> 1, value ->> 2, value ->> 3, value ->> 4, \
                             value ->> 5, value ->> 6, value ->> 7, value ->> 8, value ->> 9, \
                             value ->> 10, value ->> 11, value ->> 12, value ->> 13, ?3, ?3 \
                         FROM json_each(?1) WHERE true \
                         ON CONFLICT (name) DO UPDATE SET \
                             workspace_id = excluded.workspace_id, integration = excluded.integration, \
                             data_type = excluded.data_type, kind = excluded.kind, args = excluded.args, \
                             queue = excluded.queue, priority = excluded.priority, \
                             source_file = excluded.source_file, \
                             definition_digest = excluded.definition_digest, \
                             enabled = CASE WHEN hangar_schedules.operator_enabled IS NOT NULL \
                                 AND COALESCE(hangar_schedules.definition_digest, excluded.definition_digest) \
                                     = excluded.definition_digest \
                                 THEN hangar_schedules.enabled ELSE excluded.enabled END, \
                             operator_enabled = CASE \
                                 WHEN COALESCE(hangar_schedules.definition_digest, excluded.definition_digest) \
                                     = excluded.definition_digest \
                                 THEN hangar_schedules.operator_enabled END, \
                             operator_changed_at = CASE \
                                 WHEN COALESCE(hangar_schedules.definition_digest, excluded.definition_digest) \
                                     = excluded.definition_digest \
                                 THEN hangar_schedules.operator_changed_at END, \
                             next_run_at = CASE \
                                 WHEN hangar_schedules.operator_enabled IS NOT NULL \
                                   AND COALESCE(hangar_schedules.definition_digest, excluded.definition_digest) \
                                       = excluded.definition_digest \
                                   AND hangar_schedules.spec = excluded.spec \
                                 THEN hangar_schedules.next_run_at \
                                 WHEN excluded.next_run_at IS NULL THEN NULL \
                                 WHEN hangar_schedules.next_run_at IS NULL \
                                   OR hangar_schedules.spec <> excluded.spec \
                                   OR hangar_schedules.offset_ms <> excluded.offset_ms \
                                 THEN excluded.next_run_at \
                                 ELSE hangar_schedules.next_run_at END, \
                             spec = excluded.spec, offset_ms = excluded.offset_ms, updated_at = ?3 \
                         WHERE hangar_schedules.source = excluded.source",
                    )
                    .bind(serde_json::Value::Array(batch).to_string())
                    .bind(source.as_str())
                    .bind(now)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                };
                let (deleted, stale) = match prune {
                    Prune::Delete => {
                        let deleted = sqlx::query(
                            "DELETE FROM hangar_schedules WHERE source = ?1 \
                               AND name NOT IN (SELECT value FROM json_each(?2))",
                        )
                        .bind(source.as_str())
                        .bind(&names_json)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                        (deleted, 0)
                    }
                    Prune::Keep => {
                        let stale: i64 = sqlx::query_scalar(
                            "SELECT count(*) FROM hangar_schedules WHERE source = ?1 \
                               AND name NOT IN (SELECT value FROM json_each(?2))",
                        )
                        .bind(source.as_str())
                        .bind(&names_json)
                        .fetch_one(&mut *tx)
                        .await?;
                        (0, u64::try_from(stale).unwrap_or(0))
                    }
                };
                tx.commit().await?;
                Ok(SyncCounts {
                    upserted,
                    deleted,
                    stale,
                })
            }
        }
    }

    /// Changes a schedule's spec (and so its offset and next due time).
    pub async fn set_spec(&self, name: &str, spec: &str) -> Result<ScheduleRow, ScheduleError> {
        let parsed = Spec::parse(spec).map_err(|source| ScheduleError::InvalidSpec {
            name: name.to_owned(),
            source,
        })?;
        let offset_ms = parsed.offset_ms(name);
        let next = parsed.next_due_after(offset_ms, Utc::now());
        let spec = parsed.as_str();
        let updated = match self.db.pool() {
            Pool::Postgres(pool) => {
                sqlx::query(
                    "UPDATE hangar_schedules SET \
                         next_run_at = CASE WHEN NOT enabled THEN NULL \
                                            WHEN spec = $2 AND offset_ms = $3 AND next_run_at IS NOT NULL \
                                            THEN next_run_at ELSE $4 END, \
                         spec = $2, offset_ms = $3, updated_at = now() \
                     WHERE name = $1",
                )
                .bind(name)
                .bind(spec)
                .bind(offset_ms)
                .bind(next)
                .execute(pool)
                .await?
                .rows_affected()
            }
            Pool::Sqlite(pool) => {
                sqlx::query(
                    "UPDATE hangar_schedules SET \
                         next_run_at = CASE WHEN NOT enabled THEN NULL \
                                            WHEN spec = ?2 AND offset_ms = ?3 AND next_run_at IS NOT NULL \
                                            THEN next_run_at ELSE ?4 END, \
                         spec = ?2, offset_ms = ?3, updated_at = ?5 \
                     WHERE name = ?1",
                )
                .bind(name)
                .bind(spec)
                .bind(offset_ms)
                .bind(next.map(ms))
                .bind(Utc::now().timestamp_millis())
                .execute(pool)
                .await?
                .rows_affected()
            }
        };
        if updated == 0 {
            return Err(ScheduleError::NotFound(name.to_owned()));
        }
        self.get(name).await
    }

    /// Deletes a schedule; false when there was none. Its jobs are left alone.
    pub async fn delete(&self, name: &str) -> Result<bool, ScheduleError> {
        let deleted = match self.db.pool() {
            Pool::Postgres(pool) => sqlx::query("DELETE FROM hangar_schedules WHERE name = $1")
                .bind(name)
                .execute(pool)
                .await?
                .rows_affected(),
            Pool::Sqlite(pool) => sqlx::query("DELETE FROM hangar_schedules WHERE name = ?1")
                .bind(name)
                .execute(pool)
                .await?
                .rows_affected(),
        };
        Ok(deleted > 0)
    }

    /// One schedule with its last job's state.
    pub async fn get(&self, name: &str) -> Result<ScheduleRow, ScheduleError> {
        let filter = ScheduleFilter {
            workspace_id: None,
            limit: 1,
        };
        self.list_named(&filter, Some(name), None)
            .await?
            .pop()
            .ok_or_else(|| ScheduleError::NotFound(name.to_owned()))
    }

    /// Schedules by name, with their last job's state.
    pub async fn list(&self, filter: &ScheduleFilter) -> Result<Vec<ScheduleRow>, ScheduleError> {
        self.list_named(filter, None, None).await
    }

    /// One schedule by its row id, with its jobs' states.
    pub async fn get_by_id(&self, id: i64) -> Result<ScheduleRow, ScheduleError> {
        let filter = ScheduleFilter {
            workspace_id: None,
            limit: 1,
        };
        self.list_named(&filter, None, Some(id))
            .await?
            .pop()
            .ok_or_else(|| ScheduleError::NotFound(format!("#{id}")))
    }

    pub(super) async fn list_named(
        &self,
        filter: &ScheduleFilter,
        name: Option<&str>,
        id: Option<i64>,
    ) -> Result<Vec<ScheduleRow>, ScheduleError> {
        match self.db.pool() {
            Pool::Postgres(pool) => {
                let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {ROW_COLUMNS} FROM hangar_schedules s \
                     WHERE ($1::text IS NULL OR s.name = $1) AND ($2::text IS NULL OR s.workspace_id = $2) \
                       AND ($4::bigint IS NULL OR s.id = $4) \
                     ORDER BY s.name LIMIT $3"
                )))
                .bind(name)
                .bind(&filter.workspace_id)
                .bind(filter.limit)
                .bind(id)
                .fetch_all(pool)
                .await?;
                let ids = listed_job_ids(&rows)?;
                let states = last_job_states(&mut *pool.acquire().await?, ids).await?;
                rows.iter().map(|row| row_from_pg(row, &states)).collect()
            }
            Pool::Sqlite(pool) => {
                let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {ROW_COLUMNS} FROM hangar_schedules s \
                     WHERE (?1 IS NULL OR s.name = ?1) AND (?2 IS NULL OR s.workspace_id = ?2) \
                       AND (?4 IS NULL OR s.id = ?4) \
                     ORDER BY s.name LIMIT ?3"
                )))
                .bind(name)
                .bind(&filter.workspace_id)
                .bind(filter.limit)
                .bind(id)
                .fetch_all(pool)
                .await?;
                let ids = listed_job_ids(&rows)?;
                let states = last_job_states(&mut *pool.acquire().await?, ids).await?;
                rows.iter()
                    .map(|row| row_from_sqlite(row, &states))
                    .collect()
            }
        }
    }
}
