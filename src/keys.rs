//! The master key of this process (`HANGAR_MASTER_KEY`, or the SQLite default's local key
//! file) and `hangar keys generate|rotate`. On PostgreSQL a missing key is a start-up error;
//! on SQLite a key file `<db>.key` (mode 0600) is created next to the database on first use
//! (by exactly one of several processes starting at once), holding `NEW[,OLD]` like the env.

use std::path::PathBuf;

use hangar_workers::alerts::channels;
use hangar_workers::secrets::{self, Keyring, MasterKey};
use hangar_workers::store::Store;

use crate::cli::KeysCommand;
use crate::config::Config;
use crate::exit::Fatal;

/// Where the key comes from.
pub enum KeySource {
    /// `HANGAR_MASTER_KEY` / `--master-key`.
    Env,
    /// The SQLite default's key file.
    File(PathBuf),
}

/// The key file of an SQLite database URL: `<db path>.key`.
pub fn key_file(database_url: &str) -> Option<PathBuf> {
    let rest = database_url.strip_prefix("sqlite:")?;
    let path = rest.trim_start_matches("//");
    let path = path.split('?').next().unwrap_or(path);
    if path.is_empty() || path.starts_with(":memory:") {
        return None;
    }
    Some(PathBuf::from(format!("{path}.key")))
}

/// The keyring of this process: `HANGAR_MASTER_KEY` when set; else, on SQLite, the local
/// key file (created on first use); else (PostgreSQL) a configuration error.
pub fn keyring(config: &Config) -> Result<(Keyring, KeySource), Fatal> {
    if let Some(text) = &config.master_key {
        let ring = Keyring::parse(text, &config.master_key_source)
            .map_err(|e| Fatal::config(e.to_string()))?;
        return Ok((ring, KeySource::Env));
    }
    let Some(path) = key_file(&config.database_url) else {
        return Err(Fatal::config(
            "HANGAR_MASTER_KEY is not set: on PostgreSQL Hangar does not start without the key that encrypts secrets at rest. Run `hangar keys generate` and set HANGAR_MASTER_KEY to its output, the same on every process",
        ));
    };
    let (ring, created) =
        secrets::load_or_create_key_file(&path).map_err(|e| Fatal::config(e.to_string()))?;
    if created {
        tracing::info!(file = %path.display(), key_id = ring.current().id(), "created a local master key file (mode 0600) for the SQLite database; set HANGAR_MASTER_KEY to manage the key yourself");
    }
    Ok((ring, KeySource::File(path)))
}

/// `hangar keys …`.
pub async fn command(config: &Config, command: KeysCommand) -> Result<(), Fatal> {
    match command {
        KeysCommand::Generate => {
            println!("{}", MasterKey::generate().to_base64());
            Ok(())
        }
        KeysCommand::Rotate { new_key, json, .. } => {
            let Some(new_key) = new_key.filter(|k| !k.trim().is_empty()) else {
                return Err(Fatal::config(
                    "--new-key: missing (or set HANGAR_NEW_MASTER_KEY); make one with `hangar keys generate`",
                ));
            };
            let new_key = MasterKey::parse(&new_key, "--new-key")
                .map_err(|e| Fatal::config(e.to_string()))?;
            let store = crate::connect_migrated(config).await?;
            let (ring, source) = keyring(config)?;
            let n = rotate(&store, &ring, &new_key, json).await?;
            let next = match &source {
                KeySource::File(path) => {
                    // NEW,OLD: processes still running with the old key keep sealing with it,
                    // and every process that reads the file opens both.
                    let file_ring = Keyring::new(new_key.clone()).with_old(ring.current().clone());
                    secrets::replace_key_file(path, &file_ring)
                        .map_err(|e| Fatal::runtime(e.to_string()))?;
                    format!(
                        "the key file {} now holds the new key, then the old one (NEW,OLD); restart the running processes so they seal with the new key",
                        path.display()
                    )
                }
                KeySource::Env => format!(
                    "set HANGAR_MASTER_KEY to the new key on every process (while they restart, `NEW,OLD` lets them read both: old key id {})",
                    ring.current().id()
                ),
            };
            if json {
                crate::commands::output::print_json(&serde_json::json!({
                    "reencrypted": n,
                    "key_id": new_key.id(),
                    "previous_key_id": ring.current().id(),
                    "next": next,
                }));
            } else {
                println!("re-encrypted {n} secret(s) with key {}", new_key.id());
                eprintln!("next: {next}");
            }
            Ok(())
        }
    }
}

/// Re-seals the alert channels' configuration, the webhook endpoints' secrets, the
/// integrations' credentials and the inbound hooks' material with the new key, one kind of
/// secret after the other (the progress shows which); returns how many secrets.
async fn rotate(
    store: &Store,
    ring: &Keyring,
    new_key: &MasterKey,
    json: bool,
) -> Result<u64, Fatal> {
    let failed = |e: &dyn std::fmt::Display| Fatal::runtime(e.to_string());
    let progress = crate::commands::progress::Progress::new(4, "re-encrypting", json);
    progress.step("re-encrypting alert channels");
    let channels = channels::reseal_all(store, ring, new_key)
        .await
        .map_err(|e| failed(&e))?;
    progress.inc(1);
    // The webhook endpoints' secrets and the integrations' credentials (other transactions:
    // a failure here leaves what was done re-sealed under the new key, which the NEW,OLD
    // keyring opens, and is safe to repeat).
    progress.step("re-encrypting webhook secrets");
    let endpoints = hangar_workers::webhooks::endpoint::reseal_all(store, ring, new_key)
        .await
        .map_err(|e| failed(&e))?;
    progress.inc(1);
    progress.step("re-encrypting integration credentials");
    let rows = hangar_integrations::store::IntegrationRows::new(store.database().clone());
    let credentials = hangar_integrations::credentials::reseal_all(&rows, ring, new_key)
        .await
        .map_err(|e| failed(&e))?;
    progress.inc(1);
    // The inbound hooks' material (a fourth transaction, safe to repeat the same way).
    progress.step("re-encrypting inbound hook material");
    let hooks = hangar_workers::inbound::reseal_all(store, ring, new_key)
        .await
        .map_err(|e| failed(&e))?;
    progress.inc(1);
    progress.finish();
    Ok(channels + endpoints + credentials + hooks)
}
