//! "Never logged", proven: a `serve` at debug level (every crate's debug lines: sqlx,
//! hyper, reqwest, Hangar's own) is taken through a connection's whole life with known
//! secrets (credentials given, read back, refused when malformed, a manual sync, a token
//! refresh that rotates the refresh token, a refusal that marks it `needs_reauth`), and its
//! log is searched for every one of them, old and new. The refreshes are counted in
//! `hangar_token_refreshes_total{outcome}`.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::integrations_support::{POOLS, wait_status};
use crate::oauth_server::{Mode, OAuthServer};
use crate::support::{ANY_PORT, Backend, TestDb, stdout_ok, wait_for};

async fn no_secret_in_any_log_line(backend: Backend) {
    let db = TestDb::new(backend).await;
    db.pools(POOLS);
    let (_, context) = crate::integrations_support::context(&db).await;
    let server =
        OAuthServer::start("refresh-SECRET-original-5e1", Mode::Tokens(Duration::ZERO)).await;
    let mut command = db.command(&["serve", "--bind", ANY_PORT]);
    command.env("HANGAR_LOG", "debug");
    let mut serve = db.spawn_command("serve", command);
    let base = format!("http://{}", serve.address().await);
    let admin = stdout_ok(&db.run(&["tokens", "create", "--role", "admin"]))
        .trim()
        .to_owned();
    let http = reqwest::Client::new();
    let url = format!("{base}/api/v1/workspaces/ws_1/integrations/quickbooks");
    let body = json!({
        "enabled": true,
        "data_types": ["payments"],
        "frequency": "hourly",
        "settings": {"realm_id": "9130", "base_url": server.base},
        "credentials": {"oauth": {
            "access_token": "access-SECRET-initial-77a",
            "refresh_token": "refresh-SECRET-original-5e1",
            "expires_at": (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339(),
            "token_url": server.token_url(),
            "client_id": server.client_id,
            "client_secret": server.client_secret,
            "scopes": [],
        }},
    });
    let put = http
        .put(&url)
        .bearer_auth(&admin)
        .json(&body)
        .send()
        .await
        .expect("put");
    assert_eq!(put.status(), StatusCode::OK);
    let id = put.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let api_key_url = format!("{base}/api/v1/workspaces/ws_1/integrations/foreflight");
    let answer = http
        .put(&api_key_url)
        .bearer_auth(&admin)
        .json(
            &json!({"enabled": true, "data_types": ["flights"], "frequency": "daily",
            "credentials": {"api_key": "apikey-SECRET-ff-31c"}}),
        )
        .send()
        .await
        .expect("put api key");
    assert_eq!(answer.status(), StatusCode::OK);
    // A malformed credential is refused (and not echoed, nor logged).
    let refused = http
        .put(&url)
        .bearer_auth(&admin)
        .json(
            &json!({"enabled": true, "data_types": ["payments"], "frequency": "hourly",
            "credentials": "bare-SECRET-string-0c9"}),
        )
        .send()
        .await
        .expect("refused");
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    http.get(&url)
        .bearer_auth(&admin)
        .send()
        .await
        .expect("get");
    let sync = http
        .post(format!("{url}/sync"))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("sync");
    assert_eq!(sync.status(), StatusCode::ACCEPTED);

    // A refresh through the serve's worker: new tokens, the refresh token rotated.
    let job = context.job(
        "token_refresh",
        "ws_1",
        json!({"integration_id": id, "version": 1}),
    );
    context.store.enqueue(&job).await.expect("enqueue");
    wait_for("the refresh", Duration::from_secs(30), || async {
        let row = context.rows.get(&id).await.ok()?;
        (row.integration.credential_version == 2).then_some(())
    })
    .await;
    // Then a refusal: needs_reauth.
    server.set_mode(Mode::InvalidGrant);
    let job = context.job(
        "token_refresh",
        "ws_1",
        json!({"integration_id": id, "version": 2}),
    );
    context.store.enqueue(&job).await.expect("enqueue");
    wait_status(&context, &id, "needs_reauth", Duration::from_secs(30)).await;
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for outcome in ["refreshed", "needs_reauth"] {
        let line = format!("hangar_token_refreshes_total{{outcome=\"{outcome}\"}} 1");
        assert!(metrics.contains(&line), "{line} in:\n{metrics}");
    }
    serve.terminate();

    let log = serve.log();
    assert!(log.contains("DEBUG"), "the run logged at debug level");
    assert!(
        log.contains("token refreshed") && log.contains("needs re-authorisation"),
        "{log}"
    );
    let secrets = [
        "access-SECRET-initial-77a",
        "refresh-SECRET-original-5e1",
        server.client_secret.as_str(),
        "apikey-SECRET-ff-31c",
        "bare-SECRET-string-0c9",
        &OAuthServer::access_token(1),
        "refresh-token-rotated-1",
    ];
    for secret in secrets {
        for (n, line) in log.lines().enumerate() {
            assert!(
                !line.contains(secret),
                "log line {n} holds a secret: {line}"
            );
        }
    }
}

#[tokio::test]
async fn no_log_line_of_a_debug_run_holds_a_credential_on_sqlite() {
    no_secret_in_any_log_line(Backend::Sqlite).await;
}

#[tokio::test]
async fn no_log_line_of_a_debug_run_holds_a_credential_on_postgres() {
    no_secret_in_any_log_line(Backend::Postgres).await;
}
