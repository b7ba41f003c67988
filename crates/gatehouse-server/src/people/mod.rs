//! The authorization endpoint and the pages around it: sign-in,
//! consent, sign-out, and OIDC userinfo. The protocol decisions are the
//! core's ([`gatehouse_oauth::people::authorize`]); this module owns cookies, CSRF
//! and the browser's round trips.
//!
//! - The authorization request travels through the forms as one hidden
//!   field (its original query string) and is validated again on every
//!   submission, so nothing is held per request on the server.
//! - Sessions are server-side: the cookie holds a random id, the Store its
//!   SHA-256. `HttpOnly`, `SameSite=Lax`, `Secure` (and the `__Host-`
//!   prefix) when the issuer is https.
//! - CSRF: every form carries a token derived (HMAC) from a random cookie;
//!   a post without the matching pair, or from another `Origin`, is
//!   refused and changes nothing.
//! - Device cookie: a successful sign-in also leaves a long-lived cookie
//!   naming the user id, its expiry and an HMAC of both and of the
//!   account's password hash (under a key derived from the server's
//!   secret-hashing key, like the CSRF tokens). A sign-in for that same
//!   account from that browser is exempt from the per-name limit
//!   ([`crate::signin_guard`]), so whoever guesses at a person's password
//!   elsewhere cannot lock her out of the browser she uses; a password
//!   change (new hash) withdraws every exemption.

mod authorize;
mod consent;
mod cookies;
mod federate;
mod render;
mod session;
mod sign_in;

use crate::AppState;
use crate::body::read_body;
use crate::client_addr::ClientAddr;
use crate::lru_table::RateBudget;
use crate::pages;
use crate::respond::{self, ApiError};
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gatehouse_oauth::AuthorizationServer;
use gatehouse_oauth::client::ClientOrigin;
use gatehouse_oauth::crypto::{b64url, random_bytes};
use gatehouse_oauth::error::{ErrorCode, OAuthError};
use gatehouse_oauth::form::form_decode;
use gatehouse_oauth::grant_records::{BrowserSession, User, lookup_hash};
use gatehouse_oauth::issuer::{
    AUTHORIZE_PATH, CONSENT_PATH, FEDERATE_PATH, SIGNIN_PATH, SIGNOUT_PATH,
};
use gatehouse_oauth::people::accounts::check_sign_in;
use gatehouse_oauth::people::authorize::{AuthorizationRequest, AuthorizeError};
use gatehouse_oauth::people::forms::{AuthorizationParams, PageForm};
use gatehouse_oauth::settings::PeopleSettings;
use subtle::ConstantTimeEq;

/// Domain separation for the CSRF token derivation.
use cookies::*;
use render::*;

pub(crate) use authorize::{CodeBudget, authorize_get, authorize_post};
pub use consent::consent;
pub use federate::{FEDERATED_SIGN_INS_PER_ADDRESS_PER_MINUTE, callback, federate};
pub use session::{sign_out, sign_out_page, userinfo};
pub use sign_in::sign_in;

pub(super) const CSRF_PURPOSE: &str = "gatehouse csrf";
/// Key purpose of the MAC over what a consent page showed.
pub(super) const SHOWN_PURPOSE: &str = "gatehouse consent shown";
pub(super) const CHANGED_WHILE_SHOWN: &str =
    "What the application asks for changed while this page was open. Review it again.";
/// Domain separation for the device cookie's MAC.
pub(super) const DEVICE_PURPOSE: &str = "gatehouse device";
/// Cookie values read at most this long (a random id, a token).
pub(super) const MAX_COOKIE_BYTES: usize = 64;
/// A device cookie: `u_` + a UUID, an expiry, a MAC (≈ 95 bytes).
pub(super) const MAX_DEVICE_COOKIE_BYTES: usize = 160;
/// The longest authorization request carried through the forms: it travels
/// back as one form value, which the strict form parser caps at this.
pub(super) const MAX_REQUEST_BYTES: usize = gatehouse_oauth::limits::MAX_PARAM_BYTES;

/// How long a sign-in waits for a free password-check slot.
pub(super) const PASSWORD_CHECK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

pub(super) const CSRF_EXPIRED: &str = "The form could not be verified: it may have expired, or it was not sent from this site. Go back and try again.";

/// Shown when a code was not issued because the sign-in, the consent or the
/// application changed while the request was being answered.
pub(super) const CHANGED_MEANWHILE: &str = "Your sign-in or your permission for this application changed while this request was being answered, so nothing was issued. Start again from the application.";

pub(super) fn see_other(location: &str) -> Response {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp.headers_mut().insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}

pub(super) fn store_trouble(e: &OAuthError) -> Response {
    crate::store_log::report(e);
    let status = StatusCode::from_u16(e.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = pages::error(
        status,
        "Gatehouse cannot answer right now. Try again in a moment.",
    );
    if let Some(secs) = e.retry_after {
        resp = respond::with_retry_after(resp, secs);
    }
    resp
}

/// The signed-in user of this browser, if any.
pub(super) async fn signed_in(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<(String, BrowserSession, User)>, OAuthError> {
    let Some(cookie) = Cookies::of(state).get(headers, "session") else {
        return Ok(None);
    };
    let hash = lookup_hash(cookie);
    let store = &state.server.store;
    let Some(session) = store.get_session(&hash, state.server.now()).await? else {
        return Ok(None);
    };
    // The store returns only a session of the user's current credential
    // generation; the user is read again here, so compare once more.
    let Some(user) = store
        .get_user(&session.user_id)
        .await?
        .filter(|u| u.credentials_gen == session.credentials_gen)
    else {
        return Ok(None);
    };
    Ok(Some((hash, session, user)))
}

/// Parses the authorization request carried in a query string or form; the
/// error is the page to show.
pub(super) fn parse_request(raw: &str) -> Result<AuthorizationParams, String> {
    AuthorizationParams::parse(checked_form(raw)?).map_err(malformed)
}

/// The bytes of a query string or form, refused (with the page to show)
/// when too long or not URL-encoded.
pub(super) fn checked_form(raw: &str) -> Result<&[u8], String> {
    if raw.len() > MAX_REQUEST_BYTES {
        return Err("The authorization request is too long.".into());
    }
    // It is sent back in a Location header after sign-in: URL-encoded only.
    if !raw.is_ascii() {
        return Err("The authorization request is not URL-encoded.".into());
    }
    Ok(raw.as_bytes())
}

pub(super) fn malformed(e: OAuthError) -> String {
    format!("The authorization request is malformed: {}.", e.description)
}

pub(super) fn bad_request(message: &str) -> Response {
    pages::error(StatusCode::BAD_REQUEST, message)
}

/// Reads a form posted from one of Gatehouse's own pages (strict parsing,
/// like every form here) and checks that it is: a form without the CSRF
/// token bound to this browser's cookie is refused before anything else.
pub(super) async fn read_own_form(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<PageForm, Response> {
    let raw = read_form(headers, body).await?;
    let form = checked_form(&raw)
        .and_then(|bytes| PageForm::parse(bytes).map_err(malformed))
        .map_err(|m| bad_request(&m))?;
    if !csrf_ok(state, headers, &form) {
        return Err(pages::error(StatusCode::FORBIDDEN, CSRF_EXPIRED));
    }
    Ok(form)
}

/// Who an authorization error would be sent back for, as far as deciding
/// whether to redirect it goes.
pub(super) enum Viewer<'a> {
    /// Nobody is signed in (or the sign-in failed).
    Anonymous,
    /// A signed-in person, by user id.
    Person(&'a str),
}

/// An invalid request: shown on the page, or sent back to the client once
/// that is safe. An operator-registered client's redirect URI is trusted;
/// a self-registered client's only once the signed-in person has approved
/// that client (now or earlier) — otherwise anyone could register
/// `https://evil.example/` and bounce a signed-in person there with a
/// crafted link. Until then the error is shown here, with a link.
pub(super) async fn refuse(state: &AppState, e: AuthorizeError, viewer: Viewer<'_>) -> Response {
    match e {
        AuthorizeError::Page(msg) => pages::error(StatusCode::BAD_REQUEST, &msg),
        AuthorizeError::Failed(e) => store_trouble(&e),
        AuthorizeError::Redirect {
            redirect_uri,
            state: st,
            error,
            client,
        } => {
            let trusted = client.origin == ClientOrigin::Cli
                || match viewer {
                    Viewer::Person(user_id) => approved(state, user_id, &client.id).await,
                    Viewer::Anonymous => false,
                };
            let location = state
                .server
                .error_redirect(&redirect_uri, st.as_deref(), &error);
            if trusted {
                return see_other(&location);
            }
            let host = url::Url::parse(&redirect_uri)
                .ok()
                .and_then(|u| u.host_str().map(str::to_string))
                .unwrap_or_else(|| redirect_uri.clone());
            pages::error_with_link(
                StatusCode::BAD_REQUEST,
                &format!(
                    "The application sent an invalid request ({}): {}",
                    error.code.as_str(),
                    error.description
                ),
                &location,
                &host,
            )
        }
    }
}

/// Whether `user_id` has consented to `client_id` (for any resource). A
/// store that cannot answer means no: the error is shown, not redirected.
pub(super) async fn approved(state: &AppState, user_id: &str, client_id: &str) -> bool {
    match state.server.store.list_consents(user_id).await {
        Ok(consents) => consents.iter().any(|c| c.client_id == client_id),
        Err(e) => {
            tracing::warn!(error = %e, "consent lookup failed; the error is shown, not redirected");
            false
        }
    }
}

pub(super) fn display_name(req: &AuthorizationRequest) -> String {
    req.client
        .metadata
        .client_name
        .clone()
        .unwrap_or_else(|| req.client.id.clone())
}

pub(super) async fn read_form(headers: &HeaderMap, body: Body) -> Result<String, Response> {
    let bytes = read_body(headers, body, "application/x-www-form-urlencoded")
        .await
        .map_err(|_| {
            pages::error(
                StatusCode::BAD_REQUEST,
                "The form was not sent as a form, or is too large.",
            )
        })?;
    String::from_utf8(bytes.to_vec())
        .map_err(|_| pages::error(StatusCode::BAD_REQUEST, "The form is not valid UTF-8."))
}
