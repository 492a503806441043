//! The manifest connector against its simulator, driven by TEST manifests given as
//! `settings.manifest` of `camp` integrations (the built-in connector, on both backends):
//! every auth kind (a session reused, then renewed once it expired; the `check` request),
//! both cursor styles with every pagination and decoder (a full reconciliation, then the
//! changes since the cursor), each error signal of the recorded fixtures classified, and
//! flight times out (mapped, idempotent, an update of a record pushed before).

use hangar_integrations::access::{AccessToken, IntegrationInfo};
use hangar_integrations::connectors::manifest::templates;
use hangar_integrations::provider::Provider;
use hangar_integrations::sync::connector::{CallContext, ConnectorError, Connectors};
use hangar_integrations::sync::outbound::accept_event;
use hangar_workers::error_class::ErrorClass;
use hangar_workers::wire::EventEnvelope;
use serde_json::json;

use crate::manifest_sim::API_KEY;
use crate::manifest_support::{JSON_PAGES, ManifestWorld, Style, WORKSPACE, auth, manifest};
use crate::support::Backend;

async fn auth_kinds(backend: Backend) {
    let w = ManifestWorld::new(backend).await;
    w.sim.add(12, chrono::Duration::minutes(10));
    let kinds = [
        ("api_key_header", "auth:header"),
        ("api_key_query", "auth:query"),
        ("basic", "auth:basic"),
        ("bearer", "auth:bearer"),
        ("oauth", "auth:issued"),
        ("session", "auth:issued"),
    ];
    for (kind, seen) in kinds {
        let id = format!("int_{kind}");
        let (table, token) = auth(kind);
        w.integrate(&id, &manifest(&table, JSON_PAGES), &token);
        let before = w.sim.calls(seen);
        w.sync(&id, "due_items", None)
            .await
            .unwrap_or_else(|e| panic!("{kind}: {e:?}"));
        let run = w.last_run(&id).await;
        assert_eq!(
            (run.status.as_str(), run.records.created),
            ("succeeded", 12),
            "{kind}: {run:?}"
        );
        assert!(w.sim.calls(seen) > before, "{kind} authenticated as {seen}");
    }
    assert_eq!(w.sim.calls("401"), 0, "no call was refused");
    assert_eq!(
        (w.sim.calls("login"), w.sim.calls("token")),
        (1, 1),
        "one session, one token"
    );

    // The session is reused by the next run; once the vendor forgets it, a new login and
    // one retry (no failure).
    w.sync("int_session", "due_items", None)
        .await
        .expect("again");
    assert_eq!(w.sim.calls("login"), 1, "the session is reused");
    w.sim.expire_sessions();
    w.sync("int_session", "due_items", None)
        .await
        .expect("after expiry");
    assert_eq!(
        w.sim.calls("login"),
        2,
        "a new session after SESSION_EXPIRED"
    );
    assert_eq!(w.sim.calls("401"), 1, "one refused call, then the retry");

    // The check request verifies credentials.
    let connector = templates::connector(Provider::Camp).expect("camp");
    let cx = |token: &str| CallContext {
        integration: IntegrationInfo {
            id: "int_check".into(),
            workspace_id: WORKSPACE.into(),
            provider: Provider::Camp,
            enabled: true,
            data_types: vec![],
            settings: json!({"manifest": manifest(&auth("api_key_header").0, JSON_PAGES), "base_url": w.sim.base}),
        },
        token: AccessToken {
            token: token.into(),
            version: 1,
        },
        http: reqwest::Client::new(),
        targets: hangar_workers::targets::TargetPolicy::allow_all(),
    };
    connector.check(cx(API_KEY)).await.expect("good key");
    let refused = connector.check(cx("wrong")).await.unwrap_err();
    assert!(
        matches!(refused, ConnectorError::Unauthorized(_)),
        "{refused:?}"
    );
}

#[tokio::test]
async fn manifest_auth_kinds_postgres() {
    auth_kinds(Backend::Postgres).await;
}

#[tokio::test]
async fn manifest_auth_kinds_sqlite() {
    auth_kinds(Backend::Sqlite).await;
}

async fn cursors_and_pages(backend: Backend) {
    let w = ManifestWorld::new(backend).await;
    w.sim.add(25, chrono::Duration::minutes(30));
    let styles = [
        Style {
            format: "json",
            pagination: "page_number",
            cursor: "date_time",
        },
        Style {
            format: "xml",
            pagination: "cursor_token",
            cursor: "incrementing",
        },
        Style {
            format: "csv",
            pagination: "offset",
            cursor: "date_time",
        },
        Style {
            format: "json",
            pagination: "link_header",
            cursor: "incrementing",
        },
    ];
    let (table, token) = auth("api_key_header");
    for (n, style) in styles.into_iter().enumerate() {
        let id = format!("int_style_{n}");
        w.integrate(&id, &manifest(&table, style), &token);
        let total = 25 + 3 * n as i64;
        let queries = w.sim.queries().len();
        w.sync(&id, "due_items", None)
            .await
            .unwrap_or_else(|e| panic!("{style:?}: {e:?}"));
        let first = w.last_run(&id).await;
        assert_eq!(
            (first.status.as_str(), first.records.created),
            ("succeeded", total),
            "{style:?}: {first:?}"
        );
        assert!(
            first.log.iter().any(|l| l.contains("no cursor yet")),
            "{:?}",
            first.log
        );
        let page_param = match style.pagination {
            "page_number" => "page",
            "offset" => "offset",
            "cursor_token" => "page_token",
            _ => "lpage",
        };
        let read = &w.sim.queries()[queries..];
        assert!(
            read.len() >= 3,
            "{style:?}: {total} records take pages of 10"
        );
        assert!(
            read.iter().any(|q| q.contains_key(page_param)),
            "{style:?}: {read:?}"
        );

        // Two revised, three new: the changes since the cursor.
        w.sim.touch(2);
        w.sim.add(3, chrono::Duration::zero());
        let queries = w.sim.queries().len();
        w.sync(&id, "due_items", None).await.expect("changes");
        let second = w.last_run(&id).await;
        assert_eq!(
            (
                second.status.as_str(),
                second.records.created,
                second.records.updated
            ),
            ("succeeded", 3, 2),
            "{style:?}: {second:?}"
        );
        let read = &w.sim.queries()[queries..];
        let param = if style.cursor == "date_time" {
            "modified_since"
        } else {
            "after_seq"
        };
        assert!(
            read.iter().all(|q| q.contains_key(param)),
            "{style:?} sends its cursor: {read:?}"
        );
        if style.cursor == "incrementing" {
            let after: u64 = read[0]["after_seq"].parse().expect("a number");
            assert!(
                after >= total as u64,
                "{style:?}: after_seq={after} is past the values applied"
            );
        }
    }
}

#[tokio::test]
async fn manifest_cursors_and_pages_postgres() {
    cursors_and_pages(Backend::Postgres).await;
}

#[tokio::test]
async fn manifest_cursors_and_pages_sqlite() {
    cursors_and_pages(Backend::Sqlite).await;
}

/// Each recorded answer, replayed, and what the run makes of it: (fixture, run status,
/// class, retry-after).
const SIGNALS: [(&str, &str, Option<ErrorClass>, Option<&str>); 11] = [
    ("due_items_page_200.http", "succeeded", None, None),
    (
        "throttled_429.http",
        "rate_limited",
        Some(ErrorClass::RateLimit),
        Some("7"),
    ),
    (
        "quota_403.http",
        "rate_limited",
        Some(ErrorClass::RateLimit),
        Some("11"),
    ),
    (
        "session_expired_401.http",
        "failed",
        Some(ErrorClass::Auth),
        None,
    ),
    (
        "soft_error_200.http",
        "failed",
        Some(ErrorClass::Client),
        None,
    ),
    (
        "unavailable_503.http",
        "failed",
        Some(ErrorClass::Server),
        None,
    ),
    (
        "timeout_408.http",
        "failed",
        Some(ErrorClass::Timeout),
        None,
    ),
    (
        "maintenance_200.http",
        "failed",
        Some(ErrorClass::Server),
        None,
    ),
    (
        "bad_request_400.http",
        "failed",
        Some(ErrorClass::Client),
        None,
    ),
    (
        "account_locked_403.http",
        "failed",
        Some(ErrorClass::Auth),
        None,
    ),
    ("garbage_200.http", "failed", Some(ErrorClass::Server), None),
];

async fn error_signals(backend: Backend) {
    let w = ManifestWorld::new(backend).await;
    let (table, token) = auth("api_key_header");
    let text = manifest(
        &table,
        Style {
            pagination: "none",
            ..JSON_PAGES
        },
    );
    for (n, (fixture, status, class, wait)) in SIGNALS.into_iter().enumerate() {
        let id = format!("int_signal_{n}");
        w.integrate(&id, &text, &token);
        // A static key cannot refresh: a 401 gets the engine's one refresh, refused.
        w.sim.replay(&[fixture]);
        let result = w.sync(&id, "due_items", None).await;
        let run = w.last_run(&id).await;
        assert_eq!(run.status, status, "{fixture}: {run:?}");
        match class {
            None => {
                result.expect(fixture);
                assert_eq!(
                    run.records.created, 3,
                    "{fixture}: the recorded page applied"
                );
            }
            Some(class) => {
                let failure = result.expect_err(fixture);
                assert_eq!(failure.class, class, "{fixture}: {failure:?}");
                assert_eq!(failure.retry_after.as_deref(), wait, "{fixture}");
                assert!(
                    !failure.message.contains(API_KEY),
                    "{fixture}: no secret in {failure:?}"
                );
            }
        }
        w.sim.clear_replay();
    }
}

#[tokio::test]
async fn manifest_error_signals_postgres() {
    error_signals(Backend::Postgres).await;
}

#[tokio::test]
async fn manifest_error_signals_sqlite() {
    error_signals(Backend::Sqlite).await;
}

async fn flight_times_out(backend: Backend) {
    let w = ManifestWorld::new(backend).await;
    let (table, token) = auth("basic");
    w.integrate("int_out", &manifest(&table, JSON_PAGES), &token);
    let integration = w.seam.integrations.lock().unwrap()["int_out"].0.clone();
    let event = |id: &str, block_in: &str| -> EventEnvelope {
        let data = json!({"trip_id": "trp_1", "tail_number": "N123AB", "block_out": "09:00", "block_in": block_in});
        EventEnvelope {
            id: id.to_owned(),
            event_type: "trip.completed".to_owned(),
            workspace_id: WORKSPACE.to_owned(),
            timestamp: chrono::Utc::now(),
            data: data.as_object().unwrap().clone(),
        }
    };
    let jobs = accept_event(
        &w.store,
        &Connectors::builtin(),
        std::slice::from_ref(&integration),
        &event("evt_1", "11:00"),
    )
    .await
    .expect("accepted");
    assert_eq!(jobs.len(), 1);
    w.sync("int_out", "flight_times", None)
        .await
        .expect("pushed");
    let run = w.last_run("int_out").await;
    assert_eq!(
        (run.status.as_str(), run.records.created),
        ("succeeded", 1),
        "{run:?}"
    );
    let times = w.sim.flight_times();
    assert_eq!(
        times["ft-1"],
        json!({"aircraft": "N123AB", "reference": "trp_1", "times": {"block_out": "09:00", "block_in": "11:00"}}),
        "mapped by the manifest"
    );

    // The same trip again: an update of the record pushed before.
    accept_event(
        &w.store,
        &Connectors::builtin(),
        std::slice::from_ref(&integration),
        &event("evt_2", "11:30"),
    )
    .await
    .expect("accepted");
    w.sync("int_out", "flight_times", None)
        .await
        .expect("updated");
    let run = w.last_run("int_out").await;
    assert_eq!(run.records.updated, 1, "{run:?}");
    assert_eq!(w.sim.calls("update"), 1);
    assert_eq!(w.sim.flight_times().len(), 1, "no second record");
    assert_eq!(w.sim.flight_times()["ft-1"]["times"]["block_in"], "11:30");
}

#[tokio::test]
async fn manifest_flight_times_out_postgres() {
    flight_times_out(Backend::Postgres).await;
}

#[tokio::test]
async fn manifest_flight_times_out_sqlite() {
    flight_times_out(Backend::Sqlite).await;
}

/// The vendor's error signals in a JSON answer still classify when the stream's own answers
/// are CSV (a CSV decoder takes any text: the rules once read the JSON error as a header
/// line without rows, so a 200 soft error was a success with no records and a quota 403 a
/// client failure).
async fn csv_stream_error_signals(backend: Backend) {
    let w = ManifestWorld::new(backend).await;
    let (table, token) = auth("api_key_header");
    let text = manifest(
        &table,
        Style {
            format: "csv",
            pagination: "none",
            cursor: "date_time",
        },
    );
    let cases = [
        ("soft_error_200.http", "failed", ErrorClass::Client, None),
        (
            "quota_403.http",
            "rate_limited",
            ErrorClass::RateLimit,
            Some("11"),
        ),
        ("account_locked_403.http", "failed", ErrorClass::Auth, None),
    ];
    for (n, (fixture, status, class, wait)) in cases.into_iter().enumerate() {
        let id = format!("int_csv_signal_{n}");
        w.integrate(&id, &text, &token);
        w.sim.replay(&[fixture]);
        let failure = w.sync(&id, "due_items", None).await.expect_err(fixture);
        let run = w.last_run(&id).await;
        assert_eq!(run.status, status, "{fixture}: {run:?}");
        assert_eq!(
            (failure.class, failure.retry_after.as_deref()),
            (class, wait),
            "{fixture}: {failure:?}"
        );
        w.sim.clear_replay();
    }
}

#[tokio::test]
async fn manifest_csv_stream_error_signals_postgres() {
    csv_stream_error_signals(Backend::Postgres).await;
}

#[tokio::test]
async fn manifest_csv_stream_error_signals_sqlite() {
    csv_stream_error_signals(Backend::Sqlite).await;
}

/// A stream without an update request (as every shipped template is): the same trip
/// completed again is sent as a new create and the vendor answers with a new record's id;
/// the push succeeds and the platform's record keeps the id it got first (the engine holds
/// one provider id per platform record: taking the new one failed the run on the mappings'
/// unique key, and every retry with it).
async fn changed_again_without_an_update(backend: Backend) {
    let w = ManifestWorld::new(backend).await;
    let (table, token) = auth("api_key_header");
    let text = manifest(&table, JSON_PAGES).replace(
        "[streams.update]\nmethod = \"PUT\"\npath = \"/flight-times/{{external_id}}\"\n",
        "",
    );
    assert!(!text.contains("[streams.update]"));
    w.integrate("int_no_update", &text, &token);
    let integration = w.seam.integrations.lock().unwrap()["int_no_update"]
        .0
        .clone();
    for (n, block_in) in ["11:00", "11:30"].into_iter().enumerate() {
        let data = json!({"trip_id": "trp_9", "tail_number": "N9", "block_out": "09:00", "block_in": block_in});
        let event = EventEnvelope {
            id: format!("evt_again_{n}"),
            event_type: "trip.completed".to_owned(),
            workspace_id: WORKSPACE.to_owned(),
            timestamp: chrono::Utc::now(),
            data: data.as_object().unwrap().clone(),
        };
        accept_event(
            &w.store,
            &Connectors::builtin(),
            std::slice::from_ref(&integration),
            &event,
        )
        .await
        .expect("accepted");
        w.sync("int_no_update", "flight_times", None)
            .await
            .unwrap_or_else(|e| panic!("push {n}: {e:?}"));
        let run = w.last_run("int_no_update").await;
        assert_eq!(run.status, "succeeded", "push {n}: {run:?}");
    }
    let times = w.sim.flight_times();
    assert_eq!(times.len(), 2, "two creates: {times:?}");
    assert_eq!(
        times["ft-1"]["times"]["block_in"], "11:00",
        "the first kept"
    );
    assert_eq!(times["ft-2"]["times"]["block_in"], "11:30");
    assert_eq!(w.sim.calls("update"), 0);
}

#[tokio::test]
async fn manifest_changed_again_without_an_update_postgres() {
    changed_again_without_an_update(Backend::Postgres).await;
}

#[tokio::test]
async fn manifest_changed_again_without_an_update_sqlite() {
    changed_again_without_an_update(Backend::Sqlite).await;
}
