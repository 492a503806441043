//! What operators do to dead letters (`hangar ingress dead replay|delete|trim`, `POST
//! /api/v1/ingress/dead-letters/replay|trim`, `DELETE /api/v1/ingress/dead-letters`, the
//! dashboard's buttons): replay an entry after its producer or the pools were fixed, delete
//! it, trim the stream.
//!
//! A replay re-adds the entry's original `msg` to `{prefix}:ingress` (the stream it came
//! from) and removes the dead entry only after that `XADD` succeeded, both inside one Lua
//! script per batch: a crash or a lost connection leaves the entry dead (not replayed) or
//! replayed (and gone from the dead letters), never lost. A replayed entry goes through the
//! consumer like any other: one that is still bad is dead-lettered again with its reason (a
//! new dead entry whose `source_id` is the replayed entry). Replaying the same entry twice
//! from two places at once adds it once: the script reads and removes it in one step, and
//! the ingress stores an event or a keyed job once anyway.
//!
//! Not replayed: an entry without `msg` (nothing to re-add; its `fields` are kept for the
//! producer to see), and one whose `msg` was redacted for personal data (replaying it would
//! store `"<redacted>"` in place of the data); both stay until deleted or trimmed.

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use serde::Serialize;

use super::{connect, redis_client};
use crate::cli::DeadCommand;
use crate::config::{Config, RedisConfig};
use crate::exit::Fatal;
use hangar_workers::store::redact_url;
use hangar_workers::wire::REDACTED;

/// Entries replayed per script call (a `--all` replay walks the stream by this many).
const REPLAY_BATCH: usize = 100;

/// The most ids one request names.
pub const MAX_IDS: usize = 1_000;

/// Reads each named dead entry, re-adds its `msg` to the ingress stream and removes it (in
/// that order); answers per id `ok:<new id>`, `missing`, `no_msg` or `redacted`.
/// KEYS[1] the dead-letter stream, KEYS[2] the ingress stream, ARGV[1] the redaction marker
/// as JSON (`"<redacted>"`), ARGV[2..] the ids.
const REPLAY_SCRIPT: &str = r#"
local out = {}
for i = 2, #ARGV do
  local id = ARGV[i]
  local found = redis.call('XRANGE', KEYS[1], id, id)
  if #found == 0 then
    out[#out + 1] = 'missing'
  else
    local fields = found[1][2]
    local msg = nil
    for j = 1, #fields, 2 do
      if fields[j] == 'msg' then msg = fields[j + 1] end
    end
    if msg == nil or msg == '' then
      out[#out + 1] = 'no_msg'
    elseif string.find(msg, ARGV[1], 1, true) then
      out[#out + 1] = 'redacted'
    else
      local new = redis.call('XADD', KEYS[2], '*', 'msg', msg)
      redis.call('XDEL', KEYS[1], id)
      out[#out + 1] = 'ok:' .. new
    end
  end
end
return out
"#;

/// Why a dead-letter action could not be done.
#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    /// No Redis in this process's configuration.
    #[error(
        "the Redis ingress is not configured (HANGAR_REDIS_URL is unset): there are no dead letters"
    )]
    NotConfigured,
    /// Redis could not be reached.
    #[error("cannot reach Redis at {url}: {source}")]
    Unreachable {
        /// The URL, password redacted.
        url: String,
        /// What failed.
        source: redis::RedisError,
    },
    /// A command failed.
    #[error("Redis refused to {what}: {source}")]
    Redis {
        /// What was being done.
        what: &'static str,
        /// What failed.
        source: redis::RedisError,
    },
    /// The request itself is wrong (the message names the field).
    #[error("{0}")]
    Invalid(String),
}

/// What happened to one entry of a replay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ReplayedEntry {
    /// The dead entry's id.
    pub id: String,
    /// `replayed` (re-added and removed), `missing` (no such dead entry), `no_msg` (nothing
    /// to re-add) or `redacted` (its data was redacted for personal data).
    pub outcome: String,
    /// The new ingress entry's id, when replayed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ingress_id: Option<String>,
}

/// The result of a replay.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ReplayReport {
    /// How many entries went back to the ingress stream.
    pub replayed: usize,
    /// Every entry asked for (or, for `all`, every entry there was), in order.
    pub entries: Vec<ReplayedEntry>,
}

/// How to trim the dead-letter stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trim {
    /// Remove the entries dead-lettered longer ago than this.
    OlderThan(Duration),
    /// Keep only the newest this many.
    KeepNewest(u64),
}

/// Which entries a replay takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// These ids.
    Ids(Vec<String>),
    /// Every entry present when the replay starts (entries dead-lettered again meanwhile
    /// are not taken twice).
    All,
}

/// Checks ids: a stream entry id is `<ms>-<seq>`; at most [`MAX_IDS`], at least one.
pub fn check_ids(ids: &[String]) -> Result<(), DeadLetterError> {
    if ids.is_empty() {
        return Err(DeadLetterError::Invalid(
            "ids: name at least one dead letter id (e.g. 1733050000000-0)".to_owned(),
        ));
    }
    if ids.len() > MAX_IDS {
        return Err(DeadLetterError::Invalid(format!(
            "ids: {} ids, at most {MAX_IDS} at a time",
            ids.len()
        )));
    }
    for id in ids {
        let valid = id.split_once('-').is_some_and(|(ms, seq)| {
            !ms.is_empty()
                && !seq.is_empty()
                && ms.bytes().all(|b| b.is_ascii_digit())
                && seq.bytes().all(|b| b.is_ascii_digit())
                && ms.len() <= 20
                && seq.len() <= 20
        });
        if !valid {
            let shown: String = id.chars().take(64).collect();
            return Err(DeadLetterError::Invalid(format!(
                "ids: '{shown}' is not a stream entry id (<milliseconds>-<sequence>)"
            )));
        }
    }
    Ok(())
}

/// A connection to the configured Redis.
async fn open(redis: &RedisConfig) -> Result<MultiplexedConnection, DeadLetterError> {
    let unreachable = |source| DeadLetterError::Unreachable {
        url: redact_url(&redis.url),
        source,
    };
    let client = redis_client(&redis.url).map_err(|e| DeadLetterError::Invalid(e.to_string()))?;
    connect(&client).await.map_err(unreachable)
}

/// Replays `selection` into the ingress stream (see the module doc).
pub async fn replay(
    redis: &RedisConfig,
    selection: &Selection,
) -> Result<ReplayReport, DeadLetterError> {
    let mut conn = open(redis).await?;
    let mut report = ReplayReport::default();
    match selection {
        Selection::Ids(ids) => {
            check_ids(ids)?;
            for chunk in ids.chunks(REPLAY_BATCH) {
                run_script(&mut conn, redis, chunk, &mut report).await?;
            }
        }
        Selection::All => {
            let newest: Vec<String> = ids_in(&mut conn, redis, "-", "+", 1, true).await?;
            let Some(last) = newest.into_iter().next() else {
                return Ok(report);
            };
            let mut start = "-".to_owned();
            loop {
                let ids = ids_in(&mut conn, redis, &start, &last, REPLAY_BATCH, false).await?;
                let Some(tail) = ids.last() else { break };
                start = format!("({tail}");
                run_script(&mut conn, redis, &ids, &mut report).await?;
                if ids.len() < REPLAY_BATCH {
                    break;
                }
            }
        }
    }
    Ok(report)
}

/// The ids of the dead entries from `start` to `end` (`XRANGE`, or `XREVRANGE` from `end`).
async fn ids_in(
    conn: &mut MultiplexedConnection,
    redis: &RedisConfig,
    start: &str,
    end: &str,
    count: usize,
    newest_first: bool,
) -> Result<Vec<String>, DeadLetterError> {
    let (command, from, to) = if newest_first {
        ("XREVRANGE", end, start)
    } else {
        ("XRANGE", start, end)
    };
    let reply: redis::streams::StreamRangeReply = redis::cmd(command)
        .arg(redis.dead_stream())
        .arg(from)
        .arg(to)
        .arg("COUNT")
        .arg(count)
        .query_async(conn)
        .await
        .map_err(|source| DeadLetterError::Redis {
            what: "read the dead-letter stream",
            source,
        })?;
    Ok(reply.ids.into_iter().map(|e| e.id).collect())
}

async fn run_script(
    conn: &mut MultiplexedConnection,
    redis: &RedisConfig,
    ids: &[String],
    report: &mut ReplayReport,
) -> Result<(), DeadLetterError> {
    let marker = format!("\"{REDACTED}\"");
    let outcomes: Vec<String> = redis::cmd("EVAL")
        .arg(REPLAY_SCRIPT)
        .arg(2)
        .arg(redis.dead_stream())
        .arg(redis.stream())
        .arg(&marker)
        .arg(ids)
        .query_async(conn)
        .await
        .map_err(|source| DeadLetterError::Redis {
            what: "replay dead letters",
            source,
        })?;
    for (id, outcome) in ids.iter().zip(outcomes) {
        let entry = match outcome.strip_prefix("ok:") {
            Some(new) => {
                report.replayed += 1;
                ReplayedEntry {
                    id: id.clone(),
                    outcome: "replayed".to_owned(),
                    ingress_id: Some(new.to_owned()),
                }
            }
            None => ReplayedEntry {
                id: id.clone(),
                outcome,
                ingress_id: None,
            },
        };
        report.entries.push(entry);
    }
    Ok(())
}

/// Deletes the dead entries `ids`; returns how many there were.
pub async fn delete(redis: &RedisConfig, ids: &[String]) -> Result<u64, DeadLetterError> {
    check_ids(ids)?;
    let mut conn = open(redis).await?;
    redis::cmd("XDEL")
        .arg(redis.dead_stream())
        .arg(ids)
        .query_async(&mut conn)
        .await
        .map_err(|source| DeadLetterError::Redis {
            what: "delete dead letters",
            source,
        })
}

/// Trims the dead-letter stream; returns how many entries it removed.
pub async fn trim(redis: &RedisConfig, how: Trim) -> Result<u64, DeadLetterError> {
    let mut conn = open(redis).await?;
    let mut command = redis::cmd("XTRIM");
    command.arg(redis.dead_stream());
    match how {
        Trim::OlderThan(age) => {
            let age_ms = i64::try_from(age.as_millis()).unwrap_or(i64::MAX);
            let cutoff = chrono::Utc::now()
                .timestamp_millis()
                .saturating_sub(age_ms)
                .max(0);
            command.arg("MINID").arg(format!("{cutoff}-0"));
        }
        Trim::KeepNewest(n) => {
            command.arg("MAXLEN").arg(n);
        }
    }
    command
        .query_async(&mut conn)
        .await
        .map_err(|source| DeadLetterError::Redis {
            what: "trim the dead-letter stream",
            source,
        })
}

/// Parses an age such as `7d`, `12h`, `30m`, `90s` (for `--older-than`).
pub fn parse_age(text: &str) -> Result<Duration, DeadLetterError> {
    let text = text.trim();
    let invalid = || {
        DeadLetterError::Invalid(format!(
            "older_than: '{text}' is not an age (a whole number with s, m, h or d: 7d, 12h)"
        ))
    };
    let unit_at = text.len().checked_sub(1).ok_or_else(invalid)?;
    if !text.is_char_boundary(unit_at) {
        return Err(invalid());
    }
    let (number, unit) = text.split_at(unit_at);
    let n: u64 = number.parse().map_err(|_| invalid())?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(invalid()),
    };
    n.checked_mul(seconds)
        .map(Duration::from_secs)
        .ok_or_else(invalid)
}

/// `hangar ingress dead replay|delete|trim`.
pub async fn command(config: &Config, action: DeadCommand) -> Result<(), Fatal> {
    let Some(redis) = &config.redis else {
        return Err(Fatal::config(
            "HANGAR_REDIS_URL is not set: there is no Redis ingress to act on",
        ));
    };
    let fatal = |e: DeadLetterError| match e {
        DeadLetterError::Invalid(_) | DeadLetterError::NotConfigured => {
            Fatal::config(e.to_string())
        }
        other => Fatal::runtime(other.to_string()),
    };
    match action {
        DeadCommand::Replay { ids, all, json } => {
            let selection = if all {
                Selection::All
            } else {
                Selection::Ids(ids)
            };
            let report = replay(redis, &selection).await.map_err(fatal)?;
            if json {
                crate::commands::output::print_json(&report);
            } else {
                for entry in &report.entries {
                    match &entry.ingress_id {
                        Some(new) => println!("{}  replayed as {new}", entry.id),
                        None => println!("{}  {}", entry.id, outcome_text(&entry.outcome)),
                    }
                }
                println!(
                    "{} of {} replayed into {}",
                    report.replayed,
                    report.entries.len(),
                    redis.stream()
                );
            }
        }
        DeadCommand::Delete { ids, json } => {
            let removed = delete(redis, &ids).await.map_err(fatal)?;
            print_removed(removed, json);
        }
        DeadCommand::Trim {
            older_than,
            keep,
            json,
        } => {
            let how = match (older_than, keep) {
                (Some(age), None) => Trim::OlderThan(parse_age(&age).map_err(fatal)?),
                (None, Some(n)) => Trim::KeepNewest(n),
                _ => return Err(Fatal::config("give one of --older-than and --keep")),
            };
            let removed = trim(redis, how).await.map_err(fatal)?;
            print_removed(removed, json);
        }
    }
    Ok(())
}

fn outcome_text(outcome: &str) -> &str {
    match outcome {
        "missing" => "not found (already replayed, deleted or trimmed)",
        "no_msg" => "not replayed: the entry had no msg (see its fields; delete it)",
        "redacted" => "not replayed: its data was redacted for personal data (delete it)",
        other => other,
    }
}

fn print_removed(removed: u64, json: bool) {
    if json {
        crate::commands::output::print_json(&serde_json::json!({ "removed": removed }));
    } else {
        println!("{removed} removed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_take_a_number_and_a_unit() {
        assert_eq!(parse_age("7d").unwrap(), Duration::from_secs(7 * 86_400));
        assert_eq!(parse_age("12h").unwrap(), Duration::from_secs(12 * 3_600));
        assert_eq!(parse_age(" 30m ").unwrap(), Duration::from_secs(1_800));
        assert_eq!(parse_age("90s").unwrap(), Duration::from_secs(90));
        for bad in [
            "",
            "d",
            "7",
            "7w",
            "-1d",
            "1.5h",
            "7é",
            "99999999999999999999d",
        ] {
            assert!(parse_age(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ids_are_stream_entry_ids() {
        assert!(check_ids(&["1733050000000-0".to_owned(), "1-12".to_owned()]).is_ok());
        for bad in ["", "1733050000000", "-0", "1-", "a-1", "1-0 ", "+", "1-0-0"] {
            let err = check_ids(&[bad.to_owned()]).unwrap_err().to_string();
            assert!(err.starts_with("ids:"), "{bad}: {err}");
        }
        assert!(check_ids(&[]).is_err());
        assert!(check_ids(&vec!["1-0".to_owned(); MAX_IDS + 1]).is_err());
    }
}
