//! `hangar keys rotate` re-seals the inbound hooks' material too: after it, a server with the
//! new key alone verifies a push with the secret generated before the rotation, on both
//! backends.

use chrono::Utc;
use serde_json::json;

use crate::inbound_support::{configure, envelope, plane, push, start};
use crate::support::{ANY_PORT, Backend, TestDb, stdout_ok};
use crate::webhooks_support::{Hangar, token};

async fn rotation_keeps_inbound_material(backend: Backend) {
    let db = TestDb::new(backend).await;
    let secret = {
        let hangar = start(&db).await;
        let owner = token(&db, "owner");
        let (status, answer) = configure(&hangar, &owner, "ws_k", "foreflight", json!({})).await;
        assert_eq!(status, 200, "{answer}");
        answer["credentials"]["secret"]
            .as_str()
            .expect("secret")
            .to_owned()
    };
    let new_key = stdout_ok(&db.run(&["keys", "generate"])).trim().to_owned();
    let rotated = stdout_ok(&db.run(&["keys", "rotate", "--new-key", &new_key]));
    assert!(rotated.contains("re-encrypted 1 secret"), "{rotated}");

    let mut command = db.command(&["serve", "--bind", ANY_PORT]);
    command.env("HANGAR_MASTER_KEY", &new_key);
    let hangar = Hangar::start_with(&db, command).await;
    let body = envelope("ff_k", "trip.updated", json!({"trip_id": "t_k"}));
    let (status, answer) = push(
        &hangar,
        "foreflight",
        "ws_k",
        &plane(&secret, Utc::now(), &body),
        &body,
    )
    .await;
    assert_eq!(
        status, 200,
        "the material opens under the new key alone: {answer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_reseals_inbound_material_postgres() {
    rotation_keeps_inbound_material(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_reseals_inbound_material_sqlite() {
    rotation_keeps_inbound_material(Backend::Sqlite).await;
}
