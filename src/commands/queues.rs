//! `hangar queues list|pause|resume` and `hangar workers`: the queues with their depth and
//! pause state, and the processes that run pools with the jobs each runs now (`fleet.rs`,
//! as on the dashboard's Workers page and in the API). A paused queue keeps accepting jobs;
//! no pool claims from it until it is resumed.

use clap::Subcommand;

use crate::commands::output::{print_json, short_time};
use crate::commands::table::{Align, Table};
use crate::config::Config;
use crate::exit::Fatal;
use crate::fleet;

/// `hangar queues …`.
#[derive(Debug, Subcommand)]
pub enum QueuesCommand {
    /// List the queues: paused or not, jobs waiting and running, lag.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Pause a queue: it keeps accepting jobs, no pool claims from it; running jobs finish.
    Pause {
        /// The queue.
        queue: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Resume a paused queue: its pools claim again at once.
    Resume {
        /// The queue.
        queue: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// The pools' queues.
fn configured(config: &Config) -> Vec<String> {
    config.pools.iter().map(|p| p.queue.clone()).collect()
}

/// `hangar queues …`.
pub async fn queues(config: &Config, command: QueuesCommand) -> Result<(), Fatal> {
    let store = crate::connect_migrated(config).await?;
    match command {
        QueuesCommand::List { json } => {
            let queues = fleet::queues(&store, &configured(config)).await?;
            if json {
                print_json(&queues);
                return Ok(());
            }
            let mut table = Table::new(&[
                ("QUEUE", Align::Left),
                ("STATE", Align::Left),
                ("WAITING", Align::Right),
                ("RUNNING", Align::Right),
                ("LAG S", Align::Right),
                ("PAUSED AT", Align::Left),
            ]);
            for q in &queues {
                table.row(vec![
                    q.queue.clone(),
                    if q.paused { "paused" } else { "running" }.to_owned(),
                    q.waiting.to_string(),
                    q.running.to_string(),
                    format!("{:.1}", q.lag_seconds),
                    q.paused_at.as_ref().map_or("-".to_owned(), short_time),
                ]);
            }
            table.print();
        }
        QueuesCommand::Pause { queue, json } => {
            fleet::check_queue(&store, &configured(config), &queue)
                .await
                .map_err(Fatal::config)?;
            let changed = store.pause_queue(&queue, Some("cli")).await?;
            report(&queue, true, changed, json);
        }
        QueuesCommand::Resume { queue, json } => {
            fleet::check_queue(&store, &configured(config), &queue)
                .await
                .map_err(Fatal::config)?;
            let changed = store.resume_queue(&queue).await?;
            report(&queue, false, changed, json);
        }
    }
    Ok(())
}

fn report(queue: &str, paused: bool, changed: bool, json: bool) {
    if json {
        print_json(&serde_json::json!({"queue": queue, "paused": paused, "changed": changed}));
        return;
    }
    match (paused, changed) {
        (true, true) => println!("paused {queue}: it accepts jobs, no pool claims from it"),
        (true, false) => println!("{queue} was already paused"),
        (false, true) => println!("resumed {queue}"),
        (false, false) => println!("{queue} was not paused"),
    }
}

/// `hangar workers`: the processes, alive first, each with the jobs it runs now.
pub async fn workers(config: &Config, json: bool) -> Result<(), Fatal> {
    let store = crate::connect_migrated(config).await?;
    let view = fleet::workers(&store).await?;
    if json {
        print_json(&view);
        return Ok(());
    }
    let mut table = Table::new(&[
        ("PROCESS", Align::Left),
        ("STATE", Align::Left),
        ("COMMAND", Align::Left),
        ("VERSION", Align::Left),
        ("POOLS", Align::Left),
        ("STARTED", Align::Left),
        ("HEARTBEAT", Align::Left),
        ("RUNNING", Align::Right),
    ]);
    for p in &view.processes {
        table.row(vec![
            p.id.clone(),
            if p.alive { "alive" } else { "gone" }.to_owned(),
            p.command.clone(),
            p.version.clone(),
            p.pools.join(","),
            short_time(&p.started_at),
            short_time(&p.heartbeat_at),
            p.running.len().to_string(),
        ]);
    }
    table.print();
    let mut jobs = Table::new(&[
        ("JOB", Align::Right),
        ("KIND", Align::Left),
        ("QUEUE", Align::Left),
        ("ATTEMPT", Align::Right),
        ("PROCESS", Align::Left),
        ("SINCE", Align::Left),
    ]);
    let owned = view
        .processes
        .iter()
        .flat_map(|p| p.running.iter().map(move |j| (j, p.id.as_str())));
    let unlisted = view.unlisted.iter().map(|j| (j, "-"));
    let mut any = false;
    for (job, process) in owned.chain(unlisted) {
        any = true;
        jobs.row(vec![
            job.id.to_string(),
            job.kind.clone(),
            job.queue.clone(),
            job.attempt.to_string(),
            process.to_owned(),
            job.started_at.as_ref().map_or("-".to_owned(), short_time),
        ]);
    }
    if any {
        println!();
        jobs.print();
    }
    Ok(())
}
