//! Deciding one call: the Cedar request and entities built from the
//! token and the call, partial evaluation for list items, the decision cache
//! and the decision log.

use super::{Action, DecisionId, Policies, Refusal};
use crate::arguments;
use crate::decisions::{Decided, Key, Question};
use crate::verify::{Principal, VerifiedToken};
use cedar_policy::{
    AuthorizationError, Context, Decision, Entities, Entity, EntityId, EntityTypeName, EntityUid,
    Request, RestrictedExpression,
};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;

pub(super) fn uid(type_name: &str, id: &str) -> Result<EntityUid, String> {
    let t = EntityTypeName::from_str(type_name).map_err(|e| e.to_string())?;
    Ok(EntityUid::from_type_name_and_id(t, EntityId::new(id)))
}

fn strings(v: &[String]) -> RestrictedExpression {
    RestrictedExpression::new_set(v.iter().cloned().map(RestrictedExpression::new_string))
}

impl Policies {
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
                let mut attrs = HashMap::from([
                    ("scopes".to_string(), scopes),
                    (
                        "client".to_string(),
                        RestrictedExpression::new_entity_uid(client),
                    ),
                ]);
                // A person who signs in at an identity provider: which one,
                // and the email it stated (optional in the schema: test with
                // `principal has idp`).
                for name in ["idp", "email"] {
                    if let Some(v) = token.claims[name].as_str() {
                        attrs.insert(
                            name.to_string(),
                            RestrictedExpression::new_string(v.to_string()),
                        );
                    }
                }
                if let Some(v) = token.claims["email_verified"].as_bool() {
                    attrs.insert(
                        "email_verified".to_string(),
                        RestrictedExpression::new_bool(v),
                    );
                }
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
    ) -> Option<DecisionId> {
        let question = match question {
            Question::Call => "call",
            Question::Probe => "may-call (list/completion)",
        };
        let resource = format!("{}::{name:?}", action.resource_type());
        let (reasons, error) = match decided {
            Ok(d) => (Some(&d.reasons), None),
            Err(why) => (None, Some(why)),
        };
        // Only a denial gets an id: it is what the client is told.
        let allowed = decided.is_ok_and(|d| d.allowed);
        let id = (!allowed).then(DecisionId::new);
        // Fields that are `None` are left out of the line.
        tracing::info!(
            principal = ?token.principal,
            action = action.name(),
            resource = %resource,
            server,
            question,
            decision = if allowed { "allow" } else { "deny" },
            decision_id = id.as_ref().map(tracing::field::display),
            policies = reasons.map(tracing::field::debug),
            error,
            "authorization decision"
        );
        id
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
        let (decided, id) =
            self.cached_or(token, &key, no_arguments || !self.reads_context, || {
                let record = arguments::to_record(arguments).map_err(|e| e.to_string())?;
                self.decide(token, server, action, name, Some(record))
            });
        match decided {
            Some(d) if d.allowed => Ok(()),
            _ => Err(Refusal::Denied(id.unwrap_or_default())),
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
        self.probe(token, server, action, name).is_ok()
    }

    /// [`Policies::may_allow`], with the id a denial was logged under.
    pub fn probe(
        &self,
        token: &VerifiedToken,
        server: &str,
        action: Action,
        name: &str,
    ) -> Result<(), DecisionId> {
        let key = Key {
            generation: self.generation,
            server,
            action,
            question: Question::Probe,
            name,
        };
        match self.cached_or(token, &key, true, || {
            self.decide(token, server, action, name, None)
        }) {
            (Some(d), _) if d.allowed => Ok(()),
            (_, id) => Err(id.unwrap_or_default()),
        }
    }

    /// The cached decision for `key`, or `decide`'s (cached when
    /// `cacheable`); logs it. `None` when no decision could be made. With
    /// it, the id a denial was logged under.
    fn cached_or(
        &self,
        token: &VerifiedToken,
        key: &Key,
        cacheable: bool,
        decide: impl FnOnce() -> Result<(bool, Vec<String>), String>,
    ) -> (Option<Arc<Decided>>, Option<DecisionId>) {
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
                    let id = Self::log(
                        token,
                        key.server,
                        key.action,
                        key.name,
                        key.question,
                        Err(&e),
                    );
                    return (None, id);
                }
            },
        };
        let id = Self::log(
            token,
            key.server,
            key.action,
            key.name,
            key.question,
            Ok(&decided),
        );
        (Some(decided), id)
    }

    /// The Cedar request and entities for one call; `context: None` leaves
    /// the context unknown (for partial evaluation).
    pub(super) fn request(
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
