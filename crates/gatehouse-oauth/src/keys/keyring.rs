//! The signing keys in memory, swappable while the server runs, so a
//! rotation reaches every replica without a restart.
//!
//! The token endpoint takes a snapshot ([`KeyRing::snapshot`]: a read lock
//! and an `Arc` clone, no allocation) and signs with its `current` key. The
//! server's upkeep calls [`KeyRing::reload`] when the Store's change sequence
//! shows a key change (new rows are decrypted and parsed once, then cached
//! by id), and [`KeyRing::refresh`] on every tick, which recomputes the
//! states from the rows already held ([`crate::keys::states`]) so that
//! pending → current and previous → retired happen on time on every replica.

use crate::crypto::Kek;
use crate::keys::keyset::{
    KeyLoadError, KeySet, ensure_first_key, new_signing_key, parse_signing_key, store_err, times,
};
use crate::keys::states::{KeyState, automatic_rotation_bound, derive_states, rotation_due};
use crate::keys::{Alg, SigningKey};
use crate::store::{KeyKind, Store, StoredKey};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// The rows last read from the Store and the keys parsed from them.
struct Held {
    rows: Vec<StoredKey>,
    /// Parsed keys by id, so a reload decrypts only rows it has not seen.
    parsed: HashMap<String, Arc<SigningKey>>,
}

pub struct KeyRing {
    kek: Kek,
    signing_alg: Alg,
    /// How long a superseded key stays published, in seconds.
    retention: i64,
    set: RwLock<Arc<KeySet>>,
    held: Mutex<Held>,
    versions: AtomicU64,
}

/// What [`assemble`] picks: the signing key, the current key of each
/// algorithm, and every published key.
struct Assembled {
    current: Arc<SigningKey>,
    currents: Vec<Arc<SigningKey>>,
    published: Vec<Arc<SigningKey>>,
}

/// Builds the published set and picks the signing key at `now`, parsing
/// rows not parsed yet; forgets parsed keys that are no longer published.
fn assemble(
    held: &mut Held,
    kek: &Kek,
    signing_alg: Alg,
    retention: i64,
    now: i64,
) -> Result<Assembled, KeyLoadError> {
    let derived = derive_states(
        &held.rows.iter().map(times).collect::<Vec<_>>(),
        now,
        retention,
    );
    let mut published = Vec::new();
    let mut currents: Vec<Arc<SigningKey>> = Vec::new();
    let mut current = None;
    for (row, d) in held.rows.iter().zip(&derived) {
        if !d.state.published() {
            continue;
        }
        let key = match held.parsed.get(&row.id) {
            Some(k) => k.clone(),
            None => Arc::new(parse_signing_key(kek, row)?),
        };
        if d.state == KeyState::Current {
            if key.alg == signing_alg {
                current = Some(key.clone());
            }
            currents.retain(|k| k.alg != key.alg);
            currents.push(key.clone());
        }
        published.push(key);
    }
    let current = current.ok_or_else(|| {
        KeyLoadError(format!(
            "no {signing_alg} signing key is active: the store holds none, or only pending ones"
        ))
    })?;
    held.parsed = published
        .iter()
        .map(|k| (k.kid.clone(), k.clone()))
        .collect();
    Ok(Assembled {
        current,
        currents,
        published,
    })
}

fn same(set: &KeySet, next: &Assembled) -> bool {
    let (current, published) = (&next.current, &next.published);
    set.current.kid == current.kid
        && set.currents.len() == next.currents.len()
        && set
            .currents
            .iter()
            .zip(&next.currents)
            .all(|(a, b)| a.kid == b.kid)
        && set.published.len() == published.len()
        && set
            .published
            .iter()
            .zip(published)
            .all(|(a, b)| a.kid == b.kid)
}

impl KeyRing {
    /// Loads the signing keys, first creating a key of `signing_alg` and of
    /// each of `also` (active at once) when the store holds none of that
    /// algorithm. `retention` comes from [`crate::keys::states::retention`].
    /// `also` names the algorithms other tokens need: RS256 for ID tokens
    /// (OIDC Core §3.1.3.7: the default when a client registered none).
    pub async fn open(
        store: &dyn Store,
        kek: Kek,
        signing_alg: Alg,
        also: &[Alg],
        retention: i64,
        now: i64,
    ) -> Result<KeyRing, KeyLoadError> {
        let mut rows = Vec::new();
        for alg in std::iter::once(signing_alg).chain(also.iter().copied()) {
            rows = ensure_first_key(store, &kek, KeyKind::Signing, alg.as_str(), now, || {
                let (key, pkcs8) =
                    SigningKey::generate(alg).map_err(|e| KeyLoadError(e.to_string()))?;
                Ok((key.kid.clone(), pkcs8))
            })
            .await?;
        }
        Self::from_rows(rows, kek, signing_alg, retention, now)
    }

    fn from_rows(
        rows: Vec<StoredKey>,
        kek: Kek,
        signing_alg: Alg,
        retention: i64,
        now: i64,
    ) -> Result<KeyRing, KeyLoadError> {
        let mut held = Held {
            rows,
            parsed: HashMap::new(),
        };
        let a = assemble(&mut held, &kek, signing_alg, retention, now)?;
        Ok(KeyRing {
            kek,
            signing_alg,
            retention,
            set: RwLock::new(Arc::new(KeySet {
                version: 1,
                current: a.current,
                currents: a.currents,
                published: a.published,
            })),
            held: Mutex::new(held),
            versions: AtomicU64::new(1),
        })
    }

    /// The key set now: cheap enough for every token request.
    pub fn snapshot(&self) -> Arc<KeySet> {
        match self.set.read() {
            Ok(set) => set.clone(),
            // A panic while swapping cannot leave a half-written Arc.
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn signing_alg(&self) -> Alg {
        self.signing_alg
    }

    /// Seconds a superseded key stays published.
    pub fn retention(&self) -> i64 {
        self.retention
    }

    /// Re-reads the rows from the Store (after a key change) and recomputes
    /// the set. On error the set in use is kept. Returns whether it changed.
    /// Called from one upkeep task, never concurrently.
    pub async fn reload(&self, store: &dyn Store, now: i64) -> Result<bool, KeyLoadError> {
        let rows = store.keys(KeyKind::Signing).await.map_err(store_err)?;
        self.recompute(Some(rows), now)
    }

    /// The embedded gateway's session key, sealed in the Store under the
    /// same key-encryption key ([`crate::keys::keyset::load_gateway_session_key`]).
    pub async fn gateway_session_key(
        &self,
        store: &dyn Store,
        now: i64,
    ) -> Result<Vec<u8>, KeyLoadError> {
        crate::keys::keyset::load_gateway_session_key(store, &self.kek, now).await
    }

    /// Recomputes the states of the rows held at `now` (no Store access).
    /// Returns whether the set changed.
    pub fn refresh(&self, now: i64) -> Result<bool, KeyLoadError> {
        self.recompute(None, now)
    }

    fn recompute(&self, rows: Option<Vec<StoredKey>>, now: i64) -> Result<bool, KeyLoadError> {
        let mut held = self
            .held
            .lock()
            .map_err(|_| KeyLoadError("key ring lock poisoned".into()))?;
        let mut next = Held {
            rows: rows.unwrap_or_else(|| held.rows.clone()),
            parsed: held.parsed.clone(),
        };
        let a = assemble(&mut next, &self.kek, self.signing_alg, self.retention, now)?;
        *held = next;
        let old = self.snapshot();
        if same(&old, &a) {
            return Ok(false);
        }
        let version = self.versions.fetch_add(1, Ordering::Relaxed) + 1;
        let set = Arc::new(KeySet {
            version,
            current: a.current,
            currents: a.currents,
            published: a.published,
        });
        match self.set.write() {
            Ok(mut slot) => *slot = set,
            Err(poisoned) => *poisoned.into_inner() = set,
        }
        Ok(true)
    }

    /// Ids of the rows held that are retired at `now`: nothing may verify
    /// with them any more, so their private material should be deleted.
    pub fn retired(&self, now: i64) -> Vec<String> {
        let Ok(held) = self.held.lock() else {
            return Vec::new();
        };
        let derived = derive_states(
            &held.rows.iter().map(times).collect::<Vec<_>>(),
            now,
            self.retention,
        );
        held.rows
            .iter()
            .zip(&derived)
            .filter(|(_, d)| d.state == KeyState::Retired)
            .map(|(r, _)| r.id.clone())
            .collect()
    }

    /// The automatic schedule (`[keys] rotate_every`): for the signing
    /// algorithm and every other algorithm that has keys, adds a key that
    /// activates `pre_publication` from now when none activates after
    /// `now - rotate_every + pre_publication`. The insert repeats that
    /// condition atomically in the Store, so replicas racing here add one
    /// key. Returns the kids added by this replica.
    pub async fn rotate_if_due(
        &self,
        store: &dyn Store,
        now: i64,
        rotate_every: Duration,
        pre_publication: Duration,
    ) -> Result<Vec<String>, KeyLoadError> {
        let bound = automatic_rotation_bound(now, rotate_every, pre_publication);
        let due: Vec<Alg> = {
            let held = self
                .held
                .lock()
                .map_err(|_| KeyLoadError("key ring lock poisoned".into()))?;
            let mut algs: Vec<Alg> = held
                .rows
                .iter()
                .filter_map(|r| r.alg.parse().ok())
                .collect();
            algs.push(self.signing_alg);
            algs.sort_by_key(|a| a.as_str());
            algs.dedup();
            algs.into_iter()
                .filter(|alg| {
                    let of_alg = held.rows.iter().filter(|r| r.alg == alg.as_str());
                    rotation_due(of_alg.map(|r| r.activate_at), bound)
                })
                .collect()
        };
        let mut added = Vec::new();
        let activate_at = now.saturating_add(secs(pre_publication));
        for alg in due {
            let row = new_signing_key(&self.kek, alg, now, activate_at)?;
            if store
                .insert_key_unless_newer(&row, bound)
                .await
                .map_err(store_err)?
            {
                added.push(row.id);
            }
        }
        Ok(added)
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kek() -> Kek {
        Kek::from_bytes(&[7u8; 32]).unwrap()
    }

    fn kids(set: &KeySet) -> Vec<String> {
        set.published.iter().map(|k| k.kid.clone()).collect()
    }

    #[test]
    fn the_ring_follows_a_rotation_by_the_clock_alone_and_parses_each_key_once() {
        let kek = kek();
        let a = new_signing_key(&kek, Alg::ES256, 0, 100).unwrap();
        let b = new_signing_key(&kek, Alg::ES256, 500, 1000).unwrap();
        let rows = vec![a.clone(), b.clone()];
        let ring = KeyRing::from_rows(rows, kek, Alg::ES256, 960, 500).unwrap();
        let before = ring.snapshot();
        assert_eq!(before.current.kid, a.id, "b is pending");
        assert_eq!(kids(&before), [a.id.clone(), b.id.clone()]);

        assert!(!ring.refresh(999).unwrap(), "nothing changed yet");
        assert_eq!(ring.snapshot().version, before.version);

        assert!(ring.refresh(1000).unwrap());
        let after = ring.snapshot();
        assert_eq!(after.current.kid, b.id);
        assert_eq!(kids(&after), [a.id.clone(), b.id.clone()], "a is previous");
        assert!(after.version > before.version);
        assert!(
            Arc::ptr_eq(&before.published[1], &after.published[1]),
            "a key is parsed once and reused"
        );
        assert!(ring.retired(1959).is_empty());

        assert!(ring.refresh(1960).unwrap());
        assert_eq!(
            kids(&ring.snapshot()),
            std::slice::from_ref(&b.id),
            "a is retired"
        );
        assert_eq!(ring.retired(1960), std::slice::from_ref(&a.id));
    }

    #[test]
    fn a_row_that_does_not_open_keeps_the_set_in_use() {
        let a = new_signing_key(&kek(), Alg::ES256, 0, 0).unwrap();
        let other = Kek::from_bytes(&[9u8; 32]).unwrap();
        let foreign = new_signing_key(&other, Alg::ES256, 10, 10).unwrap();
        let ring = KeyRing::from_rows(vec![a.clone()], kek(), Alg::ES256, 960, 5).unwrap();
        let err = ring
            .recompute(Some(vec![a.clone(), foreign]), 20)
            .unwrap_err();
        assert!(err.0.contains("cannot be decrypted"), "{err}");
        assert_eq!(ring.snapshot().current.kid, a.id);
        assert_eq!(ring.snapshot().published.len(), 1);
    }

    #[test]
    fn without_an_active_key_of_the_signing_algorithm_there_is_no_ring() {
        let rs = new_signing_key(&kek(), Alg::RS256, 0, 0).unwrap();
        let pending = new_signing_key(&kek(), Alg::ES256, 0, 100).unwrap();
        let err = KeyRing::from_rows(vec![rs, pending], kek(), Alg::ES256, 960, 50)
            .err()
            .unwrap();
        assert!(err.0.contains("no ES256 signing key is active"), "{err}");
    }
}
