//! `hangar serve`, `hangar worker` and `hangar planner`: connect, migrate (serve only), start
//! the pools, the planner, the LISTEN task and the HTTP server, and shut all of it down on
//! SIGTERM or SIGINT.

use std::sync::Arc;

use hangar_integrations::sync::changes_retention::ChangesPruner;
use hangar_integrations::{IntegrationContext, IntegrationRefresher};
use hangar_workers::alerts::{self, AlertContext, dispatcher::Dispatcher};
use hangar_workers::client::Client;
use hangar_workers::inbound::{self, InboundContext, NoIntegrations};
use hangar_workers::kinds::{HttpHandler, Registry};
use hangar_workers::pool::{Pool, PoolDeps};
use hangar_workers::pool_config::PoolSpec;
use hangar_workers::refresher::NoRefresher;
use hangar_workers::routes::Routes;
use hangar_workers::store::ProcessBeat;
use hangar_workers::webhooks::{self, WebhookContext};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::api::ApiState;
use crate::config::Config;
use crate::exit::Fatal;
use crate::http;
use crate::redis_ingress::{Consumer, ConsumerConfig};

/// What to run in this process.
pub struct Plan {
    /// Apply migrations first (`serve`).
    pub migrate: bool,
    /// The pools to run.
    pub pools: Vec<PoolSpec>,
    /// Run the cron planner (`serve`, `planner`).
    pub planner: bool,
}

/// Runs the plan until a signal; returns once everything has drained.
pub async fn run(config: &Config, plan: Plan) -> Result<(), Fatal> {
    // SIGTERM and Ctrl-C are ours from the first moment: a signal that arrives while the
    // database is being connected or the schedule files synced still shuts down cleanly
    // (before this, one arriving then killed the process with the default action).
    let shutdown = CancellationToken::new();
    signal_watch(shutdown.clone());
    // Configuration first: a bad pool file is reported before the database is touched.
    let mut registry = Registry::builtin_with(config.targets.clone());
    hangar_integrations::reserve_kinds(&mut registry);
    check_kinds(&registry, &plan.pools)?;
    // Built once: the client, the planner and the alert dispatcher route by the same rule.
    let routes = Routes::new(&config.pools, &registry);
    // The alert dispatcher runs in `serve` and in every worker that runs the alert kinds;
    // both need the master key (on PostgreSQL a missing key stops them here, exit 2).
    // So do the integrations' jobs, which open sealed credentials.
    let runs_alerts = plan.planner && plan.migrate
        || plan.pools.iter().any(|p| {
            p.kinds.iter().any(|k| {
                alerts::KINDS.contains(&k.as_str())
                    || k == webhooks::KIND
                    || k == inbound::KIND
                    || hangar_integrations::KINDS.contains(&k.as_str())
            })
        });
    let keyring = if runs_alerts {
        Some(crate::keys::keyring(config)?.0)
    } else if plan
        .pools
        .iter()
        .any(|p| p.kinds.iter().any(|k| k == "http"))
    {
        // Only the sealed header values of `http` jobs need it here: a worker without a key
        // (PostgreSQL, HANGAR_MASTER_KEY unset) still runs every other job.
        crate::keys::keyring(config).ok().map(|(ring, _)| ring)
    } else {
        None
    };
    if let Some(ring) = &keyring {
        registry.register(
            "http",
            HttpHandler::with_targets(config.targets.clone()).with_keyring(Arc::new(ring.clone())),
        );
    }
    let store = if plan.migrate {
        let store = crate::connect(config).await?;
        for name in crate::store::migrate(store.database()).await? {
            tracing::info!(migration = %name, "migration applied");
        }
        store
    } else {
        crate::connect_migrated(config).await?
    };
    let alert_context = keyring.clone().map(|keyring| {
        AlertContext::new(
            store.clone(),
            Arc::new(keyring),
            config.public_url.clone(),
            config.targets.clone(),
        )
    });
    if let Some(context) = &alert_context {
        alerts::register(&mut registry, context);
    }
    let webhook_context = keyring.clone().map(|keyring| {
        let mut context = WebhookContext::new(
            store.clone(),
            Arc::new(keyring),
            config.targets.clone(),
            &routes,
        );
        // The shares of the pool that runs the deliveries, from this process's pool files.
        if let Some(spec) = config.pool_for_kind(webhooks::KIND) {
            context.shares = spec.webhook_shares;
        }
        context
    });
    if let Some(context) = &webhook_context {
        webhooks::register(&mut registry, context);
    }
    let integrations = keyring.clone().map(|keyring| {
        IntegrationContext::new(
            store.clone(),
            Arc::new(keyring),
            routes.clone(),
            config.targets.clone(),
            worker_id(),
        )
    });
    if let Some(context) = &integrations {
        if plan.migrate {
            let n = context
                .apply_all_event_subscriptions()
                .await
                .map_err(|e| Fatal::runtime(format!("integrations' event subscriptions: {e}")))?;
            tracing::info!(
                subscriptions = n,
                "integrations' event subscriptions in step"
            );
        }
        hangar_integrations::register(&mut registry, context);
        registry.register_internal(hangar_integrations::SYNC, sync_handler(config, context)?);
    }
    // Inbound provider pushes find the integration they concern through the integrations'
    // store (a QuickBooks change → that integration's `payments` sync); without the master
    // key there are no integrations and the pushes are recorded only.
    let seam: Arc<dyn inbound::IntegrationSeam> = match &integrations {
        Some(context) => Arc::new(context.clone()),
        None => Arc::new(NoIntegrations),
    };
    let inbound_context = keyring
        .clone()
        .map(|keyring| InboundContext::new(store.clone(), Arc::new(keyring), &routes, seam));
    if let Some(context) = &inbound_context {
        inbound::register(&mut registry, context);
    }
    let registry = Arc::new(registry);
    let listener = http::bind(config.bind).await?;
    // With `--bind 127.0.0.1:0` the system picks the port; this line says which one.
    let addr = listener.local_addr().unwrap_or(config.bind);
    let _ = http::metrics_handle();

    let mut tasks = JoinSet::new();
    {
        let (store, stop) = (store.clone(), shutdown.clone());
        tasks.spawn(async move { store.listen(stop).await });
    }
    let deps = PoolDeps {
        store: store.clone(),
        registry,
        // Jobs of an integration refresh its token on a 401; the others have none.
        refresher: match &integrations {
            Some(context) => Arc::new(IntegrationRefresher::new(context.clone())),
            None => Arc::new(NoRefresher),
        },
        worker_id: worker_id(),
    };
    let client = Arc::new(Client::new(deps.registry.clone(), Arc::new(routes.clone())));
    if let Some(redis) = &config.redis {
        let consumer = Consumer::new(
            store.clone(),
            client.clone(),
            ConsumerConfig::new(redis.clone(), worker_id()),
        )?;
        tasks.spawn(consumer.run(shutdown.clone()));
    }
    if keyring.is_some() {
        let dispatcher = Dispatcher::new(
            store.clone(),
            routes.clone(),
            std::time::Duration::from_millis(config.alert_tick_ms),
        );
        tasks.spawn(dispatcher.run(shutdown.clone()));
    }
    if webhook_context.is_some() && plan.migrate {
        let pruner = webhooks::retention::AttemptPruner::new(store.clone(), &worker_id());
        tasks.spawn(pruner.run(shutdown.clone()));
    }
    // Beside it, the integrations' applied changes past their retention.
    if integrations.is_some() && plan.migrate {
        let pruner =
            ChangesPruner::new(store.clone(), &worker_id()).retention(config.sync_changes_retain);
        tasks.spawn(pruner.run(shutdown.clone()));
    }
    if plan.planner {
        let planner = crate::planner::start_planner(config, &store, routes.clone()).await?;
        tasks.spawn(planner.run(shutdown.clone()));
    }
    let queues: Vec<String> = config.pools.iter().map(|p| p.queue.clone()).collect();
    let beat = (!plan.pools.is_empty()).then(|| ProcessBeat {
        id: worker_id(),
        host: host_name(),
        pid: i64::from(std::process::id()),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        command: if plan.migrate { "serve" } else { "worker" }.to_owned(),
        pools: plan.pools.iter().map(|p| p.name.clone()).collect(),
    });
    if let Some(beat) = beat.clone() {
        tasks.spawn(heartbeat_process(store.clone(), beat, shutdown.clone()));
    }
    for spec in plan.pools {
        tracing::info!(pool = %spec.name, queue = %spec.queue, concurrency = spec.concurrency, "pool started");
        let pool = Pool::new(spec, deps.clone());
        tasks.spawn(pool.run(shutdown.clone()));
    }
    let api_state = ApiState::new(store.clone(), client)
        .with_alerts(alert_context)
        .with_webhooks(webhook_context)
        .with_integrations(integrations)
        .with_inbound(inbound_context)
        .with_redis(config.redis.clone());
    tasks.spawn(http::serve(
        listener,
        api_state,
        queues,
        config.redis.clone(),
        shutdown.clone(),
    ));
    tracing::info!(
        database = store.backend_name(),
        pools = %config.pools_source,
        "hangar is running; listening on {addr}"
    );
    while tasks.join_next().await.is_some() {}
    if let Some(beat) = beat {
        // Off the workers list at once; with the database down the row simply ages out.
        let gone = tokio::time::timeout(
            std::time::Duration::from_secs(2),
            store.remove_process(&beat.id),
        );
        let _ = gone.await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// The `sync` kind's handler: integrations read through `context` when a job runs, the
/// built-in connectors, applied changes handed to `{prefix}:changes` when Redis is configured.
fn sync_handler(
    config: &Config,
    context: &IntegrationContext,
) -> Result<hangar_integrations::sync::handler::SyncHandler, Fatal> {
    use hangar_integrations::sync::{changes::Changes, connector::Connectors};
    let changes = match &config.redis {
        Some(redis) => Changes::redis(&redis.url, &redis.prefix)
            .map_err(|e| Fatal::config(format!("redis_url: {e}")))?,
        None => Changes::api_only(),
    };
    hangar_integrations::sync::handler::SyncHandler::new(
        hangar_integrations::store::SyncStore::new(context.store.database().clone()),
        Arc::new(context.clone()),
        Connectors::builtin(),
        &config.targets,
        changes,
    )
    .map(|handler| {
        handler
            .with_events(context.store.clone())
            .with_alerts(context.store.clone())
    })
    .map_err(|e| Fatal::runtime(format!("the sync engine's HTTP client: {e}")))
}

/// Every kind a pool names must have a handler in this binary (the alert delivery kinds
/// are registered once the store is open).
pub(crate) fn check_kinds(registry: &Registry, pools: &[PoolSpec]) -> Result<(), Fatal> {
    for pool in pools {
        for kind in &pool.kinds {
            // The alert, webhook, inbound and integration kinds are registered once the store
            // is open.
            let later = alerts::KINDS.contains(&kind.as_str())
                || kind == webhooks::KIND
                || kind == inbound::KIND
                || hangar_integrations::KINDS.contains(&kind.as_str());
            if registry.get(kind).is_none() && !later {
                return Err(Fatal::config(format!(
                    "{}: pool '{}': kinds: unknown job kind '{kind}' (known: {})",
                    pool.source,
                    pool.name,
                    registry.kinds().join(", ")
                )));
            }
        }
    }
    Ok(())
}

/// `host:pid`, the name leases and attempt rows record.
pub fn worker_id() -> String {
    format!("{}:{}", host_name(), std::process::id())
}

/// This machine's name.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "host".to_owned())
}

/// How often a process that runs pools records that it is alive (the workers list counts a
/// process gone after three silent periods).
pub const PROCESS_HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(10);

/// Records `beat` now and every [`PROCESS_HEARTBEAT`] until `shutdown`; a failed beat is
/// logged once and tried again at the next tick.
async fn heartbeat_process(
    store: hangar_workers::store::Store,
    beat: ProcessBeat,
    shutdown: CancellationToken,
) {
    let mut failing = false;
    loop {
        match store.heartbeat_process(&beat).await {
            Ok(()) => failing = false,
            Err(error) if !failing => {
                failing = true;
                tracing::warn!(%error, "cannot record this process's heartbeat");
            }
            Err(_) => {}
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(PROCESS_HEARTBEAT) => {}
        }
    }
}

/// Installs the SIGTERM and Ctrl-C handlers now (not when a task first runs) and cancels
/// `shutdown` on the first signal.
fn signal_watch(shutdown: CancellationToken) {
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::spawn(async move {
        #[cfg(unix)]
        match term {
            Some(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            None => {
                let _ = ctrl_c.await;
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutting down: finishing running jobs");
        shutdown.cancel();
    });
}
