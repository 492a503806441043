//! Inbound changes handed to the main app: after the page that applied them commits, each
//! goes to the Redis stream `{prefix}:changes` as one entry whose field `msg` holds the JSON
//! of CONTRACT.md ([`ChangeRow::contract_json`]), then is marked published. A change whose
//! publication failed (Redis down, a crash after commit) stays unpublished and is sent by the
//! next run's [`Changes::publish_pending`], so the stream gets every change at least once, in
//! order of application. Without Redis the same JSON is read from
//! `GET /api/v1/workspaces/{ws}/sync-runs/{id}/changes`.

use crate::store::SyncStore;
use crate::store::sync_changes::ChangeRow;

/// Where changes go: a Redis stream, or nowhere (read over the API).
#[derive(Clone)]
pub struct Changes {
    redis: Option<(redis::Client, String)>,
}

impl Changes {
    /// No Redis: changes are read over the API only.
    pub fn api_only() -> Changes {
        Changes { redis: None }
    }

    /// Changes go to `{prefix}:changes` on the Redis at `url` (a connection is opened per
    /// publication, so a Redis restart costs nothing but a deferred publication).
    pub fn redis(url: &str, prefix: &str) -> redis::RedisResult<Changes> {
        let client = redis::Client::open(url)?;
        Ok(Changes {
            redis: Some((client, format!("{prefix}:changes"))),
        })
    }

    /// The stream's name, when Redis is configured.
    pub fn stream(&self) -> Option<&str> {
        self.redis.as_ref().map(|(_, s)| s.as_str())
    }

    /// Publishes `changes` (just committed) in order and marks them published; a Redis
    /// failure leaves the rest for [`Changes::publish_pending`] and is logged, not fatal
    /// (the changes are committed and readable over the API).
    pub async fn publish(&self, store: &SyncStore, changes: &[ChangeRow]) {
        let Some((client, stream)) = &self.redis else {
            return;
        };
        if changes.is_empty() {
            return;
        }
        let mut conn = match client.get_multiplexed_async_connection().await {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(stream, error = %e, "changes stream: publication deferred");
                return;
            }
        };
        // One pipeline per page (a round trip per change was most of a page's time): Redis
        // runs the XADDs in order; if the pipeline fails, none is marked and all are sent
        // again by the next run (at least once).
        let mut pipe = redis::pipe();
        for change in changes {
            pipe.cmd("XADD")
                .arg(stream)
                .arg("*")
                .arg("msg")
                .arg(change.contract_text());
        }
        let added: redis::RedisResult<Vec<String>> = pipe.query_async(&mut conn).await;
        let done: Vec<i64> = match added {
            Ok(_) => changes.iter().map(|c| c.id).collect(),
            Err(e) => {
                tracing::warn!(stream, error = %e, "changes stream: publication deferred");
                return;
            }
        };
        if let Err(e) = store.mark_published(&done).await {
            tracing::warn!(error = %e, "changes stream: could not mark changes published");
        }
    }

    /// Publishes changes a previous run committed but did not get onto the stream.
    pub async fn publish_pending(&self, store: &SyncStore) {
        if self.redis.is_none() {
            return;
        }
        match store.unpublished_changes(1000).await {
            Ok(pending) if !pending.is_empty() => self.publish(store, &pending).await,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "changes stream: could not read pending changes"),
        }
    }
}
