//! The gateway's filter stage on an SSE stream from the upstream, cut into
//! chunks at arbitrary places: the framer and the list filter must never
//! panic, and no list item the policies hide (here: names starting with
//! `d`) may reach the client, however the stream is spelled or split.
#![no_main]

use gatehouse_gateway::binding::Binding;
use gatehouse_gateway::filter::{Allowed, Answers};
use gatehouse_gateway::stream::filter_sse;
use gatehouse_gateway::mac::SessionKey;
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, stream)) = data.split_first() else {
        return;
    };
    let Ok(key) = SessionKey::from_bytes(&[7; 32]) else {
        return;
    };
    let binding = Binding::new(key, "https://mcp.example.com/mcp", "Client::c_fuzz");
    let allowed: Allowed = Arc::new(|_, name: &str| !name.starts_with('d'));
    // A GET stream: no request is pending, so every list result is filtered
    // by its shape.
    let mut answers = Answers::stream(binding, allowed);
    let size = usize::from(cut).max(1);
    let out = filter_sse(&mut answers, stream.chunks(size));
    let text = String::from_utf8_lossy(&out);
    for line in text.lines() {
        let Some(payload) = line.strip_prefix("data:") else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(payload.trim_start()) else {
            continue;
        };
        let Some(result) = v.get("result") else {
            continue;
        };
        for (member, key) in [
            ("tools", "name"),
            ("prompts", "name"),
            ("resources", "uri"),
            ("resourceTemplates", "uriTemplate"),
        ] {
            if let Some(items) = result.get(member).and_then(|i| i.as_array()) {
                for item in items {
                    let name = item.get(key).and_then(|n| n.as_str()).unwrap_or("");
                    assert!(!name.starts_with('d'), "a hidden item reached the client: {v}");
                }
            }
        }
    }
});
