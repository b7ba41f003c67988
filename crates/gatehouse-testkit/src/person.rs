//! A person at a browser, played over HTTP: a cookie jar, no automatic
//! redirects (each hop is asserted), and the forms read from the pages
//! Gatehouse serves. The real-browser test drives Chromium; these helpers
//! let every protocol test sign in through the same forms (docs/decisions.md
//! "People": no test bypass in the binary).

use crate::{DataDir, Server, bin};
use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

pub const PASSWORD: &str = "correct horse battery";

/// Adds an account with the CLI, the password on stdin; returns its JSON.
pub fn add_user(dir: &DataDir, name: &str, groups: &[&str]) -> Value {
    let mut args = vec!["user", "add", name, "--data-dir"];
    let d = dir.path().display().to_string();
    args.push(&d);
    for g in groups {
        args.extend_from_slice(&["--group", g]);
    }
    let (ok, out, err) = user_cli(&args, &format!("{PASSWORD}\n"));
    assert!(ok, "user add failed: {err}");
    out
}

/// Runs a `gatehouse` command with `stdin` as its standard input.
pub fn user_cli(args: &[&str], stdin: &str) -> (bool, Value, String) {
    cli_stdin_env(args, stdin, &[])
}

/// Runs a `gatehouse` command with `stdin` as its standard input and `env`
/// added to its environment.
pub fn cli_stdin_env(args: &[&str], stdin: &str, env: &[(&str, &str)]) -> (bool, Value, String) {
    let mut child = Command::new(bin())
        .args(args)
        // As crate::cli: tests make accounts before the first start.
        .arg("--init")
        .envs(env.iter().copied())
        .env_remove(crate::pg::URL_VAR)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run gatehouse");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    (
        out.status.success(),
        serde_json::from_str(&stdout).unwrap_or(Value::Null),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// A PKCE pair (RFC 7636).
pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

impl Pkce {
    pub fn new() -> Pkce {
        let verifier = format!("v{}-{}", std::process::id(), B64.encode(rand_bytes()));
        let challenge = B64.encode(digest::digest(&digest::SHA256, verifier.as_bytes()).as_ref());
        Pkce {
            verifier,
            challenge,
        }
    }
}

fn rand_bytes() -> [u8; 32] {
    let mut b = [0u8; 32];
    aws_lc_rs::rand::fill(&mut b).expect("rng");
    b
}

/// One response, whole.
#[derive(Debug)]
pub struct Page {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Page {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn location(&self) -> Option<&str> {
        self.header("location")
    }

    /// The query parameters of the redirect's Location.
    pub fn redirect_params(&self) -> BTreeMap<String, String> {
        let loc = self
            .location()
            .unwrap_or_else(|| panic!("no redirect: {} {}", self.status, self.text));
        let url = url::Url::parse(loc).expect("absolute Location");
        url.query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    /// The value of the form field `name` (hidden inputs).
    pub fn field(&self, name: &str) -> Option<String> {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self.text.find(&marker)? + marker.len();
        let end = self.text[start..].find('"')? + start;
        Some(unescape(&self.text[start..end]))
    }
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

pub struct Person {
    http: reqwest::Client,
    pub cookies: BTreeMap<String, String>,
}

impl Person {
    pub fn new() -> Person {
        Person {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            cookies: BTreeMap::new(),
        }
    }

    /// A person whose connections come from `ip` (any of 127/8 on Linux
    /// loopback), so that tests can play several client addresses.
    pub fn from_address(ip: std::net::IpAddr) -> Person {
        Person {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .local_address(ip)
                .build()
                .expect("client"),
            cookies: BTreeMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn read(&mut self, resp: reqwest::Response) -> Page {
        for v in resp.headers().get_all("set-cookie") {
            let v = v.to_str().unwrap_or_default();
            let pair = v.split(';').next().unwrap_or_default();
            if let Some((k, val)) = pair.split_once('=') {
                if val.is_empty() || v.contains("Max-Age=0") {
                    self.cookies.remove(k);
                } else {
                    self.cookies.insert(k.to_string(), val.to_string());
                }
            }
        }
        Page {
            status: resp.status().as_u16(),
            headers: resp.headers().clone(),
            text: resp.text().await.unwrap_or_default(),
        }
    }

    pub async fn get(&mut self, url: &str) -> Page {
        let resp = self
            .http
            .get(url)
            .header("cookie", self.cookie_header())
            .send()
            .await
            .expect("GET");
        self.read(resp).await
    }

    pub async fn post(&mut self, url: &str, form: &[(&str, &str)]) -> Page {
        self.post_with(url, form, &[]).await
    }

    pub async fn post_with(
        &mut self,
        url: &str,
        form: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Page {
        let mut req = self
            .http
            .post(url)
            .header("cookie", self.cookie_header())
            .form(form);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.expect("POST");
        self.read(resp).await
    }

    /// Submits the sign-in form found on `page`.
    pub async fn sign_in(
        &mut self,
        server: &Server,
        page: &Page,
        name: &str,
        password: &str,
    ) -> Page {
        let csrf = page.field("csrf").expect("csrf field");
        let request = page.field("request").expect("request field");
        self.post(
            &server.url("/oauth/signin"),
            &[
                ("username", name),
                ("password", password),
                ("csrf", &csrf),
                ("request", &request),
            ],
        )
        .await
    }

    /// Answers the consent form found on `page`.
    pub async fn decide(&mut self, server: &Server, page: &Page, decision: &str) -> Page {
        let csrf = page.field("csrf").expect("csrf field");
        let request = page.field("request").expect("request field");
        let shown = page.field("shown").expect("shown field");
        self.post(
            &server.url("/oauth/consent"),
            &[
                ("decision", decision),
                ("csrf", &csrf),
                ("request", &request),
                ("shown", &shown),
            ],
        )
        .await
    }

    /// Follows a 303 that stays on the server.
    pub async fn follow(&mut self, page: &Page) -> Page {
        assert_eq!(page.status, 303, "expected a redirect: {}", page.text);
        let loc = page.location().expect("Location").to_string();
        self.get(&loc).await
    }

    /// The whole happy path for `url`: sign in (if asked), allow (if
    /// asked); returns the final redirect to the client.
    pub async fn authorize(&mut self, server: &Server, url: &str, name: &str) -> Page {
        let mut page = self.get(url).await;
        if page.status == 200
            && page.text.contains("action=\"")
            && page.field("request").is_some()
            && page.text.contains("name=\"password\"")
        {
            let signed = self.sign_in(server, &page, name, PASSWORD).await;
            page = self.follow(&signed).await;
        }
        if page.status == 200 && page.text.contains("value=\"allow\"") {
            page = self.decide(server, &page, "allow").await;
        }
        assert_eq!(page.status, 303, "no redirect to the client: {}", page.text);
        page
    }
}

/// Registers a public client as MCP clients do; returns its id.
pub async fn register_public(server: &Server, redirect_uri: &str) -> String {
    let r = server
        .register(
            &serde_json::json!({
                "client_name": "Test MCP client",
                "redirect_uris": [redirect_uri],
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "token_endpoint_auth_method": "none",
            }),
            None,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.json["client_id"].as_str().expect("client_id").to_string()
}

/// An authorization URL with the usual parameters plus `extra` (and
/// `resource` = [`crate::AUD`] when `extra` names none).
pub fn authorize_url(
    server: &Server,
    client_id: &str,
    redirect_uri: &str,
    pkce: &Pkce,
    extra: &[(&str, &str)],
) -> String {
    let mut url = url::Url::parse(&server.url("/oauth/authorize")).expect("url");
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("code_challenge", &pkce.challenge)
            .append_pair("code_challenge_method", "S256");
        for (k, v) in extra {
            q.append_pair(k, v);
        }
        // The test servers allow more than one audience: name one unless
        // the test does.
        if !extra.iter().any(|(k, _)| *k == "resource") {
            q.append_pair("resource", crate::AUD);
        }
    }
    url.to_string()
}

/// A public client's code exchange (RFC 6749 §4.1.3 with the PKCE
/// `code_verifier` and `client_id`, no secret).
pub async fn exchange_code(
    server: &Server,
    client_id: &str,
    redirect_uri: &str,
    code: &str,
    verifier: &str,
) -> crate::Response {
    server
        .token(
            None,
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", redirect_uri),
                ("code_verifier", verifier),
                ("client_id", client_id),
            ],
        )
        .await
}
