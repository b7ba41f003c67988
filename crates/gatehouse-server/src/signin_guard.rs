//! Sign-in brute-force protection: exponential backoff per account name and
//! per client address ([`crate::client_addr`]), in memory (each replica counts its own; an attacker
//! spreading guesses over replicas gains at most the replica count).
//!
//! Names are counted whether or not an account exists, so the backoff says
//! nothing about which names are real. Every attempt is counted before the
//! password is checked; a success clears the name's count and takes back
//! only its own attempt from the address's (one good password must not
//! reset a guessing run from the same place against other accounts).
//!
//! An attempt from a browser that has signed in as that account before (its
//! device cookie, `people.rs`) is *exempt* from the name's count: it is
//! neither held back by it nor counted in it, so guessing a person's
//! password from elsewhere cannot lock her out of her own browser. It is
//! counted under that device cookie instead, so a copied cookie buys no
//! unlimited guesses from many addresses. The address's count applies to
//! every attempt.
//!
//! The table is bounded ([`crate::lru_table`], `limits.limiter_capacity`
//! keys): when full, the key that failed least recently is forgotten, so a
//! flood of new names and addresses never makes everyone else wait.

use crate::client_addr::ClientAddr;
use crate::lru_table::{LruTable, Shard};
use std::time::{Duration, Instant};

/// Failures allowed before any wait, per account name and per address.
const FREE_PER_NAME: u32 = 3;
const FREE_PER_ADDRESS: u32 = 10;
/// Failures allowed before any wait for one device cookie (its MAC): its
/// owner typing, from wherever the cookie travels.
const FREE_PER_DEVICE: u32 = 10;
/// The longest wait, and how long a quiet key is remembered.
const MAX_WAIT: Duration = Duration::from_secs(15 * 60);

struct Entry {
    failures: u32,
    last: Instant,
}

pub struct SigninGuard {
    /// One shard: an attempt checks and counts its keys under one lock.
    entries: LruTable<String, Entry>,
}

/// Names are counted as typed only when they could be an account's name
/// (bounded, `[a-z0-9._@-]`); anything else shares one key, so junk names
/// cannot grow the table by kilobytes each.
fn name_key(name: &str) -> String {
    let name = name.to_ascii_lowercase();
    if gatehouse_oauth::people::accounts::validate_user_name(&name).is_ok() {
        format!("n:{name}")
    } else {
        "n:".to_string()
    }
}

fn address_key(addr: ClientAddr) -> String {
    format!("a:{}", addr.rate_key())
}

/// A device cookie by its MAC (base64url, bounded by the cookie's size cap).
fn device_key(tag: &str) -> String {
    format!("d:{tag}")
}

/// The wait after `failures` failures of which `free` cost nothing:
/// 1 s, 2 s, 4 s, … up to [`MAX_WAIT`].
fn wait_for(failures: u32, free: u32) -> Duration {
    if failures < free {
        return Duration::ZERO;
    }
    let doublings = (failures - free).min(10);
    Duration::from_secs(1u64 << doublings).min(MAX_WAIT)
}

/// The keys an attempt counts under: the address always; the name, or —
/// for an attempt from a browser holding that account's device cookie (its
/// MAC, `device`) — that cookie instead.
fn keys(ip: ClientAddr, name: &str, device: Option<&str>) -> Vec<(String, u32)> {
    let mut keys = vec![(address_key(ip), FREE_PER_ADDRESS)];
    match device {
        Some(tag) => keys.push((device_key(tag), FREE_PER_DEVICE)),
        None => keys.push((name_key(name), FREE_PER_NAME)),
    }
    keys
}

/// The longest wait any of `keys` still imposes at `now`.
fn wait_in(entries: &Shard<String, Entry>, keys: &[(String, u32)], now: Instant) -> Duration {
    keys.iter()
        .filter_map(|(key, free)| {
            let e = entries.get(key)?;
            Some((e.last + wait_for(e.failures, *free)).saturating_duration_since(now))
        })
        .max()
        .unwrap_or(Duration::ZERO)
}

fn quiet(e: &Entry, now: Instant) -> bool {
    now.duration_since(e.last) >= MAX_WAIT
}

impl SigninGuard {
    /// A guard tracking at most `capacity` keys.
    pub fn new(capacity: usize) -> Self {
        SigninGuard {
            entries: LruTable::new(capacity, 1),
        }
    }

    /// How long an attempt on these keys must still wait (zero: none).
    fn remaining(&self, keys: &[(String, u32)], now: Instant) -> Duration {
        let Some((first, _)) = keys.first() else {
            return Duration::ZERO;
        };
        wait_in(&self.entries.lock(first), keys, now)
    }

    /// How long an attempt must still wait, without counting it: checked
    /// before queueing for a password-check slot, so refused attempts do
    /// not take one. `device`: the attempt carries that account's device
    /// cookie (its MAC) and is held back by it instead of by the name.
    pub fn wait(&self, ip: ClientAddr, name: &str, device: Option<&str>) -> Option<Duration> {
        Some(self.remaining(&keys(ip, name, device), Instant::now())).filter(|d| !d.is_zero())
    }

    /// Starts an attempt: refused with the time left to wait, or counted
    /// as a failure *before* the password is checked, so that parallel
    /// guesses cannot all slip in ahead of their own failures. A success
    /// then takes it back ([`SigninGuard::succeeded`]). An attempt with a
    /// `device` cookie is held back by and counted under that cookie, not
    /// the name.
    pub fn begin(&self, ip: ClientAddr, name: &str, device: Option<&str>) -> Result<(), Duration> {
        let now = Instant::now();
        let keys = keys(ip, name, device);
        let address = address_key(ip);
        // One shard: the check and the counts below happen under one lock.
        let mut entries = self.entries.lock(&address);
        let wait = wait_in(&entries, &keys, now);
        if !wait.is_zero() {
            return Err(wait);
        }
        for (key, _) in keys {
            // A key quiet for the longest wait starts over.
            let failures = entries
                .get(&key)
                .filter(|e| !quiet(e, now))
                .map_or(0, |e| e.failures);
            entries.put(
                key,
                Entry {
                    failures: failures.saturating_add(1),
                    last: now,
                },
                |e| quiet(e, now),
            );
        }
        Ok(())
    }

    /// A successful sign-in clears the name's count (or, with a `device`
    /// cookie, that cookie's) and takes back the address's count for this
    /// attempt. A success through the device cookie leaves the name's count
    /// alone: it was made by other browsers (perhaps someone guessing right
    /// now), and the person signing in at home must not hand them a fresh
    /// set of free guesses.
    pub fn succeeded(&self, ip: ClientAddr, name: &str, device: Option<&str>) {
        let address = address_key(ip);
        let mut entries = self.entries.lock(&address);
        match device {
            Some(tag) => entries.remove(&device_key(tag)),
            None => entries.remove(&name_key(name)),
        };
        if let Some(e) = entries.get_mut(&address) {
            e.failures = e.failures.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_after_the_free_failures() {
        assert_eq!(wait_for(2, 3), Duration::ZERO);
        assert_eq!(wait_for(3, 3), Duration::from_secs(1));
        assert_eq!(wait_for(5, 3), Duration::from_secs(4));
        assert_eq!(wait_for(40, 3), MAX_WAIT);
    }

    fn addr(s: &str) -> ClientAddr {
        ClientAddr(s.parse().unwrap())
    }

    #[test]
    fn a_name_is_held_back_after_three_failures_whoever_tries_it() {
        let g = SigninGuard::new(100_000);
        let ip = addr("192.0.2.1");
        let other = addr("192.0.2.2");
        for _ in 0..3 {
            assert!(g.begin(ip, "alice", None).is_ok());
        }
        assert!(
            g.begin(other, "Alice", None).is_err(),
            "per name, any address"
        );
        assert!(g.wait(other, "alice", None).is_some());
        assert!(g.begin(other, "bob", None).is_ok());
        g.succeeded(other, "alice", None);
        assert!(g.begin(other, "alice", None).is_ok());
    }

    #[test]
    fn an_exempt_attempt_skips_the_name_but_not_the_address() {
        let g = SigninGuard::new(100_000);
        let attacker = addr("192.0.2.66");
        let home = addr("198.51.100.7");
        for _ in 0..3 {
            assert!(g.begin(attacker, "alice", None).is_ok());
        }
        assert!(g.wait(home, "alice", None).is_some());
        assert!(g.wait(home, "alice", Some("tag")).is_none());
        // An exempt success does not clear the others' count.
        g.succeeded(home, "alice", Some("tag"));
        assert!(g.wait(attacker, "alice", None).is_some());
        // Exempt failures are not counted on the name either...
        for _ in 0..10 {
            assert!(g.begin(home, "alice", Some("tag")).is_ok());
        }
        // ...but the address's are: the eleventh waits.
        assert!(g.begin(home, "alice", Some("tag")).is_err());
        assert!(g.wait(home, "alice", Some("tag")).is_some());
    }

    /// A copied device cookie buys no unlimited guesses: its failures are
    /// counted under the cookie, from whatever address, and after ten it
    /// waits like a name does. Another cookie, and the name, are untouched.
    #[test]
    fn failures_with_a_device_cookie_are_counted_under_it_wherever_they_come_from() {
        let g = SigninGuard::new(100_000);
        for i in 0..10u8 {
            let a = ClientAddr(std::net::IpAddr::from([203, 0, 113, i]));
            assert!(g.begin(a, "alice", Some("stolen")).is_ok(), "{i}");
        }
        let fresh = addr("198.51.100.200");
        assert!(g.begin(fresh, "alice", Some("stolen")).is_err());
        assert!(g.wait(fresh, "alice", Some("stolen")).is_some());
        assert!(g.wait(fresh, "alice", Some("hers")).is_none());
        assert!(
            g.wait(fresh, "alice", None).is_none(),
            "the name is not counted"
        );
        // Her success with her own cookie clears her cookie's count only.
        g.succeeded(fresh, "alice", Some("hers"));
        assert!(g.wait(fresh, "alice", Some("stolen")).is_some());
    }

    #[test]
    fn a_full_table_forgets_the_least_recently_failed_keys_and_refuses_no_one() {
        let g = SigninGuard::new(64);
        for _ in 0..3 {
            assert!(g.begin(addr("192.0.2.1"), "alice", None).is_ok());
        }
        assert!(g.wait(addr("192.0.2.2"), "alice", None).is_some());
        // A flood of new names from new addresses: each new one goes ahead.
        for i in 0..1000u32 {
            let a = ClientAddr(std::net::IpAddr::from((0x0a00_0000 + i).to_be_bytes()));
            assert!(g.begin(a, &format!("n{i}"), None).is_ok(), "{i}");
        }
        assert!(g.entries.len() <= 64);
        // Alice's count was the oldest: forgotten, not a wait for everyone.
        assert!(g.wait(addr("192.0.2.2"), "alice", None).is_none());
    }

    #[test]
    fn names_that_cannot_be_accounts_share_one_key() {
        assert_eq!(name_key(&"x".repeat(4000)), name_key("<script>"));
        assert_eq!(name_key("Alice"), "n:alice");
    }
}
