//! Configuration: defaults < TOML file < `GATEHOUSE_*` environment < flags.
//!
//! Every layer is merged as a JSON tree and deserialised once, with unknown
//! keys refused and the offending key named (serde_path_to_error). The set of
//! keys the environment may set, and how each value is parsed, is derived from
//! the serialised defaults — there is no second hand-kept list of keys.

use crate::gateway_config::GatewaySection;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A duration written as a human string ("15m", "30d").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(self.0).to_string())
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s)
            .map(Dur)
            .map_err(|e| serde::de::Error::custom(format!("invalid duration {s:?}: {e}")))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Confidential {
    Off,
    InitialToken,
    Open,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistrationConfig {
    /// Whether public (redirect-based) clients may register themselves.
    pub public: bool,
    /// Who may register confidential clients: "off", "initial-token", "open".
    pub confidential: Confidential,
    /// Bearer tokens accepted in "initial-token" mode (RFC 7591 §3).
    pub initial_access_tokens: Vec<String>,
    /// Cap on self-registered clients.
    pub max_clients: u64,
    /// Registration requests allowed per source address per minute.
    pub per_address_per_minute: u32,
    /// Live self-registered clients one address (IPv6: one /64) may have; 0: no cap.
    pub max_clients_per_address: u64,
    /// Self-registered clients unused this long are deleted.
    pub idle_expiry: Dur,
    /// Self-registered clients never used are deleted this long after registering.
    pub unused_expiry: Dur,
}

impl Default for RegistrationConfig {
    fn default() -> Self {
        RegistrationConfig {
            public: true,
            confidential: Confidential::Off,
            initial_access_tokens: Vec::new(),
            max_clients: 10_000,
            per_address_per_minute: 20,
            max_clients_per_address: 20,
            idle_expiry: Dur(Duration::from_secs(30 * 24 * 3600)),
            unused_expiry: Dur(Duration::from_secs(24 * 3600)),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokensConfig {
    /// Scopes for a token requested without `scope` by a client registered without any.
    pub default_scopes: Vec<String>,
}

/// `[store]`, or `store = "postgres://…"` as a shorthand for `[store] url`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `postgres://…` for a shared PostgreSQL; none: SQLite in `data_dir`.
    pub url: Option<String>,
    /// How often caches follow the Store's change sequence.
    pub poll_interval: Dur,
    /// How long cached clients are honoured while the Store is unreachable.
    pub max_stale: Dur,
    /// PostgreSQL: most connections each replica keeps open.
    pub max_connections: u32,
    /// PostgreSQL: how long a request waits for a connection before 503.
    pub acquire_timeout: Dur,
    /// PostgreSQL: server-side cap on any one statement.
    pub statement_timeout: Dur,
    /// PostgreSQL: schema to use instead of the default `search_path`.
    pub schema: Option<String>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        let pg = gatehouse_store::PostgresOptions::default();
        StoreConfig {
            url: None,
            poll_interval: Dur(Duration::from_secs(1)),
            max_stale: Dur(Duration::from_secs(300)),
            max_connections: pg.max_connections,
            acquire_timeout: Dur(pg.acquire_timeout),
            statement_timeout: Dur(pg.statement_timeout),
            schema: None,
        }
    }
}

/// `[limits]`: bounds on the process itself (checked in
/// `limits::connection_limits`; documented in docs/operations.md
/// "Connections and outbound calls").
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// After SIGTERM, how long in-flight requests may run before the process
    /// stops them and exits.
    pub shutdown_grace: Dur,
    /// Connections served at once on the listener; more wait to be accepted.
    pub max_connections: u64,
    /// Longest time for a client to send a complete request head.
    pub header_read_timeout: Dur,
    /// A keep-alive connection with no request in flight is closed after
    /// this long without a byte.
    pub idle_timeout: Dur,
    /// Longest time to receive a request body, from its request head.
    pub request_body_timeout: Dur,
    /// Gateway: longest wait for an upstream MCP server's response headers
    /// (its streamed body may then take as long as it streams).
    pub upstream_response_timeout: Dur,
    /// Keys (addresses, names) each in-memory per-address limiter holds; when
    /// full, the least recently used is forgotten.
    pub limiter_capacity: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let c = gatehouse_server::ConnectionLimits::default();
        LimitsConfig {
            shutdown_grace: Dur(Duration::from_secs(10)),
            max_connections: c.max_connections as u64,
            header_read_timeout: Dur(c.header_read_timeout),
            idle_timeout: Dur(c.idle_timeout),
            request_body_timeout: Dur(c.request_body_timeout),
            upstream_response_timeout: Dur(gatehouse_gateway::DEFAULT_UPSTREAM_RESPONSE_TIMEOUT),
            limiter_capacity: gatehouse_oauth::settings::DEFAULT_LIMITER_CAPACITY as u64,
        }
    }
}

/// `[client_auth]`: client secrets and JWT assertions.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientAuthConfig {
    /// Lifetime of newly minted client secrets; none: they never expire.
    pub secret_lifetime: Option<Dur>,
    /// Longest accepted `private_key_jwt` assertion lifetime.
    pub max_assertion_lifetime: Dur,
    /// Accept the token endpoint URL as assertion `aud` besides the issuer.
    pub accept_token_endpoint_aud: bool,
    /// Allow http `jwks_uri`s to loopback addresses (tests, local setups).
    pub allow_http_loopback_jwks_uri: bool,
    /// Failed client authentications per client address before each further
    /// one doubles a wait.
    pub free_failures_per_address: u32,
    /// The same per (client address, client id).
    pub free_failures_per_address_client: u32,
    /// The longest wait after failed client authentications.
    pub max_backoff: Dur,
}

impl Default for ClientAuthConfig {
    fn default() -> Self {
        let failures = gatehouse_oauth::settings::FailureLimits::default();
        ClientAuthConfig {
            secret_lifetime: None,
            max_assertion_lifetime: Dur(Duration::from_secs(3600)),
            accept_token_endpoint_aud: true,
            allow_http_loopback_jwks_uri: false,
            free_failures_per_address: failures.free_per_address,
            free_failures_per_address_client: failures.free_per_address_client,
            max_backoff: Dur(failures.max_backoff),
        }
    }
}

/// `[people]`: sign-in, the authorization code flow and refresh tokens
/// (checked in `setup::people_settings`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PeopleConfig {
    /// Whether people may sign in and authorize clients.
    pub enabled: bool,
    /// Lifetime of an authorization code.
    pub code_lifetime: Dur,
    /// How long a refresh token works unused.
    pub refresh_token_lifetime: Dur,
    /// Absolute lifetime of a grant from sign-in, however often refreshed.
    pub session_lifetime: Dur,
    /// How long a rotated refresh token still yields the same successor.
    pub refresh_grace: Dur,
    /// How long a browser stays signed in at Gatehouse.
    pub signin_lifetime: Dur,
    /// How long a browser that signed in is exempt from the per-name
    /// sign-in limit for that account (the device cookie's lifetime).
    pub device_lifetime: Dur,
    /// Authorization codes one person may be given a minute, over her sessions.
    pub codes_per_user_per_minute: u32,
    /// Authorization codes one client may be given a minute, over everyone.
    pub codes_per_client_per_minute: u32,
}

impl Default for PeopleConfig {
    fn default() -> Self {
        let d = gatehouse_oauth::settings::PeopleSettings::default();
        PeopleConfig {
            enabled: d.enabled,
            code_lifetime: Dur(d.code_lifetime),
            refresh_token_lifetime: Dur(d.refresh_token_lifetime),
            session_lifetime: Dur(d.session_lifetime),
            refresh_grace: Dur(d.refresh_grace),
            signin_lifetime: Dur(d.signin_lifetime),
            device_lifetime: Dur(d.device_lifetime),
            codes_per_user_per_minute: d.codes_per_user_per_minute,
            codes_per_client_per_minute: d.codes_per_client_per_minute,
        }
    }
}

/// `[keys]`: signing-key rotation (checked in `key_cmd::key_settings`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeysConfig {
    /// How long a new key is published in the JWKS before it signs.
    pub pre_publication: Dur,
    /// Rotate automatically this often; none: only `gatehouse key rotate`.
    pub rotate_every: Option<Dur>,
}

impl Default for KeysConfig {
    fn default() -> Self {
        KeysConfig {
            pre_publication: Dur(gatehouse_oauth::settings::DEFAULT_PRE_PUBLICATION),
            rotate_every: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub listen: String,
    /// Defaults to `http://<listen>` for a loopback listen address.
    pub issuer: Option<String>,
    pub data_dir: PathBuf,
    /// The MCP servers (resource URLs) tokens may be minted for.
    pub allowed_audiences: Vec<String>,
    pub scopes_supported: Vec<String>,
    pub access_token_ttl: Dur,
    pub signing_alg: String,
    /// File holding the base64 key-encryption key; default `<data_dir>/kek`.
    pub key_encryption_key_file: Option<PathBuf>,
    /// Proxies (addresses or CIDR blocks) whose `X-Forwarded-For` is
    /// believed; none: forwarded headers are ignored.
    pub trusted_proxies: Vec<String>,
    pub registration: RegistrationConfig,
    pub tokens: TokensConfig,
    pub client_auth: ClientAuthConfig,
    pub store: StoreConfig,
    pub limits: LimitsConfig,
    pub keys: KeysConfig,
    pub people: PeopleConfig,
    /// The MCP gateway: `gatehouse gateway`, or hosted by `serve` when it
    /// lists servers.
    pub gateway: GatewaySection,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".into(),
            issuer: None,
            data_dir: PathBuf::from("./gatehouse-data"),
            allowed_audiences: Vec::new(),
            scopes_supported: Vec::new(),
            access_token_ttl: Dur(Duration::from_secs(15 * 60)),
            signing_alg: "ES256".into(),
            key_encryption_key_file: None,
            trusted_proxies: Vec::new(),
            registration: RegistrationConfig::default(),
            tokens: TokensConfig::default(),
            client_auth: ClientAuthConfig::default(),
            store: StoreConfig::default(),
            limits: LimitsConfig::default(),
            keys: KeysConfig::default(),
            people: PeopleConfig::default(),
            gateway: GatewaySection::default(),
        }
    }
}

/// Environment variables read directly, never through a config file.
pub const ENV_KEK: &str = "GATEHOUSE_KEY_ENCRYPTION_KEY";
const ENV_ONLY: &[&str] = &[ENV_KEK];
const ENV_PREFIX: &str = "GATEHOUSE_";
/// Declared keys the environment does not bind: lists of tables, which one
/// comma-separated variable cannot express (and whose element type the
/// serialised defaults, being empty lists, cannot tell).
const ENV_UNBOUND: &[&str] = &["gateway.servers"];
/// Variables that name a key other than their spelling: `GATEHOUSE_STORE`
/// is the name for the store URL, which lives at `store.url` next to
/// the other `[store]` settings.
const ENV_ALIASES: &[(&str, &str)] = &[("store", "store.url")];

/// Values given on the command line; `None` means "not given".
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<String>,
    pub issuer: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub audiences: Vec<String>,
    /// Further flags as (dotted key, value), applied last in this order;
    /// a list given here replaces the list from the file (docs/decisions.md
    /// "Configuration and CLI").
    pub set: Vec<(&'static str, Value)>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn set_path(root: &mut Value, path: &[String], value: Value) {
    let mut node = root;
    for key in &path[..path.len() - 1] {
        if !node.get(key).is_some_and(Value::is_object)
            && let Value::Object(m) = node
        {
            m.insert(key.clone(), Value::Object(Map::new()));
        }
        node = &mut node[key.as_str()];
    }
    if let Value::Object(m) = node {
        m.insert(path[path.len() - 1].clone(), value);
    }
}

fn lookup<'a>(root: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter()
        .try_fold(root, |node, key| node.as_object()?.get(key))
}

/// Applies `GATEHOUSE_<KEY>` variables (nested with `__`) to `tree`. The
/// declared keys and their types come from `defaults`; an unknown variable is
/// logged and ignored (docs/decisions.md "Configuration and CLI"); a value
/// of the wrong type is an error naming the variable.
fn apply_env(
    tree: &mut Value,
    defaults: &Value,
    vars: impl Iterator<Item = (String, String)>,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    for (name, raw) in vars {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        if ENV_ONLY.contains(&name.as_str()) {
            continue;
        }
        let mut path: Vec<String> = rest
            .to_ascii_lowercase()
            .split("__")
            .map(String::from)
            .collect();
        if let Some((_, to)) = ENV_ALIASES.iter().find(|(from, _)| path.join(".") == *from) {
            path = to.split('.').map(String::from).collect();
        }
        if ENV_UNBOUND.contains(&path.join(".").as_str()) {
            warnings.push(format!(
                "ignoring environment variable {name}: `{}` can be set only in the config file",
                path.join(".")
            ));
            continue;
        }
        let Some(default) = lookup(defaults, &path).filter(|v| !v.is_object()) else {
            warnings.push(format!("ignoring unknown environment variable {name}"));
            continue;
        };
        let bad = |what: &str| ConfigError(format!("environment variable {name}: expected {what}"));
        let value = match default {
            Value::Array(_) => Value::Array(
                raw.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| Value::String(s.to_string()))
                    .collect(),
            ),
            Value::Number(_) => raw
                .trim()
                .parse::<u64>()
                .map(Value::from)
                .map_err(|_| bad("a non-negative integer"))?,
            Value::Bool(_) => raw
                .trim()
                .parse::<bool>()
                .map(Value::Bool)
                .map_err(|_| bad("true or false"))?,
            _ => Value::String(raw),
        };
        set_path(tree, &path, value);
    }
    Ok(())
}

/// Loads the configuration from all layers. Returns warnings to log once
/// logging is up.
pub fn load(
    file: Option<&Path>,
    overrides: &Overrides,
    env: impl Iterator<Item = (String, String)>,
) -> Result<(Config, Vec<String>), ConfigError> {
    let defaults = serde_json::to_value(Config::default())
        .map_err(|e| ConfigError(format!("defaults: {e}")))?;
    let mut tree = Value::Object(Map::new());
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cannot read config file {}: {e}", path.display())))?;
        // Not `e`'s Display: it quotes the offending line, which may hold a
        // secret (an unquoted store URL with its password, say).
        let table: toml::Table = toml::from_str(&text).map_err(|e| {
            let at = e
                .span()
                .map(|span| {
                    // Bytes, not chars: the offset need not be a char boundary.
                    let before = &text.as_bytes()[..span.start.min(text.len())];
                    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
                    let column = before.len()
                        - before
                            .iter()
                            .rposition(|b| *b == b'\n')
                            .map_or(0, |i| i + 1)
                        + 1;
                    format!(" at line {line}, column {column}")
                })
                .unwrap_or_default();
            ConfigError(format!(
                "config file {}: invalid TOML{at}: {}",
                path.display(),
                e.message()
            ))
        })?;
        tree = serde_json::to_value(table)
            .map_err(|e| ConfigError(format!("config file {}: {e}", path.display())))?;
        // `store = "postgres://…"` (the spelling) is `[store] url`.
        if let Some(url) = tree.get("store").filter(|v| v.is_string()).cloned() {
            set_path(
                &mut tree,
                &["store".to_string()],
                serde_json::json!({ "url": url }),
            );
        }
    }
    let mut warnings = Vec::new();
    apply_env(&mut tree, &defaults, env, &mut warnings)?;
    let flag = |tree: &mut Value, key: &str, v: Value| set_path(tree, &[key.to_string()], v);
    if let Some(v) = &overrides.listen {
        flag(&mut tree, "listen", v.clone().into());
    }
    if let Some(v) = &overrides.issuer {
        flag(&mut tree, "issuer", v.clone().into());
    }
    if let Some(v) = &overrides.data_dir {
        flag(&mut tree, "data_dir", v.display().to_string().into());
    }
    if !overrides.audiences.is_empty() {
        // Flags replace lists from the file (docs/decisions.md
        // "Configuration and CLI").
        flag(
            &mut tree,
            "allowed_audiences",
            overrides.audiences.clone().into(),
        );
    }
    for (key, v) in &overrides.set {
        let path: Vec<String> = key.split('.').map(String::from).collect();
        set_path(&mut tree, &path, v.clone());
    }
    let config: Config = serde_path_to_error::deserialize(tree).map_err(|e| {
        let path = e.path().to_string();
        ConfigError(format!("invalid configuration at `{path}`: {}", e.inner()))
    })?;
    Ok((config, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Iterator<Item = (String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn environment_binds_declared_keys_and_warns_on_others() {
        let (c, warnings) = load(
            None,
            &Overrides::default(),
            env(&[
                ("GATEHOUSE_REGISTRATION__CONFIDENTIAL", "open"),
                (
                    "GATEHOUSE_ALLOWED_AUDIENCES",
                    "https://a/mcp, https://b/mcp",
                ),
                ("GATEHOUSE_NOPE", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(c.registration.confidential, Confidential::Open);
        assert_eq!(c.allowed_audiences, vec!["https://a/mcp", "https://b/mcp"]);
        assert_eq!(
            warnings,
            vec!["ignoring unknown environment variable GATEHOUSE_NOPE"]
        );
    }

    #[test]
    fn gateway_lists_come_from_the_environment_but_server_tables_do_not() {
        let (c, warnings) = load(
            None,
            &Overrides::default(),
            env(&[
                (
                    "GATEHOUSE_GATEWAY__ALLOWED_ORIGINS",
                    "https://a.example, https://b.example",
                ),
                ("GATEHOUSE_GATEWAY__ALGORITHMS", "ES256"),
                ("GATEHOUSE_GATEWAY__ACCEPT_PLAIN_JWT", "true"),
                ("GATEHOUSE_GATEWAY__LISTEN", "127.0.0.1:9"),
                ("GATEHOUSE_GATEWAY__SERVERS", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(
            c.gateway.allowed_origins,
            vec!["https://a.example", "https://b.example"]
        );
        assert_eq!(c.gateway.algorithms, vec!["ES256"]);
        assert!(c.gateway.accept_plain_jwt);
        assert_eq!(c.gateway.listen.as_deref(), Some("127.0.0.1:9"));
        assert!(c.gateway.servers.is_empty());
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("GATEHOUSE_GATEWAY__SERVERS"));
    }

    #[test]
    fn an_unknown_key_in_a_server_table_is_named() {
        let dir = std::env::temp_dir().join(format!("gatehouse-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("unknown-server-key.toml");
        std::fs::write(
            &file,
            "[[gateway.servers]]\nresource = \"http://127.0.0.1:1/a\"\nupstream = \"http://127.0.0.1:2/mcp\"\npolicies = \"p.cedar\"\nupstreem = \"x\"\n",
        )
        .unwrap();
        let err = load(Some(&file), &Overrides::default(), env(&[])).unwrap_err();
        let _ = std::fs::remove_file(&file);
        assert!(err.0.contains("gateway.servers[0]"), "{}", err.0);
        assert!(err.0.contains("upstreem"), "{}", err.0);
    }

    #[test]
    fn connection_limits_come_from_the_environment() {
        let (c, warnings) = load(
            None,
            &Overrides::default(),
            env(&[
                ("GATEHOUSE_LIMITS__MAX_CONNECTIONS", "64"),
                ("GATEHOUSE_LIMITS__HEADER_READ_TIMEOUT", "2s"),
                ("GATEHOUSE_LIMITS__IDLE_TIMEOUT", "3s"),
                ("GATEHOUSE_LIMITS__REQUEST_BODY_TIMEOUT", "4s"),
                ("GATEHOUSE_LIMITS__UPSTREAM_RESPONSE_TIMEOUT", "5s"),
            ]),
        )
        .unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(c.limits.max_connections, 64);
        assert_eq!(c.limits.header_read_timeout.0, Duration::from_secs(2));
        assert_eq!(c.limits.idle_timeout.0, Duration::from_secs(3));
        assert_eq!(c.limits.request_body_timeout.0, Duration::from_secs(4));
        assert_eq!(c.limits.upstream_response_timeout.0, Duration::from_secs(5));
    }

    #[test]
    fn trusted_proxies_and_the_new_limits_come_from_the_environment() {
        let (c, warnings) = load(
            None,
            &Overrides::default(),
            env(&[
                ("GATEHOUSE_TRUSTED_PROXIES", "10.0.0.0/8, ::1"),
                ("GATEHOUSE_REGISTRATION__MAX_CLIENTS_PER_ADDRESS", "0"),
                ("GATEHOUSE_REGISTRATION__UNUSED_EXPIRY", "2h"),
                (
                    "GATEHOUSE_CLIENT_AUTH__FREE_FAILURES_PER_ADDRESS_CLIENT",
                    "3",
                ),
                ("GATEHOUSE_CLIENT_AUTH__MAX_BACKOFF", "1m"),
            ]),
        )
        .unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(c.trusted_proxies, vec!["10.0.0.0/8", "::1"]);
        assert_eq!(c.registration.max_clients_per_address, 0);
        assert_eq!(c.registration.unused_expiry.0, Duration::from_secs(7200));
        assert_eq!(c.client_auth.free_failures_per_address_client, 3);
        assert_eq!(c.client_auth.max_backoff.0, Duration::from_secs(60));
    }

    #[test]
    fn flags_win_over_environment() {
        let o = Overrides {
            listen: Some("127.0.0.1:9".into()),
            ..Default::default()
        };
        let (c, _) = load(None, &o, env(&[("GATEHOUSE_LISTEN", "127.0.0.1:7")])).unwrap();
        assert_eq!(c.listen, "127.0.0.1:9");
    }

    #[test]
    fn bad_values_name_the_key() {
        let err = load(
            None,
            &Overrides::default(),
            env(&[("GATEHOUSE_REGISTRATION__CONFIDENTIAL", "maybe")]),
        )
        .unwrap_err();
        assert!(err.0.contains("registration.confidential"), "{}", err.0);
        let err = load(
            None,
            &Overrides::default(),
            env(&[("GATEHOUSE_REGISTRATION__MAX_CLIENTS", "lots")]),
        )
        .unwrap_err();
        assert!(
            err.0.contains("GATEHOUSE_REGISTRATION__MAX_CLIENTS"),
            "{}",
            err.0
        );
    }
}
