//! `hangar integrations list|show|sync` on both backends: the integration JSON without a
//! credential, one integration with its schedules, a manual sync's job ids, and errors that
//! name what was wrong.

use hangar_integrations::provider::Provider;
use serde_json::{Value, json};

use crate::integrations_support::{context, jobs_of, request};
use crate::support::{Backend, TestDb, stdout_ok};

async fn cli(backend: Backend) {
    let db = TestDb::new(backend).await;
    let (store, context) = context(&db).await;
    let integration = context
        .put(
            "ws_1",
            Provider::Foreflight,
            request(json!({"enabled": true, "data_types": ["flights", "trips"],
                "frequency": "every_6_hours", "credentials": {"api_key": "cli-SECRET-key"}})),
        )
        .await
        .expect("put");

    let listed = stdout_ok(&db.run(&["integrations", "list", "--json"]));
    assert!(!listed.contains("cli-SECRET-key"), "{listed}");
    let listed: Value = serde_json::from_str(&listed).expect("json");
    assert_eq!(listed[0]["id"], integration.id.as_str());
    assert_eq!(listed[0]["status"], "active");
    assert_eq!(listed[0]["auth"], "api_key");
    let table = stdout_ok(&db.run(&["integrations", "list", "--workspace", "ws_1"]));
    assert!(
        table.contains("foreflight") && table.contains("every_6_hours"),
        "{table}"
    );
    assert!(!table.contains("cli-SECRET-key"));

    let shown: Value = serde_json::from_str(&stdout_ok(&db.run(&[
        "integrations",
        "show",
        "ws_1",
        "foreflight",
        "--json",
    ])))
    .expect("json");
    assert_eq!(shown["id"], integration.id.as_str());
    assert_eq!(
        shown["schedules"].as_array().map(Vec::len),
        Some(2),
        "{shown}"
    );
    let by_id = stdout_ok(&db.run(&["integrations", "show", &integration.id]));
    assert!(
        by_id.contains(&format!("integration:{}:flights", integration.id)),
        "{by_id}"
    );

    let started: Value = serde_json::from_str(&stdout_ok(&db.run(&[
        "integrations",
        "sync",
        "ws_1",
        "foreflight",
        "--data-type",
        "flights",
        "--json",
    ])))
    .expect("json");
    assert_eq!(
        started["ids"].as_array().map(Vec::len),
        Some(1),
        "{started}"
    );
    let jobs = jobs_of(&store, "sync", "ws_1").await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(json!(jobs[0].id), started["id"]);
    assert_eq!(jobs[0].args["trigger"], "manual");

    let unknown = db.run(&["integrations", "sync", "ws_1", "quickbook"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unknown provider"));
    let none = db.run(&["integrations", "show", "ws_9", "foreflight"]);
    assert_eq!(none.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&none.stderr).contains("has no foreflight integration"));
}

#[tokio::test]
async fn the_integrations_commands_list_show_and_sync_on_sqlite() {
    cli(Backend::Sqlite).await;
}

#[tokio::test]
async fn the_integrations_commands_list_show_and_sync_on_postgres() {
    cli(Backend::Postgres).await;
}

async fn key_rotation(backend: Backend) {
    let db = TestDb::new(backend).await;
    let (_, context) = context(&db).await;
    let integration = context
        .put(
            "ws_1",
            Provider::Foreflight,
            request(json!({"enabled": false, "frequency": "manual",
                "credentials": {"api_key": "rotate-SECRET-key"}})),
        )
        .await
        .expect("put");
    let new_key = stdout_ok(&db.run(&["keys", "generate"])).trim().to_owned();
    let rotated = stdout_ok(&db.run(&["keys", "rotate", "--new-key", &new_key]));
    assert!(rotated.contains("re-encrypted 1 secret"), "{rotated}");
    let row = context.rows.get(&integration.id).await.expect("row");
    assert_eq!(
        row.integration.credential_version, 1,
        "the tokens did not change"
    );
    let new_ring = hangar_workers::secrets::Keyring::parse(&new_key, "new").unwrap();
    let sealed = row.sealed.as_deref().unwrap();
    let opened = hangar_integrations::credentials::open(&new_ring, &integration.id, sealed)
        .expect("opens with the new key alone");
    assert_eq!(opened.bearer(), "rotate-SECRET-key");
    assert!(
        hangar_integrations::credentials::open(&context.keyring, &integration.id, sealed).is_err(),
        "no longer sealed with the old key"
    );
}

#[tokio::test]
async fn keys_rotate_reseals_the_integrations_credentials_on_sqlite() {
    key_rotation(Backend::Sqlite).await;
}

#[tokio::test]
async fn keys_rotate_reseals_the_integrations_credentials_on_postgres() {
    key_rotation(Backend::Postgres).await;
}
