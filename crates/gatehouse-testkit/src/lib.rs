//! What Gatehouse's tests share: the real `gatehouse` binary on an
//! ephemeral port, spoken to over HTTP; the real SQLite store read directly
//! where a test must check what was stored; PostgreSQL schemas per test; the
//! pinned interop peers; upstream MCP servers and issuers to put behind the
//! gateway. Not published.

// Fixtures are made fresh with `new()`, never defaulted: each holds a
// temporary directory, a process or randomness of its own.
#![allow(clippy::new_without_default)]

pub mod core;
pub mod gw;
pub mod interop;
pub mod issuer;
pub mod limited;
pub mod naive;
pub mod peers;
pub mod person;
pub mod pg;
pub mod stall;
pub mod tls;

pub use peers::{require_authlib, require_browser, require_sdk};

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The `gatehouse` binary the tests run: `GATEHOUSE_BIN` if set, otherwise
/// the one cargo built beside the running test (`target/<profile>/gatehouse`;
/// test executables live in `target/<profile>/deps/`). `cargo test -p
/// gatehouse` builds it before running the binary's tests.
pub fn bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(path) = std::env::var_os("GATEHOUSE_BIN") {
            return PathBuf::from(path);
        }
        let exe = std::env::current_exe().expect("the test executable's path");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("the test executable is in target/<profile>/deps");
        let path = profile_dir.join(format!("gatehouse{}", std::env::consts::EXE_SUFFIX));
        assert!(
            path.is_file(),
            "{} does not exist: run the tests with `cargo test -p gatehouse` (it builds the binary), or set GATEHOUSE_BIN",
            path.display()
        );
        path
    })
}
pub const AUD: &str = "http://127.0.0.1:9999/mcp";

/// A data directory removed when dropped.
pub struct DataDir(pub PathBuf);

impl DataDir {
    pub fn new() -> DataDir {
        let dir = std::env::temp_dir().join(format!(
            "gatehouse-test-{}-{}",
            std::process::id(),
            gatehouse_oauth_random()
        ));
        std::fs::create_dir_all(&dir).expect("create data dir");
        DataDir(dir)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn gatehouse_oauth_random() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{nanos}-{}", N.fetch_add(1, Ordering::Relaxed))
}

/// A running `gatehouse serve`.
pub struct Server {
    child: Child,
    pub addr: String,
    pub base: String,
    /// Everything the server wrote to stderr (its logs).
    pub logs: Arc<Mutex<String>>,
    pub http: reqwest::Client,
}

impl Server {
    /// Starts `gatehouse serve --listen 127.0.0.1:0 --data-dir DIR` plus `args`.
    pub fn start(dir: &DataDir, args: &[&str], env: &[(&str, &str)]) -> Server {
        Self::try_start(dir, args, env)
            .unwrap_or_else(|logs| panic!("server did not start:\n{logs}"))
    }

    /// Like `start`, but returns the logs if the server exits before it is ready.
    pub fn try_start(dir: &DataDir, args: &[&str], env: &[(&str, &str)]) -> Result<Server, String> {
        let data_dir = dir.path().display().to_string();
        let mut full = vec!["serve", "--data-dir", data_dir.as_str()];
        full.extend_from_slice(args);
        if !args.contains(&"--listen") {
            full.extend_from_slice(&["--listen", "127.0.0.1:0"]);
        }
        let (child, addr, logs) = spawn_ready(&full, env, "gatehouse started")?;
        Ok(Server {
            child,
            base: format!("http://{addr}"),
            addr,
            logs,
            http: reqwest::Client::new(),
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// The server's process id (to send it signals).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    /// POSTs a form to the token endpoint with optional Basic credentials.
    pub async fn token(&self, basic: Option<(&str, &str)>, form: &[(&str, &str)]) -> Response {
        let mut req = self.http.post(self.url("/oauth/token")).form(form);
        if let Some((id, secret)) = basic {
            req = req.basic_auth(id, Some(secret));
        }
        Response::from(req.send().await.expect("token request")).await
    }

    pub async fn get_json(&self, path: &str) -> Response {
        Response::from(self.http.get(self.url(path)).send().await.expect("GET")).await
    }

    /// `POST /oauth/register` through `http` (a client bound to some
    /// local address, say).
    pub async fn register_via(&self, http: &reqwest::Client, body: &Value) -> Response {
        Response::from(
            http.post(self.url("/oauth/register"))
                .json(body)
                .send()
                .await
                .expect("register"),
        )
        .await
    }

    pub async fn register(&self, body: &Value, bearer: Option<&str>) -> Response {
        let mut req = self.http.post(self.url("/oauth/register")).json(body);
        if let Some(t) = bearer {
            req = req.bearer_auth(t);
        }
        Response::from(req.send().await.expect("register request")).await
    }

    /// Waits up to `timeout` for the process to exit on its own.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Spawns `gatehouse ARGS` and waits for the log line containing `marker`,
/// which names the bound address as `listen=ADDR`. Returns the logs if the
/// process exits first.
pub fn spawn_ready(
    args: &[&str],
    env: &[(&str, &str)],
    marker: &'static str,
) -> Result<(Child, String, Arc<Mutex<String>>), String> {
    spawn_ready_limited(args, env, marker, None)
}

/// [`spawn_ready`] with the process's open-files limit set to `nofile`
/// (through `sh -c 'ulimit -n N'`, then `exec`, so the child is the binary).
pub fn spawn_ready_limited(
    args: &[&str],
    env: &[(&str, &str)],
    marker: &'static str,
    nofile: Option<u32>,
) -> Result<(Child, String, Arc<Mutex<String>>), String> {
    let mut cmd = match nofile {
        None => Command::new(bin()),
        Some(n) => {
            let mut sh = Command::new("sh");
            sh.arg("-c")
                .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                .arg(bin());
            sh
        }
    };
    cmd.args(args)
        .env_remove(pg::URL_VAR)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn gatehouse");
    let stderr = child.stderr.take().expect("stderr");
    let logs = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel::<Option<String>>();
    let sink = logs.clone();
    std::thread::spawn(move || {
        let mut announced = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            sink.lock().unwrap().push_str(&format!("{line}\n"));
            if !announced && line.contains(marker) {
                let addr = line
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("listen="))
                    .map(str::to_string);
                announced = true;
                let _ = tx.send(addr);
            }
        }
        let _ = tx.send(None);
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(Some(addr)) => Ok((child, addr, logs)),
        _ => {
            let _ = child.kill();
            let _ = child.wait();
            std::thread::sleep(Duration::from_millis(100));
            let text = logs.lock().unwrap().clone();
            Err(text)
        }
    }
}

/// A port that was free a moment ago (for URLs that must be known before
/// the process that serves them starts).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A response read whole: status, headers, body as JSON (Null if not JSON).
pub struct Response {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
    pub json: Value,
}

impl Response {
    pub async fn from(r: reqwest::Response) -> Response {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap_or_default();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Response {
            status,
            headers,
            text,
            json,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts an OAuth error response with this status and code.
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.text
        );
        assert_eq!(
            self.json["error"], code,
            "unexpected error; body: {}",
            self.text
        );
        assert!(
            self.json["error_description"].is_string(),
            "error without description: {}",
            self.text
        );
    }
}

/// Runs a `gatehouse` admin command; returns (success, stdout JSON, stderr).
/// With `--init`, as an operator setting up a store would: tests create
/// clients before the first start. Tests of the refusal without it run the
/// binary themselves.
pub fn cli(dir: &DataDir, args: &[&str]) -> (bool, Value, String) {
    cli_env(dir, args, &[])
}

/// [`cli`] with extra environment variables.
pub fn cli_env(dir: &DataDir, args: &[&str], env: &[(&str, &str)]) -> (bool, Value, String) {
    run_cli(dir, args, env, true)
}

/// `gatehouse ARGS --data-dir DIR` exactly as an operator types it: no
/// `--init` (for the tests of what admin commands refuse).
pub fn cli_typed(dir: &DataDir, args: &[&str], env: &[(&str, &str)]) -> (bool, Value, String) {
    run_cli(dir, args, env, false)
}

fn run_cli(
    dir: &DataDir,
    args: &[&str],
    env: &[(&str, &str)],
    init: bool,
) -> (bool, Value, String) {
    let mut cmd = Command::new(bin());
    cmd.args(args);
    if init {
        cmd.arg("--init");
    }
    let out = cmd
        .arg("--data-dir")
        .arg(dir.path())
        // The test's own variable is no setting of the binary's.
        .env_remove(pg::URL_VAR)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run gatehouse");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    (
        out.status.success(),
        serde_json::from_str(&stdout).unwrap_or(Value::Null),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// The `kid` in a JWT's header.
pub fn token_kid(token: &str) -> String {
    jsonwebtoken::decode_header(token)
        .expect("a JWT")
        .kid
        .expect("a kid")
}

/// The `kid`s `server` publishes in its JWKS.
pub async fn jwks_kids(server: &Server) -> Vec<String> {
    let r = server.get_json("/.well-known/jwks.json").await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["kid"].as_str().expect("kid").to_string())
        .collect()
}

/// Pre-registers a client_credentials client from the CLI; returns (id, secret).
pub fn create_client(dir: &DataDir, extra: &[&str]) -> (String, String) {
    let mut args = vec![
        "client",
        "create",
        "--name",
        "test",
        "--grant",
        "client_credentials",
    ];
    args.extend_from_slice(extra);
    let (ok, out, err) = cli(dir, &args);
    assert!(ok, "client create failed: {err}");
    (
        out["client_id"].as_str().expect("client_id").to_string(),
        out["client_secret"]
            .as_str()
            .expect("client_secret")
            .to_string(),
    )
}

/// Opens the server's SQLite database directly (read-only checks).
pub async fn db(dir: &DataDir) -> sqlx::SqlitePool {
    let opts = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(dir.path().join("gatehouse.db"))
        .read_only(true);
    sqlx::SqlitePool::connect_with(opts).await.expect("open db")
}

/// Number of client rows in the store.
pub async fn client_count(dir: &DataDir) -> i64 {
    let pool = db(dir).await;
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM clients")
        .fetch_one(&pool)
        .await
        .expect("count clients");
    pool.close().await;
    n
}

/// Waits until `check` passes or `timeout` elapses.
/// A public client's registration, as MCP clients send it.
pub fn public_registration(redirect_uri: &str) -> Value {
    serde_json::json!({"redirect_uris": [redirect_uri], "token_endpoint_auth_method": "none",
           "grant_types": ["authorization_code"], "response_types": ["code"]})
}

/// Whether `server` finds `token` active when the client `rs` (id, secret)
/// introspects it (RFC 7662).
pub async fn introspected_active(server: &Server, rs: &(String, String), token: &str) -> bool {
    let r = server
        .http
        .post(server.url("/oauth/introspect"))
        .basic_auth(&rs.0, Some(&rs.1))
        .form(&[("token", token)])
        .send()
        .await
        .expect("introspect");
    let v: Value = r.json().await.expect("json");
    v["active"] == true
}

pub async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < timeout {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Verifies an access token against the server's JWKS with an independent
/// JWT library; returns (header, claims).
pub async fn verify_token(
    server: &Server,
    token: &str,
    aud: &str,
) -> (jsonwebtoken::Header, Value) {
    verify_token_from(server, token, aud, &server.base).await
}

/// [`verify_token`] for a server whose issuer is not its own base URL
/// (replicas behind one issuer).
pub async fn verify_token_from(
    server: &Server,
    token: &str,
    aud: &str,
    issuer: &str,
) -> (jsonwebtoken::Header, Value) {
    let jwks: jsonwebtoken::jwk::JwkSet = server
        .http
        .get(server.url("/.well-known/jwks.json"))
        .send()
        .await
        .expect("jwks")
        .json()
        .await
        .expect("jwks json");
    let header = jsonwebtoken::decode_header(token).expect("header");
    let kid = header.kid.clone().expect("kid");
    let jwk = jwks.find(&kid).expect("token kid is in the JWKS");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).expect("decoding key");
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_audience(&[aud]);
    validation.set_issuer(&[issuer]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    let data = jsonwebtoken::decode::<Value>(token, &key, &validation).expect("token verifies");
    (header, data.claims)
}

pub fn install_crypto() {
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
}
