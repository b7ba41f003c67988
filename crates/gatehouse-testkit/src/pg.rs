//! PostgreSQL for the binary's tests: a fresh schema per test on the server
//! named by `GATEHOUSE_TEST_POSTGRES_URL` (`./run-tests` sets it), dropped when
//! the test ends, and a TCP proxy in front of the database that a test can
//! cut and restore to play an outage.
//!
//! Without the variable a test fails and says how to provide one
//! ([`crate::peers::postgres_url`]).

use base64::Engine;
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub use crate::peers::POSTGRES_URL_VAR as URL_VAR;

/// A schema of its own for one test; dropped (with everything in it) on drop.
pub struct PgSchema {
    pub url: String,
    pub name: String,
}

impl PgSchema {
    /// Creates a uniquely named schema.
    pub async fn create(test: &str) -> PgSchema {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let url = crate::peers::postgres_url(test);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let name = format!(
            "gh_bin_{}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            nanos % 1_000_000_000
        );
        execute(&url, format!("CREATE SCHEMA {name}")).await;
        PgSchema { url, name }
    }

    /// Runs a query in this schema and returns the first column of each row.
    pub async fn strings(&self, sql: &str) -> Vec<String> {
        let mut conn = PgConnection::connect(&self.url).await.expect("connect");
        sqlx::raw_sql(AssertSqlSafe(format!("SET search_path TO {}", self.name)))
            .execute(&mut conn)
            .await
            .expect("search_path");
        let rows: Vec<String> = sqlx::query_scalar(AssertSqlSafe(sql.to_string()))
            .fetch_all(&mut conn)
            .await
            .expect("query");
        let _ = conn.close().await;
        rows
    }

    /// Runs statements (`;`-separated, one implicit transaction unless they
    /// say otherwise) in this schema.
    pub async fn execute(&self, sql: &str) {
        let mut conn = PgConnection::connect(&self.url).await.expect("connect");
        sqlx::raw_sql(AssertSqlSafe(format!(
            "SET search_path TO {}; {sql}",
            self.name
        )))
        .execute(&mut conn)
        .await
        .expect("execute");
        let _ = conn.close().await;
    }

    /// The `[store]` table of a config file for this schema, via `url`
    /// (the database itself, or a proxy in front of it).
    pub fn store_toml(&self, url: &str) -> String {
        format!(
            "[store]\nurl = \"{url}\"\nschema = \"{}\"\nmax_connections = 4\n",
            self.name
        )
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let url = self.url.clone();
        let sql = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name);
        // Drop may run inside the test's runtime: use a thread of our own.
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(execute(&url, sql));
            }
        })
        .join();
    }
}

async fn execute(url: &str, sql: String) {
    let mut conn = PgConnection::connect(url).await.expect("connect");
    sqlx::raw_sql(AssertSqlSafe(sql))
        .execute(&mut conn)
        .await
        .expect("execute");
    let _ = conn.close().await;
}

/// A key-encryption key (base64 of 32 random bytes) for replicas to share.
pub fn new_kek() -> String {
    let mut key = [0u8; 32];
    aws_lc_rs::rand::fill(&mut key).expect("system random");
    base64::engine::general_purpose::STANDARD.encode(key)
}

/// The same URL with its host and port replaced by `addr` (a proxy).
pub fn via(url: &str, addr: std::net::SocketAddr) -> String {
    let mut u = url::Url::parse(url).expect("database URL");
    u.set_host(Some(&addr.ip().to_string())).expect("host");
    u.set_port(Some(addr.port())).expect("port");
    u.to_string()
}

/// How a cut proxy treats connections.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Outage {
    /// Forwarding normally.
    None,
    /// Every connection is closed and new ones are closed at once: the
    /// database looks down.
    Refuse,
    /// Connections stay open but nothing is forwarded: packets vanish, as on
    /// a broken network path.
    Blackhole,
}

/// A TCP proxy to the database that a test cuts and restores.
pub struct TcpProxy {
    pub addr: std::net::SocketAddr,
    state: watch::Sender<Outage>,
    accepting: Arc<AtomicBool>,
}

impl TcpProxy {
    /// Starts forwarding from an ephemeral port to `target` (host:port).
    pub async fn start(target: String) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let (state, _) = watch::channel(Outage::None);
        let accepting = Arc::new(AtomicBool::new(true));
        let tx = state.clone();
        let running = accepting.clone();
        tokio::spawn(async move {
            while running.load(Ordering::Relaxed) {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let rx = tx.subscribe();
                let target = target.clone();
                tokio::spawn(pipe(client, target, rx));
            }
        });
        TcpProxy {
            addr,
            state,
            accepting,
        }
    }

    // `send_replace`, not `send`: `send` drops the value when no connection
    // is open to receive it.
    pub fn cut(&self, how: Outage) {
        self.state.send_replace(how);
    }

    pub fn restore(&self) {
        self.state.send_replace(Outage::None);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.accepting.store(false, Ordering::Relaxed);
        self.state.send_replace(Outage::Refuse);
    }
}

/// One proxied connection, ended by `Refuse` and frozen by `Blackhole`.
async fn pipe(mut client: TcpStream, target: String, mut rx: watch::Receiver<Outage>) {
    let outage = *rx.borrow_and_update();
    match outage {
        Outage::Refuse => {
            let _ = client.shutdown().await;
            return;
        }
        Outage::Blackhole => {
            // Hold the connection, forward nothing, until it is restored
            // (then drop it: the client has long given up on it).
            let _ = rx.wait_for(|o| *o != Outage::Blackhole).await;
            return;
        }
        Outage::None => {}
    }
    let Ok(mut server) = TcpStream::connect(&target).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let cut = tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => return,
        cut = rx.wait_for(|o| *o != Outage::None) => cut.map(|o| *o).unwrap_or(Outage::Refuse),
    };
    if cut == Outage::Blackhole {
        // Freeze: keep both sockets open but move no bytes.
        let _ = rx.wait_for(|o| *o != Outage::Blackhole).await;
    }
}

/// Host and port of a database URL, for the proxy's target.
pub fn target_of(url: &str) -> String {
    let u = url::Url::parse(url).expect("database URL");
    format!(
        "{}:{}",
        u.host_str().unwrap_or("127.0.0.1"),
        u.port().unwrap_or(5432)
    )
}

/// Waits a moment for in-flight proxy tasks to notice a state change.
pub async fn settle() {
    tokio::time::sleep(Duration::from_millis(200)).await;
}
