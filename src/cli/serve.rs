//! `mpreg serve`: a node with the built-ins until Ctrl-C or SIGTERM.

use clap::Args;

use super::NodeArgs;

/// Arguments of `mpreg serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Node name, unique in the cluster (env MPREG_NAME; default ROLE-xxxxxx).
    #[arg(long)]
    name: Option<String>,
    /// Role, e.g. `worker` (env MPREG_ROLE; default `node`).
    #[arg(long)]
    role: Option<String>,
    /// Resources this node offers, comma separated (env MPREG_RESOURCES).
    #[arg(long, value_delimiter = ',')]
    resources: Vec<String>,
    /// TCP port (env MPREG_PORT; default 7700; 0 picks a free one).
    #[arg(long)]
    port: Option<u16>,
    /// Address to listen on (env MPREG_BIND; default 0.0.0.0).
    #[arg(long)]
    bind: Option<std::net::IpAddr>,
    /// Run no service controller (env MPREG_SERVICES=0): this node then lists, starts and
    /// stops no service.
    #[arg(long)]
    no_services: bool,
    /// Let callers on other hosts start and stop this host's services although the cluster
    /// has no shared secret (env MPREG_ALLOW_REMOTE_SERVICES=1).
    #[arg(long)]
    allow_remote_services: bool,
    /// A services folder searched after the user's and ./services; repeatable (env
    /// MPREG_SERVICES_DIRS, comma separated).
    #[arg(long = "services-dir", value_name = "DIR")]
    services_dirs: Vec<std::path::PathBuf>,
    #[command(flatten)]
    node: NodeArgs,
}

/// Runs the node until a shutdown signal.
pub async fn run(a: ServeArgs) -> mpreg::Result<()> {
    let mut cfg = a.node.config()?;
    if std::env::var_os("MPREG_PORT").is_none() && cfg.port == 0 {
        cfg.port = mpreg::DEFAULT_PORT;
    }
    if let Some(p) = a.port {
        cfg.port = p;
    }
    if let Some(b) = a.bind {
        cfg.bind = b;
    }
    if let Some(n) = a.name {
        cfg.name = Some(n);
    }
    if let Some(r) = a.role {
        cfg.role = r;
    }
    if !a.resources.is_empty() {
        cfg.resources = a.resources;
    }
    // A controller by default, unless the environment says otherwise.
    if std::env::var_os("MPREG_SERVICES").is_none() {
        cfg.services = true;
    }
    if a.no_services {
        cfg.services = false;
    }
    if a.allow_remote_services {
        cfg.allow_remote_services = true;
    }
    cfg.services_dirs.extend(a.services_dirs);
    cfg.listen = true;
    let node = mpreg::Node::start(cfg).await?;
    // One machine-readable line on stdout so scripts and tests can find the node.
    println!(
        "serving {} on {}",
        node.name(),
        node.addr().map(|a| a.to_string()).unwrap_or_default()
    );
    mpreg::shutdown_signal().await;
    node.shutdown().await;
    Ok(())
}
