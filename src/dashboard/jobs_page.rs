//! The jobs list (`GET /jobs`): newest first, filtered by states (several), kind, queue,
//! workspace and a creation time range, searched by id or idempotency key, by pages of
//! [`JOBS_PAGE`] (`?cursor=`, the last id of the page before); the filters echoed back into
//! the form and kept in the paging links. With a filter set, an operator sees "Retry N
//! matching" and "Cancel N matching" (the counts a dry run gives), and every row has a
//! checkbox for a selection; both lead to the confirmation page of `jobs_bulk.rs`.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, NaiveDateTime, Utc};
use hangar_workers::job::{Job, JobFilter, JobId, JobState, parse_cursor};
use hangar_workers::job_action::JobAction;
use maud::{Markup, html};

use super::fragments::{clip, excerpt, jobs_link, state_badge, table, time};
use super::frame::Nav;
use super::session::Session;
use super::{DashState, Page, Problem};
use crate::api::Role;

/// Jobs one page shows.
const JOBS_PAGE: i64 = 100;

/// The filters of `GET /jobs` as the query gives them (`state` may repeat: the form's
/// checkboxes; each may also list several, comma-separated, as links do).
#[derive(Debug, Default)]
pub(super) struct JobsQuery {
    states: Vec<String>,
    kind: Option<String>,
    queue: Option<String>,
    workspace: Option<String>,
    id: Option<String>,
    key: Option<String>,
    from: Option<String>,
    until: Option<String>,
    cursor: Option<String>,
}

impl JobsQuery {
    /// Reads the raw query; unknown parameters are ignored, empty ones are absent.
    pub(super) fn parse(raw: Option<&str>) -> JobsQuery {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(raw.unwrap_or("")).unwrap_or_default();
        let mut query = JobsQuery::default();
        for (name, value) in pairs {
            let value = value.trim().to_owned();
            if value.is_empty() {
                continue;
            }
            let slot = match name.as_str() {
                "state" => {
                    query.states.push(value);
                    continue;
                }
                "kind" => &mut query.kind,
                "queue" => &mut query.queue,
                "workspace" => &mut query.workspace,
                "id" => &mut query.id,
                "key" => &mut query.key,
                "from" => &mut query.from,
                "until" => &mut query.until,
                "cursor" => &mut query.cursor,
                _ => continue,
            };
            *slot = Some(value);
        }
        query
    }

    /// The filters as query pairs (without the cursor), for the paging links.
    pub(super) fn pairs(&self, states: &[JobState]) -> Vec<(&'static str, String)> {
        let mut pairs = Vec::new();
        if !states.is_empty() {
            let names: Vec<&str> = states.iter().map(|s| s.as_str()).collect();
            pairs.push(("state", names.join(",")));
        }
        for (name, value) in [
            ("kind", &self.kind),
            ("queue", &self.queue),
            ("workspace", &self.workspace),
            ("id", &self.id),
            ("key", &self.key),
            ("from", &self.from),
            ("until", &self.until),
        ] {
            if let Some(value) = value {
                pairs.push((name, value.clone()));
            }
        }
        pairs
    }
}

/// A time of the form: `datetime-local`'s `2026-12-01T13:45` (taken as UTC, as the label
/// says) or RFC 3339.
pub(super) fn form_time(name: &str, value: Option<&str>) -> Result<Option<DateTime<Utc>>, Problem> {
    let Some(value) = value else {
        return Ok(None);
    };
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Ok(Some(t.with_timezone(&Utc)));
    }
    for format in ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(value, format) {
            return Ok(Some(t.and_utc()));
        }
    }
    Err(Problem::new(
        StatusCode::BAD_REQUEST,
        format!("{name}: '{value}' is not a time (2026-12-01T13:45, UTC)"),
    ))
}

/// The list's filter as the query gives it (a workspace token's own workspace, whatever
/// the query says), without cursor or limit: the list's, and the bulk actions'.
pub(super) fn filter_of(query: &JobsQuery, session: &Session) -> Result<JobFilter, Problem> {
    let bad = |e: String| Problem::new(StatusCode::BAD_REQUEST, e);
    let states = JobState::parse_lists(query.states.iter().map(String::as_str))
        .map_err(|e| bad(format!("state: {e}")))?;
    let id = query
        .id
        .as_deref()
        .map(|v| {
            v.trim_start_matches('#')
                .parse::<i64>()
                .map(JobId)
                .map_err(|_| bad(format!("id: '{v}' is not a job id")))
        })
        .transpose()?;
    let workspace_id = match &session.caller.workspace {
        Some(own) => Some(own.clone()),
        None => query.workspace.clone(),
    };
    Ok(JobFilter {
        states,
        kind: query.kind.clone(),
        queue: query.queue.clone(),
        workspace_id,
        id,
        idempotency_key: query.key.clone(),
        created_from: form_time("from", query.from.as_deref())?,
        created_until: form_time("until", query.until.as_deref())?,
        before_id: None,
        limit: 0,
    })
}

/// How many jobs of `filter` a bulk retry and a bulk cancel would change (a dry run each).
async fn bulk_counts(state: &DashState, filter: &JobFilter) -> Result<(u64, u64), Problem> {
    // One aggregate for both: the jobs by state (`filter_of` already holds the session's
    // workspace).
    let counts = state.api.store.job_counts_by_state(filter).await?;
    let count = |action: JobAction| -> u64 {
        counts
            .iter()
            .filter(|(s, _)| action.applies_to().contains(s))
            .map(|(_, n)| n)
            .sum()
    };
    Ok((count(JobAction::Retry), count(JobAction::Cancel)))
}

/// `GET /jobs`: a page of jobs, newest first, filtered and searched.
pub async fn jobs(
    session: Session,
    State(state): State<DashState>,
    RawQuery(raw): RawQuery,
) -> Result<Response, Problem> {
    let now = Utc::now();
    let query = JobsQuery::parse(raw.as_deref());
    let mut filter = filter_of(&query, &session)?;
    let states = filter.states.clone();
    let before_id = parse_cursor(query.cursor.as_deref())
        .map_err(|e| Problem::new(StatusCode::BAD_REQUEST, e))?;
    filter.before_id = before_id;
    filter.limit = JOBS_PAGE;
    let (jobs, next) = state.api.store.jobs_page(&filter).await?;
    let operator = session.caller.role.allows(Role::Operator);
    let pairs = query.pairs(&states);
    // The bulk buttons need a filter: a bulk action over every job is the CLI's, with --all.
    let bulk = if operator && !pairs.is_empty() {
        Some(bulk_counts(&state, &filter).await?)
    } else {
        None
    };
    let bulk_link = |action: &str| {
        let mut all: Vec<(&str, &str)> = vec![("action", action)];
        all.extend(pairs.iter().map(|(n, v)| (*n, v.as_str())));
        format!(
            "/jobs/bulk?{}",
            serde_urlencoded::to_string(&all).unwrap_or_default()
        )
    };
    let head = html! {
        @if operator {
            th title="select jobs for Retry selected / Cancel selected" { "✓" }
        }
        th { "id" }
        th { "state" }
        th { "kind" }
        th { "queue" }
        th.num { "attempt" }
        th { "workspace" }
        th { "run at" }
        th { "updated" }
        th { "last error" }
    };
    let rows = jobs.iter().map(|job| job_row(job, now, operator)).collect();
    let page_link = |cursor: Option<JobId>| {
        let mut pairs: Vec<(&str, &str)> = pairs.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let cursor = cursor.map(|c| c.0.to_string());
        if let Some(cursor) = &cursor {
            pairs.push(("cursor", cursor));
        }
        jobs_link(&pairs)
    };
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let main = html! {
        (super::fragments::as_of())
        h1 { "Jobs" }
        form.filters method="get" action="/jobs" {
            fieldset.states {
                legend { "state" }
                @for s in JobState::ALL {
                    label.check {
                        input type="checkbox" name="state" value=(s.as_str()) checked[states.contains(&s)];
                        (s.as_str())
                    }
                }
            }
            label { "kind" input name="kind" value=(text(&query.kind)) size="12"; }
            label { "queue" input name="queue" value=(text(&query.queue)) size="10"; }
            @match &session.caller.workspace {
                Some(own) => label { "workspace" input value=(own) size="12" disabled; },
                None => label {
                    "workspace"
                    input name="workspace" value=(text(&query.workspace)) size="12";
                },
            }
            label { "id" input name="id" value=(text(&query.id)) size="8" inputmode="numeric"; }
            label { "idempotency key" input name="key" value=(text(&query.key)) size="14"; }
            label { "created from (UTC)" input type="datetime-local" name="from" value=(text(&query.from)); }
            label { "created until (UTC)" input type="datetime-local" name="until" value=(text(&query.until)); }
            button type="submit" { "Filter" }
            a.btn href="/jobs" { "Clear" }
        }
        @if let Some((retry_n, cancel_n)) = bulk {
            div.actions #bulk {
                @if retry_n > 0 {
                    a.btn.primary #bulk-retry href=(bulk_link("retry")) { "Retry " (retry_n) " matching" }
                }
                @if cancel_n > 0 {
                    a.btn.danger #bulk-cancel href=(bulk_link("cancel")) { "Cancel " (cancel_n) " matching" }
                }
                @if retry_n == 0 && cancel_n == 0 {
                    small.mut { "No matching job can be retried or cancelled." }
                }
            }
        }
        @if operator && !jobs.is_empty() {
            form #selection method="get" action="/jobs/bulk" {
                (table(head, rows, "No jobs match these filters."))
                div.actions {
                    button type="submit" name="action" value="retry" #retry-selected { "Retry selected" }
                    button.danger type="submit" name="action" value="cancel" #cancel-selected { "Cancel selected" }
                }
            }
        } @else {
            (table(head, rows, "No jobs match these filters."))
        }
        nav.pages {
            @if before_id.is_some() {
                a href=(page_link(None)) { "← Newest" }
            }
            @if let Some(next) = next {
                a href=(page_link(Some(next))) rel="next" { "Older →" }
            } @else if !jobs.is_empty() {
                small.mut { "No older jobs match." }
            }
        }
    };
    Ok(Page {
        title: "Jobs".to_owned(),
        nav: Nav::Jobs,
        main,
    }
    .render(&session))
}

/// One job's row of the list.
fn job_row(job: &Job, now: chrono::DateTime<Utc>, operator: bool) -> Markup {
    let error = crate::commands::jobs::list_error(job).unwrap_or_default();
    html! {
        tr {
            @if operator {
                td { input type="checkbox" name="job" value=(job.id) aria-label={ "select job " (job.id) }; }
            }
            td.id { a href={ "/jobs/" (job.id) } { (job.id) } }
            td { (state_badge(job.state)) }
            td.mono { a href=(jobs_link(&[("kind", &job.kind)])) { (clip(&job.kind)) } }
            td.mono { a href=(jobs_link(&[("queue", &job.queue)])) { (clip(&job.queue)) } }
            td.num { (job.attempt_short()) }
            td.mono { (clip(job.workspace_id.as_deref().unwrap_or("–"))) }
            td { (time(job.run_at, now)) }
            td { (time(job.updated_at, now)) }
            td.wrap { (excerpt(&error, 140)) }
        }
    }
}
