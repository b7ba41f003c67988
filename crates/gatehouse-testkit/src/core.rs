//! The protocol core in-process (ARCHITECTURE.md "Code map",
//! `gatehouse-oauth`): a real [`AuthorizationServer`] built in milliseconds,
//! without the binary, HTTP or a wall clock.
//!
//! - The store is a real [`SqliteStore`] on a fresh file under `/dev/shm`
//!   when the machine has it (else the temporary directory), removed on
//!   drop: this is the in-memory store of these tests, the same SQL the
//!   binary runs.
//! - The signing and secret-hashing keys are created the way the binary
//!   creates the first ones (`KeyRing::open`, `load_secret_verifier`), under
//!   a fresh key-encryption key, once per test process: that migrated store
//!   is the template each [`Core`]'s file is copied from.
//! - Time is an [`Arc<ManualClock>`] injected with
//!   [`AuthorizationServer::with_clock`] (ARCHITECTURE.md "Time"): tests
//!   move it instead of sleeping.
//! - Clients are made through the core's own functions ([`create_client`]
//!   for the operator's clients, [`AuthorizationServer::register`] for
//!   dynamic registration) and token requests through its own form parser
//!   ([`TokenRequest::from_form`]).

use gatehouse_oauth::AuthorizationServer;
use gatehouse_oauth::cache::ClientCache;
use gatehouse_oauth::client::{AuthMethod, ClientMetadata, ClientOrigin, new_client_id};
use gatehouse_oauth::client_auth::SecretVerifier;
use gatehouse_oauth::clock::ManualClock;
use gatehouse_oauth::crypto::{Kek, random_base62, random_bytes};
use gatehouse_oauth::error::OAuthError;
use gatehouse_oauth::grant_records::{BrowserSession, User};
use gatehouse_oauth::issuer::Issuer;
use gatehouse_oauth::keys::keyring::KeyRing;
use gatehouse_oauth::keys::keyset::load_secret_verifier;
use gatehouse_oauth::keys::{Alg, SigningKey};
use gatehouse_oauth::people::forms::AuthorizationParams;
use gatehouse_oauth::people::pkce;
use gatehouse_oauth::registration::create::{CreatedClient, NewClient, create_client};
use gatehouse_oauth::settings::{
    ClientAuthSettings, DEFAULT_LIMITER_CAPACITY, KeySettings, PeopleSettings, RegistrationMode,
    RegistrationSettings, Settings,
};
use gatehouse_oauth::store::Store;
use gatehouse_oauth::tokens::request::TokenRequest;
use gatehouse_oauth::tokens::verify::{AccessToken, verify_own};
use gatehouse_store::SqliteStore;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OnceCell;

/// The issuer of the in-process server.
pub const ISSUER: &str = "https://auth.example";
/// The two audiences tokens may name (two, so `resource` is required).
pub const RESOURCE: &str = "https://api.example/mcp";
pub const OTHER_RESOURCE: &str = "https://files.example/mcp";
/// The redirect URI of [`Core::person_client`].
pub const REDIRECT_URI: &str = "https://app.example/cb";
/// Where every [`Core`]'s manual clock starts (2027-01-15, unix seconds).
pub const T0: i64 = 1_800_000_000;

/// Settings as the binary's defaults make them, for [`ISSUER`], with the
/// audiences [`RESOURCE`] and [`OTHER_RESOURCE`] and scopes `read write`.
pub fn default_settings() -> Settings {
    Settings {
        issuer: Issuer::parse(ISSUER).expect("a valid issuer"),
        allowed_audiences: vec![RESOURCE.into(), OTHER_RESOURCE.into()],
        scopes_supported: vec!["read".into(), "write".into()],
        default_scopes: Vec::new(),
        access_token_ttl: Duration::from_secs(300),
        signing_alg: Alg::ES256,
        registration: RegistrationSettings {
            confidential: RegistrationMode::Open,
            initial_access_tokens: Vec::new(),
            max_clients: 1000,
            public: true,
            per_address_per_minute: 1000,
            max_clients_per_address: 0,
            idle_expiry: Duration::from_secs(30 * 24 * 3600),
            unused_expiry: Duration::from_secs(24 * 3600),
        },
        store_poll_interval: Duration::from_secs(1),
        store_max_stale: Duration::from_secs(60),
        secret_lifetime: None,
        client_auth: ClientAuthSettings::default(),
        keys: KeySettings::default(),
        people: PeopleSettings::default(),
        trusted_proxies: Vec::new(),
        limiter_capacity: DEFAULT_LIMITER_CAPACITY,
        client_metadata: Default::default(),
    }
}

/// A SQLite file removed (with its WAL and migration-lock files) on drop.
struct DbFile(PathBuf);

impl DbFile {
    fn fresh() -> DbFile {
        let shm = PathBuf::from("/dev/shm");
        let dir = if shm.is_dir() {
            shm
        } else {
            std::env::temp_dir()
        };
        let name = format!(
            "gatehouse-core-{}-{}.db",
            std::process::id(),
            random_base62(12)
        );
        DbFile(dir.join(name))
    }

    fn with_suffix(&self, suffix: &str) -> PathBuf {
        let mut p = self.0.clone().into_os_string();
        p.push(suffix);
        PathBuf::from(p)
    }
}

impl Drop for DbFile {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(self.with_suffix(suffix));
        }
        // The store's migration lock beside the database (gatehouse-store).
        let _ = std::fs::remove_file(self.0.with_extension("migrate-lock"));
    }
}

/// The keys as the binary opens them (`setup/mod.rs`): the secret-hashing key
/// and the signing keys, each created by the core's own functions when the
/// store holds none (`load_secret_verifier`, `KeyRing::open`), RS256 too
/// when people are enabled (ID tokens, OIDC Core §3.1.3.7).
async fn open_keys(store: &dyn Store, kek: Kek, settings: &Settings) -> (SecretVerifier, KeyRing) {
    let secrets = load_secret_verifier(store, &kek, T0)
        .await
        .expect("the secret-hashing key");
    let also: &[Alg] = if settings.people.enabled {
        &[Alg::RS256]
    } else {
        &[]
    };
    let retention = settings.key_retention();
    let keys = KeyRing::open(store, kek, settings.signing_alg, also, retention, T0)
        .await
        .expect("the signing keys");
    (secrets, keys)
}

/// A migrated store with freshly generated keys, made once per test
/// process and copied for each [`Core`]: migrating and generating an RSA
/// key take far longer than a test (unoptimised builds), copying a few
/// pages does not.
struct Template {
    kek: [u8; 32],
    /// The database file and its WAL, by suffix.
    files: Vec<(&'static str, Vec<u8>)>,
}

impl Template {
    async fn make() -> Template {
        let kek = random_bytes::<32>();
        let db = DbFile::fresh();
        let store = SqliteStore::open(&db.0)
            .await
            .expect("open the template store");
        let settings = default_settings();
        let key = Kek::from_bytes(&kek).expect("a 32-byte key");
        open_keys(&store, key, &settings).await;
        store.close().await;
        let files = ["", "-wal"]
            .into_iter()
            .filter_map(|suffix| {
                std::fs::read(db.with_suffix(suffix))
                    .ok()
                    .map(|b| (suffix, b))
            })
            .collect();
        Template { kek, files }
    }

    fn copy_to(&self, db: &DbFile) {
        for (suffix, bytes) in &self.files {
            std::fs::write(db.with_suffix(suffix), bytes).expect("copy the template store");
        }
    }
}

async fn template() -> &'static Template {
    static TEMPLATE: OnceCell<Template> = OnceCell::const_new();
    TEMPLATE.get_or_init(Template::make).await
}

/// A person signed in at Gatehouse, for the code grant.
pub struct Person {
    pub user: User,
    pub session: BrowserSession,
}

/// An [`AuthorizationServer`] over its own store, with its clock.
pub struct Core {
    pub server: AuthorizationServer,
    pub clock: Arc<ManualClock>,
    // Declared last: the file goes after the server's pool closes.
    _db: DbFile,
}

impl Core {
    /// A server with [`default_settings`].
    pub async fn new() -> Core {
        Core::with(|_| {}).await
    }

    /// A server with [`default_settings`] changed by `tweak`.
    pub async fn with(tweak: impl FnOnce(&mut Settings)) -> Core {
        let mut settings = default_settings();
        tweak(&mut settings);
        let template = template().await;
        let db = DbFile::fresh();
        template.copy_to(&db);
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open(&db.0)
                .await
                .expect("open the SQLite store"),
        );
        let kek = Kek::from_bytes(&template.kek).expect("a 32-byte key");
        let (secrets, keys) = open_keys(store.as_ref(), kek, &settings).await;
        let start_seq = store.latest_change().await.expect("the change sequence");
        let cache = ClientCache::new(start_seq, settings.store_max_stale);
        let clock = Arc::new(ManualClock::new(T0));
        let server = AuthorizationServer::new(settings, store, keys, secrets, cache)
            .with_clock(clock.clone());
        Core {
            server,
            clock,
            _db: db,
        }
    }

    /// The same core with its server changed by `f` (an injected fetcher).
    pub fn map_server(self, f: impl FnOnce(AuthorizationServer) -> AuthorizationServer) -> Core {
        Core {
            server: f(self.server),
            clock: self.clock,
            _db: self._db,
        }
    }

    pub fn store(&self) -> &dyn Store {
        self.server.store.as_ref()
    }

    pub fn now(&self) -> i64 {
        self.server.now()
    }

    /// Creates a client the way `gatehouse client add` does
    /// ([`create_client`], origin `cli`), with `metadata` as given.
    pub async fn client(&self, metadata: ClientMetadata) -> CreatedClient {
        let new = NewClient {
            id: new_client_id(),
            origin: ClientOrigin::Cli,
            metadata,
            secret_lifetime: self.server.settings.secret_lifetime,
        };
        create_client(self.store(), &self.server.secrets, new, None, self.now())
            .await
            .expect("create the client")
    }

    /// A `client_credentials` client authenticating with `method`.
    pub async fn machine_client(&self, method: AuthMethod) -> CreatedClient {
        self.client(metadata(&["client_credentials"], method, &[]))
            .await
    }

    /// A `private_key_jwt` machine client holding `key` (inline `jwks`).
    pub async fn key_client(&self, key: &SigningKey) -> CreatedClient {
        let mut m = metadata(&["client_credentials"], AuthMethod::PrivateKeyJwt, &[]);
        m.jwks = Some(serde_json::json!({ "keys": [key.public_jwk()] }));
        self.client(m).await
    }

    /// A public client of a person (code and refresh grants, `none`,
    /// redirecting to [`REDIRECT_URI`]).
    pub async fn person_client(&self) -> CreatedClient {
        self.client(metadata(
            &["authorization_code", "refresh_token"],
            AuthMethod::None,
            &[REDIRECT_URI],
        ))
        .await
    }

    /// Dynamic registration (RFC 7591) from a loopback address.
    pub async fn register(&self, body: Value) -> Result<CreatedClient, OAuthError> {
        let Value::Object(body) = body else {
            panic!("a registration body is a JSON object");
        };
        self.server.register(&body, None, "127.0.0.1").await
    }

    /// How many clients the store holds.
    pub async fn client_count(&self) -> usize {
        self.store()
            .list_clients()
            .await
            .expect("list clients")
            .len()
    }

    /// A person in the store, signed in now (no password: the code grant
    /// starts after sign-in).
    pub async fn person(&self) -> Person {
        let user = User {
            id: format!("u_{}", random_base62(16)),
            name: format!("p{}", random_base62(8).to_ascii_lowercase()),
            password_hash: "unused".into(),
            groups: Vec::new(),
            created_at: self.now(),
            credentials_gen: 1,
        };
        self.store().insert_user(&user).await.expect("insert user");
        let session = BrowserSession {
            user_id: user.id.clone(),
            auth_time: self.now(),
            expires_at: self.now() + 3600,
            credentials_gen: user.credentials_gen,
        };
        Person { user, session }
    }

    /// A code for `client_id` through the core's authorization endpoint
    /// functions: request validated, consent recorded, code issued (RFC
    /// 6749 §4.1.2), with the PKCE challenge of `verifier` and `redirect_uri`
    /// sent explicitly.
    pub async fn code(&self, client_id: &str, person: &Person, verifier: &str) -> String {
        let query = form(&[
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", REDIRECT_URI),
            ("code_challenge", &pkce::challenge_of(verifier)),
            ("code_challenge_method", pkce::S256),
            ("scope", "read"),
            ("resource", RESOURCE),
            ("state", "s"),
        ]);
        let params = AuthorizationParams::parse(query.as_bytes()).expect("authorization params");
        let req = self
            .server
            .authorization_request(&params)
            .await
            .expect("a valid authorization request");
        let (user, now) = (&person.user, self.now());
        self.server
            .record_consent(&user.id, &req, now)
            .await
            .expect("consent");
        let location = self
            .server
            .issue_code(&req, user, &person.session, now)
            .await
            .expect("issue a code")
            .expect("the code is stored");
        let url = url::Url::parse(&location).expect("a redirect URL");
        url.query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
            .expect("the redirect carries a code")
    }

    /// Verifies an access token this server issued, at the manual clock.
    pub fn access_token(&self, token: &str) -> AccessToken {
        verify_own(&self.server.keys.snapshot(), ISSUER, token).expect("one of our access tokens")
    }
}

/// Client metadata as the classifier would store it.
pub fn metadata(grants: &[&str], method: AuthMethod, redirect_uris: &[&str]) -> ClientMetadata {
    let code = grants.contains(&"authorization_code");
    ClientMetadata {
        client_name: None,
        grant_types: grants.iter().map(|g| g.to_string()).collect(),
        response_types: if code { vec!["code".into()] } else { vec![] },
        redirect_uris: redirect_uris.iter().map(|u| u.to_string()).collect(),
        token_endpoint_auth_method: method,
        scopes: None,
        audiences: None,
        resource_servers: None,
        jwks: None,
        jwks_uri: None,
        extra: serde_json::Map::new(),
    }
}

/// `application/x-www-form-urlencoded` of `pairs`.
pub fn form(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// A token request parsed by the core's own form parser, with optional
/// HTTP Basic credentials (RFC 6749 §2.3.1, as the HTTP layer decodes them).
pub fn token_request(pairs: &[(&str, &str)], basic: Option<(&str, &str)>) -> TokenRequest {
    let mut req = TokenRequest::from_form(form(pairs).as_bytes()).expect("a well-formed form");
    req.basic = basic.map(|(u, p)| (u.to_string(), p.to_string()));
    req
}

/// A PKCE verifier (RFC 7636 §4.1: 43 to 128 unreserved characters).
pub fn verifier() -> String {
    random_base62(64)
}

/// A client assertion (RFC 7523 §3) signed by `key` with `claims` as given.
pub fn assertion(key: &SigningKey, claims: &Value) -> String {
    key.sign_jwt("JWT", claims).expect("sign the assertion")
}

/// The claims of a good assertion by `client_id` at the manual clock's `now`.
pub fn assertion_claims(client_id: &str, now: i64) -> Value {
    serde_json::json!({
        "iss": client_id,
        "sub": client_id,
        "aud": ISSUER,
        "iat": now,
        "exp": now + 60,
        "jti": random_base62(16),
    })
}

/// The form parameters presenting `assertion` (RFC 7523 §2.2).
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
