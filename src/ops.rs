//! The operator commands: `enqueue`, `jobs list|show|retry|cancel`, `alerts list|ack`. Each
//! prints a readable table or, with `--json`, the JSON of CONTRACT.md.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use hangar_workers::client::Client;
use hangar_workers::ingress::{self, Rejection};
use hangar_workers::job::{Job, JobFilter, JobId, JobState, NewJob};
use hangar_workers::kinds::{HttpHandler, Registry};
use hangar_workers::routes::Routes;
use hangar_workers::store::{AlertFilter, AlertRow, AlertState, MAX_ALERT_PAGE, StoreError};
use serde::Serialize;

use crate::cli::{AlertsCommand, EnqueueArgs, JobsCommand};
use crate::config::Config;
use crate::exit::Fatal;
use crate::table::{Align, Table};

/// `hangar enqueue`: validates everything before anything is written.
pub async fn enqueue(config: &Config, args: EnqueueArgs) -> Result<(), Fatal> {
    let job = build_job(config, &args)?;
    let store = crate::connect_migrated(config).await?;
    let enqueued = store.enqueue(&job).await?;
    if args.json {
        print_json(&enqueued);
    } else {
        println!("{}", enqueued.id);
    }
    Ok(())
}

fn build_job(config: &Config, args: &EnqueueArgs) -> Result<NewJob, Fatal> {
    let json: serde_json::Value = serde_json::from_str(&args.args)
        .map_err(|e| Fatal::config(format!("--args: not valid JSON: {e}")))?;
    if !json.is_object() {
        return Err(Fatal::config("--args: must be a JSON object"));
    }
    // The `http` kind seals its header values with the master key before they are stored;
    // only such a job reads (on SQLite: creates) the key.
    let mut registry = Registry::builtin();
    let has_headers = json
        .get("headers")
        .and_then(serde_json::Value::as_object)
        .is_some_and(|h| !h.is_empty());
    if args.kind == "http" && has_headers {
        let (ring, _) = crate::keys::keyring(config).map_err(|e| {
            Fatal::config(format!(
                "--args: headers: their values are stored sealed with the master key, which this process cannot use: {e}"
            ))
        })?;
        registry.register(
            "http",
            HttpHandler::with_targets(config.targets.clone()).with_keyring(Arc::new(ring)),
        );
    }
    let routes = Routes::new(&config.pools, &registry);
    let client = Client::new(Arc::new(registry), Arc::new(routes));
    // The same limits and refusals as the API and the Redis ingress.
    let identifiers = [
        ("KIND", Some(&args.kind)),
        ("--workspace", args.workspace.as_ref()),
        ("--idempotency-key", args.idempotency_key.as_ref()),
        ("--queue", args.queue.as_ref()),
    ];
    for (flag, value) in identifiers {
        if let Some(value) = value {
            ingress::check_identifier(flag, value).map_err(|e| Fatal::config(e.to_string()))?;
        }
    }
    let mut job = client
        .check_caller_job(&args.kind, args.idempotency_key.as_deref())
        .and_then(|()| client.job(&args.kind, json))
        .map_err(|rejection| {
        Fatal::config(match rejection {
            Rejection::UnknownJobKind { kind, known } => {
                format!("unknown job kind '{kind}' (known: {known})")
            }
            Rejection::InternalKind(kind) => {
                format!("job kind '{kind}' is internal: only Hangar itself enqueues it")
            }
            Rejection::ReservedKey(prefix) => format!(
                "--idempotency-key: keys starting with '{prefix}' are reserved for Hangar's own jobs"
            ),
            Rejection::NoPool(kind) => format!(
                "no pool runs job kind '{kind}' (pools from {})",
                config.pools_source
            ),
            Rejection::InvalidArgs(error) => format!("--args: {error}"),
            other => other.to_string(),
        })
    })?;
    let queue = match &args.queue {
        Some(queue) => {
            client
                .routes()
                .route(&args.kind, Some(queue))
                .map_err(|e| Fatal::config(format!("--queue: {e}")))?
                .queue
        }
        None => job.queue,
    };
    let run_at = args
        .run_at
        .as_deref()
        .map(|t| {
            DateTime::parse_from_rfc3339(t)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| Fatal::config(format!("--run-at: '{t}' is not RFC 3339: {e}")))
        })
        .transpose()?;
    if args.idempotency_key.as_deref().is_some_and(str::is_empty) {
        return Err(Fatal::config("--idempotency-key: must not be empty"));
    }
    job.queue = queue;
    job.run_at = run_at;
    job.priority = args.priority;
    job.workspace_id = args.workspace.clone();
    job.idempotency_key = args.idempotency_key.clone();
    Ok(job)
}

fn parse_id(text: &str) -> Result<JobId, Fatal> {
    text.parse()
        .map_err(|_| Fatal::config(format!("'{text}' is not a job id (a positive integer)")))
}

/// Not found and wrong-state errors are the user's input, not a crash.
fn job_error(error: StoreError) -> Fatal {
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
            limit,
            json,
        } => {
            let states = JobState::parse_lists(state.iter().map(String::as_str))
                .map_err(|e| Fatal::config(format!("--state: {e}")))?;
            if !(1..=10_000).contains(&limit) {
                return Err(Fatal::config("--limit: must be between 1 and 10000"));
            }
            let jobs = store
                .jobs(&JobFilter {
                    states,
                    kind,
                    queue,
                    workspace_id: workspace,
                    limit,
                })
                .await?;
            let jobs: Vec<Job> = jobs.into_iter().map(Job::redacted).collect();
            if json {
                print_json(&jobs);
            } else {
                print_jobs(&jobs);
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

/// `hangar alerts …`.
pub async fn alerts(config: &Config, command: AlertsCommand) -> Result<(), Fatal> {
    let store = crate::connect_migrated(config).await?;
    match command {
        AlertsCommand::List {
            state,
            all,
            workspace,
            limit,
            before,
            json,
        } => {
            let states = if all {
                Vec::new()
            } else if state.is_empty() {
                vec![AlertState::Open]
            } else {
                state
                    .iter()
                    .map(|s| s.trim().parse::<AlertState>())
                    .collect::<Result<_, _>>()
                    .map_err(|e| Fatal::config(format!("--state: {e}")))?
            };
            if !(1..=MAX_ALERT_PAGE).contains(&limit) {
                return Err(Fatal::config(format!(
                    "--limit: must be between 1 and {MAX_ALERT_PAGE}"
                )));
            }
            let page = store
                .list_alerts(&AlertFilter {
                    workspace_id: workspace,
                    states,
                    before,
                    limit,
                })
                .await?;
            if json {
                print_json(&page.alerts);
            } else {
                print_alerts(&page.alerts);
            }
            if let Some(next) = page.next_before {
                eprintln!("more alerts: add --before {next} for the next page");
            }
        }
        AlertsCommand::Ack { id, json } => {
            let id: i64 = id
                .parse()
                .map_err(|_| Fatal::config(format!("'{id}' is not an alert id")))?;
            let alert = store.ack_alert(id).await.map_err(job_error)?;
            if json {
                print_json(&alert);
            } else {
                print_alerts(std::slice::from_ref(&alert));
            }
        }
        AlertsCommand::Channels { command, .. } => {
            return crate::channels::command(config, command).await;
        }
    }
    Ok(())
}

/// Prints `value` as pretty JSON on stdout (the `--json` output of every command).
pub(crate) fn print_json<T: Serialize + ?Sized>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        Err(error) => eprintln!("cannot print JSON: {error}"),
    }
}

/// `YYYY-MM-DD HH:MM:SS` (UTC), for tables.
pub(crate) fn short_time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
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
            list_error(job).map_or_else(String::new, |e| crate::ingress::excerpt(&e, 80)),
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

fn print_alerts(alerts: &[AlertRow]) {
    // Times as `YYYY-MM-DD HH:MM:SS` (UTC); `-` for a time that has not come.
    let time = |t: Option<&DateTime<Utc>>| t.map_or("-".to_owned(), short_time);
    println!(
        "{:>6}  {:<12}  {:<8}  {:<16}  {:>5}  {:<8}  {:<19}  {:<19}  {:<19}  {:<19}  MESSAGE",
        "ID",
        "STATE",
        "SEVERITY",
        "KIND",
        "SEEN",
        "JOB",
        "FIRST SEEN (UTC)",
        "LAST SEEN (UTC)",
        "ACKNOWLEDGED (UTC)",
        "RESOLVED (UTC)"
    );
    for alert in alerts {
        println!(
            "{:>6}  {:<12}  {:<8}  {:<16}  {:>5}  {:<8}  {:<19}  {:<19}  {:<19}  {:<19}  {}",
            alert.id,
            alert.state.as_str(),
            alert.severity,
            alert.kind,
            alert.occurrences,
            alert.job_id.map_or("-".to_owned(), |j| j.to_string()),
            time(Some(&alert.created_at)),
            time(Some(&alert.last_seen_at)),
            time(alert.acknowledged_at.as_ref()),
            time(alert.resolved_at.as_ref()),
            alert.message
        );
    }
}
