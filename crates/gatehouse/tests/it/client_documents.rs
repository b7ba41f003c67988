//! Client ID Metadata Documents (docs/clients.md) against the real binary:
//! the documents are served over real HTTPS on loopback by the test, with a
//! certificate from a CA made for the test that Gatehouse is told to trust
//! (`[outbound] extra_ca_file`, `allow_loopback`). A person signs in to a
//! client that exists only as a document; a machine gets tokens with no
//! registration and calls a tool through the gateway under a Cedar policy
//! naming its URL; and every document that must not be a client is refused
//! with its reason, fetched again next time (never cached) and leaves
//! nothing stored.

use gatehouse_oauth::keys::{Alg, SigningKey};
use gatehouse_testkit::gw::{Gw, GwOptions};
use gatehouse_testkit::naive::Naive;
use gatehouse_testkit::person::*;
use gatehouse_testkit::tls::{Answer, HttpsServer, TestCa};
use gatehouse_testkit::*;
use serde_json::{Value, json};
use std::time::Duration;

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

struct Fixture {
    dir: DataDir,
    docs: HttpsServer,
    server: Server,
}

/// A server trusting the test CA, with `extra` configuration, and the
/// HTTPS server the documents live on.
async fn fixture(extra: &str) -> Fixture {
    install_crypto();
    let dir = DataDir::new();
    add_user(&dir, "alice", &["eng"]);
    let ca = TestCa::new(dir.path());
    let docs = HttpsServer::start(&ca).await;
    let config = dir.path().join("gatehouse.toml");
    std::fs::write(
        &config,
        format!(
            "allowed_audiences = [\"{AUD}\"]\n{extra}\n[outbound]\nextra_ca_file = \"{}\"\nallow_loopback = true\n",
            ca.file.display()
        ),
    )
    .unwrap();
    let server = Server::start(&dir, &["--config", &config.display().to_string()], &[]);
    Fixture { dir, docs, server }
}

impl Fixture {
    /// Serves `doc` (its `client_id` set to its own URL) at `path`.
    fn publish(&self, path: &str, mut doc: Value) -> String {
        let url = self.docs.url(path);
        if doc.get("client_id").is_none() {
            doc["client_id"] = url.clone().into();
        }
        self.docs.set(path, Answer::Json(doc, vec![]));
        url
    }

    async fn count(&self, sql: &str) -> i64 {
        let pool = db(&self.dir).await;
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_string()))
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        n
    }

    /// Nothing about any client is stored: no client row, consent, code or
    /// grant.
    async fn assert_nothing_stored(&self, case: &str) {
        for table in ["clients", "consents", "auth_codes", "grant_families"] {
            let n = self.count(&format!("SELECT COUNT(*) FROM {table}")).await;
            assert_eq!(n, 0, "{case}: {table} has {n} rows");
        }
    }
}

fn person_doc(redirect_uri: &str) -> Value {
    json!({
        "client_name": "Doc MCP client",
        "redirect_uris": [redirect_uri],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    })
}

#[tokio::test]
async fn discovery_advertises_documents_unless_they_are_off() {
    let on = fixture("").await;
    let meta = on
        .server
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    assert_eq!(meta.json["client_id_metadata_document_supported"], true);
    let off = fixture("[client_metadata]\nmode = \"off\"").await;
    let meta = off
        .server
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    assert!(
        meta.json
            .get("client_id_metadata_document_supported")
            .is_none(),
        "{}",
        meta.text
    );
    // Off means off: a document URL is an unknown client, and not fetched.
    let redirect = format!("http://127.0.0.1:{}/cb", free_port());
    let id = off.publish("/c.json", person_doc(&redirect));
    let url = authorize_url(&off.server, &id, &redirect, &Pkce::new(), &[]);
    let page = Person::new().get(&url).await;
    assert_eq!(page.status, 400, "{}", page.text);
    assert!(
        page.text
            .contains("does not accept client metadata documents"),
        "{}",
        page.text
    );
    assert_eq!(off.docs.hits("/c.json"), 0);
}

#[tokio::test]
async fn a_person_signs_in_to_a_client_that_is_only_a_document() {
    let f = fixture("").await;
    let redirect = format!("http://127.0.0.1:{}/callback", free_port());
    let id = f.publish("/oauth/client.json", person_doc(&redirect));
    let pkce = Pkce::new();
    let url = authorize_url(
        &f.server,
        &id,
        &redirect,
        &pkce,
        &[("scope", "openid"), ("state", "s1")],
    );
    let mut alice = Person::new();
    let signin = alice.get(&url).await;
    assert_eq!(signin.status, 200, "{}", signin.text);
    assert!(signin.text.contains("Doc MCP client"), "{}", signin.text);
    assert!(signin.text.contains("unverified"), "{}", signin.text);
    let signed = alice.sign_in(&f.server, &signin, "alice", PASSWORD).await;
    let consent = alice.follow(&signed).await;
    assert_eq!(consent.status, 200, "{}", consent.text);
    // The document's host, prominently; unverified; and the warning that
    // it returns only to this computer.
    assert!(
        consent
            .text
            .contains("<p class=\"from\">from <strong>127.0.0.1</strong></p>"),
        "{}",
        consent.text
    );
    assert!(
        consent.text.contains("has not verified"),
        "{}",
        consent.text
    );
    assert!(
        consent.text.contains("only to this computer"),
        "{}",
        consent.text
    );
    let back = alice.decide(&f.server, &consent, "allow").await;
    let params = back.redirect_params();
    assert_eq!(params["state"], "s1");
    let tokens = exchange_code(&f.server, &id, &redirect, &params["code"], &pkce.verifier).await;
    assert_eq!(tokens.status, 200, "{}", tokens.text);
    let (_, claims) = verify_token(
        &f.server,
        tokens.json["access_token"].as_str().unwrap(),
        AUD,
    )
    .await;
    assert_eq!(claims["client_id"], id.as_str());
    let refreshed = f
        .server
        .token(
            None,
            &[
                ("grant_type", "refresh_token"),
                (
                    "refresh_token",
                    tokens.json["refresh_token"].as_str().unwrap(),
                ),
                ("client_id", &id),
            ],
        )
        .await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.text);
    // One fetch served the authorization, the consent, the code and the
    // refresh (cached for at least a minute).
    assert_eq!(f.docs.hits("/oauth/client.json"), 1);
    // A document can change hands with its domain: the same browser is
    // asked again, and prompt=none cannot skip it.
    let again = alice.get(&url).await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert!(again.text.contains("value=\"allow\""), "{}", again.text);
    let silent = authorize_url(
        &f.server,
        &id,
        &redirect,
        &Pkce::new(),
        &[("prompt", "none"), ("state", "s2")],
    );
    let refused = alice.get(&silent).await;
    assert_eq!(refused.redirect_params()["error"], "consent_required");
    // Nothing about the client is stored but the person's consent and grant.
    assert_eq!(f.count("SELECT COUNT(*) FROM clients").await, 0);
    let (ok, consents, err) = cli(&f.dir, &["user", "consents", "alice"]);
    assert!(ok, "{err}");
    assert!(consents.to_string().contains(&id), "{consents}");
    let (ok, _, err) = cli(&f.dir, &["user", "revoke", "alice", "--client", &id]);
    assert!(ok, "{err}");
    let after = f
        .server
        .token(
            None,
            &[
                ("grant_type", "refresh_token"),
                (
                    "refresh_token",
                    refreshed.json["refresh_token"].as_str().unwrap(),
                ),
                ("client_id", &id),
            ],
        )
        .await;
    after.assert_error(400, "invalid_grant");
}

#[tokio::test]
async fn documents_that_must_not_be_clients_are_refused_each_with_its_reason() {
    // Refused client authentications would otherwise be held back by the
    // failure backoff (client_auth_failures.rs) before the document is read,
    // and the fetches by their bound (tested below).
    let f = fixture(
        "[client_auth]\nfree_failures_per_address = 1000\nfree_failures_per_address_client = 1000\n\
         [client_metadata]\nfetches_per_second = 1000\nfetches_per_host_per_minute = 1000",
    )
    .await;
    let redirect = format!("http://127.0.0.1:{}/cb", free_port());
    let good = person_doc(&redirect);
    let with = |k: &str, v: Value| {
        let mut d = good.clone();
        d[k] = v;
        d
    };
    let mut big = good.clone();
    big["client_uri"] = "https://example.com/".into();
    big["padding"] = "x".repeat(6 * 1024).into();
    // (path, answer, what the page must say)
    let cases: Vec<(&str, Answer, &str)> = vec![
        (
            "/mismatch.json",
            Answer::Json(
                with("client_id", "https://elsewhere.example/c".into()),
                vec![],
            ),
            "is not its URL",
        ),
        (
            "/redirect.json",
            Answer::Redirect("/elsewhere.json".into()),
            "redirect refused",
        ),
        (
            "/missing.json",
            Answer::Raw(404, "application/json", b"{}".to_vec()),
            "answered 404",
        ),
        (
            "/gone.json",
            Answer::Raw(410, "application/json", b"{}".to_vec()),
            "answered 410",
        ),
        (
            "/big.json",
            Answer::Raw(200, "application/json", big.to_string().into_bytes()),
            "larger than 5120 bytes",
        ),
        (
            "/broken.json",
            Answer::Raw(200, "application/json", b"{\"client_id\": ".to_vec()),
            "not JSON",
        ),
        (
            "/html.json",
            Answer::Raw(200, "text/html", good.to_string().into_bytes()),
            "not application/json",
        ),
        (
            "/secret.json",
            Answer::Json(with("client_secret", "hunter2hunter2".into()), vec![]),
            "client_secret",
        ),
        (
            "/basic.json",
            Answer::Json(
                with("token_endpoint_auth_method", "client_secret_basic".into()),
                vec![],
            ),
            "client_secret_basic",
        ),
    ];
    for (path, answer, why) in cases {
        let id = f.docs.url(path);
        // Documents that carry a client_id carry this one, unless the case
        // is about that.
        let answer = match answer {
            Answer::Json(mut d, h) if d.get("client_id").is_none() => {
                d["client_id"] = id.clone().into();
                Answer::Json(d, h)
            }
            other => other,
        };
        f.docs.set(path, answer);
        let url = authorize_url(&f.server, &id, &redirect, &Pkce::new(), &[]);
        for attempt in 1..=2 {
            let page = Person::new().get(&url).await;
            assert_eq!(page.status, 400, "{path}: {}", page.text);
            assert!(
                page.text.contains(why),
                "{path}: want {why:?} in {}",
                page.text
            );
            assert!(page.location().is_none(), "{path}: redirected");
            // Not cached: the next request fetches again.
            assert_eq!(f.docs.hits(path), attempt, "{path}");
        }
        // The token endpoint says only invalid_client.
        let r = exchange_code(&f.server, &id, &redirect, "x", &Pkce::new().verifier).await;
        r.assert_error(401, "invalid_client");
        f.assert_nothing_stored(path).await;
    }
    let logged = || async { f.server.logs().contains("client metadata document refused") };
    assert!(
        eventually(Duration::from_secs(5), logged).await,
        "{}",
        f.server.logs()
    );
    assert_eq!(f.docs.hits("/elsewhere.json"), 0, "a redirect was followed");

    // Documents that cannot be fetched right now: 503 with Retry-After, at
    // the page and the token endpoint (the client may be fine: not
    // invalid_client), the reason only in the log, nothing cached.
    for (path, answer, why) in [
        (
            "/error.json",
            Answer::Raw(500, "application/json", b"{}".to_vec()),
            "answered 500",
        ),
        ("/slow.json", Answer::Hang, "no complete answer within 5s"),
    ] {
        f.docs.set(path, answer);
        let id = f.docs.url(path);
        let url = authorize_url(&f.server, &id, &redirect, &Pkce::new(), &[]);
        let page = Person::new().get(&url).await;
        assert_eq!(page.status, 503, "{path}: {}", page.text);
        assert!(page.header("retry-after").is_some(), "{path}");
        assert!(
            !page.text.contains(why),
            "{path}: the page tells the network's story"
        );
        let r = exchange_code(&f.server, &id, &redirect, "x", &Pkce::new().verifier).await;
        r.assert_error(503, "temporarily_unavailable");
        assert_eq!(f.docs.hits(path), 2, "{path}: fetched once per request");
        let logged = || async {
            f.server
                .logs()
                .lines()
                .any(|l| l.contains("client metadata document unavailable") && l.contains(why))
        };
        assert!(eventually(Duration::from_secs(5), logged).await, "{path}");
        f.assert_nothing_stored(path).await;
    }

    // URLs that are never fetched at all.
    let port = f.docs.base.rsplit(':').next().unwrap().to_string();
    for (id, why) in [
        (format!("http://127.0.0.1:{port}/c.json"), "must use https"),
        (format!("https://127.0.0.1:{port}/c.json#f"), "fragment"),
        (
            format!("https://u:p@127.0.0.1:{port}/c.json"),
            "user information",
        ),
        (format!("https://127.0.0.1:{port}/a/../c.json"), ". or .."),
        (format!("https://127.0.0.1:{port}/c.json?v=1"), "query"),
        (
            format!("https://localhost.:{port}/c.json"),
            "end with a dot",
        ),
        ("https://10.1.2.3/c.json".to_string(), "private"),
        ("https://169.254.169.254/latest".to_string(), "private"),
    ] {
        let url = authorize_url(&f.server, &id, &redirect, &Pkce::new(), &[]);
        let page = Person::new().get(&url).await;
        assert_eq!(page.status, 400, "{id}: {}", page.text);
        assert!(
            page.text.contains(why),
            "{id}: want {why:?} in {}",
            page.text
        );
    }
    assert_eq!(f.docs.hits("/c.json"), 0);
    assert_eq!(f.docs.hits("/a/../c.json"), 0);

    // A redirect URI the document does not list (loopback matches on any
    // port, RFC 8252 §7.3, so another path): Gatehouse's page, never a
    // redirect.
    let id = f.publish("/good.json", good.clone());
    let elsewhere = format!("http://127.0.0.1:{}/elsewhere", free_port());
    let url = authorize_url(&f.server, &id, &elsewhere, &Pkce::new(), &[]);
    let page = Person::new().get(&url).await;
    assert_eq!(page.status, 400, "{}", page.text);
    assert!(page.text.contains("did not register"), "{}", page.text);
    assert!(page.location().is_none());
    f.assert_nothing_stored("redirect URI").await;
}

#[tokio::test]
async fn blocked_hosts_and_the_allowlist_are_never_fetched() {
    let f = fixture("[client_metadata]\nblocked_hosts = [\"127.0.0.1\"]").await;
    let redirect = format!("http://127.0.0.1:{}/cb", free_port());
    let id = f.publish("/c.json", person_doc(&redirect));
    let url = authorize_url(&f.server, &id, &redirect, &Pkce::new(), &[]);
    let page = Person::new().get(&url).await;
    assert_eq!(page.status, 400, "{}", page.text);
    assert!(
        page.text.contains("clients from 127.0.0.1 are blocked"),
        "{}",
        page.text
    );
    assert_eq!(f.docs.hits("/c.json"), 0);

    let f = fixture("[client_metadata]\nmode = \"allowlist\"\ntrusted_hosts = [\"*.example.com\"]")
        .await;
    let id = f.publish("/c.json", person_doc(&redirect));
    let url = authorize_url(&f.server, &id, &redirect, &Pkce::new(), &[]);
    let page = Person::new().get(&url).await;
    assert_eq!(page.status, 400, "{}", page.text);
    assert!(
        page.text.contains("not among the hosts this server trusts"),
        "{}",
        page.text
    );
    assert_eq!(f.docs.hits("/c.json"), 0);
    f.assert_nothing_stored("allowlist").await;
}

#[tokio::test]
async fn a_flood_of_unknown_documents_is_fetched_at_a_bounded_rate() {
    let f = fixture("[client_metadata]\nfetches_per_host_per_minute = 5").await;
    let redirect = format!("http://127.0.0.1:{}/cb", free_port());
    // A valid document, fetched before the flood.
    let good = f.publish("/good.json", person_doc(&redirect));
    let good_url = authorize_url(&f.server, &good, &redirect, &Pkce::new(), &[]);
    assert_eq!(Person::new().get(&good_url).await.status, 200);
    for i in 0..20 {
        let id = f.docs.url(&format!("/flood/{i}.json"));
        let url = authorize_url(&f.server, &id, &redirect, &Pkce::new(), &[]);
        let page = Person::new().get(&url).await;
        // The first four are fetched (404: refused); then the host's budget
        // is spent: 503, nothing fetched.
        let want = if i < 4 { 400 } else { 503 };
        assert_eq!(page.status, want, "flood {i}: {}", page.text);
    }
    let fetched: usize = (0..20)
        .map(|i| f.docs.hits(&format!("/flood/{i}.json")))
        .sum();
    assert_eq!(fetched, 4);
    let logged = || async {
        f.server
            .logs()
            .contains("too many document fetches from 127.0.0.1")
    };
    assert!(eventually(Duration::from_secs(5), logged).await);
    // The document fetched before the flood still works.
    assert_eq!(Person::new().get(&good_url).await.status, 200);
    assert_eq!(f.docs.hits("/good.json"), 1);
}

/// An assertion of machine `client` signed with its key `key`.
fn assertion(key: &SigningKey, client: &str, aud: &str) -> String {
    let now = gatehouse_oauth::clock::system_now();
    let claims = json!({"iss": client, "sub": client, "aud": aud, "iat": now,
        "exp": now + 60, "jti": gatehouse_oauth::tokens::issue::new_jti()});
    key.sign_jwt("JWT", &claims).unwrap()
}

#[tokio::test]
async fn a_machine_with_a_document_gets_tokens_and_calls_the_gateway_with_no_registration() {
    let f = fixture(&format!(
        "[[client_metadata.machine_rules]]\nhost = \"127.0.0.1\"\naudiences = [\"{AUD}\"]\nscopes = [\"tools:call\"]"
    ))
    .await;
    let (signing, _) = SigningKey::generate(Alg::ES256).unwrap();
    // The keys behind a jwks_uri on the same host.
    f.docs.set(
        "/keys.json",
        Answer::Json(json!({"keys": [signing.public_jwk()]}), vec![]),
    );
    let id = f.publish(
        "/machine.json",
        json!({
            "client_name": "deploy bot",
            "grant_types": ["client_credentials"],
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks_uri": f.docs.url("/keys.json"),
        }),
    );
    let token = |jwt: String| {
        let server = &f.server;
        async move {
            server
                .token(
                    None,
                    &[
                        ("grant_type", "client_credentials"),
                        ("client_assertion_type", ASSERTION_TYPE),
                        ("client_assertion", &jwt),
                        ("resource", AUD),
                    ],
                )
                .await
        }
    };
    let r = token(assertion(&signing, &id, &f.server.base)).await;
    assert_eq!(r.status, 200, "{}\n{}", r.text, f.server.logs());
    assert_eq!(r.json["scope"], "tools:call");
    let access = r.json["access_token"].as_str().unwrap().to_string();
    let (_, claims) = verify_token(&f.server, &access, AUD).await;
    assert_eq!(claims["sub"], id.as_str());
    assert_eq!(claims["client_id"], id.as_str());
    // The same assertion twice: refused (jti once).
    let jwt = assertion(&signing, &id, &f.server.base);
    assert_eq!(token(jwt.clone()).await.status, 200);
    token(jwt).await.assert_error(401, "invalid_client");
    // A key the document does not publish: refused.
    let (other, _) = SigningKey::generate(Alg::ES256).unwrap();
    token(assertion(&other, &id, &f.server.base))
        .await
        .assert_error(401, "invalid_client");
    assert_eq!(f.count("SELECT COUNT(*) FROM clients").await, 0);

    // Through the gateway, under a policy naming the document's URL.
    let policies = f.dir.path().join("policies.cedar");
    std::fs::write(
        &policies,
        format!(
            "@id(\"doc-machine\")\npermit (principal == Client::\"{id}\", action == Action::\"call_tool\", resource == Tool::\"search_issues\");\n"
        ),
    )
    .unwrap();
    let up = Naive::start().await;
    let gw_port = free_port();
    let resource = AUD.to_string();
    let gw = Gw::start(&GwOptions {
        policies: &policies,
        issuer: &f.server.base,
        upstream: &up.url,
        resource: Some(&resource),
        port: Some(gw_port),
        extra: &[],
    })
    .unwrap();
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    let r = gw.post(&access, init, &[]).await;
    assert_eq!(r.status, 200, "{}\n{}", r.text, gw.logs());
    let session = r.header("mcp-session-id").map(str::to_string);
    let headers: Vec<(&str, &str)> = session
        .as_deref()
        .map(|s| vec![("mcp-session-id", s)])
        .unwrap_or_default();
    let call = |name: &str| {
        format!(
            r#"{{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{{"name":"{name}","arguments":{{}}}}}}"#
        )
    };
    let allowed = gw.post(&access, &call("search_issues"), &headers).await;
    assert_eq!(allowed.status, 200, "{}", allowed.text);
    let denied = gw.post(&access, &call("merge_pr"), &headers).await;
    assert!(denied.text.contains("-32003"), "{}", denied.text);
    let executed: Vec<String> = up
        .calls()
        .into_iter()
        .filter(|(m, _)| m == "tools/call")
        .filter_map(|(_, n)| n)
        .collect();
    assert_eq!(executed, ["search_issues"], "what the upstream executed");
}

#[tokio::test]
async fn a_machine_whose_host_no_rule_names_gets_nothing() {
    let f = fixture("").await;
    let (signing, _) = SigningKey::generate(Alg::ES256).unwrap();
    let id = f.publish(
        "/machine.json",
        json!({
            "grant_types": ["client_credentials"],
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": {"keys": [signing.public_jwk()]},
        }),
    );
    let r = f
        .server
        .token(
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_assertion_type", ASSERTION_TYPE),
                (
                    "client_assertion",
                    &assertion(&signing, &id, &f.server.base),
                ),
            ],
        )
        .await;
    r.assert_error(401, "invalid_client");
    let logged = || async {
        f.server
            .logs()
            .contains("no [[client_metadata.machine_rules]] rule allows machines from 127.0.0.1")
    };
    assert!(
        eventually(Duration::from_secs(5), logged).await,
        "{}",
        f.server.logs()
    );
    f.assert_nothing_stored("no rule").await;
}

/// The official SDKs with their client metadata URL — TypeScript's
/// `clientMetadataUrl`, Python's `client_metadata_url`: against a server that
/// advertises documents each uses the URL as its client id and registers
/// nothing; with documents off each falls back to dynamic registration.
/// Every time a person signs in through the real pages and a tool is called
/// through the embedded gateway.
// Multi-threaded: the SDK clients run as blocking child processes while
// the document server runs on this test's runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdks_use_their_document_when_advertised_and_register_when_not() {
    use gatehouse_testkit::interop::{Upstream, json_line, run_program, run_script};
    peers::require_sdk("client documents with the TypeScript SDK");
    peers::require_mcp_python("client documents with the Python SDK");
    for mode in ["any", "off"] {
        install_crypto();
        let dir = DataDir::new();
        add_user(&dir, "alice", &["eng"]);
        let ca = TestCa::new(dir.path());
        let docs = HttpsServer::start(&ca).await;
        let port = free_port();
        let resource = format!("http://127.0.0.1:{port}/mcp");
        let upstream = Upstream::start();
        let policies = dir.path().join("policies.cedar");
        std::fs::write(
            &policies,
            "@id(\"people-search\")\npermit (principal is User, action == Action::\"call_tool\", resource == Tool::\"search_issues\");\n",
        )
        .unwrap();
        let config = dir.path().join("gatehouse.toml");
        std::fs::write(
            &config,
            format!(
                "[client_metadata]\nmode = \"{mode}\"\n[outbound]\nextra_ca_file = \"{}\"\nallow_loopback = true\n\
                 [[gateway.servers]]\nresource = \"{resource}\"\nupstream = \"{}\"\npolicies = \"{}\"\n",
                ca.file.display(),
                upstream.url,
                policies.display()
            ),
        )
        .unwrap();
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
        let doc_url = docs.url("/sdk/client.json");
        docs.set(
            "/sdk/client.json",
            Answer::Json(
                json!({
                    "client_id": doc_url,
                    "client_name": "Gatehouse interop MCP client",
                    "redirect_uris": ["http://127.0.0.1/callback"],
                    "grant_types": ["authorization_code", "refresh_token"],
                    "response_types": ["code"],
                    "token_endpoint_auth_method": "none",
                }),
                vec![("cache-control", "max-age=300".into())],
            ),
        );
        let script = peers::interop_dir()
            .join("mcp_python_oauth_client.py")
            .display()
            .to_string();
        for sdk in ["typescript", "python"] {
            let (ok, stdout, stderr) = if sdk == "typescript" {
                run_script(
                    "mcp-oauth-client.mjs",
                    &[&resource, "alice", PASSWORD, "search_issues", &doc_url],
                    std::time::Duration::from_secs(90),
                )
            } else {
                run_program(
                    "python3",
                    &[&script, &resource, "alice", PASSWORD, &doc_url],
                    std::time::Duration::from_secs(90),
                )
            };
            let context = format!(
                "{sdk} SDK, mode {mode}\nstdout:\n{stdout}\nstderr:\n{stderr}\nserver logs:\n{}",
                server.logs()
            );
            assert!(ok, "the SDK client failed\n{context}");
            let out = json_line(&stdout).unwrap_or_else(|| panic!("no JSON line\n{context}"));
            let requests = if sdk == "typescript" {
                &out["flow"]
            } else {
                &out["requests"]
            };
            let registered = requests.as_array().unwrap().iter().any(|f| {
                f.as_str()
                    .unwrap_or_default()
                    .starts_with("POST /oauth/register")
            });
            let result = if sdk == "typescript" {
                &out["first"]
            } else {
                &out["result"]
            };
            assert!(
                result
                    .as_str()
                    .unwrap_or_default()
                    .contains("search_issues"),
                "{context}"
            );
            if mode == "any" {
                assert_eq!(out["client_id"], doc_url.as_str(), "{context}");
                assert_eq!(
                    out["authorization"]["client_id"],
                    doc_url.as_str(),
                    "{context}"
                );
                assert!(!registered, "it registered anyway\n{context}");
            } else {
                assert!(registered, "no fallback to registration\n{context}");
                assert!(
                    out["client_id"]
                        .as_str()
                        .is_some_and(|c| c.starts_with("c_")),
                    "{context}"
                );
            }
        }
        let pool = db(&dir).await;
        let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM clients")
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        if mode == "any" {
            // One fetch for both SDKs (the document says max-age=300), and
            // no client row.
            assert_eq!(docs.hits("/sdk/client.json"), 1);
            assert_eq!(rows, 0, "a document client left a row");
        } else {
            assert_eq!(docs.hits("/sdk/client.json"), 0);
            assert_eq!(rows, 2, "each SDK registered once");
        }
    }
}

#[tokio::test]
async fn bad_client_metadata_and_outbound_settings_stop_the_start_naming_the_key() {
    for (toml, key) in [
        (
            "[client_metadata]\nmode = \"maybe\"\n",
            "client_metadata.mode",
        ),
        (
            "[client_metadata]\ntrusted_hosts = [\"Example.COM\"]\n",
            "client_metadata.trusted_hosts",
        ),
        (
            "[client_metadata]\nblocked_hosts = [\"*.*.example.com\"]\n",
            "client_metadata.blocked_hosts",
        ),
        (
            "[client_metadata]\nmin_cache = \"10s\"\n",
            "client_metadata.min_cache",
        ),
        (
            "[client_metadata]\nmax_cache = \"2d\"\n",
            "client_metadata.min_cache",
        ),
        (
            "[client_metadata]\nfetches_per_second = 0\n",
            "client_metadata.fetches_per_second",
        ),
        (
            "[[client_metadata.machine_rules]]\nhost = \"ci.example.com\"\naudiences = [\"https://elsewhere.example/mcp\"]\n",
            "client_metadata.machine_rules.audiences",
        ),
        (
            "[[client_metadata.machine_rules]]\nhost = \"ci/example\"\n",
            "client_metadata.machine_rules.host",
        ),
        (
            "[[client_metadata.machine_rules]]\nhost = \"ci.example.com\"\nsurprise = 1\n",
            "surprise",
        ),
        (
            "issuer = \"https://auth.example.com\"\n[outbound]\nallow_loopback = true\n",
            "outbound.allow_loopback",
        ),
        (
            "issuer = \"https://auth.example.com\"\n[client_auth]\nallow_http_loopback_jwks_uri = true\n",
            "outbound.allow_loopback",
        ),
        (
            "[outbound]\nextra_ca_file = \"/nonexistent/ca.pem\"\n",
            "outbound.extra_ca_file",
        ),
    ] {
        let dir = DataDir::new();
        let cfg = dir.path().join("gatehouse.toml");
        std::fs::write(&cfg, format!("allowed_audiences = [\"{AUD}\"]\n{toml}")).unwrap();
        match Server::try_start(&dir, &["--config", &cfg.display().to_string()], &[]) {
            Ok(s) => panic!("started with {toml:?}:\n{}", s.logs()),
            Err(logs) => assert!(
                logs.contains(key),
                "{toml:?}: the message does not name {key}:\n{logs}"
            ),
        }
    }
    // A file with no certificate in it.
    let dir = DataDir::new();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "nothing here\n").unwrap();
    let cfg = dir.path().join("gatehouse.toml");
    std::fs::write(
        &cfg,
        format!("[outbound]\nextra_ca_file = \"{}\"\n", empty.display()),
    )
    .unwrap();
    let logs = Server::try_start(&dir, &["--config", &cfg.display().to_string()], &[])
        .err()
        .expect("refused");
    assert!(logs.contains("no PEM certificate"), "{logs}");
}
