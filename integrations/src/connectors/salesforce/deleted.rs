//! Salesforce's feed of deletions, `GET /services/data/{v}/sobjects/{Obj}/deleted/?start=&end=`
//! (whole minutes): `{"deletedRecords": [{"id", "deletedDate"}], "earliestDateAvailable",
//! "latestDateCovered"}`. A deleted record stays in the org's recycle bin 15 days; the feed
//! reaches back no further than `earliestDateAvailable` (the last record purged for good).
//! Each one becomes an inbound record with `deleted: true`, removed by the engine at once
//! (`SyncStore::apply_removals`). A start older than [`DELETED_WINDOW_DAYS`], or before what
//! Salesforce still reports, is `None`: the next full reconciliation finds those records gone.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::settings::Settings;
use super::{Salesforce, malformed, parse_sf_time, sf_time};
use crate::sync::InboundRecord;
use crate::sync::connector::{CallContext, ConnectorError};

/// How far back the deleted feed is asked (the recycle bin's 15 days, a day's margin).
pub const DELETED_WINDOW_DAYS: i64 = 14;

impl Salesforce {
    /// The customer records deleted since `since` (module doc).
    pub(super) async fn deleted_since(
        &self,
        cx: &CallContext,
        since: DateTime<Utc>,
    ) -> Result<Option<Vec<InboundRecord>>, ConnectorError> {
        let settings = Settings::of(&cx.integration).map_err(ConnectorError::Failed)?;
        let now = Utc::now();
        if since < now - chrono::Duration::days(DELETED_WINDOW_DAYS) {
            return Ok(None);
        }
        let start = since.min(now - chrono::Duration::minutes(1));
        let object = settings.customer_object.clone();
        let url = format!("{}/sobjects/{object}/deleted/", settings.api());
        let body = self
            .get(
                cx,
                &settings,
                &url,
                &[("start", sf_time(start)), ("end", sf_time(now))],
            )
            .await?;
        deleted_records(&object, start, &body)
    }
}

/// The records of a `deleted` answer for a window starting at `start`; `None` when
/// Salesforce no longer holds deletions back to `start`.
pub(super) fn deleted_records(
    object: &str,
    start: DateTime<Utc>,
    body: &Value,
) -> Result<Option<Vec<InboundRecord>>, ConnectorError> {
    if let Some(earliest) = body
        .get("earliestDateAvailable")
        .and_then(Value::as_str)
        .and_then(parse_sf_time)
        && earliest > start
    {
        return Ok(None);
    }
    let items = body
        .get("deletedRecords")
        .and_then(Value::as_array)
        .ok_or_else(|| malformed("deleted's deletedRecords"))?;
    let mut records = items
        .iter()
        .map(|item| {
            let id = item
                .get("id")
                .and_then(Value::as_str)
                .ok_or_else(|| malformed("a deleted record's id"))?;
            let at = item
                .get("deletedDate")
                .and_then(Value::as_str)
                .and_then(parse_sf_time)
                .ok_or_else(|| malformed("a deleted record's deletedDate"))?;
            Ok(InboundRecord {
                object_type: object.to_owned(),
                external_id: id.to_owned(),
                modified_at: at,
                payload: json!({"Id": id, "IsDeleted": true, "deletedDate": item["deletedDate"]}),
                concurrency_token: None,
                deleted: true,
            })
        })
        .collect::<Result<Vec<_>, ConnectorError>>()?;
    records.sort_by(|a, b| (a.modified_at, &a.external_id).cmp(&(b.modified_at, &b.external_id)));
    Ok(Some(records))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deleted_answers_become_removals_unless_salesforce_no_longer_holds_them() {
        let start = parse_sf_time("2026-11-20T10:00:00.000+0000").unwrap();
        let body = json!({"deletedRecords": [
                {"id": "001B", "deletedDate": "2026-11-21T09:00:00.000+0000"},
                {"id": "001A", "deletedDate": "2026-11-20T11:00:00.000+0000"}],
            "earliestDateAvailable": "2026-11-01T00:00:00.000+0000",
            "latestDateCovered": "2026-11-21T10:00:00.000+0000"});
        let records = deleted_records("Account", start, &body).unwrap().unwrap();
        let ids: Vec<_> = records.iter().map(|r| r.external_id.as_str()).collect();
        assert_eq!(ids, ["001A", "001B"]);
        assert!(
            records
                .iter()
                .all(|r| r.deleted && r.object_type == "Account")
        );
        let purged = json!({"deletedRecords": [],
            "earliestDateAvailable": "2026-11-20T12:00:00.000+0000"});
        assert!(
            deleted_records("Account", start, &purged)
                .unwrap()
                .is_none()
        );
        assert!(deleted_records("Account", start, &json!({})).is_err());
    }
}
