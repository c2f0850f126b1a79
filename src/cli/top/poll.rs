//! Gathering: one poll asks every alive member for its `_metrics` (and, once per member, its
//! `_info`), all members in parallel, each call with a short deadline, so a member that does
//! not answer costs one deadline and shows as `?` instead of holding the screen.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mpreg::{MemberSummary, MetricsSnapshot, Node, NodeInfo};
use serde::de::DeserializeOwned;

use super::model::{Poll, Seen};

/// The longest a poll waits for one member.
pub const ANSWER_WAIT: Duration = Duration::from_millis(300);

/// Polls the cluster through a client node.
pub struct Poller {
    node: Node,
    started: Instant,
    wait: Duration,
    /// `_info` answers by member name: who a node is does not change while it runs, so it is
    /// asked once (again when the member comes back at another address).
    infos: HashMap<String, (SocketAddr, NodeInfo)>,
}

impl Poller {
    /// A poller whose answers wait at most `wait` (capped at [`ANSWER_WAIT`]); times are
    /// counted from `started`.
    pub fn new(node: Node, started: Instant, wait: Duration) -> Self {
        Poller {
            node,
            started,
            wait: wait.min(ANSWER_WAIT),
            infos: HashMap::new(),
        }
    }

    /// The client node polls go through.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// Every member now, with the answers of those that gave them in time.
    pub async fn poll(&mut self) -> Poll {
        let members = self.node.members();
        let asks = members.iter().map(|m| self.ask_member(m));
        let answers = futures_util::future::join_all(asks).await;
        let mut nodes = Vec::with_capacity(members.len());
        for (m, (metrics, info)) in members.into_iter().zip(answers) {
            if let Some(info) = info {
                self.infos.insert(m.name.clone(), (m.addr, info));
            }
            let info = self.infos.get(&m.name).map(|(_, i)| i);
            nodes.push(seen(m, metrics, info));
        }
        self.infos
            .retain(|name, _| nodes.iter().any(|s: &Seen| &s.name == name));
        Poll {
            at: self.started.elapsed(),
            nodes,
        }
    }

    /// `_metrics` of an alive member, then its `_info` if it answered and it is not known
    /// yet (after the first answer, over the connection that one opened: asking both at
    /// once would dial twice).
    async fn ask_member(&self, m: &MemberSummary) -> (Option<MetricsSnapshot>, Option<NodeInfo>) {
        if m.state != "alive" {
            return (None, None);
        }
        let metrics = self.ask::<MetricsSnapshot>(m.addr, "_metrics").await;
        let known = matches!(self.infos.get(&m.name), Some((addr, _)) if *addr == m.addr);
        if metrics.is_none() || known {
            return (metrics, None);
        }
        (metrics, self.ask::<NodeInfo>(m.addr, "_info").await)
    }

    /// One call straight to `addr`, `None` on any error or after the deadline.
    async fn ask<T: DeserializeOwned>(&self, addr: SocketAddr, fun: &str) -> Option<T> {
        let call = self
            .node
            .request(fun)
            .at(addr)
            .timeout(self.wait)
            .send::<T>();
        match tokio::time::timeout(self.wait, call).await {
            Ok(Ok(r)) => Some(r.value),
            _ => None,
        }
    }
}

/// A member as shown: the node's own `_info` for who it is when known (the membership's
/// view otherwise).
fn seen(m: MemberSummary, metrics: Option<MetricsSnapshot>, info: Option<&NodeInfo>) -> Seen {
    let pick = |own: Option<&String>, view: String| match own {
        Some(s) if !s.is_empty() => s.clone(),
        _ => view,
    };
    Seen {
        host: pick(info.map(|i| &i.host), m.host),
        role: pick(info.map(|i| &i.role), m.role),
        name: m.name,
        state: m.state,
        // Built-ins too: `echo` is one, and the model hides the `_` ones itself.
        functions: m.functions.into_iter().chain(m.builtins).collect(),
        metrics,
        silent_polls: 0,
    }
}
