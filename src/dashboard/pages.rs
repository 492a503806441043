//! The dashboard's pages but the overview (all GET, all `viewer` and up): jobs, one job,
//! alerts, dead letters, schedules. Every value that came from a user, a job or a remote server goes
//! through [`esc`] on its way into the page.

use std::fmt::Write;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::response::Response;
use chrono::Utc;
use hangar_schedules::{ScheduleFilter, Schedules};
use hangar_workers::job::{JobFilter, JobState};
use hangar_workers::store::{AlertFilter, AlertState, MAX_ALERT_PAGE};
use serde::Deserialize;

use super::actions::visible_job;
use super::html::{self, Nav, clip, esc, excerpt, opt_time, state_badge, time, url_enc};
use super::session::Session;
use super::{DashState, Page, Problem};
use crate::api::Role;
use crate::ingress::read_dead_letters;

/// How long a page waits for Redis before it says it could not reach it.
pub(super) const REDIS_WAIT: Duration = Duration::from_secs(2);
/// Jobs one list shows.
const JOBS_LIMIT: i64 = 200;
/// Dead letters the page shows.
const DEAD_LIMIT: usize = 100;

/// A table with a horizontal scroll box around it (phones).
pub(super) fn table(head: &str, rows: &str, empty: &str) -> String {
    if rows.is_empty() {
        return format!("<p class=note>{empty}</p>");
    }
    format!(
        "<div class=scroll><table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>"
    )
}

pub(super) fn as_of() -> String {
    format!(
        "<span class=asof>as of {} UTC · refreshes every 5 s</span>",
        Utc::now().format("%H:%M:%S")
    )
}

fn done_note(done: Option<&str>) -> String {
    let text = match done {
        Some("retried") => "Retried: the job runs again now.",
        Some("cancelled") => "Cancelled.",
        Some("acknowledged") => "Acknowledged.",
        _ => return String::new(),
    };
    format!("<p class=\"note done\">{text}</p>")
}

/// Filters of `GET /jobs`.
#[derive(Debug, Deserialize)]
pub struct JobsQuery {
    /// One state or several, comma-separated (`failed,retryable`).
    state: Option<String>,
    kind: Option<String>,
    queue: Option<String>,
    workspace: Option<String>,
}

fn nonempty(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// `GET /jobs`: newest first, filtered by state, kind and workspace.
pub async fn jobs(
    session: Session,
    State(state): State<DashState>,
    Query(query): Query<JobsQuery>,
) -> Result<Response, Problem> {
    let now = Utc::now();
    let states = JobState::parse_lists(query.state.as_deref())
        .map_err(|e| Problem::new(axum::http::StatusCode::BAD_REQUEST, format!("state: {e}")))?;
    let kind = nonempty(query.kind);
    let queue = nonempty(query.queue);
    let asked = nonempty(query.workspace);
    let workspace_id = match &session.caller.workspace {
        Some(own) => Some(own.clone()),
        None => asked.clone(),
    };
    let filter = JobFilter {
        states: states.clone(),
        kind: kind.clone(),
        queue: queue.clone(),
        workspace_id: workspace_id.clone(),
        limit: JOBS_LIMIT,
    };
    let jobs = state.api.store.jobs(&filter).await?;
    let mut main = format!(
        "{}<h1>Jobs</h1><form class=filters method=get action=\"/jobs\">",
        as_of()
    );
    main.push_str("<label>state<select name=state><option value=\"\">any</option>");
    if states.len() > 1 {
        // A combination from a link (the overview's, a bookmark) stays selectable.
        let names: Vec<&str> = states.iter().map(|s| s.as_str()).collect();
        let _ = write!(main, "<option selected>{}</option>", names.join(","));
    }
    for s in JobState::ALL {
        let sel = if states == [s] { " selected" } else { "" };
        let _ = write!(main, "<option{sel}>{}</option>", s.as_str());
    }
    let _ = write!(
        main,
        "</select></label><label>kind<input name=kind value=\"{}\" size=12></label>\
         <label>queue<input name=queue value=\"{}\" size=10></label>",
        esc(kind.as_deref().unwrap_or("")),
        esc(queue.as_deref().unwrap_or(""))
    );
    match &session.caller.workspace {
        Some(own) => {
            let _ = write!(
                main,
                "<label>workspace<input value=\"{}\" size=12 disabled></label>",
                esc(own)
            );
        }
        None => {
            let _ = write!(
                main,
                "<label>workspace<input name=workspace value=\"{}\" size=12></label>",
                esc(asked.as_deref().unwrap_or(""))
            );
        }
    }
    main.push_str(
        "<button type=submit>Filter</button><a class=btn href=\"/jobs\">Clear</a></form>",
    );
    let head = "<th>id</th><th>state</th><th>kind</th><th>queue</th><th class=num>attempt</th>\
                <th>workspace</th><th>run at</th><th>updated</th><th>last error</th>";
    let mut rows = String::new();
    for job in &jobs {
        let _ = write!(
            rows,
            "<tr><td class=id><a href=\"/jobs/{0}\">{0}</a></td><td>{1}</td><td class=mono><a href=\"/jobs?kind={9}\">{2}</a></td>\
             <td class=mono><a href=\"/jobs?queue={10}\">{3}</a></td><td class=num>{4}</td><td class=mono>{5}</td><td>{6}</td>\
             <td>{7}</td><td class=wrap>{8}</td></tr>",
            job.id,
            state_badge(job.state),
            clip(&job.kind),
            clip(&job.queue),
            esc(&job.attempt_short()),
            clip(job.workspace_id.as_deref().unwrap_or("–")),
            time(job.run_at, now),
            time(job.updated_at, now),
            esc(&excerpt(
                &crate::ops::list_error(job).unwrap_or_default(),
                140
            )),
            esc(&url_enc(&job.kind)),
            esc(&url_enc(&job.queue)),
        );
    }
    main.push_str(&table(head, &rows, "No jobs match these filters."));
    if jobs.len() as i64 == JOBS_LIMIT {
        let _ = write!(
            main,
            "<p class=mut><small>The newest {JOBS_LIMIT} shown; narrow the filters to see others.</small></p>"
        );
    }
    Ok(Page {
        title: "Jobs".to_owned(),
        nav: Nav::Jobs,
        main,
    }
    .render(&session))
}

/// The `done` flag an action's redirect carries.
#[derive(Debug, Deserialize)]
pub struct DoneQuery {
    done: Option<String>,
    all: Option<String>,
    /// The alerts page's cursor: alerts older than this id.
    before: Option<i64>,
}

/// `GET /jobs/{id}`: fields, args, attempts, and the actions the role allows.
pub async fn job(
    session: Session,
    State(state): State<DashState>,
    Path(id): Path<i64>,
    Query(query): Query<DoneQuery>,
) -> Result<Response, Problem> {
    let now = Utc::now();
    let job = visible_job(&state, &session, id).await?;
    let mut main = format!(
        "{}<h1>Job <span class=mono>{}</span> {}</h1>{}",
        as_of(),
        job.id,
        state_badge(job.state),
        done_note(query.done.as_deref())
    );
    if session.caller.role.allows(Role::Operator) {
        let can_retry = !matches!(job.state, JobState::Running | JobState::Available);
        let can_cancel = !matches!(
            job.state,
            JobState::Completed | JobState::Failed | JobState::Cancelled
        );
        main.push_str("<div class=actions>");
        for (allowed, action, label, class) in [
            (can_retry, "retry", "Retry now", "primary"),
            (can_cancel, "cancel", "Cancel", "danger"),
        ] {
            if allowed {
                let _ = write!(
                    main,
                    "<form class=inline method=post action=\"/jobs/{}/{action}\">\
                     <input type=hidden name=csrf value=\"{}\">\
                     <button type=submit class={class} id={action}>{label}</button></form>",
                    job.id, session.csrf
                );
            }
        }
        main.push_str("</div>");
    }
    let _ = write!(
        main,
        "<dl class=fields><dt>kind</dt><dd class=mono>{}</dd><dt>queue</dt><dd class=mono>{}</dd>\
         <dt>state</dt><dd>{}</dd><dt>attempt</dt><dd>{}</dd>\
         <dt>priority</dt><dd>{}</dd><dt>workspace</dt><dd class=mono>{}</dd>\
         <dt>idempotency key</dt><dd class=mono>{}</dd><dt>run at</dt><dd>{}</dd>\
         <dt>created</dt><dd>{}</dd><dt>updated</dt><dd>{}</dd>\
         <dt>last error</dt><dd class=mono>{}</dd></dl>",
        esc(&job.kind),
        esc(&job.queue),
        state_badge(job.state),
        esc(&job.attempt_label()),
        job.priority,
        esc(job.workspace_id.as_deref().unwrap_or("–")),
        esc(job.idempotency_key.as_deref().unwrap_or("–")),
        time(job.run_at, now),
        time(job.created_at, now),
        time(job.updated_at, now),
        esc(job.last_error.as_deref().unwrap_or("–")),
    );
    if session.caller.role.allows(Role::Operator) {
        let args = serde_json::to_string_pretty(&job.args).unwrap_or_default();
        let _ = write!(main, "<h2>Args</h2><pre id=args>{}</pre>", esc(&args));
    } else {
        main.push_str("<h2>Args</h2><p id=args class=mut>shown to operators and up</p>");
    }
    let head = "<th class=num>#</th><th>started</th><th class=num>took</th><th>class</th>\
                <th class=num>HTTP</th><th>error</th><th class=num>next delay</th><th>decision</th>";
    let mut rows = String::new();
    for a in job.attempts.iter().rev() {
        let took = a
            .finished_at
            .map(|f| html::millis((f - a.started_at).num_milliseconds()))
            .unwrap_or_else(|| "<span class=mut>running</span>".to_owned());
        let class = a.error_class.map_or_else(
            || "<span class=ok>ok</span>".to_owned(),
            |c| format!("<span class=bad>{}</span>", esc(c.as_str())),
        );
        let _ = write!(
            rows,
            "<tr><td class=num>{}</td><td>{}</td><td class=num>{took}</td><td>{class}</td>\
             <td class=num>{}</td><td class=wrap>{}</td><td class=num>{}</td><td class=wrap><small>{}</small></td></tr>",
            a.attempt,
            time(a.started_at, now),
            a.http_status
                .map_or_else(|| "–".to_owned(), |s| s.to_string()),
            esc(a.error.as_deref().unwrap_or("")),
            a.next_delay_ms.map_or_else(|| "–".to_owned(), html::millis),
            esc(a.decision.as_deref().unwrap_or("")),
        );
    }
    let _ = write!(
        main,
        "<h2>Attempts</h2>{}",
        table(head, &rows, "No attempt yet.")
    );
    Ok(Page {
        title: format!("Job {}", job.id),
        nav: Nav::Jobs,
        main,
    }
    .render(&session))
}

/// `GET /alerts`: open alerts, or all with `?all=1`.
pub async fn alerts(
    session: Session,
    State(state): State<DashState>,
    Query(query): Query<DoneQuery>,
) -> Result<Response, Problem> {
    let now = Utc::now();
    let all = query.all.is_some_and(|a| a == "1" || a == "true");
    let page = state
        .api
        .store
        .list_alerts(&AlertFilter {
            workspace_id: session.caller.workspace.clone(),
            states: if all {
                Vec::new()
            } else {
                vec![AlertState::Open]
            },
            before: query.before,
            limit: MAX_ALERT_PAGE,
        })
        .await?;
    let alerts = page.alerts;
    let toggle = if all {
        "<a href=\"/alerts\">only open</a>"
    } else {
        "<a href=\"/alerts?all=1\">show resolved too</a>"
    };
    let mut main = format!(
        "{}<h1>Alerts <small>{}</small></h1>{}",
        as_of(),
        toggle,
        done_note(query.done.as_deref())
    );
    let operator = session.caller.role.allows(Role::Operator);
    let head = "<th>id</th><th>severity</th><th>kind</th><th>message</th><th>job</th>\
                <th>workspace</th><th class=num>seen</th><th>first</th><th>last</th><th>status</th>";
    let mut rows = String::new();
    for a in &alerts {
        let severity_class = if a.severity == "critical" {
            "bad"
        } else {
            "warn"
        };
        let job = a.job_id.map_or_else(
            || "–".to_owned(),
            |id| format!("<a class=mono href=\"/jobs/{id}\">{id}</a>"),
        );
        let status = if let Some(at) = a.resolved_at {
            format!("resolved {}", html::relative(at, now))
        } else if let Some(at) = a.acknowledged_at {
            format!("acknowledged {}", html::relative(at, now))
        } else if operator {
            format!(
                "<form class=inline method=post action=\"/alerts/{}/ack\">\
                 <input type=hidden name=csrf value=\"{}\"><button type=submit>Acknowledge</button></form>",
                a.id, session.csrf
            )
        } else {
            "<span class=bad>open</span>".to_owned()
        };
        let _ = write!(
            rows,
            "<tr><td class=id>{}</td><td class={severity_class}>{}</td><td class=mono>{}</td>\
             <td class=wrap>{}</td><td>{job}</td><td class=mono>{}</td><td class=num>{}</td>\
             <td>{}</td><td>{}</td><td>{status}</td></tr>",
            a.id,
            esc(&a.severity),
            clip(&a.kind),
            esc(&a.message),
            clip(a.workspace_id.as_deref().unwrap_or("–")),
            a.occurrences,
            time(a.created_at, now),
            time(a.last_seen_at, now),
        );
    }
    main.push_str(&table(head, &rows, "No alerts. All quiet."));
    if let Some(next) = page.next_before {
        let _ = write!(
            main,
            "<p><a href=\"/alerts?before={next}{}\">Older alerts</a></p>",
            if all { "&amp;all=1" } else { "" }
        );
    }
    Ok(Page {
        title: "Alerts".to_owned(),
        nav: Nav::Alerts,
        main,
    }
    .render(&session))
}

/// `GET /dead-letters`: the Redis ingress dead-letter stream, newest first.
pub async fn dead_letters(
    session: Session,
    State(state): State<DashState>,
) -> Result<Response, Problem> {
    let now = Utc::now();
    let mut main = format!("{}<h1>Dead letters</h1>", as_of());
    match (&state.redis, &session.caller.workspace) {
        (_, Some(_)) => main.push_str(
            "<p class=note>Dead letters are refused ingress entries of any workspace, so only \
             tokens valid for every workspace see them.</p>",
        ),
        (None, None) => main.push_str(
            "<p class=note>Redis is not configured (<code>HANGAR_REDIS_URL</code> is unset): \
             there is no ingress stream and no dead letters.</p>",
        ),
        (Some(redis), None) => {
            match tokio::time::timeout(REDIS_WAIT * 2, read_dead_letters(redis, DEAD_LIMIT)).await {
                Ok(Ok((letters, total))) => {
                    let _ = write!(
                        main,
                        "<p class=mut>{total} in <code>{}</code>; the newest {} shown.</p>",
                        esc(&redis.dead_stream()),
                        letters.len().min(DEAD_LIMIT)
                    );
                    let head = "<th>id</th><th>dead since</th><th>source id</th><th>error</th><th>msg</th>";
                    let mut rows = String::new();
                    for l in &letters {
                        let msg = match &l.fields {
                            Some(fields) if l.msg.is_empty() => format!("fields: {fields}"),
                            _ => l.msg.clone(),
                        };
                        let _ = write!(
                            rows,
                            "<tr><td class=id>{}</td><td>{}</td><td class=id>{}</td>\
                             <td class=wrap>{}</td><td class=\"wrap mono\">{}</td></tr>",
                            esc(&l.id),
                            opt_time(l.dead_at, now),
                            esc(&l.source_id),
                            esc(&l.error),
                            esc(&excerpt(&msg, 240)),
                        );
                    }
                    main.push_str(&table(
                        head,
                        &rows,
                        "No dead letters. Every entry was accepted.",
                    ));
                }
                Ok(Err(error)) => {
                    let _ = write!(
                        main,
                        "<p class=\"note error\">{}</p>",
                        esc(&error.to_string())
                    );
                }
                Err(_) => {
                    main.push_str("<p class=\"note error\">Redis did not answer in time.</p>")
                }
            }
        }
    }
    Ok(Page {
        title: "Dead letters".to_owned(),
        nav: Nav::DeadLetters,
        main,
    }
    .render(&session))
}

/// `GET /schedules`: what `hangar schedules list` shows.
pub async fn schedules(
    session: Session,
    State(state): State<DashState>,
) -> Result<Response, Problem> {
    let now = Utc::now();
    let filter = ScheduleFilter {
        workspace_id: session.caller.workspace.clone(),
        ..ScheduleFilter::default()
    };
    let list = Schedules::new(state.api.store.clone())
        .list(&filter)
        .await
        .map_err(crate::api::ApiError::from)?;
    let head = "<th>name</th><th>spec</th><th>kind</th><th>queue</th><th>workspace</th>\
                <th>enabled</th><th>next run</th><th>last job</th><th class=num>skipped</th>";
    let mut rows = String::new();
    for s in &list {
        let last = match (s.last_job_id, s.last_job_state) {
            (Some(id), Some(st)) => format!(
                "<a class=mono href=\"/jobs/{id}\">{id}</a> {}",
                state_badge(st)
            ),
            (Some(id), None) => format!("<span class=mono>{id}</span> <small>pruned</small>"),
            _ => "–".to_owned(),
        };
        let _ = write!(
            rows,
            "<tr><td class=mono>{}</td><td class=mono>{}</td><td class=mono>{}</td><td class=mono>{}</td>\
             <td class=mono>{}</td><td>{}</td><td>{}</td><td>{last}</td><td class=num>{}</td></tr>",
            clip(&s.name),
            clip(&s.spec),
            clip(&s.kind),
            clip(s.queue.as_deref().unwrap_or("(kind's pool)")),
            clip(s.workspace_id.as_deref().unwrap_or("–")),
            if s.enabled {
                "<span class=ok>yes</span>"
            } else {
                "<span class=mut>no</span>"
            },
            opt_time(s.next_run_at, now),
            s.skipped_count,
        );
    }
    let main = format!(
        "{}<h1>Schedules</h1>{}",
        as_of(),
        table(head, &rows, "No schedules.")
    );
    Ok(Page {
        title: "Schedules".to_owned(),
        nav: Nav::Schedules,
        main,
    }
    .render(&session))
}
