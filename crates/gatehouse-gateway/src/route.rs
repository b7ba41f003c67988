//! One fronted MCP server: its configuration, policies, session key and
//! verifier, the RFC 6750 challenges it answers and its RFC 9728
//! protected-resource metadata.

use crate::mac::SessionKey;
use crate::refusal::Refusal;
use crate::verify::Verifier;
use crate::{ServerConfig, authz};
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use std::sync::{Arc, RwLock};

pub(crate) struct Route {
    pub(crate) server: ServerConfig,
    /// `server.upstream`, parsed once.
    pub(crate) upstream: reqwest::Url,
    pub(crate) policies: RwLock<Arc<authz::Policies>>,
    /// Binds session, request and event ids to callers.
    pub(crate) session_key: SessionKey,
    pub(crate) metadata_url: String,
    pub(crate) verifier: Verifier,
    /// The instant cut-off, when enabled.
    pub(crate) token_status: Option<Arc<crate::revocation::StatusCache>>,
    pub(crate) http: crate::proxy::Upstream,
    pub(crate) issuer: String,
}

/// RFC 9728 §3.1: the metadata URL inserts the well-known segment before the
/// resource's path.
pub(crate) fn metadata_url(resource: &str) -> Result<String, String> {
    let url = url::Url::parse(resource).map_err(|e| format!("resource {resource:?}: {e}"))?;
    let path = url.path().trim_end_matches('/');
    Ok(format!(
        "{}/.well-known/oauth-protected-resource{path}",
        url.origin().ascii_serialization()
    ))
}

fn quoted(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

impl Route {
    /// RFC 6750 §3 / MCP authorization: where to get a token and what for.
    pub(crate) fn challenge(&self, error: Option<&str>) -> String {
        let mut c = format!(
            "Bearer resource_metadata=\"{}\"",
            quoted(&self.metadata_url)
        );
        if !self.server.required_scopes.is_empty() {
            c.push_str(&format!(
                ", scope=\"{}\"",
                quoted(&self.server.required_scopes.join(" "))
            ));
        }
        if let Some(e) = error {
            c.push_str(&format!(", error=\"{e}\""));
        }
        c
    }

    /// The policies in force now; a request keeps them to its end.
    pub(crate) fn policies(&self) -> Result<Arc<authz::Policies>, Refusal> {
        self.policies.read().map(|p| p.clone()).map_err(|_| {
            tracing::error!("the policies cannot be read");
            Refusal::Internal
        })
    }

    /// The protected-resource metadata (RFC 9728 §2). The same document
    /// answers at the root well-known path when one server is fronted: its
    /// `resource` is then the server's URL, not the origin, which RFC 9728
    /// §3.3 would want — MCP clients look there for a lone server
    /// (docs/gateway.md "Discovery").
    pub(crate) fn metadata(&self) -> serde_json::Value {
        let mut doc = serde_json::json!({
            "resource": self.server.resource,
            "authorization_servers": [self.issuer],
            "bearer_methods_supported": ["header"],
            "resource_name": self.server.title,
        });
        if !self.server.required_scopes.is_empty() {
            doc["scopes_supported"] = self.server.required_scopes.clone().into();
        }
        doc
    }
}

pub(crate) async fn metadata(State(route): State<Arc<Route>>) -> Response {
    let mut resp = Response::new(Body::from(route.metadata().to_string()));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    resp
}
