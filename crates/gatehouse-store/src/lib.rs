//! Store backends. SQLite in the data directory is the default
//! (docs/decisions.md "Principles"); PostgreSQL is for several replicas sharing
//! one database. Both run the statements in `src/sql/` (shared text unless
//! locking or numbering differs; see ARCHITECTURE.md).

pub mod bounded;
pub mod postgres;
mod sql;
pub mod sqlite;

pub use bounded::Bounded;
pub use postgres::{PostgresOptions, PostgresStore};
pub use sqlite::SqliteStore;
