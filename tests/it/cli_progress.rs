//! Progress bars on long work as people and programs meet them: `hangar bench latency` on a
//! terminal (a pseudo-terminal from `script`) draws one on stderr; the same through a pipe,
//! or with `--json` on a terminal, prints none, and the results are the same lines.

use std::process::Command;

use crate::support::{BIN, Backend, TestDb, stdout_ok};

/// Whether `script` (util-linux) is installed, to give the command a terminal.
fn script_present() -> bool {
    Command::new("script")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `hangar ARGS` on a pseudo-terminal, with the environment `TestDb::command` gives; what it
/// wrote there (stdout and stderr).
fn on_terminal(db: &TestDb, args: &str) -> String {
    let mut script = Command::new("script");
    script
        .args(["-q", "-e", "-c", &format!("{BIN} {args}"), "/dev/null"])
        .current_dir(db.dir.path())
        .env("TERM", "xterm");
    for (key, value) in db.command(&[]).get_envs() {
        match value {
            Some(value) => script.env(key, value),
            None => script.env_remove(key),
        };
    }
    stdout_ok(&script.output().expect("script runs"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_only_on_a_terminal_and_never_with_json() {
    let db = TestDb::new(Backend::Sqlite).await;
    stdout_ok(&db.run(&["migrate"]));
    let args = ["bench", "latency", "--jobs", "15", "--interval-ms", "100"];

    // Through pipes: no bar, no control characters, the result as the last line.
    let out = db.run(&args);
    let stdout = stdout_ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("one job at a time"), "{stderr}");
    assert!(
        !stderr.contains('\r') && !stderr.contains('\u{1b}'),
        "{stderr:?}"
    );
    assert!(
        stdout
            .trim_end()
            .lines()
            .last()
            .unwrap()
            .starts_with("p50_ms=")
    );

    if !script_present() {
        println!("skipped the terminal half: script (util-linux) is not installed");
        return;
    }
    let shown = on_terminal(&db, &args.join(" "));
    assert!(
        shown.contains("one job at a time ["),
        "no bar drawn: {shown:?}"
    );
    assert!(shown.contains("/15"), "{shown:?}");
    assert!(shown.contains("p50_ms="), "{shown:?}");

    let json = on_terminal(&db, &format!("{} --json", args.join(" ")));
    assert!(
        !json.contains("one job at a time"),
        "a bar with --json: {json:?}"
    );
    assert!(json.contains("\"p50_ms\""), "{json:?}");
}
