//! Cedar authorization of MCP calls (docs/decisions.md "Gateway").
//! Default deny; `forbid` wins (Cedar's own semantics), and a `forbid` that
//! fails to evaluate (say, it reads an argument the call lacks) denies too:
//! the gateway fails closed where Cedar would skip the erroring policy.

use crate::arguments;
use crate::decisions::{Decided, Key, Question};
use crate::diagnostics;
use crate::verify::{Principal, VerifiedToken};
use cedar_policy::{
    AuthorizationError, Authorizer, Context, Decision, Effect, Entities, Entity, EntityId,
    EntityTypeName, EntityUid, PolicyId, PolicySet, Request, RestrictedExpression, Schema,
    SchemaFragment, ValidationError, ValidationMode, Validator,
};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The schema shipped with Gatehouse, used when none is configured.
pub const DEFAULT_SCHEMA: &str = include_str!("../../../policies/gatehouse.cedarschema");

/// What an MCP request asks to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    CallTool,
    GetPrompt,
    ReadResource,
}

impl Action {
    const ALL: [Action; 3] = [Action::CallTool, Action::GetPrompt, Action::ReadResource];

    fn name(self) -> &'static str {
        match self {
            Action::CallTool => "call_tool",
            Action::GetPrompt => "get_prompt",
            Action::ReadResource => "read_resource",
        }
    }
    fn resource_type(self) -> &'static str {
        match self {
            Action::CallTool => "Tool",
            Action::GetPrompt => "Prompt",
            Action::ReadResource => "Resource",
        }
    }
}

/// Why a call was refused, for the JSON-RPC error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The policies deny it (no details leave the gateway).
    Denied,
    /// Its arguments cannot be put before the policies.
    BadArguments(String),
}

pub struct Policies {
    schema: Schema,
    policies: PolicySet,
    /// Ids of the `forbid` policies: one that errors denies (fail closed).
    forbids: HashSet<PolicyId>,
    authorizer: Authorizer,
    /// Tells this set from every other loaded one (decision caches).
    generation: u64,
    /// Whether any policy may read `context` (conservatively: the word
    /// appears in the source); if none does, arguments cannot change a decision.
    reads_context: bool,
}

/// Source of [`Policies::generation`].
static GENERATIONS: AtomicU64 = AtomicU64::new(1);

fn uid(type_name: &str, id: &str) -> Result<EntityUid, String> {
    let t = EntityTypeName::from_str(type_name).map_err(|e| e.to_string())?;
    Ok(EntityUid::from_type_name_and_id(t, EntityId::new(id)))
}

fn strings(v: &[String]) -> RestrictedExpression {
    RestrictedExpression::new_set(v.iter().cloned().map(RestrictedExpression::new_string))
}

/// Renames each policy to its `@id("…")` annotation, so decision logs name
/// the operator's ids instead of Cedar's positional `policy0`, `policy1`, ….
fn with_annotated_ids(parsed: PolicySet) -> Result<PolicySet, String> {
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
fn gateway_context() -> Value {
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
fn is_open_record_access(e: &ValidationError) -> bool {
    matches!(e, ValidationError::UnsafeAttributeAccess(_))
        && miette::Diagnostic::help(e)
            .is_some_and(|h| h.to_string().contains("additional attributes"))
}

impl Policies {
    /// Parses and validates policies against the schema; errors name the
    /// file, line and column.
    pub fn load(policy_file: &Path, schema_file: Option<&Path>) -> Result<Policies, String> {
        let schema = match schema_file {
            Some(p) => {
                let src = std::fs::read_to_string(p)
                    .map_err(|e| format!("cannot read schema {}: {e}", p.display()))?;
                schema_from_source(&src, &p.display().to_string())?
            }
            None => schema_from_source(DEFAULT_SCHEMA, "built-in schema")?,
        };
        let src = std::fs::read_to_string(policy_file)
            .map_err(|e| format!("cannot read policies {}: {e}", policy_file.display()))?;
        Self::from_sources(&src, &policy_file.display().to_string(), schema)
    }

    pub fn from_sources(src: &str, name: &str, schema: Schema) -> Result<Policies, String> {
        let policies = PolicySet::from_str(src).map_err(|e| {
            e.iter()
                .map(|d| diagnostics::render(name, src, d))
                .collect::<Vec<_>>()
                .join("\n")
        })?;
        let policies = with_annotated_ids(policies).map_err(|e| format!("{name}: {e}"))?;
        let result = Validator::new(schema.clone()).validate(&policies, ValidationMode::Strict);
        let errors: Vec<String> = result
            .validation_errors()
            .filter(|e| !is_open_record_access(e))
            .map(|e| diagnostics::render(name, src, e))
            .collect();
        if !errors.is_empty() {
            return Err(errors.join("\n"));
        }
        let forbids = policies
            .policies()
            .filter(|p| p.effect() == Effect::Forbid)
            .map(|p| p.id().clone())
            .collect();
        let loaded = Policies {
            schema,
            policies,
            forbids,
            authorizer: Authorizer::new(),
            generation: GENERATIONS.fetch_add(1, Ordering::Relaxed),
            reads_context: src.contains("context"),
        };
        loaded.check_schema_fits().map_err(|e| {
            format!("{name}: the schema does not describe what the gateway supplies: {e}")
        })?;
        Ok(loaded)
    }

    /// A custom schema must describe the entities and requests the gateway
    /// builds (un-namespaced `Client`, `User`, `Group`, `McpServer`, …); try
    /// one of each kind now rather than fail every call later.
    fn check_schema_fits(&self) -> Result<(), String> {
        let sample = |principal| VerifiedToken {
            principal,
            scopes: vec!["s".into()],
            groups: vec!["g".into()],
            exp: 0,
            claims: Value::Null,
            decisions: Default::default(),
        };
        let client = sample(Principal::Client {
            client_id: "c".into(),
        });
        let user = sample(Principal::User {
            sub: "u".into(),
            client_id: "c".into(),
        });
        for token in [&client, &user] {
            for action in Action::ALL {
                let empty = arguments::to_record(None).map_err(|e| e.to_string())?;
                self.request(token, "s", action, "n", Some(empty))?;
                self.request(token, "s", action, "n", None)?;
            }
        }
        Ok(())
    }

    fn principal_entities(
        &self,
        token: &VerifiedToken,
    ) -> Result<(EntityUid, Vec<Entity>), String> {
        let scopes = strings(&token.scopes);
        match &token.principal {
            Principal::Client { client_id } => {
                let id = uid("Client", client_id)?;
                let attrs = HashMap::from([("scopes".to_string(), scopes)]);
                let e =
                    Entity::new(id.clone(), attrs, HashSet::new()).map_err(|e| e.to_string())?;
                Ok((id, vec![e]))
            }
            Principal::User { sub, client_id } => {
                let client = uid("Client", client_id)?;
                let client_entity = Entity::new(
                    client.clone(),
                    HashMap::from([("scopes".to_string(), strings(&token.scopes))]),
                    HashSet::new(),
                )
                .map_err(|e| e.to_string())?;
                let groups: HashSet<EntityUid> = token
                    .groups
                    .iter()
                    .map(|g| uid("Group", g))
                    .collect::<Result<_, _>>()?;
                let mut entities: Vec<Entity> = groups
                    .iter()
                    .map(|g| Entity::new_no_attrs(g.clone(), HashSet::new()))
                    .collect();
                let id = uid("User", sub)?;
                let attrs = HashMap::from([
                    ("scopes".to_string(), scopes),
                    (
                        "client".to_string(),
                        RestrictedExpression::new_entity_uid(client),
                    ),
                ]);
                entities.push(Entity::new(id.clone(), attrs, groups).map_err(|e| e.to_string())?);
                entities.push(client_entity);
                Ok((id, entities))
            }
        }
    }

    fn log(
        token: &VerifiedToken,
        server: &str,
        action: Action,
        name: &str,
        question: Question,
        decided: Result<&Decided, &str>,
    ) {
        let question = match question {
            Question::Call => "call",
            Question::Probe => "may-call (list/completion)",
        };
        let resource = format!("{}::{name:?}", action.resource_type());
        match decided {
            Ok(d) => tracing::info!(
                principal = ?token.principal,
                action = action.name(),
                resource = %resource,
                server,
                question,
                decision = if d.allowed { "allow" } else { "deny" },
                policies = ?d.reasons,
                "authorization decision"
            ),
            Err(why) => tracing::info!(
                principal = ?token.principal,
                action = action.name(),
                resource = %resource,
                server,
                question,
                decision = "deny",
                error = why,
                "authorization decision"
            ),
        }
    }

    /// Decides one call; logs one structured line per decision.
    pub fn check(
        &self,
        token: &VerifiedToken,
        server: &str,
        action: Action,
        name: &str,
        arguments: Option<&Value>,
    ) -> Result<(), Refusal> {
        // Checked before the cache, so a cached decision never lets through
        // arguments that could not have been put to the policies.
        if let Err(e) = arguments::check(arguments) {
            Self::log(
                token,
                server,
                action,
                name,
                Question::Call,
                Err(&e.to_string()),
            );
            return Err(Refusal::BadArguments(e.to_string()));
        }
        let no_arguments = arguments.is_none_or(|a| a.as_object().is_some_and(|o| o.is_empty()));
        let key = Key {
            generation: self.generation,
            server,
            action,
            question: Question::Call,
            name,
        };
        let decided = self.cached_or(token, &key, no_arguments || !self.reads_context, || {
            let record = arguments::to_record(arguments).map_err(|e| e.to_string())?;
            self.decide(token, server, action, name, Some(record))
        });
        match decided {
            Some(d) if d.allowed => Ok(()),
            _ => Err(Refusal::Denied),
        }
    }

    /// Whether a call on `name` may be allowed for some arguments: a listed
    /// item is shown, and a completion answered, unless the policies deny it
    /// whatever the arguments (Cedar partial evaluation with the context
    /// unknown). Logged like a call.
    pub fn may_allow(
        &self,
        token: &VerifiedToken,
        server: &str,
        action: Action,
        name: &str,
    ) -> bool {
        let key = Key {
            generation: self.generation,
            server,
            action,
            question: Question::Probe,
            name,
        };
        self.cached_or(token, &key, true, || {
            self.decide(token, server, action, name, None)
        })
        .is_some_and(|d| d.allowed)
    }

    /// The cached decision for `key`, or `decide`'s (cached when
    /// `cacheable`); logs it. `None` when no decision could be made.
    fn cached_or(
        &self,
        token: &VerifiedToken,
        key: &Key,
        cacheable: bool,
        decide: impl FnOnce() -> Result<(bool, Vec<String>), String>,
    ) -> Option<Arc<Decided>> {
        let cached = if cacheable {
            token.decisions.get(key)
        } else {
            None
        };
        let decided = match cached {
            Some(d) => d,
            None => match decide() {
                Ok((allowed, reasons)) => {
                    let d = Arc::new(Decided { allowed, reasons });
                    if cacheable {
                        token.decisions.put(key, d.clone());
                    }
                    d
                }
                Err(e) => {
                    // Not the client's doing (say, a name Cedar cannot
                    // hold): deny without details.
                    Self::log(
                        token,
                        key.server,
                        key.action,
                        key.name,
                        key.question,
                        Err(&e),
                    );
                    return None;
                }
            },
        };
        Self::log(
            token,
            key.server,
            key.action,
            key.name,
            key.question,
            Ok(&decided),
        );
        Some(decided)
    }

    /// The Cedar request and entities for one call; `context: None` leaves
    /// the context unknown (for partial evaluation).
    fn request(
        &self,
        token: &VerifiedToken,
        server: &str,
        action: Action,
        name: &str,
        arguments: Option<RestrictedExpression>,
    ) -> Result<(Request, Entities), String> {
        let (principal, mut entities) = self.principal_entities(token)?;
        let server_uid = uid("McpServer", server)?;
        let resource = uid(action.resource_type(), name)?;
        entities.push(Entity::new_no_attrs(server_uid.clone(), HashSet::new()));
        entities.push(Entity::new_no_attrs(
            resource.clone(),
            HashSet::from([server_uid]),
        ));
        let entities =
            Entities::from_entities(entities, Some(&self.schema)).map_err(|e| e.to_string())?;
        let action = uid("Action", action.name())?;
        let request = match arguments {
            Some(arguments) => {
                let context = Context::from_pairs([("arguments".to_string(), arguments)])
                    .map_err(|e| e.to_string())?;
                Request::new(principal, action, resource, context, Some(&self.schema))
                    .map_err(|e| e.to_string())?
            }
            None => Request::builder()
                .principal(principal)
                .action(action)
                .resource(resource)
                .schema(&self.schema)
                .build()
                .map_err(|e| e.to_string())?,
        };
        Ok((request, entities))
    }

    /// Allowed, and the policies that decided. With `arguments: None` the
    /// context is unknown and "allowed" means "not denied whatever it is".
    fn decide(
        &self,
        token: &VerifiedToken,
        server: &str,
        action: Action,
        name: &str,
        arguments: Option<RestrictedExpression>,
    ) -> Result<(bool, Vec<String>), String> {
        let probe = arguments.is_none();
        let (request, entities) = self.request(token, server, action, name, arguments)?;
        if probe {
            let response =
                self.authorizer
                    .is_authorized_partial(&request, &self.policies, &entities);
            let reasons = response
                .definitely_satisfied()
                .map(|p| p.id().to_string())
                .collect();
            return Ok((response.decision() != Some(Decision::Deny), reasons));
        }
        let response = self
            .authorizer
            .is_authorized(&request, &self.policies, &entities);
        let mut reasons: Vec<String> = response
            .diagnostics()
            .reason()
            .map(ToString::to_string)
            .collect();
        let mut failed_forbid = false;
        for AuthorizationError::PolicyEvaluationError(e) in response.diagnostics().errors() {
            tracing::warn!(policy = %e.policy_id(), error = %e, "policy failed to evaluate");
            if self.forbids.contains(e.policy_id()) {
                failed_forbid = true;
                reasons.push(e.policy_id().to_string());
            }
        }
        Ok((
            response.decision() == Decision::Allow && !failed_forbid,
            reasons,
        ))
    }
}

#[cfg(test)]
mod tests {
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
        assert_eq!(call(json!({"n": 2})), Err(Refusal::Denied));
        assert_eq!(call(json!({})), Err(Refusal::Denied));
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
        assert_eq!(call(json!({})), Err(Refusal::Denied));
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
        assert_eq!(
            deny.check(&t, "s", Action::CallTool, "x", None),
            Err(Refusal::Denied)
        );
        assert_eq!(allow.check(&t, "s", Action::CallTool, "x", None), Ok(()));
        // Arguments that a policy reads are never answered from the cache.
        let reads =
            policies(r#"permit (principal, action, resource) when { context.arguments has ok };"#)
                .unwrap();
        let args = |v: Value| reads.check(&t, "s", Action::CallTool, "x", Some(&v));
        assert_eq!(args(json!({"ok": 1})), Ok(()));
        assert_eq!(args(json!({"no": 1})), Err(Refusal::Denied));
        assert_eq!(args(json!({"ok": 1})), Ok(()));
    }
}
