//! What the two grants that serve people share: narrowing a grant to one
//! token request, minting the person's access token, refresh token and ID
//! token.

use super::TokenContext;
use crate::client::Client;
use crate::client_auth::SecretVerifier;
use crate::crypto::{b64url, random_bytes};
use crate::error::{ErrorCode, OAuthError};
use crate::grant_records::{IssuedToken, LinkedIdentity, RefreshToken, User, lookup_hash};
use crate::keys::Alg;
use crate::resource::same_resource;
use crate::scope::{OPENID, parse_scope};
use crate::tokens::issue::{AccessTokenClaims, new_jti, sign_access_token};
use crate::tokens::request::TokenRequest;
use serde::Serialize;

/// The one audience of this token: the `resource` requested, which must be
/// one the grant covers (in the grant's spelling), or the grant's only one
/// (RFC 8707 §2.2: the token request may narrow, never change;
/// docs/decisions.md "Tokens": one audience per token).
pub(super) fn narrow_resource(
    req: &TokenRequest,
    granted: &[String],
) -> Result<String, OAuthError> {
    let target = |d: &str| OAuthError::new(ErrorCode::InvalidTarget, d);
    let requested: Vec<&str> = req.params_all("resource").collect();
    match (requested.as_slice(), granted) {
        ([], [only]) => Ok(only.clone()),
        ([], _) => Err(target(
            "a resource parameter is required: the grant covers more than one resource",
        )),
        ([one], _) => granted
            .iter()
            .find(|g| same_resource(g, one))
            .cloned()
            .ok_or_else(|| target("the resource was not part of the authorization")),
        _ => Err(target(
            "exactly one resource may be requested per token request",
        )),
    }
}

/// The scopes of this token: those requested, each among the granted ones
/// (RFC 6749 §6: never wider), or all granted ones.
pub(super) fn narrow_scopes(
    req: &TokenRequest,
    granted: &[String],
) -> Result<Vec<String>, OAuthError> {
    let invalid = |d: String| OAuthError::new(ErrorCode::InvalidScope, d);
    let Some(requested) = req.param("scope") else {
        return Ok(granted.to_vec());
    };
    let scopes = parse_scope(requested).map_err(invalid)?;
    if let Some(bad) = scopes.iter().find(|s| !granted.contains(s)) {
        return Err(invalid(format!(
            "scope {bad:?} was not granted; a token may narrow the grant, never widen it"
        )));
    }
    Ok(scopes)
}

/// The identity a person who signs in at a provider last signed in with;
/// `None` for an account with a password here (no lookup then).
async fn last_linked(
    ctx: &TokenContext<'_>,
    user: &User,
) -> Result<Option<LinkedIdentity>, OAuthError> {
    if user.password_hash != crate::people::federated_sign_in::NO_PASSWORD {
        return Ok(None);
    }
    let links = ctx.store.list_linked_identities(&user.id).await?;
    Ok(links.into_iter().max_by_key(|l| l.last_sign_in_at))
}

/// A person's access token (RFC 9068) and the record that lets revoking the
/// grant revoke it.
pub(super) async fn access_token(
    ctx: &TokenContext<'_>,
    client: &Client,
    user: &User,
    aud: &str,
    scope: &str,
    auth_time: i64,
) -> Result<(String, IssuedToken), OAuthError> {
    let link = last_linked(ctx, user).await?;
    let link = link.as_ref();
    let ttl = ctx.settings.access_token_ttl.as_secs() as i64;
    let claims = AccessTokenClaims {
        iss: ctx.settings.issuer.as_str(),
        sub: &user.id,
        client_id: &client.id,
        aud,
        scope,
        iat: ctx.now,
        exp: ctx.now + ttl,
        jti: new_jti(),
        auth_time: Some(auth_time),
        groups: (!user.groups.is_empty()).then_some(user.groups.as_slice()),
        idp: link.map(|l| l.provider.as_str()),
        email: link.and_then(|l| l.email.as_deref()),
        email_verified: link.filter(|l| l.email.is_some()).map(|l| l.email_verified),
    };
    let token = sign_access_token(&ctx.keys.current, &claims)?;
    let issued = IssuedToken {
        jti: claims.jti,
        client_id: client.id.clone(),
        expires_at: claims.exp,
    };
    Ok((token, issued))
}

/// Domain separation for the tag that vouches for a refresh token's family.
const FAMILY_TAG: &str = "gatehouse refresh-token family";
/// Characters of that tag kept in the token (128 bits of base64url).
const FAMILY_TAG_CHARS: usize = 22;

/// The tag that vouches for family `family_id`: an HMAC under the server's
/// key, so only the server (and whoever holds one of the family's tokens)
/// can name a family in a token.
pub(super) fn family_tag(secrets: &SecretVerifier, family_id: &str) -> Result<String, OAuthError> {
    let tag = secrets.derive(FAMILY_TAG, family_id).ok_or_else(|| {
        tracing::error!("no current secret-hashing key to tag a refresh token");
        OAuthError::server_error()
    })?;
    Ok(tag.chars().take(FAMILY_TAG_CHARS).collect())
}

/// The start every refresh token of family `family_id` carries:
/// `<family id>.<tag>.`, so a retired token is recognised after its row is
/// gone ([`family_of`]).
pub(super) fn refresh_prefix(
    secrets: &SecretVerifier,
    family_id: &str,
) -> Result<String, OAuthError> {
    Ok(format!("{family_id}.{}.", family_tag(secrets, family_id)?))
}

/// A new refresh token of family `family_id`: its prefix and 256 random
/// bits, kept as its hash.
pub(super) fn new_refresh_token(
    secrets: &SecretVerifier,
    family_id: &str,
) -> Result<String, OAuthError> {
    Ok(format!(
        "{}{}",
        refresh_prefix(secrets, family_id)?,
        b64url(&random_bytes::<32>())
    ))
}

/// The grant family a refresh token names and the tag it carries for it,
/// when it is in this server's form (`f_` + 22 base64url characters, a dot,
/// the tag, a dot, the rest); the caller checks the tag. Tokens issued
/// before families were written into them name none.
pub(super) fn family_of(token: &str) -> Option<(&str, &str)> {
    let mut parts = token.splitn(3, '.');
    let (family, tag, rest) = (parts.next()?, parts.next()?, parts.next()?);
    let b64url = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    let id = family.strip_prefix("f_")?;
    let well_formed = id.len() == 22
        && b64url(id)
        && tag.len() == FAMILY_TAG_CHARS
        && b64url(tag)
        && !rest.is_empty();
    well_formed.then_some((family, tag))
}

/// The refresh-token row for `token`, expiring after the refresh lifetime
/// but never after the grant itself.
pub(super) fn refresh_row(
    ctx: &TokenContext<'_>,
    token: &str,
    family_id: &str,
    family_expires_at: i64,
) -> RefreshToken {
    let lifetime = ctx.settings.people.refresh_token_lifetime.as_secs() as i64;
    RefreshToken {
        hash: lookup_hash(token),
        family_id: family_id.to_string(),
        expires_at: (ctx.now + lifetime).min(family_expires_at),
        used_at: None,
    }
}

/// The members of an ID token (OIDC Core §2), in `claims_supported`.
pub const ID_TOKEN_CLAIMS: &[&str] = &["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce"];

#[derive(Serialize)]
struct IdTokenClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: i64,
    iat: i64,
    auth_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
}

/// The registration field naming the client's ID token algorithm.
pub const ID_TOKEN_ALG_FIELD: &str = "id_token_signed_response_alg";

/// The algorithm a client's ID tokens are signed with: the one it
/// registered, or RS256 (OIDC Core §3.1.3.7, Registration §2).
pub fn id_token_alg(client: &Client) -> Alg {
    client
        .metadata
        .extra
        .get(ID_TOKEN_ALG_FIELD)
        .and_then(|v| v.as_str())
        .and_then(|a| a.parse().ok())
        .unwrap_or(Alg::RS256)
}

/// An ID token (OIDC Core §2) when the grant includes `openid`.
pub(super) fn id_token(
    ctx: &TokenContext<'_>,
    client: &Client,
    user: &User,
    scopes: &[String],
    auth_time: i64,
    nonce: Option<&str>,
) -> Result<Option<String>, OAuthError> {
    if !scopes.iter().any(|s| s == OPENID) {
        return Ok(None);
    }
    let alg = id_token_alg(client);
    let key = ctx.keys.current_for(alg).ok_or_else(|| {
        tracing::error!(%alg, "no current key for the client's ID token algorithm");
        OAuthError::server_error()
    })?;
    let claims = IdTokenClaims {
        iss: ctx.settings.issuer.as_str(),
        sub: &user.id,
        aud: &client.id,
        exp: ctx.now + ctx.settings.access_token_ttl.as_secs() as i64,
        iat: ctx.now,
        auth_time,
        nonce,
    };
    key.sign_jwt("JWT", &claims).map(Some).map_err(|e| {
        tracing::error!(error = %e, "ID token signing failed");
        OAuthError::server_error()
    })
}

/// The one refusal for a code or refresh token that cannot be used, whatever
/// the reason (unknown, expired, used, another client's): RFC 6749 §5.2.
pub(super) fn invalid_grant(what: &str) -> OAuthError {
    OAuthError::new(
        ErrorCode::InvalidGrant,
        format!("the {what} is invalid, expired, revoked or was issued to another client"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_token_claims_lists_every_member_an_id_token_carries() {
        let claims = IdTokenClaims {
            iss: "i",
            sub: "s",
            aud: "a",
            exp: 2,
            iat: 1,
            auth_time: 1,
            nonce: Some("n"),
        };
        let json = serde_json::to_value(&claims).unwrap();
        let mut members: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut listed = ID_TOKEN_CLAIMS.to_vec();
        members.sort_unstable();
        listed.sort_unstable();
        assert_eq!(members, listed);
    }

    #[test]
    fn a_refresh_token_names_its_family_only_in_this_servers_form() {
        let family = "f_AAAAAAAAAAAAAAAAAAAAAA";
        let tag = "BBBBBBBBBBBBBBBBBBBBBB";
        let token = format!("{family}.{tag}.{}", b64url(&random_bytes::<32>()));
        assert_eq!(family_of(&token), Some((family, tag)));
        for other in [
            "f_AAAAAAAAAAAAAAAAAAAAAA.BBBBBBBBBBBBBBBBBBBBBB.",
            "f_AAAAAAAAAAAAAAAAAAAAAA.BBBBBBBBBBBBBBBBBBBBBB",
            "f_AAAAAAAAAAAAAAAAAAAAAA.x",
            "f_AAAAAAAAAAAAAAAAAAAAAA.BBBBBBBBBBBBBBBBBBBBB.x",
            "f_AAAAAAAAAAAAAAAAAAAAAA.BBBBBBBBBBBBBBBBBBBBB+.x",
            "f_AAAAAAAAAAAAAAAAAAAAA.BBBBBBBBBBBBBBBBBBBBBB.x",
            "g_AAAAAAAAAAAAAAAAAAAAAA.BBBBBBBBBBBBBBBBBBBBBB.x",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "",
            "..",
        ] {
            assert_eq!(family_of(other), None, "{other}");
        }
    }
}
