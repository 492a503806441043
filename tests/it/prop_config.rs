//! Property tests of the configuration files: pool files (`workers/src/pool_config.rs`) and
//! `hangar.toml` (`Config::load`). Any text and tables shaped like the files, with each field
//! right, mistyped, out of range or unknown, load without a panic; a refusal names the file
//! (and the pool, or the setting); a refusal never repeats a password given in a URL; an
//! accepted pool has usable values. Cases: `PROPTEST_CASES` (default 256; `scripts/proptest`
//! runs 10⁶).

use std::path::PathBuf;

use hangar::config::{Config, Flags, settings};
use hangar_workers::pool_config::{self, PoolProblem};
use proptest::prelude::*;

/// One TOML value: usually of the right kind for the field, sometimes anything.
fn toml_value(good: impl Strategy<Value = String> + 'static) -> impl Strategy<Value = String> {
    prop_oneof![
        6 => good,
        1 => any::<i64>().prop_map(|n| n.to_string()),
        1 => any::<f64>().prop_map(|f| if f.is_finite() { format!("{f:?}") } else { "nan".to_owned() }),
        1 => "\\PC{0,8}".prop_map(|s| format!("{s:?}")),
        1 => "[\\[\\]{}=\"'a-z0-9 .,-]{0,12}",
    ]
}

fn number(range: std::ops::Range<i64>) -> impl Strategy<Value = String> {
    prop_oneof![
        range.prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string())
    ]
}

/// `name = value` lines for some of `fields`.
fn some_lines(fields: Vec<(&'static str, BoxedStrategy<String>)>) -> impl Strategy<Value = String> {
    let count = fields.len();
    let (names, values): (Vec<_>, Vec<_>) = fields.into_iter().unzip();
    (
        values,
        prop::collection::vec(prop::bool::weighted(0.6), count),
    )
        .prop_map(move |(values, keep)| {
            names
                .iter()
                .zip(values)
                .zip(keep)
                .filter(|(_, keep)| *keep)
                .map(|((name, value), _)| format!("{name} = {value}\n"))
                .collect()
        })
}

fn retry_class() -> impl Strategy<Value = String> {
    some_lines(vec![
        ("max_retries", toml_value(number(-2..30)).boxed()),
        ("base_delay_ms", toml_value(number(-10..100_000)).boxed()),
        ("max_delay_ms", toml_value(number(-10..10_000_000)).boxed()),
    ])
}

/// A `[[pool]]` table with some of its fields and retry sub-tables.
fn pool_table() -> impl Strategy<Value = String> {
    let ms = || toml_value(number(-10..100_000_000)).boxed();
    let head = some_lines(vec![
        ("queue", toml_value("\"[a-z_-]{0,70}\"".boxed()).boxed()),
        ("concurrency", toml_value(number(-5..20_000)).boxed()),
        ("prefetch", toml_value(number(-5..20_000)).boxed()),
        ("timeout_ms", ms()),
        ("max_attempts", toml_value(number(-5..1_000)).boxed()),
        ("lease_ms", ms()),
        ("poll_interval_ms", ms()),
        ("batch_size", toml_value(number(-5..20_000)).boxed()),
        ("shutdown_grace_ms", ms()),
        ("retention_ms", ms()),
    ]);
    let retry = some_lines(vec![
        ("auth_retries", toml_value(number(-2..10)).boxed()),
        ("server_alert_after", toml_value(number(-2..10)).boxed()),
        (
            "jitter",
            toml_value((-1.0f64..2.0).prop_map(|f| format!("{f:?}")).boxed()).boxed(),
        ),
    ]);
    let rate_limit = some_lines(vec![
        ("max_snoozes", toml_value(number(-2..100)).boxed()),
        ("max_wait_ms", ms()),
        ("default_wait_ms", ms()),
    ]);
    (
        prop::option::weighted(0.95, toml_value("\"[a-z0-9_-]{0,20}\"".boxed())),
        prop::option::weighted(
            0.95,
            toml_value(
                "\\[(\"(noop|http|alert_slack|webhook_delivery|[a-z]{1,5})\", ){0,3}\\]".boxed(),
            ),
        ),
        head,
        prop::option::weighted(0.3, retry),
        prop::option::weighted(
            0.2,
            (
                prop::sample::select(vec!["timeout", "server", "internal", "other"]),
                retry_class(),
            ),
        ),
        prop::option::weighted(0.2, rate_limit),
        prop::option::weighted(0.03, "[a-z]{1,6} = 1\n"),
    )
        .prop_map(|(name, kinds, head, retry, class, rate_limit, extra)| {
            let mut table = String::from("[[pool]]\n");
            if let Some(name) = name {
                table.push_str(&format!("name = {name}\n"));
            }
            if let Some(kinds) = kinds {
                table.push_str(&format!("kinds = {kinds}\n"));
            }
            table.push_str(&head);
            table.push_str(&extra.unwrap_or_default());
            if let Some(retry) = retry {
                table.push_str(&format!("[pool.retry]\n{retry}"));
            }
            if let Some((class, lines)) = class {
                table.push_str(&format!("[pool.retry.{class}]\n{lines}"));
            }
            if let Some(lines) = rate_limit {
                table.push_str(&format!("[pool.retry.rate_limit]\n{lines}"));
            }
            table
        })
}

fn assert_pool_error_is_clear(error: &pool_config::PoolConfigError, file: &str) {
    let text = error.to_string();
    assert!(text.starts_with(&format!("{file}: ")), "{text}");
    assert!(text.len() > file.len() + 2, "{text}");
    if let PoolProblem::Field { pool, .. } = &error.problem {
        assert!(text.contains(&format!("pool '{pool}'")), "{text}");
    }
}

/// A URL of some scheme with a password in it.
fn url_with_password() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec![
            "postgres",
            "postgresql",
            "sqlite",
            "redis",
            "rediss",
            "http",
            "mysql",
            "",
        ]),
        "[a-z]{1,8}",
        "[A-Za-z0-9]{12,20}",
        "[a-z.]{1,12}",
        prop::option::of(0u32..70_000),
    )
        .prop_map(|(scheme, user, password, host, port)| {
            let port = port.map(|p| format!(":{p}")).unwrap_or_default();
            format!("{scheme}://{user}:PW{password}@{host}{port}/db")
        })
}

/// A `hangar.toml`: some settings (right, mistyped or out of range), maybe an unknown key or
/// the forbidden master key, URLs carrying passwords.
fn hangar_toml() -> impl Strategy<Value = String> {
    let names = settings::names();
    let value = prop_oneof![
        3 => url_with_password().prop_map(|u| format!("{u:?}")),
        2 => "\"(127\\.0\\.0\\.1|0\\.0\\.0\\.0|::1|\\[::1\\]|localhost|[a-z]{1,6})(:[0-9]{1,6})?\"",
        2 => number(-10..100_000_000),
        1 => "\"(/nonexistent/[a-z]{1,6}|\\.|1|10\\.0\\.0\\.0/8,[0-9.]{1,10}/[0-9]{1,3})\"",
        1 => toml_value(Just("\"\"".to_owned())),
    ];
    (
        prop::collection::vec((prop::sample::select(names), value), 0..6),
        prop::option::weighted(0.05, "[a-z_]{1,10}"),
    )
        .prop_map(|(pairs, unknown)| {
            let mut seen = std::collections::HashSet::new();
            let mut text = String::new();
            for (key, mut value) in pairs {
                // The password marker goes only into URL settings: a URL given where a path
                // or an address belongs is echoed as what it is, the wrong kind of value.
                if !key.ends_with("_url") {
                    value = value.replace("PW", "pw");
                }
                if seen.insert(key.clone()) {
                    text.push_str(&format!("{key} = {value}\n"));
                }
            }
            if let Some(key) = unknown
                && seen.insert(key.clone())
            {
                text.push_str(&format!("{key} = 1\n"));
            }
            text
        })
}

thread_local! {
    static CONFIG_DIR: tempfile::TempDir = tempfile::tempdir().unwrap();
}

/// Loads `text` as `hangar.toml` the way `hangar --config PATH` does.
fn load_config(text: &str) -> (PathBuf, Result<Config, hangar::exit::Fatal>) {
    let path = CONFIG_DIR.with(|dir| dir.path().join("hangar.toml"));
    std::fs::write(&path, text).unwrap();
    let loaded = Config::load(Some(&path), Flags::new());
    (path, loaded)
}

proptest! {
    #[test]
    fn prop_pool_files_parse_or_name_the_problem(tables in prop::collection::vec(pool_table(), 0..3)) {
        match pool_config::parse("pools.toml", &tables.join("\n")) {
            Ok(pools) => {
                prop_assert_eq!(pools.len(), tables.len());
                for pool in pools {
                    prop_assert!(!pool.name.is_empty() && !pool.queue.is_empty());
                    prop_assert!(!pool.kinds.is_empty());
                    prop_assert!(pool.concurrency >= 1 && pool.batch_size >= 1);
                    prop_assert!(pool.max_attempts >= 1);
                    prop_assert!(!pool.lease.is_zero() && !pool.timeout.is_zero());
                }
            }
            Err(error) => assert_pool_error_is_clear(&error, "pools.toml"),
        }
    }

    #[test]
    fn prop_pool_files_any_text_names_the_file(text in prop_oneof!["\\PC*", "[\\[\\]\n=\"a-z0-9 .]{0,60}"]) {
        if let Err(error) = pool_config::parse("any.toml", &text) {
            assert_pool_error_is_clear(&error, "any.toml");
        }
    }

    #[test]
    fn prop_hangar_toml_loads_or_names_the_setting(text in hangar_toml()) {
        let (path, loaded) = load_config(&text);
        if let Err(fatal) = loaded {
            let message = fatal.to_string();
            prop_assert_eq!(fatal.status, 2, "a configuration error exits 2: {}", message);
            let names_it = message.contains(&path.display().to_string())
                || settings::names().iter().any(|k| message.contains(k.as_str()))
                || message.contains("HANGAR_")
                // The pool and schedule loaders name the folder they were given.
                || message.contains(" folder");
            prop_assert!(names_it, "names neither file nor setting: {}", message);
            prop_assert!(!message.contains("PW"), "a password in: {}", message);
        }
    }

    #[test]
    fn prop_hangar_toml_any_text_never_panics(text in prop_oneof!["\\PC*", "[\\[\\]\n=\"a-z_0-9 .]{0,60}"]) {
        let (path, loaded) = load_config(&text);
        if let Err(fatal) = loaded {
            prop_assert_eq!(fatal.status, 2);
            let names_it = fatal.message.contains(&path.display().to_string())
                || settings::names().iter().any(|k| fatal.message.contains(k.as_str()));
            prop_assert!(names_it, "names neither file nor setting: {}", fatal.message);
        }
    }
}
