//! Shared by the interop tests (mcp_sdk.rs, pkjwt_interop.rs): the pinned
//! peers under `interop/`, run as child processes.

pub use crate::peers::{chromium_path, interop_dir, repo_root, runs};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
        let port = crate::free_port();
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
    let (child, _, logs) = crate::spawn_ready(
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

/// Runs `node interop/SCRIPT ARGS` (see run_program).
pub fn run_script(script: &str, args: &[&str], timeout: Duration) -> (bool, String, String) {
    let script = interop_dir().join(script).display().to_string();
    let mut full = vec![script.as_str()];
    full.extend_from_slice(args);
    run_program("node", &full, timeout)
}
