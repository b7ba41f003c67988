//! The MCP gateway: stands in front of MCP servers as their OAuth resource
//! server. It verifies access tokens, publishes RFC 9728 protected-resource
//! metadata, answers RFC 6750 challenges, and proxies Streamable HTTP.
//!
//! Every call is authorized with Cedar (`authz`); list responses are
//! filtered item by item (`filter`), in JSON and SSE alike.
//!
//! Each `Mcp-Session-Id` is bound to the principal whose request created it;
//! policies reload without dropping requests ([`Reloader`]).
//!
//! Batches are decided element by element.
//!
//! Not yet here (issue 3 continues): TOML configuration and embedding in
//! `serve`.

pub mod arguments;
pub mod authz;
pub mod diagnostics;
pub mod filter;
pub mod jsonrpc;
pub mod keys;
pub mod proxy;
pub mod sessions;
pub mod verify;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::Response;
use axum::routing::{any, get};
use keys::{KeySource, RemoteJwks};
use serde_json::Value;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use verify::{Verifier, VerifierConfig, VerifyError};

/// Largest request body passed upstream.
pub const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;

/// One fronted MCP server.
#[derive(Clone)]
pub struct ServerConfig {
    /// The exact public URL clients use; the gateway serves at its path.
    pub resource: String,
    pub upstream: String,
    pub required_scopes: Vec<String>,
    /// The `McpServer` entity's id in policies.
    pub name: String,
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
}

struct Route {
    server: ServerConfig,
    /// `server.upstream`, parsed once.
    upstream: reqwest::Url,
    policies: RwLock<Arc<authz::Policies>>,
    sessions: sessions::Sessions,
    metadata_url: String,
    verifier: Verifier,
    http: reqwest::Client,
    issuer: String,
}

/// The path the gateway serves a resource at: the resource URL's path,
/// without a trailing slash (DECISIONS.md: always derived from `resource`).
pub fn path_of(resource: &str) -> Result<String, String> {
    let url = url::Url::parse(resource).map_err(|e| format!("resource {resource:?}: {e}"))?;
    Ok(match url.path() {
        "" | "/" => "/".to_string(),
        p => p.trim_end_matches('/').to_string(),
    })
}

/// RFC 9728 §3.1: the metadata URL inserts the well-known segment before the
/// resource's path.
fn metadata_url(resource: &str) -> Result<String, String> {
    let url = url::Url::parse(resource).map_err(|e| format!("resource {resource:?}: {e}"))?;
    let path = url.path().trim_end_matches('/');
    Ok(format!(
        "{}/.well-known/oauth-protected-resource{path}",
        url.origin().ascii_serialization()
    ))
}

/// The HTTP client for issuer and upstream calls: no redirects, bounded time.
pub fn http_client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .build()
        .map_err(|e| e.to_string())
}

fn quoted(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

impl Route {
    /// RFC 6750 §3 / MCP authorization: where to get a token and what for.
    fn challenge(&self, error: Option<&str>) -> String {
        let mut c = format!(
            "Bearer resource_metadata=\"{}\"",
            quoted(&self.metadata_url)
        );
        if !self.server.required_scopes.is_empty() {
            c.push_str(&format!(
                ", scope=\"{}\"",
                quoted(&self.server.required_scopes.join(" "))
            ));
        }
        if let Some(e) = error {
            c.push_str(&format!(", error=\"{e}\""));
        }
        c
    }

    fn refuse(&self, status: StatusCode, error: Option<&str>, description: &str) -> Response {
        let body = serde_json::json!({
            "error": error.unwrap_or("unauthorized"),
            "error_description": description,
        });
        let mut resp = Response::new(Body::from(body.to_string()));
        *resp.status_mut() = status;
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Ok(v) = HeaderValue::from_str(&self.challenge(error)) {
            h.insert(header::WWW_AUTHENTICATE, v);
        }
        resp
    }

    fn metadata(&self) -> serde_json::Value {
        serde_json::json!({
            "resource": self.server.resource,
            "authorization_servers": [self.issuer],
            "scopes_supported": self.server.required_scopes,
            "bearer_methods_supported": ["header"],
            "resource_name": self.server.name,
        })
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

async fn handle(
    State(route): State<Arc<Route>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    // RFC 6750 §2.3 query tokens are refused: URLs end up in logs.
    if uri
        .query()
        .is_some_and(|q| q.split('&').any(|p| p.starts_with("access_token=")))
    {
        return route.refuse(
            StatusCode::BAD_REQUEST,
            Some("invalid_request"),
            "access tokens are accepted only in the Authorization header",
        );
    }
    let Some(token) = bearer(&headers) else {
        return route.refuse(StatusCode::UNAUTHORIZED, None, "a bearer token is required");
    };
    let verified = match route.verifier.verify(token).await {
        Ok(v) => v,
        Err(VerifyError::Invalid(why)) => {
            tracing::info!(reason = why, resource = %route.server.resource, "token refused");
            return route.refuse(
                StatusCode::UNAUTHORIZED,
                Some("invalid_token"),
                "the access token is invalid or expired",
            );
        }
        Err(VerifyError::KeysUnavailable(e)) => {
            tracing::warn!(error = %e, "cannot verify tokens: issuer keys unavailable");
            let mut resp = proxy::upstream_error();
            *resp.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("10"));
            return resp;
        }
    };
    if let Some(missing) = route
        .server
        .required_scopes
        .iter()
        .find(|s| !verified.scopes.contains(s))
    {
        tracing::info!(scope = %missing, "token lacks a required scope");
        return route.refuse(
            StatusCode::FORBIDDEN,
            Some("insufficient_scope"),
            "the access token lacks a required scope",
        );
    }
    let bytes: Bytes = match axum::body::to_bytes(body, MAX_REQUEST_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            return rpc_refusal(
                StatusCode::PAYLOAD_TOO_LARGE,
                Value::Null,
                -32600,
                "request body too large",
            );
        }
    };
    if method != Method::POST {
        // GET opens the server's SSE stream; DELETE ends a session. Either
        // must come from the session's own principal.
        let principal = sessions::principal_key(&verified.principal);
        if let Some(session) = headers.get("mcp-session-id").and_then(|v| v.to_str().ok())
            && !route.sessions.may_use(session, &principal)
        {
            return rpc_refusal(
                StatusCode::NOT_FOUND,
                Value::Null,
                -32001,
                "session not found",
            );
        }
        return proxy::forward(&route.http, &route.upstream, method, &headers, bytes).await;
    }
    let parsed: Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(_) => return rpc_refusal(StatusCode::BAD_REQUEST, Value::Null, -32700, "parse error"),
    };
    let messages: Vec<&Value> = match &parsed {
        Value::Array(items) if !items.is_empty() => items.iter().collect(),
        Value::Object(_) => vec![&parsed],
        _ => {
            return rpc_refusal(
                StatusCode::BAD_REQUEST,
                Value::Null,
                -32600,
                "invalid request",
            );
        }
    };
    if parsed.is_object() && !jsonrpc::headers_agree(&headers, &parsed) {
        return rpc_refusal(
            StatusCode::BAD_REQUEST,
            parsed.get("id").cloned().unwrap_or(Value::Null),
            -32600,
            "Mcp-Method or Mcp-Name headers disagree with the request body",
        );
    }
    let policies = match route.policies.read() {
        Ok(p) => p.clone(),
        Err(_) => return proxy::upstream_error(),
    };
    let principal = sessions::principal_key(&verified.principal);
    if let Some(session) = headers.get("mcp-session-id").and_then(|v| v.to_str().ok())
        && !route.sessions.may_use(session, &principal)
    {
        tracing::warn!(
            principal,
            "session used by a principal other than its creator"
        );
        return rpc_refusal(
            StatusCode::NOT_FOUND,
            Value::Null,
            -32001,
            "session not found",
        );
    }
    let mut pending: filter::Pending = Vec::new();
    let mut denied: Vec<Value> = Vec::new();
    let mut allowed: Vec<&Value> = Vec::new();
    // A single refused request answers 403, or 400 when its arguments are
    // what could not be authorized.
    let mut refusal_status = StatusCode::FORBIDDEN;
    for msg in &messages {
        let id = msg.get("id").cloned().unwrap_or(Value::Null);
        let refusal = match jsonrpc::classify(msg, &route.server.allowed_methods) {
            jsonrpc::Call::Pass => None,
            jsonrpc::Call::List(kind) => {
                pending.push((id.clone(), kind));
                None
            }
            jsonrpc::Call::Authorize(action, name, arguments) => policies
                .check(&verified, &route.server.name, action, name, arguments)
                .err(),
            jsonrpc::Call::Deny(why) => {
                tracing::info!(reason = why, "request refused by the gateway");
                Some(authz::Refusal::Denied)
            }
        };
        match refusal {
            None => allowed.push(msg),
            Some(_) if msg.get("id").is_none() => {}
            Some(authz::Refusal::Denied) => {
                denied.push(jsonrpc::error(id, FORBIDDEN_CODE, "forbidden"));
            }
            Some(authz::Refusal::BadArguments(why)) => {
                refusal_status = StatusCode::BAD_REQUEST;
                denied.push(jsonrpc::error(id, INVALID_PARAMS_CODE, &why));
            }
        }
    }
    // A Cedar denial never carries WWW-Authenticate (DECISIONS.md): that
    // would send SDKs into a step-up loop.
    if allowed.is_empty() {
        let body = if parsed.is_array() {
            Value::Array(denied)
        } else {
            denied
                .pop()
                .unwrap_or_else(|| jsonrpc::error(Value::Null, FORBIDDEN_CODE, "forbidden"))
        };
        let status = if parsed.is_array() {
            StatusCode::FORBIDDEN
        } else {
            refusal_status
        };
        return json_response(status, &body);
    }
    // Batches are decided element by element: only the allowed elements go
    // upstream, and the denials are merged into the answer.
    let bytes = if denied.is_empty() {
        bytes
    } else {
        Bytes::from(Value::Array(allowed.into_iter().cloned().collect()).to_string())
    };
    let resp = proxy::forward(&route.http, &route.upstream, method, &headers, bytes).await;
    if let Some(created) = resp
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
    {
        route.sessions.bind(created, &principal);
    }
    if denied.is_empty() && (pending.is_empty() || !resp.status().is_success()) {
        return resp;
    }
    filter::Filter {
        pending,
        extra: denied,
        token: verified,
        policies,
        server: route.server.name.clone(),
    }
    .response(resp)
    .await
}

/// JSON-RPC error code for calls the policies deny (implementation-defined
/// server error range, JSON-RPC 2.0 §5.1).
pub const FORBIDDEN_CODE: i64 = -32003;

/// JSON-RPC "Invalid params" (JSON-RPC 2.0 §5.1): arguments the policies
/// cannot be asked about (nested too deeply, not an object).
pub const INVALID_PARAMS_CODE: i64 = -32602;

fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut resp = Response::new(Body::from(body.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn rpc_refusal(status: StatusCode, id: Value, code: i64, message: &str) -> Response {
    json_response(status, &jsonrpc::error(id, code, message))
}

async fn metadata(State(route): State<Arc<Route>>) -> Response {
    let mut resp = Response::new(Body::from(route.metadata().to_string()));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    resp
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

/// Every path the router serves for these servers. The root metadata
/// document is served only when exactly one server is fronted (DECISIONS.md).
/// A host merging the router with its own checks these first: axum panics on
/// overlapping routes.
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
    let keys = Arc::new(RemoteJwks::new(config.issuer.clone(), http_client()?));
    router_with_keys(config, keys)
}

/// Builds the gateway's router with the given key source — the binary's
/// `serve` passes the authorization server's own key set
/// ([`keys::LocalJwks`]) so the embedded gateway never calls itself over
/// HTTP. Policy files are loaded and validated here, so a bad one stops the
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
    let http = http_client()?;
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
            upstream,
            metadata_url: metadata_url(&server.resource)?,
            policies: RwLock::new(Arc::new(policies)),
            sessions: sessions::Sessions::default(),
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

/// CORS for browser-based MCP clients, and refusal (403) of requests whose
/// `Origin` is not allowed (DECISIONS.md `gateway.allowed_origins`).
fn with_origin_policy(app: Router, allowed: &[String]) -> Result<Router, String> {
    use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};
    let any = allowed.iter().any(|o| o == "*");
    let origins: Vec<HeaderValue> = allowed
        .iter()
        .filter(|o| *o != "*")
        .map(|o| HeaderValue::from_str(o).map_err(|_| format!("invalid origin {o:?}")))
        .collect::<Result<_, _>>()?;
    let cors = CorsLayer::new()
        .allow_origin(if any {
            AllowOrigin::any()
        } else {
            AllowOrigin::list(origins.clone())
        })
        .allow_methods([Method::GET, Method::POST, Method::DELETE])
        // Mcp-* headers and Last-Event-ID: mirror what the browser asks for.
        .allow_headers(AllowHeaders::mirror_request())
        .expose_headers([
            header::WWW_AUTHENTICATE,
            HeaderName::from_static("mcp-session-id"),
            HeaderName::from_static("mcp-protocol-version"),
        ]);
    let origins = Arc::new(origins);
    let check = axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            let origins = origins.clone();
            async move {
                if let Some(origin) = req.headers().get(header::ORIGIN)
                    && !any
                    && !origins.iter().any(|o| o == origin)
                {
                    return json_response(
                        StatusCode::FORBIDDEN,
                        &serde_json::json!({"error": "forbidden", "error_description": "origin not allowed"}),
                    );
                }
                next.run(req).await
            }
        },
    );
    Ok(app.layer(check).layer(cors))
}
