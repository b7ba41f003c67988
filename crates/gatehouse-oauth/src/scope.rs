//! Scope strings (RFC 6749 §3.3).

use crate::limits::{MAX_SCOPE_BYTES, MAX_SCOPES};

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
