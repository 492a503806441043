use super::*;
use serde_json::json;

fn event(data: Value) -> String {
    json!({"kind": "event", "event": {"id": "evt_1", "type": "trip.created",
        "workspace_id": "ws_1", "timestamp": "2026-11-22T10:00:00Z", "data": data}})
    .to_string()
}

#[test]
fn a_valid_event_and_job_parse() {
    match parse(&event(
        json!({"trip_id": "trp_9", "legs": [{"aircraft_id": "ac_1"}]}),
    ))
    .unwrap()
    {
        IngressMessage::Event(e) => {
            assert_eq!(
                (
                    e.id.as_str(),
                    e.event_type.as_str(),
                    e.workspace_id.as_str()
                ),
                ("evt_1", "trip.created", "ws_1")
            );
            assert_eq!(e.timestamp.to_rfc3339(), "2026-11-22T10:00:00+00:00");
            assert_eq!(e.data["trip_id"], "trp_9");
        }
        other => panic!("{other:?}"),
    }
    let job = json!({"kind": "job", "job": {"kind": "sync", "workspace_id": "ws_1",
        "args": {"provider": "quickbooks"}, "idempotency_key": "k1",
        "run_at": "2026-11-22T11:00:00+01:00", "queue": "syncs"}});
    match parse(&job.to_string()).unwrap() {
        IngressMessage::Job(j) => {
            assert_eq!(
                (j.kind.as_str(), j.idempotency_key.as_str()),
                ("sync", "k1")
            );
            assert_eq!(j.run_at.unwrap().to_rfc3339(), "2026-11-22T10:00:00+00:00");
            assert_eq!(j.queue.as_deref(), Some("syncs"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn every_malformed_shape_is_rejected_with_its_reason() {
    let cases: Vec<(String, &str)> = vec![
        ("{not json".into(), "not JSON"),
        ("[1,2]".into(), "field message: expected a JSON object"),
        (json!({"event": {}}).to_string(), "missing field kind"),
        (json!({"kind": "invoice"}).to_string(), "unknown kind 'invoice'"),
        (json!({"kind": "event"}).to_string(), "missing field event"),
        (json!({"kind": "event", "event": "x"}).to_string(), "field event: expected a JSON object"),
        (event(json!([])), "field event.data: expected a JSON object"),
        (event(json!({})).replace("trip.created", "trip.exploded"), "unknown event type 'trip.exploded'"),
        (event(json!({})).replace("\"id\":\"evt_1\",", ""), "missing field event.id"),
        (event(json!({})).replace("ws_1", ""), "field event.workspace_id: expected a non-empty string"),
        (event(json!({})).replace("2026-11-22T10:00:00Z", "yesterday"), "field event.timestamp: 'yesterday' is not an RFC 3339 time"),
        (json!({"kind": "job", "job": {"kind": "sync", "workspace_id": "ws", "args": {}}}).to_string(), "missing field job.idempotency_key"),
        (json!({"kind": "job", "job": {"kind": "sync", "workspace_id": "ws", "args": 3, "idempotency_key": "k"}}).to_string(), "field job.args: expected a JSON object"),
        (json!({"kind": "job", "job": {"kind": 7, "workspace_id": "ws", "args": {}, "idempotency_key": "k"}}).to_string(), "field job.kind: expected a non-empty string"),
    ];
    for (msg, reason) in cases {
        let error = parse(&msg).expect_err(&msg).to_string();
        assert!(
            error.contains(reason),
            "{msg}: got {error:?}, expected {reason:?}"
        );
    }
}

#[test]
fn a_nul_character_anywhere_is_refused_with_its_path() {
    let msg = event(json!({"legs": [{"note_id": "a\u{0}b"}]}));
    assert_eq!(
        parse(&msg),
        Err(Rejection::NulCharacter(
            "event.data.legs[0].note_id".to_owned()
        ))
    );
    let body = json!({"kind": "sync", "workspace_id": "ws", "args": {"k": "\u{0}"},
        "idempotency_key": "k"});
    assert_eq!(
        parse_job_body(body.to_string().as_bytes()),
        Err(Rejection::NulCharacter("args.k".to_owned()))
    );
}

#[test]
fn http_bodies_are_the_bare_envelope_and_job_object() {
    let event = json!({"id": "evt_1", "type": "trip.created", "workspace_id": "ws_1",
        "timestamp": "2026-11-22T10:00:00Z", "data": {"trip_id": "t_1"}});
    assert_eq!(
        parse_event_body(event.to_string().as_bytes()).map(|e| e.id),
        Ok("evt_1".to_owned())
    );
    assert_eq!(
        parse_job_body(b"[1]"),
        Err(Rejection::WrongType {
            field: "job".to_owned(),
            expected: "a JSON object"
        })
    );
    assert!(matches!(parse_event_body(b"{"), Err(Rejection::NotJson(_))));
}

#[test]
fn the_size_limit_is_256_kib() {
    let filler = "x".repeat(MAX_MESSAGE_BYTES);
    let msg = event(json!({"note_id": filler}));
    assert_eq!(parse(&msg), Err(Rejection::TooLarge { bytes: msg.len() }));
    let fits = event(json!({"note_id": "x".repeat(MAX_MESSAGE_BYTES - 300)}));
    assert!(fits.len() <= MAX_MESSAGE_BYTES && parse(&fits).is_ok());
}

#[test]
fn personal_data_is_refused_wherever_it_is() {
    let cases = [
        (
            json!({"email": "x"}),
            "event.data.email is a personal-data field",
        ),
        (
            json!({"crew": [{"id": "c1", "Last_Name": "Doe"}]}),
            "event.data.crew[0].Last_Name is a personal-data field",
        ),
        (
            json!({"contact_phone": "x"}),
            "event.data.contact_phone is a personal-data field",
        ),
        (
            json!({"note": "pilot.one@example.com"}),
            "event.data.note looks like an e-mail address",
        ),
        (
            json!({"legs": [{"x": ["+1 (415) 555-0100"]}]}),
            "event.data.legs[0].x[0] looks like a phone number",
        ),
    ];
    for (data, reason) in cases {
        let error = parse(&event(data.clone()))
            .expect_err(&data.to_string())
            .to_string();
        assert!(error.contains(reason), "{data}: {error}");
    }
}

#[test]
fn internal_ids_and_ordinary_values_are_not_personal_data() {
    let data = json!({"trip_id": "trp_123", "tail_number": "N123AB", "count": 5,
        "departure": "2026-11-22T10:00:00Z", "legacy_id": "4155550100", "route": "KTEB-KPBI",
        "status": "confirmed", "handle": "@ops", "ratio": "+12", "aircraft": {"model_name_id": "m_1"}});
    assert!(parse(&event(data)).is_ok());
}

fn job(fields: Value) -> String {
    let mut job = json!({"kind": "noop", "workspace_id": "ws_1", "args": {},
        "idempotency_key": "k1"});
    for (k, v) in fields.as_object().expect("fields") {
        job[k] = v.clone();
    }
    json!({"kind": "job", "job": job}).to_string()
}

#[test]
fn every_identifier_is_at_most_255_bytes_and_the_reason_names_it() {
    let long = "x".repeat(256);
    let fits = "é".repeat(127); // 254 bytes
    assert!(parse(&job(json!({"idempotency_key": fits}))).is_ok());
    assert!(parse(&job(json!({"idempotency_key": "k".repeat(255)}))).is_ok());
    let cases = [
        (job(json!({"idempotency_key": long})), "job.idempotency_key"),
        (job(json!({"workspace_id": long})), "job.workspace_id"),
        (job(json!({"kind": long})), "job.kind"),
        (job(json!({"queue": long})), "job.queue"),
        (
            event(json!({})).replace("\"evt_1\"", &format!("\"{long}\"")),
            "event.id",
        ),
        (
            event(json!({})).replace("\"ws_1\"", &format!("\"{long}\"")),
            "event.workspace_id",
        ),
    ];
    for (msg, field) in cases {
        assert_eq!(
            parse(&msg).expect_err(field).to_string(),
            format!("field {field}: 256 bytes, over the limit of 255")
        );
    }
    let six_kb = "k".repeat(6 * 1024);
    assert_eq!(
        parse_job_body(
            json!({"kind": "noop", "workspace_id": "w", "args": {}, "idempotency_key": six_kb})
                .to_string()
                .as_bytes()
        ),
        Err(Rejection::TooLong {
            field: "job.idempotency_key".to_owned(),
            bytes: 6 * 1024
        })
    );
}

#[test]
fn unknown_fields_are_refused_by_name_not_dropped() {
    let cases = [
        (
            job(json!({"bogus_field": 1})),
            r#"unknown field "bogus_field" in job"#,
        ),
        (
            job(json!({"b": 1, "a": 2})),
            r#"unknown fields "a", "b" in job"#,
        ),
        (
            json!({"kind": "job", "job": {}, "extra": true}).to_string(),
            r#"unknown field "extra" in message"#,
        ),
        (
            event(json!({})).replace("\"data\"", "\"version\":2,\"data\""),
            r#"unknown field "version" in event"#,
        ),
    ];
    for (msg, says) in cases {
        assert_eq!(parse(&msg).expect_err(says).to_string(), says);
    }
    let body = json!({"kind": "noop", "workspace_id": "w", "args": {}, "idempotency_key": "k",
        "bogus_field": 1});
    assert_eq!(
        parse_job_body(body.to_string().as_bytes())
            .expect_err("unknown field")
            .to_string(),
        r#"unknown field "bogus_field" in job"#
    );
}

#[test]
fn priority_is_honoured_within_the_stores_range() {
    let priority = |value: Value| match parse(&job(json!({"priority": value}))) {
        Ok(IngressMessage::Job(j)) => Ok(j.priority),
        Ok(other) => panic!("{other:?}"),
        Err(e) => Err(e.to_string()),
    };
    assert_eq!(priority(json!(-3)), Ok(Some(-3)));
    assert_eq!(priority(json!(32767)), Ok(Some(32767)));
    assert_eq!(priority(json!(-32768)), Ok(Some(-32768)));
    assert_eq!(priority(Value::Null), Ok(None));
    for bad in [json!(32768), json!(-40000), json!(1.5), json!("high")] {
        let error = priority(bad.clone()).expect_err(&bad.to_string());
        assert!(
            error.starts_with("field job.priority: expected an integer from -32768 to 32767"),
            "{bad}: {error}"
        );
    }
}

#[test]
fn the_engines_key_prefixes_are_refused_from_callers() {
    for key in [
        "schedule:nightly:2026-11-22T03:00:00Z",
        "alert:1:ach_1:opened",
        "hangar:x",
    ] {
        let error = parse(&job(json!({"idempotency_key": key})))
            .expect_err(key)
            .to_string();
        assert!(
            error.starts_with("field job.idempotency_key: keys starting with '"),
            "{key}: {error}"
        );
    }
    for key in [
        "schedules-1",
        "my-alert:1",
        "Schedule:x",
        "order:schedule:1",
    ] {
        assert!(
            parse(&job(json!({"idempotency_key": key}))).is_ok(),
            "{key}"
        );
    }
}

#[test]
fn a_redacted_copy_keeps_the_shape_and_drops_every_personal_value() {
    let msg = event(
        json!({"trip_id": "trp_1", "passenger": {"email": "a@b.co", "seat": "2A"},
        "crew": [{"Last_Name": "Doe", "note": "call +1 415 555 0100"}, {"note": "+44 20 7946 0958"}],
        "contact_email": {"nested": 1}, "other": "pilot@example.com"}),
    );
    assert!(matches!(parse(&msg), Err(Rejection::PersonalData { .. })));
    let redacted: Value =
        serde_json::from_str(&redact_personal_data(&msg).expect("a message")).expect("json");
    assert_eq!(
        redacted["event"]["data"],
        json!({"trip_id": "trp_1", "passenger": {"email": "<redacted>", "seat": "2A"},
            "crew": [{"Last_Name": "<redacted>", "note": "call +1 415 555 0100"},
                {"note": "<redacted>"}],
            "contact_email": "<redacted>", "other": "<redacted>"})
    );
    assert_eq!(redacted["event"]["id"], "evt_1");
    assert_eq!(redact_personal_data("not json"), None);
}
