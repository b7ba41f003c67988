//! The authorization endpoint's protocol side (RFC 6749 §4.1.1, OAuth 2.1
//! §4.1, RFC 7636, RFC 8252 §7.3, RFC 8707, RFC 9207): validating a request.
//! Consent and the code are `consent.rs`'s; the pages and cookies are the
//! HTTP layer's business.
//!
//! Errors come in two kinds (RFC 6749 §4.1.2.1): while the client or the
//! redirect URI is in doubt nothing may be sent to that URI, so the error is
//! shown on Gatehouse's own page ([`AuthorizeError::Page`]); every later
//! error goes back to the client ([`AuthorizeError::Redirect`]) — but only
//! once the person has signed in, for self-registered clients
//! (docs/decisions.md "People"), which is the HTTP layer's call.

use crate::client::{Client, ClientOrigin, plausible_client_id};
use crate::client_documents::cache::DocumentError;
use crate::client_documents::{is_document_id, validate_document_url};
use crate::error::{ErrorCode, OAuthError};
use crate::grants::authorization_code::GRANT_TYPE as CODE_GRANT;
use crate::limits::{MAX_NONCE_BYTES, MAX_STATE_BYTES};
use crate::people::forms::AuthorizationParams;
use crate::people::pkce;
use crate::people::redirect::redirect_matches;
use crate::resource::select_audience;
use crate::scope::{OPENID, granted_scopes, parse_scope};
use crate::server::AuthorizationServer;
use std::sync::Arc;

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
    /// Whether the client described itself — registered itself, or is a
    /// metadata document anyone could publish — rather than being created
    /// by the operator: errors before the person approved it stay on
    /// Gatehouse's page (docs/people.md).
    pub fn self_registered(&self) -> bool {
        self.client.origin != ClientOrigin::Cli
    }

    /// The host of the metadata document describing the client, when it is
    /// one (docs/clients.md).
    pub fn document_host(&self) -> Option<String> {
        (self.client.origin == ClientOrigin::Document)
            .then(|| url::Url::parse(&self.client.id).ok())
            .flatten()
            .map(|u| crate::client_documents::document_host(&u))
    }

    /// Whether someone the operator trusts stands behind the client: an
    /// administrator created it, or its document is on a trusted host.
    pub fn verified(&self, settings: &crate::settings::ClientMetadataSettings) -> bool {
        match self.client.origin {
            ClientOrigin::Cli => true,
            ClientOrigin::Dynamic => false,
            ClientOrigin::Document => self
                .document_host()
                .is_some_and(|h| crate::client_documents::any_matches(&settings.trusted_hosts, &h)),
        }
    }

    /// Whether every redirect URI the client has is on this computer
    /// (loopback): anyone could have published such a document.
    pub fn returns_only_locally(&self) -> bool {
        let uris = &self.client.metadata.redirect_uris;
        !uris.is_empty()
            && uris
                .iter()
                .all(|u| url::Url::parse(u).is_ok_and(|u| crate::issuer::is_loopback_host(&u)))
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
impl AuthorizationServer {
    /// Validates an authorization request's parameters (from the query of a
    /// GET or the body of a POST, RFC 6749 §3.1).
    pub async fn authorization_request(
        &self,
        params: &AuthorizationParams,
    ) -> Result<AuthorizationRequest, AuthorizeError> {
        let (client, redirect_uri, sent) = self.client_and_redirect(params).await?;
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
        check_response_type(&client, params).map_err(fail)?;
        let code_challenge = code_challenge(params).map_err(fail)?;
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

    /// The client and the redirect URI, while errors can only be shown on
    /// Gatehouse's own page (RFC 6749 §4.1.2.1): the URI returned and
    /// whether the request named it.
    async fn client_and_redirect(
        &self,
        params: &AuthorizationParams,
    ) -> Result<(Arc<Client>, String, bool), AuthorizeError> {
        if !self.settings.people.enabled {
            return Err(AuthorizeError::Page(
                "Signing in is not enabled on this server.".into(),
            ));
        }
        let client_id = params.param("client_id").ok_or_else(|| {
            AuthorizeError::Page("The request names no client (client_id).".into())
        })?;
        let unknown = || AuthorizeError::Page("The application is not registered here.".into());
        let client = if is_document_id(client_id) {
            match self.document_client(client_id).await {
                Ok(c) => c,
                Err(DocumentError::Refused(reason)) => {
                    tracing::info!(client_id, reason, "client metadata document refused");
                    return Err(AuthorizeError::Page(format!(
                        "The application's description at {client_id} cannot be used: {reason}."
                    )));
                }
                // Why the fetch failed (addresses, timings) stays in the log.
                Err(DocumentError::Unavailable(reason)) => {
                    tracing::warn!(client_id, reason, "client metadata document unavailable");
                    return Err(AuthorizeError::Failed(crate::server::document_unavailable()));
                }
            }
        } else if plausible_client_id(client_id) {
            self.clients
                .get(self.store.as_ref(), client_id)
                .await?
                .ok_or_else(unknown)?
        } else if let Some(reason) = client_id
            .contains("://")
            .then(|| validate_document_url(client_id, false).err())
            .flatten()
        {
            // A URL that is not a usable document URL (http, a fragment…):
            // say which rule it breaks, for the client's developer.
            return Err(AuthorizeError::Page(format!(
                "The application's client_id {client_id} cannot be used: {reason}."
            )));
        } else {
            return Err(unknown());
        };
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
        Ok((client, redirect_uri, sent))
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
        params: &AuthorizationParams,
    ) -> Result<Vec<String>, OAuthError> {
        let allowed = &self.settings.allowed_audiences;
        let client_auds = client.metadata.audiences.as_deref();
        let requested: Vec<&str> = params.resources().collect();
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
}

/// `response_type=code` only (OAuth 2.1 §4.1.1), for a client registered
/// for the code grant, without request objects.
fn check_response_type(client: &Client, params: &AuthorizationParams) -> Result<(), OAuthError> {
    match params.param("response_type") {
        Some("code") => {}
        None => return Err(OAuthError::invalid_request("response_type is required")),
        Some(_) => {
            return Err(OAuthError::new(
                ErrorCode::UnsupportedResponseType,
                "only response_type=code is supported",
            ));
        }
    }
    if !client.allows_grant(CODE_GRANT) {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            format!("the client is not registered for the {CODE_GRANT} grant"),
        ));
    }
    if params.param("request").is_some() || params.param("request_uri").is_some() {
        return Err(OAuthError::invalid_request(
            "request objects (request, request_uri) are not supported",
        ));
    }
    Ok(())
}

/// The PKCE challenge (RFC 7636 §4.3): required of every client, S256 only.
fn code_challenge(params: &AuthorizationParams) -> Result<String, OAuthError> {
    match (
        params.param("code_challenge"),
        params.param("code_challenge_method"),
    ) {
        (None, _) => Err(OAuthError::invalid_request(
            "code_challenge is required: PKCE (S256) is mandatory for every client",
        )),
        (Some(_), Some(m)) if m != pkce::S256 => Err(OAuthError::invalid_request(
            "code_challenge_method must be S256 (plain is not supported)",
        )),
        // RFC 7636 §4.3: an absent method means `plain`.
        (Some(_), None) => Err(OAuthError::invalid_request(
            "code_challenge_method=S256 is required (an absent method means plain, which is not supported)",
        )),
        (Some(c), Some(_)) if !pkce::valid_challenge(c) => Err(OAuthError::invalid_request(
            "code_challenge must be 43 base64url characters (the S256 of the verifier)",
        )),
        (Some(c), Some(_)) => Ok(c.to_string()),
    }
}
