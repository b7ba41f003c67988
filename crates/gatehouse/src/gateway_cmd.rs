//! `gatehouse gateway`: fronts one MCP server as its OAuth resource server.

use clap::Args;
use gatehouse_gateway::{GatewayConfig, Reloader, ServerConfig};
use std::path::PathBuf;

#[derive(Args)]
pub struct GatewayArgs {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8090")]
    listen: String,
    /// The MCP server to forward to.
    #[arg(long, value_name = "URL")]
    upstream: String,
    /// The exact public URL clients use for this MCP server (the tokens' `aud`).
    #[arg(long, value_name = "URL")]
    resource: String,
    /// The authorization server whose tokens are accepted.
    #[arg(long, value_name = "URL")]
    issuer: String,
    /// Cedar policy file.
    #[arg(long, value_name = "FILE")]
    policies: PathBuf,
    /// Cedar schema (default: the schema shipped with Gatehouse).
    #[arg(long, value_name = "FILE")]
    schema: Option<PathBuf>,
    /// Scope every token must carry (repeatable).
    #[arg(long = "required-scope", value_name = "SCOPE")]
    required_scopes: Vec<String>,
    /// The McpServer entity's id in policies (default: the resource's path).
    #[arg(long, value_name = "NAME")]
    server_name: Option<String>,
    /// Accept `typ: JWT` tokens as well as `at+jwt`.
    #[arg(long)]
    accept_plain_jwt: bool,
    /// Browser origin allowed to call (repeatable; default any, `*`).
    #[arg(long = "allowed-origin", value_name = "ORIGIN")]
    allowed_origins: Vec<String>,
}

pub async fn run(args: GatewayArgs) -> Result<(), String> {
    let resource_url = url::Url::parse(&args.resource)
        .map_err(|e| format!("--resource {:?}: {e}", args.resource))?;
    let name = args
        .server_name
        .unwrap_or_else(|| resource_url.path().to_string());
    let config = GatewayConfig {
        issuer: args.issuer.clone(),
        servers: vec![ServerConfig {
            resource: args.resource.clone(),
            upstream: args.upstream.clone(),
            required_scopes: args.required_scopes,
            name,
            policy_file: args.policies.clone(),
            schema_file: args.schema.clone(),
        }],
        algorithms: vec![
            jsonwebtoken::Algorithm::ES256,
            jsonwebtoken::Algorithm::RS256,
            jsonwebtoken::Algorithm::EdDSA,
        ],
        leeway: 30,
        accept_plain_jwt: args.accept_plain_jwt,
        allowed_origins: if args.allowed_origins.is_empty() {
            vec!["*".to_string()]
        } else {
            args.allowed_origins
        },
    };
    let (app, reloader) = gatehouse_gateway::router(config)?;
    spawn_reload_on_sighup(reloader);
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let bound = listener
        .local_addr()
        .map_err(|e| format!("cannot read the bound address: {e}"))?;
    tracing::info!(
        listen = %bound,
        resource = %args.resource,
        upstream = %args.upstream,
        issuer = %args.issuer,
        "gateway started"
    );
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(crate::shutdown_signal())
        .await
        .map_err(|e| format!("gateway error: {e}"))
}

/// Policies reload on SIGHUP without dropping requests; a bad set is logged
/// and the previous one stays.
fn spawn_reload_on_sighup(reloader: Reloader) {
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP; policies will not reload");
            return;
        };
        while hup.recv().await.is_some() {
            let _ = reloader.reload();
        }
    });
    #[cfg(not(unix))]
    let _ = reloader;
}
