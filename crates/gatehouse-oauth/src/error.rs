//! The one protocol error type (docs/decisions.md "Principles").
//!
//! Every failure a client can cause is an [`OAuthError`] carrying a code from
//! RFC 6749 §5.2, RFC 7591 §3.2.2 or RFC 6750 §3 and a human-readable
//! description. The HTTP status is derived from the code in exactly one place
//! ([`ErrorCode::status`]). Internal failures are `server_error` with no detail:
//! the cause is logged once where it happened, never sent to the client.

use serde::Serialize;
use std::fmt;

/// Error codes from RFC 6749 §5.2, RFC 8707 §2, RFC 7591 §3.2.2 and RFC 6750 §3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    InvalidScope,
    /// RFC 8707 §2.
    InvalidTarget,
    /// RFC 7591 §3.2.2.
    InvalidClientMetadata,
    /// RFC 7591 §3.2.2.
    InvalidRedirectUri,
    /// RFC 6750 §3.1 (also used for a bad initial access token, RFC 7591 §3).
    InvalidToken,
    /// RFC 6749 §4.1.2.1: only `code` exists here.
    UnsupportedResponseType,
    /// RFC 6749 §4.1.2.1: the person declined.
    AccessDenied,
    /// RFC 6750 §3.1: the token lacks a scope the endpoint needs (403).
    InsufficientScope,
    /// OIDC Core §3.1.2.6 authorization errors (`login_required`,
    /// `consent_required`), only ever redirected.
    Oidc(&'static str),
    /// Too many requests from one source (no RFC code; answered with 429).
    SlowDown,
    TemporarilyUnavailable,
    ServerError,
}

impl ErrorCode {
    /// The HTTP status for this code (RFC 6749 §5.2: 400 except `invalid_client`,
    /// which is 401 when the client tried to authenticate).
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::InvalidClient | ErrorCode::InvalidToken => 401,
            ErrorCode::SlowDown => 429,
            ErrorCode::InsufficientScope | ErrorCode::AccessDenied => 403,
            ErrorCode::TemporarilyUnavailable => 503,
            ErrorCode::ServerError => 500,
            _ => 400,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::InvalidScope => "invalid_scope",
            ErrorCode::InvalidTarget => "invalid_target",
            ErrorCode::InvalidClientMetadata => "invalid_client_metadata",
            ErrorCode::InvalidRedirectUri => "invalid_redirect_uri",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::UnsupportedResponseType => "unsupported_response_type",
            ErrorCode::AccessDenied => "access_denied",
            ErrorCode::InsufficientScope => "insufficient_scope",
            ErrorCode::Oidc(code) => code,
            ErrorCode::SlowDown => "slow_down",
            ErrorCode::TemporarilyUnavailable => "temporarily_unavailable",
            ErrorCode::ServerError => "server_error",
        }
    }
}

/// How the client should be challenged on a 401 (RFC 6749 §5.2, RFC 6750 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Challenge {
    None,
    /// The client used HTTP Basic: answer `WWW-Authenticate: Basic`.
    Basic,
    /// Bearer-protected endpoint (registration with an initial access token).
    Bearer,
    /// Bearer-protected endpoint, and the request carried no credentials:
    /// RFC 6750 §3.1 says the challenge then names no error.
    BearerWithoutError,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub code: ErrorCode,
    pub description: String,
    pub challenge: Challenge,
    /// Seconds after which a retry may succeed (`Retry-After`), for refusals
    /// that pass by themselves: a store outage, a concurrent change.
    pub retry_after: Option<u32>,
    /// The store failure behind a `server_error` or `temporarily_unavailable`,
    /// for the operator's log; never sent to the client. The conversion from
    /// [`StoreError`] only records it: whoever answers the request logs it
    /// (the HTTP crates' error mapping, the CLI's error message).
    pub cause: Option<String>,
}

/// `Retry-After` while the store is unreachable: outages are usually a
/// failover or a restart, so clients should come back soon.
pub const STORE_RETRY_AFTER_SECS: u32 = 5;

impl OAuthError {
    pub fn new(code: ErrorCode, description: impl Into<String>) -> Self {
        OAuthError {
            code,
            description: description.into(),
            challenge: Challenge::None,
            retry_after: None,
            cause: None,
        }
    }

    /// The store cannot be reached (or is too stale to trust): 503, retry soon.
    pub fn store_unavailable() -> Self {
        Self::new(
            ErrorCode::TemporarilyUnavailable,
            "the server is temporarily unable to handle the request",
        )
        .with_retry_after(STORE_RETRY_AFTER_SECS)
    }

    pub fn invalid_request(d: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, d)
    }

    /// The single answer for every client-authentication failure, so that an
    /// unknown client, a wrong secret and an expired secret are indistinguishable.
    /// Always carries the Basic challenge: RFC 7235 §3.1 requires one on
    /// every 401, and Basic is the method RFC 6749 §2.3.1 makes mandatory.
    pub fn invalid_client() -> Self {
        Self::new(ErrorCode::InvalidClient, "client authentication failed")
            .with_challenge(Challenge::Basic)
    }

    pub fn invalid_metadata(d: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidClientMetadata, d)
    }

    /// An internal failure: the caller logs the cause; the client learns nothing.
    pub fn server_error() -> Self {
        Self::new(ErrorCode::ServerError, "internal server error")
    }

    pub fn with_challenge(mut self, challenge: Challenge) -> Self {
        self.challenge = challenge;
        self
    }

    /// A Bearer challenge for a request that presented `token`: with the
    /// error code, or without one when nothing was presented (RFC 6750 §3.1).
    pub fn with_bearer_challenge(self, token: Option<&str>) -> Self {
        self.with_challenge(match token {
            Some(t) if !t.is_empty() => Challenge::Bearer,
            _ => Challenge::BearerWithoutError,
        })
    }

    pub fn with_retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// The JSON body sent to the client.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({
            "error": self.code.as_str(),
            "error_description": self.description,
        })
    }
}

impl fmt::Display for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.description)
    }
}

impl std::error::Error for OAuthError {}

/// Failures of the storage layer; never shown to clients.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("corrupt record: {0}")]
    Corrupt(String),
}

impl From<StoreError> for OAuthError {
    fn from(e: StoreError) -> Self {
        let mut error = match e {
            StoreError::Unavailable(_) => OAuthError::store_unavailable(),
            _ => OAuthError::server_error(),
        };
        error.cause = Some(e.to_string());
        error
    }
}

impl OAuthError {
    /// The description, followed by the store failure behind it if any: for
    /// the command line, where the operator is the reader.
    pub fn detail(&self) -> String {
        match &self.cause {
            Some(cause) => format!("{}: {}", self.description, cause),
            None => self.description.clone(),
        }
    }
}
