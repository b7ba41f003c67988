//! Discovery documents (RFC 8414, OpenID Connect Discovery) and the JWKS.
//! All are computed once at start: they change only with configuration or keys.

use crate::respond::{PUBLIC_CACHE, bytes_response};
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::Response;
use gatehouse_oauth::AuthorizationServer;

/// Pre-rendered bodies, so serving metadata costs no serialisation.
pub struct Documents {
    pub metadata: Bytes,
    pub jwks: Bytes,
}

impl Documents {
    pub fn render(server: &AuthorizationServer) -> Documents {
        Documents {
            metadata: Bytes::from(serde_json::to_vec(&server.metadata()).unwrap_or_default()),
            jwks: Bytes::from(serde_json::to_vec(&server.keys.jwks()).unwrap_or_default()),
        }
    }
}

pub fn cached_json(body: &Bytes) -> Response {
    bytes_response(StatusCode::OK, body.clone(), PUBLIC_CACHE)
}
