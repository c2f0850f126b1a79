//! The public node handle: start, register functions, call functions by name, shut down.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rmpv::Value;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::net::TcpListener;

use crate::config::{host_id, Config};
use crate::error::{Error, Result};
use crate::function::Function;
use crate::proto::args::encode_value;
use crate::proto::catalog::close_names;
use crate::proto::codec::encode_frame;
use crate::proto::wire::{Frame, Refused};
use crate::registry::Registry;
use crate::runtime::{dialer, dispatch, handshake, listener, Connection, Shared};

/// A running mpreg node. Cheap to clone; every clone is the same node.
///
/// Start one with [`Node::builder`] or [`Node::start`] inside a tokio runtime. It serves the
/// functions registered with `#[mpreg::register]` (collected at link time) plus any added
/// with [`Node::register`], and calls functions anywhere among its peers by name.
#[derive(Clone)]
pub struct Node {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("name", &self.shared.name)
            .field("addr", &self.addr())
            .finish()
    }
}

/// A peer as seen from this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerSummary {
    /// Node name.
    pub name: String,
    /// Random node id.
    pub id: u64,
    /// Role.
    pub role: String,
    /// Host identity.
    pub host: String,
    /// Address of the connection.
    pub addr: SocketAddr,
    /// Port it listens on (0 for pure clients).
    pub listen_port: u16,
    /// Resources it offers.
    pub resources: Vec<String>,
    /// Functions it offers to this node, sorted.
    pub functions: Vec<String>,
}

/// The answer to a call, with who gave it and how long it took.
#[derive(Debug, Clone)]
pub struct Response<R> {
    /// The function's result.
    pub value: R,
    /// Name of the node that ran the function.
    pub node: String,
    /// Time from sending the call to receiving the result.
    pub elapsed: Duration,
}

static TRUST_WARNING: std::sync::Once = std::sync::Once::new();

impl Node {
    /// A builder starting from [`Config::default`] (no file, no environment).
    pub fn builder() -> NodeBuilder {
        NodeBuilder {
            config: Config::default(),
            functions: Vec::new(),
        }
    }

    /// Starts a node with `config`: registers the link-time functions (and the built-ins
    /// unless disabled), listens if configured, connects to the seeds and waits for each
    /// seed's first connection attempt to end.
    pub async fn start(config: Config) -> Result<Node> {
        Self::start_with(config, Vec::new()).await
    }

    async fn start_with(config: Config, extra: Vec<Function>) -> Result<Node> {
        config.validate()?;
        let secret = config.secret()?;
        if secret.is_none() && config.listen {
            TRUST_WARNING.call_once(|| {
                tracing::warn!(
                    "no shared secret configured: this node trusts every peer on its network"
                );
            });
        }
        let mut registry = Registry::from_link_time()?;
        if config.builtins {
            for f in crate::builtins::functions() {
                registry.insert(f)?;
            }
        }
        for f in extra {
            registry.insert(f)?;
        }
        let id: u64 = rand::random();
        let name = config
            .name
            .clone()
            .unwrap_or_else(|| format!("{}-{:06x}", config.role, id & 0xff_ffff));
        let host = host_id(config.host.as_deref());
        let shared = Arc::new(Shared::new(id, name, host, config, secret, registry));
        if shared.config.listen {
            let addr = SocketAddr::new(shared.config.bind, shared.config.port);
            let l = TcpListener::bind(addr)
                .await
                .map_err(|e| Error::io(format!("cannot listen on {addr}"), e))?;
            let local = l
                .local_addr()
                .map_err(|e| Error::io("cannot read the listening address", e))?;
            shared.set_listen_port(local.port());
            tracing::info!(node = %shared.name, %local, cluster = %shared.cluster, "listening");
            shared.tasks.spawn(listener::run(shared.clone(), l));
        }
        let node = Node { shared };
        let seeds = node.shared.config.seeds.clone();
        node.add_seeds(seeds).await;
        Ok(node)
    }

    /// Keeps connections to each of `seeds` (`host:port`), redialing when they drop, and
    /// waits until the first attempt at each has ended (successfully or not).
    pub async fn add_seeds(&self, seeds: impl IntoIterator<Item = String>) {
        let mut firsts = Vec::new();
        for seed in seeds {
            let (tx, rx) = tokio::sync::oneshot::channel();
            self.shared
                .tasks
                .spawn(dialer::maintain(self.shared.clone(), seed, tx));
            firsts.push(rx);
        }
        for rx in firsts {
            let _ = rx.await;
        }
    }

    /// Connects once to `addr` (no redial) and returns the peer's name.
    pub async fn connect(&self, addr: &str) -> Result<String> {
        let conn = handshake::dial(&self.shared, addr).await?;
        Ok(conn.peer.name.clone())
    }

    /// Node name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Random node id.
    pub fn id(&self) -> u64 {
        self.shared.id
    }

    /// Host identity.
    pub fn host_id(&self) -> &str {
        &self.shared.host_id
    }

    /// Listening address, if the node listens. An unspecified bind address (0.0.0.0) is
    /// reported as 127.0.0.1 so that the result can be dialed from this host.
    pub fn addr(&self) -> Option<SocketAddr> {
        if !self.shared.config.listen {
            return None;
        }
        let ip = match self.shared.config.bind {
            ip if ip.is_unspecified() => std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            ip => ip,
        };
        Some(SocketAddr::new(ip, self.shared.listen_port()))
    }

    /// The configuration the node runs with.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// Registers a synchronous closure under `name` with default options (network visible,
    /// no resources, positional arguments only). Peers are told at once.
    pub fn register<A, R, F>(&self, name: &str, f: F) -> Result<()>
    where
        A: DeserializeOwned + Send + 'static,
        R: Serialize,
        F: Fn(A) -> R + Send + Sync + 'static,
    {
        self.register_function(Function::new(name, f))
    }

    /// Registers a [`Function`] with all its options. Peers are told at once.
    pub fn register_function(&self, f: Function) -> Result<()> {
        self.shared.registry.write().unwrap().insert(f)?;
        self.shared.announce_catalog();
        Ok(())
    }

    /// Removes a function; returns whether it existed. Peers are told at once.
    pub fn unregister(&self, name: &str) -> bool {
        let removed = self.shared.registry.write().unwrap().remove(name);
        if removed {
            self.shared.announce_catalog();
        }
        removed
    }

    /// Live peers and what they offer this node.
    pub fn peers(&self) -> Vec<PeerSummary> {
        let mut v: Vec<PeerSummary> = self
            .shared
            .connections()
            .into_iter()
            .map(|c| {
                let mut functions: Vec<String> = c
                    .catalog
                    .read()
                    .unwrap()
                    .names()
                    .map(String::from)
                    .collect();
                functions.sort();
                PeerSummary {
                    name: c.peer.name.clone(),
                    id: c.peer.id,
                    role: c.peer.role.clone(),
                    host: c.peer.host_id.clone(),
                    addr: c.peer.addr,
                    listen_port: c.peer.listen_port,
                    resources: c.peer.resources.clone(),
                    functions,
                }
            })
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Calls `fun` with `args` and decodes the result as `R`.
    ///
    /// `args` is a tuple or array for positional arguments (`("hi",)`, `(1, 2)`), a map or a
    /// struct for keyword arguments, `()` for none; any other single value is one
    /// positional argument. To pass one array as the only argument, wrap it: `(vec,)`.
    pub async fn call<R: DeserializeOwned>(&self, fun: &str, args: impl Serialize) -> Result<R> {
        Ok(self.request(fun).args(args).send::<R>().await?.value)
    }

    /// Calls `fun` with a dynamic argument value and returns the dynamic result.
    pub async fn call_value(&self, fun: &str, args: Value) -> Result<Value> {
        self.call(fun, args).await
    }

    /// A call with every option: keyword arguments, deadline, and a [`Response`] that says
    /// which node answered.
    pub fn request(&self, fun: &str) -> Request<'_> {
        Request {
            node: self,
            fun: fun.to_string(),
            args: Ok(Bytes::from_static(&[0x90])),
            kwargs: None,
            timeout: self.shared.config.call_timeout(),
        }
    }

    /// Stops the node: no more accepts, connections closed (pending calls fail with "node
    /// lost" on both sides), and waits up to 5 s for its tasks to end.
    pub async fn shutdown(&self) {
        // Say why before closing, so peers report "shut down" rather than a bare EOF.
        let bye = encode_frame(&Frame::Refused(Refused {
            reason: format!("node `{}` shut down", self.name()),
        }));
        for list in self.shared.peers.read().unwrap().values() {
            for c in list {
                if let Ok(f) = &bye {
                    c.try_send(f.clone());
                }
                c.close("the node shut down");
            }
        }
        self.shared.shutdown.cancel();
        self.shared.tasks.close();
        if tokio::time::timeout(Duration::from_secs(5), self.shared.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(node = %self.shared.name, tasks = self.shared.tasks.len(), "tasks still running 5 s after shutdown");
        }
    }

    /// Picks who serves `fun`: this node if it has it, else the connected peer offering it
    /// with the fewest of our calls in flight. (The full resolver with scopes, resources and
    /// policies builds on this.)
    fn resolve(&self, fun: &str) -> Result<Option<Arc<Connection>>> {
        if self.shared.registry.read().unwrap().get(fun).is_some() {
            return Ok(None);
        }
        let conns = self.shared.connections();
        let best = conns
            .iter()
            .filter(|c| c.catalog.read().unwrap().get(fun).is_some())
            .min_by_key(|c| c.in_flight.load(std::sync::atomic::Ordering::Relaxed));
        match best {
            Some(c) => Ok(Some(c.clone())),
            None => Err(self.unknown(fun, &conns)),
        }
    }

    fn unknown(&self, fun: &str, conns: &[Arc<Connection>]) -> Error {
        let mut names: Vec<String> = self
            .shared
            .registry
            .read()
            .unwrap()
            .names()
            .map(String::from)
            .collect();
        for c in conns {
            names.extend(c.catalog.read().unwrap().names().map(String::from));
        }
        let close = close_names(fun, names.iter().map(String::as_str));
        let detail = if conns.is_empty() {
            let errs = self.shared.seed_errors.lock().unwrap();
            let mut parts: Vec<String> = errs.values().cloned().collect();
            parts.sort();
            if parts.is_empty() {
                "no peers connected".to_string()
            } else {
                format!("no peers connected; {}", parts.join("; "))
            }
        } else {
            let mut peers: Vec<String> = conns.iter().map(|c| c.peer.name.clone()).collect();
            peers.sort();
            format!("not served here nor by {}", peers.join(", "))
        };
        Error::UnknownFunction {
            fun: fun.into(),
            close,
            detail,
        }
    }
}

/// A call being prepared; see [`Node::request`].
#[must_use = "a request does nothing until `send` is awaited"]
pub struct Request<'a> {
    node: &'a Node,
    fun: String,
    args: std::result::Result<Bytes, String>,
    kwargs: Option<std::result::Result<Bytes, String>>,
    timeout: Duration,
}

impl Request<'_> {
    /// Positional arguments (a tuple or array), or keyword arguments (a map or struct).
    pub fn args(mut self, args: impl Serialize) -> Self {
        self.args = encode_value(&args).map_err(|f| f.message);
        self
    }

    /// Keyword arguments (a map or struct) in addition to positional ones.
    pub fn kwargs(mut self, kwargs: impl Serialize) -> Self {
        self.kwargs = Some(encode_value(&kwargs).map_err(|f| f.message));
        self
    }

    /// Pre-encoded MessagePack arguments (used by forwarding nodes and the CLI).
    pub fn raw_args(mut self, args: Bytes, kwargs: Option<Bytes>) -> Self {
        self.args = Ok(args);
        self.kwargs = kwargs.map(Ok);
        self
    }

    /// The deadline for this call (default from the config, 30 s).
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    /// Sends the call and decodes the result as `R`.
    pub async fn send<R: DeserializeOwned>(self) -> Result<Response<R>> {
        let fun = self.fun.clone();
        let raw = self.send_raw().await?;
        let value = rmp_serde::from_slice(&raw.value).map_err(|e| Error::Codec {
            what: "decode the result",
            fun: fun.clone(),
            detail: format!("{e} (from node `{}`)", raw.node),
        })?;
        Ok(Response {
            value,
            node: raw.node,
            elapsed: raw.elapsed,
        })
    }

    /// Sends the call and returns the still-encoded result.
    pub async fn send_raw(self) -> Result<Response<Bytes>> {
        let fun = self.fun;
        let codec = |detail| Error::Codec {
            what: "encode arguments",
            fun: fun.clone(),
            detail,
        };
        let args = self.args.map_err(codec)?;
        let kwargs = self.kwargs.transpose().map_err(codec)?;
        let start = Instant::now();
        let (value, node) = match self.node.resolve(&fun)? {
            None => (
                self.node
                    .call_local(&fun, args, kwargs, self.timeout)
                    .await?,
                self.node.name().to_string(),
            ),
            Some(conn) => {
                conn.in_flight
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let r = conn.call(&fun, args, kwargs, self.timeout).await;
                conn.in_flight
                    .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                (r?, conn.peer.name.clone())
            }
        };
        Ok(Response {
            value,
            node,
            elapsed: start.elapsed(),
        })
    }
}

impl Node {
    /// Runs a local function in the caller's task, with the same argument fitting, panic
    /// isolation and deadline as a remote call.
    async fn call_local(
        &self,
        fun: &str,
        args: Bytes,
        kwargs: Option<Bytes>,
        timeout: Duration,
    ) -> Result<Bytes> {
        let func = self
            .shared
            .registry
            .read()
            .unwrap()
            .get(fun)
            .cloned()
            .ok_or_else(|| self.unknown(fun, &[]))?;
        let me = self.name();
        let fitted = crate::proto::args::fit(func.spec.params.as_deref(), &args, kwargs.as_deref())
            .map_err(|f| Error::from_failure(f, fun, me))?
            .unwrap_or_else(|| args.clone());
        let call = crate::proto::wire::Call {
            id: 0,
            fun: fun.into(),
            args: args.to_vec(),
            kwargs: kwargs.map(|k| k.to_vec()),
            timeout_ms: timeout.as_millis() as u64,
        };
        match dispatch::run(&func, fitted, Some(timeout), &call).await {
            Ok(b) => Ok(b),
            Err(f) if f.kind == crate::proto::wire::FailureKind::Timeout => Err(Error::Timeout {
                fun: fun.into(),
                node: me.into(),
                after: timeout,
            }),
            Err(f) => Err(Error::from_failure(f, fun, me)),
        }
    }
}

/// Builds and starts a [`Node`].
#[must_use = "a builder does nothing until `start` is awaited"]
pub struct NodeBuilder {
    config: Config,
    functions: Vec<Function>,
}

impl NodeBuilder {
    /// Starts from `config` instead of the defaults.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }
    /// Node name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.config.name = Some(name.into());
        self
    }
    /// Role (MARO component type).
    pub fn role(mut self, role: impl Into<String>) -> Self {
        self.config.role = role.into();
        self
    }
    /// Host identity (normally detected).
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.config.host = Some(host.into());
        self
    }
    /// Resources offered.
    pub fn resources<I: IntoIterator<Item = S>, S: Into<String>>(mut self, r: I) -> Self {
        self.config.resources = r.into_iter().map(Into::into).collect();
        self
    }
    /// Adds a seed address `host:port`.
    pub fn seed(mut self, addr: impl ToString) -> Self {
        self.config.seeds.push(addr.to_string());
        self
    }
    /// Cluster id.
    pub fn cluster(mut self, c: impl Into<String>) -> Self {
        self.config.cluster = c.into();
        self
    }
    /// File holding the shared secret.
    pub fn secret_file(mut self, p: impl Into<std::path::PathBuf>) -> Self {
        self.config.secret_file = Some(p.into());
        self
    }
    /// Listening port (0: any free port).
    pub fn port(mut self, p: u16) -> Self {
        self.config.port = p;
        self
    }
    /// Listening address.
    pub fn bind(mut self, ip: std::net::IpAddr) -> Self {
        self.config.bind = ip;
        self
    }
    /// Whether to listen at all (pure clients need not).
    pub fn listen(mut self, yes: bool) -> Self {
        self.config.listen = yes;
        self
    }
    /// Whether to register the built-ins `echo` and `echos` (default yes).
    pub fn builtins(mut self, yes: bool) -> Self {
        self.config.builtins = yes;
        self
    }
    /// Calls served at once per connection before "busy".
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.config.max_in_flight = n;
        self
    }
    /// Largest frame body accepted.
    pub fn max_frame(mut self, n: usize) -> Self {
        self.config.max_frame = n;
        self
    }
    /// Default call deadline.
    pub fn call_timeout(mut self, t: Duration) -> Self {
        self.config.call_timeout_ms = t.as_millis() as u64;
        self
    }
    /// Registers a function at start, in addition to the link-time ones.
    pub fn function(mut self, f: Function) -> Self {
        self.functions.push(f);
        self
    }
    /// Starts the node.
    pub async fn start(self) -> Result<Node> {
        Node::start_with(self.config, self.functions).await
    }
}
