//! The Store contract: records, revisions, revocations, assertion jtis.

use super::{Backend, client};
use gatehouse_oauth::client::{ClientOrigin, StoredSecret};
use gatehouse_oauth::error::StoreError;
use std::sync::Arc;

pub async fn clients_round_trip_and_every_write_records_a_change(backend: Arc<dyn Backend>) {
    let store = backend.open().await;
    assert_eq!(store.latest_change().await.unwrap(), 0);

    let c = client("c_1", ClientOrigin::Cli, 100);
    store.insert_client(&c).await.unwrap();
    assert_eq!(store.get_client("c_1").await.unwrap(), Some(c.clone()));
    assert!(matches!(
        store.insert_client(&c).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.list_clients().await.unwrap().len(), 1);
    assert_eq!(store.count_clients(ClientOrigin::Cli).await.unwrap(), 1);
    assert_eq!(store.count_clients(ClientOrigin::Dynamic).await.unwrap(), 0);

    assert!(store.delete_client("c_1").await.unwrap());
    assert!(!store.delete_client("c_1").await.unwrap());
    assert_eq!(store.get_client("c_1").await.unwrap(), None);

    let changes = store.changes_since(0, 100).await.unwrap();
    let ids: Vec<_> = changes.iter().map(|c| c.entity_id.as_str()).collect();
    assert_eq!(
        ids,
        ["c_1", "c_1"],
        "insert and delete, not the failed ones"
    );
    assert!(changes[0].seq < changes[1].seq);
    assert_eq!(
        store
            .changes_since(changes[0].seq, 100)
            .await
            .unwrap()
            .len(),
        1
    );
}

pub async fn update_client_writes_only_over_the_revision_it_read_and_records_a_change(
    backend: Arc<dyn Backend>,
) {
    let store = backend.open().await;
    let mut c = client("c_u", ClientOrigin::Dynamic, 100);
    c.registration_token = Some(StoredSecret {
        key_id: "h_1".into(),
        hash: "dG9rZW4".into(),
        created_at: 100,
        expires_at: None,
    });
    store.insert_client(&c).await.unwrap();
    let before = store.latest_change().await.unwrap();

    let mut next = c.clone();
    next.metadata.client_name = Some("renamed".into());
    next.secrets[0].expires_at = Some(200);
    assert!(store.update_client(&next).await.unwrap());
    let stored = store.get_client("c_u").await.unwrap().unwrap();
    assert_eq!(stored.metadata.client_name.as_deref(), Some("renamed"));
    assert_eq!(stored.secrets[0].expires_at, Some(200));
    assert_eq!(stored.registration_token, c.registration_token);
    assert_eq!(stored.revision, 1);
    let changes = store.changes_since(before, 10).await.unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].entity_id, "c_u");

    // A writer holding the old revision loses, and changes nothing.
    let mut stale = c.clone();
    stale.metadata.client_name = Some("stale".into());
    assert!(!store.update_client(&stale).await.unwrap());
    let unchanged = store.get_client("c_u").await.unwrap().unwrap();
    assert_eq!(unchanged, stored);
    // So does an update of a client that does not exist.
    assert!(
        !store
            .update_client(&client("c_none", ClientOrigin::Cli, 1))
            .await
            .unwrap()
    );
    assert_eq!(store.changes_since(before, 10).await.unwrap().len(), 1);
}

pub async fn idle_self_registered_clients_are_deleted_and_used_ones_kept(
    backend: Arc<dyn Backend>,
) {
    let store = backend.open().await;
    store
        .insert_client(&client("c_old", ClientOrigin::Dynamic, 100))
        .await
        .unwrap();
    store
        .insert_client(&client("c_used", ClientOrigin::Dynamic, 100))
        .await
        .unwrap();
    store
        .insert_client(&client("cli.old", ClientOrigin::Cli, 100))
        .await
        .unwrap();
    store
        .touch_clients(&["c_used".into()], 1_000)
        .await
        .unwrap();
    let deleted = store
        .delete_idle_clients(ClientOrigin::Dynamic, 500)
        .await
        .unwrap();
    assert_eq!(deleted, 1);
    assert!(store.get_client("c_old").await.unwrap().is_none());
    assert!(store.get_client("c_used").await.unwrap().is_some());
    assert!(
        store.get_client("cli.old").await.unwrap().is_some(),
        "operator clients never expire"
    );
}

pub async fn reopening_the_database_keeps_everything(backend: Arc<dyn Backend>) {
    {
        let store = backend.open().await;
        store
            .insert_client(&client("c_keep", ClientOrigin::Cli, 5))
            .await
            .unwrap();
    }
    let store = backend.open().await;
    assert!(store.get_client("c_keep").await.unwrap().is_some());
}

pub async fn a_revoked_jti_is_revoked_until_pruned_after_its_expiry_and_revoking_twice_keeps_one_row(
    backend: Arc<dyn Backend>,
) {
    let store = backend.open().await;
    assert!(!store.is_revoked("j1").await.unwrap());
    assert!(store.revoke_token("j1", "c_1", 1_000).await.unwrap());
    assert!(
        !store.revoke_token("j1", "c_1", 1_000).await.unwrap(),
        "revoking twice is not an error and makes no second entry"
    );
    assert!(store.revoke_token("j2", "c_2", 2_000).await.unwrap());
    assert!(store.is_revoked("j1").await.unwrap());
    assert!(store.is_revoked("j2").await.unwrap());
    assert!(!store.is_revoked("j3").await.unwrap());
    let changes_before = store.latest_change().await.unwrap();

    assert_eq!(store.prune_revocations(999).await.unwrap(), 0);
    assert!(store.is_revoked("j1").await.unwrap(), "not yet expired");
    assert_eq!(store.prune_revocations(1_000).await.unwrap(), 1);
    assert!(!store.is_revoked("j1").await.unwrap());
    assert!(
        store.is_revoked("j2").await.unwrap(),
        "only expired rows go"
    );
    assert_eq!(
        store.latest_change().await.unwrap(),
        changes_before,
        "revocations do not touch the client change log"
    );
}

pub async fn revocations_are_seen_by_another_connection_to_the_same_database(
    backend: Arc<dyn Backend>,
) {
    let a = backend.open().await;
    let b = backend.open().await;
    assert!(a.revoke_token("shared", "c_1", i64::MAX).await.unwrap());
    assert!(b.is_revoked("shared").await.unwrap());
    drop(a);
    drop(b);
    let reopened = backend.open().await;
    assert!(reopened.is_revoked("shared").await.unwrap());
}

pub async fn an_assertion_jti_is_recorded_once_per_client_across_connections_until_pruned(
    backend: Arc<dyn Backend>,
) {
    let a = backend.open().await;
    let b = backend.open().await;
    assert!(a.record_assertion_jti("c_1", "j", 1_000).await.unwrap());
    assert!(
        !b.record_assertion_jti("c_1", "j", 1_000).await.unwrap(),
        "a replay through another connection is seen"
    );
    assert!(
        a.record_assertion_jti("c_2", "j", 1_000).await.unwrap(),
        "jti is unique per client (issuer), not globally"
    );
    assert!(a.record_assertion_jti("c_1", "k", 2_000).await.unwrap());
    assert_eq!(a.prune_assertion_jtis(999).await.unwrap(), 0);
    assert_eq!(a.prune_assertion_jtis(1_000).await.unwrap(), 2);
    assert!(!a.record_assertion_jti("c_1", "k", 2_000).await.unwrap());
    assert!(a.record_assertion_jti("c_1", "j", 3_000).await.unwrap());
}

pub async fn a_closed_store_answers_unavailable_instead_of_hanging(backend: Arc<dyn Backend>) {
    let store = backend.open().await;
    store.latest_change().await.unwrap();
    store.close().await;
    let after = tokio::time::timeout(std::time::Duration::from_secs(5), store.latest_change())
        .await
        .expect("a closed store answers at once");
    assert!(
        matches!(
            after,
            Err(gatehouse_oauth::error::StoreError::Unavailable(_))
        ),
        "{after:?}"
    );
    // Another store on the same database is unaffected.
    backend.open().await.latest_change().await.unwrap();
}

/// Whether `cache` (over `store`) knows client `id`.
async fn known_to(
    cache: &gatehouse_oauth::cache::ClientCache,
    store: &Arc<dyn gatehouse_oauth::store::Store>,
    id: &str,
) -> bool {
    cache.get(store.as_ref(), id).await.unwrap().is_some()
}

/// A replica whose client cache missed changes that were pruned before it
/// read them (a partition longer than the change log's day) cannot know
/// which clients changed: it must forget every one, not keep serving a
/// client deleted meanwhile.
pub async fn a_client_cache_that_missed_pruned_changes_forgets_every_client(
    backend: Arc<dyn Backend>,
) {
    use gatehouse_oauth::cache::ClientCache;
    use std::time::Duration;
    let (writer, replica) = (backend.open().await, backend.open().await);
    writer
        .insert_client(&client("c_gone", ClientOrigin::Cli, 100))
        .await
        .unwrap();
    writer
        .insert_client(&client("c_kept", ClientOrigin::Cli, 100))
        .await
        .unwrap();
    let cache = ClientCache::new(
        replica.latest_change().await.unwrap(),
        Duration::from_secs(60),
    );
    assert!(known_to(&cache, &replica, "c_gone").await);
    assert!(known_to(&cache, &replica, "c_kept").await);
    assert!(!known_to(&cache, &replica, "c_new").await);

    // While the replica is away: c_gone is deleted, c_new created, and the
    // log is pruned down to its newest row (the deletion's row is gone).
    assert!(writer.delete_client("c_gone").await.unwrap());
    writer
        .insert_client(&client("c_new", ClientOrigin::Cli, 100))
        .await
        .unwrap();
    let pruned = writer.prune_changes(i64::MAX).await.unwrap();
    assert_eq!(pruned, 3, "all but the newest change, the deletion's too");

    // Still served from memory until the poll: that is the cache's job.
    assert!(known_to(&cache, &replica, "c_gone").await);
    let polled = cache.poll(replica.as_ref()).await.unwrap();
    assert!(polled.flushed, "{polled:?}");
    assert!(polled.keys_changed, "lost history may hold key changes too");
    assert!(!known_to(&cache, &replica, "c_gone").await);
    assert!(known_to(&cache, &replica, "c_kept").await);
    assert!(known_to(&cache, &replica, "c_new").await);

    // With the log whole, a poll applies changes one by one and keeps the
    // rest of the cache.
    assert!(writer.delete_client("c_new").await.unwrap());
    let polled = cache.poll(replica.as_ref()).await.unwrap();
    assert!(!polled.flushed, "{polled:?}");
    assert_eq!(polled.applied, 1);
    assert!(!known_to(&cache, &replica, "c_new").await);
}
