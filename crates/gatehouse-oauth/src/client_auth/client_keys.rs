//! Keys of `private_key_jwt` clients registered with a `jwks_uri` (RFC 7591
//! §2, OpenID Connect Core §9, RFC 7523 §3 item 9): the URL rules, the
//! fetcher interface and the cache.
//!
//! The core does no I/O: the binary implements [`ClientKeysFetcher`] over
//! HTTP and injects it. A `jwks_uri` makes the server fetch a URL of the
//! client's choosing, so the rules below keep that from becoming a
//! server-side request forgery (OWASP SSRF) or an amplifier: https only,
//! public addresses only (checked after DNS resolution, by the fetcher),
//! bounded size and time, and at most one refetch per client per
//! [`crate::limits::JWKS_URI_MIN_REFETCH`] however many unknown `kid`s arrive.

pub use crate::client_auth::jwks_uri::{address_allowed, validate_jwks_uri};

use crate::client::Client;
use crate::client_auth::assertion::header_kid;
use crate::client_auth::jwks::{PublicJwk, parse_jwks, validate_jwks_document};
use crate::limits::{
    JWKS_URI_MIN_REFETCH, JWKS_URI_TTL, MAX_FETCHED_JWKS_BYTES, PARSED_KEYS_CAPACITY,
    REMOTE_KEYS_CAPACITY,
};
use async_trait::async_trait;
use hashlink::LruCache;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use url::Url;

/// Fetches a client's JWKS document. Implementations must not follow
/// redirects, must refuse addresses [`address_allowed`] refuses (after
/// resolving the host, connecting only to a checked address), and must stop
/// reading after [`MAX_FETCHED_JWKS_BYTES`] and after a time limit. The
/// error is a reason for the logs; the client only ever sees `invalid_client`.
#[async_trait]
pub trait ClientKeysFetcher: Send + Sync {
    async fn fetch(&self, uri: &Url, allow_loopback: bool) -> Result<Vec<u8>, String>;
}

#[derive(Clone)]
struct Entry {
    uri: String,
    jwks: Option<Arc<Value>>,
    fetched_at: Option<Instant>,
    attempted_at: Instant,
}

/// Cached client key sets fetched from `jwks_uri`, per client.
pub struct RemoteKeys {
    entries: Mutex<HashMap<String, Entry>>,
    ttl: Duration,
    min_refetch: Duration,
}

/// Whether `jwks` has a key an assertion naming `kid` could use: any key
/// without a `kid` hint, the key of that `kid` when keys carry `kid`s
/// (mirrors [`crate::client_auth::assertion::verify`]).
fn knows(jwks: &Value, kid: Option<&str>) -> bool {
    let Some(kid) = kid else { return true };
    let keys = jwks["keys"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let any_kid = keys.iter().any(|k| k.get("kid").is_some());
    !any_kid || keys.iter().any(|k| k["kid"].as_str() == Some(kid))
}

impl RemoteKeys {
    pub fn new(ttl: Duration, min_refetch: Duration) -> Self {
        RemoteKeys {
            entries: Mutex::new(HashMap::new()),
            ttl,
            min_refetch,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The key set to verify an assertion of `client_id` (naming `kid`)
    /// with: the cached one while it is fresh and knows `kid`; otherwise a
    /// new fetch — unless one was attempted in the last `min_refetch`, in
    /// which case the cached set (if any) is all there is. The attempt is
    /// claimed before fetching, so concurrent requests fetch once.
    pub async fn keys(
        &self,
        client_id: &str,
        uri: &str,
        kid: Option<&str>,
        fetcher: &dyn ClientKeysFetcher,
        allow_loopback: bool,
    ) -> Result<Arc<Value>, String> {
        let now = Instant::now();
        {
            let mut entries = self.lock();
            let previous = entries.get(client_id).filter(|e| e.uri == uri).cloned();
            if let Some(e) = &previous {
                let fresh = e
                    .fetched_at
                    .is_some_and(|t| now.duration_since(t) < self.ttl);
                if let Some(jwks) = e.jwks.as_ref().filter(|j| fresh && knows(j, kid)) {
                    return Ok(jwks.clone());
                }
                if now.duration_since(e.attempted_at) < self.min_refetch {
                    // Rate-limited: the cached keys, if still fresh, are all
                    // there is; expired keys are never used.
                    return e.jwks.clone().filter(|_| fresh).ok_or_else(|| {
                        "keys expired or last fetch failed; not refetched yet (rate limit)".into()
                    });
                }
            }
            if previous.is_none() && entries.len() >= REMOTE_KEYS_CAPACITY {
                let ttl = self.ttl;
                entries.retain(|_, e| now.duration_since(e.attempted_at) < ttl);
                if entries.len() >= REMOTE_KEYS_CAPACITY {
                    entries.clear();
                }
            }
            let claimed = Entry {
                uri: uri.to_string(),
                attempted_at: now,
                ..previous.clone().unwrap_or(Entry {
                    uri: String::new(),
                    jwks: None,
                    fetched_at: None,
                    attempted_at: now,
                })
            };
            entries.insert(client_id.to_string(), claimed);
        }
        let fetched = fetch_checked(uri, fetcher, allow_loopback).await;
        let mut entries = self.lock();
        match fetched {
            Ok(jwks) => {
                let jwks = Arc::new(jwks);
                entries.insert(
                    client_id.to_string(),
                    Entry {
                        uri: uri.to_string(),
                        jwks: Some(jwks.clone()),
                        fetched_at: Some(Instant::now()),
                        attempted_at: now,
                    },
                );
                Ok(jwks)
            }
            Err(e) => {
                // A failed refresh keeps keys that are still fresh (an
                // unknown `kid` must not cost the known ones), but never
                // extends expired keys: the client may have withdrawn them.
                if let Some(entry) = entries.get_mut(client_id)
                    && entry.fetched_at.is_none_or(|t| t.elapsed() >= self.ttl)
                {
                    entry.jwks = None;
                }
                Err(e)
            }
        }
    }
}

/// One fetch: the URL rules again (the operator's allowance may have
/// changed since registration), the size cap, and the JWKS checks.
async fn fetch_checked(
    uri: &str,
    fetcher: &dyn ClientKeysFetcher,
    allow_loopback: bool,
) -> Result<Value, String> {
    let url = validate_jwks_uri(uri, allow_loopback)?;
    let raw = fetcher.fetch(&url, allow_loopback).await?;
    if raw.len() > MAX_FETCHED_JWKS_BYTES {
        return Err(format!(
            "document larger than {MAX_FETCHED_JWKS_BYTES} bytes"
        ));
    }
    validate_jwks_document(&raw).map_err(|e| format!("document: {e}"))
}

/// A client's keys parsed, with the JWKS document they were parsed from.
struct Parsed {
    jwks: Arc<Value>,
    keys: Arc<[PublicJwk]>,
}

/// Where a `private_key_jwt` client's keys come from: registered inline, or
/// behind its `jwks_uri` through the injected fetcher and the cache.
///
/// Keys are parsed once per client and document, and the parsed keys kept
/// (least recently used forgotten first, at most [`PARSED_KEYS_CAPACITY`]
/// clients): a repeated assertion neither decodes nor parses a JWK again.
/// A changed registration or a refetched document differs from the one the
/// parsed keys came from, and is parsed anew.
pub struct ClientKeySource {
    /// `None`: `jwks_uri` clients cannot authenticate (no HTTP in this build).
    fetcher: Option<Arc<dyn ClientKeysFetcher>>,
    remote: RemoteKeys,
    parsed: Mutex<LruCache<String, Parsed>>,
}

impl ClientKeySource {
    pub fn new(fetcher: Option<Arc<dyn ClientKeysFetcher>>) -> Self {
        ClientKeySource {
            fetcher,
            remote: RemoteKeys::new(JWKS_URI_TTL, JWKS_URI_MIN_REFETCH),
            parsed: Mutex::new(LruCache::new(PARSED_KEYS_CAPACITY)),
        }
    }

    /// The JWKS document to check `client`'s `assertion` with: the
    /// registered one, or the one behind its `jwks_uri` (cached; refetched,
    /// rate-limited, when the assertion names an unknown `kid` — OpenID
    /// Connect Core §10.1.1). The error is a reason for the logs only.
    async fn document(
        &self,
        client: &Client,
        assertion: &str,
        allow_loopback: bool,
    ) -> Result<Arc<Value>, String> {
        let m = &client.metadata;
        match (&m.jwks, &m.jwks_uri, &self.fetcher) {
            (Some(jwks), _, _) => Ok(Arc::new(jwks.clone())),
            (None, Some(uri), Some(fetcher)) => {
                let kid = header_kid(assertion);
                self.remote
                    .keys(
                        &client.id,
                        uri,
                        kid.as_deref(),
                        fetcher.as_ref(),
                        allow_loopback,
                    )
                    .await
                    .map_err(|e| format!("jwks_uri: {e}"))
            }
            (None, Some(_), None) => Err("no jwks_uri fetcher in this build".into()),
            (None, None, _) => Err("client has no keys".into()),
        }
    }

    fn cached(&self, client_id: &str, jwks: &Value) -> Option<Arc<[PublicJwk]>> {
        let mut parsed = self.parsed.lock().unwrap_or_else(|p| p.into_inner());
        parsed
            .get(client_id)
            .filter(|p| *p.jwks == *jwks)
            .map(|p| p.keys.clone())
    }

    /// The parsed keys to check `client`'s `assertion` with (see
    /// [`ClientKeySource`]). The error is a reason for the logs only.
    pub async fn keys(
        &self,
        client: &Client,
        assertion: &str,
        allow_loopback: bool,
    ) -> Result<Arc<[PublicJwk]>, String> {
        // Inline keys are compared where they are, without a copy.
        if let Some(jwks) = &client.metadata.jwks
            && let Some(keys) = self.cached(&client.id, jwks)
        {
            return Ok(keys);
        }
        let jwks = self.document(client, assertion, allow_loopback).await?;
        if let Some(keys) = self.cached(&client.id, &jwks) {
            return Ok(keys);
        }
        let keys: Arc<[PublicJwk]> = parse_jwks(&jwks)
            .map_err(|e| format!("client keys unusable: {e}"))?
            .into();
        let mut parsed = self.parsed.lock().unwrap_or_else(|p| p.into_inner());
        parsed.insert(
            client.id.clone(),
            Parsed {
                jwks,
                keys: keys.clone(),
            },
        );
        Ok(keys)
    }

    /// How many clients' parsed keys are held (for tests).
    pub fn parsed_len(&self) -> usize {
        self.parsed.lock().map_or(0, |p| p.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Serves `jwks` (or fails when it is null) and counts calls.
    struct Fake {
        jwks: Mutex<Value>,
        calls: std::sync::atomic::AtomicUsize,
    }

    #[async_trait]
    impl ClientKeysFetcher for Fake {
        async fn fetch(&self, _: &Url, _: bool) -> Result<Vec<u8>, String> {
            self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let j = self.jwks.lock().map_err(|e| e.to_string())?.clone();
            if j.is_null() {
                return Err("down".into());
            }
            Ok(j.to_string().into_bytes())
        }
    }

    /// The fake fetcher is always ready, so polling once completes.
    fn run<T>(f: impl std::future::Future<Output = T>) -> T {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match std::pin::pin!(f).poll(&mut cx) {
            std::task::Poll::Ready(v) => v,
            std::task::Poll::Pending => panic!("fake fetch pending"),
        }
    }

    #[test]
    fn parsed_keys_are_kept_per_client_until_its_keys_change() {
        use crate::keys::{Alg, SigningKey};
        let (k1, _) = SigningKey::generate(Alg::ES256).expect("key");
        let (k2, _) = SigningKey::generate(Alg::ES256).expect("key");
        let mut c = crate::client_auth::assertion::tests::client(&k1);
        let source = ClientKeySource::new(None);
        let first = run(source.keys(&c, "", false)).expect("keys");
        let again = run(source.keys(&c, "", false)).expect("keys");
        assert!(Arc::ptr_eq(&first, &again), "parsed once");
        c.metadata.jwks = Some(serde_json::json!({"keys": [k2.public_jwk()]}));
        let changed = run(source.keys(&c, "", false)).expect("keys");
        assert!(!Arc::ptr_eq(&first, &changed));
        assert_eq!(changed[0].kid.as_deref(), Some(k2.kid.as_str()));
        assert_eq!(source.parsed_len(), 1);
        c.metadata.jwks = Some(serde_json::json!({"keys": []}));
        let err = run(source.keys(&c, "", false)).expect_err("unusable");
        assert!(
            err.starts_with("client keys unusable: a JWKS must hold"),
            "{err}"
        );
    }

    #[test]
    fn cache_refetch_on_unknown_kid_is_rate_limited_and_expired_keys_are_not_kept() {
        use crate::keys::{Alg, SigningKey};
        let (k1, _) = SigningKey::generate(Alg::ES256).expect("key");
        let (k2, _) = SigningKey::generate(Alg::ES256).expect("key");
        let fake = Fake {
            jwks: Mutex::new(serde_json::json!({"keys": [k1.public_jwk()]})),
            calls: Default::default(),
        };
        let calls = || fake.calls.load(std::sync::atomic::Ordering::SeqCst);
        let uri = "https://keys.example/jwks";
        let get = |rk: &RemoteKeys, kid: &str| run(rk.keys("c", uri, Some(kid), &fake, false));
        let rk = RemoteKeys::new(Duration::from_secs(300), Duration::from_secs(10));
        assert!(get(&rk, &k1.kid).is_ok());
        assert!(get(&rk, &k1.kid).is_ok());
        assert_eq!(calls(), 1, "cached");
        *fake.jwks.lock().expect("lock") = serde_json::json!({"keys": [k2.public_jwk()]});
        for _ in 0..5 {
            let keys = get(&rk, &k2.kid).expect("the cached set");
            assert!(!knows(&keys, Some(&k2.kid)));
        }
        assert_eq!(calls(), 1, "no refetch within the interval");
        // No interval: the unknown kid refetches once and is then known.
        let rk = RemoteKeys::new(Duration::from_secs(300), Duration::ZERO);
        *fake.jwks.lock().expect("lock") = serde_json::json!({"keys": [k1.public_jwk()]});
        assert!(get(&rk, &k1.kid).is_ok());
        *fake.jwks.lock().expect("lock") = serde_json::json!({"keys": [k2.public_jwk()]});
        assert!(knows(&get(&rk, &k2.kid).expect("refetched"), Some(&k2.kid)));
        assert_eq!(calls(), 3);
        // Expired keys are never used: not when the refresh fails, not
        // while the next refresh waits for the interval.
        let rk = RemoteKeys::new(Duration::ZERO, Duration::ZERO);
        assert!(get(&rk, &k2.kid).is_ok());
        *fake.jwks.lock().expect("lock") = Value::Null;
        assert!(get(&rk, &k2.kid).is_err());
        let rk = RemoteKeys::new(Duration::ZERO, Duration::from_secs(10));
        *fake.jwks.lock().expect("lock") = serde_json::json!({"keys": [k2.public_jwk()]});
        assert!(get(&rk, &k2.kid).is_ok());
        assert!(get(&rk, &k2.kid).is_err());
        assert_eq!(calls(), 6);
    }
}
