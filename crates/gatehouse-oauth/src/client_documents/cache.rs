//! Fetching and caching metadata documents. The core does no I/O: the
//! binary implements [`DocumentFetcher`] over HTTP (with the same outbound
//! rules as `jwks_uri`: public addresses only, pinned connection, no
//! redirects, a size cap and a deadline) and injects it.
//!
//! A document is used for as long as its `Cache-Control` (or `Expires`)
//! says, within `[client_metadata] min_cache`..`max_cache`; a failed fetch or
//! an invalid document is never cached (the next request tries again), so
//! fetches of unknown URLs are bounded instead: per host per minute and
//! overall per second, however many arrive. A document that was valid is
//! fetched again when it expires outside those bounds (so a flood of unknown
//! URLs cannot starve it), and while its site cannot be reached the last
//! valid copy is used for up to [`STALE_IF_UNAVAILABLE`] more; a document
//! that is gone or no longer valid stops working at once. Both the cache and
//! the per-host counters hold a bounded number of entries, least recently
//! used forgotten first.

use super::document::{MAX_DOCUMENT_BYTES, client_from_document, host_admitted};
use super::{document_host, validate_document_url};
use crate::client::Client;
use crate::registration::classify::Capabilities;
use crate::settings::ClientMetadataSettings;
use async_trait::async_trait;
use hashlink::LruCache;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use url::Url;

/// Documents held at once (each at most [`MAX_DOCUMENT_BYTES`], parsed).
pub const DOCUMENT_CACHE_CAPACITY: usize = 4_096;
/// Hosts whose fetch counts are remembered at once.
const HOST_COUNTERS_CAPACITY: usize = 10_000;
/// Total time for one document fetch: connect, headers and body.
pub const DOCUMENT_FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// How long past its lifetime a valid document is still used while its
/// site cannot be reached (RFC 5861's `stale-if-error`, fixed).
pub const STALE_IF_UNAVAILABLE: Duration = Duration::from_secs(3600);

/// Why a document cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocumentError {
    /// The URL or the document breaks a rule, or the document is not there
    /// (4xx, a redirect, not JSON): the client does not exist. The reason
    /// is safe to show (it says nothing about the network).
    Refused(String),
    /// It could not be fetched right now (no answer, 5xx, the fetch limits):
    /// try again later. The reason is for the log.
    Unavailable(String),
}

impl DocumentError {
    pub fn reason(&self) -> &str {
        match self {
            DocumentError::Refused(r) | DocumentError::Unavailable(r) => r,
        }
    }
}

/// A document as fetched: its body and the headers that say how long it
/// may be used.
#[derive(Debug, Clone, Default)]
pub struct Fetched {
    pub body: Vec<u8>,
    pub cache_control: Option<String>,
    pub expires: Option<String>,
    pub date: Option<String>,
}

/// Fetches a metadata document. Implementations answer `Ok` only for a 200
/// with a JSON content type; they never follow redirects, connect only to
/// addresses [`crate::client_auth::jwks_uri::address_allowed`] accepts
/// (checked after resolution, connection pinned to them), stop reading after
/// [`MAX_DOCUMENT_BYTES`] and give up after [`DOCUMENT_FETCH_TIMEOUT`]. An
/// answer that is not a document is [`DocumentError::Refused`]; no answer,
/// or a 5xx, is [`DocumentError::Unavailable`].
#[async_trait]
pub trait DocumentFetcher: Send + Sync {
    async fn fetch_document(
        &self,
        url: &Url,
        allow_loopback: bool,
    ) -> Result<Fetched, DocumentError>;
}

/// How long a fetched document may be used: `Cache-Control: max-age`, else
/// `Expires` (against `Date`, else `now`), bounded by `min`..`max`;
/// `no-store`/`no-cache` and no information at all mean `min`.
pub fn cache_lifetime(f: &Fetched, now: SystemTime, min: Duration, max: Duration) -> Duration {
    let mut max_age = None;
    if let Some(cc) = &f.cache_control {
        for directive in cc.split(',').map(str::trim) {
            let (name, value) = directive.split_once('=').unwrap_or((directive, ""));
            match name.trim().to_ascii_lowercase().as_str() {
                "no-store" | "no-cache" => return min,
                "max-age" if max_age.is_none() => {
                    max_age = value.trim().trim_matches('"').parse::<u64>().ok();
                }
                _ => {}
            }
        }
    }
    let secs = max_age.or_else(|| {
        let expires = httpdate::parse_http_date(f.expires.as_deref()?).ok()?;
        let base = f
            .date
            .as_deref()
            .and_then(|d| httpdate::parse_http_date(d).ok())
            .unwrap_or(now);
        Some(expires.duration_since(base).map_or(0, |d| d.as_secs()))
    });
    Duration::from_secs(secs.unwrap_or(0)).clamp(min, max)
}

/// Fetches counted in one fixed window.
#[derive(Clone, Copy)]
struct Window {
    start: Instant,
    count: u32,
}

impl Window {
    fn new(now: Instant) -> Window {
        Window {
            start: now,
            count: 0,
        }
    }

    /// Whether one more fetch fits `limit` per `length` (the window restarts
    /// when it has passed).
    fn fits(&mut self, now: Instant, length: Duration, limit: u32) -> bool {
        if now.duration_since(self.start) >= length {
            *self = Window::new(now);
        }
        self.count < limit
    }
}

struct Limiter {
    overall: Window,
    hosts: LruCache<String, Window>,
}

struct Cached {
    client: Arc<Client>,
    /// Fresh until then; used while unreachable until `until` +
    /// [`STALE_IF_UNAVAILABLE`].
    until: Instant,
}

/// The documents in use, and the fetch limits.
pub struct DocumentClients {
    fetcher: Option<Arc<dyn DocumentFetcher>>,
    entries: Mutex<LruCache<String, Cached>>,
    limiter: Mutex<Limiter>,
}

impl DocumentClients {
    /// `None`: no HTTP in this build (tests of the core); every document
    /// client is then unknown.
    pub fn new(fetcher: Option<Arc<dyn DocumentFetcher>>) -> Self {
        let now = Instant::now();
        DocumentClients {
            fetcher,
            entries: Mutex::new(LruCache::new(DOCUMENT_CACHE_CAPACITY)),
            limiter: Mutex::new(Limiter {
                overall: Window::new(now),
                hosts: LruCache::new(HOST_COUNTERS_CAPACITY),
            }),
        }
    }

    /// Claims one fetch from `host` under the limits.
    fn claim(&self, host: &str, settings: &ClientMetadataSettings) -> Result<(), DocumentError> {
        let now = Instant::now();
        let mut l = self.limiter.lock().unwrap_or_else(|p| p.into_inner());
        let mut window = l.hosts.get(host).copied().unwrap_or(Window::new(now));
        if !window.fits(
            now,
            Duration::from_secs(60),
            settings.fetches_per_host_per_minute,
        ) {
            return Err(DocumentError::Unavailable(format!(
                "too many document fetches from {host} this minute; try again shortly"
            )));
        }
        if !l
            .overall
            .fits(now, Duration::from_secs(1), settings.fetches_per_second)
        {
            return Err(DocumentError::Unavailable(
                "too many document fetches this second; try again shortly".into(),
            ));
        }
        l.overall.count += 1;
        window.count += 1;
        l.hosts.insert(host.to_string(), window);
        Ok(())
    }

    /// The client whose document is at `client_id`: cached while its
    /// lifetime lasts, else fetched and classified (see the module
    /// documentation for the bounds). Nothing is cached on failure.
    pub async fn client(
        &self,
        client_id: &str,
        caps: &Capabilities<'_>,
        settings: &ClientMetadataSettings,
        allow_loopback: bool,
        now: i64,
    ) -> Result<Arc<Client>, DocumentError> {
        let url =
            validate_document_url(client_id, allow_loopback).map_err(DocumentError::Refused)?;
        host_admitted(&url, settings).map_err(DocumentError::Refused)?;
        let previous = {
            let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            match entries.get(client_id) {
                Some(c) if c.until > Instant::now() => return Ok(c.client.clone()),
                Some(c) => Some((c.client.clone(), c.until)),
                None => None,
            }
        };
        let fetcher = self
            .fetcher
            .as_ref()
            .ok_or_else(|| DocumentError::Refused("no document fetcher in this build".into()))?;
        // A document that was valid is refetched outside the limits on
        // unknown URLs (at most once per min_cache each, and the cache is
        // bounded), so a flood of those cannot make it fail.
        if previous.is_none() {
            self.claim(&document_host(&url), settings)?;
        }
        let fetched = match fetcher.fetch_document(&url, allow_loopback).await {
            Ok(f) => f,
            Err(DocumentError::Unavailable(reason)) => {
                return match previous {
                    Some((client, until)) if Instant::now() < until + STALE_IF_UNAVAILABLE => {
                        tracing::info!(
                            client_id,
                            reason,
                            "client metadata document unreachable; using the last valid copy"
                        );
                        Ok(client)
                    }
                    _ => Err(DocumentError::Unavailable(reason)),
                };
            }
            Err(refused) => {
                self.forget(client_id);
                return Err(refused);
            }
        };
        if fetched.body.len() > MAX_DOCUMENT_BYTES {
            self.forget(client_id);
            return Err(DocumentError::Refused(format!(
                "the document is larger than {MAX_DOCUMENT_BYTES} bytes"
            )));
        }
        let client = match client_from_document(&url, &fetched.body, caps, settings, now) {
            Ok(c) => Arc::new(c),
            Err(reason) => {
                self.forget(client_id);
                return Err(DocumentError::Refused(reason));
            }
        };
        let lifetime = cache_lifetime(
            &fetched,
            SystemTime::now(),
            settings.min_cache,
            settings.max_cache,
        );
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.insert(
            client_id.to_string(),
            Cached {
                client: client.clone(),
                until: Instant::now() + lifetime,
            },
        );
        Ok(client)
    }

    fn forget(&self, client_id: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.remove(client_id);
    }

    /// Documents held (for tests and metrics).
    pub fn len(&self) -> usize {
        self.entries.lock().map_or(0, |e| e.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fetched(cc: Option<&str>, expires: Option<&str>, date: Option<&str>) -> Fetched {
        Fetched {
            body: Vec::new(),
            cache_control: cc.map(String::from),
            expires: expires.map(String::from),
            date: date.map(String::from),
        }
    }

    #[test]
    fn lifetimes_follow_the_headers_within_bounds() {
        let (min, max) = (Duration::from_secs(60), Duration::from_secs(86_400));
        let now = httpdate::parse_http_date("Mon, 07 Dec 2026 12:00:00 GMT").unwrap();
        let life = |f: Fetched| cache_lifetime(&f, now, min, max).as_secs();
        assert_eq!(life(fetched(Some("public, max-age=600"), None, None)), 600);
        assert_eq!(life(fetched(Some("max-age=5"), None, None)), 60);
        assert_eq!(life(fetched(Some("max-age=9999999"), None, None)), 86_400);
        assert_eq!(life(fetched(Some("no-store, max-age=600"), None, None)), 60);
        assert_eq!(life(fetched(Some("max-age=\"120\""), None, None)), 120);
        assert_eq!(life(fetched(Some("max-age=x"), None, None)), 60);
        assert_eq!(life(fetched(None, None, None)), 60);
        let exp = Some("Mon, 07 Dec 2026 13:00:00 GMT");
        assert_eq!(life(fetched(None, exp, None)), 3600);
        assert_eq!(
            life(fetched(None, exp, Some("Mon, 07 Dec 2026 12:30:00 GMT"))),
            1800
        );
        assert_eq!(life(fetched(None, Some("0"), None)), 60);
        assert_eq!(
            life(fetched(None, Some("Sun, 06 Dec 2026 12:00:00 GMT"), None)),
            60
        );
    }

    #[test]
    fn fetches_are_bounded_per_host_and_overall() {
        let settings = ClientMetadataSettings {
            fetches_per_second: 5,
            fetches_per_host_per_minute: 3,
            ..Default::default()
        };
        let d = DocumentClients::new(None);
        for _ in 0..3 {
            d.claim("a.example", &settings).unwrap();
        }
        let e = d.claim("a.example", &settings).unwrap_err();
        assert!(e.reason().contains("a.example"), "{e:?}");
        d.claim("b.example", &settings).unwrap();
        d.claim("c.example", &settings).unwrap();
        let e = d.claim("d.example", &settings).unwrap_err();
        assert!(e.reason().contains("this second"), "{e:?}");
    }

    /// Answers with what the test set, counting fetches.
    struct Fake(
        Mutex<Result<Vec<u8>, DocumentError>>,
        std::sync::atomic::AtomicUsize,
    );

    #[async_trait]
    impl DocumentFetcher for Fake {
        async fn fetch_document(&self, _: &Url, _: bool) -> Result<Fetched, DocumentError> {
            self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let answer = self.0.lock().unwrap().clone();
            answer.map(|body| Fetched {
                body,
                ..Default::default()
            })
        }
    }

    #[tokio::test]
    async fn a_valid_document_outlives_an_outage_but_not_its_withdrawal() {
        const ID: &str = "https://app.example.com/c.json";
        let doc = serde_json::json!({"client_id": ID, "client_name": "x",
            "redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "none"});
        let fake = Arc::new(Fake(
            Mutex::new(Ok(doc.to_string().into_bytes())),
            Default::default(),
        ));
        let docs = DocumentClients::new(Some(fake.clone()));
        let registry = crate::registry::Registry::new(true, crate::keys::Alg::ES256);
        let caps = registry.capabilities(None, false);
        let settings = ClientMetadataSettings {
            fetches_per_host_per_minute: 1,
            ..Default::default()
        };
        let get = || docs.client(ID, &caps, &settings, false, 0);
        assert!(get().await.is_ok());
        assert!(get().await.is_ok(), "cached");
        assert_eq!(fake.1.load(std::sync::atomic::Ordering::SeqCst), 1);
        let expire = || {
            let mut e = docs.entries.lock().unwrap();
            e.get_mut(ID).unwrap().until = Instant::now() - Duration::from_secs(1);
        };
        // Expired, and the site is down: the last valid copy, refetched
        // outside the host's budget (already spent).
        expire();
        *fake.0.lock().unwrap() = Err(DocumentError::Unavailable("answered 503".into()));
        assert!(get().await.is_ok());
        assert_eq!(fake.1.load(std::sync::atomic::Ordering::SeqCst), 2);
        // Too long down: unavailable.
        {
            let mut e = docs.entries.lock().unwrap();
            e.get_mut(ID).unwrap().until =
                Instant::now() - STALE_IF_UNAVAILABLE - Duration::from_secs(1);
        }
        assert!(matches!(get().await, Err(DocumentError::Unavailable(_))));
        // Withdrawn (404): gone at once, and forgotten.
        expire();
        *fake.0.lock().unwrap() = Err(DocumentError::Refused("answered 404".into()));
        assert!(matches!(get().await, Err(DocumentError::Refused(_))));
        assert!(docs.is_empty());
    }
}
