//! The Redis ingress consumer (CONTRACT.md, "Redis ingress"): reads `{prefix}:ingress` with
//! the consumer group `hangar`, writes each batch in one database transaction and
//! acknowledges the entries only after the commit. A malformed entry is copied to
//! `{prefix}:ingress:dead` with the reason and acknowledged in the same `MULTI`.
//!
//! Every write is idempotent (events once per `(workspace_id, id)`, jobs once per kind and
//! idempotency key), so the rule is simple: anything not yet acknowledged may be written
//! again. That covers a crash between commit and `XACK`, a Redis restart, a database outage
//! (the batch is retried until it commits; nothing is acknowledged meanwhile) and entries a
//! dead consumer left pending, which `XAUTOCLAIM` hands to a live one after the idle time.
//!
//! A database error caused by one entry's data (not by the database being away) does not
//! hold the batch up: the batch is written entry by entry, the refused entry becomes a dead
//! letter and the others commit. Both streams are trimmed by Hangar (see [`retention`]).
//!
//! In River's shape: a [`ConsumerConfig`], [`Consumer::run_once`] (one pass: maintenance when
//! due, then one batch committed and acknowledged while the next is read) that returns what
//! it did as [`PassCounts`], and [`Consumer::run`], the loop around it that reconnects with
//! [`Backoff`]. Files: `entry.rs` (an entry accepted or refused), `batch.rs` (a batch written
//! and acknowledged), `maintenance.rs` (group, reclaim, gauges, old consumers), `retention.rs`
//! (trimming), `refusal.rs` (what a refused entry's dead letter keeps), `dead_letters.rs`
//! (reading them back), `dead_letter_actions.rs` (replay, delete, trim).

use std::time::{Duration, Instant};

use hangar_workers::backoff::Backoff;
use hangar_workers::client::Client;
use hangar_workers::store::{Store, redact_url};
use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;
use redis::streams::{StreamId, StreamReadReply};
use tokio_util::sync::CancellationToken;

use crate::config::RedisConfig;
use crate::exit::Fatal;

mod batch;
pub mod dead_letter_actions;
mod dead_letters;
mod entry;
mod maintenance;
pub mod probe;
mod refusal;
pub mod retention;

pub use dead_letters::{DeadLetter, list_dead, read_dead_letters};
pub use retention::Trimmed;

/// The consumer group every Hangar process reads with.
pub const GROUP: &str = "hangar";

/// The longest a read blocks by default; bounds how late a reclaim tick or a shutdown is
/// noticed.
pub const MAX_BLOCK: Duration = Duration::from_millis(1000);
/// How often consumers of stopped processes are looked for.
const FORGET_EVERY: Duration = Duration::from_secs(60);

/// What a consumer needs besides the store and the client.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// The Redis settings: URL, prefix, batch size, reclaim idle time, retentions.
    pub redis: RedisConfig,
    /// This consumer's name in the group, unique per process (`host:pid`).
    pub name: String,
    /// The longest one read waits for new entries.
    pub max_block: Duration,
}

impl ConsumerConfig {
    /// The settings of `redis` for the consumer `name`, reads blocking at most [`MAX_BLOCK`].
    pub fn new(redis: RedisConfig, name: String) -> ConsumerConfig {
        ConsumerConfig {
            redis,
            name,
            max_block: MAX_BLOCK,
        }
    }

    /// How often entries left pending by others are reclaimed and the streams trimmed: half
    /// the reclaim idle time, between 50 ms and 10 s.
    pub fn maintain_every(&self) -> Duration {
        (self.redis.claim_idle / 2).clamp(Duration::from_millis(50), Duration::from_secs(10))
    }
}

/// What one [`Consumer::run_once`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PassCounts {
    /// Entries read from the stream (new ones, and this consumer's own pending ones after a
    /// reconnect); a batch read while the previous one was written is handled by the next
    /// pass.
    pub read: u64,
    /// Entries taken over from a consumer that left them pending (handled in this pass).
    pub reclaimed: u64,
    /// Events written (new or already there: writes are idempotent).
    pub events: u64,
    /// Jobs written (new or already there).
    pub jobs: u64,
    /// Entries refused, copied to the dead-letter stream.
    pub dead_lettered: u64,
    /// Entries acknowledged.
    pub acked: u64,
    /// Entries trimmed from the two streams.
    pub trimmed: Trimmed,
}

impl PassCounts {
    fn add(&mut self, other: PassCounts) {
        self.read += other.read;
        self.reclaimed += other.reclaimed;
        self.events += other.events;
        self.jobs += other.jobs;
        self.dead_lettered += other.dead_lettered;
        self.acked += other.acked;
        self.trimmed.ingress += other.trimmed.ingress;
        self.trimmed.dead += other.trimmed.dead;
    }
}

/// Opens a client for `url`; a malformed URL is a configuration error.
pub fn redis_client(url: &str) -> Result<redis::Client, Fatal> {
    redis::Client::open(url).map_err(|e| {
        Fatal::config(format!(
            "HANGAR_REDIS_URL: '{}' is not usable: {e}",
            redact_url(url)
        ))
    })
}

async fn connect(client: &redis::Client) -> redis::RedisResult<MultiplexedConnection> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(5)))
        // Longer than any BLOCK we send, so a dead server is noticed without cutting reads.
        .set_response_timeout(Some(MAX_BLOCK + Duration::from_secs(10)));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
}

/// One connection's state: lost with the connection, rebuilt by the next pass.
struct Session {
    /// Blocking reads. A blocked `XREADGROUP` holds its connection, and the acknowledgements
    /// of one batch go out on `conn` while the next one is read here.
    reader: MultiplexedConnection,
    conn: MultiplexedConnection,
    /// This consumer's own entries read but not acknowledged before the reconnect are read
    /// again (id `0`) before any new one.
    recovering: bool,
    /// Read and not yet handled.
    batch: Vec<StreamId>,
    next_maintenance: Instant,
    next_forget: Instant,
}

/// The consumer of one process.
pub struct Consumer {
    store: Store,
    client: std::sync::Arc<Client>,
    config: ConsumerConfig,
    redis: redis::Client,
    stream: String,
    dead_stream: String,
    session: Option<Session>,
}

impl Consumer {
    /// A consumer writing through `client` into `store`.
    pub fn new(
        store: Store,
        client: std::sync::Arc<Client>,
        config: ConsumerConfig,
    ) -> Result<Consumer, Fatal> {
        let redis = redis_client(&config.redis.url)?;
        Ok(Consumer {
            stream: config.redis.stream(),
            dead_stream: config.redis.dead_stream(),
            store,
            client,
            config,
            redis,
            session: None,
        })
    }

    /// Consumes until `shutdown`, reconnecting with backoff whenever Redis goes away; at
    /// shutdown a batch already read is still written and acknowledged.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let url = redact_url(&self.config.redis.url);
        tracing::info!(stream = %self.stream, consumer = %self.config.name, redis = %url, "ingress consumer started");
        while !shutdown.is_cancelled() {
            match self.run_once(&shutdown).await {
                Ok(_) => backoff.reset(),
                Err(error) => {
                    metrics::gauge!("hangar_ingress_redis_up").set(0.0);
                    let delay = backoff.next_delay();
                    tracing::warn!(%error, redis = %url, retry_in_ms = delay.as_millis() as u64, "ingress: Redis unavailable");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
        if let Err(error) = self.finish(&shutdown).await {
            tracing::warn!(%error, "ingress: the last batch read stays pending (Redis unavailable)");
        }
        tracing::info!("ingress consumer stopped");
    }

    /// One pass: connects when not connected; when due, reclaims entries other consumers
    /// left pending, reports the gauges and trims the streams; then commits and acknowledges
    /// one batch while reading the next (waiting at most `max_block` for new entries). A
    /// Redis error drops the connection: the next pass reconnects and reads this consumer's
    /// unacknowledged entries again first (every write is idempotent).
    pub async fn run_once(
        &mut self,
        shutdown: &CancellationToken,
    ) -> redis::RedisResult<PassCounts> {
        let mut session = match self.session.take() {
            Some(session) => session,
            None => self.open().await?,
        };
        let counts = self.pass(&mut session, shutdown).await?;
        self.session = Some(session);
        Ok(counts)
    }

    /// Writes and acknowledges the batch read and not yet handled (at shutdown).
    pub async fn finish(&mut self, shutdown: &CancellationToken) -> redis::RedisResult<PassCounts> {
        let Some(mut session) = self.session.take() else {
            return Ok(PassCounts::default());
        };
        let batch = std::mem::take(&mut session.batch);
        if batch.is_empty() {
            return Ok(PassCounts::default());
        }
        Ok(self
            .handle(&mut session.conn, batch, shutdown)
            .await?
            .unwrap_or_default())
    }

    async fn open(&self) -> redis::RedisResult<Session> {
        let reader = connect(&self.redis).await?;
        let mut conn = connect(&self.redis).await?;
        self.ensure_group(&mut conn).await?;
        metrics::gauge!("hangar_ingress_redis_up").set(1.0);
        let now = Instant::now();
        Ok(Session {
            reader,
            conn,
            recovering: true,
            batch: Vec::new(),
            next_maintenance: now,
            next_forget: now + FORGET_EVERY,
        })
    }

    async fn pass(
        &self,
        session: &mut Session,
        shutdown: &CancellationToken,
    ) -> redis::RedisResult<PassCounts> {
        let mut counts = PassCounts::default();
        if session.recovering {
            let entries = self.read(&mut session.conn, "0", None).await?;
            if !entries.is_empty() {
                counts.read = entries.len() as u64;
                if let Some(handled) = self.handle(&mut session.conn, entries, shutdown).await? {
                    counts.add(handled);
                }
                return Ok(counts);
            }
            session.recovering = false;
        }
        let now = Instant::now();
        if now >= session.next_maintenance {
            match self.reclaim(&mut session.conn, shutdown).await? {
                Some(reclaimed) => counts.add(reclaimed),
                None => return Ok(counts),
            }
            self.report(&mut session.conn).await?;
            counts.trimmed =
                retention::trim_and_count(&mut session.conn, &self.config.redis).await?;
            session.next_maintenance = Instant::now() + self.config.maintain_every();
        }
        if now >= session.next_forget {
            self.forget_idle_consumers(&mut session.conn).await?;
            session.next_forget = now + FORGET_EVERY;
        }
        if shutdown.is_cancelled() {
            return Ok(counts);
        }
        let block = session
            .next_maintenance
            .saturating_duration_since(Instant::now())
            .clamp(Duration::from_millis(1), self.config.max_block);
        if session.batch.is_empty() {
            match self.read_next(&mut session.reader, block, shutdown).await? {
                Some(entries) => {
                    counts.read += entries.len() as u64;
                    session.batch = entries;
                }
                None => return Ok(counts),
            }
            if session.batch.is_empty() {
                return Ok(counts);
            }
        }
        // Commit and acknowledge this batch while the next one is read.
        let batch = std::mem::take(&mut session.batch);
        let (handled, next) = tokio::join!(
            self.handle(&mut session.conn, batch, shutdown),
            self.read_next(&mut session.reader, block, shutdown)
        );
        if let Some(handled) = handled? {
            counts.add(handled);
        }
        if let Some(entries) = next? {
            counts.read += entries.len() as u64;
            session.batch = entries;
        }
        Ok(counts)
    }

    /// New entries, waiting at most `block`; `None` at shutdown (a read in flight is let
    /// finish unless Redis hangs).
    async fn read_next(
        &self,
        reader: &mut MultiplexedConnection,
        block: Duration,
        shutdown: &CancellationToken,
    ) -> redis::RedisResult<Option<Vec<StreamId>>> {
        tokio::select! {
            read = self.read(reader, ">", Some(block)) => read.map(Some),
            _ = async { shutdown.cancelled().await; tokio::time::sleep(self.config.max_block * 2).await } => Ok(None),
        }
    }

    /// `XREADGROUP GROUP hangar <name> COUNT n [BLOCK ms] STREAMS <stream> <id>`.
    async fn read(
        &self,
        conn: &mut MultiplexedConnection,
        id: &str,
        block: Option<Duration>,
    ) -> redis::RedisResult<Vec<StreamId>> {
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(GROUP)
            .arg(&self.config.name)
            .arg("COUNT")
            .arg(self.config.redis.batch);
        if let Some(block) = block {
            cmd.arg("BLOCK").arg(block.as_millis() as u64);
        }
        cmd.arg("STREAMS").arg(&self.stream).arg(id);
        let reply: Option<StreamReadReply> = cmd.query_async(conn).await?;
        Ok(reply
            .map(|r| r.keys.into_iter().flat_map(|k| k.ids).collect())
            .unwrap_or_default())
    }
}

/// The first `max_chars` characters of `text`, with `…` when cut.
pub fn excerpt(text: &str, max_chars: usize) -> String {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(max_chars).collect();
    if chars.next().is_some() {
        format!("{head}…")
    } else {
        head
    }
}
