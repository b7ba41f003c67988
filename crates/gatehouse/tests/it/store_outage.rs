//! When the database fails: a real server on PostgreSQL reached through a TCP
//! proxy inside the test, which cuts the connection (the database looks down)
//! or freezes it (packets vanish) and then restores it. Requests that need the
//! store answer 503 with `Retry-After` promptly, never a hang; tokens for
//! cached clients keep flowing until `max_stale`; `/readyz` says `degraded`,
//! then 503 once the cache may no longer be trusted, while `/healthz` stays
//! about the process; all recovers on its own.

use gatehouse_testkit::pg::{Outage, PgSchema, TcpProxy, new_kek, settle, target_of, via};
use gatehouse_testkit::*;
use serde_json::json;
use std::time::{Duration, Instant};

struct Setup {
    server: Server,
    proxy: TcpProxy,
    id: String,
    secret: String,
    _schema: PgSchema,
    _dir: DataDir,
}

async fn setup(test: &str) -> Setup {
    install_crypto();
    let schema = PgSchema::create(test).await;
    let proxy = TcpProxy::start(target_of(&schema.url)).await;
    let dir = DataDir::new();
    let config = dir.path().join("gatehouse.toml");
    // Short timeouts so the test is quick (defaults: 5 s each, and cached
    // clients honoured for 5 minutes).
    std::fs::write(
        &config,
        format!(
            "allowed_audiences = [\"{AUD}\"]\n\n[registration]\nconfidential = \"open\"\n\n{}acquire_timeout = \"1s\"\nstatement_timeout = \"1s\"\nmax_stale = \"6s\"\n",
            schema.store_toml(&via(&schema.url, proxy.addr))
        ),
    )
    .unwrap();
    let cfg = config.display().to_string();
    let kek = new_kek();
    let env = [("GATEHOUSE_KEY_ENCRYPTION_KEY", kek.as_str())];
    let (ok, created, err) = cli_env(
        &dir,
        &[
            "client",
            "create",
            "--name",
            "ci",
            "--grant",
            "client_credentials",
            "--config",
            &cfg,
        ],
        &env,
    );
    assert!(ok, "{err}");
    let server = Server::start(&dir, &["--config", &cfg], &env);
    Setup {
        server,
        proxy,
        id: created["client_id"].as_str().unwrap().to_string(),
        secret: created["client_secret"].as_str().unwrap().to_string(),
        _schema: schema,
        _dir: dir,
    }
}

impl Setup {
    async fn token(&self) -> Response {
        self.server
            .token(
                Some((&self.id, &self.secret)),
                &[("grant_type", "client_credentials"), ("resource", AUD)],
            )
            .await
    }

    async fn register(&self) -> Response {
        self.server
            .register(
                &json!({"client_name": "late", "grant_types": ["client_credentials"]}),
                None,
            )
            .await
    }
}

/// A 503 `temporarily_unavailable` with a numeric `Retry-After`.
fn assert_unavailable(r: &Response) {
    r.assert_error(503, "temporarily_unavailable");
    let retry = r.header("retry-after").expect("Retry-After");
    assert!(retry.parse::<u32>().is_ok_and(|s| s > 0), "{retry}");
}

async fn outage_then_recovery(how: Outage, test: &str) {
    let s = setup(test).await;
    // The client is in the server's cache after one token — once the poller
    // has applied the registration's own change (which drops the entry
    // cached before it), so: a token, two poll intervals, another token.
    assert_eq!(s.token().await.status, 200);
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    assert_eq!(s.token().await.status, 200);
    let ready = s.server.get_json("/readyz").await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json, json!({"status": "ready", "store": "ok"}));
    let clients_before = s._schema.strings("SELECT id FROM clients").await;

    s.proxy.cut(how);
    settle().await;

    // The hot path needs no database: tokens keep flowing.
    for _ in 0..3 {
        let t = s.token().await;
        assert_eq!(t.status, 200, "{}", t.text);
    }
    // Registration needs the database: 503 with Retry-After, promptly.
    let started = Instant::now();
    let r = s.register().await;
    let took = started.elapsed();
    assert_unavailable(&r);
    // acquire_timeout 1 s + statement_timeout 1 s + 1 s: the store's deadline.
    assert!(took < Duration::from_secs(6), "took {took:?}");
    // A client not in the cache needs the database too.
    let unknown = s
        .server
        .token(
            Some(("c_notcachedyet", "secret")),
            &[("grant_type", "client_credentials"), ("resource", AUD)],
        )
        .await;
    assert_unavailable(&unknown);
    // The failure behind those answers is logged where they are answered
    // (at most once per ten seconds); the client saw no detail.
    // (The poller's own warning names the error too; the edge's line is the
    // one counting what it held back.)
    let logged = eventually(Duration::from_secs(5), || async {
        s.server
            .logs()
            .lines()
            .any(|l| l.contains("store unavailable") && l.contains("suppressed"))
    })
    .await;
    assert!(logged, "store failure not logged:\n{}", s.server.logs());
    assert!(
        !r.text.contains("pool") && !r.text.contains("connect"),
        "{}",
        r.text
    );
    // Readiness: degraded while the cache is trusted (every replica shares
    // the outage; pulling them all would make it total), then 503 once
    // max_stale has passed and cached clients are refused too.
    let degraded = eventually(Duration::from_secs(6), || async {
        let r = s.server.get_json("/readyz").await;
        r.status == 200 && r.json["store"] == "degraded"
    })
    .await;
    assert!(degraded, "readiness never said degraded");
    let unready = eventually(Duration::from_secs(12), || async {
        s.server.get_json("/readyz").await.status == 503
    })
    .await;
    assert!(unready, "readiness stayed 200 past max_stale");
    let ready = s.server.get_json("/readyz").await;
    assert_eq!(ready.json["store"], "unreachable", "{}", ready.text);
    assert!(ready.header("retry-after").is_some());
    assert_unavailable(&s.token().await);
    // Liveness stays about the process.
    assert_eq!(s.server.get_json("/healthz").await.status, 200);

    s.proxy.restore();
    let recovered = eventually(Duration::from_secs(15), || async {
        s.server.get_json("/readyz").await.json["store"] == "ok"
    })
    .await;
    assert!(recovered, "readiness did not recover: {}", s.server.logs());
    // The failed registration stored nothing; a new one works.
    assert_eq!(
        s._schema.strings("SELECT id FROM clients").await,
        clients_before
    );
    let r = s.register().await;
    assert_eq!(r.status, 201, "{}", r.text);
    let (id, secret) = (
        r.json["client_id"].as_str().unwrap(),
        r.json["client_secret"].as_str().unwrap(),
    );
    let t = s
        .server
        .token(
            Some((id, secret)),
            &[("grant_type", "client_credentials"), ("resource", AUD)],
        )
        .await;
    assert_eq!(t.status, 200, "{}", t.text);
    assert_eq!(s.token().await.status, 200, "the cached client again");
    assert!(!s.server.logs().contains("panicked"), "{}", s.server.logs());
}

// Multi-threaded: starting the server and running the CLI block a thread
// while the proxy, on this runtime, must keep forwarding.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_refuses_connections_gives_503_with_retry_after_and_recovers() {
    outage_then_recovery(Outage::Refuse, "outage_refuse").await;
}

// Multi-threaded: starting the server and running the CLI block a thread
// while the proxy, on this runtime, must keep forwarding.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_whose_packets_vanish_gives_503_within_the_deadline_and_recovers() {
    outage_then_recovery(Outage::Blackhole, "outage_blackhole").await;
}
