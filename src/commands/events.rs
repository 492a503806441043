//! `hangar events list|show`: the events the workspaces published, newest first, and one
//! event with where it went (webhook deliveries, the jobs its subscriptions made, their sync
//! runs): the same as `GET /api/v1/events` and the dashboard's events pages.

use clap::Subcommand;
use hangar_workers::store::EventFilter;

use crate::api::ApiError;
use crate::api::events::{EventView, load_event};
use crate::commands::output::{print_json, short_time};
use crate::commands::table::{Align, Table};
use crate::config::Config;
use crate::exit::Fatal;

/// `hangar events …`.
#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// List events, newest first (by arrival), with how many deliveries and jobs each made.
    List {
        /// Only this workspace's.
        #[arg(long)]
        workspace: Option<String>,
        /// Only events of this type (`trip.created`).
        #[arg(long = "type")]
        event_type: Option<String>,
        /// Only events received at or after this time (RFC 3339, `2026-12-01T13:45:00Z`).
        #[arg(long)]
        since: Option<String>,
        /// Only events received before this time (RFC 3339).
        #[arg(long)]
        until: Option<String>,
        /// The next page: the cursor the page before printed.
        #[arg(long)]
        cursor: Option<i64>,
        /// At most this many (1 to 1000).
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one event: its data, webhook deliveries, the jobs it started and their sync runs.
    Show {
        /// The event id (`evt_…`).
        id: String,
        /// Its workspace (needed only when several workspaces have this id).
        #[arg(long)]
        workspace: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

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

/// `hangar events …`.
pub async fn command(config: &Config, command: EventsCommand) -> Result<(), Fatal> {
    let store = crate::connect_migrated(config).await?;
    match command {
        EventsCommand::List {
            workspace,
            event_type,
            since,
            until,
            cursor,
            limit,
            json,
        } => {
            if !(1..=1000).contains(&limit) {
                return Err(Fatal::config("--limit: must be between 1 and 1000"));
            }
            let filter = EventFilter {
                workspace_id: workspace,
                event_type,
                since: time_arg("since", since.as_deref())?,
                until: time_arg("until", until.as_deref())?,
                before: cursor,
                limit,
            };
            let (events, next) = store.events_page(&filter).await?;
            if json {
                print_json(&events);
            } else {
                let mut table = Table::new(&[
                    ("ID", Align::Left),
                    ("TYPE", Align::Left),
                    ("WORKSPACE", Align::Left),
                    ("TIMESTAMP (UTC)", Align::Left),
                    ("RECEIVED (UTC)", Align::Left),
                    ("DELIVERIES", Align::Right),
                    ("JOBS", Align::Right),
                ]);
                for e in &events {
                    table.row(vec![
                        e.id.clone(),
                        e.event_type.clone(),
                        e.workspace_id.clone(),
                        short_time(&e.timestamp),
                        short_time(&e.received_at),
                        e.deliveries.to_string(),
                        e.jobs.to_string(),
                    ]);
                }
                if events.is_empty() {
                    println!("no events match");
                } else {
                    table.print();
                }
            }
            if let Some(next) = next {
                eprintln!("more events: --cursor {next}");
            }
        }
        EventsCommand::Show {
            id,
            workspace,
            json,
        } => {
            let view = load_event(&store, workspace.as_deref(), &id)
                .await
                .map_err(|e| match e {
                    ApiError::NotFound(_) | ApiError::Conflict(_) => Fatal::runtime(e.to_string()),
                    other => Fatal::runtime(other.message()),
                })?;
            if json {
                print_json(&view);
            } else {
                print_event(&view);
            }
        }
    }
    Ok(())
}

fn print_event(view: &EventView) {
    let e = &view.event;
    println!("event      {} ({})", e.id, e.event_type);
    println!("workspace  {}", e.workspace_id);
    println!("timestamp  {}", short_time(&e.timestamp));
    println!("received   {}", short_time(&e.received_at));
    println!("data       {}", view.data);
    println!();
    if view.webhook_deliveries.is_empty() {
        println!("webhook deliveries: none (no endpoint of the workspace takes this type)");
    } else {
        println!("webhook deliveries:");
        let mut table = Table::new(&[
            ("DELIVERY", Align::Left),
            ("ENDPOINT", Align::Left),
            ("URL", Align::Left),
            ("STATE", Align::Left),
            ("ATTEMPTS", Align::Right),
            ("LAST STATUS", Align::Right),
            ("JOB", Align::Right),
        ]);
        for d in &view.webhook_deliveries {
            table.row(vec![
                d.id.clone(),
                d.endpoint_id.clone(),
                d.endpoint_url.clone(),
                d.state.clone(),
                d.attempts.to_string(),
                d.last_status
                    .map_or_else(|| "-".to_owned(), |s| s.to_string()),
                d.job_id.map_or_else(|| "-".to_owned(), |j| j.to_string()),
            ]);
        }
        table.print();
    }
    println!();
    if view.jobs.is_empty() {
        println!("jobs started: none");
    } else {
        println!("jobs started:");
        let mut table = Table::new(&[
            ("JOB", Align::Right),
            ("KIND", Align::Left),
            ("QUEUE", Align::Left),
            ("STATE", Align::Left),
            ("ATTEMPT", Align::Right),
            ("CREATED (UTC)", Align::Left),
        ]);
        for j in &view.jobs {
            table.row(vec![
                j.id.to_string(),
                j.kind.clone(),
                j.queue.clone(),
                j.state.clone(),
                j.attempt.to_string(),
                short_time(&j.created_at),
            ]);
        }
        table.print();
    }
    if !view.sync_runs.is_empty() {
        println!();
        println!("sync runs:");
        let mut table = Table::new(&[
            ("RUN", Align::Left),
            ("PROVIDER", Align::Left),
            ("DATA TYPE", Align::Left),
            ("STATUS", Align::Left),
            ("JOB", Align::Right),
            ("STARTED (UTC)", Align::Left),
        ]);
        for r in &view.sync_runs {
            table.row(vec![
                r.id.clone(),
                r.provider.clone(),
                r.data_type.clone(),
                r.status.clone(),
                r.job_id.map_or_else(|| "-".to_owned(), |j| j.to_string()),
                short_time(&r.started_at),
            ]);
        }
        table.print();
    }
}
