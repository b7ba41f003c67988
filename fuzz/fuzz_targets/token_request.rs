//! The token endpoint's request parsing: the strict form parser and the
//! `Authorization: Basic` decoding (`gatehouse_server::parse_token_request`,
//! which the token, revocation and introspection endpoints all run), then
//! the choice of the one client credential (`find_credential`).
//!
//! Input: the `Authorization` header value, a newline, the form body. With no
//! newline the whole input is the body and no header is sent.

#![no_main]

use axum::http::HeaderValue;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use gatehouse_oauth::client_auth::{authenticators, find_credential};
use gatehouse_oauth::limits::{MAX_PARAM_BYTES, MAX_PARAMS};
use gatehouse_server::parse_token_request;
use libfuzzer_sys::fuzz_target;
use url::form_urlencoded::byte_serialize;

/// Every parameter name the grants and authenticators read.
const NAMES: &[&str] = &[
    "grant_type",
    "client_id",
    "client_secret",
    "client_assertion",
    "client_assertion_type",
    "scope",
    "resource",
    "code",
    "redirect_uri",
    "code_verifier",
    "refresh_token",
    "token",
    "token_type_hint",
];

fn form_encode(s: &str) -> String {
    byte_serialize(s.as_bytes()).collect()
}

fuzz_target!(|data: &[u8]| {
    let (authorization, body) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (Some(&data[..i]), &data[i + 1..]),
        None => (None, data),
    };
    // Bytes no HTTP header value can hold never reach the endpoint.
    let header = match authorization.map(HeaderValue::from_bytes) {
        None => None,
        Some(Ok(h)) => Some(h),
        Some(Err(_)) => return,
    };
    let Ok(req) = parse_token_request(header.as_ref(), body) else {
        return;
    };

    // What was accepted is within the limits, and no parameter but
    // `resource` has two values.
    let mut count = 0;
    for name in NAMES {
        let all: Vec<&str> = req.params_all(name).collect();
        count += all.len();
        if *name != "resource" {
            assert!(all.len() <= 1, "{name} accepted twice");
        }
        for v in &all {
            assert!(!v.is_empty() && v.len() <= MAX_PARAM_BYTES);
        }
        assert_eq!(req.param(name), all.first().copied());
    }
    assert!(count <= MAX_PARAMS);

    // Re-encoding what was understood gives the same request back.
    let mut again = String::new();
    for name in NAMES {
        for v in req.params_all(name) {
            again.push_str(&format!("{name}={}&", form_encode(v)));
        }
    }
    let basic = req.basic.as_ref().map(|(id, secret)| {
        let raw = format!("{}:{}", form_encode(id), form_encode(secret));
        HeaderValue::from_str(&format!("Basic {}", STANDARD.encode(raw)))
            .expect("base64 is a valid header value")
    });
    let reparsed = parse_token_request(basic.as_ref(), again.as_bytes())
        .expect("a re-encoded accepted request parses");
    assert_eq!(reparsed.basic, req.basic);
    for name in NAMES {
        assert!(
            reparsed.params_all(name).eq(req.params_all(name)),
            "{name} changed on re-encoding"
        );
    }

    // At most one credential, and a body client_id never contradicts it.
    if let Ok(p) = find_credential(&authenticators(), &req) {
        if let Some(id) = req.param("client_id") {
            assert_eq!(id, p.client_id);
        }
        if let Some((id, _)) = &req.basic {
            assert_eq!(*id, p.client_id);
            assert!(req.param("client_secret").is_none());
            assert!(req.param("client_assertion").is_none());
        }
    }
});
