//! The command line (CONTRACT.md, "CLI for operators"). Only definitions live here; each
//! command's work is in its own module. Each command flattens the option groups of
//! `config::settings` it uses, so its `--help` shows (and it accepts) only those settings.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use serde::Serialize;

mod alerts;
mod argv;
mod webhooks;

pub use alerts::{AlertsCommand, ChannelCommon, ChannelSettings, ChannelTarget, ChannelsCommand};
pub use argv::settings_after_subcommand;
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

/// `hangar bench …`.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Enqueue N noop jobs in batches, then drain them with the normal pool runtime.
    Throughput {
        /// How many jobs.
        #[arg(long, default_value_t = 50_000)]
        jobs: usize,
        /// Pool concurrency.
        #[arg(long, default_value_t = 100)]
        concurrency: usize,
        /// Print JSON as well.
        #[arg(long)]
        json: bool,
    },
    /// Redis ingress: drain a backlog of N entries, then time single entries from XADD to
    /// committed job.
    Ingress {
        #[command(flatten)]
        redis: RedisOptions,
        #[command(flatten)]
        ingress: IngressOptions,
        /// Entries in the backlog.
        #[arg(long, default_value_t = 50_000)]
        entries: usize,
        /// Entries sent one at a time for the latency figures.
        #[arg(long, default_value_t = 500)]
        latency_entries: usize,
        /// Pause between the latency entries, in milliseconds.
        #[arg(long, default_value_t = 20)]
        interval_ms: u64,
        /// Print JSON as well.
        #[arg(long)]
        json: bool,
    },
    /// The HTTP API of a running `hangar serve` under a fixed request rate (open model): half
    /// `GET /api/v1/jobs`, half `POST /api/v1/events`, over enough tokens to stay under the
    /// per-token rate; then one token at four times its rate (429 with Retry-After, never
    /// 5xx). Tokens are created in the configured database (the server's) and revoked after.
    Http {
        /// The server's base URL, e.g. http://127.0.0.1:8080.
        #[arg(long)]
        url: String,
        /// Requests per second offered.
        #[arg(long, default_value_t = 2_000.0)]
        rate: f64,
        /// How long the load lasts, in seconds.
        #[arg(long, default_value_t = 30.0)]
        seconds: f64,
        /// How long the one-token rate-limit phase lasts, in seconds.
        #[arg(long, default_value_t = 5.0)]
        limit_seconds: f64,
        /// Print JSON as well.
        #[arg(long)]
        json: bool,
    },
    /// Jobs drained by several `hangar worker` processes while one is killed with SIGKILL
    /// every few seconds; every run is counted by a recorder in this process: jobs lost, and
    /// jobs run twice with or without an expired lease to explain it.
    Faults {
        /// How many jobs.
        #[arg(long, default_value_t = 100_000)]
        jobs: usize,
        /// Worker processes.
        #[arg(long, default_value_t = 3)]
        workers: usize,
        /// SIGKILL one worker this often, in milliseconds (0: never).
        #[arg(long, default_value_t = 3_000)]
        kill_every_ms: u64,
        /// Jobs enqueued per second during the drain (0: all before it).
        #[arg(long, default_value_t = 0.0)]
        enqueue_rate: f64,
        /// How long each run takes at the recorder, in milliseconds.
        #[arg(long, default_value_t = 10)]
        work_ms: u64,
        /// Folder for the workers' logs and pool file.
        #[arg(long, default_value = "target/bench-faults")]
        log_dir: std::path::PathBuf,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 3_600)]
        timeout_s: u64,
    },
    /// Enqueue N noop jobs one at a time into an idle pool; measure enqueue-to-start.
    Latency {
        /// How many jobs.
        #[arg(long, default_value_t = 1_000)]
        jobs: usize,
        /// Pause between jobs, in milliseconds.
        #[arg(long, default_value_t = 20)]
        interval_ms: u64,
        /// Print JSON as well.
        #[arg(long)]
        json: bool,
    },
    /// Outbound webhooks to a receiver on loopback: N events x E endpoints stored, then
    /// drained (deliveries/s against the raw HTTP rate); ingress to first attempt one event at
    /// a time; nine healthy endpoints beside a dead one against ten healthy.
    Webhooks {
        /// Events stored for the throughput run.
        #[arg(long, default_value_t = 2_000)]
        events: usize,
        /// Endpoints each event goes to in the throughput run.
        #[arg(long, default_value_t = 10)]
        endpoints: usize,
        /// Events sent one at a time for the latency figures.
        #[arg(long, default_value_t = 200)]
        latency_events: usize,
        /// Pause between the latency events, in milliseconds.
        #[arg(long, default_value_t = 20)]
        interval_ms: u64,
        /// Deliveries in flight: the webhooks pool's concurrency for the run, and the raw
        /// client's (0: the built-in pool's own).
        #[arg(long, default_value_t = 0)]
        concurrency: usize,
        /// Print JSON as well.
        #[arg(long)]
        json: bool,
    },
    /// Store N schedules due within the next minute, plan them with one planner, then make
    /// all of them due at once; measure lateness and schedules planned per second.
    Planner {
        /// How many schedules.
        #[arg(long, default_value_t = 100_000)]
        schedules: usize,
        /// Print JSON as well.
        #[arg(long)]
        json: bool,
    },
    /// Many tenants: S schedules (each due once a minute) and E webhook endpoints over W
    /// workspaces; planner lag, probe claim latency and event delivery latency while they run.
    Tenants {
        /// Workspaces the schedules and endpoints are spread over.
        #[arg(long, default_value_t = 10_000)]
        workspaces: usize,
        /// Schedules, each due once a minute.
        #[arg(long, default_value_t = 100_000)]
        schedules: usize,
        /// Webhook endpoints.
        #[arg(long, default_value_t = 1_000)]
        endpoints: usize,
        /// How long the measurement lasts, in seconds (after every schedule's first slot).
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Pause between probe jobs, in milliseconds.
        #[arg(long, default_value_t = 100)]
        probe_interval_ms: u64,
        /// Events published per second during the measurement.
        #[arg(long, default_value_t = 10)]
        events_per_sec: u64,
        /// Print JSON as well.
        #[arg(long)]
        json: bool,
    },
}
