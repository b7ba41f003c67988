//! Signing out, and OIDC userinfo for the bearer of an access token.

use super::*;

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
    let form = match read_own_form(&state, &headers, body).await {
        Ok(f) => f,
        Err(resp) => return resp,
    };
    if form.cancelled() {
        return match signed_in(&state, &headers).await {
            Ok(Some((_, _, user))) => pages::still_signed_in(&user.name),
            Ok(None) => pages::signed_out(),
            Err(e) => store_trouble(&e),
        };
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
                .with_bearer_challenge(None),
        )
        .into_response();
    };
    match state.server.userinfo(token).await {
        Ok(body) => crate::respond::json_response(StatusCode::OK, &body, crate::respond::NO_STORE),
        Err(e) => ApiError(e).into_response(),
    }
}
