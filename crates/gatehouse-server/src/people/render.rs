//! The sign-in and consent pages, and what the consent form binds: the
//! MAC of what the page showed.

use super::*;

pub(super) fn sign_in_page(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    raw: &str,
    req: &AuthorizationRequest,
    username: &str,
    alert: Option<&str>,
) -> Response {
    let (token, set) = csrf(state, headers);
    let settings = &state.server.settings;
    let action = settings.issuer.endpoint(SIGNIN_PATH);
    let name = display_name(req);
    let texts = &settings.people.pages;
    let host = issuer_host(state);
    let providers: Vec<(String, String)> = settings
        .people
        .providers
        .iter()
        .map(|p| (p.id.clone(), p.name.clone()))
        .collect();
    let federate_action = settings.issuer.endpoint(FEDERATE_PATH);
    let page = pages::sign_in(
        status,
        &pages::SignIn {
            action: &action,
            csrf: &token,
            request: raw,
            client_name: &name,
            unverified: !req.verified(&settings.client_metadata),
            username,
            alert,
            site_name: &texts.site_name,
            issuer_host: &host,
            forgot_password: &texts.forgot_password,
            forgot_password_url: texts.forgot_password_url.as_deref(),
            local_accounts: settings.people.local_accounts,
            providers: &providers,
            federate_action: &federate_action,
        },
    );
    with_cookie(page, set)
}

/// The issuer's host (and port, when it has one): the address the person
/// should see they are giving a password to.
fn issuer_host(state: &AppState) -> String {
    let issuer = state.server.settings.issuer.as_str();
    url::Url::parse(issuer)
        .ok()
        .and_then(|u| {
            let host = u.host_str()?.to_string();
            Some(match u.port() {
                Some(p) => format!("{host}:{p}"),
                None => host,
            })
        })
        .unwrap_or_else(|| issuer.to_string())
}

/// A lifetime in words, never shorter than it is: whole days, else whole
/// hours, else minutes (rounded up).
fn in_words(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    let (n, unit) = if secs >= 86_400 && secs.is_multiple_of(86_400) {
        (secs / 86_400, "day")
    } else if secs >= 3_600 && secs.is_multiple_of(3_600) {
        (secs / 3_600, "hour")
    } else {
        (secs.div_ceil(60).max(1), "minute")
    };
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

/// The MAC over everything a consent page shows the person, bound to the
/// browser's CSRF token: Allow grants exactly this or nothing. The request
/// is derived again when the answer comes back, and the client may have
/// changed meanwhile (an RFC 7592 update widening its registered scopes
/// while the person reads), so the answer carries this and is refused when
/// the request derived then would show something else.
pub(super) fn shown(
    state: &AppState,
    csrf_token: &str,
    user: &User,
    req: &AuthorizationRequest,
) -> String {
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

pub(super) fn consent_page(
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
    let texts = &state.server.settings.people.pages;
    let scopes: Vec<(String, Option<String>)> = req
        .scopes
        .iter()
        .map(|s| (s.clone(), texts.describe(s).map(str::to_string)))
        .collect();
    let resources: Vec<(String, String)> = req
        .resources
        .iter()
        .map(|r| (texts.resource_name(r), r.clone()))
        .collect();
    let lasts = in_words(state.server.settings.people.session_lifetime);
    let document_host = req.document_host();
    let page = pages::consent(&pages::Consent {
        action: &action,
        csrf: &token,
        request: raw,
        user_name: &user.name,
        client_name: &name,
        client_id: &req.client.id,
        self_registered: req.self_registered(),
        unverified: !req.verified(&state.server.settings.client_metadata),
        document_host: document_host.as_deref(),
        local_only: req.returns_only_locally(),
        redirect_host: &host,
        scopes: &scopes,
        resources: &resources,
        lasts: &lasts,
        signout: &signout,
        shown: &shown,
        alert,
    });
    with_cookie(page, set)
}
