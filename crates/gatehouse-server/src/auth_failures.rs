//! Backoff after failed client authentication at the token, revocation and
//! introspection endpoints (docs/operations.md "Limits per
//! client address").
//!
//! Only failures count — a success never does, so a busy client is never
//! slowed by its own traffic. They are counted per client address and per
//! (address, client id), never per client id alone: that would let anyone
//! lock a client out by failing in its name. After the free failures of a
//! key, each further failure doubles the wait (1 s, 2 s, 4 s, … up to
//! `max_backoff`); a request from a key that must still wait is refused
//! before its credentials are looked at. A key quiet for `max_backoff`
//! starts over.
//!
//! In memory, per replica, in a bounded table ([`crate::lru_table`]): when
//! it is full, the entry that failed least recently is forgotten (a flood of
//! new addresses can only push out old entries; new addresses are never
//! refused for lack of room).

use crate::client_addr::ClientAddr;
use crate::lru_table::LruTable;
use gatehouse_oauth::settings::FailureLimits;
use std::net::IpAddr;
use std::time::{Duration, Instant};

const SHARDS: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Address(IpAddr),
    /// A client id is kept as presented only when it could be one
    /// (`plausible_client_id`: at most 64 bytes of `[A-Za-z0-9._-]`); any
    /// other string counts under the empty id, so junk cannot grow entries.
    Client(IpAddr, String),
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    last: Instant,
}

pub struct AuthFailures {
    limits: FailureLimits,
    /// Failures per key, from least to most recently failed.
    table: LruTable<Key, Entry>,
}

/// How long a key with `failures` failures, `free` of them free, waits
/// after its last one.
fn wait_for(failures: u32, free: u32, max: Duration) -> Duration {
    if failures < free {
        return Duration::ZERO;
    }
    // 2^30 s is far beyond any sane maximum; the cap applies first.
    let doublings = (failures - free).min(30);
    Duration::from_secs(1u64 << doublings).min(max)
}

fn client_key(addr: ClientAddr, client_id: &str) -> Key {
    let id = if gatehouse_oauth::client::plausible_client_id(client_id) {
        client_id.to_string()
    } else {
        String::new()
    };
    Key::Client(addr.rate_key(), id)
}

impl AuthFailures {
    /// A table of at most `capacity` keys (`limits.limiter_capacity`).
    pub fn new(limits: FailureLimits, capacity: usize) -> Self {
        AuthFailures {
            limits,
            table: LruTable::new(capacity, SHARDS),
        }
    }

    fn free(&self, key: &Key) -> u32 {
        match key {
            Key::Address(_) => self.limits.free_per_address,
            Key::Client(..) => self.limits.free_per_address_client,
        }
    }

    fn remaining(&self, key: &Key, now: Instant) -> Duration {
        match self.table.lock(key).get(key) {
            Some(e) => (e.last + wait_for(e.failures, self.free(key), self.limits.max_backoff))
                .saturating_duration_since(now),
            None => Duration::ZERO,
        }
    }

    /// How long requests from this address must still wait (`None`: they
    /// may go ahead). Checked before the request body is read.
    pub fn address_wait(&self, addr: ClientAddr) -> Option<Duration> {
        let d = self.remaining(&Key::Address(addr.rate_key()), Instant::now());
        (!d.is_zero()).then_some(d)
    }

    /// How long this address must still wait before authenticating as
    /// `client_id` (`None`: it may go ahead).
    pub fn client_wait(&self, addr: ClientAddr, client_id: &str) -> Option<Duration> {
        let d = self.remaining(&client_key(addr, client_id), Instant::now());
        (!d.is_zero()).then_some(d)
    }

    /// Counts a failed client authentication from `addr`, as `client_id`
    /// when the request named one. Returns whether a key just used up its
    /// free failures (worth one log line).
    pub fn failed(&self, addr: ClientAddr, client_id: Option<&str>) -> bool {
        let now = Instant::now();
        let mut started = false;
        let keys = [
            Some(Key::Address(addr.rate_key())),
            client_id.map(|id| client_key(addr, id)),
        ];
        for key in keys.into_iter().flatten() {
            let free = self.free(&key);
            let max = self.limits.max_backoff;
            let mut shard = self.table.lock(&key);
            // A key quiet for the longest wait starts over.
            let previous = shard
                .get(&key)
                .filter(|e| now.duration_since(e.last) < max)
                .map_or(0, |e| e.failures);
            let failures = previous.saturating_add(1);
            // The wait begins with the failure that uses up the free ones.
            started |= failures == free.max(1);
            // The most recently failed; quiet entries at the old end go first.
            shard.put(
                key,
                Entry {
                    failures,
                    last: now,
                },
                |e| now.duration_since(e.last) >= max,
            );
        }
        started
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: FailureLimits = FailureLimits {
        free_per_address: 10,
        free_per_address_client: 5,
        max_backoff: Duration::from_secs(900),
    };

    fn addr(s: &str) -> ClientAddr {
        ClientAddr(s.parse().unwrap())
    }

    #[test]
    fn waits_double_after_the_free_failures_up_to_the_maximum() {
        let max = Duration::from_secs(900);
        assert_eq!(wait_for(4, 5, max), Duration::ZERO);
        assert_eq!(wait_for(5, 5, max), Duration::from_secs(1));
        assert_eq!(wait_for(7, 5, max), Duration::from_secs(4));
        assert_eq!(wait_for(u32::MAX, 5, max), max);
    }

    #[test]
    fn failures_on_a_client_id_hold_back_that_address_only() {
        let f = AuthFailures::new(LIMITS, 100_000);
        let attacker = addr("192.0.2.66");
        let victim = addr("198.51.100.7");
        for _ in 0..5 {
            assert!(f.client_wait(attacker, "c_victim").is_none());
            f.failed(attacker, Some("c_victim"));
        }
        assert!(f.client_wait(attacker, "c_victim").is_some());
        assert!(f.address_wait(attacker).is_none(), "5 of 10 free");
        assert!(f.client_wait(victim, "c_victim").is_none());
        assert!(f.address_wait(victim).is_none());
    }

    #[test]
    fn an_address_failing_as_many_clients_is_held_back_for_all_of_them() {
        let f = AuthFailures::new(LIMITS, 100_000);
        let a = addr("2001:db8:1:2::1");
        for i in 0..10 {
            f.failed(a, Some(&format!("c_{i}")));
        }
        // Another address in the same /64 shares the count.
        assert!(f.address_wait(addr("2001:db8:1:2::99")).is_some());
        assert!(f.address_wait(addr("2001:db8:1:3::1")).is_none());
    }

    #[test]
    fn a_full_table_forgets_the_least_recently_failed_entry() {
        let f = AuthFailures::new(LIMITS, SHARDS);
        let first = addr("192.0.2.1");
        for _ in 0..12 {
            f.failed(first, None);
        }
        assert!(f.address_wait(first).is_some());
        // Room for one entry per shard: many new addresses push it out,
        // and every new address is tracked (none is refused for room).
        for i in 0..200u32 {
            f.failed(ClientAddr(IpAddr::from(i.to_be_bytes())), None);
        }
        assert!(f.address_wait(first).is_none());
        assert!(f.table.len() <= SHARDS, "{}", f.table.len());
    }

    #[test]
    fn junk_client_ids_share_one_key() {
        assert_eq!(
            client_key(addr("192.0.2.1"), &"x".repeat(500)),
            client_key(addr("192.0.2.1"), "<script>")
        );
    }
}
