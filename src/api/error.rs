//! Every error the API answers, typed once: [`ApiError`] names what went wrong, and
//! [`ApiError::status`] / [`ApiError::code`] map it to the contract's status and body
//! `{"error": {"code", "message"}}` (CONTRACT.md, "HTTP API"). The store, alert, schedule,
//! token and ingress errors convert with `?`; no handler builds a code by hand. A database
//! failure never shows its text: it is logged here and answered with a generic message (503
//! when the database cannot be reached, 500 otherwise). The dashboard shows the same mapping
//! on its error pages.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hangar_integrations::configure::ConfigureError;
use hangar_integrations::provider::UnknownProvider;
use hangar_integrations::store::IntegrationStoreError;
use hangar_integrations::store::SyncStoreError;
use hangar_schedules::ScheduleError;
use hangar_workers::alerts::AlertError;
use hangar_workers::inbound::InboundError;
use hangar_workers::store::StoreError;
use hangar_workers::webhooks::WebhookError;
use hangar_workers::wire::{MAX_MESSAGE_BYTES, Rejection};

use crate::redis_ingress::dead_letter_actions::DeadLetterError;

use super::auth::{Role, TokenError};
use super::bodies;

/// What the caller is told when the database failed in a way it cannot fix.
const INTERNAL_MESSAGE: &str =
    "internal error: nothing was changed; it was logged for the operators";
/// What the caller is told when the database cannot be reached.
const UNAVAILABLE_MESSAGE: &str = "the database is unavailable; nothing was changed, retry later";

/// An API error.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A malformed query, path segment or filter; the message names it.
    #[error("{0}")]
    BadRequest(String),
    /// The body could not be read (cut short, wrong encoding).
    #[error("{0}")]
    BadBody(String),
    /// The body is not JSON.
    #[error("not JSON: {0}")]
    InvalidJson(String),
    /// The body is over the limit.
    #[error("the body is over the limit of {MAX_MESSAGE_BYTES} bytes")]
    TooLarge,
    /// No token, or one not in the `Bearer` form, or an unknown or revoked one.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// The token's role does not include the one the route needs.
    #[error(
        "this needs the role {} (or one that includes it); the token's role is {}",
        need.as_str(),
        has.as_str()
    )]
    RoleNeeded {
        /// What the route needs.
        need: Role,
        /// What the token has.
        has: Role,
    },
    /// The token is for another workspace.
    #[error("the token is not valid for workspace '{0}'")]
    OtherWorkspace(String),
    /// A workspace token on a route of the whole fleet (queues, processes).
    #[error(
        "a workspace token cannot see or steer the shared queues and processes; use a token valid for every workspace"
    )]
    WorkspaceToken,
    /// A path under `/api/` that no route serves.
    #[error("no such API route")]
    NoRoute,
    /// A known path asked with a method it does not have.
    #[error("{path} does not take {method}; the Allow header lists the methods it takes")]
    MethodNotAllowed {
        /// The path.
        path: String,
        /// The method asked.
        method: String,
    },
    /// More requests than the token's rate.
    #[error("more than {rate} requests per second with this token; retry in {retry_after} s")]
    RateLimited {
        /// Requests per second allowed.
        rate: f64,
        /// Seconds until a request is taken again (`Retry-After`).
        retry_after: u64,
    },
    /// The request took too long.
    #[error("the request took longer than {0} s")]
    Timeout(u64),
    /// Alert channels need the master key, which this process does not have.
    #[error("alert channels need the master key (HANGAR_MASTER_KEY) in this process")]
    NoMasterKey,
    /// A channel test could not deliver; the message says how.
    #[error("{message} ({class})")]
    DeliveryFailed {
        /// What went wrong.
        message: String,
        /// Its error class.
        class: &'static str,
    },
    /// A refused event body (`POST /api/v1/events`).
    #[error("{0}")]
    InvalidEvent(Rejection),
    /// A refused job request (`POST /api/v1/jobs`).
    #[error("{0}")]
    InvalidJob(Rejection),
    /// A retry of a completed job: it runs again only by its own, explicit route.
    #[error(
        "job {0} is completed: retry is for failed and cancelled jobs; to run it once more use \
         POST /api/v1/jobs/{0}/run-again (hangar jobs run-again {0})"
    )]
    CompletedJob(i64),
    /// A well-formed body whose content is refused; the message names the field.
    #[error("{0}")]
    Unprocessable(String),
    /// The job store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The sync engine's tables (runs, changes, conflicts).
    #[error(transparent)]
    Sync(#[from] SyncStoreError),
    /// The alert channels.
    #[error(transparent)]
    Alert(#[from] AlertError),
    /// The schedules.
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
    /// The API tokens.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The webhook endpoints and deliveries.
    #[error(transparent)]
    Webhook(#[from] WebhookError),
    /// A provider id that is not one of the contract's (404: no such resource).
    #[error(transparent)]
    UnknownProvider(#[from] UnknownProvider),
    /// Integrations need the master key, which this process does not have.
    #[error("integrations need the master key (HANGAR_MASTER_KEY) in this process")]
    NoIntegrations,
    /// A resource of the path that does not exist (the message says which).
    #[error("{0}")]
    NotFound(String),
    /// The request is ambiguous or clashes with the resource's state (the message says how).
    #[error("{0}")]
    Conflict(String),
    /// The integrations.
    #[error(transparent)]
    Integration(#[from] ConfigureError),
    /// Inbound hooks: their material and stored pushes.
    #[error(transparent)]
    Inbound(#[from] InboundError),
    /// The Redis ingress's dead letters.
    #[error(transparent)]
    DeadLetters(#[from] DeadLetterError),
}

/// How a failure underneath the API reaches the caller.
enum Underneath {
    /// The caller's own mistake, said as the error says it.
    Caller(StatusCode, &'static str),
    /// The database cannot be reached: retry later.
    Unavailable,
    /// Anything else: the caller cannot fix it.
    Internal,
}

fn store(error: &StoreError) -> Underneath {
    match error {
        StoreError::JobNotFound(_) | StoreError::AlertNotFound(_) => {
            Underneath::Caller(StatusCode::NOT_FOUND, "not_found")
        }
        StoreError::JobConflict { .. } => Underneath::Caller(StatusCode::CONFLICT, "conflict"),
        StoreError::Connect { .. } => Underneath::Unavailable,
        StoreError::Database(error) => database(error),
        _ => Underneath::Internal,
    }
}

fn database(error: &sqlx::Error) -> Underneath {
    match error {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_) => Underneath::Unavailable,
        _ => Underneath::Internal,
    }
}

fn schedule(error: &ScheduleError) -> Underneath {
    match error {
        ScheduleError::NotFound(_) => Underneath::Caller(StatusCode::NOT_FOUND, "not_found"),
        ScheduleError::InvalidName(_) | ScheduleError::InvalidSpec { .. } => {
            Underneath::Caller(StatusCode::UNPROCESSABLE_ENTITY, "invalid_schedule")
        }
        ScheduleError::NameTaken { .. } | ScheduleError::RunActive { .. } => {
            Underneath::Caller(StatusCode::CONFLICT, "conflict")
        }
        ScheduleError::Database(error) => database(error),
        ScheduleError::Store(error) => store(error),
        ScheduleError::Corrupt(_) => Underneath::Internal,
    }
}

impl ApiError {
    fn underneath(&self) -> Option<Underneath> {
        Some(match self {
            ApiError::Store(error) => store(error),
            ApiError::Alert(AlertError::ChannelNotFound(_)) => {
                Underneath::Caller(StatusCode::NOT_FOUND, "not_found")
            }
            ApiError::Alert(AlertError::Invalid(_)) => {
                Underneath::Caller(StatusCode::UNPROCESSABLE_ENTITY, "invalid_channel")
            }
            ApiError::Alert(AlertError::Store(error)) => store(error),
            ApiError::Alert(AlertError::Secret(_)) => Underneath::Internal,
            ApiError::Schedule(error) => schedule(error),
            ApiError::Integration(error) => match error {
                ConfigureError::Invalid(_) => {
                    Underneath::Caller(StatusCode::UNPROCESSABLE_ENTITY, "invalid_integration")
                }
                ConfigureError::NotFound { .. }
                | ConfigureError::Store(IntegrationStoreError::NotFound(_)) => {
                    Underneath::Caller(StatusCode::NOT_FOUND, "not_found")
                }
                ConfigureError::Conflict(_) => Underneath::Caller(StatusCode::CONFLICT, "conflict"),
                ConfigureError::Store(IntegrationStoreError::Database(error)) => database(error),
                ConfigureError::Store(IntegrationStoreError::Jobs(error))
                | ConfigureError::Jobs(error) => store(error),
                ConfigureError::Store(IntegrationStoreError::Corrupt(_)) => Underneath::Internal,
                ConfigureError::Schedules(error) => schedule(error),
            },
            ApiError::Token(TokenError::Store(error)) => store(error),
            ApiError::Sync(error) => match error {
                SyncStoreError::NotFound(_) => {
                    Underneath::Caller(StatusCode::NOT_FOUND, "not_found")
                }
                SyncStoreError::Conflict(_) => Underneath::Caller(StatusCode::CONFLICT, "conflict"),
                SyncStoreError::Database(error) => database(error),
                SyncStoreError::Corrupt(_) => Underneath::Internal,
            },
            ApiError::Token(TokenError::Random(_)) => Underneath::Internal,
            ApiError::Webhook(error) => match error {
                WebhookError::EndpointNotFound(_) | WebhookError::DeliveryNotFound(_) => {
                    Underneath::Caller(StatusCode::NOT_FOUND, "not_found")
                }
                WebhookError::Invalid(_) => {
                    Underneath::Caller(StatusCode::UNPROCESSABLE_ENTITY, "invalid_endpoint")
                }
                WebhookError::Forbidden(_) => {
                    Underneath::Caller(StatusCode::FORBIDDEN, "forbidden")
                }
                WebhookError::Expunged(_) => Underneath::Caller(StatusCode::CONFLICT, "conflict"),
                WebhookError::Store(error) => store(error),
                WebhookError::Secret(_) => Underneath::Internal,
            },
            ApiError::Inbound(error) => match error {
                InboundError::NotConfigured { .. } | InboundError::Refused(_) => {
                    Underneath::Caller(StatusCode::UNAUTHORIZED, "unauthorized")
                }
                InboundError::Body(_) => {
                    Underneath::Caller(StatusCode::UNPROCESSABLE_ENTITY, "unprocessable")
                }
                InboundError::Store(error) => store(error),
                InboundError::Secret(_) => Underneath::Internal,
            },
            ApiError::DeadLetters(error) => match error {
                DeadLetterError::NotConfigured => {
                    Underneath::Caller(StatusCode::NOT_FOUND, "not_found")
                }
                DeadLetterError::Invalid(_) => {
                    Underneath::Caller(StatusCode::UNPROCESSABLE_ENTITY, "unprocessable")
                }
                DeadLetterError::Unreachable { .. } | DeadLetterError::Redis { .. } => {
                    Underneath::Unavailable
                }
            },
            _ => return None,
        })
    }

    /// The HTTP status it answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) | ApiError::BadBody(_) | ApiError::InvalidJson(_) => {
                StatusCode::BAD_REQUEST
            }
            ApiError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::RoleNeeded { .. }
            | ApiError::OtherWorkspace(_)
            | ApiError::WorkspaceToken => StatusCode::FORBIDDEN,
            ApiError::NoRoute | ApiError::UnknownProvider(_) | ApiError::NotFound(_) => {
                StatusCode::NOT_FOUND
            }
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::CompletedJob(_) => StatusCode::CONFLICT,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Timeout(_) | ApiError::NoMasterKey | ApiError::NoIntegrations => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::DeliveryFailed { .. } | ApiError::Unprocessable(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::InvalidEvent(rejection) | ApiError::InvalidJob(rejection) => {
                match rejection {
                    Rejection::NotJson(_) => StatusCode::BAD_REQUEST,
                    Rejection::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                    _ => StatusCode::UNPROCESSABLE_ENTITY,
                }
            }
            ApiError::Store(_)
            | ApiError::Sync(_)
            | ApiError::Alert(_)
            | ApiError::Schedule(_)
            | ApiError::Token(_)
            | ApiError::Webhook(_)
            | ApiError::Integration(_)
            | ApiError::Inbound(_)
            | ApiError::DeadLetters(_) => match self.underneath() {
                Some(Underneath::Caller(status, _)) => status,
                Some(Underneath::Unavailable) => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            },
        }
    }

    /// The stable code of the error body.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::BadBody(_) => "bad_body",
            ApiError::InvalidJson(_) => "invalid_json",
            ApiError::TooLarge => "too_large",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::RoleNeeded { .. }
            | ApiError::OtherWorkspace(_)
            | ApiError::WorkspaceToken => "forbidden",
            ApiError::NoRoute | ApiError::UnknownProvider(_) | ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::CompletedJob(_) => "conflict",
            ApiError::Conflict(_) => "conflict",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Timeout(_) => "timeout",
            ApiError::NoMasterKey | ApiError::NoIntegrations => "unavailable",
            ApiError::DeliveryFailed { .. } => "delivery_failed",
            ApiError::Unprocessable(_) => "unprocessable",
            ApiError::InvalidEvent(rejection) | ApiError::InvalidJob(rejection) => {
                match rejection {
                    Rejection::NotJson(_) => "invalid_json",
                    Rejection::TooLarge { .. } => "too_large",
                    _ if matches!(self, ApiError::InvalidEvent(_)) => "invalid_event",
                    _ => "invalid_job",
                }
            }
            ApiError::Store(_)
            | ApiError::Sync(_)
            | ApiError::Alert(_)
            | ApiError::Schedule(_)
            | ApiError::Token(_)
            | ApiError::Webhook(_)
            | ApiError::Integration(_)
            | ApiError::Inbound(_)
            | ApiError::DeadLetters(_) => match self.underneath() {
                Some(Underneath::Caller(_, code)) => code,
                Some(Underneath::Unavailable) => "unavailable",
                _ => "internal",
            },
        }
    }

    /// The message for people: the error itself, or a generic one (never SQL) for a failure
    /// the caller cannot fix.
    pub fn message(&self) -> String {
        match self.underneath() {
            // Redis, not the database: its own words (the URL's password redacted).
            Some(Underneath::Unavailable) if matches!(self, ApiError::DeadLetters(_)) => {
                self.to_string()
            }
            Some(Underneath::Unavailable) => UNAVAILABLE_MESSAGE.to_owned(),
            Some(Underneath::Internal) => INTERNAL_MESSAGE.to_owned(),
            _ => self.to_string(),
        }
    }

    /// Logs a failure the caller is not shown (the database's own words stay in the log).
    pub fn log_hidden(&self) {
        match self.underneath() {
            Some(Underneath::Unavailable) => {
                tracing::warn!(error = %self, "database unavailable")
            }
            Some(Underneath::Internal) => tracing::error!(error = %self, "internal error"),
            _ => {}
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.log_hidden();
        if let ApiError::InvalidEvent(_) | ApiError::InvalidJob(_) = self {
            metrics::counter!("hangar_ingress_entries_total", "source" => "http", "outcome" => "refused")
                .increment(1);
        }
        let retry_after = match self {
            ApiError::RateLimited { retry_after, .. } => Some(retry_after),
            _ => None,
        };
        let body = bodies::ErrorBody {
            error: bodies::ErrorDetail {
                code: self.code().to_owned(),
                message: self.message(),
            },
        };
        let mut response = (self.status(), Json(body)).into_response();
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
