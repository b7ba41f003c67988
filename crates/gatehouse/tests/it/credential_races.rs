//! Races between a person's credentials, consent and clients, played against
//! the real binary on SQLite and on PostgreSQL: a password reset must end
//! every sign-in in progress, a consent withdrawal or reset must leave no
//! code issued meanwhile redeemable, and deleting a client must take its
//! consents and grants with it (a client re-created under the same id
//! inherits nothing).
//!
//! Each race is repeated for several rounds, with requests looping in
//! parallel with the reset or withdrawal, and judged by what the store holds
//! afterwards and by what a second request can still do with what was
//! obtained — never by status codes alone. Rounds and waits are bounded.

use gatehouse_testkit::person::*;
use gatehouse_testkit::pg::{PgSchema, new_kek};
use gatehouse_testkit::*;
use serde_json::{Value, json};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const REDIRECT: &str = "http://127.0.0.1:7777/callback";

/// One server on one store, with its admin command line and direct reads
/// of the store's tables.
struct Env {
    dir: DataDir,
    server: Server,
    /// PostgreSQL: the schema, the config file naming it, and the KEK.
    pg: Option<(PgSchema, PathBuf, String)>,
}

impl Env {
    /// A server on SQLite (`pg` false) or PostgreSQL.
    async fn start(test: &str, pg: bool, extra_toml: &str) -> Env {
        install_crypto();
        let dir = DataDir::new();
        let config = dir.path().join("gatehouse.toml");
        let (pg, env) = if pg {
            let schema = PgSchema::create(test).await;
            let kek = new_kek();
            std::fs::write(
                &config,
                format!("{extra_toml}\n{}", schema.store_toml(&schema.url)),
            )
            .unwrap();
            (Some((schema, config.clone(), kek.clone())), vec![kek])
        } else {
            std::fs::write(&config, extra_toml).unwrap();
            (None, vec![])
        };
        let cfg = config.display().to_string();
        let kek_env: Vec<(&str, &str)> = env
            .iter()
            .map(|k| ("GATEHOUSE_KEY_ENCRYPTION_KEY", k.as_str()))
            .collect();
        // These tests ask for codes in tight loops on purpose; the code
        // budget (tested in people.rs) is raised out of their way.
        let mut env_vars = kek_env;
        env_vars.push(("GATEHOUSE_PEOPLE__CODES_PER_USER_PER_MINUTE", "100000"));
        env_vars.push(("GATEHOUSE_PEOPLE__CODES_PER_CLIENT_PER_MINUTE", "100000"));
        let server = Server::start(&dir, &["--config", &cfg, "--audience", AUD], &env_vars);
        Env { dir, server, pg }
    }

    fn store_name(&self) -> &'static str {
        if self.pg.is_some() {
            "PostgreSQL"
        } else {
            "SQLite"
        }
    }

    /// Runs an admin command against this server's store, `stdin` as its
    /// standard input.
    fn cli(&self, args: &[&str], stdin: &str) -> (bool, Value, String) {
        let mut full = args.to_vec();
        let dir = self.dir.path().display().to_string();
        let mut env = Vec::new();
        if let Some((_, config, kek)) = &self.pg {
            full.extend(["--config", config.to_str().expect("utf-8 path")]);
            env.push(("GATEHOUSE_KEY_ENCRYPTION_KEY", kek.as_str()));
        }
        full.extend(["--data-dir", &dir]);
        cli_stdin_env(&full, stdin, &env)
    }

    /// [`Env::cli`] off the async runtime, asserting success.
    async fn cli_ok(self: &Arc<Self>, args: &[&str], stdin: &str) -> Value {
        let env = self.clone();
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let stdin = stdin.to_string();
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let (ok, out, err) = env.cli(&args, &stdin);
            assert!(ok, "{args:?} failed: {err}");
            out
        })
        .await
        .expect("cli task")
    }

    /// `SELECT COUNT(*) FROM {from}` in the server's store.
    async fn count(&self, from: &str) -> i64 {
        let sql = format!("SELECT COUNT(*) FROM {from}");
        match &self.pg {
            Some((schema, _, _)) => schema
                .strings(&format!("SELECT COUNT(*)::text FROM {from}"))
                .await[0]
                .parse()
                .expect("count"),
            None => {
                let pool = db(&self.dir).await;
                let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                    .fetch_one(&pool)
                    .await
                    .expect("count");
                pool.close().await;
                n
            }
        }
    }

    fn add_user(&self, name: &str, password: &str) -> String {
        let (ok, out, err) = self.cli(&["user", "add", name], &format!("{password}\n"));
        assert!(ok, "user add: {err}");
        out["id"].as_str().expect("id").to_string()
    }

    fn url(&self, client_id: &str, pkce: &Pkce) -> String {
        authorize_url(&self.server, client_id, REDIRECT, pkce, &[])
    }

    async fn exchange(&self, client_id: &str, code: &str, verifier: &str) -> Response {
        self.server
            .token(
                None,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", code),
                    ("redirect_uri", REDIRECT),
                    ("client_id", client_id),
                    ("code_verifier", verifier),
                ],
            )
            .await
    }

    async fn refresh(&self, client_id: &str, token: &str) -> Response {
        self.server
            .token(
                None,
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", token),
                    ("client_id", client_id),
                ],
            )
            .await
    }

    /// Whether a resource server for `AUD` finds the access token active.
    async fn active(&self, rs: &(String, String), token: &str) -> bool {
        introspected_active(&self.server, rs, token).await
    }

    fn resource_server(&self) -> (String, String) {
        let (ok, out, err) = self.cli(
            &["client", "create", "--name", "rs", "--resource-server", AUD],
            "",
        );
        assert!(ok, "{err}");
        (
            out["client_id"].as_str().unwrap().to_string(),
            out["client_secret"].as_str().unwrap().to_string(),
        )
    }
}

fn is_sign_in_page(page: &Page) -> bool {
    page.status == 200 && page.text.contains("name=\"password\"")
}

fn is_consent_page(page: &Page) -> bool {
    page.status == 200 && page.text.contains("value=\"allow\"")
}

/// The code in a redirect to the client, if that is what `page` is.
fn code_of(page: &Page) -> Option<String> {
    (page.status == 303 && page.location().is_some_and(|l| l.starts_with(REDIRECT)))
        .then(|| page.redirect_params().get("code").cloned())
        .flatten()
}

/// A person whose requests come from 127.0.`a`.`b` (each sign-in loop its
/// own address, so the per-address backoff of one never slows another).
fn person_at(a: u8, b: u8) -> Person {
    Person::from_address(IpAddr::V4(Ipv4Addr::new(127, 0, a, b)))
}

// ---------------------------------------------------------------------
// 1. A password reset ends every sign-in in progress.
// ---------------------------------------------------------------------

/// Sign-ins with a password looped by `WORKERS` browsers while the password
/// is reset, `ROUNDS` times (each round its own account, so one round's
/// failures do not slow the next); every session any of them obtained must
/// be dead afterwards, and none may be left in the store.
async fn reset_ends_sign_ins_in_progress(env: Env) {
    const ROUNDS: u8 = 4;
    const WORKERS: u8 = 3;
    let env = Arc::new(env);
    let client_id = register_public(&env.server, REDIRECT).await;
    let mut survivors = Vec::new();
    for round in 0..ROUNDS {
        let name = format!("racer{round}");
        let user_id = env.add_user(&name, PASSWORD);
        // Set as the reset starts: from then on a refused sign-in is the
        // new password in force, and the loops wind down.
        let reset_begun = Arc::new(AtomicBool::new(false));
        let mut workers = Vec::new();
        for w in 0..WORKERS {
            let (env, done, name, client_id) = (
                env.clone(),
                reset_begun.clone(),
                name.clone(),
                client_id.clone(),
            );
            workers.push(tokio::spawn(async move {
                let mut sessions = Vec::new();
                let mut done_at: Option<Instant> = None;
                loop {
                    if done.load(Ordering::SeqCst) {
                        let at = *done_at.get_or_insert_with(Instant::now);
                        if at.elapsed() > Duration::from_secs(10) {
                            break;
                        }
                    }
                    let mut person = person_at(10 + round, 1 + w);
                    let page = person.get(&env.url(&client_id, &Pkce::new())).await;
                    assert!(is_sign_in_page(&page), "{}", page.text);
                    let signed = person.sign_in(&env.server, &page, &name, PASSWORD).await;
                    if signed.status == 303 {
                        sessions.push(person);
                    } else if signed.status == 429 && !done.load(Ordering::SeqCst) {
                        // Every attempt counts against the name until it
                        // succeeds: parallel sign-ins for one name can be
                        // asked to wait. Not yet the reset.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    } else if done.load(Ordering::SeqCst) {
                        // The new password is in force here.
                        break;
                    } else {
                        panic!(
                            "sign-in before the reset: {} {}",
                            signed.status, signed.text
                        );
                    }
                }
                sessions
            }));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        reset_begun.store(true, Ordering::SeqCst);
        env.cli_ok(
            &["user", "passwd", &name],
            &format!("another password {round}\n"),
        )
        .await;
        let mut signed_in = 0;
        for w in workers {
            for mut person in w.await.expect("worker") {
                signed_in += 1;
                let page = person.get(&env.url(&client_id, &Pkce::new())).await;
                if !is_sign_in_page(&page) {
                    survivors.push(format!(
                        "round {round}: a session from before the reset still answers {}",
                        page.status
                    ));
                }
            }
        }
        assert!(signed_in > 0, "round {round}: nobody signed in");
        let left = env
            .count(&format!(
                "browser_sessions WHERE user_id = '{user_id}' AND expires_at > 0"
            ))
            .await;
        if left > 0 {
            survivors.push(format!(
                "round {round}: {left} session rows left after the reset"
            ));
        }
        // The new password signs in — once the backoff that the refused
        // old-password attempts earned the name has run out.
        let mut person = person_at(10 + round, 200);
        let mut signed = None;
        for _ in 0..6 {
            let page = person.get(&env.url(&client_id, &Pkce::new())).await;
            let answer = person
                .sign_in(
                    &env.server,
                    &page,
                    &name,
                    &format!("another password {round}"),
                )
                .await;
            if answer.status != 429 {
                signed = Some(answer);
                break;
            }
            let wait: u64 = answer
                .header("retry-after")
                .and_then(|v| v.parse().ok())
                .unwrap_or(1);
            assert!(wait <= 8, "round {round}: waits {wait} s");
            tokio::time::sleep(Duration::from_secs(wait)).await;
        }
        let signed = signed.expect("the name's backoff ran out");
        assert_eq!(signed.status, 303, "{}", signed.text);
    }
    assert!(
        survivors.is_empty(),
        "{}: sign-ins survived a password reset:\n{}",
        env.store_name(),
        survivors.join("\n")
    );
}

#[tokio::test]
async fn sqlite_a_password_reset_ends_every_sign_in_in_progress() {
    let env = Env::start("", false, "").await;
    reset_ends_sign_ins_in_progress(env).await;
}

#[tokio::test]
async fn postgres_a_password_reset_ends_every_sign_in_in_progress() {
    let env = Env::start("races_reset_sign_in", true, "").await;
    reset_ends_sign_ins_in_progress(env).await;
}

// ---------------------------------------------------------------------
// 2. No code issued during a withdrawal or a reset becomes a grant.
// ---------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Disruption {
    Withdrawal,
    Reset,
}

/// A signed-in, consenting person's browser asks for codes in a loop
/// (`WORKERS` tabs sharing its cookies) while consent is withdrawn or the
/// password reset, `ROUNDS` times. Every code obtained in a round must be
/// refused afterwards, none may be left unredeemed in the store, and the
/// person's consents (withdrawal) or session (reset) must be gone.
async fn codes_die_with_consent_or_password(env: Env, what: Disruption, rounds: u32) {
    const WORKERS: usize = 6;
    let env = Arc::new(env);
    let client_id = register_public(&env.server, REDIRECT).await;
    let user_id = env.add_user("alice", PASSWORD);
    let mut password = PASSWORD.to_string();
    let mut person = person_at(20, 1);
    let mut live = Vec::new();
    let mut issued_total = 0;
    for round in 0..rounds {
        // Signed in (again, after a reset) and consenting (again, after a
        // withdrawal): the next request gets a code at once.
        let pkce = Pkce::new();
        let mut page = person.get(&env.url(&client_id, &pkce)).await;
        if is_sign_in_page(&page) {
            let signed = person.sign_in(&env.server, &page, "alice", &password).await;
            assert_eq!(signed.status, 303, "{}", signed.text);
            page = person.follow(&signed).await;
        }
        if is_consent_page(&page) {
            page = person.decide(&env.server, &page, "allow").await;
        }
        assert!(code_of(&page).is_some(), "round {round}: {}", page.text);
        let done = Arc::new(AtomicBool::new(false));
        let mut workers = Vec::new();
        for _ in 0..WORKERS {
            let (env, done, client_id) = (env.clone(), done.clone(), client_id.clone());
            let mut tab = Person::new();
            tab.cookies = person.cookies.clone();
            workers.push(tokio::spawn(async move {
                let mut codes = Vec::new();
                let started = Instant::now();
                while started.elapsed() < Duration::from_secs(10) {
                    let pkce = Pkce::new();
                    let page = tab.get(&env.url(&client_id, &pkce)).await;
                    match code_of(&page) {
                        Some(code) => codes.push((code, pkce.verifier)),
                        None if done.load(Ordering::SeqCst) => break,
                        None => panic!("before the change: {} {}", page.status, page.text),
                    }
                }
                codes
            }));
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
        // From here on a page without a code is the change in force.
        done.store(true, Ordering::SeqCst);
        match what {
            Disruption::Withdrawal => {
                let out = env
                    .cli_ok(&["user", "revoke", "alice", "--client", &client_id], "")
                    .await;
                assert_eq!(out["consents_withdrawn"], 1, "{out}");
            }
            Disruption::Reset => {
                password = format!("a new password {round}");
                env.cli_ok(&["user", "passwd", "alice"], &format!("{password}\n"))
                    .await;
            }
        }
        let mut codes = Vec::new();
        for w in workers {
            codes.extend(w.await.expect("worker"));
        }
        issued_total += codes.len();
        for (code, verifier) in &codes {
            let r = env.exchange(&client_id, code, verifier).await;
            if r.status == 200 {
                let refresh = r.json["refresh_token"].as_str().unwrap_or_default();
                let again = env.refresh(&client_id, refresh).await;
                live.push(format!(
                    "round {round}: a code from before the {what:?} was redeemed; \
                     its refresh token then answered {}",
                    again.status
                ));
            } else {
                r.assert_error(400, "invalid_grant");
            }
        }
        let pending = env
            .count(&format!(
                "auth_codes WHERE user_id = '{user_id}' AND consumed_at IS NULL"
            ))
            .await;
        if pending > 0 {
            live.push(format!(
                "round {round}: {pending} unredeemed codes left after the {what:?}"
            ));
        }
        let next = person.get(&env.url(&client_id, &Pkce::new())).await;
        match what {
            Disruption::Withdrawal => {
                assert!(is_consent_page(&next), "asks again: {}", next.text);
                let (ok, list, err) = env.cli(&["user", "consents", "alice"], "");
                assert!(ok, "{err}");
                assert_eq!(list, json!([]), "round {round}");
            }
            Disruption::Reset => {
                assert!(is_sign_in_page(&next), "signs in again: {}", next.text);
            }
        }
    }
    let families = env
        .count(&format!(
            "grant_families WHERE user_id = '{user_id}' AND revoked_at IS NULL"
        ))
        .await;
    if families > 0 {
        live.push(format!("{families} grant families left unrevoked"));
    }
    assert!(issued_total > 0);
    assert!(
        live.is_empty(),
        "{}: of {issued_total} codes issued around a {what:?}, some lived on:\n{}",
        env.store_name(),
        live.join("\n")
    );
}

#[tokio::test]
async fn sqlite_no_code_issued_during_a_consent_withdrawal_becomes_a_grant() {
    let env = Env::start("", false, "").await;
    codes_die_with_consent_or_password(env, Disruption::Withdrawal, 12).await;
}

#[tokio::test]
async fn postgres_no_code_issued_during_a_consent_withdrawal_becomes_a_grant() {
    let env = Env::start("races_withdraw_code", true, "").await;
    codes_die_with_consent_or_password(env, Disruption::Withdrawal, 12).await;
}

#[tokio::test]
async fn sqlite_no_code_issued_during_a_password_reset_becomes_a_grant() {
    let env = Env::start("", false, "").await;
    codes_die_with_consent_or_password(env, Disruption::Reset, 8).await;
}

#[tokio::test]
async fn postgres_no_code_issued_during_a_password_reset_becomes_a_grant() {
    let env = Env::start("races_reset_code", true, "").await;
    codes_die_with_consent_or_password(env, Disruption::Reset, 8).await;
}

// ---------------------------------------------------------------------
// 6. Deleting a client takes its consents and grants with it.
// ---------------------------------------------------------------------

/// Signs `alice` in, consents to `client_id` and exchanges the code: the
/// token response.
async fn grant(env: &Env, person: &mut Person, client_id: &str) -> Value {
    let pkce = Pkce::new();
    let done = person
        .authorize(&env.server, &env.url(client_id, &pkce), "alice")
        .await;
    let code = code_of(&done).expect("code");
    let r = env.exchange(client_id, &code, &pkce.verifier).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json
}

/// What must hold once `client_id` is deleted: nothing of it left live in
/// the store, its refresh token and access token dead, and (when `recreate`
/// makes a client with the same id again) the new client inheriting neither
/// consent nor grant.
async fn nothing_of_the_client_survives(
    env: &Env,
    client_id: &str,
    user_id: &str,
    person: &mut Person,
    tokens: &Value,
    rs: &(String, String),
    recreate: bool,
) {
    for (what, from) in [
        (
            "consents",
            format!("consents WHERE client_id = '{client_id}'"),
        ),
        (
            "unredeemed codes",
            format!("auth_codes WHERE client_id = '{client_id}' AND consumed_at IS NULL"),
        ),
        (
            "unrevoked grant families",
            format!("grant_families WHERE client_id = '{client_id}' AND revoked_at IS NULL"),
        ),
    ] {
        assert_eq!(env.count(&from).await, 0, "{what} of the deleted client");
    }
    assert!(
        env.count(&format!(
            "grant_families WHERE client_id = '{client_id}' AND user_id = '{user_id}'"
        ))
        .await
            > 0,
        "the revoked families stay until they expire"
    );
    let access = tokens["access_token"].as_str().unwrap();
    let jti = verify_token(&env.server, access, AUD).await.1["jti"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        env.count(&format!("revocations WHERE jti = '{jti}'")).await,
        1,
        "the live access token is revoked"
    );
    assert!(!env.active(rs, access).await, "access token still active");
    let (ok, list, err) = env.cli(&["user", "consents", "alice"], "");
    assert!(ok, "{err}");
    assert_eq!(list, json!([]));
    if recreate {
        let (ok, _, err) = env.cli(
            &[
                "client",
                "create",
                "--id",
                client_id,
                "--name",
                "same id again",
                "--grant",
                "authorization_code",
                "--grant",
                "refresh_token",
                "--redirect-uri",
                REDIRECT,
            ],
            "",
        );
        assert!(ok, "{err}");
        // Every replica's cache sees the new client within a poll.
        let url = authorize_url(
            &env.server,
            client_id,
            REDIRECT,
            &Pkce::new(),
            &[("prompt", "none"), ("state", "s")],
        );
        let mut answer = None;
        for _ in 0..50 {
            let page = person.get(&url).await;
            if page.status == 303 {
                answer = Some(page);
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let page = answer.expect("the re-created client is served");
        let params = page.redirect_params();
        assert_eq!(
            params.get("error").map(String::as_str),
            Some("consent_required"),
            "the new client inherited the old one's consent: {params:?}"
        );
    }
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let r = env.refresh(client_id, refresh).await;
    if recreate {
        r.assert_error(400, "invalid_grant");
    } else {
        assert!(r.status == 400 || r.status == 401, "{}", r.text);
    }
}

async fn deleting_a_client_revokes_what_it_holds(env: Env) {
    let user_id = env.add_user("alice", PASSWORD);
    let rs = env.resource_server();

    // The CLI: a client the operator made, with a chosen id.
    let (ok, _, err) = env.cli(
        &[
            "client",
            "create",
            "--id",
            "desk-app",
            "--name",
            "Desk app",
            "--grant",
            "authorization_code",
            "--grant",
            "refresh_token",
            "--redirect-uri",
            REDIRECT,
        ],
        "",
    );
    assert!(ok, "{err}");
    let mut person = person_at(30, 1);
    let tokens = grant(&env, &mut person, "desk-app").await;
    // A code issued and not yet redeemed, too.
    let pending = person
        .authorize(&env.server, &env.url("desk-app", &Pkce::new()), "alice")
        .await;
    assert!(code_of(&pending).is_some());
    let (ok, _, err) = env.cli(&["client", "delete", "desk-app"], "");
    assert!(ok, "{err}");
    nothing_of_the_client_survives(&env, "desk-app", &user_id, &mut person, &tokens, &rs, true)
        .await;

    // RFC 7592 DELETE by the client itself.
    let r = env
        .server
        .register(
            &json!({
                "client_name": "self-registered",
                "redirect_uris": [REDIRECT],
                "grant_types": ["authorization_code", "refresh_token"],
                "token_endpoint_auth_method": "none",
            }),
            None,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.json["client_id"].as_str().unwrap().to_string();
    let rat = r.json["registration_access_token"].as_str().unwrap();
    let uri = r.json["registration_client_uri"].as_str().unwrap();
    let tokens = grant(&env, &mut person, &id).await;
    let del = env
        .server
        .http
        .delete(uri)
        .bearer_auth(rat)
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 204);
    nothing_of_the_client_survives(&env, &id, &user_id, &mut person, &tokens, &rs, false).await;
}

#[tokio::test]
async fn sqlite_deleting_a_client_revokes_its_grants_and_forgets_its_consents() {
    let env = Env::start("", false, "").await;
    deleting_a_client_revokes_what_it_holds(env).await;
}

#[tokio::test]
async fn postgres_deleting_a_client_revokes_its_grants_and_forgets_its_consents() {
    let env = Env::start("races_client_delete", true, "").await;
    deleting_a_client_revokes_what_it_holds(env).await;
}

/// The idle-expiry sweep deletes a self-registered client the way the
/// other paths do.
#[tokio::test]
async fn an_expired_self_registered_client_takes_its_grants_with_it() {
    let env = Env::start(
        "",
        false,
        "[registration]\nidle_expiry = \"3s\"\nunused_expiry = \"2s\"\n",
    )
    .await;
    let user_id = env.add_user("alice", PASSWORD);
    let rs = env.resource_server();
    let id = register_public(&env.server, REDIRECT).await;
    let mut person = person_at(31, 1);
    let tokens = grant(&env, &mut person, &id).await;
    let gone = eventually(Duration::from_secs(15), || async {
        env.count(&format!("clients WHERE id = '{id}'")).await == 0
    })
    .await;
    assert!(gone, "the idle client was not swept");
    nothing_of_the_client_survives(&env, &id, &user_id, &mut person, &tokens, &rs, false).await;
}
