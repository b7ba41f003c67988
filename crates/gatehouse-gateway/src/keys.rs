//! Where the gateway gets the issuer's public keys, behind one [`KeySource`]
//! trait. Standalone, the gateway trusts only what any third-party resource
//! server could see (docs/decisions.md "Shape"): the issuer's discovery
//! document and JWKS ([`RemoteJwks`]). Embedded in `serve`, it reads the very
//! key set the authorization server's JWKS endpoint publishes ([`LocalJwks`]),
//! so it never makes an HTTP call to its own process (docs/decisions.md
//! "Shape"); the binary implements that source over the server's live key set,
//! so a rotated key verifies without a restart.

use crate::deadlines::read_capped;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// The keys could not be obtained at all: answer 503, not 401
/// (docs/decisions.md "Gateway").
#[derive(Debug, thiserror::Error)]
#[error("issuer keys unavailable: {0}")]
pub struct KeysUnavailable(pub String);

/// Largest discovery or JWKS document accepted.
pub const MAX_DOCUMENT_BYTES: usize = 256 * 1024;
/// Cached keys older than this are refetched, in the background, when next used.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(300);
/// Fetches are at least this far apart (from the end of one to the start of
/// the next), so a flood of random kids cannot hammer the issuer.
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

/// How long after a fetch began a call needing keys that are not cached
/// still waits for it before it is answered 503: the fetch goes on in the
/// background, and a refusal within a few seconds beats a client's timeout.
pub const KEY_WAIT: Duration = Duration::from_secs(3);
/// A whole refresh (discovery, then the JWKS, each call bounded by
/// [`crate::deadlines::ISSUER_REQUEST_TIMEOUT`]) is abandoned after this.
pub const REFRESH_DEADLINE: Duration = Duration::from_secs(10);

/// What is known of the issuer's keys. Held under a plain mutex for
/// moments only — never across a network call.
#[derive(Default)]
struct State {
    loaded: Option<Loaded>,
    /// When the running fetch began (at most one runs at a time).
    fetching: Option<Instant>,
    /// When the last fetch ended (or the running one began): the next
    /// starts [`MIN_REFETCH_GAP`] later at the earliest.
    last_attempt: Option<Instant>,
    /// Whether the last fetch failed: a `kid` missing from older keys may
    /// then be a rotation not yet seen, so it is "unavailable", not "invalid".
    last_failed: bool,
}

impl State {
    /// The answer for `kid` from what is known now.
    fn answer(&self, kid: &str) -> Result<Option<Arc<Jwk>>, KeysUnavailable> {
        match &self.loaded {
            Some(l) if l.keys.contains_key(kid) => Ok(l.keys.get(kid).cloned()),
            Some(_) if !self.last_failed => Ok(None),
            Some(_) => Err(KeysUnavailable(
                "unknown key id, and the issuer's keys cannot be refreshed now".into(),
            )),
            None => Err(KeysUnavailable(
                "the issuer's keys could not be fetched".into(),
            )),
        }
    }
}

struct Inner {
    issuer: String,
    http: reqwest::Client,
    state: Mutex<State>,
    /// Bumped when a fetch ends, waking the calls waiting for it.
    fetched: watch::Sender<u64>,
}

/// Keys fetched from the issuer's `jwks_uri`, found through RFC 8414
/// discovery (falling back to OpenID Connect discovery).
///
/// Single flight: one background fetch at a time. Calls whose key is cached
/// proceed at once, even while the issuer hangs (stale keys are refreshed in
/// the background); a call needing a key not cached waits for the fetch
/// until [`KEY_WAIT`] after it began, then is answered 503. No lock is held
/// across a network call, so one slow fetch never serialises other requests.
pub struct RemoteJwks(Arc<Inner>);

impl RemoteJwks {
    /// `http` should be [`crate::deadlines::issuer_client`] (a total
    /// deadline per request).
    pub fn new(issuer: String, http: reqwest::Client) -> RemoteJwks {
        RemoteJwks(Arc::new(Inner {
            issuer,
            http,
            state: Mutex::new(State::default()),
            fetched: watch::channel(0).0,
        }))
    }

    /// The key with this `kid`; `Ok(None)` when the issuer does not publish it.
    async fn lookup(&self, kid: &str) -> Result<Option<Arc<Jwk>>, KeysUnavailable> {
        let (mut fetched, began) = {
            let mut s = self.0.lock();
            let cached = s.loaded.as_ref().and_then(|l| {
                let key = l.keys.get(kid).cloned()?;
                Some((key, l.fetched_at.elapsed() >= REFRESH_INTERVAL))
            });
            if let Some((key, stale)) = cached {
                if stale {
                    self.start_fetch(&mut s);
                }
                return Ok(Some(key));
            }
            // An unknown kid (perhaps a rotation), or no keys yet: refetch,
            // at most once per MIN_REFETCH_GAP however many kids arrive.
            let Some(began) = self.start_fetch(&mut s) else {
                return s.answer(kid);
            };
            // Subscribed under the lock: the fetch cannot end unseen.
            (self.0.fetched.subscribe(), began)
        };
        // Waiting is bounded from the fetch's start: calls arriving while a
        // hung fetch drags on are refused at once, not held KEY_WAIT each.
        let until = tokio::time::Instant::from_std(began + KEY_WAIT);
        match tokio::time::timeout_at(until, fetched.changed()).await {
            Ok(_) => self.0.lock().answer(kid),
            Err(_) => Err(KeysUnavailable(format!(
                "the issuer did not answer within {KEY_WAIT:?}"
            ))),
        }
    }

    /// Starts a background fetch unless one is running or the last ended
    /// under [`MIN_REFETCH_GAP`] ago (`None`); the running fetch's start.
    fn start_fetch(&self, s: &mut State) -> Option<Instant> {
        if let Some(began) = s.fetching {
            return Some(began);
        }
        if s.last_attempt
            .is_some_and(|t| t.elapsed() < MIN_REFETCH_GAP)
        {
            return None;
        }
        let began = Instant::now();
        s.fetching = Some(began);
        s.last_attempt = Some(began);
        let inner = self.0.clone();
        tokio::spawn(async move {
            let done = Done(inner.clone());
            let result = match tokio::time::timeout(REFRESH_DEADLINE, inner.fetch()).await {
                Ok(r) => r,
                Err(_) => Err(KeysUnavailable(format!(
                    "no answer within {REFRESH_DEADLINE:?}"
                ))),
            };
            done.finish(result);
        });
        Some(began)
    }
}

/// Ends a fetch: records its outcome and wakes the waiting calls — also if
/// the task is dropped midway (runtime shutdown), so no call waits on a
/// fetch that will never end.
struct Done(Arc<Inner>);

impl Done {
    fn finish(self, result: Result<HashMap<String, Arc<Jwk>>, KeysUnavailable>) {
        {
            let mut s = self.0.lock();
            match result {
                Ok(keys) => {
                    s.loaded = Some(Loaded {
                        keys,
                        fetched_at: Instant::now(),
                    });
                    s.last_failed = false;
                }
                Err(e) => {
                    // Known keys keep working while the issuer is unreachable.
                    tracing::warn!(issuer = %self.0.issuer, error = %e.0, "fetching the issuer's keys failed");
                    s.last_failed = true;
                }
            }
        }
        // `Drop` below then only wakes the waiters.
    }
}

impl Drop for Done {
    fn drop(&mut self) {
        {
            let mut s = self.0.lock();
            s.fetching = None;
            s.last_attempt = Some(Instant::now());
        }
        self.0.fetched.send_modify(|n| *n = n.wrapping_add(1));
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn get_json(&self, url: &str) -> Result<serde_json::Value, KeysUnavailable> {
        let fail = |e: String| KeysUnavailable(format!("{url}: {e}"));
        let resp = self
            .http
            .get(url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| fail(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(fail(format!("status {}", resp.status())));
        }
        let body = read_capped(resp, MAX_DOCUMENT_BYTES).await.map_err(fail)?;
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
