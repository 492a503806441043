//! What a schedule's `spec` means and the slot arithmetic of the planner, with no I/O.
//!
//! A spec is a cron expression (6 fields, seconds first, UTC) or a frequency keyword of the
//! integration document: `hourly`, `every_6_hours`, `daily` (planned), `realtime` and `manual`
//! (stored, never planned: webhooks and operators start those runs).
//!
//! A **slot** is a nominal time of the schedule (a cron match, or the start of an hour, of a
//! 6-hour block, of a UTC day); it names the run in the job's idempotency key. A slot's **due
//! time** is the slot plus the schedule's offset: zero for cron expressions (they fire at their
//! exact times), and for frequencies a stable hash of the name modulo the period, so a fleet
//! of hourly schedules is spread over the hour instead of all firing at :00.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, DurationRound, SecondsFormat, Utc};

/// A frequency keyword that the planner plans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Frequency {
    /// Every hour (accounting payments).
    Hourly,
    /// Every 6 hours, from 00:00 UTC (maintenance refresh).
    Every6Hours,
    /// Every day, from 00:00 UTC (full reconciliation and audit).
    Daily,
}

impl Frequency {
    /// Every planned frequency.
    pub const ALL: [Frequency; 3] = [Frequency::Hourly, Frequency::Every6Hours, Frequency::Daily];

    /// The keyword used in files, the database and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Frequency::Hourly => "hourly",
            Frequency::Every6Hours => "every_6_hours",
            Frequency::Daily => "daily",
        }
    }

    /// The period in milliseconds; slots are multiples of it since the Unix epoch.
    pub fn period_ms(self) -> i64 {
        const HOUR_MS: i64 = 3_600_000;
        match self {
            Frequency::Hourly => HOUR_MS,
            Frequency::Every6Hours => 6 * HOUR_MS,
            Frequency::Daily => 24 * HOUR_MS,
        }
    }

    /// The frequency named `s`, if it is one.
    pub fn parse(s: &str) -> Option<Frequency> {
        Frequency::ALL.into_iter().find(|f| f.as_str() == s)
    }
}

/// A schedule's spec, parsed.
#[derive(Debug, Clone)]
pub enum Spec {
    /// A cron expression, fired at its exact times (UTC).
    Cron(CronSpec),
    /// A frequency keyword, spread over its period by the schedule's offset.
    Every(Frequency),
    /// Driven by webhooks: stored, never planned.
    Realtime,
    /// Run on demand: stored, never planned.
    Manual,
}

/// A parsed cron expression and its text.
#[derive(Debug, Clone)]
pub struct CronSpec {
    text: String,
    // Boxed: a parsed schedule is ~270 bytes, the other specs one.
    schedule: Box<cron::Schedule>,
}

/// A spec that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// Not 6 fields.
    #[error(
        "'{0}' has {1} field(s); a cron expression has 6, seconds first (e.g. \"0 0 3 * * *\")"
    )]
    FieldCount(String, usize),
    /// The cron parser refused it.
    #[error("'{text}' is not a valid cron expression: {reason}")]
    Cron {
        /// The expression.
        text: String,
        /// What the parser said.
        reason: String,
    },
}

impl Spec {
    /// Parses a frequency keyword (`hourly`, `every_6_hours`, `daily`, `realtime`, `manual`)
    /// or a 6-field cron expression.
    pub fn parse(text: &str) -> Result<Spec, SpecError> {
        let text = text.trim();
        if let Some(frequency) = Frequency::parse(text) {
            return Ok(Spec::Every(frequency));
        }
        match text {
            "realtime" => return Ok(Spec::Realtime),
            "manual" => return Ok(Spec::Manual),
            _ => {}
        }
        Ok(Spec::Cron(CronSpec::parse(text)?))
    }

    /// The text stored in the database.
    pub fn as_str(&self) -> &str {
        match self {
            Spec::Cron(cron) => &cron.text,
            Spec::Every(frequency) => frequency.as_str(),
            Spec::Realtime => "realtime",
            Spec::Manual => "manual",
        }
    }

    /// Whether the planner enqueues runs of it.
    pub fn is_planned(&self) -> bool {
        matches!(self, Spec::Cron(_) | Spec::Every(_))
    }

    /// The offset of schedule `name` with this spec: for a frequency, a stable hash of the name
    /// modulo the period (the same in every process and release); 0 otherwise.
    pub fn offset_ms(&self, name: &str) -> i64 {
        match self {
            Spec::Every(frequency) => {
                let period = frequency.period_ms().unsigned_abs();
                i64::try_from(fnv1a64(name.as_bytes()) % period).unwrap_or(0)
            }
            _ => 0,
        }
    }

    /// The latest slot whose due time (slot + `offset_ms`) is at or before `now`.
    pub fn latest_due(&self, offset_ms: i64, now: DateTime<Utc>) -> Option<Slot> {
        match self {
            Spec::Cron(cron) => {
                // Cron slots are whole seconds: the latest one at or before `now` is the one
                // strictly before the next whole second.
                let floor = now.duration_trunc(Duration::seconds(1)).ok()?;
                let slot = cron
                    .schedule
                    .after_owned(floor + Duration::seconds(1))
                    .next_back()?;
                Some(Slot { slot, due: slot })
            }
            Spec::Every(frequency) => {
                let period = frequency.period_ms();
                let offset = offset_ms.rem_euclid(period);
                let k = (now.timestamp_millis() - offset).div_euclid(period);
                let slot = DateTime::from_timestamp_millis(k * period)?;
                Some(Slot {
                    slot,
                    due: slot + Duration::milliseconds(offset),
                })
            }
            Spec::Realtime | Spec::Manual => None,
        }
    }

    /// The first due time strictly after `now`; `None` when there is none (an unplanned spec,
    /// or a cron expression whose last match has passed).
    pub fn next_due_after(&self, offset_ms: i64, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Spec::Cron(cron) => cron.schedule.after_owned(now).next(),
            Spec::Every(frequency) => {
                let period = frequency.period_ms();
                let offset = offset_ms.rem_euclid(period);
                let k = (now.timestamp_millis() - offset).div_euclid(period) + 1;
                DateTime::from_timestamp_millis(k * period + offset)
            }
            Spec::Realtime | Spec::Manual => None,
        }
    }
}

impl fmt::Display for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Spec {
    type Err = SpecError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Spec::parse(s)
    }
}

impl CronSpec {
    /// Parses a 6-field cron expression (seconds first). The `cron` crate also takes a 7th
    /// (year) field and `@daily`-style shorthands; the contract has 6 fields, so only those.
    pub fn parse(text: &str) -> Result<CronSpec, SpecError> {
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        let fields = text.split(' ').filter(|f| !f.is_empty()).count();
        if fields != 6 {
            return Err(SpecError::FieldCount(text, fields));
        }
        let schedule = cron::Schedule::from_str(&text).map_err(|e| SpecError::Cron {
            text: text.clone(),
            // One line: the parser's message may span several.
            reason: e
                .to_string()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
        })?;
        Ok(CronSpec {
            text,
            schedule: Box::new(schedule),
        })
    }
}

/// One nominal time of a schedule and when it is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// The nominal time (goes into the idempotency key).
    pub slot: DateTime<Utc>,
    /// When it is due: `slot` plus the schedule's offset.
    pub due: DateTime<Utc>,
}

/// What the planner does with one due schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Enqueue one job for this slot.
    Enqueue(Slot),
    /// The previous run is still active: skip this slot and count it.
    Skip(Slot),
    /// Nothing to enqueue: this slot was already enqueued, or the spec has no slot.
    Nothing,
}

/// The planner's decision for one due schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// What to do now.
    pub action: Action,
    /// The schedule's next due time, strictly after `now` (`None`: never again).
    pub next_run_at: Option<DateTime<Utc>>,
}

/// Decides what to do with a schedule that is due at `now`.
///
/// However many slots passed since it was last planned (a planner that was down), this is one
/// run, of the latest slot that is due; `last_slot` (the slot last enqueued) keeps a slot from
/// being enqueued twice even after its job was pruned; `previous_active` (the last job is still
/// available, scheduled, running or retryable) turns the run into a skip.
pub fn decide(
    spec: &Spec,
    offset_ms: i64,
    now: DateTime<Utc>,
    last_slot: Option<DateTime<Utc>>,
    previous_active: bool,
) -> Decision {
    let next_run_at = spec.next_due_after(offset_ms, now);
    let action = match spec.latest_due(offset_ms, now) {
        None => Action::Nothing,
        Some(slot) if last_slot.is_some_and(|last| slot.slot <= last) => Action::Nothing,
        Some(slot) if previous_active => Action::Skip(slot),
        Some(slot) => Action::Enqueue(slot),
    };
    Decision {
        action,
        next_run_at,
    }
}

/// The idempotency key of a schedule's run for `slot` (CONTRACT.md):
/// `schedule:<name>:<slot time, RFC 3339 UTC>`.
pub fn idempotency_key(name: &str, slot: DateTime<Utc>) -> String {
    format!(
        "schedule:{name}:{}",
        slot.to_rfc3339_opts(SecondsFormat::Secs, true)
    )
}

/// 64-bit FNV-1a: a fixed, documented hash, so offsets never change between processes,
/// platforms or Rust releases (std's `DefaultHasher` promises none of that).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.iter().fold(OFFSET_BASIS, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(PRIME)
    })
}

#[cfg(test)]
mod tests;
