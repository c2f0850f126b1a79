//! What a node measures about itself (DESIGN §11): calls served and made with latency
//! histograms, traffic per peer, publish/subscribe, membership, messaging and workflows.
//!
//! Hot-path counters are plain atomics held where the work happens (a served function's
//! [`Served`] lives in its [`Function`](crate::Function); a peer's traffic in its
//! connection), so recording costs a few relaxed atomic adds and no lookup. Reading goes
//! through [`snapshot`] (the `_metrics` built-in, `mpreg top`) or [`prometheus`] (the
//! HTTP `/metrics` page). Every map here is bounded: names beyond its cap count under
//! [`OTHER`].

pub(crate) mod cache;
pub(crate) mod caller;
pub(crate) mod collect;
pub(crate) mod histogram;
pub(crate) mod peers;
pub(crate) mod prometheus;
pub(crate) mod snapshot;
pub(crate) mod stripe;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};

pub(crate) use histogram::Histogram;
pub(crate) use peers::Traffic;

/// Where names beyond a map's cap are counted.
pub(crate) const OTHER: &str = "_other";
/// Functions called (caller side) tracked by name.
pub(crate) const MAX_CALLED: usize = 256;
/// Topic prefixes tracked.
const MAX_PREFIXES: usize = 64;
/// How long a member's goodbye is remembered, so SWIM's report of it is not counted again.
const GOODBYE_MEMORY: Duration = Duration::from_secs(60);

/// The served side of one function. Calls are the latency histogram's count.
#[derive(Default)]
pub(crate) struct Served {
    pub errors: AtomicU64,
    pub busy: AtomicU64,
    pub latency: Histogram,
}

/// The caller side of one function. Calls that ended are the latency histogram's count;
/// in flight is `started` less those and the `abandoned` (futures dropped unfinished).
pub(crate) struct Called {
    /// Unique in the process (keys the callers' per-thread caches).
    pub id: u64,
    pub started: stripe::Counter,
    pub abandoned: AtomicU64,
    pub errors: AtomicU64,
    pub busy: AtomicU64,
    pub latency: Histogram,
    /// Successful calls by answering node (bounded like the function names).
    pub answered_by: RwLock<HashMap<String, Arc<stripe::Counter>>>,
}

/// Publications of one topic prefix.
#[derive(Default)]
pub(crate) struct Prefix {
    pub published: stripe::Counter,
    pub received: stripe::Counter,
}

/// Node-wide counters not kept elsewhere.
#[derive(Default)]
pub(crate) struct Events {
    pub joins: AtomicU64,
    pub leaves: AtomicU64,
    pub downs: AtomicU64,
    pub suspicions: AtomicU64,
    pub gossip_bytes_received: AtomicU64,
    pub delivered: AtomicU64,
    pub confirm_failures: AtomicU64,
    pub messages_sent: AtomicU64,
    pub messages_received: AtomicU64,
    pub workflows: AtomicU64,
    pub workflow_steps: AtomicU64,
    pub workflow_failures: AtomicU64,
    pub workflow_latency: Histogram,
}

/// One node's metrics that are not held by a function or a connection.
pub(crate) struct Metrics {
    /// Unique in the process (keys the callers' per-thread caches).
    pub id: u64,
    /// Whether calls, workflows and publications are measured (`Config::metrics`).
    pub enabled: bool,
    pub called: RwLock<HashMap<String, Arc<Called>>>,
    pub prefixes: RwLock<HashMap<String, Arc<Prefix>>>,
    /// Per peer name: connections opened and the traffic of those closed (bounded).
    /// Locked after `Shared::peers`, never before (see [`peers`]).
    pub peers: Mutex<peers::PeerBook>,
    /// Members going away, by id: since when, and whether they said goodbye (a leave, not
    /// a down).
    departures: Mutex<HashMap<u64, (Instant, bool)>>,
    pub events: Events,
}

/// Ids for [`Metrics`] and [`Called`], unique in the process.
fn next_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Relaxed)
}

impl Default for Called {
    fn default() -> Self {
        Called {
            id: next_id(),
            started: stripe::Counter::default(),
            abandoned: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            busy: AtomicU64::new(0),
            latency: Histogram::default(),
            answered_by: RwLock::default(),
        }
    }
}

impl Called {
    /// Calls that ended (answered or failed).
    pub(crate) fn calls(&self) -> u64 {
        self.latency.count()
    }

    /// Calls waiting for their outcome now.
    pub(crate) fn in_flight(&self) -> u64 {
        let ended = self.calls() + self.abandoned.load(Relaxed);
        self.started.get().saturating_sub(ended)
    }
}

impl Metrics {
    pub(crate) fn new(enabled: bool) -> Self {
        Metrics {
            id: next_id(),
            enabled,
            called: RwLock::default(),
            prefixes: RwLock::default(),
            peers: Mutex::default(),
            departures: Mutex::default(),
            events: Events::default(),
        }
    }

    /// The caller-side record of `fun`.
    pub(crate) fn called(&self, fun: &str) -> Arc<Called> {
        entry(&self.called, fun, MAX_CALLED)
    }

    /// `f` applied to the record of `topic`'s first segment (per-thread cached).
    pub(crate) fn with_prefix(&self, topic: &str, f: impl FnOnce(&Prefix)) {
        thread_local! {
            static PREFIXES: cache::Cache<Prefix> = const { std::cell::RefCell::new(Vec::new()) };
        }
        let first = topic.split('.').next().unwrap_or(topic);
        let make = || entry(&self.prefixes, first, MAX_PREFIXES);
        cache::cached(&PREFIXES, self.id, first, make, f);
    }

    /// The caller-side records by function name, sorted.
    pub(crate) fn called_list(&self) -> Vec<(String, Arc<Called>)> {
        let mut v: Vec<_> = self
            .called
            .read()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// A connection with `peer` opened.
    pub(crate) fn connection_opened(&self, peer: &str) {
        self.peers.lock().opened(peer);
    }

    /// SWIM reported member `id` down while a connection to it is open: the verdict,
    /// leave or down, waits for the connection (see `Shared::count_down`). False when it
    /// said goodbye already, and was counted as a leave then.
    pub(crate) fn await_verdict(&self, id: u64) -> bool {
        let mut d = self.departures.lock();
        if d.get(&id).is_some_and(|&(_, bye)| bye) {
            return false;
        }
        d.insert(id, (Instant::now(), false));
        true
    }

    /// The verdict on `id` is due: whether it said goodbye meanwhile (a leave).
    pub(crate) fn verdict(&self, id: u64) -> bool {
        let mut d = self.departures.lock();
        let bye = d.get(&id).is_some_and(|&(_, bye)| bye);
        if !bye {
            d.remove(&id);
        }
        bye
    }

    /// Whether member `id` said goodbye lately (its leave is counted).
    pub(crate) fn said_goodbye(&self, id: u64) -> bool {
        self.departures.lock().get(&id).is_some_and(|&(_, bye)| bye)
    }

    /// Peer `id` said goodbye; `listed`: it was a member still in the directory, counted
    /// as a leave now. Remembered for members only, so that SWIM's report of the same
    /// departure, which may come later, is not counted again (clients are never reported).
    pub(crate) fn goodbye(&self, id: u64, listed: bool) {
        let mut d = self.departures.lock();
        if listed {
            // Forgotten once gossip has long had its say: bounds the map.
            d.retain(|_, (at, bye)| !*bye || at.elapsed() < GOODBYE_MEMORY);
            d.insert(id, (Instant::now(), true));
        } else if let Some(e) = d.get_mut(&id) {
            e.1 = true;
        }
    }
}

/// `map[name]`, created if absent; beyond `cap` names, the [`OTHER`] entry.
pub(crate) fn entry<T: Default>(
    map: &RwLock<HashMap<String, Arc<T>>>,
    name: &str,
    cap: usize,
) -> Arc<T> {
    if let Some(e) = map.read().get(name) {
        return e.clone();
    }
    let mut m = map.write();
    let key = if m.len() >= cap && !m.contains_key(name) {
        OTHER
    } else {
        name
    };
    m.entry(key.to_string()).or_default().clone()
}

/// Adds one. Relaxed: metrics are statistics, not synchronisation.
pub(crate) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Relaxed);
}
