//! People: the authorization endpoint, sign-in, consent, codes with PKCE,
//! refresh-token rotation, ID tokens and userinfo — over HTTP against the
//! real binary, signing in through the real forms.

use gatehouse_testkit::person::*;
use gatehouse_testkit::*;
use serde_json::{Value, json};
use std::time::Duration;

const REDIRECT: &str = "http://127.0.0.1:7777/callback";
const AUD2: &str = "http://127.0.0.1:9998/mcp";

struct Fixture {
    dir: DataDir,
    server: Server,
    client_id: String,
    user: Value,
}

async fn fixture_with(args: &[&str], env: &[(&str, &str)]) -> Fixture {
    install_crypto();
    let dir = DataDir::new();
    let user = add_user(&dir, "alice", &["eng"]);
    let mut full = vec!["--audience", AUD, "--audience", AUD2];
    full.extend_from_slice(args);
    let server = Server::start(&dir, &full, env);
    let client_id = register_public(&server, REDIRECT).await;
    Fixture {
        dir,
        server,
        client_id,
        user,
    }
}

async fn fixture() -> Fixture {
    fixture_with(&[], &[]).await
}

/// Refresh tokens marked used, for [`count`].
const USED_REFRESH_TOKENS: &str = "refresh_tokens WHERE used_at IS NOT NULL";

/// Rows of `table` (optionally with a `WHERE` clause) in the server's store.
async fn count(dir: &DataDir, table: &str) -> i64 {
    let pool = db(dir).await;
    let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
        .fetch_one(&pool)
        .await
        .expect("count");
    pool.close().await;
    n
}

/// Signs in and allows the fixture's client once (a code is issued and
/// left unused), so the person has a session and a remembered consent.
async fn sign_in_and_allow(f: &Fixture, person: &mut Person) {
    let url = authorize_url(&f.server, &f.client_id, REDIRECT, &Pkce::new(), &[]);
    person.authorize(&f.server, &url, "alice").await;
}

/// Signs in, consents, and exchanges the code; returns the token response.
async fn tokens(f: &Fixture, person: &mut Person, extra: &[(&str, &str)]) -> Value {
    let pkce = Pkce::new();
    let url = authorize_url(&f.server, &f.client_id, REDIRECT, &pkce, extra);
    let done = person.authorize(&f.server, &url, "alice").await;
    let code = done.redirect_params()["code"].clone();
    let r = exchange(f, &code, &pkce.verifier, &[]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json
}

async fn exchange(f: &Fixture, code: &str, verifier: &str, extra: &[(&str, &str)]) -> Response {
    exchange_at(f, code, REDIRECT, Some(verifier), extra).await
}

/// A code exchange at `redirect_uri`, with or without a verifier.
async fn exchange_at(
    f: &Fixture,
    code: &str,
    redirect_uri: &str,
    verifier: Option<&str>,
    extra: &[(&str, &str)],
) -> Response {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("client_id", f.client_id.as_str()),
    ];
    if let Some(v) = verifier {
        form.push(("code_verifier", v));
    }
    form.extend_from_slice(extra);
    f.server.token(None, &form).await
}

async fn refresh(f: &Fixture, token: &str, extra: &[(&str, &str)]) -> Response {
    let mut form = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", token),
        ("client_id", f.client_id.as_str()),
    ];
    form.extend_from_slice(extra);
    f.server.token(None, &form).await
}

/// A resource server that may introspect tokens for `AUD`.
fn resource_server(f: &Fixture) -> (String, String) {
    create_client(&f.dir, &["--resource-server", AUD])
}

async fn active(f: &Fixture, rs: &(String, String), token: &str) -> bool {
    introspected_active(&f.server, rs, token).await
}

/// Whether the server logs `needle` within a few seconds (its stderr is
/// read as it comes, so a line may trail the response it belongs to).
async fn logged(f: &Fixture, needle: &str) -> bool {
    eventually(Duration::from_secs(5), || {
        let logs = f.server.logs();
        async move { logs.contains(needle) }
    })
    .await
}

fn claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("b64");
    serde_json::from_slice(&bytes).expect("claims")
}

#[tokio::test]
async fn a_person_signs_in_consents_and_the_client_exchanges_the_code_for_tokens() {
    let f = fixture().await;
    let mut person = Person::new();
    let pkce = Pkce::new();
    let url = authorize_url(
        &f.server,
        &f.client_id,
        REDIRECT,
        &pkce,
        &[
            ("state", "xyz 123"),
            ("scope", "openid profile"),
            ("resource", AUD),
            ("nonce", "n-0S6_WzA2Mj"),
        ],
    );
    // Not signed in: the sign-in page, no redirect.
    let page = person.get(&url).await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(
        page.text.contains("<label for=\"username\">"),
        "{}",
        page.text
    );
    assert!(page.text.contains("Test MCP client"));
    let signed = person.sign_in(&f.server, &page, "alice", PASSWORD).await;
    assert_eq!(signed.status, 303, "{}", signed.text);
    let cookie = signed
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("gatehouse_session="))
        .expect("session cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "http issuer: {cookie}");
    // Consent names the client, marks it unverified, shows scopes and server.
    let consent = person.follow(&signed).await;
    assert_eq!(consent.status, 200, "{}", consent.text);
    for shown in [
        "Test MCP client",
        "unverified",
        "openid",
        "profile",
        AUD,
        "127.0.0.1",
    ] {
        assert!(
            consent.text.contains(shown),
            "{shown} missing: {}",
            consent.text
        );
    }
    let done = person.decide(&f.server, &consent, "allow").await;
    assert_eq!(done.status, 303);
    let loc = done.location().unwrap();
    assert!(loc.starts_with(REDIRECT), "{loc}");
    let p = done.redirect_params();
    assert_eq!(p["state"], "xyz 123", "state echoed");
    assert_eq!(p["iss"], f.server.base, "RFC 9207 iss");
    let r = exchange(&f, &p["code"], &pkce.verifier, &[]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["token_type"], "Bearer");
    assert_eq!(r.json["scope"], "openid profile");
    assert!(r.json["refresh_token"].is_string());
    assert_eq!(r.header("cache-control"), Some("no-store"));

    let (header, at) = verify_token(&f.server, r.json["access_token"].as_str().unwrap(), AUD).await;
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    assert_eq!(at["sub"], f.user["id"]);
    assert!(at["sub"].as_str().unwrap().starts_with("u_"));
    assert_eq!(at["client_id"], f.client_id.as_str());
    assert_eq!(at["aud"], AUD);
    assert_eq!(at["scope"], "openid profile");
    assert_eq!(at["groups"], json!(["eng"]));
    assert!(at["auth_time"].as_i64().unwrap() <= at["iat"].as_i64().unwrap());

    // The ID token: OIDC Core claims, RS256 by default, verifiable by JWKS.
    let id = r.json["id_token"].as_str().expect("id_token");
    let (h, c) = verify_token(&f.server, id, &f.client_id).await;
    assert_eq!(h.alg, jsonwebtoken::Algorithm::RS256);
    assert_eq!(c["sub"], f.user["id"]);
    assert_eq!(c["nonce"], "n-0S6_WzA2Mj");
    assert_eq!(c["auth_time"], at["auth_time"]);

    // userinfo with the access token.
    let ui = f
        .server
        .http
        .get(f.server.url("/oauth/userinfo"))
        .bearer_auth(r.json["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(ui.status(), 200);
    let ui: Value = ui.json().await.unwrap();
    assert_eq!(
        ui,
        json!({"sub": f.user["id"], "preferred_username": "alice", "groups": ["eng"]})
    );
}

#[tokio::test]
async fn a_reused_code_is_refused_and_revokes_the_tokens_issued_from_it() {
    let f = fixture().await;
    let rs = resource_server(&f);
    let mut person = Person::new();
    let pkce = Pkce::new();
    let url = authorize_url(&f.server, &f.client_id, REDIRECT, &pkce, &[]);
    let code = person
        .authorize(&f.server, &url, "alice")
        .await
        .redirect_params()["code"]
        .clone();
    let first = exchange(&f, &code, &pkce.verifier, &[]).await;
    assert_eq!(first.status, 200, "{}", first.text);
    let at = first.json["access_token"].as_str().unwrap();
    let rt = first.json["refresh_token"].as_str().unwrap();
    assert!(active(&f, &rs, at).await);
    let again = exchange(&f, &code, &pkce.verifier, &[]).await;
    again.assert_error(400, "invalid_grant");
    assert!(
        !active(&f, &rs, at).await,
        "the first exchange's access token is revoked"
    );
    refresh(&f, rt, &[])
        .await
        .assert_error(400, "invalid_grant");
}

#[tokio::test]
async fn a_wrong_code_verifier_is_refused_and_leaves_the_code_usable() {
    let f = fixture().await;
    let mut person = Person::new();
    let pkce = Pkce::new();
    let url = authorize_url(&f.server, &f.client_id, REDIRECT, &pkce, &[]);
    let code = person
        .authorize(&f.server, &url, "alice")
        .await
        .redirect_params()["code"]
        .clone();
    let wrong = Pkce::new();
    let r = exchange(&f, &code, &wrong.verifier, &[]).await;
    r.assert_error(400, "invalid_grant");
    assert!(
        r.json["error_description"]
            .as_str()
            .unwrap()
            .contains("code_verifier")
    );
    let r = exchange_at(&f, &code, REDIRECT, None, &[]).await;
    r.assert_error(400, "invalid_request");
    // Another redirect URI, another client: refused alike.
    let r = exchange_at(
        &f,
        &code,
        "http://127.0.0.1:7777/other",
        Some(&pkce.verifier),
        &[],
    )
    .await;
    r.assert_error(400, "invalid_grant");
    assert_eq!(
        count(&f.dir, "grant_families").await,
        0,
        "nothing was issued"
    );
    assert_eq!(exchange(&f, &code, &pkce.verifier, &[]).await.status, 200);
}

#[tokio::test]
async fn pkce_is_required_s256_only_and_errors_after_sign_in_go_back_with_state_and_iss() {
    let f = fixture().await;
    let mut person = Person::new();
    // Sign in once (a valid request), so later errors are redirected.
    let pkce = Pkce::new();
    sign_in_and_allow(&f, &mut person).await;
    let base = |q: &str| {
        format!(
            "{}?response_type=code&client_id={}&redirect_uri={}&state=s1{q}",
            f.server.url("/oauth/authorize"),
            f.client_id,
            REDIRECT
        )
    };
    let cases = [
        ("", "invalid_request", "code_challenge is required"),
        (
            "&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=plain",
            "invalid_request",
            "S256",
        ),
        (
            "&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            "invalid_request",
            "plain",
        ),
        (
            "&code_challenge=short&code_challenge_method=S256",
            "invalid_request",
            "43",
        ),
    ];
    for (q, code, says) in cases {
        let page = person.get(&base(q)).await;
        assert_eq!(page.status, 303, "{q}: {}", page.text);
        let p = page.redirect_params();
        assert_eq!(p["error"], code, "{q}");
        assert!(p["error_description"].contains(says), "{q}: {p:?}");
        assert_eq!(p["state"], "s1");
        assert_eq!(p["iss"], f.server.base);
    }
    let page = person
        .get(
            &authorize_url(
                &f.server,
                &f.client_id,
                REDIRECT,
                &pkce,
                &[("response_type", "token")],
            )
            .replace("response_type=code&", ""),
        )
        .await;
    assert_eq!(page.redirect_params()["error"], "unsupported_response_type");
    let page = person
        .get(&authorize_url(
            &f.server,
            &f.client_id,
            REDIRECT,
            &pkce,
            &[("resource", "http://127.0.0.1:1/elsewhere")],
        ))
        .await;
    assert_eq!(page.redirect_params()["error"], "invalid_target");
    let page = person
        .get(&authorize_url(
            &f.server,
            &f.client_id,
            REDIRECT,
            &pkce,
            &[("scope", "bad\"scope")],
        ))
        .await;
    assert_eq!(page.redirect_params()["error"], "invalid_scope");
    assert_eq!(
        count(&f.dir, "auth_codes").await,
        1,
        "only the first request made a code"
    );
}

#[tokio::test]
async fn before_sign_in_a_self_registered_clients_errors_are_shown_not_redirected() {
    let f = fixture().await;
    let mut person = Person::new();
    let url = format!(
        "{}?response_type=code&client_id={}&redirect_uri={}&state=s1",
        f.server.url("/oauth/authorize"),
        f.client_id,
        REDIRECT
    );
    let page = person.get(&url).await;
    assert_eq!(page.status, 400, "{}", page.text);
    assert!(page.location().is_none());
    assert!(
        page.text.contains("code_challenge is required"),
        "{}",
        page.text
    );
}

/// Anyone may register a client whose redirect URI is theirs. A signed-in
/// person who follows a crafted link to such a client must not be sent
/// there with an error at once (an open redirector): the error is shown
/// with a link, until the person has approved that client. Afterwards, and
/// for the client the person approved, errors go back as before.
#[tokio::test]
async fn a_signed_in_person_is_not_redirected_to_a_self_registered_client_she_never_approved() {
    let f = fixture().await;
    let mut person = Person::new();
    sign_in_and_allow(&f, &mut person).await;
    const EVIL: &str = "http://127.0.0.1:7778/evil";
    let evil = register_public(&f.server, EVIL).await;
    let codes = count(&f.dir, "auth_codes").await;
    let consents = count(&f.dir, "consents").await;
    let crafted = [
        // No PKCE: invalid_request.
        format!(
            "{}?response_type=code&client_id={evil}&redirect_uri={EVIL}&state=s",
            f.server.url("/oauth/authorize")
        ),
        // Silent: consent_required (signed in, never approved).
        authorize_url(
            &f.server,
            &evil,
            EVIL,
            &Pkce::new(),
            &[("prompt", "none"), ("state", "s")],
        ),
        // A scope nobody serves: invalid_scope.
        authorize_url(&f.server, &evil, EVIL, &Pkce::new(), &[("scope", "bad\"x")]),
        // Asking for a fresh sign-in silently: login_required.
        authorize_url(
            &f.server,
            &evil,
            EVIL,
            &Pkce::new(),
            &[("prompt", "none"), ("max_age", "0")],
        ),
    ];
    for url in &crafted {
        let page = person.get(url).await;
        assert_eq!(page.status, 400, "{url}: {}", page.text);
        assert!(page.location().is_none(), "{url}: redirected");
        // A link the person may follow, to the registered URI, escaped.
        assert!(
            page.text
                .contains("href=\"http://127.0.0.1:7778/evil?error="),
            "{}",
            page.text
        );
        assert!(page.text.contains("Return to 127.0.0.1"), "{}", page.text);
    }
    assert_eq!(count(&f.dir, "auth_codes").await, codes, "no code issued");
    assert_eq!(
        count(&f.dir, "consents").await,
        consents,
        "no consent recorded"
    );

    // The client the person approved still gets its errors back at once.
    let page = person
        .get(&format!(
            "{}?response_type=code&client_id={}&redirect_uri={REDIRECT}&state=s1",
            f.server.url("/oauth/authorize"),
            f.client_id
        ))
        .await;
    assert_eq!(page.status, 303, "{}", page.text);
    assert_eq!(page.redirect_params()["error"], "invalid_request");

    // Once the person approves the new client on its consent page, its
    // errors go back to it too.
    let approved = person
        .authorize(
            &f.server,
            &authorize_url(&f.server, &evil, EVIL, &Pkce::new(), &[]),
            "alice",
        )
        .await;
    assert!(approved.redirect_params().contains_key("code"));
    let page = person.get(&crafted[0]).await;
    assert_eq!(page.status, 303, "{}", page.text);
    assert!(page.location().unwrap().starts_with(EVIL));
    assert_eq!(page.redirect_params()["error"], "invalid_request");
}

/// A client that omits `scope` gets its registered scopes; if it widens its
/// registration (RFC 7592) while the person reads the consent page, Allow
/// must not grant the wider set she never saw: the page is shown again,
/// saying so, and nothing is recorded or issued. What she allows then is
/// what she saw then. A `shown` value forged or taken from another page is
/// refused the same way.
#[tokio::test]
async fn allow_grants_exactly_what_the_consent_page_showed() {
    let f = fixture_with(
        &[],
        &[("GATEHOUSE_SCOPES_SUPPORTED", "tools:read,tools:call")],
    )
    .await;
    let r = f
        .server
        .register(
            &json!({
                "client_name": "Shifty",
                "redirect_uris": [REDIRECT],
                "grant_types": ["authorization_code", "refresh_token"],
                "token_endpoint_auth_method": "none",
                "scope": "tools:read",
            }),
            None,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let (id, reg_token) = (
        r.json["client_id"].as_str().unwrap().to_string(),
        r.json["registration_access_token"]
            .as_str()
            .unwrap()
            .to_string(),
    );
    let mut person = Person::new();
    let pkce = Pkce::new();
    let url = authorize_url(&f.server, &id, REDIRECT, &pkce, &[]);
    let page = person.get(&url).await;
    let signed = person.sign_in(&f.server, &page, "alice", PASSWORD).await;
    let page = person.follow(&signed).await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(
        page.text.contains("<code>tools:read</code>"),
        "{}",
        page.text
    );
    assert!(!page.text.contains("<code>tools:call</code>"));

    // The client widens its registration while the page is open.
    let mut widened = r.json.clone();
    for k in [
        "client_id_issued_at",
        "registration_access_token",
        "registration_client_uri",
        "client_secret_expires_at",
    ] {
        widened.as_object_mut().unwrap().remove(k);
    }
    widened["scope"] = json!("tools:read tools:call");
    let put = f
        .server
        .http
        .put(f.server.url(&format!("/oauth/register/{id}")))
        .bearer_auth(&reg_token)
        .json(&widened)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200, "{}", put.text().await.unwrap());
    // Once the server serves the new registration (within its store poll
    // interval), a fresh page would show the wider set; the open one did not.
    let mut widened_seen = false;
    for _ in 0..50 {
        if person
            .get(&url)
            .await
            .text
            .contains("<code>tools:call</code>")
        {
            widened_seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        widened_seen,
        "the update never reached the authorization endpoint"
    );

    // Deny on the old page goes nowhere either: the answer would go to a
    // client that is no longer what the page showed.
    let denied = person.decide(&f.server, &page, "deny").await;
    assert_eq!(denied.status, 409, "{}", denied.text);
    assert!(denied.location().is_none());
    let again = person.decide(&f.server, &page, "allow").await;
    assert_eq!(again.status, 409, "{}", again.text);
    assert!(again.location().is_none());
    assert!(
        again.text.contains("changed while this page was open"),
        "{}",
        again.text
    );
    assert!(
        again.text.contains("<code>tools:call</code>"),
        "shown now: {}",
        again.text
    );
    assert_eq!(count(&f.dir, "consents").await, 0, "nothing recorded");
    assert_eq!(count(&f.dir, "auth_codes").await, 0, "nothing issued");

    // A made-up or altered `shown` is refused alike.
    for forged in ["", "AAAA", &page.field("shown").unwrap()] {
        let r = person
            .post(
                &f.server.url("/oauth/consent"),
                &[
                    ("decision", "allow"),
                    ("csrf", &again.field("csrf").unwrap()),
                    ("request", &again.field("request").unwrap()),
                    ("shown", forged),
                ],
            )
            .await;
        assert_eq!(r.status, 409, "{forged:?}: {}", r.text);
    }
    assert_eq!(count(&f.dir, "consents").await, 0);

    // The value is bound to the browser: another browser signed in as the
    // same person, answering its own page of the very same request, cannot
    // use it.
    let mut other = Person::new();
    let page2 = other.get(&url).await;
    let signed2 = other.sign_in(&f.server, &page2, "alice", PASSWORD).await;
    let page2 = other.follow(&signed2).await;
    assert_eq!(page2.status, 200, "{}", page2.text);
    assert_ne!(page2.field("shown"), again.field("shown"));
    let r = other
        .post(
            &f.server.url("/oauth/consent"),
            &[
                ("decision", "allow"),
                ("csrf", &page2.field("csrf").unwrap()),
                ("request", &page2.field("request").unwrap()),
                ("shown", &again.field("shown").unwrap()),
            ],
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(count(&f.dir, "consents").await, 0);

    // Allowing the page that showed the wider set grants exactly that.
    let done = person.decide(&f.server, &again, "allow").await;
    assert_eq!(done.status, 303, "{}", done.text);
    let code = done.redirect_params()["code"].clone();
    let t = f
        .server
        .token(
            None,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
                ("client_id", &id),
                ("code_verifier", &pkce.verifier),
            ],
        )
        .await;
    assert_eq!(t.status, 200, "{}", t.text);
    let scope = t.json["scope"].as_str().unwrap_or_default();
    assert_eq!(scope, "tools:read tools:call");
    assert_eq!(count(&f.dir, "consents").await, 1);
}

#[tokio::test]
async fn an_unregistered_redirect_uri_or_unknown_client_is_shown_and_never_redirected_to() {
    let f = fixture().await;
    let mut person = Person::new();
    let pkce = Pkce::new();
    // Signed in, so that nothing but the redirect URI stops a redirect.
    sign_in_and_allow(&f, &mut person).await;
    for bad in [
        "http://127.0.0.1:7777/callback/",
        "http://127.0.0.1:7777/other",
        "https://evil.example/callback",
        "http://localhost:7777/callback",
        // User information that would pass for a loopback port.
        "http://127.0.0.1:7777@evil.example/callback",
        "http://127.0.0.1:x@evil.example/callback",
    ] {
        let page = person
            .get(&authorize_url(
                &f.server,
                &f.client_id,
                bad,
                &pkce,
                &[("state", "s")],
            ))
            .await;
        assert_eq!(page.status, 400, "{bad}: {}", page.text);
        assert!(page.location().is_none(), "{bad} was redirected to");
        assert!(page.text.contains("did not register"), "{}", page.text);
    }
    let page = person
        .get(&authorize_url(
            &f.server,
            "c_nosuchclient",
            REDIRECT,
            &pkce,
            &[],
        ))
        .await;
    assert_eq!(page.status, 400);
    assert!(page.location().is_none());
    assert!(page.text.contains("not registered"), "{}", page.text);
    assert_eq!(count(&f.dir, "auth_codes").await, 1);
}

#[tokio::test]
async fn loopback_redirects_match_on_any_port() {
    let f = fixture().await;
    let mut person = Person::new();
    let pkce = Pkce::new();
    let other_port = "http://127.0.0.1:45678/callback";
    let url = authorize_url(&f.server, &f.client_id, other_port, &pkce, &[]);
    let done = person.authorize(&f.server, &url, "alice").await;
    assert!(done.location().unwrap().starts_with(other_port));
    let code = done.redirect_params()["code"].clone();
    // The token request repeats the redirect URI actually used.
    let r = exchange_at(&f, &code, REDIRECT, Some(&pkce.verifier), &[]).await;
    r.assert_error(400, "invalid_grant");
    let r = exchange_at(&f, &code, other_port, Some(&pkce.verifier), &[]).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
async fn consent_is_remembered_per_client_resource_and_scopes_and_anything_wider_asks_again() {
    let f = fixture().await;
    let mut person = Person::new();
    tokens(&f, &mut person, &[("scope", "openid"), ("resource", AUD)]).await;
    // The same again: straight back to the client with a code.
    let pkce = Pkce::new();
    let page = person
        .get(&authorize_url(
            &f.server,
            &f.client_id,
            REDIRECT,
            &pkce,
            &[("scope", "openid"), ("resource", AUD)],
        ))
        .await;
    assert_eq!(page.status, 303, "{}", page.text);
    assert!(page.redirect_params().contains_key("code"));
    // A wider scope, or another resource, asks again.
    for extra in [
        [("scope", "openid profile"), ("resource", AUD)],
        [("scope", "openid"), ("resource", AUD2)],
    ] {
        let page = person
            .get(&authorize_url(
                &f.server,
                &f.client_id,
                REDIRECT,
                &pkce,
                &extra,
            ))
            .await;
        assert_eq!(page.status, 200, "{extra:?}: {}", page.text);
        assert!(page.text.contains("value=\"allow\""));
    }
}

#[tokio::test]
async fn deny_returns_access_denied_with_state_and_iss_and_records_nothing() {
    let f = fixture().await;
    let mut person = Person::new();
    let pkce = Pkce::new();
    let url = authorize_url(&f.server, &f.client_id, REDIRECT, &pkce, &[("state", "st")]);
    let page = person.get(&url).await;
    let signed = person.sign_in(&f.server, &page, "alice", PASSWORD).await;
    let consent = person.follow(&signed).await;
    let done = person.decide(&f.server, &consent, "deny").await;
    let p = done.redirect_params();
    assert_eq!(p["error"], "access_denied");
    assert_eq!(p["state"], "st");
    assert_eq!(p["iss"], f.server.base);
    assert!(!p.contains_key("code"));
    assert_eq!(count(&f.dir, "consents").await, 0);
    assert_eq!(count(&f.dir, "auth_codes").await, 0);
}

#[tokio::test]
async fn the_resource_is_bound_to_the_code_and_the_token_request_may_narrow_it_only() {
    let f = fixture().await;
    let mut person = Person::new();
    let pkce = Pkce::new();
    let url = authorize_url(
        &f.server,
        &f.client_id,
        REDIRECT,
        &pkce,
        &[("resource", AUD), ("resource", AUD2)],
    );
    let code = person
        .authorize(&f.server, &url, "alice")
        .await
        .redirect_params()["code"]
        .clone();
    // Two resources granted: the token request must pick one of them.
    exchange(&f, &code, &pkce.verifier, &[])
        .await
        .assert_error(400, "invalid_target");
    exchange(
        &f,
        &code,
        &pkce.verifier,
        &[("resource", "http://127.0.0.1:1/mcp")],
    )
    .await
    .assert_error(400, "invalid_target");
    let r = exchange(&f, &code, &pkce.verifier, &[("resource", AUD2)]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        claims(r.json["access_token"].as_str().unwrap())["aud"],
        AUD2
    );
    // The refresh token covers both; each refresh names one.
    let rt = r.json["refresh_token"].as_str().unwrap();
    let r = refresh(&f, rt, &[("resource", AUD)]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(claims(r.json["access_token"].as_str().unwrap())["aud"], AUD);
}

#[tokio::test]
async fn refresh_tokens_rotate_narrow_never_widen_and_a_concurrent_retry_gets_the_same_successor() {
    let f = fixture().await;
    let mut person = Person::new();
    let t = tokens(&f, &mut person, &[("scope", "openid profile")]).await;
    let rt1 = t["refresh_token"].as_str().unwrap().to_string();
    // Widening is refused and uses nothing up.
    refresh(&f, &rt1, &[("scope", "openid profile email")])
        .await
        .assert_error(400, "invalid_scope");
    // (Checked in the store: a later use would look the same within the
    // grace window even if this one had marked the token used.)
    assert_eq!(count(&f.dir, USED_REFRESH_TOKENS).await, 0);
    // Narrowing works; the token rotates.
    let r = refresh(&f, &rt1, &[("scope", "openid")]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["scope"], "openid");
    let rt2 = r.json["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(rt1, rt2);
    // A retry of rt1 within the grace window: the same successor, no logout.
    let retry = refresh(&f, &rt1, &[]).await;
    assert_eq!(retry.status, 200, "{}", retry.text);
    assert_eq!(retry.json["refresh_token"], rt2.as_str());
    assert_eq!(
        retry.json["scope"], "openid profile",
        "the grant is not narrowed for good"
    );
    // Two at once with rt2: both succeed with one successor.
    let (a, b) = tokio::join!(refresh(&f, &rt2, &[]), refresh(&f, &rt2, &[]));
    assert_eq!((a.status, b.status), (200, 200), "{} {}", a.text, b.text);
    assert_eq!(a.json["refresh_token"], b.json["refresh_token"]);
    let rt3 = a.json["refresh_token"].as_str().unwrap();
    assert_eq!(refresh(&f, rt3, &[]).await.status, 200);
}

#[tokio::test]
async fn reusing_a_rotated_refresh_token_after_the_grace_window_revokes_the_whole_family() {
    let f = fixture_with(&[], &[("GATEHOUSE_PEOPLE__REFRESH_GRACE", "1s")]).await;
    let rs = resource_server(&f);
    let mut person = Person::new();
    let t = tokens(&f, &mut person, &[]).await;
    let rt1 = t["refresh_token"].as_str().unwrap().to_string();
    let r = refresh(&f, &rt1, &[]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let rt2 = r.json["refresh_token"].as_str().unwrap().to_string();
    let at2 = r.json["access_token"].as_str().unwrap().to_string();
    assert!(active(&f, &rs, &at2).await);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    refresh(&f, &rt1, &[])
        .await
        .assert_error(400, "invalid_grant");
    // The family is gone: the current refresh token and its access tokens too.
    refresh(&f, &rt2, &[])
        .await
        .assert_error(400, "invalid_grant");
    assert!(!active(&f, &rs, &at2).await);
    assert!(!active(&f, &rs, t["access_token"].as_str().unwrap()).await);
    assert!(logged(&f, "used again").await, "the reuse is logged");
}

/// A grant keeps a used refresh token's row only for the grace window. A
/// thief who rotates a stolen token until its row is gone still cannot
/// escape reuse detection: the token names its family, so the rightful
/// client presenting it later revokes the grant, the thief's newest token
/// with it. A token naming no family it can trust is just refused.
#[tokio::test]
async fn a_stolen_refresh_token_rotated_many_times_still_revokes_the_grant_when_reused() {
    let f = fixture_with(&[], &[("GATEHOUSE_PEOPLE__REFRESH_GRACE", "0s")]).await;
    let rs = resource_server(&f);
    let mut person = Person::new();
    let t = tokens(&f, &mut person, &[]).await;
    let stolen = t["refresh_token"].as_str().unwrap().to_string();
    assert!(
        stolen.starts_with("f_") && stolen.matches('.').count() == 2,
        "{stolen}"
    );
    // The thief rotates it ten times.
    let mut current = stolen.clone();
    let mut last_access = String::new();
    for _ in 0..10 {
        let r = refresh(&f, &current, &[]).await;
        assert_eq!(r.status, 200, "{}", r.text);
        current = r.json["refresh_token"].as_str().unwrap().to_string();
        last_access = r.json["access_token"].as_str().unwrap().to_string();
    }
    assert!(active(&f, &rs, &last_access).await);
    // Used rows are let go a minute after their use; play that minute by
    // deleting them, so the stolen token's row is gone.
    let pool = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        f.dir.path().join("gatehouse.db").display()
    ))
    .await
    .unwrap();
    sqlx::query("DELETE FROM refresh_tokens WHERE used_at IS NOT NULL")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    assert_eq!(
        count(&f.dir, "refresh_tokens").await,
        1,
        "only the live one"
    );
    // The rightful client comes back with the token it holds.
    refresh(&f, &stolen, &[])
        .await
        .assert_error(400, "invalid_grant");
    refresh(&f, &current, &[])
        .await
        .assert_error(400, "invalid_grant");
    assert!(
        !active(&f, &rs, &last_access).await,
        "the thief's access token"
    );
    assert!(logged(&f, "retired refresh token was used again").await);
    // Made-up tokens in and out of the form revoke nothing and say nothing
    // more than any wrong token.
    let mut person2 = Person::new();
    let t2 = tokens(&f, &mut person2, &[]).await;
    let live = t2["refresh_token"].as_str().unwrap().to_string();
    // The live grant's own family id with a tag the server did not write
    // (or none) is refused without touching that grant.
    let family = live.split('.').next().unwrap();
    let forged = [
        format!("{family}.AAAAAAAAAAAAAAAAAAAAAA.x"),
        format!("{family}.x"),
        format!("{family}."),
        "f_AAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA.x".to_string(),
        "nodot".to_string(),
        "..".to_string(),
    ];
    for bogus in &forged {
        refresh(&f, bogus, &[])
            .await
            .assert_error(400, "invalid_grant");
    }
    let r = refresh(&f, &live, &[]).await;
    assert_eq!(r.status, 200, "another grant is untouched: {}", r.text);
}

#[tokio::test]
async fn refresh_tokens_are_bound_to_their_client_and_revocation_revokes_the_grant() {
    let f = fixture().await;
    let rs = resource_server(&f);
    let other = register_public(&f.server, REDIRECT).await;
    let mut person = Person::new();
    let t = tokens(&f, &mut person, &[]).await;
    let rt = t["refresh_token"].as_str().unwrap();
    let r = f
        .server
        .token(
            None,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", rt),
                ("client_id", &other),
            ],
        )
        .await;
    r.assert_error(400, "invalid_grant");
    assert_eq!(
        count(&f.dir, USED_REFRESH_TOKENS).await,
        0,
        "the refusal changed nothing"
    );
    // Still usable by its own client.
    let r = refresh(&f, rt, &[]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let rt2 = r.json["refresh_token"].as_str().unwrap();
    let at = r.json["access_token"].as_str().unwrap();
    // RFC 7009: a public client revokes its own refresh token by client_id.
    let rev = f
        .server
        .http
        .post(f.server.url("/oauth/revoke"))
        .form(&[("token", rt2), ("client_id", &f.client_id)])
        .send()
        .await
        .unwrap();
    assert_eq!(rev.status(), 200);
    refresh(&f, rt2, &[])
        .await
        .assert_error(400, "invalid_grant");
    assert!(
        !active(&f, &rs, at).await,
        "access tokens of the grant are revoked too"
    );
}

#[tokio::test]
async fn sign_in_failures_say_nothing_about_the_account_and_back_off() {
    let f = fixture().await;
    let pkce = Pkce::new();
    let url = authorize_url(&f.server, &f.client_id, REDIRECT, &pkce, &[]);
    let mut person = Person::new();
    let page = person.get(&url).await;
    let wrong = person
        .sign_in(&f.server, &page, "alice", "not the password")
        .await;
    let unknown = person
        .sign_in(&f.server, &page, "mallory", "not the password")
        .await;
    for r in [&wrong, &unknown] {
        assert_eq!(r.status, 401, "{}", r.text);
        assert!(r.text.contains("role=\"alert\""));
        assert!(
            r.text
                .contains("Sign-in failed: the user name or the password is not right.")
        );
    }
    assert!(
        !person.cookies.keys().any(|k| k.contains("session")),
        "nobody signed in"
    );
    assert_eq!(count(&f.dir, "browser_sessions").await, 0);
    // Two more failures for alice: now even the right password waits.
    person.sign_in(&f.server, &page, "alice", "nope nope").await;
    person.sign_in(&f.server, &page, "alice", "nope nope").await;
    let held = person.sign_in(&f.server, &page, "alice", PASSWORD).await;
    assert_eq!(held.status, 429, "{}", held.text);
    assert!(held.header("retry-after").is_some());
    assert!(held.text.contains("too many attempts"));
    assert_eq!(count(&f.dir, "browser_sessions").await, 0);
    // The same for a name with no account.
    for _ in 0..2 {
        person
            .sign_in(&f.server, &page, "mallory", "nope nope")
            .await;
    }
    let held = person
        .sign_in(&f.server, &page, "mallory", "whatever")
        .await;
    assert_eq!(held.status, 429);
}

#[tokio::test]
async fn a_form_without_the_csrf_token_or_from_another_origin_is_refused_and_signs_nobody_in() {
    let f = fixture().await;
    let pkce = Pkce::new();
    let url = authorize_url(&f.server, &f.client_id, REDIRECT, &pkce, &[]);
    let mut person = Person::new();
    let page = person.get(&url).await;
    let request = page.field("request").unwrap();
    let csrf = page.field("csrf").unwrap();
    let signin = f.server.url("/oauth/signin");
    let missing = person
        .post(
            &signin,
            &[
                ("username", "alice"),
                ("password", PASSWORD),
                ("request", &request),
            ],
        )
        .await;
    let wrong = person
        .post(
            &signin,
            &[
                ("username", "alice"),
                ("password", PASSWORD),
                ("request", &request),
                ("csrf", "x"),
            ],
        )
        .await;
    let cross = person
        .post_with(
            &signin,
            &[
                ("username", "alice"),
                ("password", PASSWORD),
                ("request", &request),
                ("csrf", &csrf),
            ],
            &[("origin", "https://evil.example")],
        )
        .await;
    let mut stranger = Person::new();
    let no_cookie = stranger
        .post(
            &signin,
            &[
                ("username", "alice"),
                ("password", PASSWORD),
                ("request", &request),
                ("csrf", &csrf),
            ],
        )
        .await;
    for r in [&missing, &wrong, &cross, &no_cookie] {
        assert_eq!(r.status, 403, "{}", r.text);
        assert!(r.text.contains("could not be verified"), "{}", r.text);
    }
    assert_eq!(count(&f.dir, "browser_sessions").await, 0);
    // With the token the same form works, sent from the issuer's origin as
    // a browser sends it.
    let ok = person
        .post_with(
            &signin,
            &[
                ("username", "alice"),
                ("password", PASSWORD),
                ("request", &request),
                ("csrf", &csrf),
            ],
            &[("origin", &f.server.base)],
        )
        .await;
    assert_eq!(ok.status, 303, "{}", ok.text);
    // The consent form is protected the same way.
    let consent = person.follow(&ok).await;
    let r = person
        .post(
            &f.server.url("/oauth/consent"),
            &[
                ("decision", "allow"),
                ("request", &consent.field("request").unwrap()),
            ],
        )
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(count(&f.dir, "consents").await, 0);
}

#[tokio::test]
async fn pages_cannot_be_framed_and_carry_no_cors() {
    let f = fixture().await;
    let pkce = Pkce::new();
    let url = authorize_url(&f.server, &f.client_id, REDIRECT, &pkce, &[]);
    let r = f
        .server
        .http
        .get(&url)
        .header("origin", "https://elsewhere.example")
        .send()
        .await
        .unwrap();
    let h = r.headers();
    assert_eq!(h["x-frame-options"], "DENY");
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'none'"),
        "{csp}"
    );
    assert_eq!(h["cache-control"], "no-store");
    // Not `no-referrer`: browsers would then post the forms with
    // `Origin: null`, which the CSRF check refuses.
    assert_eq!(h["referrer-policy"], "same-origin");
    assert!(h.get("access-control-allow-origin").is_none());
    // The API endpoints keep theirs.
    let r = f
        .server
        .http
        .get(f.server.url("/.well-known/oauth-authorization-server"))
        .header("origin", "https://elsewhere.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
}

#[tokio::test]
async fn sign_out_ends_the_session() {
    let f = fixture().await;
    let mut person = Person::new();
    tokens(&f, &mut person, &[]).await;
    assert_eq!(count(&f.dir, "browser_sessions").await, 1);
    let page = person.get(&f.server.url("/oauth/signout")).await;
    assert!(page.text.contains("alice"), "{}", page.text);
    let csrf = page.field("csrf").unwrap();
    let out = person
        .post(&f.server.url("/oauth/signout"), &[("csrf", &csrf)])
        .await;
    assert_eq!(out.status, 200, "{}", out.text);
    assert_eq!(count(&f.dir, "browser_sessions").await, 0);
    let pkce = Pkce::new();
    let again = person
        .get(&authorize_url(
            &f.server,
            &f.client_id,
            REDIRECT,
            &pkce,
            &[],
        ))
        .await;
    assert!(
        again.text.contains("name=\"password\""),
        "signed out: {}",
        again.text
    );
}

#[tokio::test]
async fn public_clients_register_with_what_real_clients_send() {
    let f = fixture().await;
    let r = f
        .server
        .register(
            &json!({
                "client_name": "VS Code",
                "redirect_uris": ["http://127.0.0.1:33418/", "vscode://vscode.github-authentication/did-authenticate"],
                "grant_types": ["authorization_code", "refresh_token",
                    "urn:ietf:params:oauth:grant-type:jwt-bearer",
                    "urn:ietf:params:oauth:grant-type:device_code"],
                "response_types": ["code"],
                "token_endpoint_auth_method": "none",
                "application_type": "native",
                "logo_uri": "https://code.visualstudio.com/logo.png",
                "software_version": "1.99",
                "software_statement_whatever": {"x": 1},
            }),
            None,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(
        r.json["grant_types"],
        json!(["authorization_code", "refresh_token"])
    );
    assert_eq!(r.json["token_endpoint_auth_method"], "none");
    assert!(r.json.get("client_secret").is_none());
    assert!(
        r.json.get("application_type").is_none(),
        "unknown fields are dropped"
    );
    assert_eq!(r.json["logo_uri"], "https://code.visualstudio.com/logo.png");
    // Without a method a redirect client is public.
    let r = f
        .server
        .register(
            &json!({"redirect_uris": ["cursor://anysphere.cursor-retrieval/oauth/callback"]}),
            None,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json["token_endpoint_auth_method"], "none");
    assert_eq!(r.json["grant_types"], json!(["authorization_code"]));
    let before = client_count(&f.dir).await;
    // A redirect client needs a redirect URI; http only on loopback.
    for (body, code) in [
        (
            json!({"grant_types": ["authorization_code"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": ["http://app.example/cb"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": ["https://app.example/cb#frag"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": ["javascript:alert(1)"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": ["https://app.example/cb"], "grant_types": ["implicit"]}),
            "invalid_client_metadata",
        ),
    ] {
        let r = f.server.register(&body, None).await;
        r.assert_error(400, code);
    }
    assert_eq!(
        client_count(&f.dir).await,
        before,
        "refused registrations store nothing"
    );
}

#[tokio::test]
async fn metadata_advertises_the_authorization_endpoint_pkce_iss_and_oidc() {
    let f = fixture().await;
    let m = f
        .server
        .get_json("/.well-known/oauth-authorization-server")
        .await
        .json;
    assert_eq!(
        m["authorization_endpoint"],
        f.server.url("/oauth/authorize")
    );
    assert_eq!(m["response_types_supported"], json!(["code"]));
    assert_eq!(m["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(m["authorization_response_iss_parameter_supported"], true);
    assert_eq!(m["userinfo_endpoint"], f.server.url("/oauth/userinfo"));
    let grants = m["grant_types_supported"].as_array().unwrap();
    for g in ["client_credentials", "authorization_code", "refresh_token"] {
        assert!(grants.contains(&json!(g)), "{g}: {m}");
    }
    assert!(
        m["token_endpoint_auth_methods_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("none"))
    );
    assert!(
        !m["introspection_endpoint_auth_methods_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("none"))
    );
    assert_eq!(
        m["id_token_signing_alg_values_supported"],
        json!(["RS256", "ES256"])
    );
    assert!(
        m["registration_endpoint"].is_string(),
        "public registration is on by default"
    );
    // The JWKS holds the ES256 access-token key and the RS256 ID-token key.
    let jwks = f.server.get_json("/.well-known/jwks.json").await.json;
    let mut algs: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["alg"].as_str().unwrap())
        .collect();
    algs.sort();
    assert_eq!(algs, ["ES256", "RS256"]);
}

#[tokio::test]
async fn userinfo_needs_a_live_openid_token() {
    let f = fixture().await;
    let mut person = Person::new();
    let without = tokens(&f, &mut person, &[]).await;
    let r = f
        .server
        .http
        .get(f.server.url("/oauth/userinfo"))
        .bearer_auth(without["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("insufficient_scope")
    );
    let r = f
        .server
        .http
        .get(f.server.url("/oauth/userinfo"))
        .bearer_auth("junk")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
    let with = tokens(&f, &mut person, &[("scope", "openid")]).await;
    let r = f
        .server
        .http
        .post(f.server.url("/oauth/userinfo"))
        .bearer_auth(with["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v,
        json!({"sub": f.user["id"]}),
        "no profile scope, no profile claims"
    );
}

#[tokio::test]
async fn the_user_cli_adds_lists_changes_and_deletes_accounts() {
    let f = fixture().await;
    let d = f.dir.path().display().to_string();
    assert!(f.user["id"].as_str().unwrap().starts_with("u_"));
    assert_eq!(f.user["groups"], json!(["eng"]));
    let (ok, _, err) = user_cli(
        &["user", "add", "alice", "--data-dir", &d],
        "another password\n",
    );
    assert!(!ok && err.contains("already exists"), "{err}");
    let (ok, _, err) = user_cli(&["user", "add", "bob", "--data-dir", &d], "short\n");
    assert!(!ok && err.contains("at least 8"), "{err}");
    let (ok, _, err) = user_cli(
        &["user", "add", "Bob!", "--data-dir", &d],
        "long enough pw\n",
    );
    assert!(!ok && err.contains("a-z"), "{err}");
    assert_eq!(
        count(&f.dir, "users").await,
        1,
        "refused adds store nothing"
    );
    let (ok, list, err) = user_cli(&["user", "list", "--data-dir", &d], "");
    assert!(ok, "{err}");
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert!(
        !list.to_string().contains("argon2"),
        "no password material: {list}"
    );
    let pool = db(&f.dir).await;
    let phc: String = sqlx::query_scalar("SELECT password_hash FROM users")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
    assert!(!phc.contains(PASSWORD));

    // A signed-in person with a grant; then the password changes.
    let mut person = Person::new();
    let t = tokens(&f, &mut person, &[]).await;
    let (ok, _, err) = user_cli(
        &["user", "passwd", "alice", "--data-dir", &d],
        "a brand new password\n",
    );
    assert!(ok, "{err}");
    assert_eq!(
        count(&f.dir, "browser_sessions").await,
        0,
        "sessions end with the password"
    );
    // So do the grants the old password got anyone.
    refresh(&f, t["refresh_token"].as_str().unwrap(), &[])
        .await
        .assert_error(400, "invalid_grant");
    let pkce = Pkce::new();
    let page = person
        .get(&authorize_url(
            &f.server,
            &f.client_id,
            REDIRECT,
            &pkce,
            &[],
        ))
        .await;
    assert_eq!(
        person
            .sign_in(&f.server, &page, "alice", PASSWORD)
            .await
            .status,
        401
    );
    let ok_page = person
        .sign_in(&f.server, &page, "alice", "a brand new password")
        .await;
    assert_eq!(ok_page.status, 303);
    // Signed in again (consent is remembered): a new grant.
    let t2 = tokens(&f, &mut person, &[]).await;
    // Deleting the account revokes its grants.
    let (ok, out, err) = user_cli(&["user", "delete", "alice", "--data-dir", &d], "");
    assert!(ok, "{err}");
    assert_eq!(out["deleted"], "alice");
    refresh(&f, t2["refresh_token"].as_str().unwrap(), &[])
        .await
        .assert_error(400, "invalid_grant");
    let (ok, _, err) = user_cli(&["user", "delete", "alice", "--data-dir", &d], "");
    assert!(!ok && err.contains("no user"), "{err}");
}

#[tokio::test]
async fn an_expired_code_is_refused_and_a_used_one_replayed_after_expiry_still_revokes() {
    let f = fixture_with(&[], &[("GATEHOUSE_PEOPLE__CODE_LIFETIME", "10s")]).await;
    let rs = resource_server(&f);
    let mut person = Person::new();
    let (unused_pkce, used_pkce) = (Pkce::new(), Pkce::new());
    let unused = person
        .authorize(
            &f.server,
            &authorize_url(&f.server, &f.client_id, REDIRECT, &unused_pkce, &[]),
            "alice",
        )
        .await
        .redirect_params()["code"]
        .clone();
    let used = person
        .authorize(
            &f.server,
            &authorize_url(&f.server, &f.client_id, REDIRECT, &used_pkce, &[]),
            "alice",
        )
        .await
        .redirect_params()["code"]
        .clone();
    let first = exchange(&f, &used, &used_pkce.verifier, &[]).await;
    assert_eq!(first.status, 200, "{}", first.text);
    let at = first.json["access_token"].as_str().unwrap();
    tokio::time::sleep(Duration::from_millis(11_000)).await;
    exchange(&f, &unused, &unused_pkce.verifier, &[])
        .await
        .assert_error(400, "invalid_grant");
    assert!(active(&f, &rs, at).await);
    exchange(&f, &used, &used_pkce.verifier, &[])
        .await
        .assert_error(400, "invalid_grant");
    assert!(
        !active(&f, &rs, at).await,
        "a replay after expiry still revokes"
    );
}

#[tokio::test]
async fn oidc_prompt_none_login_and_consent_are_honoured() {
    let f = fixture().await;
    let mut person = Person::new();
    let pkce = Pkce::new();
    let url =
        |extra: &[(&str, &str)]| authorize_url(&f.server, &f.client_id, REDIRECT, &pkce, extra);
    // Not signed in, a self-registered client: shown, not redirected.
    let page = person.get(&url(&[("prompt", "none")])).await;
    assert_eq!(page.status, 400, "{}", page.text);
    assert!(page.text.contains("login_required"), "{}", page.text);
    // Sign in and consent once.
    tokens(&f, &mut person, &[]).await;
    // prompt=none with consent remembered: a code at once.
    let page = person
        .get(&url(&[("prompt", "none"), ("state", "s")]))
        .await;
    assert!(page.redirect_params().contains_key("code"), "{}", page.text);
    // prompt=none for something not consented to: consent_required.
    let page = person
        .get(&url(&[
            ("prompt", "none"),
            ("scope", "profile"),
            ("state", "s"),
        ]))
        .await;
    let p = page.redirect_params();
    assert_eq!(p["error"], "consent_required");
    assert_eq!(p["state"], "s");
    // prompt=consent asks again although remembered.
    let page = person.get(&url(&[("prompt", "consent")])).await;
    assert_eq!(page.status, 200);
    assert!(page.text.contains("value=\"allow\""));
    // prompt=login signs in again, once: then straight to the client.
    let page = person
        .get(&url(&[("prompt", "login"), ("max_age", "3600")]))
        .await;
    assert!(page.text.contains("name=\"password\""), "{}", page.text);
    let signed = person.sign_in(&f.server, &page, "alice", PASSWORD).await;
    let done = person.follow(&signed).await;
    assert_eq!(done.status, 303, "{}", done.text);
    assert!(done.redirect_params().contains_key("code"));
    // Values that cannot be honoured are refused.
    for bad in [
        &[("prompt", "none login")][..],
        &[("prompt", "bogus")],
        &[("max_age", "-1")],
    ] {
        let page = person.get(&url(bad)).await;
        assert_eq!(
            page.redirect_params()["error"],
            "invalid_request",
            "{bad:?}"
        );
    }
}

#[tokio::test]
async fn withdrawing_consent_from_the_cli_revokes_the_clients_grants_and_asks_again() {
    let f = fixture().await;
    let d = f.dir.path().display().to_string();
    let mut person = Person::new();
    let t = tokens(&f, &mut person, &[("scope", "openid")]).await;
    let (ok, list, err) = user_cli(&["user", "consents", "alice", "--data-dir", &d], "");
    assert!(ok, "{err}");
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["client_id"], f.client_id.as_str());
    assert_eq!(list[0]["resource"], AUD);
    assert_eq!(list[0]["scopes"], json!(["openid"]));
    let (ok, out, err) = user_cli(
        &[
            "user",
            "revoke",
            "alice",
            "--client",
            &f.client_id,
            "--data-dir",
            &d,
        ],
        "",
    );
    assert!(ok, "{err}");
    assert_eq!(out["consents_withdrawn"], 1);
    refresh(&f, t["refresh_token"].as_str().unwrap(), &[])
        .await
        .assert_error(400, "invalid_grant");
    let pkce = Pkce::new();
    let page = person
        .get(&authorize_url(
            &f.server,
            &f.client_id,
            REDIRECT,
            &pkce,
            &[("scope", "openid")],
        ))
        .await;
    assert_eq!(page.status, 200, "consent is asked again: {}", page.text);
    assert!(page.text.contains("value=\"allow\""));
    let (ok, _, err) = user_cli(&["user", "consents", "nobody", "--data-dir", &d], "");
    assert!(!ok && err.contains("no user"), "{err}");
}

#[tokio::test]
async fn a_confidential_client_sees_its_own_live_refresh_token_at_introspection_and_nobody_elses() {
    let f = fixture().await;
    let (ok, app, err) = cli(
        &f.dir,
        &[
            "client",
            "create",
            "--name",
            "web app",
            "--grant",
            "authorization_code",
            "--grant",
            "refresh_token",
            "--redirect-uri",
            REDIRECT,
            // Redirect clients are public unless told otherwise.
            "--auth-method",
            "client_secret_basic",
        ],
    );
    assert!(ok, "{err}");
    let (id, secret) = (
        app["client_id"].as_str().unwrap().to_string(),
        app["client_secret"].as_str().unwrap().to_string(),
    );
    let mut person = Person::new();
    let pkce = Pkce::new();
    let done = person
        .authorize(
            &f.server,
            &authorize_url(&f.server, &id, REDIRECT, &pkce, &[]),
            "alice",
        )
        .await;
    let code = done.redirect_params()["code"].clone();
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", pkce.verifier.as_str()),
    ];
    let r = f.server.token(Some((&id, &secret)), &form).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let rt = r.json["refresh_token"].as_str().unwrap().to_string();
    let introspect = |who: (String, String), token: String| {
        let http = f.server.http.clone();
        let url = f.server.url("/oauth/introspect");
        async move {
            let r = http
                .post(url)
                .basic_auth(who.0, Some(who.1))
                .form(&[("token", token)])
                .send()
                .await
                .unwrap();
            r.json::<Value>().await.unwrap()
        }
    };
    let v = introspect((id.clone(), secret.clone()), rt.clone()).await;
    assert_eq!(v["active"], true, "{v}");
    assert_eq!(v["token_type"], "refresh_token");
    assert_eq!(v["client_id"], id.as_str());
    assert_eq!(v["sub"], f.user["id"]);
    assert_eq!(v["aud"], AUD);
    assert!(v.get("jti").is_none(), "no lookup hash shown: {v}");
    let rs = resource_server(&f);
    assert_eq!(introspect(rs, rt.clone()).await, json!({"active": false}));
    // Rotated: the old one is no longer active.
    let r = f
        .server
        .token(
            Some((&id, &secret)),
            &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(introspect((id, secret), rt).await, json!({"active": false}));
}

/// A signed-in browser (or a script holding its cookie) asking for codes as
/// fast as it can: each person and each client has a budget of codes a
/// minute; past it the answer is 429 with `Retry-After`, and no code row is
/// stored. Signing in again does not refill it. Another person keeps her
/// own budget and her grants keep working while the flood goes on; the
/// client's budget bounds the total.
#[tokio::test]
async fn codes_asked_for_as_fast_as_possible_are_held_to_a_budget_per_session_and_per_client() {
    let f = fixture_with(
        &[],
        &[
            ("GATEHOUSE_PEOPLE__CODES_PER_USER_PER_MINUTE", "5"),
            ("GATEHOUSE_PEOPLE__CODES_PER_CLIENT_PER_MINUTE", "8"),
        ],
    )
    .await;
    add_user(&f.dir, "bob", &[]);
    // Bob signs in first and holds a refresh token (one code of the client's 8).
    let mut bob = Person::new();
    let pkce = Pkce::new();
    let url = authorize_url(&f.server, &f.client_id, REDIRECT, &pkce, &[]);
    let done = bob.authorize(&f.server, &url, "bob").await;
    let code = done.redirect_params()["code"].clone();
    let t = exchange(&f, &code, &pkce.verifier, &[]).await;
    assert_eq!(t.status, 200, "{}", t.text);
    let mut refresh_token = t.json["refresh_token"].as_str().unwrap().to_string();

    // Alice: one code through consent, then as many as she can get at once.
    let mut alice = Person::new();
    sign_in_and_allow(&f, &mut alice).await;
    let url = authorize_url(&f.server, &f.client_id, REDIRECT, &Pkce::new(), &[]);
    let (mut issued, mut refused) = (1, 0);
    for _ in 0..40 {
        let page = alice.get(&url).await;
        match page.status {
            303 => {
                assert!(page.redirect_params().contains_key("code"));
                issued += 1;
            }
            429 => {
                assert!(page.location().is_none());
                let wait: u64 = page.header("retry-after").unwrap().parse().unwrap();
                assert!((1..=60).contains(&wait), "{wait}");
                refused += 1;
            }
            other => panic!("{other}: {}", page.text),
        }
        // Bob's grant keeps working through the flood.
        if refused % 10 == 1 {
            let r = refresh(&f, &refresh_token, &[]).await;
            assert_eq!(r.status, 200, "{}", r.text);
            refresh_token = r.json["refresh_token"].as_str().unwrap().to_string();
        }
    }
    assert_eq!(issued, 5, "alice's budget");
    assert_eq!(refused, 36);
    assert_eq!(
        count(&f.dir, "auth_codes").await,
        6,
        "bob's and alice's five"
    );

    // A new sign-in (another browser, another session) is the same person.
    let mut again = Person::new();
    let page = again.get(&url).await;
    let signed = again.sign_in(&f.server, &page, "alice", PASSWORD).await;
    let page = again.follow(&signed).await;
    assert_eq!(page.status, 429, "{}", page.text);
    assert_eq!(count(&f.dir, "auth_codes").await, 6);

    // Another person (Bob's browser again) still has her own budget — up
    // to the client's total of 8 codes a minute.
    let mut got = 0;
    for _ in 0..5 {
        let page = bob.get(&url).await;
        if page.status == 303 {
            got += 1;
        } else {
            assert_eq!(page.status, 429, "{}", page.text);
        }
    }
    assert_eq!(got, 2, "the client's budget: 8 - 6");
    assert_eq!(count(&f.dir, "auth_codes").await, 8);

    // Bob's refresh latency, quiet and while Alice's cookie floods the
    // authorization endpoint from 16 connections at once: the flood is
    // refused before anything is written, so it stays in the same range.
    async fn timed_refresh(f: &Fixture, token: &mut String) -> std::time::Duration {
        let started = std::time::Instant::now();
        let r = refresh(f, token, &[]).await;
        assert_eq!(r.status, 200, "{}", r.text);
        *token = r.json["refresh_token"].as_str().unwrap().to_string();
        started.elapsed()
    }
    let median = |mut v: Vec<std::time::Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let mut quiet = Vec::new();
    for _ in 0..7 {
        quiet.push(timed_refresh(&f, &mut refresh_token).await);
    }
    let cookie: String = alice
        .cookies
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut flooders = Vec::new();
    for _ in 0..16 {
        let (url, cookie, stop) = (url.clone(), cookie.clone(), stop.clone());
        flooders.push(tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap();
            let mut sent = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let r = http
                    .get(&url)
                    .header("cookie", &cookie)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 429);
                sent += 1;
            }
            sent
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut flooded = Vec::new();
    for _ in 0..7 {
        flooded.push(timed_refresh(&f, &mut refresh_token).await);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut sent = 0;
    for t in flooders {
        sent += t.await.unwrap();
    }
    let (quiet, flooded) = (median(quiet), median(flooded));
    eprintln!(
        "refresh p50: quiet {quiet:?}, under a {sent}-request code flood {flooded:?} ({:.2}x)",
        flooded.as_secs_f64() / quiet.as_secs_f64()
    );
    assert!(sent >= 100, "the flood was real: {sent} requests");
    assert!(
        flooded <= quiet * 5 + Duration::from_millis(50),
        "refresh p50 {flooded:?} under the flood, {quiet:?} quiet"
    );
    assert_eq!(
        count(&f.dir, "auth_codes").await,
        8,
        "the flood stored nothing"
    );
}

// ------------------------------------------------------------ what pages say

#[tokio::test]
async fn the_sign_in_page_says_who_asks_and_cancel_answers_access_denied_or_stays_here() {
    install_crypto();
    let dir = DataDir::new();
    add_user(&dir, "alice", &["eng"]);
    let cfg = dir.path().join("people.toml");
    std::fs::write(
        &cfg,
        "[people]\nsite_name = \"Acme <IT>\"\nforgot_password = \"Lost it? Reset it here.\"\n\
         forgot_password_url = \"https://id.acme.example/reset\"\n",
    )
    .unwrap();
    let cfg = cfg.display().to_string();
    let server = Server::start(&dir, &["--config", &cfg, "--audience", AUD], &[]);
    // An operator-registered client and a self-registered one.
    let (ok, op, err) = cli(
        &dir,
        &[
            "client",
            "create",
            "--name",
            "desk",
            "--grant",
            "authorization_code",
            "--redirect-uri",
            REDIRECT,
            "--auth-method",
            "none",
        ],
    );
    assert!(ok, "{err}");
    let op = op["client_id"].as_str().unwrap().to_string();
    let dynamic = register_public(&server, REDIRECT).await;
    let host = server.base.trim_start_matches("http://").to_string();
    for (client, operator) in [(&op, true), (&dynamic, false)] {
        let mut person = Person::new();
        let url = authorize_url(&server, client, REDIRECT, &Pkce::new(), &[("state", "s 1")]);
        let page = eventually_page(&mut person, &url).await;
        assert!(page.text.contains("Acme &lt;IT&gt;"), "{}", page.text);
        assert!(page.text.contains(&host), "the issuer's host is visible");
        assert!(
            page.text
                .contains("<a href=\"https://id.acme.example/reset\" rel=\"noreferrer\">Lost it? Reset it here.</a>"),
            "{}",
            page.text
        );
        let csrf = page.field("csrf").unwrap();
        let request = page.field("request").unwrap();
        let cancelled = person
            .post(
                &server.url("/oauth/signin"),
                &[("cancel", "cancel"), ("csrf", &csrf), ("request", &request)],
            )
            .await;
        if operator {
            assert_eq!(cancelled.status, 303, "{}", cancelled.text);
            let p = cancelled.redirect_params();
            assert_eq!(p["error"], "access_denied");
            assert_eq!(p["state"], "s 1");
            assert_eq!(p["iss"], server.base);
            assert!(cancelled.location().unwrap().starts_with(REDIRECT));
        } else {
            assert_eq!(cancelled.status, 200, "{}", cancelled.text);
            assert!(cancelled.location().is_none(), "no redirect before sign-in");
            assert!(
                cancelled.text.contains("You did not sign in"),
                "{}",
                cancelled.text
            );
            assert!(
                cancelled.text.contains("error=access_denied"),
                "the link back"
            );
        }
        // Nobody signed in, nothing stored.
        assert!(
            !person.cookies.contains_key("gatehouse_session"),
            "{:?}",
            person.cookies
        );
    }
    assert_eq!(count(&dir, "browser_sessions").await, 0);
    assert_eq!(count(&dir, "consents").await, 0);
    // A forged Cancel (no CSRF token) is refused like any forged form.
    let mut person = Person::new();
    let url = authorize_url(&server, &op, REDIRECT, &Pkce::new(), &[]);
    let page = eventually_page(&mut person, &url).await;
    let r = person
        .post(
            &server.url("/oauth/signin"),
            &[
                ("cancel", "cancel"),
                ("request", &page.field("request").unwrap()),
            ],
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(r.location().is_none());
}

/// The sign-in page for `url`, once the server's cache knows the client.
async fn eventually_page(person: &mut Person, url: &str) -> Page {
    for _ in 0..50 {
        let page = person.get(url).await;
        if page.status == 200 {
            return page;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no sign-in page for {url}")
}

#[tokio::test]
async fn consent_describes_scopes_names_the_server_and_says_how_long_and_errors_carry_a_reference()
{
    let f = fixture_with(&[], &[]).await;
    let mut person = Person::new();
    let url = authorize_url(
        &f.server,
        &f.client_id,
        REDIRECT,
        &Pkce::new(),
        &[("scope", "openid profile tools:read")],
    );
    let page = person.get(&url).await;
    let signed = person.sign_in(&f.server, &page, "alice", PASSWORD).await;
    let consent = person.follow(&signed).await;
    assert_eq!(consent.status, 200, "{}", consent.text);
    assert!(
        consent.text.contains("Know who you are"),
        "{}",
        consent.text
    );
    assert!(
        consent
            .text
            .contains("See your user name and the groups you are in")
    );
    assert!(
        consent.text.contains("<code>tools:read</code>"),
        "undescribed: as it is"
    );
    assert!(
        consent.text.contains("<strong>127.0.0.1:9999/mcp</strong>"),
        "the server by host and path: {}",
        consent.text
    );
    assert!(consent.text.contains("at most 90 days"), "{}", consent.text);
    // Sign-out: Cancel keeps the session.
    let out = person.get(&f.server.url("/oauth/signout")).await;
    assert!(out.text.contains("keep their access"), "{}", out.text);
    let csrf = out.field("csrf").unwrap();
    let kept = person
        .post(
            &f.server.url("/oauth/signout"),
            &[("cancel", "cancel"), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(kept.status, 200);
    assert!(
        kept.text
            .contains("still signed in as <strong>alice</strong>"),
        "{}",
        kept.text
    );
    assert_eq!(count(&f.dir, "browser_sessions").await, 1);
    // An error page: in words, with a reference the log has too.
    let bad = person
        .get(&f.server.url("/oauth/authorize?client_id=nobody"))
        .await;
    assert_eq!(bad.status, 400, "{}", bad.text);
    let start = bad.text.find("<code>e_").expect("a reference") + "<code>".len();
    let reference = &bad.text[start..start + 12];
    assert!(
        eventually(Duration::from_secs(2), || async {
            f.server.logs().contains(&format!("reference={reference}"))
        })
        .await,
        "{reference} not in the log: {}",
        f.server.logs()
    );
}

#[tokio::test]
async fn a_client_registered_without_scopes_gets_every_advertised_scope_profile_included() {
    let f = fixture_with(&[], &[("GATEHOUSE_SCOPES_SUPPORTED", "tools:read")]).await;
    let m = f
        .server
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    assert_eq!(
        m.json["scopes_supported"],
        json!(["tools:read", "openid", "profile"])
    );
    let mut person = Person::new();
    let t = tokens(&f, &mut person, &[("scope", "openid profile tools:read")]).await;
    assert_eq!(t["scope"], "openid profile tools:read");
    // Anything not advertised is still refused, before sign-in.
    let url = authorize_url(
        &f.server,
        &f.client_id,
        REDIRECT,
        &Pkce::new(),
        &[("scope", "openid admin")],
    );
    let r = person.get(&url).await;
    assert_eq!(r.status, 303, "{}", r.text);
    assert_eq!(r.redirect_params()["error"], "invalid_scope");
}
