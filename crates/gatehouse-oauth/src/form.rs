//! Strict `application/x-www-form-urlencoded` parsing, shared by the token
//! endpoint's request, the authorization request and the forms of
//! Gatehouse's own pages.

use crate::error::OAuthError;
use crate::limits::{MAX_PARAM_BYTES, MAX_PARAMS};
use percent_encoding::percent_decode;

/// Parameters that may repeat (RFC 8707 §2: `resource`).
const REPEATABLE: &[&str] = &["resource"];

/// Decoded form parameters, in the order they came.
#[derive(Debug, Default, Clone)]
pub struct FormParams {
    params: Vec<(String, String)>,
}

impl FormParams {
    /// Parses a form body strictly: the body and every decoded name and
    /// value must be UTF-8, within the size limits, and no parameter other
    /// than `resource` may appear twice (RFC 6749 §3.1, §3.2).
    ///
    /// Hand-written rather than `form_urlencoded::parse`, which replaces
    /// invalid UTF-8 with U+FFFD instead of reporting it.
    pub fn parse(body: &[u8]) -> Result<FormParams, OAuthError> {
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
        Ok(FormParams { params })
    }

    /// The single value of a parameter; an empty value counts as absent
    /// (RFC 6749 §3.1, §3.2).
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
        let r = FormParams::parse(b"grant_type=client_credentials&scope=a+b%20c").unwrap();
        assert_eq!(r.param("scope"), Some("a b c"));
        assert!(FormParams::parse(b"a=1&a=2").is_err());
        assert!(FormParams::parse(b"a=%FF").is_err());
        assert!(FormParams::parse(b"resource=x&resource=y").is_ok());
        assert_eq!(FormParams::parse(b"a=").unwrap().param("a"), None);
    }
}
