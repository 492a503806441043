//! Where a job of a kind goes: its queue, its attempt budget, and whether callers may enqueue
//! it at all. Built once from the pool files ([`crate::pool_config`]) and the kinds' registry,
//! then handed to every place that turns a kind into a job: the [`crate::client::Client`]
//! (API, Redis ingress, CLI), the planner, the alert dispatcher and the benches.
//!
//! The one rule (README, "Pools"):
//! - a kind goes to the queue of the pool that runs it, with that pool's `max_attempts`;
//! - an explicit queue (a job request's or a schedule's `queue`) changes only where the job
//!   waits: it must be one of the pools' queues, and the budget stays the kind's pool's, so a
//!   kind fails after the same number of attempts whichever queue it waits in;
//! - a kind no pool runs is refused from callers ([`RouteError::NoPool`]); the engine's own
//!   jobs (planned slots, alert notices) that meet one anyway, written by a process with
//!   other pool files, go to their named queue or `default` with the default budget
//!   ([`Routes::route_or_default`]), so no slot or notice is dropped.

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::job::DEFAULT_MAX_ATTEMPTS;
use crate::kinds::Registry;
use crate::pool_config::PoolSpec;

/// The queue a job goes to when neither the request nor any pool names one.
pub const DEFAULT_QUEUE: &str = "default";

/// Where one job goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The queue it waits in.
    pub queue: String,
    /// Its attempt budget (the kind's pool's `max_attempts`).
    pub max_attempts: i32,
    /// Only the engine enqueues it (alert deliveries); callers are refused.
    pub internal: bool,
}

/// A kind or queue no pool serves.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// No pool runs the kind.
    #[error("no pool runs job kind '{0}'")]
    NoPool(String),
    /// The queue is none of the pools' queues.
    #[error("unknown queue '{queue}' (known: {known})")]
    UnknownQueue {
        /// What was asked for.
        queue: String,
        /// The pools' queues, comma-separated.
        known: String,
    },
}

/// Every kind's route, from the pools.
#[derive(Debug, Clone, Default)]
pub struct Routes {
    /// Kind → (queue, budget) of the pool that runs it.
    by_kind: HashMap<String, (String, i32)>,
    /// The pools' queues, sorted.
    queues: BTreeSet<String>,
    /// Kinds only the engine enqueues.
    internal: HashSet<String>,
}

impl Routes {
    /// The routes of `pools` (the first pool naming a kind runs it; the pool files refuse a
    /// kind named twice), with the internal kinds of `registry`.
    pub fn new(pools: &[PoolSpec], registry: &Registry) -> Routes {
        let mut routes = Routes::default();
        for pool in pools {
            routes.queues.insert(pool.queue.clone());
            for kind in &pool.kinds {
                routes
                    .by_kind
                    .entry(kind.clone())
                    .or_insert_with(|| (pool.queue.clone(), pool.max_attempts));
            }
        }
        routes.internal = routes
            .by_kind
            .keys()
            .map(String::as_str)
            .chain(registry.kinds())
            .chain(crate::alerts::KINDS.iter().copied())
            .chain([crate::webhooks::KIND])
            .filter(|k| registry.is_internal(k))
            .map(str::to_owned)
            .collect();
        routes
    }

    /// The routes of the built-in pools and kinds.
    pub fn builtin() -> Routes {
        Routes::new(&crate::pool_config::builtin(), &Registry::builtin())
    }

    /// Where a job of `kind` goes, on `queue` when one is asked for (see the module doc).
    pub fn route(&self, kind: &str, queue: Option<&str>) -> Result<Route, RouteError> {
        let (own_queue, max_attempts) = self
            .by_kind
            .get(kind)
            .ok_or_else(|| RouteError::NoPool(kind.to_owned()))?;
        let queue = match queue {
            None => own_queue.clone(),
            Some(queue) if self.queues.contains(queue) => queue.to_owned(),
            Some(queue) => {
                return Err(RouteError::UnknownQueue {
                    queue: queue.to_owned(),
                    known: self.known_queues(),
                });
            }
        };
        Ok(Route {
            queue,
            max_attempts: *max_attempts,
            internal: self.is_internal(kind),
        })
    }

    /// [`Routes::route`] for the engine's own jobs, which are never refused: a kind no pool
    /// runs goes to `queue` or [`DEFAULT_QUEUE`] with [`DEFAULT_MAX_ATTEMPTS`], a queue no
    /// pool claims is kept (with the kind's budget).
    pub fn route_or_default(&self, kind: &str, queue: Option<&str>) -> Route {
        let own = self.by_kind.get(kind);
        Route {
            queue: queue
                .map(str::to_owned)
                .or_else(|| own.map(|(q, _)| q.clone()))
                .unwrap_or_else(|| DEFAULT_QUEUE.to_owned()),
            max_attempts: own.map_or(DEFAULT_MAX_ATTEMPTS, |(_, m)| *m),
            internal: self.is_internal(kind),
        }
    }

    /// Whether only the engine enqueues `kind`.
    pub fn is_internal(&self, kind: &str) -> bool {
        self.internal.contains(kind)
    }

    /// The pools' queues, sorted.
    pub fn queues(&self) -> Vec<String> {
        self.queues.iter().cloned().collect()
    }

    /// The pools' queues, comma-separated, for messages.
    pub fn known_queues(&self) -> String {
        self.queues
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl From<RouteError> for crate::wire::Rejection {
    fn from(error: RouteError) -> Self {
        match error {
            RouteError::NoPool(kind) => crate::wire::Rejection::NoPool(kind),
            RouteError::UnknownQueue { queue, known } => {
                crate::wire::Rejection::UnknownQueue { queue, known }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POOLS: &str = r#"
[[pool]]
name = "default"
kinds = ["noop", "http"]
max_attempts = 6

[[pool]]
name = "slow"
kinds = ["report"]
max_attempts = 2

[[pool]]
name = "alerts"
kinds = ["alert_slack"]
max_attempts = 9
"#;

    fn route(queue: &str, max_attempts: i32, internal: bool) -> Route {
        Route {
            queue: queue.to_owned(),
            max_attempts,
            internal,
        }
    }

    #[test]
    fn one_rule_for_every_caller() {
        let routes = Routes::new(
            &crate::pool_config::parse("pools.toml", POOLS).unwrap(),
            &Registry::builtin(),
        );
        let known = "alerts, default, slow".to_owned();
        let cases: [(&str, Option<&str>, Result<Route, RouteError>); 7] = [
            ("noop", None, Ok(route("default", 6, false))),
            ("report", None, Ok(route("slow", 2, false))),
            // An explicit queue moves the job; the budget stays the kind's pool's.
            ("report", Some("default"), Ok(route("default", 2, false))),
            ("noop", Some("slow"), Ok(route("slow", 6, false))),
            ("alert_slack", None, Ok(route("alerts", 9, true))),
            ("nobody", None, Err(RouteError::NoPool("nobody".to_owned()))),
            (
                "noop",
                Some("nowhere"),
                Err(RouteError::UnknownQueue {
                    queue: "nowhere".to_owned(),
                    known,
                }),
            ),
        ];
        for (kind, queue, expected) in cases {
            assert_eq!(routes.route(kind, queue), expected, "{kind} on {queue:?}");
        }
    }

    #[test]
    fn the_engines_own_jobs_are_never_refused() {
        let routes = Routes::new(
            &crate::pool_config::parse("pools.toml", POOLS).unwrap(),
            &Registry::builtin(),
        );
        let cases = [
            ("report", None, route("slow", 2, false)),
            ("report", Some("default"), route("default", 2, false)),
            ("report", Some("nowhere"), route("nowhere", 2, false)),
            (
                "nobody",
                None,
                route("default", DEFAULT_MAX_ATTEMPTS, false),
            ),
            ("nobody", Some("q"), route("q", DEFAULT_MAX_ATTEMPTS, false)),
            (
                "alert_email",
                None,
                route("default", DEFAULT_MAX_ATTEMPTS, true),
            ),
        ];
        for (kind, queue, expected) in cases {
            assert_eq!(
                routes.route_or_default(kind, queue),
                expected,
                "{kind} on {queue:?}"
            );
        }
    }
}
