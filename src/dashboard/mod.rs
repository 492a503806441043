//! The operator dashboard at `/` (MISSION.md §10): server-rendered HTML with inline CSS and a
//! few lines of inline script, no external assets, no build step. Every page is a maud
//! template (checked at compile time, escaping every spliced value by construction), one
//! module per page (`*_page.rs`) inside the shared [`frame`], built from [`fragments`]. Pages: overview (queues,
//! alerts, dead letters), jobs, a job with its attempts, alerts, dead letters, schedules,
//! webhook endpoints and an endpoint's deliveries (resend, replay), a workspace's inbound
//! events, integrations, sync runs, conflicts (resolve: `admin`), workers (the processes, the
//! jobs each runs, queue pause and resume: `operator`).
//!
//! Every page needs a session ([`session`]); roles are enforced here exactly as in the API
//! (viewer reads; retry, cancel and acknowledge need operator) and buttons a role cannot use
//! are not shown. A workspace token sees only its workspace's jobs, alerts and schedules;
//! queue totals and dead letters span every workspace, so only tokens valid for every
//! workspace see those. With the `X-Hangar-Partial` header a page answers only its `<main>`
//! content, which the live-refresh script swaps in every 5 s while the tab is visible.

mod actions;
mod alerts_page;
mod chart;
mod conflicts_page;
mod dead_letters_page;
mod events_page;
mod fragments;
mod frame;
mod inbound_page;
mod integrations_page;
mod job_page;
mod jobs_bulk;
mod jobs_page;
mod overview_page;
mod schedules_page;
mod session;
mod session_store;
mod sign_in_limit;
mod sync_runs_page;
mod timeline;
mod webhook_actions;
mod webhooks_page;
mod workers_page;
mod workspace_overview;

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use hangar_workers::store::StoreError;
use maud::{Markup, html};

use crate::api::{ApiError, ApiState};
use crate::config::RedisConfig;
use frame::Nav;
use session::Session;
use sign_in_limit::SignInLimit;

/// What the dashboard's handlers need.
#[derive(Clone)]
pub struct DashState {
    /// The API's state: the store and the per-token rate limiter, shared with the API.
    api: ApiState,
    /// The Redis ingress, when configured (dead letters).
    redis: Option<RedisConfig>,
    /// Failed sign-ins per client address.
    sign_ins: Arc<SignInLimit>,
}

/// The dashboard's routes.
pub fn routes(api: ApiState, redis: Option<RedisConfig>) -> Router {
    Router::new()
        .route("/", get(overview_page::overview))
        .route("/jobs", get(jobs_page::jobs))
        .route("/jobs/{id}", get(job_page::job))
        .route("/jobs/{id}/retry", post(actions::retry))
        .route("/jobs/{id}/cancel", post(actions::cancel))
        .route(
            "/jobs/{id}/run-again",
            get(actions::confirm_run_again).post(actions::run_again),
        )
        .route("/jobs/bulk", get(jobs_bulk::confirm).post(jobs_bulk::apply))
        .route("/alerts", get(alerts_page::alerts))
        .route("/alerts/{id}/ack", post(actions::ack))
        .route("/dead-letters", get(dead_letters_page::dead_letters))
        .route("/dead-letters/confirm", post(dead_letters_page::confirm))
        .route("/dead-letters/apply", post(dead_letters_page::apply))
        .route("/events", get(events_page::events))
        .route("/events/{id}", get(events_page::event))
        .route("/schedules", get(schedules_page::schedules))
        .route("/schedules/{id}/enable", post(schedules_page::enable))
        .route("/schedules/{id}/disable", post(schedules_page::disable))
        .route("/schedules/{id}/run", post(schedules_page::run))
        .route("/workers", get(workers_page::workers))
        .route("/queues/pause", post(workers_page::pause))
        .route("/queues/resume", post(workers_page::resume))
        .route("/workspaces/{ws}/inbound", get(inbound_page::inbound))
        .route("/webhooks", get(webhooks_page::endpoints))
        .route("/webhooks/{id}", get(webhooks_page::endpoint))
        .route("/webhooks/{id}/replay", post(webhook_actions::replay))
        .route(
            "/webhooks/deliveries/{id}/resend",
            post(webhook_actions::resend),
        )
        .route("/integrations", get(integrations_page::integrations))
        .route("/sync-runs", get(sync_runs_page::sync_runs))
        .route("/conflicts", get(conflicts_page::conflicts))
        .route("/conflicts/{id}/resolve", post(conflicts_page::resolve))
        .merge(session::routes())
        .fallback(not_found)
        .with_state(DashState {
            api,
            redis,
            sign_ins: Arc::default(),
        })
}

/// Any path no route serves: the API's JSON error under `/api/`, else an HTML 404 page in
/// the dashboard's frame (with its navigation when signed in).
async fn not_found(State(state): State<DashState>, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    if path == "/api" || path.starts_with("/api/") {
        return crate::api::not_found().into_response();
    }
    let message = format!("There is no dashboard page at {path}.");
    let (mut parts, _) = request.into_parts();
    match Session::from_request_parts(&mut parts, &state).await {
        Ok(session) => {
            let main = html! {
                h1 { "Page not found" }
                p class="note error" { (message) }
                p {
                    a href="/" { "Overview" } " · "
                    a href="/jobs" { "Jobs" } " · "
                    a href="/alerts" { "Alerts" }
                }
            };
            let page = frame::document("Not found", Nav::None, Some(&session.who()), false, main);
            (
                StatusCode::NOT_FOUND,
                page_headers(),
                Html(page.into_string()),
            )
                .into_response()
        }
        Err(_) => Problem::new(StatusCode::NOT_FOUND, message).into_response(),
    }
}

/// The headers of every dashboard page: no caching, no framing, only our own script.
fn page_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(frame::content_security_policy()),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        HeaderName::from_static("vary"),
        HeaderValue::from_static("x-hangar-partial, cookie"),
    );
    headers
}

/// A rendered page: its title, navigation entry and `<main>` content.
struct Page {
    title: String,
    nav: Nav,
    main: Markup,
}

impl Page {
    /// The whole document, or only the `<main>` content for a live refresh.
    fn render(self, session: &Session) -> Response {
        let body = if session.partial {
            self.main
        } else {
            frame::document(&self.title, self.nav, Some(&session.who()), true, self.main)
        };
        (page_headers(), Html(body.into_string())).into_response()
    }
}

/// An error page: what went wrong, for people, with nothing internal in it.
#[derive(Debug)]
pub struct Problem {
    status: StatusCode,
    message: String,
}

impl Problem {
    /// A problem with this status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Problem {
        Problem {
            status,
            message: message.into(),
        }
    }

    /// A POST that came from another site.
    fn cross_site() -> Problem {
        Problem::new(
            StatusCode::FORBIDDEN,
            "This form was sent from another site; nothing was changed.",
        )
    }

    /// 403 for a role that may not do this.
    fn forbidden(need: &str, role: &str) -> Problem {
        Problem::new(
            StatusCode::FORBIDDEN,
            format!("This needs the role {need} (or one that includes it); you are {role}."),
        )
    }
}

/// The API's mapping, shown as a page: the same status and message (never SQL).
impl From<ApiError> for Problem {
    fn from(error: ApiError) -> Problem {
        error.log_hidden();
        Problem::new(error.status(), error.message())
    }
}

impl From<StoreError> for Problem {
    fn from(error: StoreError) -> Problem {
        Problem::from(ApiError::from(error))
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let main = html! {
            h1 { (self.status.as_u16()) }
            p class="note error" { (self.message) }
            p { a href="/" { "Overview" } }
        };
        let page = frame::document("Error", Nav::None, None, false, main);
        (self.status, page_headers(), Html(page.into_string())).into_response()
    }
}
