//! `hangar integrations list|show|sync`: a workspace's integrations (status, data types,
//! frequency, the credential's kind and version, the token's expiry; never a credential),
//! one integration with its schedules' next runs, and a manual sync (one `sync` job per
//! enabled data type), the same as the dashboard and `POST …/{provider}/sync`.

use clap::{Args, Subcommand};
use hangar_integrations::configure::{self, ConfigureError};
use hangar_integrations::integration::Integration;
use hangar_integrations::provider::Provider;
use hangar_integrations::store::{IntegrationRows, IntegrationStoreError};
use hangar_schedules::{ScheduleFilter, Schedules};
use hangar_workers::kinds::Registry;
use hangar_workers::routes::Routes;
use serde_json::json;

use crate::commands::output::{print_json, short_time};
use crate::commands::table::{Align, Table};
use crate::config::Config;
use crate::config::settings::{DatabaseOptions, PoolOptions};
use crate::exit::Fatal;

/// `hangar integrations`: the database and pool settings (a manual sync routes its jobs by
/// the pools), and what to do.
#[derive(Debug, Args)]
pub struct IntegrationsArgs {
    #[command(flatten)]
    pub database: DatabaseOptions,
    #[command(flatten)]
    pub pools: PoolOptions,
    /// What to do with integrations.
    #[command(subcommand)]
    pub command: IntegrationsCommand,
}

/// What to do with integrations.
#[derive(Debug, Subcommand)]
pub enum IntegrationsCommand {
    /// List integrations: status, data types, frequency, credential kind and version.
    List {
        /// Only this workspace's.
        #[arg(long)]
        workspace: Option<String>,
        /// Print JSON (the API's integration JSON).
        #[arg(long)]
        json: bool,
    },
    /// Show one integration (`WORKSPACE PROVIDER`, or its `int_…` id) with its schedules.
    Show {
        /// The workspace, or the integration's id.
        target: String,
        /// The provider (with a workspace).
        provider: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Start a manual sync: one `sync` job per enabled data type; prints the job ids.
    Sync {
        /// The workspace.
        workspace: String,
        /// The provider.
        provider: String,
        /// Only this data type.
        #[arg(long)]
        data_type: Option<String>,
        /// Print JSON (`{"id", "ids"}`).
        #[arg(long)]
        json: bool,
    },
}

fn fatal(error: ConfigureError) -> Fatal {
    match error {
        ConfigureError::Invalid(_)
        | ConfigureError::NotFound { .. }
        | ConfigureError::Conflict(_) => Fatal::config(error.to_string()),
        other => Fatal::runtime(other.to_string()),
    }
}

fn provider(text: &str) -> Result<Provider, Fatal> {
    text.parse()
        .map_err(|e| Fatal::config(format!("provider: {e}")))
}

/// `hangar integrations …`.
pub async fn command(config: &Config, command: IntegrationsCommand) -> Result<(), Fatal> {
    let store = crate::connect_migrated(config).await?;
    let rows = IntegrationRows::new(store.database().clone());
    match command {
        IntegrationsCommand::List { workspace, json } => {
            let list: Vec<Integration> = rows
                .list(workspace.as_deref())
                .await
                .map_err(|e| fatal(e.into()))?
                .into_iter()
                .map(|r| r.integration)
                .collect();
            if json {
                print_json(&list);
            } else {
                print_table(&list);
            }
        }
        IntegrationsCommand::Show {
            target,
            provider: name,
            json,
        } => {
            let found = match &name {
                Some(name) => rows.find(&target, provider(name)?.id()).await,
                None => match rows.get(&target).await {
                    Ok(row) => Ok(Some(row)),
                    Err(IntegrationStoreError::NotFound(_)) => Ok(None),
                    Err(other) => Err(other),
                },
            };
            let integration = found
                .map_err(|e| fatal(e.into()))?
                .map(|r| r.integration)
                .ok_or_else(|| {
                    Fatal::config(match &name {
                        Some(name) => format!("workspace {target} has no {name} integration"),
                        None => format!("integration {target} not found"),
                    })
                })?;
            let schedules: Vec<_> = Schedules::new(store.clone())
                .list(&ScheduleFilter {
                    workspace_id: Some(integration.workspace_id.clone()),
                    limit: 10_000,
                })
                .await
                .map_err(|e| fatal(e.into()))?
                .into_iter()
                .filter(|s| s.integration.as_deref() == Some(integration.id.as_str()))
                .collect();
            if json {
                let mut value = serde_json::to_value(&integration).unwrap_or_default();
                value["schedules"] = json!(schedules);
                print_json(&value);
            } else {
                print_table(std::slice::from_ref(&integration));
                if let Some(reason) = &integration.status_reason {
                    println!("\nreason: {reason}");
                }
                println!("settings: {}", integration.settings);
                let mut table = Table::new(&[
                    ("SCHEDULE", Align::Left),
                    ("SPEC", Align::Left),
                    ("ENABLED", Align::Left),
                    ("NEXT RUN (UTC)", Align::Left),
                ]);
                for s in &schedules {
                    table.row(vec![
                        s.name.clone(),
                        s.spec.clone(),
                        s.enabled.to_string(),
                        s.next_run_at.as_ref().map_or("-".to_owned(), short_time),
                    ]);
                }
                println!();
                table.print();
            }
        }
        IntegrationsCommand::Sync {
            workspace,
            provider: name,
            data_type,
            json,
        } => {
            let mut registry = Registry::builtin();
            hangar_integrations::reserve_kinds(&mut registry);
            let routes = Routes::new(&config.pools, &registry);
            let ids = configure::sync_now(
                &rows,
                &store,
                &routes,
                &workspace,
                provider(&name)?,
                data_type.as_deref(),
            )
            .await
            .map_err(fatal)?;
            if json {
                print_json(&json!({"id": ids.first(), "ids": ids}));
            } else {
                for id in ids {
                    println!("{id}");
                }
            }
        }
    }
    Ok(())
}

fn print_table(list: &[Integration]) {
    let mut table = Table::new(&[
        ("ID", Align::Left),
        ("WORKSPACE", Align::Left),
        ("PROVIDER", Align::Left),
        ("STATUS", Align::Left),
        ("DATA TYPES", Align::Left),
        ("FREQUENCY", Align::Left),
        ("AUTH", Align::Left),
        ("VERSION", Align::Right),
        ("TOKEN EXPIRES (UTC)", Align::Left),
        ("UPDATED (UTC)", Align::Left),
    ]);
    for i in list {
        table.row(vec![
            i.id.clone(),
            i.workspace_id.clone(),
            i.provider.clone(),
            i.status.as_str().to_owned(),
            i.data_types.join(","),
            i.frequency.clone(),
            i.auth.map_or("-", |a| a.as_str()).to_owned(),
            i.credential_version.to_string(),
            i.access_token_expires_at
                .as_ref()
                .map_or("-".to_owned(), short_time),
            short_time(&i.updated_at),
        ]);
    }
    table.print();
}
