//! Signing in at an upstream identity provider, against a real OpenID
//! Provider: node-oidc-provider (pinned in `interop/package.json`, run by
//! `interop/upstream-idp.mjs` with its development sign-in screens). A real
//! Chromium goes MCP client → Gatehouse's authorization endpoint → "Sign in
//! with Corp" → the provider's sign-in and consent → Gatehouse's consent →
//! the client's loopback redirect; the code becomes a token whose `groups`
//! come from the provider, and a tool call through the embedded gateway is
//! allowed by a policy on that group. Then the ways a callback must fail,
//! each with its page and nothing stored.

use gatehouse_testkit::interop::{Guard, Upstream, json_line, run_script};
use gatehouse_testkit::person::*;
use gatehouse_testkit::*;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

const CLIENT_ID: &str = "gatehouse";
const CLIENT_SECRET: &str = "upstream-secret-9f2c41d7";

struct Idp {
    _child: Guard,
    issuer: String,
}

/// node-oidc-provider on a free port, for a Gatehouse on `gatehouse_port`.
fn start_idp(gatehouse_port: u16) -> Idp {
    let port = free_port();
    let mut child = Command::new("node")
        .arg(peers::interop_dir().join("upstream-idp.mjs"))
        .args([
            &port.to_string(),
            CLIENT_ID,
            CLIENT_SECRET,
            &format!("http://127.0.0.1:{gatehouse_port}/oauth/callback"),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn node interop/upstream-idp.mjs");
    let stdout = child.stdout.take().unwrap();
    let child = Guard(child);
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let ready: Value = serde_json::from_str(&line).expect("the provider's ready line");
    // Keep reading: the provider writes notices to stdout, and a closed
    // pipe would end it.
    std::thread::spawn(move || for _ in reader.lines().map_while(Result::ok) {});
    Idp {
        _child: child,
        issuer: ready["issuer"].as_str().unwrap().to_string(),
    }
}

struct Fixture {
    dir: DataDir,
    server: Server,
    resource: String,
    _upstream: Upstream,
    _idp: Idp,
}

/// Gatehouse with one provider "corp" (named Corp), local accounts as
/// `local`, `extra` configuration, and the embedded gateway in front of the
/// SDK's MCP server, where people in group mcp-users may call search_issues.
fn fixture(local: bool, extra: &str) -> Fixture {
    fixture_with(local, extra, "", |_| {})
}

/// [`fixture`] with `provider_extra` in the provider's table and `before`
/// run on the data directory before the server starts.
fn fixture_with(
    local: bool,
    extra: &str,
    provider_extra: &str,
    before: impl FnOnce(&DataDir),
) -> Fixture {
    install_crypto();
    let dir = DataDir::new();
    let port = free_port();
    let idp = start_idp(port);
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let upstream = Upstream::start();
    let policies = dir.path().join("policies.cedar");
    std::fs::write(
        &policies,
        "@id(\"mcp-users-search\")\npermit (principal in Group::\"mcp-users\", action == Action::\"call_tool\", resource == Tool::\"search_issues\");\n\
         @id(\"corp-verified-delete\")\npermit (principal is User, action == Action::\"call_tool\", resource == Tool::\"delete_repo\") \
         when { principal has idp && principal.idp == \"corp\" && principal has email_verified && principal.email_verified \
         && principal has email && principal.email like \"*@example.com\" };\n",
    )
    .unwrap();
    let secret = dir.path().join("corp.secret");
    std::fs::write(&secret, format!("{CLIENT_SECRET}\n")).unwrap();
    let config = dir.path().join("gatehouse.toml");
    std::fs::write(
        &config,
        format!(
            "[outbound]\nallow_loopback = true\n\
             [people]\nlocal_accounts = {local}\n{extra}\n\
             [[people.providers]]\nid = \"corp\"\nkind = \"oidc\"\nname = \"Corp\"\nissuer = \"{}\"\n\
             client_id = \"{CLIENT_ID}\"\nclient_secret_file = \"{}\"\ngroups_claim = \"groups\"\n{provider_extra}\n\
             [[gateway.servers]]\nresource = \"{resource}\"\nupstream = \"{}\"\npolicies = \"{}\"\n",
            idp.issuer,
            secret.display(),
            upstream.url,
            policies.display()
        ),
    )
    .unwrap();
    before(&dir);
    let listen = format!("127.0.0.1:{port}");
    let server = Server::start(
        &dir,
        &[
            "--config",
            &config.display().to_string(),
            "--listen",
            &listen,
        ],
        &[],
    );
    Fixture {
        dir,
        server,
        resource,
        _upstream: upstream,
        _idp: idp,
    }
}

/// The `state` Gatehouse sent the provider, from the redirect there.
fn state_sent(to_provider: &Page) -> String {
    url::Url::parse(to_provider.location().expect("a redirect to the provider"))
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .expect("a state")
}

impl Fixture {
    /// An authorization URL for `client_id` asking for `openid` at the
    /// gateway's resource, with `state`.
    fn authorize(&self, client_id: &str, redirect: &str, state: &str) -> String {
        authorize_url(
            &self.server,
            client_id,
            redirect,
            &Pkce::new(),
            &[
                ("scope", "openid"),
                ("resource", &self.resource),
                ("state", state),
            ],
        )
    }

    async fn count(&self, table: &str) -> i64 {
        let pool = db(&self.dir).await;
        let n: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
                .fetch_one(&pool)
                .await
                .unwrap();
        pool.close().await;
        n
    }

    /// Runs Chromium through the federated sign-in as `login`.
    fn browser(&self, url: &str, login: &str, answer: &str) -> Value {
        let input = json!({
            "authorize_url": url,
            "username": login,
            "password": "anything",
            "provider": "Corp",
            "provider_answer": answer,
            "mode": "federated",
            "chromium": peers::chromium_path(),
        })
        .to_string();
        let (ok, stdout, stderr) =
            run_script("browser-flow.mjs", &[&input], Duration::from_secs(90));
        assert!(
            ok,
            "the browser flow failed:\n{stdout}\n{stderr}\nserver:\n{}",
            self.server.logs()
        );
        json_line(&stdout).expect("browser-flow's JSON line")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_in_at_the_provider_and_its_groups_reach_the_gateway() {
    peers::require_browser("federation");
    let f = fixture(true, "");
    let redirect = format!("http://127.0.0.1:{}/callback", free_port());
    let client_id = register_public(&f.server, &redirect).await;
    let pkce = Pkce::new();
    let url = authorize_url(
        &f.server,
        &client_id,
        &redirect,
        &pkce,
        &[
            ("scope", "openid profile"),
            ("state", "s1"),
            ("resource", &f.resource),
        ],
    );
    let out = f.browser(&url, "alice", "continue");
    let callback = out["callback_url"]
        .as_str()
        .unwrap_or_else(|| panic!("{out}"));
    let params: std::collections::BTreeMap<String, String> = url::Url::parse(callback)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    assert_eq!(params["state"], "s1", "{out}");
    // The provider's pages were the provider's: the sign-in happened there.
    let pages = out["provider_pages"].to_string();
    assert!(pages.contains("/interaction/"), "{out}");
    let tokens = exchange_code(
        &f.server,
        &client_id,
        &redirect,
        &params["code"],
        &pkce.verifier,
    )
    .await;
    assert_eq!(tokens.status, 200, "{}", tokens.text);
    let access = tokens.json["access_token"].as_str().unwrap().to_string();
    let (_, claims) = verify_token(&f.server, &access, &f.resource).await;
    let sub = claims["sub"].as_str().unwrap().to_string();
    assert!(sub.starts_with("u_"), "{claims}");
    assert_eq!(claims["groups"], json!(["mcp-users", "eng"]), "{claims}");
    // Who vouches for the person, for Cedar.
    assert_eq!(claims["idp"], "corp", "{claims}");
    assert_eq!(claims["email"], "alice@example.com", "{claims}");
    assert_eq!(claims["email_verified"], true, "{claims}");
    // The account: made at the first sign-in, linked by provider and
    // subject, with no password.
    let (ok, users, err) = cli(&f.dir, &["user", "list"]);
    assert!(ok, "{err}");
    let alice = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] == sub.as_str())
        .unwrap_or_else(|| panic!("{users}"));
    assert_eq!(alice["name"], "alice");
    assert_eq!(alice["linked"][0]["provider"], "corp");
    assert_eq!(alice["linked"][0]["subject"], "alice");
    assert_eq!(alice["linked"][0]["email"], "alice@example.com");
    let (ok, _, err) = person::user_cli(
        &[
            "user",
            "passwd",
            "alice",
            "--data-dir",
            &f.dir.path().display().to_string(),
        ],
        "a-new-password-1\n",
    );
    assert!(!ok && err.contains("identity provider"), "{err}");

    // Through the gateway: the group policy allows search_issues only.
    let http = reqwest::Client::new();
    let post = |body: String, session: Option<String>| {
        let mut r = http
            .post(&f.resource)
            .bearer_auth(&access)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body);
        if let Some(s) = session {
            r = r.header("mcp-session-id", s);
        }
        r.send()
    };
    let init = post(
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#.into(),
        None,
    )
    .await
    .unwrap();
    assert_eq!(init.status(), 200);
    let session = init
        .headers()
        .get("mcp-session-id")
        .map(|v| v.to_str().unwrap().to_string());
    let call = |name: &str| {
        format!(
            r#"{{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{{"name":"{name}","arguments":{{}}}}}}"#
        )
    };
    let allowed = post(call("search_issues"), session.clone())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(allowed.contains("called search_issues"), "{allowed}");
    // A policy on the provider and the verified email's domain.
    let by_attributes = post(call("delete_repo"), session.clone())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        by_attributes.contains("called delete_repo"),
        "{by_attributes}"
    );
    let denied = post(call("merge_pr"), session)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(denied.contains("-32003"), "{denied}");

    // A second sign-in (another browser) links to the same account.
    let again = f.browser(&url.replace("state=s1", "state=s2"), "alice", "continue");
    assert!(again["callback_url"].is_string(), "{again}");
    assert_eq!(f.count("users").await, 1);
    assert_eq!(f.count("linked_identities").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_at_the_provider_or_the_callback_are_pages_and_store_nothing() {
    peers::require_browser("federation");
    // Only people in mcp-users, and no password here: straight to the
    // provider.
    let f = fixture(false, "");
    let redirect = format!("http://127.0.0.1:{}/callback", free_port());
    let client_id = register_public(&f.server, &redirect).await;
    let url = authorize_url(
        &f.server,
        &client_id,
        &redirect,
        &Pkce::new(),
        &[("scope", "openid"), ("resource", &f.resource)],
    );
    // No sign-in page: the authorization endpoint sends the browser on.
    let first = Person::new().get(&url).await;
    assert_eq!(first.status, 303, "{}", first.text);
    assert!(
        first.location().unwrap().starts_with(&f._idp.issuer),
        "{:?}",
        first.location()
    );
    assert!(
        first
            .header("set-cookie")
            .is_some_and(|c| c.contains("gatehouse_federation="))
    );
    // Cancelling at the provider: access_denied, on Gatehouse's page for
    // a client that registered itself (no redirect before sign-in).
    let out = f.browser(&url, "alice", "abort");
    assert!(out["callback_url"].is_null(), "{out}");
    assert!(
        out["text"]
            .as_str()
            .unwrap_or_default()
            .contains("Cancelled"),
        "{out}"
    );

    // A callback nobody started, one from another browser, one replayed:
    // the same page, 403.
    let mut alice = Person::new();
    let started = alice.get(&url).await;
    let state = state_sent(&started);
    let callback = |state: &str, extra: &str| {
        f.server.url(&format!(
            "/oauth/callback?state={state}&code=made-up&iss={}{extra}",
            f._idp.issuer
        ))
    };
    let unknown = alice.get(&callback("never-issued", "")).await;
    assert_eq!(unknown.status, 403, "{}", unknown.text);
    assert!(
        unknown.text.contains("could not be completed"),
        "{}",
        unknown.text
    );
    // Another browser, holding a binding cookie of its own.
    let mut other = Person::new();
    assert_eq!(other.get(&url).await.status, 303);
    let elsewhere = other.get(&callback(&state, "")).await;
    assert_eq!(elsewhere.status, 403, "{}", elsewhere.text);
    // That consumed it: the right browser cannot use it afterwards.
    let replay = alice.get(&callback(&state, "")).await;
    assert_eq!(replay.status, 403, "{}", replay.text);

    // Mix-up: a callback naming another issuer for a sign-in sent to corp.
    let mut bob = Person::new();
    let started = bob.get(&url).await;
    let state: String = state_sent(&started);
    let mixed = bob
        .get(&f.server.url(&format!(
            "/oauth/callback?state={state}&code=c&iss=https%3A%2F%2Fevil.example"
        )))
        .await;
    assert_eq!(mixed.status, 403, "{}", mixed.text);
    assert!(
        mixed.text.contains("could not be accepted"),
        "{}",
        mixed.text
    );
    // Refused for its iss, before any code was sent anywhere.
    let logged = || async {
        f.server
            .logs()
            .lines()
            .any(|l| l.contains("federated sign-in refused") && l.contains("evil.example"))
    };
    assert!(
        eventually(Duration::from_secs(5), logged).await,
        "{}",
        f.server.logs()
    );
    // A made-up code with everything else right: the provider refuses it.
    let started = bob.get(&url).await;
    let state: String = state_sent(&started);
    let forged = bob.get(&callback(&state, "")).await;
    assert_eq!(forged.status, 403, "{}", forged.text);
    let logged = || async { f.server.logs().contains("federated sign-in refused") };
    assert!(eventually(Duration::from_secs(5), logged).await);
    for table in [
        "users",
        "linked_identities",
        "browser_sessions",
        "auth_codes",
    ] {
        assert_eq!(f.count(table).await, 0, "{table}");
    }
    let secret_logged = f.server.logs().contains(CLIENT_SECRET);
    assert!(!secret_logged, "the client secret is in the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_lists_and_preexisting_accounts_refuse_people_with_a_page() {
    peers::require_browser("federation");
    // Accounts must exist: alice is linked beforehand, bob is not.
    let f = fixture_with(true, "provision = \"preexisting\"", "", |dir| {
        let (ok, out, err) = cli(dir, &["user", "add", "alice", "--link", "corp:alice"]);
        assert!(ok, "{err}");
        assert_eq!(out["linked"][0]["subject"], "alice", "{out}");
    });
    let redirect = format!("http://127.0.0.1:{}/callback", free_port());
    let client_id = register_public(&f.server, &redirect).await;
    let url = |state: &str| f.authorize(&client_id, &redirect, state);
    let out = f.browser(&url("b"), "bob", "continue");
    assert!(out["callback_url"].is_null(), "{out}");
    assert!(
        out["text"]
            .as_str()
            .unwrap_or_default()
            .contains("no account here for you"),
        "{out}"
    );
    let out = f.browser(&url("a"), "alice", "continue");
    assert!(out["callback_url"].is_string(), "{out}");
    assert_eq!(f.count("users").await, 1);

    // Only people in mcp-users with a verified example.com email: bob (sales,
    // unverified) is refused, alice signs in.
    let f = fixture_with(
        true,
        "",
        "allowed_groups = [\"mcp-users\"]\nallowed_email_domains = [\"example.com\"]",
        |_| {},
    );
    let client_id = register_public(&f.server, &redirect).await;
    let url = |state: &str| f.authorize(&client_id, &redirect, state);
    let out = f.browser(&url("b"), "bob", "continue");
    assert!(
        out["text"]
            .as_str()
            .unwrap_or_default()
            .contains("may not sign in here"),
        "{out}"
    );
    assert_eq!(f.count("users").await, 0);
    let out = f.browser(&url("a"), "alice", "continue");
    assert!(out["callback_url"].is_string(), "{out}");
    assert_eq!(f.count("users").await, 1);
}

#[tokio::test]
async fn a_provider_that_cannot_be_reached_is_a_502_page() {
    install_crypto();
    let dir = DataDir::new();
    let dead = free_port();
    let config = dir.path().join("gatehouse.toml");
    std::fs::write(
        &config,
        format!(
            "allowed_audiences = [\"{AUD}\"]\n[outbound]\nallow_loopback = true\n[people]\nlocal_accounts = false\n\
             [[people.providers]]\nid = \"corp\"\nkind = \"oidc\"\nissuer = \"http://127.0.0.1:{dead}\"\nclient_id = \"g\"\n"
        ),
    )
    .unwrap();
    let server = Server::start(&dir, &["--config", &config.display().to_string()], &[]);
    let redirect = format!("http://127.0.0.1:{}/callback", free_port());
    let client_id = register_public(&server, &redirect).await;
    let url = authorize_url(&server, &client_id, &redirect, &Pkce::new(), &[]);
    let page = Person::new().get(&url).await;
    assert_eq!(page.status, 502, "{}", page.text);
    assert!(page.text.contains("cannot be reached"), "{}", page.text);
    let pool = db(&dir).await;
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM federated_logins")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 0);
}

#[tokio::test]
async fn bad_provider_settings_stop_the_start_naming_the_key() {
    for (toml, key) in [
        (
            "id = \"Corp\"\nkind = \"oidc\"\nissuer = \"https://a.example\"\nclient_id = \"g\"\n",
            "people.providers.id",
        ),
        (
            "id = \"corp\"\nkind = \"saml\"\nissuer = \"https://a.example\"\nclient_id = \"g\"\n",
            "people.providers.kind",
        ),
        (
            "id = \"corp\"\nkind = \"oidc\"\nissuer = \"http://a.example\"\nclient_id = \"g\"\n",
            "people.providers.issuer",
        ),
        (
            "id = \"corp\"\nkind = \"oidc\"\nissuer = \"https://a.example\"\nclient_id = \"\"\n",
            "people.providers.client_id",
        ),
        (
            "id = \"corp\"\nkind = \"oidc\"\nissuer = \"https://a.example\"\nclient_id = \"g\"\nscopes = [\"email\"]\n",
            "people.providers.scopes",
        ),
        (
            "id = \"corp\"\nkind = \"oidc\"\nissuer = \"https://a.example\"\nclient_id = \"g\"\nclient_secret_file = \"/nonexistent\"\n",
            "people.providers.client_secret_file",
        ),
    ] {
        let dir = DataDir::new();
        let cfg = dir.path().join("gatehouse.toml");
        std::fs::write(&cfg, format!("[[people.providers]]\n{toml}")).unwrap();
        match Server::try_start(&dir, &["--config", &cfg.display().to_string()], &[]) {
            Ok(s) => panic!("started with {toml:?}:\n{}", s.logs()),
            Err(logs) => assert!(logs.contains(key), "{toml:?}: no {key}:\n{logs}"),
        }
    }
    let dir = DataDir::new();
    let cfg = dir.path().join("gatehouse.toml");
    std::fs::write(&cfg, "[people]\nlocal_accounts = false\n").unwrap();
    let logs = Server::try_start(&dir, &["--config", &cfg.display().to_string()], &[])
        .err()
        .expect("refused");
    assert!(logs.contains("people.local_accounts"), "{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_ins_sent_to_a_provider_are_bounded_per_address() {
    peers::require_sdk("federation");
    let f = fixture(false, "");
    let redirect = format!("http://127.0.0.1:{}/callback", free_port());
    let client_id = register_public(&f.server, &redirect).await;
    let url = authorize_url(
        &f.server,
        &client_id,
        &redirect,
        &Pkce::new(),
        &[("resource", &f.resource)],
    );
    let mut statuses = Vec::new();
    for _ in 0..32 {
        statuses.push(Person::new().get(&url).await.status);
    }
    // 30 at once; the budget refills one every two seconds, so a slow run
    // may see one more.
    let started = statuses.iter().filter(|s| **s == 303).count();
    assert!((30..=31).contains(&started), "{statuses:?}");
    assert_eq!(statuses[31], 429, "{statuses:?}");
    assert_eq!(f.count("federated_logins").await, started as i64);
}

/// The official TypeScript SDK's OAuth client (headless, through
/// `interop/mcp-oauth-client.mjs`) for a person who signs in at the
/// provider: discovery from the gateway's 401, registration, the provider's
/// forms, Gatehouse's consent, the token, a tool call allowed by the
/// provider's group, and a refresh when the gateway refuses a broken token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typescript_sdk_reaches_a_tool_for_a_person_who_signs_in_at_the_provider() {
    peers::require_sdk("federation");
    let f = fixture(true, "");
    let (ok, stdout, stderr) = run_script(
        "mcp-oauth-client.mjs",
        &[
            &f.resource,
            "alice",
            "anything",
            "search_issues",
            "",
            "corp",
        ],
        Duration::from_secs(90),
    );
    let context = format!(
        "stdout:\n{stdout}\nstderr:\n{stderr}\nserver:\n{}",
        f.server.logs()
    );
    assert!(ok, "the SDK client failed\n{context}");
    let out = json_line(&stdout).unwrap_or_else(|| panic!("no JSON line\n{context}"));
    assert!(
        out["first"]
            .as_str()
            .unwrap_or_default()
            .contains("called search_issues"),
        "{context}"
    );
    assert!(
        out["second"]
            .as_str()
            .unwrap_or_default()
            .contains("called search_issues"),
        "after the refresh\n{context}"
    );
    assert_ne!(
        out["refresh_token_before"], out["refresh_token_after"],
        "{out}"
    );
    let flow = out["flow"].to_string();
    assert!(flow.contains("POST /oauth/federate"), "{flow}");
    assert!(flow.contains("GET /oauth/callback"), "{flow}");
    let (_, claims) = verify_token(
        &f.server,
        out["access_token_after"].as_str().unwrap(),
        &f.resource,
    )
    .await;
    assert_eq!(claims["groups"], json!(["mcp-users", "eng"]), "{claims}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_requests_at_the_federation_endpoints_are_refused_and_store_nothing() {
    peers::require_sdk("federation");
    let f = fixture(true, "");
    let http = reqwest::Client::new();
    // Other methods.
    let post = http
        .post(f.server.url("/oauth/callback"))
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 405);
    let get = http
        .get(f.server.url("/oauth/federate"))
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 405);
    // A federate post without the form's CSRF pair: refused.
    let forged = http
        .post(f.server.url("/oauth/federate"))
        .form(&[("provider", "corp"), ("request", "client_id=x")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    // Repeated parameters, a huge answer, bad encodings.
    for query in [
        "state=a&state=b&code=c".to_string(),
        format!("state={}&code=c", "x".repeat(5000)),
        "state=%FF%FE&code=c".to_string(),
    ] {
        let r = Person::new()
            .get(&f.server.url(&format!("/oauth/callback?{query}")))
            .await;
        assert!(
            r.status == 400 || r.status == 403,
            "{query:.40}: {}",
            r.status
        );
        assert!(r.location().is_none());
    }
    for table in [
        "users",
        "linked_identities",
        "federated_logins",
        "browser_sessions",
    ] {
        assert_eq!(f.count(table).await, 0, "{table}");
    }
}
