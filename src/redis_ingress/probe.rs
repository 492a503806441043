//! What `hangar doctor` asks the Redis of the ingress: whether it answers, its version, and
//! how long the ingress and dead-letter streams are. Read-only: nothing is created.

use super::{connect, redis_client};
use crate::config::RedisConfig;
use hangar_workers::store::redact_url;

/// What one probe found.
#[derive(Debug, Clone)]
pub struct RedisProbe {
    /// The server's `redis_version` (empty when INFO does not say).
    pub version: String,
    /// Entries in `{prefix}:ingress`.
    pub ingress_len: u64,
    /// Entries in `{prefix}:ingress:dead`.
    pub dead_len: u64,
}

/// Connects (within the usual 5 s), pings, and reads the version and the streams' lengths.
/// `Err` says what failed, for people, with the URL's password redacted.
pub async fn probe(redis: &RedisConfig) -> Result<RedisProbe, String> {
    let client = redis_client(&redis.url).map_err(|e| e.message)?;
    let mut conn = connect(&client)
        .await
        .map_err(|e| format!("cannot reach Redis at {}: {e}", redact_url(&redis.url)))?;
    let failed = |e: redis::RedisError| format!("Redis at {}: {e}", redact_url(&redis.url));
    let _: String = redis::cmd("PING")
        .query_async(&mut conn)
        .await
        .map_err(failed)?;
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut conn)
        .await
        .map_err(failed)?;
    let version = info
        .lines()
        .find_map(|line| line.strip_prefix("redis_version:"))
        .unwrap_or_default()
        .trim()
        .to_owned();
    let mut len = async |key: String| -> Result<u64, String> {
        redis::cmd("XLEN")
            .arg(key)
            .query_async(&mut conn)
            .await
            .map_err(failed)
    };
    let ingress_len = len(redis.stream()).await?;
    let dead_len = len(redis.dead_stream()).await?;
    Ok(RedisProbe {
        version,
        ingress_len,
        dead_len,
    })
}
