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
use gatehouse_oauth::issuer::{AUTHORIZE_PATH, CONSENT_PATH, SIGNIN_PATH, SIGNOUT_PATH};
use gatehouse_oauth::people::accounts::check_sign_in;
use gatehouse_oauth::people::authorize::{AuthorizationRequest, AuthorizeError};
use gatehouse_oauth::people::forms::{AuthorizationParams, PageForm};
use gatehouse_oauth::settings::PeopleSettings;
use subtle::ConstantTimeEq;

/// Domain separation for the CSRF token derivation.
const CSRF_PURPOSE: &str = "gatehouse csrf";
/// Key purpose of the MAC over what a consent page showed.
const SHOWN_PURPOSE: &str = "gatehouse consent shown";
const CHANGED_WHILE_SHOWN: &str =
    "What the application asks for changed while this page was open. Review it again.";
/// Domain separation for the device cookie's MAC.
const DEVICE_PURPOSE: &str = "gatehouse device";
/// Cookie values read at most this long (a random id, a token).
const MAX_COOKIE_BYTES: usize = 64;
/// A device cookie: `u_` + a UUID, an expiry, a MAC (≈ 95 bytes).
const MAX_DEVICE_COOKIE_BYTES: usize = 160;
/// The longest authorization request carried through the forms: it travels
/// back as one form value, which the strict form parser caps at this.
const MAX_REQUEST_BYTES: usize = gatehouse_oauth::limits::MAX_PARAM_BYTES;

/// How long a sign-in waits for a free password-check slot.
const PASSWORD_CHECK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

const CSRF_EXPIRED: &str = "The form could not be verified: it may have expired, or it was not sent from this site. Go back and try again.";

/// Shown when a code was not issued because the sign-in, the consent or the
/// application changed while the request was being answered.
const CHANGED_MEANWHILE: &str = "Your sign-in or your permission for this application changed while this request was being answered, so nothing was issued. Start again from the application.";

struct Cookies {
    secure: bool,
}

impl Cookies {
    fn of(state: &AppState) -> Cookies {
        Cookies {
            secure: state
                .server
                .settings
                .issuer
                .as_str()
                .starts_with("https://"),
        }
    }

    fn name(&self, base: &str) -> String {
        if self.secure {
            format!("__Host-gatehouse_{base}")
        } else {
            format!("gatehouse_{base}")
        }
    }

    fn set(&self, base: &str, value: &str, max_age: Option<u64>) -> HeaderValue {
        let mut c = format!(
            "{}={value}; Path=/; HttpOnly; SameSite=Lax",
            self.name(base)
        );
        if self.secure {
            c.push_str("; Secure");
        }
        if let Some(age) = max_age {
            c.push_str(&format!("; Max-Age={age}"));
        }
        HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    fn get<'h>(&self, headers: &'h HeaderMap, base: &str) -> Option<&'h str> {
        self.get_sized(headers, base, MAX_COOKIE_BYTES)
    }

    fn get_sized<'h>(&self, headers: &'h HeaderMap, base: &str, max: usize) -> Option<&'h str> {
        let name = self.name(base);
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v)
            .filter(|v| !v.is_empty() && v.len() <= max)
    }
}

/// The CSRF cookie of this browser (made now if it has none) and the token
/// its forms must carry.
fn csrf(state: &AppState, headers: &HeaderMap) -> (String, Option<HeaderValue>) {
    let cookies = Cookies::of(state);
    let (cookie, set) = match cookies.get(headers, "csrf") {
        Some(c) => (c.to_string(), None),
        None => {
            let c = b64url(&random_bytes::<32>());
            let set = cookies.set("csrf", &c, None);
            (c, Some(set))
        }
    };
    let token = state
        .server
        .secrets
        .derive(CSRF_PURPOSE, &cookie)
        .unwrap_or_default();
    (token, set)
}

/// Whether a form post is this site's own: the token matches the cookie,
/// and the `Origin`, when the browser sends one, is the issuer's.
fn csrf_ok(state: &AppState, headers: &HeaderMap, form: &PageForm) -> bool {
    let issuer = state.server.settings.issuer.as_str();
    let origin_ok = match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        None => true,
        Some(o) => {
            issuer.starts_with(o) && issuer[o.len()..].chars().next().is_none_or(|c| c == '/')
        }
    };
    let Some(cookie) = Cookies::of(state).get(headers, "csrf") else {
        return false;
    };
    let (Some(sent), Some(expected)) = (
        form.csrf(),
        state.server.secrets.derive(CSRF_PURPOSE, cookie),
    ) else {
        return false;
    };
    origin_ok && bool::from(sent.as_bytes().ct_eq(expected.as_bytes()))
}

/// What a browser's device cookie claims: that it signed in as `user_id`
/// before; unexpired, its MAC not yet checked.
struct DeviceClaim<'h> {
    user_id: &'h str,
    expires_at: i64,
    tag: &'h str,
}

/// The MAC of a device cookie for `user`, bound to the account's current
/// password hash (so a password change withdraws it).
fn device_tag(state: &AppState, user: &User, expires_at: i64) -> Option<String> {
    state.server.secrets.derive(
        DEVICE_PURPOSE,
        &format!("{}\0{expires_at}\0{}", user.id, user.password_hash),
    )
}

/// The device cookie to set after `user` signed in: `ID.EXPIRY.MAC`,
/// `HttpOnly`, `SameSite=Lax`, `Secure` when the issuer is https.
fn device_cookie(state: &AppState, user: &User) -> Option<HeaderValue> {
    let lifetime = state.server.settings.people.device_lifetime.as_secs();
    let expires_at = state.server.now() + lifetime as i64;
    let tag = device_tag(state, user, expires_at)?;
    Some(Cookies::of(state).set(
        "device",
        &format!("{}.{expires_at}.{tag}", user.id),
        Some(lifetime),
    ))
}

/// This browser's device cookie, if it has an unexpired one.
fn device_claim<'h>(state: &AppState, headers: &'h HeaderMap) -> Option<DeviceClaim<'h>> {
    let value = Cookies::of(state).get_sized(headers, "device", MAX_DEVICE_COOKIE_BYTES)?;
    let (rest, tag) = value.rsplit_once('.')?;
    let (user_id, expires_at) = rest.rsplit_once('.')?;
    let expires_at: i64 = expires_at.parse().ok()?;
    (expires_at > state.server.now()).then_some(DeviceClaim {
        user_id,
        expires_at,
        tag,
    })
}

/// Whether the claim is a device cookie this server set for `user` under
/// the account's current password (MAC compared in constant time).
fn device_of(state: &AppState, claim: &DeviceClaim<'_>, user: &User) -> bool {
    claim.user_id == user.id
        && device_tag(state, user, claim.expires_at)
            .is_some_and(|t| bool::from(t.as_bytes().ct_eq(claim.tag.as_bytes())))
}

fn with_cookie(mut resp: Response, cookie: Option<HeaderValue>) -> Response {
    if let Some(c) = cookie {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    resp
}

fn see_other(location: &str) -> Response {
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

fn store_trouble(e: &OAuthError) -> Response {
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
async fn signed_in(
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
fn parse_request(raw: &str) -> Result<AuthorizationParams, String> {
    AuthorizationParams::parse(checked_form(raw)?).map_err(malformed)
}

/// The bytes of a query string or form, refused (with the page to show)
/// when too long or not URL-encoded.
fn checked_form(raw: &str) -> Result<&[u8], String> {
    if raw.len() > MAX_REQUEST_BYTES {
        return Err("The authorization request is too long.".into());
    }
    // It is sent back in a Location header after sign-in: URL-encoded only.
    if !raw.is_ascii() {
        return Err("The authorization request is not URL-encoded.".into());
    }
    Ok(raw.as_bytes())
}

fn malformed(e: OAuthError) -> String {
    format!("The authorization request is malformed: {}.", e.description)
}

/// How fast authorization codes are handed out: each costs a store row (kept
/// until it expires, so a replay is recognised) and a signature later, and a
/// signed-in browser — or a script holding its cookie — could otherwise ask
/// for them as fast as it can. A budget per person (not per session: signing
/// in again must not refill it) and one per client over everyone
/// (`people.codes_per_user_per_minute`, `people.codes_per_client_per_minute`),
/// each in a bounded table.
pub(crate) struct CodeBudget {
    per_user: RateBudget<String>,
    per_client: RateBudget<String>,
}

impl CodeBudget {
    pub(crate) fn new(settings: &PeopleSettings, capacity: usize) -> Self {
        CodeBudget {
            per_user: RateBudget::new(settings.codes_per_user_per_minute, capacity),
            per_client: RateBudget::new(settings.codes_per_client_per_minute, capacity),
        }
    }

    /// Counts one code for `user_id` and `client_id`; `Some` answer — 429
    /// with `Retry-After`, nothing issued, nothing stored — when either is
    /// over its budget.
    fn over(&self, user_id: &str, client_id: &str) -> Option<Response> {
        let counted = self
            .per_user
            .take(user_id.to_string())
            .and_then(|()| self.per_client.take(client_id.to_string()));
        counted.err().map(|wait| {
            tracing::info!(client_id, "authorization code refused: over the code budget");
            let secs = respond::whole_seconds(wait);
            let resp = pages::error(
                StatusCode::TOO_MANY_REQUESTS,
                &format!(
                    "Too many authorization requests for this application. Wait {secs} seconds and try again."
                ),
            );
            respond::with_retry_after(resp, secs)
        })
    }
}

fn bad_request(message: &str) -> Response {
    pages::error(StatusCode::BAD_REQUEST, message)
}

/// Reads a form posted from one of Gatehouse's own pages (strict parsing,
/// like every form here) and checks that it is: a form without the CSRF
/// token bound to this browser's cookie is refused before anything else.
async fn read_own_form(
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
enum Viewer<'a> {
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
async fn refuse(state: &AppState, e: AuthorizeError, viewer: Viewer<'_>) -> Response {
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
async fn approved(state: &AppState, user_id: &str, client_id: &str) -> bool {
    match state.server.store.list_consents(user_id).await {
        Ok(consents) => consents.iter().any(|c| c.client_id == client_id),
        Err(e) => {
            tracing::warn!(error = %e, "consent lookup failed; the error is shown, not redirected");
            false
        }
    }
}

fn display_name(req: &AuthorizationRequest) -> String {
    req.client
        .metadata
        .client_name
        .clone()
        .unwrap_or_else(|| req.client.id.clone())
}

fn sign_in_page(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    raw: &str,
    req: &AuthorizationRequest,
    username: &str,
    alert: Option<&str>,
) -> Response {
    let (token, set) = csrf(state, headers);
    let action = state.server.settings.issuer.endpoint(SIGNIN_PATH);
    let name = display_name(req);
    let page = pages::sign_in(
        status,
        &pages::SignIn {
            action: &action,
            csrf: &token,
            request: raw,
            client_name: &name,
            self_registered: req.self_registered(),
            username,
            alert,
        },
    );
    with_cookie(page, set)
}

/// The MAC over everything a consent page shows the person, bound to the
/// browser's CSRF token: Allow grants exactly this or nothing. The request
/// is derived again when the answer comes back, and the client may have
/// changed meanwhile (an RFC 7592 update widening its registered scopes
/// while the person reads), so the answer carries this and is refused when
/// the request derived then would show something else.
fn shown(state: &AppState, csrf_token: &str, user: &User, req: &AuthorizationRequest) -> String {
    let count = |n: usize| n.to_string();
    let fields = [csrf_token, user.id.as_str(), req.client.id.as_str()]
        .into_iter()
        .map(str::to_string)
        .chain([
            req.client.revision.to_string(),
            display_name(req),
            req.self_registered().to_string(),
            req.redirect_uri.clone(),
            count(req.scopes.len()),
        ])
        .chain(req.scopes.iter().cloned())
        .chain([count(req.resources.len())])
        .chain(req.resources.iter().cloned());
    // Each field length-prefixed, so no value (a client name may hold any
    // character) can move text from one field into the next.
    let what: String = fields.map(|f| format!("{}:{f};", f.len())).collect();
    state
        .server
        .secrets
        .derive(SHOWN_PURPOSE, &what)
        .unwrap_or_default()
}

fn consent_page(
    state: &AppState,
    headers: &HeaderMap,
    raw: &str,
    req: &AuthorizationRequest,
    user: &User,
    alert: Option<&str>,
) -> Response {
    let (token, set) = csrf(state, headers);
    let issuer = &state.server.settings.issuer;
    let action = issuer.endpoint(CONSENT_PATH);
    let signout = issuer.endpoint(SIGNOUT_PATH);
    let name = display_name(req);
    let host = url::Url::parse(&req.redirect_uri)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_else(|| req.redirect_uri.clone());
    let shown = shown(state, &token, user, req);
    let page = pages::consent(&pages::Consent {
        action: &action,
        csrf: &token,
        request: raw,
        user_name: &user.name,
        client_name: &name,
        client_id: &req.client.id,
        self_registered: req.self_registered(),
        redirect_host: &host,
        scopes: &req.scopes,
        resources: &req.resources,
        signout: &signout,
        shown: &shown,
        alert,
    });
    with_cookie(page, set)
}

/// `GET /oauth/authorize` (RFC 6749 §4.1.1).
pub async fn authorize_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    authorize(&state, &headers, query.unwrap_or_default()).await
}

/// `POST /oauth/authorize` (RFC 6749 §3.1: the endpoint "MAY" take POST).
pub async fn authorize_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match read_form(&headers, body).await {
        Ok(raw) => authorize(&state, &headers, raw).await,
        Err(resp) => resp,
    }
}

async fn read_form(headers: &HeaderMap, body: Body) -> Result<String, Response> {
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

async fn authorize(state: &AppState, headers: &HeaderMap, raw: String) -> Response {
    let params = match parse_request(&raw) {
        Ok(p) => p,
        Err(msg) => return bad_request(&msg),
    };
    let session = match signed_in(state, headers).await {
        Ok(s) => s,
        Err(e) => return store_trouble(&e),
    };
    let req = match state.server.authorization_request(&params).await {
        Ok(r) => r,
        Err(e) => {
            let viewer = match &session {
                Some((_, _, user)) => Viewer::Person(&user.id),
                None => Viewer::Anonymous,
            };
            return refuse(state, e, viewer).await;
        }
    };
    // OIDC `prompt=login` and `max_age` ask for a fresh sign-in.
    let t = state.server.now();
    let signed_in_as = session.as_ref().map(|(_, _, user)| user.id.clone());
    let fresh =
        session.filter(|(_, s, _)| !req.prompt.login && req.sign_in_fresh_enough(s.auth_time, t));
    let Some((_, session, user)) = fresh else {
        if req.prompt.none {
            let e = AuthorizationServer::prompt_none_error(&req, "login_required");
            let viewer = match &signed_in_as {
                Some(id) => Viewer::Person(id),
                None => Viewer::Anonymous,
            };
            return refuse(state, e, viewer).await;
        }
        return sign_in_page(state, headers, StatusCode::OK, &raw, &req, "", None);
    };
    let consented = if req.prompt.consent {
        Ok(false)
    } else {
        state.server.has_consent(&user.id, &req).await
    };
    match consented {
        Ok(false) if req.prompt.none => {
            refuse(
                state,
                AuthorizationServer::prompt_none_error(&req, "consent_required"),
                Viewer::Person(&user.id),
            )
            .await
        }
        Ok(true) => {
            if let Some(refused) = state.code_budget.over(&user.id, &req.client.id) {
                return refused;
            }
            match state
                .server
                .issue_code(&req, &user, &session, state.server.now())
                .await
            {
                Ok(Some(location)) => see_other(&location),
                // Not redirected back here: a deleted client can stay in the
                // cache for a poll interval, and the browser would loop.
                Ok(None) => pages::error(StatusCode::CONFLICT, CHANGED_MEANWHILE),
                Err(e) => store_trouble(&e),
            }
        }
        Ok(false) => consent_page(state, headers, &raw, &req, &user, None),
        Err(e) => store_trouble(&e),
    }
}

/// The account a sign-in names (`None` for a name that cannot be one); the
/// error is the page to show.
async fn account_named(state: &AppState, name: &str) -> Result<Option<User>, Response> {
    if gatehouse_oauth::people::accounts::validate_user_name(name).is_err() {
        return Ok(None);
    }
    state
        .server
        .store
        .get_user_by_name(name)
        .await
        .map_err(|e| store_trouble(&OAuthError::from(e)))
}

/// `POST /oauth/signin`: the sign-in form.
pub async fn sign_in(
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
    let name = form
        .username()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let password = form.password().unwrap_or_default().to_string();
    let refuse_wait = |wait: std::time::Duration| {
        let secs = respond::whole_seconds(wait);
        let msg = format!("Sign-in failed: too many attempts. Wait {secs} seconds and try again.");
        let resp = sign_in_page(
            &state,
            &headers,
            StatusCode::TOO_MANY_REQUESTS,
            &raw,
            &req,
            &name,
            Some(&msg),
        );
        respond::with_retry_after(resp, secs)
    };
    // A browser claiming (by its device cookie) to have signed in as
    // someone before is first checked against the address's count only;
    // its claim is then checked against the account, before it may take a
    // password-check slot, so a forged cookie gets no further than a name
    // held back would.
    let claim = device_claim(&state, &headers);
    if let Some(wait) = state
        .signin_guard
        .wait(addr, &name, claim.as_ref().map(|c| c.tag))
    {
        return refuse_wait(wait);
    }
    let mut account = None;
    // Exempt from the name's count: this browser signed in as this very
    // account before, under its current password.
    let mut known_device = false;
    if let Some(claim) = &claim {
        account = match account_named(&state, &name).await {
            Ok(a) => a,
            Err(resp) => return resp,
        };
        known_device = account
            .as_ref()
            .is_some_and(|u| device_of(&state, claim, u));
        if !known_device && let Some(wait) = state.signin_guard.wait(addr, &name, None) {
            return refuse_wait(wait);
        }
    }
    // argon2id takes ~20 MiB and tens of milliseconds per check: at most
    // a few at once (by CPU count), so a flood of sign-ins costs bounded
    // memory; a check that cannot start within seconds is turned away.
    let slot = state.password_checks.clone().acquire_owned();
    let Ok(Ok(permit)) = tokio::time::timeout(PASSWORD_CHECK_WAIT, slot).await else {
        let resp = pages::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "Gatehouse is busy signing people in. Try again in a moment.",
        );
        return respond::with_retry_after(resp, 1u32);
    };
    if claim.is_none() {
        account = match account_named(&state, &name).await {
            Ok(a) => a,
            Err(resp) => return resp,
        };
    }
    // Counted under the device cookie (its MAC) when it is this account's,
    // else under the name.
    let device = claim.as_ref().filter(|_| known_device).map(|c| c.tag);
    if let Err(wait) = state.signin_guard.begin(addr, &name, device) {
        return refuse_wait(wait);
    }
    // argon2 takes tens of milliseconds of CPU: off the async workers.
    let checked = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        check_sign_in(account, &password)
    })
    .await;
    let failed = || {
        sign_in_page(
            &state,
            &headers,
            StatusCode::UNAUTHORIZED,
            &raw,
            &req,
            &name,
            Some("Sign-in failed: the user name or the password is not right."),
        )
    };
    let Ok(Some(user)) = checked else {
        tracing::info!(client_addr = %addr, known_device, "sign-in failed");
        return failed();
    };
    let cookie = b64url(&random_bytes::<32>());
    let t = state.server.now();
    let lifetime = state.server.settings.people.signin_lifetime.as_secs();
    // Bound to the credential generation read with the hash just checked:
    // the store refuses it if the password changed meanwhile, and never
    // honours it after a later change.
    let session = BrowserSession {
        user_id: user.id.clone(),
        auth_time: t,
        expires_at: t + lifetime as i64,
        credentials_gen: user.credentials_gen,
    };
    match state
        .server
        .store
        .insert_session(&lookup_hash(&cookie), &session)
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            // The password was changed while it was being checked: it is
            // no longer the password, and the attempt stays counted.
            tracing::info!(client_addr = %addr, sub = %user.id, "sign-in failed: the password changed meanwhile");
            return failed();
        }
        Err(e) => return store_trouble(&OAuthError::from(e)),
    }
    state.signin_guard.succeeded(addr, &name, device);
    tracing::info!(sub = %user.id, known_device, "signed in");
    // Back to the request, which this sign-in has now satisfied: a
    // `prompt=login` in it would otherwise ask again forever.
    let back = format!(
        "{}?{}",
        state.server.settings.issuer.endpoint(AUTHORIZE_PATH),
        satisfied_by_sign_in(&raw)
    );
    let set = Cookies::of(&state).set("session", &cookie, Some(lifetime));
    let resp = with_cookie(see_other(&back), Some(set));
    // Renewed on every sign-in, under the password that just worked.
    with_cookie(resp, device_cookie(&state, &user))
}

/// The authorization request `raw` as a sign-in just satisfied it:
/// without `login` among its `prompt` values and without `max_age` (the
/// session is as fresh as it gets; keeping either would ask again, forever
/// — the client still sees `auth_time` in the ID token). Every other
/// parameter is kept as sent.
fn satisfied_by_sign_in(raw: &str) -> String {
    raw.split('&')
        .filter_map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let Ok(decoded_name) = form_decode(name.as_bytes()) else {
                return Some(pair.to_string());
            };
            match decoded_name.as_str() {
                "max_age" => None,
                "prompt" => {
                    let Ok(value) = form_decode(value.as_bytes()) else {
                        return Some(pair.to_string());
                    };
                    let kept: Vec<&str> = value
                        .split(' ')
                        .filter(|v| !v.is_empty() && *v != "login")
                        .collect();
                    (!kept.is_empty()).then(|| format!("prompt={}", kept.join("+")))
                }
                _ => Some(pair.to_string()),
            }
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// `POST /oauth/consent`: Allow or Deny.
pub async fn consent(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let form = match read_own_form(&state, &headers, body).await {
        Ok(f) => f,
        Err(resp) => return resp,
    };
    let raw = form.request().unwrap_or_default().to_string();
    let back = format!(
        "{}?{raw}",
        state.server.settings.issuer.endpoint(AUTHORIZE_PATH)
    );
    let Some((_, session, user)) = (match signed_in(&state, &headers).await {
        Ok(s) => s,
        Err(e) => return store_trouble(&e),
    }) else {
        // Signed out meanwhile: start over at sign-in.
        return see_other(&back);
    };
    let params = match parse_request(&raw) {
        Ok(p) => p,
        Err(msg) => return bad_request(&msg),
    };
    let req = match state.server.authorization_request(&params).await {
        Ok(r) => r,
        // The request no longer stands (the client changed or is gone):
        // its error goes back only to a client the person approved before.
        Err(e) => return refuse(&state, e, Viewer::Person(&user.id)).await,
    };
    // A consent page left open past `max_age` (or a request asking for a
    // fresh sign-in) goes back through sign-in first.
    if req.prompt.login || !req.sign_in_fresh_enough(session.auth_time, state.server.now()) {
        return see_other(&back);
    }
    let decision = form.decision();
    if !matches!(decision, Some("allow" | "deny")) {
        return pages::error(StatusCode::BAD_REQUEST, "Choose Allow or Deny.");
    }
    // The form's CSRF token was checked against this browser's cookie
    // above; the page it came from showed what `shown` says. Either answer
    // goes to the client the page showed, or nowhere: a request that now
    // differs (a new redirect URI, wider scopes) is shown again.
    let expected = shown(&state, form.csrf().unwrap_or_default(), &user, &req);
    let sent = form.shown().unwrap_or_default();
    if expected.is_empty() || !bool::from(sent.as_bytes().ct_eq(expected.as_bytes())) {
        tracing::info!(
            sub = %user.id,
            client_id = %req.client.id,
            "consent answer refused: the request differs from what the page showed"
        );
        return consent_page(
            &state,
            &headers,
            &raw,
            &req,
            &user,
            Some(CHANGED_WHILE_SHOWN),
        );
    }
    match decision {
        Some("allow") => {
            if let Some(refused) = state.code_budget.over(&user.id, &req.client.id) {
                return refused;
            }
            let t = state.server.now();
            if let Err(e) = state.server.record_consent(&user.id, &req, t).await {
                return store_trouble(&e);
            }
            tracing::info!(sub = %user.id, client_id = %req.client.id, "consent granted");
            match state.server.issue_code(&req, &user, &session, t).await {
                Ok(Some(location)) => see_other(&location),
                Ok(None) => pages::error(StatusCode::CONFLICT, CHANGED_MEANWHILE),
                Err(e) => store_trouble(&e),
            }
        }
        Some("deny") => {
            let e = OAuthError::new(ErrorCode::AccessDenied, "the user declined the request");
            see_other(
                &state
                    .server
                    .error_redirect(&req.redirect_uri, req.state.as_deref(), &e),
            )
        }
        _ => pages::error(StatusCode::BAD_REQUEST, "Choose Allow or Deny."),
    }
}

/// `GET /oauth/signout`: asks before signing out (a link must not sign
/// anyone out: that would be a cross-site request).
pub async fn sign_out_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let user = match signed_in(&state, &headers).await {
        Ok(s) => s.map(|(_, _, u)| u),
        Err(e) => return store_trouble(&e),
    };
    let (token, set) = csrf(&state, &headers);
    let action = state.server.settings.issuer.endpoint(SIGNOUT_PATH);
    with_cookie(
        pages::sign_out(&action, &token, user.as_ref().map(|u| u.name.as_str())),
        set,
    )
}

/// `POST /oauth/signout`: ends the session here and in the Store.
pub async fn sign_out(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    if let Err(resp) = read_own_form(&state, &headers, body).await {
        return resp;
    }
    if let Some(cookie) = Cookies::of(&state).get(&headers, "session")
        && let Err(e) = state
            .server
            .store
            .delete_session(&lookup_hash(cookie))
            .await
    {
        return store_trouble(&OAuthError::from(e));
    }
    let clear = Cookies::of(&state).set("session", "", Some(0));
    with_cookie(pages::signed_out(), Some(clear))
}

/// `GET` / `POST /oauth/userinfo` (OIDC Core §5.3) with a bearer token.
pub async fn userinfo(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(token) = crate::register::bearer(&headers) else {
        return ApiError(
            OAuthError::new(ErrorCode::InvalidToken, "a bearer access token is required")
                .with_challenge(gatehouse_oauth::error::Challenge::Bearer),
        )
        .into_response();
    };
    match state.server.userinfo(token).await {
        Ok(body) => crate::respond::json_response(StatusCode::OK, &body, crate::respond::NO_STORE),
        Err(e) => ApiError(e).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::satisfied_by_sign_in;

    #[test]
    fn a_sign_in_satisfies_prompt_login_and_max_age_and_nothing_else() {
        assert_eq!(
            satisfied_by_sign_in("client_id=c&prompt=login+consent&max_age=0&state=s"),
            "client_id=c&prompt=consent&state=s"
        );
        assert_eq!(satisfied_by_sign_in("prom%70t=login&a=1"), "a=1");
        assert_eq!(satisfied_by_sign_in("a=1&b=%20"), "a=1&b=%20");
    }
}
