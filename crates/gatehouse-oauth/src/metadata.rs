//! Authorization server metadata (RFC 8414 §2), computed from what is
//! registered and enabled (docs/decisions.md "Principles"). One struct
//! renders both the RFC 8414 and the OpenID Connect discovery documents
//! (docs/decisions.md "Tokens").

use crate::client::AuthMethod;
use crate::client_auth::jwks::ASSERTION_ALGS;
use crate::issuer::{
    AUTHORIZE_PATH, INTROSPECT_PATH, JWKS_PATH, REGISTER_PATH, REVOKE_PATH, TOKEN_PATH,
    USERINFO_PATH,
};
use crate::people::pkce;
use crate::server::AuthorizationServer;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct ServerMetadata {
    pub issuer: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorization_endpoint: Option<String>,
    pub token_endpoint: String,
    pub jwks_uri: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registration_endpoint: Option<String>,
    /// RFC 8414 §2 (RECOMMENDED): omitted when there is nothing to list.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scopes_supported: Option<Vec<String>>,
    /// OIDC Discovery §3: `request_uri` is refused, and the default is `true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_uri_parameter_supported: Option<bool>,
    /// Required by RFC 8414 §2; empty while no grant uses the authorization endpoint.
    pub response_types_supported: Vec<String>,
    pub grant_types_supported: Vec<String>,
    pub token_endpoint_auth_methods_supported: Vec<String>,
    /// RFC 8414 §2: the JWS algorithms accepted on client assertions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_signing_alg_values_supported: Option<Vec<String>>,
    /// RFC 8414 §2 / RFC 7009.
    pub revocation_endpoint: String,
    pub revocation_endpoint_auth_methods_supported: Vec<String>,
    /// RFC 8414 §2: required once an assertion method is listed above.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revocation_endpoint_auth_signing_alg_values_supported: Option<Vec<String>>,
    /// RFC 8414 §2 / RFC 7662.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub userinfo_endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_modes_supported: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code_challenge_methods_supported: Option<Vec<String>>,
    /// RFC 9207 §3.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorization_response_iss_parameter_supported: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token_signing_alg_values_supported: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject_types_supported: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claims_supported: Option<Vec<String>>,
    pub introspection_endpoint: String,
    pub introspection_endpoint_auth_methods_supported: Vec<String>,
    /// RFC 8414 §2: required once an assertion method is listed above.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub introspection_endpoint_auth_signing_alg_values_supported: Option<Vec<String>>,
    /// draft-ietf-oauth-client-id-metadata-document: https URLs are accepted
    /// as client ids (docs/clients.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id_metadata_document_supported: Option<bool>,
}

impl AuthorizationServer {
    /// The discovery document: every list in it comes from the registries
    /// ([`crate::registry::Registry`]) and the settings.
    pub fn metadata(&self) -> ServerMetadata {
        let issuer = &self.settings.issuer;
        let people = self.settings.people.enabled;
        // The configured scopes and, while people can sign in, the OIDC
        // ones (OIDC Discovery §3); without a configured list any scope may
        // be registered, and only the OIDC ones are worth naming.
        let scopes_supported = Some(self.settings.advertised_scopes()).filter(|s| !s.is_empty());
        ServerMetadata {
            issuer: issuer.as_str().to_string(),
            authorization_endpoint: people.then(|| issuer.endpoint(AUTHORIZE_PATH)),
            userinfo_endpoint: people.then(|| issuer.endpoint(USERINFO_PATH)),
            response_modes_supported: people.then(|| vec!["query".to_string()]),
            code_challenge_methods_supported: people.then(|| vec![pkce::S256.to_string()]),
            authorization_response_iss_parameter_supported: people.then_some(true),
            id_token_signing_alg_values_supported: people.then(|| {
                self.id_token_algs()
                    .iter()
                    .map(|a| a.as_str().to_string())
                    .collect()
            }),
            subject_types_supported: people.then(|| vec!["public".to_string()]),
            claims_supported: self.registry.claims_supported(),
            token_endpoint: issuer.endpoint(TOKEN_PATH),
            jwks_uri: issuer.endpoint(JWKS_PATH),
            registration_endpoint: self
                .settings
                .registration
                .enabled()
                .then(|| issuer.endpoint(REGISTER_PATH)),
            scopes_supported,
            request_uri_parameter_supported: people.then_some(false),
            response_types_supported: if people {
                vec!["code".to_string()]
            } else {
                Vec::new()
            },
            grant_types_supported: self.registry.grant_types(),
            token_endpoint_auth_methods_supported: self
                .registry
                .auth_methods()
                .iter()
                .map(|m| m.as_str().to_string())
                .collect(),
            token_endpoint_auth_signing_alg_values_supported: self.assertion_algs(),
            revocation_endpoint: issuer.endpoint(REVOKE_PATH),
            revocation_endpoint_auth_methods_supported: self.revocation_auth_methods(),
            revocation_endpoint_auth_signing_alg_values_supported: self.assertion_algs(),
            introspection_endpoint: issuer.endpoint(INTROSPECT_PATH),
            introspection_endpoint_auth_methods_supported: self.introspection_auth_methods(),
            introspection_endpoint_auth_signing_alg_values_supported: self.assertion_algs(),
            client_id_metadata_document_supported: self
                .settings
                .client_metadata
                .supported(people)
                .then_some(true),
        }
    }

    /// `token_endpoint_auth_signing_alg_values_supported` (RFC 8414 §2):
    /// present only while an assertion-based method is registered.
    fn assertion_algs(&self) -> Option<Vec<String>> {
        self.registry
            .auth_methods()
            .contains(&AuthMethod::PrivateKeyJwt)
            .then(|| ASSERTION_ALGS.iter().map(|a| a.to_string()).collect())
    }
}
