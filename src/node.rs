//! The public node handle: start, register functions, call functions by name, shut down.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rmpv::Value;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::config::{host_id, Config};
use crate::error::Result;
use crate::function::Function;
use crate::proto::codec::encode_frame;
use crate::proto::resolve::Perspective;
use crate::proto::wire::{Frame, Refused};
use crate::registry::Registry;
use crate::request::{Request, Target};
use crate::runtime::{attach, bootstrap, dialer, Shared};

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

/// Datagram counters of a node (gossip and discovery beacons together for the drops).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct NodeStats {
    /// Gossip datagrams sent.
    pub gossip_sent: u64,
    /// Gossip datagrams received and accepted by the envelope check.
    pub gossip_received: u64,
    /// Bytes of gossip sent, envelope included.
    pub gossip_bytes_sent: u64,
    /// Datagrams dropped as not mpreg's.
    pub dropped_malformed: u64,
    /// Datagrams dropped as from another cluster.
    pub dropped_other_cluster: u64,
    /// Datagrams dropped for not decrypting with any key held, or outside the 5-minute clock window
    /// (with a shared secret).
    pub dropped_unauthenticated: u64,
    /// Requests (calls, relayed calls, workflow submissions) sent to other nodes.
    pub requests_sent: u64,
    /// Publications this node published.
    pub published: u64,
    /// Publications peers sent to this node.
    pub publications_received: u64,
    /// Of those, the ones no subscription here matched (publishers send only to nodes with
    /// a matching subscription, so this stays 0 unless a subscription just ended).
    pub publications_unmatched: u64,
    /// Publications dropped from full subscriber queues (oldest first), over the node's life;
    /// lossless subscribers never drop (they hold their publishers back instead).
    pub publications_dropped: u64,
    /// Subscriptions on this node now.
    pub subscriptions: u64,
    /// Live TCP connections now (a duplicate being retired after a simultaneous dial
    /// counts until it closes).
    pub connections: u64,
    /// Authentic datagrams dropped as replays (with a shared secret): a copy of one already
    /// accepted, one older than the replay window, or one addressed to another node.
    pub dropped_replayed: u64,
}

/// A member of the cluster as a node sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MemberSummary {
    /// Node name.
    pub name: String,
    /// Random node id (a JSON string of 16 hex digits: JSON numbers lose precision
    /// above 2^53).
    #[serde(serialize_with = "hex_id")]
    pub id: u64,
    /// Role.
    pub role: String,
    /// Host identity.
    pub host: String,
    /// Address for calls and gossip.
    pub addr: SocketAddr,
    /// `alive` or `suspect`.
    pub state: String,
    /// Resources it offers.
    pub resources: Vec<String>,
    /// Functions it offers to the asking node, mpreg's built-ins apart (empty if its
    /// catalog is not known yet), sorted.
    pub functions: Vec<String>,
    /// mpreg's built-in functions it offers (`_info`, `_metrics`, and `echo`/`echos` on
    /// `mpreg serve`), sorted.
    pub builtins: Vec<String>,
    /// Its topic subscriptions, `pattern` or `pattern (group)`, sorted.
    pub subscriptions: Vec<String>,
}

fn hex_id<S: serde::Serializer>(id: &u64, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{id:016x}"))
}

impl MemberSummary {
    /// Whether it offers `fun`, among its own functions or mpreg's built-ins.
    pub fn offers(&self, fun: &str) -> bool {
        self.functions
            .iter()
            .chain(&self.builtins)
            .any(|f| f == fun)
    }
}

impl From<crate::proto::wire::MemberInfo> for MemberSummary {
    fn from(m: crate::proto::wire::MemberInfo) -> Self {
        let (mut functions, mut subscriptions): (Vec<String>, Vec<String>) = m
            .catalog
            .map(|c| {
                let subs = c.subscriptions.into_iter().map(|s| match s.group {
                    Some(g) => format!("{} ({g})", s.pattern),
                    None => s.pattern,
                });
                (
                    c.functions.into_iter().map(|f| f.name).collect(),
                    subs.collect(),
                )
            })
            .unwrap_or_default();
        functions.sort();
        subscriptions.sort();
        let (builtins, functions) = functions
            .into_iter()
            .partition(|f| crate::builtins::is_builtin(f));
        MemberSummary {
            name: m.member.name,
            id: m.member.id,
            role: m.member.role,
            host: m.member.host,
            addr: m.member.addr,
            state: m.state,
            resources: m.resources,
            functions,
            builtins,
            subscriptions,
        }
    }
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
        let secret = config.keyring()?;
        // Only for nodes that asked to warn: a client command that listens just to receive
        // its own publications (`mpreg sub`) turns it off, so the warning is not printed on
        // every run (issue #14); `mpreg serve` and library servers keep it.
        if secret.is_none() && config.listen && config.trust_warning {
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
            .unwrap_or_else(|| crate::proto::member::Member::default_name(&config.role, id));
        let host = host_id(config.host.as_deref());
        let secret = secret.map(crate::proto::keyring::SharedKeyring::new);
        let shared = Arc::new(Shared::new(id, name, host, config, secret, registry));
        for f in crate::builtins::observers(&shared) {
            shared.registry.write().insert(f)?;
        }
        if shared.config.listen {
            for f in crate::keys::functions(&shared) {
                shared.registry.write().insert(f)?;
            }
        }
        let node = Node { shared };
        node.attach_link_time_handlers()?;
        // First, so that a taken HTTP port fails the start before anything else runs, and
        // so that /health answers (live, not ready) while the node joins.
        #[cfg(feature = "http")]
        if let Some(addr) = node.shared.config.http_addr {
            crate::http::start(&node.shared, addr).await?;
        }
        if let Err(e) = node.start_network().await {
            node.abort_start().await;
            return Err(e);
        }
        // After listening: services get the node's address as their seed.
        if node.shared.config.services && node.shared.config.listen {
            if let Err(e) = crate::control::start(&node.shared) {
                node.shutdown().await;
                return Err(e);
            }
        }
        Ok(node)
    }

    /// Listens and joins (a member), or attaches (a client).
    async fn start_network(&self) -> Result<()> {
        let seeds = self.shared.config.seeds.clone();
        if self.shared.config.listen {
            // Before listening, so that the first catalog peers see already has them.
            crate::pubsub::install_link_time(&self.shared)?;
            let sockets = bootstrap::listen(&self.shared).await?;
            self.add_seeds(seeds.clone()).await;
            // Only a chosen name can collide; a generated one is random.
            if self.shared.config.name.is_some() {
                bootstrap::claim_name(&self.shared).await?;
            }
            bootstrap::join(&self.shared, sockets);
            bootstrap::start_discovery(&self.shared).await?;
            bootstrap::announce_seeds(&self.shared, &seeds).await;
        } else {
            self.add_seeds(seeds).await;
            self.join_as_client().await;
        }
        Ok(())
    }

    /// Undoes a start that failed after the node began to listen (or bound its HTTP port):
    /// nobody saw us join, so no goodbye.
    async fn abort_start(&self) {
        for c in self.shared.all_connections() {
            c.close("the node did not start");
        }
        self.shared.shutdown.cancel();
        self.shared.tasks.close();
        let _ = tokio::time::timeout(Duration::from_secs(2), self.shared.tasks.wait()).await;
    }

    /// A client (no listener, no gossip) attaches to the first member it reaches (a seed,
    /// else one found by discovery), which then pushes it every change of the cluster; a
    /// background task re-attaches when that member goes away (`runtime/attach.rs`).
    async fn join_as_client(&self) {
        let s = &self.shared;
        let mut first = s
            .connections()
            .into_iter()
            .find(|c| c.peer.listen_port != 0);
        if first.is_none() && s.config.seeds.is_empty() {
            match bootstrap::discover_and_connect(s).await {
                Ok(c) => first = c,
                Err(e) => tracing::warn!(error = %e, "discovery failed"),
            }
        }
        if let Some(conn) = first {
            if let Err(e) = attach::attach(s, &conn).await {
                tracing::warn!(peer = %conn.peer.name, error = %e, "cannot learn the member list");
            }
        }
        s.tasks.spawn(attach::maintain(s.clone()));
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
        let conn = self.shared.connect_to(addr).await?;
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

    /// Listening address, if the node listens: the address it advertises to other members
    /// (with an unspecified bind address, that of the first selected non-loopback interface,
    /// else 127.0.0.1).
    pub fn addr(&self) -> Option<SocketAddr> {
        self.shared.me.get().map(|m| m.addr)
    }

    /// Where the HTTP listener (`--http`, [`NodeBuilder::http`]) is bound, if the node has
    /// one: the configured address with the port the OS picked for port 0.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.shared.http_addr.get().copied()
    }

    /// Whether the node is ready for work, as `GET /health/ready` reports it: a member
    /// once it listens and its first discovery round is done (it joined a peer, or found
    /// none within the discovery wait); a client while it is attached to a member.
    pub fn is_ready(&self) -> bool {
        self.shared.is_ready()
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
        self.shared.registry.write().insert(f)?;
        self.shared.announce_catalog();
        Ok(())
    }

    /// Live members other than this node, as the membership sees them (for a client: as
    /// the node it learned the cluster from reported them).
    pub fn members(&self) -> Vec<MemberSummary> {
        self.shared
            .members_for(&self.shared.host_id)
            .members
            .into_iter()
            .filter(|m| m.member.id != self.shared.id)
            .map(MemberSummary::from)
            .collect()
    }

    /// Removes a function; returns whether it existed. Peers are told at once.
    pub fn unregister(&self, name: &str) -> bool {
        let removed = self.shared.registry.write().remove(name);
        if removed {
            self.shared.announce_catalog();
        }
        removed
    }

    /// Counters of this node: datagrams of membership and discovery, requests, pub/sub.
    pub fn stats(&self) -> NodeStats {
        stats_of(&self.shared)
    }

    /// The counters of the member listening at `addr`, asked over the network (what
    /// `mpreg nodes` shows).
    pub async fn stats_of(&self, addr: SocketAddr) -> Result<NodeStats> {
        let r = self.request(crate::runtime::dispatch::STATS).at(addr);
        Ok(r.send::<NodeStats>().await?.value)
    }

    /// Waits until this node knows another node of the cluster, at most until the
    /// discovery wait ([`Config::discovery_wait_ms`], counted from start) is over; then
    /// fails with [`Error::NoCluster`](crate::Error::NoCluster), which says what was tried.
    pub async fn wait_for_cluster(&self) -> Result<()> {
        let far = std::time::Instant::now() + self.shared.config.discovery_wait();
        if self.shared.await_cluster(far).await {
            Ok(())
        } else {
            Err(self.shared.no_cluster())
        }
    }

    /// Waits until at least `count` members offer `fun` (as their own function or as a
    /// built-in), at most `timeout`; returns how many do. Fails with
    /// [`Error::Incomplete`](crate::Error::Incomplete) saying how many were found.
    pub async fn wait_for_providers(
        &self,
        fun: &str,
        count: usize,
        timeout: Duration,
    ) -> Result<usize> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut changes = self.shared.view_epoch.subscribe();
        loop {
            changes.mark_unchanged();
            let have = self.members().iter().filter(|m| m.offers(fun)).count();
            if have >= count {
                return Ok(have);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(crate::Error::Incomplete(format!(
                    "only {have} of {count} providers of `{fun}` known after {timeout:?}"
                )));
            }
            // A client's member list comes from pushes; poll as well, briefly.
            let poll = (tokio::time::Instant::now() + Duration::from_millis(50)).min(deadline);
            tokio::select! {
                _ = changes.changed() => {}
                _ = tokio::time::sleep_until(poll) => {}
            }
        }
    }

    /// What this node measures (what its `_metrics` built-in answers).
    pub fn metrics(&self) -> crate::MetricsSnapshot {
        crate::metrics::collect::snapshot(&self.shared)
    }

    /// Who this node is (what its `_info` built-in answers).
    pub fn info(&self) -> crate::NodeInfo {
        crate::metrics::collect::info(&self.shared)
    }

    /// This node's metrics as a Prometheus text page (format 0.0.4: serve it with
    /// content type `text/plain; version=0.0.4`): what the node's own HTTP `/metrics`
    /// serves, for an HTTP server of yours.
    pub fn prometheus(&self) -> String {
        crate::metrics::prometheus::render(&self.shared)
    }

    /// Live peers and what they offer this node.
    pub fn peers(&self) -> Vec<PeerSummary> {
        let mut v: Vec<PeerSummary> = self
            .shared
            .connections()
            .into_iter()
            .map(|c| {
                let mut functions: Vec<String> =
                    c.catalog.read().names().map(String::from).collect();
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
        Request::new(self, fun, Perspective::Any)
    }

    /// Calls `fun` on every provider that qualifies (all of them, not one) and returns each
    /// one's result keyed by node name. Fails only when none qualifies; see
    /// [`Request::send_all`] for `locs`, scope and perspective.
    pub async fn call_all<R: DeserializeOwned>(
        &self,
        fun: &str,
        args: impl Serialize,
    ) -> Result<BTreeMap<String, Result<R>>> {
        self.request(fun).args(args).send_all().await
    }

    /// A workflow (MPREG multi-call) run with this node as the entry point.
    pub fn workflow(&self) -> crate::Flow {
        crate::Flow::new(Some(self.clone()))
    }

    /// Calls restricted to the nodes of host `host` (a perspective, DESIGN §7).
    pub fn host(&self, host: &str) -> Target {
        Target::new(self.clone(), Perspective::Host(host.into()))
    }

    /// Calls restricted to the node named `name`.
    pub fn node(&self, name: &str) -> Target {
        Target::new(self.clone(), Perspective::Node(name.into()))
    }

    #[cfg(feature = "http")]
    pub(crate) fn from_shared(shared: Arc<Shared>) -> Node {
        Node { shared }
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Stops the node: no more accepts, connections closed (pending calls fail with "node
    /// lost" on both sides), and waits up to 5 s for its tasks to end.
    pub async fn shutdown(&self) {
        // Services first, while this node still relays their goodbyes and sees them leave.
        if let Some(c) = self.shared.services.get() {
            c.stop_all().await;
        }
        // Leave the membership first (a few datagrams), then say goodbye on every
        // connection so that peers drop us from their view at once.
        if let Some(tx) = self.shared.gossip.get() {
            let (done, wait) = tokio::sync::oneshot::channel();
            if tx
                .send(crate::runtime::gossip::Command::Leave(done))
                .await
                .is_ok()
            {
                let _ = tokio::time::timeout(Duration::from_millis(200), wait).await;
            }
        }
        let bye = encode_frame(&Frame::Goodbye(Refused {
            reason: format!("node `{}` shut down", self.name()),
        }));
        let conns: Vec<_> = self
            .shared
            .peers
            .read()
            .values()
            .flatten()
            .cloned()
            .collect();
        // The goodbye goes after everything queued before it (publications, replies), so
        // peers read all of it first; a peer that does not read gets it dropped after a
        // bounded wait rather than holding up the stop.
        let goodbyes = conns.iter().map(|c| async {
            if let Ok(f) = &bye {
                let _ = tokio::time::timeout(Duration::from_secs(2), c.send(f.clone())).await;
            }
            c.close("the node shut down");
        });
        futures_util::future::join_all(goodbyes).await;
        if let Some(d) = self.shared.discovery.get() {
            d.stop().await;
        }
        self.shared.pubsub.close_all();
        self.shared.shutdown.cancel();
        self.shared.tasks.close();
        if tokio::time::timeout(Duration::from_secs(5), self.shared.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(node = %self.shared.name, tasks = self.shared.tasks.len(), "tasks still running 5 s after shutdown");
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
    /// Interfaces for discovery, by name or address (default: every multicast-capable
    /// interface plus loopback). Tests and demos pass `["lo"]`.
    pub fn interfaces<I: IntoIterator<Item = S>, S: Into<String>>(mut self, i: I) -> Self {
        self.config.interfaces = i.into_iter().map(Into::into).collect();
        self
    }
    /// Whether to advertise and browse with mDNS (default yes).
    pub fn mdns(mut self, yes: bool) -> Self {
        self.config.mdns = yes;
        self
    }
    /// mDNS UDP port (default 5353).
    pub fn mdns_port(mut self, port: u16) -> Self {
        self.config.mdns_port = port;
        self
    }
    /// Whether to send and answer UDP broadcast beacons (default yes).
    pub fn beacon(mut self, yes: bool) -> Self {
        self.config.beacon = yes;
        self
    }
    /// Beacon UDP port, shared by the nodes of a host (default 7701).
    pub fn beacon_port(mut self, port: u16) -> Self {
        self.config.beacon_port = port;
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
    /// Default choice among providers for this node's calls.
    pub fn policy(mut self, policy: crate::Policy) -> Self {
        self.config.policy = policy;
        self
    }
    /// Calls in flight with one provider at which the resolver spills to the next tier.
    pub fn spill_at(mut self, n: usize) -> Self {
        self.config.spill_at = n;
        self
    }
    /// How long a node that has found no peer waits for discovery before its first call
    /// fails with [`Error::NoCluster`](crate::Error::NoCluster) (default 1.5 s).
    pub fn discovery_wait(mut self, wait: Duration) -> Self {
        self.config.discovery_wait_ms = wait.as_millis() as u64;
        self
    }
    /// Whether to count calls, latencies, workflows and publications by name (default
    /// yes; see [`Config::metrics`]).
    pub fn metrics(mut self, yes: bool) -> Self {
        self.config.metrics = yes;
        self
    }

    /// Publications queued per subscriber before the oldest is dropped (and counted).
    pub fn sub_queue(mut self, n: usize) -> Self {
        self.config.sub_queue = n;
        self
    }
    /// Serves Prometheus `/metrics`, `/health/live` and `/health/ready` over HTTP on `addr`
    /// (port 0 picks a free one: see [`Node::http_addr`]). Off by default; needs the `http`
    /// cargo feature (on by default), else the start fails saying so.
    pub fn http(mut self, addr: SocketAddr) -> Self {
        self.config.http_addr = Some(addr);
        self
    }

    /// The file holding the bearer token gateway clients must send
    /// ([`Config::http_token_file`]).
    pub fn http_token_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.config.http_token_file = Some(path.into());
        self
    }

    /// Runs a service controller in this node, as `mpreg serve` does (listening nodes
    /// only): this host's installed services are listed, started and stopped through it.
    pub fn services(mut self, yes: bool) -> Self {
        self.config.services = yes;
        self
    }

    /// Searches `dir` for services too, after the user's folder and `./services`.
    pub fn services_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.config.services_dirs.push(dir.into());
        self
    }

    /// Lets callers on other hosts start and stop this node's services although the
    /// cluster has no shared secret (`--allow-remote-services`).
    pub fn allow_remote_services(mut self, yes: bool) -> Self {
        self.config.allow_remote_services = yes;
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

/// Counters of the node behind `shared` (see [`Node::stats`]).
pub(crate) fn stats_of(shared: &Shared) -> NodeStats {
    use std::sync::atomic::Ordering::Relaxed;
    let c = &shared.counters;
    let d = shared.discovery.get().map(|d| d.stats());
    let p = &shared.pubsub.stats;
    let local = shared.pubsub.local.read();
    NodeStats {
        gossip_sent: c.gossip_sent.load(Relaxed),
        gossip_received: c.gossip_received.load(Relaxed),
        gossip_bytes_sent: c.gossip_bytes_sent.load(Relaxed),
        dropped_malformed: c.dropped_malformed.load(Relaxed)
            + d.as_ref()
                .map_or(0, |d| d.beacons_malformed + d.mdns_malformed),
        dropped_other_cluster: c.dropped_other_cluster.load(Relaxed)
            + d.as_ref()
                .map_or(0, |d| d.beacons_other_cluster + d.mdns_other_cluster),
        dropped_unauthenticated: c.dropped_unauthenticated.load(Relaxed)
            + d.as_ref()
                .map_or(0, |d| d.beacons_unauthenticated + d.mdns_unauthenticated),
        requests_sent: c.requests_sent.load(Relaxed),
        published: p.published.load(Relaxed),
        publications_received: p.received.load(Relaxed),
        publications_unmatched: p.unmatched.load(Relaxed),
        publications_dropped: local.dropped(),
        subscriptions: local.len() as u64,
        connections: c.connections.load(Relaxed),
        dropped_replayed: c.dropped_replayed.load(Relaxed)
            + d.as_ref().map_or(0, |d| d.beacons_replayed),
    }
}
