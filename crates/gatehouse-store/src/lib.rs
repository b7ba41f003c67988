//! Store backends. SQLite in the data directory is the default
//! (docs/decisions.md "Principles"); PostgreSQL is for several replicas sharing
//! one database.

pub mod bounded;
mod common;
pub mod postgres;
pub mod sqlite;
mod sqlite_keys;
mod sqlite_people;

pub use bounded::Bounded;
pub use postgres::{PostgresOptions, PostgresStore};
pub use sqlite::SqliteStore;
