//! Several replicas on one PostgreSQL: two real `gatehouse serve`
//! processes, each with its own (empty) data directory, sharing a database
//! schema, an issuer and a key-encryption key — as behind a load balancer.
//! Each test proves one thing replicas must agree on.

use gatehouse_oauth::keys::{Alg, SigningKey};
use gatehouse_testkit::pg::{PgSchema, new_kek};
use gatehouse_testkit::*;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// The shared issuer: the load balancer's address, which no replica binds.
const ISSUER: &str = "http://127.0.0.1:7443";

/// Two replicas A and B on one schema.
struct Pair {
    a: Server,
    b: Server,
    /// Where admin commands run (any data directory works: nothing shared
    /// lives there).
    admin: DataDir,
    config: PathBuf,
    kek: String,
    schema: PgSchema,
    _dirs: (DataDir, DataDir),
}

fn config_toml(schema: &PgSchema, registration: &str) -> String {
    format!(
        "issuer = \"{ISSUER}\"\nallowed_audiences = [\"{AUD}\"]\n\n[registration]\nconfidential = \"open\"\n{registration}\n\
         # These tests send refused credentials on purpose; the failure\n\
         # backoff (tests/client_auth_failures.rs) is raised out of their way.\n\
         [client_auth]\nfree_failures_per_address = 1000\nfree_failures_per_address_client = 1000\n\n{}",
        schema.store_toml(&schema.url)
    )
}

/// Starts replicas A and B (together, so their migrations and first keys
/// race).
async fn pair(test: &str) -> Pair {
    pair_with(test, "").await
}

/// [`pair`], with more `[registration]` settings.
async fn pair_with(test: &str, registration: &str) -> Pair {
    install_crypto();
    let schema = PgSchema::create(test).await;
    let admin = DataDir::new();
    let config = admin.path().join("gatehouse.toml");
    std::fs::write(&config, config_toml(&schema, registration)).unwrap();
    let kek = new_kek();
    let cfg = config.display().to_string();
    let start = || {
        let (cfg, kek) = (cfg.clone(), kek.clone());
        std::thread::spawn(move || {
            let dir = DataDir::new();
            let server = Server::try_start(
                &dir,
                &["--config", &cfg],
                &[("GATEHOUSE_KEY_ENCRYPTION_KEY", &kek)],
            );
            (dir, server)
        })
    };
    let (ta, tb) = (start(), start());
    let (da, a) = ta.join().unwrap();
    let (db, b) = tb.join().unwrap();
    let a = a.unwrap_or_else(|l| panic!("A: {l}"));
    let b = b.unwrap_or_else(|l| panic!("B: {l}"));
    Pair {
        a,
        b,
        admin,
        config,
        kek,
        schema,
        _dirs: (da, db),
    }
}

impl Pair {
    fn cli(&self, args: &[&str]) -> (bool, Value, String) {
        let mut full: Vec<&str> = args.to_vec();
        let cfg = self.config.display().to_string();
        full.extend_from_slice(&["--config", &cfg]);
        cli_env(
            &self.admin,
            &full,
            &[("GATEHOUSE_KEY_ENCRYPTION_KEY", &self.kek)],
        )
    }

    /// A confidential client registered through replica A.
    async fn register_on_a(&self, extra: Value) -> Value {
        let mut body = json!({"client_name": "replicated", "grant_types": ["client_credentials"]});
        if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
            b.extend(e);
        }
        let r = self.a.register(&body, None).await;
        assert_eq!(r.status, 201, "{}", r.text);
        r.json
    }
}

async fn token(server: &Server, id: &str, secret: &str) -> Response {
    server
        .token(
            Some((id, secret)),
            &[("grant_type", "client_credentials"), ("resource", AUD)],
        )
        .await
}

fn creds(c: &Value) -> (&str, &str) {
    (
        c["client_id"].as_str().unwrap(),
        c["client_secret"].as_str().unwrap(),
    )
}

#[tokio::test]
async fn a_client_registered_on_one_replica_gets_tokens_from_the_other_that_verify_with_either_jwks()
 {
    let p = pair("replicas_register_a_token_b").await;
    let c = p.register_on_a(json!({})).await;
    let (id, secret) = creds(&c);
    let from_b = token(&p.b, id, secret).await;
    assert_eq!(from_b.status, 200, "{}", from_b.text);
    let from_a = token(&p.a, id, secret).await;
    assert_eq!(from_a.status, 200, "{}", from_a.text);
    for t in [&from_a, &from_b] {
        let t = t.json["access_token"].as_str().unwrap();
        for server in [&p.a, &p.b] {
            let (_, claims) = verify_token_from(server, t, AUD, ISSUER).await;
            assert_eq!(claims["iss"], ISSUER);
            assert_eq!(claims["client_id"], id);
        }
    }
    // Both replicas publish the same signing keys — one per algorithm
    // (the ES256 access-token key and the RS256 ID-token key), the ones
    // the first of them created, not one each.
    let (ja, jb) = (
        p.a.get_json("/.well-known/jwks.json").await,
        p.b.get_json("/.well-known/jwks.json").await,
    );
    assert_eq!(ja.json, jb.json);
    assert_eq!(ja.json["keys"].as_array().unwrap().len(), 2, "{}", ja.text);
}

#[tokio::test]
async fn replicas_starting_together_apply_each_migration_once_and_agree_on_one_key_of_each_kind() {
    let p = pair("replicas_migrate_once").await;
    // Both started: the proof that their migrations did not collide. Every
    // migration is recorded as applied, successfully.
    let versions = p
        .schema
        .strings("SELECT version::text FROM _sqlx_migrations WHERE success ORDER BY version")
        .await;
    let files = std::fs::read_dir(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../gatehouse-store/migrations/postgres"
    ))
    .unwrap()
    .count();
    assert_eq!(versions.len(), files, "{versions:?}");
    let kinds = p
        .schema
        .strings("SELECT kind || ':' || alg FROM keys ORDER BY 1")
        .await;
    assert_eq!(
        kinds,
        vec!["secret_hmac:", "signing:ES256", "signing:RS256"],
        "{kinds:?}"
    );
    // Nothing replicas must agree on is in a replica's data directory.
    for dir in [&p._dirs.0, &p._dirs.1] {
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().to_string())
                    .collect()
            })
            .unwrap_or_default();
        assert!(
            names.iter().all(|n| n != "kek" && !n.ends_with(".db")),
            "{names:?}"
        );
    }
}

#[tokio::test]
async fn a_client_deleted_on_one_replica_is_refused_by_the_other_within_the_poll_interval() {
    let p = pair("replicas_delete_staleness").await;
    let c = p.register_on_a(json!({})).await;
    let (id, secret) = creds(&c);
    // B has the client in its cache now.
    assert_eq!(token(&p.b, id, secret).await.status, 200);
    let deleted =
        p.a.http
            .delete(
                c["registration_client_uri"]
                    .as_str()
                    .unwrap()
                    .replace(ISSUER, &p.a.base),
            )
            .bearer_auth(c["registration_access_token"].as_str().unwrap())
            .send()
            .await
            .unwrap();
    assert_eq!(deleted.status(), 204);
    let since = Instant::now();
    token(&p.a, id, secret)
        .await
        .assert_error(401, "invalid_client");
    let refused = eventually(Duration::from_secs(5), || async {
        token(&p.b, id, secret).await.status == 401
    })
    .await;
    let took = since.elapsed();
    assert!(refused, "B still issues tokens to a deleted client");
    // poll_interval is 1 s: one poll, plus slack for two busy cores.
    assert!(took < Duration::from_secs(4), "took {took:?}");
    token(&p.b, id, secret)
        .await
        .assert_error(401, "invalid_client");
}

/// A replica that missed more history than the change log keeps (it is
/// pruned after a day) must not keep serving a client deleted meanwhile.
/// The partition is played by deleting the client and pruning its change
/// in one transaction, so B never sees the deletion in the log: B must
/// notice that the log skips past what it applied and forget its cache.
#[tokio::test]
async fn a_replica_that_missed_pruned_history_stops_serving_a_deleted_client() {
    let p = pair("replicas_lost_history").await;
    let c = p.register_on_a(json!({})).await;
    let (id, secret) = creds(&c);
    let other = p.register_on_a(json!({})).await;
    let (other_id, other_secret) = creds(&other);
    // B has both clients in its cache now.
    assert_eq!(token(&p.b, id, secret).await.status, 200);
    assert_eq!(token(&p.b, other_id, other_secret).await.status, 200);
    p.schema
        .execute(&format!(
            "BEGIN; LOCK TABLE changes IN EXCLUSIVE MODE; \
             DELETE FROM clients WHERE id = '{id}'; \
             INSERT INTO changes (entity, entity_id, at) VALUES ('client', 'c_unrelated', 0); \
             DELETE FROM changes WHERE seq < (SELECT MAX(seq) FROM changes); COMMIT;"
        ))
        .await;
    let refused = eventually(Duration::from_secs(5), || async {
        token(&p.b, id, secret).await.status == 401
    })
    .await;
    assert!(
        refused,
        "B still issues tokens to a client deleted while it was away"
    );
    token(&p.b, id, secret)
        .await
        .assert_error(401, "invalid_client");
    // Everything else is read again and still works.
    assert_eq!(token(&p.b, other_id, other_secret).await.status, 200);
    assert_eq!(token(&p.a, other_id, other_secret).await.status, 200);
    let ready = p.b.get_json("/readyz").await;
    assert_eq!(ready.status, 200, "{}", ready.text);
}

/// `registration.max_clients` under a race: 24 registrations at once,
/// split over both replicas, store exactly the cap; the rest get 503 and
/// leave nothing behind. (Before the cap was part of the insert, 5 let 21
/// through.)
#[tokio::test]
async fn parallel_registrations_on_both_replicas_never_exceed_max_clients() {
    let p = pair_with(
        "replicas_max_clients",
        "max_clients = 5\nmax_clients_per_address = 0\nper_address_per_minute = 1000\n",
    )
    .await;
    let body = json!({"client_name": "racer", "grant_types": ["client_credentials"]});
    let attempts = (0..24).map(|i| {
        let server = if i % 2 == 0 { &p.a } else { &p.b };
        server.register(&body, None)
    });
    let answers = futures_util::future::join_all(attempts).await;
    let mut stored = 0;
    for r in &answers {
        match r.status {
            201 => stored += 1,
            _ => r.assert_error(503, "temporarily_unavailable"),
        }
    }
    assert_eq!(stored, 5, "201s");
    let rows = p
        .schema
        .strings("SELECT id FROM clients WHERE origin = 'dynamic'")
        .await;
    assert_eq!(rows.len(), 5, "stored: {rows:?}");
    let changes = p
        .schema
        .strings("SELECT entity_id FROM changes WHERE entity = 'client'")
        .await;
    assert_eq!(
        changes.len(),
        5,
        "one change per stored client: {changes:?}"
    );
    // Deleting one frees one place, on either replica.
    let (ok, out, err) = p.cli(&["client", "delete", &rows[0]]);
    assert!(ok, "{out} {err}");
    let r = p.b.register(&body, None).await;
    assert_eq!(r.status, 201, "{}", r.text);
    p.a.register(&body, None)
        .await
        .assert_error(503, "temporarily_unavailable");
}

#[tokio::test]
async fn a_secret_rotated_on_one_replica_is_honoured_and_enforced_by_the_other() {
    let p = pair("replicas_rotate_secret").await;
    let (ok, created, err) = p.cli(&[
        "client",
        "create",
        "--name",
        "ci",
        "--grant",
        "client_credentials",
    ]);
    assert!(ok, "{err}");
    let (id, old) = creds(&created);
    assert_eq!(token(&p.b, id, old).await.status, 200);
    let (ok, rotated, err) = p.cli(&["client", "rotate-secret", id, "--grace", "0s"]);
    assert!(ok, "{err}");
    let new = rotated["client_secret"].as_str().unwrap();
    for server in [&p.a, &p.b] {
        let switched = eventually(Duration::from_secs(5), || async {
            token(server, id, new).await.status == 200 && token(server, id, old).await.status == 401
        })
        .await;
        assert!(switched, "a replica did not follow the rotation");
    }
    token(&p.b, id, old)
        .await
        .assert_error(401, "invalid_client");
}

#[tokio::test]
async fn a_client_assertion_is_accepted_once_across_replicas_even_when_sent_to_both_at_once() {
    let p = pair("replicas_jti_single_use").await;
    let (key, _) = SigningKey::generate(Alg::ES256).unwrap();
    let c = p
        .register_on_a(json!({
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": {"keys": [key.public_jwk()]},
        }))
        .await;
    let id = c["client_id"].as_str().unwrap().to_string();
    let rounds = 8;
    for _ in 0..rounds {
        let now = gatehouse_oauth::clock::system_now();
        let assertion = key
            .sign_jwt(
                "JWT",
                &json!({"iss": id, "sub": id, "aud": ISSUER, "iat": now, "exp": now + 60,
                        "jti": gatehouse_oauth::tokens::issue::new_jti()}),
            )
            .unwrap();
        let form = [
            ("grant_type", "client_credentials"),
            ("resource", AUD),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", assertion.as_str()),
        ];
        let (ra, rb) = tokio::join!(p.a.token(None, &form), p.b.token(None, &form));
        let mut statuses = [ra.status, rb.status];
        statuses.sort();
        assert_eq!(statuses, [200, 401], "A: {} B: {}", ra.text, rb.text);
        let loser = if ra.status == 401 { &ra } else { &rb };
        loser.assert_error(401, "invalid_client");
    }
    let stored = p.schema.strings("SELECT jti FROM assertion_jtis").await;
    assert_eq!(stored.len(), rounds, "one row per accepted assertion");
}

#[tokio::test]
async fn a_token_revoked_through_one_replica_is_inactive_at_the_other_at_once() {
    let p = pair("replicas_revocation").await;
    let c = p.register_on_a(json!({})).await;
    let (id, secret) = creds(&c);
    let t = token(&p.a, id, secret).await;
    let access = t.json["access_token"].as_str().unwrap();
    let introspect = |server: &Server| {
        server
            .http
            .post(server.url("/oauth/introspect"))
            .basic_auth(id, Some(secret))
            .form(&[("token", access)])
            .send()
    };
    let before = Response::from(introspect(&p.b).await.unwrap()).await;
    assert_eq!(before.json["active"], true, "{}", before.text);
    let revoked =
        p.b.http
            .post(p.b.url("/oauth/revoke"))
            .basic_auth(id, Some(secret))
            .form(&[("token", access)])
            .send()
            .await
            .unwrap();
    assert_eq!(revoked.status(), 200);
    let after = Response::from(introspect(&p.a).await.unwrap()).await;
    assert_eq!(after.json, json!({"active": false}), "{}", after.text);
}

#[tokio::test]
async fn migrate_applies_pending_migrations_once_and_reports_them() {
    install_crypto();
    let schema = PgSchema::create("replicas_migrate_command").await;
    let dir = DataDir::new();
    let config = dir.path().join("gatehouse.toml");
    std::fs::write(&config, schema.store_toml(&schema.url)).unwrap();
    let cfg = config.display().to_string();
    let (ok, first, err) = cli(&dir, &["migrate", "--config", &cfg]);
    assert!(ok, "{err}");
    let applied = first["applied"].as_array().unwrap();
    assert!(!applied.is_empty(), "{first}");
    assert!(first["store"].as_str().unwrap().starts_with("postgres://"));
    let recorded = schema
        .strings("SELECT version::text FROM _sqlx_migrations")
        .await;
    assert_eq!(recorded.len(), applied.len());
    let (ok, second, err) = cli(&dir, &["migrate", "--config", &cfg]);
    assert!(ok, "{err}");
    assert_eq!(second["applied"], json!([]));
    // `migrate` needs no key-encryption key and creates no keys.
    assert!(schema.strings("SELECT id FROM keys").await.is_empty());
}

#[tokio::test]
async fn postgres_without_a_key_encryption_key_refuses_to_start_and_touches_nothing() {
    install_crypto();
    let schema = PgSchema::create("replicas_no_kek").await;
    let dir = DataDir::new();
    let config = dir.path().join("gatehouse.toml");
    std::fs::write(&config, schema.store_toml(&schema.url)).unwrap();
    let cfg = config.display().to_string();
    let logs = match Server::try_start(&dir, &["--config", &cfg], &[]) {
        Ok(_) => panic!("started without a key-encryption key"),
        Err(logs) => logs,
    };
    assert!(
        logs.contains("key-encryption key") && logs.contains("key_encryption_key_file"),
        "{logs}"
    );
    let tables = schema
        .strings(&format!(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = '{}'",
            schema.name
        ))
        .await;
    assert!(tables.is_empty(), "{tables:?}");
    assert!(!dir.path().join("kek").exists());
}

#[tokio::test]
async fn a_store_url_that_is_not_postgres_is_refused_without_echoing_it() {
    let dir = DataDir::new();
    let (ok, _, err) = cli_env(
        &dir,
        &["migrate", "--store", "mysql://root:hunter2@db/x"],
        &[],
    );
    assert!(!ok);
    assert!(err.contains("store.url"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
    let (ok, shown, err) = cli_env(
        &dir,
        &["config", "show"],
        &[("GATEHOUSE_STORE", "postgres://gh:hunter2@db:5432/gatehouse")],
    );
    assert!(ok, "{err}");
    assert_eq!(
        shown["store"]["url"],
        "postgres://gh:********@db:5432/gatehouse"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_waits_for_another_replicas_migration_longer_than_the_statement_timeout() {
    install_crypto();
    let schema = PgSchema::create("replicas_migration_wait").await;
    // Another replica is migrating: it holds the migration lock for this
    // database and schema (the key the store computes) for 3 s.
    let mut holder = <sqlx::PgConnection as sqlx::Connection>::connect(&schema.url)
        .await
        .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "SET search_path TO {}; SELECT pg_advisory_lock(hashtextextended('gatehouse-migrate|' || current_database() || '|' || current_schema(), 0))",
        schema.name
    )))
    .execute(&mut holder)
    .await
    .unwrap();
    let dir = DataDir::new();
    let config = dir.path().join("gatehouse.toml");
    std::fs::write(
        &config,
        format!(
            "{}statement_timeout = \"1s\"\n",
            schema.store_toml(&schema.url)
        ),
    )
    .unwrap();
    let cfg = config.display().to_string();
    let kek = new_kek();
    let started = Instant::now();
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let _ = sqlx::Connection::close(holder).await;
    });
    let server = tokio::task::spawn_blocking(move || {
        let s = Server::try_start(
            &dir,
            &["--config", &cfg],
            &[("GATEHOUSE_KEY_ENCRYPTION_KEY", &kek)],
        );
        (dir, s)
    })
    .await
    .unwrap();
    release.await.unwrap();
    let (_dir, server) = server;
    let server = server.unwrap_or_else(|logs| panic!("the replica gave up waiting: {logs}"));
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "started without waiting for the lock"
    );
    assert_eq!(server.get_json("/readyz").await.status, 200);
}
