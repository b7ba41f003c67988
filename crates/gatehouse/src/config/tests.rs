//! Layering, environment binding and refusal of unknown keys.

use super::*;

fn env(pairs: &[(&str, &str)]) -> impl Iterator<Item = (String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect::<Vec<_>>()
        .into_iter()
}

#[test]
fn environment_binds_declared_keys_and_warns_on_others() {
    let (c, warnings) = load(
        None,
        &Overrides::default(),
        env(&[
            ("GATEHOUSE_REGISTRATION__CONFIDENTIAL", "open"),
            (
                "GATEHOUSE_ALLOWED_AUDIENCES",
                "https://a/mcp, https://b/mcp",
            ),
            ("GATEHOUSE_NOPE", "x"),
        ]),
    )
    .unwrap();
    assert_eq!(c.registration.confidential, Confidential::Open);
    assert_eq!(c.allowed_audiences, vec!["https://a/mcp", "https://b/mcp"]);
    assert_eq!(
        warnings,
        vec!["ignoring unknown environment variable GATEHOUSE_NOPE"]
    );
}

#[test]
fn gateway_lists_come_from_the_environment_but_server_tables_do_not() {
    let (c, warnings) = load(
        None,
        &Overrides::default(),
        env(&[
            (
                "GATEHOUSE_GATEWAY__ALLOWED_ORIGINS",
                "https://a.example, https://b.example",
            ),
            ("GATEHOUSE_GATEWAY__ALGORITHMS", "ES256"),
            ("GATEHOUSE_GATEWAY__ACCEPT_PLAIN_JWT", "true"),
            ("GATEHOUSE_GATEWAY__LISTEN", "127.0.0.1:9"),
            ("GATEHOUSE_GATEWAY__SERVERS", "x"),
        ]),
    )
    .unwrap();
    assert_eq!(
        c.gateway.allowed_origins,
        vec!["https://a.example", "https://b.example"]
    );
    assert_eq!(c.gateway.algorithms, vec!["ES256"]);
    assert!(c.gateway.accept_plain_jwt);
    assert_eq!(c.gateway.listen.as_deref(), Some("127.0.0.1:9"));
    assert!(c.gateway.servers.is_empty());
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("GATEHOUSE_GATEWAY__SERVERS"));
}

#[test]
fn an_unknown_key_in_a_server_table_is_named() {
    let dir = std::env::temp_dir().join(format!("gatehouse-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("unknown-server-key.toml");
    std::fs::write(
        &file,
        "[[gateway.servers]]\nresource = \"http://127.0.0.1:1/a\"\nupstream = \"http://127.0.0.1:2/mcp\"\npolicies = \"p.cedar\"\nupstreem = \"x\"\n",
    )
    .unwrap();
    let err = load(Some(&file), &Overrides::default(), env(&[])).unwrap_err();
    let _ = std::fs::remove_file(&file);
    assert!(err.0.contains("gateway.servers[0]"), "{}", err.0);
    assert!(err.0.contains("upstreem"), "{}", err.0);
}

#[test]
fn connection_limits_come_from_the_environment() {
    let (c, warnings) = load(
        None,
        &Overrides::default(),
        env(&[
            ("GATEHOUSE_LIMITS__MAX_CONNECTIONS", "64"),
            ("GATEHOUSE_LIMITS__HEADER_READ_TIMEOUT", "2s"),
            ("GATEHOUSE_LIMITS__IDLE_TIMEOUT", "3s"),
            ("GATEHOUSE_LIMITS__REQUEST_BODY_TIMEOUT", "4s"),
            ("GATEHOUSE_LIMITS__UPSTREAM_RESPONSE_TIMEOUT", "5s"),
        ]),
    )
    .unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(c.limits.max_connections, 64);
    assert_eq!(c.limits.header_read_timeout.0, Duration::from_secs(2));
    assert_eq!(c.limits.idle_timeout.0, Duration::from_secs(3));
    assert_eq!(c.limits.request_body_timeout.0, Duration::from_secs(4));
    assert_eq!(c.limits.upstream_response_timeout.0, Duration::from_secs(5));
}

#[test]
fn trusted_proxies_and_the_new_limits_come_from_the_environment() {
    let (c, warnings) = load(
        None,
        &Overrides::default(),
        env(&[
            ("GATEHOUSE_TRUSTED_PROXIES", "10.0.0.0/8, ::1"),
            ("GATEHOUSE_REGISTRATION__MAX_CLIENTS_PER_ADDRESS", "0"),
            ("GATEHOUSE_REGISTRATION__UNUSED_EXPIRY", "2h"),
            (
                "GATEHOUSE_CLIENT_AUTH__FREE_FAILURES_PER_ADDRESS_CLIENT",
                "3",
            ),
            ("GATEHOUSE_CLIENT_AUTH__MAX_BACKOFF", "1m"),
        ]),
    )
    .unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(c.trusted_proxies, vec!["10.0.0.0/8", "::1"]);
    assert_eq!(c.registration.max_clients_per_address, 0);
    assert_eq!(c.registration.unused_expiry.0, Duration::from_secs(7200));
    assert_eq!(c.client_auth.free_failures_per_address_client, 3);
    assert_eq!(c.client_auth.max_backoff.0, Duration::from_secs(60));
}

#[test]
fn flags_win_over_environment() {
    let o = Overrides {
        listen: Some("127.0.0.1:9".into()),
        ..Default::default()
    };
    let (c, _) = load(None, &o, env(&[("GATEHOUSE_LISTEN", "127.0.0.1:7")])).unwrap();
    assert_eq!(c.listen, "127.0.0.1:9");
}

#[test]
fn bad_values_name_the_key() {
    let err = load(
        None,
        &Overrides::default(),
        env(&[("GATEHOUSE_REGISTRATION__CONFIDENTIAL", "maybe")]),
    )
    .unwrap_err();
    assert!(err.0.contains("registration.confidential"), "{}", err.0);
    let err = load(
        None,
        &Overrides::default(),
        env(&[("GATEHOUSE_REGISTRATION__MAX_CLIENTS", "lots")]),
    )
    .unwrap_err();
    assert!(
        err.0.contains("GATEHOUSE_REGISTRATION__MAX_CLIENTS"),
        "{}",
        err.0
    );
}

#[test]
fn durations_show_as_they_are_written_and_read_back() {
    for (secs, shown) in [
        (90 * 86_400, "90d"),
        (15 * 60, "15m"),
        (5_400, "1h30m"),
        (86_400 + 1, "1d1s"),
        (0, "0s"),
    ] {
        let d = Duration::from_secs(secs);
        assert_eq!(compact_duration(d), shown);
        assert_eq!(humantime::parse_duration(shown).unwrap(), d, "{shown}");
    }
    let d = Duration::from_millis(1_250);
    assert_eq!(compact_duration(d), "1s250ms");
    assert_eq!(humantime::parse_duration("1s250ms").unwrap(), d);
}
