//! Built-in accounts: names, subjects, passwords, and the userinfo answer
//! (OIDC Core §5.3).
//!
//! Human passwords are the one place for a slow hash (docs/decisions.md
//! "Principles"): argon2id with the OWASP parameters (m = 19 MiB, t = 2, p = 1
//! — the `argon2` crate's defaults), a random 16-byte salt, stored as a PHC
//! string.

use crate::crypto::random_bytes;
use crate::error::{ErrorCode, OAuthError};
use crate::grant_records::User;
use crate::limits::{MAX_GROUP_BYTES, MAX_GROUPS, MAX_PASSWORD_BYTES, MAX_USER_NAME_BYTES};
use crate::scope::OPENID;
use crate::server::AuthorizationServer;
use crate::tokens::verify::AccessToken;
use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use std::sync::OnceLock;

/// A new subject: `u_` + a random (version 4) UUID, so it can never collide
/// with a client id (docs/decisions.md "Keys, secrets and identifiers").
pub fn new_user_id() -> String {
    let mut b = random_bytes::<16>();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "u_{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Sign-in names: `[a-z0-9._@-]{1,64}` (lower case, so "Alice" and "alice"
/// are one account).
pub fn validate_user_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_USER_NAME_BYTES {
        return Err(format!(
            "user names are 1 to {MAX_USER_NAME_BYTES} characters"
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._@-".contains(&b))
    {
        return Err("user names may contain only a-z, 0-9, '.', '_', '@' and '-'".into());
    }
    Ok(())
}

/// Group names: like scope tokens, `[A-Za-z0-9._:-]{1,64}`, at most 32.
pub fn validate_groups(groups: &[String]) -> Result<(), String> {
    if groups.len() > MAX_GROUPS {
        return Err(format!("a user has at most {MAX_GROUPS} groups"));
    }
    for g in groups {
        if g.is_empty()
            || g.len() > MAX_GROUP_BYTES
            || !g
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
        {
            return Err(format!(
                "group {g:?}: 1 to {MAX_GROUP_BYTES} characters of A-Z, a-z, 0-9, '.', '_', ':' and '-'"
            ));
        }
    }
    Ok(())
}

/// Checks a new password: at least 8 characters (NIST SP 800-63B §3.1.1.2),
/// at most [`MAX_PASSWORD_BYTES`].
pub fn validate_password(password: &str) -> Result<(), String> {
    if password.chars().count() < 8 {
        return Err("passwords must be at least 8 characters".into());
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(format!("passwords are at most {MAX_PASSWORD_BYTES} bytes"));
    }
    Ok(())
}

/// The argon2id PHC string of `password` under a fresh salt. Slow (tens of
/// milliseconds) by design: call it off the async runtime.
pub fn hash_password(password: &str) -> Result<String, String> {
    Argon2::default()
        .hash_password_with_salt(password.as_bytes(), &random_bytes::<16>())
        .map(|h| h.to_string())
        .map_err(|e| format!("password hashing failed: {e}"))
}

/// Whether `password` matches the stored PHC string. Slow, like
/// [`hash_password`]; the comparison inside is constant-time.
pub fn verify_password(password: &str, phc: &str) -> bool {
    password.len() <= MAX_PASSWORD_BYTES
        && Argon2::default()
            .verify_password(password.as_bytes(), phc)
            .is_ok()
}

/// The hash a sign-in for a name without an account is checked against.
fn dummy_phc() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_password("not anyone's password").unwrap_or_default())
}

/// Computes the dummy hash ahead of the first sign-in (which would
/// otherwise take twice as long for an unknown name). Slow: call it off
/// the async runtime.
pub fn warm_up() {
    let _ = dummy_phc();
}

/// Checks a sign-in against the account found for the name (if any): the
/// user when the password matches. Without an account the same time is
/// spent on a dummy hash, so timing does not tell whether the name exists.
/// Slow by design: call it off the async runtime.
pub fn check_sign_in(user: Option<User>, password: &str) -> Option<User> {
    match user {
        // An account that signs in at an identity provider has no password
        // here; it costs the same as an unknown name, so the answer's timing
        // does not tell which it is.
        Some(u) if u.password_hash == crate::people::federated_sign_in::NO_PASSWORD => {
            let _ = verify_password(password, dummy_phc());
            None
        }
        Some(u) if verify_password(password, &u.password_hash) => Some(u),
        Some(_) => None,
        None => {
            let _ = verify_password(password, dummy_phc());
            None
        }
    }
}

/// What `userinfo` adds to `sub` with the `profile` scope, in
/// `claims_supported`.
pub const USERINFO_CLAIMS: &[&str] = &["preferred_username", "groups"];

impl AuthorizationServer {
    /// The userinfo response (OIDC Core §5.3.2) for a bearer access token: any
    /// live token of ours carrying `openid`, whatever its audience
    /// (docs/decisions.md "Tokens"). `preferred_username` and `groups` come
    /// with the `profile` scope.
    pub async fn userinfo(&self, token: &str) -> Result<serde_json::Value, OAuthError> {
        let invalid = || {
            OAuthError::new(
                ErrorCode::InvalidToken,
                "the access token is invalid or expired",
            )
            .with_challenge(crate::error::Challenge::Bearer)
        };
        let claims: AccessToken = self.live_token(token).await?.ok_or_else(invalid)?;
        let scopes: Vec<&str> = claims.scope.split(' ').collect();
        if !scopes.contains(&OPENID) {
            return Err(OAuthError::new(
                ErrorCode::InsufficientScope,
                "the access token was not granted the openid scope",
            )
            .with_challenge(crate::error::Challenge::Bearer));
        }
        let user = self
            .store
            .get_user(&claims.sub)
            .await?
            .ok_or_else(invalid)?;
        let mut body = serde_json::json!({ "sub": user.id });
        if scopes.contains(&"profile") {
            // The members of USERINFO_CLAIMS.
            body["preferred_username"] = user.name.clone().into();
            body["groups"] = user.groups.clone().into();
        }
        Ok(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_are_u_and_a_version_4_uuid() {
        let id = new_user_id();
        assert_eq!(id.len(), 2 + 36);
        assert!(id.starts_with("u_"));
        assert_eq!(&id[16..17], "4");
        assert_ne!(id, new_user_id());
    }

    #[test]
    fn passwords_hash_with_argon2id_and_verify() {
        let phc = hash_password("correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify_password("correct horse", &phc));
        assert!(!verify_password("correct horsf", &phc));
        assert_ne!(phc, hash_password("correct horse").unwrap(), "salted");
    }

    #[test]
    fn names_groups_and_passwords_are_checked() {
        assert!(validate_user_name("alice@example.com").is_ok());
        assert!(validate_user_name("Alice").is_err());
        assert!(validate_user_name("").is_err());
        assert!(validate_groups(&["eng:oncall".into()]).is_ok());
        assert!(validate_groups(&["a b".into()]).is_err());
        assert!(validate_password("short").is_err());
        assert!(validate_password("long enough").is_ok());
    }
}
