//! Clients identified by an https URL: Client ID Metadata Documents
//! (draft-ietf-oauth-client-id-metadata-document, which MCP's 2025-11-25
//! authorization spec asks servers to support). The `client_id` is the URL of
//! a JSON document, and that document is the client's registration: nothing
//! is registered or stored beforehand.
//!
//! - [`validate_document_url`]: which URLs may be client ids.
//! - [`document::client_from_document`]: a fetched document, classified by
//!   the same rules as a registration (`registration/classify.rs`), with
//!   the operator's trust policy (`[client_metadata]`) applied.
//! - [`cache::DocumentClients`]: fetching through the injected
//!   [`cache::DocumentFetcher`] (the core does no I/O), caching within the
//!   document's own `Cache-Control` bounded by the settings, and bounding how
//!   often anything is fetched however many unknown URLs arrive.
//!
//! The clients are never written to the Store; grants, consents and tokens
//! refer to them by their URL like to any other client id
//! (docs/clients.md).

pub mod cache;
pub mod document;

use crate::client_auth::jwks_uri::address_allowed;
use crate::limits::MAX_URI_CHARS;
use std::net::IpAddr;
use url::{Host, Url};

/// Client ids that are metadata document URLs start with this; ids Gatehouse
/// makes or operators choose never do (`[A-Za-z0-9._-]`).
pub const DOCUMENT_ID_PREFIX: &str = "https://";

/// Whether `client_id` names a metadata document (to be checked with
/// [`validate_document_url`] before anything is fetched).
pub fn is_document_id(client_id: &str) -> bool {
    client_id.starts_with(DOCUMENT_ID_PREFIX)
}

/// Checks a metadata document URL used as a `client_id`: https, a host, a
/// path other than `/` without `.` or `..` segments (encoded or not), no
/// user information, no query, no fragment, a port allowed; written in the
/// canonical form the server compares it in (lowercase host, no default
/// port), since the id is compared byte for byte everywhere it is stored.
/// An IP literal must be a public address (loopback only when
/// `allow_loopback`); names are checked by the fetcher after resolution.
pub fn validate_document_url(client_id: &str, allow_loopback: bool) -> Result<Url, String> {
    if client_id.len() > MAX_URI_CHARS {
        return Err(format!(
            "a client_id URL is at most {MAX_URI_CHARS} characters"
        ));
    }
    let Some(rest) = client_id.strip_prefix(DOCUMENT_ID_PREFIX) else {
        return Err("a client_id URL must use https".into());
    };
    if client_id.contains('#') {
        return Err("a client_id URL must not have a fragment".into());
    }
    if client_id.contains('?') {
        return Err("a client_id URL must not have a query".into());
    }
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if authority.contains('@') {
        return Err("a client_id URL must not carry user information".into());
    }
    let dot_segment = path.split('/').any(|s| {
        let decoded = percent_encoding::percent_decode_str(s).decode_utf8_lossy();
        decoded == "." || decoded == ".."
    });
    if dot_segment {
        return Err("a client_id URL must not have . or .. path segments".into());
    }
    if path.is_empty() || path == "/" {
        return Err(
            "a client_id URL must have a path (the document's, not the site's root)".into(),
        );
    }
    let url = Url::parse(client_id).map_err(|e| format!("not a URL: {e}"))?;
    // `evil.example.` is the same host as `evil.example` to DNS and TLS,
    // but not to a host pattern.
    if url.host_str().is_some_and(|h| h.ends_with('.')) {
        return Err("a client_id URL's host must not end with a dot".into());
    }
    if url.as_str() != client_id {
        return Err(format!(
            "a client_id URL must be written in canonical form ({})",
            url.as_str()
        ));
    }
    let literal = match url.host() {
        Some(Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
        Some(Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
        Some(Host::Domain(d)) if d == "localhost" && !allow_loopback => {
            return Err("a client_id URL must not name a loopback host".into());
        }
        Some(Host::Domain(_)) => None,
        None => return Err("a client_id URL needs a host".into()),
    };
    if literal.is_some_and(|ip| !address_allowed(ip, allow_loopback)) {
        return Err(
            "a client_id URL must not name a private, loopback, link-local or unspecified address"
                .into(),
        );
    }
    Ok(url)
}

/// A host name pattern of `[client_metadata]`: `ci.example.com` (that host)
/// or `*.example.com` (any host below example.com, not example.com itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern(String);

impl HostPattern {
    /// Parses a pattern: a lowercase DNS name or IP address, optionally
    /// starting with `*.`.
    pub fn parse(s: &str) -> Result<HostPattern, String> {
        let name = s.strip_prefix("*.").unwrap_or(s);
        let ok = !name.is_empty()
            && name.len() <= 253
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.:[]".contains(&b))
            && !name.starts_with('.')
            && !name.ends_with('.');
        if !ok {
            return Err(format!(
                "{s:?} is not a host pattern (a lowercase host name, or *. followed by one)"
            ));
        }
        Ok(HostPattern(s.to_string()))
    }

    /// Whether `host` (as the URL parser wrote it: lowercase) matches.
    pub fn matches(&self, host: &str) -> bool {
        match self.0.strip_prefix("*.") {
            Some(domain) => host
                .strip_suffix(domain)
                .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.')),
            None => host == self.0,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether any of `patterns` matches `host`.
pub fn any_matches(patterns: &[HostPattern], host: &str) -> bool {
    patterns.iter().any(|p| p.matches(host))
}

/// The host of a validated document URL, as patterns match it (IPv6 in
/// brackets).
pub fn document_host(url: &Url) -> String {
    url.host_str().unwrap_or_default().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_url_rules() {
        for good in [
            "https://app.example.com/oauth/client.json",
            "https://app.example.com:8443/c",
            "https://app.example.com/a/b/",
        ] {
            assert!(validate_document_url(good, false).is_ok(), "{good}");
        }
        assert!(validate_document_url("https://127.0.0.1:9/c.json", true).is_ok());
        assert!(validate_document_url("https://localhost:9/c.json", true).is_ok());
        for (bad, why) in [
            ("http://app.example.com/c", "https"),
            ("https://app.example.com", "path"),
            ("https://app.example.com/", "path"),
            ("https://app.example.com/c#x", "fragment"),
            ("https://app.example.com/c?x=1", "query"),
            ("https://app.example.com/c?", "query"),
            ("https://u:p@app.example.com/c", "user information"),
            ("https://u@app.example.com/c", "user information"),
            ("https://app.example.com/a/../c", ". or .."),
            ("https://app.example.com/a/./c", ". or .."),
            ("https://app.example.com/a/%2e%2E/c", ". or .."),
            ("https://App.example.com/c", "canonical"),
            ("https://app.example.com:443/c", "canonical"),
            ("https://app.example.com/a b", "canonical"),
            ("https://app.example.com./c", "end with a dot"),
            ("https://10.0.0.1/c", "private"),
            ("https://127.0.0.1/c", "private"),
            ("https://[::1]/c", "private"),
            ("https://localhost/c", "loopback"),
            ("https://169.254.169.254/latest", "private"),
            ("c_abc", "https"),
        ] {
            let e = validate_document_url(bad, false).expect_err(bad);
            assert!(e.contains(why), "{bad}: {e}");
        }
        let long = format!("https://a.example/{}", "x".repeat(MAX_URI_CHARS));
        assert!(validate_document_url(&long, false).is_err());
    }

    #[test]
    fn host_patterns() {
        let p = HostPattern::parse("*.example.com").unwrap();
        assert!(p.matches("ci.example.com"));
        assert!(p.matches("a.b.example.com"));
        assert!(!p.matches("example.com"));
        assert!(!p.matches("evilexample.com"));
        assert!(!p.matches(".example.com"));
        let exact = HostPattern::parse("ci.example.com").unwrap();
        assert!(exact.matches("ci.example.com"));
        assert!(!exact.matches("x.ci.example.com"));
        for bad in [
            "",
            "*.",
            "*",
            "Example.com",
            "a..b/",
            "a/b",
            "*.*.example.com",
            ".a",
        ] {
            assert!(HostPattern::parse(bad).is_err(), "{bad:?}");
        }
    }
}
