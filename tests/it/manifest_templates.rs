//! The shipped manifest templates and the loader: every template reads (its streams the
//! integration document's flows for its category) and cannot be enabled while a
//! placeholder is left (the enable route answers 422 saying so, on both backends); errors
//! name file, field and line; random and garbage manifests never panic the loader or the
//! decoders.

use hangar_integrations::connectors::manifest::decode::decode;
use hangar_integrations::connectors::manifest::enable;
use hangar_integrations::connectors::manifest::load::Document;
use hangar_integrations::connectors::manifest::model::Format;
use hangar_integrations::connectors::manifest::templates::TEMPLATES;
use hangar_integrations::credentials::Credential;
use hangar_integrations::provider::Provider;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::integrations_support::POOLS;
use crate::manifest_sim::API_KEY;
use crate::manifest_support::{JSON_PAGES, auth, manifest};
use crate::support::{Backend, TestDb, serve_http, stdout_ok};

#[test]
fn manifest_templates_read_and_refuse_enable_while_placeholders_are_left() {
    let flows = |p: Provider| -> Vec<(&str, &str)> {
        match p {
            Provider::Fltplan | Provider::Apg => vec![("trips", "out"), ("routes", "in")],
            Provider::Fuelerlinx => vec![("trips", "out"), ("fuel_orders", "in")],
            Provider::SatcomDirect | Provider::Honeywell => vec![("messages", "out")],
            Provider::Asap => vec![("safety_reports", "out")],
            _ => vec![("flight_times", "out"), ("due_items", "in")],
        }
    };
    for (provider, file, text) in TEMPLATES {
        let doc = Document::parse(file, text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(doc.provider, provider);
        let got: Vec<(&str, &str)> = doc
            .streams
            .iter()
            .map(|s| {
                (
                    s.data_type.as_str(),
                    if format!("{:?}", s.direction) == "In" {
                        "in"
                    } else {
                        "out"
                    },
                )
            })
            .collect();
        assert_eq!(got, flows(provider), "{file}");
        assert!(
            doc.placeholders.len() >= 10,
            "{file}: vendor values are placeholders"
        );
        let refused = doc.manifest().unwrap_err();
        assert!(refused.problem.contains("placeholder"), "{refused}");
        assert!(
            refused.to_string().contains(file) && refused.line.is_some(),
            "{refused}"
        );
        if provider == Provider::Asap {
            assert!(
                doc.streams
                    .iter()
                    .all(|s| format!("{:?}", s.conflict) == "Safety")
            );
        }
        let data_types: Vec<String> = doc.streams.iter().map(|s| s.data_type.clone()).collect();
        let enabled = enable::check(provider, true, &data_types, &json!({}), None).unwrap_err();
        assert_eq!(enabled.field, "settings.manifest", "{enabled}");
        assert!(
            enabled.problem.contains("publishes no API") && enabled.problem.contains("placeholder"),
            "{enabled}"
        );
        enable::check(provider, false, &data_types, &json!({}), None).expect("disabled: shown");
        let unknown =
            enable::check(provider, false, &["invoices".into()], &json!({}), None).unwrap_err();
        assert_eq!(unknown.field, "data_types[0]");
    }
    // The filled test manifest enables camp; a secret it references must be given.
    let (table, _) = auth("basic");
    let filled = json!({"manifest": manifest(&table, JSON_PAGES)});
    let types = ["due_items".to_owned()];
    let secrets: Credential =
        serde_json::from_value(json!({"secrets": {"username": "u", "password": "p"}})).unwrap();
    enable::check(Provider::Camp, true, &types, &filled, Some(&secrets)).expect("filled");
    let missing: Credential = serde_json::from_value(json!({"api_key": "k"})).unwrap();
    let e = enable::check(Provider::Camp, true, &types, &filled, Some(&missing)).unwrap_err();
    assert_eq!(e.field, "credentials");
    assert!(e.problem.contains("secret.username"), "{e}");
    // A filled manifest keeps the template's streams.
    let moved = manifest(&table, JSON_PAGES).replace(
        "conflict = \"ordinary\"\nprimary_key = \"id\"",
        "conflict = \"financial\"\nprimary_key = \"id\"",
    );
    let e = enable::check(
        Provider::Camp,
        false,
        &types,
        &json!({"manifest": moved}),
        None,
    )
    .unwrap_err();
    assert!(e.problem.contains("must keep the template's"), "{e}");
}

#[test]
fn manifest_load_errors_name_file_field_and_line() {
    let (table, _) = auth("api_key_header");
    let good = manifest(&table, JSON_PAGES);
    Document::parse("t.toml", &good)
        .unwrap()
        .manifest()
        .expect("the test manifest is valid");
    let cases = [
        (
            good.replace("kind = \"page_number\"", "kind = \"pages\""),
            "streams[1].pagination.kind",
            "pages",
        ),
        (
            good.replace("value = \"{{secret.api_key}}\"", "value = \"key-123\""),
            "auth.value",
            "secret",
        ),
        (
            good.replace("path = \"/due-items\"", "path = \"due-items\""),
            "streams[1].request.path",
            "'/'",
        ),
        (
            good.replace("version = 1", "version = 2"),
            "version",
            "version 2",
        ),
        (
            good.replace("provider = \"camp\"", "provider = \"nasa\""),
            "provider",
            "unknown provider",
        ),
        (
            good.replace(
                "granularity_secs = 1",
                "granularity_secs = 1\ncolour = \"red\"",
            ),
            "streams[1].cursor.colour",
            "unknown field",
        ),
        (
            good.replace("header = \"X-Maintenance\"\n", ""),
            "rules[4].header_equals",
            "header",
        ),
        (
            good.replace("{{external_id}}", "{{password}}"),
            "streams[0].update.path",
            "unknown reference",
        ),
    ];
    // A CSV answer is its rows: a next-page token could never be found in it (the scan
    // would stop after its first page).
    let csv_tokens = manifest(
        &table,
        crate::manifest_support::Style {
            format: "csv",
            pagination: "cursor_token",
            cursor: "date_time",
        },
    );
    let cases = cases.into_iter().chain([(
        csv_tokens,
        "streams[1].pagination.token_path",
        "no next-page token",
    )]);
    for (text, field, says) in cases {
        let e = Document::parse("t.toml", &text)
            .and_then(|d| d.manifest())
            .unwrap_err();
        assert_eq!(e.field, field, "{e}");
        assert!(e.to_string().contains(says), "{e}");
        assert!(e.to_string().starts_with("t.toml line "), "{e}");
    }
}

/// Random edits of a valid manifest and random bytes through the decoders: errors, never a
/// panic (small here; `prop_manifest.rs` runs the same edits at volume under `scripts/proptest`).
#[test]
fn manifest_garbage_never_panics() {
    let (table, _) = auth("session");
    let good = manifest(
        &table,
        crate::manifest_support::Style {
            format: "xml",
            pagination: "cursor_token",
            cursor: "incrementing",
        },
    );
    let mut rng = fastrand::Rng::with_seed(12);
    let pieces = [
        "[",
        "]",
        "\"",
        "=",
        "\n",
        "[[streams]]",
        "{{",
        "}}",
        "<<VENDOR:",
        ">>",
        "kind = \"offset\"",
        "-1",
        "1e400",
        "\u{0}",
        "é",
        "[auth]",
    ];
    for _ in 0..3_000 {
        let mut text: Vec<char> = good.chars().collect();
        for _ in 0..rng.usize(1..6) {
            let at = rng.usize(0..=text.len());
            match rng.u8(0..3) {
                0 => text.insert(
                    at,
                    *rng.choice(&['"', '[', '=', '\n', '{', '<', '0']).unwrap(),
                ),
                1 if at < text.len() => {
                    let end = (at + rng.usize(1..40)).min(text.len());
                    text.drain(at..end);
                }
                _ => {
                    let piece = rng.choice(pieces.iter()).unwrap();
                    for (i, c) in piece.chars().enumerate() {
                        text.insert((at + i).min(text.len()), c);
                    }
                }
            }
        }
        let text: String = text.into_iter().collect();
        if let Ok(doc) = Document::parse("fuzz.toml", &text) {
            let _ = doc.manifest();
        }
        let bytes: Vec<u8> = (0..rng.usize(0..64)).map(|_| rng.u8(..)).collect();
        for format in [Format::Json, Format::Xml, Format::Csv] {
            let _ = decode(format, &bytes);
            let _ = decode(format, text.as_bytes());
        }
    }
}

async fn enable_route(backend: Backend) {
    let db = TestDb::new(backend).await;
    db.pools(POOLS);
    let _ = db.store().await;
    let (_serve, base) = serve_http(&db).await;
    let admin = stdout_ok(&db.run(&["tokens", "create", "--role", "admin"]))
        .trim()
        .to_owned();
    let http = reqwest::Client::new();
    let put = |provider: &str, body: Value| {
        http.put(format!(
            "{base}/api/v1/workspaces/ws_1/integrations/{provider}"
        ))
        .bearer_auth(&admin)
        .json(&body)
        .send()
    };
    let template = json!({"enabled": true, "data_types": ["due_items"], "frequency": "every_6_hours",
        "credentials": {"api_key": API_KEY}});
    let answer = put("camp", template).await.expect("answer");
    assert_eq!(answer.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = answer.json().await.expect("json");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("settings.manifest") && message.contains("placeholder"),
        "{body}"
    );
    assert!(!body.to_string().contains(API_KEY), "no secret echoed");

    // Disabled, the template is accepted (shown); the filled manifest enables it.
    let off = json!({"enabled": false, "data_types": ["due_items"], "frequency": "every_6_hours"});
    assert!(
        put("camp", off)
            .await
            .expect("answer")
            .status()
            .is_success()
    );
    let (table, _) = auth("api_key_header");
    let filled = json!({"enabled": true, "data_types": ["due_items", "flight_times"], "frequency": "every_6_hours",
        "settings": {"manifest": manifest(&table, JSON_PAGES)}, "credentials": {"api_key": API_KEY}});
    let answer = put("camp", filled).await.expect("answer");
    let status = answer.status();
    let body: Value = answer.json().await.expect("json");
    assert!(status.is_success(), "{status}: {body}");
    assert_eq!(body["status"], "active", "{body}");
}

#[tokio::test]
async fn manifest_enable_route_postgres() {
    enable_route(Backend::Postgres).await;
}

#[tokio::test]
async fn manifest_enable_route_sqlite() {
    enable_route(Backend::Sqlite).await;
}
