//! The grants at the token endpoint, in-process (RFC 6749 §4.1, §4.4, §6;
//! OAuth 2.1 §4.1.3, §4.3; RFC 7636; RFC 8707): a real server over its own
//! SQLite store, time from a manual clock.

use gatehouse_oauth::client::AuthMethod;
use gatehouse_oauth::error::{ErrorCode, OAuthError};
use gatehouse_oauth::grant_records::lookup_hash;
use gatehouse_oauth::tokens::issue::TokenResponse;
use gatehouse_testkit::core::{
    Core, ISSUER, OTHER_RESOURCE, REDIRECT_URI, RESOURCE, T0, token_request, verifier,
};

fn invalid_grant(what: &str) -> OAuthError {
    OAuthError::new(
        ErrorCode::InvalidGrant,
        format!("the {what} is invalid, expired, revoked or was issued to another client"),
    )
}

/// A `client_credentials` request by a `client_secret_basic` client.
async fn client_credentials(
    core: &Core,
    id: &str,
    secret: &str,
    extra: &[(&str, &str)],
) -> Result<TokenResponse, OAuthError> {
    let mut pairs = vec![("grant_type", "client_credentials")];
    pairs.extend_from_slice(extra);
    core.server
        .token(&token_request(&pairs, Some((id, secret))))
        .await
}

#[tokio::test]
async fn client_credentials_token_claims_come_from_the_manual_clock() {
    let core = Core::new().await;
    let c = core.machine_client(AuthMethod::ClientSecretBasic).await;
    let secret = c.secret.as_deref().expect("a secret");
    core.clock.advance(42);
    let resp = client_credentials(&core, &c.client.id, secret, &[("resource", RESOURCE)])
        .await
        .expect("a token");
    assert_eq!(resp.token_type, "Bearer");
    assert_eq!(resp.expires_in, 300);
    let claims = core.access_token(&resp.access_token);
    assert_eq!(claims.iss, ISSUER);
    assert_eq!(claims.aud, RESOURCE);
    assert_eq!(claims.sub, c.client.id);
    assert_eq!(claims.client_id, c.client.id);
    assert_eq!(claims.iat, T0 + 42);
    assert_eq!(claims.exp, T0 + 42 + 300);
}

#[tokio::test]
async fn client_credentials_never_issues_a_refresh_or_id_token() {
    let core = Core::new().await;
    let c = core.machine_client(AuthMethod::ClientSecretBasic).await;
    let secret = c.secret.as_deref().expect("a secret");
    let resp = client_credentials(
        &core,
        &c.client.id,
        secret,
        &[("resource", OTHER_RESOURCE), ("scope", "read")],
    )
    .await
    .expect("a token");
    assert_eq!(resp.refresh_token, None);
    assert_eq!(resp.id_token, None);
    assert_eq!(resp.scope.as_deref(), Some("read"));
    assert_eq!(core.access_token(&resp.access_token).aud, OTHER_RESOURCE);
}

#[tokio::test]
async fn client_credentials_requires_a_resource_when_several_audiences_apply() {
    let core = Core::new().await;
    let c = core.machine_client(AuthMethod::ClientSecretBasic).await;
    let secret = c.secret.as_deref().expect("a secret");
    let err = client_credentials(&core, &c.client.id, secret, &[])
        .await
        .expect_err("no resource");
    let want = OAuthError::new(
        ErrorCode::InvalidTarget,
        "a resource parameter is required: more than one audience applies",
    );
    assert_eq!(err, want);
}

#[tokio::test]
async fn client_credentials_refuses_a_resource_that_is_not_an_allowed_audience() {
    let core = Core::new().await;
    let c = core.machine_client(AuthMethod::ClientSecretBasic).await;
    let secret = c.secret.as_deref().expect("a secret");
    let other = "https://elsewhere.example/mcp";
    let err = client_credentials(&core, &c.client.id, secret, &[("resource", other)])
        .await
        .expect_err("a foreign resource");
    let want = OAuthError::new(
        ErrorCode::InvalidTarget,
        format!("resource {other:?} is not an allowed audience"),
    );
    assert_eq!(err, want);
}

#[tokio::test]
async fn client_credentials_with_one_audience_needs_no_resource() {
    let core = Core::with(|s| s.allowed_audiences = vec![RESOURCE.into()]).await;
    let c = core.machine_client(AuthMethod::ClientSecretPost).await;
    let secret = c.secret.as_deref().expect("a secret");
    let req = token_request(
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &c.client.id),
            ("client_secret", secret),
        ],
        None,
    );
    let resp = core.server.token(&req).await.expect("a token");
    assert_eq!(core.access_token(&resp.access_token).aud, RESOURCE);
}

/// The code grant's token request of the public client `client_id`.
fn code_request<'a>(
    client_id: &'a str,
    code: &'a str,
    verifier: &'a str,
    redirect_uri: Option<&'a str>,
) -> Vec<(&'a str, &'a str)> {
    let mut pairs = vec![
        ("grant_type", "authorization_code"),
        ("client_id", client_id),
        ("code", code),
        ("code_verifier", verifier),
    ];
    if let Some(r) = redirect_uri {
        pairs.push(("redirect_uri", r));
    }
    pairs
}

async fn redeem(
    core: &Core,
    client_id: &str,
    code: &str,
    verifier: &str,
    redirect_uri: Option<&str>,
) -> Result<TokenResponse, OAuthError> {
    let pairs = code_request(client_id, code, verifier, redirect_uri);
    core.server.token(&token_request(&pairs, None)).await
}

/// A person's client, a code for it and the code's verifier.
async fn code_setup(core: &Core) -> (String, String, String, String) {
    let client = core.person_client().await.client;
    let person = core.person().await;
    let v = verifier();
    let code = core.code(&client.id, &person, &v).await;
    (client.id, code, v, person.user.id)
}

#[tokio::test]
async fn a_code_is_redeemed_once_for_an_access_and_a_refresh_token() {
    let core = Core::new().await;
    let (client_id, code, v, user_id) = code_setup(&core).await;
    core.clock.advance(5);
    let resp = redeem(&core, &client_id, &code, &v, Some(REDIRECT_URI))
        .await
        .expect("the code is good");
    let claims = core.access_token(&resp.access_token);
    assert_eq!(claims.sub, user_id);
    assert_eq!(claims.client_id, client_id);
    assert_eq!(claims.aud, RESOURCE);
    assert_eq!(claims.iat, T0 + 5);
    assert_eq!(resp.scope.as_deref(), Some("read"));
    assert!(resp.refresh_token.is_some());
}

#[tokio::test]
async fn a_replayed_code_fails_and_revokes_its_family() {
    let core = Core::new().await;
    let (client_id, code, v, _) = code_setup(&core).await;
    let first = redeem(&core, &client_id, &code, &v, Some(REDIRECT_URI))
        .await
        .expect("the first use");
    let err = redeem(&core, &client_id, &code, &v, Some(REDIRECT_URI))
        .await
        .expect_err("a replay");
    assert_eq!(err, invalid_grant("authorization code"));
    let refresh = first.refresh_token.expect("a refresh token");
    let (_, family) = core
        .store()
        .find_refresh_token(&lookup_hash(&refresh))
        .await
        .expect("the store")
        .expect("the refresh token is known");
    assert!(family.revoked, "the replay revokes the grant family");
    let jti = core.access_token(&first.access_token).jti;
    assert!(core.store().is_revoked(&jti).await.expect("the store"));
}

#[tokio::test]
async fn an_expired_code_fails_and_is_not_consumed() {
    let core = Core::new().await;
    let (client_id, code, v, _) = code_setup(&core).await;
    let lifetime = core.server.settings.people.code_lifetime.as_secs() as i64;
    core.clock.advance(lifetime);
    let err = redeem(&core, &client_id, &code, &v, Some(REDIRECT_URI))
        .await
        .expect_err("expired");
    assert_eq!(err, invalid_grant("authorization code"));
    // Nothing changed: back inside the lifetime the code still works once.
    core.clock.set(T0 + lifetime - 1);
    redeem(&core, &client_id, &code, &v, Some(REDIRECT_URI))
        .await
        .expect("the code was left unconsumed");
}

#[tokio::test]
async fn a_pkce_verifier_mismatch_fails_and_leaves_the_code_unconsumed() {
    let core = Core::new().await;
    let (client_id, code, v, _) = code_setup(&core).await;
    let err = redeem(&core, &client_id, &code, &verifier(), Some(REDIRECT_URI))
        .await
        .expect_err("wrong verifier");
    let want = OAuthError::new(
        ErrorCode::InvalidGrant,
        "code_verifier does not match the code_challenge",
    );
    assert_eq!(err, want);
    redeem(&core, &client_id, &code, &v, Some(REDIRECT_URI))
        .await
        .expect("the code was left unconsumed");
}

#[tokio::test]
async fn a_redirect_uri_mismatch_fails_and_leaves_the_code_unconsumed() {
    let core = Core::new().await;
    let (client_id, code, v, _) = code_setup(&core).await;
    let want = OAuthError::new(
        ErrorCode::InvalidGrant,
        "redirect_uri does not match the authorization request",
    );
    let other = "https://app.example/other";
    let err = redeem(&core, &client_id, &code, &v, Some(other)).await;
    assert_eq!(err.expect_err("another redirect URI"), want);
    // RFC 6749 §4.1.3: sent with the authorization request, so required.
    let err = redeem(&core, &client_id, &code, &v, None).await;
    assert_eq!(err.expect_err("no redirect URI"), want);
    redeem(&core, &client_id, &code, &v, Some(REDIRECT_URI))
        .await
        .expect("the code was left unconsumed");
}

#[tokio::test]
async fn a_code_presented_by_another_client_fails_and_stays_usable() {
    let core = Core::new().await;
    let (client_id, code, v, _) = code_setup(&core).await;
    let thief = core.person_client().await.client;
    let err = redeem(&core, &thief.id, &code, &v, Some(REDIRECT_URI))
        .await
        .expect_err("another client");
    assert_eq!(err, invalid_grant("authorization code"));
    redeem(&core, &client_id, &code, &v, Some(REDIRECT_URI))
        .await
        .expect("the code was left unconsumed");
}

#[tokio::test]
async fn without_people_the_code_grant_is_unsupported() {
    let core = Core::with(|s| s.people.enabled = false).await;
    let c = core.machine_client(AuthMethod::ClientSecretBasic).await;
    let secret = c.secret.as_deref().expect("a secret");
    let req = token_request(
        &[("grant_type", "authorization_code"), ("code", "x")],
        Some((&c.client.id, secret)),
    );
    let err = core.server.token(&req).await.expect_err("no code grant");
    let want = OAuthError::new(
        ErrorCode::UnsupportedGrantType,
        "the grant type is not supported by this server",
    );
    assert_eq!(err, want);
}

async fn refresh(core: &Core, client_id: &str, token: &str) -> Result<TokenResponse, OAuthError> {
    let pairs = [
        ("grant_type", "refresh_token"),
        ("client_id", client_id),
        ("refresh_token", token),
    ];
    core.server.token(&token_request(&pairs, None)).await
}

/// A redeemed code: the client id and its first refresh token.
async fn refresh_setup(core: &Core) -> (String, String) {
    let (client_id, code, v, _) = code_setup(core).await;
    let resp = redeem(core, &client_id, &code, &v, Some(REDIRECT_URI))
        .await
        .expect("the code is good");
    (client_id, resp.refresh_token.expect("a refresh token"))
}

#[tokio::test]
async fn a_refresh_token_rotates_into_a_new_one() {
    let core = Core::new().await;
    let (client_id, rt1) = refresh_setup(&core).await;
    core.clock.advance(100);
    let resp = refresh(&core, &client_id, &rt1).await.expect("rotation");
    let rt2 = resp.refresh_token.expect("a successor");
    assert_ne!(rt1, rt2);
    assert_eq!(core.access_token(&resp.access_token).iat, T0 + 100);
    core.clock.advance(100);
    refresh(&core, &client_id, &rt2)
        .await
        .expect("the successor works");
}

#[tokio::test]
async fn a_retry_within_the_grace_window_gets_the_same_successor() {
    let core = Core::new().await;
    let (client_id, rt1) = refresh_setup(&core).await;
    let first = refresh(&core, &client_id, &rt1).await.expect("rotation");
    let grace = core.server.settings.people.refresh_grace.as_secs() as i64;
    core.clock.advance(grace);
    let retry = refresh(&core, &client_id, &rt1).await.expect("a retry");
    assert_eq!(retry.refresh_token, first.refresh_token);
}

#[tokio::test]
async fn reuse_after_the_grace_window_revokes_the_family() {
    let core = Core::new().await;
    let (client_id, rt1) = refresh_setup(&core).await;
    let first = refresh(&core, &client_id, &rt1).await.expect("rotation");
    let rt2 = first.refresh_token.expect("a successor");
    let grace = core.server.settings.people.refresh_grace.as_secs() as i64;
    core.clock.advance(grace + 1);
    let err = refresh(&core, &client_id, &rt1).await.expect_err("reuse");
    assert_eq!(err, invalid_grant("refresh token"));
    let err = refresh(&core, &client_id, &rt2).await.expect_err("revoked");
    assert_eq!(err, invalid_grant("refresh token"));
    let jti = core.access_token(&first.access_token).jti;
    assert!(core.store().is_revoked(&jti).await.expect("the store"));
}

#[tokio::test]
async fn an_expired_refresh_token_fails_without_revoking_the_family() {
    let core = Core::new().await;
    let (client_id, rt1) = refresh_setup(&core).await;
    let lifetime = core.server.settings.people.refresh_token_lifetime.as_secs() as i64;
    core.clock.advance(lifetime);
    let err = refresh(&core, &client_id, &rt1).await.expect_err("expired");
    assert_eq!(err, invalid_grant("refresh token"));
    let (token, family) = core
        .store()
        .find_refresh_token(&lookup_hash(&rt1))
        .await
        .expect("the store")
        .expect("still known");
    assert!(!family.revoked);
    assert_eq!(token.used_at, None, "a refused request marks nothing used");
}

#[tokio::test]
async fn a_refresh_token_presented_by_another_client_fails_and_stays_unused() {
    let core = Core::new().await;
    let (client_id, rt1) = refresh_setup(&core).await;
    let thief = core.person_client().await.client;
    let err = refresh(&core, &thief.id, &rt1).await.expect_err("thief");
    assert_eq!(err, invalid_grant("refresh token"));
    refresh(&core, &client_id, &rt1)
        .await
        .expect("the token was left unused");
}

#[tokio::test]
async fn an_unknown_grant_type_is_unsupported_before_authentication() {
    let core = Core::new().await;
    let req = token_request(&[("grant_type", "password")], Some(("c_nobody", "x")));
    let err = core.server.token(&req).await.expect_err("no such grant");
    let want = OAuthError::new(
        ErrorCode::UnsupportedGrantType,
        "the grant type is not supported by this server",
    );
    assert_eq!(err, want);
}
