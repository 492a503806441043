//! One inbound run, page by page. Where it starts:
//!
//! - a full reconciliation under way (a scan position is stored): it goes on from there;
//! - no cursor yet, or a cursor older than the provider's changes window (QuickBooks CDC:
//!   30 days): a full reconciliation starts (said in the run's log);
//! - otherwise the changes feed from the cursor's time minus the connector's lookback.
//!
//! Each page is applied in one transaction with its records, mappings and the position's
//! advance; its changes are published after the commit. While a page is applied the next
//! one is already read from the provider (its start is known from the page in hand), so the
//! provider's time and the database's overlap; a page that could not be read stops the run
//! after the one before it is applied. In the changes feed the next page
//! starts at the last applied record's time (inclusive: records tied at the boundary are
//! re-read and skipped as unchanged) and the run ends when a page brings nothing past the
//! cursor. A complete scan hands over to the changes feed from the time it began. A
//! provider with a feed of deletions (Salesforce) has it read after the changes feed, from
//! the same start, and each deletion removed at once ([`removals`]).
//!
//! A data type whose records arrive by provider push only (Avinode's RFQs) is read by
//! [`run_push`] in the run the push started, and by no other run.

use std::time::{Duration, Instant};

use chrono::Utc;

use super::budget::{Calls, Stop};
use super::changes::Changes;
use super::connector::{Connector, Page, ScanPage};
use super::{Cursor, InboundRecord, Position, RecordClass, Scan};
use crate::store::SyncStore;
use crate::store::sync_pages::{PageApplied, PageTarget};
use crate::store::sync_runs::Counts;
use crate::store::sync_scan::ScanEnd;
use hangar_workers::error_class::ErrorClass;
use hangar_workers::kinds::JobFailure;

/// What an inbound run did (the run row is finished from it).
#[derive(Debug, Default)]
pub struct Outcome {
    pub counts: Counts,
    pub log: Vec<String>,
    pub cursor_after: Option<Position>,
    /// Where an inbound run's time went (logged with the run's end).
    pub timings: Timings,
    /// A full reconciliation found more than [`MAX_REMOVAL_SHARE`] gone and removed nothing
    /// (the run stops; the handler raises the alert).
    pub removals_held: Option<HeldRemovals>,
    /// A full reconciliation completed, its removals within the limit.
    pub reconciled: bool,
}

/// How many records a held full reconciliation found gone, of how many mapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeldRemovals {
    /// Records gone at the source.
    pub vanished: i64,
    /// Records mapped before the scan.
    pub total: i64,
}

/// The time an inbound run spent in each step, over all its pages.
#[derive(Clone, Copy, Debug, Default)]
pub struct Timings {
    /// Calling the provider (with the waits for the budget's slots) and parsing its pages.
    pub fetch: std::time::Duration,
    /// Applying the pages in their transactions.
    pub apply: std::time::Duration,
    /// Handing the changes to the `{prefix}:changes` stream.
    pub publish: std::time::Duration,
}

/// Runs `data_type` of `connector` for `target`'s run until the provider has nothing more,
/// or a [`Stop`]. The counters and log so far are in `outcome` either way.
pub async fn run(
    connector: &dyn Connector,
    object_types: &[&'static str],
    target: &PageTarget,
    calls: &mut Calls,
    changes: &Changes,
    outcome: &mut Outcome,
) -> Result<(), Stop> {
    let store: SyncStore = calls.store.clone();
    let mut position = store
        .position(&target.integration_id, &target.data_type)
        .await?;
    // Milliseconds: what both backends store, so the cursor reads back as it was written.
    let now =
        chrono::DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).unwrap_or_default();
    if position.scan.is_none() {
        let window = connector.changes_window_for(&calls.integration, &target.data_type);
        let too_old = position
            .cursor
            .as_ref()
            .is_some_and(|c| c.at < now - window);
        if position.cursor.is_none() || too_old {
            let why = if too_old {
                format!(
                    "cursor older than the provider's {}-day changes window",
                    window.num_days()
                )
            } else {
                "no cursor yet".to_owned()
            };
            outcome.log.push(format!("full reconciliation: {why}"));
            position.scan = Some(Scan {
                position: String::new(),
                started_at: now,
                id: target.run_id.clone(),
            });
        }
    } else {
        outcome
            .log
            .push("full reconciliation: resuming where it stopped".to_owned());
    }
    let class = |object_type: &str| connector.record_class(object_type);

    // A full reconciliation, page by page (the next page is read while this one is
    // applied), then its removals.
    let mut read_ahead: Option<Result<ScanPage, Stop>> = None;
    while let Some(scan) = position.scan.clone() {
        if scan.position == SCAN_COMPLETE {
            position = finish_scan(
                target,
                &store,
                &scan,
                object_types,
                connector,
                changes,
                outcome,
            )
            .await?;
            continue;
        }
        let page = match read_ahead.take() {
            Some(page) => page?,
            None => {
                let at = (!scan.position.is_empty()).then(|| scan.position.clone());
                let (page, took) = read_scan(calls, connector, target, at).await;
                outcome.timings.fetch += took;
                page?
            }
        };
        let records = classify(page.records, &class);
        let next_position = page.next.unwrap_or_else(|| SCAN_COMPLETE.to_owned());
        let next = Position {
            scan: Some(Scan {
                position: next_position.clone(),
                ..scan.clone()
            }),
            cursor: position.cursor.clone(),
        };
        let applying = apply(&store, changes, target, &records, &next, Some(&scan.id));
        let applied = if next_position == SCAN_COMPLETE {
            applying.await?
        } else {
            let reading = read_scan(calls, connector, target, Some(next_position));
            let (applied, (ahead, took)) = tokio::join!(applying, reading);
            outcome.timings.fetch += took;
            read_ahead = Some(ahead);
            applied?
        };
        outcome.add(applied);
        position = next;
        outcome.cursor_after = Some(position.clone());
    }

    // The changes feed (the next page is read while this one is applied).
    let Some(start) = position.cursor.clone() else {
        return Ok(());
    };
    let mut since = start.at - connector.lookback();
    let feed_start = since;
    // The last record read (the floor the next page must pass); the stored cursor never
    // moves back (the lookback re-reads records before it).
    let mut floor = Cursor {
        at: since,
        id: String::new(),
    };
    let mut cursor = start;
    let (page, took) = read_changes(calls, connector, target, since).await;
    outcome.timings.fetch += took;
    let mut page = page?;
    loop {
        let last = page
            .records
            .iter()
            .map(|r| Cursor {
                at: r.modified_at,
                id: r.external_id.clone(),
            })
            .max_by_key(order);
        let advanced = last.filter(|l| order(l) > order(&floor));
        if let Some(a) = &advanced
            && order(a) > order(&cursor)
        {
            cursor = a.clone();
        }
        let next = Position {
            cursor: Some(cursor.clone()),
            scan: None,
        };
        let records = classify(std::mem::take(&mut page.records), &class);
        let applying = apply(&store, changes, target, &records, &next, None);
        // Nothing past the cursor: the feed is drained (a page tied entirely at the cursor's
        // time cannot be read past either; it ends here and is re-read next run).
        let Some(a) = advanced else {
            outcome.add(applying.await?);
            outcome.cursor_after = Some(next);
            break;
        };
        since = a.at;
        floor = a;
        let reading = read_changes(calls, connector, target, since);
        let (applied, (ahead, took)) = tokio::join!(applying, reading);
        outcome.timings.fetch += took;
        outcome.add(applied?);
        outcome.cursor_after = Some(next);
        // A page that could not be read stops the run after the one before it is applied.
        page = ahead?;
    }
    if connector.removals_feed(&target.data_type) {
        removals(connector, target, calls, changes, outcome, feed_start).await?;
    }
    Ok(())
}

/// The deletions the provider reports since `since` (the changes feed's start), removed at
/// once ([`SyncStore::apply_removals`]); a provider that no longer holds deletions that old
/// leaves them to the next full reconciliation (said in the log).
async fn removals(
    connector: &dyn Connector,
    target: &PageTarget,
    calls: &mut Calls,
    changes: &Changes,
    outcome: &mut Outcome,
    since: chrono::DateTime<Utc>,
) -> Result<(), Stop> {
    let store = calls.store.clone();
    let removed = calls
        .call(|cx| connector.removed_since(cx, target.data_type.clone(), since))
        .await?;
    let Some(removed) = removed else {
        outcome.log.push(format!(
            "deletions since {} are no longer reported by the provider: the next full reconciliation finds them",
            since.to_rfc3339()
        ));
        return Ok(());
    };
    if removed.is_empty() {
        return Ok(());
    }
    let class = |object_type: &str| connector.record_class(object_type);
    let records = classify(removed, &class);
    let applied = store.apply_removals(target, &records).await?;
    outcome.log.push(format!(
        "{} deletions reported by the provider: {} removed, {} held for review, {} appended, {} not held",
        records.len(),
        applied.counts.removed,
        applied.counts.conflicted,
        applied.counts.updated,
        applied.counts.skipped
    ));
    outcome.counts.add(applied.counts);
    changes.publish(&store, &applied.changes).await;
    Ok(())
}

/// A run started by a provider push, for a data type whose records arrive by push only
/// ([`Connector::reads_pushes`]): the records `push` names, read from the provider and
/// applied as one page; the position does not move (there is no feed to advance).
pub async fn run_push(
    connector: &dyn Connector,
    target: &PageTarget,
    calls: &mut Calls,
    changes: &Changes,
    outcome: &mut Outcome,
    push: serde_json::Value,
) -> Result<(), Stop> {
    let store = calls.store.clone();
    let position = store
        .position(&target.integration_id, &target.data_type)
        .await?;
    let page = calls
        .call(|cx| connector.records_of_push(cx, target.data_type.clone(), push.clone()))
        .await?;
    let class = |object_type: &str| connector.record_class(object_type);
    let records = classify(page.records, &class);
    outcome.log.push(format!(
        "{} records named by the provider's push",
        records.len()
    ));
    let applied = store.apply_page(target, &records, &position, None).await?;
    outcome.counts.add(applied.counts);
    changes.publish(&store, &applied.changes).await;
    Ok(())
}

/// A page applied, with the time it took to apply and to publish.
struct Applied {
    page: PageApplied,
    apply: Duration,
    publish: Duration,
}

impl Outcome {
    fn add(&mut self, applied: Applied) {
        self.counts.add(applied.page.counts);
        self.timings.apply += applied.apply;
        self.timings.publish += applied.publish;
    }
}

/// Applies a page in its transaction, then hands its changes on.
async fn apply(
    store: &SyncStore,
    changes: &Changes,
    target: &PageTarget,
    records: &[(InboundRecord, RecordClass)],
    next: &Position,
    scan_id: Option<&str>,
) -> Result<Applied, Stop> {
    let started = Instant::now();
    let page = store.apply_page(target, records, next, scan_id).await?;
    let apply = started.elapsed();
    let started = Instant::now();
    changes.publish(store, &page.changes).await;
    Ok(Applied {
        page,
        apply,
        publish: started.elapsed(),
    })
}

/// Reads one page of the changes feed from `since`, and how long it took.
async fn read_changes(
    calls: &mut Calls,
    connector: &dyn Connector,
    target: &PageTarget,
    since: chrono::DateTime<Utc>,
) -> (Result<Page, Stop>, Duration) {
    let started = Instant::now();
    let page = calls
        .call(|cx| connector.changes_since(cx, target.data_type.clone(), since))
        .await;
    (page, started.elapsed())
}

/// Reads one page of a full scan at `at` (`None`: the first), and how long it took.
async fn read_scan(
    calls: &mut Calls,
    connector: &dyn Connector,
    target: &PageTarget,
    at: Option<String>,
) -> (Result<ScanPage, Stop>, Duration) {
    let started = Instant::now();
    let page = calls
        .call(|cx| connector.scan(cx, target.data_type.clone(), at.clone()))
        .await;
    (page, started.elapsed())
}

/// The most of the mapped records one full reconciliation may find gone (20 %): more, and
/// the run stops with an alert instead of removing anything.
pub const MAX_REMOVAL_SHARE: f64 = 0.2;

/// The scan position of a scan whose pages are all applied (its removals are next).
const SCAN_COMPLETE: &str = "complete";

/// The removals of a complete scan, then the changes feed from the time the scan began.
async fn finish_scan(
    target: &PageTarget,
    store: &SyncStore,
    scan: &Scan,
    object_types: &[&'static str],
    connector: &dyn Connector,
    changes: &Changes,
    outcome: &mut Outcome,
) -> Result<Position, Stop> {
    let next = Position {
        scan: None,
        cursor: Some(Cursor {
            at: scan.started_at,
            id: String::new(),
        }),
    };
    let class = |object_type: &str| connector.record_class(object_type);
    match store
        .finish_scan(
            target,
            &scan.id,
            object_types,
            &class,
            MAX_REMOVAL_SHARE,
            &next,
        )
        .await?
    {
        ScanEnd::Done {
            counts,
            changes: applied,
        } => {
            outcome.counts.add(counts);
            changes.publish(store, &applied).await;
            outcome.log.push(format!(
                "full reconciliation complete ({} gone at the source); changes feed continues from {}",
                counts.removed + counts.conflicted + counts.updated,
                scan.started_at.to_rfc3339()
            ));
            outcome.cursor_after = Some(next.clone());
            outcome.reconciled = true;
            Ok(next)
        }
        ScanEnd::TooManyRemovals { vanished, total } => {
            let message = format!(
                "full reconciliation: {vanished} of {total} records are gone at the source, more than {} %: nothing was removed and the run stops for an admin to look",
                (MAX_REMOVAL_SHARE * 100.0) as i64
            );
            outcome.log.push(message.clone());
            outcome.removals_held = Some(HeldRemovals { vanished, total });
            Err(Stop::Failed(JobFailure::new(ErrorClass::Client, message)))
        }
    }
}

/// The order of the changes feed: modification time, then id (numeric ids — QuickBooks' —
/// compare as numbers: a shorter one is smaller).
fn order(c: &Cursor) -> (chrono::DateTime<Utc>, usize, String) {
    (c.at, c.id.len(), c.id.clone())
}

fn classify(
    records: Vec<InboundRecord>,
    class: &dyn Fn(&str) -> RecordClass,
) -> Vec<(InboundRecord, RecordClass)> {
    records
        .into_iter()
        .map(|r| {
            let c = class(&r.object_type);
            (r, c)
        })
        .collect()
}
