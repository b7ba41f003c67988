//! Named limits on every input (docs/decisions.md "Principles").

/// Maximum request body for the token and registration endpoints.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Maximum length of any single form parameter value at the token endpoint.
pub const MAX_PARAM_BYTES: usize = 4096;
/// Maximum number of form parameters in one token request.
pub const MAX_PARAMS: usize = 32;
/// Maximum number of scopes in a request or registration.
pub const MAX_SCOPES: usize = 64;
/// Maximum length of one scope token.
pub const MAX_SCOPE_BYTES: usize = 128;
/// `client_name` and other display strings (RFC 7591 §2).
pub const MAX_CLIENT_NAME_BYTES: usize = 256;
/// Redirect URIs per client and their length.
pub const MAX_REDIRECT_URIS: usize = 10;
pub const MAX_URI_CHARS: usize = 2048;
/// Entries in `contacts` and similar lists.
pub const MAX_LIST_ITEMS: usize = 10;
/// Client identifiers chosen on the command line: `[a-z0-9._-]{1,64}`.
pub const MAX_CLIENT_ID_BYTES: usize = 64;
/// Audiences a client may be restricted to.
pub const MAX_AUDIENCES: usize = 32;
/// Live secrets one client may hold at once (rotation keeps a few).
pub const MAX_LIVE_SECRETS: usize = 4;
/// Entries kept in the in-memory client cache.
pub const CLIENT_CACHE_CAPACITY: usize = 100_000;
/// A client's registered JWKS: serialised size and number of keys.
pub const MAX_CLIENT_JWKS_BYTES: usize = 16 * 1024;
pub const MAX_CLIENT_JWKS_KEYS: usize = 8;
/// The largest RSA key a client may register (RFC 7518 §3.3 sets 2048 as the
/// least): verification cost grows with the square of the size, and an
/// assertion is checked before the client is authenticated.
pub const MAX_RSA_KEY_BITS: usize = 4096;
/// Clients whose parsed public keys are held in memory at once (at most 8
/// keys each; an RSA-4096 key parsed for RS256 and PS256 takes a few KiB).
pub const PARSED_KEYS_CAPACITY: usize = 2_048;
/// A client assertion (RFC 7523). Form values are already capped at
/// [`MAX_PARAM_BYTES`]; an RS256 assertion with a 4096-bit key is ≈ 1.2 KiB.
pub const MAX_ASSERTION_BYTES: usize = MAX_PARAM_BYTES;
/// Assertion `jti` length.
pub const MAX_JTI_BYTES: usize = 256;
/// A JWKS document fetched from a client's `jwks_uri`: read at most this many
/// bytes (a document of 8 keys with RSA-4096 moduli fits easily).
pub const MAX_FETCHED_JWKS_BYTES: usize = 64 * 1024;
/// Total time allowed for one `jwks_uri` fetch (connect, headers and body).
pub const JWKS_URI_FETCH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// How long a fetched client JWKS is used before it is fetched again.
pub const JWKS_URI_TTL: std::time::Duration = std::time::Duration::from_secs(300);
/// At most one fetch per client this often, so assertions with random `kid`s
/// cannot make the server hammer the client's key server.
pub const JWKS_URI_MIN_REFETCH: std::time::Duration = std::time::Duration::from_secs(10);
/// Clients whose fetched key sets are held in memory at once.
pub const REMOTE_KEYS_CAPACITY: usize = 10_000;
/// `state` at the authorization endpoint (echoed back, so bounded).
pub const MAX_STATE_BYTES: usize = 1024;
/// OIDC `nonce` (echoed in the ID token).
pub const MAX_NONCE_BYTES: usize = 256;
/// A sign-in name and a password as typed (argon2 hashes any length, but a
/// megabyte password is a CPU lever, not a secret).
pub const MAX_USER_NAME_BYTES: usize = 64;
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Groups per user and the length of a group name.
pub const MAX_GROUPS: usize = 32;
pub const MAX_GROUP_BYTES: usize = 64;
/// How long a used refresh token's row is kept after its use: the longest
/// `people.refresh_grace` there may be (a retry inside it needs the row).
/// Older used rows are deleted as the family rotates, so a grant refreshed
/// every few minutes for weeks keeps a handful of rows, not thousands.
/// Reuse detection does not depend on them: a refresh token names its
/// family in the clear, so a retired token is recognised (and its family
/// revoked) after its row is gone — a thief rotating a stolen token many
/// times cannot push it out of reach.
pub const USED_REFRESH_TOKEN_RETENTION_SECS: i64 = 60;
