//! The registration classifier (`gatehouse_oauth::registration::classify::classify`),
//! which dynamic registration, its RFC 7592 updates and the command line all
//! go through: a JSON object becomes stored metadata or a precise
//! `invalid_client_metadata` / `invalid_redirect_uri` error.
//!
//! Input: a JSON document (the registration request body).

#![no_main]

use gatehouse_oauth::client::{AuthMethod, Client, ClientOrigin};
use gatehouse_oauth::client_auth::authenticators;
use gatehouse_oauth::error::ErrorCode;
use gatehouse_oauth::grants;
use gatehouse_oauth::keys::Alg;
use gatehouse_oauth::registration::classify::{Capabilities, classify};
use gatehouse_oauth::registration::redirect_uri::validate_redirect_uri;
use gatehouse_oauth::scope::parse_scope;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(Value::Object(request)) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let grants = grants::all();
    let methods: Vec<AuthMethod> = authenticators().iter().map(|a| a.method()).collect();
    let supported: Vec<String> = ["read", "write", "openid"].map(String::from).to_vec();
    let algs = [Alg::RS256, Alg::ES256];
    // The server's view (a configured scope list) and the command line's
    // (any scope), with and without loopback jwks_uri.
    for (scopes_supported, loopback) in [(Some(&supported[..]), false), (None, true)] {
        let caps = Capabilities {
            grants: &grants,
            auth_methods: &methods,
            scopes_supported: scopes_supported.map(<[String]>::to_vec),
            allow_http_loopback_jwks_uri: loopback,
            id_token_algs: &algs,
        };
        let m = match classify(&request, &caps, None) {
            Ok(m) => m,
            Err(e) => {
                assert!(
                    matches!(
                        e.code,
                        ErrorCode::InvalidClientMetadata | ErrorCode::InvalidRedirectUri
                    ),
                    "{e:?}"
                );
                assert!(!e.description.is_empty());
                continue;
            }
        };

        // What is stored obeys the registration rules.
        assert!(!m.grant_types.is_empty());
        assert!(m.grant_types.iter().any(|g| g != "refresh_token"));
        for g in &m.grant_types {
            assert!(grants.iter().any(|k| k.grant_type() == g), "{g}");
        }
        let needs_credential = grants
            .iter()
            .any(|g| m.grant_types.iter().any(|n| n == g.grant_type()) && g.requires_credential());
        if needs_credential {
            assert_ne!(m.token_endpoint_auth_method, AuthMethod::None);
        }
        for u in &m.redirect_uris {
            assert!(validate_redirect_uri(u).is_ok(), "{u}");
        }
        if m.grant_types.iter().any(|g| g == "authorization_code") {
            assert!(!m.redirect_uris.is_empty());
        }
        assert!(m.response_types.iter().all(|r| r == "code"));
        if let (Some(scopes), Some(supported)) = (&m.scopes, scopes_supported) {
            assert!(scopes.iter().all(|s| supported.contains(s)));
        }
        if let Some(scopes) = &m.scopes {
            assert_eq!(parse_scope(&scopes.join(" ")).as_ref(), Ok(scopes));
        }
        if m.token_endpoint_auth_method == AuthMethod::PrivateKeyJwt {
            assert!(m.jwks.is_some() != m.jwks_uri.is_some());
        } else {
            assert!(m.jwks.is_none() && m.jwks_uri.is_none());
        }

        // RFC 7592 §2.2: a client updates its registration by sending back
        // what it was given; that must classify to the same metadata.
        let client = Client {
            id: "c_fuzz".into(),
            origin: ClientOrigin::Dynamic,
            metadata: m.clone(),
            secrets: vec![],
            created_at: 0,
            registration_token: None,
            revision: 0,
        };
        let Value::Object(mut view) = client.registration_view() else {
            panic!("the registration view is an object");
        };
        view.remove("client_id");
        view.remove("client_id_issued_at");
        let again = classify(&view, &caps, None);
        assert_eq!(again.as_ref().map_err(|e| &e.description), Ok(&m));
    }
});
