//! The MCP gateway: stands in front of MCP servers as their OAuth resource
//! server. It verifies access tokens, publishes RFC 9728 protected-resource
//! metadata, answers RFC 6750 challenges, and proxies Streamable HTTP.
//!
//! Every call is authorized with Cedar (`authz`); list responses are
//! filtered item by item (`filter`), in JSON and SSE alike.
//!
//! A request goes through stages (`handler`): the caller is authenticated,
//! every JSON-RPC message is decided (`plan`; batches element by element),
//! what is allowed is forwarded (`proxy`) and what comes back is filtered
//! (`filter`, `stream`, `respond`). Session ids, the ids of forwarded requests and SSE
//! event ids are bound to the caller with a MAC (`binding`) under a key the
//! replicas share, so nothing about a session lives in memory. Policies
//! reload without dropping requests ([`Reloader`]).
//!
//! The binary configures it from flags or TOML, standalone or embedded in
//! `serve` (where [`router_with_keys`] gets the server's own key set).

pub mod arguments;
pub mod authz;
pub mod binding;
mod caller;
pub mod deadlines;
pub mod decisions;
pub mod diagnostics;
pub mod filter;
mod handler;
pub mod jsonrpc;
pub mod keys;
pub mod mac;
pub mod message;
mod origin;
pub mod plan;
pub mod proxy;
pub mod refusal;
mod respond;
pub mod revocation;
mod route;
pub mod sse;
pub mod stream;
pub mod verify;

use axum::Router;
use axum::routing::{any, get};
use handler::handle;
use keys::{KeySource, RemoteJwks};
use origin::with_origin_policy;
use route::{Route, metadata, metadata_url};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use verify::{Verifier, VerifierConfig};

pub use deadlines::{DEFAULT_UPSTREAM_RESPONSE_TIMEOUT, issuer_client, upstream_client};
pub use handler::MAX_REQUEST_BYTES;
pub use mac::SessionKey;
pub use refusal::{FORBIDDEN_CODE, INVALID_PARAMS_CODE};

/// One fronted MCP server.
#[derive(Clone)]
pub struct ServerConfig {
    /// The exact public URL clients use; the gateway serves at its path.
    pub resource: String,
    pub upstream: String,
    pub required_scopes: Vec<String>,
    /// The `McpServer` entity's id in policies.
    pub name: String,
    /// What people and clients are shown: `resource_name` in the
    /// protected-resource metadata (RFC 9728 §2) — the configured `name`,
    /// else the resource's host and path.
    pub title: String,
    pub policy_file: std::path::PathBuf,
    pub schema_file: Option<std::path::PathBuf>,
    /// Extra JSON-RPC method names passed through without a Cedar decision.
    pub allowed_methods: Vec<String>,
}

#[derive(Clone)]
pub struct GatewayConfig {
    pub issuer: String,
    pub servers: Vec<ServerConfig>,
    pub algorithms: Vec<jsonwebtoken::Algorithm>,
    pub leeway: u64,
    pub accept_plain_jwt: bool,
    /// Browser origins allowed to call (`*`: any; bearer tokens are not
    /// ambient credentials, so that is the default).
    pub allowed_origins: Vec<String>,
    /// Ask the issuer on every call (cached briefly) whether the token is
    /// still active; `None`: trust verified tokens until `exp` (the default).
    pub token_status: Option<Arc<revocation::StatusCache>>,
    /// Longest wait for an upstream's response headers (then 504); the body
    /// streams for as long as the upstream sends it.
    pub upstream_response_timeout: Duration,
    /// Binds the session ids, request ids and SSE event ids the gateway hands
    /// out to the caller; replicas behind one address share it.
    pub session_key: SessionKey,
}

/// The path the gateway serves a resource at: exactly the resource URL's path
/// (docs/decisions.md "Gateway": always derived from `resource`). Refused: a
/// trailing slash (RFC 9728 metadata and the route would disagree about it), a
/// query or fragment, and characters the router would read as captures.
pub fn path_of(resource: &str) -> Result<String, String> {
    let url = url::Url::parse(resource).map_err(|e| format!("resource {resource:?}: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("resource {resource:?}: not an http(s) URL"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "resource {resource:?}: must not have a query or fragment"
        ));
    }
    let path = url.path();
    if path.len() > 1 && path.ends_with('/') {
        return Err(format!(
            "resource {resource:?}: must not end with '/' (use {:?})",
            resource.trim_end_matches('/')
        ));
    }
    if path
        .split('/')
        .any(|seg| seg.starts_with(':') || seg.starts_with('*') || seg.contains(['{', '}']))
    {
        return Err(format!(
            "resource {resource:?}: path segments may not start with ':' or '*' or contain braces"
        ));
    }
    Ok(if path.is_empty() { "/" } else { path }.to_string())
}

/// Reloads every server's policies from their files; a bad set keeps the
/// old one and says why. Requests in flight keep the set they started with.
#[derive(Clone)]
pub struct Reloader(Vec<Arc<Route>>);

impl Reloader {
    pub fn reload(&self) -> Result<(), String> {
        let mut errors = Vec::new();
        for route in &self.0 {
            let s = &route.server;
            match authz::Policies::load(&s.policy_file, s.schema_file.as_deref()) {
                Ok(p) => {
                    if let Ok(mut current) = route.policies.write() {
                        *current = Arc::new(p);
                    }
                    tracing::info!(server = %s.name, file = %s.policy_file.display(), "policies reloaded");
                }
                Err(e) => {
                    tracing::error!(server = %s.name, error = %e, "policy reload failed; keeping the previous policies");
                    errors.push(e);
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("\n"))
        }
    }
}

/// The protected-resource metadata path for a server served at `path`
/// (RFC 9728 §3.1: the well-known segment goes before the resource's path).
pub fn metadata_path(path: &str) -> String {
    if path == "/" {
        "/.well-known/oauth-protected-resource".to_string()
    } else {
        format!("/.well-known/oauth-protected-resource{path}")
    }
}

/// Every path the router serves for these servers. The root metadata document
/// is served only when exactly one server is fronted (docs/decisions.md
/// "Gateway"). A host merging the router with its own checks these first: axum
/// panics on overlapping routes.
pub fn served_paths(servers: &[ServerConfig]) -> Result<Vec<String>, String> {
    let mut paths = Vec::new();
    for server in servers {
        let path = path_of(&server.resource)?;
        if servers.len() == 1 && path != "/" {
            paths.push(metadata_path("/"));
        }
        paths.push(metadata_path(&path));
        paths.push(path);
    }
    Ok(paths)
}

/// Builds the gateway's router for every configured server, fetching the
/// issuer's keys from its JWKS (found through discovery).
pub fn router(config: GatewayConfig) -> Result<(Router, Reloader), String> {
    let keys = Arc::new(RemoteJwks::new(config.issuer.clone(), issuer_client()?));
    router_with_keys(config, keys)
}

/// Builds the gateway's router with the given key source — the binary's
/// `serve` passes a source over the authorization server's own live key set
/// so the embedded gateway never calls itself over HTTP. Policy files are loaded and validated here, so a bad one stops the
/// start, and two servers whose routes would overlap are refused.
pub fn router_with_keys(
    config: GatewayConfig,
    keys: Arc<dyn KeySource>,
) -> Result<(Router, Reloader), String> {
    let mut seen = std::collections::HashSet::new();
    for p in served_paths(&config.servers)? {
        if !seen.insert(p.clone()) {
            return Err(format!("two gateway routes would be served at {p}"));
        }
    }
    let http = proxy::Upstream {
        client: upstream_client()?,
        headers_timeout: config.upstream_response_timeout,
    };
    let mut app = Router::new();
    let mut routes = Vec::new();
    let single = config.servers.len() == 1;
    for server in config.servers {
        let path = path_of(&server.resource)?;
        if let Some(m) = server
            .allowed_methods
            .iter()
            .find(|m| jsonrpc::AUTHORIZED_METHODS.contains(&m.as_str()))
        {
            return Err(format!(
                "server {}: allowed_methods may not name {m}: the policies decide it",
                server.resource
            ));
        }
        let policies = authz::Policies::load(&server.policy_file, server.schema_file.as_deref())?;
        let verifier = Verifier::new(
            VerifierConfig {
                issuer: config.issuer.clone(),
                audience: server.resource.clone(),
                algorithms: config.algorithms.clone(),
                leeway: config.leeway,
                accept_plain_jwt: config.accept_plain_jwt,
            },
            keys.clone(),
        );
        let upstream = reqwest::Url::parse(&server.upstream)
            .map_err(|e| format!("upstream {:?}: {e}", server.upstream))?;
        let route = Arc::new(Route {
            token_status: config.token_status.clone(),
            upstream,
            metadata_url: metadata_url(&server.resource)?,
            policies: RwLock::new(Arc::new(policies)),
            session_key: config.session_key.clone(),
            server,
            verifier,
            http: http.clone(),
            issuer: config.issuer.clone(),
        });
        routes.push(route.clone());
        let well_known = metadata_path(&path);
        let mut r = Router::new()
            .route(&path, any(handle))
            .route(&well_known, get(metadata));
        if single && path != "/" {
            r = r.route("/.well-known/oauth-protected-resource", get(metadata));
        }
        app = app.merge(r.with_state(route));
    }
    Ok((
        with_origin_policy(app, &config.allowed_origins)?,
        Reloader(routes),
    ))
}
