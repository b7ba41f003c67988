//! `gatehouse gateway`: fronts MCP servers as their OAuth resource server —
//! one described by flags, or every `[[gateway.servers]]` of the config file,
//! all on one listener.

use crate::Common;
use crate::config::Overrides;
use crate::gateway_config::{DEFAULT_LISTEN, Mode, gateway_config};
use clap::Args;
use gatehouse_gateway::Reloader;
use serde_json::{Value, json};
use std::path::PathBuf;

const AFTER_HELP: &str = "\
With --config FILE, every [[gateway.servers]] table of the file's [gateway] \
section is fronted on one listener ([gateway] listen, default 127.0.0.1:8090), \
accepting tokens from [gateway] issuer.

Flags win over the file and the environment: --listen, --issuer, \
--accept-plain-jwt and --allowed-origin replace [gateway] listen, issuer, \
accept_plain_jwt and allowed_origins, --session-key-file [gateway] \
session_key_file. --resource (with --upstream and \
--policies, optionally --schema, --required-scope and --server-name) \
describes one MCP server that replaces the file's server list: flags replace \
lists from the file.";

#[derive(Args)]
#[command(after_help = AFTER_HELP)]
pub struct GatewayArgs {
    #[command(flatten)]
    common: Common,
    /// Address to listen on (default: [gateway] listen, else 127.0.0.1:8090).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// The MCP server to forward to.
    #[arg(long, value_name = "URL", requires = "resource")]
    upstream: Option<String>,
    /// The exact public URL clients use for this MCP server (the tokens'
    /// `aud`); replaces the config file's [[gateway.servers]].
    #[arg(long, value_name = "URL", requires_all = ["upstream", "policies"])]
    resource: Option<String>,
    /// The authorization server whose tokens are accepted.
    #[arg(long, value_name = "URL")]
    issuer: Option<String>,
    /// Cedar policy file.
    #[arg(long, value_name = "FILE", requires = "resource")]
    policies: Option<PathBuf>,
    /// Cedar schema (default: the schema shipped with Gatehouse).
    #[arg(long, value_name = "FILE", requires = "resource")]
    schema: Option<PathBuf>,
    /// Scope every token must carry (repeatable).
    #[arg(long = "required-scope", value_name = "SCOPE", requires = "resource")]
    required_scopes: Vec<String>,
    /// The McpServer entity's id in policies (default: the resource's path).
    #[arg(long, value_name = "NAME", requires = "resource")]
    server_name: Option<String>,
    /// Accept `typ: JWT` tokens as well as `at+jwt`.
    #[arg(long)]
    accept_plain_jwt: bool,
    /// Browser origin allowed to call (repeatable; default any, `*`).
    #[arg(long = "allowed-origin", value_name = "ORIGIN")]
    allowed_origins: Vec<String>,
    /// File of at least 32 random bytes (mode 0600) keying session ids; give
    /// every replica behind one address the same file.
    #[arg(long, value_name = "FILE")]
    session_key_file: Option<PathBuf>,
}

impl GatewayArgs {
    /// The flags as configuration keys, applied over file and environment.
    fn overrides(&self) -> Vec<(&'static str, Value)> {
        let mut set = Vec::new();
        if let Some(v) = &self.listen {
            set.push(("gateway.listen", json!(v)));
        }
        if let Some(v) = &self.issuer {
            set.push(("gateway.issuer", json!(v)));
        }
        if self.accept_plain_jwt {
            set.push(("gateway.accept_plain_jwt", json!(true)));
        }
        if let Some(v) = &self.session_key_file {
            set.push(("gateway.session_key_file", json!(v)));
        }
        if !self.allowed_origins.is_empty() {
            set.push(("gateway.allowed_origins", json!(self.allowed_origins)));
        }
        if let Some(resource) = &self.resource {
            let mut server = json!({
                "resource": resource,
                "upstream": self.upstream,
                "policies": self.policies,
                "required_scopes": self.required_scopes,
            });
            if let Some(schema) = &self.schema {
                server["schema"] = json!(schema);
            }
            if let Some(name) = &self.server_name {
                server["name"] = json!(name);
            }
            set.push(("gateway.servers", json!([server])));
        }
        set
    }
}

pub async fn run(args: GatewayArgs) -> Result<(), String> {
    let overrides = Overrides {
        set: args.overrides(),
        ..Default::default()
    };
    let config = crate::load_config(&args.common, overrides)?;
    let mut gateway = gateway_config(&config.gateway, Mode::Standalone)?;
    gateway.upstream_response_timeout = crate::limits::upstream_response_timeout(&config)?;
    let grace = crate::setup::shutdown_grace(&config)?;
    let limits = crate::limits::connection_limits(&config)?;
    let listen = config
        .gateway
        .listen
        .clone()
        .unwrap_or_else(|| DEFAULT_LISTEN.to_string());
    // Policies load here, before binding, so a bad file never opens a port.
    let (app, reloader) = gatehouse_gateway::router(gateway.clone())?;
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let bound = listener
        .local_addr()
        .map_err(|e| format!("cannot read the bound address: {e}"))?;
    spawn_reload_on_sighup(reloader);
    if config.gateway.session_key_file.is_none() {
        tracing::warn!(
            "no gateway.session_key_file: session ids are bound with a random key of this \
             process; after a restart clients get 404 and re-initialize, and replicas cannot \
             share sessions (give them one file of 32 random bytes, mode 0600)"
        );
    }
    for s in &gateway.servers {
        tracing::info!(resource = %s.resource, upstream = %s.upstream, name = %s.name, "fronting MCP server");
    }
    tracing::info!(
        listen = %bound,
        issuer = %gateway.issuer,
        servers = gateway.servers.len(),
        "gateway started"
    );
    gatehouse_server::serve_until(app, listener, limits, crate::shutdown_signal(), grace)
        .await
        .map_err(|e| format!("gateway error: {e}"))
}

/// Policies reload on SIGHUP without dropping requests; a bad set is logged
/// and the previous one stays. The handler is registered before this returns,
/// so a SIGHUP sent once the start is logged never hits the default action
/// (which would end the process).
pub fn spawn_reload_on_sighup(reloader: Reloader) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP; policies will not reload");
            return;
        };
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                let _ = reloader.reload();
            }
        });
    }
    #[cfg(not(unix))]
    let _ = reloader;
}
