//! The `[gateway]` section and its `[[gateway.servers]]` tables, and their
//! validation into the gateway crate's configuration — for `gatehouse
//! gateway` (standalone) and for `gatehouse serve` (embedded).
//!
//! Every refusal names the key, like the rest of the configuration, so an
//! operator with several servers knows which table to fix.

use crate::config::Dur;
use gatehouse_gateway::revocation::{Introspector, StatusCache};
use gatehouse_gateway::{GatewayConfig, ServerConfig, SessionKey, metadata_path, path_of};
use gatehouse_oauth::issuer::Issuer;
use gatehouse_oauth::resource::validate_resource;
use gatehouse_oauth::scope::parse_scope;
use jsonwebtoken::Algorithm;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where `gatehouse gateway` listens when neither the file nor a flag says.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8090";

/// Upper bound on clock-skew leeway: the issue allows at most 60 seconds.
const MAX_LEEWAY: Duration = Duration::from_secs(60);

/// Upper bound on reusing an introspection answer: beyond a few minutes the
/// "instant" cut-off would be no better than short token lifetimes.
const MAX_REVOCATION_CACHE: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewaySection {
    /// The authorization server whose tokens are accepted (standalone only;
    /// embedded in `serve`, the gateway uses the server's own issuer).
    pub issuer: Option<String>,
    /// Standalone only; default 127.0.0.1:8090.
    pub listen: Option<String>,
    /// Browser origins allowed to call; `*` (any) by default, since bearer
    /// tokens are not ambient credentials (docs/decisions.md "Gateway").
    pub allowed_origins: Vec<String>,
    /// JWS algorithms accepted on access tokens.
    pub algorithms: Vec<String>,
    /// Clock-skew allowance on `exp` and `nbf`, at most 60 seconds.
    pub leeway: Dur,
    /// Accept `typ: JWT` as well as `at+jwt`, for issuers that do not type tokens.
    pub accept_plain_jwt: bool,
    /// Instant cut-off: ask the issuer on every call (cached for
    /// `revocation_cache`) whether the token is still active. Off: verified
    /// tokens are trusted until `exp` (short lifetimes bound the exposure).
    pub check_revocation: bool,
    /// How long an introspection answer is reused, at most 5 minutes.
    pub revocation_cache: Dur,
    /// Standalone: the gateway's own client at the issuer, for introspection
    /// (`client_secret_basic`). Embedded, the check runs in-process.
    pub introspection_client_id: String,
    pub introspection_client_secret: String,
    /// Standalone: a file of at least 32 random bytes (mode 0600) keying the
    /// MAC that binds session ids to callers; replicas behind one address
    /// share it. Unset: a random key per process (a restart ends sessions).
    /// Embedded, the key lives in the store.
    pub session_key_file: Option<PathBuf>,
    /// The fronted MCP servers, each on its own path of one listener.
    pub servers: Vec<ServerEntry>,
}

impl Default for GatewaySection {
    fn default() -> Self {
        GatewaySection {
            issuer: None,
            listen: None,
            allowed_origins: vec!["*".into()],
            algorithms: vec!["ES256".into(), "RS256".into(), "EdDSA".into()],
            leeway: Dur(Duration::from_secs(30)),
            accept_plain_jwt: false,
            check_revocation: false,
            revocation_cache: Dur(Duration::from_secs(10)),
            introspection_client_id: String::new(),
            introspection_client_secret: String::new(),
            session_key_file: None,
            servers: Vec::new(),
        }
    }
}

/// One `[[gateway.servers]]` table.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerEntry {
    /// The exact public URL clients use: the tokens' `aud`; its path is
    /// where the gateway serves this MCP server.
    pub resource: String,
    /// The MCP server requests are forwarded to.
    pub upstream: String,
    /// Cedar policy file.
    pub policies: PathBuf,
    /// Cedar schema (default: the schema shipped with Gatehouse).
    #[serde(default)]
    pub schema: Option<PathBuf>,
    /// Scopes every token must carry here.
    #[serde(default)]
    pub required_scopes: Vec<String>,
    /// The `McpServer` entity's id in policies (default: the resource's path).
    #[serde(default)]
    pub name: Option<String>,
    /// Extra JSON-RPC methods passed through without a Cedar decision.
    #[serde(default)]
    pub allowed_methods: Vec<String>,
    /// Accepted for readability only: the path is always derived from
    /// `resource` (docs/decisions.md "Gateway"), so a different one is refused.
    #[serde(default)]
    pub path: Option<String>,
}

/// How the gateway runs, which decides where its issuer comes from.
#[derive(Clone, Copy)]
pub enum Mode<'a> {
    /// `gatehouse gateway`: its own listener, tokens from `gateway.issuer`.
    Standalone,
    /// Inside `gatehouse serve`: the authorization server's issuer and
    /// listener, next to its routes.
    Embedded(&'a Issuer),
}

fn bad(key: &str, msg: impl std::fmt::Display) -> String {
    format!("invalid configuration at `{key}`: {msg}")
}

/// An absolute http(s) URL, or why not.
fn http_url(s: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(s).map_err(|e| format!("{s:?} is not an absolute URL ({e})"))?;
    match url.scheme() {
        "http" | "https" if url.host().is_some() => Ok(url),
        _ => Err(format!("{s:?} must be an http or https URL")),
    }
}

/// Checks the section and builds the gateway's configuration.
pub fn gateway_config(section: &GatewaySection, mode: Mode) -> Result<GatewayConfig, String> {
    let issuer = match mode {
        Mode::Standalone => {
            let s = section.issuer.as_deref().ok_or_else(|| {
                bad(
                    "gateway.issuer",
                    "required by `gatehouse gateway` (or --issuer): the authorization server whose tokens are accepted",
                )
            })?;
            http_url(s).map_err(|e| bad("gateway.issuer", e))?;
            s.to_string()
        }
        Mode::Embedded(issuer) => {
            // docs/decisions.md "Gateway": embedded, the gateway inherits both.
            for (key, set) in [
                ("gateway.issuer", section.issuer.is_some()),
                ("gateway.listen", section.listen.is_some()),
            ] {
                if set {
                    return Err(bad(
                        key,
                        "must not be set when `serve` hosts the gateway: it uses the server's own `issuer` and `listen` (run `gatehouse gateway` for a separate gateway)",
                    ));
                }
            }
            issuer.as_str().to_string()
        }
    };
    if section.servers.is_empty() {
        return Err(bad(
            "gateway.servers",
            "no MCP server to front: add [[gateway.servers]] tables, or pass --resource, --upstream and --policies",
        ));
    }
    if section.leeway.0 > MAX_LEEWAY {
        return Err(bad("gateway.leeway", "must be at most 60s"));
    }
    for o in &section.allowed_origins {
        let is_origin = url::Url::parse(o).is_ok_and(|u| u.origin().ascii_serialization() == *o);
        if o != "*" && !is_origin {
            return Err(bad(
                "gateway.allowed_origins",
                format!("{o:?} is neither \"*\" nor an origin such as \"https://app.example.com\""),
            ));
        }
    }
    let servers = section
        .servers
        .iter()
        .enumerate()
        .map(|(i, entry)| server(i, entry))
        .collect::<Result<Vec<_>, _>>()?;
    check_paths(&servers, mode)?;
    let token_status = token_status(section, mode, &issuer)?;
    let session_key = session_key(section, mode)?;
    Ok(GatewayConfig {
        session_key,
        token_status,
        issuer,
        servers,
        algorithms: algorithms(&section.algorithms)?,
        leeway: section.leeway.0.as_secs(),
        accept_plain_jwt: section.accept_plain_jwt,
        allowed_origins: section.allowed_origins.clone(),
        // `[limits] upstream_response_timeout`, set by the caller.
        upstream_response_timeout: gatehouse_gateway::DEFAULT_UPSTREAM_RESPONSE_TIMEOUT,
    })
}

/// The introspection client for the instant cut-off (standalone). Embedded,
/// `serve` supplies an in-process check instead, so credentials are refused.
fn token_status(
    section: &GatewaySection,
    mode: Mode,
    issuer: &str,
) -> Result<Option<std::sync::Arc<StatusCache>>, String> {
    if section.revocation_cache.0 > MAX_REVOCATION_CACHE {
        return Err(bad("gateway.revocation_cache", "must be at most 5m"));
    }
    let has_credentials = !section.introspection_client_id.is_empty()
        || !section.introspection_client_secret.is_empty();
    match mode {
        Mode::Embedded(_) if has_credentials => Err(bad(
            "gateway.introspection_client_id",
            "not used when `serve` hosts the gateway: it checks revocation in-process",
        )),
        Mode::Embedded(_) => Ok(None),
        Mode::Standalone if !section.check_revocation => Ok(None),
        Mode::Standalone => {
            for (key, value) in [
                (
                    "gateway.introspection_client_id",
                    &section.introspection_client_id,
                ),
                (
                    "gateway.introspection_client_secret",
                    &section.introspection_client_secret,
                ),
            ] {
                if value.is_empty() {
                    return Err(bad(key, "required when gateway.check_revocation is on"));
                }
            }
            let http = gatehouse_gateway::issuer_client()?;
            let introspector = Introspector::new(
                issuer.to_string(),
                section.introspection_client_id.clone(),
                section.introspection_client_secret.clone(),
                http,
            );
            Ok(Some(std::sync::Arc::new(StatusCache::new(
                std::sync::Arc::new(introspector),
                section.revocation_cache.0,
            ))))
        }
    }
}

/// The key binding session ids to callers. Standalone: `session_key_file`,
/// else a random key for this process alone. Embedded, `serve` replaces the
/// placeholder made here with the key sealed in its store, so a file is
/// refused.
fn session_key(section: &GatewaySection, mode: Mode) -> Result<SessionKey, String> {
    let key = "gateway.session_key_file";
    match (&section.session_key_file, mode) {
        (Some(_), Mode::Embedded(_)) => Err(bad(
            key,
            "not used when `serve` hosts the gateway: its session key is kept in the store",
        )),
        (Some(path), Mode::Standalone) => read_session_key(path).map_err(|e| bad(key, e)),
        (None, _) => SessionKey::random(),
    }
}

/// A session key file: private to its owner, at least 32 bytes, read whole.
fn read_session_key(path: &Path) -> Result<SessionKey, String> {
    crate::setup::check_private(path)?;
    let len = std::fs::metadata(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .len();
    if len > gatehouse_gateway::mac::MAX_KEY_BYTES as u64 {
        return Err(format!("{} is too large for a key", path.display()));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    SessionKey::from_bytes(&bytes).map_err(|e| {
        format!(
            "{}: {e} (make one with `head -c 32 /dev/urandom > FILE && chmod 600 FILE`)",
            path.display()
        )
    })
}

/// The accepted JWS algorithms. `none` and the HMAC family are refused by
/// name: a resource server holding a shared secret could mint tokens, and a
/// public key used as an HMAC secret is the classic confusion attack.
fn algorithms(names: &[String]) -> Result<Vec<Algorithm>, String> {
    let key = "gateway.algorithms";
    if names.is_empty() {
        return Err(bad(key, "at least one algorithm is required"));
    }
    names
        .iter()
        .map(|n| match n.as_str() {
            "ES256" => Ok(Algorithm::ES256),
            "RS256" => Ok(Algorithm::RS256),
            "EdDSA" => Ok(Algorithm::EdDSA),
            other
                if other.eq_ignore_ascii_case("none")
                    || other.to_ascii_uppercase().starts_with("HS") =>
            {
                Err(bad(
                    key,
                    format!("{other:?} is never accepted for access tokens"),
                ))
            }
            other => Err(bad(
                key,
                format!("unsupported algorithm {other:?} (expected ES256, RS256 or EdDSA)"),
            )),
        })
        .collect()
}

/// One server table, checked; errors name `gateway.servers[i].<key>`.
fn server(i: usize, e: &ServerEntry) -> Result<ServerConfig, String> {
    let key = |k: &str| format!("gateway.servers[{i}].{k}");
    let resource = http_url(&e.resource).map_err(|m| bad(&key("resource"), m))?;
    validate_resource(&e.resource).map_err(|m| bad(&key("resource"), m))?;
    if resource.query().is_some() {
        return Err(bad(
            &key("resource"),
            "must not have a query: the gateway routes by path",
        ));
    }
    let path = path_of(&e.resource).map_err(|m| bad(&key("resource"), m))?;
    if let Some(p) = &e.path
        && *p != path
        && p != resource.path()
    {
        return Err(bad(
            &key("path"),
            format!(
                "{p:?} differs from the path of `resource` ({path:?}); the path is always derived from `resource`, so leave it out"
            ),
        ));
    }
    http_url(&e.upstream).map_err(|m| bad(&key("upstream"), m))?;
    for s in &e.required_scopes {
        if parse_scope(s).ok().as_deref() != Some(std::slice::from_ref(s)) {
            return Err(bad(
                &key("required_scopes"),
                format!("{s:?} is not a single scope token"),
            ));
        }
    }
    if e.allowed_methods.iter().any(|m| m.trim().is_empty()) {
        return Err(bad(
            &key("allowed_methods"),
            "method names must not be empty",
        ));
    }
    let name = e
        .name
        .clone()
        .unwrap_or_else(|| resource.path().to_string());
    let title = match &e.name {
        Some(n) => n.clone(),
        None => format!(
            "{}{}{}",
            resource.host_str().unwrap_or_default(),
            resource.port().map(|p| format!(":{p}")).unwrap_or_default(),
            resource.path().trim_end_matches('/')
        ),
    };
    if name.is_empty() {
        return Err(bad(&key("name"), "must not be empty"));
    }
    Ok(ServerConfig {
        resource: e.resource.clone(),
        upstream: e.upstream.clone(),
        required_scopes: e.required_scopes.clone(),
        name,
        title,
        policy_file: e.policies.clone(),
        schema_file: e.schema.clone(),
        allowed_methods: e.allowed_methods.clone(),
    })
}

/// Refuses servers whose routes would overlap: two on one path, one on
/// another's protected-resource metadata path, or — embedded — one inside
/// the authorization server's namespace (`/oauth/*`, `/.well-known/*`, its
/// endpoints under the issuer's path). Overlaps would otherwise shadow a
/// route or panic in axum when the routers are merged.
fn check_paths(servers: &[ServerConfig], mode: Mode) -> Result<(), String> {
    let mut owner: HashMap<String, usize> = HashMap::new();
    let root = metadata_path("/");
    let single = servers.len() == 1;
    for (i, s) in servers.iter().enumerate() {
        let key = format!("gateway.servers[{i}].resource");
        let path = path_of(&s.resource).map_err(|m| bad(&key, m))?;
        let meta = metadata_path(&path);
        if let Mode::Embedded(issuer) = mode {
            if gatehouse_server::is_reserved_path(issuer, &path) {
                return Err(bad(
                    &key,
                    format!(
                        "path {path} collides with the authorization server's routes (/oauth/*, /.well-known/* and its endpoints)"
                    ),
                ));
            }
            if gatehouse_server::route_paths(issuer).contains(&meta) {
                return Err(bad(
                    &key,
                    format!("metadata path {meta} collides with the authorization server"),
                ));
            }
        }
        let mut own = vec![path.clone(), meta];
        if single && path != "/" {
            own.push(root.clone());
        }
        for p in own {
            match owner.insert(p.clone(), i) {
                None => {}
                Some(j) if j == i => {
                    return Err(bad(
                        &key,
                        format!("path {p} is where protected-resource metadata is served"),
                    ));
                }
                Some(j) => {
                    return Err(bad(
                        &key,
                        format!(
                            "path {p} is already served for gateway.servers[{j}] (its MCP path or its protected-resource metadata)"
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}
