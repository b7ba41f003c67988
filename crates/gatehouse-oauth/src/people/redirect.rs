//! Redirect URIs at the authorization endpoint: matching the one a request
//! names against the registered ones (OAuth 2.1 §4.1.1, RFC 8252 §7.3) and
//! appending response parameters (RFC 6749 §4.1.2, RFC 9207).

use crate::issuer::is_loopback_host;
use crate::registration::redirect_uri::validate_redirect_uri;
use url::Url;

/// Whether `requested` matches the registered `registered` (OAuth 2.1
/// §4.1.1: exact string comparison), except that for loopback `http`
/// redirects the port is ignored (RFC 8252 §7.3: native apps listen on
/// whatever port is free).
pub fn redirect_matches(registered: &str, requested: &str) -> bool {
    if registered == requested {
        return true;
    }
    // The requested URI must be a clean URI by the registration rules (no
    // user information, fragment, wildcard or stray characters), so that
    // what is compared below is what a browser will follow: without this,
    // `http://127.0.0.1:5@evil.example/cb` would look like a loopback URI
    // with a port.
    if validate_redirect_uri(requested).is_err() {
        return false;
    }
    match (loopback_parts(registered), loopback_parts(requested)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// A loopback `http` URI split into (host, path and query) around its
/// port, from the string itself so nothing is normalised on the way; `None`
/// for anything else. The authority must be exactly `host` or `host:digits`.
fn loopback_parts(s: &str) -> Option<(&str, &str)> {
    let rest = s.strip_prefix("http://")?;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let host = match authority.rfind(':') {
        // An IPv6 literal ends with ']' — its colons are not a port.
        Some(i) if !authority[i..].contains(']') => {
            let port = &authority[i + 1..];
            if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            &authority[..i]
        }
        _ => authority,
    };
    let url = Url::parse(&format!("http://{host}/")).ok()?;
    let exact_host = url.host_str().is_some_and(|h| h == host);
    (exact_host && is_loopback_host(&url)).then_some((host, tail))
}

/// `redirect_uri` with the response parameters appended (RFC 6749 §4.1.2,
/// RFC 9207 `iss`).
pub fn redirect_with(redirect_uri: &str, params: &[(&str, &str)]) -> String {
    match Url::parse(redirect_uri) {
        Ok(mut url) => {
            {
                let mut q = url.query_pairs_mut();
                for (k, v) in params {
                    q.append_pair(k, v);
                }
            }
            url.to_string()
        }
        // Registered URIs always parse; never reached.
        Err(_) => redirect_uri.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_match_exactly_except_a_loopback_port() {
        assert!(redirect_matches(
            "https://app.example/cb",
            "https://app.example/cb"
        ));
        assert!(!redirect_matches(
            "https://app.example/cb",
            "https://app.example/cb/"
        ));
        assert!(!redirect_matches(
            "https://app.example/cb",
            "https://app.example:8443/cb"
        ));
        assert!(!redirect_matches(
            "https://app.example/cb",
            "https://APP.example/cb"
        ));
        assert!(redirect_matches(
            "http://127.0.0.1/cb",
            "http://127.0.0.1:51234/cb"
        ));
        assert!(redirect_matches(
            "http://127.0.0.1:80/cb",
            "http://127.0.0.1:51234/cb"
        ));
        assert!(redirect_matches("http://[::1]:1/cb", "http://[::1]:2/cb"));
        assert!(redirect_matches(
            "http://localhost/cb",
            "http://localhost:3000/cb"
        ));
        assert!(!redirect_matches(
            "http://127.0.0.1/cb",
            "http://127.0.0.1:5/other"
        ));
        assert!(!redirect_matches(
            "http://127.0.0.1/cb",
            "http://localhost:5/cb"
        ));
        assert!(!redirect_matches(
            "http://127.0.0.1/cb?a=1",
            "http://127.0.0.1:5/cb?a=2"
        ));
        assert!(redirect_matches(
            "cursor://anysphere.cursor/cb",
            "cursor://anysphere.cursor/cb"
        ));
        assert!(!redirect_matches(
            "cursor://anysphere.cursor/cb",
            "cursor://anysphere.cursor:1/cb"
        ));
        // Nothing that a browser would send elsewhere passes for a port.
        for evil in [
            "http://127.0.0.1:5@evil.example/cb",
            "http://127.0.0.1:x@evil.example/cb",
            "http://127.0.0.1@evil.example/cb",
            "http://127.0.0.1:5\\@evil.example/cb",
            "http://127.0.0.1:5/cb#@evil.example",
            "http://127.0.0.1:99999999/cb",
            "http://127.0.0.1:/cb",
            "http://127.0.0.1:5.evil.example/cb",
        ] {
            assert!(!redirect_matches("http://127.0.0.1/cb", evil), "{evil}");
        }
        assert!(!redirect_matches(
            "http://localhost/cb",
            "http://localhost:x@evil.example/cb"
        ));
    }

    #[test]
    fn response_parameters_are_appended_to_an_existing_query() {
        assert_eq!(
            redirect_with(
                "http://127.0.0.1:5/cb?x=1",
                &[("code", "a b"), ("iss", "https://as")]
            ),
            "http://127.0.0.1:5/cb?x=1&code=a+b&iss=https%3A%2F%2Fas"
        );
    }
}
