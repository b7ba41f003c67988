//! Signing a person in at an upstream OpenID Provider (docs/people.md
//! "Signing in elsewhere"): the redirect there and the callback back here.
//! Toward the provider Gatehouse is an OAuth client — authorization code
//! with PKCE S256, a `state` and a `nonce` per sign-in — and the sign-in
//! under way is a Store row found by the hash of the `state`, bound to the
//! browser that started it, consumed by the first callback. The PKCE
//! verifier and the nonce are derived from the state under the server's
//! secret-hashing key, so nothing secret is stored. The HTTP side (the
//! fetches) is injected ([`UpstreamFetcher`]); the pages and cookies are the
//! HTTP layer's.

use super::federation::{Expected, FederatedIdentity, ProviderMetadata, identity, verify_id_token};
use crate::client_auth::jwks::{PublicJwk, parse_jwks};
use crate::crypto::{b64url, random_bytes};
use crate::error::OAuthError;
use crate::grant_records::{FederatedLogin, LinkedIdentity, User, lookup_hash};
use crate::issuer::CALLBACK_PATH;
use crate::people::accounts::{new_user_id, validate_user_name};
use crate::people::pkce;
use crate::server::AuthorizationServer;
use crate::settings::{ProviderSettings, Provision};
use async_trait::async_trait;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use url::Url;

/// How long a person may take at the provider.
pub const FEDERATED_LOGIN_LIFETIME_SECS: i64 = 600;
/// How long a provider's discovery document and keys are used.
const PROVIDER_CACHE: Duration = Duration::from_secs(3600);
/// At most one refetch of a provider's keys this often (unknown `kid`s).
const KEYS_MIN_REFETCH: Duration = Duration::from_secs(10);
const NONCE_PURPOSE: &str = "gatehouse federation nonce";
const VERIFIER_PURPOSE: &str = "gatehouse federation pkce";

/// Why a fetch from a provider failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamError {
    /// No complete answer within the deadline (504).
    TimedOut(String),
    /// Anything else: refused address, no connection, a non-JSON answer (502).
    Failed(String),
}

/// The HTTP side of talking to providers, with the outbound rules of every
/// fetch (public addresses only, pinned connection, no redirects, a size cap,
/// a deadline).
#[async_trait]
pub trait UpstreamFetcher: Send + Sync {
    /// GET a JSON document (200 only).
    async fn get_json(&self, url: &Url, allow_loopback: bool) -> Result<Value, UpstreamError>;
    /// POST a form, with HTTP Basic credentials if given; the status and
    /// the JSON body, whatever the status.
    async fn post_form(
        &self,
        url: &Url,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
        allow_loopback: bool,
    ) -> Result<(u16, Value), UpstreamError>;
}

/// How a callback ended when it did not sign anyone in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FederationError {
    /// The person cancelled at the provider: `access_denied` for the
    /// authorization request (its query string).
    Cancelled(String),
    /// The callback or what the provider said is not acceptable; nothing
    /// was stored. The reason is for the log; the page says `shown`.
    Refused { shown: String, reason: String },
    /// The provider could not be reached or did not answer in time.
    Upstream(UpstreamError),
    /// The Store could not be used.
    Store(OAuthError),
}

impl From<OAuthError> for FederationError {
    fn from(e: OAuthError) -> Self {
        FederationError::Store(e)
    }
}

impl From<crate::error::StoreError> for FederationError {
    fn from(e: crate::error::StoreError) -> Self {
        FederationError::Store(e.into())
    }
}

fn refused(shown: &str, reason: impl Into<String>) -> FederationError {
    FederationError::Refused {
        shown: shown.to_string(),
        reason: reason.into(),
    }
}

const NOT_THIS_SIGN_IN: &str = "This sign-in could not be completed: it was already used, it expired, or it was started in another browser. Start again from the application.";
const PROVIDER_SAID_NO: &str = "The identity provider's answer could not be accepted, so nobody was signed in. Start again from the application.";

struct Known<T> {
    value: Arc<T>,
    at: Instant,
}

/// Providers' discovery documents and keys, per provider id.
#[derive(Default)]
pub struct ProviderCache {
    metadata: Mutex<HashMap<String, Known<ProviderMetadata>>>,
    keys: Mutex<HashMap<String, Known<Vec<PublicJwk>>>>,
}

impl AuthorizationServer {
    /// The provider configured with `id`.
    pub fn provider(&self, id: &str) -> Option<&ProviderSettings> {
        self.settings.people.providers.iter().find(|p| p.id == id)
    }

    fn upstream(&self) -> Result<&dyn UpstreamFetcher, FederationError> {
        self.upstream.as_deref().ok_or_else(|| {
            FederationError::Upstream(UpstreamError::Failed(
                "no upstream fetcher in this build".into(),
            ))
        })
    }

    fn allow_loopback(&self) -> bool {
        self.settings.client_auth.allow_http_loopback_jwks_uri
    }

    fn url(s: &str) -> Result<Url, FederationError> {
        Url::parse(s).map_err(|e| {
            FederationError::Upstream(UpstreamError::Failed(format!("bad URL {s:?}: {e}")))
        })
    }

    async fn provider_metadata(
        &self,
        p: &ProviderSettings,
    ) -> Result<Arc<ProviderMetadata>, FederationError> {
        if let Some(k) = self
            .providers
            .metadata
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&p.id)
            .filter(|k| k.at.elapsed() < PROVIDER_CACHE)
        {
            return Ok(k.value.clone());
        }
        let url = Self::url(&format!(
            "{}/.well-known/openid-configuration",
            p.issuer.trim_end_matches('/')
        ))?;
        let doc = self
            .upstream()?
            .get_json(&url, self.allow_loopback())
            .await
            .map_err(FederationError::Upstream)?;
        let meta = Arc::new(
            ProviderMetadata::from_discovery(&doc, &p.issuer)
                .map_err(|e| FederationError::Upstream(UpstreamError::Failed(e)))?,
        );
        self.providers
            .metadata
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                p.id.clone(),
                Known {
                    value: meta.clone(),
                    at: Instant::now(),
                },
            );
        Ok(meta)
    }

    /// The provider's keys: cached, fetched again for a `kid` they lack (at
    /// most every [`KEYS_MIN_REFETCH`]).
    async fn provider_keys(
        &self,
        p: &ProviderSettings,
        meta: &ProviderMetadata,
        kid: Option<&str>,
    ) -> Result<Arc<Vec<PublicJwk>>, FederationError> {
        let cached = self
            .providers
            .keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&p.id)
            .map(|k| (k.value.clone(), k.at));
        if let Some((keys, at)) = &cached {
            let knows = kid.is_none_or(|kid| keys.iter().any(|k| k.kid.as_deref() == Some(kid)));
            if at.elapsed() < PROVIDER_CACHE && (knows || at.elapsed() < KEYS_MIN_REFETCH) {
                return Ok(keys.clone());
            }
        }
        let doc = self
            .upstream()?
            .get_json(&Self::url(&meta.jwks_uri)?, self.allow_loopback())
            .await
            .map_err(FederationError::Upstream)?;
        let keys = Arc::new(signing_keys(&doc).map_err(|e| {
            FederationError::Upstream(UpstreamError::Failed(format!("the provider's keys: {e}")))
        })?);
        self.providers
            .keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                p.id.clone(),
                Known {
                    value: keys.clone(),
                    at: Instant::now(),
                },
            );
        Ok(keys)
    }

    fn derived(&self, purpose: &str, state: &str) -> Result<String, FederationError> {
        self.secrets
            .derive(purpose, state)
            .ok_or_else(|| FederationError::Store(OAuthError::server_error()))
    }

    /// Starts a sign-in at provider `p` for the authorization request `raw`
    /// (already validated) from the browser holding `browser_cookie`:
    /// records it and returns the URL to send the browser to.
    pub async fn begin_federated_sign_in(
        &self,
        p: &ProviderSettings,
        raw: &str,
        browser_cookie: &str,
    ) -> Result<String, FederationError> {
        let meta = self.provider_metadata(p).await?;
        let state = b64url(&random_bytes::<32>());
        let login = FederatedLogin {
            hash: lookup_hash(&state),
            provider: p.id.clone(),
            browser: lookup_hash(browser_cookie),
            request: raw.to_string(),
            expires_at: self.now() + FEDERATED_LOGIN_LIFETIME_SECS,
        };
        self.store.insert_federated_login(&login).await?;
        let nonce = self.derived(NONCE_PURPOSE, &state)?;
        let verifier = self.derived(VERIFIER_PURPOSE, &state)?;
        let mut url = Self::url(&meta.authorization_endpoint)?;
        // A fresh sign-in asked of Gatehouse is asked of the provider, and
        // checked in its ID token's auth_time at the callback.
        let (login_asked, max_age) = freshness(raw);
        if login_asked {
            url.query_pairs_mut().append_pair("prompt", "login");
        }
        if let Some(m) = max_age {
            url.query_pairs_mut().append_pair("max_age", &m.to_string());
        }
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &p.client_id)
            .append_pair("redirect_uri", &self.callback_url())
            .append_pair("scope", &p.scopes.join(" "))
            .append_pair("state", &state)
            .append_pair("nonce", &nonce)
            .append_pair("code_challenge", &pkce::challenge_of(&verifier))
            .append_pair("code_challenge_method", pkce::S256);
        Ok(url.into())
    }

    /// Where providers send people back.
    pub fn callback_url(&self) -> String {
        self.settings.issuer.endpoint(CALLBACK_PATH)
    }

    /// Finishes a sign-in at the callback: `params` are the callback's query
    /// (`code`, `state`, `iss`, or `error`), `browser_cookie` the binding
    /// cookie of the browser that brought them. Returns the account signed
    /// in and the authorization request to go back to.
    pub async fn finish_federated_sign_in(
        &self,
        params: &HashMap<String, String>,
        browser_cookie: Option<&str>,
    ) -> Result<(User, String, i64), FederationError> {
        let param = |n: &str| params.get(n).map(String::as_str);
        let state = param("state").ok_or_else(|| refused(NOT_THIS_SIGN_IN, "no state"))?;
        let login = self
            .store
            .take_federated_login(&lookup_hash(state), self.now())
            .await?
            .ok_or_else(|| refused(NOT_THIS_SIGN_IN, "unknown, used or expired state"))?;
        // Bound to the browser that started it: a callback URL replayed or
        // planted in another browser signs nobody in there.
        let same_browser = browser_cookie.is_some_and(|c| {
            bool::from(subtle::ConstantTimeEq::ct_eq(
                lookup_hash(c).as_bytes(),
                login.browser.as_bytes(),
            ))
        });
        if !same_browser {
            return Err(refused(NOT_THIS_SIGN_IN, "state from another browser"));
        }
        let p = self
            .provider(&login.provider)
            .ok_or_else(|| refused(NOT_THIS_SIGN_IN, "the provider is no longer configured"))?;
        let meta = self.provider_metadata(p).await?;
        // RFC 9207: the response names its issuer; this sign-in was sent to
        // this provider, so any other is a mix-up.
        match param("iss") {
            Some(iss) if iss != meta.issuer => {
                return Err(refused(
                    PROVIDER_SAID_NO,
                    format!("iss {iss:?} is not provider {:?}'s", p.id),
                ));
            }
            None if meta.iss_parameter_supported => {
                return Err(refused(
                    PROVIDER_SAID_NO,
                    "no iss, though the provider sends it",
                ));
            }
            // With several providers answering at one callback, only `iss`
            // tells which one answered (RFC 9207 §2.4).
            None if self.settings.people.providers.len() > 1 => {
                return Err(refused(
                    PROVIDER_SAID_NO,
                    format!(
                        "provider {:?} does not send iss, which several providers need",
                        p.id
                    ),
                ));
            }
            _ => {}
        }
        if let Some(error) = param("error") {
            if error == "access_denied" {
                return Err(FederationError::Cancelled(login.request));
            }
            return Err(refused(
                PROVIDER_SAID_NO,
                format!("the provider answered error {error:?}"),
            ));
        }
        let code = param("code").ok_or_else(|| refused(PROVIDER_SAID_NO, "no code"))?;
        let verifier = self.derived(VERIFIER_PURPOSE, state)?;
        let callback = self.callback_url();
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", callback.as_str()),
            ("code_verifier", verifier.as_str()),
        ];
        if p.client_secret.is_none() {
            form.push(("client_id", p.client_id.as_str()));
        }
        let basic = p
            .client_secret
            .as_deref()
            .map(|s| (p.client_id.as_str(), s));
        let (status, answer) = self
            .upstream()?
            .post_form(
                &Self::url(&meta.token_endpoint)?,
                &form,
                basic,
                self.allow_loopback(),
            )
            .await
            .map_err(FederationError::Upstream)?;
        let id_token = match (status, answer.get("id_token").and_then(Value::as_str)) {
            (200, Some(t)) => t.to_string(),
            _ => {
                let error = answer.get("error").and_then(Value::as_str).unwrap_or("");
                return Err(refused(
                    PROVIDER_SAID_NO,
                    format!("the token endpoint answered {status} {error:?} without an ID token"),
                ));
            }
        };
        let kid = crate::client_auth::assertion::header_kid(&id_token);
        let keys = self.provider_keys(p, &meta, kid.as_deref()).await?;
        let nonce = self.derived(NONCE_PURPOSE, state)?;
        let expected = Expected {
            issuer: &meta.issuer,
            client_id: &p.client_id,
            nonce: &nonce,
        };
        let claims = verify_id_token(&id_token, &keys, &expected, self.now())
            .map_err(|e| refused(PROVIDER_SAID_NO, e))?;
        // The sign-in time the provider reports, checked against what the
        // request asked; it becomes the session's (and the ID tokens')
        // auth_time, never later than now.
        let now = self.now();
        let auth_time = claims.get("auth_time").and_then(Value::as_i64);
        let (login_asked, max_age) = freshness(&login.request);
        let started = login.expires_at - FEDERATED_LOGIN_LIFETIME_SECS;
        let leeway = super::federation::LEEWAY_SECS;
        if (login_asked || max_age.is_some()) && auth_time.is_none() {
            return Err(refused(
                PROVIDER_SAID_NO,
                "a fresh sign-in was asked and the ID token has no auth_time",
            ));
        }
        if login_asked && auth_time.is_some_and(|t| t < started - leeway) {
            return Err(refused(
                PROVIDER_SAID_NO,
                "prompt=login, but the provider's sign-in is older than the request",
            ));
        }
        if let (Some(m), Some(t)) = (max_age, auth_time)
            && now - t > m + leeway
        {
            return Err(refused(
                PROVIDER_SAID_NO,
                "the provider's sign-in is older than max_age",
            ));
        }
        let auth_time = auth_time.map_or(now, |t| t.min(now));
        let person = identity(&claims, &p.rules).map_err(|e| {
            refused(
                "Your account at the identity provider may not sign in here. Ask your administrator.",
                e,
            )
        })?;
        let user = self.linked_account(p, &person).await?;
        Ok((user, login.request, auth_time))
    }

    /// The account linked to `person` at `p`, refreshed with what the
    /// provider says now; made on a first sign-in unless accounts must
    /// exist beforehand.
    async fn linked_account(
        &self,
        p: &ProviderSettings,
        person: &FederatedIdentity,
    ) -> Result<User, FederationError> {
        let now = self.now();
        let link = |user_id: &str| LinkedIdentity {
            provider: p.id.clone(),
            subject: person.subject.clone(),
            user_id: user_id.to_string(),
            email: person.email.clone(),
            email_verified: person.email_verified,
            linked_at: now,
            last_sign_in_at: Some(now),
        };
        if let Some((mut user, _)) = self.store.find_linked_user(&p.id, &person.subject).await? {
            self.store
                .refresh_linked_identity(&link(&user.id), &person.groups)
                .await?;
            user.groups = person.groups.clone();
            return Ok(user);
        }
        if self.settings.people.provision == Provision::Preexisting {
            return Err(refused(
                "There is no account here for you yet. Ask your administrator to add one.",
                format!(
                    "no account is linked to {}:{} (provision = \"preexisting\")",
                    p.id, person.subject
                ),
            ));
        }
        for attempt in 0..5 {
            let user = User {
                id: new_user_id(),
                name: account_name(p, person, attempt),
                // Never a password: no PHC string verifies against this.
                password_hash: NO_PASSWORD.to_string(),
                groups: person.groups.clone(),
                created_at: now,
                credentials_gen: 0,
            };
            match self.store.create_linked_user(&user, &link(&user.id)).await {
                Ok(true) => {
                    tracing::info!(sub = %user.id, provider = %p.id, "account created at a first federated sign-in");
                    return Ok(user);
                }
                // A concurrent first sign-in linked it: that account.
                Ok(false) => {
                    if let Some((user, _)) =
                        self.store.find_linked_user(&p.id, &person.subject).await?
                    {
                        return Ok(user);
                    }
                }
                // The name is taken: try the next one.
                Err(crate::error::StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(refused(
            PROVIDER_SAID_NO,
            "no free account name for this identity",
        ))
    }
}

/// The password hash of accounts that sign in elsewhere: not a PHC string,
/// so no password ever verifies against it.
pub const NO_PASSWORD: &str = "!federated";

/// A sign-in name for a new account: the provider's hint (username or
/// email) when it is a valid name, else `<provider>-<subject>`, made
/// distinct on later attempts.
fn account_name(p: &ProviderSettings, person: &FederatedIdentity, attempt: u32) -> String {
    let base = person
        .name_hint
        .as_deref()
        .map(str::to_ascii_lowercase)
        .filter(|n| validate_user_name(n).is_ok())
        .unwrap_or_else(|| {
            let sub: String = person
                .subject
                .to_ascii_lowercase()
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || "._-".contains(*c))
                .take(24)
                .collect();
            format!("{}-{sub}", p.id)
        });
    // The suffix is kept whole: the base is cut to make room for it. The
    // last attempt is this identity's own (a hash of provider and subject),
    // so names taken on purpose cannot lock a person out.
    let suffix = match attempt {
        0 => String::new(),
        1 => format!("-{}", p.id),
        2 | 3 => format!("-{attempt}"),
        _ => format!(
            "-{}",
            lookup_hash(&format!("{}\0{}", p.id, person.subject))
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .take(12)
                .collect::<String>()
                .to_ascii_lowercase()
        ),
    };
    let room = 64 - suffix.len();
    let cut: String = base.chars().take(room).collect();
    format!("{cut}{suffix}")
}

/// Most keys read from a provider's JWKS.
const MAX_PROVIDER_KEYS: usize = 32;

/// The keys of a provider's JWKS that can verify an ID token. Providers
/// publish more than signing keys (Keycloak an `enc` RSA-OAEP key, others
/// algorithms Gatehouse does not verify): those are skipped one by one,
/// where a client's registered set would be refused whole.
fn signing_keys(doc: &Value) -> Result<Vec<PublicJwk>, String> {
    let keys = doc
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("no keys array")?;
    let usable: Vec<PublicJwk> = keys
        .iter()
        .filter(|k| {
            k.get("use")
                .and_then(Value::as_str)
                .is_none_or(|u| u == "sig")
        })
        .take(MAX_PROVIDER_KEYS)
        .filter_map(|k| parse_jwks(&serde_json::json!({ "keys": [k] })).ok())
        .flatten()
        .collect();
    if usable.is_empty() {
        return Err("no key that can verify an ID token".into());
    }
    Ok(usable)
}

/// Whether the authorization request `raw` asks for a fresh sign-in
/// (`prompt=login`) and its `max_age`.
fn freshness(raw: &str) -> (bool, Option<i64>) {
    let Ok(params) = crate::people::forms::AuthorizationParams::parse(raw.as_bytes()) else {
        return (false, None);
    };
    let login = params
        .param("prompt")
        .is_some_and(|p| p.split(' ').any(|v| v == "login"));
    let max_age = params.param("max_age").and_then(|m| m.parse::<i64>().ok());
    (login, max_age.filter(|m| *m >= 0))
}
