//! `noop`: does nothing and succeeds; for health checks and benchmarks.

use super::{ArgsError, BoxFuture, Handler, JobFailure};
use crate::job::ClaimedJob;

/// The `noop` kind.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopHandler;

impl Handler for NoopHandler {
    fn validate(&self, _args: &serde_json::Value) -> Result<(), ArgsError> {
        Ok(())
    }

    fn run(&self, _job: ClaimedJob) -> BoxFuture<'static, Result<(), JobFailure>> {
        Box::pin(async { Ok(()) })
    }
}
