//! Where services read "now". In production that is the system clock (and, where a statement
//! compares times on PostgreSQL, the database's own `now()`, so processes with skewed clocks
//! agree). A test hands a service a [`ManualClock`] instead and moves it by hand, together
//! with `tokio::time::pause()` / `advance` for the services' sleeps, and calls the service's
//! `run_once` directly: a minute of schedules takes milliseconds.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};

/// The clock a service reads "now" from.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    manual: Option<Arc<Mutex<DateTime<Utc>>>>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock::default()
    }

    /// The current time.
    pub fn now(&self) -> DateTime<Utc> {
        self.fixed().unwrap_or_else(Utc::now)
    }

    /// The time of a manual clock; `None` on the system clock, where a statement should use
    /// the database's `now()` instead.
    pub fn fixed(&self) -> Option<DateTime<Utc>> {
        self.manual
            .as_ref()
            .map(|now| *now.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// A clock that only moves when told to, for tests; [`ManualClock::clock`] is the [`Clock`]
/// to give the services under test.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<DateTime<Utc>>>,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: DateTime<Utc>) -> ManualClock {
        ManualClock {
            now: Arc::new(Mutex::new(start)),
        }
    }

    /// The clock services read; it follows this one.
    pub fn clock(&self) -> Clock {
        Clock {
            manual: Some(self.now.clone()),
        }
    }

    /// The time it stands at.
    pub fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Moves it forward by `by` (saturating at the latest representable time).
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        let by = chrono::Duration::from_std(by).unwrap_or(chrono::Duration::MAX);
        *now = now
            .checked_add_signed(by)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told_and_its_services_follow() {
        let start = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let manual = ManualClock::new(start);
        let clock = manual.clock();
        assert_eq!(clock.now(), start);
        assert_eq!(clock.fixed(), Some(start));
        manual.advance(Duration::from_millis(2_500));
        assert_eq!(clock.now(), start + chrono::Duration::milliseconds(2_500));
        manual.advance(Duration::MAX);
        assert_eq!(clock.now(), DateTime::<Utc>::MAX_UTC);
    }

    #[test]
    fn the_system_clock_defers_to_the_database() {
        let clock = Clock::system();
        assert_eq!(clock.fixed(), None);
        let before = Utc::now();
        let now = clock.now();
        assert!(before <= now && now <= Utc::now());
    }
}
