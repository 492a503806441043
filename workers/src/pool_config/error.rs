//! Why a pool file cannot be used: [`PoolConfigError`] names the file, [`PoolProblem`] what is
//! wrong in it, and [`FieldProblem`] the field of a pool. The messages are what `hangar`
//! prints before exiting 2.

use std::fmt;

/// A pool file that cannot be used; the message names the file and the field.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {problem}")]
pub struct PoolConfigError {
    /// The file (or `built-in pools`).
    pub file: String,
    /// What is wrong, and where.
    pub problem: PoolProblem,
}

/// What is wrong with a pool file or folder.
#[derive(Debug, thiserror::Error)]
pub enum PoolProblem {
    /// The workers folder cannot be listed.
    #[error("cannot read the workers folder: {0}")]
    ReadFolder(#[source] std::io::Error),
    /// The workers folder holds no pool file.
    #[error("no pool files (*.toml) in the workers folder")]
    NoFiles,
    /// A pool file cannot be read.
    #[error("cannot read: {0}")]
    ReadFile(#[source] std::io::Error),
    /// Not TOML, or not the pool file's shape (unknown or mistyped field).
    #[error("{0}")]
    Syntax(Syntax),
    /// The file declares no pool.
    #[error("no [[pool]] table")]
    NoPool,
    /// A field of one pool.
    #[error("pool '{pool}': {problem}")]
    Field {
        /// The pool's name, as written.
        pool: String,
        /// What is wrong with which field.
        problem: Box<FieldProblem>,
    },
}

/// The TOML parser's message with its line.
#[derive(Debug)]
pub struct Syntax {
    /// The line of the error, when the parser knows it.
    pub line: Option<usize>,
    /// The parser's message.
    pub message: String,
}

impl fmt::Display for Syntax {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// What is wrong with a field of a pool.
#[derive(Debug, thiserror::Error)]
pub enum FieldProblem {
    /// A name with other characters than letters, digits, `-` and `_`.
    #[error("name: use letters, digits, '-' and '_' only")]
    Name,
    /// Two pools of the same name.
    #[error("name: declared twice")]
    NameTwice,
    /// A queue name too short or too long.
    #[error("queue: must be 1 to 64 characters")]
    QueueLength,
    /// No kinds.
    #[error("kinds: list at least one job kind")]
    NoKinds,
    /// A kind another pool already runs.
    #[error("kinds: '{0}' is already run by another pool")]
    KindTwice(String),
    /// A number out of its range.
    #[error("{field}: {value} is out of range (allowed {min}..={max})")]
    OutOfRange {
        /// The field, dotted (`retry.server.max_retries`).
        field: String,
        /// As given.
        value: i64,
        /// Smallest allowed.
        min: i64,
        /// Largest allowed.
        max: i64,
    },
    /// `retry.jitter` out of range.
    #[error("retry.jitter: {0} is out of range (allowed 0.0..=0.2)")]
    Jitter(f64),
    /// A class's largest delay below its first.
    #[error("{field}.max_delay_ms: {max} is below base_delay_ms {base}")]
    DelayBelowBase {
        /// The class (`retry.server`).
        field: String,
        /// `max_delay_ms`.
        max: i64,
        /// `base_delay_ms`.
        base: i64,
    },
    /// A default rate-limit wait longer than the longest allowed.
    #[error(
        "{field}.default_wait_ms: {default_wait} is above max_wait_ms {max_wait} (every 429 without a Retry-After would fail)"
    )]
    DefaultWaitAboveMax {
        /// `retry.rate_limit`.
        field: String,
        /// `default_wait_ms`.
        default_wait: i64,
        /// `max_wait_ms`.
        max_wait: u128,
    },
    /// Two pools on one queue with different retention.
    #[error(
        "retention_ms: {retention_ms} differs from the {other_ms} of pool '{other}' on the same queue '{queue}' (a queue has one retention)"
    )]
    RetentionDiffers {
        /// This pool's.
        retention_ms: u128,
        /// The other pool's.
        other_ms: u128,
        /// The other pool.
        other: String,
        /// The queue they share.
        queue: String,
    },
}
