//! The operator commands: `enqueue`, `jobs list|show|retry|cancel`, `alerts list|ack`. Each
//! prints a readable table or, with `--json`, the JSON of CONTRACT.md.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use hangar_workers::client::Client;
use hangar_workers::ingress::{self, Rejection};
use hangar_workers::job::{Job, JobFilter, JobId, JobState, NewJob};
use hangar_workers::kinds::Registry;
use hangar_workers::store::{AlertRow, StoreError};
use serde::Serialize;

use crate::cli::{AlertsCommand, EnqueueArgs, JobsCommand};
use crate::config::Config;
use crate::exit::Fatal;

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
    let client = Client::new(Arc::new(Registry::builtin()), config.pools.clone());
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
            if !config.pools.iter().any(|p| &p.queue == queue) {
                let known: Vec<&str> = config.pools.iter().map(|p| p.queue.as_str()).collect();
                return Err(Fatal::config(format!(
                    "--queue: unknown queue '{queue}' (known: {})",
                    known.join(", ")
                )));
            }
            queue.clone()
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
            workspace,
            limit,
            json,
        } => {
            let state = state
                .map(|s| s.parse::<JobState>())
                .transpose()
                .map_err(|e| Fatal::config(format!("--state: {e}")))?;
            if !(1..=10_000).contains(&limit) {
                return Err(Fatal::config("--limit: must be between 1 and 10000"));
            }
            let jobs = store
                .jobs(&JobFilter {
                    state,
                    kind,
                    workspace_id: workspace,
                    limit,
                })
                .await?;
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
        AlertsCommand::List { all, json } => {
            let alerts = store.alerts(all).await?;
            if json {
                print_json(&alerts);
            } else {
                print_alerts(&alerts);
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
        AlertsCommand::Channels { command } => {
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
    println!(
        "{:>8}  {:<10}  {:<12}  {:<10}  {:>7}  {:<19}  LAST ERROR",
        "ID", "STATE", "KIND", "QUEUE", "ATTEMPT", "RUN AT (UTC)"
    );
    for job in jobs {
        println!(
            "{:>8}  {:<10}  {:<12}  {:<10}  {:>3}/{:<3}  {:<19}  {}",
            job.id,
            job.state,
            job.kind,
            job.queue,
            job.attempt,
            job.max_attempts,
            short_time(&job.run_at),
            job.last_error
                .as_deref()
                .unwrap_or("")
                .chars()
                .take(60)
                .collect::<String>()
        );
    }
}

fn show_job(job: &Job, json: bool) {
    if json {
        print_json(job);
        return;
    }
    println!(
        "job {}  {}  kind={} queue={}",
        job.id, job.state, job.kind, job.queue
    );
    println!(
        "attempt {}/{}  priority {}  run_at {}  workspace {}",
        job.attempt,
        job.max_attempts,
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
    println!(
        "{:>6}  {:<8}  {:<16}  {:>5}  {:<8}  MESSAGE",
        "ID", "SEVERITY", "KIND", "SEEN", "JOB"
    );
    for alert in alerts {
        println!(
            "{:>6}  {:<8}  {:<16}  {:>5}  {:<8}  {}{}",
            alert.id,
            alert.severity,
            alert.kind,
            alert.occurrences,
            alert.job_id.map_or("-".to_owned(), |j| j.to_string()),
            if alert.acknowledged_at.is_some() {
                "[acked] "
            } else {
                ""
            },
            alert.message
        );
    }
}
