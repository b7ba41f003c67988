//! Dynamic registration's classifier, in-process (RFC 7591 §2, §3.2.2;
//! RFC 8252 §7; RFC 9700 §4.1): the metadata accepted for each kind of
//! client, and each refusal with its error code and description — and no
//! client stored.

use gatehouse_oauth::client::{AuthMethod, ClientOrigin};
use gatehouse_oauth::error::{ErrorCode, OAuthError};
use gatehouse_oauth::keys::{Alg, SigningKey};
use gatehouse_oauth::settings::RegistrationMode;
use gatehouse_testkit::core::{Core, REDIRECT_URI};
use serde_json::{Value, json};

fn metadata_error(d: &str) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidClientMetadata, d)
}

fn redirect_error(d: &str) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidRedirectUri, d)
}

fn jwks() -> Value {
    let key = SigningKey::generate(Alg::ES256).expect("a key").0;
    json!({ "keys": [key.public_jwk()] })
}

/// Registers `body` on `core`, expects `want`, and checks nothing was stored.
async fn refused_on(core: &Core, body: Value, want: OAuthError) {
    let err = core.register(body).await.err().expect("a refusal");
    assert_eq!(err, want);
    assert_eq!(core.client_count().await, 0, "no client stored");
}

async fn refused(body: Value, want: OAuthError) {
    refused_on(&Core::new().await, body, want).await;
}

#[tokio::test]
async fn a_public_client_gets_the_code_grant_by_default_and_no_secret() {
    let core = Core::new().await;
    let body = json!({
        "redirect_uris": [REDIRECT_URI],
        "token_endpoint_auth_method": "none",
        "response_types": ["code", "token"],
    });
    let created = core.register(body).await.expect("registered");
    let m = &created.client.metadata;
    assert_eq!(m.grant_types, ["authorization_code"]);
    assert_eq!(m.response_types, ["code"]);
    assert_eq!(m.redirect_uris, [REDIRECT_URI]);
    assert_eq!(m.token_endpoint_auth_method, AuthMethod::None);
    assert_eq!(created.client.origin, ClientOrigin::Dynamic);
    assert_eq!(created.secret, None);
    assert!(created.registration_access_token.is_some());
    assert_eq!(core.client_count().await, 1);
}

#[tokio::test]
async fn refresh_token_is_kept_beside_the_code_grant() {
    let core = Core::new().await;
    let body = json!({
        "redirect_uris": ["com.example.app:/oauth"],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
    });
    let created = core.register(body).await.expect("registered");
    let m = &created.client.metadata;
    assert_eq!(m.grant_types, ["authorization_code", "refresh_token"]);
    assert_eq!(m.redirect_uris, ["com.example.app:/oauth"]);
}

#[tokio::test]
async fn a_machine_client_defaults_to_client_secret_basic_with_a_secret() {
    let core = Core::new().await;
    let body = json!({"grant_types": ["client_credentials"], "scope": "read"});
    let created = core.register(body).await.expect("registered");
    let m = &created.client.metadata;
    assert_eq!(m.token_endpoint_auth_method, AuthMethod::ClientSecretBasic);
    assert_eq!(m.grant_types, ["client_credentials"]);
    assert_eq!(m.scopes, Some(vec!["read".to_string()]));
    assert!(created.secret.is_some());
    assert_eq!(core.client_count().await, 1);
}

#[tokio::test]
async fn a_private_key_jwt_client_registers_with_inline_jwks() {
    let core = Core::new().await;
    let body = json!({
        "grant_types": ["client_credentials"],
        "token_endpoint_auth_method": "private_key_jwt",
        "jwks": jwks(),
    });
    let created = core.register(body).await.expect("registered");
    let m = &created.client.metadata;
    assert_eq!(m.token_endpoint_auth_method, AuthMethod::PrivateKeyJwt);
    assert!(m.jwks.is_some());
    assert_eq!(created.secret, None);
}

#[tokio::test]
async fn unknown_grant_types_and_fields_are_dropped_not_failed() {
    let core = Core::new().await;
    let body = json!({
        "grant_types": ["client_credentials", "urn:example:custom"],
        "software_id": "app",
        "made_up_field": "x",
    });
    let created = core.register(body).await.expect("registered");
    let m = &created.client.metadata;
    assert_eq!(m.grant_types, ["client_credentials"]);
    assert_eq!(m.extra.get("software_id"), Some(&json!("app")));
    assert!(!m.extra.contains_key("made_up_field"));
}

#[tokio::test]
async fn the_implicit_and_password_grants_are_refused() {
    for g in ["implicit", "password"] {
        let want = metadata_error(&format!("the {g} grant is not supported by OAuth 2.1"));
        refused(json!({"grant_types": [g]}), want).await;
    }
}

#[tokio::test]
async fn an_empty_grant_list_is_refused() {
    let want = metadata_error("grant_types must not be empty");
    refused(json!({"grant_types": []}), want).await;
}

#[tokio::test]
async fn grant_types_that_are_not_a_list_of_strings_are_refused() {
    let want = metadata_error("grant_types must be an array of strings");
    refused(json!({"grant_types": "client_credentials"}), want).await;
}

#[tokio::test]
async fn refresh_token_alone_is_refused() {
    let want = metadata_error("refresh_token must accompany a grant that issues refresh tokens");
    refused(json!({"grant_types": ["refresh_token"]}), want).await;
}

#[tokio::test]
async fn only_unsupported_grant_types_are_refused_with_the_supported_list() {
    let want = metadata_error(
        "none of the requested grant types is supported (supported: client_credentials, authorization_code)",
    );
    refused(json!({"grant_types": ["urn:example:custom"]}), want).await;
}

#[tokio::test]
async fn method_none_with_client_credentials_is_refused() {
    let want = metadata_error(
        "token_endpoint_auth_method \"none\" cannot be used with the client_credentials grant: a public client cannot authenticate",
    );
    let body = json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "none"});
    refused(body, want).await;
}

#[tokio::test]
async fn an_unsupported_auth_method_is_refused_with_the_supported_list() {
    let want = metadata_error(
        "token_endpoint_auth_method \"client_secret_jwt\" is not supported (supported: client_secret_basic, client_secret_post, private_key_jwt, none)",
    );
    let body = json!({
        "grant_types": ["client_credentials"],
        "token_endpoint_auth_method": "client_secret_jwt",
    });
    refused(body, want).await;
}

#[tokio::test]
async fn the_code_grant_without_redirect_uris_is_refused() {
    let want = redirect_error("redirect_uris is required for the authorization_code grant");
    refused(json!({"token_endpoint_auth_method": "none"}), want).await;
}

#[tokio::test]
async fn each_unsafe_redirect_uri_is_refused_with_its_reason() {
    let core = Core::new().await;
    for (uri, why) in [
        (
            "http://app.example/cb",
            "http redirect URIs are allowed only for loopback hosts (RFC 8252 §7.3)",
        ),
        (
            "https://app.example/cb#x",
            "redirect URIs must not contain a fragment",
        ),
        (
            "https://*.example/cb",
            "redirect URIs must not contain wildcards",
        ),
        (
            "https://u:p@app.example/cb",
            "redirect URIs must not contain user information",
        ),
        (
            "javascript:alert(1)",
            "the javascript scheme is not allowed in redirect URIs",
        ),
        ("/cb", "redirect URIs must be absolute URIs"),
    ] {
        let body = json!({"redirect_uris": [uri], "token_endpoint_auth_method": "none"});
        refused_on(&core, body, redirect_error(why)).await;
    }
}

#[tokio::test]
async fn a_private_use_scheme_is_refused_for_a_confidential_client() {
    let uri = "com.example.app:/oauth";
    let want = redirect_error(&format!(
        "{uri:?}: private-use URI schemes are allowed only for public clients (token_endpoint_auth_method \"none\")"
    ));
    let body = json!({"redirect_uris": [uri], "token_endpoint_auth_method": "client_secret_basic"});
    refused(body, want).await;
}

#[tokio::test]
async fn jwks_and_jwks_uri_together_are_refused() {
    let want = metadata_error("give either jwks or jwks_uri, not both (RFC 7591 §2)");
    let body = json!({
        "grant_types": ["client_credentials"],
        "token_endpoint_auth_method": "private_key_jwt",
        "jwks": jwks(),
        "jwks_uri": "https://app.example/jwks.json",
    });
    refused(body, want).await;
}

#[tokio::test]
async fn private_key_jwt_without_keys_is_refused() {
    let want = metadata_error("private_key_jwt needs the client's public keys: jwks or jwks_uri");
    let body = json!({
        "grant_types": ["client_credentials"],
        "token_endpoint_auth_method": "private_key_jwt",
    });
    refused(body, want).await;
}

#[tokio::test]
async fn a_scope_outside_scopes_supported_is_refused() {
    let want = metadata_error("scope \"admin\" is not supported");
    let body = json!({"grant_types": ["client_credentials"], "scope": "read admin"});
    refused(body, want).await;
}

#[tokio::test]
async fn a_display_url_that_is_not_http_is_refused() {
    let want = metadata_error("client_uri must be an http(s) URL");
    let body = json!({"grant_types": ["client_credentials"], "client_uri": "ftp://app.example"});
    refused(body, want).await;
}

#[tokio::test]
async fn public_registration_can_be_turned_off() {
    let core = Core::with(|s| s.registration.public = false).await;
    let want = metadata_error("registration of public clients is disabled on this server");
    let body = json!({"redirect_uris": [REDIRECT_URI], "token_endpoint_auth_method": "none"});
    refused_on(&core, body, want).await;
}

#[tokio::test]
async fn confidential_registration_can_be_turned_off() {
    let core = Core::with(|s| s.registration.confidential = RegistrationMode::Off).await;
    let want = metadata_error(
        "registration of confidential clients is disabled on this server (registration.confidential = \"off\")",
    );
    refused_on(&core, json!({"grant_types": ["client_credentials"]}), want).await;
}
