//! What a handler's run leaves for the pool to ask about once the run returns
//! ([`super::Handler::take_wait`], [`super::Handler::take_completion_write`]): a note per job,
//! taken once. A run stopped before the pool asked (its lease ended, or the pool's timeout won
//! the race) leaves its note behind; once more than [`KEPT`] are held, notes older than
//! [`STALE`] go.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::job::JobId;

/// How many notes are held before the stale ones are looked for.
const KEPT: usize = 1_000;

/// How old a note is when nobody will ask for it any more.
const STALE: Duration = Duration::from_secs(60);

/// Notes of type `T` per job, shared by a handler and the runs it starts.
#[derive(Debug)]
pub struct JobNotes<T>(Mutex<HashMap<JobId, (Instant, T)>>);

impl<T> Default for JobNotes<T> {
    fn default() -> Self {
        JobNotes(Mutex::new(HashMap::new()))
    }
}

impl<T> JobNotes<T> {
    fn lock(&self) -> MutexGuard<'_, HashMap<JobId, (Instant, T)>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Notes `note` for `job` (replacing an earlier one).
    pub fn note(&self, job: JobId, note: T) {
        let mut notes = self.lock();
        if notes.len() > KEPT {
            notes.retain(|_, (at, _)| at.elapsed() < STALE);
        }
        notes.insert(job, (Instant::now(), note));
    }

    /// Takes `job`'s note, if any.
    pub fn take(&self, job: JobId) -> Option<T> {
        self.lock().remove(&job).map(|(_, note)| note)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_note_is_taken_once() {
        let notes = JobNotes::default();
        notes.note(JobId(7), "wait");
        assert_eq!(notes.take(JobId(8)), None);
        assert_eq!(notes.take(JobId(7)), Some("wait"));
        assert_eq!(notes.take(JobId(7)), None);
    }
}
