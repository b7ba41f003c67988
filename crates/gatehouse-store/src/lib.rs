//! Store backends. SQLite in the data directory is the default (DESIGN.md
//! principle 5).

pub mod sqlite;

pub use sqlite::SqliteStore;
