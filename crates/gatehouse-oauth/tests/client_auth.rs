//! Client authentication at the token endpoint, in-process (RFC 6749
//! §2.3.1, §3.2.1; RFC 7523 §3; RFC 7521 §5.2): every method, and every
//! refusal answered with the one `invalid_client`.

use gatehouse_oauth::client::AuthMethod;
use gatehouse_oauth::crypto::b64url;
use gatehouse_oauth::error::{ErrorCode, OAuthError};
use gatehouse_oauth::keys::{Alg, SigningKey};
use gatehouse_oauth::registration::create::CreatedClient;
use gatehouse_oauth::tokens::issue::TokenResponse;
use gatehouse_testkit::core::{
    ASSERTION_TYPE, Core, RESOURCE, assertion, assertion_claims, token_request,
};
use serde_json::Value;

fn key() -> SigningKey {
    SigningKey::generate(Alg::ES256).expect("a key").0
}

fn secret(c: &CreatedClient) -> &str {
    c.secret.as_deref().expect("a secret")
}

/// A `client_credentials` request carrying `auth` (form pairs) and `basic`.
async fn token(
    core: &Core,
    auth: &[(&str, &str)],
    basic: Option<(&str, &str)>,
) -> Result<TokenResponse, OAuthError> {
    let mut pairs = vec![("grant_type", "client_credentials"), ("resource", RESOURCE)];
    pairs.extend_from_slice(auth);
    core.server.token(&token_request(&pairs, basic)).await
}

async fn with_assertion(core: &Core, jwt: &str) -> Result<TokenResponse, OAuthError> {
    let auth = [
        ("client_assertion_type", ASSERTION_TYPE),
        ("client_assertion", jwt),
    ];
    token(core, &auth, None).await
}

/// Whether `jti` is still unused by `client_id` (recording it now).
async fn jti_unused(core: &Core, client_id: &str, claims: &Value) -> bool {
    let jti = claims["jti"].as_str().expect("a jti");
    core.store()
        .record_assertion_jti(client_id, jti, core.now() + 3600)
        .await
        .expect("the store")
}

#[tokio::test]
async fn client_secret_basic_authenticates() {
    let core = Core::new().await;
    let c = core.machine_client(AuthMethod::ClientSecretBasic).await;
    let resp = token(&core, &[], Some((&c.client.id, secret(&c)))).await;
    assert_eq!(
        core.access_token(&resp.expect("a token").access_token).sub,
        c.client.id
    );
}

#[tokio::test]
async fn client_secret_post_authenticates() {
    let core = Core::new().await;
    let c = core.machine_client(AuthMethod::ClientSecretPost).await;
    let auth = [
        ("client_id", c.client.id.as_str()),
        ("client_secret", secret(&c)),
    ];
    let resp = token(&core, &auth, None).await;
    assert_eq!(
        core.access_token(&resp.expect("a token").access_token).sub,
        c.client.id
    );
}

#[tokio::test]
async fn a_wrong_secret_is_refused_as_invalid_client_with_a_basic_challenge() {
    let core = Core::new().await;
    let c = core.machine_client(AuthMethod::ClientSecretBasic).await;
    let err = token(&core, &[], Some((&c.client.id, "not-the-secret"))).await;
    assert_eq!(err.expect_err("wrong secret"), OAuthError::invalid_client());
}

#[tokio::test]
async fn an_unknown_client_is_refused_exactly_like_a_wrong_secret() {
    let core = Core::new().await;
    let err = token(&core, &[], Some(("c_nobody", "whatever"))).await;
    assert_eq!(
        err.expect_err("unknown client"),
        OAuthError::invalid_client()
    );
    let k = key();
    let jwt = assertion(&k, &assertion_claims("c_nobody", core.now()));
    let err = with_assertion(&core, &jwt).await;
    assert_eq!(
        err.expect_err("unknown client"),
        OAuthError::invalid_client()
    );
}

#[tokio::test]
async fn a_request_without_any_credential_is_refused() {
    let core = Core::new().await;
    core.machine_client(AuthMethod::ClientSecretBasic).await;
    let err = token(&core, &[], None).await;
    assert_eq!(
        err.expect_err("no credential"),
        OAuthError::invalid_client()
    );
}

#[tokio::test]
async fn two_methods_at_once_are_an_invalid_request() {
    let core = Core::new().await;
    let c = core.machine_client(AuthMethod::ClientSecretBasic).await;
    let auth = [
        ("client_id", c.client.id.as_str()),
        ("client_secret", secret(&c)),
    ];
    let err = token(&core, &auth, Some((&c.client.id, secret(&c)))).await;
    let want = OAuthError::invalid_request("more than one client authentication method used");
    assert_eq!(err.expect_err("two methods"), want);
}

#[tokio::test]
async fn a_body_client_id_naming_another_client_is_an_invalid_request() {
    let core = Core::new().await;
    let c = core.machine_client(AuthMethod::ClientSecretBasic).await;
    let auth = [("client_id", "c_someone_else")];
    let err = token(&core, &auth, Some((&c.client.id, secret(&c)))).await;
    let want = OAuthError::invalid_request("client_id does not match the authenticated client");
    assert_eq!(err.expect_err("mismatch"), want);
}

#[tokio::test]
async fn a_secret_client_naming_itself_without_its_secret_is_refused() {
    let core = Core::new().await;
    let c = core.machine_client(AuthMethod::ClientSecretBasic).await;
    let err = token(&core, &[("client_id", c.client.id.as_str())], None).await;
    assert_eq!(err.expect_err("method none"), OAuthError::invalid_client());
}

#[tokio::test]
async fn a_key_client_presenting_a_secret_is_refused() {
    let core = Core::new().await;
    let c = core.key_client(&key()).await;
    let err = token(&core, &[], Some((&c.client.id, "a-guessed-secret"))).await;
    assert_eq!(
        err.expect_err("not its method"),
        OAuthError::invalid_client()
    );
}

#[tokio::test]
async fn a_secret_client_presenting_an_assertion_is_refused() {
    let core = Core::new().await;
    let c = core.machine_client(AuthMethod::ClientSecretBasic).await;
    let claims = assertion_claims(&c.client.id, core.now());
    let err = with_assertion(&core, &assertion(&key(), &claims)).await;
    assert_eq!(
        err.expect_err("not its method"),
        OAuthError::invalid_client()
    );
    assert!(jti_unused(&core, &c.client.id, &claims).await);
}

#[tokio::test]
async fn a_public_client_names_itself_but_may_not_use_client_credentials() {
    let core = Core::new().await;
    let c = core.person_client().await;
    let err = token(&core, &[("client_id", c.client.id.as_str())], None).await;
    let want = OAuthError::new(
        ErrorCode::UnauthorizedClient,
        "the client is not registered for the client_credentials grant",
    );
    assert_eq!(err.expect_err("public client"), want);
}

#[tokio::test]
async fn a_public_client_presenting_a_secret_is_refused() {
    let core = Core::new().await;
    let c = core.person_client().await;
    let err = token(&core, &[], Some((&c.client.id, "anything"))).await;
    assert_eq!(
        err.expect_err("no secret to match"),
        OAuthError::invalid_client()
    );
}

#[tokio::test]
async fn private_key_jwt_with_a_good_assertion_authenticates_and_records_its_jti() {
    let core = Core::new().await;
    let k = key();
    let c = core.key_client(&k).await;
    let claims = assertion_claims(&c.client.id, core.now());
    let resp = with_assertion(&core, &assertion(&k, &claims)).await;
    assert_eq!(
        core.access_token(&resp.expect("a token").access_token).sub,
        c.client.id
    );
    assert!(
        !jti_unused(&core, &c.client.id, &claims).await,
        "jti recorded"
    );
}

/// A key client whose assertion, made from good claims by `change`, is
/// refused as `invalid_client` without its `jti` being recorded.
async fn refused(change: impl FnOnce(&Core, &mut Value)) {
    let core = Core::new().await;
    let k = key();
    let c = core.key_client(&k).await;
    let mut claims = assertion_claims(&c.client.id, core.now());
    change(&core, &mut claims);
    let err = with_assertion(&core, &assertion(&k, &claims)).await;
    assert_eq!(
        err.expect_err("a bad assertion"),
        OAuthError::invalid_client()
    );
    assert!(
        jti_unused(&core, &c.client.id, &claims).await,
        "jti not recorded"
    );
}

#[tokio::test]
async fn an_assertion_for_another_audience_is_refused() {
    refused(|_, c| c["aud"] = "https://other-server.example".into()).await;
}

#[tokio::test]
async fn an_assertion_expired_by_the_clock_is_refused() {
    // Past `exp` and the leeway (RFC 7523 §3 item 4).
    refused(|core, _| core.clock.advance(60 + 60)).await;
}

#[tokio::test]
async fn an_assertion_issued_in_the_future_is_refused() {
    refused(|core, c| {
        c["iat"] = (core.now() + 120).into();
        c["exp"] = (core.now() + 180).into();
    })
    .await;
}

#[tokio::test]
async fn an_assertion_not_yet_valid_is_refused() {
    refused(|core, c| c["nbf"] = (core.now() + 120).into()).await;
}

#[tokio::test]
async fn an_assertion_living_longer_than_allowed_is_refused() {
    refused(|core, c| c["exp"] = (core.now() + 2 * 3600).into()).await;
}

#[tokio::test]
async fn an_assertion_naming_another_issuer_is_refused() {
    refused(|_, c| c["iss"] = "c_someone_else".into()).await;
}

#[tokio::test]
async fn a_replayed_assertion_is_refused() {
    let core = Core::new().await;
    let k = key();
    let c = core.key_client(&k).await;
    let jwt = assertion(&k, &assertion_claims(&c.client.id, core.now()));
    with_assertion(&core, &jwt).await.expect("the first use");
    let err = with_assertion(&core, &jwt).await;
    assert_eq!(err.expect_err("a replay"), OAuthError::invalid_client());
}

#[tokio::test]
async fn an_assertion_signed_with_another_key_is_refused() {
    let core = Core::new().await;
    let c = core.key_client(&key()).await;
    let claims = assertion_claims(&c.client.id, core.now());
    let err = with_assertion(&core, &assertion(&key(), &claims)).await;
    assert_eq!(err.expect_err("wrong key"), OAuthError::invalid_client());
    assert!(jti_unused(&core, &c.client.id, &claims).await);
}

#[tokio::test]
async fn an_unsigned_assertion_alg_none_is_refused() {
    let core = Core::new().await;
    let k = key();
    let c = core.key_client(&k).await;
    let claims = assertion_claims(&c.client.id, core.now());
    let header = serde_json::json!({"alg": "none", "typ": "JWT", "kid": k.kid});
    let jwt = format!(
        "{}.{}.",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let err = with_assertion(&core, &jwt).await;
    assert_eq!(err.expect_err("alg none"), OAuthError::invalid_client());
    assert!(jti_unused(&core, &c.client.id, &claims).await);
}

#[tokio::test]
async fn an_assertion_of_another_type_is_refused() {
    let core = Core::new().await;
    let k = key();
    let c = core.key_client(&k).await;
    let claims = assertion_claims(&c.client.id, core.now());
    let jwt = assertion(&k, &claims);
    let auth = [
        ("client_assertion_type", "urn:example:other"),
        ("client_assertion", jwt.as_str()),
    ];
    let err = token(&core, &auth, None).await;
    assert_eq!(err.expect_err("wrong type"), OAuthError::invalid_client());
    assert!(jti_unused(&core, &c.client.id, &claims).await);
}

#[tokio::test]
async fn a_secret_past_its_lifetime_is_refused() {
    let core = Core::with(|s| s.secret_lifetime = Some(std::time::Duration::from_secs(3600))).await;
    let c = core.machine_client(AuthMethod::ClientSecretBasic).await;
    core.clock.advance(3599);
    token(&core, &[], Some((&c.client.id, secret(&c))))
        .await
        .expect("still live");
    core.clock.advance(1);
    let err = token(&core, &[], Some((&c.client.id, secret(&c)))).await;
    assert_eq!(err.expect_err("expired"), OAuthError::invalid_client());
}
