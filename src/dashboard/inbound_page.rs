//! The inbound events page (`GET /workspaces/{ws}/inbound`): a workspace's provider hooks
//! (which are configured, where each provider pushes, never the material) and its latest
//! stored pushes with their processing state and outcome, each linked to its job. The roles
//! of the API: `admin` or `safety_manager`, and only the pushes of the providers the session's
//! role manages (an admin does not read the safety provider's reports).

use axum::extract::{Path, State};
use axum::response::Response;
use chrono::Utc;
use hangar_integrations::provider::Provider;
use maud::html;

use super::fragments::{as_of, clip, excerpt, none, table, time};
use super::frame::Nav;
use super::session::Session;
use super::{DashState, Page, Problem};
use crate::api::{Role, inbound_hook_manager};

/// How many pushes the page shows.
const SHOWN: i64 = 100;

/// `GET /workspaces/{ws}/inbound`.
pub async fn inbound(
    session: Session,
    State(state): State<DashState>,
    Path(ws): Path<String>,
) -> Result<Response, Problem> {
    let caller = &session.caller;
    if !(caller.role.allows(Role::Admin) || caller.role.allows(Role::SafetyManager)) {
        return Err(Problem::forbidden(
            "admin or safety_manager",
            caller.role.as_str(),
        ));
    }
    caller.require_workspace(&ws)?;
    let now = Utc::now();
    let store = &state.api.store;
    let hooks = store.inbound_hooks(&ws).await?;
    let mut events = store.inbound_events(&ws, None, SHOWN).await?;
    let manages = |id: &str| {
        id.parse::<Provider>()
            .is_ok_and(|p| caller.role.allows(inbound_hook_manager(p)))
    };
    events.retain(|e| manages(&e.provider));

    let hook_head = html! {
        th { "provider" } th { "scheme" } th { "push to" } th { "configured" } th { "set" }
    };
    let hook_rows = hooks
        .iter()
        .filter(|h| manages(&h.provider))
        .map(|h| {
            html! {
                tr {
                    td.mono { (h.provider) }
                    td.mono { (h.scheme) }
                    td.mono { (clip(&format!("/hooks/{}/{ws}", h.provider))) }
                    td { span.ok { "yes" } }
                    td { (time(h.updated_at, now)) }
                }
            }
        })
        .collect();
    let head = html! {
        th.num { "#" } th { "provider" } th { "event id" } th { "type" } th { "received" }
        th { "state" } th { "outcome" } th { "job" }
    };
    let rows = events
        .iter()
        .map(|e| {
            html! {
                tr {
                    td.num { (e.id) }
                    td.mono { (e.provider) }
                    td.mono { (clip(&e.event_id)) }
                    td.mono {
                        @match &e.event_type { Some(t) => (clip(t)), None => (none()) }
                        @if e.safety { " " small { "safety (append-only)" } }
                    }
                    td { (time(e.received_at, now)) }
                    td {
                        @if e.state == "processed" { span.ok { (e.state) } }
                        @else { span.mut { (e.state) } }
                    }
                    td {
                        @match &e.outcome {
                            Some(o) => span title=(o) { (excerpt(o, 120)) },
                            None => (none()),
                        }
                    }
                    td {
                        @match e.job_id {
                            Some(id) => a.mono href={ "/jobs/" (id) } { (id) },
                            None => (none()),
                        }
                    }
                }
            }
        })
        .collect();
    let main = html! {
        (as_of())
        h1 { "Inbound events · " (clip(&ws)) }
        h2 { "Provider hooks" }
        (table(hook_head, hook_rows, "No provider hook is configured in this workspace."))
        h2 { "Latest pushes" }
        (table(head, rows, "No push received yet."))
    };
    Ok(Page {
        title: format!("Inbound events · {ws}"),
        nav: Nav::None,
        main,
    }
    .render(&session))
}
