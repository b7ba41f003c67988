//! Signing in at an upstream identity provider: `POST /oauth/federate` (a
//! provider's button on the sign-in page) sends the browser there;
//! `GET /oauth/callback` is where it comes back. The protocol is the core's
//! (`gatehouse_oauth::people::federated_sign_in`); this module owns the
//! binding cookie that ties a sign-in under way to the browser that started
//! it, and the pages.

use super::sign_in::{back_to_request, cancel_sign_in, new_session_at};
use super::*;
use gatehouse_oauth::people::federated_sign_in::{FederationError, UpstreamError};
use gatehouse_oauth::settings::ProviderSettings;
use std::collections::HashMap;

/// The cookie binding a sign-in under way to this browser.
const BINDING: &str = "federation";
/// Sign-ins one client address (IPv6: one /64) may send to providers a
/// minute; each is a Store row for ten minutes.
pub const FEDERATED_SIGN_INS_PER_ADDRESS_PER_MINUTE: u32 = 30;

/// `POST /oauth/federate`: the provider button.
pub async fn federate(
    State(state): State<AppState>,
    addr: ClientAddr,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let form = match read_own_form(&state, &headers, body).await {
        Ok(f) => f,
        Err(resp) => return resp,
    };
    let raw = form.request().unwrap_or_default().to_string();
    let params = match parse_request(&raw) {
        Ok(p) => p,
        Err(msg) => return bad_request(&msg),
    };
    let req = match state.server.authorization_request(&params).await {
        Ok(r) => r,
        Err(e) => return refuse(&state, e, Viewer::Anonymous).await,
    };
    let Some(provider) = form.provider().and_then(|id| state.server.provider(id)) else {
        return bad_request("The sign-in names no identity provider this server knows.");
    };
    tracing::info!(client_id = %req.client.id, provider = %provider.id, "federated sign-in started");
    send_to_provider(&state, addr, &headers, provider, &raw).await
}

/// Records a sign-in at `provider` for the request `raw` and sends the
/// browser there, with a fresh binding cookie.
pub(super) async fn send_to_provider(
    state: &AppState,
    addr: ClientAddr,
    headers: &HeaderMap,
    provider: &ProviderSettings,
    raw: &str,
) -> Response {
    if let Err(wait) = state.federation_budget.take(addr.rate_key()) {
        tracing::info!(client_addr = %addr, "federated sign-ins held back");
        return respond::with_retry_after(
            pages::error(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many sign-ins from this address. Wait a moment and try again.",
            ),
            wait.as_secs().max(1) as u32,
        );
    }
    // One binding per browser, kept across sign-ins started in several
    // tabs or for several resources at once (it is HttpOnly, and only its
    // hash is stored).
    let binding = Cookies::of(state)
        .get(headers, BINDING)
        .filter(|b| b.len() >= 43)
        .map_or_else(|| b64url(&random_bytes::<32>()), str::to_string);
    match state
        .server
        .begin_federated_sign_in(provider, raw, &binding)
        .await
    {
        Ok(url) => {
            let lifetime =
                gatehouse_oauth::people::federated_sign_in::FEDERATED_LOGIN_LIFETIME_SECS;
            let set = Cookies::of(state).set(BINDING, &binding, Some(lifetime as u64));
            with_cookie(see_other(&url), Some(set))
        }
        Err(e) => failed(e),
    }
}

/// `GET /oauth/callback`: the provider's answer.
pub async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let raw = query.unwrap_or_default();
    if raw.len() > MAX_REQUEST_BYTES {
        return bad_request("The identity provider's answer is too long.");
    }
    let params: HashMap<String, String> =
        match gatehouse_oauth::form::FormParams::parse(raw.as_bytes()) {
            Ok(f) => ["code", "state", "iss", "error"]
                .into_iter()
                .filter_map(|n| f.param(n).map(|v| (n.to_string(), v.to_string())))
                .collect(),
            Err(e) => return bad_request(&e.description),
        };
    let binding = Cookies::of(&state).get(&headers, BINDING);
    // The binding stays: a callback that fails (or that anyone made up)
    // must not end the browser's other sign-ins under way.
    match state
        .server
        .finish_federated_sign_in(&params, binding)
        .await
    {
        Ok((user, request, auth_time)) => match new_session_at(&state, &user, auth_time).await {
            Ok(Some(cookie)) => {
                tracing::info!(sub = %user.id, "signed in at an identity provider");
                back_to_request(&state, &request, &cookie, &user)
            }
            Ok(None) => pages::error(StatusCode::CONFLICT, CHANGED_MEANWHILE),
            Err(resp) => resp,
        },
        Err(FederationError::Cancelled(request)) => cancelled(&state, &request).await,
        Err(e) => failed(e),
    }
}

/// The person cancelled at the provider: like Cancel on the sign-in page.
async fn cancelled(state: &AppState, raw: &str) -> Response {
    let params = match parse_request(raw) {
        Ok(p) => p,
        Err(msg) => return bad_request(&msg),
    };
    match state.server.authorization_request(&params).await {
        Ok(req) => cancel_sign_in(state, &req),
        Err(e) => refuse(state, e, Viewer::Anonymous).await,
    }
}

/// A sign-in that did not happen, as a page: refusals say what the person
/// can do (the reason goes to the log), an unreachable provider is 502, a
/// slow one 504.
fn failed(e: FederationError) -> Response {
    match e {
        FederationError::Refused { shown, reason } => {
            tracing::warn!(reason, "federated sign-in refused");
            pages::error(StatusCode::FORBIDDEN, &shown)
        }
        FederationError::Upstream(UpstreamError::TimedOut(reason)) => {
            tracing::warn!(reason, "identity provider did not answer in time");
            pages::error(
                StatusCode::GATEWAY_TIMEOUT,
                "The identity provider did not answer in time. Try again in a moment.",
            )
        }
        FederationError::Upstream(UpstreamError::Failed(reason)) => {
            tracing::warn!(reason, "identity provider could not be used");
            pages::error(
                StatusCode::BAD_GATEWAY,
                "The identity provider cannot be reached right now. Try again in a moment.",
            )
        }
        FederationError::Store(e) => store_trouble(&e),
        FederationError::Cancelled(_) => pages::error(StatusCode::BAD_REQUEST, "Cancelled."),
    }
}
