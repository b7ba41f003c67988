//! A person in a real browser: Debian's Chromium, headless, driven by
//! playwright-core (pinned in `interop/package.json`) through
//! `interop/browser-flow.mjs`, types into the sign-in page the real
//! `gatehouse serve` renders, clicks Allow on its consent page, and lands on a
//! loopback client's redirect URI (a real listener in the script) with a
//! code, which the test exchanges with the PKCE verifier only it knows. Then
//! the two ways signing in must fail: a wrong password, and a form without its
//! CSRF field.
//!
//! Needs Node.js, `npm ci --prefix interop` and `/usr/bin/chromium`
//! (`GATEHOUSE_TEST_CHROMIUM` overrides the path). Without them the tests say
//! so loudly on stderr and pass, except under CI (`CI` set), where they fail.

use gatehouse_testkit::interop::*;
use gatehouse_testkit::person::*;
use gatehouse_testkit::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

struct Fixture {
    dir: DataDir,
    server: Server,
    client_id: String,
    redirect_uri: String,
    user: Value,
}

async fn fixture() -> Fixture {
    install_crypto();
    let dir = DataDir::new();
    let user = add_user(&dir, "alice", &["eng"]);
    // The scopes are configured: the consent page must show what is asked.
    let config = dir.path().join("gatehouse.toml");
    std::fs::write(
        &config,
        format!("allowed_audiences = [\"{AUD}\"]\nscopes_supported = [\"openid\", \"profile\", \"tools:call\"]\n"),
    )
    .unwrap();
    let config = config.display().to_string();
    let server = Server::start(&dir, &["--config", &config], &[]);
    // A native app's loopback redirect URI; browser-flow.mjs listens on it.
    let redirect_uri = format!("http://127.0.0.1:{}/callback", free_port());
    let client_id = register_public(&server, &redirect_uri).await;
    Fixture {
        dir,
        server,
        client_id,
        redirect_uri,
        user,
    }
}

impl Fixture {
    fn url(&self, pkce: &Pkce, state: &str) -> String {
        authorize_url(
            &self.server,
            &self.client_id,
            &self.redirect_uri,
            pkce,
            &[
                ("state", state),
                ("scope", "openid tools:call"),
                ("resource", AUD),
            ],
        )
    }

    /// Runs browser-flow.mjs; returns its JSON line (panics with everything
    /// it wrote, and the server's logs, if it fails).
    fn browser(&self, url: &str, password: &str, mode: &str) -> Value {
        let mut input = json!({
            "authorize_url": url,
            "username": "alice",
            "password": password,
            "mode": mode,
            "chromium": chromium_path(),
        });
        // The screenshots in docs/screenshots are taken here: set
        // GATEHOUSE_SCREENSHOTS to a directory to have every page saved.
        if mode == "ok"
            && let Ok(dir) = std::env::var("GATEHOUSE_SCREENSHOTS")
        {
            std::fs::create_dir_all(&dir).expect("screenshot directory");
            input["screenshots"] = dir.into();
        }
        let input = input.to_string();
        let (ok, stdout, stderr) =
            run_script("browser-flow.mjs", &[&input], Duration::from_secs(90));
        let context = format!(
            "browser-flow.mjs ({mode}) stdout:\n{stdout}\nstderr:\n{stderr}\nserver logs:\n{}",
            self.server.logs()
        );
        assert!(ok, "the browser flow failed\n{context}");
        let out = json_line(&stdout).unwrap_or_else(|| panic!("no JSON line\n{context}"));
        // A same-origin form post must carry the issuer's origin, or the CSRF
        // check (which compares it) refuses every sign-in. Chromium sends
        // `Origin: null` when the page's referrer policy is `no-referrer`.
        assert_ne!(
            out["signin_origin"], "null",
            "Chromium sent `Origin: null` with the sign-in form (the page's referrer policy?): {out}\n{context}"
        );
        out
    }

    /// Rows in one of the people tables.
    async fn count(&self, table: &str) -> i64 {
        let sql = match table {
            "browser_sessions" => "SELECT COUNT(*) FROM browser_sessions",
            "consents" => "SELECT COUNT(*) FROM consents",
            "auth_codes" => "SELECT COUNT(*) FROM auth_codes",
            other => panic!("no count for {other}"),
        };
        let pool = db(&self.dir).await;
        let n: i64 = sqlx::query_scalar(sql)
            .fetch_one(&pool)
            .await
            .expect("count");
        pool.close().await;
        n
    }
}

fn query(url: &str) -> BTreeMap<String, String> {
    url::Url::parse(url)
        .unwrap_or_else(|e| panic!("not a URL ({e}): {url}"))
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn cookie<'a>(out: &'a Value, name: &str) -> Option<&'a Value> {
    out["cookies"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == name))
}

#[tokio::test]
async fn in_chromium_a_person_signs_in_allows_and_the_loopback_client_gets_a_code_it_exchanges() {
    require_browser("browser");
    let f = fixture().await;
    let pkce = Pkce::new();
    let state = "st-8Jd_q2";
    let out = f.browser(&f.url(&pkce, state), PASSWORD, "ok");

    // The form was found by its labels, as a person (or a screen reader) finds it.
    assert_eq!(
        out["labelled"], true,
        "sign-in fields without labels: {out}"
    );
    assert_eq!(out["signin_status"], 303, "{out}");
    if std::env::var("GATEHOUSE_SCREENSHOTS").is_ok() {
        let shots = out["shots"].as_array().cloned().unwrap_or_default();
        assert_eq!(
            shots.len(),
            16,
            "4 pages × light/dark × phone/desktop: {out}"
        );
        for shot in shots {
            let bytes = std::fs::read(shot.as_str().unwrap()).expect("screenshot written");
            assert!(
                bytes.starts_with(b"\x89PNG") && bytes.len() > 2_000,
                "{shot}"
            );
        }
    }
    let consent = out["consent_text"].as_str().unwrap_or_default();
    assert!(
        consent.contains("Test MCP client"),
        "the consent page names the client: {consent}"
    );
    assert!(
        consent.contains("tools:call"),
        "the consent page shows the scopes: {consent}"
    );

    // The browser landed on the client's loopback redirect URI, and the
    // listener there received the authorization response.
    let callback = out["callback_url"].as_str().expect("callback_url");
    assert!(
        callback.starts_with(&format!("{}?", f.redirect_uri)),
        "{callback} is not on {}",
        f.redirect_uri
    );
    assert_eq!(out["final_url"], callback, "{out}");
    let params = query(callback);
    assert_eq!(
        params.get("state").map(String::as_str),
        Some(state),
        "{callback}"
    );
    assert_eq!(
        params.get("iss").map(String::as_str),
        Some(f.server.base.as_str()),
        "{callback}"
    );
    assert!(!params.contains_key("error"), "{callback}");
    let code = params.get("code").expect("code in the redirect").clone();

    // The browser session cookie: HttpOnly, SameSite=Lax.
    let session = cookie(&out, "gatehouse_session").unwrap_or_else(|| panic!("no session: {out}"));
    assert_eq!(session["httpOnly"], true, "{out}");
    assert_eq!(session["sameSite"], "Lax", "{out}");

    // The client exchanges the code with the verifier only it knows.
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", f.redirect_uri.as_str()),
        ("code_verifier", pkce.verifier.as_str()),
        ("client_id", f.client_id.as_str()),
    ];
    let t = f.server.token(None, &form).await;
    assert_eq!(t.status, 200, "{}", t.text);
    assert_eq!(t.json["token_type"], "Bearer", "{}", t.text);
    assert!(t.json["expires_in"].as_u64().unwrap_or(0) > 0, "{}", t.text);
    assert!(t.json["refresh_token"].is_string(), "{}", t.text);
    let access = t.json["access_token"].as_str().expect("access_token");
    let (_, claims) = verify_token(&f.server, access, AUD).await;
    assert_eq!(claims["sub"], f.user["id"], "{claims}");
    assert!(
        claims["sub"].as_str().unwrap_or_default().starts_with("u_"),
        "{claims}"
    );
    assert_eq!(claims["client_id"], f.client_id.as_str(), "{claims}");
    assert_eq!(claims["aud"], AUD, "{claims}");
    assert!(
        claims["groups"]
            .as_array()
            .is_some_and(|g| g.iter().any(|g| g == "eng")),
        "{claims}"
    );

    // The code was for one exchange only.
    let again = f.server.token(None, &form).await;
    again.assert_error(400, "invalid_grant");
}

#[tokio::test]
async fn in_chromium_a_wrong_password_shows_an_alert_and_signs_nobody_in() {
    require_browser("browser");
    let f = fixture().await;
    let pkce = Pkce::new();
    let out = f.browser(&f.url(&pkce, "s1"), "not the password", "wrong-password");

    assert_eq!(
        out["labelled"], true,
        "sign-in fields without labels: {out}"
    );
    assert_eq!(out["signin_status"], 401, "{out}");
    let alert = out["alert"].as_str().unwrap_or_default();
    assert!(
        alert.contains("Sign-in failed"),
        "no role=alert with \"Sign-in failed\": {out}"
    );
    // Still the sign-in page, and the password is not echoed back.
    let text = out["text"].as_str().unwrap_or_default();
    assert!(!text.contains("not the password"), "{text}");
    assert!(!text.contains("Allow"), "{text}");
    assert!(
        cookie(&out, "gatehouse_session").is_none(),
        "a session cookie after a wrong password: {out}"
    );
    assert_eq!(f.count("browser_sessions").await, 0);
    assert_eq!(f.count("consents").await, 0);
    assert_eq!(f.count("auth_codes").await, 0);
}

#[tokio::test]
async fn in_chromium_a_sign_in_form_without_its_csrf_field_is_refused_and_signs_nobody_in() {
    require_browser("browser");
    let f = fixture().await;
    let pkce = Pkce::new();
    let out = f.browser(&f.url(&pkce, "s2"), PASSWORD, "no-csrf");

    // The right password, but the form lost its CSRF field.
    assert_eq!(out["signin_status"], 403, "{out}");
    let text = out["text"].as_str().unwrap_or_default();
    assert!(text.contains("could not be verified"), "{out}");
    assert!(
        cookie(&out, "gatehouse_session").is_none(),
        "a session cookie without CSRF: {out}"
    );
    // Opening the authorization request again shows the sign-in page, not
    // the consent page: the browser is not signed in.
    assert_eq!(out["after"], "signin", "{out}");
    assert_eq!(f.count("browser_sessions").await, 0);
    assert_eq!(f.count("consents").await, 0);
    assert_eq!(f.count("auth_codes").await, 0);
}
