//! The Cedar schema the policies are validated against, and the context
//! the gateway gives every action.

use super::Action;
use crate::diagnostics;
use cedar_policy::{PolicyId, PolicySet, Schema, SchemaFragment, ValidationError};
use serde_json::Value;

/// Renames each policy to its `@id("…")` annotation, so decision logs name
/// the operator's ids instead of Cedar's positional `policy0`, `policy1`, ….
pub(super) fn with_annotated_ids(parsed: PolicySet) -> Result<PolicySet, String> {
    let mut out = PolicySet::new();
    for policy in parsed.policies() {
        let renamed = match policy.annotation("id") {
            Some(id) => policy.new_id(PolicyId::new(id)),
            None => policy.clone(),
        };
        out.add(renamed).map_err(|e| e.to_string())?;
    }
    Ok(out)
}

/// The context every action receives: `{ arguments: <open record> }`.
pub(super) fn gateway_context() -> Value {
    serde_json::json!({
        "type": "Record",
        "attributes": {
            "arguments": {"type": "Record", "attributes": {}, "additionalAttributes": true}
        }
    })
}

/// Parses a schema in Cedar syntax and gives the gateway's actions their
/// context. A call's arguments have no fixed shape, so `context.arguments` is
/// an open record — which Cedar's schema syntax cannot say, hence the edit of
/// the JSON form. The gateway alone builds the context, so a schema that
/// declares one itself is refused rather than silently overridden.
pub fn schema_from_source(src: &str, name: &str) -> Result<Schema, String> {
    let (fragment, _warnings) = SchemaFragment::from_cedarschema_str(src)
        .map_err(|e| diagnostics::render(name, src, &e))?;
    let mut json = fragment
        .to_json_value()
        .map_err(|e| format!("{name}: {e}"))?;
    let Some(namespaces) = json.as_object_mut() else {
        return Err(format!("{name}: not a schema"));
    };
    for namespace in namespaces.values_mut() {
        let Some(actions) = namespace.get_mut("actions").and_then(Value::as_object_mut) else {
            continue;
        };
        for (action, def) in actions.iter_mut() {
            if !Action::ALL.iter().any(|a| a.name() == action) {
                continue;
            }
            let Some(applies) = def.get_mut("appliesTo").and_then(Value::as_object_mut) else {
                continue;
            };
            let declared = applies.get("context").is_some_and(|c| {
                c.get("attributes")
                    .and_then(Value::as_object)
                    .is_none_or(|a| !a.is_empty())
            });
            if declared {
                return Err(format!(
                    "{name}: action {action} declares a context; the gateway supplies it ({{ arguments }}), so leave it out"
                ));
            }
            applies.insert("context".into(), gateway_context());
        }
    }
    Schema::from_json_value(json).map_err(|e| format!("{name}: {e}"))
}

/// An access to an attribute the validator cannot rule out because the record
/// is open — i.e. `context.arguments.<x>`, the only open record there is.
pub(super) fn is_open_record_access(e: &ValidationError) -> bool {
    matches!(e, ValidationError::UnsafeAttributeAccess(_))
        && miette::Diagnostic::help(e)
            .is_some_and(|h| h.to_string().contains("additional attributes"))
}
