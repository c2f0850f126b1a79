//! Zero-config discovery (DESIGN §4): how a node finds its first peers with no address
//! configured. Gossip (SWIM) takes over from there.
//!
//! - [`beacon`]: UDP broadcast on a well-known port shared by every node of a host
//!   (`SO_REUSEPORT`): periodic `announce`s, and `probe`/`answer` so a fresh client finds
//!   a node in about a millisecond.
//! - [`mdns`]: `_mpreg._tcp.local.` via mdns-sd, for networks where broadcast is filtered
//!   but multicast is not, and for visibility to standard tools (`avahi-browse`).
//! - [`interfaces`]: which interfaces both of them use.
//!
//! A serving node runs [`Discovery`]; a short-lived client calls [`probe`]. Both report
//! [`Member`]s, which are only *contacts*: the caller still authenticates them in the TCP
//! handshake and learns the full membership from gossip.

pub(crate) mod beacon;
pub(crate) mod interfaces;
pub(crate) mod mdns;

use crate::proto::keyring::SharedKeyring;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::proto::member::Member;

pub(crate) use interfaces::Iface;

/// How often a serving node announces itself by default.
pub(crate) const DEFAULT_BEACON_INTERVAL: Duration = Duration::from_secs(1);

/// How long [`probe`] keeps collecting after the first answer: long enough for the other
/// nodes of the same host (which answer the same broadcast within microseconds), short
/// enough that a CLI call does not feel it.
pub(crate) const PROBE_GRACE: Duration = Duration::from_millis(10);

/// What discovery needs from the node configuration.
#[derive(Clone)]
pub(crate) struct DiscoveryConfig {
    /// Cluster id; other clusters are ignored (and counted).
    pub cluster: String,
    /// Shared secrets sealing beacons and authenticating mDNS TXT records.
    pub secret: Option<SharedKeyring>,
    /// Interfaces to send and listen on, from [`interfaces::select`].
    pub interfaces: Vec<Iface>,
    /// Run the UDP broadcast beacon.
    pub beacon: bool,
    /// UDP port of the beacon, shared by every node of a host.
    pub beacon_port: u16,
    /// Interval between a serving node's announces.
    pub beacon_interval: Duration,
    /// Run mDNS.
    pub mdns: bool,
    /// mDNS UDP port (5353 outside tests).
    pub mdns_port: u16,
    /// Where the node's HTTP gateway listens, advertised in beacons (`http`) and mDNS TXT
    /// (`http=PORT`) for clients in other languages.
    pub http: Option<std::net::SocketAddr>,
}

impl std::fmt::Debug for DiscoveryConfig {
    /// Like a derived `Debug`, but never prints the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiscoveryConfig")
            .field("cluster", &self.cluster)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("interfaces", &self.interfaces)
            .field("beacon", &self.beacon)
            .field("beacon_port", &self.beacon_port)
            .field("beacon_interval", &self.beacon_interval)
            .field("mdns", &self.mdns)
            .field("mdns_port", &self.mdns_port)
            .finish()
    }
}

impl DiscoveryConfig {
    /// Discovery settings of `cfg`; fails when a configured interface does not exist.
    pub fn from_config(cfg: &crate::Config, secret: Option<SharedKeyring>) -> crate::Result<Self> {
        Ok(DiscoveryConfig {
            cluster: cfg.cluster.clone(),
            secret,
            interfaces: interfaces::select(&cfg.interfaces)?,
            beacon: cfg.beacon,
            beacon_port: cfg.beacon_port,
            beacon_interval: DEFAULT_BEACON_INTERVAL,
            mdns: cfg.mdns,
            mdns_port: cfg.mdns_port,
            http: None,
        })
    }

    /// The beacon broadcast addresses, one per distinct subnet.
    pub(crate) fn broadcasts(&self) -> Vec<std::net::Ipv4Addr> {
        let mut out = Vec::new();
        for i in &self.interfaces {
            if !out.contains(&i.broadcast) {
                out.push(i.broadcast);
            }
        }
        out
    }

    /// Whether `ip` lies on one of the selected interfaces' subnets.
    pub(crate) fn on_selected(&self, ip: std::net::Ipv4Addr) -> bool {
        self.interfaces.iter().any(|i| i.contains(ip))
    }
}

/// Discovery counters, a snapshot from [`Discovery::stats`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct DiscoveryStats {
    /// Beacon datagrams sent (announces, answers, probes).
    pub beacons_sent: u64,
    /// Beacon datagrams sending failed (logged at debug).
    pub beacon_send_errors: u64,
    /// Valid beacon datagrams received from other members or clients.
    pub beacons_received: u64,
    /// Beacon datagrams dropped: not an mpreg beacon, or undecodable.
    pub beacons_malformed: u64,
    /// Beacon datagrams dropped: another cluster.
    pub beacons_other_cluster: u64,
    /// Beacon datagrams dropped: not decrypting with any key held (or none sent), or outside the clock window.
    pub beacons_unauthenticated: u64,
    /// Beacon datagrams ignored: from an address on no selected interface's subnet.
    pub beacons_off_interface: u64,
    /// mDNS services resolved that became reports.
    pub mdns_resolved: u64,
    /// mDNS services dropped: TXT record missing fields, or no IPv4 address.
    pub mdns_malformed: u64,
    /// mDNS services dropped: another cluster.
    pub mdns_other_cluster: u64,
    /// mDNS services dropped: missing or wrong TXT MAC (when a secret is set).
    pub mdns_unauthenticated: u64,
    /// Members handed to the node.
    pub reported: u64,
    /// Members not handed over because the node's channel was full or closed.
    pub reports_dropped: u64,
    /// Beacon datagrams dropped as replays (with a secret): see `proto::replay`.
    pub beacons_replayed: u64,
}

/// The live counters behind [`DiscoveryStats`], shared by the transport tasks.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub beacons_sent: AtomicU64,
    pub beacon_send_errors: AtomicU64,
    pub beacons_received: AtomicU64,
    pub beacons_malformed: AtomicU64,
    pub beacons_other_cluster: AtomicU64,
    pub beacons_unauthenticated: AtomicU64,
    pub beacons_off_interface: AtomicU64,
    pub mdns_resolved: AtomicU64,
    pub mdns_malformed: AtomicU64,
    pub mdns_other_cluster: AtomicU64,
    pub mdns_unauthenticated: AtomicU64,
    pub reported: AtomicU64,
    pub reports_dropped: AtomicU64,
    pub beacons_replayed: AtomicU64,
}

/// Adds one to a counter (the one helper all of the node's counters use).
pub(crate) use crate::metrics::bump;

impl Counters {
    /// A consistent-enough copy for display.
    fn snapshot(&self) -> DiscoveryStats {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        DiscoveryStats {
            beacons_sent: g(&self.beacons_sent),
            beacon_send_errors: g(&self.beacon_send_errors),
            beacons_received: g(&self.beacons_received),
            beacons_malformed: g(&self.beacons_malformed),
            beacons_other_cluster: g(&self.beacons_other_cluster),
            beacons_unauthenticated: g(&self.beacons_unauthenticated),
            beacons_off_interface: g(&self.beacons_off_interface),
            mdns_resolved: g(&self.mdns_resolved),
            mdns_malformed: g(&self.mdns_malformed),
            mdns_other_cluster: g(&self.mdns_other_cluster),
            mdns_unauthenticated: g(&self.mdns_unauthenticated),
            reported: g(&self.reported),
            reports_dropped: g(&self.reports_dropped),
            beacons_replayed: g(&self.beacons_replayed),
        }
    }
}

/// Where transports hand found members: the node's bounded channel, never awaited so that
/// a busy node cannot stall a receive loop (mdns-sd drops slow consumers silently).
#[derive(Clone)]
pub(crate) struct Sink {
    tx: mpsc::Sender<Member>,
    counters: Arc<Counters>,
}

impl Sink {
    /// Hands `m` over, or counts it as dropped.
    pub(crate) fn report(&self, m: Member) {
        match self.tx.try_send(m) {
            Ok(()) => bump(&self.counters.reported),
            Err(_) => bump(&self.counters.reports_dropped),
        }
    }
}

pub(crate) use crate::runtime::now_ms;

/// Discovery for a serving node: advertise `me`, report every other member found on `found`.
///
/// Dropping it stops its tasks too, but only [`Discovery::stop`] waits for the mDNS goodbye.
pub(crate) struct Discovery {
    counters: Arc<Counters>,
    /// Child of the node's shutdown token: cancelled by `stop`, by drop, or with the node.
    cancel: CancellationToken,
    /// Our own tasks (also tracked by the node's tracker), so `stop` can wait for them.
    mine: TaskTracker,
    mdns: Option<Arc<mdns::Responder>>,
}

impl Discovery {
    /// Starts every transport enabled in `cfg`. Fails when a socket cannot be bound or the
    /// mDNS daemon cannot start; a disabled transport is simply not started.
    pub async fn start(
        cfg: DiscoveryConfig,
        me: Member,
        catalog_version: u64,
        found: mpsc::Sender<Member>,
        tasks: &TaskTracker,
        shutdown: CancellationToken,
        ticks: crate::runtime::grid::Ticks,
    ) -> crate::Result<Discovery> {
        let counters = Arc::new(Counters::default());
        let sink = Sink {
            tx: found,
            counters: counters.clone(),
        };
        let cancel = shutdown.child_token();
        let mine = TaskTracker::new();
        let cfg = Arc::new(cfg);
        // Bind everything before spawning anything, so a failure leaves nothing running.
        let beacon = match cfg.beacon {
            true => Some(beacon::Server::bind(cfg.clone(), me.clone(), sink.clone())?),
            false => None,
        };
        let mdns = match cfg.mdns {
            true => Some(mdns::Responder::start(
                cfg.clone(),
                &me,
                catalog_version,
                sink,
            )?),
            false => None,
        };
        if let Some(server) = beacon {
            tasks.spawn(mine.track_future(server.run(cancel.clone(), ticks)));
        }
        let responder = mdns.map(|(responder, task)| {
            tasks.spawn(mine.track_future(task.run(cancel.clone())));
            responder
        });
        mine.close();
        Ok(Discovery {
            counters,
            cancel,
            mine,
            mdns: responder,
        })
    }

    /// Publishes a new catalog version in the mDNS TXT record (beacons do not carry it).
    pub fn set_catalog_version(&self, v: u64) {
        if let Some(r) = &self.mdns {
            r.set_catalog_version(v);
        }
    }

    /// Advertises again over mDNS, with the MAC of the keyring's primary of now.
    pub fn readvertise(&self) {
        if let Some(r) = &self.mdns {
            r.readvertise();
        }
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> DiscoveryStats {
        self.counters.snapshot()
    }

    /// Sends the mDNS goodbye and stops every task; returns once they are done. Idempotent.
    pub async fn stop(&self) {
        self.cancel.cancel();
        self.mine.wait().await;
    }
}

impl Drop for Discovery {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Discovery for a short-lived client: who is out there right now? Beacon probe and mDNS
/// browse in parallel; returns at the first answers (plus a short grace) or at `deadline`.
///
/// Fails only when no enabled transport could start; with none enabled it returns at once
/// with nobody.
pub(crate) async fn probe(cfg: &DiscoveryConfig, deadline: Duration) -> crate::Result<Vec<Member>> {
    let end = tokio::time::Instant::now() + deadline;
    let (tx, mut rx) = mpsc::channel(256);
    let sink = Sink {
        tx,
        // A client has nobody to show its counters to.
        counters: Arc::new(Counters::default()),
    };
    let stop = CancellationToken::new();
    // Bind both before awaiting either, so their latencies overlap.
    let mut failure = None;
    let beacon = start_transport(cfg.beacon, beacon::Prober::bind, &mut failure);
    let mdns = start_transport(cfg.mdns, || mdns::Browser::start(cfg), &mut failure);
    if beacon.is_none() && mdns.is_none() {
        return failure.map_or(Ok(Vec::new()), Err);
    }
    let beacon = async {
        if let Some(p) = beacon {
            p.run(cfg, sink.clone(), stop.clone()).await;
        }
    };
    let mdns = async {
        if let Some(b) = mdns {
            b.run(cfg, sink.clone(), stop.clone()).await;
        }
    };
    let collect = async {
        let found = collect_until_grace(&mut rx, end).await;
        stop.cancel();
        found
    };
    let ((), (), found) = tokio::join!(beacon, mdns, collect);
    Ok(found)
}

/// Starts one client transport if it is enabled. A failure is logged and the first one kept
/// in `failure`: the other transport may still find somebody.
fn start_transport<T>(
    enabled: bool,
    start: impl FnOnce() -> crate::Result<T>,
    failure: &mut Option<crate::Error>,
) -> Option<T> {
    if !enabled {
        return None;
    }
    match start() {
        Ok(t) => Some(t),
        Err(e) => {
            tracing::warn!(error = %e, "discovery transport unavailable");
            failure.get_or_insert(e);
            None
        }
    }
}

/// Receives members until [`PROBE_GRACE`] after the first one, or until `end`; keeps the
/// first report of each id.
async fn collect_until_grace(
    rx: &mut mpsc::Receiver<Member>,
    end: tokio::time::Instant,
) -> Vec<Member> {
    let mut found: Vec<Member> = Vec::new();
    let mut ids = HashSet::new();
    let mut until = end;
    while let Ok(Some(m)) = tokio::time::timeout_at(until, rx.recv()).await {
        if ids.insert(m.id) {
            if found.is_empty() {
                until = until.min(tokio::time::Instant::now() + PROBE_GRACE);
            }
            found.push(m);
        }
    }
    found
}

#[cfg(test)]
mod tests;
