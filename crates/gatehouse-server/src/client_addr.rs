//! The address a request comes from, as every per-address limit and log sees
//! it (docs/operations.md "Behind a
//! reverse proxy").
//!
//! Without `trusted_proxies` it is the TCP peer, and forwarded headers are
//! ignored: a client talking to Gatehouse directly cannot name another
//! address to escape its limits. When the peer is a trusted proxy,
//! `X-Forwarded-For` is believed as far as the chain of trusted proxies goes:
//! the client is the rightmost hop that is not itself a trusted proxy (each
//! proxy appends the address it saw, so everything left of that hop was
//! written by the client and may be forged). Several `X-Forwarded-For`
//! headers are one comma-separated list (RFC 9110 §5.3).
//!
//! `X-Forwarded-Proto` is never read: cookie flags, CSRF origin checks and
//! every URL Gatehouse prints come from the configured `issuer`, so the
//! scheme a proxy saw changes nothing.

use crate::AppState;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use gatehouse_oauth::error::OAuthError;
use ipnet::IpNet;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// At most this many `X-Forwarded-For` hops are looked at, each at most this
/// many bytes (an IPv6 address in brackets with a port, and spaces): a
/// longer chain is not a real deployment, and the walk stops at the last
/// trusted hop instead. Only hops are bounded, never the line: the entry a
/// trusted proxy appended is always read.
const MAX_HOPS: usize = 32;
const MAX_HOP_BYTES: usize = 128;

const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// The client's address (IPv4-mapped IPv6 addresses as IPv4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientAddr(pub IpAddr);

impl ClientAddr {
    /// The key per-address limits count under: the address, or for IPv6 its
    /// /64 (the smallest block a host usually gets, so one host cannot
    /// rotate through its own addresses).
    pub fn rate_key(self) -> IpAddr {
        match self.0 {
            IpAddr::V6(v6) => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
            v4 => v4,
        }
    }
}

impl fmt::Display for ClientAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Parses `trusted_proxies`: CIDR blocks, or bare addresses (one host: /32
/// or /128). A block with host bits set is refused rather than guessed at.
pub fn parse_trusted_proxies(entries: &[String]) -> Result<Vec<IpNet>, String> {
    entries
        .iter()
        .map(|raw| {
            let s = raw.trim();
            if let Ok(ip) = s.parse::<IpAddr>() {
                return Ok(IpNet::from(ip));
            }
            let net: IpNet = s.parse().map_err(|_| {
                format!(
                    "{raw:?} is neither an IP address nor a CIDR block (like \"10.0.0.0/8\" or \"fd00::/8\")"
                )
            })?;
            if net.trunc() != net {
                return Err(format!(
                    "{raw:?} has bits set after the prefix; the block is {}",
                    net.trunc()
                ));
            }
            Ok(net)
        })
        .collect()
}

fn trusted(list: &[IpNet], ip: IpAddr) -> bool {
    list.iter().any(|net| net.contains(&ip))
}

/// One `X-Forwarded-For` element: an address, optionally with a port
/// (`1.2.3.4:5678`, `[2001:db8::1]:5678`) or in brackets, as some proxies
/// write it. Anything else (`unknown`, an obfuscated RFC 7239 name, junk)
/// is `None`.
fn parse_hop(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = s.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        return inside.parse::<Ipv6Addr>().ok().map(IpAddr::V6);
    }
    let (host, port) = s.split_once(':')?;
    is_port(port).then_some(())?;
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

fn is_port(s: &str) -> bool {
    !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit())
}

/// The client address of a request that arrived from `peer`.
pub fn resolve(peer: IpAddr, headers: &HeaderMap, trusted_proxies: &[IpNet]) -> IpAddr {
    let peer = peer.to_canonical();
    if !trusted(trusted_proxies, peer) {
        return peer;
    }
    let mut last_trusted = peer;
    let mut hops = 0;
    // Headers in order form one list; walk it from the right, entry by
    // entry on the raw bytes. A trusted proxy appends the address it saw to
    // whatever the client sent, on the same line: the line as a whole may be
    // long or hold bytes that are not text, and must still be read up to
    // that rightmost, proxy-written entry.
    for value in headers.get_all(X_FORWARDED_FOR).iter().rev() {
        for element in value.as_bytes().rsplit(|b| *b == b',') {
            hops += 1;
            if hops > MAX_HOPS {
                return last_trusted;
            }
            // A hop that cannot be read ends the walk: whatever lies to its
            // left was written by someone no trusted proxy vouches for.
            let Some(ip) = std::str::from_utf8(element)
                .ok()
                .filter(|e| e.len() <= MAX_HOP_BYTES)
                .and_then(parse_hop)
                .map(|ip| ip.to_canonical())
            else {
                return last_trusted;
            };
            if !trusted(trusted_proxies, ip) {
                return ip;
            }
            last_trusted = ip;
        }
    }
    // Every hop is a trusted proxy: the leftmost is the closest to the client.
    last_trusted
}

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        // `serve_app` always attaches the peer; a router served any other
        // way is a programming error, answered without guessing an address.
        let Some(ConnectInfo(peer)) = parts.extensions.get::<ConnectInfo<SocketAddr>>() else {
            tracing::error!("request without connection info: serve with serve_app");
            return Err(crate::respond::ApiError(OAuthError::server_error()).into_response());
        };
        Ok(ClientAddr(resolve(
            peer.ip(),
            &parts.headers,
            &state.server.settings.trusted_proxies,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        parse_trusted_proxies(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(X_FORWARDED_FOR, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn without_trusted_proxies_the_peer_is_the_client_whatever_the_headers_say() {
        let h = xff(&["1.2.3.4"]);
        assert_eq!(resolve(ip("192.0.2.9"), &h, &[]), ip("192.0.2.9"));
        let t = nets(&["10.0.0.0/8"]);
        assert_eq!(resolve(ip("192.0.2.9"), &h, &t), ip("192.0.2.9"));
    }

    #[test]
    fn the_client_is_the_rightmost_hop_that_is_not_a_trusted_proxy() {
        let t = nets(&["10.0.0.0/8", "127.0.0.1"]);
        let h = xff(&["6.6.6.6, 203.0.113.5, 10.1.1.1"]);
        assert_eq!(resolve(ip("127.0.0.1"), &h, &t), ip("203.0.113.5"));
        // Two headers are one list, in order.
        let h = xff(&["6.6.6.6", "203.0.113.5, 10.1.1.1"]);
        assert_eq!(resolve(ip("127.0.0.1"), &h, &t), ip("203.0.113.5"));
        // No header: the proxy itself.
        assert_eq!(
            resolve(ip("127.0.0.1"), &HeaderMap::new(), &t),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn when_every_hop_is_trusted_the_leftmost_is_the_client() {
        let t = nets(&["10.0.0.0/8"]);
        let h = xff(&["10.0.0.7, 10.0.0.8"]);
        assert_eq!(resolve(ip("10.0.0.1"), &h, &t), ip("10.0.0.7"));
    }

    #[test]
    fn a_malformed_hop_stops_the_walk_at_the_last_trusted_one() {
        let t = nets(&["10.0.0.0/8"]);
        for bad in [
            "1.2.3.4, junk, 10.0.0.5",
            "1.2.3.4, , 10.0.0.5",
            "1.2.3.4,unknown,10.0.0.5",
        ] {
            assert_eq!(resolve(ip("10.0.0.1"), &xff(&[bad]), &t), ip("10.0.0.5"));
        }
        assert_eq!(
            resolve(ip("10.0.0.1"), &xff(&["1.2.3.4, junk"]), &t),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn hops_with_ports_or_brackets_and_mapped_addresses_are_read() {
        let t = nets(&["::1"]);
        assert_eq!(
            resolve(ip("::1"), &xff(&["203.0.113.5:4711"]), &t),
            ip("203.0.113.5")
        );
        assert_eq!(
            resolve(ip("::1"), &xff(&["[2001:db8::5]:4711"]), &t),
            ip("2001:db8::5")
        );
        assert_eq!(
            resolve(ip("::ffff:192.0.2.1"), &HeaderMap::new(), &[]),
            ip("192.0.2.1")
        );
    }

    #[test]
    fn the_walk_is_bounded() {
        let t = nets(&["10.0.0.0/8"]);
        let long = vec!["10.0.0.9"; MAX_HOPS + 5].join(",");
        let h = xff(&[&format!("1.2.3.4,{long}")]);
        assert_eq!(resolve(ip("10.0.0.1"), &h, &t), ip("10.0.0.9"));
        let huge = format!("1.2.3.4,{}", " ".repeat(4096));
        assert_eq!(resolve(ip("10.0.0.1"), &xff(&[&huge]), &t), ip("10.0.0.1"));
    }

    /// A client behind a trusted proxy pads the header it sends (or puts a
    /// byte in it that is not text); the proxy appends the address it saw on
    /// the same line. That address is still the client's: the client cannot
    /// make itself look like the proxy.
    #[test]
    fn padding_or_junk_before_the_proxy_written_entry_cannot_hide_the_client() {
        let t = nets(&["10.0.0.0/8"]);
        let padded = format!("{},198.51.100.7", "9".repeat(8192));
        assert_eq!(
            resolve(ip("10.0.0.1"), &xff(&[&padded]), &t),
            ip("198.51.100.7")
        );
        let mut raw = b"\xff\xfe junk, 1.2.3.4".to_vec();
        raw.extend_from_slice(b", 198.51.100.7");
        let mut h = HeaderMap::new();
        h.append(
            X_FORWARDED_FOR,
            axum::http::HeaderValue::from_bytes(&raw).expect("opaque header bytes"),
        );
        assert_eq!(resolve(ip("10.0.0.1"), &h, &t), ip("198.51.100.7"));
    }

    #[test]
    fn trusted_proxies_parse_blocks_and_bare_addresses_and_name_bad_entries() {
        let n = nets(&["10.0.0.0/8", "127.0.0.1", "::1", "fd00::/8"]);
        assert_eq!(n[1].prefix_len(), 32);
        assert_eq!(n[2].prefix_len(), 128);
        let err = parse_trusted_proxies(&["10.0.0.0/33".into()]).unwrap_err();
        assert!(err.contains("\"10.0.0.0/33\""), "{err}");
        let err = parse_trusted_proxies(&["10.0.0.1/8".into()]).unwrap_err();
        assert!(err.contains("10.0.0.0/8"), "{err}");
        assert!(parse_trusted_proxies(&["proxy.internal".into()]).is_err());
    }

    #[test]
    fn ipv6_clients_are_counted_per_64() {
        assert_eq!(
            ClientAddr(ip("2001:db8:1:2:3:4:5:6")).rate_key(),
            ip("2001:db8:1:2::")
        );
        assert_eq!(ClientAddr(ip("192.0.2.1")).rate_key(), ip("192.0.2.1"));
    }
}
