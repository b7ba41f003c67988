//! Where the gateway gets the issuer's public keys, behind one [`KeySource`]
//! trait. Standalone, the gateway trusts only what any third-party resource
//! server could see (DESIGN.md): the issuer's discovery document and JWKS
//! ([`RemoteJwks`]). Embedded in `serve`, it reads the very key set the
//! authorization server's JWKS endpoint publishes ([`LocalJwks`]), so it never
//! makes an HTTP call to its own process (DECISIONS.md "Gateway"); the
//! binary implements that source over the server's live key set, so a
//! rotated key verifies without a restart.

use jsonwebtoken::jwk::{Jwk, JwkSet};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// The keys could not be obtained at all: answer 503, not 401 (DECISIONS.md).
#[derive(Debug, thiserror::Error)]
#[error("issuer keys unavailable: {0}")]
pub struct KeysUnavailable(pub String);

/// Largest discovery or JWKS document accepted.
pub const MAX_DOCUMENT_BYTES: usize = 256 * 1024;
/// Keys are refetched this often even when nothing asks.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(300);
/// An unknown `kid` triggers at most one refetch per this period, so a flood
/// of random kids cannot hammer the issuer.
pub const MIN_REFETCH_GAP: Duration = Duration::from_secs(10);

/// What [`KeySource::key`] returns: a boxed future, so the trait stays
/// object-safe (`Arc<dyn KeySource>`) without `async_trait`.
pub type KeyFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Option<Arc<Jwk>>, KeysUnavailable>> + Send + 'a>>;

/// The issuer's public keys, looked up by `kid`.
pub trait KeySource: Send + Sync {
    /// The key with this `kid`; `Ok(None)` when the issuer does not publish
    /// it (the token is then invalid), `Err` when no keys can be obtained at
    /// all (the gateway answers 503, not 401).
    fn key<'a>(&'a self, kid: &'a str) -> KeyFuture<'a>;
}

/// A fixed set of keys parsed from a JWKS document: a snapshot. The
/// embedded gateway's source keeps one per version of the server's key set
/// and swaps it when keys rotate.
pub struct LocalJwks {
    keys: HashMap<String, Arc<Jwk>>,
}

impl LocalJwks {
    /// Parses a JWKS document (RFC 7517 §5); keys without a `kid` are skipped,
    /// since tokens are matched to keys by `kid` only.
    pub fn from_document(jwks: &serde_json::Value) -> Result<LocalJwks, String> {
        let set: JwkSet = serde_json::from_value(jwks.clone())
            .map_err(|e| format!("the key set is not a valid JWKS: {e}"))?;
        Ok(LocalJwks { keys: by_kid(set) })
    }

    /// The key with this `kid`, if the document holds it.
    pub fn get(&self, kid: &str) -> Option<Arc<Jwk>> {
        self.keys.get(kid).cloned()
    }
}

impl KeySource for LocalJwks {
    fn key<'a>(&'a self, kid: &'a str) -> KeyFuture<'a> {
        Box::pin(std::future::ready(Ok(self.get(kid))))
    }
}

fn by_kid(set: JwkSet) -> HashMap<String, Arc<Jwk>> {
    set.keys
        .into_iter()
        .filter_map(|k| k.common.key_id.clone().map(|kid| (kid, Arc::new(k))))
        .collect()
}

struct Loaded {
    keys: HashMap<String, Arc<Jwk>>,
    fetched_at: Instant,
}

/// Keys fetched from the issuer's `jwks_uri`, found through RFC 8414
/// discovery (falling back to OpenID Connect discovery).
pub struct RemoteJwks {
    issuer: String,
    http: reqwest::Client,
    loaded: RwLock<Option<Loaded>>,
    last_attempt: tokio::sync::Mutex<Option<Instant>>,
}

impl RemoteJwks {
    pub fn new(issuer: String, http: reqwest::Client) -> RemoteJwks {
        RemoteJwks {
            issuer,
            http,
            loaded: RwLock::new(None),
            last_attempt: tokio::sync::Mutex::new(None),
        }
    }

    fn cached(&self, kid: &str) -> (Option<Arc<Jwk>>, bool) {
        match self.loaded.read().ok().as_deref().and_then(Option::as_ref) {
            Some(l) => (
                l.keys.get(kid).cloned(),
                l.fetched_at.elapsed() < REFRESH_INTERVAL,
            ),
            None => (None, false),
        }
    }

    /// The key with this `kid`; `Ok(None)` when the issuer does not publish it.
    async fn lookup(&self, kid: &str) -> Result<Option<Arc<Jwk>>, KeysUnavailable> {
        let (found, fresh) = self.cached(kid);
        if found.is_some() && fresh {
            return Ok(found);
        }
        // Refetch: stale, or an unknown kid (perhaps a rotation) — rate-limited.
        let mut last = self.last_attempt.lock().await;
        let (found_now, fresh_now) = self.cached(kid);
        if found_now.is_some() && fresh_now {
            return Ok(found_now); // another request refreshed meanwhile
        }
        if last.is_some_and(|t| t.elapsed() < MIN_REFETCH_GAP) {
            return match (
                found_now,
                self.loaded.read().map(|l| l.is_some()).unwrap_or(false),
            ) {
                (Some(k), _) => Ok(Some(k)),
                (None, true) => Ok(None),
                (None, false) => Err(KeysUnavailable("recent fetch failed".into())),
            };
        }
        *last = Some(Instant::now());
        match self.fetch().await {
            Ok(keys) => {
                let k = keys.get(kid).cloned();
                if let Ok(mut l) = self.loaded.write() {
                    *l = Some(Loaded {
                        keys,
                        fetched_at: Instant::now(),
                    });
                }
                Ok(k)
            }
            Err(e) => {
                tracing::warn!(issuer = %self.issuer, error = %e.0, "fetching the issuer's keys failed");
                // Keep serving known keys while the issuer is unreachable.
                match found_now {
                    Some(k) => Ok(Some(k)),
                    None if self.loaded.read().map(|l| l.is_some()).unwrap_or(false) => Ok(None),
                    None => Err(e),
                }
            }
        }
    }

    async fn get_json(&self, url: &str) -> Result<serde_json::Value, KeysUnavailable> {
        let fail = |e: String| KeysUnavailable(format!("{url}: {e}"));
        let mut resp = self
            .http
            .get(url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| fail(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(fail(format!("status {}", resp.status())));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| fail(e.to_string()))? {
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(fail("document too large".into()));
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body).map_err(|e| fail(e.to_string()))
    }

    /// RFC 8414 §3.1 metadata location: the well-known segment is inserted
    /// between the host and the issuer's path.
    fn metadata_urls(&self) -> Vec<String> {
        let mut urls = Vec::new();
        if let Ok(u) = url::Url::parse(&self.issuer) {
            let origin = u.origin().ascii_serialization();
            let path = u.path().trim_end_matches('/');
            urls.push(format!(
                "{origin}/.well-known/oauth-authorization-server{path}"
            ));
        }
        urls.push(format!("{}/.well-known/openid-configuration", self.issuer));
        urls
    }

    async fn fetch(&self) -> Result<HashMap<String, Arc<Jwk>>, KeysUnavailable> {
        let mut last_err = KeysUnavailable("no discovery document".into());
        let mut jwks_uri = None;
        for url in self.metadata_urls() {
            match self.get_json(&url).await {
                Ok(meta) => {
                    // RFC 8414 §3.3: the document must name this very issuer.
                    if meta.get("issuer").and_then(|v| v.as_str()) != Some(self.issuer.as_str()) {
                        last_err = KeysUnavailable(format!("{url}: issuer mismatch"));
                        continue;
                    }
                    jwks_uri = meta
                        .get("jwks_uri")
                        .and_then(|v| v.as_str())
                        .map(String::from);
                    break;
                }
                Err(e) => last_err = e,
            }
        }
        let jwks_uri = jwks_uri.ok_or(last_err)?;
        let doc = self.get_json(&jwks_uri).await?;
        let set: JwkSet =
            serde_json::from_value(doc).map_err(|e| KeysUnavailable(format!("{jwks_uri}: {e}")))?;
        Ok(by_kid(set))
    }
}

impl KeySource for RemoteJwks {
    fn key<'a>(&'a self, kid: &'a str) -> KeyFuture<'a> {
        Box::pin(self.lookup(kid))
    }
}
