//! The dashboard's POST actions: retry (or run now), run again (after a confirmation page)
//! and cancel a job, acknowledge an alert. Each refuses a cross-site request and a wrong CSRF
//! token before it looks at anything, then checks the role (operator) and the workspace
//! server-side, whatever the page showed, records the signed-in token's name on the job's
//! action, and answers with a redirect to the page that shows the result.

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use hangar_workers::job::{Job, JobId, JobState};
use hangar_workers::job_action::ActionSource;
use hangar_workers::store::StoreError;
use maud::html;

use super::frame::Nav;
use super::session::{CsrfForm, Session, same_origin};
use super::{DashState, Page, Problem};
use crate::api::Role;

/// The checks every action makes first: same origin, CSRF token, operator role.
fn admit(
    session: &Session,
    headers: &HeaderMap,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Result<(), Problem> {
    admit_csrf(
        session,
        headers,
        &form.map(|f| f.0.csrf).unwrap_or_default(),
    )
}

/// [`admit`] for a form read by its handler: the CSRF token it carried.
pub(super) fn admit_csrf(
    session: &Session,
    headers: &HeaderMap,
    csrf: &str,
) -> Result<(), Problem> {
    if !same_origin(headers) {
        return Err(Problem::cross_site());
    }
    session.check_csrf(csrf)?;
    require_operator(session)
}

/// 403 unless the session's role is `operator` or more.
pub(super) fn require_operator(session: &Session) -> Result<(), Problem> {
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
    let actor = session.caller.actor(ActionSource::Dashboard);
    match state.api.store.retry_job(JobId(id), &actor).await {
        Err(StoreError::JobConflict {
            state: JobState::Completed,
            ..
        }) => Err(Problem::new(
            StatusCode::CONFLICT,
            format!(
                "Job {id} is completed: Retry is for failed and cancelled jobs. Use \
                 \"Run again\" on its page to run it once more."
            ),
        )),
        other => {
            other?;
            Ok(Redirect::to(&format!("/jobs/{id}?done=retried")).into_response())
        }
    }
}

/// `GET /jobs/{id}/run-again`: the confirmation a run again needs (operator).
pub async fn confirm_run_again(
    session: Session,
    State(state): State<DashState>,
    Path(id): Path<i64>,
) -> Result<Response, Problem> {
    require_operator(&session)?;
    let job = visible_job(&state, &session, id).await?;
    if job.state != JobState::Completed {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            format!(
                "Job {id} is {}: only a completed job runs again.",
                job.state
            ),
        ));
    }
    let main = html! {
        h1 { "Run job " span.mono { (id) } " again?" }
        p {
            "Job " (id) " (" span.mono { (job.kind) } ", queue " span.mono { (job.queue) } ") \
             completed. It will be queued once more with a fresh retry budget; its attempts \
             so far stay in its history, and the action is recorded under your name."
        }
        form.inline method="post" action={ "/jobs/" (id) "/run-again" } {
            input type="hidden" name="csrf" value=(session.csrf);
            button.primary type="submit" id="confirm" { "Run again" }
        }
        " "
        a.btn href={ "/jobs/" (id) } { "Back" }
    };
    Ok(Page {
        title: format!("Run job {id} again"),
        nav: Nav::Jobs,
        main,
    }
    .render(&session))
}

/// `POST /jobs/{id}/run-again`.
pub async fn run_again(
    session: Session,
    State(state): State<DashState>,
    Path(id): Path<i64>,
    headers: HeaderMap,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Result<Response, Problem> {
    admit(&session, &headers, form)?;
    visible_job(&state, &session, id).await?;
    let actor = session.caller.actor(ActionSource::Dashboard);
    state.api.store.run_again_job(JobId(id), &actor).await?;
    Ok(Redirect::to(&format!("/jobs/{id}?done=run_again")).into_response())
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
    let actor = session.caller.actor(ActionSource::Dashboard);
    state.api.store.cancel_job(JobId(id), &actor).await?;
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
