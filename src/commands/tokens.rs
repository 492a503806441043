//! `hangar tokens create|list|revoke` (CONTRACT.md, "CLI for operators").

use crate::api::{self, Role};
use crate::cli::TokensCommand;
use crate::commands::output::{print_json, short_time};
use crate::commands::table::{Align, Table};
use crate::config::Config;
use crate::exit::Fatal;

/// Runs one `hangar tokens` command.
pub async fn command(config: &Config, command: TokensCommand) -> Result<(), Fatal> {
    let store = crate::connect_migrated(config).await?;
    match command {
        TokensCommand::Create {
            role,
            workspace,
            name,
            json,
        } => {
            let Some(role) = Role::parse(&role) else {
                let known: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
                return Err(Fatal::config(format!(
                    "--role: unknown role '{role}' (known: {})",
                    known.join(", ")
                )));
            };
            if workspace.as_deref().is_some_and(|w| w.trim().is_empty()) {
                return Err(Fatal::config("--workspace: must not be empty"));
            }
            let name = name.unwrap_or_else(|| match &workspace {
                Some(ws) => format!("{} for {ws}", role.as_str()),
                None => role.as_str().to_owned(),
            });
            let (id, token) = api::create_token(&store, &name, role, workspace.as_deref()).await?;
            if json {
                print_json(&serde_json::json!({"id": id, "name": name, "role": role,
                    "workspace_id": workspace, "token": token}));
            } else {
                println!("{token}");
                eprintln!(
                    "token {id} ({}, {}): store it now, it is not shown again",
                    role.as_str(),
                    workspace.as_deref().unwrap_or("every workspace")
                );
            }
        }
        TokensCommand::List { json } => {
            let tokens = api::list_tokens(&store).await?;
            if json {
                print_json(&tokens);
            } else {
                let mut table = Table::new(&[
                    ("ID", Align::Right),
                    ("ROLE", Align::Left),
                    ("WORKSPACE", Align::Left),
                    ("CREATED (UTC)", Align::Left),
                    ("REVOKED (UTC)", Align::Left),
                    ("NAME", Align::Left),
                ]);
                for t in tokens {
                    table.row(vec![
                        t.id.to_string(),
                        t.role,
                        t.workspace_id.unwrap_or_else(|| "*".to_owned()),
                        short_time(&t.created_at),
                        t.revoked_at.as_ref().map(short_time).unwrap_or_default(),
                        t.name,
                    ]);
                }
                table.print();
            }
        }
        TokensCommand::Revoke { id, json } => {
            if !api::revoke_token(&store, id).await? {
                return Err(Fatal::runtime(format!("no unrevoked token with id {id}")));
            }
            if json {
                print_json(&serde_json::json!({"id": id, "revoked": true}));
            } else {
                println!("token {id} revoked");
            }
        }
    }
    Ok(())
}
