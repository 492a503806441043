//! The alert dispatcher: turns alert rows into delivery jobs. [`Dispatcher::run_once`] reads
//! the enabled channels and the recent alerts, decides with the pure [`plan`] which notices
//! are due, and for each one inserts its `hangar_alert_notices` row and its delivery job in
//! one transaction; the notice's primary key (alert, channel, event) makes several
//! dispatchers in several processes send each notice once, and the job's idempotency key
//! (`alert:<id>:<channel>:<event>`) says the same on the job side. [`Dispatcher::run`] loops
//! around it on a tick until shutdown (logging a failing pass once, and its recovery); its
//! "now" comes from a [`Clock`], which tests move by hand.
//!
//! Rules: `opened` once per incident and channel (a repeat raising `occurrences` is the same
//! incident); `reminder:<n>` when `n × reminder_every_ms` has passed since `opened` while the
//! alert is open and unacknowledged (only the latest due reminder, never a backlog);
//! `resolved` once the alert's `resolved_at` is set, for channels that got `opened`. A
//! channel hears about alerts of its workspace (or all, when it has none) at or above its
//! `min_severity`, raised after it was added. Alerts about the delivery jobs themselves are
//! never notified.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::channels;
use super::model::{Channel, NoticeEvent};
use super::{AlertError, KINDS, NoticeArgs};
use crate::clock::Clock;
use crate::job::NewJob;
use crate::routes::Routes;
use crate::store::Store;

/// How far back the dispatcher looks for alerts to open or resolve.
const LOOKBACK_MS: i64 = 24 * 3_600_000;

pub use crate::store::{AlertFacts, Sent};

/// The notices due now.
pub fn plan(
    channels: &[Channel],
    alerts: &[AlertFacts],
    sent: &Sent,
    now_ms: i64,
) -> Vec<NoticeArgs> {
    let mut due = Vec::new();
    for channel in channels.iter().filter(|c| c.enabled) {
        let min = channel.min_severity;
        for alert in alerts {
            let in_scope =
                channel.workspace_id.is_none() || channel.workspace_id == alert.workspace_id;
            if !in_scope
                || alert.severity < min
                || alert.created_ms < channel.created_at.timestamp_millis()
            {
                continue;
            }
            let notice = |event: NoticeEvent| NoticeArgs {
                alert_id: alert.id,
                channel_id: channel.id.clone(),
                event: event.to_string(),
            };
            let was_sent = |event: NoticeEvent| {
                sent.get(&(alert.id, channel.id.clone(), event.to_string()))
                    .copied()
            };
            let Some(opened_ms) = was_sent(NoticeEvent::Opened) else {
                // An incident that opened and cleared between two ticks is not announced.
                if alert.resolved_ms.is_none() {
                    due.push(notice(NoticeEvent::Opened));
                }
                continue;
            };
            if alert.resolved_ms.is_some() {
                if was_sent(NoticeEvent::Resolved).is_none() {
                    due.push(notice(NoticeEvent::Resolved));
                }
                continue;
            }
            if alert.acked_ms.is_some() {
                continue;
            }
            if let Some(every) = channel.reminder_every_ms.filter(|ms| *ms > 0) {
                let n = (now_ms - opened_ms) / every;
                let event = NoticeEvent::Reminder(n);
                if n >= 1 && was_sent(event).is_none() {
                    due.push(notice(event));
                }
            }
        }
    }
    due
}

/// Counts of one pass.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DispatchCounts {
    /// Notices (and delivery jobs) created.
    pub enqueued: u64,
}

/// The dispatcher of one process.
#[derive(Clone)]
pub struct Dispatcher {
    store: Store,
    /// Queue and attempt budget per delivery kind, from the pool that runs it.
    routes: Routes,
    tick: Duration,
    clock: Clock,
}

impl Dispatcher {
    /// A dispatcher routing each delivery kind as `routes` says (to the pool that runs it),
    /// checking every `tick`.
    pub fn new(store: Store, routes: Routes, tick: Duration) -> Dispatcher {
        Dispatcher {
            store,
            routes,
            tick,
            clock: Clock::system(),
        }
    }

    /// Reads "now" (reminder times, notice times) from `clock` instead of the system's.
    pub fn with_clock(mut self, clock: Clock) -> Dispatcher {
        self.clock = clock;
        self
    }

    /// One pass: enqueue every notice due now.
    pub async fn run_once(&self) -> Result<DispatchCounts, AlertError> {
        let channels: Vec<Channel> = channels::list(&self.store)
            .await?
            .into_iter()
            .filter(|c| c.enabled)
            .collect();
        if channels.is_empty() {
            return Ok(DispatchCounts::default());
        }
        let now_ms = self.clock.now().timestamp_millis();
        let alerts = self.alerts(now_ms).await?;
        let Some(min_id) = alerts.iter().map(|a| a.id).min() else {
            return Ok(DispatchCounts::default());
        };
        let sent = self.sent(min_id).await?;
        let due = plan(&channels, &alerts, &sent, now_ms);
        let kinds: HashMap<&str, &str> = channels
            .iter()
            .map(|c| (c.id.as_str(), c.kind.job_kind()))
            .collect();
        let mut counts = DispatchCounts::default();
        let mut queues = HashSet::new();
        for notice in due {
            let kind = kinds
                .get(notice.channel_id.as_str())
                .copied()
                .unwrap_or("alert_webhook");
            // The engine's own job: never refused (see `Routes::route_or_default`).
            let route = self.routes.route_or_default(kind, None);
            let queue = route.queue;
            let workspace = alerts
                .iter()
                .find(|a| a.id == notice.alert_id)
                .and_then(|a| a.workspace_id.clone());
            let mut job = NewJob::new(kind, serde_json::to_value(&notice).unwrap_or_default());
            job.queue = queue.clone();
            job.max_attempts = route.max_attempts;
            job.workspace_id = workspace;
            job.idempotency_key = Some(notice.key());
            if self.insert(&notice, &job, now_ms).await? {
                counts.enqueued += 1;
                queues.insert(queue);
                tracing::info!(alert = notice.alert_id, channel = %notice.channel_id, event = %notice.event, "alert notice queued");
            }
        }
        for queue in queues {
            self.store.wakeups().wake(&queue);
        }
        Ok(counts)
    }

    /// Runs passes every tick until `shutdown`; a failing pass is retried, logged when it
    /// starts failing and when it works again.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut failing = false;
        loop {
            match self.run_once().await {
                Ok(_) if failing => {
                    failing = false;
                    tracing::info!("alert dispatch works again");
                }
                Ok(_) => {}
                Err(error) if !failing => {
                    failing = true;
                    tracing::warn!(%error, "alert dispatch failed; retrying");
                }
                Err(_) => {}
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(self.tick) => {}
            }
        }
    }

    async fn alerts(&self, now_ms: i64) -> Result<Vec<AlertFacts>, AlertError> {
        Ok(self
            .store
            .recent_alerts(now_ms - LOOKBACK_MS, &KINDS)
            .await?)
    }

    async fn sent(&self, min_alert_id: i64) -> Result<Sent, AlertError> {
        Ok(self.store.sent_notices(min_alert_id).await?)
    }

    /// Inserts the notice row and its job in one transaction; false when another
    /// dispatcher got there first.
    async fn insert(
        &self,
        notice: &NoticeArgs,
        job: &NewJob,
        now_ms: i64,
    ) -> Result<bool, AlertError> {
        let key = (
            notice.alert_id,
            notice.channel_id.as_str(),
            notice.event.as_str(),
        );
        Ok(self.store.insert_notice(key, job, now_ms).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::ChannelKind;
    use crate::alerts::model::Severity;

    fn channel(reminder: Option<i64>) -> Channel {
        Channel {
            id: "ach_1".into(),
            workspace_id: Some("ws_1".into()),
            kind: ChannelKind::Slack,
            summary: "h".into(),
            min_severity: Severity::Warning,
            reminder_every_ms: reminder,
            enabled: true,
            disabled_reason: None,
            created_at: chrono::DateTime::from_timestamp_millis(0).unwrap(),
        }
    }

    fn alert() -> AlertFacts {
        AlertFacts {
            id: 7,
            workspace_id: Some("ws_1".into()),
            severity: Severity::Warning,
            created_ms: 1_000,
            acked_ms: None,
            resolved_ms: None,
        }
    }

    fn events(due: &[NoticeArgs]) -> Vec<&str> {
        due.iter().map(|n| n.event.as_str()).collect()
    }

    #[test]
    fn opened_once_then_reminders_then_resolved() {
        let c = [channel(Some(10_000))];
        let mut sent = Sent::new();
        assert_eq!(events(&plan(&c, &[alert()], &sent, 2_000)), ["opened"]);
        sent.insert((7, "ach_1".into(), "opened".into()), 2_000);
        assert!(plan(&c, &[alert()], &sent, 11_000).is_empty());
        assert_eq!(events(&plan(&c, &[alert()], &sent, 12_000)), ["reminder:1"]);
        // Only the latest reminder, not a backlog.
        assert_eq!(events(&plan(&c, &[alert()], &sent, 42_000)), ["reminder:4"]);
        let acked = AlertFacts {
            acked_ms: Some(3_000),
            ..alert()
        };
        assert!(plan(&c, &[acked], &sent, 42_000).is_empty());
        let resolved = AlertFacts {
            resolved_ms: Some(5_000),
            ..alert()
        };
        assert_eq!(
            events(&plan(&c, std::slice::from_ref(&resolved), &sent, 42_000)),
            ["resolved"]
        );
        sent.insert((7, "ach_1".into(), "resolved".into()), 43_000);
        assert!(plan(&c, &[resolved], &sent, 50_000).is_empty());
    }

    #[test]
    fn scope_severity_and_age() {
        let mut c = channel(None);
        c.workspace_id = Some("ws_2".into());
        assert!(plan(&[c.clone()], &[alert()], &Sent::new(), 2_000).is_empty());
        c.workspace_id = None;
        c.min_severity = Severity::Critical;
        assert!(plan(&[c.clone()], &[alert()], &Sent::new(), 2_000).is_empty());
        c.min_severity = Severity::Warning;
        c.created_at = chrono::DateTime::from_timestamp_millis(5_000).unwrap();
        assert!(plan(&[c.clone()], &[alert()], &Sent::new(), 6_000).is_empty());
        c.enabled = false;
        c.created_at = chrono::DateTime::from_timestamp_millis(0).unwrap();
        assert!(plan(&[c], &[alert()], &Sent::new(), 6_000).is_empty());
    }
}
