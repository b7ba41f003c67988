//! Reading a request body into JSON-RPC messages (JSON-RPC 2.0 §4, §6):
//! one message or a batch, each kept as the members the gateway decides on
//! plus its `id`'s exact text, which the client gets back as written.
//!
//! Two readings of one message must never differ, so a message whose
//! top-level members repeat is refused (parsers disagree on which copy
//! wins), and what is forwarded is re-serialised from what was decided on
//! (so nested repeats, which serde_json settles by keeping the last, reach
//! the upstream already settled).

use crate::binding::MAX_REQUEST_ID;
use serde::de::{Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// One JSON-RPC message: every member but `id`, and the `id`'s text.
#[derive(Debug)]
pub struct Message<'a> {
    pub id: Option<&'a RawValue>,
    /// The other members, as an object.
    pub body: Value,
}

/// What a message is (JSON-RPC 2.0 §4, §4.1, §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A method call awaiting a response.
    Request,
    /// A method call without an `id`: nothing answers it.
    Notification,
    /// The client's response to a request the server sent it.
    Response,
}

impl<'de> Deserialize<'de> for Message<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Message<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON-RPC message (an object)")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Message<'de>, A::Error> {
                let mut members = Map::new();
                let mut id = None;
                while let Some(key) = map.next_key::<String>()? {
                    let repeated = if key == "id" {
                        id.replace(map.next_value::<&'de RawValue>()?).is_some()
                    } else {
                        let value = map.next_value::<Value>()?;
                        members.insert(key.clone(), value).is_some()
                    };
                    if repeated {
                        return Err(A::Error::custom(format!("member {key:?} repeated")));
                    }
                }
                Ok(Message {
                    id,
                    body: Value::Object(members),
                })
            }
        }
        d.deserialize_map(V)
    }
}

/// Why a message cannot be forwarded (JSON-RPC "Invalid Request").
pub type Invalid = &'static str;

impl<'a> Message<'a> {
    /// Reads one message from its JSON text.
    pub fn parse(text: &'a str) -> Result<Message<'a>, Invalid> {
        let msg: Message = serde_json::from_str(text)
            .map_err(|_| "not a JSON-RPC message: an object with distinct members")?;
        if msg.body.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
            return Err("not a JSON-RPC 2.0 message");
        }
        Ok(msg)
    }

    /// The id, if it is one a client may use: a string or a number (MCP also
    /// excludes `null`), of bounded length.
    pub fn usable_id(&self) -> Result<Option<&'a RawValue>, Invalid> {
        let Some(id) = self.id else { return Ok(None) };
        let text = id.get();
        if text.len() > MAX_REQUEST_ID {
            return Err("id too long");
        }
        match text.as_bytes().first() {
            // An id a response carries is passed on as written: it must
            // read as JSON everywhere ([`readable`]), not only as raw text.
            Some(b'"' | b'-' | b'0'..=b'9') if readable(text) => Ok(Some(id)),
            _ => Err("id must be a string or a number"),
        }
    }

    pub fn method(&self) -> Option<&str> {
        self.body.get("method").and_then(Value::as_str)
    }

    pub fn kind(&self) -> Result<Kind, Invalid> {
        let id = self.usable_id()?;
        match (self.body.get("method"), id) {
            (Some(Value::String(_)), Some(_)) => Ok(Kind::Request),
            (Some(Value::String(_)), None) => Ok(Kind::Notification),
            (Some(_), _) => Err("method must be a string"),
            (None, Some(_)) => {
                let (result, error) = (self.body.get("result"), self.body.get("error"));
                if result.is_some() != error.is_some() {
                    Ok(Kind::Response)
                } else {
                    Err("a response has exactly one of result and error")
                }
            }
            (None, None) => Err("neither a request nor a response"),
        }
    }

    /// The message as JSON text with `id` replaced (or left out).
    pub fn to_text(&self, id: Option<&RawValue>) -> String {
        match &self.body {
            Value::Object(members) => write_message(id, members),
            _ => write_message(id, &Map::new()),
        }
    }
}

/// A message as JSON text: `id` (exactly as given; left out if `None`),
/// then `members`.
pub fn write_message(id: Option<&RawValue>, members: &Map<String, Value>) -> String {
    struct Out<'m>(Option<&'m RawValue>, &'m Map<String, Value>);
    impl Serialize for Out<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut map = s.serialize_map(None)?;
            if let Some(id) = self.0 {
                map.serialize_entry("id", id)?;
            }
            for (k, v) in self.1 {
                map.serialize_entry(k, v)?;
            }
            map.end()
        }
    }
    // Writing a Value and a RawValue into a string cannot fail.
    serde_json::to_string(&Out(id, members)).unwrap_or_default()
}

/// A request body: one message or a batch (JSON-RPC 2.0 §6), each element's
/// JSON text (a batch element is parsed, and refused, on its own).
pub enum Body<'a> {
    One(&'a str),
    Batch(Vec<&'a RawValue>),
}

impl<'a> Body<'a> {
    /// `None` when the body is not JSON at all (JSON-RPC "Parse error"). A
    /// single message is checked when it is read ([`Message::parse`]).
    pub fn parse(text: &'a str) -> Option<Body<'a>> {
        let trimmed = text.trim_start_matches([' ', '\t', '\n', '\r']);
        if trimmed.starts_with('[') {
            serde_json::from_str::<Vec<&RawValue>>(text)
                .ok()
                .map(Body::Batch)
        } else {
            Some(Body::One(text))
        }
    }
}

/// Whether `text` reads as JSON all the way down: every string decodes (an
/// unpaired surrogate escape does not), every number is in range, and the
/// nesting stays within serde_json's limit of 128 levels.
///
/// Skipping a value as a [`RawValue`] checks none of these, and a batch is
/// one level deeper than the elements read on their own; the gateway
/// forwards what it re-serialised, so a batch (and an id passed on as
/// written) must pass this first, or the upstream would get text that does
/// not parse.
pub fn readable(text: &str) -> bool {
    /// Any JSON value, read through and dropped.
    struct Readable;
    impl<'de> Deserialize<'de> for Readable {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(Readable)
        }
    }
    impl<'de> Visitor<'de> for Readable {
        type Value = Readable;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("JSON")
        }
        fn visit_bool<E>(self, _: bool) -> Result<Readable, E> {
            Ok(Readable)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Readable, E> {
            Ok(Readable)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Readable, E> {
            Ok(Readable)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Readable, E> {
            Ok(Readable)
        }
        fn visit_str<E>(self, _: &str) -> Result<Readable, E> {
            Ok(Readable)
        }
        fn visit_unit<E>(self) -> Result<Readable, E> {
            Ok(Readable)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Readable, A::Error> {
            while seq.next_element::<Readable>()?.is_some() {}
            Ok(Readable)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Readable, A::Error> {
            while map.next_entry::<Readable, Readable>()?.is_some() {}
            Ok(Readable)
        }
    }
    serde_json::from_str::<Readable>(text).is_ok()
}

/// Whether `text` is JSON at all: a message that does not read is a parse
/// error if not, an invalid request if so.
pub fn is_json(text: &str) -> bool {
    serde_json::from_str::<&RawValue>(text).is_ok()
}

/// The exact text of `notifications/cancelled`'s `params.requestId`, which
/// names a request by the id the client gave it.
pub fn cancelled_request_id(text: &str) -> Option<&RawValue> {
    #[derive(Deserialize)]
    struct Cancelled<'a> {
        #[serde(borrow)]
        params: Option<Params<'a>>,
    }
    #[derive(Deserialize)]
    struct Params<'a> {
        #[serde(borrow, rename = "requestId")]
        request_id: Option<&'a RawValue>,
    }
    serde_json::from_str::<Cancelled>(text)
        .ok()?
        .params?
        .request_id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_keep_their_spelling_and_repeated_members_are_refused() {
        let m = Message::parse(r#"{"jsonrpc":"2.0","id":1e0,"method":"ping"}"#).unwrap();
        assert_eq!(m.id.unwrap().get(), "1e0");
        assert_eq!(m.kind(), Ok(Kind::Request));
        let rewritten = m.to_text(Some(&RawValue::from_string("\"g\"".into()).unwrap()));
        assert_eq!(rewritten, r#"{"id":"g","jsonrpc":"2.0","method":"ping"}"#);
        assert!(Message::parse(r#"{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}"#).is_err());
        assert!(
            Message::parse(r#"{"jsonrpc":"2.0","method":"ping","\u006dethod":"tools/call"}"#)
                .is_err()
        );
        let n = Message::parse(r#"{"jsonrpc":"2.0","method":"x"}"#).unwrap();
        assert_eq!(n.kind(), Ok(Kind::Notification));
        let obj = Message::parse(r#"{"jsonrpc":"2.0","id":{},"method":"x"}"#).unwrap();
        assert!(obj.kind().is_err());
        assert!(Message::parse(r#"{"id":1,"method":"x"}"#).is_err());
        assert_eq!(
            cancelled_request_id(r#"{"params":{"requestId":1.0}}"#).map(RawValue::get),
            Some("1.0")
        );
    }

    /// Found by the `jsonrpc_batch` fuzz target: ids a raw read accepts but
    /// that do not parse as JSON values, and batch elements that parse on
    /// their own but not inside the batch, must not be forwarded.
    #[test]
    fn unreadable_ids_and_batches_too_deep_are_found() {
        for id in [r#""\ud800""#, r#""\udc00x""#, "1e400", "-1e999"] {
            let text = format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{{}}}}"#);
            let m = Message::parse(&text).unwrap();
            assert_eq!(
                m.usable_id().err(),
                Some("id must be a string or a number"),
                "{id}"
            );
        }
        let m = Message::parse(r#"{"jsonrpc":"2.0","id":"\ud83d\ude00","result":{}}"#).unwrap();
        assert!(m.usable_id().unwrap().is_some());
        let element = format!("{}1{}", "[".repeat(127), "]".repeat(127));
        assert!(readable(&element));
        assert!(!readable(&format!("[{element}]")));
        assert!(!readable("[1e400]"));
        assert!(readable(r#"[{"a":"\u00e9"},-0,1.5,null,true]"#));
    }
}
