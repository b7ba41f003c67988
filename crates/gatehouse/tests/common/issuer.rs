//! An issuer under the test's control: discovery and JWKS served in-process,
//! its signing key held by the test, so tokens for any principal can be
//! minted for the real `gatehouse gateway`.

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use axum::Router;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Value, json};
use std::time::{SystemTime, UNIX_EPOCH};

pub struct TestIssuer {
    pub base: String,
    kid: String,
    pkcs8: Vec<u8>,
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

impl TestIssuer {
    pub async fn start() -> TestIssuer {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let pkcs8 = pair.to_pkcs8v1().unwrap().as_ref().to_vec();
        let point = pair.public_key().as_ref().to_vec();
        let (x, y) = (B64.encode(&point[1..33]), B64.encode(&point[33..65]));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let kid = "test-key-1".to_string();
        let jwks = json!({"keys": [{"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": kid, "alg": "ES256", "use": "sig"}]});
        let meta = json!({"issuer": base, "jwks_uri": format!("{base}/jwks")});
        let app = Router::new()
            .route(
                "/.well-known/oauth-authorization-server",
                get(move || {
                    let m = meta.clone();
                    async move { axum::Json(m) }
                }),
            )
            .route(
                "/jwks",
                get(move || {
                    let j = jwks.clone();
                    async move { axum::Json(j) }
                }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await });
        TestIssuer { base, kid, pkcs8 }
    }

    /// An access token for client `sub` at `aud`.
    pub fn token(&self, sub: &str, aud: &str) -> String {
        let claims: Value = json!({"iss": self.base, "sub": sub, "client_id": sub, "aud": aud,
            "scope": "", "iat": now(), "exp": now() + 300, "jti": format!("j-{sub}-{}", now())});
        let key = jsonwebtoken::EncodingKey::from_ec_der(&self.pkcs8);
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        h.typ = Some("at+jwt".into());
        h.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&h, &claims, &key).unwrap()
    }
}
