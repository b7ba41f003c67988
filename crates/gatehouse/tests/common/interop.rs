//! Shared by the interop tests (mcp_sdk.rs, pkjwt_interop.rs): the pinned
//! peers under `interop/`, run as child processes.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .nth(2)
        .unwrap_or(manifest)
        .to_path_buf()
}

pub fn interop_dir() -> PathBuf {
    repo_root().join("interop")
}

/// Whether `program ARGS` runs and exits 0 (output discarded).
pub fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// `missing` is None when a peer is installed. Otherwise skip loudly (false),
/// or fail under CI (`CI` set) so CI never skips silently.
pub fn require(test: &str, missing: Option<String>, install: &str) -> bool {
    let Some(missing) = missing else {
        return true;
    };
    if std::env::var_os("CI").is_some() {
        panic!(
            "the {test} interop test cannot run under CI: {missing}; .ci/run must run `{install}` first"
        );
    }
    eprintln!(
        "\n==================================================================\n\
         SKIPPED: {test} interop test — {missing}.\n\
         Install the pinned peer with: {install}\n\
         ==================================================================\n"
    );
    false
}

/// Whether Node and the pinned TypeScript MCP SDK are installed (skips
/// loudly, or fails under CI, if not).
pub fn sdk_available(test: &str) -> bool {
    let sdk = interop_dir().join("node_modules/@modelcontextprotocol/sdk");
    let missing = if !runs("node", &["--version"]) {
        Some("Node.js (`node`) is not on PATH".to_string())
    } else if !sdk.is_dir() {
        Some(format!("{} does not exist", sdk.display()))
    } else {
        None
    };
    require(test, missing, "npm ci --prefix interop")
}

/// A child process killed when dropped.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `node interop/server.mjs PORT`, its stdout collected line by line.
pub struct Upstream {
    _child: Guard,
    pub url: String,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Upstream {
    pub fn start() -> Upstream {
        let port = super::free_port();
        let mut child = Command::new("node")
            .arg(interop_dir().join("server.mjs"))
            .arg(port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn node interop/server.mjs");
        let stdout = child.stdout.take().expect("server stdout");
        let child = Guard(child);
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let ready = line.starts_with("listening on ");
                sink.lock().unwrap().push(line);
                if ready {
                    let _ = tx.send(());
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(30))
            .expect("node interop/server.mjs did not start listening");
        Upstream {
            _child: child,
            url: format!("http://127.0.0.1:{port}/mcp"),
            lines,
        }
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}

/// Runs `program ARGS` with a timeout; returns (success, stdout, stderr).
pub fn run_program(program: &str, args: &[&str], timeout: Duration) -> (bool, String, String) {
    let mut child = Guard(
        Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {program}: {e}")),
    );
    let mut stdout = child.0.stdout.take().expect("child stdout");
    let mut stderr = child.0.stderr.take().expect("child stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("wait for child") {
            break Some(status);
        }
        if start.elapsed() > timeout {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    drop(child); // kills it if it is still running, which closes its pipes
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    match status {
        Some(status) => (status.success(), out, err),
        None => (false, out, format!("TIMED OUT after {timeout:?}\n{err}")),
    }
}

/// Runs `node interop/client.mjs ARGS` (see run_program).
pub fn run_client(args: &[&str], timeout: Duration) -> (bool, String, String) {
    let script = interop_dir().join("client.mjs").display().to_string();
    let mut full = vec![script.as_str()];
    full.extend_from_slice(args);
    run_program("node", &full, timeout)
}

/// The last line of `stdout` that looks like a JSON object.
pub fn json_line(stdout: &str) -> Option<serde_json::Value> {
    stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .and_then(|l| serde_json::from_str(l).ok())
}

/// The real `gatehouse gateway` on 127.0.0.1:`port` in front of `upstream`,
/// for tokens from `issuer`, with `policies` and the shipped schema; stopped
/// when the guard drops. Returns the guard and the gateway's log.
pub fn start_gateway(
    port: u16,
    resource: &str,
    upstream: &str,
    issuer: &str,
    policies: &Path,
) -> (Guard, Arc<Mutex<String>>) {
    let policies = policies.display().to_string();
    let schema = repo_root()
        .join("policies/gatehouse.cedarschema")
        .display()
        .to_string();
    let listen = format!("127.0.0.1:{port}");
    let (child, _, logs) = super::spawn_ready(
        &[
            "gateway",
            "--listen",
            &listen,
            "--resource",
            resource,
            "--upstream",
            upstream,
            "--issuer",
            issuer,
            "--policies",
            &policies,
            "--schema",
            &schema,
        ],
        &[],
        "gateway started",
    )
    .unwrap_or_else(|logs| panic!("gateway did not start:\n{logs}"));
    (Guard(child), logs)
}

/// The Chromium the browser test drives: `$GATEHOUSE_TEST_CHROMIUM`, or
/// Debian's `/usr/bin/chromium`.
pub fn chromium_path() -> PathBuf {
    std::env::var_os("GATEHOUSE_TEST_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// Whether Node, the pinned playwright-core and Chromium are installed
/// (skips loudly, or fails under CI, if not).
pub fn browser_available(test: &str) -> bool {
    let playwright = interop_dir().join("node_modules/playwright-core");
    let chromium = chromium_path();
    let missing = if !runs("node", &["--version"]) {
        Some("Node.js (`node`) is not on PATH".to_string())
    } else if !playwright.is_dir() {
        Some(format!("{} does not exist", playwright.display()))
    } else if !chromium.is_file() {
        Some(format!("{} does not exist", chromium.display()))
    } else {
        None
    };
    require(
        test,
        missing,
        "apt-get install -y chromium && npm ci --prefix interop",
    )
}

/// Runs `node interop/SCRIPT ARGS` (see run_program).
pub fn run_script(script: &str, args: &[&str], timeout: Duration) -> (bool, String, String) {
    let script = interop_dir().join(script).display().to_string();
    let mut full = vec![script.as_str()];
    full.extend_from_slice(args);
    run_program("node", &full, timeout)
}
