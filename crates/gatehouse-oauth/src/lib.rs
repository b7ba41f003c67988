//! Gatehouse's protocol core: grants, client authentication, tokens, keys,
//! registration and metadata. No HTTP framework and no SQL live here.
//!
//! Grouped by concern (ARCHITECTURE.md "Code map"): `client_auth` (how a
//! client proves itself), `grants` (what a token request exchanges),
//! `tokens` (issuing, reading back, introspecting and revoking tokens),
//! `keys` (the server's signing keys), `registration` (creating and managing
//! clients), `people` (the authorization endpoint and accounts), and the
//! shared pieces the store backends build on at the top level.

pub mod cache;
pub mod client;
pub mod client_auth;
pub mod client_documents;
pub mod clock;
pub mod crypto;
pub mod error;
pub mod form;
pub mod grant_records;
pub mod grants;
pub mod issuer;
pub mod keys;
pub mod limits;
pub mod metadata;
pub mod people;
pub mod registration;
pub mod registry;
pub mod resource;
pub mod scope;
pub mod server;
pub mod settings;
pub mod store;
pub mod tokens;

pub use error::{ErrorCode, OAuthError, StoreError};
pub use server::AuthorizationServer;
