//! The dead-letters page (`GET /dead-letters`): the Redis ingress's dead-letter stream,
//! newest first, for tokens valid for every workspace; for operators, the actions of
//! `hangar ingress dead`: replay the selected entries (or all) into the ingress stream,
//! delete the selected ones, trim the stream. Every action is asked twice: the first POST
//! (`/dead-letters/confirm`) shows what will happen and a confirmation form, the second
//! (`/dead-letters/apply`) does it; both check the origin, the CSRF token, the role and the
//! token's scope, whatever the page showed. The page does not refresh itself while open, so a
//! selection stays as it was made.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use chrono::Utc;
use maud::{Markup, html};
use serde::Deserialize;

use super::fragments::{as_of, excerpt, opt_time, table};
use super::frame::{self, Nav};
use super::session::{Session, same_origin};
use super::{DashState, Problem, page_headers};
use crate::api::Role;
use crate::config::RedisConfig;
use crate::redis_ingress::dead_letter_actions::{self, Selection, Trim};
use crate::redis_ingress::{DeadLetter, read_dead_letters};

/// How long a page waits for Redis before it says it could not reach it.
pub(super) const REDIS_WAIT: Duration = Duration::from_secs(2);
/// Dead letters the page shows.
const DEAD_LIMIT: usize = 100;

/// What the redirect after an action reports.
#[derive(Debug, Default, Deserialize)]
pub struct DoneQuery {
    /// `replayed`, `deleted` or `trimmed`.
    done: Option<String>,
    /// How many entries it concerned.
    n: Option<u64>,
    /// Of how many asked (replay).
    of: Option<u64>,
}

/// `GET /dead-letters`: the Redis ingress dead-letter stream, newest first.
pub async fn dead_letters(
    session: Session,
    State(state): State<DashState>,
    Query(done): Query<DoneQuery>,
) -> Result<Response, Problem> {
    let operator = session.caller.role.allows(Role::Operator);
    let content = match (&state.redis, &session.caller.workspace) {
        (_, Some(_)) => html! {
            p.note {
                "Dead letters are refused ingress entries of any workspace, so only tokens \
                 valid for every workspace see them."
            }
        },
        (None, None) => html! {
            p.note {
                "Redis is not configured (" code { "HANGAR_REDIS_URL" } " is unset): there is \
                 no ingress stream and no dead letters."
            }
        },
        (Some(redis), None) => letters(redis, &session, operator).await,
    };
    let main = html! {
        (as_of())
        h1 { "Dead letters" }
        (done_note(&done))
        (content)
    };
    Ok(render(&session, "Dead letters", main))
}

/// The page without the live refresh (a selection must not be swapped away).
fn render(session: &Session, title: &str, main: Markup) -> Response {
    let body = frame::document(title, Nav::DeadLetters, Some(&session.who()), false, main);
    (page_headers(), Html(body.into_string())).into_response()
}

fn done_note(done: &DoneQuery) -> Markup {
    let n = done.n.unwrap_or(0);
    let text = match done.done.as_deref() {
        Some("replayed") => format!(
            "Replayed {n} of {} into the ingress stream; an entry that is still bad comes back \
             here with its reason.",
            done.of.unwrap_or(n)
        ),
        Some("deleted") => format!("Deleted {n}."),
        Some("trimmed") => format!("Trimmed {n}."),
        _ => return html! {},
    };
    html! { p class="note done" { (text) } }
}

/// The newest dead letters as a table (with the selection and action forms for operators),
/// or why they cannot be read.
async fn letters(redis: &RedisConfig, session: &Session, operator: bool) -> Markup {
    let now = Utc::now();
    match tokio::time::timeout(REDIS_WAIT * 2, read_dead_letters(redis, DEAD_LIMIT)).await {
        Ok(Ok((letters, total))) => {
            let head = html! {
                @if operator { th { "select" } }
                th { "id" }
                th { "dead since" }
                th { "source id" }
                th { "error" }
                th { "msg" }
            };
            let rows = letters
                .iter()
                .map(|l| letter_row(l, now, operator))
                .collect();
            let listed = html! {
                p.mut {
                    (total) " in " code { (redis.dead_stream()) } "; the newest "
                    (letters.len().min(DEAD_LIMIT)) " shown."
                }
                (table(head, rows, "No dead letters. Every entry was accepted."))
            };
            if !operator || letters.is_empty() {
                return listed;
            }
            html! {
                form.actions method="post" action="/dead-letters/confirm" {
                    input type="hidden" name="csrf" value=(session.csrf);
                    (listed)
                    p {
                        button type="submit" name="action" value="replay" { "Replay selected" }
                        " "
                        button type="submit" name="action" value="delete" { "Delete selected" }
                        " "
                        button type="submit" name="action" value="replay_all" { "Replay all" }
                    }
                }
                form.filters method="post" action="/dead-letters/confirm" {
                    input type="hidden" name="csrf" value=(session.csrf);
                    input type="hidden" name="action" value="trim";
                    label { "older than" input name="older_than" size="6" placeholder="7d"; }
                    label { "or keep the newest" input name="keep" size="6" inputmode="numeric"; }
                    button type="submit" { "Trim" }
                }
            }
        }
        Ok(Err(error)) => html! { p class="note error" { (error.to_string()) } },
        Err(_) => html! { p class="note error" { "Redis did not answer in time." } },
    }
}

/// One dead letter's row: its message, or the fields of an entry that had none.
fn letter_row(l: &DeadLetter, now: chrono::DateTime<Utc>, operator: bool) -> Markup {
    let msg = match &l.fields {
        Some(fields) if l.msg.is_empty() => format!("fields: {fields}"),
        _ => l.msg.clone(),
    };
    html! {
        tr {
            @if operator {
                td { input type="checkbox" name="id" value=(l.id) aria-label={ "select " (l.id) }; }
            }
            td.id { (l.id) }
            td { (opt_time(l.dead_at, now)) }
            td.id { (l.source_id) }
            td.wrap { (l.error) }
            td class="wrap mono" { (excerpt(&msg, 240)) }
        }
    }
}

/// What a dead-letter form asks for.
#[derive(Debug, Clone, PartialEq)]
enum Action {
    Replay(Selection),
    Delete(Vec<String>),
    /// `field` is the form field that says how (`older_than` or `keep`) with its value.
    Trim {
        text: String,
        how: Trim,
        field: (&'static str, String),
    },
}

/// The checks both steps make first (origin, CSRF, operator, a token for every workspace,
/// Redis), then the action the form asks for.
fn admit<'a>(
    state: &'a DashState,
    session: &Session,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<(&'a RedisConfig, Action), Problem> {
    if !same_origin(headers) {
        return Err(Problem::cross_site());
    }
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body).unwrap_or_default();
    let field = |name: &str| {
        pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    session.check_csrf(&field("csrf").unwrap_or_default())?;
    if !session.caller.role.allows(Role::Operator) {
        return Err(Problem::forbidden(
            Role::Operator.as_str(),
            session.caller.role.as_str(),
        ));
    }
    if session.caller.workspace.is_some() {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "Dead letters span every workspace: only a token valid for every workspace may act on them.",
        ));
    }
    let Some(redis) = &state.redis else {
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            "Redis is not configured: there are no dead letters.",
        ));
    };
    let bad = |message: String| Problem::new(StatusCode::BAD_REQUEST, message);
    let ids: Vec<String> = pairs
        .iter()
        .filter(|(n, _)| n == "id")
        .map(|(_, v)| v.clone())
        .collect();
    let need_ids = |ids: Vec<String>| {
        dead_letter_actions::check_ids(&ids)
            .map(|()| ids)
            .map_err(|_| {
                bad("Select at least one dead letter (the boxes of the first column).".to_owned())
            })
    };
    let action = match field("action").as_deref() {
        Some("replay") => Action::Replay(Selection::Ids(need_ids(ids)?)),
        Some("replay_all") => Action::Replay(Selection::All),
        Some("delete") => Action::Delete(need_ids(ids)?),
        Some("trim") => match (field("older_than"), field("keep")) {
            (Some(age), None) => Action::Trim {
                how: Trim::OlderThan(
                    dead_letter_actions::parse_age(&age).map_err(|e| bad(e.to_string()))?,
                ),
                text: format!("remove the dead letters older than {age}"),
                field: ("older_than", age),
            },
            (None, Some(keep)) => {
                let n: u64 = keep
                    .parse()
                    .map_err(|_| bad(format!("keep: '{keep}' is not a whole number")))?;
                Action::Trim {
                    how: Trim::KeepNewest(n),
                    text: format!("keep only the newest {n} dead letters"),
                    field: ("keep", n.to_string()),
                }
            }
            _ => {
                return Err(bad(
                    "Trim: fill in one of \"older than\" (e.g. 7d) and \"keep the newest\"."
                        .to_owned(),
                ));
            }
        },
        _ => return Err(bad("No action was chosen.".to_owned())),
    };
    Ok((redis, action))
}

/// `POST /dead-letters/confirm`: what the action will do, with the form that does it.
pub async fn confirm(
    session: Session,
    State(state): State<DashState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let (redis, action) = admit(&state, &session, &headers, &body)?;
    let (question, fields): (String, Vec<(&str, String)>) = match &action {
        Action::Replay(Selection::Ids(ids)) => (
            format!(
                "Replay {} dead letter(s) into {}? Each entry's original msg is added to the \
                 ingress stream again and the dead entry removed.",
                ids.len(),
                redis.stream()
            ),
            std::iter::once(("action", "replay".to_owned()))
                .chain(ids.iter().map(|id| ("id", id.clone())))
                .collect(),
        ),
        Action::Replay(Selection::All) => (
            format!(
                "Replay every dead letter into {}? Fix the producer (or the pools) first: an \
                 entry that is still bad comes back here.",
                redis.stream()
            ),
            vec![("action", "replay_all".to_owned())],
        ),
        Action::Delete(ids) => (
            format!(
                "Delete {} dead letter(s)? This cannot be undone.",
                ids.len()
            ),
            std::iter::once(("action", "delete".to_owned()))
                .chain(ids.iter().map(|id| ("id", id.clone())))
                .collect(),
        ),
        Action::Trim { text, field, .. } => (
            format!(
                "Trim {}: {text}? This cannot be undone.",
                redis.dead_stream()
            ),
            vec![("action", "trim".to_owned()), (field.0, field.1.clone())],
        ),
    };
    let main = html! {
        h1 { "Dead letters" }
        p.note { (question) }
        @if let Action::Replay(Selection::Ids(ids)) | Action::Delete(ids) = &action {
            ul { @for id in ids { li.mono { (id) } } }
        }
        form.inline method="post" action="/dead-letters/apply" {
            input type="hidden" name="csrf" value=(session.csrf);
            @for (name, value) in &fields {
                input type="hidden" name=(name) value=(value);
            }
            button type="submit" { "Confirm" }
            " "
            a.btn href="/dead-letters" { "Cancel" }
        }
    };
    Ok(render(&session, "Dead letters: confirm", main))
}

/// `POST /dead-letters/apply`: does the confirmed action, then shows the page again.
pub async fn apply(
    session: Session,
    State(state): State<DashState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let (redis, action) = admit(&state, &session, &headers, &body)?;
    let failed = |e: dead_letter_actions::DeadLetterError| {
        Problem::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
    };
    let target = match action {
        Action::Replay(selection) => {
            let report = dead_letter_actions::replay(redis, &selection)
                .await
                .map_err(failed)?;
            format!(
                "/dead-letters?done=replayed&n={}&of={}",
                report.replayed,
                report.entries.len()
            )
        }
        Action::Delete(ids) => {
            let n = dead_letter_actions::delete(redis, &ids)
                .await
                .map_err(failed)?;
            format!("/dead-letters?done=deleted&n={n}")
        }
        Action::Trim { how, .. } => {
            let n = dead_letter_actions::trim(redis, how)
                .await
                .map_err(failed)?;
            format!("/dead-letters?done=trimmed&n={n}")
        }
    };
    Ok(Redirect::to(&target).into_response())
}
