//! Service control on a serving node (issue #16): the built-ins through which anybody in
//! the cluster lists this node's installed services and their logs, and through which
//! callers allowed to (this host's, or anyone's with a cluster secret or
//! `--allow-remote-services`) start, stop and restart them. Only installed services can be
//! started: a name, never a command line, travels over the network.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Weak};

use tokio::sync::watch;

use crate::function::Function;
use crate::runtime::{caller, Shared};
use crate::service::{self, Controller, HostServices, View};
use crate::Result;

/// `_services()`: this node's services and problems ([`HostServices`]).
pub(crate) const SERVICES: &str = "_services";
/// `_service_start(name)`: starts and waits until ready ([`ServiceStatus`]).
pub(crate) const START: &str = "_service_start";
/// `_service_stop(name)`: stops gracefully ([`Stopped`]).
pub(crate) const STOP: &str = "_service_stop";
/// `_service_restart(name)`: stops, then starts ([`ServiceStatus`]).
pub(crate) const RESTART: &str = "_service_restart";
/// `_service_logs(name, n, after)`: its last lines ([`Logs`]).
pub(crate) const LOGS: &str = "_service_logs";

/// Whether `name` is one of the service-control built-ins.
pub(crate) fn is_control(name: &str) -> bool {
    matches!(name, SERVICES | START | STOP | RESTART | LOGS)
}

/// The node as the controller sees it (held weakly: functions must not keep it alive).
struct NodeView(Weak<Shared>);

impl View for NodeView {
    fn member(&self, name: &str, since_ms: u64) -> Option<Vec<String>> {
        let s = self.0.upgrade()?;
        let id = s
            .directory
            .read()
            .values()
            .find(|e| e.member.name == name && e.member.started_ms >= since_ms)
            .map(|e| e.member.id)?;
        // Ready once its catalog is here too: its functions can then be called through us.
        let conn = s.connection_to(id)?;
        let cat = conn.catalog.read();
        let mut functions: Vec<String> = cat
            .functions()
            .map(|f| f.name.clone())
            .filter(|f| !crate::builtins::is_builtin(f))
            .collect();
        functions.sort();
        Some(functions)
    }

    fn changes(&self) -> watch::Receiver<u64> {
        match self.0.upgrade() {
            Some(s) => s.view_epoch.subscribe(),
            // A closed channel: its `changed` fails at once and the supervisor stops asking.
            None => watch::channel(0).1,
        }
    }
}

/// Starts the controller of a listening node and registers its built-ins.
pub(crate) fn start(shared: &Arc<Shared>) -> Result<()> {
    let cfg = &shared.config;
    let ctl = Controller::new(
        shared.name.clone(),
        shared.host_id.clone(),
        service::folders(&cfg.services_dirs),
        environment(shared),
        Arc::new(NodeView(Arc::downgrade(shared))),
    );
    let remote = shared.secret.is_some() || cfg.allow_remote_services;
    let _ = shared.services.set(ctl.clone());
    let mut reg = shared.registry.write();
    for f in functions(&ctl, remote) {
        reg.insert(f)?;
    }
    drop(reg);
    shared.announce_catalog();
    Ok(())
}

/// The `MPREG_*` variables that make a service's node join this node's cluster at once,
/// the same way (cluster, secret, host id, discovery) but on a port of its own.
fn environment(shared: &Shared) -> Vec<(String, String)> {
    let cfg = &shared.config;
    let seed_ip = match cfg.bind {
        IpAddr::V4(a) if a.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(a) if a.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        ip => ip,
    };
    let seed = SocketAddr::new(seed_ip, shared.listen_port());
    let flag = |b: bool| if b { "1" } else { "0" }.to_string();
    let mut env = vec![
        ("MPREG_CLUSTER".to_string(), shared.cluster.clone()),
        ("MPREG_HOST".into(), shared.host_id.clone()),
        ("MPREG_SEEDS".into(), seed.to_string()),
        ("MPREG_PORT".into(), "0".into()),
        ("MPREG_BIND".into(), cfg.bind.to_string()),
        ("MPREG_MDNS".into(), flag(cfg.mdns)),
        ("MPREG_MDNS_PORT".into(), cfg.mdns_port.to_string()),
        ("MPREG_BEACON".into(), flag(cfg.beacon)),
        ("MPREG_BEACON_PORT".into(), cfg.beacon_port.to_string()),
        ("MPREG_INTERFACES".into(), cfg.interfaces.join(",")),
        // A service runs no controller of its own, and never the node's HTTP port.
        ("MPREG_SERVICES".into(), "0".into()),
        ("MPREG_HTTP_ADDR".into(), String::new()),
    ];
    if let Some(f) = &cfg.secret_file {
        let f = std::fs::canonicalize(f).unwrap_or_else(|_| f.clone());
        env.push(("MPREG_SECRET_FILE".into(), f.display().to_string()));
    }
    env
}

/// Whether the caller of the running built-in may start and stop services here.
fn may_control(ctl: &Controller, remote: bool) -> std::result::Result<(), String> {
    match caller::host() {
        Some(h) if !remote && h != ctl.host => Err(format!(
            "node `{}` refuses to start or stop services for a caller on host `{h}`: it takes \
             service control from its own host (`{}`) only, because the cluster has no shared \
             secret and the node was not started with --allow-remote-services \
             (MPREG_ALLOW_REMOTE_SERVICES=1). Run the command on `{}`, or give every node the \
             cluster's secret (MPREG_SECRET_FILE)",
            ctl.node, ctl.host, ctl.host
        )),
        _ => Ok(()),
    }
}

fn functions(ctl: &Arc<Controller>, remote: bool) -> Vec<Function> {
    // The functions hold the controller, which holds the node only weakly: no cycle.
    let (list, logs) = (ctl.clone(), ctl.clone());
    vec![
        Function::try_new(SERVICES, move |(): ()| -> std::result::Result<_, String> {
            let (services, problems) = list.list();
            Ok(HostServices {
                node: list.node.clone(),
                host: list.host.clone(),
                remote_control: remote,
                services,
                problems,
            })
        })
        .params(Vec::<&str>::new())
        .idempotent(true),
        controlling(
            START,
            ctl,
            remote,
            |c, name| async move { c.start(&name).await },
        ),
        controlling(
            STOP,
            ctl,
            remote,
            |c, name| async move { c.stop(&name).await },
        ),
        controlling(RESTART, ctl, remote, |c, name| async move {
            c.stop(&name).await?;
            c.start(&name).await
        }),
        Function::try_new(LOGS, move |(name, n, after): (String, usize, u64)| {
            logs.logs(&name, n.min(service::LOG_LINES), after)
        })
        .params(["name: str", "n: int", "after: int"])
        .idempotent(true),
    ]
}

/// A built-in that acts on one service, for callers allowed to control services here.
fn controlling<T, F, Fut>(name: &str, ctl: &Arc<Controller>, remote: bool, act: F) -> Function
where
    T: serde::Serialize + 'static,
    F: Fn(Arc<Controller>, String) -> Fut + Copy + Send + Sync + 'static,
    Fut: std::future::Future<Output = std::result::Result<T, String>> + Send + 'static,
{
    let ctl = ctl.clone();
    let mut f = Function::try_new_async(name, move |(service,): (String,)| {
        let ctl = ctl.clone();
        // Checked when polled, inside the caller's scope (`runtime::caller`), not when the
        // future is built.
        async move {
            may_control(&ctl, remote)?;
            act(ctl, service).await
        }
    })
    .params(["name: str"]);
    f.wants_caller = true;
    f
}
