//! The gate's rules over what it read (no SQL): circuit, ordering, concurrency, shares,
//! rate, and how a decision changes what the next ask of the same batch reads; the circuit's
//! moves after an attempt; and the ordering key path in either dialect.

use std::time::Duration;

use super::{Gate, GateAsk};
use crate::store::rows::millis;

/// What the gate reads of one endpoint, in one statement.
#[derive(Debug, Clone)]
pub(super) struct Facts {
    pub(super) workspace_id: String,
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
    /// When the endpoint's earliest slot expires (ms), if it holds one.
    pub(super) next_free: Option<i64>,
}

/// What the gate decided and what it writes.
pub(super) struct Decision {
    pub(super) gate: Gate,
    pub(super) half_open: bool,
    pub(super) rate_next_at: Option<i64>,
}

/// A short wait for a slot that no release of this endpoint wakes (the workspace's or the
/// retry lane's share, held by other endpoints).
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
    ask: &GateAsk,
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
    // Waiting for this endpoint's own slots (the probe, the concurrency): until the earliest
    // slot expires at the latest; the release of a slot wakes the oldest waiting delivery
    // sooner, so nothing polls while a slow or dead receiver holds them all.
    let until_free = f.next_free.map_or(millis(SLOT_WAIT), |at| at - now);
    if probing && f.probes > 0 {
        d.gate = wait(until_free, "circuit");
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
        d.gate = wait(until_free, "concurrency");
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

/// What a decision changes in the facts the next asks of the same batch read: `facts` are
/// every endpoint of the batch; `at` is the asked endpoint's index; `expires` when the slot
/// taken expires (ms).
pub(super) fn apply(facts: &mut [Facts], at: usize, ask: &GateAsk, d: &Decision, expires: i64) {
    let f = &mut facts[at];
    if d.half_open {
        f.circuit = "half_open".to_owned();
    }
    if let Some(next) = d.rate_next_at {
        f.rate_next_at = Some(next);
    }
    let Gate::Go { probe } = d.gate else {
        return;
    };
    f.endpoint_slots += 1;
    if probe {
        f.probes += 1;
    }
    f.next_free = Some(f.next_free.map_or(expires, |n| n.min(expires)));
    let workspace = f.workspace_id.clone();
    for other in facts.iter_mut() {
        if other.workspace_id == workspace {
            other.workspace_slots += 1;
        }
        if ask.retry {
            other.retry_slots += 1;
        }
    }
}

/// An endpoint's circuit as the attempts of one batch move it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CircuitState {
    /// `closed`, `open` or `half_open`.
    pub(crate) state: String,
    /// When it last opened (ms).
    pub(crate) opened_at: Option<i64>,
    /// Until when it stays open (ms).
    pub(crate) open_until: Option<i64>,
}

/// After an attempt at `now` (ms) whose endpoint has failed `streak` times in a row
/// (counting it): a success closes the circuit and wakes as many waiting deliveries as the
/// endpoint's concurrency (one when it was closed already); a failure of the probe opens it
/// again for as long as it has been open so far (at least [`super::CIRCUIT_COOLDOWN`], at
/// most [`super::CIRCUIT_COOLDOWN_MAX`]: the waits double, and a receiver down for days costs
/// a probe every 12 hours), a failure that makes the streak reach `circuit_after` opens it,
/// and neither wakes anyone; any other failure frees its slot for the next waiting delivery.
/// Returns how many to wake.
pub(crate) fn circuit_after_attempt(
    c: &mut CircuitState,
    success: bool,
    streak: i32,
    circuit_after: i32,
    max_in_flight: i32,
    now: i64,
) -> i64 {
    let cooldown = millis(super::CIRCUIT_COOLDOWN);
    if success {
        if c.state != "closed" {
            c.state = "closed".to_owned();
            c.open_until = None;
            return i64::from(max_in_flight.max(1));
        }
        return 1;
    }
    if c.state == "half_open" {
        let open_for = now - c.opened_at.unwrap_or(now);
        let wait = open_for.clamp(cooldown, millis(super::CIRCUIT_COOLDOWN_MAX));
        c.state = "open".to_owned();
        c.open_until = Some(now + wait);
        return 0;
    }
    if c.state == "closed" && streak >= circuit_after {
        c.state = "open".to_owned();
        c.opened_at = Some(now);
        c.open_until = Some(now + cooldown);
        return 0;
    }
    1
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

    fn ask(retry: bool) -> GateAsk {
        GateAsk {
            delivery_id: "dlv_1".to_owned(),
            endpoint_id: "ep_1".to_owned(),
            job_id: 1,
            lease_token: 1,
            retry,
            slot_ttl: Duration::from_secs(90),
            workspace_share: 25,
            retry_share: 20,
        }
    }

    fn facts() -> Facts {
        Facts {
            workspace_id: "ws_1".to_owned(),
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
            next_free: None,
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

    #[test]
    fn a_full_endpoint_waits_until_its_earliest_slot_frees_not_a_poll_tick() {
        let now = 1_000_000;
        let full = Facts {
            endpoint_slots: 2,
            next_free: Some(now + 80_000),
            ..facts()
        };
        assert_eq!(
            decide(&ask(false), &full, now, None).gate,
            Gate::Wait {
                after: Duration::from_secs(80),
                reason: "concurrency"
            }
        );
    }

    #[test]
    fn a_batch_counts_the_slots_its_earlier_asks_took() {
        let now = 1_000_000;
        let mut all = vec![
            facts(),
            Facts {
                workspace_id: "ws_2".to_owned(),
                ..facts()
            },
        ];
        for _ in 0..2 {
            let d = decide(&ask(true), &all[0], now, None);
            assert_eq!(d.gate, Gate::Go { probe: false });
            apply(&mut all, 0, &ask(true), &d, now + 90_000);
        }
        let d = decide(&ask(false), &all[0], now, None);
        assert_eq!(reason(&d), Some("concurrency"), "max_in_flight 2 is taken");
        assert_eq!((all[0].workspace_slots, all[1].workspace_slots), (2, 0));
        assert_eq!((all[0].retry_slots, all[1].retry_slots), (2, 2));
        assert_eq!(all[0].next_free, Some(now + 90_000));
    }

    #[test]
    fn the_circuit_opens_after_the_streak_and_a_failed_probe_doubles_its_wait() {
        let now = 10_000_000;
        let mut c = CircuitState {
            state: "closed".to_owned(),
            opened_at: None,
            open_until: None,
        };
        assert_eq!(circuit_after_attempt(&mut c, false, 4, 5, 10, now), 1);
        assert_eq!(circuit_after_attempt(&mut c, false, 5, 5, 10, now), 0);
        assert_eq!(c.state, "open");
        assert_eq!(c.open_until, Some(now + 60_000));
        c.state = "half_open".to_owned();
        let later = now + 150_000;
        assert_eq!(circuit_after_attempt(&mut c, false, 6, 5, 10, later), 0);
        assert_eq!(c.open_until, Some(later + 150_000));
        c.state = "half_open".to_owned();
        assert_eq!(circuit_after_attempt(&mut c, true, 0, 5, 10, later), 10);
        assert_eq!((c.state.as_str(), c.open_until), ("closed", None));
        assert_eq!(circuit_after_attempt(&mut c, true, 0, 5, 10, later), 1);
    }
}
