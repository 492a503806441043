//! The API's JSON bodies that are not engine types: the error body every error answers with,
//! and the small answers of the ingress and channel routes. The handlers serialize these very
//! types, so the OpenAPI document (which derives its schemas from them) cannot drift from
//! what is sent.

use hangar_workers::alerts::Channel;
use hangar_workers::job::JobId;
use serde::Serialize;
use utoipa::ToSchema;

/// Every error answer: `{"error": {"code", "message"}}` (CONTRACT.md, "HTTP API").
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    #[schema(inline)]
    pub error: ErrorDetail,
}

/// The inside of [`ErrorBody`].
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, for programs: `unauthorized`, `forbidden`, `not_found`, `bad_request`,
    /// `method_not_allowed`, `conflict`, `rate_limited`, `internal`, `unavailable`, …
    pub code: String,
    /// For people: what was wrong and where.
    pub message: String,
}

/// The answer to `POST /api/v1/events`.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventAccepted {
    /// The event's id.
    pub id: String,
    /// True when the event was already stored (same workspace and id).
    pub duplicate: bool,
}

/// The answer to `POST /api/v1/jobs`.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobAccepted {
    /// The job's id (the existing job's for a duplicate).
    pub id: JobId,
    /// True when a job with the same kind and idempotency key already existed.
    pub duplicate: bool,
}

/// The answer to adding an alert channel.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelCreated {
    /// The channel, as listed.
    #[serde(flatten)]
    pub channel: Channel,
    /// The `whsec_…` signing secret Hangar generated for a webhook channel; shown this once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// The answer to a channel test.
#[derive(Debug, Serialize, ToSchema)]
pub struct Delivered {
    /// Always true: a failed test answers 422 with the reason.
    pub delivered: bool,
}
