//! The MCP conformance suite (`@modelcontextprotocol/conformance`, pinned
//! in `interop/package.json`) against the real binary: its
//! authorization-server scenarios — metadata (including Client ID Metadata
//! Document support) and the authorization code grant, whose sign-in and
//! consent a real Chromium performs at the URL the suite prints, landing on
//! the suite's own callback listener. Every check must pass, with no
//! warning.

use gatehouse_testkit::interop::{Guard, json_line, run_script};
use gatehouse_testkit::person::*;
use gatehouse_testkit::*;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mcp_conformance_suite_passes_the_authorization_server_scenarios_without_warnings() {
    peers::require_browser("conformance");
    let suite =
        peers::interop_dir().join("node_modules/@modelcontextprotocol/conformance/dist/index.js");
    if !suite.is_file() {
        peers::missing(
            "conformance",
            &format!("{} does not exist", suite.display()),
            "npm ci --prefix interop",
        );
    }
    install_crypto();
    let dir = DataDir::new();
    add_user(&dir, "alice", &["eng"]);
    let server = Server::start(&dir, &["--audience", AUD], &[]);
    let port = free_port();
    let redirect = format!("http://127.0.0.1:{port}/callback");
    let client_id = register_public(&server, &redirect).await;

    let mut child = Command::new("node")
        .arg("--import")
        .arg(peers::interop_dir().join("node20-globsync.mjs"))
        .arg(&suite)
        .args([
            "authorization",
            "--url",
            &server.base,
            "--client-id",
            &client_id,
        ])
        .args(["--resource", AUD, "--port", &port.to_string()])
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the conformance suite");
    let out = Arc::new(Mutex::new(String::new()));
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let out = out.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let mut o = out.lock().unwrap();
                o.push_str(&line);
                o.push('\n');
            }
        });
    }
    let mut suite_run = Guard(child);
    // The suite prints the authorization URL, then waits for its callback.
    let authorize = server.url("/oauth/authorize?");
    let started = Instant::now();
    let url = loop {
        let text = out.lock().unwrap().clone();
        if let Some(line) = text.lines().find(|l| l.trim().starts_with(&authorize)) {
            break line.trim().to_string();
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the suite printed no authorization URL:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let input = serde_json::json!({
        "authorize_url": url,
        "username": "alice",
        "password": PASSWORD,
        "mode": "ok",
        "listen": false,
        "chromium": peers::chromium_path(),
    })
    .to_string();
    let (ok, stdout, stderr) = run_script("browser-flow.mjs", &[&input], Duration::from_secs(90));
    assert!(
        ok,
        "the browser flow failed:\n{stdout}\n{stderr}\n{}",
        server.logs()
    );
    assert!(json_line(&stdout).is_some(), "{stdout}");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = suite_run.0.try_wait().expect("wait") {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the suite did not finish:\n{}",
            out.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Let the readers drain.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let text = out.lock().unwrap().clone();
    assert!(status.success(), "the suite failed:\n{text}");
    // The metadata scenario's two checks: a valid document, and Client ID
    // Metadata Document support advertised (its warning when absent).
    for want in [
        "authorization-server-metadata-endpoint: 2 passed, 0 failed",
        "authorization-code-grant: 1 passed, 0 failed",
        "Total: 3 passed, 0 failed",
    ] {
        assert!(text.contains(want), "no {want:?} in:\n{text}");
    }
    assert!(
        !text.contains("WARNING") && !text.to_lowercase().contains(" warnings:"),
        "warnings:\n{text}"
    );
}
