//! The command line (CONTRACT.md, "CLI for operators"). Only definitions live here; each
//! command's work is in its own module. Each command flattens the option groups of
//! `config::settings` it uses, so its `--help` shows (and it accepts) only those settings.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use serde::Serialize;

mod alerts;
mod argv;
mod bench;
mod webhooks;

pub use alerts::{AlertsCommand, ChannelCommon, ChannelSettings, ChannelTarget, ChannelsCommand};
pub use argv::settings_after_subcommand;
pub use bench::BenchCommand;
pub use webhooks::{EndpointsCommand, WebhooksCommand};

use crate::config::settings::{
    AlertOptions, BindOptions, DatabaseOptions, IngressOptions, KeyOptions, PoolOptions,
    PublicUrlOptions, RedisOptions, ScheduleOptions, SyncOptions, TargetOptions,
};

/// Hangar: durable jobs with retry state, worker pools, and the tools to steer them.
#[derive(Debug, Parser)]
#[command(name = "hangar", version, about)]
pub struct Cli {
    /// Configuration file (default ./hangar.toml when present).
    #[arg(long = "config", global = true)]
    pub config_file: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run everything in one process: HTTP (health, metrics), every pool and the planner.
    Serve(ServeArgs),
    /// Run worker pools only (all, or the ones named).
    Worker(WorkerArgs),
    /// Run the cron planner only (any number of them may run).
    Planner(PlannerArgs),
    /// Apply pending database migrations.
    Migrate(MigrateArgs),
    /// Enqueue one job; prints its id.
    Enqueue(EnqueueArgs),
    /// Inspect and steer jobs.
    Jobs {
        #[command(flatten)]
        database: DatabaseOptions,
        /// What to do with jobs.
        #[command(subcommand)]
        command: JobsCommand,
    },
    /// Inspect and acknowledge alerts.
    Alerts {
        #[command(flatten)]
        database: DatabaseOptions,
        /// What to do with alerts.
        #[command(subcommand)]
        command: AlertsCommand,
    },
    /// List and resolve sync conflicts (financial records held for review).
    Conflicts {
        #[command(flatten)]
        database: DatabaseOptions,
        /// What to do with conflicts.
        #[command(subcommand)]
        command: crate::commands::conflicts::ConflictsCommand,
    },
    /// List the events the workspaces published and show where one went.
    Events {
        #[command(flatten)]
        database: DatabaseOptions,
        /// What to look at.
        #[command(subcommand)]
        command: crate::commands::events::EventsCommand,
    },
    /// List, show and sync integrations.
    Integrations(crate::commands::integrations::IntegrationsArgs),
    /// Create, list and revoke API tokens.
    Tokens {
        #[command(flatten)]
        database: DatabaseOptions,
        /// What to do with tokens.
        #[command(subcommand)]
        command: TokensCommand,
    },
    /// Manage the master key that encrypts secrets at rest.
    Keys {
        /// What to do with keys.
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Inspect the Redis ingress.
    Ingress {
        #[command(flatten)]
        redis: RedisOptions,
        /// What to look at.
        #[command(subcommand)]
        command: IngressCommand,
    },
    /// Inspect the planner's schedules.
    Schedules {
        #[command(flatten)]
        database: DatabaseOptions,
        #[command(flatten)]
        pools: PoolOptions,
        #[command(flatten)]
        schedules: ScheduleOptions,
        /// What to do with schedules.
        #[command(subcommand)]
        command: SchedulesCommand,
    },
    /// Inspect webhook endpoints and replay their deliveries.
    Webhooks {
        #[command(flatten)]
        database: DatabaseOptions,
        #[command(flatten)]
        pools: PoolOptions,
        /// What to do.
        #[command(subcommand)]
        command: WebhooksCommand,
    },
    /// List, pause and resume queues (a paused queue accepts jobs and claims none).
    Queues {
        #[command(flatten)]
        database: DatabaseOptions,
        #[command(flatten)]
        pools: PoolOptions,
        /// What to do with queues.
        #[command(subcommand)]
        command: crate::commands::queues::QueuesCommand,
    },
    /// The processes that run pools (alive or gone) and the jobs each runs now.
    Workers {
        #[command(flatten)]
        database: DatabaseOptions,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check the database (reachable, version, migrated), Redis, the master key, the pool
    /// and schedule files and the private-target setting; say what to fix. Exit status 1 when
    /// a check fails, 2 when the configuration does not load.
    Doctor(DoctorArgs),
    /// Print a completion script for a shell (`hangar completions bash > …`).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page of `hangar`, or write every command's page into a folder.
    Man {
        /// Write hangar.1 and one page per subcommand (hangar-jobs-list.1, …) into this
        /// folder instead of printing hangar.1.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Measure throughput and latency on the configured database.
    Bench {
        #[command(flatten)]
        database: DatabaseOptions,
        #[command(flatten)]
        pools: PoolOptions,
        /// Which benchmark.
        #[command(subcommand)]
        command: BenchCommand,
    },
}

/// `hangar serve`: every setting. The settings structs serialize as their flags
/// (`Flags::with`), so a group flattened here is a group the configuration reads.
#[derive(Debug, Args, Serialize)]
pub struct ServeArgs {
    #[command(flatten)]
    #[serde(flatten)]
    pub bind: BindOptions,
    #[command(flatten)]
    #[serde(flatten)]
    pub database: DatabaseOptions,
    #[command(flatten)]
    #[serde(flatten)]
    pub pools: PoolOptions,
    #[command(flatten)]
    #[serde(flatten)]
    pub schedules: ScheduleOptions,
    #[command(flatten)]
    #[serde(flatten)]
    pub redis: RedisOptions,
    #[command(flatten)]
    #[serde(flatten)]
    pub ingress: IngressOptions,
    #[command(flatten)]
    #[serde(flatten)]
    pub targets: TargetOptions,
    #[command(flatten)]
    #[serde(flatten)]
    pub key: KeyOptions,
    #[command(flatten)]
    #[serde(flatten)]
    pub public_url: PublicUrlOptions,
    #[command(flatten)]
    #[serde(flatten)]
    pub alerts: AlertOptions,
    #[command(flatten)]
    #[serde(flatten)]
    pub sync: SyncOptions,
}

/// `hangar worker`: the pools, the jobs they run (targets, sealed secrets, alert delivery),
/// the Redis ingress and the health and metrics server.
#[derive(Debug, Args, Serialize)]
pub struct WorkerArgs {
    /// Run only this pool (repeatable); default: every pool.
    #[arg(long = "pool")]
    #[serde(skip)]
    pub only_pools: Vec<String>,
    #[command(flatten)]
    #[serde(flatten)]
    pub bind: BindOptions,
    #[command(flatten)]
    #[serde(flatten)]
    pub database: DatabaseOptions,
    #[command(flatten)]
    #[serde(flatten)]
    pub pools: PoolOptions,
    #[command(flatten)]
    #[serde(flatten)]
    pub redis: RedisOptions,
    #[command(flatten)]
    #[serde(flatten)]
    pub ingress: IngressOptions,
    #[command(flatten)]
    #[serde(flatten)]
    pub targets: TargetOptions,
    #[command(flatten)]
    #[serde(flatten)]
    pub key: KeyOptions,
    #[command(flatten)]
    #[serde(flatten)]
    pub public_url: PublicUrlOptions,
    #[command(flatten)]
    #[serde(flatten)]
    pub alerts: AlertOptions,
}

/// `hangar planner`: the schedules, the pools they enqueue into, the Redis ingress and the
/// health and metrics server.
#[derive(Debug, Args, Serialize)]
pub struct PlannerArgs {
    #[command(flatten)]
    #[serde(flatten)]
    pub bind: BindOptions,
    #[command(flatten)]
    #[serde(flatten)]
    pub database: DatabaseOptions,
    #[command(flatten)]
    #[serde(flatten)]
    pub pools: PoolOptions,
    #[command(flatten)]
    #[serde(flatten)]
    pub schedules: ScheduleOptions,
    #[command(flatten)]
    #[serde(flatten)]
    pub redis: RedisOptions,
    #[command(flatten)]
    #[serde(flatten)]
    pub ingress: IngressOptions,
}

/// `hangar doctor`: every setting `serve` reads, since it checks them all.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub settings: ServeArgs,
    /// Print JSON: `{"ok", "checks": [{"name", "status", "message", "fix"}]}`.
    #[arg(long)]
    pub json: bool,
}

/// `hangar migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub database: DatabaseOptions,
}

/// `hangar enqueue`.
#[derive(Debug, Args)]
pub struct EnqueueArgs {
    /// The job kind.
    pub kind: String,
    /// The job's arguments, a JSON object.
    #[arg(long, default_value = "{}")]
    pub args: String,
    /// The workspace the job belongs to.
    #[arg(long)]
    pub workspace: Option<String>,
    /// Run no earlier than this RFC 3339 time.
    #[arg(long)]
    pub run_at: Option<String>,
    /// Makes the enqueue idempotent (unique per workspace and kind; at most 255 bytes, not
    /// starting with `schedule:`, `alert:` or `hangar:`).
    #[arg(long)]
    pub idempotency_key: Option<String>,
    /// The queue (default: the queue of the pool that runs the kind).
    #[arg(long)]
    pub queue: Option<String>,
    /// Smaller numbers run first.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub priority: i16,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub database: DatabaseOptions,
    #[command(flatten)]
    pub pools: PoolOptions,
    #[command(flatten)]
    pub targets: TargetOptions,
    #[command(flatten)]
    pub key: KeyOptions,
}

/// `hangar jobs …`.
#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// List jobs, newest first.
    List {
        /// Only jobs in this state; repeat it or list several (`failed,retryable`) for any
        /// of them.
        #[arg(long)]
        state: Vec<String>,
        /// Only jobs of this kind.
        #[arg(long)]
        kind: Option<String>,
        /// Only jobs of this queue.
        #[arg(long)]
        queue: Option<String>,
        /// Only jobs of this workspace.
        #[arg(long)]
        workspace: Option<String>,
        /// Only jobs with this idempotency key.
        #[arg(long)]
        key: Option<String>,
        /// Only jobs created at or after this time (RFC 3339, `2026-12-01T13:45:00Z`).
        #[arg(long)]
        since: Option<String>,
        /// Only jobs created before this time (RFC 3339).
        #[arg(long)]
        until: Option<String>,
        /// The next page: the cursor the page before printed.
        #[arg(long)]
        cursor: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one job with its attempts.
    Show {
        /// The job id.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Retry failed or cancelled jobs: one (a waiting one runs now), several ids, or every
    /// job the filters match (asks on a terminal unless --yes).
    Retry {
        /// Job ids; none: the jobs the filters match.
        ids: Vec<String>,
        #[command(flatten)]
        bulk: BulkArgs,
    },
    /// Cancel jobs that have not finished: one, several ids, or every job the filters match
    /// (asks on a terminal unless --yes).
    Cancel {
        /// Job ids; none: the jobs the filters match.
        ids: Vec<String>,
        #[command(flatten)]
        bulk: BulkArgs,
    },
    /// Queue a completed job once more, with a fresh retry budget (its attempts stay).
    RunAgain {
        /// The job id.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// The filters and switches of `hangar jobs retry|cancel`.
#[derive(Debug, Args)]
pub struct BulkArgs {
    /// Only jobs in this state; repeat it or list several (`failed,cancelled`).
    #[arg(long)]
    pub state: Vec<String>,
    /// Only jobs of this kind.
    #[arg(long)]
    pub kind: Option<String>,
    /// Only jobs of this queue.
    #[arg(long)]
    pub queue: Option<String>,
    /// Only jobs of this workspace.
    #[arg(long)]
    pub workspace: Option<String>,
    /// Only jobs with this idempotency key.
    #[arg(long)]
    pub key: Option<String>,
    /// Only jobs created at or after this time (RFC 3339).
    #[arg(long)]
    pub since: Option<String>,
    /// Only jobs created before this time (RFC 3339).
    #[arg(long)]
    pub until: Option<String>,
    /// Act on every job when no filter is given (refused without it).
    #[arg(long)]
    pub all: bool,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub yes: bool,
    /// Print what would change and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `hangar keys …`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Print a new master key (the only line on stdout).
    Generate,
    /// Re-encrypt every stored secret under a new key, in one transaction.
    Rotate {
        #[command(flatten)]
        database: DatabaseOptions,
        #[command(flatten)]
        key: KeyOptions,
        /// The new key (base64 of 32 bytes).
        #[arg(long, env = "HANGAR_NEW_MASTER_KEY", hide_env_values = true)]
        new_key: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `hangar tokens …`.
#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Create a token; prints it (the only line on stdout). It is shown this once.
    Create {
        /// owner, admin, safety_manager, operator or viewer.
        #[arg(long)]
        role: String,
        /// Limit the token to one workspace (default: every workspace).
        #[arg(long)]
        workspace: Option<String>,
        /// A name to recognise it by.
        #[arg(long)]
        name: Option<String>,
        /// Print JSON (with the token) instead.
        #[arg(long)]
        json: bool,
    },
    /// List tokens (never the tokens themselves).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token.
    Revoke {
        /// The token's id.
        id: i64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `hangar ingress …`.
#[derive(Debug, Subcommand)]
pub enum IngressCommand {
    /// List the dead-letter stream, newest first: entries refused with the reason; or
    /// replay, delete or trim it.
    #[command(args_conflicts_with_subcommands = true)]
    Dead {
        /// How many entries.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Replay, delete or trim instead of listing.
        #[command(subcommand)]
        action: Option<DeadCommand>,
    },
}

/// `hangar ingress dead …`.
#[derive(Debug, Subcommand)]
pub enum DeadCommand {
    /// Re-add entries' original `msg` to the ingress stream (after fixing the producer or
    /// the pools); each dead entry is removed once its copy is in. A still-bad entry comes
    /// back as a new dead letter with its reason.
    Replay {
        /// Dead letter ids (as `hangar ingress dead` lists them).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        ids: Vec<String>,
        /// Every dead letter there is now.
        #[arg(long)]
        all: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete entries.
    Delete {
        /// Dead letter ids.
        #[arg(required = true)]
        ids: Vec<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove old entries: those older than an age, or all but the newest N.
    Trim {
        /// An age: `90s`, `30m`, `12h`, `7d`.
        #[arg(long, required_unless_present = "keep", conflicts_with = "keep")]
        older_than: Option<String>,
        /// Keep only the newest N.
        #[arg(long)]
        keep: Option<u64>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `hangar schedules …`.
#[derive(Debug, Subcommand)]
pub enum SchedulesCommand {
    /// List schedules by name: spec, next run, last run and its outcome, skips.
    List {
        /// Only schedules of this workspace.
        #[arg(long)]
        workspace: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 1_000)]
        limit: i64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Disable a schedule (an operator's choice: it holds across re-syncs of the schedule
    /// files until the file changes that schedule, or until enabled again).
    Disable {
        /// The schedule's name.
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Enable a schedule again; it runs from its next slot (missed slots are not run).
    Enable {
        /// The schedule's name.
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Enqueue one job of the schedule now, outside its slots; prints the job id.
    Run {
        /// The schedule's name.
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Upsert the schedule files into the database (as every planner does at start); with
    /// --prune also delete the file schedules that are not in these files.
    Sync {
        /// Delete the stored file schedules these files do not declare (API schedules are
        /// never touched).
        #[arg(long)]
        prune: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}
