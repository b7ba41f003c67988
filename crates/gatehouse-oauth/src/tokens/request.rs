//! A token, revocation or introspection request as the core sees it: the
//! form parameters and the HTTP Basic credentials, already decoded by the
//! HTTP layer (RFC 6749 §3.2, §2.3.1).

use crate::error::OAuthError;
use crate::form::FormParams;

#[derive(Debug, Default, Clone)]
pub struct TokenRequest {
    form: FormParams,
    /// `Authorization: Basic` credentials, both parts form-urldecoded
    /// (RFC 6749 §2.3.1).
    pub basic: Option<(String, String)>,
}

impl TokenRequest {
    /// Parses the form body strictly ([`FormParams::parse`]); the Basic
    /// credentials are the HTTP layer's to add.
    pub fn from_form(body: &[u8]) -> Result<TokenRequest, OAuthError> {
        Ok(TokenRequest {
            form: FormParams::parse(body)?,
            basic: None,
        })
    }

    /// The single value of a parameter; an empty value counts as absent
    /// (RFC 6749 §3.2).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.form.param(name)
    }

    /// Every non-empty value of a repeatable parameter.
    pub fn params_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.form.params_all(name)
    }
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
