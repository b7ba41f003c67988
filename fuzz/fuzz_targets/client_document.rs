//! Client ID Metadata Documents (`gatehouse_oauth::client_documents`): a
//! `client_id` URL and the document fetched from it become a client or a
//! reason, never a panic; an accepted client obeys the document rules.
//!
//! Input: the URL on the first line, the document after it.

#![no_main]

use gatehouse_oauth::client::{AuthMethod, ClientOrigin};
use gatehouse_oauth::client_documents::document::{client_from_document, host_admitted};
use gatehouse_oauth::client_documents::{HostPattern, validate_document_url};
use gatehouse_oauth::keys::Alg;
use gatehouse_oauth::registry::Registry;
use gatehouse_oauth::settings::{ClientMetadataSettings, MachineRule};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (id, body) = text.split_once('\n').unwrap_or((&text, ""));
    for loopback in [false, true] {
        let Ok(url) = validate_document_url(id, loopback) else {
            continue;
        };
        // What the URL rules promise.
        assert_eq!(url.as_str(), id);
        assert_eq!(url.scheme(), "https");
        assert!(url.query().is_none() && url.fragment().is_none());
        assert!(url.username().is_empty() && url.password().is_none());
        assert!(url.path().len() > 1);
        let registry = Registry::new(true, Alg::ES256);
        let caps = registry.capabilities(None, loopback);
        let settings = ClientMetadataSettings {
            machine_rules: vec![MachineRule {
                host: HostPattern::parse("*.example.com").expect("pattern"),
                audiences: vec![],
                scopes: vec!["tools:call".into()],
            }],
            ..Default::default()
        };
        let _ = host_admitted(&url, &settings);
        let Ok(client) = client_from_document(&url, body.as_bytes(), &caps, &settings, 0) else {
            continue;
        };
        assert_eq!(client.id, id);
        assert_eq!(client.origin, ClientOrigin::Document);
        assert!(client.secrets.is_empty());
        assert!(matches!(
            client.metadata.token_endpoint_auth_method,
            AuthMethod::None | AuthMethod::PrivateKeyJwt
        ));
        if client.allows_grant("authorization_code") {
            assert!(client.metadata.client_name.is_some());
            assert!(!client.metadata.redirect_uris.is_empty());
        }
        if client.allows_grant("client_credentials") {
            let host = url.host_str().unwrap_or_default();
            assert!(settings.machine_rules[0].host.matches(host));
            if let Some(scopes) = &client.metadata.scopes {
                assert!(scopes.iter().all(|s| s == "tools:call"));
            }
        }
    }
});
