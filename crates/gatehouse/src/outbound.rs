//! Outbound fetches of URLs someone else chose: a `private_key_jwt`
//! client's `jwks_uri` and a client's metadata document. [`Outbound`]
//! implements the core's [`ClientKeysFetcher`] and [`DocumentFetcher`] with
//! reqwest (rustls) and the rules of `[outbound]` (docs/operations.md
//! "Outbound fetches").
//!
//! Each fetch is guarded against server-side request forgery: the host is
//! resolved here, every address is checked ([`address_allowed`]) and the
//! connection is pinned to the checked addresses (so a second, different
//! DNS answer cannot be used); no proxy, no redirects (a redirect could lead
//! anywhere), a total time limit and a cap on the bytes read.

use gatehouse_oauth::client_auth::client_keys::{ClientKeysFetcher, address_allowed};
use gatehouse_oauth::client_documents::cache::{
    DOCUMENT_FETCH_TIMEOUT, DocumentError, DocumentFetcher, Fetched,
};
use gatehouse_oauth::client_documents::document::MAX_DOCUMENT_BYTES;
use gatehouse_oauth::limits::{JWKS_URI_FETCH_TIMEOUT, MAX_FETCHED_JWKS_BYTES};
use gatehouse_oauth::people::federated_sign_in::{UpstreamError, UpstreamFetcher};
use reqwest::header::{CACHE_CONTROL, CONTENT_TYPE, DATE, EXPIRES, HeaderMap};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;
use url::{Host, Url};

/// The outbound fetcher: the system's roots plus `[outbound] extra_ca_file`.
#[derive(Clone, Default)]
pub struct Outbound {
    extra_roots: Vec<reqwest::Certificate>,
}

impl Outbound {
    /// Reads `extra_ca_file` (PEM, one or more certificates), if any.
    pub fn new(extra_ca_file: Option<&Path>) -> Result<Outbound, String> {
        let Some(path) = extra_ca_file else {
            return Ok(Outbound::default());
        };
        let bad = |e: String| {
            format!(
                "invalid configuration at `outbound.extra_ca_file`: {}: {e}",
                path.display()
            )
        };
        let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        let extra_roots =
            reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| bad(e.to_string()))?;
        if extra_roots.is_empty() {
            return Err(bad("no PEM certificate in it".into()));
        }
        Ok(Outbound { extra_roots })
    }
}

/// What a fetch may be and how it is read.
struct Rules {
    accept: &'static str,
    max_bytes: usize,
    timeout: Duration,
}

struct Answer {
    headers: HeaderMap,
    body: Vec<u8>,
}

/// Why a fetch gave nothing: the answer was not acceptable (`Refused`), or
/// there was no usable answer right now (`Unavailable`: no connection, a
/// timeout, a 5xx).
enum Failure {
    Refused(String),
    Unavailable(String),
}

impl From<Failure> for DocumentError {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Refused(r) => DocumentError::Refused(r),
            Failure::Unavailable(r) => DocumentError::Unavailable(r),
        }
    }
}

impl From<Failure> for String {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Refused(r) | Failure::Unavailable(r) => r,
        }
    }
}

#[async_trait::async_trait]
impl ClientKeysFetcher for Outbound {
    async fn fetch(&self, uri: &Url, allow_loopback: bool) -> Result<Vec<u8>, String> {
        let rules = Rules {
            accept: "application/jwk-set+json, application/json",
            max_bytes: MAX_FETCHED_JWKS_BYTES,
            timeout: JWKS_URI_FETCH_TIMEOUT,
        };
        Ok(self
            .get(uri, allow_loopback, &rules)
            .await
            .map_err(String::from)?
            .body)
    }
}

#[async_trait::async_trait]
impl DocumentFetcher for Outbound {
    async fn fetch_document(
        &self,
        url: &Url,
        allow_loopback: bool,
    ) -> Result<Fetched, DocumentError> {
        let rules = Rules {
            accept: "application/json",
            max_bytes: MAX_DOCUMENT_BYTES,
            timeout: DOCUMENT_FETCH_TIMEOUT,
        };
        let answer = self.get(url, allow_loopback, &rules).await?;
        let header = |name| {
            answer
                .headers
                .get(name)
                .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
                .map(String::from)
        };
        let json = header(CONTENT_TYPE).is_some_and(|t| {
            let essence = t.split(';').next().unwrap_or_default().trim();
            essence.eq_ignore_ascii_case("application/json")
                || essence.to_ascii_lowercase().ends_with("+json")
        });
        if !json {
            return Err(DocumentError::Refused(format!(
                "the document was served as {:?}, not application/json",
                header(CONTENT_TYPE).unwrap_or_default()
            )));
        }
        Ok(Fetched {
            cache_control: header(CACHE_CONTROL),
            expires: header(EXPIRES),
            date: header(DATE),
            body: answer.body,
        })
    }
}

/// Provider documents (discovery, JWKS) and token responses.
const MAX_UPSTREAM_BYTES: usize = 64 * 1024;
/// Total time for one call to an identity provider.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(10);

fn upstream_error(f: Failure, what: &str) -> UpstreamError {
    match f {
        Failure::Unavailable(r) if r.starts_with("no complete answer") => {
            UpstreamError::TimedOut(format!("{what}: {r}"))
        }
        Failure::Unavailable(r) | Failure::Refused(r) => {
            UpstreamError::Failed(format!("{what}: {r}"))
        }
    }
}

fn json_body(body: &[u8], what: &str) -> Result<serde_json::Value, UpstreamError> {
    serde_json::from_slice(body)
        .map_err(|e| UpstreamError::Failed(format!("{what}: not JSON: {e}")))
}

#[async_trait::async_trait]
impl UpstreamFetcher for Outbound {
    async fn get_json(
        &self,
        url: &Url,
        allow_loopback: bool,
    ) -> Result<serde_json::Value, UpstreamError> {
        check_upstream_url(url, allow_loopback)?;
        let rules = Rules {
            accept: "application/json",
            max_bytes: MAX_UPSTREAM_BYTES,
            timeout: UPSTREAM_TIMEOUT,
        };
        let answer = self
            .get(url, allow_loopback, &rules)
            .await
            .map_err(|f| upstream_error(f, url.as_str()))?;
        json_body(&answer.body, url.as_str())
    }

    async fn post_form(
        &self,
        url: &Url,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
        allow_loopback: bool,
    ) -> Result<(u16, serde_json::Value), UpstreamError> {
        check_upstream_url(url, allow_loopback)?;
        let work = async {
            let addrs = checked_addresses(url, allow_loopback).await?;
            let client = self.client_for(url, &addrs, UPSTREAM_TIMEOUT)?;
            let mut req = client
                .post(url.clone())
                .header("accept", "application/json")
                .form(form);
            if let Some((id, secret)) = basic {
                // RFC 6749 §2.3.1: both form-urlencoded before Basic.
                let enc = |s: &str| {
                    url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>()
                };
                req = req.basic_auth(enc(id), Some(enc(secret)));
            }
            let mut resp = req
                .send()
                .await
                .map_err(|e| Failure::Unavailable(format!("request failed: {e}")))?;
            let status = resp.status().as_u16();
            let mut body = Vec::new();
            while let Some(chunk) = resp
                .chunk()
                .await
                .map_err(|e| Failure::Unavailable(e.to_string()))?
            {
                if body.len() + chunk.len() > MAX_UPSTREAM_BYTES {
                    return Err(Failure::Refused(format!(
                        "answer larger than {MAX_UPSTREAM_BYTES} bytes"
                    )));
                }
                body.extend_from_slice(&chunk);
            }
            Ok((status, body))
        };
        let (status, body) = tokio::time::timeout(UPSTREAM_TIMEOUT, work)
            .await
            .map_err(|_| {
                UpstreamError::TimedOut(format!(
                    "{url}: no complete answer within {UPSTREAM_TIMEOUT:?}"
                ))
            })?
            .map_err(|f| upstream_error(f, url.as_str()))?;
        Ok((status, json_body(&body, url.as_str())?))
    }
}

/// A provider's endpoints: https, or http to loopback when allowed.
fn check_upstream_url(url: &Url, allow_loopback: bool) -> Result<(), UpstreamError> {
    let loopback = gatehouse_oauth::issuer::is_loopback_host(url);
    match url.scheme() {
        "https" => Ok(()),
        "http" if allow_loopback && loopback => Ok(()),
        _ => Err(UpstreamError::Failed(format!(
            "{url}: a provider's endpoints must be https"
        ))),
    }
}

impl Outbound {
    /// A client pinned to `addrs` for `url`'s host: no proxy, no redirects,
    /// the extra roots.
    fn client_for(
        &self,
        url: &Url,
        addrs: &[SocketAddr],
        timeout: Duration,
    ) -> Result<reqwest::Client, Failure> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(timeout);
        if !self.extra_roots.is_empty() {
            builder = builder.tls_certs_merge(self.extra_roots.iter().cloned());
        }
        if let Some(Host::Domain(d)) = url.host() {
            builder = builder.resolve_to_addrs(d, addrs);
        }
        builder
            .build()
            .map_err(|e| Failure::Unavailable(e.to_string()))
    }

    /// One GET under `rules`, within its total time limit.
    async fn get(&self, uri: &Url, allow_loopback: bool, rules: &Rules) -> Result<Answer, Failure> {
        tokio::time::timeout(
            rules.timeout,
            self.get_unbounded(uri, allow_loopback, rules),
        )
        .await
        .map_err(|_| {
            Failure::Unavailable(format!("no complete answer within {:?}", rules.timeout))
        })?
    }

    async fn get_unbounded(
        &self,
        uri: &Url,
        allow_loopback: bool,
        rules: &Rules,
    ) -> Result<Answer, Failure> {
        let addrs = checked_addresses(uri, allow_loopback).await?;
        // The whole fetch is bounded by `get`'s deadline, which names itself
        // in the error; no reqwest timeout races it.
        let client = self.client_for(uri, &addrs, rules.timeout)?;
        let mut resp = client
            .get(uri.clone())
            .header("accept", rules.accept)
            .send()
            .await
            .map_err(|e| Failure::Unavailable(format!("request failed: {e}")))?;
        let status = resp.status();
        if status.is_redirection() {
            return Err(Failure::Refused(format!("redirect refused ({status})")));
        }
        if status.is_server_error() {
            return Err(Failure::Unavailable(format!("answered {status}")));
        }
        if status != reqwest::StatusCode::OK {
            return Err(Failure::Refused(format!("answered {status}")));
        }
        let too_big =
            || Failure::Refused(format!("document larger than {} bytes", rules.max_bytes));
        if resp
            .content_length()
            .is_some_and(|n| n > rules.max_bytes as u64)
        {
            return Err(too_big());
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| Failure::Unavailable(e.to_string()))?
        {
            if body.len() + chunk.len() > rules.max_bytes {
                return Err(too_big());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Answer {
            headers: resp.headers().clone(),
            body,
        })
    }
}

/// The checked addresses `uri`'s host resolves to; all of them must pass.
/// The reasons name no address: they reach pages anyone can load, which
/// must not map a private network's names.
async fn checked_addresses(uri: &Url, allow_loopback: bool) -> Result<Vec<SocketAddr>, Failure> {
    let refused = |r: &str| Failure::Refused(r.to_string());
    let port = uri
        .port_or_known_default()
        .ok_or_else(|| refused("no port"))?;
    let addrs: Vec<SocketAddr> = match uri.host().ok_or_else(|| refused("no host"))? {
        Host::Ipv4(ip) => vec![SocketAddr::new(IpAddr::V4(ip), port)],
        Host::Ipv6(ip) => vec![SocketAddr::new(IpAddr::V6(ip), port)],
        Host::Domain(d) => tokio::net::lookup_host((d, port))
            .await
            .map_err(|_| Failure::Unavailable("cannot resolve the host".into()))?
            .collect(),
    };
    if addrs.is_empty() {
        return Err(Failure::Unavailable(
            "the host resolves to no address".into(),
        ));
    }
    if addrs
        .iter()
        .any(|a| !address_allowed(a.ip(), allow_loopback))
    {
        return Err(refused(
            "the host resolves to a private, loopback, link-local or unspecified address",
        ));
    }
    Ok(addrs)
}
