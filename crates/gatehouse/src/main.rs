//! `gatehouse`: the OAuth 2.1 authorization server for MCP servers.

// The doc comments on command-line arguments are their `--help` text, written
// for a terminal (`[gateway] listen`, `http://<listen>`), not for rustdoc.
#![allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)]

mod client_cmd;
mod config;
mod embedded;
mod gateway_cmd;
mod gateway_config;
mod key_cmd;
mod keygen_cmd;
mod limits;
mod outbound;
mod output;
mod setup;
mod user_cmd;

use clap::{Args, Parser, Subcommand};
use config::{Config, Overrides};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "gatehouse",
    version,
    about = "OAuth 2.1 authorization server for MCP servers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the configuration and the data live; shared by every command.
#[derive(Args, Clone, Default)]
pub struct Common {
    /// TOML configuration file.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory (SQLite store, key-encryption key).
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Store URL: postgres://… for a shared PostgreSQL (default: SQLite in
    /// the data directory). Also `store` in the file, GATEHOUSE_STORE.
    #[arg(long, global = true, value_name = "URL")]
    store: Option<String>,
    /// Admin commands: create and migrate the store if it does not exist yet
    /// (without it they refuse; `serve` and `migrate` always do).
    #[arg(long, global = true)]
    init: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Run the authorization server (and the MCP gateway next to it when the
    /// config file lists [[gateway.servers]]).
    Serve {
        #[command(flatten)]
        common: Common,
        /// Address to listen on (default 127.0.0.1:8080).
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
        /// Issuer identifier (default http://<listen> for a loopback address).
        #[arg(long, value_name = "URL")]
        issuer: Option<String>,
        /// An MCP server URL tokens may be minted for (repeatable).
        #[arg(long = "audience", value_name = "URL")]
        audiences: Vec<String>,
    },
    /// Run the MCP gateway in front of MCP servers.
    Gateway(gateway_cmd::GatewayArgs),
    /// Manage registered clients.
    Client {
        #[command(subcommand)]
        command: client_cmd::ClientCommand,
    },
    /// Manage the accounts people sign in with.
    User {
        #[command(subcommand)]
        command: user_cmd::UserCommand,
    },
    /// Bring the store's schema up to date (`serve` also does this at start).
    Migrate {
        #[command(flatten)]
        common: Common,
    },
    /// Rotate and list the signing keys.
    Key {
        #[command(subcommand)]
        command: key_cmd::KeyCommand,
    },
    /// Show the effective configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the effective configuration (defaults, file, environment) as
    /// JSON, normalised (the issuer as it would be, durations as `90d`,
    /// secrets masked); warns on stderr when `serve` would refuse it.
    Show {
        #[command(flatten)]
        common: Common,
    },
    /// Check the configuration as `serve` would before it starts (without
    /// binding or opening the store); prints what is wrong and exits non-zero.
    Check {
        #[command(flatten)]
        common: Common,
    },
}

/// Loads configuration for any command; logs warnings once logging is up.
pub fn load_config(common: &Common, overrides: Overrides) -> Result<Config, String> {
    let mut overrides = Overrides {
        data_dir: common.data_dir.clone(),
        ..overrides
    };
    if let Some(url) = &common.store {
        overrides.set.push(("store.url", url.clone().into()));
    }
    let (config, warnings) =
        config::load(common.config.as_deref(), &overrides, std::env::vars()).map_err(|e| e.0)?;
    for w in warnings {
        tracing::warn!("{w}");
    }
    Ok(config)
}

/// Opens the store an admin command works on (its configuration checked
/// first; see `setup::open_admin_store`).
pub async fn open_store_for(
    common: &Common,
) -> Result<std::sync::Arc<dyn gatehouse_oauth::store::Store>, String> {
    let config = load_config(common, Overrides::default())?;
    setup::open_admin_store(&config, common.init).await
}

fn init_logging() {
    // PostgreSQL's notices ("relation … already exists, skipping" on every
    // start's migration check) are not news: warnings and up only.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx::postgres::notice=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

async fn serve(
    common: Common,
    listen: Option<String>,
    issuer: Option<String>,
    audiences: Vec<String>,
) -> Result<(), String> {
    let mut config = load_config(
        &common,
        Overrides {
            listen,
            issuer,
            audiences,
            ..Default::default()
        },
    )?;
    // Validate before binding, so a bad value never opens a port.
    let addr: std::net::SocketAddr = config
        .listen
        .parse()
        .map_err(|e| format!("invalid configuration at `listen`: {e}"))?;
    setup::check_store_config(&config)?;
    let grace = setup::shutdown_grace(&config)?;
    let limits = limits::connection_limits(&config)?;
    let provisional = setup::issuer_for(&config, Some(addr))?;
    let gateway = embedded::prepare(&mut config, &provisional)?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let bound = listener
        .local_addr()
        .map_err(|e| format!("cannot read the bound address: {e}"))?;
    let issuer = setup::issuer_for(&config, Some(bound))?;
    let mut settings = setup::settings(&config, issuer)?;
    // The consent page names the MCP servers the gateway fronts here.
    if let Some(g) = &gateway {
        for s in &g.servers {
            settings
                .people
                .pages
                .resource_names
                .insert(s.resource.clone(), s.title.clone());
        }
    }
    let store = setup::open_store(&config).await?;
    let server = setup::build(&config, settings, store).await?;
    if server.settings.allowed_audiences.is_empty() {
        tracing::warn!(
            "no allowed audiences are configured (--audience / allowed_audiences): tokens cannot be minted"
        );
    }
    let mut app = gatehouse_server::router(server.clone());
    if let Some(gateway) = gateway {
        // The gateway's routes keep their own origin policy and CORS; the
        // authorization server's layers stay on its routes only.
        let check_revocation = config
            .gateway
            .check_revocation
            .then_some(config.gateway.revocation_cache.0);
        let session_key = embedded::session_key(&server).await?;
        app = app.merge(embedded::router(
            gateway,
            &server,
            check_revocation,
            session_key,
        )?);
    }
    gatehouse_server::spawn_upkeep(server.clone());
    let keys = server.keys.snapshot();
    tracing::info!(
        issuer = %server.settings.issuer.as_str(),
        listen = %bound,
        store = %server.store.describe(),
        kid = %keys.current.kid,
        alg = %keys.current.alg,
        "gatehouse started"
    );
    log_registration_modes(&server.settings);
    if let Some(kek) = setup::kek_in_data_dir(&config) {
        setup::warn_kek_beside_data(&kek);
    }
    let served =
        gatehouse_server::serve_until(app, listener, limits, shutdown_signal(), grace).await;
    // In-flight requests are done (or cut at the grace period): release the
    // store's connections before exiting — briefly, a dead database must not
    // hold the exit.
    if tokio::time::timeout(STORE_CLOSE_TIMEOUT, server.store.close())
        .await
        .is_err()
    {
        tracing::warn!("the store did not close its connections in time");
    }
    served.map_err(|e| format!("server error: {e}"))?;
    tracing::info!("gatehouse stopped");
    Ok(())
}

/// Says at start who may register clients at `/oauth/register`: open
/// registration is a default an operator should know about.
fn log_registration_modes(settings: &gatehouse_oauth::settings::Settings) {
    use gatehouse_oauth::settings::RegistrationMode;
    let reg = &settings.registration;
    let public = reg.public && settings.people.enabled;
    let confidential = match reg.confidential {
        RegistrationMode::Off => "off",
        RegistrationMode::InitialToken => "with an initial access token",
        RegistrationMode::Open => "open to anyone",
    };
    tracing::info!(
        public_clients = if public { "open to anyone" } else { "off" },
        confidential_clients = confidential,
        "dynamic client registration (registration.public, registration.confidential)"
    );
    if reg.confidential == RegistrationMode::Open {
        tracing::warn!(
            "anyone can register a confidential client and obtain tokens for the allowed audiences (registration.confidential = \"open\")"
        );
    }
}

/// How long a stopping server waits for the store to close its connections.
const STORE_CLOSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// `gatehouse migrate`: applies pending migrations and says which.
async fn migrate(common: Common) -> Result<(), String> {
    let config = load_config(&common, Overrides::default())?;
    let store = setup::connect_store(&config).await?;
    let applied = store.migrate().await.map_err(|e| e.to_string());
    let described = store.describe();
    store.close().await;
    output::print_json(&serde_json::json!({
        "store": described,
        "applied": applied?,
    }))
}

pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve {
                common,
                listen,
                issuer,
                audiences,
            } => serve(common, listen, issuer, audiences).await,
            Command::Client { command } => client_cmd::run(command).await,
            Command::Key { command } => key_cmd::run(command).await,
            Command::User { command } => user_cmd::run(command).await,
            Command::Gateway(args) => gateway_cmd::run(args).await,
            Command::Migrate { common } => migrate(common).await,
            Command::Config {
                command: ConfigCommand::Show { common },
            } => {
                let config = load_config(&common, Overrides::default())?;
                let mut view = config_view(&config);
                if let Ok(issuer) = setup::issuer_for(&config, None) {
                    view["issuer"] = issuer.as_str().into();
                }
                output::print_json(&view)?;
                // A viewer, not a validator (`config check` is): it says
                // what serve would refuse, and still shows everything.
                if let Err(e) = check_config(&config) {
                    eprintln!("gatehouse: warning: serve would refuse this configuration: {e}");
                }
                Ok(())
            }
            Command::Config {
                command: ConfigCommand::Check { common },
            } => {
                let config = load_config(&common, Overrides::default())?;
                check_config(&config)?;
                eprintln!("gatehouse: the configuration is valid");
                Ok(())
            }
        }
    });
    // Blocking tasks still running (a DNS lookup, say) must not hold the exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What `serve` checks before it binds, without binding or opening the
/// store: the same functions in the same order.
fn check_config(config: &Config) -> Result<(), String> {
    let addr: std::net::SocketAddr = config
        .listen
        .parse()
        .map_err(|e| format!("invalid configuration at `listen`: {e}"))?;
    setup::check_store_config(config)?;
    setup::shutdown_grace(config)?;
    limits::connection_limits(config)?;
    let issuer = setup::issuer_for(config, Some(addr))?;
    let mut config = config.clone();
    embedded::prepare(&mut config, &issuer)?;
    setup::settings(&config, issuer)?;
    Ok(())
}

/// The effective configuration with secret values masked.
fn config_view(config: &Config) -> serde_json::Value {
    let mut v = serde_json::to_value(config).unwrap_or_default();
    if let Some(tokens) = v
        .get_mut("registration")
        .and_then(|r| r.get_mut("initial_access_tokens"))
        .and_then(|t| t.as_array_mut())
    {
        for t in tokens.iter_mut() {
            *t = serde_json::Value::String("********".into());
        }
    }
    if let Some(url) = v
        .get_mut("store")
        .and_then(|s| s.get_mut("url"))
        .filter(|u| u.is_string())
    {
        *url = serde_json::Value::String(mask_url_password(url.as_str().unwrap_or_default()));
    }
    if let Some(secret) = v
        .get_mut("gateway")
        .and_then(|g| g.get_mut("introspection_client_secret"))
        .filter(|s| s.as_str().is_some_and(|s| !s.is_empty()))
    {
        *secret = serde_json::Value::String("********".into());
    }
    v
}

/// A URL with any password replaced by `********`: in the userinfo or as a
/// `password` query parameter (PostgreSQL URLs accept both).
fn mask_url_password(raw: &str) -> String {
    let Ok(mut u) = url::Url::parse(raw) else {
        return "********".into();
    };
    if u.password().is_some() {
        let _ = u.set_password(Some("********"));
    }
    if u.query_pairs().any(|(k, _)| k == "password") {
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .map(|(k, v)| {
                let v = if k == "password" {
                    "********".into()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        u.query_pairs_mut().clear().extend_pairs(pairs);
    }
    u.to_string()
}
