//! The client address every per-address limit counts under: the TCP peer,
//! or — behind a proxy listed in `trusted_proxies` — the address that proxy
//! forwarded. A real nginx stands in front of the real binary; clients play
//! different addresses by binding their connections to 127.0.0.2,
//! 127.0.0.3, … (Linux routes all of 127/8 to the loopback interface).
//! Also here: the per-address registration cap and the expiry of
//! registrations that were never used.

use gatehouse_testkit::person::{PASSWORD, Person, add_user, authorize_url, register_public};
use gatehouse_testkit::*;
use serde_json::json;
use std::net::IpAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const REDIRECT: &str = "http://127.0.0.1:33418/callback";

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

/// An HTTP client whose connections come from `addr`.
fn client_from(addr: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip(addr))
        .build()
        .expect("client")
}

/// nginx as a child process (one process, no daemon), everything it writes
/// in a temporary directory, proxying to `upstream` the way an https
/// deployment's TLS terminator would: appending the peer to
/// `X-Forwarded-For`.
struct Nginx {
    child: Child,
    dir: DataDir,
    base: String,
}

impl Nginx {
    fn start(bin: &Path, port: u16, upstream: &str) -> Nginx {
        let dir = DataDir::new();
        let d = dir.path().display().to_string();
        let conf = format!(
            "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
               fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
               server {{\n    listen 127.0.0.1:{port};\n    location / {{\n      proxy_pass http://{upstream};\n\
                 proxy_set_header Host $http_host;\n\
                 proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n\
                 proxy_set_header X-Forwarded-Proto $scheme;\n    }}\n  }}\n}}\n"
        );
        std::fs::write(dir.path().join("nginx.conf"), conf).expect("write nginx.conf");
        let child = Command::new(bin)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nginx");
        let mut nginx = Nginx {
            child,
            dir,
            base: format!("http://127.0.0.1:{port}"),
        };
        let start = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = nginx.child.try_wait() {
                let log = std::fs::read_to_string(nginx.dir.path().join("error.log"));
                panic!("nginx exited ({status}): {log:?}");
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "nginx did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        nginx
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn count(dir: &DataDir, sql: &'static str) -> i64 {
    let pool = db(dir).await;
    let n: i64 = sqlx::query_scalar(sql)
        .fetch_one(&pool)
        .await
        .expect("count");
    pool.close().await;
    n
}

async fn client_exists(dir: &DataDir, id: &str) -> bool {
    let pool = db(dir).await;
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM clients WHERE id = ?")
        .bind(id)
        .fetch_one(&pool)
        .await
        .expect("count");
    pool.close().await;
    n == 1
}

/// The address each stored client registered from, by id.
async fn registered_from(dir: &DataDir) -> Vec<(String, Option<String>)> {
    let pool = db(dir).await;
    let rows: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT id, registered_from FROM clients ORDER BY created_at, id")
            .fetch_all(&pool)
            .await
            .expect("clients");
    pool.close().await;
    rows
}

/// Posts the sign-in form of `page` to `base` (the server or the proxy).
async fn sign_in_at(
    person: &mut Person,
    base: &str,
    page: &gatehouse_testkit::person::Page,
    name: &str,
    password: &str,
    headers: &[(&str, &str)],
) -> gatehouse_testkit::person::Page {
    let csrf = page.field("csrf").expect("csrf field");
    let request = page.field("request").expect("request field");
    person
        .post_with(
            &format!("{base}/oauth/signin"),
            &[
                ("username", name),
                ("password", password),
                ("csrf", &csrf),
                ("request", &request),
            ],
            headers,
        )
        .await
}

#[tokio::test]
async fn behind_a_trusted_proxy_a_password_sprayer_does_not_slow_another_clients_sign_in() {
    let bin = gatehouse_testkit::peers::nginx(
        "behind_a_trusted_proxy_a_password_sprayer_does_not_slow_another_clients_sign_in",
    );
    let dir = DataDir::new();
    add_user(&dir, "alice", &[]);
    let port = free_port();
    let proxy = format!("http://127.0.0.1:{port}");
    // The issuer is the proxy's URL, as in a real deployment.
    let server = Server::start(
        &dir,
        &["--issuer", &proxy, "--audience", AUD],
        &[("GATEHOUSE_TRUSTED_PROXIES", "127.0.0.1/32")],
    );
    let nginx = Nginx::start(&bin, port, &server.addr);
    let client_id = register_public(&server, REDIRECT).await;
    let url = authorize_url(
        &server,
        &client_id,
        REDIRECT,
        &gatehouse_testkit::person::Pkce::new(),
        &[],
    )
    .replace(&server.base, &nginx.base);

    // 127.0.0.2 sprays wrong passwords at names that are not alice's.
    let mut sprayer = Person::from_address(ip("127.0.0.2"));
    let page = sprayer.get(&url).await;
    assert_eq!(page.status, 200, "{}", page.text);
    let mut statuses = Vec::new();
    for i in 0..11 {
        let r = sign_in_at(
            &mut sprayer,
            &nginx.base,
            &page,
            &format!("spray{i}"),
            "wrong",
            &[],
        )
        .await;
        statuses.push(r.status);
        if r.status == 429 {
            assert!(
                r.header("retry-after")
                    .and_then(|v| v.parse::<u64>().ok())
                    .is_some_and(|s| s >= 1),
                "429 without Retry-After"
            );
            assert!(r.text.contains("too many attempts"), "{}", r.text);
        }
    }
    assert_eq!(&statuses[..10], &[401; 10], "{statuses:?}");
    assert_eq!(statuses[10], 429, "the sprayer itself is held back");

    // 127.0.0.3, through the same proxy, signs in at once.
    let mut person = Person::from_address(ip("127.0.0.3"));
    let page = person.get(&url).await;
    let signed = sign_in_at(&mut person, &nginx.base, &page, "alice", PASSWORD, &[]).await;
    assert_eq!(signed.status, 303, "{}", signed.text);
    assert!(
        signed
            .location()
            .is_some_and(|l| l.starts_with(&format!("{}/oauth/authorize", nginx.base)))
    );
    assert!(person.cookies.keys().any(|k| k.contains("session")));
    assert_eq!(
        count(&dir, "SELECT COUNT(*) FROM browser_sessions").await,
        1
    );
    // The logs name the client, not the proxy.
    let logs = server.logs();
    assert!(
        logs.lines()
            .any(|l| l.contains("sign-in failed") && l.contains("client_addr=127.0.0.2")),
        "{logs}"
    );
}

#[tokio::test]
async fn a_direct_client_cannot_escape_its_limits_with_x_forwarded_for() {
    let dir = DataDir::new();
    add_user(&dir, "alice", &[]);
    let server = Server::start(
        &dir,
        &["--audience", AUD],
        &[
            // Forwarded headers are believed from 127.0.0.1 only: a client
            // at 127.0.0.2 sending them is not a proxy.
            ("GATEHOUSE_TRUSTED_PROXIES", "127.0.0.1"),
            ("GATEHOUSE_REGISTRATION__PER_ADDRESS_PER_MINUTE", "3"),
        ],
    );
    // Registration: the budget of 3 per minute is 127.0.0.2's whatever the
    // header claims.
    let http = client_from("127.0.0.2");
    let body = json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none",
                      "grant_types": ["authorization_code"], "response_types": ["code"]});
    for i in 0..3 {
        let r = http
            .post(server.url("/oauth/register"))
            .header("x-forwarded-for", format!("198.51.100.{i}"))
            .json(&body)
            .send()
            .await
            .expect("register");
        assert_eq!(r.status(), 201);
    }
    let r = Response::from(
        http.post(server.url("/oauth/register"))
            .header("x-forwarded-for", "203.0.113.99")
            .json(&body)
            .send()
            .await
            .expect("register"),
    )
    .await;
    r.assert_error(429, "slow_down");
    let stored = registered_from(&dir).await;
    assert_eq!(stored.len(), 3, "nothing stored for the refused request");
    assert!(
        stored
            .iter()
            .all(|(_, from)| from.as_deref() == Some("127.0.0.2")),
        "{stored:?}"
    );

    // Sign-in: ten failures from 127.0.0.2, each "from" another address,
    // and alice's right password from there still waits.
    let client_id = register_public(&server, REDIRECT).await;
    let url = authorize_url(
        &server,
        &client_id,
        REDIRECT,
        &gatehouse_testkit::person::Pkce::new(),
        &[],
    );
    let mut person = Person::from_address(ip("127.0.0.2"));
    let page = person.get(&url).await;
    for i in 0..10 {
        let forged = format!("192.0.2.{i}");
        let r = sign_in_at(
            &mut person,
            &server.base,
            &page,
            &format!("guess{i}"),
            "wrong",
            &[("x-forwarded-for", &forged)],
        )
        .await;
        assert_eq!(r.status, 401, "{}", r.text);
    }
    let held = sign_in_at(
        &mut person,
        &server.base,
        &page,
        "alice",
        PASSWORD,
        &[("x-forwarded-for", "203.0.113.7")],
    )
    .await;
    assert_eq!(held.status, 429, "{}", held.text);
    assert!(held.text.contains("too many attempts"));
    assert!(held.header("retry-after").is_some());
    assert_eq!(
        count(&dir, "SELECT COUNT(*) FROM browser_sessions").await,
        0
    );
}

#[test]
fn an_invalid_trusted_proxy_stops_the_start_and_is_named() {
    let dir = DataDir::new();
    for (value, expect) in [
        ("127.0.0.1/32, 10.0.0.1/8", "the block is 10.0.0.0/8"),
        ("proxy.internal", "neither an IP address nor a CIDR block"),
        ("::1, 10.0.0.0/33", "\"10.0.0.0/33\""),
    ] {
        let logs = match Server::try_start(&dir, &[], &[("GATEHOUSE_TRUSTED_PROXIES", value)]) {
            Ok(_) => panic!("started with trusted_proxies = {value:?}"),
            Err(logs) => logs,
        };
        assert!(logs.contains("`trusted_proxies`"), "{logs}");
        assert!(logs.contains(expect), "{value}: {logs}");
    }
}

#[test]
fn out_of_range_expiry_and_backoff_settings_stop_the_start_and_are_named() {
    let dir = DataDir::new();
    for (var, value, key) in [
        (
            "GATEHOUSE_REGISTRATION__UNUSED_EXPIRY",
            "60d",
            "`registration.unused_expiry`",
        ),
        (
            "GATEHOUSE_REGISTRATION__UNUSED_EXPIRY",
            "0s",
            "`registration.unused_expiry`",
        ),
        (
            "GATEHOUSE_CLIENT_AUTH__MAX_BACKOFF",
            "2d",
            "`client_auth.max_backoff`",
        ),
    ] {
        let logs = match Server::try_start(&dir, &[], &[(var, value)]) {
            Ok(_) => panic!("started with {var}={value}"),
            Err(logs) => logs,
        };
        assert!(logs.contains(key), "{var}={value}: {logs}");
    }
}

#[tokio::test]
async fn an_address_over_its_registration_cap_is_refused_and_nothing_is_stored() {
    let dir = DataDir::new();
    let server = Server::start(
        &dir,
        &[],
        &[("GATEHOUSE_REGISTRATION__MAX_CLIENTS_PER_ADDRESS", "2")],
    );
    let a = client_from("127.0.0.2");
    let b = client_from("127.0.0.3");
    let first = server
        .register_via(&a, &public_registration(REDIRECT))
        .await;
    assert_eq!(first.status, 201, "{}", first.text);
    assert_eq!(
        server
            .register_via(&a, &public_registration(REDIRECT))
            .await
            .status,
        201
    );
    let before = registered_from(&dir).await;
    let over = server
        .register_via(&a, &public_registration(REDIRECT))
        .await;
    over.assert_error(503, "temporarily_unavailable");
    assert!(
        over.json["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("this address has registered as many clients")),
        "{}",
        over.text
    );
    assert!(
        over.header("retry-after").is_none(),
        "it does not pass in seconds"
    );
    assert_eq!(registered_from(&dir).await, before, "nothing stored");
    // Another address is not affected.
    assert_eq!(
        server
            .register_via(&b, &public_registration(REDIRECT))
            .await
            .status,
        201
    );
    // Deleting a registration (RFC 7592) frees its place.
    let uri = first.json["registration_client_uri"].as_str().unwrap();
    let token = first.json["registration_access_token"].as_str().unwrap();
    let deleted = a.delete(uri).bearer_auth(token).send().await.unwrap();
    assert_eq!(deleted.status(), 204);
    assert_eq!(
        server
            .register_via(&a, &public_registration(REDIRECT))
            .await
            .status,
        201
    );
    let stored = registered_from(&dir).await;
    let from = |addr: &str| {
        stored
            .iter()
            .filter(|(_, f)| f.as_deref() == Some(addr))
            .count()
    };
    assert_eq!((from("127.0.0.2"), from("127.0.0.3")), (2, 1), "{stored:?}");
}

#[tokio::test]
async fn never_used_registrations_expire_after_unused_expiry_and_used_ones_stay() {
    let dir = DataDir::new();
    let (cli_id, _) = create_client(&dir, &["--audience", AUD]);
    let server = Server::start(
        &dir,
        &["--audience", AUD],
        &[
            ("GATEHOUSE_REGISTRATION__CONFIDENTIAL", "open"),
            ("GATEHOUSE_REGISTRATION__UNUSED_EXPIRY", "2s"),
        ],
    );
    let machine = json!({"grant_types": ["client_credentials"]});
    let used = server.register(&machine, None).await;
    let unused = server.register(&machine, None).await;
    assert_eq!((used.status, unused.status), (201, 201));
    let creds = |r: &Response| {
        (
            r.json["client_id"].as_str().unwrap().to_string(),
            r.json["client_secret"].as_str().unwrap().to_string(),
        )
    };
    let (used_id, used_secret) = creds(&used);
    let (unused_id, unused_secret) = creds(&unused);
    let form = [("grant_type", "client_credentials"), ("resource", AUD)];
    let r = server.token(Some((&used_id, &used_secret)), &form).await;
    assert_eq!(r.status, 200, "{}", r.text);

    assert!(
        eventually(Duration::from_secs(15), || async {
            !client_exists(&dir, &unused_id).await
        })
        .await,
        "the never-used registration was not deleted"
    );
    // The deletion reaches the running server's cache within a poll.
    assert!(
        eventually(Duration::from_secs(5), || async {
            server
                .token(Some((&unused_id, &unused_secret)), &form)
                .await
                .status
                == 401
        })
        .await
    );
    server
        .token(Some((&unused_id, &unused_secret)), &form)
        .await
        .assert_error(401, "invalid_client");
    assert!(client_exists(&dir, &used_id).await, "the used client stays");
    assert!(
        client_exists(&dir, &cli_id).await,
        "operator clients never expire"
    );
    let r = server.token(Some((&used_id, &used_secret)), &form).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        server
            .logs()
            .contains("deleted never-used self-registered clients")
    );
}
