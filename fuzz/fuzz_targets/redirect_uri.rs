//! Redirect URI validation and matching (`registration::validate_redirect_uri`,
//! `authorize::redirect_matches`, `authorize::redirect_with`).
//!
//! Input: the registered URI, a newline, the requested URI (both UTF-8).
//!
//! Properties, for a registered URI that passed registration:
//! - a requested URI that matches a registered `https` (or any non-loopback)
//!   URI is byte-identical to it (OAuth 2.1 §4.1.1);
//! - a loopback match (RFC 8252 §7.3) has the same scheme, host, path and
//!   query, byte for byte, and differs only in the port;
//! - the response URI built from it keeps its scheme, host, port and path.

#![no_main]

use gatehouse_oauth::people::redirect::{redirect_matches, redirect_with};
use gatehouse_oauth::issuer::is_loopback_host;
use gatehouse_oauth::registration::redirect_uri::validate_redirect_uri;
use libfuzzer_sys::fuzz_target;
use url::Url;

/// Splits `http://{host}[:port]{tail}` given the host as the URL parser
/// sees it; `None` when the string does not start that way.
fn port_and_tail<'a>(s: &'a str, host: &str) -> Option<(&'a str, &'a str)> {
    let rest = s.strip_prefix("http://")?.strip_prefix(host)?;
    match rest.strip_prefix(':') {
        Some(p) => {
            let end = p.find(|c: char| !c.is_ascii_digit()).unwrap_or(p.len());
            Some((&p[..end], &p[end..]))
        }
        None => Some(("", rest)),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (registered, requested) = text.split_once('\n').unwrap_or((text, text));
    let matched = redirect_matches(registered, requested);
    // Only URIs that passed registration are ever compared against.
    if validate_redirect_uri(registered).is_err() {
        return;
    }
    let reg = Url::parse(registered).expect("a valid redirect URI parses");

    if matched && registered != requested {
        assert!(
            !registered
                .get(..6)
                .is_some_and(|s| s.eq_ignore_ascii_case("https:")),
            "an https redirect URI matched a different string: {registered:?} {requested:?}"
        );
        assert!(validate_redirect_uri(requested).is_ok(), "{requested:?}");
        let req = Url::parse(requested).expect("a valid redirect URI parses");
        assert_eq!(reg.scheme(), "http");
        assert_eq!(req.scheme(), "http");
        assert!(is_loopback_host(&reg) && is_loopback_host(&req));
        assert_eq!(reg.host(), req.host());
        assert_eq!(reg.path(), req.path());
        assert_eq!(reg.query(), req.query());
        assert_eq!(req.fragment(), None);
        assert!(req.username().is_empty() && req.password().is_none());
        // Byte for byte: the same host as the parser reads it and the same
        // tail, only the digits of the port differ.
        let host = req.host_str().expect("a loopback URI has a host");
        let (_, tail_reg) = port_and_tail(registered, host).expect("registered form");
        let (port, tail_req) = port_and_tail(requested, host).expect("requested form");
        assert_eq!(tail_reg, tail_req);
        assert!(!tail_req.starts_with(':'));
        if !port.is_empty() {
            assert_eq!(req.port_or_known_default(), port.parse::<u16>().ok());
        }
    }

    // The response goes where the registered URI says.
    let state = requested;
    let out = redirect_with(registered, &[("code", "c0de"), ("state", state)]);
    let out = Url::parse(&out).expect("the response URI parses");
    assert_eq!(out.scheme(), reg.scheme());
    assert_eq!(out.host(), reg.host());
    assert_eq!(out.port(), reg.port());
    assert_eq!(out.path(), reg.path());
    assert_eq!(out.fragment(), None);
    let pairs: Vec<(String, String)> = out.query_pairs().into_owned().collect();
    assert!(pairs.contains(&("code".into(), "c0de".into())));
    assert!(pairs.contains(&("state".into(), state.into())));
});
