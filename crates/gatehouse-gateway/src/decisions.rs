//! Cedar decisions already made for one verified token, so a client's
//! repeated calls skip Cedar.
//!
//! A decision is a function of the token's claims (fixed for the token's
//! life), the policy set, the server, the action, the name and the context.
//! Only decisions whose context cannot matter are cached (calls without
//! arguments, calls under policies that never read `context`, and list
//! probes, which leave the context unknown); a policy reload (a new
//! generation) or another server empties the cache. Memory is bounded per
//! token: at most [`NAMES_PER_TOKEN`] names of at most [`MAX_CACHED_NAME`]
//! bytes; longer names are decided afresh each time.

use crate::authz::Action;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Names remembered per token before the cache starts over.
pub const NAMES_PER_TOKEN: usize = 64;
/// Longest name whose decisions are remembered.
pub const MAX_CACHED_NAME: usize = 256;

/// A decision and the policies that made it (for the decision log).
#[derive(Debug)]
pub struct Decided {
    pub allowed: bool,
    pub reasons: Vec<String>,
}

/// What was asked: a call (with no arguments that matter) or a probe (may a
/// call on this be allowed for some arguments — list items, completions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Question {
    Call,
    Probe,
}

/// Where a decision is cached: one slot per (action, question).
pub struct Key<'a> {
    pub generation: u64,
    pub server: &'a str,
    pub action: Action,
    pub question: Question,
    pub name: &'a str,
}

impl Key<'_> {
    fn slot(&self) -> usize {
        let action = match self.action {
            Action::CallTool => 0,
            Action::GetPrompt => 1,
            Action::ReadResource => 2,
        };
        action * 2 + usize::from(self.question == Question::Probe)
    }
}

#[derive(Debug, Default)]
pub struct DecisionCache(Mutex<Cached>);

#[derive(Debug, Default)]
struct Cached {
    generation: u64,
    server: String,
    by_name: HashMap<Box<str>, [Option<Arc<Decided>>; 6]>,
}

impl DecisionCache {
    pub fn get(&self, key: &Key) -> Option<Arc<Decided>> {
        let cache = self.0.lock().ok()?;
        if cache.generation != key.generation || cache.server != key.server {
            return None;
        }
        cache.by_name.get(key.name)?[key.slot()].clone()
    }

    pub fn put(&self, key: &Key, decided: Arc<Decided>) {
        if key.name.len() > MAX_CACHED_NAME {
            return;
        }
        let Ok(mut cache) = self.0.lock() else { return };
        let full = cache.by_name.len() >= NAMES_PER_TOKEN && !cache.by_name.contains_key(key.name);
        if cache.generation != key.generation || cache.server != key.server || full {
            cache.generation = key.generation;
            cache.server = key.server.to_string();
            cache.by_name.clear();
        }
        cache.by_name.entry(key.name.into()).or_default()[key.slot()] = Some(decided);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> Key<'_> {
        Key {
            generation: 1,
            server: "s",
            action: Action::CallTool,
            question: Question::Call,
            name,
        }
    }

    #[test]
    fn memory_is_bounded_per_token() {
        let cache = DecisionCache::default();
        let d = || {
            Arc::new(Decided {
                allowed: true,
                reasons: vec![],
            })
        };
        let long = "x".repeat(MAX_CACHED_NAME + 1);
        cache.put(&key(&long), d());
        assert!(cache.get(&key(&long)).is_none(), "long names are not kept");
        for i in 0..=NAMES_PER_TOKEN {
            cache.put(&key(&i.to_string()), d());
        }
        let kept = cache.0.lock().unwrap().by_name.len();
        assert!(kept <= NAMES_PER_TOKEN, "{kept}");
        let probe = Key {
            question: Question::Probe,
            ..key("0")
        };
        cache.put(&key("a"), d());
        assert!(cache.get(&key("a")).is_some());
        assert!(
            cache.get(&Key { name: "a", ..probe }).is_none(),
            "calls and probes are apart"
        );
    }
}
