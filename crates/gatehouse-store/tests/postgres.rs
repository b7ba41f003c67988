//! The Store contract (tests/contract) against PostgreSQL.
//!
//! The server comes from `GATEHOUSE_TEST_POSTGRES_URL` (`./run-tests` sets it).
//! Each test gets a fresh schema with a unique name, reached through the
//! store's `schema` option (a `search_path` startup parameter on every pooled
//! connection), and drops it at the end — also when the test fails — so tests
//! run in parallel and leave nothing behind. Without the variable the tests
//! fail, saying how to provide one (`gatehouse_testkit::peers`): none of
//! them passes by testing nothing.

mod contract;

use async_trait::async_trait;
use contract::{Backend, contract_tests};
use gatehouse_oauth::store::Store;
use gatehouse_store::{PostgresOptions, PostgresStore};
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A schema name no other test (in this or another process) uses.
fn unique_schema() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "gh_test_{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        nanos % 1_000_000_000_000
    )
}

struct PgSchema {
    url: String,
    schema: String,
}

impl PgSchema {
    fn options(&self) -> PostgresOptions {
        PostgresOptions {
            // Small pools: many tests, each opening several stores, share
            // the server's connection limit.
            max_connections: 4,
            schema: Some(self.schema.clone()),
            ..PostgresOptions::default()
        }
    }

    async fn execute(&self, sql: String) {
        let mut conn = PgConnection::connect(&self.url).await.unwrap();
        sqlx::raw_sql(AssertSqlSafe(sql))
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
    }
}

#[async_trait]
impl Backend for PgSchema {
    async fn open(&self) -> Arc<dyn Store> {
        Arc::new(
            PostgresStore::open(&self.url, &self.options())
                .await
                .unwrap(),
        )
    }
}

/// Creates the schema, runs `test` as its own task (so a failing test still
/// reaches the cleanup), drops the schema, then reports the test's outcome.
async fn with_schema<F, Fut>(name: &str, test: F)
where
    F: FnOnce(Arc<PgSchema>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let url = gatehouse_testkit::peers::postgres_url(name);
    let schema = Arc::new(PgSchema {
        url,
        schema: unique_schema(),
    });
    schema
        .execute(format!("CREATE SCHEMA {}", schema.schema))
        .await;
    let outcome = tokio::spawn(test(schema.clone())).await;
    schema
        .execute(format!("DROP SCHEMA {} CASCADE", schema.schema))
        .await;
    if let Err(e) = outcome {
        match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("test task failed: {e}"),
        }
    }
}

async fn run<F, Fut>(name: &str, test: F)
where
    F: FnOnce(Arc<dyn Backend>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    with_schema(name, |s| test(s)).await;
}

contract_tests!(run);

/// Two replicas starting together on an empty schema: sqlx's migrator holds
/// `pg_advisory_lock` while migrating, so both start and neither fails on a
/// half-created table.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_opening_together_migrate_once() {
    with_schema("replicas_opening_together_migrate_once", |s| async move {
        let opts = s.options();
        let (a, b) = tokio::join!(
            PostgresStore::open(&s.url, &opts),
            PostgresStore::open(&s.url, &opts)
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
            .fetch_one(a.pool())
            .await
            .unwrap();
        let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "sql"))
            })
            .count() as i64;
        assert_eq!(applied, files, "one row per migration file, applied once");
        assert!(b.revoke_token("j", "c", i64::MAX).await.unwrap());
        assert!(a.is_revoked("j").await.unwrap());
    })
    .await;
}

#[tokio::test]
async fn describe_names_the_database_but_never_the_password() {
    with_schema(
        "describe_names_the_database_but_never_the_password",
        |s| async move {
            let store = PostgresStore::open(&s.url, &s.options()).await.unwrap();
            let described = store.describe();
            assert!(described.starts_with("postgres://"), "{described}");
            assert!(described.contains(&s.schema), "{described}");
            let with_password = PostgresStore::open(
                "postgres://user:hunter2@127.0.0.1:1/x",
                &PostgresOptions {
                    acquire_timeout: std::time::Duration::from_millis(500),
                    ..s.options()
                },
            )
            .await;
            match with_password {
                Ok(_) => panic!("nothing listens on port 1"),
                Err(e) => assert!(!e.to_string().contains("hunter2"), "{e}"),
            }
        },
    )
    .await;
}

#[tokio::test]
async fn a_schema_name_that_is_not_an_identifier_is_refused() {
    let opts = PostgresOptions {
        schema: Some("x; DROP TABLE clients".into()),
        ..PostgresOptions::default()
    };
    assert!(
        PostgresStore::open("postgres://127.0.0.1:1/x", &opts)
            .await
            .is_err()
    );
}

/// The database is outside our control: a list column that is not a JSON
/// array of strings is `Corrupt`, never a panic or an empty list.
#[tokio::test]
async fn a_stored_list_that_is_not_a_json_array_is_corrupt() {
    with_schema(
        "a_stored_list_that_is_not_a_json_array_is_corrupt",
        |s| async move {
            use gatehouse_oauth::error::StoreError;
            use gatehouse_oauth::grant_records::User;
            let store = PostgresStore::open(&s.url, &s.options()).await.unwrap();
            let user = User {
                id: "u_1".into(),
                name: "alice".into(),
                password_hash: "h".into(),
                groups: vec!["g".into()],
                created_at: 1,
                credentials_gen: 0,
            };
            store.insert_user(&user).await.unwrap();
            store
                .insert_client(&contract::client(
                    "c_1",
                    gatehouse_oauth::client::ClientOrigin::Cli,
                    1,
                ))
                .await
                .unwrap();
            store
                .record_consent("u_1", "c_1", "r", &["read".into()], 1)
                .await
                .unwrap();
            sqlx::query("UPDATE users SET groups = 'not json'")
                .execute(store.pool())
                .await
                .unwrap();
            sqlx::query("UPDATE consents SET scopes = '[1, 2]'")
                .execute(store.pool())
                .await
                .unwrap();
            assert!(matches!(
                store.get_user("u_1").await,
                Err(StoreError::Corrupt(_))
            ));
            assert!(matches!(
                store.list_users().await,
                Err(StoreError::Corrupt(_))
            ));
            assert!(matches!(
                store.get_consent("u_1", "c_1", "r").await,
                Err(StoreError::Corrupt(_))
            ));
        },
    )
    .await;
}
