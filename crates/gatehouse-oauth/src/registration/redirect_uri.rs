//! Redirect URIs a client may register (RFC 7591 §2, RFC 9700 §4.1,
//! RFC 8252 §7.3): clean absolute URIs, no fragment, wildcard or user
//! information, no scheme that runs code, `http` only for loopback hosts.

use super::fields::redirect_error;
use crate::error::OAuthError;
use url::Url;

/// Redirect URI schemes that can run code or read local data in a browser.
const FORBIDDEN_SCHEMES: &[&str] = &["javascript", "data", "file", "vbscript", "about", "blob"];

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
