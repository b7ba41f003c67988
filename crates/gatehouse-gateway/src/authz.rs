//! Cedar authorization of MCP calls (DESIGN.md "The gateway's Cedar model").
//! Default deny; `forbid` wins (Cedar's own semantics).

use crate::verify::{Principal, VerifiedToken};
use cedar_policy::{
    Authorizer, Context, Decision, Entities, Entity, EntityId, EntityTypeName, EntityUid, PolicyId,
    PolicySet, Request, RestrictedExpression, Schema, ValidationMode, Validator,
};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::str::FromStr;

/// The schema shipped with Gatehouse, used when none is configured.
pub const DEFAULT_SCHEMA: &str = include_str!("../../../policies/gatehouse.cedarschema");

/// What an MCP request asks to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    CallTool,
    GetPrompt,
    ReadResource,
}

impl Action {
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

pub struct Policies {
    schema: Schema,
    policies: PolicySet,
    authorizer: Authorizer,
}

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

impl Policies {
    /// Parses and validates policies against the schema; errors name the file.
    pub fn load(policy_file: &Path, schema_file: Option<&Path>) -> Result<Policies, String> {
        let schema_src = match schema_file {
            Some(p) => std::fs::read_to_string(p)
                .map_err(|e| format!("cannot read schema {}: {e}", p.display()))?,
            None => DEFAULT_SCHEMA.to_string(),
        };
        let schema_name = schema_file
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "built-in schema".into());
        let (schema, _) =
            Schema::from_cedarschema_str(&schema_src).map_err(|e| format!("{schema_name}: {e}"))?;
        let src = std::fs::read_to_string(policy_file)
            .map_err(|e| format!("cannot read policies {}: {e}", policy_file.display()))?;
        Self::from_sources(&src, &policy_file.display().to_string(), schema)
    }

    pub fn from_sources(src: &str, name: &str, schema: Schema) -> Result<Policies, String> {
        let policies = PolicySet::from_str(src).map_err(|e| {
            let detail: Vec<String> = e.iter().map(|d| d.to_string()).collect();
            format!("{name}: {e}: {}", detail.join("; "))
        })?;
        let policies = with_annotated_ids(policies).map_err(|e| format!("{name}: {e}"))?;
        let result = Validator::new(schema.clone()).validate(&policies, ValidationMode::Strict);
        if !result.validation_passed() {
            let errors: Vec<String> = result
                .validation_errors()
                .map(|e| format!("{name}: {e}"))
                .collect();
            return Err(errors.join("\n"));
        }
        Ok(Policies {
            schema,
            policies,
            authorizer: Authorizer::new(),
        })
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

    /// Decides one call; logs one structured line per decision.
    pub fn is_allowed(
        &self,
        token: &VerifiedToken,
        server: &str,
        action: Action,
        name: &str,
    ) -> bool {
        match self.decide(token, server, action, name) {
            Ok((allowed, reasons)) => {
                tracing::info!(
                    principal = ?token.principal,
                    action = action.name(),
                    resource = %format!("{}::{name:?}", action.resource_type()),
                    server,
                    decision = if allowed { "allow" } else { "deny" },
                    policies = ?reasons,
                    "authorization decision"
                );
                allowed
            }
            Err(e) => {
                tracing::warn!(error = %e, "authorization request could not be built; denying");
                false
            }
        }
    }

    fn decide(
        &self,
        token: &VerifiedToken,
        server: &str,
        action: Action,
        name: &str,
    ) -> Result<(bool, Vec<String>), String> {
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
        let request = Request::new(
            principal,
            uid("Action", action.name())?,
            resource,
            Context::empty(),
            Some(&self.schema),
        )
        .map_err(|e| e.to_string())?;
        let response = self
            .authorizer
            .is_authorized(&request, &self.policies, &entities);
        let reasons = response
            .diagnostics()
            .reason()
            .map(|p| p.to_string())
            .collect();
        Ok((response.decision() == Decision::Allow, reasons))
    }
}
