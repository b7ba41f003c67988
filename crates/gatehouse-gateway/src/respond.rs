//! The filter stage over HTTP: the upstream's response — a JSON body, an
//! SSE stream, nothing — goes through [`Answers`] before the client sees it,
//! and its `Mcp-Session-Id` is bound to the caller. A body that is neither
//! JSON nor SSE cannot be checked, so it never passes.

use crate::filter::{Answers, MAX_FILTERED_BYTES};
use crate::proxy::SESSION_HEADER;
use crate::refusal::Refusal;
use crate::sse;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use futures_util::StreamExt;

/// The client sees the upstream's session id bound to itself.
fn bind_session(headers: &mut HeaderMap, answers: &Answers) -> Result<(), Refusal> {
    let Some(upstream) = headers.remove(SESSION_HEADER) else {
        return Ok(());
    };
    let bound = upstream
        .to_str()
        .ok()
        .and_then(|id| answers.binding().session_id(id))
        .and_then(|id| HeaderValue::from_str(&id).ok());
    let Some(bound) = bound else {
        tracing::warn!(
            "the upstream's session id is unusable (not 1 to 256 visible ASCII characters)"
        );
        return Err(Refusal::Upstream);
    };
    headers.insert(SESSION_HEADER, bound);
    Ok(())
}

/// Filters `resp`; `refusals` (the gateway's answers to refused batch
/// elements) are merged into it, and a batch is answered with an array.
pub(crate) async fn respond(
    resp: Response,
    mut answers: Answers,
    refusals: Vec<String>,
    batch: bool,
) -> Result<Response, Refusal> {
    let (mut parts, body) = resp.into_parts();
    bind_session(&mut parts.headers, &answers)?;
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    parts.headers.remove(header::CONTENT_LENGTH);
    if content_type.starts_with("text/event-stream") {
        // Refused batch elements are answered first, each as its own event.
        let mut first = Vec::new();
        for text in refusals {
            sse::Event {
                data: Some(text.into_bytes()),
                ..sse::Event::default()
            }
            .write(&mut first);
        }
        let stream = filtered_stream(body, answers, first);
        return Ok(Response::from_parts(parts, Body::from_stream(stream)));
    }
    let Ok(bytes) = axum::body::to_bytes(body, MAX_FILTERED_BYTES).await else {
        tracing::warn!("the upstream's answer is too large to check, or broke off");
        return Err(Refusal::Upstream);
    };
    let empty = bytes.iter().all(u8::is_ascii_whitespace);
    if !content_type.starts_with("application/json") && !empty {
        tracing::warn!(
            content_type,
            "the upstream answered neither JSON nor SSE; withheld"
        );
        return Err(Refusal::Upstream);
    }
    // Only notifications went upstream (202), but refused requests must
    // still be answered.
    if parts.status == StatusCode::ACCEPTED && !refusals.is_empty() {
        parts.status = StatusCode::OK;
    }
    Ok(match answers.json_body(&bytes, refusals, batch) {
        Some(text) => {
            parts.headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            Response::from_parts(parts, Body::from(text))
        }
        None => Response::from_parts(parts, Body::empty()),
    })
}

/// The SSE stream as the client gets it: framed, each event filtered, as
/// the upstream writes it (never buffered whole).
fn filtered_stream(
    body: Body,
    answers: Answers,
    first: Vec<u8>,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send {
    struct State {
        body: axum::body::BodyDataStream,
        answers: Answers,
        framer: sse::Framer,
        first: Vec<u8>,
    }
    let state = State {
        body: body.into_data_stream(),
        answers,
        framer: sse::Framer::new(),
        first,
    };
    futures_util::stream::unfold(Some(state), |state| async move {
        let mut st = state?;
        if !st.first.is_empty() {
            let first = std::mem::take(&mut st.first);
            return Some((Ok(Bytes::from(first)), Some(st)));
        }
        loop {
            let mut out = Vec::new();
            match st.body.next().await {
                Some(Ok(chunk)) => {
                    let State {
                        answers, framer, ..
                    } = &mut st;
                    if answers.sse_chunk(framer, &chunk, &mut out).is_err() {
                        return Some((Ok(Bytes::from(out)), None));
                    }
                    if !out.is_empty() {
                        return Some((Ok(Bytes::from(out)), Some(st)));
                    }
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "the upstream's stream broke off");
                    st.answers.broken(&mut out);
                    return Some((Ok(Bytes::from(out)), None));
                }
                None => return None,
            }
        }
    })
}
