//! Hangar trims its own streams, so that producers need no `MAXLEN` (which drops entries
//! whether or not anyone has read them):
//!
//! - `{prefix}:ingress`: `XTRIM MINID` below the oldest entry some consumer group still
//!   needs, that is neither pending (delivered, not acknowledged) nor undelivered, and below
//!   `now - ingress_retain_ms`. An entry nobody has acknowledged is never removed.
//! - `{prefix}:ingress:dead`: `XTRIM MINID` at `now - ingress_dead_retain_ms` (7 days by
//!   default), so a refused entry is not kept forever.
//!
//! The consumer calls [`trim`] on its reclaim tick; every process may, the result is the same.

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::streams::{StreamInfoGroupsReply, StreamPendingReply};

use crate::config::RedisConfig;

/// A stream entry id `<ms>-<seq>`, ordered as Redis orders them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct EntryId {
    /// Milliseconds part.
    pub ms: u64,
    /// Sequence part.
    pub seq: u64,
}

impl EntryId {
    /// Parses `<ms>-<seq>` (or `<ms>`).
    pub fn parse(text: &str) -> Option<EntryId> {
        let (ms, seq) = text.split_once('-').unwrap_or((text, "0"));
        Some(EntryId {
            ms: ms.parse().ok()?,
            seq: seq.parse().ok()?,
        })
    }

    /// The smallest id after this one.
    fn next(self) -> EntryId {
        match self.seq.checked_add(1) {
            Some(seq) => EntryId { ms: self.ms, seq },
            None => EntryId {
                ms: self.ms.saturating_add(1),
                seq: 0,
            },
        }
    }
}

impl std::fmt::Display for EntryId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// Where one consumer group stands in the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupPosition {
    /// The last entry handed to one of its consumers.
    pub last_delivered: EntryId,
    /// Its oldest entry delivered but not acknowledged.
    pub oldest_pending: Option<EntryId>,
}

/// The `MINID` for the ingress stream: entries below it are acknowledged by every group and
/// older than `now_ms - retain_ms`. `None` when there is no group (nobody has read anything,
/// so nothing may go).
pub fn ingress_min_id(groups: &[GroupPosition], now_ms: u64, retain_ms: u64) -> Option<EntryId> {
    let needed = groups
        .iter()
        .map(|g| {
            let undelivered = g.last_delivered.next();
            g.oldest_pending.map_or(undelivered, |p| p.min(undelivered))
        })
        .min()?;
    let old_enough = EntryId {
        ms: now_ms.saturating_sub(retain_ms),
        seq: 0,
    };
    Some(needed.min(old_enough))
}

/// Entries removed by one [`trim`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Trimmed {
    /// From the ingress stream.
    pub ingress: u64,
    /// From the dead-letter stream.
    pub dead: u64,
}

/// [`trim`] with the configured streams and retentions, counted in
/// `hangar_ingress_trimmed_total{stream}`.
pub async fn trim_and_count(
    conn: &mut MultiplexedConnection,
    config: &RedisConfig,
) -> redis::RedisResult<Trimmed> {
    let trimmed = trim(
        conn,
        &config.stream(),
        &config.dead_stream(),
        config.retain,
        config.dead_retain,
    )
    .await?;
    for (stream, n) in [("ingress", trimmed.ingress), ("dead", trimmed.dead)] {
        if n > 0 {
            metrics::counter!("hangar_ingress_trimmed_total", "stream" => stream).increment(n);
            tracing::debug!(stream, entries = n, "ingress: trimmed");
        }
    }
    Ok(trimmed)
}

/// Trims both streams (see the module doc).
pub async fn trim(
    conn: &mut MultiplexedConnection,
    stream: &str,
    dead_stream: &str,
    retain: Duration,
    dead_retain: Duration,
) -> redis::RedisResult<Trimmed> {
    // The groups' positions first, their pending entries second: an entry delivered in
    // between lies after the position read, so it stays.
    let groups: StreamInfoGroupsReply = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(stream)
        .query_async(conn)
        .await?;
    let mut positions = Vec::with_capacity(groups.groups.len());
    for group in &groups.groups {
        let Some(last_delivered) = EntryId::parse(&group.last_delivered_id) else {
            return Ok(Trimmed::default());
        };
        let pending: StreamPendingReply = redis::cmd("XPENDING")
            .arg(stream)
            .arg(&group.name)
            .query_async(conn)
            .await?;
        let oldest_pending = match pending {
            StreamPendingReply::Data(data) => match EntryId::parse(&data.start_id) {
                Some(id) => Some(id),
                None => return Ok(Trimmed::default()),
            },
            _ => None,
        };
        positions.push(GroupPosition {
            last_delivered,
            oldest_pending,
        });
    }
    let (seconds, micros): (u64, u64) = redis::cmd("TIME").query_async(conn).await?;
    let now_ms = seconds * 1000 + micros / 1000;
    let mut trimmed = Trimmed::default();
    if let Some(min_id) = ingress_min_id(&positions, now_ms, millis(retain)) {
        trimmed.ingress = xtrim_min_id(conn, stream, min_id).await?;
    }
    let dead_min = EntryId {
        ms: now_ms.saturating_sub(millis(dead_retain)),
        seq: 0,
    };
    trimmed.dead = xtrim_min_id(conn, dead_stream, dead_min).await?;
    Ok(trimmed)
}

async fn xtrim_min_id(
    conn: &mut MultiplexedConnection,
    stream: &str,
    min_id: EntryId,
) -> redis::RedisResult<u64> {
    // Exact, not `~`: an approximate trim keeps whole nodes and removes them later in one
    // piece; exact trims are small and steady at this cadence.
    redis::cmd("XTRIM")
        .arg(stream)
        .arg("MINID")
        .arg(min_id.to_string())
        .query_async(conn)
        .await
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(ms: u64, seq: u64) -> EntryId {
        EntryId { ms, seq }
    }

    fn group(last: EntryId, pending: Option<EntryId>) -> GroupPosition {
        GroupPosition {
            last_delivered: last,
            oldest_pending: pending,
        }
    }

    #[test]
    fn ids_parse_order_and_print_as_redis_has_them() {
        assert_eq!(
            EntryId::parse("1700000000000-5"),
            Some(id(1_700_000_000_000, 5))
        );
        assert_eq!(EntryId::parse("0-0"), Some(id(0, 0)));
        assert_eq!(EntryId::parse("12"), Some(id(12, 0)));
        assert_eq!(EntryId::parse("x-1"), None);
        assert!(id(5, 10) < id(6, 0) && id(5, 1) < id(5, 2));
        assert_eq!(id(7, 3).to_string(), "7-3");
        assert_eq!(id(7, u64::MAX).next(), id(8, 0));
    }

    #[test]
    fn nothing_unacknowledged_or_undelivered_is_ever_below_the_min_id() {
        let now = 1_000_000;
        let cases = [
            // (groups, retain, expected MINID)
            // Everything delivered and acknowledged: all of it may go.
            (vec![group(id(900, 4), None)], 0, Some(id(900, 5))),
            // A pending entry keeps itself and everything after it.
            (
                vec![group(id(900, 4), Some(id(500, 0)))],
                0,
                Some(id(500, 0)),
            ),
            // The slowest of several groups decides.
            (
                vec![group(id(900, 4), None), group(id(300, 1), None)],
                0,
                Some(id(300, 2)),
            ),
            // Retention keeps acknowledged entries younger than it.
            (
                vec![group(id(999_999, 0), None)],
                60_000,
                Some(id(940_000, 0)),
            ),
            // ... but never lets an unacknowledged one go.
            (
                vec![group(id(999_999, 0), Some(id(10, 0)))],
                60_000,
                Some(id(10, 0)),
            ),
            // A group that read nothing yet ("0-0"): only ids below 0-1, i.e. none.
            (vec![group(id(0, 0), None)], 0, Some(id(0, 1))),
            // No group: nobody read anything.
            (vec![], 0, None),
        ];
        for (groups, retain, expected) in cases {
            assert_eq!(
                ingress_min_id(&groups, now, retain),
                expected,
                "{groups:?} retain {retain}"
            );
        }
    }
}
