//! A token request as the core sees it: the form parameters and the HTTP
//! Basic credentials, already decoded by the HTTP layer.

use crate::error::OAuthError;
use crate::limits::{MAX_PARAM_BYTES, MAX_PARAMS};
use percent_encoding::percent_decode;

#[derive(Debug, Default, Clone)]
pub struct TokenRequest {
    params: Vec<(String, String)>,
    /// `Authorization: Basic` credentials, both parts form-urldecoded
    /// (RFC 6749 §2.3.1).
    pub basic: Option<(String, String)>,
}

/// Parameters that may repeat (RFC 8707 §2: `resource`).
const REPEATABLE: &[&str] = &["resource"];

impl TokenRequest {
    /// Parses an `application/x-www-form-urlencoded` body strictly: the body and
    /// every decoded name and value must be UTF-8, within the size limits, and
    /// no parameter other than `resource` may appear twice (RFC 6749 §3.2).
    ///
    /// Hand-written rather than `form_urlencoded::parse`, which replaces invalid
    /// UTF-8 with U+FFFD instead of reporting it.
    pub fn from_form(body: &[u8]) -> Result<TokenRequest, OAuthError> {
        let mut params: Vec<(String, String)> = Vec::new();
        for pair in body.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
            if params.len() >= MAX_PARAMS {
                return Err(OAuthError::invalid_request("too many parameters"));
            }
            let (name, value) = match pair.iter().position(|b| *b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &pair[pair.len()..]),
            };
            let name = form_decode(name)?;
            let value = form_decode(value)?;
            if value.len() > MAX_PARAM_BYTES {
                return Err(OAuthError::invalid_request(format!(
                    "parameter {name:?} is longer than {MAX_PARAM_BYTES} bytes"
                )));
            }
            if !REPEATABLE.contains(&name.as_str()) && params.iter().any(|(n, _)| *n == name) {
                return Err(OAuthError::invalid_request(format!(
                    "parameter {name:?} is repeated"
                )));
            }
            params.push((name, value));
        }
        Ok(TokenRequest {
            params,
            basic: None,
        })
    }

    /// The single value of a parameter; an empty value counts as absent
    /// (RFC 6749 §3.2).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, v)| n == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// Every non-empty value of a repeatable parameter.
    pub fn params_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.params
            .iter()
            .filter(move |(n, v)| n == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }
}

/// Decodes one `application/x-www-form-urlencoded` component ('+' is a space).
pub fn form_decode(raw: &[u8]) -> Result<String, OAuthError> {
    let plus_decoded: Vec<u8> = raw
        .iter()
        .map(|b| if *b == b'+' { b' ' } else { *b })
        .collect();
    percent_decode(&plus_decoded)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| OAuthError::invalid_request("request body is not valid UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_parsing_is_strict() {
        let r = TokenRequest::from_form(b"grant_type=client_credentials&scope=a+b%20c").unwrap();
        assert_eq!(r.param("scope"), Some("a b c"));
        assert!(TokenRequest::from_form(b"a=1&a=2").is_err());
        assert!(TokenRequest::from_form(b"a=%FF").is_err());
        assert!(TokenRequest::from_form(b"resource=x&resource=y").is_ok());
        assert_eq!(TokenRequest::from_form(b"a=").unwrap().param("a"), None);
    }
}
