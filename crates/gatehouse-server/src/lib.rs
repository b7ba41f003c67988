//! The authorization server's HTTP face (axum): routes, limits, background
//! upkeep. Protocol decisions live in `gatehouse-oauth`.

mod body;
mod discovery;
mod manage;
mod register;
mod respond;
mod revocation;
mod token;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderName, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use axum::serve::ListenerExt;
use discovery::{Documents, cached_json};
use gatehouse_oauth::AuthorizationServer;
use gatehouse_oauth::client::ClientOrigin;
use gatehouse_oauth::error::OAuthError;
use gatehouse_oauth::issuer::{
    INTROSPECT_PATH, Issuer, JWKS_PATH, REGISTER_PATH, REVOKE_PATH, TOKEN_PATH,
};
use gatehouse_oauth::util::now;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use respond::{ApiError, NO_STORE, json_response};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{Any, CorsLayer};
use tower_http::timeout::TimeoutLayer;

/// Revocations are kept this long past the token's `exp`: the largest clock
/// skew a verifier may allow (the gateway's leeway is at most 60 s).
const REVOCATION_PRUNE_MARGIN_SECS: i64 = 60;

/// Time allowed for one request, body included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct AppState {
    pub server: Arc<AuthorizationServer>,
    docs: Arc<Documents>,
    registration_limiter: Arc<DefaultKeyedRateLimiter<IpAddr>>,
}

async fn metadata(State(s): State<AppState>) -> Response {
    cached_json(&s.docs.metadata)
}

async fn jwks(State(s): State<AppState>) -> Response {
    cached_json(&s.docs.jwks)
}

async fn healthz() -> Response {
    json_response(
        StatusCode::OK,
        &serde_json::json!({"status": "ok"}),
        NO_STORE,
    )
}

/// How long `/readyz` waits for the store before calling it unreachable.
const READINESS_TIMEOUT: Duration = Duration::from_secs(2);

/// Readiness (for load balancers): whether this replica can reach its store.
/// `/healthz` stays about the process alone, so an orchestrator does not
/// restart every replica because the shared database is down.
async fn readyz(State(s): State<AppState>) -> Response {
    let ping = tokio::time::timeout(READINESS_TIMEOUT, s.server.store.ping()).await;
    match ping {
        Ok(Ok(())) => json_response(
            StatusCode::OK,
            &serde_json::json!({"status": "ready", "store": "ok"}),
            NO_STORE,
        ),
        failed => {
            if let Ok(Err(e)) = failed {
                tracing::debug!(error = %e, "readiness check: store unreachable");
            }
            let mut resp = json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &serde_json::json!({"status": "unavailable", "store": "unreachable"}),
                NO_STORE,
            );
            resp.headers_mut().insert(
                header::RETRY_AFTER,
                axum::http::HeaderValue::from_static(respond::STORE_RETRY_AFTER),
            );
            resp
        }
    }
}

async fn not_found() -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        &serde_json::json!({"error": "not_found"}),
        NO_STORE,
    )
}

async fn method_not_allowed() -> Response {
    let mut resp = ApiError(OAuthError::invalid_request("method not allowed")).into_response();
    *resp.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    resp.headers_mut()
        .insert(header::ALLOW, axum::http::HeaderValue::from_static("POST"));
    resp
}

/// Builds the router. Endpoints live under the issuer's path; metadata at the
/// RFC 8414 §3.1 path-inserted location, OIDC discovery at both the appended
/// and the path-inserted form (DECISIONS.md).
pub fn router(server: Arc<AuthorizationServer>) -> Router {
    let docs = Arc::new(Documents::render(&server));
    let per_minute = NonZeroU32::new(server.settings.registration.per_address_per_minute)
        .unwrap_or(NonZeroU32::MIN);
    let limiter = Arc::new(RateLimiter::keyed(Quota::per_minute(per_minute)));
    // Forget addresses whose quota has refilled, so the limiter stays bounded.
    let weak = Arc::downgrade(&limiter);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            match weak.upgrade() {
                Some(l) => l.retain_recent(),
                None => break,
            }
        }
    });
    let state = AppState {
        registration_limiter: limiter,
        server: server.clone(),
        docs,
    };
    let mut app = Router::new();
    for (path, handler) in routes(&server.settings.issuer) {
        app = app.route(&path, handler);
    }
    // Browser-based MCP clients call these endpoints cross-origin; bearer and
    // client credentials are not ambient, so `*` without credentials is safe.
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .expose_headers([
            header::WWW_AUTHENTICATE,
            HeaderName::from_static("retry-after"),
        ])
        .max_age(Duration::from_secs(3600));
    app.fallback(not_found)
        .with_state(state)
        .layer(cors)
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(CatchPanicLayer::new())
}

/// Every route of the authorization server for an issuer, with its handler:
/// the one list both [`router`] and [`route_paths`] read.
fn routes(issuer: &Issuer) -> Vec<(String, MethodRouter<AppState>)> {
    let p = issuer.path();
    let mut routes = vec![
        (
            format!("{p}{TOKEN_PATH}"),
            post(token::token).fallback(method_not_allowed),
        ),
        (
            format!("{p}{REGISTER_PATH}"),
            post(register::register).fallback(method_not_allowed),
        ),
        (
            format!("{p}{REVOKE_PATH}"),
            post(revocation::revoke).fallback(method_not_allowed),
        ),
        (
            format!("{p}{INTROSPECT_PATH}"),
            post(revocation::introspect).fallback(method_not_allowed),
        ),
        // RFC 7592 §3: the client configuration endpoint.
        (
            format!("{p}{REGISTER_PATH}/{{client_id}}"),
            get(manage::read)
                .put(manage::update)
                .delete(manage::delete)
                .fallback(manage::method_not_allowed),
        ),
        (format!("{p}{JWKS_PATH}"), get(jwks)),
        ("/healthz".to_string(), get(healthz)),
        ("/readyz".to_string(), get(readyz)),
        (
            format!("/.well-known/oauth-authorization-server{p}"),
            get(metadata),
        ),
        (
            format!("/.well-known/openid-configuration{p}"),
            get(metadata),
        ),
    ];
    if !p.is_empty() {
        routes.push((
            format!("{p}/.well-known/openid-configuration"),
            get(metadata),
        ));
    }
    routes
}

/// Every path the authorization server answers for this issuer. A host that
/// merges other routes next to it (the gateway embedded in `serve`) checks
/// against these first: overlapping routes would panic in axum, and would
/// shadow the authorization server.
pub fn route_paths(issuer: &Issuer) -> Vec<String> {
    routes(issuer).into_iter().map(|(p, _)| p).collect()
}

/// Whether `path` belongs to the authorization server's namespace: one of its
/// routes, or anything under `/oauth/` or `/.well-known/` (at the root or
/// under the issuer's path), where its endpoints live now or will
/// (DECISIONS.md "Gateway": embedded routes must not collide with these).
pub fn is_reserved_path(issuer: &Issuer, path: &str) -> bool {
    let under = |prefix: &str| path == prefix || path.starts_with(&format!("{prefix}/"));
    let p = issuer.path();
    route_paths(issuer).iter().any(|r| r == path)
        || ["/oauth", "/.well-known"]
            .iter()
            .any(|prefix| under(prefix) || under(&format!("{p}{prefix}")))
}

/// Serves until `shutdown` resolves. Every accepted connection gets
/// TCP_NODELAY (STACK.md: axum::serve does not set it).
pub async fn serve(
    server: Arc<AuthorizationServer>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_app(router(server), listener, shutdown).await
}

/// Serves a router built from [`router`] (perhaps merged with others, as
/// `serve` does with an embedded gateway) with the same listener settings:
/// TCP_NODELAY and the peer address for per-address rate limits.
pub async fn serve_app(
    app: Router,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// Serves like [`serve_app`] until `shutdown` resolves, then stops accepting
/// and gives in-flight requests at most `grace` to finish (a proxied SSE
/// stream could otherwise hold the process forever).
pub async fn serve_until(
    app: Router,
    listener: TcpListener,
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
    let serving = serve_app(app, listener, shutdown);
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

/// Background upkeep: follow the Store's change sequence (so a client deleted
/// elsewhere stops working within one poll interval), record which
/// self-registered clients were used, and delete those idle too long.
pub fn spawn_upkeep(server: Arc<AuthorizationServer>) {
    let poller = server.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(poller.settings.store_poll_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut healthy = true;
        loop {
            tick.tick().await;
            match poller.clients.poll(poller.store.as_ref()).await {
                Ok(_) if !healthy => {
                    tracing::info!("store reachable again");
                    healthy = true;
                }
                Ok(_) => {}
                Err(e) if healthy => {
                    tracing::warn!(error = %e, "store poll failed; serving cached clients");
                    healthy = false;
                }
                Err(_) => {}
            }
        }
    });
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        let mut minutes = 0u64;
        loop {
            tick.tick().await;
            let used = server.clients.take_used();
            if !used.is_empty()
                && let Err(e) = server.store.touch_clients(&used, now()).await
            {
                tracing::warn!(error = %e, "recording client use failed");
            }
            if minutes.is_multiple_of(60) {
                let idle = server.settings.registration.idle_expiry.as_secs() as i64;
                match server
                    .store
                    .delete_idle_clients(ClientOrigin::Dynamic, now() - idle)
                    .await
                {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(deleted = n, "deleted idle self-registered clients"),
                    Err(e) => tracing::warn!(error = %e, "idle client sweep failed"),
                }
                // Revocations matter only until the token's own expiry —
                // as judged by the slowest clock that may still accept it,
                // hence the margin of the largest verifier leeway.
                match server
                    .store
                    .prune_revocations(now() - REVOCATION_PRUNE_MARGIN_SECS)
                    .await
                {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(deleted = n, "pruned expired revocations"),
                    Err(e) => tracing::warn!(error = %e, "pruning revocations failed"),
                }
                // An assertion past its `exp` (+ leeway, already in the
                // stored expiry) is refused anyway; its `jti` can go.
                // The same clock-skew margin as revocations: a replica whose
                // clock runs behind may still accept the assertion.
                match server
                    .store
                    .prune_assertion_jtis(now() - REVOCATION_PRUNE_MARGIN_SECS)
                    .await
                {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(deleted = n, "pruned used assertion jtis"),
                    Err(e) => tracing::warn!(error = %e, "pruning assertion jtis failed"),
                }
                // Every replica polls each second; a day of history is plenty.
                if let Err(e) = server.store.prune_changes(now() - 24 * 3600).await {
                    tracing::warn!(error = %e, "pruning the change log failed");
                }
            }
            minutes += 1;
        }
    });
}
