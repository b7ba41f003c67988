//! Fetching and caching metadata documents. The core does no I/O: the
//! binary implements [`DocumentFetcher`] over HTTP (with the same outbound
//! rules as `jwks_uri`: public addresses only, pinned connection, no
//! redirects, a size cap and a deadline) and injects it.
//!
//! A document is used for as long as its `Cache-Control` (or `Expires`)
//! says, within `[client_metadata] min_cache`..`max_cache`; a failed fetch or
//! an invalid document is never cached (the next request tries again), so
//! fetches are bounded instead: per host per minute and overall per second,
//! however many unknown URLs arrive. Both the cache and the per-host
//! counters hold a bounded number of entries, least recently used forgotten
//! first.

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
/// [`MAX_DOCUMENT_BYTES`] and give up after [`DOCUMENT_FETCH_TIMEOUT`]. The
/// error is a reason for the page and the logs.
#[async_trait]
pub trait DocumentFetcher: Send + Sync {
    async fn fetch_document(&self, url: &Url, allow_loopback: bool) -> Result<Fetched, String>;
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
    fn claim(&self, host: &str, settings: &ClientMetadataSettings) -> Result<(), String> {
        let now = Instant::now();
        let mut l = self.limiter.lock().unwrap_or_else(|p| p.into_inner());
        let mut window = l.hosts.get(host).copied().unwrap_or(Window::new(now));
        if !window.fits(
            now,
            Duration::from_secs(60),
            settings.fetches_per_host_per_minute,
        ) {
            return Err(format!(
                "too many document fetches from {host} this minute; try again shortly"
            ));
        }
        if !l
            .overall
            .fits(now, Duration::from_secs(1), settings.fetches_per_second)
        {
            return Err("too many document fetches this second; try again shortly".into());
        }
        l.overall.count += 1;
        window.count += 1;
        l.hosts.insert(host.to_string(), window);
        Ok(())
    }

    /// The client whose document is at `client_id`: cached while its
    /// lifetime lasts, else fetched (within the limits) and classified.
    /// `Err` is why it cannot be used; nothing is cached then.
    pub async fn client(
        &self,
        client_id: &str,
        caps: &Capabilities<'_>,
        settings: &ClientMetadataSettings,
        allow_loopback: bool,
        now: i64,
    ) -> Result<Arc<Client>, String> {
        let url = validate_document_url(client_id, allow_loopback)?;
        host_admitted(&url, settings)?;
        {
            let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            match entries.get(client_id) {
                Some(c) if c.until > Instant::now() => return Ok(c.client.clone()),
                Some(_) => {
                    entries.remove(client_id);
                }
                None => {}
            }
        }
        let fetcher = self
            .fetcher
            .as_ref()
            .ok_or("no document fetcher in this build")?;
        self.claim(&document_host(&url), settings)?;
        let fetched = fetcher.fetch_document(&url, allow_loopback).await?;
        if fetched.body.len() > MAX_DOCUMENT_BYTES {
            return Err(format!(
                "the document is larger than {MAX_DOCUMENT_BYTES} bytes"
            ));
        }
        let client = Arc::new(client_from_document(
            &url,
            &fetched.body,
            caps,
            settings,
            now,
        )?);
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
        assert!(e.contains("a.example"), "{e}");
        d.claim("b.example", &settings).unwrap();
        d.claim("c.example", &settings).unwrap();
        let e = d.claim("d.example", &settings).unwrap_err();
        assert!(e.contains("this second"), "{e}");
    }
}
