//! Issue 15: the store's list of a workspace's events, by pages and filters, and where each
//! went (the fixture: `events_page.rs`).

use hangar_integrations::store::SyncStore;
use hangar_integrations::store::sync_runs::NewRun;
use hangar_workers::store::EventFilter;
use serde_json::json;

use crate::support::{Backend, TestDb};

use crate::events_page::publish_fixture;

fn ids(events: &[hangar_workers::store::EventSummary]) -> Vec<&str> {
    events.iter().map(|e| e.id.as_str()).collect()
}

async fn events_are_listed_by_pages_filtered_and_show_where_they_went(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let urls = publish_fixture(&store).await;

    // Newest first, two by two, with a cursor until the last page.
    let mut filter = EventFilter {
        workspace_id: Some("ws_1".to_owned()),
        limit: 2,
        ..EventFilter::default()
    };
    let mut pages = Vec::new();
    loop {
        let (page, next) = store.events_page(&filter).await.expect("page");
        pages.push(ids(&page).join(","));
        match next {
            Some(cursor) => filter.before = Some(cursor),
            None => break,
        }
    }
    assert_eq!(pages, ["evt_5,evt_4", "evt_3,evt_2", "evt_1"]);

    // Filters: type, workspace, time range.
    let trips = EventFilter {
        workspace_id: Some("ws_1".to_owned()),
        event_type: Some("trip.created".to_owned()),
        limit: 100,
        ..EventFilter::default()
    };
    let (page, _) = store.events_page(&trips).await.expect("trips");
    assert_eq!(ids(&page), ["evt_5", "evt_3", "evt_1"]);
    // Where each went, in the list: both endpoints and the subscription's job for a trip,
    // nothing for an invoice.
    assert_eq!((page[2].deliveries, page[2].jobs), (2, 1));
    let all = EventFilter {
        limit: 100,
        ..EventFilter::default()
    };
    let (page, _) = store.events_page(&all).await.expect("all");
    assert_eq!(page.len(), 6);
    assert_eq!(page[0].workspace_id, "ws_2");
    assert_eq!((page[0].deliveries, page[0].jobs), (1, 0));
    let invoices: Vec<_> = page
        .iter()
        .filter(|e| e.event_type == "invoice.paid")
        .collect();
    assert!(invoices.iter().all(|e| e.deliveries == 0 && e.jobs == 0));
    let later = EventFilter {
        since: Some(chrono::Utc::now() + chrono::Duration::minutes(1)),
        limit: 100,
        ..EventFilter::default()
    };
    assert!(store.events_page(&later).await.expect("later").0.is_empty());
    let earlier = EventFilter {
        until: Some(chrono::Utc::now() - chrono::Duration::hours(1)),
        limit: 100,
        ..EventFilter::default()
    };
    assert!(
        store
            .events_page(&earlier)
            .await
            .expect("earlier")
            .0
            .is_empty()
    );

    // One event: both deliveries (endpoint, state, attempts), the job its subscription
    // made and that job's sync run.
    let details = store
        .event_details(Some("ws_1"), "evt_1")
        .await
        .expect("evt_1");
    assert_eq!(details.len(), 1);
    let first = &details[0];
    assert_eq!(first.jobs.len(), 1);
    let job = first.jobs[0].clone();
    assert_eq!(job.kind, "noop");
    let mut went: Vec<(&str, &str, i32)> = first
        .deliveries
        .iter()
        .map(|d| (d.endpoint_url.as_str(), d.state.as_str(), d.attempts))
        .collect();
    went.sort();
    assert_eq!(
        went,
        [
            (urls[0].as_str(), "pending", 0),
            (urls[1].as_str(), "pending", 0)
        ]
    );
    assert!(first.deliveries.iter().all(|d| d.job_id.is_some()));
    assert_eq!(first.data, json!({"trip_id": "trp_9"}));
    let sync = SyncStore::new(store.database().clone());
    sync.start_run(&NewRun {
        id: "run_evt_1".to_owned(),
        integration_id: "int_1".to_owned(),
        workspace_id: "ws_1".to_owned(),
        provider: "quickbooks".to_owned(),
        data_type: "invoices".to_owned(),
        direction: "out".to_owned(),
        trigger: "event".to_owned(),
        job_id: Some(job.id),
        credential_version: None,
        cursor_before: None,
    })
    .await
    .expect("run");
    let since = first.event.received_at - chrono::Duration::minutes(5);
    let runs = sync
        .runs_of_jobs("ws_1", &[job.id], since)
        .await
        .expect("runs");
    let runs: Vec<&str> = runs.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(runs, ["run_evt_1"]);
    // Another workspace's run of the same job id, or a run before the event, is not its.
    assert!(
        sync.runs_of_jobs("ws_2", &[job.id], since)
            .await
            .expect("runs")
            .is_empty()
    );
    let after = chrono::Utc::now() + chrono::Duration::minutes(1);
    assert!(
        sync.runs_of_jobs("ws_1", &[job.id], after)
            .await
            .expect("runs")
            .is_empty()
    );

    // evt_1 exists in two workspaces: one detail per workspace without a workspace.
    let both = store.event_details(None, "evt_1").await.expect("both");
    let mut workspaces: Vec<&str> = both.iter().map(|d| d.event.workspace_id.as_str()).collect();
    workspaces.sort();
    assert_eq!(workspaces, ["ws_1", "ws_2"]);
    assert!(
        store
            .event_details(Some("ws_2"), "evt_3")
            .await
            .expect("none")
            .is_empty()
    );
}

#[tokio::test]
async fn events_are_listed_by_pages_filtered_and_show_where_they_went_postgres() {
    events_are_listed_by_pages_filtered_and_show_where_they_went(Backend::Postgres).await;
}

#[tokio::test]
async fn events_are_listed_by_pages_filtered_and_show_where_they_went_sqlite() {
    events_are_listed_by_pages_filtered_and_show_where_they_went(Backend::Sqlite).await;
}
