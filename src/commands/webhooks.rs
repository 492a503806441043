//! `hangar webhooks endpoints list|show ID` and `hangar webhooks replay ENDPOINT --since T
//! [--until T] [--failed-only] [--dry-run]`: the operator's view of the webhook endpoints
//! (health, last success, failure streak, disabled reason; never a secret) and the replay of
//! a time range in the background (a `webhook_replay` job sends each delivery again as a new
//! job on the queue the pool files give `webhook_delivery`), its progress printed.

use chrono::{DateTime, Utc};
use hangar_workers::kinds::Registry;
use hangar_workers::routes::Routes;
use hangar_workers::store::{Delivery, Replay, Store};
use hangar_workers::webhooks::replay::ReplayAsk;
use hangar_workers::webhooks::{self, Circuit, Endpoint};
use serde_json::json;

use crate::cli::{EndpointsCommand, WebhooksCommand};
use crate::commands::output::{print_json, short_time};
use crate::commands::progress::Progress;
use crate::commands::table::{Align, Table};
use crate::config::Config;
use crate::exit::Fatal;

fn time(t: Option<&DateTime<Utc>>) -> String {
    t.map_or("-".to_owned(), short_time)
}

fn parse_time(flag: &str, value: &str) -> Result<DateTime<Utc>, Fatal> {
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            Fatal::config(format!(
                "{flag}: '{value}' is not an RFC 3339 time ({e}), e.g. 2026-11-22T10:00:00Z"
            ))
        })
}

/// `hangar webhooks …`.
pub async fn command(config: &Config, command: WebhooksCommand) -> Result<(), Fatal> {
    let store = crate::connect_migrated(config).await?;
    match command {
        WebhooksCommand::Endpoints {
            command: EndpointsCommand::List { workspace, json },
        } => {
            let endpoints = store.webhook_endpoints(workspace.as_deref()).await?;
            if json {
                print_json(&endpoints);
            } else {
                print_endpoints(&endpoints);
            }
        }
        WebhooksCommand::Endpoints {
            command: EndpointsCommand::Show { id, limit, json },
        } => {
            if !(1..=500).contains(&limit) {
                return Err(Fatal::config("--limit: must be between 1 and 500"));
            }
            let endpoint = store
                .webhook_endpoint(&id)
                .await?
                .ok_or_else(|| Fatal::config(format!("webhook endpoint {id} not found")))?;
            let deliveries = store.webhook_deliveries(&id, limit).await?;
            if json {
                print_json(&json!({"endpoint": endpoint, "deliveries": deliveries}));
            } else {
                print_endpoints(std::slice::from_ref(&endpoint));
                println!();
                print_circuit_and_limits(&endpoint);
                println!();
                print_deliveries(&deliveries);
            }
        }
        WebhooksCommand::Replay {
            endpoint,
            since,
            until,
            failed_only,
            dry_run,
            no_wait,
            json,
        } => {
            let since = parse_time("--since", &since)?;
            let until = match until {
                Some(until) => parse_time("--until", &until)?,
                None => Utc::now(),
            };
            if until <= since {
                return Err(Fatal::config("--until: must be after --since"));
            }
            let found = store
                .webhook_endpoint(&endpoint)
                .await?
                .ok_or_else(|| Fatal::config(format!("webhook endpoint {endpoint} not found")))?;
            let route = webhooks::route(&Routes::new(&config.pools, &Registry::builtin()));
            let ask = ReplayAsk {
                since,
                until,
                failed_only,
                dry_run,
            };
            let (count, replay) =
                webhooks::replay::start(&store, &route, &found.workspace_id, &endpoint, &ask)
                    .await
                    .map_err(|e| Fatal::runtime(format!("replay: {e}")))?;
            if json {
                print_json(&json!({"count": count, "dry_run": dry_run, "replay": replay}));
            } else if dry_run {
                println!("{count} deliveries would be sent again (dry run: nothing sent)");
            } else {
                println!("{count} deliveries to send again");
            }
            if let (Some(replay), false) = (replay, no_wait || json) {
                follow(&store, replay).await?;
            }
        }
    }
    Ok(())
}

/// Shows a replay's progress as its job sends the batches (a bar on a terminal, else a line
/// per step), until it is done; gives up waiting (the replay goes on) when nothing moved for
/// 30 s, e.g. no worker runs.
async fn follow(store: &Store, mut replay: Replay) -> Result<(), Fatal> {
    let bar = Progress::new(replay.total.max(0) as u64, "sending again", false);
    let mut shown = -1;
    let mut moved_at = std::time::Instant::now();
    loop {
        if replay.created != shown {
            if bar.shown() {
                bar.inc((replay.created - shown.max(0)).max(0) as u64);
            } else {
                println!(
                    "replay {}: {} / {} sent again",
                    replay.id, replay.created, replay.total
                );
            }
            shown = replay.created;
            moved_at = std::time::Instant::now();
        }
        if replay.finished_at.is_some() {
            bar.finish();
            println!("replay {} done: {} sent again", replay.id, replay.created);
            return Ok(());
        }
        if moved_at.elapsed() > std::time::Duration::from_secs(30) {
            bar.finish();
            println!(
                "replay {}: no progress for 30 s (is a worker running the webhooks queue?); \
                 it goes on in the background",
                replay.id
            );
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        replay = store
            .webhook_replay(&replay.id)
            .await?
            .ok_or_else(|| Fatal::runtime("the replay is gone (its endpoint was deleted)"))?;
    }
}

/// The endpoint's circuit breaker and its limits, one line each.
fn print_circuit_and_limits(e: &Endpoint) {
    let until = match e.circuit_open_until {
        Some(until) if e.circuit == Circuit::Open => format!(" until {}", short_time(&until)),
        _ => String::new(),
    };
    println!("circuit: {}{until}", e.circuit.as_str());
    let rate = e
        .rate_limit_per_s
        .map_or("unlimited rate".to_owned(), |r| format!("{r} per second"));
    let order = e
        .ordering_key
        .as_ref()
        .map_or("unordered".to_owned(), |k| format!("ordered by {k}"));
    println!("limits: {} in flight, {rate}, {order}", e.max_in_flight);
}

fn print_endpoints(endpoints: &[Endpoint]) {
    let mut table = Table::new(&[
        ("ID", Align::Left),
        ("WORKSPACE", Align::Left),
        ("HEALTH", Align::Left),
        ("LAST SUCCESS", Align::Left),
        ("STREAK", Align::Right),
        ("EVENTS", Align::Left),
        ("URL", Align::Left),
        ("DISABLED", Align::Left),
    ]);
    for e in endpoints {
        let events = if e.event_types.is_empty() {
            "all".to_owned()
        } else {
            e.event_types.join(",")
        };
        table.row(vec![
            e.id.clone(),
            e.workspace_id.clone(),
            e.health.as_str().to_owned(),
            time(e.last_success_at.as_ref()),
            e.failure_streak.to_string(),
            events,
            e.url.clone(),
            e.disabled_reason.clone().unwrap_or_else(|| "-".to_owned()),
        ]);
    }
    table.print();
}

fn print_deliveries(deliveries: &[Delivery]) {
    let mut table = Table::new(&[
        ("DELIVERY", Align::Left),
        ("EVENT", Align::Left),
        ("TYPE", Align::Left),
        ("STATE", Align::Left),
        ("ATTEMPTS", Align::Right),
        ("LAST STATUS", Align::Right),
        ("CREATED", Align::Left),
        ("LAST ERROR", Align::Left),
    ]);
    for d in deliveries {
        table.row(vec![
            d.id.clone(),
            d.event_id.clone(),
            d.event_type.clone(),
            d.state.clone(),
            d.attempt_count.to_string(),
            d.last_status.map_or("-".to_owned(), |s| s.to_string()),
            short_time(&d.created_at),
            d.last_error.clone().unwrap_or_else(|| "-".to_owned()),
        ]);
    }
    table.print();
}
