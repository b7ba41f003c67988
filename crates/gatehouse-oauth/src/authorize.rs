//! The authorization endpoint's protocol side (RFC 6749 §4.1.1, OAuth 2.1
//! §4.1, RFC 7636, RFC 8252 §7.3, RFC 8707, RFC 9207): validating a request,
//! deciding whether consent is needed, and issuing a code. The pages and
//! cookies are the HTTP layer's business.
//!
//! Errors come in two kinds (RFC 6749 §4.1.2.1): while the client or the
//! redirect URI is in doubt nothing may be sent to that URI, so the error is
//! shown on Gatehouse's own page ([`AuthorizeError::Page`]); every later
//! error goes back to the client ([`AuthorizeError::Redirect`]) — but only
//! once the person has signed in, for self-registered clients
//! (docs/decisions.md "People"), which is the HTTP layer's call.

use crate::client::{Client, ClientOrigin, plausible_client_id};
use crate::crypto::{b64url, random_bytes};
use crate::error::{ErrorCode, OAuthError};
use crate::grant_records::{AuthCode, BrowserSession, User, lookup_hash};
use crate::grants::authorization_code::GRANT_TYPE as CODE_GRANT;
use crate::issuer::is_loopback_host;
use crate::limits::{MAX_NONCE_BYTES, MAX_STATE_BYTES};
use crate::pkce;
use crate::registration::validate_redirect_uri;
use crate::resource::select_audience;
use crate::scope::{OPENID, granted_scopes, parse_scope};
use crate::server::AuthorizationServer;
use crate::token_request::TokenRequest;
use std::sync::Arc;
use url::Url;

/// A validated authorization request.
#[derive(Debug, Clone)]
pub struct AuthorizationRequest {
    pub client: Arc<Client>,
    /// Where the response goes: the `redirect_uri` sent, or the one
    /// registered when the client has exactly one and sent none.
    pub redirect_uri: String,
    /// Whether `redirect_uri` was in the request (the token request must
    /// then repeat it, RFC 6749 §4.1.3).
    pub redirect_uri_sent: bool,
    pub state: Option<String>,
    pub scopes: Vec<String>,
    /// The resources the grant will cover (RFC 8707 §2), at least one.
    pub resources: Vec<String>,
    pub code_challenge: String,
    pub nonce: Option<String>,
    /// OIDC `prompt` (Core §3.1.2.1).
    pub prompt: Prompt,
    /// OIDC `max_age`: a sign-in older than this many seconds must be
    /// repeated.
    pub max_age: Option<i64>,
}

/// The OIDC `prompt` values understood (`select_account` has nothing to
/// select among here and is accepted as a no-op).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Prompt {
    /// Show nothing: answer at once or fail with `login_required` /
    /// `consent_required`.
    pub none: bool,
    /// Sign in again, even with a session.
    pub login: bool,
    /// Ask for consent again, even if remembered.
    pub consent: bool,
}

impl Prompt {
    fn parse(s: Option<&str>) -> Result<Prompt, OAuthError> {
        let mut p = Prompt::default();
        for v in s.unwrap_or_default().split(' ').filter(|v| !v.is_empty()) {
            match v {
                "none" => p.none = true,
                "login" => p.login = true,
                "consent" => p.consent = true,
                "select_account" => {}
                other => {
                    return Err(OAuthError::invalid_request(format!(
                        "prompt value {other:?} is not supported"
                    )));
                }
            }
        }
        if p.none && (p.login || p.consent) {
            return Err(OAuthError::invalid_request(
                "prompt=none cannot be combined with other values",
            ));
        }
        Ok(p)
    }
}

impl AuthorizationRequest {
    /// Whether a sign-in made at `auth_time` still does for this request.
    pub fn sign_in_fresh_enough(&self, auth_time: i64, now: i64) -> bool {
        self.max_age.is_none_or(|m| now - auth_time <= m)
    }
}

impl AuthorizationRequest {
    /// Whether the client registered itself (the consent page marks it as
    /// unverified).
    pub fn self_registered(&self) -> bool {
        self.client.origin == ClientOrigin::Dynamic
    }
}

#[derive(Debug, Clone)]
pub enum AuthorizeError {
    /// Shown to the person, never sent to the client.
    Page(String),
    /// Sent to the client's redirect URI.
    Redirect {
        redirect_uri: String,
        state: Option<String>,
        error: OAuthError,
        client: Arc<Client>,
    },
    /// The server could not answer (the store is unreachable): shown, with
    /// the error's status, never sent to the client.
    Failed(OAuthError),
}

impl From<OAuthError> for AuthorizeError {
    fn from(e: OAuthError) -> Self {
        AuthorizeError::Failed(e)
    }
}

/// Whether `requested` matches the registered `registered` (OAuth 2.1
/// §4.1.1: exact string comparison), except that for loopback `http`
/// redirects the port is ignored (RFC 8252 §7.3: native apps listen on
/// whatever port is free).
pub fn redirect_matches(registered: &str, requested: &str) -> bool {
    if registered == requested {
        return true;
    }
    // The requested URI must be a clean URI by the registration rules (no
    // user information, fragment, wildcard or stray characters), so that
    // what is compared below is what a browser will follow: without this,
    // `http://127.0.0.1:5@evil.example/cb` would look like a loopback URI
    // with a port.
    if validate_redirect_uri(requested).is_err() {
        return false;
    }
    match (loopback_parts(registered), loopback_parts(requested)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// A loopback `http` URI split into (host, path and query) around its
/// port, from the string itself so nothing is normalised on the way; `None`
/// for anything else. The authority must be exactly `host` or `host:digits`.
fn loopback_parts(s: &str) -> Option<(&str, &str)> {
    let rest = s.strip_prefix("http://")?;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let host = match authority.rfind(':') {
        // An IPv6 literal ends with ']' — its colons are not a port.
        Some(i) if !authority[i..].contains(']') => {
            let port = &authority[i + 1..];
            if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            &authority[..i]
        }
        _ => authority,
    };
    let url = Url::parse(&format!("http://{host}/")).ok()?;
    let exact_host = url.host_str().is_some_and(|h| h == host);
    (exact_host && is_loopback_host(&url)).then_some((host, tail))
}

/// `redirect_uri` with the response parameters appended (RFC 6749 §4.1.2,
/// RFC 9207 `iss`).
pub fn redirect_with(redirect_uri: &str, params: &[(&str, &str)]) -> String {
    match Url::parse(redirect_uri) {
        Ok(mut url) => {
            {
                let mut q = url.query_pairs_mut();
                for (k, v) in params {
                    q.append_pair(k, v);
                }
            }
            url.to_string()
        }
        // Registered URIs always parse; never reached.
        Err(_) => redirect_uri.to_string(),
    }
}

impl AuthorizationServer {
    /// Validates an authorization request's parameters (from the query of a
    /// GET or the body of a POST, RFC 6749 §3.1).
    pub async fn authorization_request(
        &self,
        params: &TokenRequest,
    ) -> Result<AuthorizationRequest, AuthorizeError> {
        if !self.settings.people.enabled {
            return Err(AuthorizeError::Page(
                "Signing in is not enabled on this server.".into(),
            ));
        }
        let client_id = params.param("client_id").ok_or_else(|| {
            AuthorizeError::Page("The request names no client (client_id).".into())
        })?;
        let unknown = || AuthorizeError::Page("The application is not registered here.".into());
        if !plausible_client_id(client_id) {
            return Err(unknown());
        }
        let client = self
            .clients
            .get(self.store.as_ref(), client_id)
            .await?
            .ok_or_else(unknown)?;
        let registered = &client.metadata.redirect_uris;
        let (redirect_uri, sent) = match params.param("redirect_uri") {
            Some(r) => match registered.iter().find(|reg| redirect_matches(reg, r)) {
                Some(_) => (r.to_string(), true),
                None => {
                    return Err(AuthorizeError::Page(
                        "The application asked to return to an address it did not register.".into(),
                    ));
                }
            },
            None => match registered.as_slice() {
                [only] => (only.clone(), false),
                _ => {
                    return Err(AuthorizeError::Page(
                        "The request does not say where to return (redirect_uri).".into(),
                    ));
                }
            },
        };
        // From here on errors go back to the client.
        let state = params.param("state").map(str::to_string);
        let fail = |error: OAuthError| AuthorizeError::Redirect {
            redirect_uri: redirect_uri.clone(),
            state: state.clone(),
            error,
            client: client.clone(),
        };
        if state.as_ref().is_some_and(|s| s.len() > MAX_STATE_BYTES) {
            return Err(fail(OAuthError::invalid_request(format!(
                "state is longer than {MAX_STATE_BYTES} bytes"
            ))));
        }
        match params.param("response_type") {
            Some("code") => {}
            None => {
                return Err(fail(OAuthError::invalid_request(
                    "response_type is required",
                )));
            }
            Some(_) => {
                return Err(fail(OAuthError::new(
                    ErrorCode::UnsupportedResponseType,
                    "only response_type=code is supported",
                )));
            }
        }
        if !client.allows_grant(CODE_GRANT) {
            return Err(fail(OAuthError::new(
                ErrorCode::UnauthorizedClient,
                "the client is not registered for the authorization_code grant",
            )));
        }
        if params.param("request").is_some() || params.param("request_uri").is_some() {
            return Err(fail(OAuthError::invalid_request(
                "request objects (request, request_uri) are not supported",
            )));
        }
        let code_challenge = match (
            params.param("code_challenge"),
            params.param("code_challenge_method"),
        ) {
            (None, _) => {
                return Err(fail(OAuthError::invalid_request(
                    "code_challenge is required: PKCE (S256) is mandatory for every client",
                )));
            }
            (Some(_), Some(m)) if m != pkce::S256 => {
                return Err(fail(OAuthError::invalid_request(
                    "code_challenge_method must be S256 (plain is not supported)",
                )));
            }
            // RFC 7636 §4.3: an absent method means `plain`.
            (Some(_), None) => {
                return Err(fail(OAuthError::invalid_request(
                    "code_challenge_method=S256 is required (an absent method means plain, which is not supported)",
                )));
            }
            (Some(c), Some(_)) if !pkce::valid_challenge(c) => {
                return Err(fail(OAuthError::invalid_request(
                    "code_challenge must be 43 base64url characters (the S256 of the verifier)",
                )));
            }
            (Some(c), Some(_)) => c.to_string(),
        };
        let prompt = Prompt::parse(params.param("prompt")).map_err(fail)?;
        let max_age = match params.param("max_age") {
            None => None,
            Some(m) => Some(m.parse::<u32>().map(i64::from).map_err(|_| {
                fail(OAuthError::invalid_request(
                    "max_age must be a number of seconds",
                ))
            })?),
        };
        let nonce = params.param("nonce").map(str::to_string);
        if nonce.as_ref().is_some_and(|n| n.len() > MAX_NONCE_BYTES) {
            return Err(fail(OAuthError::invalid_request(format!(
                "nonce is longer than {MAX_NONCE_BYTES} bytes"
            ))));
        }
        let scopes = self
            .person_scopes(&client, params.param("scope"))
            .map_err(fail)?;
        let resources = self.grant_resources(&client, params).map_err(fail)?;
        Ok(AuthorizationRequest {
            client: client.clone(),
            redirect_uri: redirect_uri.clone(),
            redirect_uri_sent: sent,
            state: state.clone(),
            scopes,
            resources,
            code_challenge,
            nonce,
            prompt,
            max_age,
        })
    }

    /// The scopes of a person's grant: the client-credentials rules
    /// (docs/decisions.md "Tokens"), plus `openid`, which any redirect client
    /// may ask for (OIDC Core §3.1.2.1).
    fn person_scopes(
        &self,
        client: &Client,
        requested: Option<&str>,
    ) -> Result<Vec<String>, OAuthError> {
        let Some(requested) = requested else {
            return granted_scopes(&self.settings, client, None);
        };
        let parsed =
            parse_scope(requested).map_err(|d| OAuthError::new(ErrorCode::InvalidScope, d))?;
        let openid = parsed.iter().any(|s| s == OPENID);
        let others: Vec<&str> = parsed
            .iter()
            .filter(|s| *s != OPENID)
            .map(String::as_str)
            .collect();
        // With no scopes configured anywhere (neither the server's list nor
        // the client's registration), any well-formed scope may be asked
        // for: the person sees them all on the consent page.
        let unrestricted =
            self.settings.scopes_supported.is_empty() && client.metadata.scopes.is_none();
        let mut scopes = if others.is_empty() {
            Vec::new()
        } else if unrestricted {
            others.iter().map(|s| s.to_string()).collect()
        } else {
            granted_scopes(&self.settings, client, Some(&others.join(" ")))?
        };
        if openid {
            scopes.insert(0, OPENID.to_string());
        }
        Ok(scopes)
    }

    /// The resources a grant covers: each `resource` sent, validated like at
    /// the token endpoint, or the one audience that applies when none is.
    fn grant_resources(
        &self,
        client: &Client,
        params: &TokenRequest,
    ) -> Result<Vec<String>, OAuthError> {
        let allowed = &self.settings.allowed_audiences;
        let client_auds = client.metadata.audiences.as_deref();
        let requested: Vec<&str> = params.params_all("resource").collect();
        if requested.is_empty() {
            return Ok(vec![select_audience(allowed, client_auds, &[])?]);
        }
        let mut out: Vec<String> = Vec::new();
        for r in requested {
            let aud = select_audience(allowed, client_auds, &[r])?;
            if !out.contains(&aud) {
                out.push(aud);
            }
        }
        Ok(out)
    }

    /// Whether `user` has already consented to everything this request
    /// asks, for every resource (docs/decisions.md "People": consent per
    /// user, client, resource and scopes; anything wider asks again).
    pub async fn has_consent(
        &self,
        user_id: &str,
        req: &AuthorizationRequest,
    ) -> Result<bool, OAuthError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_match_exactly_except_a_loopback_port() {
        assert!(redirect_matches(
            "https://app.example/cb",
            "https://app.example/cb"
        ));
        assert!(!redirect_matches(
            "https://app.example/cb",
            "https://app.example/cb/"
        ));
        assert!(!redirect_matches(
            "https://app.example/cb",
            "https://app.example:8443/cb"
        ));
        assert!(!redirect_matches(
            "https://app.example/cb",
            "https://APP.example/cb"
        ));
        assert!(redirect_matches(
            "http://127.0.0.1/cb",
            "http://127.0.0.1:51234/cb"
        ));
        assert!(redirect_matches(
            "http://127.0.0.1:80/cb",
            "http://127.0.0.1:51234/cb"
        ));
        assert!(redirect_matches("http://[::1]:1/cb", "http://[::1]:2/cb"));
        assert!(redirect_matches(
            "http://localhost/cb",
            "http://localhost:3000/cb"
        ));
        assert!(!redirect_matches(
            "http://127.0.0.1/cb",
            "http://127.0.0.1:5/other"
        ));
        assert!(!redirect_matches(
            "http://127.0.0.1/cb",
            "http://localhost:5/cb"
        ));
        assert!(!redirect_matches(
            "http://127.0.0.1/cb?a=1",
            "http://127.0.0.1:5/cb?a=2"
        ));
        assert!(redirect_matches(
            "cursor://anysphere.cursor/cb",
            "cursor://anysphere.cursor/cb"
        ));
        assert!(!redirect_matches(
            "cursor://anysphere.cursor/cb",
            "cursor://anysphere.cursor:1/cb"
        ));
        // Nothing that a browser would send elsewhere passes for a port.
        for evil in [
            "http://127.0.0.1:5@evil.example/cb",
            "http://127.0.0.1:x@evil.example/cb",
            "http://127.0.0.1@evil.example/cb",
            "http://127.0.0.1:5\\@evil.example/cb",
            "http://127.0.0.1:5/cb#@evil.example",
            "http://127.0.0.1:99999999/cb",
            "http://127.0.0.1:/cb",
            "http://127.0.0.1:5.evil.example/cb",
        ] {
            assert!(!redirect_matches("http://127.0.0.1/cb", evil), "{evil}");
        }
        assert!(!redirect_matches(
            "http://localhost/cb",
            "http://localhost:x@evil.example/cb"
        ));
    }

    #[test]
    fn response_parameters_are_appended_to_an_existing_query() {
        assert_eq!(
            redirect_with(
                "http://127.0.0.1:5/cb?x=1",
                &[("code", "a b"), ("iss", "https://as")]
            ),
            "http://127.0.0.1:5/cb?x=1&code=a+b&iss=https%3A%2F%2Fas"
        );
    }
}
