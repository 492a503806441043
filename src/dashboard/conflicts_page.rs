//! The conflicts page (`GET /conflicts`, open ones unless `?state=all`): financial records
//! changed on both sides, held for review, with both sides; and the resolve action
//! (`POST /conflicts/{id}/resolve`, `take=ours|theirs`), refused cross-site, without this
//! session's CSRF token, below `admin` or outside the session's workspace — server-side,
//! whatever the page showed (the buttons are only shown to those who may use them).

use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use hangar_integrations::store::sync_conflicts::Take;
use maud::html;
use serde::Deserialize;

use super::fragments::{as_of, clip, excerpt, none, table, time};
use super::frame::Nav;
use super::session::{Session, same_origin};
use super::{DashState, Page, Problem};
use crate::api::Role;
use crate::api::sync_runs::sync_store;

/// `?state=` and `?done=`.
#[derive(Debug, Default, Deserialize)]
pub struct ConflictsQuery {
    state: Option<String>,
    done: Option<String>,
}

/// The resolve form.
#[derive(Debug, Deserialize)]
pub struct ResolveForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    take: String,
}

/// `GET /conflicts`.
pub async fn conflicts(
    session: Session,
    State(state): State<DashState>,
    Query(query): Query<ConflictsQuery>,
) -> Result<Response, Problem> {
    let open_only = match query.state.as_deref() {
        None | Some("") | Some("open") => true,
        Some("all") => false,
        Some(other) => {
            return Err(Problem::new(
                StatusCode::BAD_REQUEST,
                format!("state: `{other}` is not one of open, all"),
            ));
        }
    };
    let now = Utc::now();
    let rows = sync_store(&state.api)
        .conflicts(session.caller.workspace.as_deref(), open_only, 200)
        .await
        .map_err(crate::api::ApiError::from)?;
    let admin = session.caller.role.allows(Role::Admin);
    let head = html! {
        th { "conflict" }
        th { "provider" }
        th { "workspace" }
        th { "record" }
        th { "reason" }
        th { "ours" }
        th { "theirs" }
        th { "found" }
        th { "resolution" }
    };
    let side = |v: Option<&serde_json::Value>| match v {
        Some(v) => html! { code.wrap title=(v.to_string()) { (excerpt(&v.to_string(), 160)) } },
        None => none(),
    };
    let table_rows = rows
        .iter()
        .map(|c| {
            html! {
                tr {
                    td.mono { (clip(&c.id)) }
                    td.mono { (clip(&c.provider)) }
                    td.mono { (clip(&c.workspace_id)) }
                    td.mono {
                        (c.object_type) " " (c.external_id)
                        @if let Some(internal) = &c.internal_id { br; small { (internal) } }
                    }
                    td { (c.reason) }
                    td { (side(c.ours.as_ref())) }
                    td { (side(Some(&c.theirs))) }
                    td { (time(c.created_at, now)) }
                    td {
                        @if let Some(resolution) = &c.resolution {
                            "took " (resolution)
                        } @else if admin {
                            form.inline method="post" action={ "/conflicts/" (c.id) "/resolve" } {
                                input type="hidden" name="csrf" value=(session.csrf);
                                input type="hidden" name="take" value="ours";
                                button type="submit" { "Take ours" }
                            }
                            " "
                            form.inline method="post" action={ "/conflicts/" (c.id) "/resolve" } {
                                input type="hidden" name="csrf" value=(session.csrf);
                                input type="hidden" name="take" value="theirs";
                                button type="submit" { "Take theirs" }
                            }
                        } @else {
                            span.bad { "open" }
                        }
                    }
                }
            }
        })
        .collect();
    let done = match query.done.as_deref() {
        Some("ours") => Some("Resolved: the platform's side is kept."),
        Some("theirs") => Some("Resolved: the provider's side is applied."),
        _ => None,
    };
    let main = html! {
        (as_of())
        h1 { "Conflicts" }
        @if let Some(done) = done { p class="note done" { (done) } }
        p {
            @if open_only { a href="/conflicts?state=all" { "Show resolved ones too" } }
            @else { a href="/conflicts" { "Only open ones" } }
        }
        (table(head, table_rows, if open_only { "No open conflicts." } else { "No conflicts." }))
    };
    Ok(Page {
        title: "Conflicts".to_owned(),
        nav: Nav::Conflicts,
        main,
    }
    .render(&session))
}

/// `POST /conflicts/{id}/resolve`.
pub async fn resolve(
    session: Session,
    State(state): State<DashState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    form: Result<Form<ResolveForm>, FormRejection>,
) -> Result<Response, Problem> {
    if !same_origin(&headers) {
        return Err(Problem::cross_site());
    }
    let form = form.map(|f| f.0).ok();
    session.check_csrf(form.as_ref().map_or("", |f| f.csrf.as_str()))?;
    if !session.caller.role.allows(Role::Admin) {
        return Err(Problem::forbidden(
            Role::Admin.as_str(),
            session.caller.role.as_str(),
        ));
    }
    let store = sync_store(&state.api);
    let conflict = store
        .conflict(&id)
        .await
        .map_err(crate::api::ApiError::from)?;
    if !session.caller.sees(Some(&conflict.workspace_id)) {
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            format!("conflict {id} not found"),
        ));
    }
    let take = match form.as_ref().map(|f| f.take.as_str()) {
        Some("ours") => Take::Ours,
        Some("theirs") => Take::Theirs,
        _ => {
            return Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "take: must be one of ours, theirs",
            ));
        }
    };
    let who = format!("dashboard token:{}", session.caller.token_id);
    store
        .resolve_conflict(&id, take, &who)
        .await
        .map_err(crate::api::ApiError::from)?;
    let done = if take == Take::Ours { "ours" } else { "theirs" };
    Ok(Redirect::to(&format!("/conflicts?done={done}")).into_response())
}
