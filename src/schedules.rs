//! The planner's part of the binary: starting it (`serve`, `planner`: sync the file schedules
//! into the database, then plan) and `hangar schedules list`.

use hangar_schedules::{
    Planner, PlannerConfig, ScheduleError, ScheduleFilter, ScheduleRow, Schedules,
};
use hangar_workers::store::Store;

use crate::cli::SchedulesCommand;
use crate::config::Config;
use crate::exit::Fatal;
use crate::ops::{print_json, short_time};
use crate::table::{Align, Table};

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

/// Syncs the configured file schedules into the database and returns the planner to run.
pub async fn start_planner(config: &Config, store: &Store) -> Result<Planner, Fatal> {
    let schedules = Schedules::new(store.clone());
    let synced = schedules
        .sync_files(&config.schedules)
        .await
        .map_err(|error| match error {
            // The message names the schedule; say which files it came from.
            ScheduleError::NameTaken { .. } => {
                Fatal::config(format!("{}: {error}", config.schedules_source))
            }
            other => Fatal::from(other),
        })?;
    tracing::info!(
        schedules = %config.schedules_source,
        upserted = synced.upserted,
        deleted = synced.deleted,
        "file schedules synced"
    );
    Ok(Planner::new(
        schedules,
        &config.pools,
        PlannerConfig::default(),
    ))
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
