//! The decide stage: every message of a request body — each element of a
//! batch alike, notifications included — gets its own decision, and only
//! the allowed ones are forwarded, re-serialised, each request under an id
//! the gateway assigns ([`Binding::request_id`]). A refused request is
//! answered with its JSON-RPC error; a refused notification, which nothing
//! answers (JSON-RPC 2.0 §4.1), is dropped and logged; when nothing is
//! allowed the upstream is never contacted.
//!
//! Pure: [`plan`] takes the body's bytes and a decision function, so it can
//! be driven without a network (tests, fuzzing).

use crate::authz::{self, DecisionId};
use crate::binding::Binding;
use crate::jsonrpc::{self, Call, ListKind};
use crate::message::{self, Body, Kind, Message};
use crate::refusal::{FORBIDDEN_CODE, INVALID_PARAMS_CODE, INVALID_REQUEST_CODE, Refusal};
use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;
use serde_json::value::RawValue;

/// Most messages in one batch: each costs a decision.
pub const MAX_BATCH: usize = 100;

/// A request forwarded upstream, awaiting its response.
#[derive(Debug, Clone)]
pub struct Pending {
    /// The id the upstream sees.
    pub assigned: String,
    /// The client's id, as written.
    pub original: Box<RawValue>,
    /// Set for list calls: the response must hold that list.
    pub list: Option<ListKind>,
}

/// What to do with one request body.
#[derive(Debug)]
pub struct Plan {
    /// The body was a batch: the answer is an array.
    pub batch: bool,
    /// The body is one `initialize` request (it may start a new session).
    pub initialize: bool,
    /// The JSON text to forward; `None` when nothing was allowed.
    pub forward: Option<String>,
    /// The JSON-RPC errors answering the refused requests.
    pub refusals: Vec<String>,
    /// The forwarded requests.
    pub pending: Vec<Pending>,
    /// The HTTP status when nothing is forwarded: 200 when every refusal
    /// answers a request by its id (a JSON-RPC error, which MCP clients
    /// surface as the call's error; a 4xx makes them report a transport
    /// failure instead), else 403 for a policy denial and 400 for a message
    /// that could not be put to the policies.
    pub status: StatusCode,
}

impl Plan {
    /// The gateway's own answer, when nothing is forwarded.
    pub fn answer(mut self) -> Refusal {
        let body = if self.batch && !self.refusals.is_empty() {
            format!("[{}]", self.refusals.join(","))
        } else if let Some(one) = self.refusals.pop() {
            one
        } else {
            // Only notifications, all refused: nothing to answer them with
            // but an error that names no request.
            jsonrpc::error_text(None, FORBIDDEN_CODE, "forbidden")
        };
        Refusal::Answered {
            status: self.status,
            body,
        }
    }
}

/// Asks the policies about a call that needs it ([`Call::Authorize`],
/// [`Call::Probe`]); `None`: allowed.
pub type Decide<'d> = dyn FnMut(&Call) -> Option<authz::Refusal> + 'd;

/// Decides every message of `bytes` (a request body); `extra_methods` are
/// the server's pass-through methods. Errors are the refusals of the body as
/// a whole (not JSON, not JSON-RPC, a batch too large, headers that disagree).
pub fn plan(
    bytes: &[u8],
    headers: &HeaderMap,
    extra_methods: &[String],
    binding: &Binding,
    decide: &mut Decide,
) -> Result<Plan, Refusal> {
    let text = std::str::from_utf8(bytes).map_err(|_| Refusal::ParseError)?;
    let body = Body::parse(text).ok_or(Refusal::ParseError)?;
    let mut planner = Planner {
        extra_methods,
        binding,
        decide,
        forwarded: Vec::new(),
        anonymous: false,
        plan: Plan {
            batch: matches!(body, Body::Batch(_)),
            initialize: false,
            forward: None,
            refusals: Vec::new(),
            pending: Vec::new(),
            status: StatusCode::FORBIDDEN,
        },
        denied: false,
    };
    match body {
        Body::One(text) => {
            let msg = Message::parse(text).map_err(|why| {
                if message::is_json(text) {
                    Refusal::InvalidRequest(why)
                } else {
                    Refusal::ParseError
                }
            })?;
            if !jsonrpc::headers_agree(headers, &msg.body) {
                // The id is echoed only if it is one (it must read as JSON).
                let id = msg.usable_id().ok().flatten().map(ToOwned::to_owned);
                return Err(Refusal::HeadersDisagree(id));
            }
            planner.plan.initialize = msg.method() == Some("initialize");
            planner.element(text, msg);
        }
        Body::Batch(items) if items.is_empty() => {
            return Err(Refusal::InvalidRequest("an empty batch"));
        }
        Body::Batch(items) if items.len() > MAX_BATCH => {
            return Err(Refusal::InvalidRequest("too many messages in one batch"));
        }
        Body::Batch(_) if !jsonrpc::batch_headers_absent(headers) => {
            return Err(Refusal::HeadersDisagree(None));
        }
        // Each element is forwarded inside a batch again: it must read
        // there, one level deeper than on its own.
        Body::Batch(_) if !message::readable(text) => {
            return Err(Refusal::InvalidRequest(
                "a batch nested deeper than 128 levels, or holding text that does not read as JSON",
            ));
        }
        Body::Batch(items) => {
            for item in items {
                match Message::parse(item.get()) {
                    Ok(msg) => planner.element(item.get(), msg),
                    Err(why) => planner.refuse(None, INVALID_REQUEST_CODE, why, false),
                }
            }
        }
    }
    Ok(planner.finish())
}

struct Planner<'p, 'd> {
    extra_methods: &'p [String],
    binding: &'p Binding,
    decide: &'p mut Decide<'d>,
    forwarded: Vec<String>,
    plan: Plan,
    denied: bool,
    /// A refusal answers no request (an invalid message, or none with an id).
    anonymous: bool,
}

impl Planner<'_, '_> {
    fn refuse(&mut self, id: Option<&RawValue>, code: i64, message: &str, denied: bool) {
        self.denied |= denied;
        self.anonymous |= id.is_none();
        self.plan
            .refusals
            .push(jsonrpc::error_text(id, code, message));
    }

    /// A policy denial: `forbidden`, with the id the decision was logged
    /// under (in the message for people, in `data` for programs).
    fn refuse_denied(&mut self, id: Option<&RawValue>, decision: &DecisionId) {
        self.denied = true;
        self.anonymous |= id.is_none();
        let message = format!(
            "forbidden: the gateway's policies do not allow this call (decision {decision})"
        );
        let data = serde_json::json!({ "decision_id": decision.as_str() });
        self.plan.refusals.push(jsonrpc::error_text_with_data(
            id,
            FORBIDDEN_CODE,
            &message,
            &data,
        ));
    }

    fn element(&mut self, text: &str, mut msg: Message) {
        let kind = match msg.kind() {
            Ok(kind) => kind,
            Err(why) => return self.refuse(None, INVALID_REQUEST_CODE, why, false),
        };
        let call = jsonrpc::classify(&msg.body, self.extra_methods);
        let refusal = match &call {
            Call::Pass | Call::List(_) => None,
            Call::Authorize(..) | Call::Probe(..) => (self.decide)(&call),
            Call::Invalid(why) => Some(authz::Refusal::BadArguments(why.to_string())),
            Call::Deny(why) => {
                let id = DecisionId::new();
                tracing::info!(reason = why, decision_id = %id, "request refused by the gateway");
                Some(authz::Refusal::Denied(id))
            }
        };
        let list = match call {
            Call::List(kind) => Some(kind),
            _ => None,
        };
        match (refusal, kind, msg.id) {
            (None, Kind::Request, Some(id)) => {
                let assigned = self.binding.request_id(id);
                // Assigned ids are base64url and dots: quoting makes them JSON.
                let Ok(quoted) = RawValue::from_string(format!("\"{assigned}\"")) else {
                    return self.refuse(Some(id), INVALID_REQUEST_CODE, "unusable id", false);
                };
                self.forwarded.push(msg.to_text(Some(&quoted)));
                self.plan.pending.push(Pending {
                    assigned,
                    original: id.to_owned(),
                    list,
                });
            }
            (None, Kind::Notification, _) => {
                if msg.method() == Some("notifications/cancelled") {
                    self.rename_cancelled(text, &mut msg);
                }
                self.forwarded.push(msg.to_text(None));
            }
            (None, _, id) => self.forwarded.push(msg.to_text(id)),
            (Some(_), Kind::Notification, _) => {
                self.denied = true;
                tracing::info!(
                    method = msg.method().unwrap_or_default(),
                    "refused notification dropped: it never reaches the upstream"
                );
            }
            (Some(authz::Refusal::Denied(decision)), _, id) => {
                self.refuse_denied(id, &decision);
            }
            (Some(authz::Refusal::BadArguments(why)), _, id) => {
                self.refuse(id, INVALID_PARAMS_CODE, &why, false);
            }
        }
    }

    /// A cancellation names the request by the client's id; the upstream
    /// knows it by the id the gateway assigned.
    fn rename_cancelled(&self, text: &str, msg: &mut Message) {
        let Some(id) = message::cancelled_request_id(text) else {
            return;
        };
        let probe = Message {
            id: Some(id),
            body: Value::Null,
        };
        if let Ok(Some(id)) = probe.usable_id()
            && let Some(params) = msg.body.get_mut("params").and_then(Value::as_object_mut)
        {
            params.insert(
                "requestId".into(),
                Value::String(self.binding.request_id(id)),
            );
        }
    }

    fn finish(mut self) -> Plan {
        if !self.forwarded.is_empty() {
            self.plan.forward = Some(if self.plan.batch {
                format!("[{}]", self.forwarded.join(","))
            } else {
                self.forwarded.join("")
            });
        }
        self.plan.status = if !self.plan.refusals.is_empty() && !self.anonymous {
            StatusCode::OK
        } else if self.denied {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::BAD_REQUEST
        };
        self.plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mac::SessionKey;

    fn run(body: &str, deny: &[&str]) -> Plan {
        let binding = Binding::new(SessionKey::from_bytes(&[1; 32]).unwrap(), "s", "p");
        let mut decide = |call: &Call| match call {
            Call::Authorize(_, name, _) if deny.contains(name) => {
                Some(authz::Refusal::Denied(authz::DecisionId::new()))
            }
            _ => None,
        };
        plan(
            body.as_bytes(),
            &HeaderMap::new(),
            &[],
            &binding,
            &mut decide,
        )
        .unwrap()
    }

    #[test]
    fn a_denied_notification_in_a_batch_is_dropped_and_the_rest_is_reserialised() {
        let p = run(
            r#"[{"jsonrpc":"2.0","method":"tools/call","params":{"name":"rm"}},
                {"jsonrpc":"2.0","id":1e0,"method":"ping"}]"#,
            &["rm"],
        );
        let forward = p.forward.unwrap();
        assert!(!forward.contains("rm"), "{forward}");
        let sent: Vec<Value> = serde_json::from_str(&forward).unwrap();
        assert_eq!(sent.len(), 1);
        assert_eq!(p.pending.len(), 1);
        assert_eq!(sent[0]["id"], p.pending[0].assigned.as_str());
        assert_eq!(p.pending[0].original.get(), "1e0");
        assert!(p.refusals.is_empty());
    }

    #[test]
    fn nothing_allowed_means_nothing_forwarded() {
        let p = run(
            r#"[{"jsonrpc":"2.0","method":"tools/call","params":{"name":"rm"}}]"#,
            &["rm"],
        );
        assert!(p.forward.is_none());
        assert_eq!(
            p.status,
            StatusCode::FORBIDDEN,
            "a notification: no one to answer"
        );
        let p = run(
            r#"{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"rm"}}"#,
            &["rm"],
        );
        assert!(p.forward.is_none());
        assert_eq!(p.refusals.len(), 1);
        assert_eq!(p.status, StatusCode::OK, "a request is answered by its id");
        let answer: Value = serde_json::from_str(&p.refusals[0]).unwrap();
        assert_eq!(answer["id"], "a");
        assert_eq!(answer["error"]["code"], FORBIDDEN_CODE);
        let decision = answer["error"]["data"]["decision_id"].as_str().unwrap();
        assert!(
            decision.starts_with("d_") && decision.len() == 14,
            "{decision}"
        );
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(decision), "{message}");
    }

    /// Found by the `jsonrpc_batch` fuzz target: an element nested 128 deep
    /// parses on its own but not inside the batch it is forwarded in, and a
    /// response's id with an unpaired surrogate escape was passed on as
    /// written. Neither may be forwarded as text the upstream cannot read.
    #[test]
    fn what_is_forwarded_always_reads_as_json() {
        let binding = Binding::new(SessionKey::from_bytes(&[1; 32]).unwrap(), "s", "p");
        let mut allow = |_: &Call| None;
        let deep = format!(
            r#"[{{"jsonrpc":"2.0","method":"x","params":{}1{}}}]"#,
            "[".repeat(126),
            "]".repeat(126)
        );
        let refused = plan(
            deep.as_bytes(),
            &HeaderMap::new(),
            &[],
            &binding,
            &mut allow,
        );
        assert!(matches!(refused, Err(Refusal::InvalidRequest(_))));
        let lone = r#"{"jsonrpc":"2.0","id":"\udc00","result":{}}"#;
        let p = plan(
            lone.as_bytes(),
            &HeaderMap::new(),
            &[],
            &binding,
            &mut allow,
        )
        .unwrap();
        assert!(p.forward.is_none());
        assert_eq!(p.status, StatusCode::BAD_REQUEST);
        let fine = r#"[{"jsonrpc":"2.0","id":"\ud83d\ude00","result":{}}]"#;
        let p = plan(
            fine.as_bytes(),
            &HeaderMap::new(),
            &[],
            &binding,
            &mut allow,
        )
        .unwrap();
        let forwarded: Value = serde_json::from_str(&p.forward.unwrap()).unwrap();
        assert_eq!(forwarded[0]["id"], "\u{1f600}");
    }

    /// `Mcp-Method`/`Mcp-Name` go upstream as sent: a second value, one that
    /// is not text, or either on a batch (which names no one method) would
    /// reach the upstream undecided, so each is refused.
    #[test]
    fn mcp_headers_twice_not_text_or_on_a_batch_are_refused() {
        use axum::http::HeaderValue;
        let key = crate::mac::SessionKey::from_bytes(&[3; 32]).unwrap();
        let binding = Binding::new(key, "s", "p");
        let one = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ok"}}"#;
        let plan_with = |body: &[u8], headers: &HeaderMap| {
            let mut allow = |_: &Call| None;
            super::plan(body, headers, &[], &binding, &mut allow)
        };
        let mut twice = HeaderMap::new();
        twice.append("mcp-name", HeaderValue::from_static("ok"));
        twice.append("mcp-name", HeaderValue::from_static("secret"));
        assert!(matches!(
            plan_with(one, &twice),
            Err(Refusal::HeadersDisagree(_))
        ));
        let mut opaque = HeaderMap::new();
        opaque.append("mcp-name", HeaderValue::from_bytes(b"ok\xff").unwrap());
        assert!(matches!(
            plan_with(one, &opaque),
            Err(Refusal::HeadersDisagree(_))
        ));
        let mut single = HeaderMap::new();
        single.append("mcp-name", HeaderValue::from_static("ok"));
        assert!(plan_with(one, &single).is_ok());
        let batch = br#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#;
        assert!(matches!(
            plan_with(batch, &single),
            Err(Refusal::HeadersDisagree(None))
        ));
        assert!(plan_with(batch, &HeaderMap::new()).is_ok());
    }
}
