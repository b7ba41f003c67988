//! The programs and services the tests talk to. Each check returns what the
//! test needs or fails the test, naming the command that installs the peer:
//! a test whose peer is missing never passes (it would report `ok` for
//! something it did not test). `./run-tests` installs every pinned peer and
//! finds the local PostgreSQL before it runs `cargo test --workspace`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The variable naming the PostgreSQL server the tests may use (each test
/// makes and drops its own schema there).
pub const POSTGRES_URL_VAR: &str = "GATEHOUSE_TEST_POSTGRES_URL";

/// Fails the test: `what` is missing.
#[track_caller]
pub fn missing(test: &str, what: &str, install: &str) -> ! {
    panic!(
        "{test} cannot run: {what}.\n\
         Run the tests with `./run-tests`, which installs every pinned peer, \
         or install this one with: {install}"
    )
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

/// The PostgreSQL URL from [`POSTGRES_URL_VAR`].
#[track_caller]
pub fn postgres_url(test: &str) -> String {
    match std::env::var(POSTGRES_URL_VAR) {
        Ok(url) if !url.is_empty() => url,
        _ => missing(
            test,
            &format!("{POSTGRES_URL_VAR} is not set"),
            &format!(
                "export {POSTGRES_URL_VAR}=postgres://postgres@127.0.0.1:5432/test \
                 (a PostgreSQL server with a database the tests may create schemas in)"
            ),
        ),
    }
}

/// `repo/interop`, where the pinned Node and Python peers live.
pub fn interop_dir() -> PathBuf {
    repo_root().join("interop")
}

/// The repository's root directory.
pub fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .nth(2)
        .unwrap_or(manifest)
        .to_path_buf()
}

#[track_caller]
fn node(test: &str) {
    if !runs("node", &["--version"]) {
        missing(
            test,
            "Node.js (`node`) is not on PATH",
            "apt-get install -y nodejs npm",
        );
    }
}

/// Node and the pinned TypeScript MCP SDK.
#[track_caller]
pub fn require_sdk(test: &str) {
    node(test);
    let sdk = interop_dir().join("node_modules/@modelcontextprotocol/sdk");
    if !sdk.is_dir() {
        missing(
            test,
            &format!("{} does not exist", sdk.display()),
            "npm ci --prefix interop",
        );
    }
}

/// Node.js, the MCP SDK and curl: what the README's walk-through runs.
pub fn require_walkthrough(test: &str) {
    require_sdk(test);
    if !runs("curl", &["--version"]) {
        missing(test, "curl is not on PATH", "apt-get install -y curl");
    }
}

/// The Chromium the browser tests drive: `$GATEHOUSE_TEST_CHROMIUM`, or
/// Debian's `/usr/bin/chromium`.
pub fn chromium_path() -> PathBuf {
    std::env::var_os("GATEHOUSE_TEST_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// Node, the pinned playwright-core and Chromium.
#[track_caller]
pub fn require_browser(test: &str) {
    node(test);
    let playwright = interop_dir().join("node_modules/playwright-core");
    if !playwright.is_dir() {
        missing(
            test,
            &format!("{} does not exist", playwright.display()),
            "npm ci --prefix interop",
        );
    }
    let chromium = chromium_path();
    if !chromium.is_file() {
        missing(
            test,
            &format!("{} does not exist", chromium.display()),
            "apt-get install -y chromium",
        );
    }
}

/// python3 with the pinned authlib.
#[track_caller]
pub fn require_authlib(test: &str) {
    if !runs("python3", &["--version"]) {
        missing(
            test,
            "Python 3 (`python3`) is not on PATH",
            "apt-get install -y python3 python3-pip",
        );
    }
    if !runs("python3", &["-c", "import authlib, joserfc, requests"]) {
        missing(
            test,
            "the Python packages authlib, joserfc, requests are not installed",
            "python3 -m pip install -r interop/requirements.txt",
        );
    }
}

/// python3 with the pinned MCP Python SDK.
#[track_caller]
pub fn require_mcp_python(test: &str) {
    if !runs("python3", &["-c", "import mcp.client.auth, httpx"]) {
        missing(
            test,
            "the Python package mcp (the MCP Python SDK) is not installed",
            "python3 -m pip install -r interop/requirements.txt",
        );
    }
}

/// nginx's executable (on PATH, or Debian's `/usr/sbin/nginx`).
#[track_caller]
pub fn nginx(test: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|d| d.join("nginx"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| missing(test, "nginx is not installed", "apt-get install -y nginx"))
}
