//! Bulk retry and bulk cancel from the jobs list (issue 15), `operator` only. `GET /jobs/bulk`
//! (`action=retry|cancel`, and either the list's filters or `job=` ids of a selection)
//! shows what the action would do — how many jobs, how many it changes, the rest by state —
//! and a confirmation form; `POST /jobs/bulk` (same fields, with the CSRF token, same-origin)
//! does it, each changed job recording the signed-in token's name and the batch id, and
//! shows the counts. A filter that names nothing is refused: a bulk action over every job
//! is the CLI's (`--all`).

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use hangar_workers::job::{JobFilter, JobId};
use hangar_workers::job_action::{ActionSource, BulkOutcome, BulkTarget, JobAction, MAX_BULK_IDS};
use maud::{Markup, html};

use super::actions::{admit_csrf, require_operator};
use super::fragments::jobs_link;
use super::frame::Nav;
use super::jobs_page::{JobsQuery, filter_of};
use super::session::Session;
use super::{DashState, Page, Problem};

/// What a bulk form asks: the action and its jobs, with the pairs that carry them on.
struct BulkForm {
    action: JobAction,
    target: BulkTarget,
    /// The filter's pairs (for the way back to the list), empty for a selection.
    filter_pairs: Vec<(&'static str, String)>,
    /// The selected ids.
    ids: Vec<i64>,
}

fn bad(message: impl Into<String>) -> Problem {
    Problem::new(StatusCode::BAD_REQUEST, message)
}

impl BulkForm {
    /// Reads a bulk form (query or body): `action`, and `job` ids or the list's filters.
    fn parse(raw: &str, session: &Session) -> Result<BulkForm, Problem> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw)
            .map_err(|_| bad("The form could not be read; nothing was changed."))?;
        let value = |name: &str| {
            pairs
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.trim().to_owned())
                .unwrap_or_default()
        };
        let action = match value("action").as_str() {
            "retry" => JobAction::Retry,
            "cancel" => JobAction::Cancel,
            other => {
                return Err(bad(format!(
                    "action: '{other}' is not a bulk action (retry or cancel)"
                )));
            }
        };
        let ids = pairs
            .iter()
            .filter(|(n, _)| n == "job")
            .map(|(_, v)| {
                v.trim()
                    .parse::<i64>()
                    .map_err(|_| bad(format!("job: '{v}' is not a job id")))
            })
            .collect::<Result<Vec<i64>, Problem>>()?;
        if ids.len() > MAX_BULK_IDS {
            return Err(bad(format!(
                "{} jobs selected: at most {MAX_BULK_IDS}; use a filter",
                ids.len()
            )));
        }
        let query = JobsQuery::parse(Some(raw));
        let filter = filter_of(&query, session)?;
        let filter_pairs = query.pairs(&filter.states);
        let target = if !ids.is_empty() {
            BulkTarget::Ids(ids.iter().copied().map(JobId).collect())
        } else if !filter_pairs.is_empty() {
            BulkTarget::Filter(JobFilter { ..filter })
        } else {
            return Err(bad(
                "Choose a filter or select jobs first: a bulk action needs one (nothing was \
                 changed).",
            ));
        };
        Ok(BulkForm {
            action,
            target,
            filter_pairs: if ids.is_empty() {
                filter_pairs
            } else {
                Vec::new()
            },
            ids,
        })
    }

    /// Runs (or, `dry`, counts) the action for the session.
    async fn run(
        &self,
        state: &DashState,
        session: &Session,
        dry: bool,
    ) -> Result<BulkOutcome, Problem> {
        Ok(state
            .api
            .store
            .bulk_action(
                self.action,
                &self.target,
                session.caller.workspace.as_deref(),
                &session.caller.actor(ActionSource::Dashboard),
                dry,
            )
            .await?)
    }

    /// The verb on buttons and headings.
    fn verb(&self) -> &'static str {
        match self.action {
            JobAction::Cancel => "Cancel",
            _ => "Retry",
        }
    }

    /// The list the jobs came from.
    fn back(&self) -> String {
        let pairs: Vec<(&str, &str)> = self
            .filter_pairs
            .iter()
            .map(|(n, v)| (*n, v.as_str()))
            .collect();
        jobs_link(&pairs)
    }

    /// What the jobs are, in words.
    fn what(&self) -> Markup {
        html! {
            @if self.ids.is_empty() {
                "the jobs matching "
                @for (i, (name, value)) in self.filter_pairs.iter().enumerate() {
                    @if i > 0 { ", " }
                    (name) " = " span.mono { (value) }
                }
            } @else {
                (self.ids.len()) " selected job(s)"
            }
        }
    }
}

/// The skipped jobs by reason, as a list.
fn skipped(outcome: &BulkOutcome) -> Markup {
    html! {
        @if !outcome.skipped.is_empty() {
            ul #skipped {
                @for (reason, n) in &outcome.skipped {
                    li { (n) " " span.mono { (reason.replace('_', " ")) } }
                }
            }
        }
    }
}

/// `GET /jobs/bulk`: what the action would do, and the confirmation form.
pub async fn confirm(
    session: Session,
    State(state): State<DashState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, Problem> {
    require_operator(&session)?;
    let form = BulkForm::parse(raw.as_deref().unwrap_or(""), &session)?;
    let outcome = form.run(&state, &session, true).await?;
    let verb = form.verb();
    let applies: Vec<&str> = form
        .action
        .applies_to()
        .iter()
        .map(|s| s.as_str())
        .collect();
    let main = html! {
        h1 { (verb) " " (outcome.changed) " job(s)?" }
        p { "Of " (form.what()) ": " strong #matched { (outcome.matched) } " found; "
            strong #would-change { (outcome.changed) } " would be changed ("
            (applies.join(", ")) "); the others are left alone:" }
        (skipped(&outcome))
        @if outcome.changed > 0 {
            form.inline method="post" action="/jobs/bulk" {
                input type="hidden" name="csrf" value=(session.csrf);
                input type="hidden" name="action" value=(form.action.as_str());
                @for (name, value) in &form.filter_pairs {
                    input type="hidden" name=(name) value=(value);
                }
                @for id in &form.ids {
                    input type="hidden" name="job" value=(id);
                }
                button type="submit" #confirm class=(if form.action == JobAction::Cancel { "danger" } else { "primary" }) {
                    (verb) " " (outcome.changed) " job(s)"
                }
            }
            " "
        } @else {
            p.note { "Nothing to do: no job here is in a state this action applies to." }
        }
        a.btn href=(form.back()) { "Back to the list" }
        p.mut { small { "Each job's change is recorded with your name. Jobs that change state \
            before you confirm are counted again then." } }
    };
    Ok(Page {
        title: format!("{verb} jobs"),
        nav: Nav::Jobs,
        main,
    }
    .render(&session))
}

/// `POST /jobs/bulk`: does it, and shows the counts.
pub async fn apply(
    session: Session,
    State(state): State<DashState>,
    headers: HeaderMap,
    body: String,
) -> Result<Response, Problem> {
    let csrf = serde_urlencoded::from_str::<Vec<(String, String)>>(&body)
        .unwrap_or_default()
        .into_iter()
        .find(|(n, _)| n == "csrf")
        .map(|(_, v)| v)
        .unwrap_or_default();
    admit_csrf(&session, &headers, &csrf)?;
    let form = BulkForm::parse(&body, &session)?;
    let outcome = form.run(&state, &session, false).await?;
    let done = match form.action {
        JobAction::Cancel => "Cancelled",
        _ => "Retried",
    };
    let main = html! {
        h1 { (done) " " span #changed { (outcome.changed) } " job(s)" }
        p.note.done { "Of " (form.what()) ": " (outcome.matched) " found, "
            (outcome.changed) " changed"
            @if let Some(batch) = &outcome.batch_id { " (batch " span.mono { (batch) } ")" }
            "." }
        @if !outcome.skipped.is_empty() {
            p { "Left alone:" }
            (skipped(&outcome))
        }
        a.btn #back href=(form.back()) { "Back to the list" }
    };
    Ok(Page {
        title: format!("{done} jobs"),
        nav: Nav::Jobs,
        main,
    }
    .render(&session))
}
