//! The SQLite default's master key file `<db>.key`: processes that start at once on a fresh
//! folder agree on one key, and `hangar keys rotate` leaves a running `serve` (still sealing
//! with the old key) readable by every process started afterwards.

use std::process::Stdio;
use std::time::Duration;

use hangar_workers::secrets::Keyring;
use serde_json::json;

use crate::support::{ANY_PORT, Backend, Receiver, TestDb, stdout_ok, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_starting_at_once_create_one_key_file() {
    let db = TestDb::new(Backend::Sqlite).await;
    db.store().await;
    let receiver = Receiver::start().await;
    let children: Vec<_> = (0..8)
        .map(|i| {
            let mut command = db.command(&[
                "alerts",
                "channels",
                "add",
                "slack",
                "--url",
                &receiver.url(&format!("/race{i}/T/B/x")),
            ]);
            command
                .env_remove("HANGAR_MASTER_KEY")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            command.spawn().unwrap()
        })
        .collect();
    let ids: Vec<String> = children
        .into_iter()
        .map(|child| {
            stdout_ok(&child.wait_with_output().unwrap())
                .trim()
                .to_owned()
        })
        .collect();
    let key_file = db.dir.path().join("hangar.db.key");
    let text = std::fs::read_to_string(&key_file).unwrap();
    assert_eq!(
        Keyring::parse(&text, "file")
            .unwrap()
            .ids()
            .split(',')
            .count(),
        1
    );
    let leftovers: Vec<_> = std::fs::read_dir(db.dir.path())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // Every channel, whichever process sealed it, opens with the one key.
    for id in &ids {
        let mut command = db.command(&["alerts", "channels", "test", id]);
        command.env_remove("HANGAR_MASTER_KEY");
        stdout_ok(&command.output().unwrap());
    }
    assert_eq!(receiver.hits_on("/race").len(), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_serve_running_across_keys_rotate_stays_readable() {
    let db = TestDb::new(Backend::Sqlite).await;
    db.store().await;
    let receiver = Receiver::start().await;
    let admin = stdout_ok(&db.run(&["tokens", "create", "--role", "admin"]))
        .trim()
        .to_owned();
    // `serve` without HANGAR_MASTER_KEY: it creates the key file and holds that key.
    let mut command = db.command(&["serve", "--bind", ANY_PORT]);
    command.env_remove("HANGAR_MASTER_KEY");
    let mut serve = db.spawn_command("serve", command);
    let base = format!("http://{}", serve.address().await);
    wait_for("the server", Duration::from_secs(30), || async {
        reqwest::get(format!("{base}/healthz"))
            .await
            .ok()
            .map(|_| ())
    })
    .await;
    let key_file = db.dir.path().join("hangar.db.key");
    let old = Keyring::parse(&std::fs::read_to_string(&key_file).unwrap(), "file").unwrap();

    let new_key = stdout_ok(&db.run(&["keys", "generate"])).trim().to_owned();
    let mut rotate = db.command(&["keys", "rotate", "--new-key", &new_key]);
    rotate.env_remove("HANGAR_MASTER_KEY");
    stdout_ok(&rotate.output().unwrap());
    let after = Keyring::parse(&std::fs::read_to_string(&key_file).unwrap(), "file").unwrap();
    assert_eq!(
        after.ids().split(',').nth(1),
        Some(old.ids().as_str()),
        "NEW,OLD"
    );

    // The running serve seals a new secret (with the key it holds, the old one)…
    let response = reqwest::Client::new()
        .post(format!("{base}/api/v1/workspaces/ws_1/alert-channels"))
        .bearer_auth(&admin)
        .json(&json!({"kind": "slack", "webhook_url": receiver.url("/after-rotate/T/B/x")}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let id = response.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // …and a process started afterwards reads it.
    let mut command = db.command(&["alerts", "channels", "test", &id]);
    command.env_remove("HANGAR_MASTER_KEY");
    stdout_ok(&command.output().unwrap());
    assert_eq!(receiver.hits_on("/after-rotate").len(), 1);
    assert!(serve.terminate().success(), "{}", serve.log());
}
