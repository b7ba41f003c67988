//! From a loaded [`Config`] to a running [`AuthorizationServer`]: validation
//! of every value, the data directory, the key-encryption key, the store.

use crate::config::{Confidential, Config, ENV_KEK};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use gatehouse_oauth::AuthorizationServer;
use gatehouse_oauth::cache::ClientCache;
use gatehouse_oauth::clock::system_now;
use gatehouse_oauth::crypto::{Kek, random_bytes};
use gatehouse_oauth::issuer::Issuer;
use gatehouse_oauth::keys::Alg;
use gatehouse_oauth::keys::keyring::KeyRing;
use gatehouse_oauth::keys::keyset::load_secret_verifier;
use gatehouse_oauth::resource::validate_resource;
use gatehouse_oauth::scope::parse_scope;
use gatehouse_oauth::settings::{
    ClientAuthSettings, FailureLimits, MAX_ACCESS_TOKEN_TTL, MIN_ACCESS_TOKEN_TTL, PeopleSettings,
    RegistrationMode, RegistrationSettings, Settings,
};
use gatehouse_oauth::store::Store;
use gatehouse_store::{Bounded, PostgresOptions, PostgresStore, SqliteStore};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub type SetupError = String;

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
    let lifetime = config.client_auth.max_assertion_lifetime.0;
    if lifetime < Duration::from_secs(10) || lifetime > Duration::from_secs(24 * 3600) {
        return Err(bad(
            "client_auth.max_assertion_lifetime",
            "must be between 10s and 24h".into(),
        ));
    }
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
    let secret_lifetime = secret_lifetime(config)?;
    let trusted_proxies =
        gatehouse_server::client_addr::parse_trusted_proxies(&config.trusted_proxies)
            .map_err(|e| bad("trusted_proxies", e))?;
    let unused_expiry = reg.unused_expiry.0;
    if unused_expiry < Duration::from_secs(1) || unused_expiry > reg.idle_expiry.0 {
        return Err(bad(
            "registration.unused_expiry",
            "must be at least 1s and at most registration.idle_expiry".into(),
        ));
    }
    let max_backoff = config.client_auth.max_backoff.0;
    if max_backoff < Duration::from_secs(1) || max_backoff > Duration::from_secs(24 * 3600) {
        return Err(bad(
            "client_auth.max_backoff",
            "must be between 1s and 24h".into(),
        ));
    }
    Ok(Settings {
        issuer,
        allowed_audiences: config.allowed_audiences.clone(),
        scopes_supported: scopes,
        default_scopes: config.tokens.default_scopes.clone(),
        access_token_ttl: ttl,
        signing_alg,
        registration: RegistrationSettings {
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
        },
        store_poll_interval: config.store.poll_interval.0,
        store_max_stale: config.store.max_stale.0,
        secret_lifetime,
        client_auth: ClientAuthSettings {
            max_assertion_lifetime: config.client_auth.max_assertion_lifetime.0,
            accept_token_endpoint_aud: config.client_auth.accept_token_endpoint_aud,
            allow_http_loopback_jwks_uri: config.client_auth.allow_http_loopback_jwks_uri,
            failures: FailureLimits {
                free_per_address: config.client_auth.free_failures_per_address,
                free_per_address_client: config.client_auth.free_failures_per_address_client,
                max_backoff,
            },
        },
        keys: crate::key_cmd::key_settings(config)?,
        people: people_settings(config)?,
        trusted_proxies,
        limiter_capacity: crate::limits::limiter_capacity(config)?,
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
    };
    Ok(settings)
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

#[cfg(unix)]
fn restrict(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn restrict(_path: &Path, _mode: u32) -> std::io::Result<()> {
    Ok(())
}

fn decode_kek(text: &str, origin: &str) -> Result<Kek, SetupError> {
    let bytes = STANDARD
        .decode(text.trim())
        .map_err(|_| format!("{origin}: the key-encryption key must be base64"))?;
    if bytes.len() != 32 {
        return Err(format!(
            "{origin}: the key-encryption key must be 32 bytes (base64 of 32 random bytes)"
        ));
    }
    Kek::from_bytes(&bytes).map_err(|e| format!("{origin}: {e}"))
}

/// The key-encryption key: from the environment or the configured file;
/// with the SQLite store also `<data_dir>/kek`, created on first start with
/// mode 0600. Replicas sharing a PostgreSQL store must share one key, which
/// no replica could invent on its own, so there it is required
/// (docs/decisions.md "Keys, secrets and identifiers").
pub fn key_encryption_key(config: &Config) -> Result<Kek, SetupError> {
    if let Ok(v) = std::env::var(ENV_KEK) {
        return decode_kek(&v, ENV_KEK);
    }
    if let Some(path) = &config.key_encryption_key_file {
        check_private(path)?;
        let text = std::fs::read_to_string(path).map_err(|e| {
            format!(
                "cannot read key_encryption_key_file {}: {e}",
                path.display()
            )
        })?;
        return decode_kek(&text, &path.display().to_string());
    }
    if config.store.url.is_some() {
        return Err(format!(
            "the PostgreSQL store needs a key-encryption key shared by every replica: set \
             key_encryption_key_file or {ENV_KEK} to 32 random bytes in base64 \
             (for example `head -c 32 /dev/urandom | base64`); it must never be stored in the database"
        ));
    }
    let path = config.data_dir.join("kek");
    if !path.exists() {
        create_kek_file(&path)?;
    }
    tracing::warn!(
        path = %path.display(),
        "no key_encryption_key_file is configured: the key that encrypts signing keys sits \
         beside the database in the data directory; set key_encryption_key_file (or {ENV_KEK}) \
         to keep it apart from database backups"
    );
    check_private(&path)?;
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    decode_kek(&text, &path.display().to_string())
}

/// Refuses a key file that others may read.
#[cfg(unix)]
pub(crate) fn check_private(path: &Path) -> Result<(), SetupError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(format!(
            "{} is readable by other users (mode {:o}); run chmod 600 on it",
            path.display(),
            mode & 0o777
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
pub(crate) fn check_private(_path: &Path) -> Result<(), SetupError> {
    Ok(())
}

/// Writes a new key-encryption key atomically: a complete temporary file is
/// hard-linked into place, so a process starting at the same moment either
/// sees the whole key or creates its own and loses the link race.
fn create_kek_file(path: &Path) -> Result<(), SetupError> {
    use std::io::Write;
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = options.open(&tmp).and_then(|mut f| {
        f.write_all(STANDARD.encode(random_bytes::<32>()).as_bytes())?;
        f.sync_all()
    });
    let linked = written.and_then(|_| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            tracing::info!(path = %path.display(), "created key-encryption key");
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(format!("cannot create {}: {e}", path.display())),
    }
}

/// Which backend `store.url` names.
enum StoreKind<'a> {
    Sqlite,
    Postgres(&'a str),
}

fn store_kind(config: &Config) -> Result<StoreKind<'_>, SetupError> {
    match config.store.url.as_deref() {
        None => Ok(StoreKind::Sqlite),
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            Ok(StoreKind::Postgres(url))
        }
        // Never echo the value: it may carry a password.
        Some(_) => Err(
            "invalid configuration at `store.url`: expected a postgres:// or postgresql:// URL \
             (leave it unset for SQLite in data_dir)"
                .into(),
        ),
    }
}

/// The PostgreSQL connection settings from `[store]`, range-checked.
fn postgres_options(config: &Config) -> Result<PostgresOptions, SetupError> {
    let bad = |key: &str, what: &str| format!("invalid configuration at `store.{key}`: {what}");
    let s = &config.store;
    if !(1..=1000).contains(&s.max_connections) {
        return Err(bad("max_connections", "must be between 1 and 1000"));
    }
    let range = Duration::from_millis(100)..=Duration::from_secs(300);
    if !range.contains(&s.acquire_timeout.0) {
        return Err(bad("acquire_timeout", "must be between 100ms and 5m"));
    }
    if !range.contains(&s.statement_timeout.0) {
        return Err(bad("statement_timeout", "must be between 100ms and 5m"));
    }
    Ok(PostgresOptions {
        max_connections: s.max_connections,
        acquire_timeout: s.acquire_timeout.0,
        statement_timeout: s.statement_timeout.0,
        schema: s.schema.clone(),
    })
}

/// Opens the configured store and brings its schema up to date (both
/// backends migrate under a lock, so replicas starting together agree):
/// SQLite in the data directory (created 0700) by default, or PostgreSQL.
pub async fn open_store(config: &Config) -> Result<Arc<dyn Store>, SetupError> {
    let store = connect_store(config).await?;
    store
        .migrate()
        .await
        .map_err(|e| format!("cannot migrate the store: {e}"))?;
    Ok(store)
}

/// Opens the configured store without touching its schema (`migrate`).
pub async fn connect_store(config: &Config) -> Result<Arc<dyn Store>, SetupError> {
    match store_kind(config)? {
        StoreKind::Sqlite => {
            let dir = &config.data_dir;
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create data directory {}: {e}", dir.display()))?;
            restrict(dir, 0o700).map_err(|e| format!("cannot restrict {}: {e}", dir.display()))?;
            let store = SqliteStore::connect(&dir.join("gatehouse.db"))
                .await
                .map_err(|e| format!("cannot open the store: {e}"))?;
            Ok(Arc::new(store))
        }
        StoreKind::Postgres(url) => {
            let options = postgres_options(config)?;
            let store = PostgresStore::connect(url, &options)
                .await
                .map_err(|e| format!("cannot open the PostgreSQL store: {e}"))?;
            // Waiting for a connection, then two statements' worth (writes
            // are a few quick statements in one transaction), and a second
            // of slack: past that the database is not answering (Bounded).
            let deadline =
                options.acquire_timeout + options.statement_timeout * 2 + Duration::from_secs(1);
            Ok(Arc::new(Bounded::new(store, deadline)))
        }
    }
}

/// Checks, before anything is opened, what a start needs besides the store:
/// a PostgreSQL store without a key-encryption key stops here.
pub fn check_store_config(config: &Config) -> Result<(), SetupError> {
    if let StoreKind::Postgres(_) = store_kind(config)? {
        postgres_options(config)?;
        key_encryption_key(config)?;
    }
    Ok(())
}

/// The secret-hashing keys alone (for admin commands).
pub async fn secret_verifier(
    config: &Config,
    store: &dyn Store,
) -> Result<gatehouse_oauth::client_auth::SecretVerifier, SetupError> {
    let kek = key_encryption_key(config)?;
    load_secret_verifier(store, &kek, system_now())
        .await
        .map_err(|e| e.to_string())
}

/// Builds the authorization server over an opened store.
pub async fn build(
    config: &Config,
    settings: Settings,
    store: Arc<dyn Store>,
) -> Result<Arc<AuthorizationServer>, SetupError> {
    let kek = key_encryption_key(config)?;
    // The change sequence is read before the keys, so a key added in
    // between is reloaded by the first poll rather than missed.
    let start_seq = store
        .latest_change()
        .await
        .map_err(|e| format!("cannot read the store: {e}"))?;
    let secrets = load_secret_verifier(store.as_ref(), &kek, system_now())
        .await
        .map_err(|e| e.to_string())?;
    let retention = settings.key_retention();
    // ID tokens default to RS256 (OIDC), so people need an RS256 key even
    // when access tokens use another algorithm (docs/decisions.md "Tokens").
    let also: &[Alg] = if settings.people.enabled {
        &[Alg::RS256]
    } else {
        &[]
    };
    let keys = KeyRing::open(
        store.as_ref(),
        kek,
        settings.signing_alg,
        also,
        retention,
        system_now(),
    )
    .await
    .map_err(|e| e.to_string())?;
    let cache = ClientCache::new(start_seq, settings.store_max_stale);
    Ok(Arc::new(
        AuthorizationServer::new(settings, store, keys, secrets, cache)
            .with_keys_fetcher(Arc::new(crate::jwks_fetch::HttpKeysFetcher)),
    ))
}
