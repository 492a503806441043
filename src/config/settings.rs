//! Every setting, declared once. A setting is a field of one of the option groups below: the
//! field is its `--flag` (clap), its `hangar.toml` key and, upper-cased behind `HANGAR_`, its
//! environment variable (see `layers`). Each subcommand flattens the groups it uses, so its
//! `--help` lists only those; the values of the other groups still come from the environment
//! and `hangar.toml` (`Config::load` reads every group).
//!
//! Values that need checking (addresses, URLs, ranges) are text or plain numbers here and are
//! validated by `Config::load`, which names the layer each value came from.

use std::path::PathBuf;

use clap::Args;
use serde::{Deserialize, Serialize};

/// Where jobs live.
#[derive(Debug, Default, Clone, Args, Serialize, Deserialize)]
pub struct DatabaseOptions {
    /// Database URL: postgres://… or sqlite://PATH [env: HANGAR_DATABASE_URL] (default
    /// sqlite://hangar.db).
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
}

/// Which pools exist (and so which queue each kind goes to).
#[derive(Debug, Default, Clone, Args, Serialize, Deserialize)]
pub struct PoolOptions {
    /// Folder of pool files (*.toml) [env: HANGAR_WORKERS_DIR] (default ./workers when it has
    /// pool files, else built in).
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workers_dir: Option<PathBuf>,
}

/// Which schedules the planner plans.
#[derive(Debug, Default, Clone, Args, Serialize, Deserialize)]
pub struct ScheduleOptions {
    /// Folder of schedule files (*.toml) [env: HANGAR_SCHEDULES_DIR] (default ./schedules when
    /// it has schedule files, else built in).
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedules_dir: Option<PathBuf>,
}

/// Where the HTTP server (API, dashboard, health, metrics) listens.
#[derive(Debug, Default, Clone, Args, Serialize, Deserialize)]
pub struct BindOptions {
    /// Listen address of the HTTP server [env: HANGAR_BIND] (default 127.0.0.1:8080).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind: Option<String>,
}

/// The Redis ingress.
#[derive(Debug, Default, Clone, Args, Serialize, Deserialize)]
pub struct RedisOptions {
    /// Redis URL of the ingress stream [env: HANGAR_REDIS_URL] (unset: no Redis ingress).
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_url: Option<String>,
    /// Key prefix of the ingress streams [env: HANGAR_REDIS_PREFIX] (default `hangar`).
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_prefix: Option<String>,
}

/// How the Redis ingress consumer reads, reclaims and trims.
#[derive(Debug, Default, Clone, Args, Serialize, Deserialize)]
pub struct IngressOptions {
    /// Entries read per XREADGROUP [env: HANGAR_INGRESS_BATCH] (default 500).
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ingress_batch: Option<usize>,
    /// Idle time after which a dead consumer's unacknowledged entries are reclaimed, in
    /// milliseconds [env: HANGAR_INGRESS_CLAIM_IDLE_MS] (default 30000).
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ingress_claim_idle_ms: Option<u64>,
    /// How long acknowledged entries stay in the ingress stream before Hangar trims them, in
    /// milliseconds [env: HANGAR_INGRESS_RETAIN_MS] (default 3600000; 0 trims them right after
    /// acknowledgement).
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ingress_retain_ms: Option<u64>,
    /// How long dead letters are kept, in milliseconds [env: HANGAR_INGRESS_DEAD_RETAIN_MS]
    /// (default 604800000, 7 days).
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ingress_dead_retain_ms: Option<u64>,
}

/// Which addresses outbound requests (the `http` kind, alert channels) may reach.
#[derive(Debug, Default, Clone, Args, Serialize, Deserialize)]
pub struct TargetOptions {
    /// Let job and channel URLs reach loopback and private addresses: `1`, or a
    /// comma-separated list of CIDR networks [env: HANGAR_ALLOW_PRIVATE_TARGETS] (default:
    /// public addresses only).
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_private_targets: Option<String>,
}

/// The key that encrypts secrets at rest.
#[derive(Debug, Default, Clone, Args, Serialize, Deserialize)]
pub struct KeyOptions {
    /// The master key that encrypts secrets at rest: base64 of 32 bytes (`hangar keys
    /// generate`); during a rotation `NEW,OLD` [env: HANGAR_MASTER_KEY]. Never read from
    /// hangar.toml.
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub master_key: Option<String>,
}

/// Where people reach this Hangar.
#[derive(Debug, Default, Clone, Args, Serialize, Deserialize)]
pub struct PublicUrlOptions {
    /// The URL people reach this Hangar at (links in alert notices) [env: HANGAR_PUBLIC_URL]
    /// (default http://BIND).
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
}

/// How the alert dispatcher runs.
#[derive(Debug, Default, Clone, Args, Serialize, Deserialize)]
pub struct AlertOptions {
    /// How often the alert dispatcher looks for notices to send, in milliseconds [env:
    /// HANGAR_ALERT_TICK_MS] (default 1000).
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alert_tick_ms: Option<u64>,
}

/// What the integrations keep.
#[derive(Debug, Default, Clone, Args, Serialize, Deserialize)]
pub struct SyncOptions {
    /// How long applied inbound changes (`GET …/sync-runs/{id}/changes`) are kept after
    /// their run, in milliseconds [env: HANGAR_SYNC_CHANGES_RETAIN_MS] (default 2592000000,
    /// 30 days).
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync_changes_retain_ms: Option<u64>,
}

/// The setting `hangar.toml` must not hold: a key stored next to the configuration protects
/// nothing.
pub const FILE_FORBIDDEN: &str = "master_key";

/// The names of every setting (the fields of every group), as `hangar.toml` and the
/// environment spell them.
pub fn names() -> Vec<String> {
    fn of<G: Args>() -> impl Iterator<Item = String> {
        G::augment_args(clap::Command::new("settings"))
            .get_arguments()
            .map(|arg| arg.get_id().to_string())
            .collect::<Vec<_>>()
            .into_iter()
    }
    of::<DatabaseOptions>()
        .chain(of::<PoolOptions>())
        .chain(of::<ScheduleOptions>())
        .chain(of::<BindOptions>())
        .chain(of::<RedisOptions>())
        .chain(of::<IngressOptions>())
        .chain(of::<TargetOptions>())
        .chain(of::<KeyOptions>())
        .chain(of::<PublicUrlOptions>())
        .chain(of::<AlertOptions>())
        .chain(of::<SyncOptions>())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_has_one_name_shared_by_flag_file_and_environment() {
        let names = names();
        for expected in [
            "database_url",
            "workers_dir",
            "schedules_dir",
            "bind",
            "redis_url",
            "redis_prefix",
            "ingress_batch",
            "ingress_claim_idle_ms",
            "ingress_retain_ms",
            "ingress_dead_retain_ms",
            "allow_private_targets",
            "master_key",
            "public_url",
            "alert_tick_ms",
            "sync_changes_retain_ms",
        ] {
            assert!(
                names.iter().any(|n| n == expected),
                "{expected} in {names:?}"
            );
        }
        assert_eq!(names.len(), 15, "one name per setting: {names:?}");
    }
}
