//! Federated sign-in's callback in-process, against a provider the test
//! plays (an `UpstreamFetcher` answering discovery, the JWKS and the token
//! endpoint), over a real SQLite store: what the real provider in
//! `crates/gatehouse/tests/it/federation.rs` cannot be made to do — leave
//! out `iss`, publish an encryption key, omit or backdate `auth_time`.

use async_trait::async_trait;
use gatehouse_oauth::grant_records::User;
use gatehouse_oauth::keys::{Alg, SigningKey};
use gatehouse_oauth::people::federated_sign_in::{FederationError, UpstreamError, UpstreamFetcher};
use gatehouse_oauth::people::federation::IdentityRules;
use gatehouse_oauth::settings::ProviderSettings;
use gatehouse_testkit::core::{Core, T0};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use url::Url;

const ISS: &str = "https://login.example.com";

/// The provider: its discovery document says `iss_supported`; the token
/// endpoint answers with an ID token made from `claims` (the nonce filled
/// in from the sign-in under way), signed with `key`.
struct Provider {
    key: SigningKey,
    extra_keys: Vec<Value>,
    iss_supported: bool,
    claims: Mutex<Value>,
    nonce: Mutex<String>,
}

#[async_trait]
impl UpstreamFetcher for Provider {
    async fn get_json(&self, url: &Url, _: bool) -> Result<Value, UpstreamError> {
        match url.path() {
            "/.well-known/openid-configuration" => Ok(json!({
                "issuer": ISS,
                "authorization_endpoint": format!("{ISS}/auth"),
                "token_endpoint": format!("{ISS}/token"),
                "jwks_uri": format!("{ISS}/jwks"),
                "authorization_response_iss_parameter_supported": self.iss_supported,
            })),
            "/jwks" => {
                let mut keys = self.extra_keys.clone();
                keys.push(self.key.public_jwk());
                Ok(json!({ "keys": keys }))
            }
            other => Err(UpstreamError::Failed(format!("no {other}"))),
        }
    }

    async fn post_form(
        &self,
        _: &Url,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
        _: bool,
    ) -> Result<(u16, Value), UpstreamError> {
        assert_eq!(basic, Some(("gatehouse", "s3cret")));
        let code = form.iter().find(|(k, _)| *k == "code").map(|(_, v)| *v);
        if code != Some("good") {
            return Ok((400, json!({"error": "invalid_grant"})));
        }
        let mut claims = self.claims.lock().unwrap().clone();
        claims["nonce"] = json!(self.nonce.lock().unwrap().clone());
        let id_token = self.key.sign_jwt("JWT", &claims).unwrap();
        Ok((
            200,
            json!({"access_token": "at", "token_type": "Bearer", "id_token": id_token}),
        ))
    }
}

fn provider_settings() -> ProviderSettings {
    ProviderSettings {
        id: "corp".into(),
        name: "Corp".into(),
        issuer: ISS.into(),
        client_id: "gatehouse".into(),
        client_secret: Some("s3cret".into()),
        scopes: vec!["openid".into()],
        rules: IdentityRules {
            groups_claim: Some("groups".into()),
            ..Default::default()
        },
    }
}

fn claims(now: i64) -> Value {
    json!({"iss": ISS, "aud": "gatehouse", "sub": "s-1", "exp": now + 300, "iat": now,
           "preferred_username": "alice", "email": "alice@example.com", "email_verified": true,
           "groups": ["eng"]})
}

async fn core_with(provider: Arc<Provider>) -> Core {
    Core::with(|s| s.people.providers = vec![provider_settings()])
        .await
        .map_server(|s| s.with_upstream_fetcher(provider))
}

/// Starts a sign-in for `request` from browser `binding`; tells the
/// provider its nonce; returns the state.
async fn start(core: &Core, provider: &Provider, request: &str, binding: &str) -> String {
    let p = core.server.provider("corp").unwrap().clone();
    let url = core
        .server
        .begin_federated_sign_in(&p, request, binding)
        .await
        .unwrap();
    let url = Url::parse(&url).unwrap();
    let q: HashMap<String, String> = url.query_pairs().into_owned().collect();
    *provider.nonce.lock().unwrap() = q["nonce"].clone();
    assert_eq!(q["code_challenge_method"], "S256");
    q["state"].clone()
}

fn params(state: &str, iss: Option<&str>) -> HashMap<String, String> {
    let mut p = HashMap::from([
        ("state".to_string(), state.to_string()),
        ("code".to_string(), "good".to_string()),
    ]);
    if let Some(i) = iss {
        p.insert("iss".into(), i.into());
    }
    p
}

fn refused_for(r: Result<(User, String, i64), FederationError>, why: &str) {
    match r {
        Err(FederationError::Refused { reason, .. }) => {
            assert!(reason.contains(why), "want {why:?}, got {reason:?}")
        }
        Err(other) => panic!("want a refusal for {why:?}, got {other:?}"),
        Ok(_) => panic!("want a refusal for {why:?}, got a sign-in"),
    }
}

fn provider(iss_supported: bool) -> Arc<Provider> {
    let (key, _) = SigningKey::generate(Alg::ES256).unwrap();
    Arc::new(Provider {
        key,
        extra_keys: Vec::new(),
        iss_supported,
        claims: Mutex::new(claims(T0)),
        nonce: Mutex::new(String::new()),
    })
}

#[tokio::test]
async fn a_sign_in_links_once_and_its_state_works_once_from_its_own_browser() {
    let p = provider(true);
    let core = core_with(p.clone()).await;
    // A local account already named alice: the new one gets another name.
    let local = User {
        id: "u_local".into(),
        name: "alice".into(),
        password_hash: "x".into(),
        groups: Vec::new(),
        created_at: T0,
        credentials_gen: 0,
    };
    core.store().insert_user(&local).await.unwrap();
    let state = start(&core, &p, "client_id=c&response_type=code", "browser-1").await;
    // Another browser: refused, and that spent the state.
    refused_for(
        core.server
            .finish_federated_sign_in(&params(&state, Some(ISS)), Some("browser-2"))
            .await,
        "another browser",
    );
    refused_for(
        core.server
            .finish_federated_sign_in(&params(&state, Some(ISS)), Some("browser-1"))
            .await,
        "used or expired",
    );
    let state = start(&core, &p, "client_id=c&response_type=code", "browser-1").await;
    let (user, request, auth_time) = core
        .server
        .finish_federated_sign_in(&params(&state, Some(ISS)), Some("browser-1"))
        .await
        .unwrap();
    assert_eq!(request, "client_id=c&response_type=code");
    assert_eq!(user.groups, ["eng"]);
    assert_eq!(user.name, "alice-corp");
    assert_ne!(user.id, "u_local");
    assert_eq!(auth_time, T0);
    // The same identity again: the same account.
    let state = start(&core, &p, "client_id=c&response_type=code", "browser-1").await;
    let (again, _, _) = core
        .server
        .finish_federated_sign_in(&params(&state, Some(ISS)), Some("browser-1"))
        .await
        .unwrap();
    assert_eq!(again.id, user.id);
    assert_eq!(core.store().list_users().await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_provider_that_sends_iss_must_send_its_own() {
    let p = provider(true);
    let core = core_with(p.clone()).await;
    for (iss, why) in [
        (None, "no iss"),
        (Some("https://evil.example"), "is not provider"),
    ] {
        let state = start(&core, &p, "client_id=c", "b").await;
        refused_for(
            core.server
                .finish_federated_sign_in(&params(&state, iss), Some("b"))
                .await,
            why,
        );
    }
    // A made-up code: the provider refuses, so does Gatehouse.
    let state = start(&core, &p, "client_id=c", "b").await;
    let mut forged = params(&state, Some(ISS));
    forged.insert("code".into(), "forged".into());
    refused_for(
        core.server
            .finish_federated_sign_in(&forged, Some("b"))
            .await,
        "without an ID token",
    );
    assert!(core.store().list_users().await.unwrap().is_empty());
}

#[tokio::test]
async fn keys_the_provider_publishes_for_encryption_are_skipped() {
    let (key, _) = SigningKey::generate(Alg::ES256).unwrap();
    let p = Arc::new(Provider {
        key,
        // An encryption key (Keycloak publishes RSA-OAEP ones) and a key
        // of a curve Gatehouse does not verify.
        extra_keys: vec![
            json!({"kty": "RSA", "use": "enc", "alg": "RSA-OAEP", "kid": "enc-1", "n": "AQAB", "e": "AQAB"}),
            json!({"kty": "EC", "crv": "P-521", "kid": "p521", "x": "AQAB", "y": "AQAB"}),
        ],
        iss_supported: false,
        claims: Mutex::new(claims(T0)),
        nonce: Mutex::new(String::new()),
    });
    let core = core_with(p.clone()).await;
    let state = start(&core, &p, "client_id=c", "b").await;
    assert!(
        core.server
            .finish_federated_sign_in(&params(&state, None), Some("b"))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn a_fresh_sign_in_asked_of_gatehouse_is_asked_of_the_provider_and_checked() {
    let p = provider(true);
    let core = core_with(p.clone()).await;
    // prompt=login: passed on, and the ID token must show a sign-in after
    // the request.
    let prov = core.server.provider("corp").unwrap().clone();
    let url = core
        .server
        .begin_federated_sign_in(&prov, "client_id=c&prompt=login&max_age=60", "b")
        .await
        .unwrap();
    assert!(
        url.contains("prompt=login") && url.contains("max_age=60"),
        "{url}"
    );
    let no_auth_time = start(&core, &p, "client_id=c&prompt=login", "b").await;
    refused_for(
        core.server
            .finish_federated_sign_in(&params(&no_auth_time, Some(ISS)), Some("b"))
            .await,
        "no auth_time",
    );
    p.claims.lock().unwrap()["auth_time"] = json!(T0 - 3600);
    let stale = start(&core, &p, "client_id=c&prompt=login", "b").await;
    refused_for(
        core.server
            .finish_federated_sign_in(&params(&stale, Some(ISS)), Some("b"))
            .await,
        "older than the request",
    );
    let too_old = start(&core, &p, "client_id=c&max_age=600", "b").await;
    refused_for(
        core.server
            .finish_federated_sign_in(&params(&too_old, Some(ISS)), Some("b"))
            .await,
        "older than max_age",
    );
    p.claims.lock().unwrap()["auth_time"] = json!(T0 - 5);
    let fresh = start(&core, &p, "client_id=c&prompt=login&max_age=600", "b").await;
    let (_, _, auth_time) = core
        .server
        .finish_federated_sign_in(&params(&fresh, Some(ISS)), Some("b"))
        .await
        .unwrap();
    assert_eq!(auth_time, T0 - 5);
}

#[tokio::test]
async fn with_several_providers_sharing_the_callback_each_must_send_iss() {
    // A provider that does not send iss is fine alone…
    let p = provider(false);
    let core = core_with(p.clone()).await;
    let state = start(&core, &p, "client_id=c", "b").await;
    assert!(
        core.server
            .finish_federated_sign_in(&params(&state, None), Some("b"))
            .await
            .is_ok()
    );
    // …but beside another, nothing says which one answered.
    let mut other = provider_settings();
    other.id = "other".into();
    let core = Core::with(|s| s.people.providers = vec![provider_settings(), other])
        .await
        .map_server(|s| s.with_upstream_fetcher(p.clone()));
    let state = start(&core, &p, "client_id=c", "b").await;
    refused_for(
        core.server
            .finish_federated_sign_in(&params(&state, None), Some("b"))
            .await,
        "several providers need",
    );
    assert_eq!(core.store().list_users().await.unwrap().len(), 0);
}
