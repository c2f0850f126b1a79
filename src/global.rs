//! The process-global default node behind `mpreg::serve()`, `mpreg::call()` and
//! `mpreg::blocking::call()`.
//!
//! The default node runs on a small runtime of its own (two worker threads named `mpreg`),
//! so it works the same from `#[tokio::main]`, from a test's runtime that ends before the
//! process does, and from plain threads. Configuration comes from [`Config::load`]:
//! `MPREG_*` variables over `mpreg.toml` over defaults.

use std::future::Future;
use std::sync::OnceLock;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::runtime::Runtime;
use tokio::sync::Mutex;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::node::Node;
use crate::proto::resolve::Perspective;
use crate::request::Target;

static RUNTIME: OnceLock<Runtime> = OnceLock::new();
static DEFAULT: Mutex<Option<(Node, Mode)>> = Mutex::const_new(None);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Serve,
    /// Listening and gossiping like `Serve`, started by an API that needs to be reachable.
    Member,
    Client,
}

pub(crate) fn runtime() -> &'static Runtime {
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("mpreg")
            .enable_all()
            .build()
            .expect("cannot start the mpreg runtime")
    })
}

/// Runs `fut` on the default node's runtime and waits for it from any context.
pub(crate) async fn on_runtime<T: Send + 'static>(
    fut: impl Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    runtime().spawn(fut).await.map_err(|e| {
        Error::io(
            "the default node's runtime task failed",
            std::io::Error::other(e),
        )
    })?
}

async fn default_node(mode: Mode) -> Result<Node> {
    let mut slot = DEFAULT.lock().await;
    if let Some((node, m)) = &*slot {
        if mode != Mode::Client && *m == Mode::Client {
            return Err(Error::Usage(format!(
                "{} needs a listening node, but mpreg::call() already started the default node as a client; call it first",
                if mode == Mode::Serve { "mpreg::serve()" } else { "subscribing or receiving messages" }
            )));
        }
        return Ok(node.clone());
    }
    let mut cfg = Config::load()?;
    match mode {
        // A process that only calls does not need a listener or the built-ins.
        Mode::Client => {
            cfg.listen = false;
            cfg.builtins = false;
        }
        Mode::Member => cfg.builtins = false,
        Mode::Serve => {}
    }
    let node = if mode == Mode::Serve {
        start_server(cfg).await?
    } else {
        on_runtime(Node::start(cfg)).await?
    };
    *slot = Some((node.clone(), mode));
    Ok(node)
}

/// Starts the node of [`serve`]: on port 7700 like `mpreg serve` unless the port was
/// configured (`MPREG_PORT`, `mpreg.toml`), on a free port (said in the log) when 7700 is
/// taken, e.g. by a second server on the same machine.
async fn start_server(mut cfg: Config) -> Result<Node> {
    let chosen = cfg.port != 0 || std::env::var_os("MPREG_PORT").is_some();
    if chosen {
        return on_runtime(Node::start(cfg)).await;
    }
    cfg.port = crate::DEFAULT_PORT;
    match on_runtime(Node::start(cfg.clone())).await {
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::AddrInUse => {
            announce(&format!(
                "port {} is taken; serving on a free port instead",
                crate::DEFAULT_PORT
            ));
            cfg.port = 0;
            on_runtime(Node::start(cfg)).await
        }
        other => other,
    }
}

/// A line every server user must see: logged at `info`, and printed on stderr when the
/// process installed no `tracing` subscriber (so it shows without `init_logging`).
fn announce(line: &str) {
    tracing::info!("{line}");
    if !tracing::dispatcher::has_been_set() {
        eprintln!("mpreg: {line}");
    }
}

/// Runs this process as a node until Ctrl-C or SIGTERM, serving every function registered
/// with `#[mpreg::register]` plus the built-ins, then shuts down gracefully.
///
/// Configured by `MPREG_*` variables and `mpreg.toml` (see [`Config`]). Like `mpreg serve`
/// it listens on port 7700 unless a port is configured, and on a free port when 7700 is
/// taken. It says `serving NAME on ADDR` once at start: in the log at `info`, and on
/// stderr too when no `tracing` subscriber is installed.
pub async fn serve() -> Result<()> {
    let node = default_node(Mode::Serve).await?;
    let addr = node.addr().map(|a| a.to_string()).unwrap_or_default();
    announce(&format!("serving {} on {addr}", node.name()));
    on_runtime(async {
        shutdown_signal().await;
        Ok(())
    })
    .await?;
    let n = node.clone();
    on_runtime(async move {
        n.shutdown().await;
        Ok(())
    })
    .await
}

/// The default node as a listening member, started (without built-ins) if needed: what
/// subscribing and receiving messages need, since peers must be able to reach it. Fails if
/// the default node already started as a client (by an earlier `mpreg::call`).
pub(crate) async fn member_node() -> Result<Node> {
    default_node(Mode::Member).await
}

/// Stops the default node, if this process started one, as [`Node::shutdown`] does:
/// it leaves the cluster and flushes what it sent (publications, replies) first. A later
/// `mpreg::call` or `mpreg::publish` starts a new default node. Does nothing when no
/// default node runs.
pub async fn shutdown() {
    let node = DEFAULT.lock().await.take().map(|(n, _)| n);
    if let Some(n) = node {
        let _ = on_runtime(async move {
            n.shutdown().await;
            Ok(())
        })
        .await;
    }
}

/// The default node, starting it (as a client without listener) if needed.
pub async fn node() -> Result<Node> {
    default_node(Mode::Client).await
}

/// Calls `fun` through the default node; see [`Node::call`] for the shape of `args`.
pub async fn call<R>(fun: &str, args: impl Serialize) -> Result<R>
where
    R: DeserializeOwned + Send + 'static,
{
    DefaultTarget::new(Perspective::Any).call(fun, args).await
}

/// Calls `fun` through the default node on every provider that qualifies; results keyed by
/// node name (see [`Node::call_all`]).
pub async fn call_all<R>(
    fun: &str,
    args: impl Serialize,
) -> Result<std::collections::BTreeMap<String, Result<R>>>
where
    R: DeserializeOwned + Send + 'static,
{
    DefaultTarget::new(Perspective::Any)
        .call_all(fun, args)
        .await
}

/// A workflow run through the default node; see [`Flow`](crate::Flow).
pub fn workflow() -> crate::Flow {
    crate::Flow::new(None)
}

/// Calls through the default node restricted to the nodes of host `host`:
/// `mpreg::on_host("lab-pc").call("gpu_temp", ()).await`.
pub fn on_host(host: &str) -> DefaultTarget {
    DefaultTarget::new(Perspective::Host(host.into()))
}

/// Calls through the default node restricted to the node named `name`:
/// `mpreg::on_node("worker-3").call("train", ("m",)).await`.
pub fn on_node(name: &str) -> DefaultTarget {
    DefaultTarget::new(Perspective::Node(name.into()))
}

/// The old name of [`on_host`].
#[deprecated(since = "0.1.0", note = "renamed `mpreg::on_host`")]
pub fn host(host: &str) -> DefaultTarget {
    on_host(host)
}

/// The old name of [`on_node`]; it read like the node itself, which is
/// [`default_node`](crate::default_node).
#[deprecated(
    since = "0.1.0",
    note = "renamed `mpreg::on_node` (the default node itself is `mpreg::default_node()`)"
)]
pub fn named(name: &str) -> DefaultTarget {
    on_node(name)
}

/// A perspective on the default node's cluster; see [`on_host`] and [`on_node`].
#[derive(Debug, Clone)]
pub struct DefaultTarget {
    perspective: Perspective,
}

impl DefaultTarget {
    fn new(perspective: Perspective) -> Self {
        DefaultTarget { perspective }
    }

    /// Calls `fun` on a provider inside this perspective.
    pub async fn call<R>(&self, fun: &str, args: impl Serialize) -> Result<R>
    where
        R: DeserializeOwned + Send + 'static,
    {
        let (target, args) = self.prepare(fun, args).await?;
        let fun = fun.to_string();
        on_runtime(async move {
            let r = target.request(&fun).raw_args(args, None).send::<R>();
            Ok(r.await?.value)
        })
        .await
    }

    /// Calls `fun` on every provider inside this perspective; results by node name.
    pub async fn call_all<R>(
        &self,
        fun: &str,
        args: impl Serialize,
    ) -> Result<std::collections::BTreeMap<String, Result<R>>>
    where
        R: DeserializeOwned + Send + 'static,
    {
        let (target, args) = self.prepare(fun, args).await?;
        let fun = fun.to_string();
        on_runtime(async move { target.request(&fun).raw_args(args, None).send_all().await }).await
    }

    /// Starts service `name` within this perspective and waits until it is ready; see
    /// [`Target::start_service`]: `mpreg::on_host("lab-pc").start_service("camera").await?`.
    pub async fn start_service(&self, name: &str) -> Result<crate::service::ServiceStatus> {
        let (target, name) = (self.service_target().await?, name.to_string());
        on_runtime(async move { target.start_service(&name).await }).await
    }

    /// Stops service `name` within this perspective; see [`Target::stop_service`].
    pub async fn stop_service(&self, name: &str) -> Result<crate::service::Stopped> {
        let (target, name) = (self.service_target().await?, name.to_string());
        on_runtime(async move { target.stop_service(&name).await }).await
    }

    /// Restarts service `name` within this perspective; see [`Target::restart_service`].
    pub async fn restart_service(&self, name: &str) -> Result<crate::service::ServiceStatus> {
        let (target, name) = (self.service_target().await?, name.to_string());
        on_runtime(async move { target.restart_service(&name).await }).await
    }

    /// The last `n` lines of service `name` (numbered `after` or later) within this
    /// perspective; see [`Target::service_logs`].
    pub async fn service_logs(
        &self,
        name: &str,
        n: usize,
        after: u64,
    ) -> Result<crate::service::Logs> {
        let (target, name) = (self.service_target().await?, name.to_string());
        on_runtime(async move { target.service_logs(&name, n, after).await }).await
    }

    /// The services of the controlling nodes within this perspective; see
    /// [`Target::services`].
    pub async fn services(&self) -> Result<Vec<crate::service::HostServices>> {
        let target = self.service_target().await?;
        on_runtime(async move { target.services().await }).await
    }

    /// This perspective on the default node, once it has found the cluster.
    async fn service_target(&self) -> Result<Target> {
        let node = default_node(Mode::Client).await?;
        node.wait_for_cluster().await?;
        Ok(Target::new(node, self.perspective.clone()))
    }

    async fn prepare(&self, fun: &str, args: impl Serialize) -> Result<(Target, bytes::Bytes)> {
        let node = default_node(Mode::Client).await?;
        let args = crate::proto::args::encode_value(&args).map_err(|f| Error::Codec {
            what: "encode arguments",
            fun: fun.into(),
            detail: f.message,
        })?;
        Ok((Target::new(node, self.perspective.clone()), args))
    }
}

/// Waits for Ctrl-C, or SIGTERM on Unix.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Blocking versions of the default-node API, for programs without an async runtime.
pub mod blocking {
    use super::*;

    /// Calls `fun` and blocks the current thread until the result arrives.
    ///
    /// Must not be called from inside an async runtime (it would block a worker thread);
    /// there it returns an error saying to use `mpreg::call(..).await` instead.
    pub fn call<R>(fun: &str, args: impl Serialize) -> Result<R>
    where
        R: DeserializeOwned + Send + 'static,
    {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(Error::Usage(
                "mpreg::blocking::call was called inside an async runtime; use mpreg::call(..).await there".into(),
            ));
        }
        runtime().block_on(super::call(fun, args))
    }
}
