//! Owns what a job has used of its retry budget: the budget-consuming failures, the
//! rate-limit snoozes and each class's own failures, counted since the budget began (at
//! enqueue, or at the operator's last retry, which grants a fresh budget). The job row holds
//! these counts (`budget_failures`, `snoozes`, `timeout_failures`, …); the retry decision
//! reads them and the failure statement adds one to the counts of the failure it records.

use crate::error_class::ErrorClass;

/// What a job has used of its current budget, before the attempt being decided.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Spent {
    /// Failures that used the budget (every class but `rate_limit`).
    pub failures: u32,
    /// Rate-limit snoozes.
    pub snoozes: u32,
    /// Timeouts and connection failures.
    pub timeout: u32,
    /// HTTP 5xx.
    pub server: u32,
    /// Failures of the handler itself (and lost workers).
    pub internal: u32,
    /// HTTP 401s; each one after the first in a budget follows a token refresh.
    pub auth: u32,
    /// Whether an operator's retry started this budget (the job had attempts before it).
    pub after_operator_retry: bool,
}

impl Spent {
    /// How many failures of `class` the budget has seen (snoozes for `rate_limit`; a client
    /// error is never retried, so it has no count of its own).
    pub fn of(&self, class: ErrorClass) -> u32 {
        match class {
            ErrorClass::Timeout => self.timeout,
            ErrorClass::Server => self.server,
            ErrorClass::Internal => self.internal,
            ErrorClass::Auth => self.auth,
            ErrorClass::RateLimit => self.snoozes,
            ErrorClass::Client => 0,
        }
    }

    /// The counts once one more failure of `class` is recorded.
    pub fn after(&self, class: ErrorClass) -> Spent {
        let mut next = *self;
        let bump = |n: &mut u32| *n = n.saturating_add(1);
        match class {
            ErrorClass::Timeout => bump(&mut next.timeout),
            ErrorClass::Server => bump(&mut next.server),
            ErrorClass::Internal => bump(&mut next.internal),
            ErrorClass::Auth => bump(&mut next.auth),
            ErrorClass::RateLimit => bump(&mut next.snoozes),
            ErrorClass::Client => {}
        }
        if class != ErrorClass::RateLimit {
            bump(&mut next.failures);
        }
        next
    }

    /// Counts as stored (non-negative integers); anything negative reads as 0.
    pub fn from_row(counts: [i32; 6], budget_from_attempt: i32) -> Spent {
        let n = |v: i32| u32::try_from(v).unwrap_or(0);
        let [failures, snoozes, timeout, server, internal, auth] = counts;
        Spent {
            failures: n(failures),
            snoozes: n(snoozes),
            timeout: n(timeout),
            server: n(server),
            internal: n(internal),
            auth: n(auth),
            after_operator_retry: budget_from_attempt > 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_class_counts_alone_and_only_rate_limits_spare_the_budget() {
        let mut spent = Spent::default();
        for class in [
            ErrorClass::Server,
            ErrorClass::Server,
            ErrorClass::Timeout,
            ErrorClass::RateLimit,
            ErrorClass::Server,
            ErrorClass::Auth,
            ErrorClass::Internal,
            ErrorClass::Client,
        ] {
            spent = spent.after(class);
        }
        let want = Spent {
            failures: 7,
            snoozes: 1,
            timeout: 1,
            server: 3,
            internal: 1,
            auth: 1,
            after_operator_retry: false,
        };
        assert_eq!(spent, want);
        for class in ErrorClass::ALL {
            let expected = match class {
                ErrorClass::Server => 3,
                ErrorClass::Client => 0,
                _ => 1,
            };
            assert_eq!(spent.of(class), expected, "{class}");
        }
    }

    #[test]
    fn counts_saturate_and_negative_rows_read_as_zero() {
        let full = Spent::from_row([i32::MAX; 6], 0);
        let mut spent = Spent {
            failures: u32::MAX,
            ..full
        };
        spent = spent.after(ErrorClass::Timeout);
        assert_eq!(spent.failures, u32::MAX);
        let odd = Spent::from_row([-1, -5, 0, 2, 0, 1], 7);
        assert_eq!(
            (odd.failures, odd.snoozes, odd.server, odd.auth),
            (0, 0, 2, 1)
        );
        assert!(odd.after_operator_retry);
        assert!(!Spent::from_row([0; 6], 0).after_operator_retry);
    }
}
