//! Browser origins (`gateway.allowed_origins`, docs/decisions.md "Gateway").

use axum::Router;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use std::sync::Arc;

/// CORS for browser-based MCP clients, and refusal (403) of requests whose
/// `Origin` is not allowed (`gateway.allowed_origins`, docs/decisions.md
/// "Gateway").
pub(crate) fn with_origin_policy(app: Router, allowed: &[String]) -> Result<Router, String> {
    use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};
    let any = allowed.iter().any(|o| o == "*");
    let origins: Vec<HeaderValue> = allowed
        .iter()
        .filter(|o| *o != "*")
        .map(|o| HeaderValue::from_str(o).map_err(|_| format!("invalid origin {o:?}")))
        .collect::<Result<_, _>>()?;
    let cors = CorsLayer::new()
        .allow_origin(if any {
            AllowOrigin::any()
        } else {
            AllowOrigin::list(origins.clone())
        })
        .allow_methods([Method::GET, Method::POST, Method::DELETE])
        // Mcp-* headers and Last-Event-ID: mirror what the browser asks for.
        .allow_headers(AllowHeaders::mirror_request())
        .expose_headers([
            header::WWW_AUTHENTICATE,
            HeaderName::from_static("mcp-session-id"),
            HeaderName::from_static("mcp-protocol-version"),
        ]);
    let origins = Arc::new(origins);
    let check = axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            let origins = origins.clone();
            async move {
                if let Some(origin) = req.headers().get(header::ORIGIN)
                    && !any
                    && !origins.iter().any(|o| o == origin)
                {
                    let body = serde_json::json!({"error": "forbidden", "error_description": "origin not allowed"});
                    let mut resp =
                        axum::response::Response::new(axum::body::Body::from(body.to_string()));
                    *resp.status_mut() = StatusCode::FORBIDDEN;
                    resp.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    );
                    return resp;
                }
                next.run(req).await
            }
        },
    );
    Ok(app.layer(check).layer(cors))
}
