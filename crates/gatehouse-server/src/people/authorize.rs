//! `GET`/`POST /oauth/authorize`: validate the request, then sign-in,
//! consent or a code; codes are handed out within a budget.

use super::*;

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
    pub(super) fn over(&self, user_id: &str, client_id: &str) -> Option<Response> {
        let counted = self
            .per_user
            .take(user_id.to_string())
            .and_then(|()| self.per_client.take(client_id.to_string()));
        counted.err().map(|wait| {
            tracing::info!(
                client_id,
                "authorization code refused: over the code budget"
            );
            let secs = respond::whole_seconds(wait);
            let resp = pages::error(
                StatusCode::TOO_MANY_REQUESTS,
                &format!(
                    "Too many authorization requests for this application. Wait {} and try again.",
                    respond::seconds_in_words(secs)
                ),
            );
            respond::with_retry_after(resp, secs)
        })
    }
}

/// `GET /oauth/authorize` (RFC 6749 §4.1.1).
pub async fn authorize_get(
    State(state): State<AppState>,
    addr: ClientAddr,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    authorize(&state, addr, &headers, query.unwrap_or_default()).await
}

/// `POST /oauth/authorize` (RFC 6749 §3.1: the endpoint "MAY" take POST).
pub async fn authorize_post(
    State(state): State<AppState>,
    addr: ClientAddr,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match read_form(&headers, body).await {
        Ok(raw) => authorize(&state, addr, &headers, raw).await,
        Err(resp) => resp,
    }
}

pub(super) async fn authorize(
    state: &AppState,
    addr: ClientAddr,
    headers: &HeaderMap,
    raw: String,
) -> Response {
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
        // With one provider and no password here, there is nothing to
        // choose: straight to the provider.
        let people = &state.server.settings.people;
        if let ([only], false) = (people.providers.as_slice(), people.local_accounts) {
            return super::federate::send_to_provider(state, addr, headers, only, &raw).await;
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
