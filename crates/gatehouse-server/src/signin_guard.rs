//! Sign-in brute-force protection: exponential backoff per account name and
//! per client address ([`crate::client_addr`]), in memory (each replica counts its own; an attacker
//! spreading guesses over replicas gains at most the replica count).
//!
//! Names are counted whether or not an account exists, so the backoff says
//! nothing about which names are real. Every attempt is counted before the
//! password is checked; a success clears the name's count and takes back
//! only its own attempt from the address's (one good password must not
//! reset a guessing run from the same place against other accounts).

use crate::client_addr::ClientAddr;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures allowed before any wait, per account name and per address.
const FREE_PER_NAME: u32 = 3;
const FREE_PER_ADDRESS: u32 = 10;
/// The longest wait, and how long a quiet key is remembered.
const MAX_WAIT: Duration = Duration::from_secs(15 * 60);
/// Keys tracked at once; beyond this, new keys wait (fail closed).
const CAPACITY: usize = 100_000;
/// A full table is swept of quiet keys at most this often.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

struct Entry {
    failures: u32,
    last: Instant,
}

pub struct SigninGuard {
    entries: Mutex<Entries>,
}

struct Entries {
    map: HashMap<String, Entry>,
    last_sweep: Instant,
}

impl Default for SigninGuard {
    fn default() -> Self {
        SigninGuard {
            entries: Mutex::new(Entries {
                map: HashMap::new(),
                last_sweep: Instant::now(),
            }),
        }
    }
}

/// Names are counted as typed only when they could be an account's name
/// (bounded, `[a-z0-9._@-]`); anything else shares one key, so junk names
/// cannot grow the table by kilobytes each.
fn name_key(name: &str) -> String {
    let name = name.to_ascii_lowercase();
    if gatehouse_oauth::people::validate_user_name(&name).is_ok() {
        format!("n:{name}")
    } else {
        "n:".to_string()
    }
}

fn address_key(addr: ClientAddr) -> String {
    format!("a:{}", addr.rate_key())
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

fn keys(ip: ClientAddr, name: &str) -> [(String, u32); 2] {
    [
        (name_key(name), FREE_PER_NAME),
        (address_key(ip), FREE_PER_ADDRESS),
    ]
}

impl Entries {
    /// How long an attempt on these keys must still wait (zero: none).
    fn remaining(&self, keys: &[(String, u32)], now: Instant) -> Duration {
        let mut wait = Duration::ZERO;
        for (key, free) in keys {
            match self.map.get(key) {
                Some(e) => {
                    let until = e.last + wait_for(e.failures, *free);
                    wait = wait.max(until.saturating_duration_since(now));
                }
                // Full: a key that cannot be tracked waits (fail closed).
                None if self.map.len() >= CAPACITY => wait = MAX_WAIT,
                None => {}
            }
        }
        wait
    }
}

impl SigninGuard {
    /// How long an attempt must still wait, without counting it: checked
    /// before queueing for a password-check slot, so refused attempts do
    /// not take one.
    pub fn wait(&self, ip: ClientAddr, name: &str) -> Option<Duration> {
        let Ok(entries) = self.entries.lock() else {
            return Some(MAX_WAIT);
        };
        Some(entries.remaining(&keys(ip, name), Instant::now())).filter(|d| !d.is_zero())
    }

    /// Starts an attempt: refused with the time left to wait, or counted
    /// as a failure *before* the password is checked, so that parallel
    /// guesses cannot all slip in ahead of their own failures. A success
    /// then takes it back ([`SigninGuard::succeeded`]).
    pub fn begin(&self, ip: ClientAddr, name: &str) -> Result<(), Duration> {
        let Ok(mut entries) = self.entries.lock() else {
            return Err(MAX_WAIT);
        };
        let now = Instant::now();
        if entries.map.len() >= CAPACITY && now.duration_since(entries.last_sweep) > SWEEP_EVERY {
            entries
                .map
                .retain(|_, e| now.duration_since(e.last) < MAX_WAIT);
            entries.last_sweep = now;
        }
        let keys = keys(ip, name);
        let wait = entries.remaining(&keys, now);
        if !wait.is_zero() {
            return Err(wait);
        }
        for (key, _) in keys {
            let e = entries.map.entry(key).or_insert(Entry {
                failures: 0,
                last: now,
            });
            // A key quiet for the longest wait starts over.
            if now.duration_since(e.last) >= MAX_WAIT {
                e.failures = 0;
            }
            e.failures += 1;
            e.last = now;
        }
        Ok(())
    }

    /// A successful sign-in clears the name's count and takes back the
    /// address's count for this attempt.
    pub fn succeeded(&self, ip: ClientAddr, name: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.map.remove(&name_key(name));
            if let Some(e) = entries.map.get_mut(&address_key(ip)) {
                e.failures = e.failures.saturating_sub(1);
            }
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

    #[test]
    fn a_name_is_held_back_after_three_failures_whoever_tries_it() {
        let g = SigninGuard::default();
        let ip = ClientAddr("192.0.2.1".parse().unwrap());
        let other = ClientAddr("192.0.2.2".parse().unwrap());
        for _ in 0..3 {
            assert!(g.begin(ip, "alice").is_ok());
        }
        assert!(g.begin(other, "Alice").is_err(), "per name, any address");
        assert!(g.begin(other, "bob").is_ok());
        g.succeeded(other, "alice");
        assert!(g.begin(other, "alice").is_ok());
    }

    #[test]
    fn names_that_cannot_be_accounts_share_one_key() {
        assert_eq!(name_key(&"x".repeat(4000)), name_key("<script>"));
        assert_eq!(name_key("Alice"), "n:alice");
    }
}
