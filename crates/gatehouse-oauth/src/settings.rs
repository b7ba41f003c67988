//! Validated server settings, as the protocol core sees them. Loading them
//! (file, environment, flags) is the binary's job.

use crate::keys::Alg;
use std::time::Duration;

/// Who may register confidential clients dynamically (`registration.confidential`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistrationMode {
    Off,
    InitialToken,
    Open,
}

#[derive(Debug, Clone)]
pub struct RegistrationSettings {
    pub confidential: RegistrationMode,
    pub initial_access_tokens: Vec<String>,
    /// Cap on dynamically registered clients in total.
    pub max_clients: u64,
    /// Whether public (redirect-based, `none`) clients may register
    /// themselves (`registration.public`, on by default: that is how MCP
    /// clients acting for a person arrive).
    pub public: bool,
    /// Registrations allowed per source address per minute.
    pub per_address_per_minute: u32,
    /// Live self-registered clients one address (IPv6: one /64) may have;
    /// 0: no cap.
    pub max_clients_per_address: u64,
    /// Dynamically registered clients unused this long are deleted.
    pub idle_expiry: Duration,
    /// Dynamically registered clients never used at all are deleted this
    /// long after registration.
    pub unused_expiry: Duration,
}

impl RegistrationSettings {
    /// Whether the registration endpoint exists at all.
    pub fn enabled(&self) -> bool {
        self.public || self.confidential != RegistrationMode::Off
    }
}

/// Client authentication with JWT assertions (`[client_auth]`).
#[derive(Debug, Clone)]
pub struct ClientAuthSettings {
    /// Longest accepted assertion lifetime: `exp - iat`, or `exp - now`
    /// without `iat` (RFC 7523 §3 lets the server bound it). It also bounds
    /// how long a `jti` is remembered.
    pub max_assertion_lifetime: Duration,
    /// Accept the token endpoint URL as assertion `aud` besides the issuer
    /// (docs/decisions.md "Client authentication with JWTs": authlib sends it).
    pub accept_token_endpoint_aud: bool,
    /// Allow `http` `jwks_uri`s and fetches to loopback addresses
    /// (`client_auth.allow_http_loopback_jwks_uri`): for tests and local
    /// setups only, since the keys would travel unauthenticated.
    pub allow_http_loopback_jwks_uri: bool,
    /// Backoff after failed client authentication.
    pub failures: FailureLimits,
}

impl Default for ClientAuthSettings {
    fn default() -> Self {
        ClientAuthSettings {
            max_assertion_lifetime: Duration::from_secs(3600),
            accept_token_endpoint_aud: true,
            allow_http_loopback_jwks_uri: false,
            failures: FailureLimits::default(),
        }
    }
}

/// Backoff after failed client authentication at the token, revocation and
/// introspection endpoints, counted per client address and per (address,
/// client id): failures allowed before any wait, then waits doubling from
/// one second up to `max_backoff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureLimits {
    pub free_per_address: u32,
    pub free_per_address_client: u32,
    pub max_backoff: Duration,
}

impl Default for FailureLimits {
    fn default() -> Self {
        FailureLimits {
            free_per_address: 10,
            free_per_address_client: 5,
            max_backoff: Duration::from_secs(15 * 60),
        }
    }
}

/// Signing-key rotation (`[keys]`, docs/operations.md "Signing keys").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySettings {
    /// How long a new key is published before it signs, so that resource
    /// servers' JWKS caches learn it first.
    pub pre_publication: Duration,
    /// The automatic schedule: a new key activates this long after its
    /// predecessor. `None`: keys rotate only with `gatehouse key rotate`.
    pub rotate_every: Option<Duration>,
}

impl Default for KeySettings {
    fn default() -> Self {
        KeySettings {
            pre_publication: DEFAULT_PRE_PUBLICATION,
            rotate_every: None,
        }
    }
}

/// One hour: far beyond the JWKS's own cache lifetime (`max-age=300`) and
/// the gateway's periodic refetch (5 minutes).
pub const DEFAULT_PRE_PUBLICATION: Duration = Duration::from_secs(3600);

/// People: the authorization code flow, sign-in and refresh tokens
/// (`[people]`, docs/people.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeopleSettings {
    /// Whether people may sign in and authorize clients at all
    /// (`/oauth/authorize` and the pages exist, public clients may register).
    pub enabled: bool,
    /// Lifetime of an authorization code.
    pub code_lifetime: Duration,
    /// How long a refresh token works unused (each rotation starts anew).
    pub refresh_token_lifetime: Duration,
    /// The absolute end of a grant, counted from sign-in: no refresh token of
    /// it works after this, however often it was rotated.
    pub session_lifetime: Duration,
    /// How long a rotated refresh token still yields its (same) successor,
    /// so a client retrying a lost response is not logged out.
    pub refresh_grace: Duration,
    /// How long a browser stays signed in at Gatehouse.
    pub signin_lifetime: Duration,
    /// How long a browser that signed in as someone stays exempt from the
    /// per-name sign-in limit for that account (its device cookie).
    pub device_lifetime: Duration,
    /// Authorization codes one person may be given a minute, over her sessions.
    pub codes_per_user_per_minute: u32,
    /// Authorization codes one client may be given a minute, over everyone.
    pub codes_per_client_per_minute: u32,
    /// What the pages say besides the protocol (`[people]` page settings).
    pub pages: PagesSettings,
    /// Whether people may sign in with a password here
    /// (`[people] local_accounts`).
    pub local_accounts: bool,
    /// Whether a first sign-in at a provider makes an account
    /// (`[people] provision`).
    pub provision: Provision,
    /// Upstream identity providers people may sign in with
    /// (`[[people.providers]]`, docs/people.md "Signing in elsewhere").
    pub providers: Vec<ProviderSettings>,
}

/// Whether a person's first sign-in at a provider creates their account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provision {
    /// Yes: just in time.
    JustInTime,
    /// No: `gatehouse user add NAME --link PROVIDER:SUBJECT` first.
    Preexisting,
}

/// One upstream OpenID Provider.
#[derive(Clone, PartialEq, Eq)]
pub struct ProviderSettings {
    /// Stable: part of every identity linked through it (`[a-z0-9-]{1,32}`).
    pub id: String,
    /// What the sign-in page calls it.
    pub name: String,
    pub issuer: String,
    pub client_id: String,
    /// Read from `client_secret_file`; sent with HTTP Basic.
    pub client_secret: Option<String>,
    pub scopes: Vec<String>,
    pub rules: crate::people::federation::IdentityRules,
}

impl std::fmt::Debug for ProviderSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderSettings")
            .field("id", &self.id)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "…"))
            .field("scopes", &self.scopes)
            .field("rules", &self.rules)
            .finish()
    }
}

/// The words on the pages people see (docs/people.md "The pages").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PagesSettings {
    /// Who runs this server, shown on the sign-in page with the issuer's host.
    pub site_name: String,
    /// The line under the sign-in form for a forgotten password.
    pub forgot_password: String,
    /// Where that line links to, if anywhere.
    pub forgot_password_url: Option<String>,
    /// Plain-language descriptions of scopes for the consent page; the OIDC
    /// scopes have defaults ([`PagesSettings::describe`]).
    pub scope_descriptions: std::collections::BTreeMap<String, String>,
    /// Names of MCP servers by resource URL (the gateway's servers when it
    /// is embedded); others are shown by host and path.
    pub resource_names: std::collections::BTreeMap<String, String>,
}

impl Default for PagesSettings {
    fn default() -> Self {
        PagesSettings {
            site_name: "Gatehouse".to_string(),
            forgot_password: "Forgot your password? Ask your administrator.".to_string(),
            forgot_password_url: None,
            scope_descriptions: Default::default(),
            resource_names: Default::default(),
        }
    }
}

impl PagesSettings {
    /// What a scope means, in words: the operator's description, else the
    /// default for an OIDC scope; `None` for a scope nobody described.
    pub fn describe(&self, scope: &str) -> Option<&str> {
        if let Some(d) = self.scope_descriptions.get(scope) {
            return Some(d);
        }
        Some(match scope {
            "openid" => "Know who you are: your account's id at this server",
            "profile" => "See your user name and the groups you are in",
            "email" => "See your email address",
            "offline_access" => {
                "Keep access while you are not using it, until it expires or is revoked"
            }
            _ => return None,
        })
    }

    /// How an MCP server is named to people: its configured name, else its
    /// URL's host and path.
    pub fn resource_name(&self, resource: &str) -> String {
        if let Some(name) = self.resource_names.get(resource) {
            return name.clone();
        }
        match url::Url::parse(resource) {
            Ok(u) => format!(
                "{}{}{}",
                u.host_str().unwrap_or_default(),
                u.port().map(|p| format!(":{p}")).unwrap_or_default(),
                u.path().trim_end_matches('/')
            ),
            Err(_) => resource.to_string(),
        }
    }
}

impl Default for PeopleSettings {
    fn default() -> Self {
        PeopleSettings {
            enabled: true,
            code_lifetime: Duration::from_secs(60),
            refresh_token_lifetime: Duration::from_secs(14 * 24 * 3600),
            session_lifetime: Duration::from_secs(90 * 24 * 3600),
            refresh_grace: Duration::from_secs(2),
            signin_lifetime: Duration::from_secs(12 * 3600),
            device_lifetime: Duration::from_secs(180 * 24 * 3600),
            codes_per_user_per_minute: 30,
            codes_per_client_per_minute: 600,
            pages: PagesSettings::default(),
            local_accounts: true,
            provision: Provision::JustInTime,
            providers: Vec::new(),
        }
    }
}

/// Whether, and for which hosts, clients may be identified by a metadata
/// document URL (`[client_metadata] mode`, docs/clients.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentMode {
    /// https client ids are unknown clients.
    Off,
    /// Any host not blocked may identify redirect (person-facing) clients.
    Any,
    /// Only `trusted_hosts` (and, for machines, the rules' hosts).
    Allowlist,
}

/// Machines identified by a metadata document get client_credentials tokens
/// only under a rule for their document's host
/// (`[[client_metadata.machine_rules]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineRule {
    pub host: crate::client_documents::HostPattern,
    /// Audiences the machine may obtain; empty: any allowed audience.
    pub audiences: Vec<String>,
    /// Scopes the machine may obtain; empty: any its document names.
    pub scopes: Vec<String>,
}

/// `[client_metadata]`: Client ID Metadata Documents (docs/clients.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientMetadataSettings {
    pub mode: DocumentMode,
    /// Hosts whose documents are shown as verified (and, in allowlist mode,
    /// the only ones accepted for redirect clients).
    pub trusted_hosts: Vec<crate::client_documents::HostPattern>,
    /// Hosts never accepted, whatever else says.
    pub blocked_hosts: Vec<crate::client_documents::HostPattern>,
    pub machine_rules: Vec<MachineRule>,
    /// Bounds on how long a fetched document is used, whatever its
    /// `Cache-Control` says.
    pub min_cache: Duration,
    pub max_cache: Duration,
    /// Documents fetched per second at most, over all hosts.
    pub fetches_per_second: u32,
    /// Documents fetched per minute at most from one host.
    pub fetches_per_host_per_minute: u32,
}

impl Default for ClientMetadataSettings {
    fn default() -> Self {
        ClientMetadataSettings {
            mode: DocumentMode::Any,
            trusted_hosts: Vec::new(),
            blocked_hosts: Vec::new(),
            machine_rules: Vec::new(),
            min_cache: Duration::from_secs(60),
            max_cache: Duration::from_secs(24 * 3600),
            fetches_per_second: 20,
            fetches_per_host_per_minute: 60,
        }
    }
}

impl ClientMetadataSettings {
    /// Whether metadata document clients exist here at all: the mode is not
    /// off, and someone can use one (people sign in, or a machine rule).
    pub fn supported(&self, people_enabled: bool) -> bool {
        self.mode != DocumentMode::Off && (people_enabled || !self.machine_rules.is_empty())
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub issuer: crate::issuer::Issuer,
    pub allowed_audiences: Vec<String>,
    pub scopes_supported: Vec<String>,
    /// Scopes for a token requested without `scope` by a client registered without any.
    pub default_scopes: Vec<String>,
    pub access_token_ttl: Duration,
    pub signing_alg: Alg,
    pub registration: RegistrationSettings,
    /// How often caches poll the Store's change sequence.
    pub store_poll_interval: Duration,
    /// How long cached clients are honoured while the Store is unreachable.
    pub store_max_stale: Duration,
    /// Lifetime of newly minted client secrets (`client_auth.secret_lifetime`);
    /// `None`: they never expire (`client_secret_expires_at: 0`, RFC 7591 §3.2.1).
    pub secret_lifetime: Option<Duration>,
    pub client_auth: ClientAuthSettings,
    pub keys: KeySettings,
    pub people: PeopleSettings,
    /// Proxies whose `X-Forwarded-For` is believed (`trusted_proxies`).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Keys each in-memory per-address limiter holds at most
    /// (`limits.limiter_capacity`); when full, the least recently used is
    /// forgotten.
    pub limiter_capacity: usize,
    /// Client ID Metadata Documents (`[client_metadata]`).
    pub client_metadata: ClientMetadataSettings,
}

/// The default of `limits.limiter_capacity`.
pub const DEFAULT_LIMITER_CAPACITY: usize = 100_000;

impl Settings {
    /// `scopes_supported` as advertised (RFC 8414 §2) and registrable
    /// (RFC 7591 §2): the configured scopes, then the OIDC scopes while
    /// people can sign in (OIDC Discovery §3). Empty: nothing to advertise.
    pub fn advertised_scopes(&self) -> Vec<String> {
        crate::scope::with_people_scopes(&self.scopes_supported, self.people.enabled)
    }

    /// Whether `scope` is among [`Settings::advertised_scopes`], without
    /// building the list.
    pub fn advertises(&self, scope: &str) -> bool {
        self.scopes_supported.iter().any(|s| s == scope)
            || (self.people.enabled && crate::scope::PEOPLE_SCOPES.contains(&scope))
    }

    /// Whether `scope` may be registered and granted: with no
    /// `scopes_supported` configured any well-formed scope may (clients'
    /// registrations then say which they get); otherwise the configured
    /// scopes and, while people can sign in, the OIDC scopes.
    pub fn scope_supported(&self, scope: &str) -> bool {
        self.scopes_supported.is_empty() || self.advertises(scope)
    }

    /// Seconds a superseded signing key stays published.
    pub fn key_retention(&self) -> i64 {
        crate::keys::states::retention()
    }
}

pub const MIN_ACCESS_TOKEN_TTL: Duration = Duration::from_secs(60);
pub const MAX_ACCESS_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);
