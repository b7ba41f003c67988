//! Scope strings (RFC 6749 §3.3).

use crate::client::Client;
use crate::error::{ErrorCode, OAuthError};
use crate::limits::{MAX_SCOPE_BYTES, MAX_SCOPES};
use crate::settings::Settings;

/// OIDC's scope that asks for an ID token (OIDC Core §3.1.2.1).
pub const OPENID: &str = "openid";

/// OIDC's scope for the person's profile claims (OIDC Core §5.4): here
/// `preferred_username` and `groups` at userinfo.
pub const PROFILE: &str = "profile";

/// The OIDC scopes people's grants understand, supported (and advertised)
/// whenever people can sign in, whatever `scopes_supported` configures.
pub const PEOPLE_SCOPES: &[&str] = &[OPENID, PROFILE];

/// `configured`, then the OIDC scopes when `people` can sign in.
pub fn with_people_scopes(configured: &[String], people: bool) -> Vec<String> {
    let mut out = configured.to_vec();
    if people {
        for s in PEOPLE_SCOPES {
            if !out.iter().any(|o| o == s) {
                out.push(s.to_string());
            }
        }
    }
    out
}

/// Parses a space-delimited scope string into distinct scope tokens, in order.
/// Each token is `1*( %x21 / %x23-5B / %x5D-7E )`.
pub fn parse_scope(s: &str) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for token in s.split(' ').filter(|t| !t.is_empty()) {
        if token.len() > MAX_SCOPE_BYTES {
            return Err(format!("a scope is longer than {MAX_SCOPE_BYTES} bytes"));
        }
        if !token
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
        {
            return Err("scope contains a character not allowed by RFC 6749 §3.3".into());
        }
        if !out.iter().any(|t| t == token) {
            out.push(token.to_string());
        }
        if out.len() > MAX_SCOPES {
            return Err(format!("more than {MAX_SCOPES} scopes"));
        }
    }
    Ok(out)
}

/// The scopes a token gets (docs/decisions.md "Tokens"): requested ⊆ registered
/// (or, for a client registered without scopes, ⊆ the advertised scopes: the
/// configured ones plus the OIDC scopes while people can sign in — with none
/// configured, only those); omitted → the registered scopes, or
/// `default_scopes`.
pub fn granted_scopes(
    settings: &Settings,
    client: &Client,
    requested: Option<&str>,
) -> Result<Vec<String>, OAuthError> {
    let invalid = |d: String| OAuthError::new(ErrorCode::InvalidScope, d);
    // Registered without scopes: what the server advertises (the OIDC
    // scopes included while people can sign in), checked without building
    // the list: this runs on every token request.
    let allowed = |s: &String| match client.metadata.scopes.as_deref() {
        Some(registered) => registered.contains(s),
        None => settings.advertises(s),
    };
    // A scope the operator has since removed from scopes_supported is no
    // longer granted, even to a client registered with it.
    let supported = |s: &String| settings.scope_supported(s);
    match requested {
        None => Ok(client
            .metadata
            .scopes
            .clone()
            .unwrap_or_else(|| settings.default_scopes.clone())
            .into_iter()
            .filter(supported)
            .collect()),
        Some(s) => {
            let scopes = parse_scope(s).map_err(invalid)?;
            if let Some(bad) = scopes.iter().find(|s| !allowed(s) || !supported(s)) {
                return Err(invalid(format!(
                    "scope {bad:?} is not allowed for this client"
                )));
            }
            Ok(scopes)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_dedupe_and_reject_bad_characters() {
        assert_eq!(parse_scope("a  b a").unwrap(), vec!["a", "b"]);
        assert!(parse_scope("a\"b").is_err());
        assert!(parse_scope("tab\there").is_err());
        assert!(parse_scope(&"x".repeat(200)).is_err());
        assert!(parse_scope("").unwrap().is_empty());
    }
}
