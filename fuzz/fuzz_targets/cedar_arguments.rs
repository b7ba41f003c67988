//! A call's JSON arguments as Cedar's `context.arguments`
//! (`gatehouse_gateway::arguments::{check, to_record}`) and the decision the
//! policies make on them (`authz::Policies::check`).
//!
//! Input: a JSON document, the `arguments` of a `tools/call`.
//!
//! Properties: never a panic; `check` and `to_record` agree; nothing nested
//! deeper than `MAX_DEPTH` is accepted; arguments that cannot be put to the
//! policies are refused, never decided; and the decision is the one the
//! policies below mean — integers stay integers, other numbers become their
//! decimal string, nulls are dropped, a failing `forbid` denies.

#![no_main]

use gatehouse_gateway::arguments::{self, ArgumentsError, MAX_DEPTH};
use gatehouse_gateway::authz::{Action, DEFAULT_SCHEMA, Policies, Refusal, schema_from_source};
use gatehouse_gateway::verify::{Principal, VerifiedToken};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use std::sync::OnceLock;

const POLICIES: &str = r#"
@id("big-n")
permit (principal, action == Action::"call_tool", resource)
when { context.arguments has n && context.arguments.n > 3 };

@id("decimal-f")
permit (principal, action == Action::"call_tool", resource)
when { context.arguments has f && context.arguments.f == "1.5" };

@id("own-repos-only")
forbid (principal, action == Action::"call_tool", resource)
when { context.arguments has repo && !(context.arguments.repo like "acme/*") };
"#;

fn policies() -> &'static Policies {
    static P: OnceLock<Policies> = OnceLock::new();
    P.get_or_init(|| {
        let schema = schema_from_source(DEFAULT_SCHEMA, "schema").expect("schema");
        Policies::from_sources(POLICIES, "fuzz.cedar", schema).expect("policies")
    })
}

/// Levels of objects and arrays, the arguments object being level 1.
fn depth(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        Value::Object(m) => 1 + m.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// What the policies above decide, worked out without Cedar.
fn expected_allow(args: Option<&Value>) -> bool {
    let empty = serde_json::Map::new();
    let map = match args {
        Some(Value::Object(m)) => m,
        _ => &empty,
    };
    let get = |k: &str| map.get(k).filter(|v| !v.is_null());
    // `like` on a non-string errors, and an erroring forbid denies.
    let forbidden = match get("repo") {
        None => false,
        Some(Value::String(s)) => !s.starts_with("acme/"),
        Some(_) => true,
    };
    let big_n = get("n").and_then(Value::as_i64).is_some_and(|n| n > 3);
    let decimal_f = match get("f") {
        Some(Value::String(s)) => s == "1.5",
        Some(Value::Number(n)) => n.as_i64().is_none() && n.to_string() == "1.5",
        _ => false,
    };
    !forbidden && (big_n || decimal_f)
}

fuzz_target!(
    init: {
        // Parsing and validating the policies is slow under the sanitizer;
        // done here it does not count against the first input's timeout.
        policies();
    },
    |data: &[u8]| {
    let Ok(v) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    // Both the arguments as sent and, for `{"arguments": …}`-shaped input,
    // what they hold (so the corpus can carry whole params objects).
    let inner = v.get("arguments").cloned();
    for args in [Some(&v), inner.as_ref()] {
        let checked = arguments::check(args);
        let record = arguments::to_record(args);
        match (&checked, &record) {
            (Ok(()), Ok(_)) => {
                assert!(
                    args.is_none_or(|a| depth(a) <= MAX_DEPTH),
                    "too deep accepted"
                );
            }
            (Err(a), Err(b)) => assert_eq!(a, b),
            (Ok(()), Err(ArgumentsError::Unrepresentable(_))) => {
                panic!("checked arguments could not be represented: {record:?}")
            }
            _ => panic!(
                "check and to_record disagree: {checked:?} vs {:?}",
                record.err()
            ),
        }
        if matches!(args, Some(Value::Object(_))) && depth(args.unwrap_or(&Value::Null)) > MAX_DEPTH
        {
            assert!(checked.is_err());
        }

        let token = VerifiedToken {
            principal: Principal::Client {
                client_id: "c".into(),
            },
            scopes: vec![],
            groups: vec![],
            exp: 0,
            kid: String::new(),
            claims: Value::Null,
            decisions: Default::default(),
        };
        let decided = policies().check(&token, "srv", Action::CallTool, "tool", args);
        match checked {
            Err(e) => assert_eq!(decided, Err(Refusal::BadArguments(e.to_string()))),
            Ok(()) => assert_eq!(
                decided.is_ok(),
                expected_allow(args),
                "decision differs for {args:?}"
            ),
        }
    }
    }
);
