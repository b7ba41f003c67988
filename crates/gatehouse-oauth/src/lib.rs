//! Gatehouse's protocol core: grants, client authentication, tokens, keys,
//! registration and metadata. No HTTP framework and no SQL live here.

pub mod access_token;
pub mod assertion;
pub mod authorize;
pub mod cache;
pub mod client;
pub mod client_auth;
pub mod client_keys;
pub mod crypto;
pub mod error;
pub mod grant_records;
pub mod grants;
pub mod introspection;
pub mod issuer;
pub mod jwks;
pub mod jwks_uri;
pub mod key_states;
pub mod keyring;
pub mod keys;
pub mod keyset;
pub mod limits;
pub mod management;
pub mod metadata;
pub mod people;
pub mod pkce;
pub mod registration;
pub mod resource;
pub mod revocation;
pub mod rotation;
pub mod scope;
pub mod server;
pub mod settings;
pub mod store;
pub mod token;
pub mod token_request;
pub mod util;

pub use error::{ErrorCode, OAuthError, StoreError};
pub use server::AuthorizationServer;
