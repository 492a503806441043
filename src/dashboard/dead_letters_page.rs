//! The dead-letters page (`GET /dead-letters`): the Redis ingress's dead-letter stream,
//! newest first, for tokens valid for every workspace.

use std::time::Duration;

use axum::extract::State;
use axum::response::Response;
use chrono::Utc;
use maud::{Markup, html};

use super::fragments::{as_of, excerpt, opt_time, table};
use super::frame::Nav;
use super::session::Session;
use super::{DashState, Page, Problem};
use crate::config::RedisConfig;
use crate::redis_ingress::{DeadLetter, read_dead_letters};

/// How long a page waits for Redis before it says it could not reach it.
pub(super) const REDIS_WAIT: Duration = Duration::from_secs(2);
/// Dead letters the page shows.
const DEAD_LIMIT: usize = 100;

/// `GET /dead-letters`: the Redis ingress dead-letter stream, newest first.
pub async fn dead_letters(
    session: Session,
    State(state): State<DashState>,
) -> Result<Response, Problem> {
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
        (Some(redis), None) => letters(redis).await,
    };
    let main = html! {
        (as_of())
        h1 { "Dead letters" }
        (content)
    };
    Ok(Page {
        title: "Dead letters".to_owned(),
        nav: Nav::DeadLetters,
        main,
    }
    .render(&session))
}

/// The newest dead letters as a table, or why they cannot be read.
async fn letters(redis: &RedisConfig) -> Markup {
    let now = Utc::now();
    match tokio::time::timeout(REDIS_WAIT * 2, read_dead_letters(redis, DEAD_LIMIT)).await {
        Ok(Ok((letters, total))) => {
            let head = html! {
                th { "id" }
                th { "dead since" }
                th { "source id" }
                th { "error" }
                th { "msg" }
            };
            let rows = letters.iter().map(|l| letter_row(l, now)).collect();
            html! {
                p.mut {
                    (total) " in " code { (redis.dead_stream()) } "; the newest "
                    (letters.len().min(DEAD_LIMIT)) " shown."
                }
                (table(head, rows, "No dead letters. Every entry was accepted."))
            }
        }
        Ok(Err(error)) => html! { p class="note error" { (error.to_string()) } },
        Err(_) => html! { p class="note error" { "Redis did not answer in time." } },
    }
}

/// One dead letter's row: its message, or the fields of an entry that had none.
fn letter_row(l: &DeadLetter, now: chrono::DateTime<Utc>) -> Markup {
    let msg = match &l.fields {
        Some(fields) if l.msg.is_empty() => format!("fields: {fields}"),
        _ => l.msg.clone(),
    };
    html! {
        tr {
            td.id { (l.id) }
            td { (opt_time(l.dead_at, now)) }
            td.id { (l.source_id) }
            td.wrap { (l.error) }
            td class="wrap mono" { (excerpt(&msg, 240)) }
        }
    }
}
