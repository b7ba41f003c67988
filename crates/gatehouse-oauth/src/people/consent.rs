//! After the person decides (RFC 6749 §4.1.2): consent kept per user,
//! client, resource and scopes (docs/decisions.md "People"), the code
//! issued, and errors returned to the client.

use crate::crypto::{b64url, random_bytes};
use crate::error::{ErrorCode, OAuthError};
use crate::grant_records::{AuthCode, BrowserSession, User, lookup_hash};
use crate::people::authorize::{AuthorizationRequest, AuthorizeError};
use crate::people::redirect::redirect_with;
use crate::server::AuthorizationServer;

impl AuthorizationServer {
    /// Whether `user` has already consented to everything this request
    /// asks, for every resource (docs/decisions.md "People": consent per
    /// user, client, resource and scopes; anything wider asks again).
    pub async fn has_consent(
        &self,
        user_id: &str,
        req: &AuthorizationRequest,
    ) -> Result<bool, OAuthError> {
        // A metadata document can change hands with its domain: what a
        // person allowed once is not taken to hold for whoever publishes
        // the document later, so its consent page is shown every time.
        if req.client.origin == crate::client::ClientOrigin::Document {
            return Ok(false);
        }
        for resource in &req.resources {
            let granted = self
                .store
                .get_consent(user_id, &req.client.id, resource)
                .await?;
            let covered = granted.is_some_and(|g| req.scopes.iter().all(|s| g.contains(s)));
            if !covered {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Records consent for everything this request asks (merged with what
    /// was granted before for each resource).
    pub async fn record_consent(
        &self,
        user_id: &str,
        req: &AuthorizationRequest,
        now: i64,
    ) -> Result<(), OAuthError> {
        for resource in &req.resources {
            let mut scopes = self
                .store
                .get_consent(user_id, &req.client.id, resource)
                .await?
                .unwrap_or_default();
            for s in &req.scopes {
                if !scopes.contains(s) {
                    scopes.push(s.clone());
                }
            }
            self.store
                .record_consent(user_id, &req.client.id, resource, &scopes, now)
                .await?;
        }
        Ok(())
    }

    /// Issues a code for a user signed in with `session` who has consented,
    /// and returns the URL to send the browser to (RFC 6749 §4.1.2, RFC 9207
    /// `iss`). `None` when the store refused the code because the session's
    /// credentials changed, the consent was withdrawn or the client deleted
    /// since they were checked: nothing was issued, and the request must be
    /// decided again.
    pub async fn issue_code(
        &self,
        req: &AuthorizationRequest,
        user: &User,
        session: &BrowserSession,
        now: i64,
    ) -> Result<Option<String>, OAuthError> {
        let code = b64url(&random_bytes::<32>());
        let record = AuthCode {
            hash: lookup_hash(&code),
            family_id: format!("f_{}", b64url(&random_bytes::<16>())),
            client_id: req.client.id.clone(),
            user_id: user.id.clone(),
            redirect_uri: req.redirect_uri_sent.then(|| req.redirect_uri.clone()),
            code_challenge: req.code_challenge.clone(),
            scopes: req.scopes.clone(),
            resources: req.resources.clone(),
            nonce: req.nonce.clone(),
            auth_time: session.auth_time,
            expires_at: now + self.settings.people.code_lifetime.as_secs() as i64,
            credentials_gen: session.credentials_gen,
        };
        if !self.store.insert_code(&record).await? {
            tracing::info!(client_id = %req.client.id, sub = %user.id, "authorization code not issued: credentials, consent or client changed meanwhile");
            return Ok(None);
        }
        tracing::info!(client_id = %req.client.id, sub = %user.id, "authorization code issued");
        let mut params = vec![("code", code.as_str())];
        if let Some(state) = &req.state {
            params.push(("state", state));
        }
        params.push(("iss", self.settings.issuer.as_str()));
        Ok(Some(redirect_with(&req.redirect_uri, &params)))
    }

    /// An OIDC error for `prompt=none` (Core §3.1.2.6) as the redirect
    /// error variant.
    pub fn prompt_none_error(req: &AuthorizationRequest, code: &'static str) -> AuthorizeError {
        let description = match code {
            "login_required" => "the user is not signed in (prompt=none)",
            _ => "the user has not consented to this request (prompt=none)",
        };
        AuthorizeError::Redirect {
            redirect_uri: req.redirect_uri.clone(),
            state: req.state.clone(),
            error: OAuthError::new(ErrorCode::Oidc(code), description),
            client: req.client.clone(),
        }
    }

    /// The URL that returns an error to the client (RFC 6749 §4.1.2.1 with
    /// RFC 9207 `iss`).
    pub fn error_redirect(
        &self,
        redirect_uri: &str,
        state: Option<&str>,
        error: &OAuthError,
    ) -> String {
        // RFC 6749 §4.1.2.1: the description excludes '"' and '\'.
        let description: String = error
            .description
            .chars()
            .map(|c| if c == '"' || c == '\\' { '\'' } else { c })
            .filter(|c| (' '..='~').contains(c))
            .collect();
        let mut params = vec![
            ("error", error.code.as_str()),
            ("error_description", description.as_str()),
        ];
        if let Some(state) = state {
            params.push(("state", state));
        }
        params.push(("iss", self.settings.issuer.as_str()));
        redirect_with(redirect_uri, &params)
    }
}
