//! What the gateway hands a client on the upstream's behalf — the
//! `Mcp-Session-Id`, the ids of the requests it forwards, SSE event ids — is
//! bound to the principal (and the fronted server) with a MAC under the
//! shared [`SessionKey`]. Nothing is remembered: any replica holding the key
//! recognises the values after a restart, and a value presented by another
//! principal, or made up, does not verify (docs/gateway.md "The gateway").
//!
//! - A session id is `<upstream session id>.<tag>`; the upstream sees its own
//!   id, the client only the bound one.
//! - A request id the gateway assigns is `g1.<client id text>.<tag>`, so a
//!   response is matched to the request it answers whatever the client's
//!   spelling of the id (`1`, `1.0`, `1e0`, `-0`), and the client gets its
//!   id back exactly as written (JSON-RPC 2.0 §5).
//! - An SSE event id is `<upstream event id>.<tag>`; `Last-Event-ID` must
//!   carry one bound to the caller.

use crate::mac::SessionKey;
use crate::verify::Principal;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::value::RawValue;

/// Longest upstream session or event id bound (they are opaque tokens).
pub const MAX_UPSTREAM_ID: usize = 256;
/// Longest request id a client may use, as written.
pub const MAX_REQUEST_ID: usize = 128;

const SESSION: &str = "gatehouse/gateway/session/v1";
const REQUEST: &str = "gatehouse/gateway/request-id/v1";
const EVENT: &str = "gatehouse/gateway/event-id/v1";
const REQUEST_PREFIX: &str = "g1.";

/// A principal as one comparable string; users and clients never collide,
/// and neither do two users: the `sub` is length-prefixed, since tokens from
/// another issuer may carry `::` in it (`a::b` through `c` and `a` through
/// `b::c` must not share a session).
pub fn principal_key(p: &Principal) -> String {
    match p {
        Principal::Client { client_id } => format!("Client::{client_id}"),
        Principal::User { sub, client_id } => {
            format!("User::{}:{sub}::{client_id}", sub.len())
        }
    }
}

/// Whether `id` is usable as a bound upstream id: non-empty, bounded, and
/// visible ASCII only (as MCP asks of session ids), so it fits a header.
fn is_token(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_UPSTREAM_ID && id.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

/// The binding of one caller at one fronted server.
#[derive(Clone)]
pub struct Binding {
    key: SessionKey,
    server: String,
    principal: String,
}

impl Binding {
    /// `server` names the fronted server (its resource URL), `principal` the
    /// caller ([`principal_key`]).
    pub fn new(key: SessionKey, server: &str, principal: &str) -> Binding {
        Binding {
            key,
            server: server.to_string(),
            principal: principal.to_string(),
        }
    }

    fn tag(&self, label: &str, value: &[u8]) -> String {
        B64.encode(self.key.tag(
            label,
            &[self.server.as_bytes(), self.principal.as_bytes(), value],
        ))
    }

    fn verify(&self, label: &str, value: &[u8], tag: &str) -> bool {
        B64.decode(tag).is_ok_and(|tag| {
            self.key.verify(
                label,
                &[self.server.as_bytes(), self.principal.as_bytes(), value],
                &tag,
            )
        })
    }

    /// `<upstream>.<tag>`, or `None` when `upstream` is not a usable token.
    fn seal(&self, label: &str, upstream: &str) -> Option<String> {
        is_token(upstream).then(|| format!("{upstream}.{}", self.tag(label, upstream.as_bytes())))
    }

    fn open<'s>(&self, label: &str, bound: &'s str) -> Option<&'s str> {
        let (upstream, tag) = bound.rsplit_once('.')?;
        (is_token(upstream) && self.verify(label, upstream.as_bytes(), tag)).then_some(upstream)
    }

    /// The session id the client holds for the upstream's `upstream` id.
    pub fn session_id(&self, upstream: &str) -> Option<String> {
        self.seal(SESSION, upstream)
    }

    /// The upstream's session id inside `bound`, if it was bound to this
    /// caller here.
    pub fn upstream_session<'s>(&self, bound: &'s str) -> Option<&'s str> {
        self.open(SESSION, bound)
    }

    /// The event id the client sees for the upstream's event id `upstream`.
    pub fn event_id(&self, upstream: &str) -> Option<String> {
        self.seal(EVENT, upstream)
    }

    /// The upstream's event id inside a `Last-Event-ID` the client sent.
    pub fn upstream_event<'s>(&self, bound: &'s str) -> Option<&'s str> {
        self.open(EVENT, bound)
    }

    /// The id the gateway gives a request forwarded upstream in place of the
    /// client's `original` (its exact JSON text: a string or a number).
    pub fn request_id(&self, original: &RawValue) -> String {
        let text = original.get();
        format!(
            "{REQUEST_PREFIX}{}.{}",
            B64.encode(text),
            self.tag(REQUEST, text.as_bytes())
        )
    }

    /// The client's original id (its exact JSON text) for an id the gateway
    /// assigned to this caller; `None` for any other value.
    pub fn original_id(&self, assigned: &str) -> Option<Box<RawValue>> {
        let rest = assigned.strip_prefix(REQUEST_PREFIX)?;
        let (text, tag) = rest.split_once('.')?;
        let text = B64.decode(text).ok()?;
        if text.len() > MAX_REQUEST_ID || !self.verify(REQUEST, &text, tag) {
            return None;
        }
        RawValue::from_string(String::from_utf8(text).ok()?).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(principal: &str) -> Binding {
        Binding::new(
            SessionKey::from_bytes(&[3u8; 32]).unwrap(),
            "http://gw/mcp",
            principal,
        )
    }

    #[test]
    fn bound_values_open_only_for_their_principal() {
        let a = binding("Client::a");
        let b = binding("Client::b");
        let sid = a.session_id("up.stream-1").unwrap();
        assert_eq!(a.upstream_session(&sid), Some("up.stream-1"));
        assert_eq!(b.upstream_session(&sid), None);
        assert_eq!(a.upstream_session("up.stream-1"), None);
        assert_eq!(a.upstream_event(&sid), None, "labels keep kinds apart");
        assert!(a.session_id("has space").is_none());
        assert!(a.session_id(&"x".repeat(MAX_UPSTREAM_ID + 1)).is_none());

        let raw = RawValue::from_string("1e0".into()).unwrap();
        let id = a.request_id(&raw);
        assert_eq!(a.original_id(&id).unwrap().get(), "1e0");
        assert!(b.original_id(&id).is_none());
        assert!(a.original_id("g1.MQ.AAAA").is_none());
    }

    #[test]
    fn two_users_whose_sub_and_client_concatenate_alike_are_different_principals() {
        let a = Principal::User {
            sub: "a::b".into(),
            client_id: "c".into(),
        };
        let b = Principal::User {
            sub: "a".into(),
            client_id: "b::c".into(),
        };
        assert_ne!(principal_key(&a), principal_key(&b));
    }
}
