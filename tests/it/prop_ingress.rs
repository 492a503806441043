//! Property tests of the ingress decoder (CONTRACT.md, "Redis ingress"): any `msg` text, and
//! messages shaped like the wire format with each field valid, mistyped, missing or unknown,
//! go through `wire::parse` and `Client::resolve` (what the consumer does with an entry)
//! without a panic; every refusal is a `Rejection` whose text is short and says what is wrong;
//! a well-formed message is accepted and keeps what was sent. Cases: `PROPTEST_CASES`
//! (default 256; `scripts/proptest` runs 10⁶).

use hangar_workers::client::Client;
use hangar_workers::events::EVENT_TYPES;
use hangar_workers::wire::{self, IngressMessage, Rejection};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// Any JSON value, a few levels deep, with strings that include NULs, non-ASCII and
/// personal-data-looking text.
pub fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::String),
        "[a-z@.0-9\\x00+ -]{0,24}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,10}|\\PC{0,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A field value that is sometimes right for the field and sometimes anything.
fn field_value(good: impl Strategy<Value = Value> + 'static) -> impl Strategy<Value = Value> {
    prop_oneof![4 => good, 1 => json_value()]
}

fn rfc3339() -> impl Strategy<Value = Value> {
    (-62_000_000_000i64..250_000_000_000i64).prop_map(|secs| {
        Value::String(
            chrono::DateTime::from_timestamp(secs, 0)
                .unwrap()
                .to_rfc3339(),
        )
    })
}

fn identifier() -> impl Strategy<Value = Value> {
    prop_oneof![
        8 => "[a-z0-9_:-]{1,40}",
        1 => "[a-z]{250,260}",
        1 => "(schedule|alert|hangar):[a-z]{0,5}",
    ]
    .prop_map(Value::String)
}

/// An object with some of `fields` (each from its strategy), maybe an unknown one.
fn shaped(
    fields: Vec<(&'static str, BoxedStrategy<Value>)>,
) -> impl Strategy<Value = Map<String, Value>> {
    let count = fields.len();
    let (names, strategies): (Vec<_>, Vec<_>) = fields.into_iter().unzip();
    (
        strategies,
        prop::collection::vec(prop::bool::weighted(0.9), count),
        prop::option::weighted(0.1, ("[a-z]{1,8}", json_value())),
    )
        .prop_map(move |(values, keep, extra)| {
            let mut map = Map::new();
            for ((name, value), keep) in names.iter().zip(values).zip(keep) {
                if keep {
                    map.insert((*name).to_owned(), value);
                }
            }
            if let Some((name, value)) = extra {
                map.insert(name, value);
            }
            map
        })
}

fn event_object() -> impl Strategy<Value = Map<String, Value>> {
    shaped(vec![
        ("id", field_value(identifier()).boxed()),
        (
            "type",
            field_value(prop::sample::select(EVENT_TYPES).prop_map(Value::from)).boxed(),
        ),
        ("workspace_id", field_value(identifier()).boxed()),
        ("timestamp", field_value(rfc3339()).boxed()),
        ("data", field_value(json_value()).boxed()),
    ])
}

fn job_object() -> impl Strategy<Value = Map<String, Value>> {
    let kind = prop_oneof![
        Just(json!("noop")),
        Just(json!("http")),
        Just(json!("alert_slack")),
        Just(json!("webhook_delivery")),
        identifier(),
    ];
    shaped(vec![
        ("kind", field_value(kind).boxed()),
        ("workspace_id", field_value(identifier()).boxed()),
        ("args", field_value(json_value()).boxed()),
        ("idempotency_key", field_value(identifier()).boxed()),
        ("run_at", field_value(rfc3339()).boxed()),
        (
            "queue",
            field_value(prop_oneof![Just(json!("default")), identifier()]).boxed(),
        ),
        (
            "priority",
            field_value(any::<i32>().prop_map(Value::from)).boxed(),
        ),
    ])
}

/// A message shaped like the format: `kind` and the object it names, sometimes mismatched.
fn shaped_message() -> impl Strategy<Value = String> {
    let kind = field_value(prop_oneof![Just(json!("event")), Just(json!("job"))]);
    (kind, event_object(), job_object(), 0..4u8).prop_map(|(kind, event, job, layout)| {
        let mut root = Map::new();
        root.insert("kind".to_owned(), kind);
        match layout {
            0 => {
                root.insert("event".to_owned(), Value::Object(event));
            }
            1 => {
                root.insert("job".to_owned(), Value::Object(job));
            }
            2 => {
                root.insert("event".to_owned(), Value::Object(event));
                root.insert("job".to_owned(), Value::Object(job));
            }
            _ => {}
        }
        Value::Object(root).to_string()
    })
}

/// Decodes `msg` as the consumer does: parse, then resolve a job against the built-in pools.
fn decode(client: &Client, msg: &str) -> Result<IngressMessage, Rejection> {
    match wire::parse(msg)? {
        IngressMessage::Job(request) => {
            client.resolve(request.clone())?;
            Ok(IngressMessage::Job(request))
        }
        event => Ok(event),
    }
}

/// A refusal is clear: it says something, in a bounded length, and names a field or the
/// problem.
fn assert_clear(rejection: &Rejection, msg: &str) {
    let text = rejection.to_string();
    assert!(!text.trim().is_empty(), "empty refusal for {msg:?}");
    assert!(
        text.len() <= 1_024 + msg.len(),
        "refusal longer than its message: {text}"
    );
    let names_something = [
        "field", "kind", "JSON", "message", "event", "job", "bytes", "personal",
    ]
    .iter()
    .any(|word| text.contains(word));
    assert!(
        names_something,
        "refusal says neither field nor problem: {text}"
    );
}

proptest! {
    #[test]
    fn prop_ingress_any_text_is_refused_clearly(msg in prop_oneof!["\\PC*", ".*", "[{}\\[\\]\":,a-z0-9 ]{0,40}"]) {
        let client = Client::builtin();
        match decode(&client, &msg) {
            Ok(_) => {}
            Err(rejection) => {
                assert_clear(&rejection, &msg);
                if serde_json::from_str::<Value>(&msg).is_err() {
                    prop_assert!(matches!(rejection, Rejection::NotJson(_)), "{rejection}");
                }
            }
        }
    }

    #[test]
    fn prop_ingress_shaped_messages_never_panic(msg in shaped_message()) {
        let client = Client::builtin();
        if let Err(rejection) = decode(&client, &msg) {
            assert_clear(&rejection, &msg);
        }
    }

    #[test]
    fn prop_ingress_any_json_value_is_refused_clearly(value in json_value()) {
        let client = Client::builtin();
        let msg = value.to_string();
        if let Err(rejection) = decode(&client, &msg) {
            assert_clear(&rejection, &msg);
        }
    }

    #[test]
    fn prop_ingress_valid_messages_are_accepted_as_sent(
        id in "[a-z0-9_]{1,40}",
        workspace in "[a-z0-9_]{1,40}",
        key in "[a-z0-9][a-z0-9_.-]{0,60}",
        event_type in prop::sample::select(EVENT_TYPES),
        secs in 0i64..4_000_000_000,
        priority in prop::option::of(any::<i16>()),
        numbers in prop::collection::btree_map("n[0-9]{1,3}", any::<i32>(), 0..5),
    ) {
        let client = Client::builtin();
        let at = chrono::DateTime::from_timestamp(secs, 0).unwrap();
        let data: Map<String, Value> = numbers.into_iter().map(|(k, v)| (k, Value::from(v))).collect();
        let event = json!({"kind": "event", "event": {"id": id, "type": event_type,
            "workspace_id": workspace, "timestamp": at.to_rfc3339(), "data": data}});
        match decode(&client, &event.to_string()) {
            Ok(IngressMessage::Event(envelope)) => {
                prop_assert_eq!(&envelope.id, &id);
                prop_assert_eq!(envelope.event_type.as_str(), event_type);
                prop_assert_eq!(&envelope.workspace_id, &workspace);
                prop_assert_eq!(envelope.timestamp, at);
                prop_assert_eq!(&envelope.data, &data);
            }
            other => prop_assert!(false, "valid event refused: {other:?}"),
        }
        let job = json!({"kind": "job", "job": {"kind": "noop", "workspace_id": workspace,
            "args": data, "idempotency_key": key, "run_at": at.to_rfc3339(), "priority": priority}});
        match wire::parse(&job.to_string()) {
            Ok(IngressMessage::Job(request)) => {
                prop_assert_eq!(&request.idempotency_key, &key);
                prop_assert_eq!(request.priority, priority);
                prop_assert_eq!(request.run_at, Some(at));
                let new_job = client.resolve(request).expect("a noop job resolves");
                prop_assert_eq!(new_job.kind.as_str(), "noop");
                prop_assert_eq!(new_job.workspace_id.as_deref(), Some(workspace.as_str()));
            }
            other => prop_assert!(false, "valid job refused: {other:?}"),
        }
    }
}
