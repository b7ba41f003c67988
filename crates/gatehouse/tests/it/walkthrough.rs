//! The README's five-minute walk-through, run as written: its shell
//! commands are read from README.md and run in order with bash (the ports
//! moved to free ones, `gatehouse` on the PATH), against the real MCP server
//! of `interop/server.mjs`, so the walk-through cannot rot unnoticed.

use gatehouse_testkit::*;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The commands of the walk-through section, in order: every line of its
/// `sh` blocks that is a command (after a `$ ` prompt, or every line of a
/// block without prompts), continuation lines joined.
fn walkthrough_commands(readme: &str) -> Vec<String> {
    let start = readme
        .find("## Five-minute walk-through")
        .expect("the README has its walk-through");
    let end = readme[start + 3..]
        .find("\n## ")
        .map_or(readme.len(), |e| start + 3 + e);
    let mut out = Vec::new();
    let mut block: Option<Vec<&str>> = None;
    for line in readme[start..end].lines() {
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
        let part = text.trim_end_matches('\\').trim();
        let command = match open.take() {
            Some(c) => format!("{c} {part}"),
            None => part.to_string(),
        };
        if text.ends_with('\\') {
            open = Some(command);
        } else {
            commands.push(command);
        }
    }
    commands
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
        let out = self.command(line).output().expect("run bash");
        assert!(
            out.status.success(),
            "`{line}` failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }
}

#[tokio::test]
async fn the_readme_walk_through_runs_as_written() {
    peers::require_walkthrough("walkthrough");
    let root = peers::repo_root();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let commands = walkthrough_commands(&readme);
    assert_eq!(
        commands.len(),
        7,
        "the walk-through's commands: {commands:#?}"
    );

    // A directory of its own (the server's ./gatehouse-data goes there)
    // that looks like the repository's root for what the commands read.
    let dir = DataDir::new();
    for name in ["interop", "policies"] {
        std::os::unix::fs::symlink(root.join(name), dir.path().join(name)).unwrap();
    }
    let bin_dir = dir.path().join("bin");
    std::fs::create_dir(&bin_dir).unwrap();
    std::os::unix::fs::symlink(bin(), bin_dir.join("gatehouse")).unwrap();
    let (auth, gateway, upstream) = (free_port(), free_port(), free_port());
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut shell = Shell {
        cwd: dir.path().to_path_buf(),
        env: vec![
            ("PATH".into(), path),
            // `serve` listens on its default, 127.0.0.1:8080, moved.
            ("GATEHOUSE_LISTEN".into(), format!("127.0.0.1:{auth}")),
        ],
    };
    let ports = |c: &str| {
        c.replace("127.0.0.1:8080", &format!("127.0.0.1:{auth}"))
            .replace("127.0.0.1:9000", &format!("127.0.0.1:{gateway}"))
            .replace("127.0.0.1:3000", &format!("127.0.0.1:{upstream}"))
            .replace("server.mjs 3000", &format!("server.mjs {upstream}"))
            // ./run-tests installed the SDK; reinstalling would pull it
            // from under the tests running beside this one.
            .replace("npm ci --prefix interop && ", "")
    };
    let mut running = Vec::new();
    let mut last = String::new();
    for command in &commands {
        let line = ports(command);
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
    assert_eq!(walkthrough_commands(readme), ["a --x", "b --y", "c"]);
}
