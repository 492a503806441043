//! The sync engine: a `sync` job runs one connector for one (integration, data type,
//! direction). What moves, and how it is decided, is the same for every connector:
//!
//! - [`connector`]: the [`Connector`](connector::Connector) trait (a provider's error
//!   classification, changes since a cursor by pages, a full scan, pushing a record, its rate
//!   budget) and the [`Connectors`](connector::Connectors) registry, by provider;
//! - [`rules`]: the conflict rules as a pure function (create, update, skip an unchanged
//!   re-read, append to a safety record, hold a financial conflict for review, last-write-wins
//!   otherwise), and the payload hash;
//! - [`handler`]: the `sync` job kind: reads the integration when it runs, writes the run's
//!   audit row, applies each page in one transaction with its cursor, publishes the applied
//!   changes to `{prefix}:changes` after commit;
//! - [`budget`]: the rate budget per provider account, shared through a database row;
//! - [`inbound`] and [`outbound`]: a run's pages in, and records pushed out (driven by
//!   catalog events: [`outbound::accept_event`] is what the event fan-out calls);
//! - [`changes`]: the CONTRACT JSON of an applied change and its Redis stream.

pub mod budget;
pub mod changes;
pub mod changes_retention;
pub mod connector;
pub mod handler;
pub mod inbound;
pub mod outbound;
pub mod rules;

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The job kind that runs a connector.
pub const KIND: &str = "sync";

/// What started a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    Schedule,
    Manual,
    Event,
    Webhook,
}

impl Trigger {
    /// The stored and shown name.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::Manual => "manual",
            Trigger::Event => "event",
            Trigger::Webhook => "webhook",
        }
    }
}

impl FromStr for Trigger {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "schedule" => Ok(Trigger::Schedule),
            "manual" => Ok(Trigger::Manual),
            "event" => Ok(Trigger::Event),
            "webhook" => Ok(Trigger::Webhook),
            other => Err(format!(
                "unknown trigger `{other}` (known: schedule, manual, event, webhook)"
            )),
        }
    }
}

/// Which way a data type moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// From the provider to Hangar (and on to the main app).
    In,
    /// From the main app's events to the provider.
    Out,
}

impl Direction {
    /// The stored and shown name.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
        }
    }
}

/// Run status, as CONTRACT.md names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Succeeded,
    Failed,
    RateLimited,
}

impl RunStatus {
    /// The stored and shown name.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::RateLimited => "rate_limited",
        }
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What kind of record an object type holds: it decides the conflict rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordClass {
    /// Last-write-wins by the provider's and the platform's modification times.
    Ordinary,
    /// Invoices, payments: a change on both sides is held for an admin, never applied.
    Financial,
    /// Safety records: append-only, an external change never overwrites one.
    Safety,
}

/// One record read from a provider.
#[derive(Clone, Debug, PartialEq)]
pub struct InboundRecord {
    /// The provider's object type (`Payment`, `Invoice`).
    pub object_type: String,
    /// The provider's id of the record.
    pub external_id: String,
    /// The provider's modification time.
    pub modified_at: DateTime<Utc>,
    /// The record as the provider sent it.
    pub payload: serde_json::Value,
    /// The provider's concurrency token (QuickBooks `SyncToken`).
    pub concurrency_token: Option<String>,
    /// The provider reports it deleted.
    pub deleted: bool,
}

/// Where an inbound read stands: the last applied record's (modified time, external id).
/// The next read starts at `at` minus the connector's lookback, and records tied at the
/// boundary are re-read (then skipped as unchanged), never lost.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// The modification time of the last applied record.
    pub at: DateTime<Utc>,
    /// Its external id (the tie-breaker among records of the same time).
    pub id: String,
}

/// A full reconciliation under way: the next position to read, when it began and the run
/// that began it (the records seen are marked with this scan's id).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scan {
    /// The connector's position of the next page (QuickBooks: `Payment:1`, the entity and
    /// its `STARTPOSITION`).
    pub position: String,
    /// When the scan began: the cursor the changes feed continues from once it completes.
    pub started_at: DateTime<Utc>,
    /// The scan's id (the run that began it).
    pub id: String,
}

/// The stored position of one (integration, data type).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// The changes feed's cursor (none before the first complete scan).
    pub cursor: Option<Cursor>,
    /// A full reconciliation under way.
    pub scan: Option<Scan>,
}

/// The arguments of a `sync` job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncArgs {
    /// The integration (never a credential: the worker reads it when it runs).
    pub integration_id: String,
    /// The data type to move (`payments`, `invoices`).
    pub data_type: String,
    /// What started it.
    pub trigger: Trigger,
    /// What started the run, in its own store: for outbound runs started by an event, the
    /// event's id in the event store; for runs started by a provider push (`webhook`), the
    /// push's id in the inbound store (`hangar_inbound_events.id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
}

/// A new random id with a prefix (`run_…`, `cfl_…`).
pub fn new_id(prefix: &str) -> String {
    format!(
        "{prefix}_{:016x}{:016x}",
        fastrand::u64(..),
        fastrand::u64(..)
    )
}
