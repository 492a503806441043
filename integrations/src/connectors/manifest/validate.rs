//! The checks of a complete manifest beyond its shape, each naming the field: the base URL,
//! secrets only by reference, the templates' names, the methods, the rules' conditions, and
//! what each direction of stream may and must have. Pure; [`super::load`] adds the line.

use super::model::{
    Auth, CursorKind, Format, Manifest, Pagination, Request, Rule, StatusMatch, Stream, Way,
};
use super::template;

type Problem = (String, String);

fn problem(field: impl Into<String>, text: impl Into<String>) -> Problem {
    (field.into(), text.into())
}

/// Checks `manifest`; the first problem found, as (field, what is wrong).
pub fn check(m: &Manifest) -> Result<(), Problem> {
    let url = reqwest::Url::parse(&m.base_url)
        .map_err(|e| problem("base_url", format!("not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(problem("base_url", "must be an http:// or https:// URL"));
    }
    check_auth(&m.auth)?;
    let budget = &m.rate_budget;
    if budget.requests < 1 || budget.per_secs < 1 || budget.concurrent < 1 {
        return Err(problem(
            "rate_budget",
            "requests, per_secs and concurrent must each be at least 1",
        ));
    }
    path("check.path", &m.check.path)?;
    method("check.method", &m.check.method)?;
    for (i, rule) in m.rules.iter().enumerate() {
        check_rule(&format!("rules[{i}]"), rule)?;
    }
    for (i, stream) in m.streams.iter().enumerate() {
        check_stream(&format!("streams[{i}]"), stream)?;
    }
    Ok(())
}

fn check_auth(auth: &Auth) -> Result<(), Problem> {
    let secret = |field: &str, value: &str| -> Result<(), Problem> {
        template::names(value).map_err(|e| problem(field, e))?;
        if !value.contains("{{secret.") {
            return Err(problem(
                field,
                "a secret is never written in a manifest: reference it as {{secret.NAME}} \
                 (NAME: a field of the integration's credentials)",
            ));
        }
        Ok(())
    };
    match auth {
        Auth::ApiKey { name, value, .. } => {
            not_empty("auth.name", name)?;
            secret("auth.value", value)
        }
        Auth::Basic { username, password } => {
            template::names(username).map_err(|e| problem("auth.username", e))?;
            secret("auth.password", password)
        }
        Auth::Bearer { token } => secret("auth.token", token),
        Auth::OauthClientCredentials {
            token_url,
            client_id,
            client_secret,
            ..
        } => {
            not_empty("auth.token_url", token_url)?;
            template::names(client_id).map_err(|e| problem("auth.client_id", e))?;
            secret("auth.client_secret", client_secret)
        }
        Auth::Session(session) => {
            path("auth.login_path", &session.login_path)?;
            not_empty("auth.token_path", &session.token_path)?;
            not_empty("auth.header", &session.header)?;
            if session.ttl_secs == 0 {
                return Err(problem("auth.ttl_secs", "must be at least 1"));
            }
            for (name, value) in &session.fields {
                template::names(value).map_err(|e| problem(format!("auth.fields.{name}"), e))?;
            }
            if !session.fields.values().any(|v| v.contains("{{secret.")) {
                return Err(problem(
                    "auth.fields",
                    "a login posts at least one {{secret.NAME}} reference",
                ));
            }
            Ok(())
        }
    }
}

fn check_rule(at: &str, rule: &Rule) -> Result<(), Problem> {
    for (j, status) in rule.status.iter().enumerate() {
        let ok = match status {
            StatusMatch::Code(code) => (100..=599).contains(code),
            StatusMatch::Class(class) => {
                matches!(class.as_str(), "1xx" | "2xx" | "3xx" | "4xx" | "5xx")
            }
        };
        if !ok {
            return Err(problem(
                format!("{at}.status[{j}]"),
                "a status code 100–599 or a class \"1xx\"…\"5xx\"",
            ));
        }
    }
    if rule.header_equals.is_some() && rule.header.is_none() {
        return Err(problem(
            format!("{at}.header_equals"),
            "needs `header`, the header it compares",
        ));
    }
    if rule.equals.is_some() && rule.path.is_none() {
        return Err(problem(
            format!("{at}.equals"),
            "needs `path`, where the value is",
        ));
    }
    if rule.status.is_empty() && rule.header.is_none() && rule.path.is_none() {
        return Err(problem(
            at,
            "a rule needs a condition: status, header or path",
        ));
    }
    Ok(())
}

fn check_stream(at: &str, s: &Stream) -> Result<(), Problem> {
    let field = |f: &str| format!("{at}.{f}");
    not_empty(&field("primary_key"), &s.primary_key)?;
    check_request(&field("request"), &s.request)?;
    if s.decode.format == Format::Csv && s.decode.records_path.is_some() {
        return Err(problem(
            field("decode.records_path"),
            "a CSV answer is its rows: no records path",
        ));
    }
    match s.direction {
        Way::In => {
            if s.update.is_some() {
                return Err(problem(field("update"), "only an outbound stream updates"));
            }
            if let Some(cursor) = &s.cursor {
                not_empty(&field("cursor.param"), &cursor.param)?;
                not_empty(&field("cursor.field"), &cursor.field)?;
                if cursor.granularity_secs == 0 {
                    return Err(problem(
                        field("cursor.granularity_secs"),
                        "must be at least 1",
                    ));
                }
                if cursor.kind == CursorKind::Incrementing && cursor.retention_days.is_some() {
                    return Err(problem(
                        field("cursor.retention_days"),
                        "a retention window in days is a date-time cursor's",
                    ));
                }
            }
            match &s.pagination {
                Pagination::PageNumber { param, size, .. }
                | Pagination::Offset { param, size, .. } => {
                    not_empty(&field("pagination.param"), param)?;
                    if *size == 0 {
                        return Err(problem(field("pagination.size"), "must be at least 1"));
                    }
                }
                Pagination::CursorToken {
                    param, token_path, ..
                } => {
                    not_empty(&field("pagination.param"), param)?;
                    not_empty(&field("pagination.token_path"), token_path)?;
                    if s.decode.format == Format::Csv {
                        return Err(problem(
                            field("pagination.token_path"),
                            "a CSV answer is its rows: it holds no next-page token (use page_number, offset or link_header)",
                        ));
                    }
                }
                Pagination::None | Pagination::LinkHeader { .. } => {}
            }
        }
        Way::Out => {
            if let Some(update) = &s.update {
                check_request(&field("update"), update)?;
            }
            if s.cursor.is_some() {
                return Err(problem(
                    field("cursor"),
                    "only an inbound stream has a cursor",
                ));
            }
            if s.pagination != Pagination::None {
                return Err(problem(field("pagination"), "only an inbound stream pages"));
            }
            if s.select.is_some() {
                return Err(problem(field("select"), "only an inbound stream selects"));
            }
            if s.request.method == "GET" {
                return Err(problem(
                    field("request.method"),
                    "an outbound stream writes (POST, PUT or PATCH)",
                ));
            }
        }
    }
    Ok(())
}

fn check_request(at: &str, r: &Request) -> Result<(), Problem> {
    method(&format!("{at}.method"), &r.method)?;
    path(&format!("{at}.path"), &r.path)?;
    for (name, value) in r.query.iter().chain(r.headers.iter()) {
        template::names(value).map_err(|e| problem(format!("{at}.{name}"), e))?;
    }
    Ok(())
}

fn method(field: &str, m: &str) -> Result<(), Problem> {
    if matches!(m, "GET" | "POST" | "PUT" | "PATCH" | "DELETE") {
        Ok(())
    } else {
        Err(problem(field, "GET, POST, PUT, PATCH or DELETE"))
    }
}

fn path(field: &str, p: &str) -> Result<(), Problem> {
    if !p.starts_with('/') {
        return Err(problem(
            field,
            "a path below the base URL, starting with '/'",
        ));
    }
    template::names(p).map_err(|e| problem(field, e))?;
    Ok(())
}

fn not_empty(field: &str, value: &str) -> Result<(), Problem> {
    if value.trim().is_empty() {
        Err(problem(field, "must not be empty"))
    } else {
        Ok(())
    }
}
