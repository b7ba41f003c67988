//! Discovery documents (RFC 8414, OpenID Connect Discovery) and the JWKS.
//! Metadata is computed once at start (it changes only with configuration);
//! the JWKS is rendered once per version of the key set, since keys rotate
//! while the server runs.

use crate::respond::{PUBLIC_CACHE, bytes_response};
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::response::Response;
use gatehouse_oauth::AuthorizationServer;
use gatehouse_oauth::keys::keyset::KeySet;
use std::sync::RwLock;

/// Pre-rendered bodies, so serving metadata or keys costs no serialisation.
pub struct Documents {
    pub metadata: Bytes,
    /// The JWKS body and the key-set version it was rendered from.
    jwks: RwLock<(u64, Bytes)>,
}

fn render_jwks(set: &KeySet) -> Bytes {
    Bytes::from(serde_json::to_vec(&set.jwks()).unwrap_or_default())
}

impl Documents {
    pub fn render(server: &AuthorizationServer) -> Documents {
        let set = server.keys.snapshot();
        Documents {
            metadata: Bytes::from(serde_json::to_vec(&server.metadata()).unwrap_or_default()),
            jwks: RwLock::new((set.version, render_jwks(&set))),
        }
    }

    /// The JWKS (RFC 7517 §5) of the server's key set as it is now: every
    /// pending, current and previous key. Rendered the first time a version
    /// is asked for; later requests clone the bytes.
    pub fn jwks(&self, server: &AuthorizationServer) -> Bytes {
        let set = server.keys.snapshot();
        if let Ok(cached) = self.jwks.read()
            && cached.0 == set.version
        {
            return cached.1.clone();
        }
        let body = render_jwks(&set);
        if let Ok(mut cached) = self.jwks.write()
            && cached.0 < set.version
        {
            *cached = (set.version, body.clone());
        }
        body
    }
}

pub fn cached_json(body: &Bytes) -> Response {
    bytes_response(StatusCode::OK, body.clone(), PUBLIC_CACHE)
}
