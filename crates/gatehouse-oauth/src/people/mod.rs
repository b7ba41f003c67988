//! People (docs/decisions.md "People"): the authorization endpoint's
//! protocol side and the built-in accounts. The pages and cookies are the
//! HTTP layer's.
//!
//! - `forms`: what a browser sends (the authorization request's parameters,
//!   the forms of Gatehouse's own pages).
//! - `authorize`: validating an authorization request.
//! - `redirect`: matching redirect URIs and building the response URL.
//! - `consent`: consent, issuing the code, errors to the client.
//! - `pkce`: RFC 7636, S256 only.
//! - `accounts`: names, argon2id passwords, sign-in, `userinfo`.
//! - `federation`: toward upstream OpenID Providers — discovery, the ID
//!   token checks, identities and their allow-lists.

pub mod accounts;
pub mod authorize;
pub mod consent;
pub mod federated_sign_in;
pub mod federation;
pub mod forms;
pub mod pkce;
pub mod redirect;
