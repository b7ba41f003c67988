//! The gateway's own secret: an HMAC-SHA-256 key every replica of one
//! deployment shares, so that what one replica hands a client (a session id,
//! a request id it assigned, an SSE event id) is recognised by all of them
//! without shared memory, and survives a restart (docs/gateway.md "The gateway").

use aws_lc_rs::{hmac, rand};
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// Shortest key accepted: the HMAC-SHA-256 output size (RFC 2104 §3 advises
/// keys no shorter than the hash's output).
pub const MIN_KEY_BYTES: usize = 32;
/// Longest key accepted (a key file is read whole).
pub const MAX_KEY_BYTES: usize = 4096;
/// Tag length kept: 128 bits (RFC 2104 §5 allows truncation to at least
/// half the output).
pub const TAG_BYTES: usize = 16;

/// The key that binds what the gateway hands out to the principal it was
/// handed to. Cloning shares it.
#[derive(Clone)]
pub struct SessionKey(Arc<hmac::Key>);

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(…)")
    }
}

impl SessionKey {
    pub fn from_bytes(bytes: &[u8]) -> Result<SessionKey, String> {
        if bytes.len() < MIN_KEY_BYTES {
            return Err(format!(
                "a session key needs at least {MIN_KEY_BYTES} bytes, found {}",
                bytes.len()
            ));
        }
        if bytes.len() > MAX_KEY_BYTES {
            return Err(format!(
                "a session key has at most {MAX_KEY_BYTES} bytes, found {}",
                bytes.len()
            ));
        }
        Ok(SessionKey(Arc::new(hmac::Key::new(
            hmac::HMAC_SHA256,
            bytes,
        ))))
    }

    /// A fresh key for this process alone.
    pub fn random() -> Result<SessionKey, String> {
        let mut bytes = [0u8; MIN_KEY_BYTES];
        rand::fill(&mut bytes).map_err(|_| "no randomness for a session key".to_string())?;
        Self::from_bytes(&bytes)
    }

    /// The tag over `label` and `parts`. Every part is length-prefixed, so
    /// two different lists never feed the MAC the same bytes.
    pub(crate) fn tag(&self, label: &str, parts: &[&[u8]]) -> [u8; TAG_BYTES] {
        let mut ctx = hmac::Context::with_key(&self.0);
        for part in std::iter::once(label.as_bytes()).chain(parts.iter().copied()) {
            ctx.update(&(part.len() as u64).to_be_bytes());
            ctx.update(part);
        }
        let full = ctx.sign();
        let mut tag = [0u8; TAG_BYTES];
        tag.copy_from_slice(&full.as_ref()[..TAG_BYTES]);
        tag
    }

    /// Whether `tag` is the tag over `label` and `parts`, compared in
    /// constant time.
    pub(crate) fn verify(&self, label: &str, parts: &[&[u8]], tag: &[u8]) -> bool {
        tag.len() == TAG_BYTES && bool::from(self.tag(label, parts).as_slice().ct_eq(tag))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_depend_on_every_part_and_its_boundaries() {
        let key = SessionKey::from_bytes(&[7u8; 32]).unwrap();
        let t = key.tag("l", &[b"ab", b"c"]);
        assert!(key.verify("l", &[b"ab", b"c"], &t));
        assert!(!key.verify("l", &[b"a", b"bc"], &t));
        assert!(!key.verify("m", &[b"ab", b"c"], &t));
        assert!(!key.verify("l", &[b"ab", b"c"], &t[..15]));
        let other = SessionKey::from_bytes(&[8u8; 32]).unwrap();
        assert!(!other.verify("l", &[b"ab", b"c"], &t));
        assert!(SessionKey::from_bytes(&[1u8; 31]).is_err());
    }
}
