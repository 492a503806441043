//! The conflict rules, the same for every connector, as one pure function: given a record
//! read from a provider and what Hangar holds for it, what happens. No I/O here; the store
//! calls [`decide`] inside the transaction that applies the page, on rows it has locked.
//!
//! | what Hangar holds | ordinary | financial | safety |
//! |---|---|---|---|
//! | nothing | created | created | created |
//! | the same payload (hash) | skipped | skipped | skipped |
//! | an open conflict with this payload | skipped | skipped | — |
//! | changed by the provider only | updated | updated | appended beside it |
//! | changed on both sides since the last sync | last write wins | conflict (held) | appended |
//! | deleted at the provider | left for the next full scan | conflict (review) | appended |

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::{InboundRecord, RecordClass};

/// What Hangar holds for a record: its mapping row and any open conflict.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Held {
    /// The hash of the last applied (or last seen, for safety records) payload.
    pub applied_hash: String,
    /// When the last inbound change was applied.
    pub last_synced_at: Option<DateTime<Utc>>,
    /// When the platform last changed its side ("ours"), if it did.
    pub ours_modified_at: Option<DateTime<Utc>>,
    /// The hash of the payload held in an open conflict.
    pub open_conflict_hash: Option<String>,
}

/// Why a financial record is held for review.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConflictReason {
    /// Changed at the provider and by the platform since the last sync.
    ChangedOnBothSides,
    /// An outbound write carried a concurrency token the provider no longer has.
    StaleConcurrencyToken,
    /// The provider deleted a financial record.
    RemovedAtSource,
}

impl ConflictReason {
    /// The stored and shown name.
    pub fn as_str(self) -> &'static str {
        match self {
            ConflictReason::ChangedOnBothSides => "changed_on_both_sides",
            ConflictReason::StaleConcurrencyToken => "stale_concurrency_token",
            ConflictReason::RemovedAtSource => "removed_at_source",
        }
    }
}

/// What to do with one inbound record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// New: a mapping is created and the change handed to the main app.
    Create,
    /// Changed at the provider: the mapping's payload is replaced, the change handed on.
    Update,
    /// A safety record changed (or was deleted) externally: the change is recorded beside
    /// the held record, which is never overwritten.
    Append,
    /// Held for an admin (financial records only); not applied.
    Conflict(ConflictReason),
    /// Nothing to do: unchanged, already held in a conflict, older than the platform's side,
    /// or a non-financial delete (removed only after a complete full scan).
    Skip(SkipReason),
}

/// Why a record was skipped (for the run's log and the counters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SkipReason {
    /// Same payload as last applied (a re-read, or the echo of Hangar's own write).
    Unchanged,
    /// The same payload already waits in an open conflict.
    AlreadyInConflict,
    /// Last-write-wins kept the platform's newer side.
    OursIsNewer,
    /// Deleted at the provider: removals happen only after a complete full scan.
    DeleteDeferred,
    /// Deleted at the provider and never seen by Hangar.
    UnknownDelete,
}

/// Decides what happens to `record` of class `class`, given what Hangar holds for it.
pub fn decide(class: RecordClass, record: &InboundRecord, held: Option<&Held>) -> Decision {
    decide_hashed(class, record, &payload_hash(&record.payload), held)
}

/// [`decide`] for a record whose payload's [`payload_hash`] is `hash` (the caller stores the
/// hash too: computed once).
pub fn decide_hashed(
    class: RecordClass,
    record: &InboundRecord,
    hash: &str,
    held: Option<&Held>,
) -> Decision {
    let Some(held) = held else {
        return if record.deleted {
            Decision::Skip(SkipReason::UnknownDelete)
        } else {
            Decision::Create
        };
    };
    if held.open_conflict_hash.as_deref() == Some(hash) {
        return Decision::Skip(SkipReason::AlreadyInConflict);
    }
    if held.applied_hash == hash && held.open_conflict_hash.is_none() {
        return Decision::Skip(SkipReason::Unchanged);
    }
    let ours_changed_since_sync = match (held.ours_modified_at, held.last_synced_at) {
        (Some(ours), Some(synced)) => ours > synced,
        (Some(_), None) => true,
        _ => false,
    };
    match class {
        RecordClass::Safety => Decision::Append,
        RecordClass::Financial if record.deleted => {
            Decision::Conflict(ConflictReason::RemovedAtSource)
        }
        RecordClass::Financial if ours_changed_since_sync || held.open_conflict_hash.is_some() => {
            Decision::Conflict(ConflictReason::ChangedOnBothSides)
        }
        RecordClass::Financial => Decision::Update,
        RecordClass::Ordinary if record.deleted => Decision::Skip(SkipReason::DeleteDeferred),
        RecordClass::Ordinary => match held.ours_modified_at {
            Some(ours) if ours > record.modified_at => Decision::Skip(SkipReason::OursIsNewer),
            _ => Decision::Update,
        },
    }
}

/// The hash of a payload: SHA-256 of its canonical JSON (object keys sorted at every level),
/// lowercase hex. The same record read twice hashes the same whatever the key order.
pub fn payload_hash(payload: &serde_json::Value) -> String {
    let mut text = String::new();
    canonical(payload, &mut text);
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn canonical(value: &serde_json::Value, out: &mut String) {
    match value {
        serde_json::Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::Value::String(key.clone()).to_string());
                out.push(':');
                canonical(&map[key], out);
            }
            out.push('}');
        }
        serde_json::Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn record(payload: serde_json::Value, deleted: bool) -> InboundRecord {
        InboundRecord {
            object_type: "Payment".into(),
            external_id: "1".into(),
            modified_at: Utc.with_ymd_and_hms(2026, 11, 20, 10, 0, 0).unwrap(),
            payload,
            concurrency_token: Some("0".into()),
            deleted,
        }
    }

    fn held(payload: &serde_json::Value) -> Held {
        Held {
            applied_hash: payload_hash(payload),
            last_synced_at: Some(Utc.with_ymd_and_hms(2026, 11, 20, 9, 0, 0).unwrap()),
            ours_modified_at: None,
            open_conflict_hash: None,
        }
    }

    #[test]
    fn hash_ignores_key_order_and_sees_values() {
        assert_eq!(
            payload_hash(&json!({"a": 1, "b": {"c": [1, 2], "d": null}})),
            payload_hash(&json!({"b": {"d": null, "c": [1, 2]}, "a": 1}))
        );
        assert_ne!(
            payload_hash(&json!({"a": 1})),
            payload_hash(&json!({"a": 2}))
        );
        assert_eq!(payload_hash(&json!({})).len(), 64);
    }

    #[test]
    fn new_unchanged_and_changed_records() {
        let old = json!({"TotalAmt": 10});
        let new = json!({"TotalAmt": 12});
        for class in [RecordClass::Ordinary, RecordClass::Financial] {
            assert_eq!(
                decide(class, &record(old.clone(), false), None),
                Decision::Create
            );
            assert_eq!(
                decide(class, &record(old.clone(), false), Some(&held(&old))),
                Decision::Skip(SkipReason::Unchanged)
            );
            assert_eq!(
                decide(class, &record(new.clone(), false), Some(&held(&old))),
                Decision::Update
            );
        }
        assert_eq!(
            decide(
                RecordClass::Safety,
                &record(new.clone(), false),
                Some(&held(&old))
            ),
            Decision::Append
        );
    }

    #[test]
    fn both_sides_changed() {
        let old = json!({"TotalAmt": 10});
        let new = json!({"TotalAmt": 12});
        let mut ours = held(&old);
        ours.ours_modified_at = Some(Utc.with_ymd_and_hms(2026, 11, 20, 11, 0, 0).unwrap());
        assert_eq!(
            decide(
                RecordClass::Financial,
                &record(new.clone(), false),
                Some(&ours)
            ),
            Decision::Conflict(ConflictReason::ChangedOnBothSides)
        );
        // Ordinary data: the later write wins (ours at 11:00 beats theirs at 10:00).
        assert_eq!(
            decide(
                RecordClass::Ordinary,
                &record(new.clone(), false),
                Some(&ours)
            ),
            Decision::Skip(SkipReason::OursIsNewer)
        );
        ours.ours_modified_at = Some(Utc.with_ymd_and_hms(2026, 11, 20, 9, 30, 0).unwrap());
        assert_eq!(
            decide(
                RecordClass::Ordinary,
                &record(new.clone(), false),
                Some(&ours)
            ),
            Decision::Update
        );
        // An open conflict holding the same payload is not raised again; a newer one is.
        let mut open = held(&old);
        open.open_conflict_hash = Some(payload_hash(&new));
        assert_eq!(
            decide(
                RecordClass::Financial,
                &record(new.clone(), false),
                Some(&open)
            ),
            Decision::Skip(SkipReason::AlreadyInConflict)
        );
        assert_eq!(
            decide(
                RecordClass::Financial,
                &record(json!({"TotalAmt": 13}), false),
                Some(&open)
            ),
            Decision::Conflict(ConflictReason::ChangedOnBothSides)
        );
    }

    #[test]
    fn deletes() {
        let old = json!({"TotalAmt": 10});
        let gone = json!({"Id": "1", "status": "Deleted"});
        assert_eq!(
            decide(RecordClass::Financial, &record(gone.clone(), true), None),
            Decision::Skip(SkipReason::UnknownDelete)
        );
        assert_eq!(
            decide(
                RecordClass::Financial,
                &record(gone.clone(), true),
                Some(&held(&old))
            ),
            Decision::Conflict(ConflictReason::RemovedAtSource)
        );
        assert_eq!(
            decide(
                RecordClass::Safety,
                &record(gone.clone(), true),
                Some(&held(&old))
            ),
            Decision::Append
        );
        assert_eq!(
            decide(
                RecordClass::Ordinary,
                &record(gone, true),
                Some(&held(&old))
            ),
            Decision::Skip(SkipReason::DeleteDeferred)
        );
    }
}
