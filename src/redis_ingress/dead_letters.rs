//! The dead-letter stream as people read it: `hangar ingress dead` and the dashboard's dead
//! letters page (the newest entries of `{prefix}:ingress:dead`, newest first).

use redis::streams::StreamRangeReply;
use serde::Serialize;

use super::dead_letter_actions::DeadLetterError;
use super::{connect, excerpt, redis_client};
use crate::config::{Config, RedisConfig};
use crate::exit::Fatal;
use hangar_workers::store::redact_url;

/// One dead letter as `hangar ingress dead --json` prints it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeadLetter {
    /// The dead-letter entry's id.
    pub id: String,
    /// The id of the original ingress entry.
    pub source_id: String,
    /// Why it was refused.
    pub error: String,
    /// The original `msg` value.
    pub msg: String,
    /// Only for an entry that had no `msg`: its fields.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<serde_json::Value>,
    /// When it was dead-lettered (from the entry id).
    pub dead_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The newest `limit` entries of the dead-letter stream, newest first, and its length: what
/// `hangar ingress dead` prints, the dashboard and `GET /api/v1/ingress/dead-letters` show.
pub async fn read_dead_letters(
    redis_config: &RedisConfig,
    limit: usize,
) -> Result<(Vec<DeadLetter>, u64), DeadLetterError> {
    let client =
        redis_client(&redis_config.url).map_err(|e| DeadLetterError::Invalid(e.to_string()))?;
    let mut conn = connect(&client)
        .await
        .map_err(|source| DeadLetterError::Unreachable {
            url: redact_url(&redis_config.url),
            source,
        })?;
    let failed = |source| DeadLetterError::Redis {
        what: "read the dead-letter stream",
        source,
    };
    let reply: StreamRangeReply = redis::cmd("XREVRANGE")
        .arg(redis_config.dead_stream())
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(limit)
        .query_async(&mut conn)
        .await
        .map_err(failed)?;
    let total: u64 = redis::cmd("XLEN")
        .arg(redis_config.dead_stream())
        .query_async(&mut conn)
        .await
        .map_err(failed)?;
    let letters = reply
        .ids
        .iter()
        .map(|entry| DeadLetter {
            dead_at: entry
                .id
                .split_once('-')
                .and_then(|(ms, _)| ms.parse::<i64>().ok())
                .and_then(chrono::DateTime::from_timestamp_millis),
            id: entry.id.clone(),
            source_id: entry.get("source_id").unwrap_or_default(),
            error: entry.get("error").unwrap_or_default(),
            msg: entry.get("msg").unwrap_or_default(),
            fields: entry
                .get::<String>("fields")
                .and_then(|f| serde_json::from_str(&f).ok()),
        })
        .collect();
    Ok((letters, total))
}

/// `hangar ingress dead`: the newest dead letters.
pub async fn list_dead(config: &Config, limit: usize, json: bool) -> Result<(), Fatal> {
    let Some(redis_config) = &config.redis else {
        return Err(Fatal::config(
            "HANGAR_REDIS_URL is not set: there is no Redis ingress to inspect",
        ));
    };
    let (letters, _) = read_dead_letters(redis_config, limit)
        .await
        .map_err(|e| Fatal::runtime(e.to_string()))?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&letters).unwrap_or_default()
        );
        return Ok(());
    }
    if letters.is_empty() {
        println!("no dead letters in {}", redis_config.dead_stream());
        return Ok(());
    }
    for letter in &letters {
        let when = letter
            .dead_at
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default();
        println!(
            "{}  {when}  source {}\n  error: {}\n  msg:   {}",
            letter.id,
            letter.source_id,
            letter.error,
            excerpt(&letter.msg, 160)
        );
        if let Some(fields) = &letter.fields {
            println!("  fields: {}", excerpt(&fields.to_string(), 160));
        }
    }
    Ok(())
}
