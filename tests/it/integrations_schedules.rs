//! An integration's frequency as planner schedules, on both backends: one per (integration,
//! data type), spread, enqueueing `sync` with `trigger: "schedule"`; a cron frequency keeps
//! its time; `manual` and `realtime` have none; a removed data type loses its schedule;
//! `hangar schedules sync --prune` keeps them; disabling stops them and cancels the
//! integration's waiting jobs.

use hangar_integrations::provider::Provider;
use hangar_schedules::{ScheduleFilter, ScheduleRow};
use hangar_workers::job::JobState;
use serde_json::json;

use crate::integrations_support::{context, jobs_of, request};
use crate::support::{Backend, TestDb, stdout_ok};

fn body(enabled: bool, data_types: &[&str], frequency: &str) -> serde_json::Value {
    json!({"enabled": enabled, "data_types": data_types, "frequency": frequency,
        "credentials": {"api_key": "key-1"}})
}

async fn schedules(
    context: &hangar_integrations::IntegrationContext,
    id: &str,
) -> Vec<ScheduleRow> {
    let mut rows: Vec<ScheduleRow> = context
        .schedules
        .list(&ScheduleFilter::default())
        .await
        .expect("list")
        .into_iter()
        .filter(|r| r.integration.as_deref() == Some(id))
        .collect();
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    rows
}

async fn frequency_becomes_schedules(backend: Backend) {
    let db = TestDb::new(backend).await;
    let (store, context) = context(&db).await;
    let a = context
        .put(
            "ws_1",
            Provider::Foreflight,
            request(body(true, &["flights", "trips"], "hourly")),
        )
        .await
        .expect("put");
    let b = context
        .put(
            "ws_2",
            Provider::Foreflight,
            request(body(true, &["flights"], "hourly")),
        )
        .await
        .expect("put b");
    let rows = schedules(&context, &a.id).await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    for (row, data_type) in rows.iter().zip(["flights", "trips"]) {
        assert_eq!(row.name, format!("integration:{}:{data_type}", a.id));
        assert_eq!(row.spec, "hourly");
        assert_eq!(row.kind, "sync");
        assert_eq!(row.workspace_id.as_deref(), Some("ws_1"));
        assert_eq!(row.data_type.as_deref(), Some(data_type));
        assert_eq!(
            row.args,
            json!({"integration_id": a.id, "data_type": data_type, "trigger": "schedule"})
        );
        assert!(row.enabled && row.next_run_at.is_some(), "{row:?}");
    }
    // Spread: the slot offsets differ between schedules (a stable hash of the name).
    let other = &schedules(&context, &b.id).await[0];
    assert!(
        rows[0].offset_ms != rows[1].offset_ms || rows[1].offset_ms != other.offset_ms,
        "offsets {} {} {}",
        rows[0].offset_ms,
        rows[1].offset_ms,
        other.offset_ms
    );

    // Schedule files and their pruning never touch an integration's schedules.
    stdout_ok(&db.run(&["schedules", "sync", "--prune"]));
    assert_eq!(schedules(&context, &a.id).await.len(), 2, "kept by --prune");

    // A cron frequency keeps the admin's time; a removed data type loses its schedule.
    context
        .put(
            "ws_1",
            Provider::Foreflight,
            request(body(true, &["flights"], "0 30 2 * * *")),
        )
        .await
        .expect("cron");
    let rows = schedules(&context, &a.id).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].spec, "0 30 2 * * *");
    let next = rows[0].next_run_at.expect("planned");
    assert_eq!(next.format("%H:%M:%S").to_string(), "02:30:00");

    // manual and realtime: no schedule (realtime syncs are driven by events and webhooks).
    for frequency in ["manual", "realtime"] {
        context
            .put(
                "ws_1",
                Provider::Foreflight,
                request(body(true, &["flights"], frequency)),
            )
            .await
            .expect("put");
        assert!(schedules(&context, &a.id).await.is_empty(), "{frequency}");
    }

    // Disabling stops the schedules and cancels the waiting jobs of this integration only.
    context
        .put(
            "ws_1",
            Provider::Foreflight,
            request(body(true, &["flights", "trips"], "daily")),
        )
        .await
        .expect("daily");
    let waiting = context
        .sync_now("ws_1", Provider::Foreflight, None)
        .await
        .expect("sync");
    let others = context
        .sync_now("ws_2", Provider::Foreflight, None)
        .await
        .expect("sync b");
    let disabled = context
        .put(
            "ws_1",
            Provider::Foreflight,
            request(body(false, &["flights", "trips"], "daily")),
        )
        .await
        .expect("disable");
    assert_eq!(disabled.status.as_str(), "disabled");
    for row in schedules(&context, &a.id).await {
        assert!(
            !row.enabled && row.next_run_at.is_none(),
            "stopped: {row:?}"
        );
    }
    assert!(
        schedules(&context, &b.id).await[0].enabled,
        "another workspace's stays"
    );
    for id in waiting {
        let job = store.job(id).await.unwrap();
        assert_eq!(job.state, JobState::Cancelled, "{job:?}");
        assert!(
            job.last_error.as_deref().unwrap_or("").contains("disabled"),
            "{job:?}"
        );
    }
    for id in others {
        assert_eq!(store.job(id).await.unwrap().state, JobState::Available);
    }
    assert!(
        context
            .sync_now("ws_1", Provider::Foreflight, None)
            .await
            .is_err(),
        "disabled"
    );
    assert_eq!(jobs_of(&store, "sync", "ws_1").await.len(), 2, "no new job");

    // Enabling again plans them again.
    context
        .put(
            "ws_1",
            Provider::Foreflight,
            request(body(true, &["flights"], "daily")),
        )
        .await
        .expect("enable");
    let rows = schedules(&context, &a.id).await;
    assert_eq!(rows.len(), 1);
    assert!(rows[0].enabled && rows[0].next_run_at.is_some());
}

#[tokio::test]
async fn the_frequency_becomes_spread_schedules_and_disabling_stops_them_on_sqlite() {
    frequency_becomes_schedules(Backend::Sqlite).await;
}

#[tokio::test]
async fn the_frequency_becomes_spread_schedules_and_disabling_stops_them_on_postgres() {
    frequency_becomes_schedules(Backend::Postgres).await;
}
