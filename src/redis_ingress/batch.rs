//! One batch of entries: validated, written in one transaction (retried while the database
//! is away; entry by entry when one entry's data is refused), then the dead letters added
//! and every entry acknowledged in one `MULTI`.

use std::time::{Duration, Instant};

use hangar_workers::backoff::Backoff;
use hangar_workers::store::StoreError;
use redis::aio::MultiplexedConnection;
use redis::streams::StreamId;
use tokio_util::sync::CancellationToken;

use super::entry::{Accepted, Dead, Item};
use super::refusal::refuses_data;
use super::{Consumer, GROUP, PassCounts};

impl Consumer {
    /// Validates, commits and acknowledges one batch and says what it did. `None` when
    /// shutdown came while the database was unavailable (the entries stay pending, to be
    /// written later).
    pub(super) async fn handle(
        &self,
        conn: &mut MultiplexedConnection,
        entries: Vec<StreamId>,
        shutdown: &CancellationToken,
    ) -> redis::RedisResult<Option<PassCounts>> {
        let started = Instant::now();
        let mut ids = Vec::with_capacity(entries.len());
        let mut items = Vec::with_capacity(entries.len());
        let mut dead = Vec::new();
        for entry in entries {
            match self.accept(&entry) {
                Ok(Some(accepted)) => items.push(accepted),
                Ok(None) => {}
                Err(refused) => dead.push(refused),
            }
            ids.push(entry.id);
        }
        if !self.commit(&mut items, &mut dead, shutdown).await {
            return Ok(None);
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
        let events = items
            .iter()
            .filter(|a| matches!(a.item, Item::Event(_)))
            .count() as u64;
        Ok(Some(PassCounts {
            events,
            jobs: items.len() as u64 - events,
            dead_lettered: dead.len() as u64,
            acked: ids.len() as u64,
            ..PassCounts::default()
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
}
