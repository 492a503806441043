//! The sync engine's metrics, read from a Prometheus recorder local to this test's thread
//! (`metrics::with_local_recorder` around a current-thread runtime), so that the other tests
//! of the process, which `cargo test` runs beside it, count nothing into it: runs by outcome,
//! records by action, rate-budget waits by reason.

use metrics_exporter_prometheus::PrometheusBuilder;

use crate::support::Backend;
use crate::sync_support::SyncWorld;

/// The value of the sample `series` (name and labels) in Prometheus text.
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// The metrics do not depend on the backend (the handler counts what the store returned);
/// SQLite here.
#[test]
fn runs_records_and_budget_waits_are_counted() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    metrics::with_local_recorder(&recorder, || {
        runtime.block_on(counts_into(&handle));
    });
}

async fn counts_into(handle: &metrics_exporter_prometheus::PrometheusHandle) {
    let w = SyncWorld::new(Backend::Sqlite, None).await;
    w.sim.add_payments(3, chrono::Duration::hours(1));
    w.sim.add_invoices(2, chrono::Duration::hours(1));
    w.sim.switch(|s| {
        s.throttle_next = 1;
        s.retry_after_secs = 1;
    });
    w.sync_payments().await.expect_err("throttled");
    w.sync_payments().await.expect_err("paused");
    let text = handle.render();
    let value = |line: &str| metric(&text, line);
    assert_eq!(
        value(r#"hangar_sync_runs_total{provider="quickbooks",outcome="rate_limited"}"#),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        value(r#"hangar_sync_rate_budget_waits_total{provider="quickbooks",reason="throttled"}"#),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(r#"hangar_sync_rate_budget_waits_total{provider="quickbooks",reason="budget"}"#),
        Some(1.0),
        "{text}"
    );
    crate::support::wait_for(
        "the pause to end",
        std::time::Duration::from_secs(10),
        || async { w.sync_payments().await.ok() },
    )
    .await;
    let text = handle.render();
    let value = |line: &str| metric(&text, line);
    assert_eq!(
        value(r#"hangar_sync_runs_total{provider="quickbooks",outcome="succeeded"}"#),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(r#"hangar_sync_records_total{provider="quickbooks",action="created"}"#),
        Some(5.0),
        "3 payments and 2 invoices: {text}"
    );
}
