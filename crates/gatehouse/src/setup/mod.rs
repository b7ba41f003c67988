//! From a loaded [`Config`] to a running [`AuthorizationServer`]: validation
//! of every value, the data directory, the key-encryption key, the store.

mod validate;

pub use validate::{issuer_for, secret_lifetime, settings, shutdown_grace};

use crate::config::{Config, ENV_KEK};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use gatehouse_oauth::AuthorizationServer;
use gatehouse_oauth::cache::ClientCache;
use gatehouse_oauth::clock::system_now;
use gatehouse_oauth::crypto::{Kek, random_bytes};
use gatehouse_oauth::keys::Alg;
use gatehouse_oauth::keys::keyring::KeyRing;
use gatehouse_oauth::keys::keyset::load_secret_verifier;
use gatehouse_oauth::settings::Settings;
use gatehouse_oauth::store::Store;
use gatehouse_store::{Bounded, PostgresOptions, PostgresStore, SqliteStore};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub type SetupError = String;

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
    // Said when the key is made, and at every `serve` start
    // (`warn_kek_beside_data`): repeated on every admin command it would
    // teach operators to ignore warnings.
    if !path.exists() {
        create_kek_file(&path)?;
        warn_kek_beside_data(&path);
    }
    check_private(&path)?;
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    decode_kek(&text, &path.display().to_string())
}

static KEK_WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Warns, once per process, that the key-encryption key sits in the data
/// directory.
pub fn warn_kek_beside_data(path: &Path) {
    if KEK_WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    tracing::warn!(
        path = %path.display(),
        "no key_encryption_key_file is configured: the key that encrypts signing keys sits \
         beside the database in the data directory; set key_encryption_key_file (or {ENV_KEK}) \
         to keep it apart from database backups"
    );
}

/// The key-encryption key's file when it is the one in the data directory
/// (nothing else configured), for `serve` to say so at start.
pub fn kek_in_data_dir(config: &Config) -> Option<std::path::PathBuf> {
    (std::env::var_os(ENV_KEK).is_none()
        && config.key_encryption_key_file.is_none()
        && config.store.url.is_none())
    .then(|| config.data_dir.join("kek"))
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

/// Opens the store an admin command (`client`, `user`, `key`) works on.
/// Admin commands never create or migrate a store unless told to
/// (`--init`): run from the wrong directory, or with `GATEHOUSE_STORE`
/// pointing elsewhere, they would otherwise make a fresh store the server
/// never reads. They say on stderr which store they used.
pub async fn open_admin_store(config: &Config, init: bool) -> Result<Arc<dyn Store>, SetupError> {
    check_store_config(config)?;
    let store = if init {
        open_store(config).await?
    } else {
        if let StoreKind::Sqlite = store_kind(config)? {
            let db = config.data_dir.join("gatehouse.db");
            if !db.exists() {
                return Err(format!(
                    "no store at {}: start the server there once (`gatehouse serve`), run \
                     `gatehouse migrate`, or pass --init to create it; use --data-dir, \
                     --config or --store to name the server's store",
                    db.display()
                ));
            }
        }
        let store = connect_store(config).await?;
        let pending = store
            .pending_migrations()
            .await
            .map_err(|e| format!("cannot read the store: {e}"))?;
        if !pending.is_empty() {
            let described = store.describe();
            store.close().await;
            return Err(format!(
                "the store {described} is not initialised or is behind this version \
                 ({} migration(s) pending): run `gatehouse migrate` first, or pass --init",
                pending.len()
            ));
        }
        store
    };
    eprintln!("gatehouse: using store {}", store.describe());
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
    let outbound = Arc::new(crate::outbound::Outbound::new(
        config.outbound.extra_ca_file.as_deref(),
    )?);
    Ok(Arc::new(
        AuthorizationServer::new(settings, store, keys, secrets, cache)
            .with_keys_fetcher(outbound.clone())
            .with_document_fetcher(outbound.clone())
            .with_upstream_fetcher(outbound),
    ))
}
