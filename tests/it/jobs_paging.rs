//! The jobs list's filters and cursor pages on both backends, the same in the three places
//! that list jobs: `GET /api/v1/jobs` (queue, id, idempotency key, creation time range,
//! `cursor` from the `Link` header), the dashboard's `/jobs` (pages of 100 with Older and
//! Newest links keeping the filters, states as repeated checkboxes) and `hangar jobs list`
//! (`--queue --key --since --cursor`).

use hangar_workers::job::{JobId, NewJob};
use hangar_workers::store::Store;
use reqwest::StatusCode;
use reqwest::header::LINK;
use serde_json::{Value, json};

use crate::dashboard::Dash;
use crate::support::{Backend, stdout_ok};

/// `n` jobs of `queue`, parked a day ahead, keyed `{queue}-{i}`, in workspace `ws_1`;
/// their ids, oldest first.
async fn parked(store: &Store, queue: &str, n: usize) -> Vec<JobId> {
    let mut ids = Vec::new();
    for i in 0..n {
        let mut job = NewJob::new("noop", json!({}));
        job.queue = queue.to_owned();
        job.workspace_id = Some("ws_1".to_owned());
        job.idempotency_key = Some(format!("{queue}-{i}"));
        job.run_at = Some(chrono::Utc::now() + chrono::Duration::days(1));
        ids.push(store.enqueue(&job).await.expect("enqueue").id);
    }
    ids
}

/// `GET path` with `token`: status, the `Link` header's URL, the body.
async fn api(dash: &Dash, token: &str, path: &str) -> (StatusCode, Option<String>, Value) {
    let response = dash
        .http
        .get(format!("{}{path}", dash.base))
        .bearer_auth(token)
        .send()
        .await
        .expect("response");
    let status = response.status();
    let link = response.headers().get(LINK).map(|v| {
        let v = v.to_str().expect("ascii");
        assert!(v.ends_with(">; rel=\"next\""), "{v}");
        v[1..v.find('>').expect(">")].to_owned()
    });
    (status, link, response.json().await.expect("json"))
}

fn ids_of(body: &Value) -> Vec<i64> {
    body.as_array()
        .expect("array")
        .iter()
        .map(|j| j["id"].as_i64().expect("id"))
        .collect()
}

async fn filters_and_pages(backend: Backend) {
    let dash = Dash::start_on(backend, false).await;
    let store = dash.db.store().await;
    let a = parked(&store, "pg_a", 5).await;
    let b = parked(&store, "pg_b", 2).await;
    let token = dash.token(&["--role", "viewer"]);
    let newest_first = |ids: &[JobId]| ids.iter().rev().map(|id| id.0).collect::<Vec<i64>>();

    // The API: pages of 2 of queue pg_a, followed by their links, newest first, no repeat.
    let mut path = "/api/v1/jobs?queue=pg_a&limit=2".to_owned();
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let (status, link, body) = api(&dash, &token, &path).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        seen.extend(ids_of(&body));
        pages += 1;
        match link {
            Some(next) => {
                assert!(
                    next.contains("queue=pg_a") && next.contains("cursor="),
                    "{next}"
                );
                path = next;
            }
            None => break,
        }
    }
    assert_eq!(seen, newest_first(&a));
    assert_eq!(pages, 3);
    // Search by idempotency key and by id; the time range.
    let (_, link, body) = api(&dash, &token, "/api/v1/jobs?idempotency_key=pg_b-1").await;
    assert_eq!((ids_of(&body), link), (vec![b[1].0], None));
    let (_, _, body) = api(&dash, &token, &format!("/api/v1/jobs?id={}", a[2])).await;
    assert_eq!(ids_of(&body), vec![a[2].0]);
    let soon = (chrono::Utc::now() + chrono::Duration::minutes(5)).to_rfc3339();
    let soon = soon.replace('+', "%2B");
    let (_, _, body) = api(&dash, &token, &format!("/api/v1/jobs?created_from={soon}")).await;
    assert_eq!(ids_of(&body), Vec::<i64>::new());
    let (_, _, body) = api(&dash, &token, &format!("/api/v1/jobs?created_until={soon}")).await;
    assert_eq!(ids_of(&body).len(), 7);
    for (path, says) in [
        ("/api/v1/jobs?cursor=abc", "cursor"),
        ("/api/v1/jobs?created_from=yesterday", "created_from"),
    ] {
        let (status, _, body) = api(&dash, &token, path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains(says),
            "{body}"
        );
    }
    // Another workspace's token finds nothing by id.
    let other = dash.token(&["--role", "viewer", "--workspace", "ws_2"]);
    let (_, _, body) = api(&dash, &other, &format!("/api/v1/jobs?id={}", a[0])).await;
    assert_eq!(ids_of(&body), Vec::<i64>::new());

    // The dashboard: 105 jobs of pg_c are a page of 100 and one of 5.
    let c = parked(&store, "pg_c", 105).await;
    let session = dash.sign_in(&token).await;
    let (status, _, page) = dash
        .get("/jobs?queue=pg_c&state=scheduled", Some(&session))
        .await;
    assert_eq!(status, StatusCode::OK);
    let listed = |page: &str, id: JobId| page.contains(&format!("href=\"/jobs/{id}\""));
    assert!(
        listed(&page, c[104]) && listed(&page, c[5]),
        "the newest 100"
    );
    assert!(!listed(&page, c[4]) && !listed(&page, a[4]), "{page}");
    let older = format!(
        "href=\"/jobs?state=scheduled&amp;queue=pg_c&amp;cursor={}\" rel=\"next\"",
        c[5]
    );
    assert!(
        page.contains(&older),
        "an Older link keeping the filters: {page}"
    );
    let (_, _, second) = dash
        .get(
            &format!("/jobs?state=scheduled&queue=pg_c&cursor={}", c[5]),
            Some(&session),
        )
        .await;
    for id in &c[..5] {
        assert!(listed(&second, *id), "{second}");
    }
    assert!(!listed(&second, c[5]) && !second.contains("rel=\"next\""));
    assert!(second.contains("← Newest"), "{second}");
    // States as the form sends them (repeated), the key and the id searches.
    let (_, _, page) = dash
        .get(
            "/jobs?state=scheduled&state=cancelled&key=pg_a-3",
            Some(&session),
        )
        .await;
    assert!(listed(&page, a[3]) && !listed(&page, a[2]), "{page}");
    assert!(page.contains("value=\"cancelled\" checked"), "{page}");
    let (_, _, page) = dash
        .get(&format!("/jobs?id={}", b[0]), Some(&session))
        .await;
    assert!(listed(&page, b[0]) && !listed(&page, b[1]), "{page}");
    let (status, _, _) = dash.get("/jobs?from=soon", Some(&session)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // The CLI: a page, the cursor it prints, the next page.
    let out = stdout_ok(
        &dash
            .db
            .run(&["jobs", "list", "--queue", "pg_a", "--limit", "3"]),
    );
    let cursor = out
        .split("--cursor ")
        .nth(1)
        .expect("a next-page cursor")
        .trim()
        .to_owned();
    assert_eq!(cursor, a[2].to_string(), "{out}");
    let out = stdout_ok(&dash.db.run(&[
        "jobs", "list", "--queue", "pg_a", "--limit", "3", "--cursor", &cursor, "--json",
    ]));
    let body: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(ids_of(&body), vec![a[1].0, a[0].0]);
    let out = stdout_ok(&dash.db.run(&["jobs", "list", "--key", "pg_b-0", "--json"]));
    let body: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(ids_of(&body), vec![b[0].0]);
}

#[tokio::test]
async fn jobs_paging_filters_and_cursors_on_postgres() {
    filters_and_pages(Backend::Postgres).await;
}

#[tokio::test]
async fn jobs_paging_filters_and_cursors_on_sqlite() {
    filters_and_pages(Backend::Sqlite).await;
}
