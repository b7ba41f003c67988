//! An issuer under the test's control, served in-process: RFC 8414
//! discovery, a JWKS with one ES256 key the test holds (so it can mint any
//! token), and an RFC 7662 introspection endpoint that calls every token
//! active. [`TestIssuer::hang`] turns it into one that accepts requests and
//! never answers them.

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use axum::Router;
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

pub struct TestIssuer {
    pub base: String,
    pub kid: String,
    pkcs8: Vec<u8>,
    hang: Arc<AtomicBool>,
    /// Requests that reached the issuer (answered or not).
    pub requests: Arc<AtomicUsize>,
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

/// Waits forever once the issuer hangs; counts the request either way.
async fn gate(hang: &AtomicBool, requests: &AtomicUsize) {
    requests.fetch_add(1, Ordering::SeqCst);
    if hang.load(Ordering::SeqCst) {
        std::future::pending::<()>().await;
    }
}

impl TestIssuer {
    pub async fn start() -> TestIssuer {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("key");
        let pkcs8 = pair.to_pkcs8v1().expect("pkcs8").as_ref().to_vec();
        let point = pair.public_key().as_ref().to_vec();
        let (x, y) = (B64.encode(&point[1..33]), B64.encode(&point[33..65]));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let kid = "test-key-1".to_string();
        let jwks = json!({"keys": [{"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": kid, "alg": "ES256", "use": "sig"}]});
        let meta = json!({"issuer": base, "jwks_uri": format!("{base}/jwks"),
            "introspection_endpoint": format!("{base}/introspect")});
        let hang = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(AtomicUsize::new(0));
        let (h1, r1) = (hang.clone(), requests.clone());
        let (h2, r2) = (hang.clone(), requests.clone());
        let (h3, r3) = (hang.clone(), requests.clone());
        let app = Router::new()
            .route(
                "/.well-known/oauth-authorization-server",
                get(move || {
                    let (m, h, r) = (meta.clone(), h1.clone(), r1.clone());
                    async move {
                        gate(&h, &r).await;
                        axum::Json(m)
                    }
                }),
            )
            .route(
                "/jwks",
                get(move || {
                    let (j, h, r) = (jwks.clone(), h2.clone(), r2.clone());
                    async move {
                        gate(&h, &r).await;
                        axum::Json(j)
                    }
                }),
            )
            .route(
                "/introspect",
                post(move || {
                    let (h, r) = (h3.clone(), r3.clone());
                    async move {
                        gate(&h, &r).await;
                        axum::Json(json!({"active": true}))
                    }
                }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await });
        TestIssuer {
            base,
            kid,
            pkcs8,
            hang,
            requests,
        }
    }

    /// From now on every request is accepted and never answered.
    pub fn hang(&self) {
        self.hang.store(true, Ordering::SeqCst);
    }

    /// An access token for client `sub` at `aud`, signed with the published
    /// key; each one different (its own `jti`).
    pub fn token(&self, sub: &str, aud: &str) -> String {
        self.token_with_kid(sub, aud, &self.kid)
    }

    /// Like [`Self::token`], naming key `kid` in its header (an unknown kid
    /// makes the verifier refetch the issuer's keys).
    pub fn token_with_kid(&self, sub: &str, aud: &str, kid: &str) -> String {
        static N: AtomicU64 = AtomicU64::new(0);
        let claims: Value = json!({"iss": self.base, "sub": sub, "client_id": sub, "aud": aud,
            "iat": now(), "exp": now() + 300,
            "jti": format!("j-{}-{}", now(), N.fetch_add(1, Ordering::SeqCst))});
        let key = jsonwebtoken::EncodingKey::from_ec_der(&self.pkcs8);
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        h.typ = Some("at+jwt".into());
        h.kid = Some(kid.to_string());
        jsonwebtoken::encode(&h, &claims, &key).expect("sign")
    }
}
