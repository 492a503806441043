//! Schedule files: `schedules/*.toml`, each with zero or more `[[schedule]]` tables (CONTRACT.md,
//! "Schedule files"), parsed and validated once at start like the pool files. An error names
//! the file, the schedule and the field. `Cargo.toml` in the same folder (this crate lives
//! there) is not a schedule file and is skipped.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::spec::{CronSpec, Frequency, Spec};

mod error;

pub use error::{ScheduleFieldProblem, ScheduleFileError, ScheduleFileProblem, Syntax};

/// The schedule file compiled into the binary, used when no schedules folder has files.
pub const BUILTIN_SCHEDULES: &str = include_str!("../default.toml");

/// A validated schedule from a file.
#[derive(Debug, Clone)]
pub struct FileSchedule {
    /// The file it came from (for messages).
    pub file: String,
    /// Unique name; with the slot it makes the job's idempotency key.
    pub name: String,
    /// When it runs.
    pub spec: Spec,
    /// The job kind to enqueue.
    pub kind: String,
    /// The job's arguments.
    pub args: serde_json::Value,
    /// The queue; `None`: the queue of the pool that runs the kind.
    pub queue: Option<String>,
    /// The job's priority (smaller runs first).
    pub priority: i16,
    /// Whether the planner plans it.
    pub enabled: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    schedule: Vec<RawSchedule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSchedule {
    name: String,
    cron: Option<String>,
    frequency: Option<String>,
    kind: String,
    #[serde(default)]
    args: serde_json::Map<String, serde_json::Value>,
    queue: Option<String>,
    priority: Option<i64>,
    enabled: Option<bool>,
}

/// Whether `path` is a schedule file: a `*.toml` other than `Cargo.toml`.
pub fn is_schedule_file(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "toml")
        && path.file_name().is_some_and(|n| n != "Cargo.toml")
}

/// Whether `dir` holds at least one schedule file.
pub fn has_schedule_files(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .filter_map(Result::ok)
            .any(|e| is_schedule_file(&e.path()))
    })
}

/// Reads every schedule file of `dir` (see [`is_schedule_file`]), in name order.
pub fn load_dir(dir: &Path) -> Result<Vec<FileSchedule>, ScheduleFileError> {
    let entries = std::fs::read_dir(dir).map_err(|e| ScheduleFileError {
        file: dir.display().to_string(),
        problem: ScheduleFileProblem::ReadFolder(e),
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| is_schedule_file(p))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(ScheduleFileError {
            file: dir.display().to_string(),
            problem: ScheduleFileProblem::NoFiles,
        });
    }
    let mut schedules: Vec<FileSchedule> = Vec::new();
    let mut names = HashSet::new();
    for path in &files {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ScheduleFileError {
            file: file.clone(),
            problem: ScheduleFileProblem::ReadFile(e),
        })?;
        for schedule in parse(&file, &text)? {
            if !names.insert(schedule.name.clone()) {
                return Err(ScheduleFileError {
                    file,
                    problem: InSchedule(schedule.name, ScheduleFieldProblem::NameInOtherFile)
                        .into(),
                });
            }
            schedules.push(schedule);
        }
    }
    Ok(schedules)
}

/// The built-in schedules (none active: the default file only has commented examples).
pub fn builtin() -> Vec<FileSchedule> {
    parse("built-in schedules", BUILTIN_SCHEDULES).unwrap_or_default()
}

/// Parses and validates one schedule file's text; `file` names it in errors.
pub fn parse(file: &str, text: &str) -> Result<Vec<FileSchedule>, ScheduleFileError> {
    let error = |problem: ScheduleFileProblem| ScheduleFileError {
        file: file.to_owned(),
        problem,
    };
    let raw: RawFile =
        toml::from_str(text).map_err(|e| error(ScheduleFileProblem::Syntax(syntax(&e, text))))?;
    let mut names = HashSet::new();
    let mut schedules = Vec::with_capacity(raw.schedule.len());
    for raw in raw.schedule {
        let schedule = validate(file, raw).map_err(|e| error(e.into()))?;
        if !names.insert(schedule.name.clone()) {
            return Err(error(
                InSchedule(schedule.name, ScheduleFieldProblem::NameTwice).into(),
            ));
        }
        schedules.push(schedule);
    }
    Ok(schedules)
}

/// Checks what a schedule refers to: its kind must be one this binary runs (`kinds`) and be
/// run by some pool, and its queue (when given) must be served by a pool. `pools` are
/// `(queue, kinds)` pairs. Fills in the queue of the kind's pool when none is given.
pub fn check_refs(
    schedules: &mut [FileSchedule],
    kinds: &[&str],
    pools: &[(&str, &[String])],
) -> Result<(), ScheduleFileError> {
    for schedule in schedules.iter_mut() {
        let error = |problem: ScheduleFieldProblem| ScheduleFileError {
            file: schedule.file.clone(),
            problem: InSchedule(schedule.name.clone(), problem).into(),
        };
        if !kinds.contains(&schedule.kind.as_str()) {
            return Err(error(ScheduleFieldProblem::UnknownKind {
                kind: schedule.kind.clone(),
                known: kinds.join(", "),
            }));
        }
        match &schedule.queue {
            Some(queue) => {
                if !pools.iter().any(|(q, _)| q == queue) {
                    let known: Vec<&str> = pools.iter().map(|(q, _)| *q).collect();
                    return Err(error(ScheduleFieldProblem::UnservedQueue {
                        queue: queue.clone(),
                        served: known.join(", "),
                    }));
                }
            }
            None => {
                let Some((queue, _)) = pools.iter().find(|(_, ks)| ks.contains(&schedule.kind))
                else {
                    return Err(error(ScheduleFieldProblem::NoPoolForKind(
                        schedule.kind.clone(),
                    )));
                };
                schedule.queue = Some((*queue).to_owned());
            }
        }
    }
    Ok(())
}

/// The parser's message with the line and, when the error sits inside a `[[schedule]]`
/// table that has a name, that schedule's name.
fn syntax(e: &toml::de::Error, text: &str) -> Syntax {
    let message = e.message().trim().to_owned();
    let Some(span) = e.span() else {
        return Syntax {
            line: None,
            schedule: None,
            message,
        };
    };
    let before = &text[..span.start.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let index = before
        .lines()
        .filter(|l| l.trim_start().starts_with("[[schedule]]"))
        .count();
    let name = index.checked_sub(1).and_then(|i| {
        let table: toml::Table = toml::from_str(text).ok()?;
        let schedule = table.get("schedule")?.as_array()?.get(i)?;
        Some(schedule.get("name")?.as_str()?.to_owned())
    });
    Syntax {
        line: Some(line),
        schedule: name,
        message,
    }
}

/// A field problem of the schedule named `.0`.
#[derive(Debug)]
struct InSchedule(String, ScheduleFieldProblem);

impl From<InSchedule> for ScheduleFileProblem {
    fn from(InSchedule(schedule, problem): InSchedule) -> Self {
        ScheduleFileProblem::Field {
            schedule,
            problem: Box::new(problem),
        }
    }
}

/// Whether `name` can name a schedule: 1 to 200 of letters, digits and `-_.:/`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:/".contains(c))
}

fn validate(file: &str, raw: RawSchedule) -> Result<FileSchedule, InSchedule> {
    let name = raw.name.trim().to_owned();
    if !valid_name(&name) {
        return Err(InSchedule(raw.name, ScheduleFieldProblem::Name));
    }
    let problem = |problem: ScheduleFieldProblem| InSchedule(name.clone(), problem);
    let spec = match (raw.cron, raw.frequency) {
        (Some(_), Some(_)) => return Err(problem(ScheduleFieldProblem::CronAndFrequency)),
        (None, None) => return Err(problem(ScheduleFieldProblem::NoSpec)),
        (Some(cron), None) => {
            Spec::Cron(CronSpec::parse(&cron).map_err(|e| problem(ScheduleFieldProblem::Cron(e)))?)
        }
        (None, Some(frequency)) => match Frequency::parse(frequency.trim()) {
            Some(frequency) => Spec::Every(frequency),
            None => return Err(problem(ScheduleFieldProblem::Frequency(frequency))),
        },
    };
    if raw.kind.trim().is_empty() {
        return Err(problem(ScheduleFieldProblem::EmptyKind));
    }
    if let Some(queue) = &raw.queue
        && (queue.is_empty() || queue.len() > 64)
    {
        return Err(problem(ScheduleFieldProblem::QueueLength));
    }
    let priority = match raw.priority {
        None => 0,
        Some(p) => i16::try_from(p).map_err(|_| problem(ScheduleFieldProblem::Priority(p)))?,
    };
    Ok(FileSchedule {
        file: file.to_owned(),
        name,
        spec,
        kind: raw.kind.trim().to_owned(),
        args: serde_json::Value::Object(raw.args),
        queue: raw.queue,
        priority,
        enabled: raw.enabled.unwrap_or(true),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Result<Vec<FileSchedule>, String> {
        parse("schedules/a.toml", text).map_err(|e| e.to_string())
    }

    #[test]
    fn the_contract_example_parses() {
        let schedules = one(r#"
[[schedule]]
name = "nightly-reconcile"
cron = "0 0 3 * * *"
kind = "noop"
args = { }
queue = "default"
"#)
        .unwrap();
        assert_eq!(schedules.len(), 1);
        let s = &schedules[0];
        assert_eq!(
            (s.name.as_str(), s.spec.as_str(), s.kind.as_str()),
            ("nightly-reconcile", "0 0 3 * * *", "noop")
        );
        assert_eq!(s.args, serde_json::json!({}));
        assert_eq!(s.queue.as_deref(), Some("default"));
        assert!(s.enabled);
    }

    #[test]
    fn errors_name_the_file_the_schedule_and_the_field() {
        let cases = [
            (
                "[[schedule]]\nname = \"a\"\ncron = \"0 0 3 * * *\"\nkind = \"noop\"\ncolour = 1\n",
                "line 5: schedule 'a': unknown field `colour`",
            ),
            (
                "[[schedule]]\nname = \"a\"\ncron = \"0 3 * * *\"\nkind = \"noop\"\n",
                "schedule 'a': cron: '0 3 * * *' has 5 field(s)",
            ),
            (
                "[[schedule]]\nname = \"a\"\ncron = \"0 0 3 * * *\"\nfrequency = \"daily\"\nkind = \"noop\"\n",
                "schedule 'a': cron: give either cron or frequency, not both",
            ),
            (
                "[[schedule]]\nname = \"a\"\nkind = \"noop\"\n",
                "schedule 'a': cron: missing",
            ),
            (
                "[[schedule]]\nname = \"a\"\nfrequency = \"weekly\"\nkind = \"noop\"\n",
                "schedule 'a': frequency: 'weekly' is not one of",
            ),
            (
                "[[schedule]]\nname = \"a\"\nfrequency = \"daily\"\nkind = \"noop\"\n[[schedule]]\nname = \"a\"\nfrequency = \"hourly\"\nkind = \"noop\"\n",
                "schedule 'a': name: declared twice",
            ),
            (
                "[[schedule]]\nname = \"a b\"\nfrequency = \"daily\"\nkind = \"noop\"\n",
                "schedule 'a b': name:",
            ),
            (
                "[[schedule]]\nname = \"a\"\nfrequency = \"daily\"\nkind = \"noop\"\nargs = 3\n",
                "line 5: schedule 'a': invalid type: integer `3`, expected a map",
            ),
        ];
        for (text, expected) in cases {
            let message = one(text).unwrap_err();
            assert!(
                message.starts_with("schedules/a.toml: ") && message.contains(expected),
                "{message:?} should contain {expected:?}"
            );
        }
    }

    #[test]
    fn references_are_checked_against_kinds_and_pools() {
        let text = "[[schedule]]\nname = \"a\"\nfrequency = \"daily\"\nkind = \"noop\"\n";
        let kinds = ["http", "noop"];
        let pool_kinds = vec!["noop".to_owned(), "http".to_owned()];
        let pools = [("default", pool_kinds.as_slice())];
        let mut ok = one(text).unwrap();
        check_refs(&mut ok, &kinds, &pools).unwrap();
        assert_eq!(
            ok[0].queue.as_deref(),
            Some("default"),
            "the kind's pool queue"
        );

        let mut bad_kind = one(&text.replace("noop", "sync")).unwrap();
        let message = check_refs(&mut bad_kind, &kinds, &pools)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("schedule 'a': kind: unknown job kind 'sync'"),
            "{message}"
        );

        let mut bad_queue = one(&format!("{text}queue = \"webhooks\"\n")).unwrap();
        let message = check_refs(&mut bad_queue, &kinds, &pools)
            .unwrap_err()
            .to_string();
        assert!(
            message.starts_with(
                "schedules/a.toml: schedule 'a': queue: no pool serves queue 'webhooks'"
            ),
            "{message}"
        );
    }

    #[test]
    fn the_builtin_file_parses_and_enqueues_nothing() {
        let parsed = parse("built-in schedules", BUILTIN_SCHEDULES).expect("default.toml parses");
        assert!(
            parsed.is_empty(),
            "the built-in file ships examples, not active schedules"
        );
        // Its commented examples are valid schedules once uncommented.
        let uncommented: String = BUILTIN_SCHEDULES
            .lines()
            .map(|l| {
                l.strip_prefix("# ")
                    .filter(|l| !l.starts_with(' '))
                    .unwrap_or("")
            })
            .filter(|l| l.starts_with('[') || l.contains(" = "))
            .collect::<Vec<_>>()
            .join("\n");
        let examples = parse("examples", &uncommented).expect("examples parse");
        let specs: Vec<&str> = examples.iter().map(|s| s.spec.as_str()).collect();
        assert_eq!(specs, ["hourly", "every_6_hours", "daily"]);
    }

    #[test]
    fn cargo_toml_is_not_a_schedule_file() {
        assert!(!is_schedule_file(Path::new("schedules/Cargo.toml")));
        assert!(is_schedule_file(Path::new("schedules/default.toml")));
        assert!(!is_schedule_file(Path::new("schedules/README.md")));
    }
}
