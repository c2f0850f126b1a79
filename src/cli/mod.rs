//! Command-line arguments and dispatch to one module per subcommand.

mod call;
mod install;
mod keys;
mod nodes;
mod pubsub;
mod run;
mod serve;
mod services;
mod top;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Zero-config LAN middleware: serve functions, call them by name.
#[derive(Debug, Parser)]
#[command(name = "mpreg", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a node with the built-ins `echo` and `echos` until Ctrl-C.
    Serve(serve::ServeArgs),
    /// Call a function by name and print its result as JSON.
    Call(call::CallArgs),
    /// List the live members of the cluster.
    Nodes(nodes::NodesArgs),
    /// Run an MPREG workflow (JSON file, or - for stdin) and print its result as JSON.
    Run(run::RunArgs),
    /// Publish a JSON payload to a topic.
    Pub(pubsub::PubArgs),
    /// Print publications matching a pattern as JSON lines until --count or --timeout.
    Sub(pubsub::SubArgs),
    /// Watch the whole cluster live: nodes, calls/s, latencies, errors, events (`q` quits).
    Top(top::TopArgs),
    /// Install a service (a folder with a service.toml, or an executable) into the user's
    /// services folder.
    Install(install::InstallArgs),
    /// Remove an installed service.
    Uninstall(install::UninstallArgs),
    /// List every installed service on every host, with its state.
    Services(services::ListArgs),
    /// Start an installed service where it is installed; returns once its node has joined.
    Start(services::ControlArgs),
    /// Stop a service gracefully (SIGTERM, SIGKILL after its stop_timeout).
    Stop(services::ControlArgs),
    /// Stop a service, then start it again.
    Restart(services::ControlArgs),
    /// Print a service's last lines of output (-f: keep following).
    Logs(services::LogsArgs),
    /// The cluster's shared secrets: `list`, and `install`, `use`, `remove` on every member
    /// (key rotation without downtime).
    Keys(keys::KeysArgs),
}

/// Options shared by every subcommand that starts a node.
#[derive(Debug, Args)]
pub struct NodeArgs {
    /// Node to connect to, `HOST:PORT`; repeatable (env MPREG_SEEDS, comma separated).
    #[arg(long = "seed", value_name = "HOST:PORT")]
    pub seeds: Vec<String>,
    /// Cluster id; nodes of other clusters are refused (env MPREG_CLUSTER).
    #[arg(long)]
    pub cluster: Option<String>,
    /// File holding the cluster's shared secret (env MPREG_SECRET_FILE).
    #[arg(long, value_name = "FILE")]
    pub secret_file: Option<PathBuf>,
    /// Config file (env MPREG_CONFIG; default ./mpreg.toml if present).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Interface (name or address) for discovery; repeatable (env MPREG_INTERFACES;
    /// default: every multicast-capable interface plus loopback).
    #[arg(long = "interface", value_name = "NAME|ADDR")]
    pub interfaces: Vec<String>,
    /// Do not advertise or browse with mDNS (env MPREG_MDNS=0).
    #[arg(long)]
    pub no_mdns: bool,
    /// Do not send or answer UDP broadcast beacons (env MPREG_BEACON=0).
    #[arg(long)]
    pub no_beacon: bool,
    /// UDP port of the discovery beacon (env MPREG_BEACON_PORT; default 7701).
    #[arg(long, value_name = "PORT")]
    pub beacon_port: Option<u16>,
    /// UDP port for mDNS (env MPREG_MDNS_PORT; default 5353).
    #[arg(long, value_name = "PORT")]
    pub mdns_port: Option<u16>,
    /// Serve HTTP on ADDR, e.g. 127.0.0.1:7780 (env MPREG_HTTP_ADDR; default off): the
    /// gateway for other languages (WebSocket and JSON-RPC 2.0 on /), Prometheus /metrics,
    /// /health/live and /health/ready. A client is ready while attached to a member.
    #[arg(long = "http", value_name = "ADDR")]
    pub http: Option<std::net::SocketAddr>,
    /// File holding the bearer token that gateway clients must send (env
    /// MPREG_HTTP_TOKEN_FILE); required to open the gateway on a non-loopback address of a
    /// cluster with a secret.
    #[arg(long = "http-token-file", value_name = "FILE")]
    pub http_token_file: Option<std::path::PathBuf>,
}

impl NodeArgs {
    /// Config from the file and environment, with these flags on top.
    pub fn config(&self) -> mpreg::Result<mpreg::Config> {
        let mut cfg = match &self.config {
            Some(p) => {
                let mut c = mpreg::Config::from_file(p)?;
                c.apply_env(|k| std::env::var(k).ok())?;
                c
            }
            None => mpreg::Config::load()?,
        };
        if !self.seeds.is_empty() {
            cfg.seeds = self.seeds.clone();
        }
        if let Some(c) = &self.cluster {
            cfg.cluster = c.clone();
        }
        if let Some(s) = &self.secret_file {
            cfg.secret_file = Some(s.clone());
        }
        if !self.interfaces.is_empty() {
            cfg.interfaces = self.interfaces.clone();
        }
        if self.no_mdns {
            cfg.mdns = false;
        }
        if self.no_beacon {
            cfg.beacon = false;
        }
        if let Some(p) = self.beacon_port {
            cfg.beacon_port = p;
        }
        if let Some(p) = self.mdns_port {
            cfg.mdns_port = p;
        }
        if let Some(f) = &self.http_token_file {
            cfg.http_token_file = Some(f.clone());
        }
        if let Some(a) = self.http {
            cfg.http_addr = Some(a);
        }
        Ok(cfg)
    }

    /// A client node that has found the cluster (shut down again if it finds none).
    pub async fn joined_client(&self) -> mpreg::Result<mpreg::Node> {
        let node = mpreg::Node::start(self.client_config()?).await?;
        if let Err(e) = node.wait_for_cluster().await {
            node.shutdown().await;
            return Err(e);
        }
        Ok(node)
    }

    /// Config for a short-lived client: no listener, no built-ins, no gossip.
    pub fn client_config(&self) -> mpreg::Result<mpreg::Config> {
        let mut cfg = self.config()?;
        cfg.listen = false;
        cfg.builtins = false;
        Ok(cfg)
    }
}

impl Cli {
    /// Whether this runs a long-lived node (which logs more).
    pub fn is_serve(&self) -> bool {
        matches!(self.command, Command::Serve(_))
    }

    /// Whether this draws a full-screen view, where log lines would tear the picture.
    pub fn is_screen(&self) -> bool {
        matches!(&self.command, Command::Top(a) if top::is_live(a))
    }
}

/// Runs the parsed command.
pub async fn run(cli: Cli) -> mpreg::Result<()> {
    match cli.command {
        Command::Serve(a) => serve::run(a).await,
        Command::Call(a) => call::run(a).await,
        Command::Nodes(a) => nodes::run(a).await,
        Command::Keys(a) => keys::run(a).await,
        Command::Run(a) => run::run(a).await,
        Command::Pub(a) => pubsub::run_pub(a).await,
        Command::Sub(a) => pubsub::run_sub(a).await,
        Command::Top(a) => top::run(a).await,
        Command::Install(a) => install::install(a),
        Command::Uninstall(a) => install::uninstall(a),
        Command::Services(a) => services::list(a).await,
        Command::Start(a) => services::control(a, services::Action::Start).await,
        Command::Stop(a) => services::control(a, services::Action::Stop).await,
        Command::Restart(a) => services::control(a, services::Action::Restart).await,
        Command::Logs(a) => services::logs(a).await,
    }
}
