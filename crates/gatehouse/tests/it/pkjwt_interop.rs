//! private_key_jwt (RFC 7523 §2.2) with independent clients, pinned under
//! `interop/`:
//!
//! - Python `authlib` (`PrivateKeyJWT`, interop/requirements.txt) gets a
//!   client_credentials token from the real `gatehouse serve` with RS256 and
//!   ES256 keys; it sends the token endpoint URL as `aud`.
//! - The TypeScript MCP SDK's `PrivateKeyJwtProvider` (interop/package.json)
//!   goes from a bare 401 at the real `gatehouse gateway` to an MCP session
//!   with an ES256 key; it sends the issuer as `aud`.
//!
//! The keys are made here; the private halves are written to PEM files for
//! the scripts, the public halves registered as the client's JWKS. Without
//! Python + the pinned packages, or Node + `npm ci --prefix interop`, a test
//! says so loudly on stderr and passes, except under CI (`CI` set), where it
//! fails.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use gatehouse_oauth::keys::{Alg, SigningKey};
use gatehouse_testkit::interop::*;
use gatehouse_testkit::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Only `ci-bot` may call only `search_issues` (as in mcp_sdk.rs).
const POLICIES: &str = r#"
@id("ci-bot-search")
permit (principal == Client::"ci-bot", action == Action::"call_tool", resource == Tool::"search_issues");
"#;

/// A fresh key: its private half written to `dir/NAME.pem` (PKCS#8 PEM),
/// its public JWK (with `kid`, without `alg`) returned.
fn key_file(dir: &DataDir, name: &str, alg: Alg) -> (PathBuf, Value) {
    let (signing, pkcs8) = SigningKey::generate(alg).expect("generate key");
    let b64 = STANDARD.encode(&pkcs8);
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).expect("ascii"));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    let path = dir.path().join(format!("{name}.pem"));
    std::fs::write(&path, pem).expect("write key");
    let mut jwk = signing.public_jwk();
    jwk.as_object_mut().expect("jwk").remove("alg");
    (path, jwk)
}

/// Registers `ci-bot` as a private_key_jwt client with these public keys.
fn create_key_client(dir: &DataDir, keys: &[Value]) -> String {
    let file = dir.path().join("client-jwks.json");
    std::fs::write(&file, json!({ "keys": keys }).to_string()).expect("write jwks");
    let file = file.display().to_string();
    let (ok, out, err) = cli(
        dir,
        &[
            "client",
            "create",
            "--id",
            "ci-bot",
            "--name",
            "interop",
            "--grant",
            "client_credentials",
            "--auth-method",
            "private_key_jwt",
            "--jwks",
            &file,
        ],
    );
    assert!(ok, "client create failed: {err}");
    assert!(out["client_secret"].is_null(), "no secret for a key client");
    out["client_id"].as_str().expect("client_id").to_string()
}

fn path_str(p: &Path) -> String {
    p.display().to_string()
}

#[tokio::test]
async fn authlib_private_key_jwt_gets_tokens_with_rs256_and_es256_keys() {
    require_authlib("authlib (pkjwt_interop)");
    install_crypto();
    let dir = DataDir::new();
    let (rsa_pem, rsa_jwk) = key_file(&dir, "rsa", Alg::RS256);
    let (ec_pem, ec_jwk) = key_file(&dir, "ec", Alg::ES256);
    let id = create_key_client(&dir, &[rsa_jwk, ec_jwk]);
    let server = Server::start(&dir, &["--audience", AUD], &[]);
    let token_url = server.url("/oauth/token");
    let script = path_str(&interop_dir().join("authlib_client.py"));

    for (alg, pem) in [("RS256", &rsa_pem), ("ES256", &ec_pem)] {
        let pem = path_str(pem);
        let (ok, stdout, stderr) = run_program(
            "python3",
            &[&script, &token_url, &id, &pem, alg, AUD],
            Duration::from_secs(60),
        );
        let context = || {
            format!(
                "{alg}: authlib stdout:\n{stdout}\nauthlib stderr:\n{stderr}\nserver logs:\n{}",
                server.logs()
            )
        };
        assert!(ok, "the authlib client failed\n{}", context());
        let out = json_line(&stdout).unwrap_or_else(|| panic!("no JSON\n{}", context()));

        // What authlib sent: its own assertion, aud = the token endpoint URL.
        assert_eq!(
            out["assertion_type"],
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "{}",
            context()
        );
        let sent = &out["assertion"];
        assert_eq!(sent["header"]["alg"], alg, "{}", context());
        assert_eq!(sent["claims"]["iss"], id.as_str(), "{}", context());
        assert_eq!(sent["claims"]["sub"], id.as_str(), "{}", context());
        assert_eq!(sent["claims"]["aud"], token_url.as_str(), "{}", context());
        assert!(sent["claims"]["jti"].is_string(), "{}", context());

        // The token verifies against the server's JWKS and names the client.
        let token = out["token"]["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no access_token\n{}", context()));
        assert_eq!(out["token"]["token_type"], "Bearer", "{}", context());
        let (_, claims) = verify_token(&server, token, AUD).await;
        assert_eq!(claims["client_id"], id.as_str());
        assert_eq!(claims["sub"], id.as_str());
        assert_eq!(claims["aud"], AUD);
    }
}

#[test]
fn the_typescript_sdk_private_key_jwt_provider_reaches_the_tools_through_the_gateway() {
    require_sdk("pkjwt_interop (TypeScript SDK)");
    let as_dir = DataDir::new();
    let gw_dir = DataDir::new();

    let gw_port = free_port();
    let resource = format!("http://127.0.0.1:{gw_port}/mcp");
    let (pem, jwk) = key_file(&as_dir, "ec", Alg::ES256);
    let id = create_key_client(&as_dir, &[jwk]);
    assert_eq!(id, "ci-bot");
    let auth = Server::start(&as_dir, &["--audience", &resource], &[]);

    let upstream = Upstream::start();
    let policies = gw_dir.path().join("policies.cedar");
    std::fs::write(&policies, POLICIES).unwrap();
    let (_gateway, gw_logs) =
        start_gateway(gw_port, &resource, &upstream.url, &auth.base, &policies);

    let pem = path_str(&pem);
    let (ok, stdout, stderr) = run_client(
        &[
            "--private-key-jwt",
            &pem,
            "ES256",
            &resource,
            &id,
            &auth.base,
        ],
        Duration::from_secs(60),
    );
    let context = || {
        format!(
            "client stdout:\n{stdout}\nclient stderr:\n{stderr}\nupstream:\n{}\ngateway logs:\n{}\nauthorization server logs:\n{}",
            upstream.lines().join("\n"),
            gw_logs.lock().unwrap(),
            auth.logs()
        )
    };
    assert!(ok, "the SDK client failed\n{}", context());
    let result = json_line(&stdout).unwrap_or_else(|| panic!("no JSON line\n{}", context()));

    assert_eq!(result["tools"], json!(["search_issues"]), "{}", context());
    let search = result["search"].as_str().unwrap_or_default();
    assert!(search.contains("called search_issues"), "{}", context());
    assert_eq!(result["merge_code"], -32003, "{}", context());

    // The token request carried a JWT client assertion and no Basic header.
    let flow: Vec<&str> = result["flow"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert_eq!(flow.first().copied(), Some("POST /mcp -> 401"), "{flow:?}");
    assert!(
        flow.contains(&"POST /oauth/token -> 200 (client_assertion)"),
        "{flow:?}"
    );
    assert!(
        !flow.iter().any(|f| f.contains("(Basic)")),
        "no secret is sent: {flow:?}"
    );
    assert!(flow.contains(&"POST /mcp -> 200 (Bearer)"), "{flow:?}");

    // The SDK's assertion: iss = sub = client id, aud = the issuer.
    let claims = &result["assertion_claims"];
    assert_eq!(claims["iss"], id.as_str(), "{claims}");
    assert_eq!(claims["sub"], id.as_str(), "{claims}");
    assert_eq!(claims["aud"], auth.base.as_str(), "{claims}");

    let seen = upstream.lines();
    assert!(
        seen.iter().any(|l| l == "tools/call search_issues"),
        "{seen:?}"
    );
    assert!(!seen.iter().any(|l| l == "tools/call merge_pr"), "{seen:?}");
}
