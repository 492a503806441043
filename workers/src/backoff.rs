//! Waiting between tries of an operation that keeps failing for reasons outside the job (a
//! claim, a batch write, a reconnect to PostgreSQL or Redis): the wait doubles from `first`
//! up to `max`, and starts over once the operation succeeds. The arithmetic is
//! [`retry_policy::backoff`](crate::retry_policy::backoff), the rule job retries use, so there
//! is one exponential backoff in Hangar.
//!
//! Every service loop that retries holds one [`Backoff`]; the waits are `tokio::time` sleeps,
//! so a test that pauses tokio's clock controls them.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::retry_policy::backoff;

/// The wait before the next try, after some failures in a row.
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    /// Waits `first` after the first failure, doubling up to `max`.
    pub const fn new(first: Duration, max: Duration) -> Backoff {
        Backoff {
            first,
            max,
            failures: 0,
        }
    }

    /// Counts one more failure and returns how long to wait before trying again.
    pub fn next_delay(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        backoff(self.first, self.max, self.failures)
    }

    /// Failures since the last success.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// The operation succeeded: the next failure waits `first` again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// Counts one more failure and sleeps its delay; false when `stop` came first.
    pub async fn wait(&mut self, stop: &CancellationToken) -> bool {
        let delay = self.next_delay();
        tokio::select! {
            _ = stop.cancelled() => false,
            _ = tokio::time::sleep(delay) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn doubles_from_first_to_max_and_starts_over_after_a_success() {
        let mut backoff = Backoff::new(ms(100), ms(5_000));
        let waits: Vec<u64> = (0..8)
            .map(|_| backoff.next_delay().as_millis() as u64)
            .collect();
        assert_eq!(waits, [100, 200, 400, 800, 1_600, 3_200, 5_000, 5_000]);
        assert_eq!(backoff.failures(), 8);
        backoff.reset();
        assert_eq!(backoff.next_delay(), ms(100));
    }

    #[test]
    fn never_overflows_after_endless_failures() {
        let mut backoff = Backoff::new(ms(50), ms(2_000));
        for _ in 0..10_000 {
            assert!(backoff.next_delay() <= ms(2_000));
        }
        assert_eq!(backoff.next_delay(), ms(2_000));
    }

    #[tokio::test(start_paused = true)]
    async fn wait_sleeps_the_delay_unless_stopped() {
        let mut backoff = Backoff::new(ms(100), ms(5_000));
        let stop = CancellationToken::new();
        let started = tokio::time::Instant::now();
        assert!(backoff.wait(&stop).await);
        assert!(backoff.wait(&stop).await);
        assert_eq!(started.elapsed(), ms(300));
        stop.cancel();
        assert!(!backoff.wait(&stop).await);
        assert_eq!(started.elapsed(), ms(300));
    }
}
