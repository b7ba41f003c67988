//! The MCP endpoint, in stages: **parse** (which exchange: POST carries
//! JSON-RPC messages, GET opens or resumes the server's SSE stream, DELETE
//! ends a session; any other method is 405), authenticate the caller,
//! **decide** every message ([`crate::plan`]), **forward** what is allowed
//! ([`crate::proxy`]), **filter** what comes back ([`crate::respond`]).
//! Every way out that is not the upstream's answer is a [`Refusal`].

use crate::binding::{Binding, principal_key};
use crate::filter::{Allowed, Answers};
use crate::jsonrpc::Call;
use crate::proxy::{Outbound, SESSION_HEADER};
use crate::refusal::Refusal;
use crate::route::Route;
use crate::{authz, caller, plan, proxy, respond};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri, header};
use axum::response::Response;
use std::sync::Arc;

/// Largest request body passed upstream.
pub const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;

pub(crate) async fn handle(
    State(route): State<Arc<Route>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match exchange(&route, method, &uri, &headers, body).await {
        Ok(resp) => resp,
        Err(refusal) => refusal.render(|error| route.challenge(error)),
    }
}

async fn exchange(
    route: &Route,
    method: Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, Refusal> {
    // Parse: only the methods of Streamable HTTP reach an upstream.
    if !matches!(method, Method::POST | Method::GET | Method::DELETE) {
        return Err(Refusal::MethodNotAllowed);
    }
    let token = caller::authenticate(route, uri, headers).await?;
    let binding = Binding::new(
        route.session_key.clone(),
        &route.server.resource,
        &principal_key(&token.principal),
    );
    let policies = route.policies()?;
    let server = route.server.name.clone();
    let allowed: Allowed = {
        let (policies, token) = (policies.clone(), token.clone());
        Arc::new(move |action, name| policies.may_allow(&token, &server, action, name))
    };
    if method != Method::POST {
        no_body(headers, body).await?;
        let session = upstream_session(headers, &binding, false)?;
        let last_event = match (&method, headers.get("last-event-id")) {
            (&Method::GET, Some(id)) => Some(
                id.to_str()
                    .ok()
                    .and_then(|id| binding.upstream_event(id))
                    .ok_or(Refusal::UnknownEvent)?,
            ),
            _ => None,
        };
        let out = Outbound {
            method,
            session,
            last_event,
            body: None,
        };
        let resp = proxy::forward(&route.http, &route.upstream, headers, out).await?;
        return respond::respond(resp, Answers::stream(binding, allowed), Vec::new(), false).await;
    }
    let bytes = read_body(body).await?;
    // Decide.
    let name = &route.server.name;
    let mut plan = plan::plan(
        &bytes,
        headers,
        &route.server.allowed_methods,
        &binding,
        &mut |call: &Call| match *call {
            Call::Authorize(action, item, arguments) => {
                policies.check(&token, name, action, item, arguments).err()
            }
            Call::Probe(action, item) => policies
                .probe(&token, name, action, item)
                .err()
                .map(authz::Refusal::Denied),
            _ => None,
        },
    )?;
    let session = upstream_session(headers, &binding, plan.initialize)?;
    let Some(body) = plan.forward.take() else {
        return Err(plan.answer());
    };
    // Forward.
    let out = Outbound {
        method,
        session,
        last_event: None,
        body: Some(body),
    };
    let resp = proxy::forward(&route.http, &route.upstream, headers, out).await?;
    // Filter.
    let answers = Answers::post(binding, allowed, plan.pending);
    respond::respond(resp, answers, plan.refusals, plan.batch).await
}

async fn read_body(body: Body) -> Result<Bytes, Refusal> {
    axum::body::to_bytes(body, MAX_REQUEST_BYTES)
        .await
        .map_err(|e| {
            // The listener's `[limits] request_body_timeout` cut the body off.
            if crate::deadlines::body_timed_out(&e) {
                Refusal::BodyTimeout
            } else {
                Refusal::TooLarge
            }
        })
}

/// GET and DELETE carry no body (Streamable HTTP): one that does is refused
/// rather than forwarded undecided.
async fn no_body(headers: &HeaderMap, body: Body) -> Result<(), Refusal> {
    let declared = headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0");
    if declared {
        return Err(Refusal::BodyNotAllowed);
    }
    match axum::body::to_bytes(body, 0).await {
        Ok(bytes) if bytes.is_empty() => Ok(()),
        _ => Err(Refusal::BodyNotAllowed),
    }
}

/// The upstream's session id inside the caller's `Mcp-Session-Id`. An id
/// not bound to this caller here — another principal's, made up, or bound
/// under another key — is answered 404, as if the session did not exist,
/// except on `initialize`, which starts a new one (the stale id is not
/// forwarded).
fn upstream_session<'h>(
    headers: &'h HeaderMap,
    binding: &Binding,
    initialize: bool,
) -> Result<Option<&'h str>, Refusal> {
    let Some(presented) = headers.get(SESSION_HEADER) else {
        return Ok(None);
    };
    match presented
        .to_str()
        .ok()
        .and_then(|id| binding.upstream_session(id))
    {
        Some(upstream) => Ok(Some(upstream)),
        None if initialize => Ok(None),
        None => {
            tracing::info!("a session id not bound to this caller was refused");
            Err(Refusal::SessionNotFound)
        }
    }
}
