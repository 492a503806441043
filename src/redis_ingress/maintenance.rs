//! The consumer's work besides reading new entries: the group created when missing, entries
//! a dead consumer left pending taken over (`XAUTOCLAIM`), the stream gauges, and consumers
//! of stopped processes removed from the group.

use std::collections::HashMap;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::streams::StreamAutoClaimReply;
use tokio_util::sync::CancellationToken;

use super::entry::{value_int, value_text};
use super::{Consumer, GROUP, PassCounts};

/// Consumers with nothing pending and idle this long are removed from the group.
const FORGET_CONSUMER_AFTER: Duration = Duration::from_secs(3600);

impl Consumer {
    /// Creates the group (reading from the stream's start) unless it exists.
    pub(super) async fn ensure_group(
        &self,
        conn: &mut MultiplexedConnection,
    ) -> redis::RedisResult<()> {
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

    /// Takes over entries other consumers left unacknowledged for longer than the idle time
    /// and handles them. `None` when shutdown came while the database was unavailable.
    pub(super) async fn reclaim(
        &self,
        conn: &mut MultiplexedConnection,
        shutdown: &CancellationToken,
    ) -> redis::RedisResult<Option<PassCounts>> {
        let mut counts = PassCounts::default();
        let mut start = "0-0".to_owned();
        // Bounded per tick so that new entries are not starved by a large backlog of claims.
        for _ in 0..20 {
            let reply: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
                .arg(&self.stream)
                .arg(GROUP)
                .arg(&self.config.name)
                .arg(self.config.redis.claim_idle.as_millis() as u64)
                .arg(&start)
                .arg("COUNT")
                .arg(self.config.redis.batch)
                .query_async(conn)
                .await?;
            if !reply.deleted_ids.is_empty() {
                // Trimmed away before anyone committed them: nothing left to write.
                tracing::warn!(
                    count = reply.deleted_ids.len(),
                    "ingress: pending entries were deleted from the stream before being processed"
                );
                let acked: u64 = redis::cmd("XACK")
                    .arg(&self.stream)
                    .arg(GROUP)
                    .arg(&reply.deleted_ids)
                    .query_async(conn)
                    .await?;
                counts.acked += acked;
            }
            if !reply.claimed.is_empty() {
                let claimed = reply.claimed.len() as u64;
                tracing::info!(
                    count = claimed,
                    "ingress: reclaimed entries left pending by another consumer"
                );
                metrics::counter!("hangar_ingress_reclaimed_total").increment(claimed);
                counts.reclaimed += claimed;
                match self.handle(conn, reply.claimed, shutdown).await? {
                    Some(handled) => counts.add(handled),
                    None => return Ok(None),
                }
            }
            if reply.next_stream_id == "0-0" {
                break;
            }
            start = reply.next_stream_id;
        }
        Ok(Some(counts))
    }

    /// Stream length, pending entries, lag and dead letters as gauges.
    pub(super) async fn report(&self, conn: &mut MultiplexedConnection) -> redis::RedisResult<()> {
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
    pub(super) async fn forget_idle_consumers(
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
                && name != self.config.name
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
