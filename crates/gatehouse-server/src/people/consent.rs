//! `POST /oauth/consent`: Allow or Deny exactly what the page showed.

use super::*;

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
