//! The issuer identifier (RFC 8414 §2) and the endpoint URLs derived from it.

use url::Url;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issuer {
    /// Exactly as configured; metadata echoes it byte for byte.
    url: String,
    /// The issuer's path ("" or "/tenant"), under which endpoints are served.
    path: String,
}

pub const TOKEN_PATH: &str = "/oauth/token";
pub const REGISTER_PATH: &str = "/oauth/register";
/// RFC 7009 §2.
pub const REVOKE_PATH: &str = "/oauth/revoke";
/// RFC 7662 §2.
pub const INTROSPECT_PATH: &str = "/oauth/introspect";
pub const JWKS_PATH: &str = "/.well-known/jwks.json";
/// RFC 6749 §3.1.
pub const AUTHORIZE_PATH: &str = "/oauth/authorize";
/// OIDC Core §5.3.
pub const USERINFO_PATH: &str = "/oauth/userinfo";
/// The sign-in, consent and sign-out pages' form targets.
pub const SIGNIN_PATH: &str = "/oauth/signin";
pub const CONSENT_PATH: &str = "/oauth/consent";
pub const SIGNOUT_PATH: &str = "/oauth/signout";
/// Where upstream identity providers send people back.
pub const CALLBACK_PATH: &str = "/oauth/callback";
/// Starting a sign-in at an upstream provider (the sign-in page's buttons).
pub const FEDERATE_PATH: &str = "/oauth/federate";

impl Issuer {
    /// Validates an issuer: absolute http(s) URL, https unless the host is a
    /// loopback address, no query, fragment, userinfo or trailing slash.
    pub fn parse(s: &str) -> Result<Issuer, String> {
        let url = Url::parse(s).map_err(|e| format!("not an absolute URL ({e})"))?;
        if url.query().is_some() || s.contains('?') {
            return Err("must not have a query".into());
        }
        if url.fragment().is_some() || s.contains('#') {
            return Err("must not have a fragment".into());
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not contain user information".into());
        }
        if s.ends_with('/') {
            return Err("must not end with a slash".into());
        }
        match url.scheme() {
            "https" => {}
            "http" if is_loopback_host(&url) => {}
            "http" => return Err("must use https unless the host is a loopback address".into()),
            other => return Err(format!("unsupported scheme {other:?}")),
        }
        // Url normalises; insist the configured string is already normal so the
        // value we echo equals what clients compare against.
        let normal = url.as_str().trim_end_matches('/');
        if normal != s {
            return Err(format!("is not in normal form (did you mean {normal:?}?)"));
        }
        let path = url.path().trim_end_matches('/').to_string();
        Ok(Issuer {
            url: s.to_string(),
            path,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.url
    }

    /// The issuer's path component ("" for a bare origin).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The full URL of an endpoint served under the issuer.
    pub fn endpoint(&self, path: &str) -> String {
        format!("{}{}", self.url, path)
    }
}

pub fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuer_rules() {
        assert!(Issuer::parse("http://127.0.0.1:8080").is_ok());
        assert!(Issuer::parse("https://auth.example.com/tenant").is_ok());
        assert!(Issuer::parse("http://auth.example.com").is_err());
        assert!(Issuer::parse("https://auth.example.com/").is_err());
        assert!(Issuer::parse("https://auth.example.com?x=1").is_err());
        assert!(Issuer::parse("https://auth.example.com#f").is_err());
        assert!(Issuer::parse("https://u:p@auth.example.com").is_err());
        assert_eq!(
            Issuer::parse("https://a.example/t")
                .unwrap()
                .endpoint(TOKEN_PATH),
            "https://a.example/t/oauth/token"
        );
    }
}
