//! The filter stage: every message the upstream sends — in a JSON body, in
//! the SSE stream answering a POST, on a GET stream, on a resumed stream —
//! passes [`Answers::message`] before the client sees it:
//!
//! - every list in a `result` (`tools`, `prompts`, `resources`,
//!   `resourceTemplates`) keeps only what the policies may allow, whatever
//!   request it answers, so a stream where the request is not known is
//!   filtered the same way;
//! - a response's id must be one the gateway assigned to this caller
//!   ([`Binding::original_id`]); it goes back as the client's id, as
//!   written; any other response is dropped (an error whose id is `null`,
//!   which answers nothing, excepted);
//! - a payload that does not parse (JSON that serde_json refuses: a lone
//!   surrogate, `NaN`, nesting past 128 levels) or a list that is not an
//!   array is withheld and the requests it might answer get a JSON-RPC
//!   error: nothing passes unchecked.
//!
//! Requests and notifications from the server keep their ids (the client
//! answers the server with them). SSE streams go event by event
//! ([`crate::stream`]).

use crate::authz::Action;
use crate::binding::Binding;
use crate::jsonrpc::{self, filter_lists, is_list_of};
use crate::message::write_message;
use crate::plan::Pending;
use crate::refusal::INTERNAL_ERROR_CODE;
use crate::sse;
use serde_json::Value;
use serde_json::value::RawValue;
use std::sync::Arc;

/// Largest JSON body or SSE event filtered.
pub const MAX_FILTERED_BYTES: usize = sse::MAX_EVENT_BYTES;

/// Whether the caller may see a list item: may a call on it be allowed?
pub type Allowed = Arc<dyn Fn(Action, &str) -> bool + Send + Sync>;

const UNCHECKED: &str = "the upstream's answer could not be checked";

/// What one upstream message becomes.
#[derive(Debug)]
pub enum Out {
    /// A response to a request the gateway forwarded, with the client's id.
    Answer(String),
    /// An error response whose id is `null`: it answers no request.
    Unattributed(String),
    /// A request or notification from the server.
    FromServer(String),
    /// Withheld.
    Dropped,
}

/// The state of one upstream response.
pub struct Answers {
    binding: Binding,
    allowed: Allowed,
    /// The forwarded requests, and whether each has been answered. `None`
    /// on a GET stream, where the requests answered are not known.
    pending: Option<Vec<(Pending, bool)>>,
}

fn dropped(why: &str) -> Out {
    tracing::warn!(reason = why, "message from the upstream withheld");
    Out::Dropped
}

impl Answers {
    /// For the answer to a POST that forwarded `pending`.
    pub fn post(binding: Binding, allowed: Allowed, pending: Vec<Pending>) -> Answers {
        let pending = Some(pending.into_iter().map(|p| (p, false)).collect());
        Answers {
            binding,
            allowed,
            pending,
        }
    }

    /// For a GET stream (and DELETE), which answers no known request.
    pub fn stream(binding: Binding, allowed: Allowed) -> Answers {
        Answers {
            binding,
            allowed,
            pending: None,
        }
    }

    /// Whom the exchange is bound to.
    pub fn binding(&self) -> &Binding {
        &self.binding
    }

    /// One message from the upstream, as the client may see it.
    pub fn message(&mut self, msg: Value) -> Out {
        let Value::Object(mut members) = msg else {
            return dropped("not a JSON-RPC message");
        };
        if members.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
            return dropped("not a JSON-RPC 2.0 message");
        }
        let allowed = &*self.allowed;
        let lists_ok = match members.get_mut("result") {
            Some(result) => filter_lists(result, allowed).is_ok(),
            None => true,
        };
        if members.contains_key("method") {
            if !lists_ok {
                return dropped("a list that is not an array");
            }
            let id = members.remove("id");
            let id = id.as_ref().and_then(|id| serde_json::to_string(id).ok());
            let id = id.and_then(|id| RawValue::from_string(id).ok());
            return Out::FromServer(write_message(id.as_deref(), &members));
        }
        let id = members.remove("id");
        if members.contains_key("result") == members.contains_key("error") {
            return dropped("neither a request nor a response");
        }
        let assigned = match id {
            Some(Value::String(s)) => s,
            Some(Value::Null) | None if members.contains_key("error") => {
                return Out::Unattributed(write_message(Some(RawValue::NULL), &members));
            }
            _ => return dropped("a response to no request the gateway forwarded"),
        };
        let Some(original) = self.binding.original_id(&assigned) else {
            return dropped("a response to no request the gateway forwarded");
        };
        let mut checked = lists_ok;
        if let Some(pending) = &mut self.pending {
            let Some((request, answered)) =
                pending.iter_mut().find(|(p, _)| p.assigned == assigned)
            else {
                return dropped("a response to a request of another exchange");
            };
            if *answered {
                return dropped("a second response to one request");
            }
            *answered = true;
            if let (Some(kind), Some(result)) = (request.list, members.get("result")) {
                checked &= is_list_of(result, kind);
            }
        }
        if !checked {
            tracing::warn!("a list answer from the upstream could not be checked; withheld");
            return Out::Answer(jsonrpc::error_text(
                Some(&original),
                INTERNAL_ERROR_CODE,
                UNCHECKED,
            ));
        }
        Out::Answer(write_message(Some(&original), &members))
    }

    /// A payload (a JSON body, an event's data): its messages, and whether it
    /// was an array; `Err` when it does not parse.
    pub(crate) fn payload(&mut self, bytes: &[u8]) -> Result<(Vec<Out>, bool), ()> {
        match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Array(items)) => {
                Ok((items.into_iter().map(|m| self.message(m)).collect(), true))
            }
            Ok(one) => Ok((vec![self.message(one)], false)),
            Err(e) => {
                tracing::warn!(error = %e, "a payload from the upstream does not parse; withheld");
                Err(())
            }
        }
    }

    /// An error for each forwarded request not answered yet, which counts
    /// as its answer.
    fn unanswered(&mut self) -> Vec<String> {
        let Some(pending) = &mut self.pending else {
            return Vec::new();
        };
        pending
            .iter_mut()
            .filter(|(_, answered)| !*answered)
            .map(|(p, answered)| {
                *answered = true;
                jsonrpc::error_text(Some(&p.original), INTERNAL_ERROR_CODE, UNCHECKED)
            })
            .collect()
    }

    /// What a payload that cannot be read becomes: errors for the requests
    /// it may have answered, or one that names none.
    pub(crate) fn unreadable(&mut self) -> Vec<String> {
        match self.pending {
            Some(_) => self.unanswered(),
            None => vec![jsonrpc::error_text(None, INTERNAL_ERROR_CODE, UNCHECKED)],
        }
    }

    /// A JSON body from the upstream, with `refusals` (the gateway's answers
    /// to refused batch elements) merged in. A batch is answered with an
    /// array, anything else with one message; every forwarded request gets
    /// an answer. `None`: an empty body with nothing to add.
    pub fn json_body(
        &mut self,
        bytes: &[u8],
        refusals: Vec<String>,
        batch: bool,
    ) -> Option<String> {
        let empty = bytes.iter().all(u8::is_ascii_whitespace);
        let outs = if empty {
            Vec::new()
        } else {
            self.payload(bytes)
                .map(|(outs, _)| outs)
                .unwrap_or_default()
        };
        let (mut answers, mut unattributed, mut from_server) = (Vec::new(), Vec::new(), Vec::new());
        for out in outs {
            match out {
                Out::Answer(s) => answers.push(s),
                Out::Unattributed(s) => unattributed.push(s),
                Out::FromServer(s) => from_server.push(s),
                Out::Dropped => {}
            }
        }
        let missing = if empty && unattributed.is_empty() && answers.is_empty() {
            // An empty answer (202, or an HTTP error) speaks for itself.
            Vec::new()
        } else {
            self.unanswered()
        };
        if batch {
            let all: Vec<String> = [answers, unattributed, from_server, missing, refusals].concat();
            return (!all.is_empty() || !empty).then(|| format!("[{}]", all.join(",")));
        }
        let one = [answers, unattributed, missing, from_server, refusals]
            .into_iter()
            .flatten()
            .next();
        match one {
            Some(one) => Some(one),
            None if empty => None,
            None => self.unreadable().into_iter().next(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jsonrpc::ListKind;
    use crate::mac::SessionKey;

    fn binding() -> Binding {
        Binding::new(SessionKey::from_bytes(&[2; 32]).unwrap(), "s", "p")
    }

    fn post(ids: &[(&str, Option<ListKind>)]) -> (Answers, Vec<String>) {
        let b = binding();
        let pending: Vec<Pending> = ids
            .iter()
            .map(|(id, list)| {
                let original = RawValue::from_string(id.to_string()).unwrap();
                Pending {
                    assigned: b.request_id(&original),
                    original,
                    list: *list,
                }
            })
            .collect();
        let assigned = pending.iter().map(|p| p.assigned.clone()).collect();
        let allowed: Allowed = Arc::new(|_, name| name == "ok");
        (Answers::post(b, allowed, pending), assigned)
    }

    #[test]
    fn lists_are_filtered_and_ids_go_back_as_written() {
        let (mut a, ids) = post(&[("1e0", Some(ListKind::Tools))]);
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":"{}","result":{{"tools":[{{"name":"ok"}},{{"name":"no"}}]}}}}"#,
            ids[0]
        );
        let out = a.json_body(body.as_bytes(), vec![], false).unwrap();
        assert_eq!(
            out,
            r#"{"id":1e0,"jsonrpc":"2.0","result":{"tools":[{"name":"ok"}]}}"#
        );
    }

    #[test]
    fn what_cannot_be_read_or_attributed_is_withheld() {
        for bad in [
            r#"{"jsonrpc":"2.0","id":"ID","result":{"tools":[{"name":"no\ud800"}]}}"#,
            r#"{"jsonrpc":"2.0","id":"ID","result":{"tools":[{"name":"no","x":NaN}]}}"#,
            r#"{"jsonrpc":"2.0","id":"ID","result":{"tools":{"name":"no"}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"no"}]}}"#,
        ] {
            let (mut a, ids) = post(&[("7", Some(ListKind::Tools))]);
            let body = bad.replace("ID", &ids[0]);
            let out = a.json_body(body.as_bytes(), vec![], false).unwrap();
            assert!(!out.contains("\"no"), "{bad}: {out}");
            let v: Value = serde_json::from_str(&out).unwrap();
            assert_eq!(v["id"], 7, "{bad}: {out}");
            assert_eq!(v["error"]["code"], INTERNAL_ERROR_CODE, "{bad}: {out}");
        }
    }
}
