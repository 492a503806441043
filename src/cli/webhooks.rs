//! `hangar webhooks …`: the subcommands of the webhook endpoints and their replay.

use clap::Subcommand;

/// `hangar webhooks …`.
#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// The endpoints and their health.
    Endpoints {
        /// What to look at.
        #[command(subcommand)]
        command: EndpointsCommand,
    },
    /// Sends an endpoint's deliveries created since a time again (each a new job), in the
    /// background: prints the count, then the progress until it is done.
    Replay {
        /// The endpoint id (`ep_…`).
        endpoint: String,
        /// The deliveries created from this RFC 3339 time on.
        #[arg(long)]
        since: String,
        /// … and before this one (default: now).
        #[arg(long)]
        until: Option<String>,
        /// Only those that failed.
        #[arg(long)]
        failed_only: bool,
        /// Count them, send nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print the count and return: the replay goes on in the background.
        #[arg(long)]
        no_wait: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `hangar webhooks endpoints …`.
#[derive(Debug, Subcommand)]
pub enum EndpointsCommand {
    /// Every endpoint (or one workspace's) with its health.
    List {
        /// Only this workspace's endpoints.
        #[arg(long)]
        workspace: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// One endpoint and its latest deliveries with their attempts.
    Show {
        /// The endpoint id (`ep_…`).
        id: String,
        /// How many deliveries (1 to 500).
        #[arg(long, default_value_t = 20)]
        limit: i64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}
