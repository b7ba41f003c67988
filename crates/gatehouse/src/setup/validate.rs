//! Every configuration value checked, and the core's [`Settings`] built
//! from them; errors name the offending key.

use super::SetupError;
use crate::config::{Confidential, Config, DocumentModeConfig};
use gatehouse_oauth::client_documents::HostPattern;
use gatehouse_oauth::issuer::Issuer;
use gatehouse_oauth::keys::Alg;
use gatehouse_oauth::resource::validate_resource;
use gatehouse_oauth::scope::parse_scope;
use gatehouse_oauth::settings::{
    ClientAuthSettings, ClientMetadataSettings, DocumentMode, FailureLimits, MAX_ACCESS_TOKEN_TTL,
    MIN_ACCESS_TOKEN_TTL, MachineRule, PagesSettings, PeopleSettings, ProviderSettings, Provision,
    RegistrationMode, RegistrationSettings, Settings,
};
use std::net::SocketAddr;
use std::time::Duration;

/// The issuer: configured, or derived from a loopback listen address.
pub fn issuer_for(config: &Config, bound: Option<SocketAddr>) -> Result<Issuer, SetupError> {
    match &config.issuer {
        Some(s) => Issuer::parse(s).map_err(|e| format!("invalid configuration at `issuer`: {e}")),
        None => {
            let addr = match bound {
                Some(a) => a,
                None => config
                    .listen
                    .parse::<SocketAddr>()
                    .map_err(|e| format!("invalid configuration at `listen`: {e}"))?,
            };
            if !addr.ip().is_loopback() {
                return Err(format!(
                    "`issuer` must be set when listening on a non-loopback address ({addr}); it must be the https URL clients use"
                ));
            }
            Issuer::parse(&format!("http://{addr}"))
                .map_err(|e| format!("invalid configuration at `issuer`: {e}"))
        }
    }
}

/// Checks every value and builds the core's settings.
pub fn settings(config: &Config, issuer: Issuer) -> Result<Settings, SetupError> {
    let bad = |key: &str, e: String| format!("invalid configuration at `{key}`: {e}");
    for a in &config.allowed_audiences {
        validate_resource(a).map_err(|e| bad("allowed_audiences", format!("{a:?}: {e}")))?;
    }
    let scopes =
        parse_scope(&config.scopes_supported.join(" ")).map_err(|e| bad("scopes_supported", e))?;
    if scopes.len() != config.scopes_supported.len() {
        return Err(bad(
            "scopes_supported",
            "entries must be single, distinct scope tokens".into(),
        ));
    }
    for s in &config.tokens.default_scopes {
        if !scopes.contains(s) {
            return Err(bad(
                "tokens.default_scopes",
                format!("{s:?} is not in scopes_supported"),
            ));
        }
    }
    let ttl = config.access_token_ttl.0;
    if !(MIN_ACCESS_TOKEN_TTL..=MAX_ACCESS_TOKEN_TTL).contains(&ttl) {
        return Err(bad(
            "access_token_ttl",
            "must be between 1 minute and 24 hours".into(),
        ));
    }
    let signing_alg: Alg = config
        .signing_alg
        .parse()
        .map_err(|e| bad("signing_alg", e))?;
    if config.store.poll_interval.0.is_zero() {
        return Err(bad(
            "store.poll_interval",
            "must be greater than zero".into(),
        ));
    }
    if config.store.max_stale.0 < config.store.poll_interval.0 * 2 {
        return Err(bad(
            "store.max_stale",
            "must be at least twice store.poll_interval".into(),
        ));
    }
    let registration = registration_settings(config)?;
    let mut client_auth = client_auth_settings(config)?;
    client_auth.allow_http_loopback_jwks_uri = allow_loopback(config, &issuer)?;
    let client_metadata = client_metadata_settings(config)?;
    let secret_lifetime = secret_lifetime(config)?;
    let trusted_proxies =
        gatehouse_server::client_addr::parse_trusted_proxies(&config.trusted_proxies)
            .map_err(|e| bad("trusted_proxies", e))?;
    Ok(Settings {
        issuer,
        allowed_audiences: config.allowed_audiences.clone(),
        scopes_supported: scopes,
        default_scopes: config.tokens.default_scopes.clone(),
        access_token_ttl: ttl,
        signing_alg,
        registration,
        store_poll_interval: config.store.poll_interval.0,
        store_max_stale: config.store.max_stale.0,
        secret_lifetime,
        client_auth,
        keys: crate::key_cmd::key_settings(config)?,
        people: people_settings(config)?,
        trusted_proxies,
        limiter_capacity: crate::limits::limiter_capacity(config)?,
        client_metadata,
    })
}

/// `[outbound] allow_loopback` (or its older name,
/// `client_auth.allow_http_loopback_jwks_uri`): only for an issuer that is
/// itself on loopback, so a deployed server never fetches from its own host.
fn allow_loopback(config: &Config, issuer: &Issuer) -> Result<bool, SetupError> {
    let on = config.outbound.allow_loopback || config.client_auth.allow_http_loopback_jwks_uri;
    let loopback_issuer = url::Url::parse(issuer.as_str())
        .is_ok_and(|u| gatehouse_oauth::issuer::is_loopback_host(&u));
    if on && !loopback_issuer {
        return Err(
            "invalid configuration at `outbound.allow_loopback`: only for an issuer on loopback (tests and local setups)"
                .into(),
        );
    }
    Ok(on)
}

/// `[client_metadata]`: host patterns, cache bounds and fetch limits.
fn client_metadata_settings(config: &Config) -> Result<ClientMetadataSettings, SetupError> {
    let bad =
        |key: &str, e: String| format!("invalid configuration at `client_metadata.{key}`: {e}");
    let c = &config.client_metadata;
    let patterns = |key: &str, list: &[String]| -> Result<Vec<HostPattern>, SetupError> {
        list.iter()
            .map(|p| HostPattern::parse(p).map_err(|e| bad(key, e)))
            .collect()
    };
    let (min_cache, max_cache) = (c.min_cache.0, c.max_cache.0);
    if min_cache < Duration::from_secs(60)
        || max_cache > Duration::from_secs(24 * 3600)
        || min_cache > max_cache
    {
        return Err(bad(
            "min_cache",
            "min_cache and max_cache must lie between 1 minute and 24 hours, min_cache first"
                .into(),
        ));
    }
    for (key, n) in [
        ("fetches_per_second", c.fetches_per_second),
        ("fetches_per_host_per_minute", c.fetches_per_host_per_minute),
    ] {
        if !(1..=10_000).contains(&n) {
            return Err(bad(key, "must be between 1 and 10000".into()));
        }
    }
    let mut machine_rules = Vec::new();
    for r in &c.machine_rules {
        for a in &r.audiences {
            if !config.allowed_audiences.iter().any(|x| x == a) {
                return Err(bad(
                    "machine_rules.audiences",
                    format!("{a:?} is not in allowed_audiences"),
                ));
            }
        }
        let scopes =
            parse_scope(&r.scopes.join(" ")).map_err(|e| bad("machine_rules.scopes", e))?;
        machine_rules.push(MachineRule {
            host: HostPattern::parse(&r.host).map_err(|e| bad("machine_rules.host", e))?,
            audiences: r.audiences.clone(),
            scopes,
        });
    }
    Ok(ClientMetadataSettings {
        mode: match c.mode {
            DocumentModeConfig::Off => DocumentMode::Off,
            DocumentModeConfig::Any => DocumentMode::Any,
            DocumentModeConfig::Allowlist => DocumentMode::Allowlist,
        },
        trusted_hosts: patterns("trusted_hosts", &c.trusted_hosts)?,
        blocked_hosts: patterns("blocked_hosts", &c.blocked_hosts)?,
        machine_rules,
        min_cache,
        max_cache,
        fetches_per_second: c.fetches_per_second,
        fetches_per_host_per_minute: c.fetches_per_host_per_minute,
    })
}

/// `[registration]`: initial access tokens required (and long enough) when
/// confidential registration needs one; never-used clients expire no later
/// than idle ones.
fn registration_settings(config: &Config) -> Result<RegistrationSettings, SetupError> {
    let bad = |key: &str, e: String| format!("invalid configuration at `{key}`: {e}");
    let reg = &config.registration;
    if reg.confidential == Confidential::InitialToken && reg.initial_access_tokens.is_empty() {
        return Err(bad(
            "registration.initial_access_tokens",
            "required when registration.confidential = \"initial-token\"".into(),
        ));
    }
    if reg.initial_access_tokens.iter().any(|t| t.len() < 16) {
        return Err(bad(
            "registration.initial_access_tokens",
            "each token must be at least 16 characters".into(),
        ));
    }
    let unused_expiry = reg.unused_expiry.0;
    if unused_expiry < Duration::from_secs(1) || unused_expiry > reg.idle_expiry.0 {
        return Err(bad(
            "registration.unused_expiry",
            "must be at least 1s and at most registration.idle_expiry".into(),
        ));
    }
    Ok(RegistrationSettings {
        confidential: match reg.confidential {
            Confidential::Off => RegistrationMode::Off,
            Confidential::InitialToken => RegistrationMode::InitialToken,
            Confidential::Open => RegistrationMode::Open,
        },
        public: reg.public,
        initial_access_tokens: reg.initial_access_tokens.clone(),
        max_clients: reg.max_clients,
        per_address_per_minute: reg.per_address_per_minute.max(1),
        max_clients_per_address: reg.max_clients_per_address,
        idle_expiry: reg.idle_expiry.0,
        unused_expiry,
    })
}

/// `[client_auth]`: assertion lifetimes and the failure backoff within a day.
fn client_auth_settings(config: &Config) -> Result<ClientAuthSettings, SetupError> {
    let bad = |key: &str, e: String| format!("invalid configuration at `{key}`: {e}");
    let lifetime = config.client_auth.max_assertion_lifetime.0;
    if lifetime < Duration::from_secs(10) || lifetime > Duration::from_secs(24 * 3600) {
        return Err(bad(
            "client_auth.max_assertion_lifetime",
            "must be between 10s and 24h".into(),
        ));
    }
    let max_backoff = config.client_auth.max_backoff.0;
    if max_backoff < Duration::from_secs(1) || max_backoff > Duration::from_secs(24 * 3600) {
        return Err(bad(
            "client_auth.max_backoff",
            "must be between 1s and 24h".into(),
        ));
    }
    Ok(ClientAuthSettings {
        max_assertion_lifetime: config.client_auth.max_assertion_lifetime.0,
        accept_token_endpoint_aud: config.client_auth.accept_token_endpoint_aud,
        allow_http_loopback_jwks_uri: config.client_auth.allow_http_loopback_jwks_uri,
        failures: FailureLimits {
            free_per_address: config.client_auth.free_failures_per_address,
            free_per_address_client: config.client_auth.free_failures_per_address_client,
            max_backoff,
        },
    })
}

/// `[people]`, each duration within a range that keeps the flow sound: a
/// code outliving minutes is a replay window, a grace period of more than
/// seconds a window for a stolen token.
pub fn people_settings(config: &Config) -> Result<PeopleSettings, SetupError> {
    let p = &config.people;
    let within = |key: &str, d: Duration, min: u64, max: u64, say: &str| {
        if d < Duration::from_secs(min) || d > Duration::from_secs(max) {
            Err(SetupError::from(format!(
                "invalid configuration at `people.{key}`: must be between {say}"
            )))
        } else {
            Ok(d)
        }
    };
    const DAY: u64 = 86_400;
    // 0 would stop every sign-in flow; beyond a million is no limit at all.
    let per_minute = |key: &str, n: u32| {
        if (1..=1_000_000).contains(&n) {
            Ok(n)
        } else {
            Err(SetupError::from(format!(
                "invalid configuration at `people.{key}`: must be between 1 and 1000000"
            )))
        }
    };
    let settings = PeopleSettings {
        enabled: p.enabled,
        code_lifetime: within("code_lifetime", p.code_lifetime.0, 10, 600, "10s and 10m")?,
        refresh_token_lifetime: within(
            "refresh_token_lifetime",
            p.refresh_token_lifetime.0,
            60,
            365 * DAY,
            "1m and 365d",
        )?,
        session_lifetime: within(
            "session_lifetime",
            p.session_lifetime.0,
            300,
            365 * DAY,
            "5m and 365d",
        )?,
        refresh_grace: within("refresh_grace", p.refresh_grace.0, 0, 60, "0s and 60s")?,
        signin_lifetime: within(
            "signin_lifetime",
            p.signin_lifetime.0,
            60,
            30 * DAY,
            "1m and 30d",
        )?,
        // Browsers keep a cookie at most 400 days (RFC 6265bis §5.6.1).
        device_lifetime: within(
            "device_lifetime",
            p.device_lifetime.0,
            60,
            400 * DAY,
            "1m and 400d",
        )?,
        codes_per_user_per_minute: per_minute(
            "codes_per_user_per_minute",
            p.codes_per_user_per_minute,
        )?,
        codes_per_client_per_minute: per_minute(
            "codes_per_client_per_minute",
            p.codes_per_client_per_minute,
        )?,
        pages: pages_settings(p)?,
        local_accounts: p.local_accounts,
        provision: match p.provision {
            crate::config::ProvisionConfig::Jit => Provision::JustInTime,
            crate::config::ProvisionConfig::Preexisting => Provision::Preexisting,
        },
        providers: providers(config)?,
    };
    if settings.enabled && !settings.local_accounts && settings.providers.is_empty() {
        return Err(
            "invalid configuration at `people.local_accounts`: with no [[people.providers]], nobody could sign in"
                .into(),
        );
    }
    Ok(settings)
}

/// `[[people.providers]]`: ids unique and well-formed, an https issuer (http
/// only on loopback, with `[outbound] allow_loopback`), `openid` among the
/// scopes, the client secret read from its file.
fn providers(config: &Config) -> Result<Vec<ProviderSettings>, SetupError> {
    let allow_loopback =
        config.outbound.allow_loopback || config.client_auth.allow_http_loopback_jwks_uri;
    let mut out: Vec<ProviderSettings> = Vec::new();
    for p in &config.people.providers {
        let bad = |key: &str, e: String| {
            format!(
                "invalid configuration at `people.providers.{key}` (provider {:?}): {e}",
                p.id
            )
        };
        let id_ok = !p.id.is_empty()
            && p.id.len() <= 32
            && p.id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !id_ok {
            return Err(bad("id", "must be 1 to 32 of a-z, 0-9 and -".into()));
        }
        if out.iter().any(|o| o.id == p.id) {
            return Err(bad("id", "is used twice".into()));
        }
        if p.kind != "oidc" {
            return Err(bad(
                "kind",
                format!("{:?} is not supported (supported: \"oidc\")", p.kind),
            ));
        }
        let issuer = url::Url::parse(&p.issuer).map_err(|e| bad("issuer", e.to_string()))?;
        let loopback = gatehouse_oauth::issuer::is_loopback_host(&issuer);
        match issuer.scheme() {
            "https" => {}
            "http" if loopback && allow_loopback => {}
            _ => {
                return Err(bad(
                    "issuer",
                    "must be https (http only to loopback, with [outbound] allow_loopback)".into(),
                ));
            }
        }
        if p.client_id.is_empty() {
            return Err(bad("client_id", "is required".into()));
        }
        let client_secret = match &p.client_secret_file {
            Some(path) => {
                let s = std::fs::read_to_string(path)
                    .map_err(|e| bad("client_secret_file", format!("{}: {e}", path.display())))?;
                let s = s.trim().to_string();
                if s.is_empty() {
                    return Err(bad(
                        "client_secret_file",
                        format!("{} is empty", path.display()),
                    ));
                }
                Some(s)
            }
            None => None,
        };
        let scopes = parse_scope(&p.scopes.join(" ")).map_err(|e| bad("scopes", e))?;
        if !scopes.iter().any(|s| s == "openid") {
            return Err(bad("scopes", "must include openid".into()));
        }
        if !p.allowed_groups.is_empty() && p.groups_claim.is_none() {
            return Err(bad(
                "allowed_groups",
                "needs groups_claim: without it nobody has a group".into(),
            ));
        }
        let name = p.name.clone().unwrap_or_else(|| p.id.clone());
        if name.trim().is_empty()
            || name.chars().count() > 100
            || name.chars().any(char::is_control)
        {
            return Err(bad("name", "must be 1 to 100 characters of text".into()));
        }
        out.push(ProviderSettings {
            id: p.id.clone(),
            name,
            issuer: p.issuer.clone(),
            client_id: p.client_id.clone(),
            client_secret,
            scopes,
            rules: gatehouse_oauth::people::federation::IdentityRules {
                groups_claim: p.groups_claim.clone(),
                allowed_email_domains: p.allowed_email_domains.clone(),
                allowed_groups: p.allowed_groups.clone(),
            },
        });
    }
    Ok(out)
}

/// The words on the pages: bounded, since they are shown on every sign-in.
fn pages_settings(p: &crate::config::PeopleConfig) -> Result<PagesSettings, SetupError> {
    let bad = |key: &str, e: &str| format!("invalid configuration at `people.{key}`: {e}");
    let text = |key: &str, s: &str, max: usize| {
        if s.trim().is_empty() || s.chars().count() > max || s.chars().any(char::is_control) {
            Err(bad(
                key,
                &format!("must be 1 to {max} characters of text, without control characters"),
            ))
        } else {
            Ok(s.to_string())
        }
    };
    if let Some(u) = &p.forgot_password_url {
        let url = url::Url::parse(u).map_err(|e| bad("forgot_password_url", &e.to_string()))?;
        let loopback = url.host_str().is_some_and(|h| {
            h == "localhost" || h.parse::<std::net::IpAddr>().is_ok_and(|a| a.is_loopback())
        });
        if !(url.scheme() == "https" || url.scheme() == "http" && loopback) {
            return Err(bad(
                "forgot_password_url",
                "must be an https URL (http only on loopback)",
            ));
        }
    }
    if p.scope_descriptions.len() > 100 {
        return Err(bad("scope_descriptions", "at most 100 scopes"));
    }
    for (scope, description) in &p.scope_descriptions {
        if parse_scope(scope).ok().as_deref() != Some(std::slice::from_ref(scope)) {
            return Err(bad(
                "scope_descriptions",
                &format!("{scope:?} is not a single scope token"),
            ));
        }
        text("scope_descriptions", description, 200)?;
    }
    Ok(PagesSettings {
        site_name: text("site_name", &p.site_name, 100)?,
        forgot_password: text("forgot_password", &p.forgot_password, 300)?,
        forgot_password_url: p.forgot_password_url.clone(),
        scope_descriptions: p.scope_descriptions.clone(),
        resource_names: Default::default(),
    })
}

/// `limits.shutdown_grace`: at most ten minutes (checked before binding).
pub fn shutdown_grace(config: &Config) -> Result<Duration, SetupError> {
    let grace = config.limits.shutdown_grace.0;
    if grace > Duration::from_secs(600) {
        return Err(
            "invalid configuration at `limits.shutdown_grace`: must be at most 10 minutes".into(),
        );
    }
    Ok(grace)
}

/// `client_auth.secret_lifetime`: at least a minute (a shorter secret could
/// expire before it is delivered), at most ten years.
pub fn secret_lifetime(config: &Config) -> Result<Option<std::time::Duration>, SetupError> {
    let Some(lifetime) = config.client_auth.secret_lifetime else {
        return Ok(None);
    };
    let range = std::time::Duration::from_secs(60)..=std::time::Duration::from_secs(3650 * 86_400);
    if !range.contains(&lifetime.0) {
        return Err(
            "invalid configuration at `client_auth.secret_lifetime`: must be between 1 minute and 10 years"
                .into(),
        );
    }
    Ok(Some(lifetime.0))
}
