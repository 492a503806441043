//! `hangar jobs list|show|retry|cancel`: a readable table or, with `--json`, the job JSON of
//! CONTRACT.md.

use hangar_workers::job::{Job, JobFilter, JobId, JobState};
use hangar_workers::store::StoreError;

use crate::cli::JobsCommand;
use crate::commands::output::{print_json, short_time};
use crate::commands::table::{Align, Table};
use crate::config::Config;
use crate::exit::Fatal;
/// `--since`/`--until`: an RFC 3339 time.
fn time_arg(
    name: &str,
    value: Option<&str>,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, Fatal> {
    value
        .map(|v| {
            chrono::DateTime::parse_from_rfc3339(v.trim())
                .map(|t| t.with_timezone(&chrono::Utc))
                .map_err(|_| {
                    Fatal::config(format!(
                        "--{name}: '{v}' is not an RFC 3339 time (2026-12-01T13:45:00Z)"
                    ))
                })
        })
        .transpose()
}

fn parse_id(text: &str) -> Result<JobId, Fatal> {
    text.parse()
        .map_err(|_| Fatal::config(format!("'{text}' is not a job id (a positive integer)")))
}

/// Not found and wrong-state errors are the user's input, not a crash.
pub(crate) fn job_error(error: StoreError) -> Fatal {
    match error {
        StoreError::JobNotFound(_)
        | StoreError::JobConflict { .. }
        | StoreError::AlertNotFound(_) => Fatal::runtime(error.to_string()),
        other => Fatal::from(other),
    }
}

/// `hangar jobs …`.
pub async fn jobs(config: &Config, command: JobsCommand) -> Result<(), Fatal> {
    let store = crate::connect_migrated(config).await?;
    match command {
        JobsCommand::List {
            state,
            kind,
            queue,
            workspace,
            key,
            since,
            until,
            cursor,
            limit,
            json,
        } => {
            let states = JobState::parse_lists(state.iter().map(String::as_str))
                .map_err(|e| Fatal::config(format!("--state: {e}")))?;
            if !(1..=10_000).contains(&limit) {
                return Err(Fatal::config("--limit: must be between 1 and 10000"));
            }
            let before_id = hangar_workers::job::parse_cursor(cursor.as_deref())
                .map_err(|e| Fatal::config(format!("--{e}")))?;
            let (jobs, next) = store
                .jobs_page(&JobFilter {
                    states,
                    kind,
                    queue,
                    workspace_id: workspace,
                    idempotency_key: key,
                    created_from: time_arg("since", since.as_deref())?,
                    created_until: time_arg("until", until.as_deref())?,
                    before_id,
                    limit,
                    ..JobFilter::default()
                })
                .await?;
            let jobs: Vec<Job> = jobs.into_iter().map(Job::redacted).collect();
            if json {
                print_json(&jobs);
            } else {
                print_jobs(&jobs);
                if let Some(next) = next {
                    println!("More jobs match: the next page with --cursor {next}");
                }
            }
        }
        JobsCommand::Show { id, json } => {
            let job = store.job(parse_id(&id)?).await.map_err(job_error)?;
            show_job(&job, json);
        }
        JobsCommand::Retry { id, json } => {
            let job = store.retry_job(parse_id(&id)?).await.map_err(job_error)?;
            show_job(&job, json);
        }
        JobsCommand::Cancel { id, json } => {
            let job = store.cancel_job(parse_id(&id)?).await.map_err(job_error)?;
            show_job(&job, json);
        }
    }
    Ok(())
}

fn print_jobs(jobs: &[Job]) {
    let mut table = Table::new(&[
        ("ID", Align::Right),
        ("STATE", Align::Left),
        ("KIND", Align::Left),
        ("QUEUE", Align::Left),
        ("ATTEMPT", Align::Right),
        ("RUN AT (UTC)", Align::Left),
        ("LAST ERROR", Align::Left),
    ]);
    for job in jobs {
        table.row(vec![
            job.id.to_string(),
            job.state.to_string(),
            job.kind.clone(),
            job.queue.clone(),
            job.attempt_short(),
            short_time(&job.run_at),
            list_error(job).map_or_else(String::new, |e| crate::redis_ingress::excerpt(&e, 80)),
        ]);
    }
    table.print();
}

/// The error a list shows for a job: a completed job's error is an earlier attempt's, not a
/// problem now, and says so.
pub(crate) fn list_error(job: &Job) -> Option<String> {
    let error = job.last_error.as_deref().filter(|e| !e.is_empty())?;
    Some(if job.state == JobState::Completed {
        format!("earlier attempt: {error}")
    } else {
        error.to_owned()
    })
}

fn show_job(job: &Job, json: bool) {
    let job = &job.clone().redacted();
    if json {
        print_json(job);
        return;
    }
    println!(
        "job {}  {}  kind={} queue={}",
        job.id, job.state, job.kind, job.queue
    );
    println!(
        "attempt {}  priority {}  run_at {}  workspace {}",
        job.attempt_label(),
        job.priority,
        job.run_at.to_rfc3339(),
        job.workspace_id.as_deref().unwrap_or("-")
    );
    println!("args {}", job.args);
    if let Some(error) = &job.last_error {
        println!("last error: {error}");
    }
    for a in &job.attempts {
        println!(
            "  #{:<3} {}  {:<10} {:>5}  {}",
            a.attempt,
            short_time(&a.started_at),
            a.error_class.map_or("ok", |c| c.as_str()),
            a.http_status.map_or(String::new(), |s| s.to_string()),
            a.decision.as_deref().or(a.error.as_deref()).unwrap_or("")
        );
    }
}
