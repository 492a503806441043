//! One batch of the planner, between the claim and the writes: the due rows a backend claimed
//! become the jobs to insert and the row updates to write, all in the claim's transaction. No
//! I/O here; the backends (`store::postgres`, `store::sqlite`) run the SQL around it.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use hangar_workers::job::{JobId, JobState, NewJob};
use hangar_workers::routes::Routes;
use hangar_workers::store::{KeyScope, Keyed};

use crate::spec::{Action, Spec, decide, idempotency_key};

/// A claimed due schedule, as read by the claim query.
#[derive(Debug, Clone)]
pub struct DueRow {
    /// Row id.
    pub id: i64,
    /// Schedule name.
    pub name: String,
    /// Spec text.
    pub spec: String,
    /// Job kind.
    pub kind: String,
    /// Job args.
    pub args: serde_json::Value,
    /// Queue, if the schedule names one.
    pub queue: Option<String>,
    /// Job priority.
    pub priority: i16,
    /// The schedule's workspace.
    pub workspace_id: Option<String>,
    /// Due time offset.
    pub offset_ms: i64,
    /// The due time that made it due.
    pub next_run_at: DateTime<Utc>,
    /// The slot last enqueued.
    pub last_slot_at: Option<DateTime<Utc>>,
    /// The state of the last job, if it still exists.
    pub last_job_state: Option<String>,
}

/// What to write back to one claimed row.
#[derive(Debug, Clone, PartialEq)]
pub struct RowUpdate {
    /// Row id.
    pub id: i64,
    /// The next due time (`None`: never again, or an unusable spec).
    pub next_run_at: Option<DateTime<Utc>>,
    /// The slot enqueued now, if any.
    pub slot: Option<DateTime<Utc>>,
    /// The job of that slot (filled in once inserted, or found when it already existed).
    pub job_id: Option<i64>,
    /// The slot was skipped because the previous run is still active.
    pub skipped: bool,
}

/// A skipped slot, for the log.
#[derive(Debug, Clone)]
pub struct Skipped {
    /// Schedule name.
    pub name: String,
    /// The slot not run.
    pub slot: DateTime<Utc>,
    /// The state of the run still active.
    pub previous_state: String,
}

/// The planned batch: jobs to insert (one per enqueued slot) and every row's update.
#[derive(Debug, Default)]
pub struct Planned {
    /// Jobs to insert, each with its idempotency key.
    pub jobs: Vec<NewJob>,
    /// For each job, the index of its row in `updates`.
    pub job_rows: Vec<usize>,
    /// One update per claimed row.
    pub updates: Vec<RowUpdate>,
    /// Slots skipped.
    pub skipped: Vec<Skipped>,
    /// The largest `now - next_run_at` among the claimed rows.
    pub lateness: chrono::Duration,
}

/// Parsed specs by text, bounded: a fleet shares a few specs, and a cron parse is the only
/// costly step of planning a row.
#[derive(Debug, Default)]
pub struct SpecCache {
    specs: HashMap<String, Arc<Spec>>,
}

impl SpecCache {
    const MAX: usize = 10_000;

    /// The parsed spec of `text`, or why it cannot be parsed.
    pub fn get(&mut self, text: &str) -> Result<Arc<Spec>, crate::spec::SpecError> {
        if let Some(spec) = self.specs.get(text) {
            return Ok(spec.clone());
        }
        let spec = Arc::new(Spec::parse(text)?);
        if self.specs.len() >= Self::MAX {
            self.specs.clear();
        }
        self.specs.insert(text.to_owned(), spec.clone());
        Ok(spec)
    }
}

/// Whether a job in `state` still counts as a run in progress.
fn is_active(state: Option<&str>) -> bool {
    state
        .and_then(|s| s.parse::<JobState>().ok())
        .is_some_and(|s| !s.is_final())
}

/// Plans the claimed rows at `now`.
pub fn plan(
    rows: Vec<DueRow>,
    now: DateTime<Utc>,
    routes: &Routes,
    specs: &mut SpecCache,
) -> Planned {
    let mut planned = Planned::default();
    for row in rows {
        planned.lateness = planned.lateness.max(now - row.next_run_at);
        let spec = match specs.get(&row.spec) {
            Ok(spec) => spec,
            Err(error) => {
                // Written by something that skipped validation: park it, say so.
                tracing::error!(schedule = %row.name, %error, "schedule has an unusable spec; it will not run until it is fixed");
                planned.updates.push(RowUpdate {
                    id: row.id,
                    next_run_at: None,
                    slot: None,
                    job_id: None,
                    skipped: false,
                });
                continue;
            }
        };
        let decision = decide(
            &spec,
            row.offset_ms,
            now,
            row.last_slot_at,
            is_active(row.last_job_state.as_deref()),
        );
        let mut update = RowUpdate {
            id: row.id,
            next_run_at: decision.next_run_at,
            slot: None,
            job_id: None,
            skipped: false,
        };
        match decision.action {
            Action::Nothing => {}
            Action::Skip(slot) => {
                update.skipped = true;
                planned.skipped.push(Skipped {
                    name: row.name,
                    slot: slot.slot,
                    previous_state: row.last_job_state.unwrap_or_default(),
                });
            }
            Action::Enqueue(slot) => {
                update.slot = Some(slot.slot);
                // The engine's own job: never refused (see `Routes::route_or_default`).
                let route = routes.route_or_default(&row.kind, row.queue.as_deref());
                planned.job_rows.push(planned.updates.len());
                planned.jobs.push(NewJob {
                    idempotency_key: Some(idempotency_key(&row.name, slot.slot)),
                    kind: row.kind,
                    queue: route.queue,
                    args: row.args,
                    // The due time: the job's start lag then includes the planner's lateness.
                    run_at: Some(slot.due),
                    priority: row.priority,
                    max_attempts: route.max_attempts,
                    workspace_id: row.workspace_id,
                });
            }
        }
        planned.updates.push(update);
    }
    planned
}

impl Planned {
    /// Records the job ids: `ids` maps `(workspace, kind, idempotency key)` to the job of
    /// that slot, inserted now or already there.
    pub fn fill_job_ids(&mut self, ids: &HashMap<KeyScope, JobId>) {
        for (job, &row) in self.jobs.iter().zip(&self.job_rows) {
            self.updates[row].job_id = ids.get(&Keyed::scope_of(job)).map(|id| id.0);
        }
    }

    /// The distinct queues of the jobs, to wake their pools.
    pub fn queues(&self) -> Vec<String> {
        let mut queues: Vec<String> = self.jobs.iter().map(|j| j.queue.clone()).collect();
        queues.sort_unstable();
        queues.dedup();
        queues
    }
}
