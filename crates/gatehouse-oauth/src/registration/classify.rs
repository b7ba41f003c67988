//! Client metadata validation (RFC 7591 §2) — the one classifier every way of
//! registering a client goes through (docs/decisions.md "Registration").
//!
//! Rejected: `implicit`, `password`, `refresh_token` alone, an empty grant
//! list, `none` with a grant that needs a credential, unsafe redirect URIs.
//! Dropped, not failed: other unknown or unsupported grant types and unknown
//! metadata fields (RFC 7591 §2); the response echoes what was stored.

use super::fields::{metadata_error, optional_string, optional_string_list, redirect_error};
use super::redirect_uri::validate_redirect_uri;
use crate::client::{AuthMethod, ClientMetadata};
use crate::client_auth::client_keys::validate_jwks_uri;
use crate::client_auth::jwks::validate_client_jwks;
use crate::error::{ErrorCode, OAuthError};
use crate::grants::people::ID_TOKEN_ALG_FIELD;
use crate::grants::{Grant, REGISTRATION_DEFAULT, refresh_token};
use crate::keys::Alg;
use crate::limits::*;
use crate::scope::parse_scope;
use serde_json::{Map, Value};
use url::Url;

/// Grant types that are never acceptable (OAuth 2.1 removed them).
const FORBIDDEN_GRANTS: &[&str] = &["implicit", "password"];
/// Display fields kept verbatim: (name, is a URL).
const EXTRA_STRINGS: &[(&str, bool)] = &[
    ("client_uri", true),
    ("logo_uri", true),
    ("tos_uri", true),
    ("policy_uri", true),
    ("software_id", false),
    ("software_version", false),
];

/// What the server supports, derived from its registries
/// ([`crate::registry::Registry::capabilities`]).
pub struct Capabilities<'a> {
    pub grants: &'a [Box<dyn Grant>],
    pub auth_methods: &'a [AuthMethod],
    /// `None`: any syntactically valid scope (the operator's command line
    /// when no `scopes_supported` is configured).
    pub scopes_supported: Option<Vec<String>>,
    /// `client_auth.allow_http_loopback_jwks_uri`.
    pub allow_http_loopback_jwks_uri: bool,
    /// The algorithms ID tokens can be signed with (a current key exists).
    pub id_token_algs: &'a [Alg],
}

/// Classifies a registration request. `audiences` is the operator's audience
/// restriction (command line only; dynamic registration cannot set one).
pub fn classify(
    req: &Map<String, Value>,
    caps: &Capabilities<'_>,
    audiences: Option<Vec<String>>,
) -> Result<ClientMetadata, OAuthError> {
    let (grants, grant_types) = classify_grants(req, caps)?;
    let method = auth_method(req, caps, &grants)?;
    let (redirect_uris, response_types) = redirects(req, &grants, method)?;
    let scopes = requested_scopes(req, caps)?;
    let client_name =
        optional_string(req, "client_name", MAX_CLIENT_NAME_BYTES)?.map(str::to_string);
    let extra = display_fields(req, caps)?;
    let (jwks, jwks_uri) = client_keys(req, method, caps.allow_http_loopback_jwks_uri)?;
    Ok(ClientMetadata {
        client_name,
        grant_types,
        response_types,
        redirect_uris,
        token_endpoint_auth_method: method,
        scopes,
        audiences,
        resource_servers: None,
        jwks,
        jwks_uri,
        extra,
    })
}

/// The grants asked for that the server supports (RFC 7591 §2: the default
/// is `authorization_code`), and the `grant_types` stored: those, plus
/// `refresh_token` when asked for alongside a grant that issues them.
fn classify_grants<'c>(
    req: &Map<String, Value>,
    caps: &Capabilities<'c>,
) -> Result<(Vec<&'c dyn Grant>, Vec<String>), OAuthError> {
    let requested_grants = optional_string_list(req, "grant_types", 16, 256)?
        .unwrap_or_else(|| vec![REGISTRATION_DEFAULT]);
    if let Some(bad) = requested_grants
        .iter()
        .find(|g| FORBIDDEN_GRANTS.contains(g))
    {
        return Err(metadata_error(format!(
            "the {bad} grant is not supported by OAuth 2.1"
        )));
    }
    if requested_grants.is_empty() {
        return Err(metadata_error("grant_types must not be empty"));
    }
    if requested_grants
        .iter()
        .all(|g| *g == refresh_token::GRANT_TYPE)
    {
        return Err(metadata_error(format!(
            "{} must accompany a grant that issues refresh tokens",
            refresh_token::GRANT_TYPE
        )));
    }
    let mut grants: Vec<&dyn Grant> = Vec::new();
    for name in &requested_grants {
        if let Some(g) = caps
            .grants
            .iter()
            .find(|g| g.grant_type() == *name && g.registrable_alone())
            && !grants.iter().any(|k| k.grant_type() == *name)
        {
            grants.push(g.as_ref());
        }
    }
    if grants.is_empty() {
        return Err(metadata_error(format!(
            "none of the requested grant types is supported (supported: {})",
            caps.grants
                .iter()
                .filter(|g| g.registrable_alone())
                .map(|g| g.grant_type())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let mut grant_types: Vec<String> = grants.iter().map(|g| g.grant_type().to_string()).collect();
    if requested_grants.contains(&refresh_token::GRANT_TYPE)
        && grants.iter().any(|g| g.issues_refresh_tokens())
    {
        grant_types.push(refresh_token::GRANT_TYPE.to_string());
    }
    Ok((grants, grant_types))
}

/// The authentication method: a credential-bearing grant defaults to Basic
/// (RFC 7591 §2), and `none` cannot use such a grant.
fn auth_method(
    req: &Map<String, Value>,
    caps: &Capabilities<'_>,
    grants: &[&dyn Grant],
) -> Result<AuthMethod, OAuthError> {
    let needs_credential = grants.iter().any(|g| g.requires_credential());
    let requested_method = optional_string(req, "token_endpoint_auth_method", 64)?;
    if needs_credential && requested_method == Some(AuthMethod::None.as_str()) {
        let g = grants.iter().find(|g| g.requires_credential());
        return Err(metadata_error(format!(
            "token_endpoint_auth_method \"none\" cannot be used with the {} grant: a public client cannot authenticate",
            g.map(|g| g.grant_type()).unwrap_or_default()
        )));
    }
    Ok(match requested_method {
        None if needs_credential => AuthMethod::ClientSecretBasic,
        None => AuthMethod::None,
        Some(m) => AuthMethod::parse(m)
            .filter(|m| caps.auth_methods.contains(m))
            .ok_or_else(|| {
                metadata_error(format!(
                    "token_endpoint_auth_method {m:?} is not supported (supported: {})",
                    caps.auth_methods
                        .iter()
                        .map(|m| m.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?,
    })
}

/// Redirect URIs (optional for grants without a redirect) and response
/// types (only `code`, and only with a grant that redirects).
fn redirects(
    req: &Map<String, Value>,
    grants: &[&dyn Grant],
    method: AuthMethod,
) -> Result<(Vec<String>, Vec<String>), OAuthError> {
    let redirect_uris: Vec<String> =
        optional_string_list(req, "redirect_uris", MAX_REDIRECT_URIS, MAX_URI_CHARS)
            .map_err(|e| OAuthError::new(ErrorCode::InvalidRedirectUri, e.description))?
            .unwrap_or_default()
            .into_iter()
            .map(|u| validate_redirect_uri(u).map(|_| u.to_string()))
            .collect::<Result<_, _>>()?;
    let code_grant = grants.iter().find(|g| g.uses_redirect());
    if let Some(g) = code_grant
        && redirect_uris.is_empty()
    {
        return Err(redirect_error(format!(
            "redirect_uris is required for the {} grant",
            g.grant_type()
        )));
    }
    // A private-use scheme (RFC 8252 §7.1) can be claimed by any app on the
    // device, so only a public client — which proves nothing anyway and is
    // protected by PKCE — may use one; a confidential client's code must
    // return to a web address it controls.
    if method != AuthMethod::None
        && let Some(u) = redirect_uris.iter().find(|u| {
            let scheme = u.split(':').next().unwrap_or_default();
            !(scheme.eq_ignore_ascii_case("https") || scheme.eq_ignore_ascii_case("http"))
        })
    {
        return Err(redirect_error(format!(
            "{u:?}: private-use URI schemes are allowed only for public clients (token_endpoint_auth_method \"none\")"
        )));
    }
    // RFC 7591 §2: `code` is the default, and the only response type
    // (OAuth 2.1 §4.1.1). Others beside it are dropped, like unsupported
    // grant types; a list without it asks for nothing this server does and
    // is refused. Without the code grant it means nothing: a machine
    // client's `["code"]` is dropped, as the response then shows.
    let sent = optional_string_list(req, "response_types", 8, 64)?;
    if let Some(sent) = &sent
        && !sent.is_empty()
        && !sent.contains(&"code")
    {
        return Err(metadata_error(format!(
            "response types {sent:?} are not supported: only \"code\" is"
        )));
    }
    let response_types = match code_grant {
        Some(_) => vec!["code".to_string()],
        None => Vec::new(),
    };
    Ok((redirect_uris, response_types))
}

/// `scope`, each among `scopes_supported` when the server has a list.
fn requested_scopes(
    req: &Map<String, Value>,
    caps: &Capabilities<'_>,
) -> Result<Option<Vec<String>>, OAuthError> {
    let Some(s) = optional_string(req, "scope", MAX_SCOPES * (MAX_SCOPE_BYTES + 1))? else {
        return Ok(None);
    };
    let scopes = parse_scope(s).map_err(metadata_error)?;
    if let Some(supported) = &caps.scopes_supported
        && let Some(bad) = scopes.iter().find(|s| !supported.contains(s))
    {
        return Err(metadata_error(format!("scope {bad:?} is not supported")));
    }
    Ok(Some(scopes))
}

/// The members kept verbatim for display (URLs must be http(s)), the ID
/// token algorithm (OIDC Registration §2) and `contacts`.
fn display_fields(
    req: &Map<String, Value>,
    caps: &Capabilities<'_>,
) -> Result<Map<String, Value>, OAuthError> {
    let mut extra = Map::new();
    for (field, is_url) in EXTRA_STRINGS {
        let max = if *is_url {
            MAX_URI_CHARS
        } else {
            MAX_CLIENT_NAME_BYTES
        };
        if let Some(v) = optional_string(req, field, max)? {
            if *is_url {
                let ok = Url::parse(v).is_ok_and(|u| matches!(u.scheme(), "https" | "http"));
                if !ok {
                    return Err(metadata_error(format!("{field} must be an http(s) URL")));
                }
            }
            extra.insert((*field).to_string(), Value::String(v.to_string()));
        }
    }
    if let Some(alg) = optional_string(req, ID_TOKEN_ALG_FIELD, 16)? {
        if !caps.id_token_algs.iter().any(|a| a.as_str() == alg) {
            return Err(metadata_error(format!(
                "{ID_TOKEN_ALG_FIELD} {alg:?} is not supported (supported: {})",
                caps.id_token_algs
                    .iter()
                    .map(|a| a.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        extra.insert(ID_TOKEN_ALG_FIELD.into(), Value::String(alg.to_string()));
    }
    if let Some(contacts) =
        optional_string_list(req, "contacts", MAX_LIST_ITEMS, MAX_CLIENT_NAME_BYTES)?
    {
        extra.insert("contacts".into(), contacts.into());
    }
    Ok(extra)
}

/// `jwks` / `jwks_uri` (RFC 7591 §2): a `private_key_jwt` client needs
/// exactly one — RFC 7591 forbids both, and without either it could never
/// authenticate. Other methods have them dropped (the keys would never be used).
/// An inline set is validated and reduced like the CLI's `--jwks`.
fn client_keys(
    req: &Map<String, Value>,
    method: AuthMethod,
    allow_http_loopback: bool,
) -> Result<(Option<Value>, Option<String>), OAuthError> {
    let jwks = req.get("jwks").filter(|v| !v.is_null());
    let uri = optional_string(req, "jwks_uri", MAX_URI_CHARS)?;
    match (method == AuthMethod::PrivateKeyJwt, jwks, uri) {
        // Other methods would never use the keys: dropped like unknown metadata
        // (docs/decisions.md "Registration"), and the response shows they were.
        (false, _, _) => Ok((None, None)),
        (true, Some(_), Some(_)) => Err(metadata_error(
            "give either jwks or jwks_uri, not both (RFC 7591 §2)",
        )),
        (true, None, None) => Err(metadata_error(
            "private_key_jwt needs the client's public keys: jwks or jwks_uri",
        )),
        (true, Some(j), None) => {
            let raw = serde_json::to_vec(j).map_err(|e| metadata_error(e.to_string()))?;
            validate_client_jwks(&raw)
                .map(|v| (Some(v), None))
                .map_err(|e| metadata_error(format!("jwks: {e}")))
        }
        (true, None, Some(u)) => validate_jwks_uri(u, allow_http_loopback)
            .map(|_| (None, Some(u.to_string())))
            .map_err(metadata_error),
    }
}
