//! The org's daily API budget as Salesforce reports it on every answer
//! (`Sforce-Limit-Info: api-usage=18/15000`), kept per org by the connector: it replaces the
//! assumed daily budget ([`DEFAULT_DAILY_REQUESTS`]) in the run's rate budget, and once the
//! usage reaches the limit the connector answers "throttled" itself instead of drawing a
//! 403 `REQUEST_LIMIT_EXCEEDED`. Other processes and other apps share the org's budget: the
//! numbers are the org's, seen at the last answer of this process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

/// The daily budget assumed before Salesforce reported one (Enterprise edition's base).
pub const DEFAULT_DAILY_REQUESTS: i64 = 15_000;

/// The last usage seen of one org.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    pub used: i64,
    pub max: i64,
    pub seen_at: DateTime<Utc>,
}

/// `api-usage=N/M` out of a `Sforce-Limit-Info` value (other entries, e.g.
/// `per-app-api-usage=…`, are ignored).
pub fn parse(header: &str) -> Option<(i64, i64)> {
    header.split(',').find_map(|part| {
        let (name, value) = part.trim().split_once('=')?;
        if name.trim() != "api-usage" {
            return None;
        }
        let (used, max) = value.trim().split_once('/')?;
        let used = used.trim().parse::<i64>().ok().filter(|u| *u >= 0)?;
        let max = max.trim().parse::<i64>().ok().filter(|m| *m > 0)?;
        Some((used, max))
    })
}

/// The usage of each org (by instance URL) this process saw last.
#[derive(Clone, Debug, Default)]
pub struct Usages(Arc<Mutex<HashMap<String, Usage>>>);

impl Usages {
    /// Records a `Sforce-Limit-Info` seen on an answer of `org`.
    pub fn record(&self, org: &str, header: &str) {
        if let Some((used, max)) = parse(header) {
            let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
            map.insert(
                org.to_owned(),
                Usage {
                    used,
                    max,
                    seen_at: Utc::now(),
                },
            );
        }
    }

    /// The last usage seen of `org`, if it is from the last 24 hours.
    pub fn of(&self, org: &str) -> Option<Usage> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(org)
            .copied()
            .filter(|u| u.seen_at > Utc::now() - chrono::Duration::hours(24))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_usage_entry_is_read_and_others_ignored() {
        assert_eq!(parse("api-usage=18/15000"), Some((18, 15000)));
        assert_eq!(
            parse("per-app-api-usage=17/250(appName=sample-app), api-usage=25/5000"),
            Some((25, 5000))
        );
        assert_eq!(parse("api-usage=x/100"), None);
        assert_eq!(parse("api-usage=1/0"), None);
        let usages = Usages::default();
        usages.record("https://org", "api-usage=99/100");
        assert_eq!(
            usages.of("https://org").map(|u| (u.used, u.max)),
            Some((99, 100))
        );
        assert_eq!(usages.of("https://other"), None);
    }
}
