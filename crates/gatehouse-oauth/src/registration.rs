//! Client metadata validation (RFC 7591 §2) — the one classifier every way of
//! registering a client goes through (docs/decisions.md "Registration").
//!
//! Rejected: `implicit`, `password`, `refresh_token` alone, an empty grant
//! list, `none` with a grant that needs a credential, unsafe redirect URIs.
//! Dropped, not failed: other unknown or unsupported grant types and unknown
//! metadata fields (RFC 7591 §2); the response echoes what was stored.

use crate::client::{AuthMethod, ClientMetadata};
use crate::client_keys::validate_jwks_uri;
use crate::error::{ErrorCode, OAuthError};
use crate::grants::Grant;
use crate::grants::authorization_code::GRANT_TYPE as CODE_GRANT;
use crate::grants::people::ID_TOKEN_ALG_FIELD;
use crate::jwks::validate_client_jwks;
use crate::keys::Alg;
use crate::limits::*;
use crate::scope::parse_scope;
use serde_json::{Map, Value};
use url::Url;

/// Grant types that are never acceptable (OAuth 2.1 removed them).
const FORBIDDEN_GRANTS: &[&str] = &["implicit", "password"];
const REFRESH_TOKEN: &str = "refresh_token";
/// Redirect URI schemes that can run code or read local data in a browser.
const FORBIDDEN_SCHEMES: &[&str] = &["javascript", "data", "file", "vbscript", "about", "blob"];
/// Display fields kept verbatim: (name, is a URL).
const EXTRA_STRINGS: &[(&str, bool)] = &[
    ("client_uri", true),
    ("logo_uri", true),
    ("tos_uri", true),
    ("policy_uri", true),
    ("software_id", false),
    ("software_version", false),
];

/// What the server supports, derived from its registries.
pub struct Capabilities<'a> {
    pub grants: &'a [Box<dyn Grant>],
    pub auth_methods: &'a [AuthMethod],
    /// `None`: any syntactically valid scope (the operator's command line
    /// when no `scopes_supported` is configured).
    pub scopes_supported: Option<&'a [String]>,
    /// `client_auth.allow_http_loopback_jwks_uri`.
    pub allow_http_loopback_jwks_uri: bool,
    /// The algorithms ID tokens can be signed with (a current key exists).
    pub id_token_algs: &'a [Alg],
}

fn metadata_error(d: impl Into<String>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidClientMetadata, d)
}

fn redirect_error(d: impl Into<String>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidRedirectUri, d)
}

fn optional_string<'a>(
    m: &'a Map<String, Value>,
    field: &str,
    max: usize,
) -> Result<Option<&'a str>, OAuthError> {
    match m.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.len() > max => Err(metadata_error(format!(
            "{field} is longer than {max} bytes"
        ))),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(metadata_error(format!("{field} must be a string"))),
    }
}

fn optional_string_list<'a>(
    m: &'a Map<String, Value>,
    field: &str,
    max_items: usize,
    max_len: usize,
) -> Result<Option<Vec<&'a str>>, OAuthError> {
    let items = match m.get(field) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(a)) => a,
        Some(_) => {
            return Err(metadata_error(format!(
                "{field} must be an array of strings"
            )));
        }
    };
    if items.len() > max_items {
        return Err(metadata_error(format!(
            "{field} has more than {max_items} entries"
        )));
    }
    items
        .iter()
        .map(|v| match v {
            Value::String(s) if s.len() <= max_len => Ok(s.as_str()),
            Value::String(_) => Err(metadata_error(format!(
                "an entry of {field} is longer than {max_len} characters"
            ))),
            _ => Err(metadata_error(format!(
                "{field} must be an array of strings"
            ))),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Validates one redirect URI (RFC 7591 §2, RFC 9700 §4.1, RFC 8252 §7.3).
pub fn validate_redirect_uri(s: &str) -> Result<(), OAuthError> {
    // `Url::parse` repairs what it is given (spaces, missing slashes, an empty
    // userinfo), but the string is stored and later compared byte for byte, so
    // the string itself must already be a clean absolute URI (RFC 3986 §4.3).
    if !s
        .bytes()
        .all(|b| b.is_ascii_graphic() && !b"<>\"{}|\\^`".contains(&b))
    {
        return Err(redirect_error(
            "redirect URIs must consist of URI characters only (no spaces or controls)",
        ));
    }
    if let Some((scheme, rest)) = s.split_once(':')
        && (scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https"))
    {
        let Some(after) = rest.strip_prefix("//") else {
            return Err(redirect_error(
                "http(s) redirect URIs must have an authority (\"//host\")",
            ));
        };
        let authority = &after[..after.find(['/', '?', '#']).unwrap_or(after.len())];
        if authority.contains('@') {
            return Err(redirect_error(
                "redirect URIs must not contain user information",
            ));
        }
    }
    if s.contains('*') {
        return Err(redirect_error("redirect URIs must not contain wildcards"));
    }
    if s.contains('#') {
        return Err(redirect_error("redirect URIs must not contain a fragment"));
    }
    let url = Url::parse(s).map_err(|_| redirect_error("redirect URIs must be absolute URIs"))?;
    if FORBIDDEN_SCHEMES.contains(&url.scheme()) {
        return Err(redirect_error(format!(
            "the {} scheme is not allowed in redirect URIs",
            url.scheme()
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(redirect_error(
            "redirect URIs must not contain user information",
        ));
    }
    if url.scheme() == "http" && !crate::issuer::is_loopback_host(&url) {
        return Err(redirect_error(
            "http redirect URIs are allowed only for loopback hosts (RFC 8252 §7.3)",
        ));
    }
    Ok(())
}

/// Classifies a registration request. `audiences` is the operator's audience
/// restriction (command line only; dynamic registration cannot set one).
pub fn classify(
    req: &Map<String, Value>,
    caps: &Capabilities<'_>,
    audiences: Option<Vec<String>>,
) -> Result<ClientMetadata, OAuthError> {
    // Grant types: RFC 7591 §2 default is authorization_code.
    let requested_grants = optional_string_list(req, "grant_types", 16, 256)?
        .unwrap_or_else(|| vec!["authorization_code"]);
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
    if requested_grants.iter().all(|g| *g == REFRESH_TOKEN) {
        return Err(metadata_error(
            "refresh_token must accompany a grant that issues refresh tokens",
        ));
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
    if requested_grants.contains(&REFRESH_TOKEN) && grants.iter().any(|g| g.issues_refresh_tokens())
    {
        grant_types.push(REFRESH_TOKEN.to_string());
    }

    // Authentication method: a credential-bearing grant defaults to Basic
    // (RFC 7591 §2), and `none` cannot use such a grant.
    let needs_credential = grants.iter().any(|g| g.requires_credential());
    let requested_method = optional_string(req, "token_endpoint_auth_method", 64)?;
    if needs_credential && requested_method == Some(AuthMethod::None.as_str()) {
        let g = grants.iter().find(|g| g.requires_credential());
        return Err(metadata_error(format!(
            "token_endpoint_auth_method \"none\" cannot be used with the {} grant: a public client cannot authenticate",
            g.map(|g| g.grant_type()).unwrap_or_default()
        )));
    }
    let method = match requested_method {
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
    };

    // Redirect URIs: optional for grants without a redirect.
    let redirect_uris: Vec<String> =
        optional_string_list(req, "redirect_uris", MAX_REDIRECT_URIS, MAX_URI_CHARS)
            .map_err(|e| OAuthError::new(ErrorCode::InvalidRedirectUri, e.description))?
            .unwrap_or_default()
            .into_iter()
            .map(|u| validate_redirect_uri(u).map(|_| u.to_string()))
            .collect::<Result<_, _>>()?;

    // Response types: only "code", and only with authorization_code.
    let has_code_grant = grant_types.iter().any(|g| g == CODE_GRANT);
    if has_code_grant && redirect_uris.is_empty() {
        return Err(redirect_error(
            "redirect_uris is required for the authorization_code grant",
        ));
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
    let response_types: Vec<String> = optional_string_list(req, "response_types", 8, 64)?
        .unwrap_or_default()
        .into_iter()
        .filter(|r| *r == "code" && has_code_grant)
        .map(str::to_string)
        .collect();

    let scopes = match optional_string(req, "scope", MAX_SCOPES * (MAX_SCOPE_BYTES + 1))? {
        None => None,
        Some(s) => {
            let scopes = parse_scope(s).map_err(metadata_error)?;
            if let Some(supported) = caps.scopes_supported
                && let Some(bad) = scopes.iter().find(|s| !supported.contains(s))
            {
                return Err(metadata_error(format!("scope {bad:?} is not supported")));
            }
            Some(scopes)
        }
    };

    let client_name =
        optional_string(req, "client_name", MAX_CLIENT_NAME_BYTES)?.map(str::to_string);

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

    let (jwks, jwks_uri) = client_keys(req, method, caps.allow_http_loopback_jwks_uri)?;

    Ok(ClientMetadata {
        client_name,
        grant_types,
        response_types,
        redirect_uris,
        token_endpoint_auth_method: method,
        scopes,
        audiences,
        jwks,
        jwks_uri,
        extra,
    })
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

#[cfg(test)]
mod tests {
    use super::validate_redirect_uri;

    #[test]
    fn redirect_uris_must_be_clean_absolute_uris() {
        for ok in [
            "https://app.example/cb",
            "https://app.example",
            "http://127.0.0.1:8080/callback",
            "http://localhost/cb?x=1",
            "com.example.app:/oauth",
        ] {
            assert!(validate_redirect_uri(ok).is_ok(), "{ok}");
        }
        for bad in [
            " https://app.example/cb",
            "https://app.example/c b",
            "https://app.example/cb\u{0}",
            "https://@app.example/cb",
            "https://u:p@app.example/cb",
            "http:/127.0.0.1/cb",
            "https:app.example/cb",
            "https://app.example/cb#x",
            "https://*.example/cb",
            "javascript:alert(1)",
            "http://app.example/cb",
            "/cb",
        ] {
            assert!(validate_redirect_uri(bad).is_err(), "{bad}");
        }
    }
}
