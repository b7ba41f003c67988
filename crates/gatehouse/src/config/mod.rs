//! Configuration: defaults < TOML file < `GATEHOUSE_*` environment < flags.
//!
//! Every layer is merged as a JSON tree and deserialised once, with unknown
//! keys refused and the offending key named (serde_path_to_error). The set of
//! keys the environment may set, and how each value is parsed, is derived from
//! the serialised defaults — there is no second hand-kept list of keys.

mod layers;
#[cfg(test)]
mod tests;

pub use layers::{ENV_KEK, Overrides, load};

use crate::gateway_config::GatewaySection;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::path::PathBuf;
use std::time::Duration;

/// A duration written as a human string ("15m", "30d").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&compact_duration(self.0))
    }
}

/// A duration the way people write them and the parser reads them back:
/// days, hours, minutes, seconds and milliseconds, largest first, zero
/// units left out ("90d", "1h30m", "250ms"). humantime's own format counts
/// in months and years of fractional days ("2months 29days 2h 52m 48s" for
/// 90 days).
pub fn compact_duration(d: Duration) -> String {
    let mut secs = d.as_secs();
    let millis = d.subsec_millis();
    let mut out = String::new();
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        let n = secs / size;
        if n > 0 {
            out.push_str(&format!("{n}{unit}"));
            secs -= n * size;
        }
    }
    if millis > 0 {
        out.push_str(&format!("{millis}ms"));
    }
    if out.is_empty() {
        out.push_str("0s");
    }
    out
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

/// `[outbound]`: fetches of URLs someone else chose (`jwks_uri`, metadata
/// documents), docs/operations.md "Outbound fetches".
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboundConfig {
    /// A PEM file of CA certificates trusted besides the system's.
    pub extra_ca_file: Option<PathBuf>,
    /// Allow loopback addresses and plain http to them (tests, local
    /// setups), only while the issuer itself is on loopback.
    pub allow_loopback: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DocumentModeConfig {
    Off,
    Any,
    Allowlist,
}

/// `[[client_metadata.machine_rules]]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineRuleConfig {
    pub host: String,
    #[serde(default)]
    pub audiences: Vec<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// `[client_metadata]`: clients identified by a metadata document URL
/// (checked in `setup::validate`; docs/clients.md).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientMetadataConfig {
    /// "off", "any" or "allowlist".
    pub mode: DocumentModeConfig,
    /// Hosts shown as verified (the only ones accepted in allowlist mode).
    pub trusted_hosts: Vec<String>,
    /// Hosts never accepted.
    pub blocked_hosts: Vec<String>,
    /// Shortest and longest use of a fetched document.
    pub min_cache: Dur,
    pub max_cache: Dur,
    /// Documents fetched per second at most, over every host.
    pub fetches_per_second: u32,
    /// Documents fetched per minute at most from one host.
    pub fetches_per_host_per_minute: u32,
    /// Which machines (client_credentials) may identify themselves so.
    pub machine_rules: Vec<MachineRuleConfig>,
}

impl Default for ClientMetadataConfig {
    fn default() -> Self {
        let d = gatehouse_oauth::settings::ClientMetadataSettings::default();
        ClientMetadataConfig {
            mode: DocumentModeConfig::Any,
            trusted_hosts: Vec::new(),
            blocked_hosts: Vec::new(),
            min_cache: Dur(d.min_cache),
            max_cache: Dur(d.max_cache),
            fetches_per_second: d.fetches_per_second,
            fetches_per_host_per_minute: d.fetches_per_host_per_minute,
            machine_rules: Vec::new(),
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
    /// Who runs this server, shown on the sign-in page.
    pub site_name: String,
    /// The line under the sign-in form for a forgotten password.
    pub forgot_password: String,
    /// Where that line links to (https, or http on loopback), if anywhere.
    pub forgot_password_url: Option<String>,
    /// Consent-page descriptions of scopes (`scope = "what it allows"`).
    pub scope_descriptions: std::collections::BTreeMap<String, String>,
    /// Whether people may sign in with a password kept here.
    pub local_accounts: bool,
    /// "jit": a first sign-in at a provider makes the account;
    /// "preexisting": `user add NAME --link PROVIDER:SUBJECT` first.
    pub provision: ProvisionConfig,
    /// Upstream identity providers (`[[people.providers]]`).
    pub providers: Vec<ProviderConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProvisionConfig {
    Jit,
    Preexisting,
}

/// `[[people.providers]]`: one upstream OpenID Provider (checked in
/// `setup::validate::providers`; docs/people.md "Signing in elsewhere").
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Stable id, `[a-z0-9-]{1,32}`: part of every identity linked through it.
    pub id: String,
    /// "oidc" (discovery from `issuer`).
    pub kind: String,
    /// The name on the sign-in page's button; default: the id.
    #[serde(default)]
    pub name: Option<String>,
    pub issuer: String,
    pub client_id: String,
    /// A file holding Gatehouse's client secret at the provider.
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
    #[serde(default = "default_provider_scopes")]
    pub scopes: Vec<String>,
    /// The claim (or dotted path) holding the person's groups.
    #[serde(default)]
    pub groups_claim: Option<String>,
    /// Only verified emails in these domains may sign in.
    #[serde(default)]
    pub allowed_email_domains: Vec<String>,
    /// Only people in one of these groups may sign in.
    #[serde(default)]
    pub allowed_groups: Vec<String>,
}

fn default_provider_scopes() -> Vec<String> {
    ["openid", "email", "profile"].map(String::from).to_vec()
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
            site_name: d.pages.site_name,
            forgot_password: d.pages.forgot_password,
            forgot_password_url: d.pages.forgot_password_url,
            scope_descriptions: d.pages.scope_descriptions,
            local_accounts: d.local_accounts,
            provision: ProvisionConfig::Jit,
            providers: Vec::new(),
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
    pub outbound: OutboundConfig,
    pub client_metadata: ClientMetadataConfig,
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
            outbound: OutboundConfig::default(),
            client_metadata: ClientMetadataConfig::default(),
            store: StoreConfig::default(),
            limits: LimitsConfig::default(),
            keys: KeysConfig::default(),
            people: PeopleConfig::default(),
            gateway: GatewaySection::default(),
        }
    }
}
