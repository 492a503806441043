//! The endpoints' delivery slots, `hangar_webhook_slots`: a fixed set of numbered rows per
//! endpoint (0 to its `max_in_flight` − 1, made on first use), each free or held by one
//! delivery until it is released or its expiry passes (its holder died). Taking and freeing a
//! slot updates its row in place, touching no indexed column, so PostgreSQL keeps the change
//! on the row's page (a HOT update) and the indexes never grow. The insert-and-delete table
//! this replaces (`hangar_webhook_inflight`, engine migration 0031) left a dead index entry
//! per delivery until the next vacuum, and every count of the gate walked them: within 15 s
//! of a 30 000-delivery drain its read of the facts took 15 ms a batch, most of the gate's
//! time (BENCHMARKS.md).
//!
//! The gate reads every slot of its endpoints in the facts' statement (a JSON array per
//! endpoint, [`parse`]), counts them here ([`tally`]) and writes the slots it gives out in one
//! upsert; a release frees a slot by (endpoint, delivery).

use std::collections::HashMap;

use serde_json::Value;

/// The slots of one endpoint as the gate sees them.
#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct Tally {
    /// Slots held (not expired).
    pub(super) held: i64,
    /// Of them, probes of a half-open circuit.
    pub(super) probes: i64,
    /// When the earliest held slot expires (ms).
    pub(super) next_free: Option<i64>,
    /// The numbers of the slots free to give out, lowest first (rows not made yet included).
    pub(super) free: Vec<i32>,
}

/// One slot row as the facts' statement gives it: `[slot, held, probe, expires_ms]` (SQLite
/// gives booleans as 0 and 1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Slot {
    pub(super) number: i32,
    pub(super) held: bool,
    pub(super) probe: bool,
    pub(super) expires_at: Option<i64>,
}

fn truthy(value: &Value) -> bool {
    value
        .as_bool()
        .unwrap_or_else(|| value.as_i64().is_some_and(|n| n != 0))
}

/// The slot rows of one endpoint from the facts' JSON column (`None` or `[]`: no row yet).
pub(super) fn parse(json: Option<&str>) -> Vec<Slot> {
    let Some(Value::Array(rows)) = json.and_then(|j| serde_json::from_str::<Value>(j).ok()) else {
        return Vec::new();
    };
    rows.iter()
        .filter_map(|row| {
            let row = row.as_array()?;
            Some(Slot {
                number: i32::try_from(row.first()?.as_i64()?).ok()?,
                held: row.get(1).is_some_and(truthy),
                probe: row.get(2).is_some_and(truthy),
                expires_at: row.get(3).and_then(Value::as_i64),
            })
        })
        .collect()
}

/// Counts `slots` at `now` (ms) for an endpoint of `max_in_flight`: a slot is held while its
/// expiry has not passed; the free ones are the numbers below `max_in_flight` not held
/// (after the limit was lowered, slots above it still count while held, never given out).
pub(super) fn tally(slots: &[Slot], max_in_flight: i32, now: i64) -> Tally {
    let mut tally = Tally::default();
    let mut held_numbers = Vec::new();
    for slot in slots {
        let Some(at) = slot.expires_at.filter(|at| slot.held && *at >= now) else {
            continue;
        };
        tally.held += 1;
        if slot.probe {
            tally.probes += 1;
        }
        tally.next_free = Some(tally.next_free.map_or(at, |n| n.min(at)));
        held_numbers.push(slot.number);
    }
    tally.free = (0..max_in_flight.max(1))
        .filter(|n| !held_numbers.contains(n))
        .collect();
    tally
}

/// A slot to write: given to `delivery` until `expires` (ms). The gate's decisions make one
/// per go with `number` unset (0); [`assign`] numbers them.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Taken {
    pub(super) endpoint_id: String,
    pub(super) number: i32,
    pub(super) workspace_id: String,
    pub(super) delivery_id: String,
    pub(super) retry: bool,
    pub(super) probe: bool,
    pub(super) expires: i64,
}

/// Gives each go of the batch, in order, the lowest free slot of its endpoint; a go whose
/// endpoint has none left (the rules never allow it) gets none and holds nothing.
pub(super) fn assign(gos: &[Taken], tallies: &mut HashMap<String, Tally>) -> Vec<Taken> {
    gos.iter()
        .filter_map(|go| {
            let free = &mut tallies.get_mut(&go.endpoint_id)?.free;
            (!free.is_empty()).then(|| Taken {
                number: free.remove(0),
                ..go.clone()
            })
        })
        .collect()
}

/// Frees the slots that the re-asking deliveries of a gate batch held (an earlier attempt of
/// theirs never released it) — PostgreSQL; `$1` endpoints, `$2` deliveries.
pub(super) const FREE_ASKING_PG: &str = "UPDATE hangar_webhook_slots SET delivery_id = NULL, \
         expires_at = NULL, retry = false, probe = false \
     WHERE endpoint_id = ANY($1) AND delivery_id = ANY($2)";

/// [`FREE_ASKING_PG`] on SQLite (JSON arrays); as the gate's first statement, it takes the
/// database's write lock even when it frees nothing.
pub(super) const FREE_ASKING_SQLITE: &str = "UPDATE hangar_webhook_slots SET delivery_id = NULL, \
         expires_at = NULL, retry = 0, probe = 0 \
     WHERE endpoint_id IN (SELECT value FROM json_each($1)) \
       AND delivery_id IN (SELECT value FROM json_each($2))";

/// The slots given out by a gate batch, made or taken over (PostgreSQL).
pub(super) const TAKE_PG: &str = "INSERT INTO hangar_webhook_slots AS s (endpoint_id, slot, \
         workspace_id, delivery_id, retry, probe, expires_at) \
     SELECT * FROM unnest($1::text[], $2::int4[], $3::text[], $4::text[], $5::bool[], \
         $6::bool[], $7::timestamptz[]) \
     ON CONFLICT (endpoint_id, slot) DO UPDATE SET delivery_id = excluded.delivery_id, \
         retry = excluded.retry, probe = excluded.probe, expires_at = excluded.expires_at";

/// [`TAKE_PG`] for one slot (SQLite; times in ms).
pub(super) const TAKE_SQLITE: &str = "INSERT INTO hangar_webhook_slots (endpoint_id, slot, \
         workspace_id, delivery_id, retry, probe, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
     ON CONFLICT (endpoint_id, slot) DO UPDATE SET delivery_id = excluded.delivery_id, \
         retry = excluded.retry, probe = excluded.probe, expires_at = excluded.expires_at";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slots_column_parses_in_either_dialect() {
        let pg = parse(Some(r#"[[0, true, false, 5000], [1, false, false, null]]"#));
        let sqlite = parse(Some(r#"[[0,1,0,5000],[1,0,0,null]]"#));
        assert_eq!(pg, sqlite);
        assert_eq!(
            pg[0],
            Slot {
                number: 0,
                held: true,
                probe: false,
                expires_at: Some(5000)
            }
        );
        assert!(parse(None).is_empty());
        assert!(parse(Some("[]")).is_empty());
    }

    #[test]
    fn held_slots_count_until_they_expire_and_the_lowest_free_ones_go_first() {
        let slot = |number, held, probe, expires_at| Slot {
            number,
            held,
            probe,
            expires_at,
        };
        let now = 10_000;
        let slots = [
            slot(0, true, false, Some(now + 5)),
            slot(1, true, true, Some(now + 2)),
            slot(2, true, false, Some(now - 1)), // expired: its holder died
            slot(3, false, false, None),
            slot(7, true, false, Some(now + 9)), // above a lowered limit: counts, never given
        ];
        let t = tally(&slots, 5, now);
        assert_eq!((t.held, t.probes, t.next_free), (3, 1, Some(now + 2)));
        assert_eq!(t.free, vec![2, 3, 4], "4 has no row yet");
        let mut tallies = HashMap::from([("ep_1".to_owned(), t)]);
        let go = |d: &str| Taken {
            endpoint_id: "ep_1".to_owned(),
            number: 0,
            workspace_id: "ws_1".to_owned(),
            delivery_id: d.to_owned(),
            retry: false,
            probe: false,
            expires: now + 90_000,
        };
        let taken = assign(&[go("d1"), go("d2"), go("d3"), go("d4")], &mut tallies);
        let numbers: Vec<i32> = taken.iter().map(|t| t.number).collect();
        assert_eq!(numbers, vec![2, 3, 4], "no fourth slot to give");
        assert_eq!(taken[0].delivery_id, "d1");
    }
}
