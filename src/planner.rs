//! The planner's part of the binary: starting it (`serve`, `planner`: upsert the file
//! schedules into the database, then plan), `hangar schedules list` (the stored schedules,
//! and the configured file schedules no planner has synced yet, marked so), `hangar
//! schedules enable|disable|run NAME` (an operator's actions) and `hangar schedules sync
//! [--prune]`, the only way file schedules leave the database.

use hangar_schedules::{
    FileSchedule, Planner, PlannerConfig, Prune, ScheduleError, ScheduleFilter, ScheduleRow,
    Schedules, Source, SyncCounts,
};
use hangar_workers::job::JobState;
use hangar_workers::kinds::Registry;
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
            ScheduleError::NotFound(name) => Fatal::runtime(format!(
                "schedule '{name}' not found (`hangar schedules list` shows them)"
            )),
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
            let all_workspaces = workspace.is_none();
            let rows = schedules
                .list(&ScheduleFilter {
                    workspace_id: workspace,
                    limit,
                })
                .await?;
            // File schedules have no workspace: without a workspace filter, the configured
            // ones no planner has synced yet are shown too (a fresh database lists them).
            let unsynced: Vec<&FileSchedule> = if all_workspaces {
                config
                    .schedules
                    .iter()
                    .filter(|f| !rows.iter().any(|r| r.name == f.name))
                    .collect()
            } else {
                Vec::new()
            };
            if json {
                let mut listed: Vec<serde_json::Value> = rows
                    .iter()
                    .map(|row| {
                        let mut value = serde_json::to_value(row).unwrap_or_default();
                        value["synced"] = true.into();
                        value
                    })
                    .collect();
                listed.extend(unsynced.iter().map(|f| unsynced_json(f)));
                listed.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
                print_json(&listed);
            } else {
                print_rows(&rows, &unsynced);
                if !unsynced.is_empty() {
                    eprintln!(
                        "{} file schedule(s) not yet synced: a planner (`hangar serve`, `hangar planner`) or `hangar schedules sync` stores them",
                        unsynced.len()
                    );
                }
            }
        }
        SchedulesCommand::Enable { name, json } => {
            set_enabled(&schedules, &name, true, json).await?
        }
        SchedulesCommand::Disable { name, json } => {
            set_enabled(&schedules, &name, false, json).await?
        }
        SchedulesCommand::Run { name, json } => {
            let mut registry = Registry::builtin_with(config.targets.clone());
            hangar_integrations::reserve_kinds(&mut registry);
            let routes = Routes::new(&config.pools, &registry);
            let (row, job) = schedules.run_now(&name, &routes).await?;
            if json {
                print_json(&serde_json::json!({"job_id": job.0, "schedule": row}));
            } else {
                println!("{job}");
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

/// `hangar schedules enable|disable NAME`: an operator's choice.
async fn set_enabled(
    schedules: &Schedules,
    name: &str,
    enabled: bool,
    json: bool,
) -> Result<(), Fatal> {
    let row = schedules.set_enabled(name, enabled).await?;
    if json {
        print_json(&row);
    } else {
        println!(
            "{} schedule {}; next run {}",
            if enabled { "enabled" } else { "disabled" },
            row.name,
            time_or_dash(row.next_run_at.as_ref())
        );
    }
    Ok(())
}

fn time_or_dash(t: Option<&chrono::DateTime<chrono::Utc>>) -> String {
    t.map_or_else(|| "-".to_owned(), short_time)
}

/// A configured file schedule no planner has stored yet, with the stored rows' fields.
fn unsynced_json(f: &FileSchedule) -> serde_json::Value {
    serde_json::json!({
        "id": null, "name": f.name, "source": "file", "source_file": f.file, "synced": false,
        "workspace_id": null, "integration": null, "data_type": null,
        "spec": f.spec.as_str(), "kind": f.kind, "args": f.args, "queue": f.queue,
        "priority": f.priority, "enabled": f.enabled, "operator_enabled": null,
        "operator_changed_at": null, "offset_ms": f.spec.offset_ms(&f.name),
        "next_run_at": null, "last_slot_at": null, "last_job_id": null, "last_job_state": null,
        "last_enqueued_at": null, "skipped_count": 0, "last_skipped_at": null,
        "run_now_job_id": null, "run_now_job_state": null, "run_now_at": null,
        "created_at": null, "updated_at": null,
    })
}

/// Where a stored schedule comes from, in words: `api`, or `file <path>`.
pub fn source_words(row: &ScheduleRow) -> String {
    match (row.source, &row.source_file) {
        (Source::File, Some(file)) => format!("file {file}"),
        (source, _) => source.as_str().to_owned(),
    }
}

/// A job and its state, in words: `12 completed`, `12 pruned`, `-`.
fn outcome(id: Option<hangar_workers::job::JobId>, state: Option<JobState>) -> String {
    match (id, state) {
        (Some(id), Some(state)) => format!("{id} {}", state.as_str()),
        (Some(id), None) => format!("{id} pruned"),
        (None, _) => "-".to_owned(),
    }
}

fn print_rows(rows: &[ScheduleRow], unsynced: &[&FileSchedule]) {
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
        ("LAST SLOT JOB", Align::Left),
        ("RUN NOW", Align::Left),
        ("SKIPPED", Align::Right),
    ]);
    let mut lines: Vec<(String, Vec<String>)> = rows
        .iter()
        .map(|row| {
            let on = match (row.enabled, row.operator_enabled) {
                (true, Some(true)) => "yes (operator)",
                (false, Some(false)) => "no (operator)",
                (true, _) => "yes",
                (false, _) => "no",
            };
            (
                row.name.clone(),
                vec![
                    row.name.clone(),
                    source_words(row),
                    row.workspace_id.clone().unwrap_or_else(|| "-".to_owned()),
                    row.spec.clone(),
                    row.kind.clone(),
                    row.queue.clone().unwrap_or_else(|| "-".to_owned()),
                    on.to_owned(),
                    time_or_dash(row.next_run_at.as_ref()),
                    time_or_dash(row.last_slot_at.as_ref()),
                    outcome(row.last_job_id, row.last_job_state),
                    outcome(row.run_now_job_id, row.run_now_job_state),
                    row.skipped_count.to_string(),
                ],
            )
        })
        .collect();
    lines.extend(unsynced.iter().map(|f| {
        (
            f.name.clone(),
            vec![
                f.name.clone(),
                format!("file {} (not yet synced)", f.file),
                "-".to_owned(),
                f.spec.as_str().to_owned(),
                f.kind.clone(),
                f.queue.clone().unwrap_or_else(|| "-".to_owned()),
                if f.enabled { "yes" } else { "no" }.to_owned(),
                "-".to_owned(),
                "-".to_owned(),
                "-".to_owned(),
                "-".to_owned(),
                "0".to_owned(),
            ],
        )
    }));
    lines.sort_by(|a, b| a.0.cmp(&b.0));
    for (_, line) in lines {
        table.row(line);
    }
    table.print();
}
