//! State shared by every task of one node.
//!
//! # Locks
//!
//! Every map here sits behind a `parking_lot` lock (`RwLock` where reads dominate, `Mutex`
//! for small maps written about as often as read), not a sharded map (`dashmap`) or a
//! swapped snapshot (`arc-swap`). Why that is enough:
//!
//! - **No poisoning.** A panic while a lock is held (in a handler, in a bug) leaves the
//!   state usable; std locks would turn every later access into a panic of its own
//!   (`tests::a_panic_under_a_lock_does_not_poison_node_state`).
//! - **Small maps.** One entry per peer, member, local function or round-robin counter:
//!   tens, at most hundreds. Sharding that few entries buys nothing for its memory and its
//!   per-access hashing.
//! - **Reads dominate.** The call path (`route::providers_of`) takes read locks on the
//!   registry, the connections and the directory, which several readers hold at once;
//!   writes come with membership and catalog changes, which are rare next to calls.
//! - **Short critical sections, never across an `.await`.** Readers copy out what they need
//!   (`Arc` clones, small values) and release the lock at once. The compiler enforces the
//!   `.await` part wherever a future must be `Send` (every spawned task, and the calls of
//!   `Node`, which users spawn): `parking_lot` guards are not `Send` (its `send_guard`
//!   feature is off).
//!
//! Contention has **not been measured**: no benchmark was run for this choice. The points
//! above are why it is not expected to matter. If a profile of a call burst ever shows
//! time spent waiting on these locks, the candidate is the read in `providers_of`: an
//! `arc-swap` snapshot of the providers per function, rebuilt on every change.

use crate::proto::keyring::SharedKeyring;
use parking_lot::{Mutex, RwLock};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, OnceLock};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::proto::catalog::{view_for, Relation};
use crate::proto::codec::encode_frame;
use crate::proto::member::Member;
use crate::proto::wire::{CatalogMsg, Frame};
use crate::registry::Registry;
use crate::runtime::cluster::{Counters, Entry};
use crate::runtime::gossip;
use crate::runtime::pubsub::PubSub;
use crate::runtime::Connection;

/// Identity, configuration, local functions and live connections of a node.
pub(crate) struct Shared {
    pub id: u64,
    pub name: String,
    pub role: String,
    pub host_id: String,
    pub cluster: String,
    pub resources: Vec<String>,
    pub config: Config,
    /// The shared secrets (`None`: no secret, nothing encrypted); changed by `mpreg keys`.
    pub secret: Option<SharedKeyring>,
    /// Functions served here. A blocking lock: it is never held across an await.
    pub registry: RwLock<Registry>,
    /// Live connections by peer node id. Normally one per peer; two can exist briefly when
    /// both sides dial at once, and calls then use the first.
    pub peers: RwLock<HashMap<u64, Vec<Arc<Connection>>>>,
    /// Last connection error per seed address, for "why is nothing reachable" messages.
    pub seed_errors: Mutex<HashMap<String, String>>,
    listen_port: AtomicU16,
    /// Cancelled by `Node::shutdown`; every loop selects on it.
    pub shutdown: CancellationToken,
    /// Every task the node spawns, so shutdown can wait for them.
    pub tasks: TaskTracker,
    /// Our gossiped identity, once listening (members only; clients have none).
    pub me: OnceLock<Member>,
    /// Commands to the membership task (members only).
    pub gossip: OnceLock<tokio::sync::mpsc::Sender<gossip::Command>>,
    /// Live members other than ourselves, by id.
    pub directory: RwLock<HashMap<u64, Entry>>,
    /// Members SWIM currently suspects.
    pub suspects: RwLock<HashSet<u64>>,
    /// Members a connection is being opened to.
    pub dialing: Mutex<HashSet<u64>>,
    /// Datagram counters.
    pub counters: Counters,
    /// Beacon and mDNS, for members with discovery enabled.
    pub discovery: OnceLock<crate::runtime::discovery::Discovery>,
    /// Members we recently failed to dial, reached through another node meanwhile.
    pub unreachable: Mutex<HashMap<u64, std::time::Instant>>,
    /// Round-robin counters by function name.
    pub turns: Mutex<HashMap<String, u64>>,
    /// Subscriptions here and on peers, publications waiting for acknowledgements.
    pub pubsub: PubSub,
    /// MARO messaging: open sessions, the inbox, conditional-event handlers.
    pub mailbox: crate::runtime::mailbox::Mailbox,
    /// Dials in progress, by address (single flight).
    pub flights: crate::runtime::connect::Flights,
    /// Open connections by token, for fenced moves between duplicates.
    pub handovers: crate::runtime::handover::Handovers,
    /// Bumped whenever the view a client would be shown changes (members, catalogs);
    /// watching clients are pushed the new view.
    pub view_epoch: tokio::sync::watch::Sender<u64>,
    /// The member a client is attached to for its view of the cluster (clients only).
    pub attached: Mutex<Option<Arc<Connection>>>,
    /// When the node started: the discovery wait counts from it.
    pub started: std::time::Instant,
    /// Id of the newer live node that holds our name and hides us, if any (logged when
    /// it changes).
    pub hidden_by: Mutex<Option<u64>>,
    /// A member's first discovery round is done: it joined a peer, or found none within
    /// the discovery wait (set once by `bootstrap::first_round`). Clients use `attached`.
    pub first_round_done: AtomicBool,
    /// Where the HTTP listener (`--http`) is bound, once it is.
    pub http_addr: OnceLock<SocketAddr>,
    /// Calls, latencies and events measured here (`_metrics`, `/metrics`).
    pub metrics: crate::metrics::Metrics,
    /// The service controller, on a listening node with `Config::services`.
    pub services: OnceLock<Arc<crate::service::Controller>>,
    /// The timer grid's clock: what the node's periodic work waits on.
    pub grid: crate::runtime::grid::Clock,
}

impl Shared {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        id: u64,
        name: String,
        host_id: String,
        config: Config,
        secret: Option<SharedKeyring>,
        registry: Registry,
    ) -> Self {
        let metrics_on = config.metrics;
        Shared {
            id,
            name,
            role: config.role.clone(),
            host_id,
            cluster: config.cluster.clone(),
            resources: config.resources.clone(),
            config,
            secret,
            registry: RwLock::new(registry),
            peers: RwLock::new(HashMap::new()),
            seed_errors: Mutex::new(HashMap::new()),
            listen_port: AtomicU16::new(0),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            me: OnceLock::new(),
            gossip: OnceLock::new(),
            directory: RwLock::new(HashMap::new()),
            suspects: RwLock::new(HashSet::new()),
            dialing: Mutex::new(HashSet::new()),
            counters: Counters::default(),
            discovery: OnceLock::new(),
            unreachable: Mutex::new(HashMap::new()),
            turns: Mutex::new(HashMap::new()),
            pubsub: PubSub::default(),
            mailbox: Default::default(),
            flights: Default::default(),
            handovers: Default::default(),
            view_epoch: tokio::sync::watch::Sender::new(0),
            attached: Mutex::new(None),
            started: std::time::Instant::now(),
            hidden_by: Mutex::new(None),
            first_round_done: AtomicBool::new(false),
            http_addr: OnceLock::new(),
            metrics: crate::metrics::Metrics::new(metrics_on),
            services: OnceLock::new(),
            grid: Default::default(),
        }
    }

    pub(crate) fn listen_port(&self) -> u16 {
        self.listen_port.load(Ordering::Relaxed)
    }

    pub(crate) fn set_listen_port(&self, p: u16) {
        self.listen_port.store(p, Ordering::Relaxed);
    }

    /// Whether the node is ready for work (`/health/ready`); else why not, in one line. A
    /// member is ready once it listens and its first discovery round is done; a client
    /// while it is attached to a member; neither once it is shutting down.
    pub(crate) fn readiness(&self) -> std::result::Result<(), String> {
        if self.shutdown.is_cancelled() {
            return Err("shutting down".into());
        }
        if !self.config.listen {
            return match self.attached.lock().is_some() {
                true => Ok(()),
                false => Err("not attached to a member of the cluster".into()),
            };
        }
        if self.me.get().is_none() {
            return Err("not listening yet".into());
        }
        match self.first_round_done.load(Ordering::Acquire) {
            true => Ok(()),
            false => Err(format!(
                "first discovery round not done (no peer joined yet; waiting up to {} ms)",
                self.config.discovery_wait_ms
            )),
        }
    }

    /// [`Shared::readiness`] as a yes or no.
    pub(crate) fn is_ready(&self) -> bool {
        self.readiness().is_ok()
    }

    /// Our catalog as a peer in `relation` may see it: functions and subscriptions.
    pub(crate) fn catalog_view(&self, relation: Relation) -> CatalogMsg {
        let reg = self.registry.read();
        let subs = self.pubsub.local.read();
        view_for(
            reg.version() + subs.version(),
            &reg.specs(),
            &subs.specs(),
            relation,
        )
    }

    /// Version of our catalog: it grows with every change of functions or subscriptions.
    pub(crate) fn catalog_version(&self) -> u64 {
        self.registry.read().version() + self.pubsub.local.read().version()
    }

    /// Tells gossip and discovery our catalog version, so members we are not connected to
    /// pull the new catalog.
    pub(crate) fn note_catalog_version(&self) {
        if let Some(tx) = self.gossip.get() {
            let v = self.catalog_version();
            // Best effort: connections carry the catalog itself; gossip only reaches
            // members we are not connected to yet.
            let _ = tx.try_send(gossip::Command::CatalogVersion(v));
            if let Some(d) = self.discovery.get() {
                d.set_catalog_version(v);
            }
        }
    }

    /// `conn`'s reader ended: unlists it (if still listed) and retires its traffic.
    pub(crate) fn remove_connection(self: &Arc<Self>, conn: &Arc<Connection>) {
        let mut peers = self.peers.write();
        self.pubsub.links.fetch_add(1, Ordering::Relaxed);
        self.retire_traffic(&mut peers, conn, true);
        if let Some(list) = peers.get_mut(&conn.peer.id) {
            list.retain(|c| !Arc::ptr_eq(c, conn));
            if list.is_empty() {
                peers.remove(&conn.peer.id);
                drop(peers);
                // A member still in the directory is dialed again (its link may have
                // been cut and healed before SWIM noticed); one that is gone takes its
                // subscriptions with it.
                let id = conn.peer.id;
                let member = self.directory.read().get(&id).map(|e| e.member.clone());
                match member {
                    Some(m) => self.ensure_connected(m),
                    None if !self.peers.read().contains_key(&id) => {
                        self.pubsub.remote.write().remove(id)
                    }
                    None => {}
                }
                self.view_changed();
                tracing::debug!(peer = %conn.peer.name, reason = conn.close_reason().unwrap_or_default(), "disconnected");
            }
        }
    }

    /// Adds what `conn` carried and is not yet retired to its peer's retired counts, as it
    /// leaves the list of connections (`closed`: its reader ended, it carries no more).
    /// Takes the list, locked for writing, because metrics readers lock it too: they see
    /// each count once, on the listed connection or in the retired counts.
    pub(crate) fn retire_traffic(
        &self,
        _listed: &mut HashMap<u64, Vec<Arc<Connection>>>,
        conn: &Connection,
        closed: bool,
    ) {
        let traffic = conn.retire_traffic();
        let mut book = self.metrics.peers.lock();
        book.retire(&conn.peer.name, traffic, closed);
    }

    /// Every live connection (the first per peer).
    pub(crate) fn connections(&self) -> Vec<Arc<Connection>> {
        self.peers
            .read()
            .values()
            .filter_map(|l| l.first().cloned())
            .collect()
    }

    /// The connection calls to peer `id` use (the first, if a simultaneous dial made two).
    pub(crate) fn connection_to(&self, id: u64) -> Option<Arc<Connection>> {
        self.peers.read().get(&id).and_then(|l| l.first().cloned())
    }

    /// Every live connection, including the second one of a peer that dialed us while we
    /// dialed it: each keeps its own copy of our catalog, and calls may use either.
    pub(crate) fn all_connections(&self) -> Vec<Arc<Connection>> {
        let peers = self.peers.read();
        peers.values().flatten().cloned().collect()
    }

    /// Something a watching client sees changed: push it the new view.
    pub(crate) fn view_changed(&self) {
        self.view_epoch.send_modify(|e| *e += 1);
    }

    /// Sends every peer its view of our catalog after a change.
    pub(crate) fn announce_catalog(&self) {
        self.note_catalog_version();
        self.view_changed();
        for conn in self.all_connections() {
            self.send_catalog(&conn);
        }
    }

    /// Sends `conn`'s peer its view of our catalog as it is now.
    pub(crate) fn send_catalog(&self, conn: &Arc<Connection>) {
        let view = self.catalog_view(Relation::of_peer(&self.host_id, &conn.peer.host_id));
        if let Ok(frame) = encode_frame(&Frame::Catalog(view)) {
            conn.send_soon(frame);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A panic while a lock of the node's state is held (in a handler, a callback, a bug)
    /// must not poison that state and turn every later access into a panic of its own.
    #[test]
    fn a_panic_under_a_lock_does_not_poison_node_state() {
        let shared = Arc::new(Shared::new(
            1,
            "n".into(),
            "h".into(),
            Config::default(),
            None,
            Registry::default(),
        ));
        let s = shared.clone();
        let panicked = std::thread::spawn(move || {
            let _peers = s.peers.write();
            let _registry = s.registry.write();
            let _dir = s.directory.write();
            panic!("a bug while holding node state");
        })
        .join();
        assert!(panicked.is_err());
        assert!(shared.connections().is_empty());
        assert_eq!(shared.catalog_version(), 0);
        assert!(shared.directory.read().is_empty());
    }
}
