//! The batched statements of a page's transaction ([`Tx`]): one statement for the whole
//! page where the one-record statements of `sync_tx.rs` would make a round trip per record
//! (a page of QuickBooks' CDC is up to 1 000 records): read and lock the page's mappings,
//! insert the new ones, replace the changed ones, mark the page seen by a scan, insert its
//! changes. The rows travel as one JSON array (PostgreSQL `jsonb_to_recordset`/`UNNEST`,
//! SQLite `json_each`), both dialects side by side.

use std::collections::HashMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use sqlx::Row;
use sqlx::types::Json;

use super::sync_changes::ChangeRow;
use super::sync_pages::{Mapping, held_of};
use super::sync_store::{SyncStoreError, json_text, ms, to_time};
use super::sync_tx::Tx;
use crate::sync::InboundRecord;
use crate::sync::rules::Held;

/// A record's key: (object type, external id).
pub(super) type Key = (String, String);

/// A time as PostgreSQL reads it from JSON text (microseconds, what `timestamptz` keeps).
fn pg_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// A mapping row to write, PostgreSQL flavour (times as text, payload as JSON).
#[derive(Serialize)]
struct PgMapping<'a> {
    o: &'a str,
    e: &'a str,
    h: &'a str,
    p: &'a serde_json::Value,
    m: String,
    t: Option<&'a str>,
}

/// A mapping row to write, SQLite flavour (times as Unix ms, payload as its JSON text, so the
/// stored text is exactly what the one-record statements store).
#[derive(Serialize)]
struct LiteMapping<'a> {
    o: &'a str,
    e: &'a str,
    h: &'a str,
    p: String,
    m: i64,
    t: Option<&'a str>,
}

/// A change row to insert: `n` is its place in the page.
#[derive(Serialize)]
struct NewChange<'a, P: Serialize, T: Serialize> {
    n: usize,
    o: &'a str,
    e: &'a str,
    i: Option<&'a str>,
    a: &'a str,
    p: P,
    c: T,
}

const HELD_MANY_PG: &str = "SELECT m.object_type, m.external_id, m.applied_hash, m.last_synced_at, \
     m.ours_modified_at, m.internal_id, COALESCE(m.ours, m.payload) AS ours, \
     (SELECT c.theirs_hash FROM hangar_sync_conflicts c WHERE c.integration_id = m.integration_id \
       AND c.object_type = m.object_type AND c.external_id = m.external_id AND c.resolved_at IS NULL) AS open_hash \
     FROM UNNEST($2::text[], $3::text[]) AS r(o, e) \
     JOIN hangar_sync_mappings m ON m.integration_id = $1 AND m.object_type = r.o AND m.external_id = r.e \
     ORDER BY m.object_type, m.external_id FOR UPDATE OF m";

const HELD_MANY_LITE: &str = "SELECT m.object_type, m.external_id, m.applied_hash, m.last_synced_at, \
     m.ours_modified_at, m.internal_id, COALESCE(m.ours, m.payload) AS ours, \
     (SELECT c.theirs_hash FROM hangar_sync_conflicts c WHERE c.integration_id = m.integration_id \
       AND c.object_type = m.object_type AND c.external_id = m.external_id AND c.resolved_at IS NULL) AS open_hash \
     FROM json_each(?2) AS r \
     JOIN hangar_sync_mappings m ON m.integration_id = ?1 \
       AND m.object_type = json_extract(r.value, '$[0]') AND m.external_id = json_extract(r.value, '$[1]')";

impl Tx {
    /// What Hangar holds for each of `records` that it maps, by key, the rows locked (in key
    /// order on PostgreSQL; SQLite's write transaction holds the whole database).
    pub(super) async fn held_many(
        &mut self,
        integration_id: &str,
        records: &[&InboundRecord],
    ) -> Result<HashMap<Key, (Held, Mapping)>, SyncStoreError> {
        let mut held = HashMap::with_capacity(records.len());
        match self {
            Tx::Pg(tx) => {
                let types: Vec<&str> = records.iter().map(|r| r.object_type.as_str()).collect();
                let ids: Vec<&str> = records.iter().map(|r| r.external_id.as_str()).collect();
                let rows = sqlx::query(HELD_MANY_PG)
                    .bind(integration_id)
                    .bind(types)
                    .bind(ids)
                    .fetch_all(&mut **tx)
                    .await?;
                for row in rows {
                    let ours: Json<serde_json::Value> = row.try_get("ours")?;
                    held.insert(
                        (row.try_get("object_type")?, row.try_get("external_id")?),
                        (
                            held_of(
                                row.try_get("applied_hash")?,
                                row.try_get("last_synced_at")?,
                                row.try_get("ours_modified_at")?,
                                row.try_get("open_hash")?,
                            ),
                            Mapping {
                                internal_id: row.try_get("internal_id")?,
                                ours: ours.0,
                            },
                        ),
                    );
                }
            }
            Tx::Lite(tx) => {
                let keys: Vec<[&str; 2]> = records
                    .iter()
                    .map(|r| [r.object_type.as_str(), r.external_id.as_str()])
                    .collect();
                let keys = serde_json::to_string(&keys)
                    .map_err(|e| SyncStoreError::Corrupt(format!("json: {e}")))?;
                let rows = sqlx::query(HELD_MANY_LITE)
                    .bind(integration_id)
                    .bind(keys)
                    .fetch_all(&mut **tx)
                    .await?;
                for row in rows {
                    let ours: String = row.try_get("ours")?;
                    held.insert(
                        (row.try_get("object_type")?, row.try_get("external_id")?),
                        (
                            held_of(
                                row.try_get("applied_hash")?,
                                to_time(row.try_get("last_synced_at")?),
                                row.try_get::<Option<i64>, _>("ours_modified_at")?
                                    .map(to_time),
                                row.try_get("open_hash")?,
                            ),
                            Mapping {
                                internal_id: row.try_get("internal_id")?,
                                ours: json_text(&ours)?,
                            },
                        ),
                    );
                }
            }
        }
        Ok(held)
    }

    /// Inserts the mappings of new records (`record`, hash of its payload), or replaces the
    /// applied payload of mapped ones (`replace`: the provider's change is applied, the
    /// platform's side forgotten).
    pub(super) async fn write_mappings(
        &mut self,
        integration_id: &str,
        batch: &[(&InboundRecord, String)],
        replace: bool,
        now: DateTime<Utc>,
    ) -> Result<(), SyncStoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        match self {
            Tx::Pg(tx) => {
                let rows: Vec<PgMapping> = batch
                    .iter()
                    .map(|(r, h)| PgMapping {
                        o: &r.object_type,
                        e: &r.external_id,
                        h,
                        p: &r.payload,
                        m: pg_time(r.modified_at),
                        t: r.concurrency_token.as_deref(),
                    })
                    .collect();
                let sql = if replace {
                    "UPDATE hangar_sync_mappings m SET applied_hash = r.h, payload = r.p, \
                     provider_modified_at = r.m::timestamptz, concurrency_token = r.t, \
                     last_synced_at = $2, ours = NULL, ours_modified_at = NULL \
                     FROM jsonb_to_recordset($3) AS r(o text, e text, h text, p jsonb, m text, t text) \
                     WHERE m.integration_id = $1 AND m.object_type = r.o AND m.external_id = r.e"
                } else {
                    "INSERT INTO hangar_sync_mappings (integration_id, object_type, external_id, \
                     applied_hash, payload, provider_modified_at, concurrency_token, last_synced_at) \
                     SELECT $1, r.o, r.e, r.h, r.p, r.m::timestamptz, r.t, $2 \
                     FROM jsonb_to_recordset($3) AS r(o text, e text, h text, p jsonb, m text, t text)"
                };
                sqlx::query(sql)
                    .bind(integration_id)
                    .bind(now)
                    .bind(Json(&rows))
                    .execute(&mut **tx)
                    .await?;
            }
            Tx::Lite(tx) => {
                let rows: Vec<LiteMapping> = batch
                    .iter()
                    .map(|(r, h)| LiteMapping {
                        o: &r.object_type,
                        e: &r.external_id,
                        h,
                        p: r.payload.to_string(),
                        m: ms(r.modified_at),
                        t: r.concurrency_token.as_deref(),
                    })
                    .collect();
                let rows = serde_json::to_string(&rows)
                    .map_err(|e| SyncStoreError::Corrupt(format!("json: {e}")))?;
                let sql = if replace {
                    "UPDATE hangar_sync_mappings SET applied_hash = r.h, payload = r.p, \
                     provider_modified_at = r.m, concurrency_token = r.t, last_synced_at = ?2, \
                     ours = NULL, ours_modified_at = NULL \
                     FROM (SELECT json_extract(value, '$.o') AS o, json_extract(value, '$.e') AS e, \
                       json_extract(value, '$.h') AS h, json_extract(value, '$.p') AS p, \
                       json_extract(value, '$.m') AS m, json_extract(value, '$.t') AS t \
                       FROM json_each(?3)) AS r \
                     WHERE hangar_sync_mappings.integration_id = ?1 \
                       AND hangar_sync_mappings.object_type = r.o AND hangar_sync_mappings.external_id = r.e"
                } else {
                    "INSERT INTO hangar_sync_mappings (integration_id, object_type, external_id, \
                     applied_hash, payload, provider_modified_at, concurrency_token, last_synced_at) \
                     SELECT ?1, json_extract(value, '$.o'), json_extract(value, '$.e'), \
                       json_extract(value, '$.h'), json_extract(value, '$.p'), \
                       json_extract(value, '$.m'), json_extract(value, '$.t'), ?2 \
                     FROM json_each(?3)"
                };
                sqlx::query(sql)
                    .bind(integration_id)
                    .bind(ms(now))
                    .bind(rows)
                    .execute(&mut **tx)
                    .await?;
            }
        }
        Ok(())
    }

    /// Marks every record of `records` that is mapped as seen by full scan `scan`.
    pub(super) async fn mark_seen_scan_many(
        &mut self,
        integration_id: &str,
        records: &[&InboundRecord],
        scan: &str,
    ) -> Result<(), SyncStoreError> {
        if records.is_empty() {
            return Ok(());
        }
        match self {
            Tx::Pg(tx) => {
                let types: Vec<&str> = records.iter().map(|r| r.object_type.as_str()).collect();
                let ids: Vec<&str> = records.iter().map(|r| r.external_id.as_str()).collect();
                sqlx::query(
                    "UPDATE hangar_sync_mappings m SET seen_scan = $2 \
                     FROM UNNEST($3::text[], $4::text[]) AS r(o, e) \
                     WHERE m.integration_id = $1 AND m.object_type = r.o AND m.external_id = r.e",
                )
                .bind(integration_id)
                .bind(scan)
                .bind(types)
                .bind(ids)
                .execute(&mut **tx)
                .await?;
            }
            Tx::Lite(tx) => {
                let keys: Vec<[&str; 2]> = records
                    .iter()
                    .map(|r| [r.object_type.as_str(), r.external_id.as_str()])
                    .collect();
                let keys = serde_json::to_string(&keys)
                    .map_err(|e| SyncStoreError::Corrupt(format!("json: {e}")))?;
                sqlx::query(
                    "UPDATE hangar_sync_mappings SET seen_scan = ?2 \
                     FROM (SELECT json_extract(value, '$[0]') AS o, json_extract(value, '$[1]') AS e \
                       FROM json_each(?3)) AS r \
                     WHERE hangar_sync_mappings.integration_id = ?1 \
                       AND hangar_sync_mappings.object_type = r.o AND hangar_sync_mappings.external_id = r.e",
                )
                .bind(integration_id)
                .bind(scan)
                .bind(keys)
                .execute(&mut **tx)
                .await?;
            }
        }
        Ok(())
    }

    /// Inserts `changes` (all of one run: its id, workspace and provider are the first's) in
    /// their order and returns their ids, in the same order (ascending: the order of
    /// application).
    pub(super) async fn insert_changes(
        &mut self,
        changes: &[ChangeRow],
    ) -> Result<Vec<i64>, SyncStoreError> {
        let Some(first) = changes.first() else {
            return Ok(Vec::new());
        };
        let mut ids: Vec<i64> = match self {
            Tx::Pg(tx) => {
                let rows: Vec<NewChange<&serde_json::Value, String>> = changes
                    .iter()
                    .enumerate()
                    .map(|(n, c)| NewChange {
                        n,
                        o: &c.object_type,
                        e: &c.external_id,
                        i: c.internal_id.as_deref(),
                        a: &c.action,
                        p: &c.record,
                        c: pg_time(c.changed_at),
                    })
                    .collect();
                sqlx::query_scalar(
                    "INSERT INTO hangar_sync_changes (run_id, workspace_id, provider, object_type, \
                     external_id, internal_id, action, record, changed_at) \
                     SELECT $1, $2, $3, r.o, r.e, r.i, r.a, r.p, r.c::timestamptz \
                     FROM jsonb_to_recordset($4) AS r(n bigint, o text, e text, i text, a text, p jsonb, c text) \
                     ORDER BY r.n RETURNING id",
                )
                .bind(&first.sync_run_id)
                .bind(&first.workspace_id)
                .bind(&first.provider)
                .bind(Json(&rows))
                .fetch_all(&mut **tx)
                .await?
            }
            Tx::Lite(tx) => {
                let rows: Vec<NewChange<String, i64>> = changes
                    .iter()
                    .enumerate()
                    .map(|(n, c)| NewChange {
                        n,
                        o: &c.object_type,
                        e: &c.external_id,
                        i: c.internal_id.as_deref(),
                        a: &c.action,
                        p: c.record.to_string(),
                        c: ms(c.changed_at),
                    })
                    .collect();
                let rows = serde_json::to_string(&rows)
                    .map_err(|e| SyncStoreError::Corrupt(format!("json: {e}")))?;
                sqlx::query_scalar(
                    "INSERT INTO hangar_sync_changes (run_id, workspace_id, provider, object_type, \
                     external_id, internal_id, action, record, changed_at) \
                     SELECT ?1, ?2, ?3, json_extract(value, '$.o'), json_extract(value, '$.e'), \
                       json_extract(value, '$.i'), json_extract(value, '$.a'), json_extract(value, '$.p'), \
                       json_extract(value, '$.c') \
                     FROM json_each(?4) ORDER BY json_extract(value, '$.n') RETURNING id",
                )
                .bind(&first.sync_run_id)
                .bind(&first.workspace_id)
                .bind(&first.provider)
                .bind(rows)
                .fetch_all(&mut **tx)
                .await?
            }
        };
        // Inserted in the page's order, so ascending in it (RETURNING's own order is not
        // promised).
        ids.sort_unstable();
        if ids.len() != changes.len() {
            return Err(SyncStoreError::Corrupt(format!(
                "{} changes inserted for {}",
                ids.len(),
                changes.len()
            )));
        }
        Ok(ids)
    }
}
