//! What an MCP JSON-RPC message asks for, read from the body — never from
//! the `Mcp-Method`/`Mcp-Name` headers, which must agree with it.

use crate::authz::Action;
use axum::http::HeaderMap;
use serde_json::Value;
use serde_json::value::RawValue;

/// The list methods whose responses are filtered item by item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKind {
    Tools,
    Prompts,
    Resources,
    ResourceTemplates,
}

/// [`error_text`] with a `data` member (JSON-RPC 2.0 §5.1).
pub fn error_text_with_data(
    id: Option<&RawValue>,
    code: i64,
    message: &str,
    data: &serde_json::Value,
) -> String {
    let message = serde_json::to_string(message).unwrap_or_else(|_| "\"error\"".into());
    let id = id.map_or("null", RawValue::get);
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":{code},"message":{message},"data":{data}}}}}"#
    )
}

impl ListKind {
    /// The result member holding the items, the item's key, and the action
    /// that item would need.
    pub fn shape(self) -> (&'static str, &'static str, Action) {
        match self {
            ListKind::Tools => ("tools", "name", Action::CallTool),
            ListKind::Prompts => ("prompts", "name", Action::GetPrompt),
            ListKind::Resources => ("resources", "uri", Action::ReadResource),
            ListKind::ResourceTemplates => {
                ("resourceTemplates", "uriTemplate", Action::ReadResource)
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call<'a> {
    /// Needs no decision (initialize, ping, notifications, responses).
    Pass,
    /// Needs a decision on one named thing, with the call's arguments.
    Authorize(Action, &'a str, Option<&'a Value>),
    /// Allowed when a call on the named thing may be allowed for some
    /// arguments, as a list item is shown (`completion/complete`).
    Probe(Action, &'a str),
    /// Malformed parameters (JSON-RPC -32602).
    Invalid(&'static str),
    /// Forwarded; the response is filtered.
    List(ListKind),
    /// Not allowed through the gateway (unknown method or malformed params).
    Deny(&'static str),
}

/// Longest tool or prompt name, or resource URI, put before the policies.
pub const MAX_NAME_BYTES: usize = 4096;

fn param<'a>(msg: &'a Value, key: &str) -> Option<&'a str> {
    msg.get("params")?.get(key)?.as_str()
}

/// A call on `name`, refused when the name is absent or oversized.
fn named<'a>(
    action: Action,
    name: Option<&'a str>,
    arguments: Option<&'a Value>,
    probe: bool,
) -> Call<'a> {
    match name {
        None => Call::Deny("missing name"),
        Some(n) if n.len() > MAX_NAME_BYTES => Call::Invalid("name too long"),
        Some(n) if probe => Call::Probe(action, n),
        Some(n) => Call::Authorize(action, n, arguments),
    }
}

/// Methods the gateway decides or filters itself; configuring one of them as
/// an extra pass-through method would bypass the policies, so that is refused.
pub const AUTHORIZED_METHODS: [&str; 10] = [
    "tools/call",
    "prompts/get",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "completion/complete",
    "tools/list",
    "prompts/list",
    "resources/list",
    "resources/templates/list",
];

/// What `msg` asks for. `extra_methods` are the server's configured
/// pass-through methods (`allowed_methods`); every other unknown method is
/// denied.
pub fn classify<'a>(msg: &'a Value, extra_methods: &[String]) -> Call<'a> {
    let Some(method) = msg.get("method").and_then(Value::as_str) else {
        // A JSON-RPC response from the client (to a server request).
        return if msg.get("result").is_some() || msg.get("error").is_some() {
            Call::Pass
        } else {
            Call::Deny("not a JSON-RPC message")
        };
    };
    let arguments = msg.get("params").and_then(|p| p.get("arguments"));
    match method {
        "initialize" | "ping" | "server/discover" | "logging/setLevel" => Call::Pass,
        m if m.starts_with("notifications/") => Call::Pass,
        // Only tools/call and prompts/get carry arguments.
        "tools/call" => named(Action::CallTool, param(msg, "name"), arguments, false),
        "prompts/get" => named(Action::GetPrompt, param(msg, "name"), arguments, false),
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
            named(Action::ReadResource, param(msg, "uri"), None, false)
        }
        "completion/complete" => {
            let r = msg.get("params").and_then(|p| p.get("ref"));
            let field = |k: &str| r.and_then(|r| r.get(k)).and_then(Value::as_str);
            // Completing a prompt's or resource's arguments: allowed when a
            // call on it may be allowed at all.
            match field("type") {
                Some("ref/prompt") => named(Action::GetPrompt, field("name"), None, true),
                Some("ref/resource") => named(Action::ReadResource, field("uri"), None, true),
                _ => Call::Deny("unknown completion reference"),
            }
        }
        "tools/list" => Call::List(ListKind::Tools),
        "prompts/list" => Call::List(ListKind::Prompts),
        "resources/list" => Call::List(ListKind::Resources),
        "resources/templates/list" => Call::List(ListKind::ResourceTemplates),
        m if extra_methods.iter().any(|x| x == m) => Call::Pass,
        _ => Call::Deny("method not allowed through the gateway"),
    }
}

/// Protocol 2026-07-28 clients repeat the method and name in headers; a
/// request whose headers disagree with its body is refused.
pub fn headers_agree(headers: &HeaderMap, msg: &Value) -> bool {
    // Each header at most once, and as text: these headers go upstream as
    // sent, so a second value, or one the comparison below cannot read,
    // could name something the gateway never decided on.
    let header = |n: &str| -> Result<Option<&str>, ()> {
        let mut values = headers.get_all(n).iter();
        match (values.next(), values.next()) {
            (None, _) => Ok(None),
            (Some(v), None) => v.to_str().map(Some).map_err(|_| ()),
            (Some(_), Some(_)) => Err(()),
        }
    };
    let (Ok(method_header), Ok(name_header)) = (header("mcp-method"), header("mcp-name")) else {
        return false;
    };
    let method = msg.get("method").and_then(Value::as_str);
    if let Some(h) = method_header
        && Some(h) != method
    {
        return false;
    }
    if let Some(h) = name_header {
        let body_name = param(msg, "name").or_else(|| param(msg, "uri"));
        if Some(h) != body_name {
            return false;
        }
    }
    true
}

/// A batch names no one method or name: `Mcp-Method`/`Mcp-Name` on a batch
/// cannot agree with it, and would reach the upstream undecided.
pub fn batch_headers_absent(headers: &HeaderMap) -> bool {
    !headers.contains_key("mcp-method") && !headers.contains_key("mcp-name")
}

/// A JSON-RPC error response, its id written exactly as the request's
/// (`None`: `null`, JSON-RPC 2.0 §5 when the id could not be read).
pub fn error_text(id: Option<&RawValue>, code: i64, message: &str) -> String {
    let message = serde_json::to_string(message).unwrap_or_else(|_| "\"error\"".into());
    let id = id.map_or("null", RawValue::get);
    format!(r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":{code},"message":{message}}}}}"#)
}

impl ListKind {
    pub const ALL: [ListKind; 4] = [
        ListKind::Tools,
        ListKind::Prompts,
        ListKind::Resources,
        ListKind::ResourceTemplates,
    ];
}

/// A list member that is there but is not an array: nothing can say what a
/// client would make of it, so the whole answer is withheld.
#[derive(Debug, PartialEq, Eq)]
pub struct NotAList;

/// Filters every list a result holds, by its shape: whatever request it
/// answers (or none known, on a GET stream), a `tools`, `prompts`,
/// `resources` or `resourceTemplates` array keeps only the items `allowed`;
/// an item without its name or URI is dropped.
pub fn filter_lists(
    result: &mut Value,
    allowed: &dyn Fn(Action, &str) -> bool,
) -> Result<(), NotAList> {
    let Some(members) = result.as_object_mut() else {
        return Ok(());
    };
    for kind in ListKind::ALL {
        let (member, key, action) = kind.shape();
        match members.get_mut(member) {
            None => {}
            Some(Value::Array(items)) => items.retain(|item| {
                item.get(key)
                    .and_then(Value::as_str)
                    .is_some_and(|name| allowed(action, name))
            }),
            Some(_) => return Err(NotAList),
        }
    }
    Ok(())
}

/// Whether `result` answers a `kind` list call: it has that list.
pub fn is_list_of(result: &Value, kind: ListKind) -> bool {
    result.get(kind.shape().0).is_some_and(Value::is_array)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn classify_default(msg: &Value) -> Call<'_> {
        classify(msg, &[])
    }

    #[test]
    fn configured_methods_pass_and_others_stay_denied() {
        let msg = json!({"jsonrpc":"2.0","id":1,"method":"sampling/createMessage"});
        let extra = vec!["sampling/createMessage".to_string()];
        assert_eq!(classify(&msg, &extra), Call::Pass);
        assert!(matches!(classify(&msg, &[]), Call::Deny(_)));
    }

    #[test]
    fn methods_map_to_actions() {
        let call = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":{"a":1}}});
        assert_eq!(
            classify_default(&call),
            Call::Authorize(Action::CallTool, "t", Some(&json!({"a":1})))
        );
        let sub =
            json!({"jsonrpc":"2.0","id":1,"method":"resources/subscribe","params":{"uri":"u"}});
        assert_eq!(
            classify_default(&sub),
            Call::Authorize(Action::ReadResource, "u", None)
        );
        let comp = json!({"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"p"}}});
        assert_eq!(classify_default(&comp), Call::Probe(Action::GetPrompt, "p"));
        let long = "x".repeat(MAX_NAME_BYTES + 1);
        let call = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name": long}});
        assert_eq!(classify_default(&call), Call::Invalid("name too long"));
        assert_eq!(
            classify_default(&json!({"jsonrpc":"2.0","method":"notifications/initialized"})),
            Call::Pass
        );
        assert_eq!(
            classify_default(&json!({"jsonrpc":"2.0","id":3,"result":{}})),
            Call::Pass
        );
        assert!(matches!(
            classify_default(&json!({"jsonrpc":"2.0","id":1,"method":"sampling/x"})),
            Call::Deny(_)
        ));
        assert!(matches!(
            classify_default(&json!({"jsonrpc":"2.0","id":1,"method":"tools/call"})),
            Call::Deny(_)
        ));
    }

    #[test]
    fn list_results_keep_only_allowed_items_whatever_they_answer() {
        let mut result =
            json!({"tools":[{"name":"a"},{"name":"b"},{"x":1}],"prompts":[{"name":"a"}]});
        filter_lists(&mut result, &|_, n| n == "b").unwrap();
        assert_eq!(result, json!({"tools":[{"name":"b"}],"prompts":[]}));
        assert!(is_list_of(&result, ListKind::Tools));
        assert!(!is_list_of(&result, ListKind::Resources));
        let mut odd = json!({"resources": {"uri": "x"}});
        assert_eq!(filter_lists(&mut odd, &|_, _| true), Err(NotAList));
        let id = RawValue::from_string("1e0".into()).unwrap();
        assert_eq!(
            error_text(Some(&id), -1, "m\"x"),
            r#"{"jsonrpc":"2.0","id":1e0,"error":{"code":-1,"message":"m\"x"}}"#
        );
    }
}
