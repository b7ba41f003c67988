//! The in-memory client cache that keeps the token hot path off the disk
//! (docs/decisions.md "Principles"), kept fresh by following the Store's
//! monotonic change sequence (docs/decisions.md "Caches and replicas").

use crate::client::Client;
use crate::error::{OAuthError, StoreError};
use crate::limits::CLIENT_CACHE_CAPACITY;
use crate::store::Store;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// A lookup result: `None` when the client does not exist.
type Entry = Option<Arc<Client>>;

/// Ids remembered as unknown; kept apart (and smaller) so that requests with
/// made-up ids can never push real clients out of the cache.
const UNKNOWN_CAPACITY: usize = 10_000;

/// The change-log entity of client rows.
pub const CLIENT_ENTITY: &str = "client";
/// The change-log entity of key rows (signing and secret-hashing keys).
pub const KEY_ENTITY: &str = "key";

/// How often the cache forgets every client and reads each one again on
/// its next use, whatever the change log said: a backstop against a change
/// the log lost (it is pruned after a day), like the key ring's full
/// reload.
pub const FULL_REVALIDATION: Duration = Duration::from_secs(10 * 60);

/// What one [`ClientCache::poll`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Polled {
    /// Changes applied.
    pub applied: usize,
    /// Whether any change was to a key row — or changes were lost, so keys
    /// may have changed too.
    pub keys_changed: bool,
    /// Whether the cache was emptied: history it had not applied is gone,
    /// or [`FULL_REVALIDATION`] passed.
    pub flushed: bool,
}

pub struct ClientCache {
    map: RwLock<HashMap<String, Arc<Client>>>,
    unknown: RwLock<HashSet<String>>,
    /// Highest change sequence applied to the cache.
    applied_seq: AtomicI64,
    /// When the Store last answered a poll, in milliseconds since `epoch`
    /// (an atomic, so the hot path takes no lock to check staleness).
    last_ok_ms: AtomicU64,
    epoch: Instant,
    max_stale: Duration,
    /// Clients that authenticated since the last flush (for idle expiry).
    used: Mutex<HashSet<String>>,
    /// When the cache was last emptied, in milliseconds since `epoch`.
    flushed_ms: AtomicU64,
}

impl ClientCache {
    pub fn new(start_seq: i64, max_stale: Duration) -> Self {
        ClientCache {
            map: RwLock::new(HashMap::new()),
            unknown: RwLock::new(HashSet::new()),
            applied_seq: AtomicI64::new(start_seq),
            last_ok_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            max_stale,
            used: Mutex::new(HashSet::new()),
            flushed_ms: AtomicU64::new(0),
        }
    }

    /// Forgets every cached client and every id remembered as unknown.
    fn flush(&self) {
        if let (Ok(mut map), Ok(mut unknown)) = (self.map.write(), self.unknown.write()) {
            map.clear();
            unknown.clear();
        }
        self.flushed_ms.store(self.elapsed_ms(), Ordering::Relaxed);
    }

    fn elapsed_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Time since the Store last answered a poll (since start before the
    /// first poll: the Store answered while the server was built).
    pub fn since_last_poll(&self) -> Duration {
        Duration::from_millis(
            self.elapsed_ms()
                .saturating_sub(self.last_ok_ms.load(Ordering::Relaxed)),
        )
    }

    /// Whether cached clients may no longer be trusted (`max_stale` passed).
    pub fn stale(&self) -> bool {
        self.since_last_poll() > self.max_stale
    }

    /// Looks a client up, from memory when possible. While the Store has been
    /// unreachable for longer than `max_stale`, answers 503 instead of
    /// trusting what may have been deleted meanwhile.
    pub async fn get(&self, store: &dyn Store, id: &str) -> Result<Entry, OAuthError> {
        if self.stale() {
            return Err(OAuthError::store_unavailable());
        }
        if let Some(client) = self.map.read().ok().and_then(|m| m.get(id).cloned()) {
            return Ok(Some(client));
        }
        if self.unknown.read().is_ok_and(|u| u.contains(id)) {
            return Ok(None);
        }
        let seq_before = self.applied_seq.load(Ordering::Acquire);
        let entry = store.get_client(id).await?.map(Arc::new);
        // If a poll applied changes while we read, our row may predate one of
        // them: answer with it but do not cache it.
        if self.applied_seq.load(Ordering::Acquire) == seq_before {
            match &entry {
                Some(client) => {
                    if let Ok(mut map) = self.map.write() {
                        if map.len() >= CLIENT_CACHE_CAPACITY {
                            // Evict one entry rather than every client.
                            if let Some(k) = map.keys().next().cloned() {
                                map.remove(&k);
                            }
                        }
                        map.insert(id.to_string(), client.clone());
                    }
                }
                None => {
                    if let Ok(mut unknown) = self.unknown.write() {
                        if unknown.len() >= UNKNOWN_CAPACITY {
                            unknown.clear();
                        }
                        unknown.insert(id.to_string());
                    }
                }
            }
        }
        Ok(entry)
    }

    /// Applies the Store's changes since the last poll; records success.
    /// Reports whether any change concerned keys, which the caller reloads
    /// (the cache itself holds no keys).
    ///
    /// The change log is pruned (after a day), so a replica cut off for
    /// longer comes back to a log that no longer holds what it missed: the
    /// first change it gets is not the one after its last. It cannot know
    /// what it lost, so it forgets every client (and has the keys reloaded)
    /// rather than serve one deleted meanwhile. A sequence can also skip a
    /// number on its own (a rolled-back insert on PostgreSQL); that costs a
    /// needless flush, never a stale client. Every [`FULL_REVALIDATION`]
    /// the cache is emptied anyway.
    pub async fn poll(&self, store: &dyn Store) -> Result<Polled, StoreError> {
        let mut polled = Polled::default();
        loop {
            let since = self.applied_seq.load(Ordering::Acquire);
            let changes = store.changes_since(since, 1000).await?;
            let (Some(first), Some(last)) = (changes.first(), changes.last()) else {
                break;
            };
            if first.seq > since.saturating_add(1) && !polled.flushed {
                tracing::warn!(
                    applied = since,
                    oldest_remaining = first.seq,
                    "change history this replica had not applied is gone; every cached client is read again"
                );
                self.flush();
                polled.flushed = true;
                polled.keys_changed = true;
            }
            polled.keys_changed |= changes.iter().any(|c| c.entity == KEY_ENTITY);
            if let (Ok(mut map), Ok(mut unknown)) = (self.map.write(), self.unknown.write()) {
                for c in changes.iter().filter(|c| c.entity == CLIENT_ENTITY) {
                    map.remove(&c.entity_id);
                    unknown.remove(&c.entity_id);
                }
                self.applied_seq.store(last.seq, Ordering::Release);
            }
            polled.applied += changes.len();
            if changes.len() < 1000 {
                break;
            }
        }
        let now_ms = self.elapsed_ms();
        let full = FULL_REVALIDATION.as_millis() as u64;
        if !polled.flushed && now_ms.saturating_sub(self.flushed_ms.load(Ordering::Relaxed)) >= full
        {
            self.flush();
            polled.flushed = true;
        }
        self.last_ok_ms.store(now_ms, Ordering::Relaxed);
        Ok(polled)
    }

    pub fn mark_used(&self, id: &str) {
        if let Ok(mut used) = self.used.lock()
            && used.len() < CLIENT_CACHE_CAPACITY
            && !used.contains(id)
        {
            used.insert(id.to_string());
        }
    }

    /// Takes the set of clients used since the last call.
    pub fn take_used(&self) -> Vec<String> {
        self.used
            .lock()
            .map(|mut u| u.drain().collect())
            .unwrap_or_default()
    }
}
