//! The rules a client's `jwks_uri` (RFC 7591 §2) must follow. The URL is the
//! client's choice and the server will fetch it, so these rules keep it from
//! becoming a server-side request forgery: https only, and only public
//! addresses — checked here for IP literals and by the fetcher after DNS
//! resolution for names.

use crate::limits::MAX_URI_CHARS;
use std::net::IpAddr;
use url::{Host, Url};

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
