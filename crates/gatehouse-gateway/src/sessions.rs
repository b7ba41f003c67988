//! Binding each `Mcp-Session-Id` to the principal that created it
//! (DECISIONS.md): another principal presenting it gets 404, as if it did not
//! exist, so a leaked session id is worth nothing without its owner's token.

use crate::verify::Principal;
use std::collections::HashMap;
use std::sync::Mutex;

/// Sessions remembered at once; the oldest half is forgotten beyond this.
pub const MAX_SESSIONS: usize = 100_000;

#[derive(Default)]
pub struct Sessions {
    owners: Mutex<HashMap<String, (String, u64)>>,
    counter: std::sync::atomic::AtomicU64,
}

/// A principal as one comparable string; users and clients never collide.
pub fn principal_key(p: &Principal) -> String {
    match p {
        Principal::Client { client_id } => format!("Client::{client_id}"),
        Principal::User { sub, client_id } => format!("User::{sub}::{client_id}"),
    }
}

impl Sessions {
    /// Records the creator of a session the upstream just named.
    pub fn bind(&self, session: &str, principal: &str) {
        if session.len() > 256 {
            return;
        }
        let n = self
            .counter
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Ok(mut owners) = self.owners.lock() {
            if owners.len() >= MAX_SESSIONS && !owners.contains_key(session) {
                let cutoff = n.saturating_sub(MAX_SESSIONS as u64 / 2);
                owners.retain(|_, (_, seen)| *seen >= cutoff);
            }
            owners
                .entry(session.to_string())
                .or_insert_with(|| (principal.to_string(), n));
        }
    }

    /// Whether `principal` may use `session` (unknown sessions are the
    /// upstream's to judge).
    pub fn may_use(&self, session: &str, principal: &str) -> bool {
        self.owners
            .lock()
            .map(|o| o.get(session).is_none_or(|(owner, _)| owner == principal))
            .unwrap_or(false)
    }
}
