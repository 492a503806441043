//! The webhook pages' POST actions: resend one delivery, replay an endpoint's deliveries since
//! a time. Like every dashboard action: a cross-site request and a wrong CSRF token are
//! refused before anything else; then the role is checked server-side exactly as the API
//! does (`admin` or `safety_manager`, and the rights to everything the endpoint receives),
//! whatever the page showed; the answer is a redirect to the endpoint's page.

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use hangar_workers::webhooks::{Endpoint, WebhookContext};
use serde::Deserialize;

use super::session::{Session, same_origin};
use super::webhooks_page::visible_endpoint;
use super::{DashState, Problem};
use crate::api::ApiError;
use crate::api::webhook_bodies::{may_manage, require_webhooks};

/// The resend form: the CSRF token.
#[derive(Deserialize)]
pub struct ResendForm {
    #[serde(default)]
    csrf: String,
}

/// The replay form: the CSRF token, since when, only failed ones.
#[derive(Deserialize)]
pub struct ReplayForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    since: String,
    failed_only: Option<String>,
}

/// The right to manage `endpoint`, as the API checks it.
fn admit(session: &Session, endpoint: &Endpoint) -> Result<(), Problem> {
    require_webhooks(&session.caller)?;
    may_manage(&session.caller, endpoint)?;
    Ok(())
}

/// Same origin and the session's CSRF token, before anything else.
fn first_checks(session: &Session, headers: &HeaderMap, csrf: &str) -> Result<(), Problem> {
    if !same_origin(headers) {
        return Err(Problem::cross_site());
    }
    session.check_csrf(csrf)
}

fn context(state: &DashState) -> Result<&WebhookContext, Problem> {
    Ok(state.api.webhooks.as_ref().ok_or(ApiError::NoMasterKey)?)
}

/// `POST /webhooks/deliveries/{id}/resend`.
pub async fn resend(
    session: Session,
    State(state): State<DashState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    form: Result<Form<ResendForm>, FormRejection>,
) -> Result<Response, Problem> {
    let csrf = form.map(|f| f.0.csrf).unwrap_or_default();
    first_checks(&session, &headers, &csrf)?;
    let not_found = || {
        Problem::new(
            StatusCode::NOT_FOUND,
            format!("There is no webhook delivery {id}."),
        )
    };
    let delivery = state
        .api
        .store
        .webhook_delivery(&id)
        .await?
        .ok_or_else(not_found)?;
    if !session.caller.sees(Some(&delivery.workspace_id)) {
        return Err(not_found());
    }
    let endpoint = visible_endpoint(&state, &session, &delivery.endpoint_id).await?;
    admit(&session, &endpoint)?;
    if delivery.expunged_at.is_some() {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "This delivery was expunged: its content is gone, it cannot be resent.",
        ));
    }
    let route = context(&state)?.route();
    state
        .api
        .store
        .requeue_webhook_deliveries(std::slice::from_ref(&id), &route)
        .await?;
    Ok(Redirect::to(&format!("/webhooks/{}?done=resent", endpoint.id)).into_response())
}

/// `POST /webhooks/{id}/replay`.
pub async fn replay(
    session: Session,
    State(state): State<DashState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    form: Result<Form<ReplayForm>, FormRejection>,
) -> Result<Response, Problem> {
    let form = form.map(|f| f.0).ok();
    let csrf = form.as_ref().map(|f| f.csrf.clone()).unwrap_or_default();
    first_checks(&session, &headers, &csrf)?;
    let endpoint = visible_endpoint(&state, &session, &id).await?;
    admit(&session, &endpoint)?;
    let Some(form) = form else {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "The replay form is incomplete.",
        ));
    };
    let since: DateTime<Utc> = DateTime::parse_from_rfc3339(form.since.trim())
        .map_err(|_| {
            Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "since: not an RFC 3339 time (e.g. 2026-11-22T00:00:00Z).",
            )
        })?
        .with_timezone(&Utc);
    let ask = hangar_workers::webhooks::replay::ReplayAsk {
        since,
        until: Utc::now(),
        failed_only: form.failed_only.is_some(),
        dry_run: false,
    };
    let route = context(&state)?.route();
    let (count, _) = hangar_workers::webhooks::replay::start(
        &state.api.store,
        &route,
        &endpoint.workspace_id,
        &endpoint.id,
        &ask,
    )
    .await
    .map_err(crate::api::ApiError::from)?;
    Ok(Redirect::to(&format!("/webhooks/{}?done=replayed-{count}", endpoint.id)).into_response())
}
