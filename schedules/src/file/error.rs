//! Why a schedule file cannot be used: [`ScheduleFileError`] names the file,
//! [`ScheduleFileProblem`] what is wrong in it, and [`ScheduleFieldProblem`] the field of a
//! schedule. The messages are what `hangar` prints before exiting 2.

use std::fmt;

use crate::spec::SpecError;

/// A schedule file that cannot be used; the message names the file, schedule and field.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {problem}")]
pub struct ScheduleFileError {
    /// The file (or `built-in schedules`).
    pub file: String,
    /// What is wrong, and where.
    pub problem: ScheduleFileProblem,
}

/// What is wrong with a schedule file or folder.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleFileProblem {
    /// The schedules folder cannot be listed.
    #[error("cannot read the schedules folder: {0}")]
    ReadFolder(#[source] std::io::Error),
    /// The schedules folder holds no schedule file.
    #[error("no schedule files (*.toml) in the schedules folder")]
    NoFiles,
    /// A schedule file cannot be read.
    #[error("cannot read: {0}")]
    ReadFile(#[source] std::io::Error),
    /// Not TOML, or not the schedule file's shape (unknown or mistyped field).
    #[error("{0}")]
    Syntax(Syntax),
    /// A field of one schedule.
    #[error("schedule '{schedule}': {problem}")]
    Field {
        /// The schedule's name, as written.
        schedule: String,
        /// What is wrong with which field.
        problem: Box<ScheduleFieldProblem>,
    },
}

/// The TOML parser's message with its line and, inside a named `[[schedule]]`, its name.
#[derive(Debug)]
pub struct Syntax {
    /// The line of the error, when the parser knows it.
    pub line: Option<usize>,
    /// The schedule the error sits in, when it has a name.
    pub schedule: Option<String>,
    /// The parser's message.
    pub message: String,
}

impl fmt::Display for Syntax {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, &self.schedule) {
            (Some(line), Some(name)) => {
                write!(f, "line {line}: schedule '{name}': {}", self.message)
            }
            (Some(line), None) => write!(f, "line {line}: {}", self.message),
            (None, _) => f.write_str(&self.message),
        }
    }
}

/// What is wrong with a field of a schedule.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleFieldProblem {
    /// A name with characters other than letters, digits and `-_.:/`, or too long.
    #[error("name: use 1 to 200 letters, digits, '-', '_', '.', ':' and '/'")]
    Name,
    /// Two schedules of the same name in one file.
    #[error("name: declared twice")]
    NameTwice,
    /// The name is used in another file.
    #[error("name: already declared in another file")]
    NameInOtherFile,
    /// Both `cron` and `frequency`.
    #[error("cron: give either cron or frequency, not both")]
    CronAndFrequency,
    /// Neither `cron` nor `frequency`.
    #[error("cron: missing; give cron (6 fields, seconds first) or frequency")]
    NoSpec,
    /// A cron expression that does not parse.
    #[error("cron: {0}")]
    Cron(#[source] SpecError),
    /// A frequency keyword that is not one.
    #[error("frequency: '{0}' is not one of hourly, every_6_hours, daily")]
    Frequency(String),
    /// An empty kind.
    #[error("kind: must not be empty")]
    EmptyKind,
    /// A kind this binary does not run.
    #[error("kind: unknown job kind '{kind}' (known: {known})")]
    UnknownKind {
        /// As given.
        kind: String,
        /// The kinds this binary runs, comma-separated.
        known: String,
    },
    /// A kind no pool runs, without a queue.
    #[error("kind: no pool runs job kind '{0}'; name a queue or add the kind to a pool")]
    NoPoolForKind(String),
    /// A queue no pool serves.
    #[error("queue: no pool serves queue '{queue}' (served: {served})")]
    UnservedQueue {
        /// As given.
        queue: String,
        /// The pools' queues, comma-separated.
        served: String,
    },
    /// A queue name too short or too long.
    #[error("queue: must be 1 to 64 characters")]
    QueueLength,
    /// A priority outside `i16`.
    #[error("priority: {0} is out of range (allowed -32768..=32767)")]
    Priority(i64),
}
