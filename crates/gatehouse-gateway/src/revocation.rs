//! Instant cut-off (docs/decisions.md "Revocation and introspection"):
//! when enabled, every call also asks the issuer whether its token is still
//! active — by RFC 7662 introspection with the gateway's own client
//! credentials, or in-process when embedded in `serve` — with a short,
//! bounded cache. Off by default: the verified-token cache and short token
//! lifetimes are the trade-off (a revoked token works until its `exp`).
//!
//! Fails closed: if the issuer cannot answer, the call gets 503, not a pass.

use crate::deadlines::read_capped;
use crate::keys::MAX_DOCUMENT_BYTES;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The issuer could not say (unreachable, refused our credentials, …).
#[derive(Debug, thiserror::Error)]
#[error("token status unavailable: {0}")]
pub struct StatusUnavailable(pub String);

pub type StatusFuture<'a> =
    Pin<Box<dyn Future<Output = Result<bool, StatusUnavailable>> + Send + 'a>>;

/// Whether the issuer still considers a (signature-verified) token active.
pub trait TokenStatus: Send + Sync {
    fn is_active<'a>(&'a self, token: &'a str) -> StatusFuture<'a>;
}

/// Entries remembered at once; when full the cache starts over.
pub const STATUS_CACHE_CAPACITY: usize = 10_000;

/// Answers remembered for a short while, keyed by the token's `jti`. An
/// inactive answer is final (a revoked token never comes back), so it is kept
/// as long as an active one; both expire after `ttl`.
pub struct StatusCache {
    source: Arc<dyn TokenStatus>,
    ttl: Duration,
    entries: Mutex<HashMap<String, (bool, Instant)>>,
}

impl StatusCache {
    pub fn new(source: Arc<dyn TokenStatus>, ttl: Duration) -> StatusCache {
        StatusCache {
            source,
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `token` (whose `jti` is given, when it has one) is active.
    pub async fn is_active(
        &self,
        token: &str,
        jti: Option<&str>,
    ) -> Result<bool, StatusUnavailable> {
        if let Some(jti) = jti
            && let Ok(entries) = self.entries.lock()
            && let Some((active, at)) = entries.get(jti)
            && at.elapsed() < self.ttl
        {
            return Ok(*active);
        }
        let active = self.source.is_active(token).await?;
        if let Some(jti) = jti
            && let Ok(mut entries) = self.entries.lock()
        {
            if entries.len() >= STATUS_CACHE_CAPACITY {
                entries.clear();
            }
            entries.insert(jti.to_string(), (active, Instant::now()));
        }
        Ok(active)
    }
}

/// RFC 7662 introspection at the issuer's `introspection_endpoint` (from its
/// RFC 8414 metadata), authenticated with `client_secret_basic`.
///
/// Every question — discovery included — ends within
/// [`INTROSPECTION_TIMEOUT`], and no lock is held across a network call:
/// with the issuer hung, each call gets its 503 in time and none waits
/// behind another.
pub struct Introspector {
    issuer: String,
    client_id: String,
    client_secret: String,
    http: reqwest::Client,
    /// The endpoint once discovered. Until then each question discovers it
    /// itself (concurrently, not one after another behind a lock).
    endpoint: Mutex<Option<Arc<str>>>,
}

/// Bound on one question to the issuer, discovery and introspection together.
pub const INTROSPECTION_TIMEOUT: Duration = Duration::from_secs(5);

impl Introspector {
    /// `http` should be [`crate::deadlines::issuer_client`].
    pub fn new(
        issuer: String,
        client_id: String,
        client_secret: String,
        http: reqwest::Client,
    ) -> Introspector {
        Introspector {
            issuer,
            client_id,
            client_secret,
            http,
            endpoint: Mutex::new(None),
        }
    }

    async fn json(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<serde_json::Value, StatusUnavailable> {
        let resp = req
            .send()
            .await
            .map_err(|e| StatusUnavailable(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(StatusUnavailable(format!("HTTP {}", resp.status())));
        }
        let body = read_capped(resp, MAX_DOCUMENT_BYTES)
            .await
            .map_err(StatusUnavailable)?;
        serde_json::from_slice(&body).map_err(|e| StatusUnavailable(e.to_string()))
    }

    /// RFC 8414 §3.1: the metadata sits at the path-inserted well-known URL.
    async fn endpoint(&self) -> Result<Arc<str>, StatusUnavailable> {
        if let Some(known) = self.endpoint.lock().ok().and_then(|e| e.clone()) {
            return Ok(known);
        }
        let url = url::Url::parse(&self.issuer).map_err(|e| StatusUnavailable(e.to_string()))?;
        let path = url.path().trim_end_matches('/');
        let meta_url = format!(
            "{}/.well-known/oauth-authorization-server{path}",
            url.origin().ascii_serialization()
        );
        let meta = self.json(self.http.get(meta_url)).await?;
        let found: Arc<str> = meta["introspection_endpoint"]
            .as_str()
            .map(Arc::from)
            .ok_or_else(|| {
                StatusUnavailable("the issuer publishes no introspection_endpoint".into())
            })?;
        if let Ok(mut e) = self.endpoint.lock() {
            *e = Some(found.clone());
        }
        Ok(found)
    }

    async fn ask(&self, token: &str) -> Result<bool, StatusUnavailable> {
        let endpoint = self.endpoint().await?;
        let req = self
            .http
            .post(&*endpoint)
            .basic_auth(&self.client_id, Some(&self.client_secret))
            .form(&[("token", token), ("token_type_hint", "access_token")]);
        let answer = self.json(req).await?;
        answer["active"]
            .as_bool()
            .ok_or_else(|| StatusUnavailable("introspection answer without active".into()))
    }
}

impl TokenStatus for Introspector {
    fn is_active<'a>(&'a self, token: &'a str) -> StatusFuture<'a> {
        Box::pin(async move {
            tokio::time::timeout(INTROSPECTION_TIMEOUT, self.ask(token))
                .await
                .map_err(|_| {
                    StatusUnavailable(format!(
                        "the issuer did not answer within {INTROSPECTION_TIMEOUT:?}"
                    ))
                })?
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Answers `active`, counting how often it is asked.
    struct Counting(AtomicUsize, bool);

    impl TokenStatus for Counting {
        fn is_active<'a>(&'a self, _token: &'a str) -> StatusFuture<'a> {
            self.0.fetch_add(1, Ordering::SeqCst);
            let active = self.1;
            Box::pin(async move { Ok(active) })
        }
    }

    #[tokio::test]
    async fn answers_are_reused_within_the_ttl_and_asked_again_after() {
        let source = Arc::new(Counting(AtomicUsize::new(0), true));
        let cache = StatusCache::new(source.clone(), Duration::from_millis(200));
        for _ in 0..5 {
            assert!(cache.is_active("t", Some("jti-1")).await.unwrap());
        }
        assert_eq!(
            source.0.load(Ordering::SeqCst),
            1,
            "one question for five calls"
        );
        // Another token is asked about separately; one without jti every time.
        assert!(cache.is_active("u", Some("jti-2")).await.unwrap());
        assert!(cache.is_active("v", None).await.unwrap());
        assert!(cache.is_active("v", None).await.unwrap());
        assert_eq!(source.0.load(Ordering::SeqCst), 4);
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(cache.is_active("t", Some("jti-1")).await.unwrap());
        assert_eq!(
            source.0.load(Ordering::SeqCst),
            5,
            "asked again after the ttl"
        );
    }
}
