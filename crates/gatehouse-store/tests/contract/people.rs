//! The Store contract for people: accounts, browser sessions, consent,
//! authorization codes and refresh-token families. Single-use values are raced
//! through several stores on one database, standing in for replicas, as in
//! `concurrency.rs`.

use super::{Backend, client};
use gatehouse_oauth::client::ClientOrigin;
use gatehouse_oauth::error::StoreError;
use gatehouse_oauth::grant_records::{
    AuthCode, BrowserSession, FederatedLogin, GrantFamily, IssuedToken, LinkedIdentity, Redeemed,
    RefreshToken, User,
};
use std::sync::Arc;

fn user(id: &str, name: &str) -> User {
    User {
        id: id.into(),
        name: name.into(),
        password_hash: format!("$argon2id$v=19$m=19456,t=2,p=1${name}"),
        groups: vec!["staff".into(), "ops".into()],
        created_at: 100,
        credentials_gen: 0,
    }
}

fn session(user_id: &str, expires_at: i64) -> BrowserSession {
    BrowserSession {
        user_id: user_id.into(),
        auth_time: 100,
        expires_at,
        credentials_gen: 0,
    }
}

fn code(hash: &str, family_id: &str, expires_at: i64) -> AuthCode {
    AuthCode {
        hash: hash.into(),
        family_id: family_id.into(),
        client_id: "c_1".into(),
        user_id: "u_1".into(),
        redirect_uri: Some("https://app.example/cb".into()),
        code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
        scopes: vec!["openid".into(), "read".into()],
        resources: vec!["https://api.example".into()],
        nonce: Some("n-0S6_WzA2Mj".into()),
        auth_time: 100,
        expires_at,
        credentials_gen: 0,
    }
}

fn family(id: &str, user_id: &str, expires_at: i64) -> GrantFamily {
    GrantFamily {
        id: id.into(),
        client_id: "c_1".into(),
        user_id: user_id.into(),
        scopes: vec!["openid".into(), "read".into()],
        resources: vec!["https://api.example".into()],
        auth_time: 100,
        created_at: 110,
        expires_at,
        revoked: false,
        credentials_gen: 0,
    }
}

fn refresh(hash: &str, family_id: &str, expires_at: i64) -> RefreshToken {
    RefreshToken {
        hash: hash.into(),
        family_id: family_id.into(),
        expires_at,
        used_at: None,
    }
}

fn issued(jti: &str, expires_at: i64) -> IssuedToken {
    IssuedToken {
        jti: jti.into(),
        client_id: "c_1".into(),
        expires_at,
    }
}

/// What a code needs to be issued and redeemed: the user (named after its
/// id, at generation 0), the client, and a consent of the user's for the
/// client (at `https://api.example`) unless there is one already. Each is
/// made only if missing.
async fn bound(store: &Arc<dyn gatehouse_oauth::store::Store>, user_id: &str, client_id: &str) {
    if store.get_user(user_id).await.unwrap().is_none() {
        store.insert_user(&user(user_id, user_id)).await.unwrap();
    }
    if store.get_client(client_id).await.unwrap().is_none() {
        store
            .insert_client(&client(client_id, ClientOrigin::Cli, 100))
            .await
            .unwrap();
    }
    let consents = store.list_consents(user_id).await.unwrap();
    if !consents.iter().any(|c| c.client_id == client_id) {
        let scopes = ["openid".to_string(), "read".to_string()];
        store
            .record_consent(user_id, client_id, "https://api.example", &scopes, 100)
            .await
            .unwrap();
    }
}

/// Makes the users and clients named exist (a consent is recorded only
/// between ones that do).
pub async fn parties(
    store: &Arc<dyn gatehouse_oauth::store::Store>,
    users: &[&str],
    clients: &[&str],
) {
    for id in users {
        if store.get_user(id).await.unwrap().is_none() {
            store.insert_user(&user(id, id)).await.unwrap();
        }
    }
    for id in clients {
        if store.get_client(id).await.unwrap().is_none() {
            store
                .insert_client(&client(id, ClientOrigin::Cli, 100))
                .await
                .unwrap();
        }
    }
}

/// A family with its first refresh token `rt_<id>` and access token
/// `at_<id>`, stored by redeeming code `code_<id>` at 110.
async fn granted(
    store: &Arc<dyn gatehouse_oauth::store::Store>,
    id: &str,
    user_id: &str,
    expires_at: i64,
    access_expires_at: i64,
) {
    bound(store, user_id, "c_1").await;
    let c = AuthCode {
        user_id: user_id.into(),
        ..code(&format!("code_{id}"), id, 200)
    };
    assert!(store.insert_code(&c).await.unwrap());
    let redeemed = store
        .redeem_code(
            &c.hash,
            110,
            &family(id, user_id, expires_at),
            Some(&refresh(&format!("rt_{id}"), id, expires_at)),
            &issued(&format!("at_{id}"), access_expires_at),
        )
        .await
        .unwrap();
    assert_eq!(redeemed, Redeemed::Fresh);
}

pub async fn users_round_trip_and_a_taken_id_or_name_is_a_conflict_that_changes_nothing(
    backend: Arc<dyn Backend>,
) {
    let store = backend.open().await;
    let alice = user("u_1", "alice");
    store.insert_user(&alice).await.unwrap();
    assert_eq!(store.get_user("u_1").await.unwrap(), Some(alice.clone()));
    assert_eq!(
        store.get_user_by_name("alice").await.unwrap(),
        Some(alice.clone())
    );
    assert_eq!(store.get_user("u_2").await.unwrap(), None);
    assert_eq!(store.get_user_by_name("bob").await.unwrap(), None);

    let same_name = User {
        password_hash: "other".into(),
        ..user("u_2", "alice")
    };
    assert!(matches!(
        store.insert_user(&same_name).await,
        Err(StoreError::Conflict(_))
    ));
    let same_id = user("u_1", "bob");
    assert!(matches!(
        store.insert_user(&same_id).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.list_users().await.unwrap(), vec![alice.clone()]);
    assert_eq!(store.get_user("u_2").await.unwrap(), None);
    assert_eq!(store.get_user_by_name("bob").await.unwrap(), None);

    let no_groups = User {
        groups: vec![],
        ..user("u_3", "carol")
    };
    store.insert_user(&no_groups).await.unwrap();
    assert_eq!(
        backend.open().await.get_user("u_3").await.unwrap(),
        Some(no_groups),
        "seen by another connection"
    );
}

pub async fn users_are_listed_in_order_of_name(backend: Arc<dyn Backend>) {
    let store = backend.open().await;
    for (id, name) in [
        ("u_1", "mallory"),
        ("u_2", "alice"),
        ("u_3", "zed"),
        ("u_4", "bob"),
    ] {
        store.insert_user(&user(id, name)).await.unwrap();
    }
    let names: Vec<String> = store
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.name)
        .collect();
    assert_eq!(names, ["alice", "bob", "mallory", "zed"]);
}

pub async fn setting_a_password_replaces_the_hash_ends_that_users_sessions_and_revokes_their_grants(
    backend: Arc<dyn Backend>,
) {
    let store = backend.open().await;
    store.insert_user(&user("u_1", "alice")).await.unwrap();
    store.insert_user(&user("u_2", "bob")).await.unwrap();
    assert!(
        store
            .insert_session("s_a1", &session("u_1", 1_000))
            .await
            .unwrap()
    );
    assert!(
        store
            .insert_session("s_a2", &session("u_1", 1_000))
            .await
            .unwrap()
    );
    assert!(
        store
            .insert_session("s_b", &session("u_2", 1_000))
            .await
            .unwrap()
    );

    granted(&store, "f_a", "u_1", 10_000, 1_000).await;
    granted(&store, "f_b", "u_2", 10_000, 1_000).await;
    // A code issued under the old password, not yet redeemed.
    assert!(
        store
            .insert_code(&code("code_pending", "f_p", 10_000))
            .await
            .unwrap()
    );

    assert!(
        store
            .set_user_password("u_1", "new-hash", 500)
            .await
            .unwrap()
    );
    // Whatever the old password got anyone is revoked: alice's grants and
    // their live access tokens; bob's stay.
    let (_, fam) = store.find_refresh_token("rt_f_a").await.unwrap().unwrap();
    assert!(fam.revoked);
    assert!(store.is_revoked("at_f_a").await.unwrap());
    let (_, fam) = store.find_refresh_token("rt_f_b").await.unwrap().unwrap();
    assert!(!fam.revoked);
    assert_eq!(
        store.get_code("code_pending").await.unwrap(),
        None,
        "it can no longer become a grant"
    );
    assert!(!store.is_revoked("at_f_b").await.unwrap());
    let alice = store.get_user("u_1").await.unwrap().unwrap();
    assert_eq!(alice.password_hash, "new-hash");
    assert_eq!(alice.credentials_gen, 1, "a new credential generation");
    assert_eq!(
        store
            .get_user("u_2")
            .await
            .unwrap()
            .unwrap()
            .credentials_gen,
        0
    );
    assert_eq!(alice.groups, user("u_1", "alice").groups);
    assert_eq!(store.get_session("s_a1", 500).await.unwrap(), None);
    assert_eq!(store.get_session("s_a2", 500).await.unwrap(), None);
    assert_eq!(
        store.get_session("s_b", 500).await.unwrap(),
        Some(session("u_2", 1_000))
    );
    assert!(!store.set_user_password("u_9", "x", 500).await.unwrap());
}

pub async fn deleting_a_user_removes_sessions_and_consents_and_revokes_families_and_their_live_tokens(
    backend: Arc<dyn Backend>,
) {
    let store = backend.open().await;
    store.insert_user(&user("u_1", "alice")).await.unwrap();
    store.insert_user(&user("u_2", "bob")).await.unwrap();
    assert!(
        store
            .insert_session("s_a", &session("u_1", 1_000))
            .await
            .unwrap()
    );
    assert!(
        store
            .insert_session("s_b", &session("u_2", 1_000))
            .await
            .unwrap()
    );
    parties(&store, &["u_1", "u_2"], &["c_1"]).await;
    let scopes = vec!["read".to_string()];
    store
        .record_consent("u_1", "c_1", "https://api.example", &scopes, 100)
        .await
        .unwrap();
    store
        .record_consent("u_2", "c_1", "https://api.example", &scopes, 100)
        .await
        .unwrap();
    granted(&store, "f_a1", "u_1", 10_000, 1_000).await;
    granted(&store, "f_a2", "u_1", 10_000, 1_000).await;
    granted(&store, "f_b", "u_2", 10_000, 1_000).await;
    // An access token of alice's that has already expired at deletion time
    // need not be revoked (it is refused as expired).
    assert!(
        store
            .extend_family(
                "f_a1",
                120,
                &refresh("rt_a1_2", "f_a1", 10_000),
                &issued("at_old", 300)
            )
            .await
            .unwrap()
    );

    assert!(store.delete_user("u_1", 500).await.unwrap());
    assert_eq!(store.get_user("u_1").await.unwrap(), None);
    assert_eq!(store.get_user_by_name("alice").await.unwrap(), None);
    assert_eq!(store.get_session("s_a", 600).await.unwrap(), None);
    assert_eq!(
        store
            .get_consent("u_1", "c_1", "https://api.example")
            .await
            .unwrap(),
        None
    );
    for id in ["f_a1", "f_a2"] {
        let (_, fam) = store
            .find_refresh_token(&format!("rt_{id}"))
            .await
            .unwrap()
            .expect("the family is kept, revoked");
        assert!(fam.revoked, "{id}");
        assert!(store.is_revoked(&format!("at_{id}")).await.unwrap(), "{id}");
    }
    assert!(!store.is_revoked("at_old").await.unwrap());

    // Bob is untouched.
    assert!(store.get_user("u_2").await.unwrap().is_some());
    assert!(store.get_session("s_b", 600).await.unwrap().is_some());
    assert_eq!(
        store
            .get_consent("u_2", "c_1", "https://api.example")
            .await
            .unwrap(),
        Some(scopes)
    );
    let (_, fam_b) = store.find_refresh_token("rt_f_b").await.unwrap().unwrap();
    assert!(!fam_b.revoked);
    assert!(!store.is_revoked("at_f_b").await.unwrap());

    assert!(!store.delete_user("u_1", 600).await.unwrap());
    // The name is free again.
    store.insert_user(&user("u_5", "alice")).await.unwrap();
}

pub async fn a_session_is_gone_at_its_expiry_and_after_sign_out(backend: Arc<dyn Backend>) {
    let store = backend.open().await;
    store.insert_user(&user("u_1", "alice")).await.unwrap();
    assert!(
        store
            .insert_session("s_1", &session("u_1", 1_000))
            .await
            .unwrap()
    );
    assert!(
        store
            .insert_session("s_2", &session("u_1", 1_000))
            .await
            .unwrap()
    );
    assert_eq!(
        store.get_session("s_1", 999).await.unwrap(),
        Some(session("u_1", 1_000))
    );
    assert_eq!(store.get_session("s_1", 1_000).await.unwrap(), None);
    assert_eq!(store.get_session("s_1", 2_000).await.unwrap(), None);
    assert_eq!(store.get_session("nope", 0).await.unwrap(), None);

    let other = backend.open().await;
    assert!(other.delete_session("s_2").await.unwrap());
    assert!(!other.delete_session("s_2").await.unwrap());
    assert_eq!(store.get_session("s_2", 500).await.unwrap(), None);
}

pub async fn recording_consent_again_replaces_the_scopes_per_user_client_and_resource(
    backend: Arc<dyn Backend>,
) {
    let store = backend.open().await;
    let r = "https://api.example";
    assert_eq!(store.get_consent("u_1", "c_1", r).await.unwrap(), None);
    // Only between a user and a client that exist.
    let first = vec!["read".to_string(), "write".to_string()];
    store
        .record_consent("u_1", "c_1", r, &first, 100)
        .await
        .unwrap();
    assert_eq!(store.get_consent("u_1", "c_1", r).await.unwrap(), None);
    parties(&store, &["u_1"], &["c_1"]).await;
    store
        .record_consent("u_1", "c_1", r, &first, 100)
        .await
        .unwrap();
    assert_eq!(
        store.get_consent("u_1", "c_1", r).await.unwrap(),
        Some(first)
    );
    let second = vec!["read".to_string()];
    store
        .record_consent("u_1", "c_1", r, &second, 200)
        .await
        .unwrap();
    assert_eq!(
        store.get_consent("u_1", "c_1", r).await.unwrap(),
        Some(second.clone())
    );
    assert_eq!(store.get_consent("u_1", "c_2", r).await.unwrap(), None);
    assert_eq!(
        store
            .get_consent("u_1", "c_1", "https://other.example")
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.get_consent("u_2", "c_1", r).await.unwrap(), None);
    store
        .record_consent("u_1", "c_1", r, &[], 300)
        .await
        .unwrap();
    assert_eq!(
        store.get_consent("u_1", "c_1", r).await.unwrap(),
        Some(vec![])
    );
}

pub async fn a_code_is_redeemed_once_and_a_replay_names_its_family(backend: Arc<dyn Backend>) {
    let store = backend.open().await;
    bound(&store, "u_1", "c_1").await;
    let c = code("h_code", "f_1", 200);
    assert!(store.insert_code(&c).await.unwrap());
    assert_eq!(store.get_code("h_code").await.unwrap(), Some(c.clone()));
    let bare = AuthCode {
        redirect_uri: None,
        nonce: None,
        ..code("h_bare", "f_2", 200)
    };
    assert!(store.insert_code(&bare).await.unwrap());
    assert_eq!(store.get_code("h_bare").await.unwrap(), Some(bare));
    assert!(matches!(
        store.insert_code(&c).await,
        Err(StoreError::Conflict(_))
    ));

    // Nothing of the grant exists before the code is redeemed.
    assert_eq!(store.find_refresh_token("rt_1").await.unwrap(), None);
    assert!(!store.revoke_family("f_1", 150).await.unwrap());

    let fam = family("f_1", "u_1", 10_000);
    let rt = refresh("rt_1", "f_1", 5_000);
    let at = issued("at_1", 1_000);
    assert_eq!(
        store
            .redeem_code("h_code", 150, &fam, Some(&rt), &at)
            .await
            .unwrap(),
        Redeemed::Fresh
    );
    assert_eq!(
        store.find_refresh_token("rt_1").await.unwrap(),
        Some((rt.clone(), fam.clone()))
    );
    assert_eq!(
        store.get_code("h_code").await.unwrap(),
        Some(c),
        "a consumed code is still found (until pruned)"
    );

    // A replay, before or after the code's expiry, through any store.
    let other = backend.open().await;
    for now in [151, 200, 5_000] {
        assert_eq!(
            other
                .redeem_code(
                    "h_code",
                    now,
                    &family("f_x", "u_1", 10_000),
                    Some(&refresh("rt_x", "f_x", 5_000)),
                    &issued("at_x", 1_000),
                )
                .await
                .unwrap(),
            Redeemed::Reused {
                family_id: "f_1".into()
            }
        );
    }
    assert_eq!(
        store.find_refresh_token("rt_x").await.unwrap(),
        None,
        "a replay stores nothing"
    );
    // The access token issued is tied to the family.
    assert!(store.revoke_family("f_1", 160).await.unwrap());
    assert!(store.is_revoked("at_1").await.unwrap());
    assert!(!store.is_revoked("at_x").await.unwrap());

    // Without a refresh token (no offline access) the family is still stored.
    assert_eq!(
        store
            .redeem_code(
                "h_bare",
                150,
                &family("f_2", "u_1", 10_000),
                None,
                &issued("at_2", 1_000)
            )
            .await
            .unwrap(),
        Redeemed::Fresh
    );
    assert!(store.revoke_family("f_2", 160).await.unwrap());
    assert!(store.is_revoked("at_2").await.unwrap());
}

pub async fn an_expired_or_unknown_code_is_unknown_and_stores_nothing(backend: Arc<dyn Backend>) {
    let store = backend.open().await;
    bound(&store, "u_1", "c_1").await;
    assert!(
        store
            .insert_code(&code("h_code", "f_1", 200))
            .await
            .unwrap()
    );
    let fam = family("f_1", "u_1", 10_000);
    let rt = refresh("rt_1", "f_1", 5_000);
    let at = issued("at_1", 1_000);
    for now in [200, 201] {
        assert_eq!(
            store
                .redeem_code("h_code", now, &fam, Some(&rt), &at)
                .await
                .unwrap(),
            Redeemed::Unknown,
            "expired at {now}"
        );
    }
    assert_eq!(
        store
            .redeem_code("h_nope", 100, &fam, Some(&rt), &at)
            .await
            .unwrap(),
        Redeemed::Unknown
    );
    assert_eq!(store.find_refresh_token("rt_1").await.unwrap(), None);
    assert!(!store.revoke_family("f_1", 300).await.unwrap());
    assert!(!store.is_revoked("at_1").await.unwrap());
    // Still not consumed: an expired code is not a replay.
    assert_eq!(
        store
            .redeem_code("h_code", 300, &fam, Some(&rt), &at)
            .await
            .unwrap(),
        Redeemed::Unknown
    );
}

pub async fn concurrent_redeems_of_one_code_admit_exactly_one(backend: Arc<dyn Backend>) {
    let replicas = [
        backend.open().await,
        backend.open().await,
        backend.open().await,
    ];
    bound(&replicas[0], "u_1", "c_1").await;
    assert!(
        replicas[0]
            .insert_code(&code("h_code", "f_1", i64::MAX))
            .await
            .unwrap()
    );
    let mut tasks = Vec::new();
    for n in 0..12 {
        let store = replicas[n % replicas.len()].clone();
        tasks.push(tokio::spawn(async move {
            // Every attempt stores the same family id the code was issued
            // with, as the token endpoint does; tokens differ per attempt.
            store
                .redeem_code(
                    "h_code",
                    150,
                    &family("f_1", "u_1", 10_000),
                    Some(&refresh(&format!("rt_{n}"), "f_1", 5_000)),
                    &issued(&format!("at_{n}"), 1_000),
                )
                .await
                .unwrap()
        }));
    }
    let mut fresh = Vec::new();
    for (n, t) in tasks.into_iter().enumerate() {
        match t.await.unwrap() {
            Redeemed::Fresh => fresh.push(n),
            Redeemed::Reused { family_id } => assert_eq!(family_id, "f_1"),
            Redeemed::Unknown => panic!("attempt {n}: the code was not found"),
        }
    }
    assert_eq!(fresh.len(), 1, "{fresh:?}");
    for n in 0..12 {
        let found = replicas[0]
            .find_refresh_token(&format!("rt_{n}"))
            .await
            .unwrap();
        assert_eq!(found.is_some(), n == fresh[0], "rt_{n}");
    }
}

pub async fn a_refresh_token_is_used_first_exactly_once_and_then_says_when(
    backend: Arc<dyn Backend>,
) {
    let store = backend.open().await;
    granted(&store, "f_1", "u_1", 10_000, 1_000).await;
    assert_eq!(store.use_refresh_token("rt_nope", 300).await.unwrap(), None);
    assert_eq!(store.find_refresh_token("rt_nope").await.unwrap(), None);

    let (unused, fam) = store.find_refresh_token("rt_f_1").await.unwrap().unwrap();
    assert_eq!(unused.used_at, None);
    assert_eq!(fam, family("f_1", "u_1", 10_000));

    let first = store
        .use_refresh_token("rt_f_1", 300)
        .await
        .unwrap()
        .unwrap();
    assert!(first.first_use);
    assert_eq!(first.token.used_at, Some(300));
    assert_eq!(first.token.hash, "rt_f_1");
    assert_eq!(first.token.family_id, "f_1");
    assert_eq!(first.family, fam);

    let again = backend
        .open()
        .await
        .use_refresh_token("rt_f_1", 400)
        .await
        .unwrap()
        .unwrap();
    assert!(!again.first_use);
    assert_eq!(again.token.used_at, Some(300), "the first exchange's time");
    let (found, _) = store.find_refresh_token("rt_f_1").await.unwrap().unwrap();
    assert_eq!(found.used_at, Some(300));

    // A used token of a revoked family still says so, with the family.
    assert!(store.revoke_family("f_1", 500).await.unwrap());
    let revoked = store
        .use_refresh_token("rt_f_1", 600)
        .await
        .unwrap()
        .unwrap();
    assert!(!revoked.first_use);
    assert!(revoked.family.revoked);
}

pub async fn concurrent_uses_of_one_refresh_token_make_exactly_one_first_use(
    backend: Arc<dyn Backend>,
) {
    let replicas = [
        backend.open().await,
        backend.open().await,
        backend.open().await,
    ];
    granted(&replicas[0], "f_1", "u_1", 10_000, 1_000).await;
    let mut tasks = Vec::new();
    for n in 0..12 {
        let store = replicas[n % replicas.len()].clone();
        tasks.push(tokio::spawn(async move {
            store
                .use_refresh_token("rt_f_1", 300 + n as i64)
                .await
                .unwrap()
                .expect("the token exists")
        }));
    }
    let mut firsts = Vec::new();
    let mut used_at = std::collections::BTreeSet::new();
    for t in tasks {
        let u = t.await.unwrap();
        if u.first_use {
            firsts.push(u.token.used_at);
        }
        used_at.insert(u.token.used_at);
    }
    assert_eq!(firsts.len(), 1, "{firsts:?}");
    assert_eq!(
        used_at.into_iter().collect::<Vec<_>>(),
        firsts,
        "every use reports the one first exchange"
    );
}

pub async fn extending_a_family_adds_one_successor_only_while_the_family_is_live(
    backend: Arc<dyn Backend>,
) {
    let store = backend.open().await;
    granted(&store, "f_1", "u_1", 1_000, 500).await;
    let next = refresh("rt_2", "f_1", 1_000);
    assert!(
        store
            .extend_family("f_1", 300, &next, &issued("at_2", 600))
            .await
            .unwrap()
    );
    // A retry inside the grace window derives the same successor: one row,
    // not an error.
    assert!(
        backend
            .open()
            .await
            .extend_family("f_1", 301, &next, &issued("at_2", 600))
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .find_refresh_token("rt_2")
            .await
            .unwrap()
            .map(|(t, _)| t),
        Some(next)
    );

    // At or past the family's end nothing more is added.
    for now in [1_000, 1_001] {
        assert!(
            !store
                .extend_family(
                    "f_1",
                    now,
                    &refresh("rt_late", "f_1", 2_000),
                    &issued("at_late", 2_000)
                )
                .await
                .unwrap()
        );
    }
    assert_eq!(store.find_refresh_token("rt_late").await.unwrap(), None);

    // Nor to a revoked family (or one that does not exist).
    granted(&store, "f_2", "u_1", 10_000, 500).await;
    assert!(store.revoke_family("f_2", 300).await.unwrap());
    assert!(
        !store
            .extend_family(
                "f_2",
                310,
                &refresh("rt_r", "f_2", 2_000),
                &issued("at_r", 2_000)
            )
            .await
            .unwrap()
    );
    assert_eq!(store.find_refresh_token("rt_r").await.unwrap(), None);
    assert!(
        !store
            .extend_family(
                "f_none",
                310,
                &refresh("rt_n", "f_none", 2_000),
                &issued("at_n", 2_000)
            )
            .await
            .unwrap()
    );
    assert_eq!(store.find_refresh_token("rt_n").await.unwrap(), None);

    // The access tokens issued with successors are revoked with the family.
    assert!(store.revoke_family("f_1", 400).await.unwrap());
    assert!(store.is_revoked("at_2").await.unwrap());
}

pub async fn revoking_a_family_revokes_its_live_access_tokens_and_is_idempotent(
    backend: Arc<dyn Backend>,
) {
    let store = backend.open().await;
    granted(&store, "f_1", "u_1", 10_000, 1_000).await;
    granted(&store, "f_2", "u_1", 10_000, 1_000).await;
    assert!(
        store
            .extend_family(
                "f_1",
                200,
                &refresh("rt_2", "f_1", 10_000),
                &issued("at_short", 250)
            )
            .await
            .unwrap()
    );
    assert!(!store.is_revoked("at_f_1").await.unwrap());

    assert!(store.revoke_family("f_1", 300).await.unwrap());
    assert!(store.is_revoked("at_f_1").await.unwrap());
    assert!(
        !store.is_revoked("at_short").await.unwrap(),
        "expired before the revocation: nothing to revoke"
    );
    assert!(
        !store.is_revoked("at_f_2").await.unwrap(),
        "other families keep theirs"
    );
    for rt in ["rt_f_1", "rt_2"] {
        let (_, fam) = store.find_refresh_token(rt).await.unwrap().unwrap();
        assert!(fam.revoked, "{rt}");
    }

    // Again, through another store: still true, still one revocation each.
    let other = backend.open().await;
    assert!(other.revoke_family("f_1", 400).await.unwrap());
    assert!(other.is_revoked("at_f_1").await.unwrap());
    assert!(
        !other.revoke_token("at_f_1", "c_1", 1_000).await.unwrap(),
        "the access token is already in the revocations"
    );
    assert!(!other.revoke_family("f_none", 400).await.unwrap());
    // A revocation stays until the access token's own expiry.
    assert_eq!(other.prune_revocations(999).await.unwrap(), 0);
    assert_eq!(other.prune_revocations(1_000).await.unwrap(), 1);
}

pub async fn pruning_grants_deletes_only_what_has_expired(backend: Arc<dyn Backend>) {
    let store = backend.open().await;
    bound(&store, "u_1", "c_1").await;
    let now = 1_000;
    // Sessions: one expiring exactly now, one later.
    assert!(
        store
            .insert_session("s_old", &session("u_1", now))
            .await
            .unwrap()
    );
    assert!(
        store
            .insert_session("s_new", &session("u_1", now + 1))
            .await
            .unwrap()
    );
    // Codes: one expired, one not.
    assert!(store.insert_code(&code("h_old", "f_x", now)).await.unwrap());
    assert!(
        store
            .insert_code(&code("h_new", "f_y", now + 1))
            .await
            .unwrap()
    );
    // A family that ends now, with an access token also expiring now.
    granted(&store, "f_old", "u_1", now, now).await;
    // A live family with an expired refresh token and an expired access
    // token next to live ones.
    granted(&store, "f_live", "u_1", 5_000, 2_000).await;
    assert!(
        store
            .extend_family(
                "f_live",
                200,
                &refresh("rt_exp", "f_live", 500),
                &issued("at_exp", 500)
            )
            .await
            .unwrap()
    );

    // The codes that created the families (expiring at 200), rt_exp, at_exp.
    assert_eq!(store.prune_grants(now - 1).await.unwrap(), 4);
    // h_old, s_old, and f_old with rt_f_old and at_f_old.
    assert_eq!(store.prune_grants(now).await.unwrap(), 5);

    assert_eq!(
        store.get_session("s_new", 0).await.unwrap(),
        Some(session("u_1", now + 1))
    );
    assert!(store.get_code("h_new").await.unwrap().is_some());
    assert_eq!(store.get_code("h_old").await.unwrap(), None);
    assert_eq!(store.get_code("code_f_live").await.unwrap(), None);
    assert_eq!(store.find_refresh_token("rt_f_old").await.unwrap(), None);
    assert!(!store.revoke_family("f_old", now).await.unwrap());
    assert_eq!(store.find_refresh_token("rt_exp").await.unwrap(), None);
    assert!(
        store
            .find_refresh_token("rt_f_live")
            .await
            .unwrap()
            .is_some()
    );
    // The live family's live access token is still tied to it.
    assert!(store.revoke_family("f_live", now).await.unwrap());
    assert!(store.is_revoked("at_f_live").await.unwrap());
    assert!(!store.is_revoked("at_exp").await.unwrap());

    assert_eq!(store.prune_grants(now).await.unwrap(), 0, "nothing more");
}

/// A family whose end has passed is kept while an access token issued from
/// it is still live, so that revoking it (or deleting its user) still
/// revokes that token; it goes once the token has expired.
pub async fn an_ended_family_is_kept_until_its_last_access_token_expires(
    backend: Arc<dyn Backend>,
) {
    let store = backend.open().await;
    granted(&store, "f_1", "u_1", 1_000, 1_500).await;
    // code_f_1 and rt_f_1 go; the family and at_f_1 stay.
    assert_eq!(store.prune_grants(1_000).await.unwrap(), 2);
    assert!(store.revoke_family("f_1", 1_200).await.unwrap());
    assert!(store.is_revoked("at_f_1").await.unwrap());
    // at_f_1 and then the family.
    assert_eq!(store.prune_grants(1_500).await.unwrap(), 2);
    assert!(!store.revoke_family("f_1", 1_600).await.unwrap());
}

/// A rotation racing a revocation of its family, through different stores:
/// either the rotation is refused, or the access token it recorded is
/// revoked with the family. Never a live token from a revoked family.
pub async fn a_rotation_racing_a_revocation_never_leaves_a_live_access_token(
    backend: Arc<dyn Backend>,
) {
    let replicas = [backend.open().await, backend.open().await];
    const ROUNDS: usize = 12;
    for n in 0..ROUNDS {
        granted(&replicas[0], &format!("f_{n}"), "u_1", 10_000, 1_000).await;
    }
    let mut tasks = Vec::new();
    for n in 0..ROUNDS {
        let (a, b) = (replicas[n % 2].clone(), replicas[(n + 1) % 2].clone());
        tasks.push(tokio::spawn(async move {
            let id = format!("f_{n}");
            let successor = refresh(&format!("rt_{n}_2"), &id, 10_000);
            let access = issued(&format!("at_{n}_2"), 1_000);
            let (extended, revoked) = tokio::join!(
                a.extend_family(&id, 300, &successor, &access),
                b.revoke_family(&id, 300)
            );
            (extended.unwrap(), revoked.unwrap())
        }));
    }
    for (n, t) in tasks.into_iter().enumerate() {
        let (extended, revoked) = t.await.unwrap();
        assert!(revoked, "round {n}");
        let live = !replicas[0].is_revoked(&format!("at_{n}_2")).await.unwrap();
        assert!(
            !(extended && live),
            "round {n}: the family was revoked but the access token issued with its successor is live"
        );
    }
}

pub async fn withdrawing_consent_forgets_it_deletes_unredeemed_codes_and_revokes_that_clients_grants(
    backend: Arc<dyn Backend>,
) {
    let store = backend.open().await;
    store.insert_user(&user("u_1", "alice")).await.unwrap();
    parties(&store, &[], &["c_1", "c_2"]).await;
    let scopes = vec!["read".to_string()];
    for (client, resource, at) in [
        ("c_2", "https://a.example", 102),
        ("c_1", "https://b.example", 101),
        ("c_1", "https://a.example", 100),
    ] {
        store
            .record_consent("u_1", client, resource, &scopes, at)
            .await
            .unwrap();
    }
    let listed = store.list_consents("u_1").await.unwrap();
    let keys: Vec<(&str, &str, i64)> = listed
        .iter()
        .map(|c| (c.client_id.as_str(), c.resource.as_str(), c.granted_at))
        .collect();
    assert_eq!(
        keys,
        [
            ("c_1", "https://a.example", 100),
            ("c_1", "https://b.example", 101),
            ("c_2", "https://a.example", 102)
        ]
    );
    assert_eq!(listed[0].scopes, scopes);
    assert!(store.list_consents("u_9").await.unwrap().is_empty());

    // A grant to c_1, one to c_2, and an unredeemed code for c_1.
    granted(&store, "f_1", "u_1", 10_000, 1_000).await;
    bound(&store, "u_1", "c_2").await;
    let c2 = AuthCode {
        client_id: "c_2".into(),
        ..code("code_f_2", "f_2", 200)
    };
    assert!(store.insert_code(&c2).await.unwrap());
    let fam2 = GrantFamily {
        client_id: "c_2".into(),
        ..family("f_2", "u_1", 10_000)
    };
    assert_eq!(
        store
            .redeem_code(
                &c2.hash,
                110,
                &fam2,
                Some(&refresh("rt_f_2", "f_2", 10_000)),
                &issued("at_f_2", 1_000)
            )
            .await
            .unwrap(),
        Redeemed::Fresh
    );
    assert!(
        store
            .insert_code(&code("code_pending", "f_p", 10_000))
            .await
            .unwrap()
    );

    assert_eq!(store.revoke_consent("u_1", "c_1", 500).await.unwrap(), 2);
    let left = store.list_consents("u_1").await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].client_id, "c_2");
    let (_, f1) = store.find_refresh_token("rt_f_1").await.unwrap().unwrap();
    assert!(f1.revoked);
    assert!(store.is_revoked("at_f_1").await.unwrap());
    let (_, f2) = store.find_refresh_token("rt_f_2").await.unwrap().unwrap();
    assert!(!f2.revoked, "another client's grant stays");
    assert!(!store.is_revoked("at_f_2").await.unwrap());
    assert_eq!(store.get_code("code_pending").await.unwrap(), None);
    assert_eq!(store.revoke_consent("u_1", "c_1", 600).await.unwrap(), 0);
}

/// Sessions, codes and families are bound to the credential generation
/// they were made under: once the password changes, whatever carries the
/// old generation is refused at insertion and dead at use, and what is
/// made under the new one works.
pub async fn a_password_change_outdates_every_session_code_and_grant_made_under_the_old_one(
    backend: Arc<dyn Backend>,
) {
    let store = backend.open().await;
    bound(&store, "u_1", "c_1").await;
    granted(&store, "f_old", "u_1", 10_000, 1_000).await;
    assert!(
        store
            .insert_session("s_old", &session("u_1", 1_000))
            .await
            .unwrap()
    );
    assert!(
        store
            .set_user_password("u_1", "new-hash", 500)
            .await
            .unwrap()
    );

    // A sign-in that read the hash (and generation 0) before the change and
    // stores its session after it: refused, nothing stored.
    assert!(
        !store
            .insert_session("s_late", &session("u_1", 1_000))
            .await
            .unwrap()
    );
    assert_eq!(store.get_session("s_late", 500).await.unwrap(), None);
    assert!(!store.delete_session("s_late").await.unwrap(), "no row");
    assert_eq!(store.get_session("s_old", 500).await.unwrap(), None);
    // A code from a session of the old generation: refused, nothing stored.
    assert!(
        !store
            .insert_code(&code("h_late", "f_late", 1_000))
            .await
            .unwrap()
    );
    assert_eq!(store.get_code("h_late").await.unwrap(), None);
    // The old grant reads as revoked and cannot be extended.
    let (_, fam) = store.find_refresh_token("rt_f_old").await.unwrap().unwrap();
    assert!(fam.revoked);
    assert!(
        !store
            .extend_family(
                "f_old",
                600,
                &refresh("rt_old_2", "f_old", 10_000),
                &issued("at_old_2", 1_000)
            )
            .await
            .unwrap()
    );

    // Under the new generation everything works again.
    let fresh = BrowserSession {
        credentials_gen: 1,
        ..session("u_1", 1_000)
    };
    assert!(store.insert_session("s_new", &fresh).await.unwrap());
    assert_eq!(
        store.get_session("s_new", 500).await.unwrap(),
        Some(fresh.clone())
    );
    let c = AuthCode {
        credentials_gen: 1,
        ..code("h_new", "f_new", 1_000)
    };
    assert!(store.insert_code(&c).await.unwrap());
    let fam = GrantFamily {
        credentials_gen: 1,
        ..family("f_new", "u_1", 10_000)
    };
    assert_eq!(
        store
            .redeem_code(
                "h_new",
                600,
                &fam,
                Some(&refresh("rt_new", "f_new", 10_000)),
                &issued("at_new", 1_000)
            )
            .await
            .unwrap(),
        Redeemed::Fresh
    );
    let (_, found) = store.find_refresh_token("rt_new").await.unwrap().unwrap();
    assert!(!found.revoked);
    assert_eq!(found.credentials_gen, 1);

    // The next change outdates those too, including a session whose user
    // row is read separately from it.
    assert!(store.set_user_password("u_1", "newer", 700).await.unwrap());
    assert_eq!(store.get_session("s_new", 700).await.unwrap(), None);
    let (_, found) = store.find_refresh_token("rt_new").await.unwrap().unwrap();
    assert!(found.revoked);
    assert!(store.is_revoked("at_new").await.unwrap());
}

/// A code is stored only while its user is at the code's generation,
/// consents to its client, and the client exists; a refused one leaves
/// nothing behind.
pub async fn a_code_is_issued_only_for_a_consenting_user_and_an_existing_client(
    backend: Arc<dyn Backend>,
) {
    let store = backend.open().await;
    store.insert_user(&user("u_1", "alice")).await.unwrap();
    // No client, no consent.
    assert!(!store.insert_code(&code("h_1", "f_1", 1_000)).await.unwrap());
    store
        .insert_client(&client("c_1", ClientOrigin::Cli, 100))
        .await
        .unwrap();
    // The client, no consent.
    assert!(!store.insert_code(&code("h_1", "f_1", 1_000)).await.unwrap());
    // Consent to another client does not count.
    let scopes = ["read".to_string()];
    store
        .record_consent("u_1", "c_2", "https://api.example", &scopes, 100)
        .await
        .unwrap();
    assert!(!store.insert_code(&code("h_1", "f_1", 1_000)).await.unwrap());
    // Consent, but no such user, or another generation.
    store
        .record_consent("u_1", "c_1", "https://api.example", &scopes, 100)
        .await
        .unwrap();
    let nobody = AuthCode {
        user_id: "u_9".into(),
        ..code("h_1", "f_1", 1_000)
    };
    assert!(!store.insert_code(&nobody).await.unwrap());
    let future = AuthCode {
        credentials_gen: 1,
        ..code("h_1", "f_1", 1_000)
    };
    assert!(!store.insert_code(&future).await.unwrap());
    assert_eq!(store.get_code("h_1").await.unwrap(), None);
    // Everything in place.
    assert!(store.insert_code(&code("h_1", "f_1", 1_000)).await.unwrap());
    assert!(store.get_code("h_1").await.unwrap().is_some());
}

/// Deleting a client — from the CLI or RFC 7592 (`delete_client`), or by the
/// idle and unused sweeps — revokes its grant families with their live
/// access tokens, deletes its unredeemed codes and forgets its consents, in
/// the same transaction; other clients keep theirs, and a client created
/// again under the same id inherits nothing.
pub async fn deleting_a_client_revokes_its_grants_deletes_its_codes_and_forgets_its_consents(
    backend: Arc<dyn Backend>,
) {
    let store = backend.open().await;
    // c_keep stays; c_1 goes by delete_client, c_idle and c_unused by the
    // sweeps (self-registered, created at 100, never used).
    for (id, origin) in [
        ("c_keep", ClientOrigin::Cli),
        ("c_1", ClientOrigin::Cli),
        ("c_idle", ClientOrigin::Dynamic),
        ("c_unused", ClientOrigin::Dynamic),
    ] {
        store.insert_client(&client(id, origin, 100)).await.unwrap();
        for u in ["u_1", "u_2"] {
            bound(&store, u, id).await;
            let fid = format!("f_{id}_{u}");
            let c = AuthCode {
                client_id: id.into(),
                user_id: u.into(),
                ..code(&format!("code_{fid}"), &fid, 200)
            };
            assert!(store.insert_code(&c).await.unwrap());
            let fam = GrantFamily {
                client_id: id.into(),
                ..family(&fid, u, 10_000)
            };
            // Deleting clients revokes the access tokens still live at the
            // real time of deletion: this one is live for centuries.
            let at = IssuedToken {
                client_id: id.into(),
                ..issued(&format!("at_{fid}"), 9_999_999_999)
            };
            assert_eq!(
                store
                    .redeem_code(
                        &c.hash,
                        110,
                        &fam,
                        Some(&refresh(&format!("rt_{fid}"), &fid, 10_000)),
                        &at
                    )
                    .await
                    .unwrap(),
                Redeemed::Fresh
            );
            let pending = AuthCode {
                client_id: id.into(),
                user_id: u.into(),
                ..code(&format!("pending_{fid}"), &format!("p_{fid}"), 10_000)
            };
            assert!(store.insert_code(&pending).await.unwrap());
        }
    }

    assert!(store.delete_client("c_1").await.unwrap());
    assert_eq!(
        store
            .delete_idle_clients(ClientOrigin::Dynamic, 101)
            .await
            .unwrap(),
        2,
        "both self-registered clients are idle"
    );
    // (delete_unused_clients shares the same path: see below.)

    let gone = ["c_1", "c_idle", "c_unused"];
    for u in ["u_1", "u_2"] {
        for id in gone {
            let fid = format!("f_{id}_{u}");
            let (_, fam) = store
                .find_refresh_token(&format!("rt_{fid}"))
                .await
                .unwrap()
                .expect("the revoked family is kept until it expires");
            assert!(fam.revoked, "{fid}");
            assert!(
                store.is_revoked(&format!("at_{fid}")).await.unwrap(),
                "{fid}"
            );
            assert_eq!(
                store.get_code(&format!("pending_{fid}")).await.unwrap(),
                None,
                "{fid}"
            );
        }
        let fid = format!("f_c_keep_{u}");
        let (_, fam) = store
            .find_refresh_token(&format!("rt_{fid}"))
            .await
            .unwrap()
            .unwrap();
        assert!(!fam.revoked, "another client's grant stays");
        assert!(!store.is_revoked(&format!("at_{fid}")).await.unwrap());
        assert!(
            store
                .get_code(&format!("pending_{fid}"))
                .await
                .unwrap()
                .is_some()
        );
        let clients: Vec<String> = store
            .list_consents(u)
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.client_id)
            .collect();
        assert_eq!(clients, ["c_keep"], "{u}");
    }

    // Created again under the same id: no consent, so no code; the old
    // grant stays revoked.
    store
        .insert_client(&client("c_1", ClientOrigin::Cli, 900))
        .await
        .unwrap();
    let again = AuthCode {
        client_id: "c_1".into(),
        ..code("h_again", "f_again", 10_000)
    };
    assert!(!store.insert_code(&again).await.unwrap());
    let (_, fam) = store
        .find_refresh_token("rt_f_c_1_u_1")
        .await
        .unwrap()
        .unwrap();
    assert!(fam.revoked);
    assert!(
        !store
            .extend_family(
                "f_c_1_u_1",
                950,
                &refresh("rt_again", "f_c_1_u_1", 10_000),
                &issued("at_again", 1_000)
            )
            .await
            .unwrap()
    );

    // The never-used sweep takes the same things with it.
    store
        .insert_client(&client("c_new", ClientOrigin::Dynamic, 100))
        .await
        .unwrap();
    bound(&store, "u_1", "c_new").await;
    let pending = AuthCode {
        client_id: "c_new".into(),
        ..code("h_new", "f_new", 10_000)
    };
    assert!(store.insert_code(&pending).await.unwrap());
    assert_eq!(
        store
            .delete_unused_clients(ClientOrigin::Dynamic, 101)
            .await
            .unwrap(),
        1
    );
    assert_eq!(store.get_code("h_new").await.unwrap(), None);
    assert!(
        !store
            .list_consents("u_1")
            .await
            .unwrap()
            .iter()
            .any(|c| c.client_id == "c_new")
    );
}

/// Sign-ins and codes racing a password change or a consent withdrawal
/// through other stores (replicas): whatever the interleaving, nothing made
/// under the old state is left — no session row, no code row.
pub async fn inserts_racing_a_password_change_or_a_withdrawal_leave_nothing_behind(
    backend: Arc<dyn Backend>,
) {
    let replicas = [backend.open().await, backend.open().await];
    bound(&replicas[0], "u_1", "c_1").await;
    const ROUNDS: i64 = 16;
    for n in 0..ROUNDS {
        let generation = replicas[0]
            .get_user("u_1")
            .await
            .unwrap()
            .unwrap()
            .credentials_gen;
        let (a, b) = (replicas[0].clone(), replicas[1].clone());
        let s = BrowserSession {
            credentials_gen: generation,
            ..session("u_1", 10_000)
        };
        let c = AuthCode {
            credentials_gen: generation,
            ..code(&format!("h_{n}"), &format!("f_{n}"), 10_000)
        };
        let hash = format!("s_{n}");
        let new_hash = format!("hash {n}");
        let (sess, code_in, changed) = if n % 2 == 0 {
            tokio::join!(
                a.insert_session(&hash, &s),
                a.insert_code(&c),
                b.set_user_password("u_1", &new_hash, 500)
            )
        } else {
            let (sess, code_in, withdrawn) = tokio::join!(
                a.insert_session(&hash, &s),
                a.insert_code(&c),
                b.revoke_consent("u_1", "c_1", 500)
            );
            (sess, code_in, withdrawn.map(|w| w > 0))
        };
        assert!(changed.unwrap(), "round {n}");
        let (_, _) = (sess.unwrap(), code_in.unwrap());
        assert_eq!(
            replicas[0].get_code(&c.hash).await.unwrap(),
            None,
            "round {n}: a code made before the change is left"
        );
        if n % 2 == 0 {
            assert_eq!(replicas[1].get_session(&hash, 500).await.unwrap(), None);
            assert!(
                !replicas[1].delete_session(&hash).await.unwrap(),
                "round {n}: a session made before the reset is left"
            );
        } else {
            // Consent again for the next round.
            bound(&replicas[0], "u_1", "c_1").await;
        }
    }
}

/// A family refreshed many times keeps only the used refresh tokens a
/// retry inside the grace window may need (used within the last minute),
/// not one row per rotation; the live token is never touched.
pub async fn a_family_keeps_only_its_recently_used_refresh_tokens(backend: Arc<dyn Backend>) {
    use gatehouse_oauth::limits::USED_REFRESH_TOKEN_RETENTION_SECS;
    assert_eq!(USED_REFRESH_TOKEN_RETENTION_SECS, 60);
    let store = backend.open().await;
    granted(&store, "f_1", "u_1", 100_000, 500).await;
    let mut current = "rt_f_1".to_string();
    // A rotation every 25 s: rt_f_1 used at 200, rt_next_i used at 225 + 25 i.
    for i in 0..10 {
        let now = 200 + 25 * i;
        let used = store
            .use_refresh_token(&current, now)
            .await
            .unwrap()
            .unwrap();
        assert!(used.first_use, "rotation {i}");
        let next = format!("rt_next_{i}");
        assert!(
            store
                .extend_family(
                    "f_1",
                    now,
                    &refresh(&next, "f_1", 50_000),
                    &issued(&format!("at_next_{i}"), 600)
                )
                .await
                .unwrap()
        );
        current = next;
    }
    // rt_next_k was used at 225 + 25 k. At the last rotation (425) rows used
    // before 365 go: rt_next_6 (375), 7 (400) and 8 (425) stay.
    let mut kept = Vec::new();
    for h in [
        "rt_f_1",
        "rt_next_0",
        "rt_next_6",
        "rt_next_7",
        "rt_next_8",
        "rt_next_9",
    ] {
        kept.push(store.find_refresh_token(h).await.unwrap().is_some());
    }
    assert_eq!(kept, [false, false, true, true, true, true], "{kept:?}");
    let again = store
        .use_refresh_token("rt_next_8", 430)
        .await
        .unwrap()
        .unwrap();
    assert!(!again.first_use, "a recent one still reads as used");
}

/// A client identified by its metadata document URL is never a row: its
/// consent and codes are stored while its user exists; an unknown plain id
/// still stores nothing, and neither does an id that only looks like a URL
/// in another case.
pub async fn a_metadata_document_client_needs_no_row_for_consent_and_codes(
    backend: Arc<dyn Backend>,
) {
    let store = backend.open().await;
    parties(&store, &["u_1"], &[]).await;
    let doc = "https://app.example/oauth/client.json";
    let r = "https://api.example";
    let scopes = vec!["openid".to_string()];
    for id in [doc, "c_unknown", "HTTPS://app.example/oauth/client.json"] {
        store
            .record_consent("u_1", id, r, &scopes, 100)
            .await
            .unwrap();
    }
    let consents = store.list_consents("u_1").await.unwrap();
    assert_eq!(
        consents
            .iter()
            .map(|c| c.client_id.as_str())
            .collect::<Vec<_>>(),
        [doc]
    );
    let for_doc = AuthCode {
        client_id: doc.into(),
        ..code("h_doc", "f_doc", 200)
    };
    assert!(store.insert_code(&for_doc).await.unwrap());
    let for_unknown = AuthCode {
        client_id: "c_unknown".into(),
        ..code("h_unknown", "f_unknown", 200)
    };
    assert!(!store.insert_code(&for_unknown).await.unwrap());
    assert_eq!(store.get_code("h_unknown").await.unwrap(), None);
    assert_eq!(store.get_code("h_doc").await.unwrap(), Some(for_doc));
}

fn link(provider: &str, subject: &str, user_id: &str) -> LinkedIdentity {
    LinkedIdentity {
        provider: provider.into(),
        subject: subject.into(),
        user_id: user_id.into(),
        email: Some(format!("{subject}@example.com")),
        email_verified: true,
        linked_at: 100,
        last_sign_in_at: Some(100),
    }
}

/// Linked identities: found only by (provider, subject); a first sign-in
/// creates the account and the link together or neither; refreshed at each
/// sign-in with the account's groups; gone with the account.
pub async fn identities_link_by_provider_and_subject_only_and_go_with_the_account(
    backend: Arc<dyn Backend>,
) {
    let store = backend.open().await;
    let alice = user("u_alice", "alice");
    let corp = link("corp", "sub-1", "u_alice");
    assert!(store.create_linked_user(&alice, &corp).await.unwrap());
    let (found, l) = store
        .find_linked_user("corp", "sub-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((found.id.as_str(), l), ("u_alice", corp.clone()));
    // The same subject at another provider is another identity.
    assert!(
        store
            .find_linked_user("other", "sub-1")
            .await
            .unwrap()
            .is_none()
    );
    // A second first sign-in for the same identity (a concurrent one): no
    // second account.
    let bob = user("u_bob", "bob");
    assert!(
        !store
            .create_linked_user(&bob, &link("corp", "sub-1", "u_bob"))
            .await
            .unwrap()
    );
    assert!(store.get_user("u_bob").await.unwrap().is_none());
    // A taken name: a conflict, nothing stored.
    let taken = user("u_carol", "alice");
    assert!(matches!(
        store
            .create_linked_user(&taken, &link("corp", "sub-9", "u_carol"))
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert!(
        store
            .find_linked_user("corp", "sub-9")
            .await
            .unwrap()
            .is_none()
    );
    // Linking to an existing account; never to a missing one, never twice.
    assert!(
        store
            .link_identity(&link("github", "42", "u_alice"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .link_identity(&link("github", "42", "u_alice"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .link_identity(&link("github", "43", "u_nobody"))
            .await
            .unwrap()
    );
    // A sign-in refreshes the link's email and the account's groups.
    let mut now = corp.clone();
    now.email = Some("alice@new.example".into());
    now.email_verified = false;
    now.last_sign_in_at = Some(500);
    let groups = vec!["mcp-users".to_string()];
    assert!(store.refresh_linked_identity(&now, &groups).await.unwrap());
    let (found, l) = store
        .find_linked_user("corp", "sub-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((found.groups, l), (groups, now));
    let links = store.list_linked_identities("u_alice").await.unwrap();
    assert_eq!(
        links
            .iter()
            .map(|l| (l.provider.as_str(), l.subject.as_str()))
            .collect::<Vec<_>>(),
        [("corp", "sub-1"), ("github", "42")]
    );
    // Gone with the account.
    assert!(store.delete_user("u_alice", 600).await.unwrap());
    assert!(
        store
            .find_linked_user("corp", "sub-1")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .list_linked_identities("u_alice")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(!store.refresh_linked_identity(&corp, &[]).await.unwrap());
}

/// A sign-in sent to a provider is taken once, by one of any number of
/// callbacks racing for it, and never after it expired.
pub async fn a_federated_login_is_taken_once_and_never_after_it_expired(backend: Arc<dyn Backend>) {
    let store = backend.open().await;
    let login = |hash: &str, expires_at| FederatedLogin {
        hash: hash.into(),
        provider: "corp".into(),
        browser: "b".into(),
        request: "response_type=code&client_id=c_1".into(),
        expires_at,
    };
    store
        .insert_federated_login(&login("h1", 200))
        .await
        .unwrap();
    store
        .insert_federated_login(&login("h2", 200))
        .await
        .unwrap();
    assert!(matches!(
        store.insert_federated_login(&login("h1", 300)).await,
        Err(StoreError::Conflict(_))
    ));
    let replicas = [backend.open().await, backend.open().await, store.clone()];
    let takes: Vec<_> = replicas
        .into_iter()
        .map(|s| tokio::spawn(async move { s.take_federated_login("h1", 100).await }))
        .collect();
    let mut taken = Vec::new();
    for t in takes {
        taken.push(t.await.unwrap().unwrap());
    }
    assert_eq!(taken.iter().filter(|t| t.is_some()).count(), 1, "{taken:?}");
    assert_eq!(taken.into_iter().flatten().next(), Some(login("h1", 200)));
    // Expired: nothing, and gone.
    assert_eq!(store.take_federated_login("h2", 200).await.unwrap(), None);
    assert_eq!(store.take_federated_login("h2", 100).await.unwrap(), None);
    // Pruned at expiry with the rest.
    store
        .insert_federated_login(&login("h3", 200))
        .await
        .unwrap();
    store.prune_grants(200).await.unwrap();
    assert_eq!(store.take_federated_login("h3", 100).await.unwrap(), None);
}
