//! The README's five-minute walk-through, run as written: its shell
//! commands are read from README.md and run in order with bash (the ports
//! moved to free ones, `gatehouse` on the PATH), against the real MCP server
//! of `interop/server.mjs`, so the walk-through cannot rot unnoticed.

use gatehouse_testkit::*;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The text of the markdown section under `heading` (to the next `## `).
fn section<'a>(md: &'a str, heading: &str) -> &'a str {
    let start = md
        .find(&format!("{heading}\n"))
        .unwrap_or_else(|| panic!("no section {heading:?}"));
    let end = md[start + 3..]
        .find("\n## ")
        .map_or(md.len(), |e| start + 3 + e);
    &md[start..end]
}

/// The commands of a section, in order: every line of its `sh` blocks that
/// is a command (after a `$ ` prompt, or every line of a block without
/// prompts), continuation lines and quoted line breaks joined.
fn section_commands(md: &str, heading: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut block: Option<Vec<&str>> = None;
    for line in section(md, heading).lines() {
        let t = line.trim();
        if t.starts_with("```") {
            match block.take() {
                Some(b) => out.extend(commands_of(&b)),
                None if t == "```sh" => block = Some(Vec::new()),
                None => {}
            }
            continue;
        }
        if let Some(b) = block.as_mut() {
            b.push(t);
        }
    }
    out
}

fn commands_of(block: &[&str]) -> Vec<String> {
    let prompted = block.iter().any(|l| l.starts_with("$ "));
    let mut commands = Vec::new();
    let mut open: Option<String> = None;
    for line in block {
        let text = match (&open, prompted) {
            (Some(_), _) | (None, false) => *line,
            (None, true) => match line.strip_prefix("$ ") {
                Some(t) => t,
                None => continue, // output
            },
        };
        if open.is_none() && (text.is_empty() || text.starts_with('#')) {
            continue;
        }
        let command = match open.take() {
            // Inside single quotes a line break is part of the word.
            Some(c) if in_quotes(&c) => format!("{c}\n{text}"),
            Some(c) => format!("{c} {}", text.trim_end_matches('\\').trim()),
            None => text.trim_end_matches('\\').trim().to_string(),
        };
        if text.ends_with('\\') || in_quotes(&command) {
            open = Some(command);
        } else {
            commands.push(command);
        }
    }
    commands
}

/// Whether `command` ends inside a quoted string (the shell would read on):
/// quotes counted as bash does, up to a comment (`#` after a blank).
fn in_quotes(command: &str) -> bool {
    let mut quote: Option<char> = None;
    let mut previous = ' ';
    for c in command.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '\'' || c == '"' => quote = Some(c),
            None if c == '#' && previous.is_whitespace() => return false,
            None => {}
        }
        previous = c;
    }
    quote.is_some()
}

/// A long-running command and everything it printed.
struct Running {
    child: Child,
    out: Arc<Mutex<String>>,
}

impl Running {
    fn wait_for(&self, marker: &str) {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(60) {
            if self.out.lock().unwrap().contains(marker) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("no {marker:?} within 60 s:\n{}", self.out.lock().unwrap());
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // `bash -c` with one simple command execs it: the child is the
        // program itself. No process-group signal: a group id that is not
        // what it seems would reach far beyond this test.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Shell {
    cwd: std::path::PathBuf,
    env: Vec<(String, String)>,
}

impl Shell {
    fn command(&self, line: &str) -> Command {
        let mut cmd = Command::new("bash");
        cmd.args(["-c", line])
            .current_dir(&self.cwd)
            .env_remove(pg::URL_VAR)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        cmd
    }

    fn spawn(&self, line: &str) -> Running {
        let mut child = self
            .command(line)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn bash");
        let out = Arc::new(Mutex::new(String::new()));
        let readers: Vec<Box<dyn std::io::Read + Send>> = vec![
            Box::new(child.stdout.take().unwrap()),
            Box::new(child.stderr.take().unwrap()),
        ];
        for r in readers {
            let out = out.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(r).lines().map_while(Result::ok) {
                    let mut o = out.lock().unwrap();
                    o.push_str(&line);
                    o.push('\n');
                }
            });
        }
        Running { child, out }
    }

    fn run(&self, line: &str) -> String {
        self.run_with_input(line, "")
    }

    /// Runs `line` with `input` on its standard input; its stdout.
    fn run_with_input(&self, line: &str, input: &str) -> String {
        use std::io::Write;
        let mut child = self
            .command(line)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn bash");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().expect("run bash");
        assert!(
            out.status.success(),
            "`{line}` failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// Runs an assignment line (`NAME=$(…)`) and keeps NAME's value for the
    /// commands after it, as one interactive shell would.
    fn assign(&mut self, line: &str) -> String {
        let name = line.split_once('=').expect("an assignment").0.to_string();
        let value = self.run(&format!("{line}\nprintf %s \"${name}\""));
        assert!(!value.is_empty(), "`{line}` set {name} to nothing");
        self.env.push((name, value.clone()));
        value
    }
}

/// The free ports the documented ones are moved to.
struct Ports {
    auth: u16,
    gateway: u16,
    upstream: u16,
    callback: u16,
}

impl Ports {
    fn apply(&self, c: &str) -> String {
        c.replace("127.0.0.1:8080", &format!("127.0.0.1:{}", self.auth))
            .replace("127.0.0.1:9000", &format!("127.0.0.1:{}", self.gateway))
            .replace("127.0.0.1:3000", &format!("127.0.0.1:{}", self.upstream))
            .replace("server.mjs 3000", &format!("server.mjs {}", self.upstream))
            .replace("33418", &self.callback.to_string())
            // ./run-tests installed the SDK; reinstalling would pull it
            // from under the tests running beside this one.
            .replace("npm ci --prefix interop && ", "")
    }
}

/// A directory of its own (the server's ./gatehouse-data goes there) that
/// looks like the repository's root for what the commands read, and a shell
/// there with `gatehouse` on its PATH and `serve` moved to a free port.
fn workspace() -> (DataDir, Shell, Ports) {
    let root = peers::repo_root();
    let dir = DataDir::new();
    for name in ["interop", "policies"] {
        std::os::unix::fs::symlink(root.join(name), dir.path().join(name)).unwrap();
    }
    let bin_dir = dir.path().join("bin");
    std::fs::create_dir(&bin_dir).unwrap();
    std::os::unix::fs::symlink(bin(), bin_dir.join("gatehouse")).unwrap();
    let ports = Ports {
        auth: free_port(),
        gateway: free_port(),
        upstream: free_port(),
        callback: free_port(),
    };
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let shell = Shell {
        cwd: dir.path().to_path_buf(),
        env: vec![
            ("PATH".into(), path),
            // `serve` listens on its default, 127.0.0.1:8080, moved.
            (
                "GATEHOUSE_LISTEN".into(),
                format!("127.0.0.1:{}", ports.auth),
            ),
        ],
    };
    (dir, shell, ports)
}

#[tokio::test]
async fn the_readme_walk_through_runs_as_written() {
    peers::require_walkthrough("walkthrough");
    let root = peers::repo_root();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let commands = section_commands(&readme, "## Five-minute walk-through");
    assert_eq!(
        commands.len(),
        7,
        "the walk-through's commands: {commands:#?}"
    );

    let (_dir, mut shell, ports) = workspace();
    let mut running = Vec::new();
    let mut last = String::new();
    for command in &commands {
        let line = ports.apply(command);
        if line.starts_with("node interop/server.mjs") {
            let r = shell.spawn(&line);
            r.wait_for("listening on");
            running.push(r);
        } else if line.starts_with("gatehouse serve") {
            let r = shell.spawn(&line);
            r.wait_for("gatehouse started");
            running.push(r);
        } else if line.starts_with("gatehouse gateway") {
            let r = shell.spawn(&line);
            r.wait_for("gateway started");
            running.push(r);
        } else if line.starts_with("gatehouse client create") {
            let out: serde_json::Value = serde_json::from_str(&shell.run(&line)).unwrap();
            assert_eq!(out["client_id"], "ci-bot", "{out}");
            let secret = out["client_secret"].as_str().unwrap().to_string();
            shell.env.push(("CLIENT_SECRET".into(), secret));
        } else if line.contains("/oauth/token") {
            let out: serde_json::Value = serde_json::from_str(&shell.run(&line)).unwrap();
            let token = out["access_token"].as_str().expect("a token").to_string();
            shell.env.push(("ACCESS_TOKEN".into(), token));
        } else if line.contains("\"initialize\"") {
            let out = shell.run(&line);
            println!("{line}\n{out}");
            let session = out
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("mcp-session-id")
                        .then(|| value.trim().to_string())
                })
                .unwrap_or_else(|| panic!("no Mcp-Session-Id: {out}"));
            shell.env.push(("SESSION".into(), session));
        } else {
            last = line.clone();
            let out = shell.run(&line);
            println!("{line}\n{out}");
            assert!(out.contains("called search_issues"), "{line}\n{out}");
        }
    }
    // What the README says next: any other tool is refused, by decision id.
    let denied = shell.run(&last.replace("search_issues", "merge_pr"));
    assert!(
        denied.contains("-32003") && denied.contains("decision d_"),
        "{denied}"
    );
    drop(running);
}

#[test]
fn the_walk_through_reader_reads_prompts_continuations_and_plain_blocks() {
    let readme = "## Five-minute walk-through\n\n```sh\na --x\n```\n\n```sh\n$ b \\\n    --y\n{\"out\": 1}\n$ c\n```\n\n```toml\nd\n```\n\n## Next\n\n```sh\ne\n```\n";
    assert_eq!(
        section_commands(readme, "## Five-minute walk-through"),
        ["a --x", "b --y", "c"]
    );
    let quoted = "## Q\n\n```sh\ncurl -d '{\n  \"a\": 1}'\nnext   # alice's\nlast\n```\n";
    assert_eq!(
        section_commands(quoted, "## Q"),
        ["curl -d '{\n\"a\": 1}'", "next   # alice's", "last"]
    );
}

/// The `# …` comment lines of docs/people.md's step 3 that spell out the
/// authorization URL to open, joined into it.
fn authorize_url_of(flow: &str) -> String {
    let mut url = String::new();
    for line in flow.lines() {
        let text = line.trim().trim_start_matches('#').trim();
        if text.contains("/oauth/authorize?") {
            url = text.to_string();
        } else if !url.is_empty() && text.starts_with('&') {
            url.push_str(text);
        } else if !url.is_empty() {
            break;
        }
    }
    assert!(!url.is_empty(), "no authorization URL in {flow}");
    url
}

/// docs/people.md run as written: the server the README starts, an account
/// (`user add`), then "The flow, by hand" — registration with curl, the PKCE
/// pair with openssl, Python's file server on the redirect URI, a real
/// Chromium signing in at the URL the page spells out, the code read from
/// the file server's log, the exchange and the refresh with curl — and the
/// account commands after it (`consents`, `revoke`, `passwd`, `delete`).
#[tokio::test]
async fn the_people_walk_through_runs_as_written() {
    peers::require_walkthrough("people walkthrough");
    peers::require_browser("people walkthrough");
    if !peers::runs("openssl", &["version"]) || !peers::runs("python3", &["--version"]) {
        peers::missing(
            "people walkthrough",
            "openssl or python3 is not on PATH",
            "apt-get install -y openssl python3",
        );
    }
    let root = peers::repo_root();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let people = std::fs::read_to_string(root.join("docs/people.md")).unwrap();
    let serve = section_commands(&readme, "## Five-minute walk-through")
        .into_iter()
        .find(|c| c.starts_with("gatehouse serve"))
        .expect("the README starts the server");
    let accounts = section_commands(&people, "## Accounts");
    let flow = section_commands(&people, "## The flow, by hand");
    assert_eq!(accounts.len(), 6, "the account commands: {accounts:#?}");
    assert_eq!(flow.len(), 6, "the flow's commands: {flow:#?}");
    let account = |verb: &str| {
        accounts
            .iter()
            .find(|c| {
                let command = format!("gatehouse user {verb}");
                *c == &command || c.starts_with(&format!("{command} "))
            })
            .unwrap_or_else(|| panic!("no `user {verb}` in {accounts:#?}"))
            .clone()
    };

    let (_dir, mut shell, ports) = workspace();
    let server = shell.spawn(&ports.apply(&serve));
    server.wait_for("gatehouse started");

    // Accounts: the password on the first line of standard input.
    let added: serde_json::Value =
        serde_json::from_str(&shell.run_with_input(&account("add"), "correct horse 1\n")).unwrap();
    assert_eq!(added["name"], "alice", "{added}");
    assert_eq!(added["groups"], serde_json::json!(["admins"]), "{added}");
    let user_id = added["id"].as_str().expect("an id").to_string();
    assert!(shell.run(&account("list")).contains(&user_id));

    // 1. Register.
    let registered: serde_json::Value =
        serde_json::from_str(&shell.run(&ports.apply(&flow[0]))).unwrap();
    let client_id = registered["client_id"].as_str().expect("a client id");
    assert_eq!(
        registered["token_endpoint_auth_method"], "none",
        "{registered}"
    );
    assert!(registered.get("client_secret").is_none(), "{registered}");
    shell.env.push(("CLIENT_ID".into(), client_id.to_string()));

    // 2. The PKCE pair.
    let verifier = shell.assign(&flow[1]);
    let challenge = shell.assign(&flow[2]);
    assert!((43..=128).contains(&verifier.len()), "{verifier}");
    assert_eq!(challenge.len(), 43, "{challenge}");

    // 3. The file server on the redirect URI, then the browser.
    let catcher = flow[3]
        .strip_suffix('&')
        .expect("step 3 runs the file server in the background")
        .trim();
    let catcher = shell.spawn(&ports.apply(catcher));
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", ports.callback)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the file server did not listen:\n{}",
            catcher.out.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let url = shell.run(&format!(
        "printf %s \"{}\"",
        ports.apply(&authorize_url_of(section(&people, "## The flow, by hand")))
    ));
    assert!(url.contains(&format!("client_id={client_id}&")), "{url}");
    let input = serde_json::json!({
        "authorize_url": url,
        "username": "alice",
        "password": "correct horse 1",
        "mode": "ok",
        "listen": false,
        "chromium": peers::chromium_path(),
    })
    .to_string();
    let (ok, stdout, stderr) =
        interop::run_script("browser-flow.mjs", &[&input], Duration::from_secs(90));
    assert!(
        ok,
        "the browser flow failed:\n{stdout}\n{stderr}\nserver:\n{}",
        server.out.lock().unwrap()
    );
    let browser = interop::json_line(&stdout).expect("browser-flow's JSON line");
    // What the file server logged: "GET /callback?code=…&state=xyz&iss=…".
    catcher.wait_for("GET /callback?code=");
    let logged = catcher.out.lock().unwrap().clone();
    let request = logged
        .lines()
        .find_map(|l| l.split("\"GET ").nth(1))
        .and_then(|r| r.split(' ').next())
        .unwrap_or_else(|| panic!("no request line in {logged}"));
    let query: std::collections::BTreeMap<String, String> =
        url::Url::parse(&format!("http://127.0.0.1{request}"))
            .unwrap()
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
    assert_eq!(query["state"], "xyz", "{logged}");
    assert_eq!(query["iss"], format!("http://127.0.0.1:{}", ports.auth));
    assert!(
        browser["callback_url"]
            .as_str()
            .is_some_and(|u| u.contains(&query["code"])),
        "{browser}"
    );
    shell.env.push(("CODE".into(), query["code"].clone()));

    // 4. The exchange.
    let tokens: serde_json::Value =
        serde_json::from_str(&shell.run(&ports.apply(&flow[4]))).unwrap();
    assert_eq!(tokens["token_type"], "Bearer", "{tokens}");
    assert_eq!(tokens["scope"], "openid", "{tokens}");
    for field in ["access_token", "refresh_token", "id_token"] {
        assert!(tokens[field].is_string(), "no {field}: {tokens}");
    }
    let refresh = tokens["refresh_token"].as_str().unwrap().to_string();
    shell.env.push(("REFRESH".into(), refresh.clone()));

    // 5. The refresh: a new refresh token each time.
    let refreshed: serde_json::Value =
        serde_json::from_str(&shell.run(&ports.apply(&flow[5]))).unwrap();
    let newest = refreshed["refresh_token"]
        .as_str()
        .expect("a refresh token");
    assert_ne!(newest, refresh, "{refreshed}");
    assert!(refreshed["access_token"].is_string(), "{refreshed}");
    shell.env.push(("REFRESH".into(), newest.to_string()));

    // The account commands after the flow.
    let consents = shell.run(&account("consents"));
    assert!(consents.contains(client_id), "{consents}");
    shell.run(&account("revoke").replace("c_…", client_id));
    let refused: serde_json::Value =
        serde_json::from_str(&shell.run(&ports.apply(&flow[5]))).unwrap();
    assert_eq!(refused["error"], "invalid_grant", "{refused}");
    assert!(!shell.run(&account("consents")).contains(client_id));
    shell.run_with_input(&account("passwd"), "correct horse 2\n");
    shell.run(&account("delete"));
    assert!(!shell.run(&account("list")).contains(&user_id));
    drop((catcher, server));
}
