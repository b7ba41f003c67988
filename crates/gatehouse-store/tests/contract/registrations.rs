//! The Store contract for self-registered clients: the per-address cap
//! (checked and enforced in the insert itself, also against racing
//! replicas) and the expiry of registrations that were never used.

use super::{Backend, client};
use gatehouse_oauth::client::ClientOrigin;
use gatehouse_oauth::error::StoreError;
use std::sync::Arc;

const A: &str = "192.0.2.1";
const B: &str = "2001:db8:1:2::";

pub async fn a_registration_over_its_address_cap_stores_nothing_and_records_no_change(
    backend: Arc<dyn Backend>,
) {
    let store = backend.open().await;
    let reg = |id: &str| client(id, ClientOrigin::Dynamic, 100);
    assert!(
        store
            .insert_registered_client(&reg("c_a1"), A, 2)
            .await
            .unwrap()
    );
    assert!(
        store
            .insert_registered_client(&reg("c_a2"), A, 2)
            .await
            .unwrap()
    );
    let seq = store.latest_change().await.unwrap();
    assert!(
        !store
            .insert_registered_client(&reg("c_a3"), A, 2)
            .await
            .unwrap()
    );
    assert_eq!(
        store.get_client("c_a3").await.unwrap(),
        None,
        "nothing stored"
    );
    assert_eq!(
        store.latest_change().await.unwrap(),
        seq,
        "no change recorded"
    );
    // Another address has its own count; clients without one count for none.
    assert!(
        store
            .insert_registered_client(&reg("c_b1"), B, 2)
            .await
            .unwrap()
    );
    store.insert_client(&reg("c_plain")).await.unwrap();
    // An existing id is still a conflict, not a refusal.
    assert!(matches!(
        store.insert_registered_client(&reg("c_b1"), B, 2).await,
        Err(StoreError::Conflict(_))
    ));
    // Deleting one frees its place; 0 means no cap.
    assert!(store.delete_client("c_a1").await.unwrap());
    assert!(
        store
            .insert_registered_client(&reg("c_a4"), A, 2)
            .await
            .unwrap()
    );
    assert!(
        !store
            .insert_registered_client(&reg("c_a5"), A, 2)
            .await
            .unwrap()
    );
    for i in 0..5 {
        let id = format!("c_u{i}");
        assert!(
            store
                .insert_registered_client(&reg(&id), A, 0)
                .await
                .unwrap()
        );
    }
    // c_a2, c_a4, c_b1, c_plain and the five uncapped ones.
    assert_eq!(store.count_clients(ClientOrigin::Dynamic).await.unwrap(), 9);
}

/// Many registrations from one address at once, through several stores
/// (replicas): exactly the cap are stored, the others are refused.
pub async fn parallel_registrations_from_one_address_store_exactly_the_cap(
    backend: Arc<dyn Backend>,
) {
    const CAP: u64 = 5;
    let replicas = [
        backend.open().await,
        backend.open().await,
        backend.open().await,
        backend.open().await,
    ];
    let mut tasks = Vec::new();
    for i in 0..(4 * CAP as usize) {
        let store = replicas[i % replicas.len()].clone();
        tasks.push(tokio::spawn(async move {
            let c = client(&format!("c_race_{i}"), ClientOrigin::Dynamic, 100);
            store.insert_registered_client(&c, A, CAP).await.unwrap()
        }));
    }
    let mut admitted = 0;
    for t in tasks {
        admitted += u64::from(t.await.unwrap());
    }
    assert_eq!(admitted, CAP);
    assert_eq!(
        replicas[0]
            .count_clients(ClientOrigin::Dynamic)
            .await
            .unwrap(),
        CAP,
        "exactly the cap is stored"
    );
    let changes = replicas[0].changes_since(0, 100).await.unwrap();
    assert_eq!(changes.len() as u64, CAP, "one change per stored client");
}

pub async fn never_used_self_registered_clients_are_deleted_after_the_unused_expiry(
    backend: Arc<dyn Backend>,
) {
    let store = backend.open().await;
    for (id, origin, created) in [
        ("c_unused", ClientOrigin::Dynamic, 100),
        ("c_used", ClientOrigin::Dynamic, 100),
        ("c_recent", ClientOrigin::Dynamic, 1_000),
        ("cli.unused", ClientOrigin::Cli, 100),
    ] {
        store
            .insert_registered_client(&client(id, origin, created), A, 0)
            .await
            .unwrap();
    }
    store.touch_clients(&["c_used".into()], 150).await.unwrap();
    let seq = store.latest_change().await.unwrap();
    let deleted = store
        .delete_unused_clients(ClientOrigin::Dynamic, 500)
        .await
        .unwrap();
    assert_eq!(deleted, 1);
    assert!(store.get_client("c_unused").await.unwrap().is_none());
    for kept in ["c_used", "c_recent", "cli.unused"] {
        assert!(store.get_client(kept).await.unwrap().is_some(), "{kept}");
    }
    // Caches learn of the deletion like of any other.
    let changes = store.changes_since(seq, 10).await.unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].entity_id, "c_unused");
}
