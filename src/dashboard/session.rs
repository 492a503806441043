//! Dashboard sessions. Signing in checks an API token with the same lookup as the API
//! ([`crate::api::authenticate`]) and opens a server-side session ([`session_store`]): the
//! `HttpOnly; SameSite=Strict` cookie (`Secure` behind HTTPS) holds only a random session
//! id, never the token. A session ends twelve hours after its last request, when its token
//! is revoked, or at sign-out, which deletes it. Failed sign-ins are limited per client
//! address ([`SignInLimit`]): the eleventh within five minutes is answered 429.
//!
//! Forms are CSRF-safe twice over: every POST carries a token derived from the session
//! (SHA-256 of a fixed label and the session id: a page from elsewhere cannot compute it),
//! checked in constant time; and a POST whose `Sec-Fetch-Site` or `Origin` says it came from
//! another site is refused before anything else happens.

use axum::extract::rejection::FormRejection;
use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::frame::{self, Nav};
use super::session_store::{self, looks_like_id};
use super::sign_in_limit::SignInLimit;
use super::{DashState, Problem};
use crate::api::{Caller, authenticate};
use maud::html;

/// The session cookie's name.
pub const COOKIE: &str = "hangar_session";

/// The request header the live refresh sends to get only the `<main>` content.
pub const PARTIAL_HEADER: &str = "x-hangar-partial";

/// A signed-in request.
pub struct Session {
    /// The session id of the cookie.
    id: String,
    /// Who it is (role and workspace), as the API sees the same token.
    pub caller: Caller,
    /// The CSRF token every form of this session carries.
    pub csrf: String,
    /// Whether only the `<main>` content was asked for (live refresh).
    pub partial: bool,
}

impl Session {
    /// Refuses a form whose CSRF token is not this session's.
    pub fn check_csrf(&self, presented: &str) -> Result<(), Problem> {
        if bool::from(presented.as_bytes().ct_eq(self.csrf.as_bytes())) {
            Ok(())
        } else {
            Err(Problem::new(
                StatusCode::FORBIDDEN,
                "The form's security token is missing or wrong (was it opened in another \
                 session?). Nothing was changed; reload the page and try again.",
            ))
        }
    }

    /// The frame's view of who is signed in.
    pub fn who(&self) -> frame::Who<'_> {
        frame::Who {
            role: self.caller.role.as_str(),
            workspace: self.caller.workspace.as_deref(),
            csrf: &self.csrf,
        }
    }
}

/// The CSRF token of a session: derived from the session id, never the id itself.
pub fn csrf_token(session_id: &str) -> String {
    let mut digest = Sha256::new();
    digest.update(b"hangar dashboard csrf v1\0");
    digest.update(session_id.as_bytes());
    hex::encode(digest.finalize())
}

/// The session id of the request's cookie, if any.
fn cookie_session(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim().to_owned())
        .filter(|v| looks_like_id(v))
}

/// Whether `token` has the shape of an API token (`hgr_` and hex).
fn looks_like_token(token: &str) -> bool {
    token.strip_prefix("hgr_").is_some_and(|hex| {
        !hex.is_empty() && hex.len() <= 128 && hex.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

/// Whether the request came over HTTPS (directly or through a proxy that says so).
fn is_https(headers: &HeaderMap) -> bool {
    let header_is = |name: &str, value: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(',')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .eq_ignore_ascii_case(value)
            })
    };
    header_is("x-forwarded-proto", "https")
        || headers
            .get(header::FORWARDED)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().contains("proto=https"))
}

/// Whether a POST may come from where its headers say it came from: refused when the
/// browser says cross-site (`Sec-Fetch-Site`) or the `Origin` is not this host.
pub fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return false;
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let origin = origin.to_str().unwrap_or("null");
    let Some((_, origin_host)) = origin.split_once("://") else {
        return false;
    };
    let hosts = [header::HOST.as_str(), "x-forwarded-host"];
    hosts.iter().any(|name| {
        headers
            .get(*name)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|host| host.eq_ignore_ascii_case(origin_host))
    })
}

/// The redirect every page answers with when nobody is signed in.
fn to_login(clear_cookie: bool) -> Response {
    let mut response = Redirect::to("/login").into_response();
    if clear_cookie {
        response
            .headers_mut()
            .insert(header::SET_COOKIE, cookie_header("", false, true));
    }
    response
}

fn cookie_header(value: &str, secure: bool, clear: bool) -> HeaderValue {
    let mut cookie = format!("{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict");
    if secure {
        cookie.push_str("; Secure");
    }
    if clear {
        cookie.push_str("; Max-Age=0");
    }
    HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static(""))
}

impl FromRequestParts<DashState> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &DashState) -> Result<Self, Response> {
        let Some(id) = cookie_session(&parts.headers) else {
            return Err(to_login(false));
        };
        let caller = match session_store::resume(&state.api.store, &id).await {
            Ok(Some(caller)) => caller,
            Ok(None) => return Err(to_login(true)),
            Err(error) => return Err(Problem::from(error).into_response()),
        };
        if let Err(error) = state.api.limiter.check(caller.token_id) {
            return Err(Problem::from(error).into_response());
        }
        Ok(Session {
            csrf: csrf_token(&id),
            id,
            caller,
            partial: parts.headers.contains_key(PARTIAL_HEADER),
        })
    }
}

/// `/login` and `/logout`.
pub fn routes() -> Router<DashState> {
    Router::new()
        .route("/login", get(login_form).post(login))
        .route("/logout", axum::routing::post(logout))
}

fn login_page(status: StatusCode, message: Option<&str>) -> Response {
    let main = html! {
        div.login {
            h1 { "Sign in to Hangar" }
            @if let Some(message) = message {
                p class="note error" { (message) }
            }
            form method="post" action="/login" {
                label for="token" { "API token" }
                input #token name="token" type="password" autocomplete="off" required
                    placeholder="hgr_…" autofocus;
                button.primary type="submit" { "Sign in" }
            }
            p.mut {
                small {
                    "Create one with " code { "hangar tokens create --role viewer" } ". This \
                     browser keeps only a random session id, never the token; the session ends \
                     12 h after your last visit, when you sign out, or when the token is \
                     revoked."
                }
            }
        }
    };
    let page = frame::document("Sign in", Nav::None, None, false, main);
    (
        status,
        super::page_headers(),
        axum::response::Html(page.into_string()),
    )
        .into_response()
}

async fn login_form() -> Response {
    login_page(StatusCode::OK, None)
}

/// The sign-in form's body.
#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    token: String,
}

async fn login(
    State(state): State<DashState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    if !same_origin(&headers) {
        return Problem::cross_site().into_response();
    }
    let limit: &SignInLimit = &state.sign_ins;
    if let Err(wait) = limit.check(peer.ip(), Instant::now()) {
        let minutes = wait.as_secs().div_ceil(60).max(1);
        let mut response = login_page(
            StatusCode::TOO_MANY_REQUESTS,
            Some(&format!(
                "Too many failed sign-ins from this address. Try again in {minutes} min."
            )),
        );
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(wait.as_secs().max(1)),
        );
        return response;
    }
    let token = form.map(|f| f.0.token).unwrap_or_default();
    let token = token.trim();
    if !looks_like_token(token) {
        limit.failed(peer.ip(), Instant::now());
        return login_page(
            StatusCode::UNAUTHORIZED,
            Some("That is not an API token (they start with hgr_)."),
        );
    }
    let caller = match authenticate(&state.api, token).await {
        Ok(caller) => caller,
        Err(error) if error.status() == StatusCode::UNAUTHORIZED => {
            limit.failed(peer.ip(), Instant::now());
            return login_page(StatusCode::UNAUTHORIZED, Some("Unknown or revoked token."));
        }
        Err(error) => return login_page(error.status(), Some(&error.message())),
    };
    let opened = match session_store::new_id() {
        Ok(id) => session_store::create(
            &state.api.store,
            &id,
            &crate::api::token_hash(token),
            &caller,
        )
        .await
        .map(|()| id)
        .map_err(|e| e.to_string()),
        Err(error) => Err(format!("the OS random generator failed: {error}")),
    };
    match opened {
        Ok(id) => {
            let mut response = Redirect::to("/").into_response();
            response.headers_mut().insert(
                header::SET_COOKIE,
                cookie_header(&id, is_https(&headers), false),
            );
            response
        }
        Err(error) => {
            tracing::warn!(%error, "dashboard: cannot open a session");
            login_page(
                StatusCode::SERVICE_UNAVAILABLE,
                Some("The session could not be stored; retry in a moment."),
            )
        }
    }
}

/// A form that carries only the CSRF token.
#[derive(Deserialize)]
pub struct CsrfForm {
    /// The session's CSRF token.
    #[serde(default)]
    pub csrf: String,
}

async fn logout(
    State(state): State<DashState>,
    session: Result<Session, Response>,
    headers: HeaderMap,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Response {
    if !same_origin(&headers) {
        return Problem::cross_site().into_response();
    }
    let Ok(session) = session else {
        return to_login(true);
    };
    let presented = form.map(|f| f.0.csrf).unwrap_or_default();
    if let Err(problem) = session.check_csrf(&presented) {
        return problem.into_response();
    }
    if let Err(error) = session_store::delete(&state.api.store, &session.id).await {
        return Problem::from(error).into_response();
    }
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        cookie_header("", is_https(&headers), true),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn cross_site_posts_are_refused() {
        assert!(same_origin(&headers(&[("host", "h:8080")])));
        assert!(same_origin(&headers(&[
            ("host", "h:8080"),
            ("origin", "http://h:8080"),
            ("sec-fetch-site", "same-origin"),
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "h:8080"),
            ("sec-fetch-site", "cross-site")
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "h:8080"),
            ("sec-fetch-site", "same-site")
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "h:8080"),
            ("origin", "http://evil.example")
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "h:8080"),
            ("origin", "null")
        ])));
    }

    #[test]
    fn the_cookie_is_read_only_when_it_looks_like_a_session_id() {
        let id = session_store::new_id().unwrap();
        let h = headers(&[("cookie", &format!("a=b; {COOKIE}={id}; c=d"))]);
        assert_eq!(cookie_session(&h).as_deref(), Some(id.as_str()));
        let token = format!("hgr_{}", "ab".repeat(32));
        let h = headers(&[("cookie", &format!("{COOKIE}={token}"))]);
        assert_eq!(cookie_session(&h), None, "an API token is not a session");
        let h = headers(&[("cookie", &format!("{COOKIE}=x; Path=/"))]);
        assert_eq!(cookie_session(&h), None);
    }

    #[test]
    fn csrf_tokens_are_per_session_and_not_the_session_id() {
        let (a, b) = ("hds_aa", "hds_bb");
        assert_ne!(csrf_token(a), csrf_token(b));
        assert!(!csrf_token(a).contains(a));
    }

    #[test]
    fn the_cookie_is_http_only_and_strict() {
        let v = cookie_header("hgr_aa", true, false);
        let v = v.to_str().unwrap();
        assert!(v.contains("HttpOnly") && v.contains("SameSite=Strict") && v.contains("Secure"));
        assert!(is_https(&headers(&[("x-forwarded-proto", "https")])));
        assert!(!is_https(&headers(&[("x-forwarded-proto", "http")])));
    }
}
