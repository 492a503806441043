//! Authentication: the named secrets of the integration's credential ([`Secrets`]), how a
//! request carries them (API key in a header or the query, Basic, bearer), and the tokens
//! the connector gets itself (OAuth client credentials, a session login), kept per
//! integration in [`Sessions`] until they expire (a minute's margin) or a response rule
//! says to refresh. A token is keyed by the credential's version: new credentials never
//! reuse an old session. No secret reaches a message.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use hangar_workers::error_class::ErrorClass;
use hangar_workers::kinds::JobFailure;
use hangar_workers::transport_failure::transport_failure;
use serde_json::Value;

use super::http::{Env, join};
use super::model::{Auth, BodyFormat, Placement, Session};
use super::response::{Verdict, classify};
use super::select;
use crate::sync::connector::ConnectorError;

/// The credential's named secrets: a `{"secrets": {…}}` credential's fields; an API key
/// (or an OAuth access token) is both `api_key` and `token`.
#[derive(Clone)]
pub struct Secrets(BTreeMap<String, String>);

impl Secrets {
    /// The secrets of the token a call is made with.
    pub fn from_token(token: &str) -> Secrets {
        if let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(token) {
            return Secrets(
                fields
                    .into_iter()
                    .filter_map(|(k, v)| v.as_str().map(|s| (k, s.to_owned())))
                    .collect(),
            );
        }
        Secrets(BTreeMap::from([
            ("api_key".to_owned(), token.to_owned()),
            ("token".to_owned(), token.to_owned()),
        ]))
    }

    /// The secret named `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

#[derive(Clone)]
struct Held {
    version: i64,
    fingerprint: u64,
    token: String,
    until: DateTime<Utc>,
}

/// Tokens the connector got itself, per integration and per manifest and base URL (the
/// fingerprint): one process serving two databases, or an integration whose base URL changed
/// while a run under the old one is still going, keeps one token per origin instead of each
/// evicting the other's (and so logging in on every call). Expired tokens leave on the next
/// insert.
#[derive(Default)]
pub struct Sessions {
    held: Mutex<HashMap<(String, u64), Held>>,
}

impl Sessions {
    /// Forgets `integration`'s tokens (a rule said refresh).
    pub fn forget(&self, integration: &str) {
        if let Ok(mut held) = self.held.lock() {
            held.retain(|(id, _), _| id != integration);
        }
    }

    fn get(&self, integration: &str, version: i64, fingerprint: u64) -> Option<String> {
        let held = self.held.lock().ok()?;
        let h = held.get(&(integration.to_owned(), fingerprint))?;
        (h.version == version && h.until > Utc::now() + chrono::Duration::seconds(60))
            .then(|| h.token.clone())
    }

    fn put(&self, integration: &str, held: Held) {
        if let Ok(mut map) = self.held.lock() {
            let now = Utc::now();
            map.retain(|_, h| h.until > now);
            map.insert((integration.to_owned(), held.fingerprint), held);
        }
    }
}

/// `request` carrying the manifest's authentication (getting a token first when needed).
pub async fn apply(
    env: &Env<'_>,
    request: reqwest::RequestBuilder,
) -> Result<reqwest::RequestBuilder, ConnectorError> {
    let secret = |text: &str| env.render(text, None, None).map_err(config_failure);
    Ok(match &env.manifest.auth {
        Auth::ApiKey {
            placement: Placement::Header,
            name,
            value,
        } => request.header(name.as_str(), secret(value)?),
        Auth::ApiKey {
            placement: Placement::Query,
            name,
            value,
        } => request.query(&[(name.as_str(), secret(value)?)]),
        Auth::Basic { username, password } => {
            request.basic_auth(secret(username)?, Some(secret(password)?))
        }
        Auth::Bearer { token } => request.bearer_auth(secret(token)?),
        Auth::OauthClientCredentials { .. } => request.bearer_auth(token(env).await?),
        Auth::Session(session) => {
            let token = token(env).await?;
            request.header(
                session.header.as_str(),
                format!("{}{token}", session.prefix),
            )
        }
    })
}

/// Whether the manifest's authentication gets tokens (so a refresh can help).
pub fn refreshable(auth: &Auth) -> bool {
    matches!(auth, Auth::OauthClientCredentials { .. } | Auth::Session(_))
}

fn config_failure(message: String) -> ConnectorError {
    ConnectorError::Failed(JobFailure::new(
        ErrorClass::Client,
        format!("manifest: {message}"),
    ))
}

async fn token(env: &Env<'_>) -> Result<String, ConnectorError> {
    let id = &env.cx.integration.id;
    let version = env.cx.token.version;
    if let Some(token) = env.sessions.get(id, version, env.fingerprint) {
        return Ok(token);
    }
    let (token, until) = match &env.manifest.auth {
        Auth::Session(session) => login(env, session).await?,
        Auth::OauthClientCredentials {
            token_url,
            client_id,
            client_secret,
            scopes,
        } => {
            let url = if token_url.starts_with("http://") || token_url.starts_with("https://") {
                token_url.clone()
            } else {
                join(&env.base, token_url)
            };
            let mut form = vec![("grant_type".to_owned(), "client_credentials".to_owned())];
            if !scopes.is_empty() {
                form.push(("scope".to_owned(), scopes.join(" ")));
            }
            let client_id = env.render(client_id, None, None).map_err(config_failure)?;
            let client_secret = env
                .render(client_secret, None, None)
                .map_err(config_failure)?;
            let request = env
                .cx
                .http
                .post(url)
                .basic_auth(client_id, Some(client_secret))
                .form(&form);
            let answer = token_call(env, request, "token endpoint").await?;
            let token = select::text(&answer, "access_token")
                .ok_or_else(|| refused("the token endpoint's answer has no access_token"))?;
            let ttl = select::get(&answer, "expires_in")
                .and_then(seconds)
                .unwrap_or(3600);
            (token, Utc::now() + chrono::Duration::seconds(ttl))
        }
        _ => return Err(config_failure("this authentication has no token".into())),
    };
    env.sessions.put(
        id,
        Held {
            version,
            fingerprint: env.fingerprint,
            token: token.clone(),
            until,
        },
    );
    Ok(token)
}

async fn login(
    env: &Env<'_>,
    session: &Session,
) -> Result<(String, DateTime<Utc>), ConnectorError> {
    let mut fields = serde_json::Map::new();
    for (name, value) in &session.fields {
        let value = env.render(value, None, None).map_err(config_failure)?;
        fields.insert(name.clone(), Value::String(value));
    }
    let request = env.cx.http.post(join(&env.base, &session.login_path));
    let request = match session.body {
        BodyFormat::Json => request.json(&fields),
        BodyFormat::Form => request.form(&fields),
    };
    let answer = token_call(env, request, "session login").await?;
    let token = select::text(&answer, &session.token_path).ok_or_else(|| {
        refused(&format!(
            "the login answer has no token at `{}`",
            session.token_path
        ))
    })?;
    let now = Utc::now();
    let until = if let Some(ttl) = session
        .expires_in_path
        .as_deref()
        .and_then(|p| select::get(&answer, p))
        .and_then(seconds)
    {
        now + chrono::Duration::seconds(ttl)
    } else if let Some(at) = session
        .expires_at_path
        .as_deref()
        .and_then(|p| select::text(&answer, p))
        .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
    {
        at.with_timezone(&Utc)
    } else {
        now + chrono::Duration::seconds(i64::try_from(session.ttl_secs).unwrap_or(3600))
    };
    Ok((token, until))
}

fn seconds(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|s| *s > 0)
}

fn refused(message: &str) -> ConnectorError {
    ConnectorError::Unauthorized(message.to_owned())
}

/// A token call: 2xx JSON is the answer; 401/403/400 refuse the credentials; the rest is
/// classified by the retry table (the manifest's rules speak of API answers, not of these).
async fn token_call(
    env: &Env<'_>,
    request: reqwest::RequestBuilder,
    what: &str,
) -> Result<Value, ConnectorError> {
    let response = request
        .timeout(super::http::TIMEOUT)
        .send()
        .await
        .map_err(|e| ConnectorError::Failed(transport_failure(e.without_url())))?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response
        .bytes()
        .await
        .map_err(|e| ConnectorError::Failed(transport_failure(e.without_url())))?;
    let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let _ = env;
    match status {
        200..=299 => Ok(value),
        400 | 401 | 403 => Err(refused(&format!(
            "{what} refused the credentials (HTTP {status})"
        ))),
        _ => match classify(status, &headers, &value, &[]) {
            Verdict::Fail(e) => Err(e),
            _ => Err(refused(&format!("{what} answered HTTP {status}"))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(fingerprint: u64, token: &str, minutes: i64) -> Held {
        Held {
            version: 1,
            fingerprint,
            token: token.into(),
            until: Utc::now() + chrono::Duration::minutes(minutes),
        }
    }

    #[test]
    fn two_origins_of_one_integration_keep_their_own_tokens() {
        let sessions = Sessions::default();
        sessions.put("int_a", held(1, "first", 30));
        sessions.put("int_a", held(2, "second", 30));
        assert_eq!(sessions.get("int_a", 1, 1).as_deref(), Some("first"));
        assert_eq!(sessions.get("int_a", 1, 2).as_deref(), Some("second"));
        assert_eq!(sessions.get("int_a", 2, 1), None, "new credentials");
        sessions.put("int_b", held(1, "other", 30));
        sessions.forget("int_a");
        assert_eq!(sessions.get("int_a", 1, 1), None);
        assert_eq!(sessions.get("int_a", 1, 2), None);
        assert_eq!(sessions.get("int_b", 1, 1).as_deref(), Some("other"));
    }

    #[test]
    fn expired_tokens_leave_on_the_next_insert() {
        let sessions = Sessions::default();
        sessions.put("int_a", held(1, "old", -5));
        sessions.put("int_b", held(1, "new", 30));
        assert_eq!(sessions.held.lock().unwrap().len(), 1);
    }
}
