//! The `sync` job kind (internal: only Hangar enqueues it, from an integration's schedule, a
//! manual sync, an event or a provider webhook). Args: `{"integration_id", "data_type",
//! "trigger"}`. When it runs it reads the integration and its token through
//! [`IntegrationAccess`] (never a copy taken at enqueue), writes one `hangar_sync_runs` row,
//! runs the connector, and ends the row `succeeded`, `failed` or `rate_limited` (it never
//! sleeps in a worker slot: a provider's 429 snoozes the job, and a wait for Hangar's own
//! paced budget puts it back for the wait without using an attempt or a snooze,
//! [`Handler::take_wait`], as webhook deliveries wait for their endpoint's limits). A credential
//! that cannot be had before the run starts (the connection needs re-authorisation, the
//! token endpoint is down) is a `failed` row too, with its class; the row's credential version
//! is the one the run used last (after a refresh, the refreshed one). A full reconciliation
//! that would remove more than the set share stops with a critical `sync_removals_held` alert
//! ([`removals_incident`]), resolved by the next one that completes. A disabled
//! integration, or a data type it does not enable, moves nothing and completes. An outbound
//! run with `"trigger": "event"` and an `"event_id"` (enqueued by the engine's event
//! subscription, see `crate::subscriptions`) first reads that event from the engine's store
//! and takes it into the outbox ([`outbound::accept_event`], idempotent), then pushes. An
//! inbound run with `"trigger": "webhook"` and an `"event_id"` (the provider push's row in
//! the engine's inbound store, enqueued by `hangar_workers::inbound::enqueue_sync`) of a data
//! type whose records arrive by push only reads the records that push names.

use std::sync::Arc;
use std::time::Duration;

use hangar_workers::alerts::{AlertKind, Severity};
use hangar_workers::error_class::ErrorClass;
use hangar_workers::job::{ClaimedJob, JobId};
use hangar_workers::kinds::{ArgsError, BoxFuture, Handler, JobFailure, JobNotes, Wait};
use hangar_workers::store::{NewAlert, Store};
use hangar_workers::targets::{TargetPolicy, client_builder};

use super::budget::{Calls, Stop, access_failure};
use super::changes::Changes;
use super::connector::Connectors;
use super::inbound::{self, HeldRemovals, Outcome};
use super::outbound;
use super::{Direction, RunStatus, SyncArgs, Trigger, new_id};
use crate::access::{AccessError, IntegrationAccess, IntegrationInfo};
use crate::store::SyncStore;
use crate::store::sync_pages::PageTarget;
use crate::store::sync_runs::{NewRun, RunEnd};

/// The handler of the `sync` kind.
#[derive(Clone)]
pub struct SyncHandler {
    inner: Arc<Inner>,
    /// The runs that ended waiting for Hangar's own rate budget, with the wait, until the
    /// pool asks ([`Handler::take_wait`]).
    waits: Arc<JobNotes<Duration>>,
}

struct Inner {
    store: SyncStore,
    access: Arc<dyn IntegrationAccess>,
    connectors: Connectors,
    http: reqwest::Client,
    targets: TargetPolicy,
    changes: Changes,
    /// The engine's store, where an event-triggered run reads its event.
    events: Option<Store>,
    /// The engine's store, where a run raises and resolves its alerts (none without it:
    /// logged only).
    alerts: Option<Store>,
}

/// How a run that did not succeed ended: its failure, and for a wait for Hangar's own rate
/// budget, how long (the job then waits without using an attempt or a snooze).
struct Ended {
    failure: JobFailure,
    wait: Option<Duration>,
}

impl From<JobFailure> for Ended {
    fn from(failure: JobFailure) -> Self {
        Ended {
            failure,
            wait: None,
        }
    }
}

/// The incident key of the alert of `integration_id`'s `data_type` whose removals were held
/// (more than [`inbound::MAX_REMOVAL_SHARE`] gone in one full reconciliation).
pub fn removals_incident(integration_id: &str, data_type: &str) -> String {
    format!("integration:{integration_id}:{data_type}:removals")
}

impl SyncHandler {
    /// A handler over `store`, reading integrations through `access`, calling providers with
    /// `connectors` (their addresses obey `targets`), handing inbound changes to `changes`.
    pub fn new(
        store: SyncStore,
        access: Arc<dyn IntegrationAccess>,
        connectors: Connectors,
        targets: &TargetPolicy,
        changes: Changes,
    ) -> Result<SyncHandler, reqwest::Error> {
        let http = client_builder(targets).build()?;
        Ok(SyncHandler {
            inner: Arc::new(Inner {
                store,
                access,
                connectors,
                http,
                targets: targets.clone(),
                changes,
                events: None,
                alerts: None,
            }),
            waits: Arc::default(),
        })
    }

    /// The same, raising its alerts (removals held) in `alerts` (the engine's store). Call it
    /// before cloning the handler.
    pub fn with_alerts(mut self, alerts: Store) -> SyncHandler {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.alerts = Some(alerts);
        }
        self
    }

    /// The same, reading the events of event-triggered runs from `events` (the engine's
    /// store). Call it before cloning the handler.
    pub fn with_events(mut self, events: Store) -> SyncHandler {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.events = Some(events);
        }
        self
    }

    /// Runs one sync for `args` (what a job's attempt does), as job `job_id`.
    pub async fn sync(&self, args: &SyncArgs, job_id: Option<i64>) -> Result<(), JobFailure> {
        self.inner.sync(args, job_id).await.map_err(|e| e.failure)
    }
}

/// Parses a `sync` job's args; bad input names the field.
pub fn parse_args(args: &serde_json::Value) -> Result<SyncArgs, ArgsError> {
    let parsed: SyncArgs =
        serde_json::from_value(args.clone()).map_err(|e| ArgsError::shape(super::KIND, &e))?;
    if parsed.integration_id.trim().is_empty() {
        return Err(ArgsError::Shape {
            kind: super::KIND.to_owned(),
            message: "integration_id must not be empty".to_owned(),
        });
    }
    if parsed.data_type.trim().is_empty() {
        return Err(ArgsError::Shape {
            kind: super::KIND.to_owned(),
            message: "data_type must not be empty".to_owned(),
        });
    }
    Ok(parsed)
}

impl Handler for SyncHandler {
    fn validate(&self, args: &serde_json::Value) -> Result<(), ArgsError> {
        parse_args(args).map(drop)
    }

    fn run(&self, job: ClaimedJob) -> BoxFuture<'static, Result<(), JobFailure>> {
        let inner = self.inner.clone();
        let waits = self.waits.clone();
        Box::pin(async move {
            let args = parse_args(&job.args)
                .map_err(|e| JobFailure::new(ErrorClass::Internal, e.to_string()))?;
            match inner.sync(&args, Some(job.id.0)).await {
                Ok(()) => Ok(()),
                Err(Ended {
                    failure,
                    wait: Some(wait),
                }) => {
                    waits.note(job.id, wait);
                    Err(failure)
                }
                Err(ended) => Err(ended.failure),
            }
        })
    }

    fn take_wait(&self, job: JobId) -> Option<Wait> {
        self.waits.take(job).map(Wait::After)
    }
}

impl Inner {
    async fn sync(&self, args: &SyncArgs, job_id: Option<i64>) -> Result<(), Ended> {
        let integration = match self.access.integration(&args.integration_id).await {
            Ok(i) => i,
            Err(AccessError::NotActive { id, status }) => {
                tracing::info!(integration = %id, %status, "sync: integration not active, nothing moves");
                return Ok(());
            }
            Err(e) => return Err(stop_failure(access_failure(e)).into()),
        };
        // An event's job exists because the integration was subscribed when the event was
        // stored: its record waits in the outbox even if the integration needs
        // re-authorisation now (the next run of the data type pushes it).
        if args.trigger == Trigger::Event
            && let Some(event_id) = &args.event_id
            && integration.data_types.contains(&args.data_type)
            && self
                .connectors
                .get(integration.provider)
                .and_then(|c| c.data_type(&args.data_type))
                .is_some_and(|spec| spec.direction == Direction::Out)
        {
            let subscribed = crate::access::IntegrationInfo {
                enabled: true,
                ..integration.clone()
            };
            self.accept_event(&subscribed, event_id).await?;
        }
        if !integration.enabled || !integration.data_types.contains(&args.data_type) {
            tracing::info!(integration = %integration.id, data_type = %args.data_type,
                "sync: data type not enabled, nothing moves");
            return Ok(());
        }
        let provider = integration.provider;
        let connector = self.connectors.get(provider).ok_or_else(|| {
            JobFailure::new(
                ErrorClass::Client,
                format!("no connector for provider {provider}"),
            )
        })?;
        let spec = connector.data_type(&args.data_type).ok_or_else(|| {
            JobFailure::new(
                ErrorClass::Client,
                format!("provider {provider} has no data type `{}`", args.data_type),
            )
        })?;
        let before = self
            .store
            .position(&integration.id, &args.data_type)
            .await
            .map_err(|e| stop_failure(e.into()))?;
        let run_id = new_id("run");
        let new_run = NewRun {
            id: run_id.clone(),
            integration_id: integration.id.clone(),
            workspace_id: integration.workspace_id.clone(),
            provider: provider.id().to_owned(),
            data_type: args.data_type.clone(),
            direction: spec.direction.as_str().to_owned(),
            trigger: args.trigger.as_str().to_owned(),
            job_id,
            credential_version: None,
            cursor_before: serde_json::to_value(&before).ok(),
        };
        let token = match self.access.access_token(&integration.id).await {
            Ok(token) => token,
            Err(e) => {
                let failure = stop_failure(access_failure(e));
                self.unstarted(&new_run, &failure).await;
                return Err(failure.into());
            }
        };
        let limit = match connector.rate_limit(&integration, &token) {
            Ok(limit) => limit,
            Err(failure) => {
                self.unstarted(&new_run, &failure).await;
                return Err(failure.into());
            }
        };
        self.changes.publish_pending(&self.store).await;

        let target = PageTarget {
            run_id: run_id.clone(),
            integration_id: integration.id.clone(),
            workspace_id: integration.workspace_id.clone(),
            provider: provider.id().to_owned(),
            data_type: args.data_type.clone(),
        };
        let started_version = token.version;
        self.store
            .start_run(&NewRun {
                credential_version: Some(started_version),
                ..new_run
            })
            .await
            .map_err(|e| stop_failure(e.into()))?;

        let mut calls = Calls {
            store: self.store.clone(),
            access: self.access.clone(),
            integration,
            token,
            http: self.http.clone(),
            targets: self.targets.clone(),
            limit,
            made: 0,
            refreshed: false,
            raced: 0,
            paced: Duration::ZERO,
        };
        let mut outcome = Outcome::default();
        let result = match spec.direction {
            Direction::In if connector.reads_pushes(&args.data_type) => {
                match self.push_of(&calls.integration, args).await {
                    Ok(Some(push)) => {
                        inbound::run_push(
                            connector.as_ref(),
                            &target,
                            &mut calls,
                            &self.changes,
                            &mut outcome,
                            push,
                        )
                        .await
                    }
                    Ok(None) => {
                        outcome.log.push(format!(
                            "{provider} {}: records arrive by the provider's push only; this run ({}) has none to read",
                            args.data_type,
                            args.trigger.as_str()
                        ));
                        Ok(())
                    }
                    Err(failure) => Err(Stop::Failed(failure)),
                }
            }
            Direction::In => {
                inbound::run(
                    connector.as_ref(),
                    &spec.object_types,
                    &target,
                    &mut calls,
                    &self.changes,
                    &mut outcome,
                )
                .await
            }
            Direction::Out => {
                let own_event = args
                    .event_id
                    .as_deref()
                    .filter(|_| args.trigger == Trigger::Event);
                outbound::run(
                    connector.as_ref(),
                    &target,
                    own_event,
                    &mut calls,
                    &mut outcome,
                )
                .await
            }
        };
        let mut own_wait = None;
        let (status, wait_ms, failure) = match result {
            Ok(()) => (RunStatus::Succeeded, 0, None),
            Err(Stop::RateLimited {
                wait,
                message,
                retry_after,
                throttled,
            }) => {
                own_wait = (!throttled).then_some(wait);
                (
                    RunStatus::RateLimited,
                    i64::try_from(wait.as_millis()).unwrap_or(i64::MAX),
                    Some(JobFailure {
                        class: ErrorClass::RateLimit,
                        message,
                        http_status: throttled.then_some(429),
                        retry_after,
                    }),
                )
            }
            Err(stop) => (RunStatus::Failed, 0, Some(stop.into_failure())),
        };
        if calls.token.version != started_version {
            outcome.log.push(format!(
                "the token was refreshed during the run: credential version {started_version} -> {}",
                calls.token.version
            ));
        }
        self.removals_alert(&calls.integration, &args.data_type, &outcome)
            .await;
        if spec.direction == Direction::Out
            && let Err(e) = self.store.add_run_counts(&run_id, &outcome.counts).await
        {
            tracing::warn!(run = %run_id, error = %e, "sync: could not count the run's records");
        }
        let cursor_after = outcome
            .cursor_after
            .as_ref()
            .or(Some(&before))
            .and_then(|p| serde_json::to_value(p).ok());
        let paced_ms = i64::try_from(calls.paced.as_millis()).unwrap_or(i64::MAX);
        let end = RunEnd {
            status: status.as_str().to_owned(),
            cursor_after,
            provider_calls: calls.made,
            rate_wait_ms: wait_ms.saturating_add(paced_ms),
            error_class: failure.as_ref().map(|f| f.class.as_str().to_owned()),
            error: failure.as_ref().map(|f| f.message.clone()),
            log: outcome.log,
            credential_version: Some(calls.token.version),
        };
        if let Err(e) = self.store.finish_run(&run_id, &end).await {
            tracing::warn!(run = %run_id, error = %e, "sync: could not finish the run's row");
        }
        metrics::counter!("hangar_sync_runs_total", "provider" => provider.id(), "outcome" => status.as_str())
            .increment(1);
        for (action, n) in [
            ("created", outcome.counts.created),
            ("updated", outcome.counts.updated),
            ("removed", outcome.counts.removed),
            ("conflicted", outcome.counts.conflicted),
            ("skipped", outcome.counts.skipped),
        ] {
            if n > 0 {
                metrics::counter!("hangar_sync_records_total", "provider" => provider.id(), "action" => action)
                    .increment(n as u64);
            }
        }
        tracing::info!(run = %run_id, integration = %target.integration_id, data_type = %target.data_type,
            status = status.as_str(), read = outcome.counts.read, created = outcome.counts.created,
            updated = outcome.counts.updated, conflicted = outcome.counts.conflicted,
            skipped = outcome.counts.skipped, calls = calls.made,
            fetch_ms = outcome.timings.fetch.as_millis() as u64,
            apply_ms = outcome.timings.apply.as_millis() as u64,
            publish_ms = outcome.timings.publish.as_millis() as u64, "sync run finished");
        match failure {
            None => Ok(()),
            Some(failure) => Err(Ended {
                failure,
                wait: own_wait,
            }),
        }
    }

    /// The audit row of a run that could not start (no credential to be had, settings the
    /// connector refuses): `failed` at once, with the failure's class and message (never a
    /// secret: credential errors name the integration and the provider's answer only).
    async fn unstarted(&self, run: &NewRun, failure: &JobFailure) {
        let end = RunEnd {
            status: RunStatus::Failed.as_str().to_owned(),
            cursor_after: run.cursor_before.clone(),
            provider_calls: 0,
            rate_wait_ms: 0,
            error_class: Some(failure.class.as_str().to_owned()),
            error: Some(failure.message.clone()),
            log: vec![format!(
                "the run did not start: {} failure before any call to the provider",
                failure.class.as_str()
            )],
            credential_version: None,
        };
        let written = match self.store.start_run(run).await {
            Ok(()) => self.store.finish_run(&run.id, &end).await,
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            tracing::warn!(run = %run.id, error = %e, "sync: could not write the row of a run that did not start");
        }
        metrics::counter!("hangar_sync_runs_total", "provider" => run.provider.clone(), "outcome" => RunStatus::Failed.as_str())
            .increment(1);
    }

    /// Raises the critical alert of a full reconciliation whose removals were held (more than
    /// the set share gone at the source), or resolves it when one completed.
    async fn removals_alert(
        &self,
        integration: &IntegrationInfo,
        data_type: &str,
        outcome: &Outcome,
    ) {
        let Some(alerts) = &self.alerts else {
            return;
        };
        let incident = removals_incident(&integration.id, data_type);
        let provider = integration.provider.id();
        if let Some(HeldRemovals { vanished, total }) = outcome.removals_held {
            let alert = NewAlert {
                workspace_id: Some(integration.workspace_id.clone()),
                kind: AlertKind::SyncRemovalsHeld,
                severity: Severity::Critical,
                message: format!(
                    "integration {provider} ({}): a full reconciliation of {data_type} found \
                     {vanished} of {total} records gone at the source, more than {} %: nothing \
                     was removed and the {data_type} runs stop here until an admin looks",
                    integration.id,
                    (inbound::MAX_REMOVAL_SHARE * 100.0) as i64
                ),
                incident_key: incident,
                integration: Some(provider.to_owned()),
            };
            if let Err(error) = alerts.raise_alerts(&[alert]).await {
                tracing::error!(integration = %integration.id, %data_type, %error, "could not raise the alert of held removals");
            }
        } else if outcome.reconciled {
            let note = "recovered: a full reconciliation completed within the removal limit";
            match alerts.resolve_incident(&incident, note).await {
                Ok(true) => {
                    tracing::info!(integration = %integration.id, %data_type, "held removals alert resolved")
                }
                Ok(false) => {}
                Err(error) => {
                    tracing::error!(integration = %integration.id, %data_type, %error, "could not resolve the alert of held removals")
                }
            }
        }
    }
}

impl Inner {
    /// The verified body of the provider push that started `args`'s run (`trigger:
    /// webhook`, `event_id` = the push's row in the inbound store), if it is one of
    /// `integration`'s workspace and provider; `None` for any other run.
    async fn push_of(
        &self,
        integration: &crate::access::IntegrationInfo,
        args: &SyncArgs,
    ) -> Result<Option<serde_json::Value>, JobFailure> {
        let (Trigger::Webhook, Some(id)) = (args.trigger, &args.event_id) else {
            return Ok(None);
        };
        let Ok(id) = id.parse::<i64>() else {
            return Err(JobFailure::new(
                ErrorClass::Client,
                format!("event_id `{id}` of a webhook run is not a push id"),
            ));
        };
        let Some(events) = &self.events else {
            tracing::warn!(integration = %integration.id, push = id,
                "sync: no inbound store in this process; the push is not read");
            return Ok(None);
        };
        let push = events
            .inbound_event(id)
            .await
            .map_err(|e| JobFailure::new(ErrorClass::Server, format!("reading push {id}: {e}")))?;
        let Some(push) = push.filter(|p| {
            p.workspace_id == integration.workspace_id && p.provider == integration.provider.id()
        }) else {
            return Err(JobFailure::new(
                ErrorClass::Client,
                format!(
                    "push {id} is not one of {}'s pushes in workspace {}",
                    integration.provider, integration.workspace_id
                ),
            ));
        };
        serde_json::from_str(&push.body)
            .map(Some)
            .map_err(|e| JobFailure::new(ErrorClass::Client, format!("push {id} is not JSON: {e}")))
    }

    /// Takes event `event_id` into `integration`'s outbox (idempotent per integration and
    /// event) so that the run pushes it: bad event data fails the job without retries, an
    /// unknown event is logged and moves nothing.
    async fn accept_event(
        &self,
        integration: &crate::access::IntegrationInfo,
        event_id: &str,
    ) -> Result<(), JobFailure> {
        let Some(events) = &self.events else {
            tracing::warn!(integration = %integration.id, event = %event_id,
                "sync: no event store in this process; the outbox is pushed as it is");
            return Ok(());
        };
        let event = events
            .event(&integration.workspace_id, event_id)
            .await
            .map_err(|e| {
                JobFailure::new(ErrorClass::Server, format!("reading event {event_id}: {e}"))
            })?;
        let Some(event) = event else {
            tracing::warn!(integration = %integration.id, event = %event_id, "sync: event not found");
            return Ok(());
        };
        outbound::accept_event(
            &self.store,
            &self.connectors,
            std::slice::from_ref(integration),
            &event,
        )
        .await
        .map_err(|e| match e {
            outbound::OutboundError::InvalidData { .. } => {
                JobFailure::new(ErrorClass::Client, e.to_string())
            }
            outbound::OutboundError::Store(e) => stop_failure(e.into()),
        })?;
        Ok(())
    }
}

fn stop_failure(stop: Stop) -> JobFailure {
    stop.into_failure()
}
