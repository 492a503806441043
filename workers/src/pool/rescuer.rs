//! The rescuer: gives every expired lease of a pool's queue the retry decision of an
//! `internal` failure ("lease expired: worker … stopped heartbeating"): its worker died or
//! lost the database. The takeover re-checks the expiry in the statement that takes the job
//! (see [`Store::rescue`]), so a lease renewed a moment ago is left alone. Every process
//! running the pool rescues; the fence makes each job rescued once.
//!
//! [`Rescuer::run_once`] is one pass and returns how many jobs it rescued; the loop runs it
//! every third of the lease, at once again after a full pass.
//!
//! Shutdown: its loop ends when the pool stops its background tasks.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{PoolDeps, decide_failure, failure_record};
use crate::error_class::ErrorClass;
use crate::failure::log_decision;
use crate::kinds::JobFailure;
use crate::pool_config::PoolSpec;
use crate::store::{Store, StoreError};

/// Most expired leases looked at in one pass.
const PER_PASS: i64 = 500;

/// The rescuer of one pool's queue.
pub(super) struct Rescuer {
    pub(super) spec: Arc<PoolSpec>,
    pub(super) deps: PoolDeps,
}

impl Rescuer {
    /// One pass: returns how many jobs were rescued.
    pub(super) async fn run_once(&self) -> Result<u64, StoreError> {
        let store: &Store = &self.deps.store;
        let mut rescued = 0;
        for expired in store.expired_leases(&self.spec.queue, PER_PASS).await? {
            let failure = JobFailure::new(
                ErrorClass::Internal,
                format!(
                    "lease expired: worker {} stopped heartbeating",
                    expired.leased_by.as_deref().unwrap_or("?")
                ),
            );
            let decision = decide_failure(&self.spec, &expired.job, &failure, None);
            let record = failure_record(&expired.job, &failure, &decision, &self.deps.worker_id);
            if store.rescue(&record, self.spec.lease).await? {
                log_decision(&self.spec.queue, &expired.job, &failure, &decision);
                rescued += 1;
                store.wakeups().wake(&self.spec.queue);
            }
        }
        Ok(rescued)
    }

    /// Passes every third of the lease (at least 500 ms) until `stop`; a full pass goes
    /// again at once. Logs rescues, and a failing pass once until one works again.
    pub(super) async fn run(self, stop: CancellationToken) {
        let period = (self.spec.lease / 3).max(Duration::from_millis(500));
        let mut failing = false;
        let mut busy = false;
        loop {
            if !busy {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(period) => {}
                }
            }
            busy = false;
            match self.run_once().await {
                Ok(rescued) => {
                    failing = false;
                    busy = rescued >= PER_PASS as u64;
                    if rescued > 0 {
                        tracing::info!(pool = %self.spec.name, rescued, "rescued jobs of expired leases");
                    }
                }
                Err(error) if !failing => {
                    failing = true;
                    tracing::warn!(pool = %self.spec.name, %error, "rescue failed");
                }
                Err(_) => {}
            }
            if stop.is_cancelled() {
                return;
            }
        }
    }
}
