//! The brake on guessing tokens at the sign-in form: each client address may fail
//! [`MAX_FAILURES`] sign-ins within [`WINDOW`]; past that, every sign-in from it is answered
//! 429 until the oldest failure leaves the window. Counted per process, in memory, by the
//! peer address of the connection (a proxy's `X-Forwarded-For` could be forged to dodge it).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failed sign-ins one address may make within [`WINDOW`].
pub const MAX_FAILURES: usize = 10;
/// The window failures are counted in.
pub const WINDOW: Duration = Duration::from_secs(300);
/// Addresses remembered at most; past that, those without a recent failure are forgotten.
const MAX_ADDRESSES: usize = 10_000;

/// Recent failed sign-ins per client address.
#[derive(Debug, Default)]
pub struct SignInLimit {
    failures: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

impl SignInLimit {
    /// `Err(wait)` when `addr` has used up its failures: how long until it may try again.
    pub fn check(&self, addr: IpAddr, now: Instant) -> Result<(), Duration> {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let Some(times) = failures.get_mut(&addr) else {
            return Ok(());
        };
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= WINDOW)
        {
            times.pop_front();
        }
        match times.front() {
            Some(oldest) if times.len() >= MAX_FAILURES => {
                Err(WINDOW.saturating_sub(now.duration_since(*oldest)))
            }
            _ => Ok(()),
        }
    }

    /// Counts one failed sign-in of `addr`.
    pub fn failed(&self, addr: IpAddr, now: Instant) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if failures.len() >= MAX_ADDRESSES {
            failures.retain(|_, times| {
                times
                    .back()
                    .is_some_and(|t| now.duration_since(*t) < WINDOW)
            });
        }
        let times = failures.entry(addr).or_default();
        times.push_back(now);
        while times.len() > MAX_FAILURES {
            times.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_eleventh_failure_in_the_window_is_refused_until_the_oldest_leaves_it() {
        let limit = SignInLimit::default();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let start = Instant::now();
        for i in 0..MAX_FAILURES as u64 {
            let at = start + Duration::from_secs(i);
            assert!(limit.check(a, at).is_ok(), "failure {i} is still allowed");
            limit.failed(a, at);
        }
        let now = start + Duration::from_secs(20);
        let wait = limit.check(a, now).unwrap_err();
        assert_eq!(wait, WINDOW - Duration::from_secs(20));
        assert!(
            limit.check(b, now).is_ok(),
            "another address is not affected"
        );
        assert!(
            limit.check(a, start + WINDOW).is_ok(),
            "the oldest left the window"
        );
    }
}
