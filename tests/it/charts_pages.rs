//! The charts of the webhook endpoint and sync runs pages, on both backends: an endpoint's
//! deliveries by outcome (`GET …/webhook-endpoints/{id}/series`) and a workspace's sync runs by
//! status with their records (`GET …/sync-runs/series`), the pages drawing exactly the API's
//! numbers for the hour and the day, with the routes' roles and workspace scoping.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::receiver::Receiver;
use crate::support::{Backend, TestDb, dashboard_session};
use crate::webhooks_support::{Hangar, event, token, until};
use hangar_integrations::store::SyncStore;
use hangar_integrations::store::sync_runs::{Counts, NewRun, RunEnd};

/// `GET path` with a bearer token: status and JSON body.
async fn get_json(base: &str, path: &str, token: &str) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .get(format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .expect("response");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A page of the dashboard.
async fn page(base: &str, path: &str, session: &str) -> String {
    let response = reqwest::Client::new()
        .get(format!("{base}{path}"))
        .header("cookie", format!("hangar_session={session}"))
        .send()
        .await
        .expect("response");
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    response.text().await.expect("body")
}

/// The `data-values` of the chart whose `data-series` is `series` on `page`, one vector per
/// series.
fn drawn(page: &str, series: &str) -> Vec<Vec<i64>> {
    let at = page
        .find(&format!("data-series=\"{series}\""))
        .unwrap_or_else(|| panic!("no chart of {series}: {page}"));
    let rest = &page[at..];
    let start = rest.find("data-values=\"").expect("data-values") + 13;
    rest[start..start + rest[start..].find('"').expect("end")]
        .split(';')
        .map(|c| c.split(',').map(|n| n.parse().expect("n")).collect())
        .collect()
}

/// The API's series as vectors of the named fields.
fn columns(series: &Value, names: &[&str]) -> Vec<Vec<i64>> {
    let points = series["points"].as_array().expect("points");
    names
        .iter()
        .map(|n| points.iter().map(|p| p[n].as_i64().expect("n")).collect())
        .collect()
}

async fn delivery_charts(backend: Backend) {
    let db = TestDb::new(backend).await;
    let hangar = Hangar::start(&db).await;
    let owner = token(&db, "owner");
    let receiver = Receiver::start().await;
    let good = hangar
        .create(
            &owner,
            "ws_1",
            json!({"url": receiver.url("/ok"), "event_types": ["trip.created"]}),
        )
        .await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let bad = hangar
        .create(
            &owner,
            "ws_1",
            json!({"url": receiver.url("/status/400"), "event_types": ["trip.updated"]}),
        )
        .await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    for (id, kind) in [
        ("evt_1", "trip.created"),
        ("evt_2", "trip.created"),
        ("evt_3", "trip.updated"),
    ] {
        hangar.publish(&owner, &event(id, kind, "ws_1")).await;
    }
    until("the deliveries to settle", || async {
        let a = hangar.deliveries(&owner, "ws_1", &good).await;
        let b = hangar.deliveries(&owner, "ws_1", &bad).await;
        a.len() == 2
            && a.iter().all(|d| d["state"] == "succeeded")
            && b.first().is_some_and(|d| d["state"] == "failed")
    })
    .await;

    let session = dashboard_session(&hangar.base, &owner).await;
    let names = ["succeeded", "failed", "retrying", "waiting"];
    for (endpoint, totals) in [(&good, [2, 0, 0, 0]), (&bad, [0, 1, 0, 0])] {
        for window in ["hour", "day"] {
            let path = format!(
                "/api/v1/workspaces/ws_1/webhook-endpoints/{endpoint}/series?window={window}"
            );
            let (status, series) = get_json(&hangar.base, &path, &owner).await;
            assert_eq!(status, StatusCode::OK, "{series}");
            let api = columns(&series, &names);
            assert_eq!(api[0].len(), if window == "day" { 96 } else { 60 });
            let sums: Vec<i64> = api.iter().map(|c| c.iter().sum()).collect();
            assert_eq!(sums, totals, "{window}");
            let shown = page(
                &hangar.base,
                &format!("/webhooks/{endpoint}?window={window}"),
                &session,
            )
            .await;
            assert_eq!(
                drawn(&shown, &names.join(",")),
                api,
                "the page draws the API's numbers"
            );
        }
    }
    // Roles and scoping: a viewer and another workspace's admin get 403, an unknown endpoint
    // 404, an unknown parameter 400.
    let other = crate::support::stdout_ok(&db.run(&[
        "tokens",
        "create",
        "--role",
        "admin",
        "--workspace",
        "ws_2",
    ]));
    let series = format!("/api/v1/workspaces/ws_1/webhook-endpoints/{good}/series");
    for (token, path, status) in [
        (token(&db, "viewer"), series.clone(), StatusCode::FORBIDDEN),
        (
            other.trim().to_owned(),
            series.clone(),
            StatusCode::FORBIDDEN,
        ),
        (
            owner.clone(),
            "/api/v1/workspaces/ws_1/webhook-endpoints/we_none/series".to_owned(),
            StatusCode::NOT_FOUND,
        ),
        (
            owner.clone(),
            format!("{series}?window=week"),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        assert_eq!(
            get_json(&hangar.base, &path, &token).await.0,
            status,
            "{path}"
        );
    }
}

#[tokio::test]
async fn webhook_endpoint_chart_draws_the_series_api_on_postgres() {
    delivery_charts(Backend::Postgres).await;
}

#[tokio::test]
async fn webhook_endpoint_chart_draws_the_series_api_on_sqlite() {
    delivery_charts(Backend::Sqlite).await;
}

async fn sync_run_charts(backend: Backend) {
    let db = TestDb::new(backend).await;
    let hangar = Hangar::start(&db).await;
    let store = db.store().await;
    let runs = SyncStore::new(store.database().clone());
    // Three runs in ws_1 (two succeeded with records, one failed) and one in ws_2.
    for (id, ws, status, read, created) in [
        ("run_1", "ws_1", "succeeded", 10, 4),
        ("run_2", "ws_1", "succeeded", 5, 1),
        ("run_3", "ws_1", "failed", 0, 0),
        ("run_4", "ws_2", "succeeded", 7, 7),
    ] {
        runs.start_run(&NewRun {
            id: id.to_owned(),
            integration_id: format!("int_{ws}"),
            workspace_id: ws.to_owned(),
            provider: "quickbooks".to_owned(),
            data_type: "payments".to_owned(),
            direction: "in".to_owned(),
            trigger: "manual".to_owned(),
            job_id: None,
            credential_version: None,
            cursor_before: None,
        })
        .await
        .expect("start");
        runs.add_run_counts(
            id,
            &Counts {
                read,
                created,
                ..Counts::default()
            },
        )
        .await
        .expect("counts");
        runs.finish_run(
            id,
            &RunEnd {
                status: status.to_owned(),
                cursor_after: None,
                provider_calls: 1,
                rate_wait_ms: 0,
                error_class: None,
                error: None,
                log: Vec::new(),
                credential_version: None,
            },
        )
        .await
        .expect("finish");
    }
    let viewer = token(&db, "viewer");
    let session = dashboard_session(&hangar.base, &viewer).await;
    let statuses = ["succeeded", "failed", "rate_limited", "running"];
    for window in ["hour", "day"] {
        let (status, series) = get_json(
            &hangar.base,
            &format!("/api/v1/workspaces/ws_1/sync-runs/series?window={window}"),
            &viewer,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{series}");
        let api = columns(&series, &statuses);
        let sums: Vec<i64> = api.iter().map(|c| c.iter().sum()).collect();
        assert_eq!(sums, [2, 1, 0, 0], "ws_1's runs only ({window})");
        let records = columns(&series, &["records_read", "records_applied"]);
        let sums: Vec<i64> = records.iter().map(|c| c.iter().sum()).collect();
        assert_eq!(sums, [15, 5], "{window}");
        let shown = page(
            &hangar.base,
            &format!("/sync-runs?workspace=ws_1&window={window}"),
            &session,
        )
        .await;
        assert_eq!(
            drawn(&shown, &statuses.join(",")),
            api,
            "the page draws the API's runs"
        );
        assert_eq!(
            drawn(&shown, "read,applied"),
            records,
            "and the API's records"
        );
    }
    let scoped = crate::support::stdout_ok(&db.run(&[
        "tokens",
        "create",
        "--role",
        "viewer",
        "--workspace",
        "ws_2",
    ]));
    let (status, _) = get_json(
        &hangar.base,
        "/api/v1/workspaces/ws_1/sync-runs/series",
        scoped.trim(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "another workspace's token");
}

#[tokio::test]
async fn sync_runs_chart_draws_the_series_api_on_postgres() {
    sync_run_charts(Backend::Postgres).await;
}

#[tokio::test]
async fn sync_runs_chart_draws_the_series_api_on_sqlite() {
    sync_run_charts(Backend::Sqlite).await;
}
