//! The HTTP server of `serve` and `worker`: `/healthz` (the process is up), `/readyz` (the
//! database answers) and `/metrics` (Prometheus text: queue depth and lag read from the store
//! at scrape time, plus the counters and histograms the pools record), the API under
//! `/api/v1` and the dashboard at `/`.

use std::net::SocketAddr;
use std::sync::OnceLock;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use hangar_workers::job::JobState;
use hangar_workers::store::Store;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::{self, ApiState};
use crate::config::RedisConfig;
use crate::dashboard;
use crate::exit::Fatal;

/// Installs the process-wide Prometheus recorder once and returns its handle.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0, 30.0, 60.0,
                ])
                .unwrap_or_else(|_| PrometheusBuilder::new());
            match builder.install_recorder() {
                Ok(handle) => handle,
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            }
        })
        .clone()
}

#[derive(Clone)]
struct AppState {
    store: Store,
    metrics: PrometheusHandle,
    /// The queues of the configured pools: reported (as zero) even when empty.
    queues: Vec<String>,
}

/// Binds `addr` (an error here is a configuration error) and serves until `shutdown`.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, Fatal> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| Fatal::config(format!("HANGAR_BIND: cannot listen on {addr}: {e}")))
}

/// Serves the routes on `listener` until `shutdown` is cancelled: the API and the dashboard
/// over `api_state`.
pub async fn serve(
    listener: TcpListener,
    api_state: ApiState,
    queues: Vec<String>,
    redis: Option<RedisConfig>,
    shutdown: CancellationToken,
) {
    let api = api::routes(api_state.clone());
    let state = AppState {
        store: api_state.store.clone(),
        metrics: metrics_handle(),
        queues,
    };
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
        .merge(api)
        .merge(dashboard::routes(api_state, redis))
        .layer(axum::middleware::from_fn(refuse_nul));
    // The peer address is what the dashboard limits failed sign-ins by.
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await;
    if let Err(error) = result {
        tracing::error!(%error, "HTTP server stopped");
    }
}

/// A NUL character (`%00`) in the path or query is refused before any handler: no text
/// column can store it, and a filter holding one can match nothing.
async fn refuse_nul(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let uri = request.uri();
    let has_nul = |part: &str| part.contains("%00");
    if has_nul(uri.path()) || uri.query().is_some_and(has_nul) {
        return api::ApiError::BadRequest("the URL holds a NUL character (%00)".to_owned())
            .into_response();
    }
    next.run(request).await
}

async fn healthz() -> impl IntoResponse {
    (StatusCode::OK, "ok\n")
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready\n".to_owned()),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "database unreachable\n".to_owned(),
        ),
    }
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    match state.store.queue_stats().await {
        Ok(mut stats) => {
            for queue in &state.queues {
                if !stats.iter().any(|s| &s.queue == queue) {
                    stats.push(hangar_workers::store::QueueStats {
                        queue: queue.clone(),
                        counts: Vec::new(),
                        lag_seconds: 0.0,
                    });
                }
            }
            for queue in stats {
                for state_name in JobState::ALL
                    .iter()
                    .filter(|s| !matches!(s, JobState::Completed | JobState::Cancelled))
                {
                    let n = queue
                        .counts
                        .iter()
                        .find(|(s, _)| s == state_name)
                        .map_or(0, |(_, n)| *n);
                    metrics::gauge!("hangar_queue_depth", "queue" => queue.queue.clone(), "state" => state_name.as_str())
                        .set(n as f64);
                }
                metrics::gauge!("hangar_queue_lag_seconds", "queue" => queue.queue.clone())
                    .set(queue.lag_seconds);
            }
            metrics::gauge!("hangar_database_up").set(1.0);
            match state.store.webhook_health_counts().await {
                Ok(counts) => {
                    for (health, n) in counts {
                        metrics::gauge!("hangar_webhook_endpoints", "health" => health.as_str())
                            .set(n as f64);
                    }
                }
                Err(error) => tracing::warn!(%error, "metrics: cannot read webhook endpoints"),
            }
        }
        Err(error) => {
            tracing::warn!(%error, "metrics: cannot read queue stats");
            metrics::gauge!("hangar_database_up").set(0.0);
        }
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}
