//! The HTTP side of `jwks_uri` clients: [`HttpKeysFetcher`] implements the
//! core's [`ClientKeysFetcher`] with reqwest (rustls).
//!
//! The URL is the client's choice, so each fetch is guarded against
//! server-side request forgery: the host is resolved here, every address is
//! checked ([`address_allowed`]) and the connection is pinned to the checked
//! addresses (so a second, different DNS answer cannot be used); no proxy, no
//! redirects (a redirect could lead anywhere), a total time limit and a cap
//! on the bytes read.

use gatehouse_oauth::client_auth::client_keys::{ClientKeysFetcher, address_allowed};
use gatehouse_oauth::limits::{JWKS_URI_FETCH_TIMEOUT, MAX_FETCHED_JWKS_BYTES};
use std::net::{IpAddr, SocketAddr};
use url::{Host, Url};

pub struct HttpKeysFetcher;

#[async_trait::async_trait]
impl ClientKeysFetcher for HttpKeysFetcher {
    async fn fetch(&self, uri: &Url, allow_loopback: bool) -> Result<Vec<u8>, String> {
        tokio::time::timeout(JWKS_URI_FETCH_TIMEOUT, fetch(uri, allow_loopback))
            .await
            .map_err(|_| format!("no answer within {JWKS_URI_FETCH_TIMEOUT:?}"))?
    }
}

/// The checked addresses `uri`'s host resolves to; all of them must pass.
async fn checked_addresses(uri: &Url, allow_loopback: bool) -> Result<Vec<SocketAddr>, String> {
    let port = uri.port_or_known_default().ok_or("no port")?;
    let addrs: Vec<SocketAddr> = match uri.host().ok_or("no host")? {
        Host::Ipv4(ip) => vec![SocketAddr::new(IpAddr::V4(ip), port)],
        Host::Ipv6(ip) => vec![SocketAddr::new(IpAddr::V6(ip), port)],
        Host::Domain(d) => tokio::net::lookup_host((d, port))
            .await
            .map_err(|e| format!("cannot resolve {d:?}: {e}"))?
            .collect(),
    };
    if addrs.is_empty() {
        return Err("the host resolves to no address".into());
    }
    if let Some(bad) = addrs
        .iter()
        .find(|a| !address_allowed(a.ip(), allow_loopback))
    {
        return Err(format!(
            "the host resolves to {}, a private, loopback, link-local or unspecified address",
            bad.ip()
        ));
    }
    Ok(addrs)
}

async fn fetch(uri: &Url, allow_loopback: bool) -> Result<Vec<u8>, String> {
    let addrs = checked_addresses(uri, allow_loopback).await?;
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .connect_timeout(JWKS_URI_FETCH_TIMEOUT)
        .timeout(JWKS_URI_FETCH_TIMEOUT);
    if let Some(Host::Domain(d)) = uri.host() {
        builder = builder.resolve_to_addrs(d, &addrs);
    }
    let client = builder.build().map_err(|e| e.to_string())?;
    let mut resp = client
        .get(uri.clone())
        .header("accept", "application/jwk-set+json, application/json")
        .send()
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    let status = resp.status();
    if status.is_redirection() {
        return Err(format!("redirect refused ({status})"));
    }
    if !status.is_success() {
        return Err(format!("answered {status}"));
    }
    if resp
        .content_length()
        .is_some_and(|n| n > MAX_FETCHED_JWKS_BYTES as u64)
    {
        return Err(format!(
            "document larger than {MAX_FETCHED_JWKS_BYTES} bytes"
        ));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > MAX_FETCHED_JWKS_BYTES {
            return Err(format!(
                "document larger than {MAX_FETCHED_JWKS_BYTES} bytes"
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
