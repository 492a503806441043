//! The dashboard's POST actions: retry and cancel a job, acknowledge an alert. Each refuses a
//! cross-site request and a wrong CSRF token before it looks at anything, then checks the
//! role (operator) and the workspace server-side, whatever the page showed, and answers with
//! a redirect to the page that shows the result.

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use hangar_workers::job::{Job, JobId};

use super::session::{CsrfForm, Session, same_origin};
use super::{DashState, Problem};
use crate::api::Role;

/// The checks every action makes first: same origin, CSRF token, operator role.
fn admit(
    session: &Session,
    headers: &HeaderMap,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Result<(), Problem> {
    if !same_origin(headers) {
        return Err(Problem::cross_site());
    }
    session.check_csrf(&form.map(|f| f.0.csrf).unwrap_or_default())?;
    if !session.caller.role.allows(Role::Operator) {
        return Err(Problem::forbidden(
            Role::Operator.as_str(),
            session.caller.role.as_str(),
        ));
    }
    Ok(())
}

/// The job, if the session may see it (404 otherwise, as if it did not exist).
pub async fn visible_job(state: &DashState, session: &Session, id: i64) -> Result<Job, Problem> {
    Ok(session.caller.job(&state.api.store, JobId(id)).await?)
}

/// `POST /jobs/{id}/retry`.
pub async fn retry(
    session: Session,
    State(state): State<DashState>,
    Path(id): Path<i64>,
    headers: HeaderMap,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Result<Response, Problem> {
    admit(&session, &headers, form)?;
    visible_job(&state, &session, id).await?;
    state.api.store.retry_job(JobId(id)).await?;
    Ok(Redirect::to(&format!("/jobs/{id}?done=retried")).into_response())
}

/// `POST /jobs/{id}/cancel`.
pub async fn cancel(
    session: Session,
    State(state): State<DashState>,
    Path(id): Path<i64>,
    headers: HeaderMap,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Result<Response, Problem> {
    admit(&session, &headers, form)?;
    visible_job(&state, &session, id).await?;
    state.api.store.cancel_job(JobId(id)).await?;
    Ok(Redirect::to(&format!("/jobs/{id}?done=cancelled")).into_response())
}

/// `POST /alerts/{id}/ack`.
pub async fn ack(
    session: Session,
    State(state): State<DashState>,
    Path(id): Path<i64>,
    headers: HeaderMap,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Result<Response, Problem> {
    admit(&session, &headers, form)?;
    session.caller.check_alert(&state.api.store, id).await?;
    state.api.store.ack_alert(id).await?;
    Ok(Redirect::to("/alerts?done=acknowledged").into_response())
}
