//! One attempt of one delivery, the job kind `webhook_delivery`: load the delivery (a
//! deleted endpoint's or an expunged one completes without sending; a paused or disabled
//! endpoint's goes back to `held`), take a slot from the gate (`store/webhook_gate.rs`:
//! concurrency, rate, circuit, ordering, shares; waiting for one uses no attempt: the gate
//! puts the job back itself), sign the event's stored body with every active secret (a fresh
//! timestamp each attempt, the same delivery id), POST it without following redirects (the
//! target policy checks the literal host here and every resolved address at connect), log
//! the attempt and move the endpoint's health. The reads, the gate and a failed attempt's
//! record go through this process's batchers (`batch.rs`: one transaction for the attempts
//! that queued up meanwhile); on PostgreSQL a successful attempt's record is left to the pool,
//! which writes it in the job's completion transaction, only if that completion passes its
//! lease fence ([`Handler::take_completion_write`]: one commit for the delivery, not two;
//! SQLite records successes by the batch too, see [`RECORD_WITH_COMPLETION`]). The endpoint
//! and its secrets come from the one-second cache (`cache.rs`).
//!
//! Classification: 2xx succeeds; 410 disables the endpoint (alert) and fails without retry;
//! 429 is `rate_limit` (its `Retry-After` honoured); 5xx `server`; 3xx and other 4xx
//! `client` (no retry); no answer (refused, reset, timeout) `timeout`; a refused target
//! `client`. Measured per attempt: time to the response headers (`first_byte_ms`, which
//! includes DNS, connect and TLS: reqwest does not expose them apart) and to the end of the
//! body read (`total_ms`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::{Map, Value};

use super::{DeliveryArgs, WebhookContext, WebhookError, health};
use crate::error_class::ErrorClass;
use crate::job::{ClaimedJob, JobId};
use crate::kinds::{ArgsError, BoxFuture, Handler, JobFailure, JobNotes, Wait};
use crate::signing::{SignedRequest, signature_headers};
use crate::store::{AttemptOutcome, AttemptRow, CompletionWrite, DeliveryTarget, Gate, GateAsk};
use crate::transport_failure::transport_failure;

/// How long a slot stays taken when its process dies mid-request (the client's connect and
/// request timeouts are 10 s and 30 s).
const SLOT_TTL: Duration = Duration::from_secs(90);

/// How much of a response body an attempt keeps (and reads).
pub const RESPONSE_CAP: usize = 16 * 1024;

/// The handler of `webhook_delivery`.
pub struct DeliveryHandler {
    context: WebhookContext,
    /// The runs that ended waiting for the gate (put back by it), until the pool asks
    /// ([`Handler::take_wait`]).
    waits: Arc<JobNotes<()>>,
    /// The records of the runs that succeeded, until the pool takes them
    /// ([`Handler::take_completion_write`]) to write with their completions.
    records: Arc<JobNotes<AttemptRow>>,
}

impl DeliveryHandler {
    /// The handler over `context`.
    pub fn new(context: WebhookContext) -> Self {
        DeliveryHandler {
            context,
            waits: Arc::default(),
            records: Arc::default(),
        }
    }
}

impl Handler for DeliveryHandler {
    fn validate(&self, args: &Value) -> Result<(), ArgsError> {
        serde_json::from_value::<DeliveryArgs>(args.clone())
            .map(|_| ())
            .map_err(|e| ArgsError::shape(super::KIND, &e))
    }

    fn run(&self, job: ClaimedJob) -> BoxFuture<'static, Result<(), JobFailure>> {
        let context = self.context.clone();
        let waits = self.waits.clone();
        let records = self.records.clone();
        Box::pin(async move {
            let result = attempt(&context, &job).await;
            let outcome = match &result {
                Ok(Sent::Delivered(_)) => "delivered",
                Ok(Sent::Skipped) => "skipped",
                Ok(Sent::Held) => "held",
                Ok(Sent::Waiting(..)) => "waiting",
                Err(failure) => failure.class.as_str(),
            };
            metrics::counter!("hangar_webhook_deliveries_total", "outcome" => outcome).increment(1);
            match result {
                Ok(Sent::Waiting(after, reason)) => {
                    waits.note(job.id, ());
                    Err(JobFailure::new(
                        ErrorClass::RateLimit,
                        format!(
                            "waiting {} ms for the endpoint's {reason} limit",
                            after.as_millis()
                        ),
                    ))
                }
                Ok(Sent::Delivered(Some(record))) => {
                    records.note(job.id, *record);
                    Ok(())
                }
                other => other.map(|_| ()),
            }
        })
    }

    fn take_wait(&self, job: JobId) -> Option<Wait> {
        self.waits.take(job).map(|()| Wait::PutBack)
    }

    fn take_completion_write(&self, job: JobId) -> Option<CompletionWrite> {
        self.records
            .take(job)
            .map(|record| CompletionWrite::WebhookAttempt(Box::new(record)))
    }
}

/// What an attempt did when it did not fail.
enum Sent {
    /// Sent and answered 2xx, with the record to write with the job's completion when the
    /// backend records successes there (`None`: recorded already).
    Delivered(Option<Box<AttemptRow>>),
    Skipped,
    Held,
    /// The gate said wait (this long, for this limit) and put the job back: nothing was
    /// sent.
    Waiting(Duration, &'static str),
}

fn internal(error: impl std::fmt::Display) -> JobFailure {
    JobFailure::new(ErrorClass::Internal, error.to_string())
}

async fn attempt(context: &WebhookContext, job: &ClaimedJob) -> Result<Sent, JobFailure> {
    let args: DeliveryArgs = serde_json::from_value(job.args.clone())
        .map_err(|e| JobFailure::new(ErrorClass::Client, format!("webhook delivery args: {e}")))?;
    let store = &context.store;
    let batches = &context.batches;
    let Some(target) = batches
        .targets
        .call(args.delivery_id.clone())
        .await
        .map_err(internal)?
    else {
        tracing::info!(delivery = %args.delivery_id, "webhook delivery gone (endpoint deleted); skipped");
        return Ok(Sent::Skipped);
    };
    if job.workspace_id.as_deref() != Some(target.workspace_id.as_str()) {
        return Err(JobFailure::new(
            ErrorClass::Client,
            "webhook delivery refused: it belongs to another workspace than its job",
        ));
    }
    if target.expunged {
        return Ok(Sent::Skipped);
    }
    let Some(cached) = context
        .cache
        .get(context, &target.endpoint_id)
        .await
        .map_err(internal)?
    else {
        return Ok(Sent::Skipped);
    };
    let endpoint = &cached.endpoint;
    if !endpoint.enabled || endpoint.paused_at.is_some() {
        store
            .hold_webhook_delivery(&target.id)
            .await
            .map_err(|e| internal(WebhookError::from(e)))?;
        return Ok(Sent::Held);
    }
    let ask = GateAsk {
        delivery_id: target.id.clone(),
        endpoint_id: endpoint.id.clone(),
        job_id: job.id.0,
        lease_token: job.lease_token,
        retry: job.attempt > 1,
        slot_ttl: SLOT_TTL,
        workspace_share: context.shares.workspace,
        retry_share: context.shares.retries,
    };
    match batches.gates.call(ask).await.map_err(internal)? {
        Gate::Go { .. } => {}
        Gate::Wait { after, reason } => return Ok(Sent::Waiting(after, reason)),
    }
    let secrets = cached.signing(Utc::now());
    let started_at = Utc::now();
    let signed = signature_headers(
        &secrets,
        &SignedRequest {
            event_type: &target.event_type,
            message_id: &target.event_id,
            delivery_id: &target.id,
            body: target.body.as_bytes(),
            at: started_at,
        },
    );
    let exchange = send(context, &endpoint.url, &target, &signed).await;
    let status = exchange.status;
    let result = classify(&exchange);
    let outcome = match &result {
        Ok(()) => AttemptOutcome::Succeeded,
        Err(f) if f.class == ErrorClass::Client => AttemptOutcome::FailedForGood,
        Err(_) => AttemptOutcome::Failed,
    };
    let record = AttemptRow {
        delivery_id: target.id.clone(),
        endpoint_id: endpoint.id.clone(),
        job_id: job.id.0,
        started_at,
        address: exchange.address.clone(),
        request_headers: redacted(&signed).to_string(),
        status: status.map(i32::from),
        response_headers: exchange.headers.as_ref().map(|h| h.to_string()),
        response_body: exchange.body.clone(),
        body_truncated: exchange.truncated,
        body_size: exchange.size,
        total_ms: exchange.total_ms,
        first_byte_ms: exchange.first_byte_ms,
        error_class: result.as_ref().err().map(|f| f.class.as_str()),
        error: result.as_ref().err().map(|f| f.message.clone()),
        outcome,
    };
    if outcome == AttemptOutcome::Succeeded {
        let latency = (Utc::now() - target.event_stored_at).num_milliseconds() as f64 / 1000.0;
        metrics::histogram!("hangar_webhook_delivery_latency_seconds").record(latency.max(0.0));
        // On PostgreSQL a success is recorded with the completion, which also frees the slot
        // and resolves a degraded alert this success ends (`store/webhook_record.rs`): one
        // commit instead of two (+32 % deliveries/s, BENCHMARKS.md). SQLite keeps the record
        // batch: holding the endpoint's slot until the completion commits cost its single
        // writer more put-backs than the saved commit (−25 % at 50 in flight).
        if RECORD_WITH_COMPLETION.contains(&context.store.backend_name()) {
            return Ok(Sent::Delivered(Some(Box::new(record))));
        }
    }
    let moved = batches.records.call(record).await.map_err(internal)?;
    let step = health::after_attempt(
        context,
        endpoint,
        outcome == AttemptOutcome::Succeeded,
        moved.streak_before,
        moved.failing_since,
        Utc::now(),
    )
    .await;
    if status == Some(410)
        && let Err(error) =
            health::disable(context, endpoint, "the endpoint answered 410 Gone").await
    {
        // The attempt still fails without retry; an operator sees the 410 in its log.
        tracing::warn!(endpoint = %endpoint.id, %error, "could not disable the endpoint");
    }
    if let Err(error) = step {
        tracing::warn!(endpoint = %endpoint.id, %error, "could not update the endpoint's health");
    }
    result.map(|()| Sent::Delivered(None))
}

/// The backends whose successful deliveries are recorded in the job's completion
/// transaction rather than by the record batch.
const RECORD_WITH_COMPLETION: [&str; 1] = ["postgres"];

/// What one request got.
#[derive(Debug, Default)]
struct Exchange {
    address: Option<String>,
    status: Option<u16>,
    retry_after: Option<String>,
    headers: Option<Value>,
    body: Option<String>,
    truncated: bool,
    size: Option<i64>,
    total_ms: i32,
    first_byte_ms: Option<i32>,
    failure: Option<JobFailure>,
}

fn ms(since: Instant) -> i32 {
    i32::try_from(since.elapsed().as_millis()).unwrap_or(i32::MAX)
}

async fn send(
    context: &WebhookContext,
    url: &str,
    target: &DeliveryTarget,
    headers: &[(&'static str, String)],
) -> Exchange {
    let start = Instant::now();
    let mut exchange = Exchange::default();
    let parsed = match reqwest::Url::parse(url) {
        Ok(parsed) => parsed,
        Err(e) => {
            exchange.failure = Some(JobFailure::new(ErrorClass::Client, format!("url: {e}")));
            return exchange;
        }
    };
    if let Err(refused) = crate::targets::check_literal(&context.targets, &parsed) {
        exchange.failure = Some(JobFailure::new(
            ErrorClass::Client,
            format!("refused: {refused}"),
        ));
        return exchange;
    }
    let mut request = context.http.post(parsed).body(target.body.clone());
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let mut response = match request.send().await {
        Ok(response) => response,
        Err(error) => {
            exchange.failure = Some(transport_failure(error));
            exchange.total_ms = ms(start);
            return exchange;
        }
    };
    exchange.first_byte_ms = Some(ms(start));
    exchange.address = response.remote_addr().map(|a| a.to_string());
    exchange.status = Some(response.status().as_u16());
    exchange.retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut names = Map::new();
    for (name, value) in response.headers() {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        names.insert(name.as_str().to_owned(), Value::String(value));
    }
    exchange.headers = Some(Value::Object(names));
    let declared = response.content_length();
    let mut bytes: Vec<u8> = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = RESPONSE_CAP - bytes.len();
                if chunk.len() > room {
                    bytes.extend_from_slice(&chunk[..room]);
                    exchange.truncated = true;
                    break;
                }
                bytes.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(_) => {
                exchange.truncated = true;
                break;
            }
        }
    }
    exchange.size = if exchange.truncated {
        declared.and_then(|n| i64::try_from(n).ok())
    } else {
        i64::try_from(bytes.len()).ok()
    };
    exchange.body = Some(String::from_utf8_lossy(&bytes).into_owned());
    exchange.total_ms = ms(start);
    exchange
}

/// The retry rules' class of an exchange (410 and redirects are client errors: no retry).
fn classify(exchange: &Exchange) -> Result<(), JobFailure> {
    if let Some(failure) = &exchange.failure {
        return Err(failure.clone());
    }
    let status = exchange.status.unwrap_or(0);
    let Some(class) = ErrorClass::from_http_status(status) else {
        return Ok(());
    };
    let class = if status == 410 {
        ErrorClass::Client
    } else {
        class
    };
    let excerpt: String = exchange
        .body
        .as_deref()
        .unwrap_or("")
        .chars()
        .take(200)
        .collect();
    Err(JobFailure {
        class,
        message: format!("HTTP {status}: {excerpt}"),
        http_status: Some(status),
        retry_after: exchange.retry_after.clone(),
    })
}

/// The request headers as logged: signature values replaced by `<redacted>`.
fn redacted(headers: &[(&'static str, String)]) -> Value {
    let mut map = Map::new();
    for (name, value) in headers {
        let shown = match *name {
            "x-planeconnection-signature" => value
                .split(',')
                .map(|_| "v1=<redacted>")
                .collect::<Vec<_>>()
                .join(","),
            "webhook-signature" => value
                .split(' ')
                .map(|_| "v1,<redacted>")
                .collect::<Vec<_>>()
                .join(" "),
            _ => value.clone(),
        };
        map.insert((*name).to_owned(), Value::String(shown));
    }
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_redacted_in_the_log_and_nothing_else() {
        let headers = vec![
            ("x-planeconnection-event", "trip.created".to_owned()),
            ("x-planeconnection-signature", "v1=ab,v1=cd".to_owned()),
            ("webhook-signature", "v1,AAA v1,BBB".to_owned()),
        ];
        let shown = redacted(&headers);
        assert_eq!(shown["x-planeconnection-event"], "trip.created");
        assert_eq!(
            shown["x-planeconnection-signature"],
            "v1=<redacted>,v1=<redacted>"
        );
        assert_eq!(shown["webhook-signature"], "v1,<redacted> v1,<redacted>");
    }

    #[test]
    fn statuses_are_classified_by_the_retry_rules() {
        let of = |status: u16| {
            classify(&Exchange {
                status: Some(status),
                ..Exchange::default()
            })
            .err()
            .map(|f| f.class)
        };
        assert_eq!(of(200), None);
        assert_eq!(of(204), None);
        assert_eq!(of(410), Some(ErrorClass::Client));
        assert_eq!(of(301), Some(ErrorClass::Client));
        assert_eq!(of(404), Some(ErrorClass::Client));
        assert_eq!(of(429), Some(ErrorClass::RateLimit));
        assert_eq!(of(503), Some(ErrorClass::Server));
    }
}
