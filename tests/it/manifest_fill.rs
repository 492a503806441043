//! Filling a shipped manifest template (`integrations/manifests/<provider>.toml`, read through
//! the compiled-in `TEMPLATES` the product uses) for the generic vendor of `vendor_sim.rs`:
//! every `<<VENDOR: …>>` placeholder is replaced programmatically (the TOML parsed and edited
//! as a table); only placeholders are replaced, so the template's data types, directions,
//! object types, conflict classes, events and internal ids stay as shipped. What a system
//! gets (auth kind, cursor, pagination, decoder, write method) rotates with its index.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use toml::{Table, Value as Toml};

use crate::vendor_sim::{
    API_KEY, AuthKind, CLIENT_ID, CLIENT_SECRET, Format, PASSWORD, TOKEN, USER,
};

/// An inbound stream as filled.
#[derive(Clone, Debug)]
pub struct In {
    pub data_type: String,
    pub format: Format,
    /// `date_time` or `incrementing`.
    pub cursor: &'static str,
    /// The query parameter the pagination sends.
    pub page_param: &'static str,
    /// The platform's fields of the map (without `id`).
    pub fields: Vec<String>,
}

/// An outbound stream as filled.
#[derive(Clone, Debug)]
pub struct Out {
    pub data_type: String,
    pub events: Vec<String>,
    pub internal_id: String,
    pub method: &'static str,
    /// Vendor field → path in the event's data.
    pub map: BTreeMap<String, String>,
}

/// A filled template.
#[derive(Clone, Debug)]
pub struct Filled {
    pub text: String,
    pub auth: AuthKind,
    /// `credentials` of the PUT.
    pub credentials: Value,
    /// Every secret value given (none may be echoed).
    pub secrets: Vec<&'static str>,
    pub ins: Vec<In>,
    pub outs: Vec<Out>,
}

/// The vendor's name of a platform field: `tail_number` → `tailNumber`.
pub fn vendor_name(field: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in field.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn is_placeholder(text: &str) -> bool {
    text.contains("<<VENDOR:")
}

/// Replaces `key` of `table`, which must hold a placeholder in the template.
fn set(table: &mut Table, key: &str, value: impl Into<Toml>) {
    let held = table.get(key).map(|v| v.to_string()).unwrap_or_default();
    assert!(
        is_placeholder(&held),
        "{key} = {held}: only placeholders are filled"
    );
    table.insert(key.to_owned(), value.into());
}

/// Replaces a whole sub-table whose `kind` is a placeholder ("kind, then its fields").
fn set_kind(table: &mut Table, key: &str, fields: Table) {
    let kind = table
        .get(key)
        .and_then(|t| t.get("kind"))
        .and_then(Toml::as_str)
        .unwrap_or_default();
    assert!(is_placeholder(kind), "{key}.kind = {kind}: a placeholder");
    table.insert(key.to_owned(), Toml::Table(fields));
}

fn table(pairs: &[(&str, Toml)]) -> Table {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

fn s(text: &str) -> Toml {
    Toml::String(text.to_owned())
}

fn sub<'a>(t: &'a mut Table, key: &str) -> &'a mut Table {
    t.get_mut(key)
        .and_then(Toml::as_table_mut)
        .unwrap_or_else(|| panic!("[{key}]"))
}

const AUTH_KINDS: [AuthKind; 6] = [
    AuthKind::ApiKeyHeader,
    AuthKind::ApiKeyQuery,
    AuthKind::Basic,
    AuthKind::Bearer,
    AuthKind::Oauth,
    AuthKind::Session,
];

fn auth(provider: &str, kind: AuthKind) -> (Table, Value, Vec<&'static str>) {
    let secrets = |pairs: &[(&str, &'static str)]| {
        let map: serde_json::Map<String, Value> =
            pairs.iter().map(|(k, v)| ((*k).into(), json!(v))).collect();
        json!({ "secrets": map })
    };
    match kind {
        AuthKind::ApiKeyHeader | AuthKind::ApiKeyQuery => {
            let placement = if kind == AuthKind::ApiKeyHeader {
                ("header", "X-Vendor-Key")
            } else {
                ("query", "vendor_key")
            };
            (
                table(&[
                    ("kind", s("api_key")),
                    ("placement", s(placement.0)),
                    ("name", s(placement.1)),
                    ("value", s("{{secret.api_key}}")),
                ]),
                json!({ "api_key": API_KEY }),
                vec![API_KEY],
            )
        }
        AuthKind::Basic => (
            table(&[
                ("kind", s("basic")),
                ("username", s("{{secret.username}}")),
                ("password", s("{{secret.password}}")),
            ]),
            secrets(&[("username", USER), ("password", PASSWORD)]),
            vec![PASSWORD],
        ),
        AuthKind::Bearer => (
            table(&[("kind", s("bearer")), ("token", s("{{secret.token}}"))]),
            secrets(&[("token", TOKEN)]),
            vec![TOKEN],
        ),
        AuthKind::Oauth => (
            table(&[
                ("kind", s("oauth_client_credentials")),
                ("token_url", s(&format!("/{provider}/oauth/token"))),
                ("client_id", s("{{secret.client_id}}")),
                ("client_secret", s("{{secret.client_secret}}")),
                ("scopes", Toml::Array(vec![s("read"), s("write")])),
            ]),
            secrets(&[("client_id", CLIENT_ID), ("client_secret", CLIENT_SECRET)]),
            vec![CLIENT_SECRET],
        ),
        AuthKind::Session => (
            table(&[
                ("kind", s("session")),
                ("login_path", s(&format!("/{provider}/login"))),
                ("token_path", s("session.token")),
                ("expires_in_path", s("session.expires_in")),
                (
                    "fields",
                    Toml::Table(table(&[
                        ("user", s("{{secret.username}}")),
                        ("pass", s("{{secret.password}}")),
                    ])),
                ),
            ]),
            secrets(&[("username", USER), ("password", PASSWORD)]),
            vec![PASSWORD],
        ),
    }
}

fn fill_rule(rule: &mut Table) {
    match rule.get("action").and_then(Toml::as_str) {
        Some("rate_limited") => {
            set(rule, "status", Toml::Array(vec![Toml::Integer(429)]));
            set(rule, "wait_header", "Retry-After");
        }
        Some("refresh") => {
            set(rule, "status", Toml::Array(vec![Toml::Integer(401)]));
            set(rule, "path", "error.code");
            set(rule, "equals", "SESSION_EXPIRED");
        }
        Some("soft_error") => {
            set(rule, "path", "errors");
            set(rule, "message_path", "errors[0].message");
        }
        other => panic!("a template rule with action {other:?}"),
    }
}

fn fill_in(provider: &str, stream: &mut Table, n: usize) -> In {
    let data_type = stream["data_type"].as_str().expect("data_type").to_owned();
    // CSV with page numbers and offsets (a CSV answer holds no next-page token).
    let format = if matches!(n, 1 | 3) {
        Format::Csv
    } else {
        Format::Json
    };
    let cursor = if n.is_multiple_of(2) {
        "date_time"
    } else {
        "incrementing"
    };
    set(stream, "primary_key", "uid");
    set(stream, "modified_path", "updated");
    set(
        sub(stream, "request"),
        "path",
        format!("/{provider}/{data_type}"),
    );
    let cursor_table = if cursor == "date_time" {
        table(&[
            ("kind", s("date_time")),
            ("param", s("modified_since")),
            ("field", s("updated")),
            ("lookback", Toml::Integer(60)),
        ])
    } else {
        table(&[
            ("kind", s("incrementing")),
            ("param", s("after_seq")),
            ("field", s("seq")),
            ("lookback", Toml::Integer(0)),
        ])
    };
    set_kind(stream, "cursor", cursor_table);
    let (pagination, page_param) = match n % 3 {
        0 => (
            table(&[
                ("kind", s("page_number")),
                ("param", s("page")),
                ("size_param", s("per_page")),
                ("size", Toml::Integer(3)),
            ]),
            "page",
        ),
        1 => (
            table(&[
                ("kind", s("offset")),
                ("param", s("offset")),
                ("size_param", s("limit")),
                ("size", Toml::Integer(3)),
            ]),
            "offset",
        ),
        _ => (
            table(&[
                ("kind", s("cursor_token")),
                ("param", s("page_token")),
                ("token_path", s("data.next")),
                ("size_param", s("page_size")),
                ("size", Toml::Integer(3)),
            ]),
            "page_token",
        ),
    };
    set_kind(stream, "pagination", pagination);
    let decode = sub(stream, "decode");
    match format {
        Format::Json => {
            set(decode, "format", "json");
            set(decode, "records_path", "data.records");
        }
        Format::Csv => {
            set(decode, "format", "csv");
            assert!(
                decode
                    .remove("records_path")
                    .is_some_and(|v| is_placeholder(&v.to_string()))
            );
        }
    }
    let map = sub(stream, "map");
    let mut fields = Vec::new();
    for (key, value) in map.iter_mut() {
        assert!(
            is_placeholder(value.as_str().unwrap_or_default()),
            "map.{key}"
        );
        *value = if key == "id" {
            s("uid")
        } else {
            fields.push(key.clone());
            match format {
                Format::Json => s(&format!("attributes.{}", vendor_name(key))),
                Format::Csv => s(&vendor_name(key)),
            }
        };
    }
    assert!(
        map.contains_key("id"),
        "{data_type}: the map gives the record's id"
    );
    In {
        data_type,
        format,
        cursor,
        page_param,
        fields,
    }
}

fn fill_out(provider: &str, stream: &mut Table, n: usize) -> Out {
    let data_type = stream["data_type"].as_str().expect("data_type").to_owned();
    let method = if n.is_multiple_of(2) { "POST" } else { "PUT" };
    set(stream, "primary_key", "result.id");
    let request = sub(stream, "request");
    set(request, "method", method);
    set(request, "path", format!("/{provider}/{data_type}"));
    set(sub(stream, "decode"), "format", "json");
    let map = sub(stream, "map");
    let mut filled = Table::new();
    let mut plain = BTreeMap::new();
    for (key, source) in map.iter() {
        assert!(is_placeholder(key), "map key {key}: the vendor's field");
        let source = source.as_str().expect("a path in the event's data");
        filled.insert(vendor_name(source), s(source));
        plain.insert(vendor_name(source), source.to_owned());
    }
    *map = filled;
    let events = stream["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e.as_str().expect("event").to_owned())
        .collect();
    Out {
        data_type,
        events,
        internal_id: stream["internal_id"]
            .as_str()
            .expect("internal_id")
            .to_owned(),
        method,
        map: plain,
    }
}

/// Every string (keys too) of `value` holding a placeholder, by where it is.
pub fn placeholders_left(value: &Toml, at: &str, found: &mut Vec<String>) {
    match value {
        Toml::String(text) if is_placeholder(text) => found.push(format!("{at} = {text}")),
        Toml::Table(t) => {
            for (k, v) in t {
                if is_placeholder(k) {
                    found.push(format!("{at}.{k} (a key)"));
                }
                placeholders_left(v, &format!("{at}.{k}"), found);
            }
        }
        Toml::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                placeholders_left(v, &format!("{at}[{i}]"), found);
            }
        }
        _ => {}
    }
}

/// `template` (the shipped text of `provider`, system number `n`) filled for the vendor
/// simulator at `base`.
pub fn fill(provider: &str, template: &str, base: &str, n: usize) -> Filled {
    let mut doc: Table = toml::from_str(template).expect("the template is TOML");
    set(&mut doc, "base_url", base);
    let kind = AUTH_KINDS[n % AUTH_KINDS.len()];
    let (auth_table, credentials, secrets) = auth(provider, kind);
    set_kind(&mut doc, "auth", auth_table);
    let budget = sub(&mut doc, "rate_budget");
    set(budget, "requests", 200);
    set(budget, "per_secs", 1);
    set(budget, "concurrent", 2);
    set(sub(&mut doc, "check"), "path", format!("/{provider}/me"));
    for rule in doc
        .get_mut("rules")
        .and_then(Toml::as_array_mut)
        .expect("[[rules]]")
    {
        fill_rule(rule.as_table_mut().expect("a rule"));
    }
    let (mut ins, mut outs) = (Vec::new(), Vec::new());
    for stream in doc
        .get_mut("streams")
        .and_then(Toml::as_array_mut)
        .expect("[[streams]]")
    {
        let stream = stream.as_table_mut().expect("a stream");
        match stream["direction"].as_str() {
            Some("in") => ins.push(fill_in(provider, stream, n)),
            Some("out") => outs.push(fill_out(provider, stream, n)),
            other => panic!("direction {other:?}"),
        }
    }
    let doc = Toml::Table(doc);
    let mut left = Vec::new();
    placeholders_left(&doc, "manifest", &mut left);
    assert!(left.is_empty(), "{provider}: placeholders left: {left:?}");
    Filled {
        text: toml::to_string(&doc).expect("TOML"),
        auth: kind,
        credentials,
        secrets,
        ins,
        outs,
    }
}
