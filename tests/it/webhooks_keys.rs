//! `hangar keys rotate` re-seals the webhook endpoints' secrets too: after it, a server with
//! the new key alone signs deliveries with the same endpoint secrets, on both backends.

use serde_json::json;

use crate::receiver::Receiver;
use crate::support::{ANY_PORT, Backend, TestDb, stdout_ok};
use crate::webhooks_support::{
    Hangar, POOLS, event, plane_verifies, standard_verifies, token, until,
};

async fn rotation_keeps_endpoint_secrets(backend: Backend) {
    let db = TestDb::new(backend).await;
    let receiver = Receiver::start().await;
    let (owner, secret) = {
        let hangar = Hangar::start(&db).await;
        let owner = token(&db, "owner");
        let created = hangar
            .create(&owner, "ws_1", json!({"url": receiver.url("/k")}))
            .await;
        (
            owner,
            created["secret"].as_str().expect("secret").to_owned(),
        )
    };
    let new_key = stdout_ok(&db.run(&["keys", "generate"])).trim().to_owned();
    let rotated = stdout_ok(&db.run(&["keys", "rotate", "--new-key", &new_key]));
    assert!(rotated.contains("re-encrypted 1 secret"), "{rotated}");

    db.pools(POOLS);
    let mut command = db.command(&["serve", "--bind", ANY_PORT]);
    command.env("HANGAR_MASTER_KEY", &new_key);
    let hangar = Hangar::start_with(&db, command).await;
    hangar
        .publish(&owner, &event("evt_k", "trip.created", "ws_1"))
        .await;
    until("the delivery", || async {
        !receiver.hits_on("/k").is_empty()
    })
    .await;
    let hit = &receiver.hits_on("/k")[0];
    assert!(standard_verifies(hit, &secret) && plane_verifies(hit, &secret));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_reseals_webhook_secrets_postgres() {
    rotation_keeps_endpoint_secrets(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_reseals_webhook_secrets_sqlite() {
    rotation_keeps_endpoint_secrets(Backend::Sqlite).await;
}
