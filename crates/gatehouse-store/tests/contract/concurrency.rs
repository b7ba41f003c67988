//! The Store contract under concurrency: several stores on one database stand
//! in for replicas, so what is checked here is what SQL guarantees, not what
//! one process's locks happen to serialize.

use super::{Backend, client};
use gatehouse_oauth::client::ClientOrigin;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

const WRITERS: usize = 8;
const WRITES_EACH: usize = 25;

/// The trait requires changes numbered in commit order: a reader that moved
/// its cursor past N must never later find a committed change below N. A
/// cache polls exactly like this reader; every change must reach it.
pub async fn changes_from_concurrent_writers_are_never_skipped_by_a_polling_reader(
    backend: Arc<dyn Backend>,
) {
    let replicas = [backend.open().await, backend.open().await];
    let reader = backend.open().await;
    let done = Arc::new(AtomicBool::new(false));

    let poller = {
        let done = done.clone();
        tokio::spawn(async move {
            let mut cursor = 0;
            let mut seen = BTreeSet::new();
            loop {
                // Read `done` before polling: once it is set, every write has
                // committed, so this poll is the final drain.
                let finished = done.load(Ordering::SeqCst);
                loop {
                    let batch = reader.changes_since(cursor, 7).await.unwrap();
                    let Some(last) = batch.last() else { break };
                    cursor = last.seq;
                    seen.extend(batch.iter().map(|c| c.seq));
                }
                if finished {
                    return seen;
                }
                tokio::task::yield_now().await;
            }
        })
    };

    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let store = replicas[w % replicas.len()].clone();
        writers.push(tokio::spawn(async move {
            for i in 0..WRITES_EACH {
                let c = client(&format!("c_{w}_{i}"), ClientOrigin::Dynamic, 1);
                store.insert_client(&c).await.unwrap();
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    done.store(true, Ordering::SeqCst);
    let seen = poller.await.unwrap();

    let all: BTreeSet<i64> = replicas[0]
        .changes_since(0, 10_000)
        .await
        .unwrap()
        .iter()
        .map(|c| c.seq)
        .collect();
    assert_eq!(all.len(), WRITERS * WRITES_EACH);
    let skipped: Vec<_> = all.difference(&seen).collect();
    assert!(
        skipped.is_empty(),
        "the polling reader skipped changes {skipped:?}: numbered out of commit order"
    );
}

/// Of many simultaneous uses of one assertion, through different stores,
/// exactly one is admitted (RFC 7523 §3 item 7 across replicas).
pub async fn concurrent_replays_of_one_assertion_jti_admit_exactly_one(backend: Arc<dyn Backend>) {
    let replicas = [backend.open().await, backend.open().await];
    let mut tasks = Vec::new();
    for n in 0..16 {
        let store = replicas[n % 2].clone();
        tasks.push(tokio::spawn(async move {
            store
                .record_assertion_jti("c_1", "once", i64::MAX)
                .await
                .unwrap()
        }));
    }
    let mut admitted = 0;
    for t in tasks {
        admitted += usize::from(t.await.unwrap());
    }
    assert_eq!(admitted, 1);
}

/// Concurrent revocations of one token are not errors and make one entry.
pub async fn concurrent_revocations_of_one_jti_make_exactly_one_entry(backend: Arc<dyn Backend>) {
    let replicas = [backend.open().await, backend.open().await];
    let mut tasks = Vec::new();
    for n in 0..16 {
        let store = replicas[n % 2].clone();
        tasks.push(tokio::spawn(async move {
            store.revoke_token("j", "c_1", i64::MAX).await.unwrap()
        }));
    }
    let mut made = 0;
    for t in tasks {
        made += usize::from(t.await.unwrap());
    }
    assert_eq!(made, 1);
    assert!(replicas[1].is_revoked("j").await.unwrap());
}

/// Replicas (or an admin command and a server) starting together on a fresh
/// database: each opens its store and migrates at the same moment. Every one
/// must succeed, each migration must be applied once, and migrating again
/// afterwards applies nothing.
pub async fn stores_opened_together_on_a_fresh_database_all_migrate_without_error(
    backend: Arc<dyn Backend>,
) {
    let opens = (0..4).map(|_| {
        let backend = backend.clone();
        tokio::spawn(async move { backend.open().await })
    });
    let mut stores = Vec::new();
    for handle in opens {
        stores.push(handle.await.expect("an open panicked: migrations raced"));
    }
    for store in &stores {
        assert_eq!(store.migrate().await.unwrap(), Vec::<i64>::new());
        store.latest_change().await.unwrap();
    }
    stores[0]
        .insert_client(&client("c_after", ClientOrigin::Cli, 1))
        .await
        .unwrap();
    assert!(stores[3].get_client("c_after").await.unwrap().is_some());
}
