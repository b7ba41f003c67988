//! TLS for tests: a certificate authority made for the test run
//! ([`TestCa`], written as a PEM file Gatehouse can be told to trust with
//! `[outbound] extra_ca_file`) and an HTTPS server on loopback whose answers
//! the test sets path by path ([`HttpsServer`]): documents, statuses,
//! redirects, oversized or slow bodies — and which counts what it was asked.

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A certificate authority for one test, and its certificate as a PEM file.
pub struct TestCa {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    pub cert_pem: String,
    pub file: PathBuf,
}

impl TestCa {
    /// A new CA; its certificate is written to `dir/ca.pem`.
    pub fn new(dir: &Path) -> TestCa {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Gatehouse test CA");
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let key = rcgen::KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("CA certificate");
        let cert_pem = cert.pem();
        let file = dir.join("ca.pem");
        std::fs::write(&file, &cert_pem).expect("write ca.pem");
        TestCa {
            issuer: rcgen::Issuer::new(params, key),
            cert_pem,
            file,
        }
    }

    /// A server certificate for 127.0.0.1 and localhost, signed by this CA:
    /// (certificate chain, private key).
    pub fn server_cert(&self) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let params =
            rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .expect("params");
        let key = rcgen::KeyPair::generate().expect("server key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("server certificate");
        (
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
    }
}

/// What the server answers on one path.
#[derive(Clone, Debug)]
pub enum Answer {
    /// 200 with `Content-Type: application/json` and the given extra headers.
    Json(serde_json::Value, Vec<(&'static str, String)>),
    /// Any status, content type and body.
    Raw(u16, &'static str, Vec<u8>),
    /// A redirect to the given location.
    Redirect(String),
    /// Accepts the request and never answers.
    Hang,
}

#[derive(Default)]
struct Routes {
    answers: HashMap<String, Answer>,
    hits: HashMap<String, usize>,
}

/// An HTTPS server on 127.0.0.1 with a certificate of a [`TestCa`].
pub struct HttpsServer {
    /// `https://127.0.0.1:PORT`
    pub base: String,
    routes: Arc<Mutex<Routes>>,
}

async fn answer(State(routes): State<Arc<Mutex<Routes>>>, req: Request<Body>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let found = {
        let mut r = routes.lock().expect("routes");
        *r.hits.entry(path.clone()).or_default() += 1;
        r.answers.get(&path).cloned()
    };
    let mut resp = match found {
        None => Response::new(Body::from("not found")),
        Some(Answer::Hang) => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Response::new(Body::empty())
        }
        Some(Answer::Json(v, headers)) => {
            let mut r = Response::new(Body::from(v.to_string()));
            r.headers_mut()
                .insert("content-type", HeaderValue::from_static("application/json"));
            for (k, v) in headers {
                r.headers_mut()
                    .insert(k, HeaderValue::from_str(&v).expect("header value"));
            }
            return r;
        }
        Some(Answer::Raw(status, content_type, body)) => {
            let mut r = Response::new(Body::from(body));
            *r.status_mut() = StatusCode::from_u16(status).expect("status");
            r.headers_mut()
                .insert("content-type", HeaderValue::from_static(content_type));
            return r;
        }
        Some(Answer::Redirect(to)) => {
            let mut r = Response::new(Body::empty());
            *r.status_mut() = StatusCode::FOUND;
            r.headers_mut()
                .insert("location", HeaderValue::from_str(&to).expect("location"));
            return r;
        }
    };
    *resp.status_mut() = StatusCode::NOT_FOUND;
    resp
}

impl HttpsServer {
    pub async fn start(ca: &TestCa) -> HttpsServer {
        crate::install_crypto();
        let (chain, key) = ca.server_cert();
        let config = ServerConfig::builder_with_provider(Arc::new(
            tokio_rustls::rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("server certificate");
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("https://{}", listener.local_addr().expect("addr"));
        let routes = Arc::new(Mutex::new(Routes::default()));
        let app = Router::new().fallback(answer).with_state(routes.clone());
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (acceptor, app) = (acceptor.clone(), app.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), TowerToHyperService::new(app))
                        .await;
                });
            }
        });
        HttpsServer { base, routes }
    }

    /// Sets what `path` answers from now on.
    pub fn set(&self, path: &str, answer: Answer) {
        self.routes
            .lock()
            .expect("routes")
            .answers
            .insert(path.to_string(), answer);
    }

    /// How many requests `path` received.
    pub fn hits(&self, path: &str) -> usize {
        self.routes
            .lock()
            .expect("routes")
            .hits
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    /// The full URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}
