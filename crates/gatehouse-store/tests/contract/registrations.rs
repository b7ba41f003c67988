//! The Store contract for self-registered clients: the per-address cap
//! (checked and enforced in the insert itself, also against racing
//! replicas) and the expiry of registrations that were never used.

use super::{Backend, client};
use gatehouse_oauth::client::ClientOrigin;
use gatehouse_oauth::error::StoreError;
use gatehouse_oauth::store::{Admission, RegistrationCaps};
use std::sync::Arc;

const A: &str = "192.0.2.1";
const B: &str = "2001:db8:1:2::";

/// Caps with no total limit to speak of.
fn per_address(n: u64) -> RegistrationCaps {
    RegistrationCaps {
        total: 1_000_000,
        per_address: n,
    }
}

pub async fn a_registration_over_its_address_cap_stores_nothing_and_records_no_change(
    backend: Arc<dyn Backend>,
) {
    let store = backend.open().await;
    let reg = |id: &str| client(id, ClientOrigin::Dynamic, 100);
    let insert = |id: &str, address: &'static str, caps: RegistrationCaps| {
        let (store, c) = (store.clone(), reg(id));
        async move { store.insert_registered_client(&c, address, caps).await }
    };
    assert_eq!(
        insert("c_a1", A, per_address(2)).await.unwrap(),
        Admission::Stored
    );
    assert_eq!(
        insert("c_a2", A, per_address(2)).await.unwrap(),
        Admission::Stored
    );
    let seq = store.latest_change().await.unwrap();
    assert_eq!(
        insert("c_a3", A, per_address(2)).await.unwrap(),
        Admission::AddressCapReached
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
    assert_eq!(
        insert("c_b1", B, per_address(2)).await.unwrap(),
        Admission::Stored
    );
    store.insert_client(&reg("c_plain")).await.unwrap();
    // An existing id is still a conflict, not a refusal.
    assert!(matches!(
        insert("c_b1", B, per_address(2)).await,
        Err(StoreError::Conflict(_))
    ));
    // Deleting one frees its place; 0 means no cap.
    assert!(store.delete_client("c_a1").await.unwrap());
    assert_eq!(
        insert("c_a4", A, per_address(2)).await.unwrap(),
        Admission::Stored
    );
    assert_eq!(
        insert("c_a5", A, per_address(2)).await.unwrap(),
        Admission::AddressCapReached
    );
    for i in 0..5 {
        let id = format!("c_u{i}");
        assert_eq!(
            insert(&id, A, per_address(0)).await.unwrap(),
            Admission::Stored
        );
    }
    // c_a2, c_a4, c_b1, c_plain and the five uncapped ones.
    assert_eq!(store.count_clients(ClientOrigin::Dynamic).await.unwrap(), 9);
    // The total counts every self-registered client, whatever its address
    // (operator clients count for none); it wins over a free address.
    let total = |n| RegistrationCaps {
        total: n,
        per_address: 0,
    };
    let seq = store.latest_change().await.unwrap();
    assert_eq!(
        insert("c_t1", B, total(9)).await.unwrap(),
        Admission::TotalCapReached
    );
    assert_eq!(store.get_client("c_t1").await.unwrap(), None);
    assert_eq!(store.latest_change().await.unwrap(), seq);
    assert_eq!(
        insert("c_t2", B, total(10)).await.unwrap(),
        Admission::Stored
    );
    assert_eq!(
        insert("c_t3", "198.51.100.7", total(10)).await.unwrap(),
        Admission::TotalCapReached
    );
    assert_eq!(
        store.count_clients(ClientOrigin::Dynamic).await.unwrap(),
        10
    );
}

/// Many registrations at once, through several stores (replicas): exactly
/// the cap are stored, the others are refused — per address, and in total
/// from many addresses.
pub async fn parallel_registrations_store_exactly_the_cap(backend: Arc<dyn Backend>) {
    const CAP: u64 = 5;
    let replicas = [
        backend.open().await,
        backend.open().await,
        backend.open().await,
        backend.open().await,
    ];
    let race = |prefix: &'static str, caps: RegistrationCaps, distinct_addresses: bool| {
        let replicas = replicas.clone();
        async move {
            let mut tasks = Vec::new();
            for i in 0..(4 * CAP as usize) {
                let store = replicas[i % replicas.len()].clone();
                tasks.push(tokio::spawn(async move {
                    let c = client(&format!("{prefix}{i}"), ClientOrigin::Dynamic, 100);
                    let address = if distinct_addresses {
                        format!("198.51.100.{i}")
                    } else {
                        A.to_string()
                    };
                    store
                        .insert_registered_client(&c, &address, caps)
                        .await
                        .unwrap()
                }));
            }
            let mut outcomes = Vec::new();
            for t in tasks {
                outcomes.push(t.await.unwrap());
            }
            outcomes
        }
    };
    let outcomes = race("c_race_", per_address(CAP), false).await;
    let stored = outcomes.iter().filter(|a| **a == Admission::Stored).count() as u64;
    assert_eq!(stored, CAP, "{outcomes:?}");
    assert!(
        outcomes
            .iter()
            .all(|a| matches!(a, Admission::Stored | Admission::AddressCapReached))
    );
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

    // The total, from twenty addresses at once: CAP more, then full.
    let caps = RegistrationCaps {
        total: 2 * CAP,
        per_address: CAP,
    };
    let outcomes = race("c_many_", caps, true).await;
    let stored = outcomes.iter().filter(|a| **a == Admission::Stored).count() as u64;
    assert_eq!(stored, CAP, "{outcomes:?}");
    assert!(
        outcomes
            .iter()
            .all(|a| matches!(a, Admission::Stored | Admission::TotalCapReached))
    );
    assert_eq!(
        replicas[0]
            .count_clients(ClientOrigin::Dynamic)
            .await
            .unwrap(),
        2 * CAP
    );
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
            .insert_registered_client(&client(id, origin, created), A, per_address(0))
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
