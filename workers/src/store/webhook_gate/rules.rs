//! The gate's rules over what it read (no SQL): circuit, ordering, concurrency, shares,
//! rate; and the ordering key path in either dialect.

use std::time::Duration;

use super::{Gate, GateAsk};
use crate::store::rows::millis;

/// What the gate reads, in one statement.
pub(super) struct Facts {
    pub(super) max_in_flight: i32,
    pub(super) rate: Option<i32>,
    pub(super) ordering_path: Option<String>,
    pub(super) circuit: String,
    pub(super) open_until: Option<i64>,
    pub(super) rate_next_at: Option<i64>,
    pub(super) endpoint_slots: i64,
    pub(super) probes: i64,
    pub(super) workspace_slots: i64,
    pub(super) retry_slots: i64,
    pub(super) event_row: Option<i64>,
}

/// What the gate decided and what it writes.
pub(super) struct Decision {
    pub(super) gate: Gate,
    pub(super) half_open: bool,
    pub(super) rate_next_at: Option<i64>,
}

/// A short wait for a slot: woken sooner when one is released.
const SLOT_WAIT: Duration = Duration::from_secs(1);
/// The longest wait behind an earlier delivery of the same key (it is woken sooner, when
/// that one ends; otherwise it waits until that one's next attempt).
const ORDER_WAIT_MAX: Duration = Duration::from_secs(86_400);

fn wait(ms: i64, reason: &'static str) -> Gate {
    Gate::Wait {
        after: Duration::from_millis(u64::try_from(ms.max(1)).unwrap_or(1)),
        reason,
    }
}

/// The decision over `facts` at `now` (ms); `predecessor` is the `run_at` (ms) of the job of
/// an earlier open delivery with the same ordering key, if there is one.
pub(super) fn decide(
    ask: &GateAsk<'_>,
    f: &Facts,
    now: i64,
    predecessor: Option<Option<i64>>,
) -> Decision {
    let mut d = Decision {
        gate: Gate::Go { probe: false },
        half_open: false,
        rate_next_at: None,
    };
    let mut probing = f.circuit == "half_open";
    if f.circuit == "open" {
        match f.open_until {
            Some(until) if until > now => {
                d.gate = wait(until - now, "circuit");
                return d;
            }
            _ => {
                d.half_open = true;
                probing = true;
            }
        }
    }
    if probing && f.probes > 0 {
        d.gate = wait(millis(SLOT_WAIT), "circuit");
        return d;
    }
    if let Some(run_at) = predecessor {
        let until = run_at.unwrap_or(now).saturating_sub(now);
        d.gate = wait(
            until.clamp(millis(SLOT_WAIT), millis(ORDER_WAIT_MAX)),
            "ordering",
        );
        return d;
    }
    if f.endpoint_slots >= i64::from(f.max_in_flight.max(1)) {
        d.gate = wait(millis(SLOT_WAIT), "concurrency");
        return d;
    }
    if f.workspace_slots >= ask.workspace_share {
        d.gate = wait(millis(SLOT_WAIT), "workspace");
        return d;
    }
    if ask.retry && f.retry_slots >= ask.retry_share {
        d.gate = wait(millis(SLOT_WAIT), "retry_lane");
        return d;
    }
    if let Some(rate) = f.rate.filter(|r| *r > 0) {
        // GCRA: each request pushes the theoretical arrival time one interval on; up to one
        // second's worth may be ahead of now (the burst).
        let interval = (1000 / i64::from(rate)).max(1);
        let tat = f.rate_next_at.unwrap_or(now).max(now);
        let ahead = tat - now;
        let room = 1000 - interval;
        if ahead > room {
            d.gate = wait(ahead - room, "rate");
            return d;
        }
        d.rate_next_at = Some(tat + interval);
    }
    d.gate = Gate::Go { probe: probing };
    d
}

/// The JSON pointer `path` into the event's data as a PostgreSQL path array
/// (`{data,trip_id}`) and a SQLite JSON path (`$.data."trip_id"`); tokens name object keys.
pub fn ordering_paths(path: &str) -> (Vec<String>, String) {
    let tokens: Vec<String> = path
        .split('/')
        .skip(1)
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect();
    let mut pg = vec!["data".to_owned()];
    pg.extend(tokens.iter().cloned());
    let mut sqlite = "$.data".to_owned();
    for t in &tokens {
        sqlite.push_str(&format!(".\"{}\"", t.replace('"', "\\\"")));
    }
    (pg, sqlite)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(retry: bool) -> GateAsk<'static> {
        GateAsk {
            delivery_id: "dlv_1",
            endpoint_id: "ep_1",
            retry,
            slot_ttl: Duration::from_secs(90),
            workspace_share: 25,
            retry_share: 20,
        }
    }

    fn facts() -> Facts {
        Facts {
            max_in_flight: 2,
            rate: None,
            ordering_path: None,
            circuit: "closed".to_owned(),
            open_until: None,
            rate_next_at: None,
            endpoint_slots: 0,
            probes: 0,
            workspace_slots: 0,
            retry_slots: 0,
            event_row: Some(1),
        }
    }

    fn reason(d: &Decision) -> Option<&'static str> {
        match d.gate {
            Gate::Wait { reason, .. } => Some(reason),
            Gate::Go { .. } => None,
        }
    }

    #[test]
    fn each_limit_makes_a_delivery_wait_and_says_which() {
        let now = 1_000_000;
        assert_eq!(reason(&decide(&ask(false), &facts(), now, None)), None);
        let full = Facts {
            endpoint_slots: 2,
            ..facts()
        };
        assert_eq!(
            reason(&decide(&ask(false), &full, now, None)),
            Some("concurrency")
        );
        let busy_ws = Facts {
            workspace_slots: 25,
            ..facts()
        };
        assert_eq!(
            reason(&decide(&ask(false), &busy_ws, now, None)),
            Some("workspace")
        );
        let retries = Facts {
            retry_slots: 20,
            ..facts()
        };
        assert_eq!(
            reason(&decide(&ask(false), &retries, now, None)),
            None,
            "fresh ones go"
        );
        assert_eq!(
            reason(&decide(&ask(true), &retries, now, None)),
            Some("retry_lane")
        );
        assert_eq!(
            reason(&decide(&ask(false), &facts(), now, Some(Some(now + 5_000)))),
            Some("ordering")
        );
    }

    #[test]
    fn the_circuit_waits_then_lets_one_probe_through() {
        let now = 1_000_000;
        let open = Facts {
            circuit: "open".to_owned(),
            open_until: Some(now + 30_000),
            ..facts()
        };
        let d = decide(&ask(false), &open, now, None);
        assert_eq!(
            d.gate,
            Gate::Wait {
                after: Duration::from_secs(30),
                reason: "circuit"
            }
        );
        let expired = Facts {
            open_until: Some(now - 1),
            ..open
        };
        let d = decide(&ask(false), &expired, now, None);
        assert_eq!(d.gate, Gate::Go { probe: true });
        assert!(d.half_open);
        let probing = Facts {
            circuit: "half_open".to_owned(),
            probes: 1,
            ..facts()
        };
        assert_eq!(
            reason(&decide(&ask(false), &probing, now, None)),
            Some("circuit")
        );
    }

    #[test]
    fn the_rate_allows_a_second_s_burst_then_spaces_requests() {
        let now = 1_000_000;
        let mut f = Facts {
            rate: Some(2),
            ..facts()
        };
        let mut sent = 0;
        for _ in 0..3 {
            let d = decide(&ask(false), &f, now, None);
            if let Some(next) = d.rate_next_at {
                f.rate_next_at = Some(next);
                sent += 1;
            } else {
                assert_eq!(
                    d.gate,
                    Gate::Wait {
                        after: Duration::from_millis(500),
                        reason: "rate"
                    }
                );
            }
        }
        assert_eq!(sent, 2);
    }
}
