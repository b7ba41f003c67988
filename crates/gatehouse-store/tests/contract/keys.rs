//! The Store contract for key rows: the conditional insert that replicas
//! rotate signing keys with, its change entries, and deletion.

use super::Backend;
use gatehouse_oauth::store::{KeyKind, StoredKey};
use std::sync::Arc;

fn key(id: &str, alg: &str, activate_at: i64) -> StoredKey {
    StoredKey {
        id: id.into(),
        kind: KeyKind::Signing,
        alg: alg.into(),
        sealed: vec![1, 2, 3],
        created_at: activate_at - 1,
        activate_at,
    }
}

fn ids(keys: &[StoredKey]) -> Vec<&str> {
    keys.iter().map(|k| k.id.as_str()).collect()
}

pub async fn a_key_is_inserted_only_while_no_key_of_its_kind_and_algorithm_activates_later(
    backend: Arc<dyn Backend>,
) {
    let store = backend.open().await;
    // First start: unless any key of the kind and algorithm exists.
    assert!(
        store
            .insert_key_unless_newer(&key("k1", "ES256", 100), i64::MIN)
            .await
            .unwrap()
    );
    assert!(
        !store
            .insert_key_unless_newer(&key("k2", "ES256", 100), i64::MIN)
            .await
            .unwrap()
    );
    // Other algorithms and kinds are separate groups.
    assert!(
        store
            .insert_key_unless_newer(&key("r1", "RS256", 100), i64::MIN)
            .await
            .unwrap()
    );
    let hmac = StoredKey {
        kind: KeyKind::SecretHmac,
        alg: String::new(),
        ..key("h1", "", 100)
    };
    assert!(
        store
            .insert_key_unless_newer(&hmac, i64::MIN)
            .await
            .unwrap()
    );
    // A rotation at 500: no key activates after 500, so it goes in …
    assert!(
        store
            .insert_key_unless_newer(&key("k3", "ES256", 1000), 500)
            .await
            .unwrap()
    );
    // … and a second one is refused while k3 is pending,
    assert!(
        !store
            .insert_key_unless_newer(&key("k4", "ES256", 1100), 500)
            .await
            .unwrap()
    );
    // but accepted once the bound passes k3's activation.
    assert!(
        store
            .insert_key_unless_newer(&key("k5", "ES256", 2000), 1000)
            .await
            .unwrap()
    );
    // The same id twice is a no-op, not an error.
    assert!(
        !store
            .insert_key_unless_newer(&key("k5", "EdDSA", 1), i64::MIN)
            .await
            .unwrap()
    );
    let signing = store.keys(KeyKind::Signing).await.unwrap();
    assert_eq!(ids(&signing), ["k1", "r1", "k3", "k5"]);
    assert_eq!(signing[2], key("k3", "ES256", 1000), "round trip");
    assert_eq!(ids(&store.keys(KeyKind::SecretHmac).await.unwrap()), ["h1"]);
    // The gateway's session key is a kind of its own, read back as such.
    let session = StoredKey {
        kind: KeyKind::GatewaySession,
        alg: String::new(),
        ..key("g1", "", 100)
    };
    assert!(
        store
            .insert_key_unless_newer(&session, i64::MIN)
            .await
            .unwrap()
    );
    let sessions = store.keys(KeyKind::GatewaySession).await.unwrap();
    assert_eq!(ids(&sessions), ["g1"]);
    assert_eq!(sessions[0].kind, KeyKind::GatewaySession);
}

pub async fn every_key_insert_and_delete_records_a_key_change_and_failed_ones_none(
    backend: Arc<dyn Backend>,
) {
    let store = backend.open().await;
    let start = store.latest_change().await.unwrap();
    assert!(
        store
            .insert_key_unless_newer(&key("k1", "ES256", 100), i64::MIN)
            .await
            .unwrap()
    );
    assert!(
        !store
            .insert_key_unless_newer(&key("k2", "ES256", 100), i64::MIN)
            .await
            .unwrap()
    );
    assert!(store.delete_key("k1").await.unwrap());
    assert!(!store.delete_key("k1").await.unwrap());
    let changes = store.changes_since(start, 100).await.unwrap();
    let seen: Vec<_> = changes
        .iter()
        .map(|c| (c.entity.as_str(), c.entity_id.as_str()))
        .collect();
    assert_eq!(seen, [("key", "k1"), ("key", "k1")]);
}

pub async fn keys_are_listed_in_order_of_activation(backend: Arc<dyn Backend>) {
    let store = backend.open().await;
    // `newer_than = i64::MAX`: unconditional, so the rows go in out of order.
    for (id, at) in [("c", 300), ("a", 100), ("b", 200)] {
        assert!(
            store
                .insert_key_unless_newer(&key(id, "ES256", at), i64::MAX)
                .await
                .unwrap()
        );
    }
    let all = store.keys(KeyKind::Signing).await.unwrap();
    assert_eq!(ids(&all), ["a", "b", "c"]);
}

pub async fn a_deleted_key_is_gone_for_every_connection_and_deleting_twice_is_false(
    backend: Arc<dyn Backend>,
) {
    let (a, b) = (backend.open().await, backend.open().await);
    assert!(
        a.insert_key_unless_newer(&key("k1", "ES256", 1), i64::MIN)
            .await
            .unwrap()
    );
    assert!(
        a.insert_key_unless_newer(&key("k2", "ES256", 2), 1)
            .await
            .unwrap()
    );
    assert!(b.delete_key("k1").await.unwrap());
    assert!(!a.delete_key("k1").await.unwrap());
    assert_eq!(ids(&a.keys(KeyKind::Signing).await.unwrap()), ["k2"]);
}

/// Replicas whose upkeep finds a rotation due at the same moment race the
/// same conditional insert, each with its own new key: exactly one wins,
/// and only the winner's change is recorded.
pub async fn concurrent_rotations_past_one_bound_insert_exactly_one_key(backend: Arc<dyn Backend>) {
    let replicas = [
        backend.open().await,
        backend.open().await,
        backend.open().await,
    ];
    assert!(
        replicas[0]
            .insert_key_unless_newer(&key("k0", "ES256", 100), i64::MIN)
            .await
            .unwrap()
    );
    let start = replicas[0].latest_change().await.unwrap();
    let winners = race(&replicas, |n| (key(&format!("k{n}"), "ES256", 1000), 500)).await;
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    let rows = replicas[1].keys(KeyKind::Signing).await.unwrap();
    assert_eq!(ids(&rows), ["k0", winners[0].as_str()]);
    let changes = replicas[2].changes_since(start, 100).await.unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].entity_id, winners[0]);
}

/// Replicas starting together on an empty store each try to create the
/// first key: exactly one does.
pub async fn concurrent_first_starts_insert_exactly_one_key(backend: Arc<dyn Backend>) {
    let replicas = [backend.open().await, backend.open().await];
    let winners = race(&replicas, |n| {
        (key(&format!("k{n}"), "ES256", 100), i64::MIN)
    })
    .await;
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    assert_eq!(replicas[1].keys(KeyKind::Signing).await.unwrap().len(), 1);
}

/// Runs 12 inserts at once, spread over `replicas`; returns the ids inserted.
async fn race(
    replicas: &[Arc<dyn gatehouse_oauth::store::Store>],
    make: impl Fn(usize) -> (StoredKey, i64),
) -> Vec<String> {
    let barrier = Arc::new(tokio::sync::Barrier::new(12));
    let mut tasks = Vec::new();
    for n in 0..12 {
        let store = replicas[n % replicas.len()].clone();
        let (row, bound) = make(n + 1);
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let won = store.insert_key_unless_newer(&row, bound).await.unwrap();
            won.then_some(row.id)
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        winners.extend(t.await.unwrap());
    }
    winners
}
