//! `hangar alerts list|ack`: open alerts by default, each state on request, with the state
//! and the times as columns.

use chrono::{DateTime, Utc};
use hangar_workers::store::{AlertFilter, AlertRow, AlertState, MAX_ALERT_PAGE};

use crate::cli::AlertsCommand;
use crate::commands::jobs::job_error;
use crate::commands::output::{print_json, short_time};
use crate::config::Config;
use crate::exit::Fatal;
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
            return crate::commands::alert_channels::command(config, command).await;
        }
    }
    Ok(())
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
