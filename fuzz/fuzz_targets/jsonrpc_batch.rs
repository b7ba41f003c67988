//! The gateway's request stage: a JSON-RPC body (one message or a batch) →
//! the plan of what is forwarded and what is refused. Beyond "never
//! panics", it checks the guarantee the gateway exists for: whatever is
//! forwarded is JSON, and holds no call the policies refused (here: every
//! tool, prompt or resource whose name starts with `d` is denied) — not as
//! a request, not as a notification, not in a batch.
#![no_main]

use axum::http::HeaderMap;
use gatehouse_gateway::authz;
use gatehouse_gateway::binding::Binding;
use gatehouse_gateway::jsonrpc::{self, Call};
use gatehouse_gateway::mac::SessionKey;
use gatehouse_gateway::plan::plan;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fn denied(call: &Call) -> bool {
    matches!(call, Call::Authorize(_, name, _) | Call::Probe(_, name) if name.starts_with('d'))
}

fuzz_target!(|data: &[u8]| {
    let Ok(key) = SessionKey::from_bytes(&[7; 32]) else {
        return;
    };
    let binding = Binding::new(key, "https://mcp.example.com/mcp", "Client::c_fuzz");
    let mut decide = |call: &Call| {
        denied(call).then(|| authz::Refusal::Denied(authz::DecisionId::new()))
    };
    let Ok(plan) = plan(data, &HeaderMap::new(), &[], &binding, &mut decide) else {
        return;
    };
    let Some(forward) = plan.forward else {
        return;
    };
    let forwarded: Value = serde_json::from_str(&forward).expect("the forwarded body is JSON");
    let messages = match forwarded {
        Value::Array(items) => items,
        one => vec![one],
    };
    for msg in &messages {
        let call = jsonrpc::classify(msg, &[]);
        assert!(!denied(&call), "a denied call was forwarded: {msg}");
        assert!(
            !matches!(call, Call::Deny(_) | Call::Invalid(_)),
            "a refused message was forwarded: {msg}"
        );
    }
});
