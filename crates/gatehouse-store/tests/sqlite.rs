//! The Store contract (tests/contract) against a real SQLite database file.

mod contract;

use async_trait::async_trait;
use contract::{Backend, contract_tests};
use gatehouse_oauth::store::Store;
use gatehouse_store::SqliteStore;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A directory of its own per test, removed when the test ends.
struct TempDb(PathBuf);

impl TempDb {
    fn new() -> TempDb {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "gatehouse-store-{}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDb(dir)
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[async_trait]
impl Backend for TempDb {
    async fn open(&self) -> Arc<dyn Store> {
        Arc::new(
            SqliteStore::open(&self.0.join("gatehouse.db"))
                .await
                .unwrap(),
        )
    }
}

async fn run<F, Fut>(_name: &str, test: F)
where
    F: FnOnce(Arc<dyn Backend>) -> Fut,
    Fut: Future<Output = ()>,
{
    test(Arc::new(TempDb::new())).await;
}

contract_tests!(run);

/// The database is outside our control: a list column that is not a JSON
/// array of strings is `Corrupt`, never a panic or an empty list.
#[tokio::test]
async fn a_stored_list_that_is_not_a_json_array_is_corrupt() {
    use gatehouse_oauth::error::StoreError;
    use gatehouse_oauth::grant_records::User;
    let db = TempDb::new();
    let store = SqliteStore::open(&db.0.join("gatehouse.db")).await.unwrap();
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
    sqlx::query("UPDATE consents SET scopes = '{\"read\": true}'")
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
}
