//! Many outbound records in one call: the sObject Collections upsert by external id,
//! `PATCH /services/data/{v}/composite/sobjects/{Obj}/{ExtIdField}` with
//! `{"allOrNone": false, "records": [{"attributes": {"type": Obj}, ExtIdField: value, …}]}`
//! (at most [`COLLECTION_SIZE`] records). Salesforce answers 200 with one result per record,
//! in order: `{"id", "success": true, "created", "errors": []}` or `{"success": false,
//! "errors": [{"statusCode", "message", "fields"}]}` — a refused record is classified like a
//! single upsert's error, the others are pushed. Like the single upsert, the same request
//! again is the same records.

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde_json::{Value, json};

use super::settings::Settings;
use super::{Salesforce, errors, http, malformed};
use crate::sync::connector::{CallContext, ConnectorError, OutboundRecord, Pushed};

/// Records in one collection call (Salesforce's limit).
pub const COLLECTION_SIZE: usize = 200;

impl Salesforce {
    /// Upserts `records` (one object type) in one collection call (module doc).
    pub(super) async fn upsert_collection(
        &self,
        cx: &CallContext,
        records: &[OutboundRecord],
    ) -> Result<Vec<Result<Pushed, ConnectorError>>, ConnectorError> {
        let settings = Settings::of(&cx.integration).map_err(ConnectorError::Failed)?;
        let Some(first) = records.first() else {
            return Ok(Vec::new());
        };
        let object = settings.sobject(&first.object_type);
        let field = settings.external_id_field.clone();
        let items: Vec<Value> = records
            .iter()
            .map(|record| {
                let mut item = record.data.clone();
                if let Some(map) = item.as_object_mut() {
                    map.insert("attributes".into(), json!({"type": object}));
                    map.insert(field.clone(), json!(record.internal_id));
                }
                item
            })
            .collect();
        let url = format!("{}/composite/sobjects/{object}/{field}", settings.api());
        let body = json!({"allOrNone": false, "records": items});
        let (_, answer) = http::call(
            cx,
            &self.usages,
            &settings.instance_url,
            Method::PATCH,
            &url,
            &[],
            Some(&body),
        )
        .await?;
        let results = answer
            .as_array()
            .ok_or_else(|| malformed("a collection's results"))?;
        let now = crate::connectors::now_millis();
        Ok(records
            .iter()
            .zip(results)
            .map(|(record, result)| pushed_of(&settings, record, result, now))
            .collect())
    }
}

/// One record's result in a collection answer.
fn pushed_of(
    settings: &Settings,
    record: &OutboundRecord,
    result: &Value,
    now: DateTime<Utc>,
) -> Result<Pushed, ConnectorError> {
    if result.get("success").and_then(Value::as_bool) != Some(true) {
        // A collection names its errors `statusCode`; a single call's are `errorCode`.
        let errors: Vec<Value> = result
            .get("errors")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|e| {
                json!({"errorCode": e.get("statusCode").or(e.get("errorCode")),
                "message": e.get("message")})
            })
            .collect();
        let status = if errors.iter().any(|e| e["errorCode"] == "NOT_FOUND") {
            404
        } else {
            400
        };
        return Err(errors::classify(status, None, &Value::Array(errors)));
    }
    Ok(super::pushed(settings, record, result, now))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hangar_workers::error_class::ErrorClass;

    #[test]
    fn collection_results_are_read_in_order_and_refusals_classified() {
        let settings = super::super::settings::tests_settings();
        let record = |id: &str| OutboundRecord {
            object_type: "Trip".into(),
            internal_id: id.into(),
            external_id: None,
            concurrency_token: None,
            data: json!({"Status__c": "created"}),
            idempotency_key: "k".into(),
        };
        let now = Utc::now();
        let ok = pushed_of(
            &settings,
            &record("trp_1"),
            &json!({"id": "a00X", "success": true, "created": true, "errors": []}),
            now,
        )
        .unwrap();
        assert_eq!(ok.external_id, "a00X");
        assert_eq!(ok.payload["Hangar_Id__c"], "trp_1");
        for (errors, class) in [
            (
                json!([{"statusCode": "INVALID_FIELD", "message": "No such column", "fields": ["X"]}]),
                ErrorClass::Client,
            ),
            (
                json!([{"statusCode": "UNABLE_TO_LOCK_ROW", "message": "unable to obtain exclusive access"}]),
                ErrorClass::Server,
            ),
            (
                json!([{"statusCode": "REQUEST_LIMIT_EXCEEDED", "message": "ConcurrentPerOrgLongTxn Limit exceeded."}]),
                ErrorClass::RateLimit,
            ),
        ] {
            let refused = pushed_of(
                &settings,
                &record("trp_2"),
                &json!({"success": false, "errors": errors}),
                now,
            )
            .unwrap_err();
            assert_eq!(refused.class(), class, "{errors}");
        }
    }
}
