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
use gatehouse_oauth::resource::validate_resource;
use serde_json::{Map, Value};

#[derive(Subcommand)]
pub enum ClientCommand {
    /// Register a client; prints its id and secret (shown this once).
    Create {
        #[command(flatten)]
        common: Common,
        /// Display name.
        #[arg(long)]
        name: String,
        /// Grant type (repeatable), e.g. client_credentials.
        #[arg(long = "grant", required = true)]
        grants: Vec<String>,
        /// Space-separated scopes the client may request.
        #[arg(long)]
        scope: Option<String>,
        /// Restrict the client to these audiences (repeatable).
        #[arg(long = "audience", value_name = "URL")]
        audiences: Vec<String>,
        /// client_secret_basic (default), client_secret_post or
        /// private_key_jwt (needs --jwks or --jwks-uri).
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
            let config = load_config(&common, Default::default())?;
            setup::check_store_config(&config)?;
            let store = setup::open_store(&config).await?;
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
                // The operator may name any scope when none are configured.
                (!config.scopes_supported.is_empty()).then_some(config.scopes_supported.as_slice()),
                config.client_auth.allow_http_loopback_jwks_uri,
            );
            let audiences = (!audiences.is_empty()).then_some(audiences);
            let metadata = classify(&request, &caps, audiences).map_err(|e| e.detail())?;
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
    name: String,
    grants: Vec<String>,
    scope: Option<String>,
    redirect_uris: Vec<String>,
    auth_method: Option<String>,
    jwks: Option<Value>,
    jwks_uri: Option<String>,
) -> Map<String, Value> {
    let mut request = Map::new();
    request.insert("client_name".into(), name.into());
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
    setup::check_store_config(&config)?;
    let store = setup::open_store(&config).await?;
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
