//! Filtering list responses item by item, in JSON bodies and inside SSE
//! streams (event by event, as they flow).

use crate::authz::{Action, Policies};
use crate::jsonrpc::{ListKind, filter_list};
use crate::verify::VerifiedToken;
use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::Response;
use futures_util::StreamExt;
use serde_json::Value;
use std::sync::Arc;

/// Largest JSON response body buffered for filtering.
pub const MAX_FILTERED_BYTES: usize = 16 * 1024 * 1024;

/// Which pending requests (by JSON-RPC id) are list calls.
pub type Pending = Vec<(Value, ListKind)>;

pub struct Filter {
    pub pending: Pending,
    /// Responses to merge into the answer (denied elements of a batch).
    pub extra: Vec<Value>,
    pub token: Arc<VerifiedToken>,
    pub policies: Arc<Policies>,
    pub server: String,
}

impl Filter {
    fn apply(&self, msg: &mut Value) {
        let Some(id) = msg.get("id") else { return };
        let Some((_, kind)) = self.pending.iter().find(|(pid, _)| pid == id) else {
            return;
        };
        let allowed = |action: Action, name: &str| {
            self.policies
                .may_allow(&self.token, &self.server, action, name)
        };
        filter_list(msg, *kind, &allowed);
    }

    /// Filters one JSON-RPC payload (a message or a batch); `None` if not JSON.
    fn apply_text(&self, text: &str) -> Option<String> {
        let mut v: Value = serde_json::from_str(text).ok()?;
        match &mut v {
            Value::Array(items) => items.iter_mut().for_each(|m| self.apply(m)),
            m => self.apply(m),
        }
        serde_json::to_string(&v).ok()
    }

    /// Rewrites one SSE event, filtering its `data:` payload.
    fn apply_event(&self, event: &str) -> String {
        let mut data = Vec::new();
        let mut other = Vec::new();
        for line in event.lines() {
            match line.strip_prefix("data:") {
                Some(d) => data.push(d.strip_prefix(' ').unwrap_or(d)),
                None => other.push(line),
            }
        }
        if data.is_empty() {
            return format!("{event}\n\n");
        }
        let Some(filtered) = self.apply_text(&data.join("\n")) else {
            return format!("{event}\n\n");
        };
        let mut out = String::new();
        for line in other {
            out.push_str(line);
            out.push('\n');
        }
        out.push_str("data: ");
        out.push_str(&filtered);
        out.push_str("\n\n");
        out
    }

    /// Merges the extra responses into a JSON answer (a batch answer is an
    /// array; an upstream that answered only notifications said 202).
    fn merge(&self, answer: Option<Value>) -> Value {
        let mut items = match answer {
            Some(Value::Array(a)) => a,
            Some(v) => vec![v],
            None => Vec::new(),
        };
        items.extend(self.extra.iter().cloned());
        Value::Array(items)
    }

    pub async fn response(self, resp: Response) -> Response {
        if !self.extra.is_empty() && resp.status() == axum::http::StatusCode::ACCEPTED {
            let (mut parts, _) = resp.into_parts();
            parts.status = axum::http::StatusCode::OK;
            parts.headers.remove(header::CONTENT_LENGTH);
            parts.headers.insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/json"),
            );
            return Response::from_parts(parts, Body::from(self.merge(None).to_string()));
        }
        let content_type = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let (mut parts, body) = resp.into_parts();
        if content_type.starts_with("application/json") {
            let Ok(bytes) = axum::body::to_bytes(body, MAX_FILTERED_BYTES).await else {
                return crate::proxy::upstream_error();
            };
            let text = String::from_utf8_lossy(&bytes);
            let mut out = self.apply_text(&text).unwrap_or_else(|| text.into_owned());
            if !self.extra.is_empty()
                && let Ok(v) = serde_json::from_str::<Value>(&out)
            {
                out = self.merge(Some(v)).to_string();
            }
            parts.headers.remove(header::CONTENT_LENGTH);
            return Response::from_parts(parts, Body::from(out));
        }
        if content_type.starts_with("text/event-stream") {
            parts.headers.remove(header::CONTENT_LENGTH);
            // Denied batch elements are answered first, as their own event.
            let first = if self.extra.is_empty() {
                String::new()
            } else {
                format!(
                    "event: message\ndata: {}\n\n",
                    Value::Array(self.extra.clone())
                )
            };
            let filter = Arc::new(self);
            // Bytes are buffered until an event is complete, so a character
            // split across chunks is never decoded in halves. SSE carries CR
            // only in line endings, so dropping it normalises CRLF to LF.
            let mut buffer: Vec<u8> = Vec::new();
            let mut first_pending = first;
            let stream = body.into_data_stream().map(move |chunk| {
                let chunk = chunk.map_err(std::io::Error::other)?;
                buffer.extend(chunk.iter().copied().filter(|b| *b != b'\r'));
                if buffer.len() > MAX_FILTERED_BYTES {
                    return Err(std::io::Error::other("SSE event too large to filter"));
                }
                let mut out = std::mem::take(&mut first_pending);
                while let Some(end) = buffer.windows(2).position(|w| w == b"\n\n") {
                    let event: Vec<u8> = buffer.drain(..end + 2).collect();
                    let event = String::from_utf8_lossy(&event[..end]);
                    out.push_str(&filter.apply_event(&event));
                }
                Ok::<Bytes, std::io::Error>(Bytes::from(out))
            });
            return Response::from_parts(parts, Body::from_stream(stream));
        }
        Response::from_parts(parts, body)
    }
}
