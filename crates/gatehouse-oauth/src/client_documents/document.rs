//! A fetched metadata document turned into a client: the registration
//! classifier's rules (`registration/classify.rs`), the document's own rules
//! (its `client_id` is its URL; no secrets, since nothing could hold one) and
//! the operator's trust policy.

use super::{any_matches, document_host};
use crate::client::{AuthMethod, Client, ClientOrigin};
use crate::grants::{authorization_code, client_credentials};
use crate::registration::classify::{Capabilities, classify};
use crate::settings::{ClientMetadataSettings, DocumentMode, MachineRule};
use serde_json::{Map, Value};
use url::Url;

/// Largest document read (draft-ietf-oauth-client-id-metadata-document
/// suggests servers bound it; 5 KiB holds a generous registration).
pub const MAX_DOCUMENT_BYTES: usize = 5 * 1024;

/// Members that would carry a shared secret: a document is public, so none
/// of them can ever be honoured.
const SECRET_MEMBERS: &[&str] = &["client_secret", "client_secret_expires_at"];

/// Whether the trust policy lets `url`'s host be a client at all, before
/// anything is fetched: not blocked, and in allowlist mode a trusted host
/// or a machine rule's host. `Err` is the reason, for the page and the log.
pub fn host_admitted(url: &Url, settings: &ClientMetadataSettings) -> Result<(), String> {
    let host = document_host(url);
    if settings.mode == DocumentMode::Off {
        return Err("this server does not accept client metadata documents".into());
    }
    if any_matches(&settings.blocked_hosts, &host) {
        return Err(format!("clients from {host} are blocked here"));
    }
    let ruled = settings.machine_rules.iter().any(|r| r.host.matches(&host));
    if settings.mode == DocumentMode::Allowlist
        && !any_matches(&settings.trusted_hosts, &host)
        && !ruled
    {
        return Err(format!("{host} is not among the hosts this server trusts"));
    }
    Ok(())
}

/// The rule for a machine whose document is on `host`.
fn machine_rule<'a>(settings: &'a ClientMetadataSettings, host: &str) -> Option<&'a MachineRule> {
    settings.machine_rules.iter().find(|r| r.host.matches(host))
}

/// A revision for a document: changes whenever its bytes do (the consent
/// page's MAC binds it, so an Allow over a changed document is refused).
fn revision(body: &[u8]) -> i64 {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, body);
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_ref()[..8]);
    i64::from_be_bytes(first) & i64::MAX
}

/// Classifies the document fetched from `url` (already admitted by
/// [`host_admitted`]). `Err` is the reason, precise enough for the client's
/// developer; nothing is stored either way.
pub fn client_from_document(
    url: &Url,
    body: &[u8],
    caps: &Capabilities<'_>,
    settings: &ClientMetadataSettings,
    now: i64,
) -> Result<Client, String> {
    let doc: Map<String, Value> = match serde_json::from_slice(body) {
        Ok(Value::Object(m)) => m,
        Ok(_) => return Err("the document is not a JSON object".into()),
        Err(e) => return Err(format!("the document is not JSON: {e}")),
    };
    match doc.get("client_id") {
        Some(Value::String(id)) if id == url.as_str() => {}
        Some(Value::String(id)) => {
            return Err(format!(
                "the document's client_id {id:?} is not its URL {:?}",
                url.as_str()
            ));
        }
        _ => return Err("the document has no client_id (it must be its own URL)".into()),
    }
    if let Some(m) = SECRET_MEMBERS.iter().find(|m| doc.contains_key(**m)) {
        return Err(format!(
            "the document carries {m}: a published document cannot hold a secret"
        ));
    }
    match doc
        .get("token_endpoint_auth_method")
        .and_then(Value::as_str)
    {
        None | Some("none") | Some("private_key_jwt") => {}
        Some(other) => {
            return Err(format!(
                "token_endpoint_auth_method {other:?} cannot be used by a metadata document client: use \"none\" or \"private_key_jwt\""
            ));
        }
    }
    let mut metadata = classify(&doc, caps, None).map_err(|e| e.description)?;
    let method = metadata.token_endpoint_auth_method;
    if !matches!(method, AuthMethod::None | AuthMethod::PrivateKeyJwt) {
        // A credential-bearing grant defaults to a secret method (RFC 7591 §2).
        return Err(
            "a metadata document client with the client_credentials grant needs token_endpoint_auth_method \"private_key_jwt\" and its keys"
                .into(),
        );
    }
    let host = document_host(url);
    // Keys are fetched from where the document is, so a document cannot
    // point the server's key fetches at somebody else's host.
    if let Some(jwks_uri) = &metadata.jwks_uri
        && Url::parse(jwks_uri).ok().is_none_or(|k| {
            k.host_str() != url.host_str()
                || k.port_or_known_default() != url.port_or_known_default()
        })
    {
        return Err(format!(
            "jwks_uri {jwks_uri:?} must be on the document's own host ({host})"
        ));
    }
    let redirects = metadata
        .grant_types
        .iter()
        .any(|g| g == authorization_code::GRANT_TYPE);
    if redirects {
        if metadata.client_name.is_none() {
            return Err("a document for the authorization code grant needs a client_name".into());
        }
        if settings.mode == DocumentMode::Allowlist && !any_matches(&settings.trusted_hosts, &host)
        {
            return Err(format!(
                "{host} is not among the hosts this server trusts for signing people in"
            ));
        }
    }
    if metadata.allows_grant(client_credentials::GRANT_TYPE) {
        match machine_rule(settings, &host) {
            Some(rule) => {
                if !rule.audiences.is_empty() {
                    metadata.audiences = Some(rule.audiences.clone());
                }
                if !rule.scopes.is_empty() {
                    match &metadata.scopes {
                        Some(asked) => {
                            if let Some(bad) = asked.iter().find(|s| !rule.scopes.contains(s)) {
                                return Err(format!(
                                    "scope {bad:?} is not allowed to machines from {host}"
                                ));
                            }
                        }
                        None => metadata.scopes = Some(rule.scopes.clone()),
                    }
                }
            }
            // A person-facing client may also list the grant; it is
            // dropped, like any grant this server will not give it.
            None if redirects => metadata
                .grant_types
                .retain(|g| g != client_credentials::GRANT_TYPE),
            None => {
                return Err(format!(
                    "no [[client_metadata.machine_rules]] rule allows machines from {host}"
                ));
            }
        }
    }
    Ok(Client {
        id: url.as_str().to_string(),
        origin: ClientOrigin::Document,
        metadata,
        secrets: Vec::new(),
        created_at: now,
        registration_token: None,
        revision: revision(body),
    })
}

trait AllowsGrant {
    fn allows_grant(&self, g: &str) -> bool;
}

impl AllowsGrant for crate::client::ClientMetadata {
    fn allows_grant(&self, g: &str) -> bool {
        self.grant_types.iter().any(|x| x == g)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client_documents::HostPattern;
    use crate::keys::Alg;
    use crate::registry::Registry;
    use serde_json::json;

    const URL: &str = "https://app.example.com/oauth/client.json";

    fn classify_doc(doc: Value, settings: &ClientMetadataSettings) -> Result<Client, String> {
        let registry = Registry::new(true, Alg::ES256);
        let caps = registry.capabilities(None, false);
        let url = Url::parse(URL).unwrap();
        client_from_document(&url, doc.to_string().as_bytes(), &caps, settings, 1_000)
    }

    fn person_doc() -> Value {
        json!({
            "client_id": URL,
            "client_name": "Example MCP client",
            "redirect_uris": ["http://127.0.0.1/callback"],
            "grant_types": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_method": "none",
        })
    }

    fn machine_doc() -> Value {
        json!({
            "client_id": URL,
            "grant_types": ["client_credentials"],
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks_uri": "https://app.example.com/jwks.json",
        })
    }

    fn rule(host: &str) -> MachineRule {
        MachineRule {
            host: HostPattern::parse(host).unwrap(),
            audiences: vec!["https://mcp.example.com/mcp".into()],
            scopes: vec!["tools:call".into()],
        }
    }

    #[test]
    fn a_person_facing_document_is_a_public_client() {
        let c = classify_doc(person_doc(), &Default::default()).unwrap();
        assert_eq!(c.id, URL);
        assert_eq!(c.origin, ClientOrigin::Document);
        assert_eq!(c.metadata.token_endpoint_auth_method, AuthMethod::None);
        assert_eq!(c.metadata.response_types, ["code"]);
        assert!(c.secrets.is_empty());
        // The revision follows the bytes.
        let mut changed = person_doc();
        changed["client_name"] = "Renamed".into();
        let d = classify_doc(changed, &Default::default()).unwrap();
        assert_ne!(c.revision, d.revision);
    }

    #[test]
    fn documents_that_cannot_be_clients_are_refused_with_the_reason() {
        let s = ClientMetadataSettings::default();
        let with = |k: &str, v: Value| {
            let mut d = person_doc();
            d[k] = v;
            d
        };
        let without = |k: &str| {
            let mut d = person_doc();
            d.as_object_mut().unwrap().remove(k);
            d
        };
        for (doc, why) in [
            (
                with("client_id", "https://other.example/c".into()),
                "is not its URL",
            ),
            (without("client_id"), "no client_id"),
            (with("client_secret", "s3cret".into()), "client_secret"),
            (
                with("client_secret_expires_at", 0.into()),
                "client_secret_expires_at",
            ),
            (
                with("token_endpoint_auth_method", "client_secret_basic".into()),
                "client_secret_basic",
            ),
            (
                with("token_endpoint_auth_method", "client_secret_post".into()),
                "client_secret_post",
            ),
            (without("client_name"), "client_name"),
            (without("redirect_uris"), "redirect_uris"),
            (
                with("redirect_uris", json!(["https://x.example/cb#f"])),
                "fragment",
            ),
            (with("grant_types", json!(["implicit"])), "implicit"),
            (
                {
                    let mut d = with("token_endpoint_auth_method", "private_key_jwt".into());
                    d["jwks_uri"] = "https://keys.elsewhere.example/jwks".into();
                    d
                },
                "document's own host",
            ),
            (json!([1, 2]), "not a JSON object"),
        ] {
            let e = classify_doc(doc, &s).expect_err(why);
            assert!(e.contains(why), "{why}: {e}");
        }
        let registry = Registry::new(true, Alg::ES256);
        let caps = registry.capabilities(None, false);
        let e = client_from_document(&Url::parse(URL).unwrap(), b"{not json", &caps, &s, 0)
            .unwrap_err();
        assert!(e.contains("not JSON"), "{e}");
    }

    #[test]
    fn machines_need_a_rule_for_their_host() {
        let none = ClientMetadataSettings::default();
        let e = classify_doc(machine_doc(), &none).unwrap_err();
        assert!(
            e.contains("machine_rules") && e.contains("app.example.com"),
            "{e}"
        );
        let ruled = ClientMetadataSettings {
            machine_rules: vec![rule("*.example.com")],
            ..Default::default()
        };
        let c = classify_doc(machine_doc(), &ruled).unwrap();
        assert_eq!(c.metadata.grant_types, ["client_credentials"]);
        assert_eq!(
            c.metadata.token_endpoint_auth_method,
            AuthMethod::PrivateKeyJwt
        );
        assert_eq!(
            c.metadata.audiences.as_deref(),
            Some(&["https://mcp.example.com/mcp".to_string()][..])
        );
        assert_eq!(
            c.metadata.scopes.as_deref(),
            Some(&["tools:call".to_string()][..])
        );
        // A scope outside the rule is refused, not narrowed silently.
        let mut wide = machine_doc();
        wide["scope"] = "tools:call admin".into();
        let e = classify_doc(wide, &ruled).unwrap_err();
        assert!(e.contains("admin"), "{e}");
        // Without keys, or with a secret method, a machine cannot authenticate.
        let mut secretless = machine_doc();
        secretless
            .as_object_mut()
            .unwrap()
            .remove("token_endpoint_auth_method");
        let e = classify_doc(secretless, &ruled).unwrap_err();
        assert!(e.contains("private_key_jwt"), "{e}");
        let mut keyless = machine_doc();
        keyless.as_object_mut().unwrap().remove("jwks_uri");
        let e = classify_doc(keyless, &ruled).unwrap_err();
        assert!(e.contains("jwks"), "{e}");
        // A person-facing document listing client_credentials without a
        // rule keeps only its redirect grants.
        let mut both = person_doc();
        both["grant_types"] = json!(["authorization_code", "client_credentials"]);
        both["token_endpoint_auth_method"] = "private_key_jwt".into();
        both["jwks_uri"] = "https://app.example.com/jwks.json".into();
        let c = classify_doc(both, &none).unwrap();
        assert_eq!(c.metadata.grant_types, ["authorization_code"]);
    }

    #[test]
    fn the_trust_policy_applies_before_and_after_the_fetch() {
        let url = Url::parse(URL).unwrap();
        let blocked = ClientMetadataSettings {
            blocked_hosts: vec![HostPattern::parse("*.example.com").unwrap()],
            machine_rules: vec![rule("app.example.com")],
            ..Default::default()
        };
        assert!(
            host_admitted(&url, &blocked)
                .unwrap_err()
                .contains("blocked")
        );
        let off = ClientMetadataSettings {
            mode: DocumentMode::Off,
            ..Default::default()
        };
        assert!(host_admitted(&url, &off).is_err());
        let allowlist = ClientMetadataSettings {
            mode: DocumentMode::Allowlist,
            ..Default::default()
        };
        assert!(
            host_admitted(&url, &allowlist)
                .unwrap_err()
                .contains("trusts")
        );
        // A machine rule's host is admitted, but only as a machine.
        let machines_only = ClientMetadataSettings {
            mode: DocumentMode::Allowlist,
            machine_rules: vec![rule("app.example.com")],
            ..Default::default()
        };
        assert!(host_admitted(&url, &machines_only).is_ok());
        assert!(classify_doc(machine_doc(), &machines_only).is_ok());
        let e = classify_doc(person_doc(), &machines_only).unwrap_err();
        assert!(e.contains("trusts"), "{e}");
        let trusted = ClientMetadataSettings {
            mode: DocumentMode::Allowlist,
            trusted_hosts: vec![HostPattern::parse("app.example.com").unwrap()],
            ..Default::default()
        };
        assert!(host_admitted(&url, &trusted).is_ok());
        assert!(classify_doc(person_doc(), &trusted).is_ok());
    }
}
