//! What service control answers: the shapes of the `_services`, `_service_*` built-ins
//! (and of `mpreg services --json`), serde-friendly on both ends.

use serde::{Deserialize, Serialize};

/// Where a service is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Not running (never started, stopped, or ended with exit code 0).
    Stopped,
    /// Its process runs (or waits to be restarted) and its node has not joined yet.
    Starting,
    /// Its process runs and its node is a live member (or, for a service with
    /// `ready = "started"`, its process runs).
    Running,
    /// Being stopped: SIGTERM sent, waiting for it to exit.
    Stopping,
    /// Ended with a failure and not restarted (policy `never`, or restarts used up).
    Failed,
}

impl State {
    /// The lower-case name (`running`).
    pub fn as_str(self) -> &'static str {
        match self {
            State::Stopped => "stopped",
            State::Starting => "starting",
            State::Running => "running",
            State::Stopping => "stopping",
            State::Failed => "failed",
        }
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One installed service on one controlling node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceStatus {
    /// The service's name.
    pub service: String,
    /// The host it is installed on (host id, as `mpreg nodes` shows it).
    pub host: String,
    /// The node controlling it (`mpreg start --node`).
    pub node: String,
    /// Where it is in its life.
    pub state: State,
    /// Its process id while it runs.
    pub pid: Option<u32>,
    /// Milliseconds since its current process started (0 when not running).
    pub uptime_ms: u64,
    /// Times it was restarted after a failure since it was last started by hand.
    pub restarts: u32,
    /// Functions its node registered (empty until it joins, or for a service without a
    /// node).
    pub functions: Vec<String>,
    /// The name of its own node in the cluster (`SERVICE@NODE`), while it runs.
    pub service_node: Option<String>,
    /// How its last process ended (`exit code 3`, `killed by signal 9`), if one did.
    pub last_exit: Option<String>,
    /// Its manifest's one-line description.
    pub description: String,
}

/// The `_services` answer of one controlling node: its services and the entries of its
/// services folders it could not use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostServices {
    /// The controlling node.
    pub node: String,
    /// Its host.
    pub host: String,
    /// Whether callers on other hosts may start and stop services here (the cluster has a
    /// secret, or the node runs with `--allow-remote-services`).
    pub remote_control: bool,
    /// Installed services with their state.
    pub services: Vec<ServiceStatus>,
    /// What cannot be used, as `FILE: problem` (a malformed `service.toml`, …).
    pub problems: Vec<String>,
}

/// One line a service printed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// Its number, counted from the node's start; `mpreg logs -f` asks for newer ones.
    pub seq: u64,
    /// `stdout` or `stderr`.
    pub stream: String,
    /// The line, without its end of line.
    pub text: String,
}

/// The `_service_logs` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Logs {
    /// The lines asked for, oldest first.
    pub lines: Vec<LogLine>,
    /// The number to ask from next time (`after`).
    pub next: u64,
}
