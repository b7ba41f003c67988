//! Cedar authorization of MCP calls (docs/decisions.md "Gateway").
//! Default deny; `forbid` wins (Cedar's own semantics), and a `forbid` that
//! fails to evaluate (say, it reads an argument the call lacks) denies too:
//! the gateway fails closed where Cedar would skip the erroring policy.

mod decide;
mod schema;
#[cfg(test)]
mod tests;

pub use schema::schema_from_source;
use schema::{is_open_record_access, with_annotated_ids};

use crate::arguments;
use crate::diagnostics;
use crate::verify::{Principal, VerifiedToken};
use cedar_policy::{Authorizer, Effect, PolicyId, PolicySet, Schema, ValidationMode, Validator};
use serde_json::Value;
use std::collections::HashSet;
use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

/// The schema shipped with Gatehouse, used when none is configured.
pub const DEFAULT_SCHEMA: &str = include_str!("../../../../policies/gatehouse.cedarschema");

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
    /// The policies deny it. No details leave the gateway but the id of
    /// the decision, which the decision's log line carries.
    Denied(DecisionId),
    /// Its arguments cannot be put before the policies.
    BadArguments(String),
}

/// Names one refusal in the log (`decision_id`) and in the client's error,
/// so an operator can find why a call was refused without the client
/// learning anything about the policies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionId(String);

impl DecisionId {
    /// `d_` and 12 random base64url characters.
    pub fn new() -> DecisionId {
        use base64::Engine;
        let mut bytes = [0u8; 9];
        // Without randomness the id is still a valid (if less unique) name.
        let _ = aws_lc_rs::rand::fill(&mut bytes);
        DecisionId(format!(
            "d_{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for DecisionId {
    fn default() -> Self {
        DecisionId::new()
    }
}

impl std::fmt::Display for DecisionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
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
            kid: String::new(),
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
}
