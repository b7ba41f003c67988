//! What a browser sends: the authorization request's parameters (RFC 6749
//! §4.1.1, from a query string or a form) and the forms posted from
//! Gatehouse's own sign-in, consent and sign-out pages. Both are parsed by
//! the strict form parser ([`FormParams`]).

use crate::error::OAuthError;
use crate::form::FormParams;

/// The parameters of an authorization request, not yet validated
/// (`AuthorizationServer::authorization_request` does that).
#[derive(Debug, Default, Clone)]
pub struct AuthorizationParams {
    form: FormParams,
}

impl AuthorizationParams {
    pub fn parse(raw: &[u8]) -> Result<AuthorizationParams, OAuthError> {
        Ok(AuthorizationParams {
            form: FormParams::parse(raw)?,
        })
    }

    /// The single value of a parameter; an empty value counts as absent
    /// (RFC 6749 §3.1).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.form.param(name)
    }

    /// Every `resource` sent (RFC 8707 §2).
    pub fn resources(&self) -> impl Iterator<Item = &str> {
        self.form.params_all("resource")
    }
}

/// A form posted from one of Gatehouse's own pages: the CSRF token, the
/// authorization request it carries along, and the person's answer.
#[derive(Debug, Default, Clone)]
pub struct PageForm {
    form: FormParams,
}

impl PageForm {
    pub fn parse(raw: &[u8]) -> Result<PageForm, OAuthError> {
        Ok(PageForm {
            form: FormParams::parse(raw)?,
        })
    }

    /// The CSRF token the page was rendered with.
    pub fn csrf(&self) -> Option<&str> {
        self.form.param("csrf")
    }

    /// The authorization request the page was shown for, still encoded.
    pub fn request(&self) -> Option<&str> {
        self.form.param("request")
    }

    /// Sign-in: the account name as typed.
    pub fn username(&self) -> Option<&str> {
        self.form.param("username")
    }

    /// Sign-in: the password.
    pub fn password(&self) -> Option<&str> {
        self.form.param("password")
    }

    /// Consent: `allow` or `deny`.
    pub fn decision(&self) -> Option<&str> {
        self.form.param("decision")
    }

    /// Consent: the MAC over what the page showed.
    pub fn shown(&self) -> Option<&str> {
        self.form.param("shown")
    }

    /// Sign-in: the upstream provider chosen.
    pub fn provider(&self) -> Option<&str> {
        self.form.param("provider")
    }

    /// Sign-in and sign-out: the Cancel button was pressed.
    pub fn cancelled(&self) -> bool {
        self.form.param("cancel") == Some("cancel")
    }
}
