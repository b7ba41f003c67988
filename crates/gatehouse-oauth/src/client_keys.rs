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

use crate::assertion::header_kid;
use crate::client::Client;
use crate::jwks::validate_jwks_document;
use crate::limits::{
    JWKS_URI_MIN_REFETCH, JWKS_URI_TTL, MAX_FETCHED_JWKS_BYTES, MAX_URI_CHARS, REMOTE_KEYS_CAPACITY,
};
use async_trait::async_trait;
use serde_json::Value;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use url::{Host, Url};

/// Fetches a client's JWKS document. Implementations must not follow
/// redirects, must refuse addresses [`address_allowed`] refuses (after
/// resolving the host, connecting only to a checked address), and must stop
/// reading after [`MAX_FETCHED_JWKS_BYTES`] and after a time limit. The
/// error is a reason for the logs; the client only ever sees `invalid_client`.
#[async_trait]
pub trait ClientKeysFetcher: Send + Sync {
    async fn fetch(&self, uri: &Url, allow_loopback: bool) -> Result<Vec<u8>, String>;
}

/// Checks a `jwks_uri` at registration and again before each fetch: an
/// absolute https URL without userinfo or fragment; http only to a loopback
/// host and only when `allow_http_loopback` (the operator's
/// `client_auth.allow_http_loopback_jwks_uri`, for tests and local setups).
/// An IP literal is checked here; host names after resolution.
pub fn validate_jwks_uri(uri: &str, allow_http_loopback: bool) -> Result<Url, String> {
    if uri.len() > MAX_URI_CHARS {
        return Err(format!(
            "jwks_uri is longer than {MAX_URI_CHARS} characters"
        ));
    }
    let url = Url::parse(uri).map_err(|e| format!("jwks_uri is not an absolute URL: {e}"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("jwks_uri must not carry userinfo".into());
    }
    if url.fragment().is_some() {
        return Err("jwks_uri must not have a fragment".into());
    }
    let host = url.host().ok_or("jwks_uri has no host")?;
    let loopback = match &host {
        Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        Host::Ipv4(ip) => ip.is_loopback(),
        Host::Ipv6(ip) => ip.is_loopback(),
    };
    match url.scheme() {
        "https" => {}
        "http" if allow_http_loopback && loopback => {}
        _ => {
            return Err(
                "jwks_uri must use https (http only to a loopback address, and only when client_auth.allow_http_loopback_jwks_uri is on)"
                    .into(),
            );
        }
    }
    if loopback && !allow_http_loopback {
        return Err("jwks_uri must not name a loopback address".into());
    }
    let literal = match host {
        Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
        Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
        Host::Domain(_) => None,
    };
    if literal.is_some_and(|ip| !address_allowed(ip, allow_http_loopback)) {
        return Err("jwks_uri names a private, loopback, link-local or unspecified address".into());
    }
    Ok(url)
}

/// Whether the server may connect to `ip` to fetch a client's keys: never to
/// private (RFC 1918, RFC 4193, shared RFC 6598), link-local (RFC 3927,
/// RFC 4291 §2.5.6), unspecified, multicast or broadcast addresses, and to
/// loopback only with the operator's allowance. IPv4-mapped IPv6 addresses
/// are judged as the IPv4 address they carry.
pub fn address_allowed(ip: IpAddr, allow_loopback: bool) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    if ip.is_loopback() {
        return allow_loopback;
    }
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64))
        }
        IpAddr::V6(v6) => {
            let s = v6.segments()[0];
            !(v6.is_unspecified()
                || v6.is_multicast()
                || (s & 0xfe00) == 0xfc00
                || (s & 0xffc0) == 0xfe80)
        }
    }
}

#[derive(Clone)]
struct Entry {
    uri: String,
    jwks: Option<Value>,
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
/// (mirrors [`crate::assertion::verify`]).
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
    ) -> Result<Value, String> {
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
                    return e
                        .jwks
                        .clone()
                        .ok_or_else(|| "jwks_uri fetch failed recently; not retried yet".into());
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
        let url = validate_jwks_uri(uri, allow_loopback)?;
        let raw = fetcher.fetch(&url, allow_loopback).await?;
        if raw.len() > MAX_FETCHED_JWKS_BYTES {
            return Err(format!(
                "jwks_uri document larger than {MAX_FETCHED_JWKS_BYTES} bytes"
            ));
        }
        let jwks = validate_jwks_document(&raw).map_err(|e| format!("jwks_uri document: {e}"))?;
        let mut entries = self.lock();
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
}

/// Where a `private_key_jwt` client's keys come from: registered inline, or
/// behind its `jwks_uri` through the injected fetcher and the cache.
pub struct ClientKeySource {
    /// `None`: `jwks_uri` clients cannot authenticate (no HTTP in this build).
    fetcher: Option<Arc<dyn ClientKeysFetcher>>,
    remote: RemoteKeys,
}

impl ClientKeySource {
    pub fn new(fetcher: Option<Arc<dyn ClientKeysFetcher>>) -> Self {
        ClientKeySource {
            fetcher,
            remote: RemoteKeys::new(JWKS_URI_TTL, JWKS_URI_MIN_REFETCH),
        }
    }

    /// The key set to check `client`'s `assertion` with: the registered one,
    /// or the one behind its `jwks_uri` (cached; refetched, rate-limited,
    /// when the assertion names an unknown `kid` — OpenID Connect Core
    /// §10.1.1). The error is a reason for the logs only.
    pub async fn jwks(
        &self,
        client: &Client,
        assertion: &str,
        allow_loopback: bool,
    ) -> Result<Value, String> {
        let m = &client.metadata;
        match (&m.jwks, &m.jwks_uri, &self.fetcher) {
            (Some(jwks), _, _) => Ok(jwks.clone()),
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwks_uri_rules() {
        assert!(validate_jwks_uri("https://keys.example/jwks.json", false).is_ok());
        assert!(validate_jwks_uri("http://127.0.0.1:9/jwks", true).is_ok());
        assert!(validate_jwks_uri("http://localhost/jwks", true).is_ok());
        for bad in [
            "http://127.0.0.1:9/jwks",
            "https://127.0.0.1/jwks",
            "http://keys.example/jwks",
            "https://u:p@keys.example/jwks",
            "https://keys.example/jwks#x",
            "https://10.0.0.1/jwks",
            "https://169.254.169.254/latest",
            "https://[::1]/jwks",
            "https://[fe80::1]/jwks",
            "https://0.0.0.0/jwks",
            "ftp://keys.example/jwks",
            "/jwks",
        ] {
            assert!(validate_jwks_uri(bad, false).is_err(), "{bad}");
        }
        assert!(validate_jwks_uri("http://keys.example/jwks", true).is_err());
        assert!(validate_jwks_uri("https://192.168.1.1/jwks", true).is_err());
    }

    #[test]
    fn addresses() {
        let ok = |s: &str, l| address_allowed(s.parse().expect("ip"), l);
        assert!(ok("93.184.216.34", false));
        assert!(ok("2606:2800:220:1::1", false));
        assert!(ok("127.0.0.1", true));
        for bad in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.0.1",
            "169.254.1.1",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fc00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!ok(bad, false), "{bad}");
        }
    }
}
