//! The caller's side of service control (issue #16): asking every controlling node what it
//! has installed, and starting, stopping and watching a service by name within a
//! perspective (`node.host("lab-pc").start_service("camera")`), without an address.

use std::time::Duration;

use crate::control;
use crate::proto::resolve::Perspective;
use crate::service::{HostServices, Logs, ServiceStatus, Stopped};
use crate::{Error, Node, Result, Target};

/// How long one controlling node may take to list its services.
const LIST_TIMEOUT: Duration = Duration::from_secs(3);

/// How long a start, stop or restart may take: the node's own limits (`start_timeout`,
/// `stop_timeout`, at most an hour each) end it first.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(2 * 3600 + 60);

impl Node {
    /// Every controlling node's services (`mpreg services`), asked concurrently. A node
    /// that does not answer is listed with no services and the reason as its problem.
    pub async fn services(&self) -> Result<Vec<HostServices>> {
        self.cluster().services().await
    }

    /// Calls anywhere in the cluster: no perspective (for [`Target::start_service`] and
    /// its siblings when any host will do).
    pub fn cluster(&self) -> Target {
        Target::new(self.clone(), Perspective::Any)
    }
}

impl Target {
    /// The services of the controlling nodes inside this perspective.
    pub async fn services(&self) -> Result<Vec<HostServices>> {
        let node = self.node();
        let controllers: Vec<_> = node
            .members()
            .into_iter()
            .filter(|m| m.builtins.iter().any(|b| b == control::SERVICES))
            .filter(|m| match self.perspective() {
                Perspective::Any => true,
                Perspective::Host(h) => &m.host == h,
                Perspective::Node(n) => &m.name == n,
            })
            .collect();
        let asks = controllers.iter().map(|m| async move {
            let r = node
                .request(control::SERVICES)
                .at(m.addr)
                .timeout(LIST_TIMEOUT)
                .send::<HostServices>()
                .await;
            match r {
                Ok(r) => r.value,
                Err(e) => HostServices {
                    node: m.name.clone(),
                    host: m.host.clone(),
                    remote_control: false,
                    services: Vec::new(),
                    problems: vec![format!("node `{}` did not list its services: {e}", m.name)],
                },
            }
        });
        let mut all = futures_util::future::join_all(asks).await;
        all.sort_by(|a, b| (&a.host, &a.node).cmp(&(&b.host, &b.node)));
        Ok(all)
    }

    /// Starts service `name` on the one controlling node in this perspective that has it
    /// installed, and returns once it is ready (its node joined the cluster). Fails naming
    /// the candidates when several hosts have it, or with how it ended and its last lines.
    pub async fn start_service(&self, name: &str) -> Result<ServiceStatus> {
        let at = self.controller_of(name, false).await?;
        self.control(control::START, &at, (name,)).await
    }

    /// Stops service `name` gracefully (SIGTERM, SIGKILL after its `stop_timeout`) where it
    /// runs in this perspective; returns once it exited and its node left.
    pub async fn stop_service(&self, name: &str) -> Result<Stopped> {
        let at = self.controller_of(name, true).await?;
        self.control(control::STOP, &at, (name,)).await
    }

    /// Stops service `name`, then starts it again, on the same node.
    pub async fn restart_service(&self, name: &str) -> Result<ServiceStatus> {
        let at = self.controller_of(name, true).await?;
        self.control(control::RESTART, &at, (name,)).await
    }

    /// The last `n` lines service `name` printed (numbered `after` or later; 0 for all),
    /// from the node that runs it in this perspective (or the one that has it installed).
    pub async fn service_logs(&self, name: &str, n: usize, after: u64) -> Result<Logs> {
        let at = self.controller_of(name, true).await?;
        self.control(control::LOGS, &at, (name, n, after)).await
    }

    async fn control<R: serde::de::DeserializeOwned>(
        &self,
        fun: &str,
        at: &Controller,
        args: impl serde::Serialize,
    ) -> Result<R> {
        let r = self.node().request(fun).at(&at.addr).args(args);
        Ok(r.timeout(CONTROL_TIMEOUT).send::<R>().await?.value)
    }

    /// The controlling node to ask about service `name`: the only one in this perspective
    /// that has it installed; with `running`, the only one where it runs if several have it.
    async fn controller_of(&self, name: &str, running: bool) -> Result<Controller> {
        let listed = self.services().await?;
        let installed: Vec<(&HostServices, &ServiceStatus)> = listed
            .iter()
            .filter_map(|h| {
                h.services
                    .iter()
                    .find(|s| s.service == name)
                    .map(|s| (h, s))
            })
            .collect();
        let live: Vec<_> = installed
            .iter()
            .filter(|(_, s)| s.pid.is_some())
            .copied()
            .collect();
        let pick = match (installed.len(), running && live.len() == 1) {
            (_, true) => live[0].0,
            (1, _) => installed[0].0,
            (0, _) => return Err(Error::Usage(self.nowhere(name, &listed))),
            _ => {
                let names: Vec<String> = installed
                    .iter()
                    .map(|(h, s)| format!("host `{}` (node `{}`, {})", h.host, h.node, s.state))
                    .collect();
                return Err(Error::Usage(format!(
                    "service `{name}` is installed on several nodes: {}; choose one with --host or --node",
                    names.join(", ")
                )));
            }
        };
        let addr = self
            .node()
            .members()
            .into_iter()
            .find(|m| m.name == pick.node)
            .map(|m| m.addr.to_string())
            .ok_or_else(|| Error::Incomplete(format!("node `{}` left meanwhile", pick.node)))?;
        Ok(Controller { addr })
    }

    /// Why no node has service `name`: which nodes were asked, and their problems.
    fn nowhere(&self, name: &str, listed: &[HostServices]) -> String {
        let within = match self.perspective() {
            Perspective::Any => String::new(),
            Perspective::Host(h) => format!(" on host `{h}`"),
            Perspective::Node(n) => format!(" on node `{n}`"),
        };
        if listed.is_empty() {
            return format!(
                "no node{within} controls services (it runs `mpreg serve`, not started with --no-services), so service `{name}` cannot be started"
            );
        }
        let asked: Vec<String> = listed
            .iter()
            .map(|h| format!("`{}` on host `{}`", h.node, h.host))
            .collect();
        let mut msg = format!(
            "no node{within} has service `{name}` installed (asked {})",
            asked.join(", ")
        );
        for p in listed.iter().flat_map(|h| &h.problems) {
            msg.push_str(&format!("; {p}"));
        }
        msg
    }
}

/// A controlling node, by address.
struct Controller {
    addr: String,
}

/// The name of the service this process runs as, when a node's service controller
/// started it (`MPREG_SERVICE`); `None` otherwise.
pub fn service_name() -> Option<String> {
    std::env::var("MPREG_SERVICE")
        .ok()
        .filter(|s| !s.is_empty())
}
