//! `hangar jobs list|show|retry|cancel|run-again`: a readable table or, with `--json`, the job
//! JSON of CONTRACT.md (`show` adds the operators' `actions`). `retry` and `cancel` take one
//! id (the job is printed), several, or filters (a bulk action: the counts are printed; on a
//! terminal it asks first unless `--yes`; no filter needs `--all`). Actions are recorded
//! under the operating-system user.

use std::io::IsTerminal;

use hangar_workers::job::{Job, JobFilter, JobId, JobState};
use hangar_workers::job_action::{
    ActionSource, Actor, BulkOutcome, BulkTarget, JobAction, JobActionRecord, JobDetail,
};
use hangar_workers::store::{Store, StoreError};

use crate::cli::{BulkArgs, JobsCommand};
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
            let actions = store.job_actions(job.id).await?;
            show_job(&job, &actions, json);
        }
        JobsCommand::Retry { ids, bulk } => {
            act(&store, JobAction::Retry, &ids, &bulk).await?;
        }
        JobsCommand::Cancel { ids, bulk } => {
            act(&store, JobAction::Cancel, &ids, &bulk).await?;
        }
        JobsCommand::RunAgain { id, json } => {
            let id = parse_id(&id)?;
            let job = store.run_again_job(id, &actor()).await.map_err(job_error)?;
            show_job(&job, &store.job_actions(id).await?, json);
        }
    }
    Ok(())
}

/// Who the CLI's actions record: the operating-system user.
fn actor() -> Actor {
    let user = ["USER", "LOGNAME", "USERNAME"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()));
    Actor::new(user.unwrap_or_else(|| "cli".to_owned()), ActionSource::Cli)
}

/// `jobs retry|cancel`: one id as before (the job is printed; a retry also runs a waiting
/// job now), several ids or a filter as a bulk action (the counts are printed).
async fn act(
    store: &Store,
    action: JobAction,
    ids: &[String],
    bulk: &BulkArgs,
) -> Result<(), Fatal> {
    let filtered = !bulk.state.is_empty()
        || bulk.kind.is_some()
        || bulk.queue.is_some()
        || bulk.workspace.is_some()
        || bulk.key.is_some()
        || bulk.since.is_some()
        || bulk.until.is_some();
    if !ids.is_empty() && (filtered || bulk.all) {
        return Err(Fatal::config(
            "give job ids or filters (--state, --kind, --queue, …, --all), not both",
        ));
    }
    let ids = ids
        .iter()
        .map(|id| parse_id(id))
        .collect::<Result<Vec<_>, _>>()?;
    if let [id] = ids[..]
        && !bulk.dry_run
    {
        let job = match action {
            JobAction::Cancel => store.cancel_job(id, &actor()).await,
            _ => store.retry_job(id, &actor()).await,
        };
        let job = match job {
            Err(StoreError::JobConflict {
                state: JobState::Completed,
                ..
            }) if action == JobAction::Retry => {
                return Err(Fatal::runtime(format!(
                    "job {id} is completed: retry is for failed and cancelled jobs; to run it \
                     once more: hangar jobs run-again {id}"
                )));
            }
            other => other.map_err(job_error)?,
        };
        show_job(&job, &store.job_actions(id).await?, bulk.json);
        return Ok(());
    }
    let target = if ids.is_empty() {
        if !filtered && !bulk.all {
            return Err(Fatal::config(
                "no job ids and no filter: name jobs, filter them (--state, --kind, --queue, \
                 --workspace, --key, --since, --until), or say --all for every job",
            ));
        }
        let states = JobState::parse_lists(bulk.state.iter().map(String::as_str))
            .map_err(|e| Fatal::config(format!("--state: {e}")))?;
        BulkTarget::Filter(JobFilter {
            states,
            kind: bulk.kind.clone(),
            queue: bulk.queue.clone(),
            workspace_id: bulk.workspace.clone(),
            idempotency_key: bulk.key.clone(),
            created_from: time_arg("since", bulk.since.as_deref())?,
            created_until: time_arg("until", bulk.until.as_deref())?,
            ..JobFilter::default()
        })
    } else {
        BulkTarget::Ids(ids)
    };
    let actor = actor();
    let dry = store
        .bulk_action(action, &target, None, &actor, true)
        .await?;
    let verb = match action {
        JobAction::Cancel => "cancel",
        _ => "retry",
    };
    let ask = !bulk.dry_run && !bulk.yes && dry.changed > 0 && std::io::stdin().is_terminal();
    if ask
        && !confirmed(&format!(
            "{verb} {} job(s) of {} matching{}? [y/N] ",
            dry.changed,
            dry.matched,
            skipped_text(&dry)
        ))?
    {
        return Err(Fatal::runtime("nothing was changed"));
    }
    let outcome = if bulk.dry_run {
        dry
    } else {
        store
            .bulk_action(action, &target, None, &actor, false)
            .await?
    };
    if bulk.json {
        print_json(&outcome);
    } else {
        let done = match (bulk.dry_run, action) {
            (true, _) => format!("would {verb}"),
            (false, JobAction::Cancel) => "cancelled".to_owned(),
            (false, _) => "retried".to_owned(),
        };
        println!(
            "{done} {} of {} matching job(s){}",
            outcome.changed,
            outcome.matched,
            skipped_text(&outcome)
        );
    }
    Ok(())
}

/// `; skipped: completed 3, running 1`, or nothing.
fn skipped_text(outcome: &BulkOutcome) -> String {
    if outcome.skipped.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = outcome
        .skipped
        .iter()
        .map(|(reason, n)| format!("{} {n}", reason.replace('_', " ")))
        .collect();
    format!("; skipped: {}", parts.join(", "))
}

/// Asks `question` on the terminal; true for `y` or `yes`.
fn confirmed(question: &str) -> Result<bool, Fatal> {
    use std::io::Write;
    let mut stderr = std::io::stderr();
    let _ = write!(stderr, "{question}");
    let _ = stderr.flush();
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .map_err(|e| Fatal::runtime(format!("cannot read the answer: {e}")))?;
    Ok(matches!(answer.trim().to_lowercase().as_str(), "y" | "yes"))
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

fn show_job(job: &Job, actions: &[JobActionRecord], json: bool) {
    let job = &job.clone().redacted();
    if json {
        print_json(&JobDetail {
            job: job.clone(),
            actions: actions.to_vec(),
        });
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
    for a in actions {
        println!(
            "{} by {} ({}) at {}{}",
            a.action.past(),
            a.actor,
            a.source.as_str(),
            a.at.to_rfc3339(),
            a.batch_id
                .as_deref()
                .map_or(String::new(), |b| format!(" (bulk {b})"))
        );
    }
}
