//! The pool's services driven one pass at a time, without a running pool: the producer's
//! claims (and when it looks from the start of the queue again, on a manual clock), the
//! heartbeat's renewals and the attempts it stops (on tokio's paused clock), the completer's
//! fenced writes; on a real database of either backend.

use std::sync::Arc;
use std::time::Duration;

use hangar_workers::clock::ManualClock;
use hangar_workers::job::{ClaimedJob, JobId, JobState, NewJob};
use hangar_workers::kinds::Registry;
use hangar_workers::pool::completer::{CompleteCounts, Completer};
use hangar_workers::pool::heartbeat::Heartbeat;
use hangar_workers::pool::producer::{ClaimCounts, FULL_SCAN_EVERY, Producer, Ready};
use hangar_workers::pool::{Hand, PoolDeps};
use hangar_workers::pool_config::{self, PoolSpec};
use hangar_workers::refresher::NoRefresher;
use hangar_workers::store::{Completion, Store};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use crate::support::{Backend, TestDb};

const LEASE: Duration = Duration::from_secs(30);

/// The built-in default pool (queue `default`, kind `noop`), claiming at most 10 at a time.
fn spec() -> Arc<PoolSpec> {
    let mut spec = pool_config::builtin().remove(0);
    spec.batch_size = 10;
    spec.lease = LEASE;
    Arc::new(spec)
}

fn deps(store: &Store) -> PoolDeps {
    PoolDeps {
        store: store.clone(),
        registry: Arc::new(Registry::builtin()),
        refresher: Arc::new(NoRefresher),
        worker_id: "test:1".to_owned(),
    }
}

/// A producer with room for `room` jobs in hand, on `clock`, and the receiver of what it
/// claims.
fn producer(
    store: &Store,
    hand: &Hand,
    room: usize,
    clock: &ManualClock,
) -> (Producer, mpsc::UnboundedReceiver<Ready>) {
    let (ready_tx, ready_rx) = mpsc::unbounded_channel();
    let producer = Producer::new(
        spec(),
        deps(store),
        hand.clone(),
        Arc::new(Semaphore::new(room)),
        ready_tx,
    )
    .with_clock(clock.clock());
    (producer, ready_rx)
}

async fn enqueue(store: &Store, n: usize, past_ms: i64) -> Vec<JobId> {
    let mut ids = Vec::new();
    for _ in 0..n {
        let mut job = NewJob::new("noop", serde_json::json!({}));
        job.run_at = Some(chrono::Utc::now() - chrono::Duration::milliseconds(past_ms));
        ids.push(store.enqueue(&job).await.expect("enqueue").id);
    }
    ids
}

fn drain(ready: &mut mpsc::UnboundedReceiver<Ready>) -> Vec<(ClaimedJob, CancellationToken)> {
    let mut got = Vec::new();
    while let Ok((job, cancel, _permit)) = ready.try_recv() {
        got.push((job, cancel));
    }
    got
}

async fn the_producer_claims_what_fits_and_rescans_when_its_clock_says(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let clock = ManualClock::new(chrono::Utc::now());
    let hand = Hand::new();
    let (mut producer, mut ready) = producer(&store, &hand, 2, &clock);
    let first = enqueue(&store, 6, 1_000).await;

    // Room for two: two claimed, from the start of the queue.
    let counts = producer.run_once().await.expect("claim");
    let expected = ClaimCounts {
        wanted: 2,
        claimed: 2,
        from_start: true,
    };
    assert_eq!(counts, expected);
    assert_eq!(hand.ids(), first[..2]);
    // The hands are full while the jobs wait for a slot: nothing is asked for.
    let full = producer.run_once().await.expect("claim");
    assert_eq!(full.wanted, 0);
    drop(drain(&mut ready));

    // A job older than everything claimed so far arrives. A busy producer resumes after the
    // last key it claimed: on PostgreSQL the old job waits for the next look from the start
    // (SQLite has no dead index entries to step over and reads every claim from the start).
    let older = enqueue(&store, 1, 60_000).await[0];
    let counts = producer.run_once().await.expect("claim");
    assert_eq!((counts.claimed, counts.from_start), (2, false));
    assert_eq!(hand.holds(older), backend == Backend::Sqlite);
    drop(drain(&mut ready));
    // Just under FULL_SCAN_EVERY on its clock since it last looked from the start: it resumes.
    clock.advance(FULL_SCAN_EVERY - Duration::from_millis(1));
    let counts = producer.run_once().await.expect("claim");
    assert_eq!((counts.claimed, counts.from_start), (2, false));
    assert_eq!(hand.holds(older), backend == Backend::Sqlite);
    drop(drain(&mut ready));
    // FULL_SCAN_EVERY has passed: it looks from the start again and takes what is left.
    clock.advance(Duration::from_millis(1));
    let counts = producer.run_once().await.expect("claim");
    assert_eq!((counts.claimed, counts.from_start), (1, true));
    assert!(hand.holds(older));
    let job = store.job(older).await.expect("job");
    assert_eq!(job.state, JobState::Running);
}

#[tokio::test]
async fn the_producer_claims_what_fits_and_rescans_when_its_clock_says_postgres() {
    the_producer_claims_what_fits_and_rescans_when_its_clock_says(Backend::Postgres).await;
}

#[tokio::test]
async fn the_producer_claims_what_fits_and_rescans_when_its_clock_says_sqlite() {
    the_producer_claims_what_fits_and_rescans_when_its_clock_says(Backend::Sqlite).await;
}

async fn the_heartbeat_renews_and_stops_what_it_must(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let clock = ManualClock::new(chrono::Utc::now());
    let hand = Hand::new();
    let (mut producer, mut ready) = producer(&store, &hand, 10, &clock);
    enqueue(&store, 2, 1_000).await;
    producer.run_once().await.expect("claim");
    let held = drain(&mut ready);
    let [(kept, kept_stop), (cancelled, cancelled_stop)] = &held[..] else {
        panic!("two jobs claimed: {held:?}");
    };
    let heartbeat = Heartbeat::new(store.clone(), hand.clone(), LEASE);

    // An operator cancels one: the next beat renews the other and stops the cancelled one.
    store
        .cancel_job(cancelled.id, &crate::support::test_actor())
        .await
        .expect("cancel");
    let beat = heartbeat.run_once(Duration::from_secs(10)).await;
    assert_eq!(
        (beat.renewed, beat.lost, beat.lapsed, beat.failed),
        (1, 1, 0, false)
    );
    assert!(cancelled_stop.is_cancelled());
    assert!(!kept_stop.is_cancelled());

    // The database goes away (the store closed): renewals fail. Within the lease nothing is
    // stopped; a lease later, on tokio's paused clock, the attempt is stopped, because
    // another worker may rescue the job by then.
    store.close().await;
    tokio::time::pause();
    let beat = heartbeat.run_once(Duration::from_secs(5)).await;
    assert_eq!((beat.failed, beat.lapsed), (true, 0));
    assert!(!kept_stop.is_cancelled());
    tokio::time::advance(LEASE).await;
    let beat = heartbeat.run_once(Duration::from_secs(5)).await;
    assert_eq!((beat.failed, beat.lapsed), (true, 1));
    assert!(kept_stop.is_cancelled(), "job {} not stopped", kept.id);
}

#[tokio::test]
async fn the_heartbeat_renews_and_stops_what_it_must_postgres() {
    the_heartbeat_renews_and_stops_what_it_must(Backend::Postgres).await;
}

#[tokio::test]
async fn the_heartbeat_renews_and_stops_what_it_must_sqlite() {
    the_heartbeat_renews_and_stops_what_it_must(Backend::Sqlite).await;
}

async fn the_completer_writes_what_it_still_leases(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let clock = ManualClock::new(chrono::Utc::now());
    let hand = Hand::new();
    let (mut producer, mut ready) = producer(&store, &hand, 10, &clock);
    enqueue(&store, 2, 1_000).await;
    producer.run_once().await.expect("claim");
    let held = drain(&mut ready);
    let completion = |job: &ClaimedJob, lease_token: i64| Completion {
        id: job.id,
        lease_token,
        attempt: job.attempt,
        finished_at: chrono::Utc::now(),
    };
    let (ours, taken) = (&held[0].0, &held[1].0);
    let completer = Completer::new(store.clone(), hand.clone(), 10, "default");

    // One result with its lease's token, one whose lease another worker took over since.
    let counts = completer
        .run_once(&[
            completion(ours, ours.lease_token),
            completion(taken, taken.lease_token + 1),
        ])
        .await
        .expect("write");
    assert_eq!(
        counts,
        CompleteCounts {
            completed: 1,
            rejected: 1
        }
    );
    assert_eq!(store.job(ours.id).await.unwrap().state, JobState::Completed);
    assert_eq!(store.job(taken.id).await.unwrap().state, JobState::Running);
    // Both results are out of hand: written, or no longer ours to write.
    assert!(hand.ids().is_empty());
}

#[tokio::test]
async fn the_completer_writes_what_it_still_leases_postgres() {
    the_completer_writes_what_it_still_leases(Backend::Postgres).await;
}

#[tokio::test]
async fn the_completer_writes_what_it_still_leases_sqlite() {
    the_completer_writes_what_it_still_leases(Backend::Sqlite).await;
}
