//! `POST /oauth/sign-in`: the form, the limits in front of the password
//! check, the check, the new session.

use super::*;

/// The account a sign-in names (`None` for a name that cannot be one); the
/// error is the page to show.
pub(super) async fn account_named(state: &AppState, name: &str) -> Result<Option<User>, Response> {
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
    let Attempt {
        raw,
        req,
        name,
        password,
    } = match read_attempt(&state, &headers, body).await {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    let refuse_wait = |wait| held_back(&state, &headers, &raw, &req, &name, wait);
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
    let permit = match password_slot(&state).await {
        Ok(p) => p,
        Err(resp) => return resp,
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
    let cookie = match new_session(&state, &user).await {
        Ok(Some(cookie)) => cookie,
        Ok(None) => {
            // The password was changed while it was being checked: it is
            // no longer the password, and the attempt stays counted.
            tracing::info!(client_addr = %addr, sub = %user.id, "sign-in failed: the password changed meanwhile");
            return failed();
        }
        Err(resp) => return resp,
    };
    state.signin_guard.succeeded(addr, &name, device);
    tracing::info!(sub = %user.id, known_device, "signed in");
    back_to_request(&state, &raw, &cookie, &user)
}

/// 429 with the sign-in page again, saying how long to wait.
fn held_back(
    state: &AppState,
    headers: &HeaderMap,
    raw: &str,
    req: &AuthorizationRequest,
    name: &str,
    wait: std::time::Duration,
) -> Response {
    let secs = respond::whole_seconds(wait);
    let msg = format!(
        "Sign-in failed: too many attempts. Wait {} and try again.",
        respond::seconds_in_words(secs)
    );
    let status = StatusCode::TOO_MANY_REQUESTS;
    let page = sign_in_page(state, headers, status, raw, req, name, Some(&msg));
    respond::with_retry_after(page, secs)
}

/// A sign-in form as submitted: the authorization request it carries
/// (validated again), and the name and password.
struct Attempt {
    raw: String,
    req: AuthorizationRequest,
    name: String,
    password: String,
}

/// Reads the form (same origin, CSRF checked) and validates the
/// authorization request it carries; the error is the page to show.
async fn read_attempt(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Attempt, Response> {
    let form = read_own_form(state, headers, body).await?;
    let raw = form.request().unwrap_or_default().to_string();
    let params = parse_request(&raw).map_err(|msg| bad_request(&msg))?;
    let req = match state.server.authorization_request(&params).await {
        Ok(r) => r,
        Err(e) => return Err(refuse(state, e, Viewer::Anonymous).await),
    };
    if form.cancelled() {
        return Err(cancel_sign_in(state, &req));
    }
    if !state.server.settings.people.local_accounts {
        return Err(pages::error(
            StatusCode::FORBIDDEN,
            "Signing in with a password is not enabled here: use your identity provider.",
        ));
    }
    let name = form
        .username()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let password = form.password().unwrap_or_default().to_string();
    Ok(Attempt {
        raw,
        req,
        name,
        password,
    })
}

/// Cancel on the sign-in page: `access_denied` (RFC 6749 §4.1.2.1) to an
/// application an operator registered; for one that registered itself, a
/// page with a link back — redirecting before anyone signed in would make
/// every self-registered redirect URI an open redirector.
pub(super) fn cancel_sign_in(state: &AppState, req: &AuthorizationRequest) -> Response {
    let e = OAuthError::new(ErrorCode::AccessDenied, "the user cancelled the sign-in");
    let location = state
        .server
        .error_redirect(&req.redirect_uri, req.state.as_deref(), &e);
    tracing::info!(client_id = %req.client.id, "sign-in cancelled");
    if req.client.origin == ClientOrigin::Cli {
        return see_other(&location);
    }
    let host = url::Url::parse(&req.redirect_uri)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_else(|| req.redirect_uri.clone());
    pages::cancelled(&location, &host)
}

/// A password-check slot. argon2id takes ~20 MiB and tens of milliseconds
/// per check: at most a few at once (by CPU count), so a flood of sign-ins
/// costs bounded memory; a check that cannot start within seconds is turned
/// away with a 503.
async fn password_slot(state: &AppState) -> Result<tokio::sync::OwnedSemaphorePermit, Response> {
    let slot = state.password_checks.clone().acquire_owned();
    match tokio::time::timeout(PASSWORD_CHECK_WAIT, slot).await {
        Ok(Ok(permit)) => Ok(permit),
        _ => Err(respond::with_retry_after(
            pages::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "Gatehouse is busy signing people in. Try again in a moment.",
            ),
            1u32,
        )),
    }
}

/// Stores a new session for `user` and returns its cookie value; `None`
/// when the password changed since it was checked. The session is bound to
/// the credential generation read with the hash just checked: the store
/// refuses it if the password changed meanwhile, and never honours it after
/// a later change.
pub(super) async fn new_session(state: &AppState, user: &User) -> Result<Option<String>, Response> {
    new_session_at(state, user, state.server.now()).await
}

/// [`new_session`] for a sign-in made at `auth_time` (an identity
/// provider's, which may be earlier than now).
pub(super) async fn new_session_at(
    state: &AppState,
    user: &User,
    auth_time: i64,
) -> Result<Option<String>, Response> {
    let cookie = b64url(&random_bytes::<32>());
    let t = state.server.now();
    let lifetime = state.server.settings.people.signin_lifetime.as_secs();
    let session = BrowserSession {
        user_id: user.id.clone(),
        auth_time,
        expires_at: t + lifetime as i64,
        credentials_gen: user.credentials_gen,
    };
    match state
        .server
        .store
        .insert_session(&lookup_hash(&cookie), &session)
        .await
    {
        Ok(true) => Ok(Some(cookie)),
        Ok(false) => Ok(None),
        Err(e) => Err(store_trouble(&OAuthError::from(e))),
    }
}

/// Back to the request, which this sign-in has now satisfied (a
/// `prompt=login` in it would otherwise ask again forever), with the
/// session cookie and a device cookie renewed under the password that just
/// worked.
pub(super) fn back_to_request(state: &AppState, raw: &str, cookie: &str, user: &User) -> Response {
    let back = format!(
        "{}?{}",
        state.server.settings.issuer.endpoint(AUTHORIZE_PATH),
        satisfied_by_sign_in(raw)
    );
    let lifetime = state.server.settings.people.signin_lifetime.as_secs();
    let set = Cookies::of(state).set("session", cookie, Some(lifetime));
    let resp = with_cookie(see_other(&back), Some(set));
    with_cookie(resp, device_cookie(state, user))
}

/// The authorization request `raw` as a sign-in just satisfied it:
/// without `login` among its `prompt` values and without `max_age` (the
/// session is as fresh as it gets; keeping either would ask again, forever
/// — the client still sees `auth_time` in the ID token). Every other
/// parameter is kept as sent.
pub(super) fn satisfied_by_sign_in(raw: &str) -> String {
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
