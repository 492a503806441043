//! The producer: claims a pool's jobs. [`Producer::run_once`] claims as many jobs as there is
//! room in hand (`concurrency + prefetch`, at most `batch_size` a claim), leases them into
//! the pool's hands and queues them for the dispatcher. [`Producer::run`] loops around it and
//! sleeps by the result: a full claim goes again at once; a short one sleeps until a wake-up
//! (NOTIFY or an in-process enqueue), the queue's next `run_at`, or the poll tick. A failed
//! claim is retried with [`Backoff`]; the first failure and the recovery are logged, not
//! every retry.
//!
//! When to claim from the start of the queue again ([`FULL_SCAN_EVERY`]) is read from the
//! producer's [`Clock`], so a test on a [`crate::clock::ManualClock`] decides it.
//!
//! Shutdown: the loop returns when `shutdown` is cancelled; a claim in flight finishes (the
//! pool bounds it by its flush timeout) and the jobs it brought are handed back with the
//! others in hand.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use super::{Hand, Held, PoolDeps};
use crate::backoff::Backoff;
use crate::clock::Clock;
use crate::job::ClaimedJob;
use crate::pool_config::PoolSpec;
use crate::store::{ClaimKey, StoreError};

/// How often a busy pool claims from the start of its queue (see [`ClaimKey`]).
pub const FULL_SCAN_EVERY: Duration = Duration::from_millis(100);

/// A claimed job waiting for a slot: the job, the token that stops it, its place in hand.
pub type Ready = (ClaimedJob, CancellationToken, OwnedSemaphorePermit);

/// What one claim did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ClaimCounts {
    /// Jobs asked for: the room in hand, at most `batch_size`.
    pub wanted: usize,
    /// Jobs claimed.
    pub claimed: usize,
    /// Whether the claim looked from the start of the queue (not past the last claimed key).
    pub from_start: bool,
}

impl ClaimCounts {
    /// The queue may hold more right now: claim again at once.
    fn busy(&self) -> bool {
        self.wanted > 0 && self.claimed == self.wanted
    }
}

/// The producer of one pool.
pub struct Producer {
    spec: Arc<PoolSpec>,
    deps: PoolDeps,
    running: Hand,
    /// Room in hand: one permit per job claimed and not yet finished.
    in_hand: Arc<Semaphore>,
    ready: mpsc::UnboundedSender<Ready>,
    /// See [`ClaimKey`]: claim after the last claimed key while busy, from the start
    /// regularly.
    resume: Option<ClaimKey>,
    clock: Clock,
    last_full_scan: chrono::DateTime<Utc>,
}

impl Producer {
    /// A producer that claims into `hand`, at most as many jobs as `in_hand` has permits,
    /// and sends what it claims to `ready`; it reads the time from the system clock.
    pub fn new(
        spec: Arc<PoolSpec>,
        deps: PoolDeps,
        hand: Hand,
        in_hand: Arc<Semaphore>,
        ready: mpsc::UnboundedSender<Ready>,
    ) -> Producer {
        let clock = Clock::system();
        Producer {
            spec,
            deps,
            running: hand,
            in_hand,
            ready,
            resume: None,
            last_full_scan: clock.now(),
            clock,
        }
    }

    /// The same producer reading the time from `clock`.
    pub fn with_clock(mut self, clock: Clock) -> Producer {
        self.last_full_scan = clock.now();
        self.clock = clock;
        self
    }

    /// One claim of as many jobs as there is room in hand (none when the hands are full).
    pub async fn run_once(&mut self) -> Result<ClaimCounts, StoreError> {
        let mut permits = Vec::new();
        while permits.len() < self.spec.batch_size {
            match self.in_hand.clone().try_acquire_owned() {
                Ok(permit) => permits.push(permit),
                Err(_) => break,
            }
        }
        let wanted = permits.len();
        if wanted == 0 {
            return Ok(ClaimCounts::default());
        }
        let now = self.clock.now();
        if (now - self.last_full_scan).to_std().unwrap_or_default() >= FULL_SCAN_EVERY {
            self.resume = None;
        }
        let after = self.resume;
        if after.is_none() {
            self.last_full_scan = now;
        }
        let claim_sent = tokio::time::Instant::now();
        let claimed = self
            .deps
            .store
            .claim_after(
                &self.spec.queue,
                &self.deps.worker_id,
                wanted as i64,
                self.spec.lease,
                after.as_ref(),
            )
            .await?;
        let got = claimed.len();
        self.resume = claimed.iter().map(ClaimKey::of).max().or(after);
        {
            let mut held = self.running.lock();
            for job in claimed {
                let Some(permit) = permits.pop() else { break };
                let cancel = CancellationToken::new();
                held.insert(
                    job.id,
                    Held {
                        lease_token: job.lease_token,
                        cancel: cancel.clone(),
                        lease_until: claim_sent + self.spec.lease,
                        finished: false,
                    },
                );
                // The dispatcher outlives the producer, so the send only fails at shutdown,
                // where the job is handed back with the others in hand.
                let _ = self.ready.send((job, cancel, permit));
            }
        }
        if got < wanted {
            self.resume = None;
        }
        Ok(ClaimCounts {
            wanted,
            claimed: got,
            from_start: after.is_none(),
        })
    }

    /// Claims until `shutdown`, sleeping by the result as the module doc says.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let wakeup = self.deps.store.wakeups().queue(&self.spec.queue);
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        loop {
            // Wait for room in hand; the permit goes back at once and `run_once` takes it (the
            // producer is the only one taking permits).
            tokio::select! {
                _ = shutdown.cancelled() => return,
                permit = self.in_hand.acquire() => if permit.is_err() { return },
            }
            let counts = match self.run_once().await {
                Ok(counts) => {
                    if backoff.failures() > 0 {
                        tracing::info!(pool = %self.spec.name, "claims work again");
                    }
                    backoff.reset();
                    counts
                }
                Err(error) => {
                    if backoff.failures() == 0 {
                        tracing::warn!(pool = %self.spec.name, %error, "claim failed; retrying");
                    }
                    if !backoff.wait(&shutdown).await {
                        return;
                    }
                    continue;
                }
            };
            if counts.busy() || !counts.from_start {
                // More may be there now, or the claim was past the last key: look from the
                // start before sleeping.
                continue;
            }
            let sleep_for = self.idle_sleep().await;
            if sleep_for.is_zero() && counts.claimed > 0 {
                continue;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = wakeup.notified() => {}
                _ = tokio::time::sleep(sleep_for.max(Duration::from_millis(1))) => {}
            }
        }
    }

    /// Until the queue's next `run_at`, at most the poll tick.
    async fn idle_sleep(&self) -> Duration {
        match self.deps.store.next_run_at(&self.spec.queue).await {
            Ok(Some(next)) => (next - Utc::now())
                .to_std()
                .unwrap_or(Duration::ZERO)
                .min(self.spec.poll_interval),
            _ => self.spec.poll_interval,
        }
    }
}
