//! Command-line words before clap reads them.

use std::ffi::OsString;

/// The command line with the setting flags given before the subcommand moved behind it:
/// `hangar --database-url X jobs list` reads as `hangar jobs list --database-url X`. Each
/// subcommand declares only the settings it uses, so clap alone would refuse the first form,
/// which earlier versions took. Every setting flag takes a value (`--flag value` or
/// `--flag=value`); `--help` and `--version` stay where they are.
pub fn settings_after_subcommand(args: Vec<OsString>) -> Vec<OsString> {
    let mut args = args.into_iter();
    let Some(program) = args.next() else {
        return Vec::new();
    };
    let rest: Vec<OsString> = args.collect();
    let mut moved = Vec::new();
    let mut i = 0;
    while let Some(flag) = rest.get(i).and_then(|a| a.to_str()) {
        if !flag.starts_with("--") || matches!(flag, "--" | "--help" | "--version") {
            break;
        }
        let width = if flag.contains('=') { 1 } else { 2 };
        if i + width >= rest.len() {
            // Nothing after it: leave it for clap to explain.
            break;
        }
        moved.extend_from_slice(&rest[i..i + width]);
        i += width;
    }
    let mut out = vec![program];
    out.extend_from_slice(&rest[i..]);
    out.extend(moved);
    out
}

#[cfg(test)]
mod tests {
    use super::settings_after_subcommand;

    fn run(args: &[&str]) -> Vec<String> {
        settings_after_subcommand(args.iter().map(Into::into).collect())
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    #[test]
    fn setting_flags_before_the_subcommand_move_behind_it() {
        assert_eq!(
            run(&[
                "hangar",
                "--database-url",
                "sqlite://x.db",
                "--config=h.toml",
                "jobs",
                "retry",
                "7"
            ]),
            [
                "hangar",
                "jobs",
                "retry",
                "7",
                "--database-url",
                "sqlite://x.db",
                "--config=h.toml"
            ]
        );
        assert_eq!(
            run(&["hangar", "serve", "--bind", "a"]),
            ["hangar", "serve", "--bind", "a"]
        );
        assert_eq!(run(&["hangar", "--help"]), ["hangar", "--help"]);
        assert_eq!(
            run(&["hangar", "--database-url"]),
            ["hangar", "--database-url"]
        );
    }
}
