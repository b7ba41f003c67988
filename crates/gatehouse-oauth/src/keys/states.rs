//! The life of a signing key, derived from the clock alone (docs/decisions.md
//! "Keys, secrets and identifiers"): no coordinator and no status column, so
//! every replica that reads the same rows at the same time agrees on which key
//! signs and which keys the JWKS publishes, and transitions happen on time
//! everywhere without anyone writing to the store.
//!
//! Within one algorithm, each key row carries `activate_at`:
//! - **pending**: `activate_at` is in the future. Published in the JWKS (so
//!   resource servers' caches learn it, RFC 7517 §5) but signs nothing yet.
//! - **current**: the newest key whose `activate_at` has passed. Signs.
//! - **previous**: superseded at `S`, the `activate_at` of the next key, and
//!   still within `S + retention`. Tokens it signed may still be live, so it
//!   stays published.
//! - **retired**: `S + retention` has passed. Every token it signed has
//!   expired (also on the slowest clock that may still accept it), so it is no
//!   longer published and its row — private material — can be deleted.
//!
//! `retention` is [`retention`]: the longest access token lifetime any
//! replica may be configured with, plus [`KEY_RETENTION_MARGIN_SECS`].

use crate::settings::MAX_ACCESS_TOKEN_TTL;
use serde::Serialize;
use std::time::Duration;

/// Added to the token lifetime before a superseded key is retired: the
/// leeway a verifier may allow (the gateway's is at most 60 s), clock skew
/// between replicas, and the time a replica that has not yet recomputed its
/// states (its upkeep waiting on a slow store) may still sign with the old
/// key.
pub const KEY_RETENTION_MARGIN_SECS: i64 = 300;

/// How long a superseded key stays published, in seconds: the *largest*
/// access token lifetime any replica may be configured with
/// ([`MAX_ACCESS_TOKEN_TTL`], 24 h), not this replica's own. Retirement
/// deletes the row for every replica, so a replica with a shorter
/// `access_token_ttl` — or one that just lowered it — must never retire a key
/// another replica's tokens still need. A superseded public key published a
/// day longer costs nothing.
pub fn retention() -> i64 {
    i64::try_from(MAX_ACCESS_TOKEN_TTL.as_secs())
        .unwrap_or(i64::MAX)
        .saturating_add(KEY_RETENTION_MARGIN_SECS)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    Pending,
    Current,
    Previous,
    Retired,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Pending => "pending",
            KeyState::Current => "current",
            KeyState::Previous => "previous",
            KeyState::Retired => "retired",
        }
    }

    /// Whether the JWKS publishes a key in this state.
    pub fn published(self) -> bool {
        self != KeyState::Retired
    }
}

/// What the derivation needs to know about one key row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyTimes<'a> {
    pub id: &'a str,
    pub alg: &'a str,
    pub created_at: i64,
    pub activate_at: i64,
}

/// One key's state at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Derived {
    pub state: KeyState,
    /// When the next key took over signing (its `activate_at`): set for
    /// previous and retired keys.
    pub superseded_at: Option<i64>,
    /// `superseded_at + retention`: when the key stops being published.
    pub retire_at: Option<i64>,
}

/// The state of every key at `now`, in the order of `keys`. Keys are grouped
/// by algorithm; within a group they are ordered by `activate_at`, then
/// `created_at`, then id, so a tie is broken the same way on every replica.
pub fn derive_states(keys: &[KeyTimes<'_>], now: i64, retention: i64) -> Vec<Derived> {
    let mut out = vec![
        Derived {
            state: KeyState::Pending,
            superseded_at: None,
            retire_at: None,
        };
        keys.len()
    ];
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_by(|&a, &b| {
        let (a, b) = (&keys[a], &keys[b]);
        (a.alg, a.activate_at, a.created_at, a.id).cmp(&(b.alg, b.activate_at, b.created_at, b.id))
    });
    for (pos, &i) in order.iter().enumerate() {
        let key = &keys[i];
        if key.activate_at > now {
            continue; // pending, as initialised
        }
        // Sorted by activation within the algorithm: the next activated key
        // of the same algorithm, if any, is the immediate successor.
        let successor = order
            .get(pos + 1)
            .map(|&j| &keys[j])
            .filter(|next| next.alg == key.alg && next.activate_at <= now);
        out[i] = match successor {
            None => Derived {
                state: KeyState::Current,
                superseded_at: None,
                retire_at: None,
            },
            Some(next) => {
                let retire_at = next.activate_at.saturating_add(retention);
                Derived {
                    state: if now < retire_at {
                        KeyState::Previous
                    } else {
                        KeyState::Retired
                    },
                    superseded_at: Some(next.activate_at),
                    retire_at: Some(retire_at),
                }
            }
        };
    }
    out
}

/// The `newer_than` bound of an automatic rotation (`[keys] rotate_every`):
/// a new key is due when no key of the algorithm activates after
/// `now - rotate_every + pre_publication`. The new key activates at
/// `now + pre_publication`, hence `rotate_every` after its predecessor.
pub fn automatic_rotation_bound(
    now: i64,
    rotate_every: Duration,
    pre_publication: Duration,
) -> i64 {
    now.saturating_sub(secs(rotate_every))
        .saturating_add(secs(pre_publication))
}

/// Whether an automatic rotation is due for keys of one algorithm.
pub fn rotation_due(activations: impl IntoIterator<Item = i64>, bound: i64) -> bool {
    activations.into_iter().all(|a| a <= bound)
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const R: i64 = 960; // a 15 minute token lifetime + the margin

    fn k(id: &'static str, alg: &'static str, activate_at: i64) -> KeyTimes<'static> {
        KeyTimes {
            id,
            alg,
            created_at: activate_at - 10,
            activate_at,
        }
    }

    fn states(keys: &[KeyTimes<'_>], now: i64) -> Vec<KeyState> {
        derive_states(keys, now, R)
            .iter()
            .map(|d| d.state)
            .collect()
    }

    use KeyState::*;

    #[test]
    fn retention_is_the_longest_token_lifetime_plus_the_margin_whatever_this_replicas_ttl() {
        assert_eq!(retention(), 86_400 + 300);
    }

    #[test]
    fn a_single_key_is_pending_until_its_activation_then_current_forever() {
        let keys = [k("a", "ES256", 100)];
        assert_eq!(states(&keys, 99), [Pending]);
        assert_eq!(states(&keys, 100), [Current]);
        assert_eq!(states(&keys, i64::MAX), [Current]);
        assert_eq!(derive_states(&keys, 100, R)[0].retire_at, None);
    }

    #[test]
    fn a_rotation_walks_through_every_transition_on_time() {
        // `a` signs from 100; `b` is published at 500 and signs from 1000.
        let keys = [k("a", "ES256", 100), k("b", "ES256", 1000)];
        assert_eq!(states(&keys, 500), [Current, Pending]);
        assert_eq!(states(&keys, 999), [Current, Pending]);
        assert_eq!(states(&keys, 1000), [Previous, Current]);
        assert_eq!(states(&keys, 1000 + R - 1), [Previous, Current]);
        assert_eq!(states(&keys, 1000 + R), [Retired, Current]);
        let d = derive_states(&keys, 1000, R)[0];
        assert_eq!(d.superseded_at, Some(1000));
        assert_eq!(d.retire_at, Some(1000 + R));
    }

    #[test]
    fn the_order_of_the_rows_does_not_matter() {
        let keys = [k("b", "ES256", 1000), k("a", "ES256", 100)];
        assert_eq!(states(&keys, 1000), [Current, Previous]);
    }

    #[test]
    fn algorithms_rotate_independently() {
        let keys = [
            k("e1", "ES256", 100),
            k("r1", "RS256", 50),
            k("e2", "ES256", 1000),
            k("d1", "EdDSA", 2000),
        ];
        assert_eq!(states(&keys, 500), [Current, Current, Pending, Pending]);
        assert_eq!(states(&keys, 1000), [Previous, Current, Current, Pending]);
        assert_eq!(
            states(&keys, 1000 + R),
            [Retired, Current, Current, Pending]
        );
        assert_eq!(states(&keys, 5000), [Retired, Current, Current, Current]);
    }

    #[test]
    fn with_two_pending_keys_each_takes_over_in_turn() {
        let keys = [
            k("a", "ES256", 100),
            k("b", "ES256", 1000),
            k("c", "ES256", 2000),
        ];
        assert_eq!(states(&keys, 500), [Current, Pending, Pending]);
        assert_eq!(states(&keys, 1500), [Previous, Current, Pending]);
        // `a` was superseded by `b` at 1000, not by `c`.
        assert_eq!(states(&keys, 2000), [Retired, Previous, Current]);
        let d = derive_states(&keys, 2000, R);
        assert_eq!(d[0].retire_at, Some(1000 + R));
        assert_eq!(d[1].retire_at, Some(2000 + R));
        assert_eq!(states(&keys, 2000 + R), [Retired, Retired, Current]);
    }

    #[test]
    fn a_key_superseded_within_the_retention_of_its_predecessor_keeps_both_published() {
        let keys = [
            k("a", "ES256", 100),
            k("b", "ES256", 200),
            k("c", "ES256", 300),
        ];
        assert_eq!(states(&keys, 300), [Previous, Previous, Current]);
        assert_eq!(states(&keys, 200 + R), [Retired, Previous, Current]);
    }

    #[test]
    fn ties_on_activation_are_broken_by_creation_then_id_alike_everywhere() {
        let mut a = k("a", "ES256", 100);
        let mut b = k("b", "ES256", 100);
        a.created_at = 5;
        b.created_at = 5;
        assert_eq!(states(&[a, b], 100), [Previous, Current]);
        assert_eq!(states(&[b, a], 100), [Current, Previous]);
        a.created_at = 6;
        assert_eq!(states(&[a, b], 100), [Current, Previous]);
    }

    #[test]
    fn no_keys_no_states() {
        assert!(derive_states(&[], 0, R).is_empty());
    }

    #[test]
    fn an_automatic_rotation_is_due_rotate_every_after_the_newest_activation() {
        let every = Duration::from_secs(86_400);
        let pre = Duration::from_secs(3600);
        // The newest key activated at 0: the next must activate at 86 400,
        // so it is created at 86 400 - 3600.
        let due_at = 86_400 - 3600;
        assert!(!rotation_due(
            [0],
            automatic_rotation_bound(due_at - 1, every, pre)
        ));
        assert!(rotation_due(
            [0],
            automatic_rotation_bound(due_at, every, pre)
        ));
        // A pending key (activating at 86 400) makes the next one not due.
        let later = automatic_rotation_bound(due_at + 10, every, pre);
        assert!(!rotation_due([0, 86_400], later));
        assert!(rotation_due([], later), "no key at all: due");
    }
}
