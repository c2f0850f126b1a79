//! The service controller of a serving node (issue #16): starts installed services as
//! child processes, supervises them under their restart policy, keeps their last lines of
//! output, stops them gracefully (SIGTERM, then SIGKILL after `stop_timeout`) and stops
//! them all when the node stops. It knows the cluster only through [`View`], so it does
//! not depend on the runtime.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::folder::{search, Service};
use super::manifest::{Ready, Restart};
use super::ring::Ring;
use super::status::{Logs, ServiceStatus, State};
use super::supervise;

/// What the controller needs to know of the cluster.
pub(crate) trait View: Send + Sync + 'static {
    /// The functions of the live member named `name` that started at `since_ms` (Unix ms)
    /// or later; `None` when there is none (a crashed predecessor of the same name may
    /// still be listed for a moment: it started earlier).
    fn member(&self, name: &str, since_ms: u64) -> Option<Vec<String>>;
    /// Changes whenever the membership or a catalog does.
    fn changes(&self) -> watch::Receiver<u64>;
}

/// The answer of a stop: the service's state after it, and how the stop went.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Stopped {
    /// The service after the stop.
    pub status: ServiceStatus,
    /// Whether a process was running (false: it was already stopped).
    pub was_running: bool,
    /// When SIGTERM was sent, in milliseconds since the Unix epoch (0 if not running).
    pub term_ms: u64,
    /// Milliseconds from SIGTERM to its exit.
    pub took_ms: u64,
    /// Whether it had to be killed (SIGKILL after `stop_timeout`).
    pub killed: bool,
}

/// One service's life on this node.
pub(crate) struct Unit {
    pub name: String,
    pub life: Mutex<Life>,
    pub logs: Mutex<Ring>,
    /// Bumped on every change of `life`; waiters subscribe.
    pub changed: watch::Sender<u64>,
}

/// What changes as a service runs.
#[derive(Debug, Default)]
pub(crate) struct Life {
    pub state: Option<State>,
    pub pid: Option<u32>,
    pub since: Option<Instant>,
    /// When its current process was started, in Unix ms (its node starts later).
    pub spawned_ms: u64,
    pub restarts: u32,
    pub last_exit: Option<String>,
    /// Set while a supervisor runs; cancelling it stops the service.
    pub stop: Option<CancellationToken>,
    /// The last stop: SIGTERM time (Unix ms), milliseconds to exit, killed.
    pub last_stop: Option<(u64, u64, bool)>,
}

impl Unit {
    fn new(name: &str) -> Arc<Unit> {
        Arc::new(Unit {
            name: name.to_string(),
            life: Mutex::new(Life::default()),
            logs: Mutex::new(Ring::default()),
            changed: watch::Sender::new(0),
        })
    }

    /// Changes its life and tells the waiters.
    pub fn update(&self, f: impl FnOnce(&mut Life)) {
        f(&mut self.life.lock());
        self.changed.send_modify(|v| *v += 1);
    }

    /// A line of the controller's own about this service (`[mpreg] exited with …`).
    pub fn note(&self, text: String) {
        self.logs.lock().push("mpreg", text);
    }
}

/// The service controller of one node.
pub(crate) struct Controller {
    pub node: String,
    pub host: String,
    folders: Vec<PathBuf>,
    /// `MPREG_*` variables every service gets.
    pub env: Vec<(String, String)>,
    pub view: Arc<dyn View>,
    units: Mutex<HashMap<String, Arc<Unit>>>,
    closed: AtomicBool,
}

impl Controller {
    /// A controller for node `node` on `host`, searching `folders` for services.
    pub fn new(
        node: String,
        host: String,
        folders: Vec<PathBuf>,
        env: Vec<(String, String)>,
        view: Arc<dyn View>,
    ) -> Arc<Controller> {
        Arc::new(Controller {
            node,
            host,
            folders,
            env,
            view,
            units: Mutex::new(HashMap::new()),
            closed: AtomicBool::new(false),
        })
    }

    /// The name a service's node gets in the cluster: unique because node names are.
    pub fn service_node(&self, service: &str) -> String {
        format!("{service}@{}", self.node)
    }

    /// Every installed service with its state (and running ones uninstalled meanwhile),
    /// and the problems of what cannot be used.
    pub fn list(&self) -> (Vec<ServiceStatus>, Vec<String>) {
        let found = search(&self.folders);
        let mut out: Vec<ServiceStatus> = found
            .services
            .iter()
            .map(|s| self.status_of(&s.name, &s.manifest.description))
            .collect();
        let units: Vec<String> = self.units.lock().keys().cloned().collect();
        for name in units {
            if found.get(&name).is_none() && self.unit(&name).life.lock().pid.is_some() {
                out.push(self.status_of(&name, "(uninstalled while running)"));
            }
        }
        let problems = found.problems.iter().map(|p| p.to_string()).collect();
        (out, problems)
    }

    fn status_of(&self, name: &str, description: &str) -> ServiceStatus {
        let unit = self.units.lock().get(name).cloned();
        let life = unit.as_ref().map(|u| u.life.lock());
        let state = life
            .as_ref()
            .and_then(|l| l.state)
            .unwrap_or(State::Stopped);
        let pid = life.as_ref().and_then(|l| l.pid);
        let spawned_ms = life.as_ref().map_or(0, |l| l.spawned_ms);
        let service_node = pid.map(|_| self.service_node(name));
        let functions = match &service_node {
            Some(n) => self.view.member(n, spawned_ms).unwrap_or_default(),
            None => Vec::new(),
        };
        ServiceStatus {
            service: name.to_string(),
            host: self.host.clone(),
            node: self.node.clone(),
            state,
            pid,
            uptime_ms: match (&life, pid) {
                (Some(l), Some(_)) => l.since.map_or(0, |s| s.elapsed().as_millis() as u64),
                _ => 0,
            },
            restarts: life.as_ref().map_or(0, |l| l.restarts),
            functions,
            service_node,
            last_exit: life.as_ref().and_then(|l| l.last_exit.clone()),
            description: description.to_string(),
        }
    }

    fn unit(&self, name: &str) -> Arc<Unit> {
        self.units
            .lock()
            .entry(name.to_string())
            .or_insert_with(|| Unit::new(name))
            .clone()
    }

    /// The installed service `name`, or why there is none.
    fn find(&self, name: &str) -> Result<Service, String> {
        let found = search(&self.folders);
        if let Some(s) = found.get(name) {
            return Ok(s.clone());
        }
        if let Some(p) = found.problems.iter().find(|p| {
            p.file
                .file_name()
                .is_some_and(|f| f.to_string_lossy() == name)
                || p.file
                    .parent()
                    .and_then(|d| d.file_name())
                    .is_some_and(|f| f.to_string_lossy() == name)
        }) {
            return Err(format!("service `{name}` cannot be used: {p}"));
        }
        let names: Vec<&str> = found.services.iter().map(|s| s.name.as_str()).collect();
        Err(format!(
            "no service `{name}` is installed on host `{}` (node `{}`); installed: {}",
            self.host,
            self.node,
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        ))
    }

    /// Starts `name` (if it is not running) and waits until it is ready: its node joined,
    /// or its process started (`ready = "started"`). Fails with how it ended and its last
    /// lines, or after its `start_timeout` (having stopped it).
    pub async fn start(self: &Arc<Self>, name: &str) -> Result<ServiceStatus, String> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(format!("node `{}` is shutting down", self.node));
        }
        let service = self.find(name)?;
        let unit = self.unit(name);
        let mut changes = unit.changed.subscribe();
        {
            let mut life = unit.life.lock();
            if life.stop.is_none() {
                let stop = CancellationToken::new();
                life.stop = Some(stop.clone());
                life.state = Some(State::Starting);
                life.restarts = 0;
                drop(life);
                unit.changed.send_modify(|v| *v += 1);
                tokio::spawn(supervise::run(
                    self.clone(),
                    unit.clone(),
                    service.clone(),
                    stop,
                ));
            }
        }
        let deadline = tokio::time::Instant::now() + service.manifest.start_timeout();
        loop {
            changes.mark_unchanged();
            {
                let life = unit.life.lock();
                match life.state {
                    Some(State::Running) => {
                        drop(life);
                        return Ok(self.status_of(name, &service.manifest.description));
                    }
                    Some(State::Failed | State::Stopped) if life.stop.is_none() => {
                        let how = life.last_exit.clone().unwrap_or_else(|| "stopped".into());
                        drop(life);
                        return Err(self.ended_early(&unit, &how));
                    }
                    _ => {}
                }
            }
            if tokio::time::timeout_at(deadline, changes.changed())
                .await
                .is_err()
            {
                let waited = service.manifest.start_timeout();
                let _ = self.stop(name).await;
                let what = match service.manifest.ready {
                    Ready::Joined => format!("its node `{}` did not join", self.service_node(name)),
                    Ready::Started => "it did not start".into(),
                };
                return Err(format!(
                    "service `{name}` on `{}`: {what} within {waited:?} (start_timeout), so it was stopped; last lines:\n{}",
                    self.node,
                    unit.logs.lock().last_text(10)
                ));
            }
        }
    }

    fn ended_early(&self, unit: &Unit, how: &str) -> String {
        format!(
            "service `{}` on `{}` ended before it was ready ({how}); last lines:\n{}",
            unit.name,
            self.node,
            unit.logs.lock().last_text(10)
        )
    }

    /// Stops `name` gracefully and waits until it has exited and its node has left this
    /// node's view (so its functions are gone when this returns).
    pub async fn stop(&self, name: &str) -> Result<Stopped, String> {
        let description = match self.find(name) {
            Ok(s) => s.manifest.description,
            Err(e) if !self.units.lock().contains_key(name) => return Err(e),
            Err(_) => String::new(),
        };
        let unit = self.unit(name);
        let mut changes = unit.changed.subscribe();
        let Some(stop) = unit.life.lock().stop.clone() else {
            return Ok(Stopped {
                status: self.status_of(name, &description),
                was_running: false,
                term_ms: 0,
                took_ms: 0,
                killed: false,
            });
        };
        stop.cancel();
        loop {
            changes.mark_unchanged();
            if unit.life.lock().stop.is_none() {
                break;
            }
            // The supervisor ends within stop_timeout plus the time a SIGKILL takes.
            if changes.changed().await.is_err() {
                break;
            }
        }
        self.await_leave(&self.service_node(name), Duration::from_secs(2))
            .await;
        let (term_ms, took_ms, killed) = unit.life.lock().last_stop.unwrap_or_default();
        Ok(Stopped {
            status: self.status_of(name, &description),
            was_running: true,
            term_ms,
            took_ms,
            killed,
        })
    }

    /// Waits (at most `limit`) until no live member is named `member`.
    async fn await_leave(&self, member: &str, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        let mut changes = self.view.changes();
        while self.view.member(member, 0).is_some() {
            changes.mark_unchanged();
            if tokio::time::timeout_at(deadline, changes.changed())
                .await
                .is_err()
            {
                return;
            }
        }
    }

    /// The last `n` lines of `name` numbered `after` or later.
    pub fn logs(&self, name: &str, n: usize, after: u64) -> Result<Logs, String> {
        if !self.units.lock().contains_key(name) {
            self.find(name)?;
        }
        let unit = self.unit(name);
        let ring = unit.logs.lock();
        Ok(Logs {
            lines: ring.tail(n, after),
            next: ring.next(),
        })
    }

    /// Stops every service (the node is stopping); no new start is accepted.
    pub async fn stop_all(&self) {
        self.closed.store(true, Ordering::Relaxed);
        let names: Vec<String> = self.units.lock().keys().cloned().collect();
        let stops = names.iter().map(|n| self.stop(n));
        futures_util::future::join_all(stops).await;
    }

    /// Whether a service whose process was spawned at `spawned_ms` counts as ready.
    pub(crate) fn is_ready(&self, service: &Service, spawned_ms: u64) -> bool {
        match service.manifest.ready {
            Ready::Started => true,
            Ready::Joined => self
                .view
                .member(&self.service_node(&service.name), spawned_ms)
                .is_some(),
        }
    }
}

/// The wait before restart number `k` (from 1): `backoff_ms` doubling, at most a minute.
pub(crate) fn backoff(restart: &Restart, k: u32) -> Option<Duration> {
    match restart {
        Restart::Never => None,
        Restart::OnFailure { backoff_ms, .. } => {
            let ms = backoff_ms.saturating_mul(1u64 << (k.saturating_sub(1)).min(16));
            Some(Duration::from_millis(ms.min(60_000)))
        }
    }
}
