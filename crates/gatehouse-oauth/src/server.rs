//! The authorization server, assembled: settings, store, keys, secrets, the
//! client cache, the registries and the clock. Its jobs live beside their
//! concerns: token dispatch in `tokens/endpoint.rs`, client authentication
//! in `client_auth/`, registration in `registration/`, metadata in
//! `metadata.rs`, the authorization endpoint in `people/`.

use crate::cache::ClientCache;
use crate::client::{AuthMethod, Client, plausible_client_id};
use crate::client_auth::SecretVerifier;
use crate::client_auth::client_keys::{ClientKeySource, ClientKeysFetcher};
use crate::client_documents::cache::{DocumentClients, DocumentError, DocumentFetcher};
use crate::client_documents::is_document_id;
use crate::clock::{Clock, SystemClock};
use crate::error::OAuthError;
use crate::keys::Alg;
use crate::keys::keyring::KeyRing;
use crate::people::federated_sign_in::{ProviderCache, UpstreamFetcher};
use crate::registration::classify::Capabilities;
use crate::registry::Registry;
use crate::settings::Settings;
use crate::store::Store;
use std::sync::Arc;

pub struct AuthorizationServer {
    pub settings: Settings,
    pub store: Arc<dyn Store>,
    /// The signing keys; swapped in place when keys rotate.
    pub keys: KeyRing,
    pub secrets: SecretVerifier,
    pub clients: ClientCache,
    /// The grants, authentication methods and ID token algorithms enabled.
    pub(crate) registry: Registry,
    /// Where `private_key_jwt` clients' keys come from.
    pub(crate) client_keys: ClientKeySource,
    /// Clients identified by a metadata document URL.
    documents: DocumentClients,
    /// The HTTP side of upstream identity providers.
    pub(crate) upstream: Option<Arc<dyn UpstreamFetcher>>,
    /// Their discovery documents and keys.
    pub(crate) providers: ProviderCache,
    /// Every time the core reads (ARCHITECTURE.md "Time").
    clock: Arc<dyn Clock>,
}

impl AuthorizationServer {
    pub fn new(
        settings: Settings,
        store: Arc<dyn Store>,
        keys: KeyRing,
        secrets: SecretVerifier,
        clients: ClientCache,
    ) -> Self {
        AuthorizationServer {
            registry: Registry::new(settings.people.enabled, settings.signing_alg),
            settings,
            store,
            keys,
            secrets,
            clients,
            client_keys: ClientKeySource::new(None),
            documents: DocumentClients::new(None),
            upstream: None,
            providers: ProviderCache::default(),
            clock: Arc::new(SystemClock),
        }
    }

    /// Injects the HTTP side of `jwks_uri` clients (the core does no I/O).
    pub fn with_keys_fetcher(mut self, fetcher: Arc<dyn ClientKeysFetcher>) -> Self {
        self.client_keys = ClientKeySource::new(Some(fetcher));
        self
    }

    /// Injects the HTTP side of upstream identity providers.
    pub fn with_upstream_fetcher(mut self, fetcher: Arc<dyn UpstreamFetcher>) -> Self {
        self.upstream = Some(fetcher);
        self
    }

    /// Injects the HTTP side of metadata document clients.
    pub fn with_document_fetcher(mut self, fetcher: Arc<dyn DocumentFetcher>) -> Self {
        self.documents = DocumentClients::new(Some(fetcher));
        self
    }

    /// The client `client_id` names: a registered one (from the cache), or
    /// the one its metadata document describes. `None` for an unknown
    /// client or a refused document (the reason is logged); a document that
    /// cannot be fetched right now is a 503, not an unknown client.
    pub(crate) async fn client_named(
        &self,
        client_id: &str,
    ) -> Result<Option<Arc<Client>>, OAuthError> {
        if is_document_id(client_id) {
            return match self.document_client(client_id).await {
                Ok(c) => Ok(Some(c)),
                Err(DocumentError::Refused(reason)) => {
                    tracing::info!(client_id, reason, "client metadata document refused");
                    Ok(None)
                }
                Err(DocumentError::Unavailable(reason)) => {
                    tracing::warn!(client_id, reason, "client metadata document unavailable");
                    Err(document_unavailable())
                }
            };
        }
        if !plausible_client_id(client_id) {
            return Ok(None);
        }
        self.clients.get(self.store.as_ref(), client_id).await
    }

    /// The client described by the metadata document at `client_id`
    /// (docs/clients.md). `Err` says why it cannot be used.
    pub async fn document_client(&self, client_id: &str) -> Result<Arc<Client>, DocumentError> {
        let settings = &self.settings.client_metadata;
        if !settings.supported(self.settings.people.enabled) {
            return Err(DocumentError::Refused(
                "this server does not accept client metadata documents".into(),
            ));
        }
        self.documents
            .client(
                client_id,
                &self.capabilities(),
                settings,
                self.settings.client_auth.allow_http_loopback_jwks_uri,
                self.now(),
            )
            .await
    }

    /// Replaces the wall clock (tests: `ManualClock`).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Unix seconds, from the server's clock.
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// The registries this server was built with.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn auth_methods(&self) -> Vec<AuthMethod> {
        self.registry.auth_methods().to_vec()
    }

    /// What registration accepts here (RFC 7591 §2), from the registries.
    pub(crate) fn capabilities(&self) -> Capabilities<'_> {
        // No configured list: any well-formed scope (Settings::scope_supported).
        let scopes =
            (!self.settings.scopes_supported.is_empty()).then(|| self.settings.advertised_scopes());
        self.registry.capabilities(
            scopes,
            self.settings.client_auth.allow_http_loopback_jwks_uri,
        )
    }

    /// The algorithms ID tokens may be signed with.
    pub fn id_token_algs(&self) -> &[Alg] {
        self.registry.id_token_algs()
    }
}

/// A metadata document that could not be fetched right now: 503 with a
/// short `Retry-After`, never `invalid_client` (the client may be fine).
pub(crate) fn document_unavailable() -> OAuthError {
    OAuthError::new(
        crate::error::ErrorCode::TemporarilyUnavailable,
        "the client's metadata document cannot be fetched right now",
    )
    .with_retry_after(30)
}
