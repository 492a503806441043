//! The sync runs and conflicts over HTTP and the CLI, on both backends: a run's JSON has
//! CONTRACT's fields, its changes are the stream's objects, conflicts are listed to viewers
//! and resolved by admins (422 for a bad `take`, 409 when already resolved), and
//! `hangar conflicts list|resolve` does the same at the machine.

use chrono::Utc;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{Backend, serve_http, stdout_ok};
use crate::sync_support::{INTEGRATION, SyncWorld, WORKSPACE};

async fn call(
    method: reqwest::Method,
    url: &str,
    token: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new()
        .request(method, url)
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("response");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Two payments changed on both sides: two open conflicts.
async fn world_with_conflicts(backend: Backend) -> SyncWorld {
    let w = SyncWorld::new(backend, None).await;
    w.sim.add_payments(3, chrono::Duration::hours(1));
    w.sync_payments().await.expect("first sync");
    for id in ["1", "3"] {
        w.store
            .record_ours(
                INTEGRATION,
                "Payment",
                id,
                &json!({"TotalAmt": 5.0}),
                Utc::now(),
            )
            .await
            .unwrap();
        w.sim.edit("Payment", id, |p| p["TotalAmt"] = json!(6.0));
    }
    w.sync_payments().await.expect("second sync");
    w
}

async fn runs_and_conflicts_over_http_and_the_cli(backend: Backend) {
    let w = world_with_conflicts(backend).await;
    let (_serve, base) = serve_http(&w.db).await;
    let token = |role: &str| {
        stdout_ok(
            &w.db
                .run(&["tokens", "create", "--role", role, "--workspace", WORKSPACE]),
        )
        .trim()
        .to_owned()
    };
    let (viewer, admin) = (token("viewer"), token("admin"));
    let get = reqwest::Method::GET;
    let post = reqwest::Method::POST;

    let (status, runs) = call(
        get.clone(),
        &format!("{base}/api/v1/workspaces/{WORKSPACE}/sync-runs"),
        &viewer,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{runs}");
    let runs = runs.as_array().unwrap().clone();
    assert_eq!(runs.len(), 2);
    let newest = &runs[0];
    for field in [
        "id",
        "provider",
        "data_type",
        "direction",
        "trigger",
        "status",
        "started_at",
        "finished_at",
        "records",
        "error",
    ] {
        assert!(newest.get(field).is_some(), "{field} in {newest}");
    }
    assert_eq!(newest["provider"], "quickbooks");
    assert_eq!(newest["status"], "succeeded");
    let records = &newest["records"];
    assert_eq!(
        (
            &records["created"],
            &records["updated"],
            &records["removed"],
            &records["conflicted"]
        ),
        (&json!(0), &json!(0), &json!(0), &json!(2)),
        "{records}"
    );
    // The last page re-reads the newest records (inclusive boundary): skipped.
    assert_eq!(
        records["read"].as_i64(),
        Some(2 + records["skipped"].as_i64().unwrap())
    );
    let run_id = newest["id"].as_str().unwrap();
    let (status, one) = call(
        get.clone(),
        &format!("{base}/api/v1/workspaces/{WORKSPACE}/sync-runs/{run_id}"),
        &viewer,
        None,
    )
    .await;
    assert_eq!((status, &one["id"]), (StatusCode::OK, &newest["id"]));
    let (status, _) = call(
        get.clone(),
        &format!("{base}/api/v1/workspaces/{WORKSPACE}/sync-runs/run_nope"),
        &viewer,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The changes over HTTP are the stream's objects.
    let (status, changes) = call(
        get.clone(),
        &format!("{base}/api/v1/workspaces/{WORKSPACE}/sync-runs/{run_id}/changes"),
        &viewer,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let stored: Vec<Value> = w
        .store
        .changes(run_id, 0, 100)
        .await
        .unwrap()
        .iter()
        .map(|c| c.contract_json())
        .collect();
    assert_eq!(changes, Value::from(stored));
    assert_eq!(changes.as_array().unwrap().len(), 2);

    // Conflicts: viewers list, admins resolve.
    let (status, conflicts) = call(
        get.clone(),
        &format!("{base}/api/v1/conflicts"),
        &viewer,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let conflicts = conflicts.as_array().unwrap().clone();
    assert_eq!(conflicts.len(), 2);
    let id = conflicts[0]["id"].as_str().unwrap().to_owned();
    let resolve = format!("{base}/api/v1/conflicts/{id}/resolve");
    let (status, error) = call(
        post.clone(),
        &resolve,
        &viewer,
        Some(json!({"take": "theirs"})),
    )
    .await;
    assert_eq!(
        (status, &error["error"]["code"]),
        (StatusCode::FORBIDDEN, &json!("forbidden"))
    );
    let (status, error) = call(
        post.clone(),
        &resolve,
        &admin,
        Some(json!({"take": "sideways"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert!(error["error"]["message"].as_str().unwrap().contains("take"));
    let (status, resolved) = call(
        post.clone(),
        &resolve,
        &admin,
        Some(json!({"take": "theirs"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{resolved}");
    assert_eq!(resolved["resolution"], "theirs");
    let (status, error) = call(
        post.clone(),
        &resolve,
        &admin,
        Some(json!({"take": "ours"})),
    )
    .await;
    assert_eq!(
        (status, &error["error"]["code"]),
        (StatusCode::CONFLICT, &json!("conflict"))
    );
    let (_, open) = call(
        get.clone(),
        &format!("{base}/api/v1/conflicts"),
        &viewer,
        None,
    )
    .await;
    assert_eq!(open.as_array().unwrap().len(), 1);

    // The CLI.
    let listed: Value =
        serde_json::from_str(&stdout_ok(&w.db.run(&["conflicts", "list", "--json"]))).unwrap();
    let other = listed.as_array().unwrap();
    assert_eq!(other.len(), 1);
    let other_id = other[0]["id"].as_str().unwrap();
    assert_ne!(other_id, id);
    let table = stdout_ok(&w.db.run(&["conflicts", "list"]));
    assert!(
        table.contains(other_id) && table.contains("changed_on_both_sides"),
        "{table}"
    );
    let bad =
        w.db.run(&["conflicts", "resolve", other_id, "--take", "mine"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--take"));
    let done: Value = serde_json::from_str(&stdout_ok(&w.db.run(&[
        "conflicts",
        "resolve",
        other_id,
        "--take",
        "ours",
        "--json",
    ])))
    .unwrap();
    assert_eq!(done["resolution"], "ours");
    let (_, open) = call(get, &format!("{base}/api/v1/conflicts"), &viewer, None).await;
    assert_eq!(open, json!([]));
}

#[tokio::test]
async fn runs_and_conflicts_over_http_and_the_cli_postgres() {
    runs_and_conflicts_over_http_and_the_cli(Backend::Postgres).await;
}

#[tokio::test]
async fn runs_and_conflicts_over_http_and_the_cli_sqlite() {
    runs_and_conflicts_over_http_and_the_cli(Backend::Sqlite).await;
}
