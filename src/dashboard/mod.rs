//! The operator dashboard at `/` (MISSION.md §10): server-rendered HTML with inline CSS and a
//! few lines of inline script, no external assets, no build step. Pages: overview (queues,
//! alerts, dead letters), jobs, a job with its attempts, alerts, dead letters, schedules.
//!
//! Every page needs a session ([`session`]); roles are enforced here exactly as in the API
//! (viewer reads; retry, cancel and acknowledge need operator) and buttons a role cannot use
//! are not shown. A workspace token sees only its workspace's jobs, alerts and schedules;
//! queue totals and dead letters span every workspace, so only tokens valid for every
//! workspace see those. With the `X-Hangar-Partial` header a page answers only its `<main>`
//! content, which the live-refresh script swaps in every 5 s while the tab is visible.

mod actions;
mod html;
mod overview;
mod pages;
mod session;
mod session_store;
mod sign_in_limit;

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use hangar_workers::store::StoreError;

use crate::api::{ApiError, ApiState};
use crate::config::RedisConfig;
use html::Nav;
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
        .route("/", get(overview::overview))
        .route("/jobs", get(pages::jobs))
        .route("/jobs/{id}", get(pages::job))
        .route("/jobs/{id}/retry", post(actions::retry))
        .route("/jobs/{id}/cancel", post(actions::cancel))
        .route("/alerts", get(pages::alerts))
        .route("/alerts/{id}/ack", post(actions::ack))
        .route("/dead-letters", get(pages::dead_letters))
        .route("/schedules", get(pages::schedules))
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
            let main = format!(
                "<h1>Page not found</h1><p class=\"note error\">{}</p>\
                 <p><a href=\"/\">Overview</a> · <a href=\"/jobs\">Jobs</a> · \
                 <a href=\"/alerts\">Alerts</a></p>",
                html::esc(&message)
            );
            let page = html::document("Not found", Nav::None, Some(&session.who()), false, &main);
            (StatusCode::NOT_FOUND, page_headers(), Html(page)).into_response()
        }
        Err(_) => Problem::new(StatusCode::NOT_FOUND, message).into_response(),
    }
}

/// The headers of every dashboard page: no caching, no framing, only our own script.
fn page_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(html::content_security_policy()),
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
    main: String,
}

impl Page {
    /// The whole document, or only the `<main>` content for a live refresh.
    fn render(self, session: &Session) -> Response {
        let body = if session.partial {
            self.main
        } else {
            html::document(
                &self.title,
                self.nav,
                Some(&session.who()),
                true,
                &self.main,
            )
        };
        (page_headers(), Html(body)).into_response()
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
        let main = format!(
            "<h1>{}</h1><p class=\"note error\">{}</p><p><a href=\"/\">Overview</a></p>",
            self.status.as_u16(),
            html::esc(&self.message)
        );
        let page = html::document("Error", Nav::None, None, false, &main);
        (self.status, page_headers(), Html(page)).into_response()
    }
}
