//! The command line (CONTRACT.md, "CLI for operators"). Only definitions live here; each
//! command's work is in its own module.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Hangar: durable jobs with retry state, worker pools, and the tools to steer them.
#[derive(Debug, Parser)]
#[command(name = "hangar", version, about)]
pub struct Cli {
    /// Database URL: postgres://… or sqlite://PATH.
    #[arg(long, global = true, env = "HANGAR_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Folder of pool files (*.toml).
    #[arg(long, global = true, env = "HANGAR_WORKERS_DIR")]
    pub workers_dir: Option<PathBuf>,
    /// Redis URL of the ingress stream (unset: no Redis ingress).
    #[arg(long, global = true, env = "HANGAR_REDIS_URL")]
    pub redis_url: Option<String>,
    /// Key prefix of the ingress streams (default `hangar`).
    #[arg(long, global = true, env = "HANGAR_REDIS_PREFIX")]
    pub redis_prefix: Option<String>,
    /// Entries read per XREADGROUP (default 500).
    #[arg(long, global = true, env = "HANGAR_INGRESS_BATCH")]
    pub ingress_batch: Option<usize>,
    /// Idle time after which a dead consumer's unacknowledged entries are reclaimed, in
    /// milliseconds (default 30000).
    #[arg(long, global = true, env = "HANGAR_INGRESS_CLAIM_IDLE_MS")]
    pub ingress_claim_idle_ms: Option<u64>,
    /// How long acknowledged entries stay in the ingress stream before Hangar trims them, in
    /// milliseconds (default 3600000; 0 trims them right after acknowledgement).
    #[arg(long, global = true, env = "HANGAR_INGRESS_RETAIN_MS")]
    pub ingress_retain_ms: Option<u64>,
    /// How long dead letters are kept, in milliseconds (default 604800000, 7 days).
    #[arg(long, global = true, env = "HANGAR_INGRESS_DEAD_RETAIN_MS")]
    pub ingress_dead_retain_ms: Option<u64>,
    /// Folder of schedule files (*.toml).
    #[arg(long, global = true, env = "HANGAR_SCHEDULES_DIR")]
    pub schedules_dir: Option<PathBuf>,
    /// Let job URLs reach loopback and private addresses: `1`, or a comma-separated list of
    /// CIDR networks (default: public addresses only).
    #[arg(long, global = true, env = "HANGAR_ALLOW_PRIVATE_TARGETS")]
    pub allow_private_targets: Option<String>,
    /// The master key that encrypts secrets at rest: base64 of 32 bytes (`hangar keys
    /// generate`); during a rotation `NEW,OLD`. Never read from hangar.toml.
    #[arg(long, global = true, env = "HANGAR_MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<String>,
    /// How often the alert dispatcher looks for notices to send, in milliseconds (default
    /// 1000).
    #[arg(long, global = true, env = "HANGAR_ALERT_TICK_MS")]
    pub alert_tick_ms: Option<u64>,
    /// The URL people reach this Hangar at (links in alert notices; default http://BIND).
    #[arg(long, global = true, env = "HANGAR_PUBLIC_URL")]
    pub public_url: Option<String>,
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
    Migrate,
    /// Enqueue one job; prints its id.
    Enqueue(EnqueueArgs),
    /// Inspect and steer jobs.
    Jobs {
        /// What to do with jobs.
        #[command(subcommand)]
        command: JobsCommand,
    },
    /// Inspect and acknowledge alerts.
    Alerts {
        /// What to do with alerts.
        #[command(subcommand)]
        command: AlertsCommand,
    },
    /// Create, list and revoke API tokens.
    Tokens {
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
        /// What to look at.
        #[command(subcommand)]
        command: IngressCommand,
    },
    /// Inspect the planner's schedules.
    Schedules {
        /// What to do with schedules.
        #[command(subcommand)]
        command: SchedulesCommand,
    },
    /// Measure throughput and latency on the configured database.
    Bench {
        /// Which benchmark.
        #[command(subcommand)]
        command: BenchCommand,
    },
}

/// `hangar serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Listen address of the HTTP server.
    #[arg(long, env = "HANGAR_BIND")]
    pub bind: Option<String>,
}

/// `hangar worker`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Run only this pool (repeatable); default: every pool.
    #[arg(long = "pool")]
    pub pools: Vec<String>,
    /// Listen address of the health and metrics server.
    #[arg(long, env = "HANGAR_BIND")]
    pub bind: Option<String>,
}

/// `hangar planner`.
#[derive(Debug, Args)]
pub struct PlannerArgs {
    /// Listen address of the health and metrics server.
    #[arg(long, env = "HANGAR_BIND")]
    pub bind: Option<String>,
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
    /// Run a failed, cancelled or waiting job again now.
    Retry {
        /// The job id.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Cancel a job that has not finished.
    Cancel {
        /// The job id.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `hangar alerts …`.
#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// List alerts, newest first: open ones unless --state or --all says otherwise.
    List {
        /// Only alerts in these states: open, acknowledged, resolved (comma-separated or
        /// repeated).
        #[arg(long, value_delimiter = ',', conflicts_with = "all")]
        state: Vec<String>,
        /// Alerts in every state.
        #[arg(long)]
        all: bool,
        /// Only this workspace's alerts.
        #[arg(long)]
        workspace: Option<String>,
        /// At most this many (1 to 1000).
        #[arg(long, default_value_t = 100)]
        limit: i64,
        /// Only alerts older than this alert id (the next page; the list says which id).
        #[arg(long)]
        before: Option<i64>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Acknowledge an alert.
    Ack {
        /// The alert id.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The channels alerts are delivered to (Slack, email, webhook).
    Channels {
        /// What to do with channels.
        #[command(subcommand)]
        command: ChannelsCommand,
    },
}

/// `hangar alerts channels …`.
#[derive(Debug, Subcommand)]
pub enum ChannelsCommand {
    /// Add a channel; prints its id.
    Add {
        /// Where it delivers.
        #[command(subcommand)]
        target: ChannelTarget,
    },
    /// List channels (secrets are never shown).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a channel.
    Remove {
        /// The channel id (`ach_…`).
        id: String,
    },
    /// Enable a channel again (a 410 answer disables it) and resolve its alert.
    Enable {
        /// The channel id (`ach_…`).
        id: String,
    },
    /// Send a test notice now and report the outcome.
    Test {
        /// The channel id (`ach_…`).
        id: String,
    },
}

/// Settings every channel has.
#[derive(Debug, Args)]
pub struct ChannelCommon {
    /// The workspace; without it, the channel hears every workspace's alerts.
    #[arg(long)]
    pub workspace: Option<String>,
    /// `warning` (everything) or `critical`.
    #[arg(long, default_value = "warning")]
    pub min_severity: String,
    /// Remind this often (milliseconds) while an alert is open and unacknowledged.
    #[arg(long)]
    pub remind_every_ms: Option<i64>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// The kind of a new channel and its settings.
#[derive(Debug, Subcommand)]
pub enum ChannelTarget {
    /// A Slack incoming webhook.
    Slack {
        /// The incoming-webhook URL (a secret: stored encrypted, never shown).
        #[arg(long)]
        url: String,
        #[command(flatten)]
        common: ChannelCommon,
    },
    /// Email over SMTP.
    Email {
        /// SMTP server host.
        #[arg(long)]
        smtp_host: String,
        /// SMTP server port.
        #[arg(long, default_value_t = 587)]
        smtp_port: u16,
        /// SMTP AUTH user.
        #[arg(long)]
        smtp_user: Option<String>,
        /// SMTP AUTH password (or env HANGAR_SMTP_PASSWORD, to keep it out of shell history).
        #[arg(long, env = "HANGAR_SMTP_PASSWORD", hide_env_values = true)]
        smtp_password: Option<String>,
        /// `starttls` (587), `implicit` (465) or `none` (a trusted local relay).
        #[arg(long, default_value = "starttls")]
        tls: String,
        /// Sender address.
        #[arg(long)]
        from: String,
        /// Recipient (repeatable).
        #[arg(long = "to", required = true)]
        to: Vec<String>,
        #[command(flatten)]
        common: ChannelCommon,
    },
    /// A generic webhook, signed like the outbound event webhooks.
    Webhook {
        /// The endpoint URL.
        #[arg(long)]
        url: String,
        /// The signing secret `whsec_…`; a new one is made (and shown once) when absent.
        #[arg(long)]
        secret: Option<String>,
        #[command(flatten)]
        common: ChannelCommon,
    },
}

/// `hangar keys …`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Print a new master key (the only line on stdout).
    Generate,
    /// Re-encrypt every stored secret under a new key, in one transaction.
    Rotate {
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
    /// List the dead-letter stream, newest first: entries refused with the reason.
    Dead {
        /// How many entries.
        #[arg(long, default_value_t = 50)]
        limit: usize,
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
}
