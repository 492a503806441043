//! The endpoints the delivery handler sends to, with their opened secrets, kept per process
//! for [`TTL`] (they change rarely; reading them was two of every delivery's round trips).
//!
//! **Bounds.** Every change made through this process (`PATCH`, rotate, pause, resume,
//! enable, disable, delete) forgets the endpoint at once. A change made by another process
//! is seen here at most [`TTL`] later: for that second this process may still send to the
//! old URL, to a just-paused endpoint, or sign with a secret another process revoked. A
//! secret's grace is kept exactly: each cached secret carries the end of its grace, and one
//! past it never signs.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::{Endpoint, WebhookContext, WebhookError, secret_aad};
use crate::signing::WebhookSecret;

/// How long an endpoint and its secrets stay cached.
pub const TTL: Duration = Duration::from_secs(1);

/// An endpoint and the secrets that signed for it when it was read.
pub struct CachedEndpoint {
    /// The endpoint.
    pub endpoint: Endpoint,
    secrets: Vec<(WebhookSecret, Option<DateTime<Utc>>)>,
}

impl CachedEndpoint {
    /// The secrets that sign at `now`: the current one first, then those in their grace.
    pub fn signing(&self, now: DateTime<Utc>) -> Vec<WebhookSecret> {
        self.secrets
            .iter()
            .filter(|(_, until)| until.is_none_or(|until| until > now))
            .map(|(secret, _)| secret.clone())
            .collect()
    }
}

/// Endpoint id → when it was read and what was read (`None`: it did not exist).
type Entries = HashMap<String, (Instant, Option<Arc<CachedEndpoint>>)>;

/// The cache (see the module doc); shared by clones of the context.
#[derive(Default)]
pub struct EndpointCache {
    entries: Mutex<Entries>,
    /// Bumped by every [`EndpointCache::forget`]: a read that started before one is not kept
    /// (it may hold what the change replaced).
    generation: AtomicU64,
}

impl EndpointCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets endpoint `id` (it was changed in this process).
    pub fn forget(&self, id: &str) {
        let mut entries = self.lock();
        self.generation.fetch_add(1, Ordering::SeqCst);
        entries.remove(id);
    }

    /// Endpoint `id` with its opened secrets, read at most [`TTL`] ago; `None` when it does
    /// not exist.
    pub async fn get(
        &self,
        context: &WebhookContext,
        id: &str,
    ) -> Result<Option<Arc<CachedEndpoint>>, WebhookError> {
        if let Some((at, cached)) = self.lock().get(id)
            && at.elapsed() < TTL
        {
            return Ok(cached.clone());
        }
        let read_at = Instant::now();
        let generation = self.generation.load(Ordering::SeqCst);
        let cached = match context.store.webhook_endpoint(id).await? {
            None => None,
            Some(endpoint) => {
                let mut secrets = Vec::new();
                for (sealed, until) in context.store.webhook_signing_secrets(id).await? {
                    let plain = context.keyring.open(
                        &sealed,
                        &secret_aad(id),
                        "webhook endpoint secret",
                    )?;
                    let text = String::from_utf8(plain).map_err(|_| {
                        WebhookError::Invalid(format!("the secret of endpoint {id} is not text"))
                    })?;
                    let secret = WebhookSecret::parse(&text)
                        .map_err(|e| WebhookError::Invalid(format!("endpoint {id}: {e}")))?;
                    secrets.push((secret, until));
                }
                Some(Arc::new(CachedEndpoint { endpoint, secrets }))
            }
        };
        let mut entries = self.lock();
        if self.generation.load(Ordering::SeqCst) != generation {
            return Ok(cached);
        }
        if entries.len() > 10_000 {
            entries.retain(|_, (at, _)| at.elapsed() < TTL);
        }
        entries.insert(id.to_owned(), (read_at, cached.clone()));
        Ok(cached)
    }
}
