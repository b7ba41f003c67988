//! What this server offers, in one place (docs/decisions.md "Principles"):
//! the grants and client authentication methods enabled under its settings,
//! the algorithms ID tokens can be signed with and the claims they carry.
//! The token endpoint dispatches through it, the discovery document and
//! the registration classifier read it, and so does `gatehouse client
//! create`, so none of them keeps a list of its own.

use crate::client::AuthMethod;
use crate::client_auth::{ClientAuthenticator, authenticators};
use crate::grants::{self, Grant};
use crate::keys::Alg;
use crate::people::accounts::USERINFO_CLAIMS;
use crate::registration::classify::Capabilities;

pub struct Registry {
    grants: Vec<Box<dyn Grant>>,
    authenticators: Vec<Box<dyn ClientAuthenticator>>,
    auth_methods: Vec<AuthMethod>,
    id_token_algs: Vec<Alg>,
    people: bool,
}

impl Registry {
    /// The registries as enabled: the code and refresh grants exist only
    /// while people may sign in (`[people] enabled`). ID tokens can be
    /// signed with RS256 (OIDC's default, always kept, docs/decisions.md
    /// "Tokens") and the access-token algorithm.
    pub fn new(people_enabled: bool, signing_alg: Alg) -> Registry {
        let grants: Vec<Box<dyn Grant>> = grants::all()
            .into_iter()
            .filter(|g| people_enabled || !g.for_people())
            .collect();
        // `none` serves only public clients, which exist only for the
        // code grant: without people it is neither offered nor accepted.
        let authenticators: Vec<Box<dyn ClientAuthenticator>> = authenticators()
            .into_iter()
            .filter(|a| people_enabled || a.method() != AuthMethod::None)
            .collect();
        let auth_methods = authenticators.iter().map(|a| a.method()).collect();
        let mut id_token_algs = vec![Alg::RS256];
        if signing_alg != Alg::RS256 {
            id_token_algs.push(signing_alg);
        }
        Registry {
            grants,
            authenticators,
            auth_methods,
            id_token_algs,
            people: people_enabled,
        }
    }

    /// Every grant this build implements, people's included: what the
    /// command line offers, since its configuration need not be the
    /// server's (`[people]` may be set only where the server runs).
    pub fn everything(signing_alg: Alg) -> Registry {
        Registry::new(true, signing_alg)
    }

    pub fn grants(&self) -> &[Box<dyn Grant>] {
        &self.grants
    }

    /// The grant answering `grant_type`, if enabled.
    pub fn grant(&self, grant_type: &str) -> Option<&dyn Grant> {
        self.grants
            .iter()
            .find(|g| g.grant_type() == grant_type)
            .map(|g| g.as_ref())
    }

    /// `grant_types_supported` (RFC 8414 §2).
    pub fn grant_types(&self) -> Vec<String> {
        self.grants
            .iter()
            .map(|g| g.grant_type().to_string())
            .collect()
    }

    pub fn authenticators(&self) -> &[Box<dyn ClientAuthenticator>] {
        &self.authenticators
    }

    /// The authenticator implementing `method`.
    pub fn authenticator(&self, method: AuthMethod) -> Option<&dyn ClientAuthenticator> {
        self.authenticators
            .iter()
            .find(|a| a.method() == method)
            .map(|a| a.as_ref())
    }

    /// `token_endpoint_auth_methods_supported` (RFC 8414 §2).
    pub fn auth_methods(&self) -> &[AuthMethod] {
        &self.auth_methods
    }

    /// The algorithms ID tokens may be signed with.
    pub fn id_token_algs(&self) -> &[Alg] {
        &self.id_token_algs
    }

    /// `claims_supported` (OIDC Discovery §3): what ID tokens and
    /// `userinfo` carry; `None` while people cannot sign in.
    pub fn claims_supported(&self) -> Option<Vec<String>> {
        self.people.then(|| {
            grants::people::ID_TOKEN_CLAIMS
                .iter()
                .chain(USERINFO_CLAIMS)
                .map(|c| c.to_string())
                .collect()
        })
    }

    /// What the registration classifier accepts. `scopes_supported`: `None`
    /// for any syntactically valid scope (the operator's command line when
    /// none is configured).
    pub fn capabilities<'a>(
        &'a self,
        scopes_supported: Option<Vec<String>>,
        allow_http_loopback_jwks_uri: bool,
    ) -> Capabilities<'a> {
        Capabilities {
            grants: &self.grants,
            auth_methods: &self.auth_methods,
            scopes_supported,
            allow_http_loopback_jwks_uri,
            id_token_algs: &self.id_token_algs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grants::{authorization_code, client_credentials, refresh_token};

    #[test]
    fn without_people_there_is_no_code_or_refresh_grant() {
        let machines = Registry::new(false, Alg::ES256);
        assert_eq!(machines.grant_types(), [client_credentials::GRANT_TYPE]);
        assert!(machines.claims_supported().is_none());
        let people = Registry::new(true, Alg::ES256);
        assert_eq!(
            people.grant_types(),
            [
                client_credentials::GRANT_TYPE,
                authorization_code::GRANT_TYPE,
                refresh_token::GRANT_TYPE
            ]
        );
        assert_eq!(people.id_token_algs(), [Alg::RS256, Alg::ES256]);
    }

    #[test]
    fn every_registered_method_has_its_authenticator() {
        let r = Registry::new(true, Alg::RS256);
        for m in r.auth_methods() {
            assert_eq!(r.authenticator(*m).map(|a| a.method()), Some(*m));
        }
        assert_eq!(r.id_token_algs(), [Alg::RS256]);
    }
}
