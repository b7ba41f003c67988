//! Resource indicators (RFC 8707) and the audiences they become.
//!
//! docs/decisions.md "Tokens": resources compare exactly after lower-casing
//! scheme and host; nothing else is normalised (no default-port or path
//! rewriting), so a resource server's configured URL and the token's `aud`
//! agree byte for byte.

use url::Url;

/// Checks that `s` is an absolute URI without a fragment (RFC 8707 §2).
pub fn validate_resource(s: &str) -> Result<(), String> {
    if s.len() > crate::limits::MAX_URI_CHARS {
        return Err("resource is too long".into());
    }
    if s.contains('#') {
        return Err("resource must not contain a fragment".into());
    }
    let url = Url::parse(s).map_err(|_| "resource must be an absolute URI".to_string())?;
    if url.cannot_be_a_base() || url.host().is_none() {
        return Err("resource must be an absolute URI with a host".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("resource must not contain user information".into());
    }
    Ok(())
}

/// The comparison form: scheme and host (the authority) lower-cased, the rest as is.
pub fn comparison_form(s: &str) -> String {
    match s.split_once("://") {
        Some((scheme, rest)) => {
            let end = rest.find(['/', '?']).unwrap_or(rest.len());
            let (authority, tail) = rest.split_at(end);
            format!(
                "{}://{}{}",
                scheme.to_ascii_lowercase(),
                authority.to_ascii_lowercase(),
                tail
            )
        }
        None => s.to_string(),
    }
}

pub fn same_resource(a: &str, b: &str) -> bool {
    a.len() == b.len() && comparison_form(a) == comparison_form(b)
}

/// Picks the one audience of a token (docs/decisions.md "Tokens": every access
/// token has exactly one). `requested` are the request's `resource` values;
/// `client` is the client's audience restriction, if any. The value returned is
/// the server's configured spelling, which is what resource servers compare.
pub fn select_audience(
    allowed: &[String],
    client: Option<&[String]>,
    requested: &[&str],
) -> Result<String, crate::error::OAuthError> {
    use crate::error::{ErrorCode, OAuthError};
    let target = |d: String| OAuthError::new(ErrorCode::InvalidTarget, d);
    let permitted = |aud: &str| client.is_none_or(|c| c.iter().any(|a| same_resource(a, aud)));
    match requested {
        [] => {
            let mut candidates = allowed.iter().filter(|a| permitted(a));
            match (candidates.next(), candidates.next()) {
                (Some(one), None) => Ok(one.clone()),
                (None, _) => Err(target(
                    "no audience is configured for this client; the server cannot mint tokens"
                        .into(),
                )),
                (Some(_), Some(_)) => Err(target(
                    "a resource parameter is required: more than one audience applies".into(),
                )),
            }
        }
        [one] => {
            validate_resource(one).map_err(target)?;
            allowed
                .iter()
                .find(|a| same_resource(a, one) && permitted(a))
                .cloned()
                .ok_or_else(|| target(format!("resource {one:?} is not an allowed audience")))
        }
        _ => Err(target(
            "exactly one resource may be requested per token request".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_compare_case_insensitively_only_in_scheme_and_host() {
        assert!(same_resource(
            "HTTPS://MCP.example/mcp",
            "https://mcp.example/mcp"
        ));
        assert!(!same_resource(
            "https://mcp.example/MCP",
            "https://mcp.example/mcp"
        ));
        assert!(!same_resource(
            "https://mcp.example/mcp/",
            "https://mcp.example/mcp"
        ));
        assert!(!same_resource(
            "https://mcp.example:443/mcp",
            "https://mcp.example/mcp"
        ));
    }

    #[test]
    fn resources_must_be_absolute_without_fragment() {
        assert!(validate_resource("https://mcp.example/mcp").is_ok());
        assert!(validate_resource("/mcp").is_err());
        assert!(validate_resource("https://mcp.example/mcp#x").is_err());
        assert!(validate_resource("urn:example:mcp").is_err());
    }

    #[test]
    fn the_audience_is_the_one_requested_or_the_only_one_that_applies() {
        let allowed = vec![
            "https://a.example/mcp".to_string(),
            "https://b.example/mcp".to_string(),
        ];
        let code = |r: Result<String, crate::error::OAuthError>| r.unwrap_err().code;
        use crate::error::ErrorCode::InvalidTarget;
        assert_eq!(
            select_audience(&allowed, None, &["HTTPS://A.example/mcp"]).unwrap(),
            "https://a.example/mcp",
            "the configured spelling is what goes into aud"
        );
        assert_eq!(code(select_audience(&allowed, None, &[])), InvalidTarget);
        let only_b = vec!["https://b.example/mcp".to_string()];
        assert_eq!(
            select_audience(&allowed, Some(&only_b), &[]).unwrap(),
            "https://b.example/mcp"
        );
        assert_eq!(
            code(select_audience(
                &allowed,
                Some(&only_b),
                &["https://a.example/mcp"]
            )),
            InvalidTarget
        );
        assert_eq!(code(select_audience(&[], None, &[])), InvalidTarget);
        assert_eq!(
            code(select_audience(
                &allowed,
                None,
                &["https://a.example/mcp", "https://b.example/mcp"]
            )),
            InvalidTarget
        );
    }
}
