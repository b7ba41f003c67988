//! Connection settings for the PostgreSQL store.

use std::time::Duration;

/// Connection settings. The defaults suit one replica on a small database:
/// each replica holds at most `max_connections`, so replicas × pool size must
/// stay under the server's `max_connections` (100 by default).
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// Most connections this process keeps open (default 10).
    pub max_connections: u32,
    /// How long a request waits for a free connection before the store
    /// answers `Unavailable` (default 5 s), so callers get a 503, not a hang.
    pub acquire_timeout: Duration,
    /// Server-side cap on any one statement (default 5 s): a stuck lock or a
    /// slow query fails instead of holding a request and a connection forever.
    pub statement_timeout: Duration,
    /// Schema to use instead of the server's default `search_path` (tests
    /// give each run its own). Must already exist; letters, digits, `_` only.
    pub schema: Option<String>,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(5),
            schema: None,
        }
    }
}

/// Whether `s` may be sent as a `search_path`: a plain lower-case
/// identifier, so it needs no quoting and cannot smuggle other settings.
pub(super) fn valid_schema(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && s.len() <= 63
}
