//! `mpreg services`, `start`, `stop`, `restart` and `logs`: labc's services, controlled
//! from anywhere on the LAN by name (the nodes that run `mpreg serve` control them).

use std::time::Duration;

use clap::Args;
use mpreg::service::{HostServices, ServiceStatus};

use super::NodeArgs;

/// Arguments of `mpreg services`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only the services of this host (a host id, as `mpreg nodes --wide` shows it).
    #[arg(long, value_name = "HOST")]
    host: Option<String>,
    /// Print a JSON array of services instead of a table (problems go to stderr).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    node: NodeArgs,
}

/// Which service, and where: shared by `start`, `stop`, `restart` and `logs`.
#[derive(Debug, Args)]
pub struct Which {
    /// The service's name.
    name: String,
    /// The host to act on (a host id); needed when several hosts have it installed.
    #[arg(long, value_name = "HOST", conflicts_with = "on_node")]
    host: Option<String>,
    /// The controlling node to act on (its name), when one host has several.
    #[arg(long = "node", value_name = "NODE")]
    on_node: Option<String>,
}

/// Arguments of `mpreg start`, `stop` and `restart`.
#[derive(Debug, Args)]
pub struct ControlArgs {
    #[command(flatten)]
    which: Which,
    /// Print the answer as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    node: NodeArgs,
}

/// Arguments of `mpreg logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    #[command(flatten)]
    which: Which,
    /// Keep printing new lines until Ctrl-C.
    #[arg(short = 'f', long)]
    follow: bool,
    /// How many of the last lines to print.
    #[arg(short = 'n', long = "lines", default_value_t = 100)]
    lines: usize,
    #[command(flatten)]
    node: NodeArgs,
}

/// What to do to a service.
#[derive(Debug, Clone, Copy)]
pub enum Action {
    /// `mpreg start`.
    Start,
    /// `mpreg stop`.
    Stop,
    /// `mpreg restart`.
    Restart,
}

fn target(node: &mpreg::Node, host: Option<&str>, on_node: Option<&str>) -> mpreg::Target {
    match (host, on_node) {
        (Some(h), _) => node.host(h),
        (None, Some(n)) => node.node(n),
        (None, None) => node.cluster(),
    }
}

/// `mpreg services`.
pub async fn list(a: ListArgs) -> mpreg::Result<()> {
    let node = a.node.joined_client().await?;
    let listed = target(&node, a.host.as_deref(), None).services().await;
    node.shutdown().await;
    let listed = listed?;
    for h in &listed {
        for p in &h.problems {
            eprintln!("problem on node `{}` (host `{}`): {p}", h.node, h.host);
        }
    }
    let all: Vec<&ServiceStatus> = listed.iter().flat_map(|h| &h.services).collect();
    if a.json {
        println!("{}", serde_json::to_string(&all).unwrap_or_default());
        return Ok(());
    }
    print_table(&listed);
    Ok(())
}

fn print_table(listed: &[HostServices]) {
    if listed.is_empty() {
        println!("no node controls services (they run `mpreg serve`)");
        return;
    }
    println!(
        "{:<16} {:<14} {:<14} {:<8} {:>7} {:>9} {:>3} functions",
        "service", "host", "node", "state", "pid", "uptime", "rst"
    );
    for s in listed.iter().flat_map(|h| &h.services) {
        println!(
            "{:<16} {:<14} {:<14} {:<8} {:>7} {:>9} {:>3} {}",
            s.service,
            s.host,
            s.node,
            s.state,
            s.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
            uptime(s.uptime_ms),
            s.restarts,
            s.functions.join(",")
        );
    }
    if listed.iter().all(|h| h.services.is_empty()) {
        println!(
            "(no service installed on the {} controlling node(s))",
            listed.len()
        );
    }
}

fn uptime(ms: u64) -> String {
    match ms / 1000 {
        0 if ms == 0 => "-".into(),
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{}s", s / 60, s % 60),
        s => format!("{}h{}m", s / 3600, s / 60 % 60),
    }
}

/// `mpreg start`, `stop` and `restart`.
pub async fn control(a: ControlArgs, action: Action) -> mpreg::Result<()> {
    let node = a.node.joined_client().await?;
    let t = target(&node, a.which.host.as_deref(), a.which.on_node.as_deref());
    let name = &a.which.name;
    let out = match action {
        Action::Start => t.start_service(name).await.map(|s| started(&s, a.json)),
        Action::Restart => t.restart_service(name).await.map(|s| started(&s, a.json)),
        Action::Stop => t.stop_service(name).await.map(|s| match a.json {
            true => serde_json::to_string(&s).unwrap_or_default(),
            false if !s.was_running => format!(
                "service `{name}` on `{}` was not running ({})",
                s.status.node, s.status.state
            ),
            false => format!(
                "stopped `{name}` on `{}` (host `{}`) in {} ms: {}{}",
                s.status.node,
                s.status.host,
                s.took_ms,
                s.status.last_exit.as_deref().unwrap_or("ended"),
                if s.killed {
                    ", killed after stop_timeout"
                } else {
                    ""
                }
            ),
        }),
    };
    node.shutdown().await;
    println!("{}", out?);
    Ok(())
}

fn started(s: &ServiceStatus, json: bool) -> String {
    if json {
        return serde_json::to_string(s).unwrap_or_default();
    }
    let functions = match s.functions.is_empty() {
        true => String::new(),
        false => format!(", functions: {}", s.functions.join(", ")),
    };
    format!(
        "started `{}` on `{}` (host `{}`): pid {}, node `{}`{functions}",
        s.service,
        s.node,
        s.host,
        s.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
        s.service_node.as_deref().unwrap_or("-"),
    )
}

/// `mpreg logs`.
pub async fn logs(a: LogsArgs) -> mpreg::Result<()> {
    let node = a.node.joined_client().await?;
    let r = print_logs(&node, &a).await;
    node.shutdown().await;
    r
}

async fn print_logs(node: &mpreg::Node, a: &LogsArgs) -> mpreg::Result<()> {
    let t = target(node, a.which.host.as_deref(), a.which.on_node.as_deref());
    let mut after = 0;
    let mut n = a.lines;
    loop {
        let logs = t.service_logs(&a.which.name, n, after).await?;
        for l in &logs.lines {
            match l.stream.as_str() {
                "mpreg" => println!("[mpreg] {}", l.text),
                _ => println!("{}", l.text),
            }
        }
        if !a.follow {
            return Ok(());
        }
        after = logs.next;
        n = mpreg::service::LOG_LINES;
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = mpreg::shutdown_signal() => return Ok(()),
        }
    }
}
