//! The backend's middleware: the tower layer apalis puts around the worker's service (outside
//! the user's own layers), which hands each attempt's result to the writer: `Ok` completes the
//! job, an error becomes a failed attempt with Hangar's retry decision. A
//! [`HangarFailure`] returned by the handler chooses the class (and so the retry table), any
//! other error counts as `internal`.

use std::sync::Arc;
use std::task::{Context, Poll};

use apalis_core::error::BoxDynError;
use apalis_core::task::Task;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use hangar_workers::error_class::ErrorClass;
use hangar_workers::job::ClaimedJob;
use hangar_workers::kinds::JobFailure;

use crate::shared::{Outcome, Shared};

/// A handler's classified failure: return it (boxed, or through `?`) to pick the retry table
/// of its class, an HTTP status and a `Retry-After` for the attempt row.
#[derive(Debug, Clone)]
pub struct HangarFailure(pub JobFailure);

impl HangarFailure {
    /// A failure of `class` with `message` (never a secret: it is stored and shown).
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        HangarFailure(JobFailure::new(class, message))
    }
}

impl std::fmt::Display for HangarFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.0.class, self.0.message)
    }
}

impl std::error::Error for HangarFailure {}

/// The claim behind a task, in the task's data: handlers may take it as
/// `Data<HangarJob>` (the job id, kind, attempt number, workspace).
#[derive(Debug, Clone)]
pub struct HangarJob(pub Arc<ClaimedJob>);

/// Reports each attempt's result to the backend's writer.
#[derive(Clone)]
pub struct HangarLayer {
    pub(crate) shared: Arc<Shared>,
}

impl<S> tower_layer::Layer<S> for HangarLayer {
    type Service = HangarService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HangarService {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The service of [`HangarLayer`].
#[derive(Clone)]
pub struct HangarService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S, Args> tower_service::Service<Task<Args>> for HangarService<S>
where
    S: tower_service::Service<Task<Args>>,
    S::Future: Send + 'static,
    S::Error: Into<BoxDynError>,
{
    type Response = S::Response;
    type Error = BoxDynError;
    type Future = BoxFuture<'static, Result<S::Response, BoxDynError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, task: Task<Args>) -> Self::Future {
        let claim = task.ctx().data().get::<HangarJob>().cloned();
        let shared = self.shared.clone();
        let attempt = self.inner.call(task);
        async move {
            let result = attempt.await.map_err(Into::into);
            if let Some(HangarJob(job)) = claim {
                shared.finished();
                shared.report(match &result {
                    Ok(_) => Outcome::Done(job),
                    Err(error) => Outcome::Failed(job, failure_of(error.as_ref())),
                });
            }
            result
        }
        .boxed()
    }
}

/// The Hangar failure of a service error: a [`HangarFailure`] as it is, anything else as an
/// `internal` failure with the error's text.
fn failure_of(error: &(dyn std::error::Error + Send + Sync + 'static)) -> JobFailure {
    match error.downcast_ref::<HangarFailure>() {
        Some(HangarFailure(failure)) => failure.clone(),
        None => JobFailure::new(ErrorClass::Internal, error.to_string()),
    }
}
