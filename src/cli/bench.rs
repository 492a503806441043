//! `hangar bench …`: the benchmarks behind BENCHMARKS.md and RELIABILITY.md.

use clap::Subcommand;

use crate::config::settings::{IngressOptions, RedisOptions};

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
