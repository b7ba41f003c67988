//! Floods against the in-memory limiters, and the device cookie that keeps
//! a person's own browser out of the per-name sign-in limit — over HTTP
//! against the real binary. Clients play different addresses by binding
//! their connections to 127.x.y.z (Linux routes all of 127/8 to the
//! loopback interface). The limiter tables are made small
//! (`limits.limiter_capacity = 32`) so that a flood of a few hundred
//! requests overfills them.

use gatehouse_testkit::person::{
    PASSWORD, Page, Person, add_user, authorize_url, register_public, user_cli,
};
use gatehouse_testkit::*;
use std::net::IpAddr;
use std::time::Duration;

const REDIRECT: &str = "http://127.0.0.1:33419/callback";
const SMALL_TABLES: (&str, &str) = ("GATEHOUSE_LIMITS__LIMITER_CAPACITY", "32");

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

/// The `i`-th flood address, 127.1.x.y.
fn flood_ip(i: u32) -> IpAddr {
    IpAddr::from((0x7f01_0000 + 1 + i).to_be_bytes())
}

fn client_from(addr: IpAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(addr)
        .build()
        .expect("client")
}

async fn query_i64(dir: &DataDir, sql: &'static str) -> i64 {
    let pool = db(dir).await;
    let n: i64 = sqlx::query_scalar(sql)
        .fetch_one(&pool)
        .await
        .expect("query");
    pool.close().await;
    n
}

async fn sessions(dir: &DataDir) -> i64 {
    query_i64(dir, "SELECT COUNT(*) FROM browser_sessions").await
}

#[tokio::test]
async fn a_flood_of_new_addresses_does_not_lock_new_registrations_out() {
    let dir = DataDir::new();
    let server = Server::start(
        &dir,
        &[],
        &[
            SMALL_TABLES,
            ("GATEHOUSE_REGISTRATION__PER_ADDRESS_PER_MINUTE", "2"),
        ],
    );
    // One address spends its budget: the third request is refused, and
    // nothing of it is stored.
    let first = client_from(ip("127.0.0.2"));
    for _ in 0..2 {
        let r = server
            .register_via(&first, &public_registration(REDIRECT))
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    server
        .register_via(&first, &public_registration(REDIRECT))
        .await
        .assert_error(429, "slow_down");
    assert_eq!(client_count(&dir).await, 2);
    // 200 new addresses, each sending one (malformed) request: every one is
    // looked at — none is refused because the table is full.
    let mut refused = 0;
    for i in 0..200 {
        let r = Response::from(
            client_from(flood_ip(i))
                .post(server.url("/oauth/register"))
                .header("content-type", "application/json")
                .body("not json")
                .send()
                .await
                .expect("flood"),
        )
        .await;
        match r.status {
            400 => assert_eq!(r.json["error"], "invalid_request", "{}", r.text),
            429 => refused += 1,
            other => panic!("flood request {i}: {other} {}", r.text),
        }
    }
    assert_eq!(refused, 0, "no new address is refused for lack of room");
    assert_eq!(client_count(&dir).await, 2, "the flood stored nothing");
    // A new address registers at once; its budget is still enforced.
    let newcomer = client_from(ip("127.0.0.3"));
    for _ in 0..2 {
        let r = server
            .register_via(&newcomer, &public_registration(REDIRECT))
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    server
        .register_via(&newcomer, &public_registration(REDIRECT))
        .await
        .assert_error(429, "slow_down");
    assert_eq!(
        query_i64(
            &dir,
            "SELECT COUNT(*) FROM clients WHERE registered_from = '127.0.0.3'"
        )
        .await,
        2
    );
    assert_eq!(client_count(&dir).await, 4);
}

/// A person at `addr` holding `cookies` (a CSRF cookie, perhaps more).
fn browser_at(addr: IpAddr, cookies: &Person) -> Person {
    let mut p = Person::from_address(addr);
    p.cookies = cookies.cookies.clone();
    p
}

#[tokio::test]
async fn a_flood_of_new_names_does_not_make_every_new_sign_in_wait() {
    let dir = DataDir::new();
    add_user(&dir, "alice", &[]);
    add_user(&dir, "bob", &[]);
    let server = Server::start(&dir, &["--audience", AUD], &[SMALL_TABLES]);
    let client_id = register_public(&server, REDIRECT).await;
    let url = authorize_url(
        &server,
        &client_id,
        REDIRECT,
        &gatehouse_testkit::person::Pkce::new(),
        &[],
    );
    let mut base = Person::from_address(ip("127.0.0.2"));
    let page = base.get(&url).await;
    assert_eq!(page.status, 200, "{}", page.text);
    // The guard works: three failures for alice hold the name back.
    for _ in 0..3 {
        let r = base.sign_in(&server, &page, "alice", "wrong guess").await;
        assert_eq!(r.status, 401, "{}", r.text);
    }
    let held = browser_at(ip("127.0.0.4"), &base)
        .sign_in(&server, &page, "alice", PASSWORD)
        .await;
    assert_eq!(held.status, 429, "{}", held.text);
    // 40 new names from 40 new addresses: 80 keys for a table of 32. Each
    // attempt is checked (401), none waits for lack of room.
    for i in 0..40 {
        let r = browser_at(flood_ip(i), &base)
            .sign_in(&server, &page, &format!("flood{i}"), "wrong guess")
            .await;
        assert_eq!(r.status, 401, "flood attempt {i}: {}", r.text);
    }
    assert_eq!(sessions(&dir).await, 0);
    // A new name signs in at once.
    let mut bob = browser_at(ip("127.0.0.5"), &base);
    let signed = bob.sign_in(&server, &page, "bob", PASSWORD).await;
    assert_eq!(signed.status, 303, "{}", signed.text);
    assert_eq!(sessions(&dir).await, 1);
    // And the guard still holds a name back after three failures.
    for _ in 0..3 {
        let r = browser_at(ip("127.0.0.6"), &base)
            .sign_in(&server, &page, "carol", "wrong guess")
            .await;
        assert_eq!(r.status, 401, "{}", r.text);
    }
    let held = browser_at(ip("127.0.0.7"), &base)
        .sign_in(&server, &page, "carol", "anything at all")
        .await;
    assert_eq!(held.status, 429, "{}", held.text);
    assert_eq!(sessions(&dir).await, 1);
}

const DEVICE: &str = "gatehouse_device";

/// The `Set-Cookie` header of the device cookie on `page`.
fn device_set_cookie(page: &Page) -> Option<String> {
    page.headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{DEVICE}=")))
        .map(str::to_string)
}

/// Fails `name` with `page`'s form from addresses 127.3.0.x until the name
/// waits 2^`rounds` seconds: three failures, then `rounds` times waiting
/// out the current wait and failing once more (1 s, 2 s, 4 s, 8 s …).
async fn lock_name(server: &Server, page: &Page, form: &Person, name: &str, rounds: u32) {
    // Attackers have the CSRF cookie the form needs, not her device cookie.
    let attacker = |n: u32| {
        let mut p = browser_at(IpAddr::from((0x7f03_0000 + 1 + n).to_be_bytes()), form);
        p.cookies.remove(DEVICE);
        p
    };
    for n in 0..3 {
        let r = attacker(n)
            .sign_in(server, page, name, "a wrong guess")
            .await;
        assert_eq!(r.status, 401, "{}", r.text);
    }
    for round in 0..rounds {
        // Wait out the current wait (1 s, 2 s, …), then fail once more.
        tokio::time::sleep(Duration::from_millis((1000 << round) + 150)).await;
        let r = attacker(3 + round)
            .sign_in(server, page, name, "a wrong guess")
            .await;
        assert_eq!(r.status, 401, "{}", r.text);
    }
}

/// Makes sure `name` is held back for at least another 2 s (it may be
/// already): fails it from addresses 127.4.0.x until a 429 says so.
async fn hold_name(server: &Server, page: &Page, form: &Person, name: &str) {
    for n in 0..10u32 {
        let mut p = browser_at(IpAddr::from((0x7f04_0000 + 1 + n).to_be_bytes()), form);
        p.cookies.remove(DEVICE);
        let r = p.sign_in(server, page, name, "a wrong guess").await;
        let retry = r.header("retry-after").and_then(|v| v.parse::<u64>().ok());
        match (r.status, retry) {
            (429, Some(s)) if s >= 2 => return,
            (429, _) => tokio::time::sleep(Duration::from_millis(1100)).await,
            (401, _) => {}
            (other, _) => panic!("{other}: {}", r.text),
        }
    }
    panic!("{name} is not held back");
}

#[tokio::test]
async fn a_browser_that_signed_in_before_is_not_locked_out_by_guesses_elsewhere() {
    let dir = DataDir::new();
    let alice = add_user(&dir, "alice", &[]);
    let alice_id = alice["id"].as_str().expect("id").to_string();
    let server = Server::start(&dir, &["--audience", AUD], &[]);
    let client_id = register_public(&server, REDIRECT).await;
    let url = authorize_url(
        &server,
        &client_id,
        REDIRECT,
        &gatehouse_testkit::person::Pkce::new(),
        &[],
    );
    // Alice signs in at home: her browser gets a device cookie naming her.
    let mut home = Person::from_address(ip("127.0.0.2"));
    let page = home.get(&url).await;
    let signed = home.sign_in(&server, &page, "alice", PASSWORD).await;
    assert_eq!(signed.status, 303, "{}", signed.text);
    let set = device_set_cookie(&signed).expect("a device cookie");
    assert!(
        set.starts_with(&format!("{DEVICE}={alice_id}.")),
        "names the user id: {set}"
    );
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=15552000"] {
        assert!(set.contains(attr), "{attr}: {set}");
    }
    assert!(!set.contains("Secure"), "http issuer: {set}");
    assert_eq!(sessions(&dir).await, 1);
    // Her session ends; the device cookie stays.
    home.cookies.remove("gatehouse_session");
    let page = home.get(&url).await;
    assert!(page.text.contains("name=\"password\""), "{}", page.text);

    // Someone elsewhere guesses at her password until the name waits 8 s.
    lock_name(&server, &page, &home, "alice", 3).await;
    // A stranger's browser with the right password waits; nothing stored.
    let mut stranger = browser_at(ip("127.0.0.4"), &home);
    stranger.cookies.remove(DEVICE);
    let held = stranger.sign_in(&server, &page, "alice", PASSWORD).await;
    assert_eq!(held.status, 429, "{}", held.text);
    assert!(held.header("retry-after").is_some());
    // A forged device cookie (another MAC) is no exemption either.
    let real = home.cookies.get(DEVICE).expect("device cookie").clone();
    let mut forged = browser_at(ip("127.0.0.2"), &home);
    let (rest, tag) = real.rsplit_once('.').expect("mac");
    let flipped = if tag.starts_with('A') { "B" } else { "A" };
    forged
        .cookies
        .insert(DEVICE.into(), format!("{rest}.{flipped}{}", &tag[1..]));
    let held = forged.sign_in(&server, &page, "alice", PASSWORD).await;
    assert_eq!(held.status, 429, "{}", held.text);
    assert_eq!(sessions(&dir).await, 1, "no new session");
    // Her own browser signs in: a session is stored, the cookie renewed.
    let signed = home.sign_in(&server, &page, "alice", PASSWORD).await;
    assert_eq!(signed.status, 303, "{}", signed.text);
    assert!(device_set_cookie(&signed).is_some());
    assert_eq!(sessions(&dir).await, 2);
    let known = eventually(Duration::from_secs(5), || {
        let logs = server.logs();
        async move {
            logs.lines()
                .any(|l| l.contains("signed in") && l.contains("known_device=true"))
        }
    })
    .await;
    assert!(known, "{}", server.logs());
    // Her sign-in did not clear the count the guesses made: strangers
    // still wait (the guesser gets no fresh free guesses from her).
    let held = browser_at(ip("127.0.0.9"), &stranger)
        .sign_in(&server, &page, "alice", PASSWORD)
        .await;
    assert_eq!(held.status, 429, "{}", held.text);

    // The address's limit still applies to her browser: ten failures from
    // it (more than the name's three, which do not count for it), then it
    // waits.
    home.cookies.remove("gatehouse_session");
    let page = home.get(&url).await;
    for i in 0..10 {
        let r = home.sign_in(&server, &page, "alice", "fat fingers").await;
        assert_eq!(r.status, 401, "failure {i}: {}", r.text);
    }
    let held = home.sign_in(&server, &page, "alice", PASSWORD).await;
    assert_eq!(held.status, 429, "{}", held.text);
    assert_eq!(sessions(&dir).await, 2);

    // A password change withdraws the exemption: the cookie was made under
    // the old password's hash.
    let d = dir.path().display().to_string();
    let (ok, _, err) = user_cli(
        &["user", "passwd", "alice", "--data-dir", &d],
        "a brand new password\n",
    );
    assert!(ok, "{err}");
    hold_name(&server, &page, &home, "alice").await;
    let held = browser_at(ip("127.0.0.8"), &home)
        .sign_in(&server, &page, "alice", "a brand new password")
        .await;
    assert_eq!(held.status, 429, "{}", held.text);
    assert_eq!(sessions(&dir).await, 0, "user passwd ended the session");
}

#[tokio::test]
async fn on_an_https_issuer_the_device_cookie_is_secure_and_host_only() {
    let dir = DataDir::new();
    add_user(&dir, "alice", &[]);
    // Behind a TLS proxy: the issuer is https, the listener plain http.
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let issuer = format!("https://127.0.0.1:{port}");
    let server = Server::start(
        &dir,
        &["--listen", &listen, "--issuer", &issuer, "--audience", AUD],
        &[],
    );
    let client_id = register_public(&server, REDIRECT).await;
    let url = authorize_url(
        &server,
        &client_id,
        REDIRECT,
        &gatehouse_testkit::person::Pkce::new(),
        &[],
    );
    let mut home = Person::new();
    let page = home.get(&url).await;
    assert_eq!(page.status, 200, "{}", page.text);
    let signed = home.sign_in(&server, &page, "alice", PASSWORD).await;
    assert_eq!(signed.status, 303, "{}", signed.text);
    let set = signed
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("__Host-gatehouse_device="))
        .expect("a __Host- device cookie")
        .to_string();
    for attr in ["HttpOnly", "SameSite=Lax", "Secure", "Path=/"] {
        assert!(set.contains(attr), "{attr}: {set}");
    }
    assert!(!set.contains("Domain"), "host-only: {set}");
    // It is the one read back: the next sign-in from this browser is known.
    home.cookies.remove("__Host-gatehouse_session");
    let page = home.get(&url).await;
    let again = home.sign_in(&server, &page, "alice", PASSWORD).await;
    assert_eq!(again.status, 303, "{}", again.text);
    let known = eventually(Duration::from_secs(5), || {
        let logs = server.logs();
        async move {
            logs.lines()
                .any(|l| l.contains("signed in") && l.contains("known_device=true"))
        }
    })
    .await;
    assert!(known, "{}", server.logs());
    assert_eq!(sessions(&dir).await, 2);
}
