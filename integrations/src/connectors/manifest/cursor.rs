//! A stream's cursor against the engine's: the engine keeps a time per (integration, data
//! type) and asks for the changes since it. A date-time cursor is that time, floored to the
//! provider's granularity and written in its format; an incrementing cursor (a sequence or
//! change number `n`) is carried in the engine's time as `n` milliseconds after
//! [`anchor`] (3000-01-01), so the engine's ordering and its "nothing past the cursor" end
//! work unchanged, and a cursor that is a real time (where a full reconciliation leaves it:
//! the time it began) reads the stream from its first value. Records of an incrementing
//! stream carry that time too (so the provider's change wins last-write-wins). The
//! lookback is taken here, per stream: seconds before a date-time cursor, values before an
//! incrementing one.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use serde_json::Value;

use super::model::{CursorKind, CursorSpec, TimeFormat};
use super::select;

/// The largest incrementing value carried (within the engine's time range).
pub const MAX_INCREMENTING: i64 = 8_000_000_000_000_000;

/// Where incrementing values start in the engine's time: 3000-01-01T00:00:00Z.
pub fn anchor() -> DateTime<Utc> {
    DateTime::from_timestamp(32_503_680_000, 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The value sent in the cursor's parameter for a read of the changes since `since`.
pub fn param_value(spec: &CursorSpec, since: DateTime<Utc>) -> String {
    match spec.kind {
        CursorKind::Incrementing => {
            let value = if since >= anchor() {
                (since - anchor()).num_milliseconds()
            } else {
                0
            };
            let lookback = i64::try_from(spec.lookback).unwrap_or(i64::MAX);
            value.saturating_sub(lookback).max(0).to_string()
        }
        CursorKind::DateTime => {
            let lookback = i64::try_from(spec.lookback).unwrap_or(i64::MAX / 4_000);
            let start = since
                .checked_sub_signed(chrono::Duration::seconds(lookback.min(i64::MAX / 4_000)))
                .unwrap_or(since);
            let g = i64::try_from(spec.granularity_secs).unwrap_or(1).max(1);
            let floored = start.timestamp().div_euclid(g) * g;
            let at = Utc.timestamp_opt(floored, 0).single().unwrap_or(start);
            match spec.format {
                TimeFormat::Rfc3339 => at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                TimeFormat::Unix => at.timestamp().to_string(),
                TimeFormat::UnixMs => at.timestamp_millis().to_string(),
                TimeFormat::Date => at.format("%Y-%m-%d").to_string(),
            }
        }
    }
}

/// The engine's time of `record`: its cursor value (an incrementing one as milliseconds),
/// else its modification time at `modified_path`, else the epoch (a stream without either
/// is read whole every run, and last-write-wins keeps the platform's side).
pub fn record_time(
    spec: Option<&CursorSpec>,
    modified_path: Option<&str>,
    record: &Value,
) -> Result<DateTime<Utc>, String> {
    if let Some(spec) = spec {
        let value = select::get(record, &spec.field)
            .ok_or_else(|| format!("a record has no cursor field `{}`", spec.field))?;
        return match spec.kind {
            CursorKind::Incrementing => {
                let n = integer(value).ok_or_else(|| {
                    format!("cursor field `{}` is not a whole number", spec.field)
                })?;
                if !(0..=MAX_INCREMENTING).contains(&n) {
                    return Err(format!("cursor field `{}` is out of range", spec.field));
                }
                anchor()
                    .checked_add_signed(chrono::Duration::milliseconds(n))
                    .ok_or_else(|| "out of range".to_owned())
            }
            CursorKind::DateTime => time(value, spec.format)
                .ok_or_else(|| format!("cursor field `{}` is not a time", spec.field)),
        };
    }
    match modified_path {
        Some(path) => select::get(record, path)
            .and_then(|v| time(v, TimeFormat::Rfc3339))
            .ok_or_else(|| format!("modification time `{path}` is absent or not a time")),
        None => Ok(DateTime::UNIX_EPOCH),
    }
}

fn integer(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A time in `format`, or any of RFC 3339, a date, or epoch seconds (numbers as given).
pub fn time(v: &Value, format: TimeFormat) -> Option<DateTime<Utc>> {
    if let Some(n) = integer(v) {
        return match format {
            TimeFormat::UnixMs => DateTime::from_timestamp_millis(n),
            _ => DateTime::from_timestamp(n, 0),
        };
    }
    let s = v.as_str()?.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(kind: CursorKind, format: TimeFormat, granularity: u64, lookback: u64) -> CursorSpec {
        CursorSpec {
            kind,
            param: "since".into(),
            field: "v".into(),
            format,
            granularity_secs: granularity,
            lookback,
            retention_days: None,
        }
    }

    #[test]
    fn both_cursor_styles_round_trip_through_the_engines_time() {
        let at = DateTime::parse_from_rfc3339("2026-11-22T10:07:31Z")
            .unwrap()
            .with_timezone(&Utc);
        let s = spec(CursorKind::DateTime, TimeFormat::Rfc3339, 300, 60);
        assert_eq!(param_value(&s, at), "2026-11-22T10:05:00Z");
        let d = spec(CursorKind::DateTime, TimeFormat::Date, 1, 0);
        assert_eq!(param_value(&d, at), "2026-11-22");
        let u = spec(CursorKind::DateTime, TimeFormat::Unix, 1, 0);
        assert_eq!(param_value(&u, at), at.timestamp().to_string());
        let i = spec(CursorKind::Incrementing, TimeFormat::Rfc3339, 1, 5);
        let t = record_time(Some(&i), None, &json!({"v": "1042"})).unwrap();
        assert_eq!(param_value(&i, t), "1037");
        assert_eq!(
            param_value(&i, at),
            "0",
            "a real time: from the first value"
        );
        assert!(record_time(Some(&i), None, &json!({"v": -1})).is_err());
        assert!(record_time(Some(&s), None, &json!({"v": "soon"})).is_err());
        assert_eq!(
            record_time(None, None, &json!({})).unwrap(),
            DateTime::UNIX_EPOCH
        );
    }
}
