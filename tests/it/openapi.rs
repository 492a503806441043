//! The API document as a generated client reads it: a real OpenAPI 3.1 validator
//! (`openapi-spec-validator`, which `scripts/test` installs) accepts the document the served
//! binary gives; every body has a schema derived from the Rust types; query parameters are
//! optional query parameters; the contact and licence are the project's. And a method a path
//! does not take answers 405 with the JSON error body and `Allow`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::support::{Backend, TestDb, serve_http, stdout_ok};

/// Where `scripts/test` installs the validator (or `HANGAR_OPENAPI_VALIDATOR`).
fn validator() -> PathBuf {
    if let Ok(path) = std::env::var("HANGAR_OPENAPI_VALIDATOR") {
        return PathBuf::from(path);
    }
    let default = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/tools/openapi-venv/bin/openapi-spec-validator");
    assert!(
        default.is_file(),
        "the OpenAPI validator is missing at {}: run scripts/test, which installs it, or \
         `python3 -m venv target/tools/openapi-venv && \
         target/tools/openapi-venv/bin/pip install openapi-spec-validator` \
         (or set HANGAR_OPENAPI_VALIDATOR to an openapi-spec-validator executable)",
        default.display()
    );
    default
}

/// Runs the validator on `doc`; its verdict and what it printed.
fn validate(dir: &Path, name: &str, doc: &Value) -> (bool, String) {
    let file = dir.join(name);
    std::fs::write(&file, serde_json::to_vec_pretty(doc).expect("json")).expect("write");
    let output = Command::new(validator())
        .args(["--schema", "3.1", "--validation-errors", "all"])
        .arg(&file)
        .output()
        .expect("the validator runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

async fn served_document(db: &TestDb) -> (crate::support::Proc, String, Value) {
    let (serve, base) = serve_http(db).await;
    let doc: Value = reqwest::get(format!("{base}/api/v1/openapi.json"))
        .await
        .expect("response")
        .json()
        .await
        .expect("JSON");
    (serve, base, doc)
}

/// Every operation of the document: (method, path template, operation).
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut all = Vec::new();
    for (template, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            all.push((method.clone(), template.clone(), operation.clone()));
        }
    }
    all
}

/// A schema that says more than "some object": a reference, or an array of one, or a
/// type other than a bare object.
fn says_something(schema: &Value) -> bool {
    if schema.get("$ref").is_some() {
        return true;
    }
    match schema["type"].as_str() {
        Some("array") => says_something(&schema["items"]),
        Some("object") => schema.get("properties").is_some(),
        Some(_) => true,
        None => false,
    }
}

#[tokio::test]
async fn the_served_document_passes_an_openapi_3_1_validator_and_describes_every_body() {
    let db = TestDb::new(Backend::Sqlite).await;
    let (_serve, _, doc) = served_document(&db).await;
    assert_eq!(doc["openapi"].as_str().map(|v| &v[..3]), Some("3.1"));

    let (valid, report) = validate(db.dir.path(), "openapi.json", &doc);
    assert!(valid, "the validator refuses the document:\n{report}");

    // The validator does reject what generated clients trip over: a query parameter
    // declared in the path.
    let mut broken = doc.clone();
    broken["paths"]["/api/v1/jobs"]["get"]["parameters"][0]["in"] = "path".into();
    broken["paths"]["/api/v1/jobs"]["get"]["parameters"][0]["required"] = true.into();
    let (valid, report) = validate(db.dir.path(), "broken.json", &broken);
    assert!(
        !valid,
        "the validator accepted a broken document:\n{report}"
    );
    assert!(report.contains("was not resolved"), "{report}");

    let info = &doc["info"];
    assert_eq!(info["license"]["identifier"], "Apache-2.0", "{info}");
    assert_eq!(info["contact"]["name"], "Hangar", "{info}");
    assert!(info["contact"].get("email").is_none(), "{info}");

    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    for name in ["Job", "AlertRow", "ErrorBody", "Channel", "JobRequest"] {
        assert!(schemas.contains_key(name), "no {name} schema: {schemas:?}");
    }
    let alert = &schemas["AlertRow"]["properties"];
    for field in [
        "id",
        "workspace_id",
        "kind",
        "severity",
        "message",
        "job_id",
        "integration",
        "created_at",
        "last_seen_at",
        "occurrences",
        "acknowledged_at",
        "resolved_at",
        "state",
    ] {
        assert!(alert.get(field).is_some(), "alert JSON without {field}");
    }

    let mut query_parameters = BTreeSet::new();
    for (method, template, operation) in operations(&doc) {
        let what = format!("{method} {template}");
        for parameter in operation["parameters"].as_array().into_iter().flatten() {
            let name = parameter["name"].as_str().expect("name");
            match parameter["in"].as_str() {
                Some("path") => assert!(
                    template.contains(&format!("{{{name}}}")),
                    "{what}: path parameter {name} is not in the path"
                ),
                Some("query") => {
                    assert_ne!(
                        parameter["required"], true,
                        "{what}: query parameter {name} is optional"
                    );
                    query_parameters.insert(format!("{template}?{name}"));
                }
                other => panic!("{what}: parameter {name} in {other:?}"),
            }
        }
        if let Some(body) = operation.get("requestBody") {
            let schema = &body["content"]["application/json"]["schema"];
            assert!(says_something(schema), "{what}: request body {body}");
        }
        for (status, response) in operation["responses"].as_object().expect("responses") {
            let schema = &response["content"]["application/json"]["schema"];
            if status.starts_with('4') || status.starts_with('5') {
                assert_eq!(
                    schema["$ref"], "#/components/schemas/ErrorBody",
                    "{what}: {status} is the error body"
                );
            } else if status != "204" {
                assert!(says_something(schema), "{what}: {status} body {response}");
            }
        }
    }
    for expected in [
        "/api/v1/jobs?state",
        "/api/v1/jobs?kind",
        "/api/v1/jobs?workspace_id",
        "/api/v1/jobs?limit",
        "/api/v1/alerts?state",
        "/api/v1/alerts?all",
        "/api/v1/alerts?before",
        "/api/v1/alerts?limit",
    ] {
        assert!(
            query_parameters.contains(expected),
            "{expected} is not a query parameter: {query_parameters:?}"
        );
    }
}

#[tokio::test]
async fn a_method_a_path_does_not_take_answers_405_with_the_error_body_and_allow() {
    let db = TestDb::new(Backend::Sqlite).await;
    let (_serve, base, doc) = served_document(&db).await;
    let owner = stdout_ok(&db.run(&["tokens", "create", "--role", "owner"]))
        .trim()
        .to_owned();
    let http = reqwest::Client::new();
    let mut checked = 0;
    for (template, item) in doc["paths"].as_object().expect("paths") {
        let declared: BTreeSet<String> = item
            .as_object()
            .expect("item")
            .keys()
            .map(|m| m.to_uppercase())
            .collect();
        let path = template.replace("{id}", "5").replace("{ws}", "ws_1");
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            if declared.contains(method) {
                continue;
            }
            let response = http
                .request(
                    method.parse::<Method>().expect("method"),
                    format!("{base}{path}"),
                )
                .bearer_auth(&owner)
                .send()
                .await
                .expect("response");
            let what = format!("{method} {path}");
            assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED, "{what}");
            let allow: BTreeSet<String> = response
                .headers()
                .get("allow")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_else(|| panic!("{what}: no Allow header"))
                .split(',')
                .map(|m| m.trim().to_owned())
                .filter(|m| m != "HEAD")
                .collect();
            assert_eq!(allow, declared, "{what}: Allow");
            let body: Value = response
                .json()
                .await
                .unwrap_or_else(|e| panic!("{what}: no JSON error body: {e}"));
            assert_eq!(
                body["error"]["code"], "method_not_allowed",
                "{what}: {body}"
            );
            assert!(
                body["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains(method)),
                "{what}: {body}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 30, "every path was tried ({checked})");
}
