//! The planner's part of the binary: starting it (`serve`, `planner`: upsert the file
//! schedules into the database, then plan), `hangar schedules list` and `hangar schedules
//! sync [--prune]`, the only way file schedules leave the database.

use hangar_schedules::{
    Planner, PlannerConfig, Prune, ScheduleError, ScheduleFilter, ScheduleRow, Schedules,
    SyncCounts,
};
use hangar_workers::routes::Routes;
use hangar_workers::store::Store;

use crate::cli::SchedulesCommand;
use crate::commands::output::{print_json, short_time};
use crate::commands::table::{Align, Table};
use crate::config::Config;
use crate::exit::Fatal;

impl From<ScheduleError> for Fatal {
    fn from(error: ScheduleError) -> Self {
        match error {
            ScheduleError::InvalidName(_)
            | ScheduleError::InvalidSpec { .. }
            | ScheduleError::NameTaken { .. } => Fatal::config(error.to_string()),
            other => Fatal::runtime(other.to_string()),
        }
    }
}

/// Upserts the configured file schedules (`prune` says whether the stored file schedules
/// they do not declare are deleted too).
async fn sync(config: &Config, schedules: &Schedules, prune: Prune) -> Result<SyncCounts, Fatal> {
    schedules
        .sync_files(&config.schedules, prune)
        .await
        .map_err(|error| match error {
            // The message names the schedule; say which files it came from.
            ScheduleError::NameTaken { .. } => {
                Fatal::config(format!("{}: {error}", config.schedules_source))
            }
            other => Fatal::from(other),
        })
}

/// Upserts the configured file schedules into the database (deleting nothing) and returns
/// the planner to run.
pub async fn start_planner(
    config: &Config,
    store: &Store,
    routes: Routes,
) -> Result<Planner, Fatal> {
    let schedules = Schedules::new(store.clone());
    let synced = sync(config, &schedules, Prune::Keep).await?;
    tracing::info!(
        schedules = %config.schedules_source,
        upserted = synced.upserted,
        not_in_these_files = synced.stale,
        "file schedules synced"
    );
    if synced.stale > 0 {
        tracing::info!(
            kept = synced.stale,
            "file schedules in the database that these files do not declare were kept; `hangar schedules sync --prune` deletes them"
        );
    }
    Ok(Planner::new(schedules, routes, PlannerConfig::default()))
}

/// `hangar schedules …`.
pub async fn command(config: &Config, command: SchedulesCommand) -> Result<(), Fatal> {
    let store = crate::connect_migrated(config).await?;
    let schedules = Schedules::new(store);
    match command {
        SchedulesCommand::List {
            workspace,
            limit,
            json,
        } => {
            if !(1..=100_000).contains(&limit) {
                return Err(Fatal::config("--limit: must be between 1 and 100000"));
            }
            let rows = schedules
                .list(&ScheduleFilter {
                    workspace_id: workspace,
                    limit,
                })
                .await?;
            if json {
                print_json(&rows);
            } else {
                print_rows(&rows);
            }
        }
        SchedulesCommand::Sync { prune, json } => {
            let mode = if prune { Prune::Delete } else { Prune::Keep };
            let synced = sync(config, &schedules, mode).await?;
            if json {
                print_json(&serde_json::json!({
                    "source": config.schedules_source,
                    "upserted": synced.upserted,
                    "deleted": synced.deleted,
                    "kept_not_in_files": synced.stale,
                }));
            } else {
                println!(
                    "upserted {} file schedule(s) from {}; deleted {}",
                    synced.upserted, config.schedules_source, synced.deleted
                );
                if synced.stale > 0 {
                    eprintln!(
                        "{} file schedule(s) in the database are not in these files and were kept; add --prune to delete them",
                        synced.stale
                    );
                }
            }
        }
    }
    Ok(())
}

fn time_or_dash(t: Option<&chrono::DateTime<chrono::Utc>>) -> String {
    t.map_or_else(|| "-".to_owned(), short_time)
}

fn print_rows(rows: &[ScheduleRow]) {
    let mut table = Table::new(&[
        ("NAME", Align::Left),
        ("SOURCE", Align::Left),
        ("WORKSPACE", Align::Left),
        ("SPEC", Align::Left),
        ("KIND", Align::Left),
        ("QUEUE", Align::Left),
        ("ON", Align::Left),
        ("NEXT RUN (UTC)", Align::Left),
        ("LAST SLOT (UTC)", Align::Left),
        ("LAST JOB", Align::Right),
        ("OUTCOME", Align::Left),
        ("SKIPPED", Align::Right),
    ]);
    for row in rows {
        table.row(vec![
            row.name.clone(),
            row.source.as_str().to_owned(),
            row.workspace_id.clone().unwrap_or_else(|| "-".to_owned()),
            row.spec.clone(),
            row.kind.clone(),
            row.queue.clone().unwrap_or_else(|| "-".to_owned()),
            if row.enabled { "yes" } else { "no" }.to_owned(),
            time_or_dash(row.next_run_at.as_ref()),
            time_or_dash(row.last_slot_at.as_ref()),
            row.last_job_id.map_or("-".to_owned(), |id| id.to_string()),
            match (row.last_job_id, row.last_job_state) {
                (_, Some(state)) => state.as_str(),
                (Some(_), None) => "pruned",
                (None, None) => "-",
            }
            .to_owned(),
            row.skipped_count.to_string(),
        ]);
    }
    table.print();
}
