//! `hangar completions` and `hangar man`: generated from the command line's own definitions,
//! so they know every command, doctor included, and a shell or `man` accepts them.

use std::process::Command;

use crate::support::{BIN, stdout_ok};

fn hangar(args: &[&str]) -> String {
    stdout_ok(&Command::new(BIN).args(args).output().expect("hangar runs"))
}

/// Whether `program` can be started (it is installed).
fn present(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn completions_for_bash_zsh_and_fish_know_the_commands() {
    let bash = hangar(&["completions", "bash"]);
    assert!(bash.contains("complete -F _hangar"), "{bash}");
    for word in ["doctor", "completions", "jobs", "--database-url"] {
        assert!(bash.contains(word), "bash completion lacks {word}");
    }
    let zsh = hangar(&["completions", "zsh"]);
    assert!(zsh.starts_with("#compdef hangar"), "{zsh}");
    assert!(zsh.contains("doctor"));
    let fish = hangar(&["completions", "fish"]);
    assert!(fish.contains("complete -c hangar"), "{fish}");
    assert!(fish.contains("doctor"));

    // bash loads it and completes `hangar doc` to `doctor`.
    if present("bash") {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("hangar.bash");
        std::fs::write(&script, &bash).unwrap();
        let out = Command::new("bash")
            .args([
                "--norc",
                "-c",
                &format!(
                    "source {}; COMP_WORDS=(hangar doc); COMP_CWORD=1; _hangar hangar doc hangar; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
                    script.display()
                ),
            ])
            .output()
            .unwrap();
        let replies = stdout_ok(&out);
        assert_eq!(replies.trim(), "doctor", "bash completed: {replies:?}");
    } else {
        println!("skipped the bash check: bash is not installed");
    }

    let refused = Command::new(BIN)
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
}

#[test]
fn man_pages_cover_every_command() {
    let page = hangar(&["man"]);
    assert!(page.contains(".TH hangar 1"), "{page}");
    assert!(page.contains("doctor"), "the top page lists doctor");

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("man1");
    let listed = hangar(&["man", "--dir", out.to_str().unwrap()]);
    for name in [
        "hangar.1",
        "hangar-doctor.1",
        "hangar-jobs-list.1",
        "hangar-bench-throughput.1",
    ] {
        assert!(out.join(name).is_file(), "{name} written; listed: {listed}");
        assert!(listed.contains(name), "{name} listed: {listed}");
    }
    let throughput = std::fs::read_to_string(out.join("hangar-bench-throughput.1")).unwrap();
    assert!(throughput.contains("concurrency"), "{throughput}");
    // Each page only its own options, as --help.
    assert!(!throughput.contains("redis"), "{throughput}");

    if present("man") {
        let rendered = Command::new("man")
            .arg("-l")
            .arg(out.join("hangar-doctor.1"))
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "100")
            .output()
            .unwrap();
        let text = stdout_ok(&rendered);
        assert!(text.contains("hangar-doctor"), "{text}");
    } else {
        println!("skipped rendering with man: man is not installed");
    }
}
