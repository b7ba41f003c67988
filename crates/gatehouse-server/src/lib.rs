//! The authorization server's HTTP face (axum): routes, limits, background
//! upkeep. Protocol decisions live in `gatehouse-oauth`.

mod auth_failures;
mod body;
pub mod client_addr;
mod connection;
mod discovery;
mod key_upkeep;
mod listener;
mod lru_table;
mod manage;
mod pages;
mod people;
mod register;
mod respond;
mod revocation;
mod signin_guard;
mod store_log;
mod token;
mod upkeep;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderName, Method, StatusCode, header};
use axum::response::Response;
use axum::routing::{MethodRouter, get, post};
use discovery::{Documents, cached_json};
use gatehouse_oauth::AuthorizationServer;
use gatehouse_oauth::issuer::{
    AUTHORIZE_PATH, CALLBACK_PATH, CONSENT_PATH, FEDERATE_PATH, INTROSPECT_PATH, Issuer, JWKS_PATH,
    REGISTER_PATH, REVOKE_PATH, SIGNIN_PATH, SIGNOUT_PATH, TOKEN_PATH, USERINFO_PATH,
};
use respond::{NO_STORE, json_response};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{Any, CorsLayer};
use tower_http::timeout::TimeoutLayer;

pub use connection::{ConnectionLimits, body_timed_out};
pub use store_log::report as report_store_failure;
pub use token::parse_token_request;
pub use upkeep::spawn_upkeep;

/// Time allowed for one request, body included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct AppState {
    pub server: Arc<AuthorizationServer>,
    docs: Arc<Documents>,
    registration_limiter: Arc<register::RegistrationLimiter>,
    signin_guard: Arc<signin_guard::SigninGuard>,
    /// Backoff after failed client authentication (token, revocation,
    /// introspection).
    auth_failures: Arc<auth_failures::AuthFailures>,
    /// Password checks (argon2id) allowed at once.
    password_checks: Arc<tokio::sync::Semaphore>,
    /// Authorization codes per sign-in session and per client.
    code_budget: Arc<people::CodeBudget>,
    /// Sign-ins sent to an upstream provider per client address: each is a
    /// Store row, and anyone can start one.
    federation_budget: Arc<lru_table::RateBudget<std::net::IpAddr>>,
}

async fn metadata(State(s): State<AppState>) -> Response {
    cached_json(&s.docs.metadata)
}

async fn jwks(State(s): State<AppState>) -> Response {
    cached_json(&s.docs.jwks(&s.server))
}

async fn healthz() -> Response {
    json_response(
        StatusCode::OK,
        &serde_json::json!({"status": "ok"}),
        NO_STORE,
    )
}

/// Readiness (for load balancers and orchestrators): whether this replica
/// can serve. It follows the upkeep poller's last answer from the store
/// rather than querying per probe (a probe costs no connection, and a busy
/// pool does not make a healthy replica look down):
/// - `ok`: the store answered within two poll intervals;
/// - `degraded` (still 200): the store is not answering, but cached clients
///   are honoured until `store.max_stale` — with one shared database every
///   replica is in the same state, and pulling them all would turn an outage
///   the cache rides out into a full one;
/// - 503 with `Retry-After` once `max_stale` has passed: this replica now
///   refuses every client, so traffic is better sent elsewhere.
///
/// `/healthz` stays about the process alone.
async fn readyz(State(s): State<AppState>) -> Response {
    let clients = &s.server.clients;
    let fresh = clients.since_last_poll() <= s.server.settings.store_poll_interval * 2;
    let (status, body) = if fresh {
        (
            StatusCode::OK,
            serde_json::json!({"status": "ready", "store": "ok"}),
        )
    } else if !clients.stale() {
        (
            StatusCode::OK,
            serde_json::json!({"status": "ready", "store": "degraded"}),
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"status": "unavailable", "store": "unreachable"}),
        )
    };
    let mut resp = json_response(status, &body, NO_STORE);
    if status == StatusCode::SERVICE_UNAVAILABLE {
        resp = respond::with_retry_after(resp, gatehouse_oauth::error::STORE_RETRY_AFTER_SECS);
    }
    resp
}

async fn not_found() -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        &serde_json::json!({"error": "not_found"}),
        NO_STORE,
    )
}

/// Builds the router. Endpoints live under the issuer's path; metadata at the
/// RFC 8414 §3.1 path-inserted location, OIDC discovery at both the appended
/// and the path-inserted form (docs/decisions.md "Tokens").
pub fn router(server: Arc<AuthorizationServer>) -> Router {
    let docs = Arc::new(Documents::render(&server));
    if server.settings.people.enabled {
        tokio::task::spawn_blocking(gatehouse_oauth::people::accounts::warm_up);
    }
    // Every per-address limiter holds at most this many keys, forgetting
    // the least recently used when full (docs/operations.md
    // "Limits per client address").
    let capacity = server.settings.limiter_capacity;
    let state = AppState {
        registration_limiter: Arc::new(register::RegistrationLimiter::new(
            server.settings.registration.per_address_per_minute,
            capacity,
        )),
        signin_guard: Arc::new(signin_guard::SigninGuard::new(capacity)),
        auth_failures: Arc::new(auth_failures::AuthFailures::new(
            server.settings.client_auth.failures,
            capacity,
        )),
        code_budget: Arc::new(people::CodeBudget::new(&server.settings.people, capacity)),
        federation_budget: Arc::new(lru_table::RateBudget::new(
            people::FEDERATED_SIGN_INS_PER_ADDRESS_PER_MINUTE,
            capacity,
        )),
        password_checks: Arc::new(tokio::sync::Semaphore::new(
            std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 8)),
        )),
        server: server.clone(),
        docs,
    };
    let mut app = Router::new();
    for (path, handler) in routes(&server.settings.issuer, server.settings.people.enabled) {
        app = app.route(&path, handler);
    }
    let mut pages = Router::new();
    for (path, handler) in page_routes(&server) {
        pages = pages.route(&path, handler);
    }
    // Browser-based MCP clients call these endpoints cross-origin; bearer and
    // client credentials are not ambient, so `*` without credentials is safe.
    // Never on the authorization endpoint and the pages, which run on the
    // person's cookies (docs/decisions.md "Tokens").
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .expose_headers([
            header::WWW_AUTHENTICATE,
            HeaderName::from_static("retry-after"),
        ])
        .max_age(Duration::from_secs(3600));
    app.layer(cors)
        .merge(pages)
        .fallback(not_found)
        .with_state(state)
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(CatchPanicLayer::new())
}

/// Every route of the authorization server for an issuer, with its handler:
/// the one list both [`router`] and [`route_paths`] read.
fn routes(issuer: &Issuer, people: bool) -> Vec<(String, MethodRouter<AppState>)> {
    let p = issuer.path();
    let mut routes = vec![
        (
            format!("{p}{TOKEN_PATH}"),
            post(token::token).fallback(|| async { respond::method_not_allowed("POST") }),
        ),
        (
            format!("{p}{REGISTER_PATH}"),
            post(register::register).fallback(|| async { respond::method_not_allowed("POST") }),
        ),
        (
            format!("{p}{REVOKE_PATH}"),
            post(revocation::revoke).fallback(|| async { respond::method_not_allowed("POST") }),
        ),
        (
            format!("{p}{INTROSPECT_PATH}"),
            post(revocation::introspect).fallback(|| async { respond::method_not_allowed("POST") }),
        ),
        // RFC 7592 §3: the client configuration endpoint.
        (
            format!("{p}{REGISTER_PATH}/{{client_id}}"),
            get(manage::read)
                .put(manage::update)
                .delete(manage::delete)
                .fallback(|| async { respond::method_not_allowed("GET, PUT, DELETE") }),
        ),
        (format!("{p}{JWKS_PATH}"), get(jwks)),
        ("/healthz".to_string(), get(healthz)),
        ("/readyz".to_string(), get(readyz)),
        (
            format!("/.well-known/oauth-authorization-server{p}"),
            get(metadata),
        ),
    ];
    // OpenID Connect exists only while people can sign in: without them
    // there is no userinfo, and a discovery document could not carry the
    // fields OIDC Discovery §3 requires (`authorization_endpoint`, …).
    if people {
        routes.push((
            format!("{p}{USERINFO_PATH}"),
            get(people::userinfo).post(people::userinfo),
        ));
        routes.push((
            format!("/.well-known/openid-configuration{p}"),
            get(metadata),
        ));
        if !p.is_empty() {
            routes.push((
                format!("{p}/.well-known/openid-configuration"),
                get(metadata),
            ));
        }
    }
    routes
}

/// The authorization endpoint and the pages people see (none when people
/// are disabled), served without CORS.
fn page_routes(server: &AuthorizationServer) -> Vec<(String, MethodRouter<AppState>)> {
    if !server.settings.people.enabled {
        return Vec::new();
    }
    let p = server.settings.issuer.path();
    vec![
        (
            format!("{p}{AUTHORIZE_PATH}"),
            get(people::authorize_get).post(people::authorize_post),
        ),
        (
            format!("{p}{SIGNIN_PATH}"),
            post(people::sign_in).fallback(|| async { respond::method_not_allowed("POST") }),
        ),
        (
            format!("{p}{CONSENT_PATH}"),
            post(people::consent).fallback(|| async { respond::method_not_allowed("POST") }),
        ),
        (
            format!("{p}{SIGNOUT_PATH}"),
            get(people::sign_out_page).post(people::sign_out),
        ),
        (
            format!("{p}{FEDERATE_PATH}"),
            post(people::federate).fallback(|| async { respond::method_not_allowed("POST") }),
        ),
        (
            format!("{p}{CALLBACK_PATH}"),
            get(people::callback).fallback(|| async { respond::method_not_allowed("GET") }),
        ),
    ]
}

/// Every path the authorization server answers for this issuer. A host that
/// merges other routes next to it (the gateway embedded in `serve`) checks
/// against these first: overlapping routes would panic in axum, and would
/// shadow the authorization server.
pub fn route_paths(issuer: &Issuer) -> Vec<String> {
    // People's routes included: a merged route must not take them over
    // whether or not people are enabled today.
    routes(issuer, true).into_iter().map(|(p, _)| p).collect()
}

/// Whether `path` belongs to the authorization server's namespace: one of its
/// routes, or anything under `/oauth/` or `/.well-known/` (at the root or
/// under the issuer's path), where its endpoints live now or will
/// (docs/decisions.md "Gateway": embedded routes must not collide with these).
pub fn is_reserved_path(issuer: &Issuer, path: &str) -> bool {
    let under = |prefix: &str| path == prefix || path.starts_with(&format!("{prefix}/"));
    let p = issuer.path();
    route_paths(issuer).iter().any(|r| r == path)
        || ["/oauth", "/.well-known"]
            .iter()
            .any(|prefix| under(prefix) || under(&format!("{p}{prefix}")))
}

/// Serves until `shutdown` resolves, with the default [`ConnectionLimits`].
pub async fn serve(
    server: Arc<AuthorizationServer>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_app(
        router(server),
        listener,
        ConnectionLimits::default(),
        shutdown,
    )
    .await
}

/// Serves a router built from [`router`] (perhaps merged with others, as
/// `serve` does with an embedded gateway) with the same listener settings:
/// the connection bounds of `limits` (`listener.rs`), TCP_NODELAY and the
/// peer address (`ConnectInfo<SocketAddr>`) for per-address rate limits.
pub async fn serve_app(
    app: Router,
    listener: TcpListener,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    listener::serve(app, listener, limits, shutdown).await
}

/// Serves like [`serve_app`] until `shutdown` resolves, then stops accepting
/// and gives in-flight requests at most `grace` to finish (a proxied SSE
/// stream could otherwise hold the process forever).
pub async fn serve_until(
    app: Router,
    listener: TcpListener,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let signalled = Arc::new(tokio::sync::Notify::new());
    let notify = signalled.clone();
    let shutdown = async move {
        shutdown.await;
        tracing::info!(grace = ?grace, "shutting down: no new connections, finishing in-flight requests");
        // `notify_one` keeps a permit, so the waiter below cannot miss it.
        notify.notify_one();
    };
    let serving = serve_app(app, listener, limits, shutdown);
    tokio::pin!(serving);
    tokio::select! {
        result = &mut serving => result,
        () = async {
            signalled.notified().await;
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!("in-flight requests still running after the shutdown grace period; stopping them");
            Ok(())
        }
    }
}
