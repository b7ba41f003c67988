//! The policy engine on its own: decisions, fail-closed forbids, schema
//! checks.

use super::*;
use serde_json::json;

fn policies(src: &str) -> Result<Policies, String> {
    let schema = schema_from_source(DEFAULT_SCHEMA, "schema")?;
    Policies::from_sources(src, "p.cedar", schema)
}

fn client(id: &str) -> VerifiedToken {
    VerifiedToken {
        principal: Principal::Client {
            client_id: id.into(),
        },
        scopes: vec![],
        groups: vec![],
        exp: 0,
        kid: String::new(),
        claims: Value::Null,
        decisions: Default::default(),
    }
}

/// The example shipped for operators to start from must load: parsed,
/// and validated against the shipped schema (given as a file, and as
/// the built-in copy).
#[test]
fn the_shipped_example_policies_validate_against_the_shipped_schema() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies");
    let example = root.join("example.cedar");
    let schema = root.join("gatehouse.cedarschema");
    for schema in [Some(schema.as_path()), None] {
        let loaded = Policies::load(&example, schema);
        let loaded = loaded.unwrap_or_else(|e| panic!("{e}"));
        assert!(loaded.policies.policies().count() > 0);
    }
}

#[test]
fn arguments_are_an_open_record_but_other_records_stay_closed() {
    let p = policies(
        r#"permit (principal, action == Action::"call_tool", resource)
           when { context.arguments has n && context.arguments.n > 3 };"#,
    )
    .unwrap();
    let t = client("c");
    let call = |args: Value| p.check(&t, "s", Action::CallTool, "x", Some(&args));
    assert_eq!(call(json!({"n": 4})), Ok(()));
    assert!(matches!(call(json!({"n": 2})), Err(Refusal::Denied(_))));
    assert!(matches!(call(json!({})), Err(Refusal::Denied(_))));
    let typo = policies(
        "permit (principal is Client, action, resource)\nwhen { principal.scope.contains(\"x\") };",
    )
    .err()
    .unwrap();
    assert!(typo.starts_with("p.cedar:2:"), "{typo}");
}

#[test]
fn a_forbid_that_fails_to_evaluate_denies() {
    let p = policies(
        r#"permit (principal, action, resource);
           forbid (principal, action, resource) unless { context.arguments.ok == true };"#,
    )
    .unwrap();
    let t = client("c");
    let call = |args: Value| p.check(&t, "s", Action::CallTool, "x", Some(&args));
    assert_eq!(call(json!({"ok": true})), Ok(()));
    assert!(matches!(call(json!({})), Err(Refusal::Denied(_))));
}

#[test]
fn list_items_are_shown_when_some_arguments_may_be_allowed() {
    let p = policies(
        r#"permit (principal, action, resource == Tool::"search")
           when { context.arguments has repo && context.arguments.repo like "acme/*" };
           permit (principal, action, resource == Tool::"deploy");
           forbid (principal, action, resource == Tool::"deploy")
           unless { context.arguments.dry_run == true };
           forbid (principal, action, resource == Tool::"drop");
           permit (principal, action, resource == Tool::"drop");"#,
    )
    .unwrap();
    let t = client("c");
    let may = |name: &str| p.may_allow(&t, "s", Action::CallTool, name);
    assert!(may("search"), "allowed with the right arguments");
    assert!(may("deploy"), "allowed when dry_run is true");
    assert!(!may("drop"), "denied whatever the arguments");
    assert!(!may("other"), "no permit at all");
    // Asked twice (the second from the cache), the answer is the same.
    assert!(may("search") && !may("drop"));
}

#[test]
fn bad_arguments_are_refused_even_after_a_cached_allow() {
    // No policy reads `context`, so calls with arguments are cached.
    let p = policies(r#"permit (principal, action, resource);"#).unwrap();
    let t = client("c");
    let call = |args: Value| p.check(&t, "s", Action::CallTool, "x", Some(&args));
    assert_eq!(call(json!({"a": 1})), Ok(()));
    assert!(matches!(call(json!([1])), Err(Refusal::BadArguments(_))));
    let mut deep = json!(1);
    for _ in 0..12 {
        deep = json!({ "x": deep });
    }
    assert!(matches!(call(deep), Err(Refusal::BadArguments(_))));
}

#[test]
fn cached_decisions_end_with_the_policy_set_that_made_them() {
    let allow = policies(r#"permit (principal, action, resource == Tool::"x");"#).unwrap();
    let deny = policies(r#"forbid (principal, action, resource == Tool::"x");"#).unwrap();
    let t = client("c");
    for _ in 0..2 {
        assert_eq!(allow.check(&t, "s", Action::CallTool, "x", None), Ok(()));
    }
    assert!(matches!(
        deny.check(&t, "s", Action::CallTool, "x", None),
        Err(Refusal::Denied(_))
    ));
    assert_eq!(allow.check(&t, "s", Action::CallTool, "x", None), Ok(()));
    // Arguments that a policy reads are never answered from the cache.
    let reads =
        policies(r#"permit (principal, action, resource) when { context.arguments has ok };"#)
            .unwrap();
    let args = |v: Value| reads.check(&t, "s", Action::CallTool, "x", Some(&v));
    assert_eq!(args(json!({"ok": 1})), Ok(()));
    assert!(matches!(args(json!({"no": 1})), Err(Refusal::Denied(_))));
    assert_eq!(args(json!({"ok": 1})), Ok(()));
}
