//! `hangar conflicts list|resolve`: the financial records held for review, as on the
//! dashboard and `GET /api/v1/conflicts`; resolve keeps ours or takes theirs (an operator at
//! the machine acts with the database's authority, as with every other command).

use clap::Subcommand;
use hangar_integrations::store::sync_conflicts::{ConflictRow, Take};
use hangar_integrations::store::{SyncStore, SyncStoreError};

use crate::commands::output::{print_json, short_time};
use crate::commands::table::{Align, Table};
use crate::config::Config;
use crate::exit::Fatal;

/// `hangar conflicts …`.
#[derive(Debug, Subcommand)]
pub enum ConflictsCommand {
    /// List conflicts, newest first: open ones unless --all.
    List {
        /// Only this workspace's.
        #[arg(long)]
        workspace: Option<String>,
        /// Resolved ones too.
        #[arg(long)]
        all: bool,
        /// At most this many (1 to 1000).
        #[arg(long, default_value_t = 100)]
        limit: i64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Resolve a conflict: keep ours (the platform's side) or take theirs (the provider's).
    Resolve {
        /// The conflict id (`cfl_…`).
        id: String,
        /// `ours` or `theirs`.
        #[arg(long)]
        take: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn fatal(error: SyncStoreError) -> Fatal {
    match error {
        SyncStoreError::NotFound(_) | SyncStoreError::Conflict(_) => {
            Fatal::config(error.to_string())
        }
        other => Fatal::runtime(other.to_string()),
    }
}

/// `hangar conflicts …`.
pub async fn command(config: &Config, command: ConflictsCommand) -> Result<(), Fatal> {
    let store = crate::connect_migrated(config).await?;
    let sync = SyncStore::new(store.database().clone());
    match command {
        ConflictsCommand::List {
            workspace,
            all,
            limit,
            json,
        } => {
            if !(1..=1000).contains(&limit) {
                return Err(Fatal::config("--limit: must be between 1 and 1000"));
            }
            let rows = sync
                .conflicts(workspace.as_deref(), !all, limit)
                .await
                .map_err(fatal)?;
            if json {
                print_json(&rows);
            } else {
                print_conflicts(&rows);
            }
        }
        ConflictsCommand::Resolve { id, take, json } => {
            let take = match take.as_str() {
                "ours" => Take::Ours,
                "theirs" => Take::Theirs,
                other => {
                    return Err(Fatal::config(format!(
                        "--take: `{other}` is not one of ours, theirs"
                    )));
                }
            };
            let (row, _) = sync
                .resolve_conflict(&id, take, "cli")
                .await
                .map_err(fatal)?;
            if json {
                print_json(&row);
            } else {
                print_conflicts(std::slice::from_ref(&row));
            }
        }
    }
    Ok(())
}

fn print_conflicts(rows: &[ConflictRow]) {
    let mut table = Table::new(&[
        ("ID", Align::Left),
        ("WORKSPACE", Align::Left),
        ("PROVIDER", Align::Left),
        ("OBJECT", Align::Left),
        ("EXTERNAL ID", Align::Left),
        ("REASON", Align::Left),
        ("CREATED (UTC)", Align::Left),
        ("RESOLVED", Align::Left),
    ]);
    for c in rows {
        table.row(vec![
            c.id.clone(),
            c.workspace_id.clone(),
            c.provider.clone(),
            c.object_type.clone(),
            c.external_id.clone(),
            c.reason.clone(),
            short_time(&c.created_at),
            c.resolution.clone().unwrap_or_else(|| "-".to_owned()),
        ]);
    }
    table.print();
}
