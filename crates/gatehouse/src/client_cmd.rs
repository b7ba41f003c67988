//! `gatehouse client …`: pre-registration and management of clients from the
//! command line. Works beside a running server: it writes the same store, and
//! the server follows the change sequence.

use crate::output::{Format, print};
use crate::{Common, load_config, open_store_for, setup};
use clap::Subcommand;
use gatehouse_oauth::client::{AuthMethod, ClientOrigin, new_client_id, validate_chosen_client_id};
use gatehouse_oauth::client_auth::jwks::validate_client_jwks;
use gatehouse_oauth::clock::{SystemClock, system_now};
use gatehouse_oauth::keys::Alg;
use gatehouse_oauth::limits::MAX_CLIENT_JWKS_BYTES;
use gatehouse_oauth::registration::classify::classify;
use gatehouse_oauth::registration::create::{NewClient, create_client};
use gatehouse_oauth::registration::secret_rotation::rotate_secret;
use gatehouse_oauth::registry::Registry;
use gatehouse_oauth::resource::{same_resource, validate_resource};
use gatehouse_oauth::scope::with_people_scopes;
use serde_json::{Map, Value};

#[derive(Subcommand)]
pub enum ClientCommand {
    /// Register a client; prints its id and secret (shown this once).
    Create {
        #[command(flatten)]
        common: Common,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
        /// Grant type (repeatable), e.g. client_credentials. Required unless
        /// the client is only a resource server (--resource-server).
        #[arg(long = "grant", required_unless_present = "resource_servers")]
        grants: Vec<String>,
        /// Space-separated scopes the client may request.
        #[arg(long)]
        scope: Option<String>,
        /// Restrict the tokens the client may obtain to these audiences
        /// (repeatable).
        #[arg(long = "audience", value_name = "URL")]
        audiences: Vec<String>,
        /// A resource (MCP server URL) this client serves: it may introspect
        /// tokens meant for it (repeatable). Without --grant the client can
        /// only introspect, never obtain tokens.
        #[arg(long = "resource-server", value_name = "URL")]
        resource_servers: Vec<String>,
        /// client_secret_basic, client_secret_post, private_key_jwt (needs
        /// --jwks or --jwks-uri) or none. Default: client_secret_basic; none
        /// (a public client, protected by PKCE alone) when every grant works
        /// without a credential (authorization_code, refresh_token).
        #[arg(long)]
        auth_method: Option<String>,
        /// A JWKS file (public keys only) the client signs its
        /// private_key_jwt assertions with.
        #[arg(long, value_name = "FILE")]
        jwks: Option<std::path::PathBuf>,
        /// An https URL where the client publishes its JWKS (fetched and
        /// cached by the server); instead of --jwks.
        #[arg(long, value_name = "URL")]
        jwks_uri: Option<String>,
        /// A redirect URI for the authorization_code grant (repeatable).
        #[arg(long = "redirect-uri", value_name = "URI")]
        redirect_uris: Vec<String>,
        /// Choose the client id ([a-z0-9._-]{1,64}); generated when omitted.
        #[arg(long)]
        id: Option<String>,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// List clients (never secret material).
    List {
        #[command(flatten)]
        common: Common,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Show one client.
    Show {
        #[command(flatten)]
        common: Common,
        id: String,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Add a new secret (printed once); the previous ones keep working until
    /// the grace period ends, then are refused. At most 4 secrets may be live
    /// at once: a rotation beyond that is refused.
    RotateSecret {
        #[command(flatten)]
        common: Common,
        id: String,
        /// How long the previous secrets keep working (e.g. "24h", "30m", "0s").
        #[arg(long, default_value = "24h", value_parser = parse_grace)]
        grace: std::time::Duration,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Make a key pair for private_key_jwt: the private key (PKCS#8 PEM,
    /// 0600) and its public JWKS, for `client create --auth-method
    /// private_key_jwt --jwks FILE`. Touches no store.
    Keygen {
        /// ES256, RS256 or EdDSA.
        #[arg(long, default_value = "ES256", value_parser = parse_alg)]
        alg: Alg,
        /// Where to write the private key (never overwritten).
        #[arg(long, value_name = "FILE")]
        key: std::path::PathBuf,
        /// Where to write the public JWKS (never overwritten).
        #[arg(long, value_name = "FILE")]
        jwks: std::path::PathBuf,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Print a private_key_jwt client assertion (RFC 7523 §2.2) signed with
    /// a key from `client keygen`, valid for one minute, for the token,
    /// revocation or introspection endpoint (`client_assertion`).
    Assertion {
        /// The algorithm the key was made for.
        #[arg(long, default_value = "ES256", value_parser = parse_alg)]
        alg: Alg,
        /// The private key file.
        #[arg(long, value_name = "FILE")]
        key: std::path::PathBuf,
        /// The client the assertion speaks for (its `iss` and `sub`).
        #[arg(long)]
        client_id: String,
        /// The assertion's `aud`: the issuer, or the endpoint's URL.
        #[arg(long, value_name = "URL")]
        audience: String,
    },
    /// Delete a client; running servers refuse it within seconds.
    Delete {
        #[command(flatten)]
        common: Common,
        id: String,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

pub async fn run(command: ClientCommand) -> Result<(), String> {
    match command {
        ClientCommand::Create {
            common,
            name,
            grants,
            scope,
            audiences,
            resource_servers,
            auth_method,
            jwks,
            jwks_uri,
            redirect_uris,
            id,
            format,
        } => {
            let jwks = read_jwks(auth_method.as_deref(), jwks.as_deref(), jwks_uri.is_some())?;
            if let Some(id) = &id {
                validate_chosen_client_id(id).map_err(|e| format!("--id: {e}"))?;
            }
            for a in &audiences {
                validate_resource(a).map_err(|e| format!("--audience {a:?}: {e}"))?;
            }
            for r in &resource_servers {
                validate_resource(r).map_err(|e| format!("--resource-server {r:?}: {e}"))?;
            }
            let config = load_config(&common, Default::default())?;
            warn_unknown_audiences(&config.allowed_audiences, &audiences, &resource_servers);
            // A resource server alone obtains no tokens: the classifier
            // checks its credential as a client_credentials client's, then
            // its grants are dropped.
            let introspect_only = grants.is_empty();
            let grants = if introspect_only {
                vec!["client_credentials".to_string()]
            } else {
                grants
            };
            let store = setup::open_admin_store(&config, common.init).await?;
            // Only the secret-hashing key is needed; signing keys are the
            // server's business and are never created from here.
            let secrets = setup::secret_verifier(&config, store.as_ref()).await?;
            let request = registration_request(
                name,
                grants,
                scope,
                redirect_uris,
                auth_method,
                jwks,
                jwks_uri,
            );
            // The same registry the server builds; the command line's
            // configuration need not be the server's (`[people]` is often set
            // only where the server runs), so it offers every grant.
            let signing_alg = config.signing_alg.parse::<Alg>().unwrap_or(Alg::RS256);
            let registry = Registry::everything(signing_alg);
            let caps = registry.capabilities(
                // The operator may name any scope when none are configured;
                // otherwise the server's, the OIDC scopes included, as for
                // the grants above (Settings::scope_supported).
                (!config.scopes_supported.is_empty())
                    .then(|| with_people_scopes(&config.scopes_supported, true)),
                config.client_auth.allow_http_loopback_jwks_uri || config.outbound.allow_loopback,
            );
            let audiences = (!audiences.is_empty()).then_some(audiences);
            let mut metadata = classify(&request, &caps, audiences).map_err(|e| e.detail())?;
            if introspect_only {
                metadata.grant_types.clear();
            }
            metadata.resource_servers = (!resource_servers.is_empty()).then_some(resource_servers);
            if metadata.token_endpoint_auth_method == AuthMethod::None {
                eprintln!(
                    "gatehouse: a public client (token_endpoint_auth_method none, protected by PKCE \
                     alone); pass --auth-method client_secret_basic for a confidential one"
                );
            }
            let id = id.unwrap_or_else(new_client_id);
            let lifetime = setup::secret_lifetime(&config)?;
            let new = NewClient {
                id,
                origin: ClientOrigin::Cli,
                metadata,
                secret_lifetime: lifetime,
            };
            let created = create_client(store.as_ref(), &secrets, new, None, system_now())
                .await
                .map_err(|e| e.detail())?;
            print(&created.response(), format)
        }
        ClientCommand::List { common, format } => {
            let store = open_store_for(&common).await?;
            let clients = store.list_clients().await.map_err(|e| e.to_string())?;
            let views: Vec<Value> = clients.iter().map(view).collect();
            print(&Value::Array(views), format)
        }
        ClientCommand::Show { common, id, format } => {
            let store = open_store_for(&common).await?;
            match store.get_client(&id).await.map_err(|e| e.to_string())? {
                Some(c) => print(&view(&c), format),
                None => Err(format!("no client with id {id:?}")),
            }
        }
        ClientCommand::RotateSecret {
            common,
            id,
            grace,
            format,
        } => rotate(&common, &id, grace, format).await,
        ClientCommand::Keygen {
            alg,
            key,
            jwks,
            format,
        } => crate::keygen_cmd::keygen(alg, &key, &jwks, format),
        ClientCommand::Assertion {
            alg,
            key,
            client_id,
            audience,
        } => crate::keygen_cmd::assertion(alg, &key, &client_id, &audience),
        ClientCommand::Delete { common, id, format } => {
            let store = open_store_for(&common).await?;
            if store.delete_client(&id).await.map_err(|e| e.to_string())? {
                print(&serde_json::json!({ "deleted": id }), format)
            } else {
                Err(format!("no client with id {id:?}"))
            }
        }
    }
}

/// The flags of `client create` as the registration request the classifier
/// reads (RFC 7591 §2 member names), so the command line is checked like
/// dynamic registration.
fn registration_request(
    name: Option<String>,
    grants: Vec<String>,
    scope: Option<String>,
    redirect_uris: Vec<String>,
    auth_method: Option<String>,
    jwks: Option<Value>,
    jwks_uri: Option<String>,
) -> Map<String, Value> {
    let mut request = Map::new();
    if let Some(name) = name {
        request.insert("client_name".into(), name.into());
    }
    request.insert("grant_types".into(), grants.into());
    if let Some(s) = scope {
        request.insert("scope".into(), s.into());
    }
    if !redirect_uris.is_empty() {
        request.insert("redirect_uris".into(), redirect_uris.into());
        request.insert("response_types".into(), vec!["code"].into());
    }
    if let Some(m) = auth_method {
        request.insert("token_endpoint_auth_method".into(), m.into());
    }
    // The classifier checks the keys (or the URL's rules) like dynamic
    // registration's.
    if let Some(j) = jwks {
        request.insert("jwks".into(), j);
    }
    if let Some(u) = jwks_uri {
        request.insert("jwks_uri".into(), u.into());
    }
    request
}

fn parse_alg(s: &str) -> Result<Alg, String> {
    s.parse()
}

/// Says on stderr when the client names a resource this configuration does
/// not allow: the server refuses tokens for it (a server started with
/// `--audience` flags has audiences this configuration cannot see, hence a
/// warning, not a refusal).
fn warn_unknown_audiences(allowed: &[String], audiences: &[String], resource_servers: &[String]) {
    for (flag, url) in audiences
        .iter()
        .map(|a| ("--audience", a))
        .chain(resource_servers.iter().map(|r| ("--resource-server", r)))
    {
        if !allowed.iter().any(|a| same_resource(a, url)) {
            let known = if allowed.is_empty() {
                "none are configured here".to_string()
            } else {
                allowed.join(", ")
            };
            eprintln!(
                "gatehouse: warning: {flag} {url} is not among the allowed audiences ({known}); \
                 the server must allow it (allowed_audiences or serve --audience)"
            );
        }
    }
}

/// `client rotate-secret`: a new secret; the old one keeps working for
/// `grace`.
async fn rotate(
    common: &Common,
    id: &str,
    grace: std::time::Duration,
    format: Format,
) -> Result<(), String> {
    let config = load_config(common, Default::default())?;
    let lifetime = setup::secret_lifetime(&config)?;
    let store = setup::open_admin_store(&config, common.init).await?;
    let secrets = setup::secret_verifier(&config, store.as_ref()).await?;
    let rotated = rotate_secret(store.as_ref(), &secrets, id, grace, lifetime, &SystemClock)
        .await
        .map_err(|e| e.detail())?;
    print(&rotated.response(), format)
}

/// `--grace`: a human duration ("24h", "90s").
fn parse_grace(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("invalid duration {s:?}: {e}"))
}

/// Reads and validates `--jwks`: private_key_jwt needs exactly one of
/// `--jwks` and `--jwks-uri` (RFC 7591 §2 forbids both); any other method
/// takes neither (the keys would never be used).
fn read_jwks(
    auth_method: Option<&str>,
    path: Option<&std::path::Path>,
    has_uri: bool,
) -> Result<Option<Value>, String> {
    let pkjwt = auth_method == Some(AuthMethod::PrivateKeyJwt.as_str());
    match (pkjwt, path, has_uri) {
        (false, None, false) => Ok(None),
        (false, _, _) => {
            Err("--jwks and --jwks-uri are only for --auth-method private_key_jwt".into())
        }
        (true, None, false) => {
            Err("--auth-method private_key_jwt needs --jwks FILE or --jwks-uri URL".into())
        }
        (true, Some(_), true) => Err("give either --jwks or --jwks-uri, not both".into()),
        (true, None, true) => Ok(None),
        (true, Some(p), false) => {
            // Read at most one byte past the cap, so a huge file is refused
            // without being loaded.
            use std::io::Read;
            let file =
                std::fs::File::open(p).map_err(|e| format!("--jwks {}: {e}", p.display()))?;
            let mut raw = Vec::new();
            file.take(MAX_CLIENT_JWKS_BYTES as u64 + 1)
                .read_to_end(&mut raw)
                .map_err(|e| format!("--jwks {}: {e}", p.display()))?;
            validate_client_jwks(&raw)
                .map(Some)
                .map_err(|e| format!("--jwks {}: {e}", p.display()))
        }
    }
}

/// A client as listed: registration metadata plus origin and how many live
/// secrets it has — never a hash.
fn view(c: &gatehouse_oauth::client::Client) -> Value {
    let mut v = c.registration_view();
    if let Value::Object(m) = &mut v {
        m.insert("origin".into(), c.origin.as_str().into());
        m.insert("secrets".into(), c.secrets.len().into());
    }
    v
}
