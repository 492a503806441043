//! Pushing an outbound record: the event's data mapped to the provider's body by the
//! stream's `map`, sent with the create request (or the update, with `{{external_id}}`, for
//! a record pushed before), with the engine's idempotency key in `Idempotency-Key` (the same
//! on every retry of the write). The provider's id is read from the answer to a create at
//! the stream's `primary_key`; a record pushed before keeps the id it got first (an update
//! may answer without it, and a stream without an update request sends a change as a new
//! create, which the vendor may answer with a new record's id: the engine keeps one
//! provider id per platform record).

use chrono::Utc;
use hangar_workers::error_class::ErrorClass;
use hangar_workers::kinds::JobFailure;

use super::cursor;
use super::http::{Env, Extra, exchange};
use super::model::Stream;
use super::select;
use crate::sync::connector::{ConnectorError, OutboundRecord, Pushed};

/// Pushes `record` by `stream`.
pub async fn push(
    env: &Env<'_>,
    stream: &Stream,
    record: &OutboundRecord,
) -> Result<Pushed, ConnectorError> {
    let body = select::map(&record.data, &stream.map);
    let request = match (&record.external_id, &stream.update) {
        (Some(_), Some(update)) => update,
        _ => &stream.request,
    };
    let extra = Extra {
        headers: vec![("Idempotency-Key".to_owned(), record.idempotency_key.clone())],
        body: Some(body),
        record: Some(&record.data),
        external_id: record.external_id.as_deref(),
        ..Extra::default()
    };
    let answer = exchange(env, request, &extra, stream.decode.format).await?;
    let held = select::records(&answer.body, stream.decode.records_path.as_deref())
        .ok()
        .and_then(|r| r.into_iter().next())
        .unwrap_or(answer.body);
    let external_id = record
        .external_id
        .clone()
        .or_else(|| select::text(&held, &stream.primary_key))
        .ok_or_else(|| {
            ConnectorError::Failed(JobFailure::new(
                ErrorClass::Server,
                format!(
                    "{}: the answer has no id at `{}`",
                    stream.data_type, stream.primary_key
                ),
            ))
        })?;
    let modified_at = stream
        .modified_path
        .as_deref()
        .and_then(|p| select::get(&held, p))
        .and_then(|v| cursor::time(v, Default::default()))
        .unwrap_or_else(Utc::now);
    Ok(Pushed {
        external_id,
        payload: held,
        modified_at,
        concurrency_token: None,
    })
}
