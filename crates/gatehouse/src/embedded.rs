//! The gateway hosted by `gatehouse serve` next to the authorization server, on
//! the same listener (as ToolHive runs its authorization server inside its
//! proxy). docs/decisions.md "Gateway": it inherits `issuer` and `listen`,
//! reads the server's own key set, adds its resources to the allowed audiences,
//! and stays out of the server's routes.

use crate::config::Config;
use crate::gateway_cmd::spawn_reload_on_sighup;
use crate::gateway_config::{Mode, gateway_config};
use axum::Router;
use gatehouse_gateway::keys::{KeyFuture, KeySource, KeysUnavailable, LocalJwks};
use gatehouse_gateway::revocation::{StatusCache, StatusFuture, StatusUnavailable, TokenStatus};
use gatehouse_gateway::{GatewayConfig, SessionKey};
use gatehouse_oauth::AuthorizationServer;
use gatehouse_oauth::issuer::Issuer;
use gatehouse_oauth::resource::same_resource;
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// The embedded gateway's keys: the authorization server's live key set,
/// read in-process (docs/decisions.md "Gateway": the same key set the
/// JWKS endpoint serves), so a rotated key verifies as soon as the server
/// publishes it, without a restart and without an HTTP call to itself.
/// The parsed keys are kept per key-set version: a lookup costs a version
/// check and a map read.
struct ServerKeys {
    server: Arc<AuthorizationServer>,
    parsed: RwLock<(u64, Arc<LocalJwks>)>,
}

impl ServerKeys {
    fn new(server: Arc<AuthorizationServer>) -> Result<ServerKeys, String> {
        let set = server.keys.snapshot();
        let parsed = LocalJwks::from_document(&set.jwks())?;
        Ok(ServerKeys {
            server,
            parsed: RwLock::new((set.version, Arc::new(parsed))),
        })
    }

    fn current(&self) -> Result<Arc<LocalJwks>, KeysUnavailable> {
        let set = self.server.keys.snapshot();
        if let Ok(p) = self.parsed.read()
            && p.0 == set.version
        {
            return Ok(p.1.clone());
        }
        let parsed = Arc::new(LocalJwks::from_document(&set.jwks()).map_err(KeysUnavailable)?);
        if let Ok(mut p) = self.parsed.write()
            && p.0 < set.version
        {
            *p = (set.version, parsed.clone());
        }
        Ok(parsed)
    }
}

impl KeySource for ServerKeys {
    fn key<'a>(&'a self, kid: &'a str) -> KeyFuture<'a> {
        Box::pin(std::future::ready(self.current().map(|k| k.get(kid))))
    }
}

/// The embedded gateway's token status: the authorization server's own
/// answer (`live_token`), with no HTTP call to itself.
struct LocalStatus(Arc<AuthorizationServer>);

impl TokenStatus for LocalStatus {
    fn is_active<'a>(&'a self, token: &'a str) -> StatusFuture<'a> {
        Box::pin(async move {
            self.0
                .live_token(token)
                .await
                .map(|t| t.is_some())
                .map_err(|e| {
                    // Logged here, where the gateway answers for it, like
                    // the server's HTTP edge does.
                    gatehouse_server::report_store_failure(&e);
                    StatusUnavailable(e.detail())
                })
        })
    }
}

/// Before binding: the gateway's configuration when the config lists
/// servers, checked as far as possible without the bound address — the
/// policies are loaded too, so a bad file never opens a port. Each server's
/// resource becomes an allowed audience of `config`. `issuer` may still be a
/// provisional one (derived from a port-0 listen); only its path matters here.
pub fn prepare(config: &mut Config, issuer: &Issuer) -> Result<Option<GatewayConfig>, String> {
    if config.gateway.servers.is_empty() {
        return Ok(None);
    }
    let mut gateway = gateway_config(&config.gateway, Mode::Embedded(issuer))?;
    gateway.upstream_response_timeout = crate::limits::upstream_response_timeout(config)?;
    if !config.gateway.algorithms.contains(&config.signing_alg) {
        return Err(format!(
            "invalid configuration at `gateway.algorithms`: it must include signing_alg ({}), or no token this server issues would be accepted",
            config.signing_alg
        ));
    }
    let no_keys = LocalJwks::from_document(&serde_json::json!({ "keys": [] }))?;
    let _unused_until_bound =
        gatehouse_gateway::router_with_keys(gateway.clone(), Arc::new(no_keys))?;
    for s in &gateway.servers {
        if !config
            .allowed_audiences
            .iter()
            .any(|a| same_resource(a, &s.resource))
        {
            config.allowed_audiences.push(s.resource.clone());
        }
        for scope in &s.required_scopes {
            if !config.scopes_supported.contains(scope) {
                tracing::warn!(
                    resource = %s.resource,
                    scope = %scope,
                    "a required scope is not in scopes_supported: no token from this server can carry it"
                );
            }
        }
    }
    Ok(Some(gateway))
}

/// The embedded gateway's session key: sealed in the store next to the
/// server's other keys, so every replica sharing the store binds session ids
/// alike and a restart keeps them valid.
pub async fn session_key(server: &AuthorizationServer) -> Result<SessionKey, String> {
    let bytes = server
        .keys
        .gateway_session_key(server.store.as_ref(), server.now())
        .await
        .map_err(|e| e.to_string())?;
    SessionKey::from_bytes(&bytes)
}

/// After the server is built: the gateway's router, verifying with the
/// server's issuer and the very key set its JWKS endpoint publishes, as it
/// is at each call ([`ServerKeys`]; no HTTP call to itself). Policies reload on SIGHUP, as standalone.
///
/// With `check_revocation` (the cache time), every call also asks the server
/// in-process whether its token is still active — the same question
/// introspection answers — for an instant cut-off after a revocation.
pub fn router(
    mut gateway: GatewayConfig,
    server: &Arc<AuthorizationServer>,
    check_revocation: Option<Duration>,
    session_key: SessionKey,
) -> Result<Router, String> {
    gateway.issuer = server.settings.issuer.as_str().to_string();
    gateway.session_key = session_key;
    if let Some(ttl) = check_revocation {
        let local = LocalStatus(server.clone());
        gateway.token_status = Some(Arc::new(StatusCache::new(Arc::new(local), ttl)));
    }
    let keys = ServerKeys::new(server.clone())?;
    for s in &gateway.servers {
        tracing::info!(resource = %s.resource, upstream = %s.upstream, name = %s.name, "fronting MCP server");
    }
    let (app, reloader) = gatehouse_gateway::router_with_keys(gateway, Arc::new(keys))?;
    spawn_reload_on_sighup(reloader);
    Ok(app)
}
