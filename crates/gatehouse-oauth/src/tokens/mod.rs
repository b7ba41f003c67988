//! Tokens: the token endpoint's request and dispatch, issuing and reading
//! back access tokens, introspection (RFC 7662) and revocation (RFC 7009).

pub mod endpoint;
pub mod introspection;
pub mod issue;
pub mod request;
pub mod revocation;
pub mod verify;
