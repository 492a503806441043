//! Job kinds: the [`Handler`] trait every kind implements and the [`Registry`] that maps a
//! kind's name to its handler. A handler reports failures as a [`JobFailure`] that is already
//! classified (the connector knows its provider's signals); the pool turns it into a retry
//! decision. The built-in kinds are `noop` and `http`.
//!
//! A kind is public (anyone with a token may enqueue it: API, Redis ingress, CLI) or internal
//! (only the engine enqueues it, e.g. alert deliveries, whose arguments name an alert and a
//! channel that a caller must not choose). That is decided where the kind is registered.

mod args_error;
mod http;
mod noop;
mod notes;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use args_error::{ArgsError, HttpArgsError};
pub use http::{HttpArgs, HttpHandler};
pub use noop::NoopHandler;
pub use notes::JobNotes;

use crate::error_class::ErrorClass;
use crate::job::{ClaimedJob, JobId};
use crate::targets::TargetPolicy;

/// A boxed, sendable future, the return type of handler methods.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A failed attempt, classified by the handler.
#[derive(Debug, Clone, PartialEq)]
pub struct JobFailure {
    /// The class of the failure (drives the retry decision).
    pub class: ErrorClass,
    /// What went wrong, for the attempt history (never a secret).
    pub message: String,
    /// The HTTP status, when a response was received.
    pub http_status: Option<u16>,
    /// The raw `Retry-After` header of the response.
    pub retry_after: Option<String>,
}

impl JobFailure {
    /// A failure of `class` with `message`.
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        JobFailure {
            class,
            message: message.into(),
            http_status: None,
            retry_after: None,
        }
    }
}

/// How a run that waited goes back to `scheduled` (see [`Handler::take_wait`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// The pool puts it back, this long from now.
    After(std::time::Duration),
    /// The handler put it back itself, fenced by its lease, in the transaction that decided
    /// it must wait (so whatever frees the resource after that finds it scheduled and can
    /// wake it): nothing is left to write.
    PutBack,
}

/// One job kind.
pub trait Handler: Send + Sync + 'static {
    /// Checks a job's arguments at enqueue time, so bad input is refused before it is stored.
    fn validate(&self, args: &serde_json::Value) -> Result<(), ArgsError>;

    /// The arguments as they are stored: checked by [`Handler::validate`], then with any
    /// secret in them sealed (the `http` kind seals its header values). Default: as given.
    fn prepare(&self, args: serde_json::Value) -> Result<serde_json::Value, ArgsError> {
        self.validate(&args)?;
        Ok(args)
    }

    /// Runs one attempt. The future is dropped when the job is cancelled or its lease lost.
    fn run(&self, job: ClaimedJob) -> BoxFuture<'static, Result<(), JobFailure>>;

    /// Asked once after a run of `job` returned a failure: `Some` when it was not a failure
    /// but a wait (the job could not start its work yet: a limit of the resource it needs
    /// was reached). The job then goes back to `scheduled` ([`Wait::After`]: that much later;
    /// [`Wait::PutBack`]: the handler did it already) and nothing is spent: no attempt, no
    /// retry budget, no snooze, no attempt row. Default: never.
    fn take_wait(&self, job: JobId) -> Option<Wait> {
        let _ = job;
        None
    }

    /// Asked once after a run of `job` succeeded: what the handler left to be written with
    /// the job's completion, in the completer's transaction and only if the completion passes
    /// its lease fence (the webhook delivery's attempt record: one commit for both). Default:
    /// nothing.
    fn take_completion_write(&self, job: JobId) -> Option<crate::store::CompletionWrite> {
        let _ = job;
        None
    }
}

/// Replaces the secrets in a job's arguments by `"<redacted>"`, for every place that shows a
/// job to people (API, dashboard, CLI): an `http` job's header values.
pub fn redact_args(kind: &str, args: &mut serde_json::Value) {
    if kind == "http" {
        http::redact_headers(args);
    }
}

/// The handlers known to this process, by kind name, and which kinds are internal.
#[derive(Clone, Default)]
pub struct Registry {
    handlers: HashMap<String, Arc<dyn Handler>>,
    internal: HashSet<String>,
}

impl Registry {
    /// The built-in kinds: `noop` and `http`, whose requests reach public addresses only.
    pub fn builtin() -> Self {
        Self::builtin_with(TargetPolicy::default())
    }

    /// The built-in kinds, with outbound requests limited by `targets`.
    pub fn builtin_with(targets: TargetPolicy) -> Self {
        let mut registry = Registry::default();
        registry.register("noop", NoopHandler);
        registry.register("http", HttpHandler::with_targets(targets));
        // Their handlers need the store and the keys (registered by `alerts::register` once
        // those are open); a process without them must still refuse them from callers.
        for kind in crate::alerts::KINDS {
            registry.internal.insert(kind.to_owned());
        }
        registry.internal.insert(crate::webhooks::KIND.to_owned());
        registry.internal.insert(crate::inbound::KIND.to_owned());
        registry
    }

    /// Adds or replaces the handler of `kind`, a public kind (callers may enqueue it).
    pub fn register(&mut self, kind: &str, handler: impl Handler) {
        self.internal.remove(kind);
        self.handlers.insert(kind.to_owned(), Arc::new(handler));
    }

    /// Adds or replaces the handler of `kind`, an internal kind: only the engine enqueues
    /// it; the API, the Redis ingress and the CLI refuse it.
    pub fn register_internal(&mut self, kind: &str, handler: impl Handler) {
        self.handlers.insert(kind.to_owned(), Arc::new(handler));
        self.internal.insert(kind.to_owned());
    }

    /// Marks `kind` internal without a handler: a kind only the engine (or another crate,
    /// such as the integrations' `sync` and `token_refresh`) enqueues, which callers are
    /// refused even in a process that does not run it.
    pub fn reserve_internal(&mut self, kind: &str) {
        self.internal.insert(kind.to_owned());
    }

    /// Whether `kind` is internal (registered with [`Registry::register_internal`], or one of
    /// the engine's own kinds whose handler this process does not run).
    pub fn is_internal(&self, kind: &str) -> bool {
        self.internal.contains(kind)
    }

    /// The handler of `kind`.
    pub fn get(&self, kind: &str) -> Option<&Arc<dyn Handler>> {
        self.handlers.get(kind)
    }

    /// The registered kind names, sorted.
    pub fn kinds(&self) -> Vec<&str> {
        let mut kinds: Vec<&str> = self.handlers.keys().map(String::as_str).collect();
        kinds.sort_unstable();
        kinds
    }

    /// The registered kinds callers may enqueue, sorted.
    pub fn public_kinds(&self) -> Vec<&str> {
        let mut kinds = self.kinds();
        kinds.retain(|k| !self.is_internal(k));
        kinds
    }
}
