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

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hangar_workers::backoff::Backoff;
use hangar_workers::client::Client;
use hangar_workers::job::NewJob;
use hangar_workers::store::{Store, StoreError, redact_url};
use hangar_workers::wire::{self, EventEnvelope, IngressMessage};
use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;
use redis::streams::{StreamAutoClaimReply, StreamId, StreamReadReply};
use tokio_util::sync::CancellationToken;

use crate::config::RedisConfig;
use crate::exit::Fatal;

mod dead_letters;
mod refusal;
pub mod retention;

pub use dead_letters::{DeadLetter, list_dead, read_dead_letters};

use refusal::refuses_data;

/// The consumer group every Hangar process reads with.
pub const GROUP: &str = "hangar";

/// The longest a read blocks; bounds how late a reclaim tick or a shutdown is noticed.
const MAX_BLOCK: Duration = Duration::from_millis(1000);
/// Consumers with nothing pending and idle this long are removed from the group.
const FORGET_CONSUMER_AFTER: Duration = Duration::from_secs(3600);

/// Where an accepted entry goes.
enum Item {
    Event(EventEnvelope),
    Job(NewJob),
}

/// An accepted entry: its id, its original `msg` (for a dead letter, should the database
/// refuse it) and what it becomes.
struct Accepted {
    id: String,
    msg: String,
    item: Item,
}

/// A refused entry on its way to the dead-letter stream.
struct Dead {
    source_id: String,
    msg: String,
    error: String,
    /// For an entry without `msg`: all its fields as a JSON object, so nothing is dropped.
    fields: Option<String>,
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

/// The consumer of one process.
pub struct Consumer {
    store: Store,
    client: Arc<Client>,
    config: RedisConfig,
    redis: redis::Client,
    /// This process's consumer name in the group.
    name: String,
    stream: String,
    dead_stream: String,
}

impl Consumer {
    /// A consumer named `name` (unique per process: `host:pid`).
    pub fn new(
        store: Store,
        client: Arc<Client>,
        config: RedisConfig,
        name: String,
    ) -> Result<Consumer, Fatal> {
        let redis = redis_client(&config.url)?;
        Ok(Consumer {
            stream: config.stream(),
            dead_stream: config.dead_stream(),
            store,
            client,
            config,
            redis,
            name,
        })
    }

    /// Consumes until `shutdown`, reconnecting with backoff whenever Redis goes away.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let url = redact_url(&self.config.url);
        tracing::info!(stream = %self.stream, consumer = %self.name, redis = %url, "ingress consumer started");
        while !shutdown.is_cancelled() {
            match self.session(&shutdown, &mut backoff).await {
                Ok(()) => break,
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
        tracing::info!("ingress consumer stopped");
    }

    /// One connection's life: returns `Ok` on shutdown, `Err` when Redis fails.
    async fn session(
        &self,
        shutdown: &CancellationToken,
        backoff: &mut Backoff,
    ) -> redis::RedisResult<()> {
        // Two connections: a blocked XREADGROUP holds its connection, and the
        // acknowledgements of one batch go out while the next one is being read.
        let mut reader = connect(&self.redis).await?;
        let mut conn = connect(&self.redis).await?;
        self.ensure_group(&mut conn).await?;
        metrics::gauge!("hangar_ingress_redis_up").set(1.0);
        backoff.reset();

        // Entries this consumer read but did not acknowledge before a reconnect.
        loop {
            let entries = self.read(&mut conn, "0", None).await?;
            if entries.is_empty() {
                break;
            }
            if !self.handle(&mut conn, entries, shutdown).await? {
                return Ok(());
            }
        }

        let reclaim_every =
            (self.config.claim_idle / 2).clamp(Duration::from_millis(50), Duration::from_secs(10));
        let mut next_reclaim = Instant::now();
        let mut next_forget = Instant::now() + Duration::from_secs(60);
        // Read and not yet handled.
        let mut batch: Vec<StreamId> = Vec::new();
        loop {
            if shutdown.is_cancelled() {
                if !batch.is_empty() {
                    self.handle(&mut conn, batch, shutdown).await?;
                }
                return Ok(());
            }
            let now = Instant::now();
            if now >= next_reclaim {
                if !self.reclaim(&mut conn, shutdown).await? {
                    return Ok(());
                }
                self.report(&mut conn).await?;
                retention::trim_and_count(&mut conn, &self.config).await?;
                next_reclaim = Instant::now() + reclaim_every;
            }
            if now >= next_forget {
                self.forget_idle_consumers(&mut conn).await?;
                next_forget = now + Duration::from_secs(60);
            }
            let block = next_reclaim
                .saturating_duration_since(Instant::now())
                .clamp(Duration::from_millis(1), MAX_BLOCK);
            let read_next = async {
                tokio::select! {
                    read = self.read(&mut reader, ">", Some(block)) => read.map(Some),
                    // A read blocks for at most MAX_BLOCK: let it finish unless Redis hangs.
                    _ = async { shutdown.cancelled().await; tokio::time::sleep(MAX_BLOCK * 2).await } => Ok(None),
                }
            };
            let next = if batch.is_empty() {
                read_next.await?
            } else {
                // Commit and acknowledge this batch while the next one is read.
                let (handled, next) = tokio::join!(
                    self.handle(&mut conn, std::mem::take(&mut batch), shutdown),
                    read_next
                );
                if !handled? {
                    return Ok(());
                }
                next?
            };
            match next {
                Some(entries) => batch = entries,
                None => return Ok(()),
            }
        }
    }

    /// Creates the group (reading from the stream's start) unless it exists.
    async fn ensure_group(&self, conn: &mut MultiplexedConnection) -> redis::RedisResult<()> {
        let created: redis::RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&self.stream)
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(conn)
            .await;
        match created {
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            other => other,
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
            .arg(&self.name)
            .arg("COUNT")
            .arg(self.config.batch);
        if let Some(block) = block {
            cmd.arg("BLOCK").arg(block.as_millis() as u64);
        }
        cmd.arg("STREAMS").arg(&self.stream).arg(id);
        let reply: Option<StreamReadReply> = cmd.query_async(conn).await?;
        Ok(reply
            .map(|r| r.keys.into_iter().flat_map(|k| k.ids).collect())
            .unwrap_or_default())
    }

    /// Takes over entries other consumers left unacknowledged for longer than the idle time.
    async fn reclaim(
        &self,
        conn: &mut MultiplexedConnection,
        shutdown: &CancellationToken,
    ) -> redis::RedisResult<bool> {
        let mut start = "0-0".to_owned();
        // Bounded per tick so that new entries are not starved by a large backlog of claims.
        for _ in 0..20 {
            let reply: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
                .arg(&self.stream)
                .arg(GROUP)
                .arg(&self.name)
                .arg(self.config.claim_idle.as_millis() as u64)
                .arg(&start)
                .arg("COUNT")
                .arg(self.config.batch)
                .query_async(conn)
                .await?;
            if !reply.deleted_ids.is_empty() {
                // Trimmed away before anyone committed them: nothing left to write.
                tracing::warn!(
                    count = reply.deleted_ids.len(),
                    "ingress: pending entries were deleted from the stream before being processed"
                );
                let _: i64 = redis::cmd("XACK")
                    .arg(&self.stream)
                    .arg(GROUP)
                    .arg(&reply.deleted_ids)
                    .query_async(conn)
                    .await?;
            }
            if !reply.claimed.is_empty() {
                tracing::info!(
                    count = reply.claimed.len(),
                    "ingress: reclaimed entries left pending by another consumer"
                );
                metrics::counter!("hangar_ingress_reclaimed_total")
                    .increment(reply.claimed.len() as u64);
                if !self.handle(conn, reply.claimed, shutdown).await? {
                    return Ok(false);
                }
            }
            if reply.next_stream_id == "0-0" {
                break;
            }
            start = reply.next_stream_id;
        }
        Ok(true)
    }

    /// Validates, commits and acknowledges one batch. Returns false when shutdown came while
    /// the database was unavailable (the entries stay pending, to be written later).
    async fn handle(
        &self,
        conn: &mut MultiplexedConnection,
        entries: Vec<StreamId>,
        shutdown: &CancellationToken,
    ) -> redis::RedisResult<bool> {
        let started = Instant::now();
        let mut ids = Vec::with_capacity(entries.len());
        let mut items = Vec::with_capacity(entries.len());
        let mut dead = Vec::new();
        for entry in entries {
            ids.push(entry.id.clone());
            match self.accept(&entry) {
                Ok(Some(accepted)) => items.push(accepted),
                Ok(None) => {}
                Err(refused) => dead.push(refused),
            }
        }
        if !self.commit(&mut items, &mut dead, shutdown).await {
            return Ok(false);
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        for d in &dead {
            pipe.cmd("XADD")
                .arg(&self.dead_stream)
                .arg("*")
                .arg("msg")
                .arg(&d.msg)
                .arg("error")
                .arg(&d.error)
                .arg("source_id")
                .arg(&d.source_id);
            if let Some(fields) = &d.fields {
                pipe.arg("fields").arg(fields);
            }
            pipe.ignore();
        }
        pipe.cmd("XACK")
            .arg(&self.stream)
            .arg(GROUP)
            .arg(&ids)
            .ignore();
        pipe.query_async::<()>(conn).await?;
        for d in &dead {
            tracing::warn!(source_id = %d.source_id, error = %d.error, "ingress: entry refused, copied to the dead-letter stream");
        }
        metrics::counter!("hangar_ingress_dead_total").increment(dead.len() as u64);
        metrics::histogram!("hangar_ingress_batch_seconds").record(started.elapsed().as_secs_f64());
        Ok(true)
    }

    /// An entry's item, `None` for an entry without fields (deleted while pending), or the
    /// dead letter that says why it was refused.
    fn accept(&self, entry: &StreamId) -> Result<Option<Accepted>, Dead> {
        if entry.map.is_empty() {
            return Ok(None);
        }
        let refuse = |msg: String, error: String| Dead {
            source_id: entry.id.clone(),
            msg,
            error,
            fields: None,
        };
        let msg = match entry.map.get("msg") {
            Some(redis::Value::BulkString(bytes)) => match String::from_utf8(bytes.clone()) {
                Ok(text) => text,
                Err(e) => {
                    let lossy = String::from_utf8_lossy(e.as_bytes()).into_owned();
                    return Err(refuse(lossy, "msg is not valid UTF-8".to_owned()));
                }
            },
            Some(redis::Value::SimpleString(text)) => text.clone(),
            Some(_) => return Err(refuse(String::new(), "msg is not a string".to_owned())),
            None => {
                let mut names: Vec<&str> = entry.map.keys().map(String::as_str).collect();
                names.sort_unstable();
                let fields: serde_json::Map<String, serde_json::Value> = entry
                    .map
                    .iter()
                    .map(|(k, v)| (k.clone(), value_text(v).unwrap_or_default().into()))
                    .collect();
                let mut dead = refuse(
                    String::new(),
                    format!(
                        "entry has no field msg (fields: {}); each entry carries one field, msg",
                        names.join(", ")
                    ),
                );
                dead.fields = Some(serde_json::Value::Object(fields).to_string());
                return Err(dead);
            }
        };
        let item = match wire::parse(&msg) {
            Ok(IngressMessage::Event(event)) => Item::Event(event),
            Ok(IngressMessage::Job(request)) => match self.client.resolve(request) {
                Ok(job) => Item::Job(job),
                Err(rejection) => return Err(refuse(msg, rejection.to_string())),
            },
            Err(rejection) => {
                return Err(refuse(
                    refusal::dead_msg(msg, &rejection),
                    rejection.to_string(),
                ));
            }
        };
        Ok(Some(Accepted {
            id: entry.id.clone(),
            msg,
            item,
        }))
    }

    /// Writes the accepted items in one transaction, retrying while the database is away.
    /// Should the database refuse the batch because of one entry's data, the items are written
    /// one by one and the refused ones join `dead`. False: shutdown came first.
    async fn commit(
        &self,
        items: &mut Vec<Accepted>,
        dead: &mut Vec<Dead>,
        shutdown: &CancellationToken,
    ) -> bool {
        if items.is_empty() {
            return true;
        }
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        loop {
            let result = match self.write(items.iter().map(|a| &a.item)).await {
                Err(error) if refuses_data(&error) => self.write_one_by_one(items, dead).await,
                other => other.map(|_| ()),
            };
            match result {
                Ok(()) => return true,
                Err(error) => {
                    metrics::gauge!("hangar_database_up").set(0.0);
                    let delay = backoff.next_delay();
                    tracing::warn!(%error, entries = items.len(), retry_in_ms = delay.as_millis() as u64,
                        "ingress: cannot write the batch; nothing is acknowledged until it commits");
                    tokio::select! {
                        _ = shutdown.cancelled() => return false,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }

    async fn write_one_by_one(
        &self,
        items: &mut Vec<Accepted>,
        dead: &mut Vec<Dead>,
    ) -> Result<(), StoreError> {
        let mut kept = Vec::with_capacity(items.len());
        let mut rest = std::mem::take(items).into_iter();
        while let Some(accepted) = rest.next() {
            match self.write(std::iter::once(&accepted.item)).await {
                Ok(()) => kept.push(accepted),
                Err(error) if refuses_data(&error) => dead.push(Dead {
                    source_id: accepted.id,
                    msg: accepted.msg,
                    error: format!("the database refused the entry: {error}"),
                    fields: None,
                }),
                Err(other) => {
                    // Connection trouble: the caller retries all of them (idempotently).
                    kept.push(accepted);
                    kept.extend(rest);
                    *items = kept;
                    return Err(other);
                }
            }
        }
        *items = kept;
        Ok(())
    }

    async fn write<'a>(&self, items: impl Iterator<Item = &'a Item>) -> Result<(), StoreError> {
        let mut events = Vec::new();
        let mut jobs = Vec::new();
        for item in items {
            match item {
                Item::Event(event) => events.push(event.clone()),
                Item::Job(job) => jobs.push(job.clone()),
            }
        }
        let webhooks = self.client.webhook_route();
        let ingested = self.store.ingest(&events, &jobs, &webhooks).await?;
        metrics::gauge!("hangar_database_up").set(1.0);
        for (outcome, n) in [
            ("event_new", ingested.events_new),
            ("event_duplicate", ingested.events_duplicate),
            ("job_new", ingested.jobs_new),
            ("job_duplicate", ingested.jobs_duplicate),
        ] {
            metrics::counter!("hangar_ingress_entries_total", "source" => "redis", "outcome" => outcome)
                .increment(n);
        }
        Ok(())
    }

    /// Stream length, pending entries, lag and dead letters as gauges.
    async fn report(&self, conn: &mut MultiplexedConnection) -> redis::RedisResult<()> {
        let groups: Vec<HashMap<String, redis::Value>> = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(&self.stream)
            .query_async(conn)
            .await?;
        if let Some(group) = groups
            .iter()
            .find(|g| matches!(g.get("name"), Some(v) if value_text(v).as_deref() == Some(GROUP)))
        {
            for (field, gauge) in [
                ("pending", "hangar_ingress_pending_entries"),
                ("lag", "hangar_ingress_lag_entries"),
            ] {
                if let Some(n) = group.get(field).and_then(value_int) {
                    metrics::gauge!(gauge).set(n as f64);
                }
            }
        }
        let dead: i64 = redis::cmd("XLEN")
            .arg(&self.dead_stream)
            .query_async(conn)
            .await?;
        metrics::gauge!("hangar_ingress_dead_letters").set(dead as f64);
        Ok(())
    }

    /// Removes consumers of crashed or stopped processes once nothing is pending for them,
    /// so the group does not collect one consumer per process start.
    async fn forget_idle_consumers(
        &self,
        conn: &mut MultiplexedConnection,
    ) -> redis::RedisResult<()> {
        let consumers: Vec<HashMap<String, redis::Value>> = redis::cmd("XINFO")
            .arg("CONSUMERS")
            .arg(&self.stream)
            .arg(GROUP)
            .query_async(conn)
            .await?;
        for consumer in consumers {
            let name = consumer.get("name").and_then(value_text);
            let pending = consumer.get("pending").and_then(value_int);
            let idle = consumer.get("idle").and_then(value_int);
            if let (Some(name), Some(0), Some(idle)) = (name, pending, idle)
                && name != self.name
                && idle as u128 > FORGET_CONSUMER_AFTER.as_millis()
            {
                let _: i64 = redis::cmd("XGROUP")
                    .arg("DELCONSUMER")
                    .arg(&self.stream)
                    .arg(GROUP)
                    .arg(&name)
                    .query_async(conn)
                    .await?;
            }
        }
        Ok(())
    }
}

fn value_text(value: &redis::Value) -> Option<String> {
    match value {
        redis::Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        redis::Value::SimpleString(text) => Some(text.clone()),
        _ => None,
    }
}

fn value_int(value: &redis::Value) -> Option<i64> {
    match value {
        redis::Value::Int(n) => Some(*n),
        other => value_text(other).and_then(|t| t.parse().ok()),
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
