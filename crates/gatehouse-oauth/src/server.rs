//! The authorization server's protocol logic, independent of HTTP: the token
//! endpoint's dispatch through the grant registry, registration, metadata.

use crate::assertion::{self, Audience, JWT_BEARER_ASSERTION_TYPE};
use crate::cache::ClientCache;
use crate::client::{
    AuthMethod, Client, ClientMetadata, ClientOrigin, CredentialKind, new_client_id,
    plausible_client_id,
};
use crate::client_auth::{
    ClientAuthenticator, Credential, SecretVerifier, authenticators, find_credential,
};
use crate::client_keys::{ClientKeySource, ClientKeysFetcher};
use crate::error::{Challenge, ErrorCode, OAuthError, StoreError};
use crate::grants::{self, Grant, TokenContext};
use crate::issuer::{
    AUTHORIZE_PATH, INTROSPECT_PATH, JWKS_PATH, REGISTER_PATH, REVOKE_PATH, TOKEN_PATH,
    USERINFO_PATH,
};
use crate::jwks::ASSERTION_ALGS;
use crate::keyring::KeyRing;
use crate::keys::Alg;
use crate::management::mint_secret;
use crate::metadata::ServerMetadata;
use crate::pkce;
use crate::registration::{Capabilities, classify};
use crate::scope::OPENID;
use crate::settings::{RegistrationMode, Settings};
use crate::store::{Admission, RegistrationCaps, Store};
use crate::token::TokenResponse;
use crate::token_request::TokenRequest;
use crate::util::now;
use aws_lc_rs::digest;
use serde_json::Value;
use std::sync::Arc;
use subtle::ConstantTimeEq;

pub struct AuthorizationServer {
    pub settings: Settings,
    pub store: Arc<dyn Store>,
    /// The signing keys; swapped in place when keys rotate.
    pub keys: KeyRing,
    pub secrets: SecretVerifier,
    pub clients: ClientCache,
    grants: Vec<Box<dyn Grant>>,
    authenticators: Vec<Box<dyn ClientAuthenticator>>,
    /// Where `private_key_jwt` clients' keys come from.
    client_keys: ClientKeySource,
    /// What ID tokens can be signed with: RS256 (OIDC's default, always
    /// kept, docs/decisions.md "Tokens") and the access-token algorithm.
    id_token_algs: Vec<Alg>,
}

/// A newly created client and its secret, shown this once.
pub struct CreatedClient {
    pub client: Client,
    pub secret: Option<String>,
    /// RFC 7592 §3: the token that manages this registration (self-registered
    /// clients only), shown this once; only its HMAC is stored.
    pub registration_access_token: Option<String>,
    /// RFC 7592 §3: where the registration is read, replaced and deleted.
    pub registration_client_uri: Option<String>,
}

impl CreatedClient {
    /// The RFC 7591 §3.2.1 response body (with RFC 7592 §3 members when the
    /// registration can be managed).
    pub fn response(&self) -> Value {
        let mut body = self.client.registration_view();
        if let Value::Object(m) = &mut body {
            if let Some(secret) = &self.secret {
                m.insert("client_secret".into(), secret.clone().into());
                // 0 = never expires; strict clients require the member.
                m.insert(
                    "client_secret_expires_at".into(),
                    crate::management::secret_expires_at(&self.client).into(),
                );
            }
            if let Some(token) = &self.registration_access_token {
                m.insert("registration_access_token".into(), token.clone().into());
            }
            if let Some(uri) = &self.registration_client_uri {
                m.insert("registration_client_uri".into(), uri.clone().into());
            }
        }
        body
    }
}

impl AuthorizationServer {
    pub fn new(
        settings: Settings,
        store: Arc<dyn Store>,
        keys: KeyRing,
        secrets: SecretVerifier,
        clients: ClientCache,
    ) -> Self {
        // The code and refresh grants exist only while people may sign in.
        let grants = grants::all()
            .into_iter()
            .filter(|g| settings.people.enabled || !g.for_people())
            .collect();
        let mut id_token_algs = vec![Alg::RS256];
        if settings.signing_alg != Alg::RS256 {
            id_token_algs.push(settings.signing_alg);
        }
        AuthorizationServer {
            id_token_algs,
            settings,
            store,
            keys,
            secrets,
            clients,
            grants,
            authenticators: authenticators(),
            client_keys: ClientKeySource::new(None),
        }
    }

    /// Injects the HTTP side of `jwks_uri` clients (the core does no I/O).
    pub fn with_keys_fetcher(mut self, fetcher: Arc<dyn ClientKeysFetcher>) -> Self {
        self.client_keys = ClientKeySource::new(Some(fetcher));
        self
    }

    pub fn auth_methods(&self) -> Vec<AuthMethod> {
        self.authenticators.iter().map(|a| a.method()).collect()
    }

    pub(crate) fn capabilities<'a>(&'a self, methods: &'a [AuthMethod]) -> Capabilities<'a> {
        Capabilities {
            grants: &self.grants,
            auth_methods: methods,
            scopes_supported: Some(&self.settings.scopes_supported),
            allow_http_loopback_jwks_uri: self.settings.client_auth.allow_http_loopback_jwks_uri,
            id_token_algs: &self.id_token_algs,
        }
    }

    /// The algorithms ID tokens may be signed with.
    pub fn id_token_algs(&self) -> &[Alg] {
        &self.id_token_algs
    }

    pub fn metadata(&self) -> ServerMetadata {
        let issuer = &self.settings.issuer;
        let people = self.settings.people.enabled;
        let mut scopes_supported = self.settings.scopes_supported.clone();
        // An empty list means "any scope" and is left alone; otherwise
        // `openid` is one of them whenever people can sign in.
        if people && !scopes_supported.is_empty() && !scopes_supported.iter().any(|s| s == OPENID) {
            scopes_supported.push(OPENID.to_string());
        }
        ServerMetadata {
            issuer: issuer.as_str().to_string(),
            authorization_endpoint: people.then(|| issuer.endpoint(AUTHORIZE_PATH)),
            userinfo_endpoint: people.then(|| issuer.endpoint(USERINFO_PATH)),
            response_modes_supported: people.then(|| vec!["query".to_string()]),
            code_challenge_methods_supported: people.then(|| vec![pkce::S256.to_string()]),
            authorization_response_iss_parameter_supported: people.then_some(true),
            id_token_signing_alg_values_supported: people.then(|| {
                self.id_token_algs
                    .iter()
                    .map(|a| a.as_str().to_string())
                    .collect()
            }),
            subject_types_supported: people.then(|| vec!["public".to_string()]),
            claims_supported: people.then(|| {
                [
                    "sub",
                    "iss",
                    "aud",
                    "exp",
                    "iat",
                    "auth_time",
                    "nonce",
                    "preferred_username",
                    "groups",
                ]
                .iter()
                .map(|c| c.to_string())
                .collect()
            }),
            token_endpoint: issuer.endpoint(TOKEN_PATH),
            jwks_uri: issuer.endpoint(JWKS_PATH),
            registration_endpoint: self
                .settings
                .registration
                .enabled()
                .then(|| issuer.endpoint(REGISTER_PATH)),
            scopes_supported,
            response_types_supported: if people {
                vec!["code".to_string()]
            } else {
                Vec::new()
            },
            grant_types_supported: self
                .grants
                .iter()
                .map(|g| g.grant_type().to_string())
                .collect(),
            token_endpoint_auth_methods_supported: self
                .authenticators
                .iter()
                .map(|a| a.method().as_str().to_string())
                .collect(),
            token_endpoint_auth_signing_alg_values_supported: self.assertion_algs(),
            revocation_endpoint: issuer.endpoint(REVOKE_PATH),
            revocation_endpoint_auth_methods_supported: self.revocation_auth_methods(),
            revocation_endpoint_auth_signing_alg_values_supported: self.assertion_algs(),
            introspection_endpoint: issuer.endpoint(INTROSPECT_PATH),
            introspection_endpoint_auth_methods_supported: self.introspection_auth_methods(),
            introspection_endpoint_auth_signing_alg_values_supported: self.assertion_algs(),
        }
    }

    /// `token_endpoint_auth_signing_alg_values_supported` (RFC 8414 §2):
    /// present only while an assertion-based method is registered.
    fn assertion_algs(&self) -> Option<Vec<String>> {
        self.auth_methods()
            .contains(&AuthMethod::PrivateKeyJwt)
            .then(|| ASSERTION_ALGS.iter().map(|a| a.to_string()).collect())
    }

    /// The token endpoint (RFC 6749 §3.2): find the grant, authenticate the
    /// client, check it may use the grant, and let the grant answer.
    pub async fn token(&self, req: &TokenRequest) -> Result<TokenResponse, OAuthError> {
        let grant_type = req
            .param("grant_type")
            .ok_or_else(|| OAuthError::invalid_request("grant_type is required"))?;
        let grant = self
            .grants
            .iter()
            .find(|g| g.grant_type() == grant_type)
            .ok_or_else(|| {
                OAuthError::new(
                    ErrorCode::UnsupportedGrantType,
                    "the grant type is not supported by this server",
                )
            })?;
        let client = self.authenticate(req, TOKEN_PATH).await?;
        if !client.allows_grant(grant_type) {
            return Err(OAuthError::new(
                ErrorCode::UnauthorizedClient,
                format!("the client is not registered for the {grant_type} grant"),
            ));
        }
        let keys = self.keys.snapshot();
        let ctx = TokenContext {
            settings: &self.settings,
            keys: &keys,
            store: self.store.as_ref(),
            secrets: &self.secrets,
            now: now(),
        };
        grant.exchange(&ctx, &client, req).await
    }

    /// The client a token, revocation or introspection request claims to
    /// be, before anything is verified (the Basic or body `client_id`, or an
    /// assertion's unverified `sub`): what failed authentications are
    /// counted under. `None` when the request names no single client.
    pub fn claimed_client_id(&self, req: &TokenRequest) -> Option<String> {
        find_credential(&self.authenticators, req)
            .ok()
            .map(|p| p.client_id)
    }

    /// Authenticates the client of a token request (also used as-is by the
    /// revocation and introspection endpoints). Every failure is the same
    /// `invalid_client`, whatever went wrong.
    /// `endpoint` is the path called (the token, revocation or introspection
    /// endpoint): an assertion may be addressed to it.
    pub(crate) async fn authenticate(
        &self,
        req: &TokenRequest,
        endpoint: &str,
    ) -> Result<Arc<Client>, OAuthError> {
        let presented = find_credential(&self.authenticators, req)?;
        let fail = OAuthError::invalid_client;
        let known = if plausible_client_id(&presented.client_id) {
            self.clients
                .get(self.store.as_ref(), &presented.client_id)
                .await?
        } else {
            None
        };
        let client = match (&presented.credential, known) {
            (Credential::Secret(secret), None) => {
                self.secrets.dummy_verify(secret);
                return Err(fail());
            }
            (Credential::Secret(secret), Some(client)) => {
                let kind_ok = client.metadata.token_endpoint_auth_method.credential_kind()
                    == presented.credential.kind();
                if !(self.secrets.verify(&client, secret, now()) && kind_ok) {
                    return Err(fail());
                }
                client
            }
            (Credential::Assertion { assertion, .. }, None) => {
                assertion::dummy_verify(assertion);
                tracing::info!("client assertion refused: unknown or unreadable client");
                return Err(fail());
            }
            (Credential::Assertion { assertion, kind }, Some(client)) => {
                self.check_assertion(&client, assertion, kind, endpoint)
                    .await?;
                client
            }
            (Credential::None, None) => return Err(fail()),
            // A confidential client must always prove itself: naming it is
            // not enough (the kind of credential is pinned, docs/decisions.md
            // "Keys, secrets and identifiers").
            (Credential::None, Some(client)) => {
                if client.metadata.token_endpoint_auth_method != AuthMethod::None {
                    return Err(fail());
                }
                client
            }
        };
        if client.origin == ClientOrigin::Dynamic {
            self.clients.mark_used(&client.id);
        }
        Ok(client)
    }

    /// Verifies a `private_key_jwt` assertion (see [`crate::assertion`]) and
    /// records its `jti` so it is accepted once only, on every replica
    /// (RFC 7523 §3 item 7). Refusals are logged with their reason, never
    /// with the assertion, and answered with the one `invalid_client`.
    async fn check_assertion(
        &self,
        client: &Client,
        assertion: &str,
        kind: &str,
        endpoint: &str,
    ) -> Result<(), OAuthError> {
        let refuse = |reason: &str| {
            tracing::info!(client_id = %client.id, reason, "client assertion refused");
            OAuthError::invalid_client()
        };
        if client.metadata.token_endpoint_auth_method.credential_kind()
            != CredentialKind::PrivateKeyJwt
        {
            return Err(refuse("client is not registered for private_key_jwt"));
        }
        if kind != JWT_BEARER_ASSERTION_TYPE {
            return Err(refuse("client_assertion_type is not jwt-bearer"));
        }
        let issuer = &self.settings.issuer;
        let audience = Audience {
            issuer: issuer.as_str(),
            token_endpoint: &issuer.endpoint(TOKEN_PATH),
            called_endpoint: &issuer.endpoint(endpoint),
        };
        let allow = self.settings.client_auth.allow_http_loopback_jwks_uri;
        let keys = self
            .client_keys
            .keys(client, assertion, allow)
            .await
            .map_err(|e| refuse(&e))?;
        let accepted = assertion::verify_with_keys(
            assertion,
            client,
            &keys,
            &audience,
            &self.settings.client_auth,
            now(),
        )
        .map_err(refuse)?;
        let fresh = self
            .store
            .record_assertion_jti(&client.id, &accepted.jti, accepted.remember_until)
            .await?;
        if !fresh {
            return Err(refuse("jti already used"));
        }
        Ok(())
    }

    /// Dynamic client registration (RFC 7591 §3). `initial_token` is the
    /// bearer token the request carried, if any; `source` the client address
    /// the registration counts against (`registration.max_clients_per_address`).
    pub async fn register(
        &self,
        body: &serde_json::Map<String, Value>,
        initial_token: Option<&str>,
        source: &str,
    ) -> Result<CreatedClient, OAuthError> {
        let reg = &self.settings.registration;
        let token_required = || {
            OAuthError::new(
                ErrorCode::InvalidToken,
                "a valid initial access token is required to register a confidential client",
            )
            .with_challenge(Challenge::Bearer)
        };
        let token_ok = initial_token.is_some_and(|t| self.initial_token_ok(t));
        // When only confidential clients may register and they need a
        // token, check it before validating anything, so an unauthenticated
        // caller learns nothing about what would be accepted.
        let public = reg.public && self.settings.people.enabled;
        if !public && reg.confidential == RegistrationMode::InitialToken && !token_ok {
            return Err(token_required());
        }
        let methods = self.auth_methods();
        let metadata = classify(body, &self.capabilities(&methods), None)?;
        if metadata.token_endpoint_auth_method == AuthMethod::None && !public {
            return Err(OAuthError::invalid_metadata(
                "registration of public clients is disabled on this server",
            ));
        }
        // private_key_jwt carries no secret, but it is a confidential client
        // all the same (RFC 6749 §2.1), so `registration.confidential` gates
        // it like the secret methods.
        let confidential = metadata.token_endpoint_auth_method != AuthMethod::None;
        if confidential {
            match reg.confidential {
                RegistrationMode::Off => {
                    return Err(OAuthError::invalid_metadata(
                        "registration of confidential clients is disabled on this server (registration.confidential = \"off\")",
                    ));
                }
                RegistrationMode::InitialToken if !token_ok => return Err(token_required()),
                RegistrationMode::InitialToken | RegistrationMode::Open => {}
            }
        }
        let registrant = Registrant {
            address: source,
            caps: RegistrationCaps {
                total: reg.max_clients,
                per_address: reg.max_clients_per_address,
            },
        };
        let mut created = create_client(
            self.store.as_ref(),
            &self.secrets,
            new_client_id(),
            ClientOrigin::Dynamic,
            metadata,
            self.settings.secret_lifetime,
            Some(&registrant),
        )
        .await?;
        created.registration_client_uri = Some(self.registration_client_uri(&created.client.id));
        Ok(created)
    }

    /// Initial access tokens compare in constant time over their SHA-256, so
    /// neither content nor length leaks.
    fn initial_token_ok(&self, presented: &str) -> bool {
        let p = digest::digest(&digest::SHA256, presented.as_bytes());
        let mut ok = false;
        for t in &self.settings.registration.initial_access_tokens {
            let c = digest::digest(&digest::SHA256, t.as_bytes());
            ok |= bool::from(p.as_ref().ct_eq(c.as_ref()));
        }
        ok
    }
}

/// Where a self-registered client came from, and the caps it is stored
/// under (`registration.max_clients`, `registration.max_clients_per_address`).
pub struct Registrant<'a> {
    pub address: &'a str,
    pub caps: RegistrationCaps,
}

/// Stores a new client, minting its secret when its method needs one (valid
/// for `secret_lifetime` when set) and, for a self-registered client, its
/// RFC 7592 registration access token. Both are returned once; only their
/// HMACs are stored. With a `registrant`, the client is stored only while
/// the store and its address are under their caps, checked by the store in
/// the same step as the insert.
pub async fn create_client(
    store: &dyn Store,
    secrets: &SecretVerifier,
    id: String,
    origin: ClientOrigin,
    metadata: ClientMetadata,
    secret_lifetime: Option<std::time::Duration>,
    registrant: Option<&Registrant<'_>>,
) -> Result<CreatedClient, OAuthError> {
    let created_at = now();
    let (stored, secret) =
        if metadata.token_endpoint_auth_method.credential_kind() == CredentialKind::Secret {
            let (secret, record) = mint_secret(secrets, created_at, secret_lifetime)?;
            (vec![record], Some(secret))
        } else {
            (Vec::new(), None)
        };
    let (token, registration_token) = if origin == ClientOrigin::Dynamic {
        let (token, record) = mint_secret(secrets, created_at, None)?;
        (Some(token), Some(record))
    } else {
        (None, None)
    };
    let client = Client {
        id,
        origin,
        metadata,
        secrets: stored,
        created_at,
        registration_token,
        revision: 0,
    };
    let stored = match registrant {
        None => store
            .insert_client(&client)
            .await
            .map(|()| Admission::Stored),
        Some(r) => {
            store
                .insert_registered_client(&client, r.address, r.caps)
                .await
        }
    };
    match stored {
        Ok(Admission::TotalCapReached) => {
            tracing::warn!(
                cap = registrant.map(|r| r.caps.total),
                "dynamic registration cap reached"
            );
            Err(OAuthError::new(
                ErrorCode::TemporarilyUnavailable,
                "the server is not accepting new registrations",
            ))
        }
        // Refused like the total cap: the address must delete a
        // registration (RFC 7592 §2.3) or wait for an unused one to expire,
        // which does not pass in seconds.
        Ok(Admission::AddressCapReached) => {
            if let Some(r) = registrant {
                tracing::warn!(
                    client_addr = r.address,
                    cap = r.caps.per_address,
                    "per-address registration cap reached"
                );
            }
            Err(OAuthError::new(
                ErrorCode::TemporarilyUnavailable,
                "this address has registered as many clients as it may; delete unused registrations or wait for them to expire",
            ))
        }
        Ok(Admission::Stored) => Ok(CreatedClient {
            client,
            secret,
            registration_access_token: token,
            registration_client_uri: None,
        }),
        Err(StoreError::Conflict(_)) => Err(OAuthError::invalid_request(format!(
            "a client with id {:?} already exists",
            client.id
        ))),
        Err(e) => Err(e.into()),
    }
}
