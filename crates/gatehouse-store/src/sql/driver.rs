//! How a shared statement runs through either driver.
//!
//! sqlx has no trait that binds, runs and decodes for any database without a
//! long list of `Encode`/`Type`/`Decode` bounds at every use. So the bounds are
//! stated once, here: [`Param`] is any value both drivers encode, [`Col`] any
//! value both decode, and [`Driver`] runs a statement with the error mapping
//! every caller wants. [`Stmt`] reads like sqlx's own `query(…).bind(…)`.

use super::map_err;
use gatehouse_oauth::error::StoreError;
use sqlx::postgres::PgRow;
use sqlx::query::Query;
use sqlx::sqlite::SqliteRow;
use sqlx::{Database, Decode, Encode, Postgres, SqlSafeStr, Sqlite, Type};
use std::future::Future;

/// A statement with its parameters, as sqlx builds it for driver `D`.
pub(crate) type Q<D> = Query<'static, D, <D as Database>::Arguments>;

/// A value both drivers can bind as a parameter.
pub(crate) trait Param {
    fn bind_sqlite(self, q: Q<Sqlite>) -> Q<Sqlite>;
    fn bind_postgres(self, q: Q<Postgres>) -> Q<Postgres>;
}

impl<T> Param for T
where
    T: for<'t> Encode<'t, Sqlite> + Type<Sqlite> + for<'t> Encode<'t, Postgres> + Type<Postgres>,
{
    fn bind_sqlite(self, q: Q<Sqlite>) -> Q<Sqlite> {
        q.bind(self)
    }

    fn bind_postgres(self, q: Q<Postgres>) -> Q<Postgres> {
        q.bind(self)
    }
}

/// A value both drivers can read from a column, by name.
pub(crate) trait Col: Sized {
    fn from_sqlite(row: &SqliteRow, column: &str) -> Result<Self, sqlx::Error>;
    fn from_postgres(row: &PgRow, column: &str) -> Result<Self, sqlx::Error>;
}

impl<T> Col for T
where
    T: for<'r> Decode<'r, Sqlite> + Type<Sqlite> + for<'r> Decode<'r, Postgres> + Type<Postgres>,
{
    fn from_sqlite(row: &SqliteRow, column: &str) -> Result<Self, sqlx::Error> {
        sqlx::Row::try_get(row, column)
    }

    fn from_postgres(row: &PgRow, column: &str) -> Result<Self, sqlx::Error> {
        sqlx::Row::try_get(row, column)
    }
}

/// The mechanics of one driver: bind, run, decode. Implemented for
/// `sqlx::Sqlite` and `sqlx::Postgres` below; what differs between the
/// backends beyond mechanics is [`Backend`](super::Backend).
pub(crate) trait Driver: Database {
    fn bind(q: Q<Self>, value: impl Param) -> Q<Self>;

    /// The column `column` of `row`; a value that does not decode is an
    /// error, never a panic.
    fn get<T: Col>(row: &Self::Row, column: &str) -> Result<T, StoreError>;

    /// Runs `q`, answering how many rows it changed.
    fn execute(
        q: Q<Self>,
        conn: &mut Self::Connection,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    fn fetch_optional(
        q: Q<Self>,
        conn: &mut Self::Connection,
    ) -> impl Future<Output = Result<Option<Self::Row>, StoreError>> + Send;

    fn fetch_all(
        q: Q<Self>,
        conn: &mut Self::Connection,
    ) -> impl Future<Output = Result<Vec<Self::Row>, StoreError>> + Send;
}

/// The same five methods for each driver; only the binding and decoding
/// entry points differ.
macro_rules! driver_mechanics {
    ($db:ty, $bind:ident, $decode:ident) => {
        impl Driver for $db {
            fn bind(q: Q<Self>, value: impl Param) -> Q<Self> {
                value.$bind(q)
            }

            fn get<T: Col>(row: &Self::Row, column: &str) -> Result<T, StoreError> {
                T::$decode(row, column).map_err(map_err)
            }

            async fn execute(q: Q<Self>, conn: &mut Self::Connection) -> Result<u64, StoreError> {
                Ok(q.execute(conn).await.map_err(map_err)?.rows_affected())
            }

            async fn fetch_optional(
                q: Q<Self>,
                conn: &mut Self::Connection,
            ) -> Result<Option<Self::Row>, StoreError> {
                q.fetch_optional(conn).await.map_err(map_err)
            }

            async fn fetch_all(
                q: Q<Self>,
                conn: &mut Self::Connection,
            ) -> Result<Vec<Self::Row>, StoreError> {
                q.fetch_all(conn).await.map_err(map_err)
            }
        }
    };
}

driver_mechanics!(Sqlite, bind_sqlite, from_sqlite);
driver_mechanics!(Postgres, bind_postgres, from_postgres);

/// A statement on its way to the database: `stmt::<D>(SQL).bind(a).execute(conn)`.
pub(crate) struct Stmt<D: Driver>(Q<D>);

pub(crate) fn stmt<D: Driver>(sql: impl SqlSafeStr) -> Stmt<D> {
    Stmt(sqlx::query(sql))
}

impl<D: Driver> Stmt<D> {
    pub(crate) fn bind(self, value: impl Param) -> Self {
        Stmt(D::bind(self.0, value))
    }

    /// Runs the statement, answering how many rows it changed.
    pub(crate) async fn execute(self, conn: &mut D::Connection) -> Result<u64, StoreError> {
        D::execute(self.0, conn).await
    }

    pub(crate) async fn fetch_optional(
        self,
        conn: &mut D::Connection,
    ) -> Result<Option<D::Row>, StoreError> {
        D::fetch_optional(self.0, conn).await
    }

    pub(crate) async fn fetch_all(
        self,
        conn: &mut D::Connection,
    ) -> Result<Vec<D::Row>, StoreError> {
        D::fetch_all(self.0, conn).await
    }

    /// The column `column` of the one row the statement returns (an
    /// aggregate, say); no row at all is `Unavailable`, as sqlx's
    /// `fetch_one` would answer.
    pub(crate) async fn fetch_value<T: Col>(
        self,
        conn: &mut D::Connection,
        column: &str,
    ) -> Result<T, StoreError> {
        match self.fetch_optional(conn).await? {
            Some(row) => D::get(&row, column),
            None => Err(map_err(sqlx::Error::RowNotFound)),
        }
    }
}
