//! The one bounded table behind every per-address limiter (registration,
//! sign-in, failed client authentication): docs/operations.md "Limits
//! per client address".
//!
//! Entries are kept in the order they were last stored, least recent first
//! (`hashlink::LinkedHashMap`). A table that is full never refuses a new key
//! — that would let a flood of new addresses lock everyone out — it forgets
//! its least recently stored entry instead. Entries that no longer hold
//! anything back (a wait that has passed, a refilled budget) are dropped
//! first, from the old end, as new ones arrive, so no sweeper is needed and
//! memory stays at most `capacity` entries.
//!
//! The table is split into shards by key so that concurrent requests rarely
//! wait for each other's lock; a user that must see several keys at once
//! (the sign-in guard) uses one shard.

use hashlink::LinkedHashMap;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub(crate) struct LruTable<K, V> {
    shards: Vec<Mutex<Shard<K, V>>>,
    hasher: RandomState,
}

/// One shard: at most `capacity` entries, least recently stored first.
pub(crate) struct Shard<K, V> {
    map: LinkedHashMap<K, V>,
    capacity: usize,
}

impl<K: Hash + Eq, V> Shard<K, V> {
    pub(crate) fn get(&self, key: &K) -> Option<&V> {
        self.map.get(key)
    }

    /// Changes an entry in place, without making it more recent.
    pub(crate) fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        self.map.get_mut(key)
    }

    pub(crate) fn remove(&mut self, key: &K) -> Option<V> {
        self.map.remove(key)
    }

    /// Stores `value` under `key` as the most recent entry (replacing any
    /// entry of that key). First the oldest entries for which `forgettable`
    /// holds are dropped, then — while the shard is still full — the oldest
    /// entries whatever they hold.
    pub(crate) fn put(&mut self, key: K, value: V, forgettable: impl Fn(&V) -> bool) {
        self.map.remove(&key);
        while self.map.front().is_some_and(|(_, v)| forgettable(v)) {
            self.map.pop_front();
        }
        while self.map.len() >= self.capacity {
            self.map.pop_front();
        }
        self.map.insert(key, value);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

impl<K: Hash + Eq, V> LruTable<K, V> {
    /// A table of at most `capacity` entries (at least one per shard) in
    /// `shards` shards.
    pub(crate) fn new(capacity: usize, shards: usize) -> Self {
        let shards = shards.max(1);
        let per_shard = capacity.div_ceil(shards).max(1);
        LruTable {
            shards: (0..shards)
                .map(|_| {
                    Mutex::new(Shard {
                        map: LinkedHashMap::new(),
                        capacity: per_shard,
                    })
                })
                .collect(),
            hasher: RandomState::new(),
        }
    }

    /// The shard holding `key`, locked. A poisoned lock only means another
    /// request panicked mid-update; the entries are still usable.
    pub(crate) fn lock(&self, key: &K) -> MutexGuard<'_, Shard<K, V>> {
        let i = (self.hasher.hash_one(key) as usize) % self.shards.len();
        self.shards[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Entries held, over all shards.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }
}

/// A rate per key: `per_minute` a minute, in bursts of up to as many — a
/// token bucket per key kept as the key's next free time (GCRA), in an
/// [`LruTable`] of at most `capacity` keys. When full, the key that used it
/// least recently is forgotten, so a flood of new keys never refuses
/// everyone else; keys whose budget has refilled are dropped first.
pub(crate) struct RateBudget<K> {
    /// Time one request uses up.
    interval: Duration,
    /// How far ahead of now a key's budget may be spent.
    burst: Duration,
    pub(crate) table: LruTable<K, Instant>,
}

impl<K: Hash + Eq> RateBudget<K> {
    pub(crate) fn new(per_minute: u32, capacity: usize) -> Self {
        let per_minute = per_minute.max(1);
        RateBudget {
            interval: Duration::from_secs(60) / per_minute,
            burst: Duration::from_secs(60),
            table: LruTable::new(capacity, 16),
        }
    }

    /// Counts one more request for `key` if it fits the budget; otherwise
    /// counts nothing and says how long until one would fit.
    pub(crate) fn take(&self, key: K) -> Result<(), Duration> {
        let now = Instant::now();
        let mut shard = self.table.lock(&key);
        let next = shard.get(&key).map_or(now, |t| (*t).max(now)) + self.interval;
        let ahead = next.saturating_duration_since(now);
        if ahead > self.burst {
            return Err(ahead - self.burst);
        }
        shard.put(key, next, |t| *t <= now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_table_forgets_its_oldest_entry_and_forgettable_ones_first() {
        let t: LruTable<u32, bool> = LruTable::new(3, 1);
        for k in 0..3 {
            t.lock(&k).put(k, false, |v| *v);
        }
        // Full: the next key pushes out the oldest (0).
        t.lock(&3).put(3, false, |v| *v);
        assert!(t.lock(&0).get(&0).is_none());
        assert_eq!(t.len(), 3);
        // Storing again makes a key the most recent: 1 survives, 2 goes.
        t.lock(&1).put(1, false, |v| *v);
        t.lock(&4).put(4, false, |v| *v);
        assert!(t.lock(&1).get(&1).is_some());
        assert!(t.lock(&2).get(&2).is_none());
        // A forgettable entry at the old end is dropped before room is
        // needed.
        let f: LruTable<u32, bool> = LruTable::new(3, 1);
        f.lock(&0).put(0, true, |v| *v);
        f.lock(&1).put(1, false, |v| *v);
        f.lock(&2).put(2, false, |v| *v);
        assert!(f.lock(&0).get(&0).is_none());
        assert_eq!(f.len(), 2);
        let many: LruTable<u32, ()> = LruTable::new(64, 16);
        for k in 0..10_000 {
            many.lock(&k).put(k, (), |_| false);
        }
        assert!(many.len() <= 64, "{}", many.len());
        assert!(
            many.lock(&9_999).get(&9_999).is_some(),
            "the newest is kept"
        );
    }
}
