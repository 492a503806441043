//! What the consumer does with an entry it cannot store: which database errors are the
//! entry's own fault (dead-letter it alone) and what its dead letter keeps.

use hangar_workers::store::StoreError;
use hangar_workers::wire::{self, Rejection};

/// A database error caused by an entry's data (it would fail every retry), as opposed to
/// the database being unreachable or busy.
pub(super) fn refuses_data(error: &StoreError) -> bool {
    let StoreError::Database(sqlx::Error::Database(db)) = error else {
        return false;
    };
    let code = db.code().unwrap_or_default();
    if db
        .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
        .is_some()
    {
        // Classes 22 data exception, 23 integrity constraint violation, 54 program limit
        // exceeded (e.g. an index row over the page size).
        ["22", "23", "54"]
            .iter()
            .any(|class| code.starts_with(class))
    } else {
        // SQLite: the primary result code (the low byte of an extended one): 18 too big,
        // 19 constraint (also a trigger's RAISE), 20 datatype mismatch.
        code.parse::<i32>()
            .is_ok_and(|n| matches!(n & 0xff, 18..=20))
    }
}

/// The `msg` a dead letter keeps for an entry refused with `rejection`: the original, except
/// that a personal-data refusal keeps a copy with the personal values redacted (the stream
/// must not keep what the entry was refused for).
pub(super) fn dead_msg(msg: String, rejection: &Rejection) -> String {
    match rejection {
        Rejection::PersonalData { .. } => {
            wire::redact_personal_data(&msg).unwrap_or_else(|| wire::REDACTED.to_owned())
        }
        _ => msg,
    }
}
