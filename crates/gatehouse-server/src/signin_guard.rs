//! Sign-in brute-force protection: exponential backoff per account name and
//! per source address, in memory (each replica counts its own; an attacker
//! spreading guesses over replicas gains at most the replica count).
//!
//! Names are counted whether or not an account exists, so the backoff says
//! nothing about which names are real. A success clears the name's count,
//! never the address's (one good password must not reset a guessing run
//! from the same place against other accounts).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures allowed before any wait, per account name and per address.
const FREE_PER_NAME: u32 = 3;
const FREE_PER_ADDRESS: u32 = 10;
/// The longest wait, and how long a quiet key is remembered.
const MAX_WAIT: Duration = Duration::from_secs(15 * 60);
/// Keys tracked at once; beyond this, new keys wait (fail closed).
const CAPACITY: usize = 100_000;

struct Entry {
    failures: u32,
    last: Instant,
}

#[derive(Default)]
pub struct SigninGuard {
    entries: Mutex<HashMap<String, Entry>>,
}

fn name_key(name: &str) -> String {
    format!("n:{}", name.to_ascii_lowercase())
}

fn address_key(ip: IpAddr) -> String {
    format!("a:{}", crate::register::rate_key(ip))
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

impl SigninGuard {
    /// How long this attempt must still wait, if at all.
    pub fn wait(&self, ip: IpAddr, name: &str) -> Option<Duration> {
        let Ok(entries) = self.entries.lock() else {
            return Some(MAX_WAIT);
        };
        let now = Instant::now();
        let remaining = |key: String, free: u32| {
            entries.get(&key).and_then(|e| {
                let until = e.last + wait_for(e.failures, free);
                until.checked_duration_since(now)
            })
        };
        let a = remaining(name_key(name), FREE_PER_NAME);
        let b = remaining(address_key(ip), FREE_PER_ADDRESS);
        a.max(b).filter(|d| !d.is_zero())
    }

    /// Counts a failed attempt against the name and the address.
    pub fn failed(&self, ip: IpAddr, name: &str) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        let now = Instant::now();
        if entries.len() >= CAPACITY {
            entries.retain(|_, e| now.duration_since(e.last) < MAX_WAIT);
        }
        for key in [name_key(name), address_key(ip)] {
            if entries.len() >= CAPACITY && !entries.contains_key(&key) {
                continue;
            }
            let e = entries.entry(key).or_insert(Entry {
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
    }

    /// A successful sign-in clears the name's count.
    pub fn succeeded(&self, name: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(&name_key(name));
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
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..3 {
            assert!(g.wait(ip, "alice").is_none());
            g.failed(ip, "alice");
        }
        assert!(g.wait(other, "Alice").is_some(), "per name, any address");
        assert!(g.wait(other, "bob").is_none());
        g.succeeded("alice");
        assert!(g.wait(other, "alice").is_none());
    }
}
