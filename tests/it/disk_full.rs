//! SQLite on a full disk (issue 14): the database lives on a small tmpfs of its own; once a
//! filler file took every free byte, an enqueue (through `hangar enqueue` and through the
//! library) and a token creation fail with an error that says the disk is full, nothing
//! half-written is left (every id answered is a row, the job count is the successes and
//! `PRAGMA integrity_check` says `ok`), and once the space is back the same enqueue works.
//! Needs root (to mount the tmpfs); elsewhere it says so and does nothing.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use hangar_workers::job::NewJob;

use crate::support::{Backend, TestDb, stdout_ok};

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).expect("mount point");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .ok()?;
        status.success().then(|| Tmpfs(at.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Writes zeros to `path` until the file system refuses.
fn fill(path: &Path) {
    let mut file = std::fs::File::create(path).expect("filler");
    let chunk = vec![0u8; 64 * 1024];
    while file.write_all(&chunk).is_ok() {}
    // The last partial chunk may have left a few bytes; take them too.
    while file.write_all(&[0u8]).is_ok() {}
    let _ = file.sync_all();
}

fn sqlite3(db: &Path, sql: &str) -> String {
    let output = Command::new("sqlite3")
        .arg(db)
        .arg(sql)
        .output()
        .expect("sqlite3 runs");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_sqlite_enqueue_fails_cleanly_and_recovers() {
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !is_root {
        eprintln!("disk_full: not root, cannot mount a tmpfs; nothing tested");
        return;
    }
    let mut db = TestDb::new(Backend::Sqlite).await;
    let mount = db.dir.path().join("small");
    let Some(_tmpfs) = Tmpfs::mount(&mount, "16m") else {
        panic!("mount -t tmpfs failed although running as root");
    };
    let file = mount.join("hangar.db");
    db.url = format!("sqlite://{}", file.display());
    let store = db.store().await;
    // A payload that needs pages of its own, so no write can fit in a page's free space.
    // Random, so that no compression shrinks it.
    let payload = || {
        let blob: String = std::iter::repeat_with(fastrand::alphanumeric)
            .take(64 * 1024)
            .collect();
        serde_json::json!({ "blob": blob })
    };
    let first = NewJob::new("noop", payload());
    store.enqueue(&first).await.expect("enqueue with room");
    let count = || sqlite3(&file, "SELECT count(*) FROM hangar_jobs");
    assert_eq!(count(), "1");

    let filler = mount.join("filler");
    fill(&filler);
    // Writes that fit in space SQLite already holds (its write-ahead log) still succeed:
    // enqueue until one needs a new block.
    let mut written = 1;
    let error = loop {
        match store.enqueue(&NewJob::new("noop", payload())).await {
            // Every id answered must be a row that exists (before the fix, SQLite answered
            // the id of a row its failed commit had rolled back).
            Ok(enqueued) => {
                store
                    .job(enqueued.id)
                    .await
                    .expect("an enqueued job exists");
                written += 1;
            }
            Err(error) => break error,
        }
        assert!(written < 1000, "the disk never filled");
    };
    assert!(
        error.to_string().contains("database or disk is full"),
        "a clear error: {error}"
    );
    let args = payload().to_string();
    let output = db.run(&["enqueue", "noop", "--args", &args]);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "enqueue on a full disk succeeded");
    assert!(
        stderr.contains("database or disk is full"),
        "a clear error: {stderr}"
    );
    // A token made on the full disk is refused with the same error, or (if its small row
    // still fit) it exists: never a token handed out whose row was rolled back.
    let output = db.run(&["tokens", "create", "--role", "owner"]);
    let tokens = sqlite3(&file, "SELECT count(*) FROM hangar_api_tokens");
    if output.status.success() {
        assert_eq!(tokens, "1", "the token answered exists");
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("database or disk is full"), "{stderr}");
        assert_eq!(tokens, "0");
    }
    // Nothing half-written: every enqueue that answered Ok is there, no other.
    assert_eq!(count(), written.to_string());
    assert_eq!(sqlite3(&file, "PRAGMA integrity_check"), "ok");

    std::fs::remove_file(&filler).expect("free the space");
    let id = stdout_ok(&db.run(&["enqueue", "noop", "--args", &args]));
    assert!(!id.trim().is_empty());
    store
        .enqueue(&NewJob::new("noop", payload()))
        .await
        .expect("the library's enqueue works again");
    assert_eq!(count(), (written + 2).to_string());
    assert_eq!(sqlite3(&file, "PRAGMA integrity_check"), "ok");
    drop(store);
}
