//! Reading an inbound stream: one page ([`page`]) with the cursor and pagination parameters
//! the manifest names, and the next page's position: a page number or an offset (a short
//! page is the last), a cursor token from the answer, or the `Link` header's `rel="next"`
//! (kept on the provider's own address). A full scan reads one page per engine call (the
//! position is the engine's); a changes read follows every page of the answer to the cursor
//! query in one call (the provider's order within it is unknown), pacing extra pages by the
//! rate budget's interval and stopping at [`MAX_PAGES`].

use std::time::Duration;

use chrono::{DateTime, Utc};
use hangar_workers::error_class::ErrorClass;
use hangar_workers::kinds::JobFailure;
use reqwest::header::HeaderMap;

use super::cursor;
use super::http::{Env, Extra, exchange};
use super::model::{Pagination, Stream};
use super::select;
use crate::sync::InboundRecord;
use crate::sync::connector::ConnectorError;

/// The most pages one changes read follows.
pub const MAX_PAGES: usize = 100;

/// Where a page starts (the engine's scan position, as text).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PagePos {
    /// A page number.
    Page(u64),
    /// An offset.
    Offset(u64),
    /// A cursor token.
    Token(String),
    /// A next-page URL.
    Link(String),
}

impl PagePos {
    /// The stored form (`page:2`, `offset:100`, `token:…`, `link:…`).
    pub fn encode(&self) -> String {
        match self {
            PagePos::Page(n) => format!("page:{n}"),
            PagePos::Offset(n) => format!("offset:{n}"),
            PagePos::Token(t) => format!("token:{t}"),
            PagePos::Link(u) => format!("link:{u}"),
        }
    }

    /// Parses the stored form.
    pub fn decode(text: &str) -> Option<PagePos> {
        let (kind, rest) = text.split_once(':')?;
        match kind {
            "page" => rest.parse().ok().map(PagePos::Page),
            "offset" => rest.parse().ok().map(PagePos::Offset),
            "token" => Some(PagePos::Token(rest.to_owned())),
            "link" => Some(PagePos::Link(rest.to_owned())),
            _ => None,
        }
    }
}

fn failure(class: ErrorClass, message: String) -> ConnectorError {
    ConnectorError::Failed(JobFailure::new(class, message))
}

/// One page of `stream` from `pos` (`None`: the first), with the changes since `since` when
/// given; its records and the next page's position.
pub async fn page(
    env: &Env<'_>,
    stream: &Stream,
    since: Option<DateTime<Utc>>,
    pos: Option<&PagePos>,
) -> Result<(Vec<InboundRecord>, Option<PagePos>), ConnectorError> {
    let mut extra = Extra::default();
    if let (Some(since), Some(spec)) = (since, &stream.cursor) {
        extra
            .query
            .push((spec.param.clone(), cursor::param_value(spec, since)));
    }
    let size_param = |param: &Option<String>, size: Option<u64>, q: &mut Vec<(String, String)>| {
        if let (Some(p), Some(s)) = (param, size) {
            q.push((p.clone(), s.to_string()));
        }
    };
    match (&stream.pagination, pos) {
        (Pagination::None, _) => {}
        (
            Pagination::PageNumber {
                param,
                start,
                size_param: sp,
                size,
            },
            pos,
        ) => {
            let n = match pos {
                Some(PagePos::Page(n)) => *n,
                _ => *start,
            };
            extra.query.push((param.clone(), n.to_string()));
            size_param(sp, Some(*size), &mut extra.query);
        }
        (
            Pagination::Offset {
                param,
                size_param: sp,
                size,
            },
            pos,
        ) => {
            let n = match pos {
                Some(PagePos::Offset(n)) => *n,
                _ => 0,
            };
            extra.query.push((param.clone(), n.to_string()));
            size_param(sp, Some(*size), &mut extra.query);
        }
        (
            Pagination::CursorToken {
                param,
                size_param: sp,
                size,
                ..
            },
            pos,
        ) => {
            if let Some(PagePos::Token(t)) = pos {
                extra.query.push((param.clone(), t.clone()));
            }
            size_param(sp, *size, &mut extra.query);
        }
        (
            Pagination::LinkHeader {
                size_param: sp,
                size,
            },
            pos,
        ) => match pos {
            Some(PagePos::Link(url)) => {
                same_origin(&env.base, url)?;
                extra.url = Some(url.clone());
                extra.query.clear();
            }
            _ => size_param(sp, *size, &mut extra.query),
        },
    }
    let answer = exchange(env, &stream.request, &extra, stream.decode.format).await?;
    let raw = select::records(&answer.body, stream.decode.records_path.as_deref())
        .map_err(|e| failure(ErrorClass::Server, format!("{}: {e}", stream.data_type)))?;
    let next = next_pos(
        &stream.pagination,
        pos,
        raw.len() as u64,
        &answer.body,
        &answer.headers,
    );
    let mut records = Vec::with_capacity(raw.len());
    for record in raw {
        if !select::keep(&record, stream.select.as_ref()) {
            continue;
        }
        let external_id = select::text(&record, &stream.primary_key).ok_or_else(|| {
            failure(
                ErrorClass::Server,
                format!(
                    "{}: a record has no primary key at `{}`",
                    stream.data_type, stream.primary_key
                ),
            )
        })?;
        let modified_at = cursor::record_time(
            stream.cursor.as_ref(),
            stream.modified_path.as_deref(),
            &record,
        )
        .map_err(|e| failure(ErrorClass::Server, format!("{}: {e}", stream.data_type)))?;
        records.push(InboundRecord {
            object_type: stream.object_type.clone(),
            external_id,
            modified_at,
            payload: select::map(&record, &stream.map),
            concurrency_token: None,
            deleted: false,
        });
    }
    Ok((records, next))
}

fn next_pos(
    pagination: &Pagination,
    pos: Option<&PagePos>,
    count: u64,
    body: &serde_json::Value,
    headers: &HeaderMap,
) -> Option<PagePos> {
    match pagination {
        Pagination::None => None,
        Pagination::PageNumber { start, size, .. } => {
            let n = match pos {
                Some(PagePos::Page(n)) => *n,
                _ => *start,
            };
            (count >= *size).then(|| PagePos::Page(n + 1))
        }
        Pagination::Offset { size, .. } => {
            let n = match pos {
                Some(PagePos::Offset(n)) => *n,
                _ => 0,
            };
            (count >= *size).then(|| PagePos::Offset(n + count))
        }
        Pagination::CursorToken { token_path, .. } => select::text(body, token_path)
            .filter(|t| !t.is_empty() && pos != Some(&PagePos::Token(t.clone())))
            .map(PagePos::Token),
        Pagination::LinkHeader { .. } => headers
            .get_all(reqwest::header::LINK)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(next_link)
            .map(PagePos::Link),
    }
}

/// The `rel="next"` target of a `Link` header value.
pub fn next_link(value: &str) -> Option<String> {
    value.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        params
            .split(';')
            .any(|p| {
                let p = p.trim().replace(' ', "");
                p.eq_ignore_ascii_case("rel=\"next\"") || p.eq_ignore_ascii_case("rel=next")
            })
            .then(|| target.to_owned())
    })
}

fn same_origin(base: &str, url: &str) -> Result<(), ConnectorError> {
    let parse = |u: &str| reqwest::Url::parse(u).ok();
    let (Some(b), Some(u)) = (parse(base), parse(url)) else {
        return Err(failure(
            ErrorClass::Client,
            "the next-page link is not a URL".into(),
        ));
    };
    if b.scheme() == u.scheme()
        && b.host_str() == u.host_str()
        && b.port_or_known_default() == u.port_or_known_default()
    {
        Ok(())
    } else {
        Err(failure(
            ErrorClass::Client,
            "the next-page link leaves the provider's address: not followed".into(),
        ))
    }
}

/// Every record of the changes since `since` (all pages of the answer).
pub async fn changes(
    env: &Env<'_>,
    stream: &Stream,
    since: DateTime<Utc>,
) -> Result<Vec<InboundRecord>, ConnectorError> {
    let budget = &env.manifest.rate_budget;
    let pace = Duration::from_secs_f64(budget.per_secs as f64 / budget.requests.max(1) as f64);
    let mut all = Vec::new();
    let mut pos: Option<PagePos> = None;
    for n in 0..MAX_PAGES {
        if n > 0 {
            tokio::time::sleep(pace).await;
        }
        let (records, next) = page(env, stream, Some(since), pos.as_ref()).await?;
        all.extend(records);
        match next {
            Some(next) => pos = Some(next),
            None => return Ok(all),
        }
    }
    Err(failure(
        ErrorClass::Client,
        format!(
            "{}: more than {MAX_PAGES} pages of changes in one read; lower the cursor's lookback or raise the page size",
            stream.data_type
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_headers_and_positions() {
        assert_eq!(
            next_link(
                r#"<https://x.test/a?page=2>; rel="next", <https://x.test/a?page=9>; rel="last""#
            ),
            Some("https://x.test/a?page=2".into())
        );
        assert_eq!(next_link(r#"<https://x.test/a?page=9>; rel="last""#), None);
        for p in [
            PagePos::Page(3),
            PagePos::Offset(200),
            PagePos::Token("a:b".into()),
            PagePos::Link("http://h/x?y=1".into()),
        ] {
            assert_eq!(PagePos::decode(&p.encode()), Some(p));
        }
        assert!(same_origin("http://127.0.0.1:80/api", "http://127.0.0.1/next").is_ok());
        assert!(same_origin("http://127.0.0.1:8080", "http://10.0.0.1:8080/next").is_err());
    }
}
