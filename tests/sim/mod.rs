//! A deterministic simulator for `mpreg::proto::membership`: many [`Membership`] state
//! machines on one virtual clock, joined by a modelled LAN (latency, loss, crashes,
//! partitions). Everything random comes from one seed, so a run is exactly repeatable.
//!
//! Shared by `tests/simulation.rs` and `benches/membership.rs` (included with `#[path]`),
//! each of which uses only part of it.
#![allow(dead_code)] // Each including crate uses a different subset.

pub mod names;
mod rng;
pub mod scenario;

use std::cell::Cell;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::net::SocketAddr;
use std::ops::Sub;
use std::time::Duration;

use bytes::Bytes;
use mpreg::proto::beacon::{announce_every, stale_after, BeaconKind, Payload};
use mpreg::proto::datagram::HEADER_LEN;
use mpreg::proto::member::{Member, DEFAULT_ROLE};
use mpreg::proto::membership::{lan_config, Event, Membership, Timer};

pub use rng::SplitMix64;

/// The gossip port every simulated node listens on.
pub const PORT: u16 = 7700;
/// Bytes a datagram costs on the wire beyond its gossip payload: mpreg's envelope
/// (without the optional 16-byte HMAC tag) plus IPv4 (20) and UDP (8) headers.
pub const OVERHEAD: u64 = HEADER_LEN as u64 + 28;
/// How often a node whose view is empty announces again to a random running node, as a
/// real node keeps retrying its seeds and discovery. A node that sees anyone never does, so
/// this cannot mask how SWIM itself spreads membership.
pub const REDISCOVER_EVERY: Duration = Duration::from_secs(1);

/// The network model.
#[derive(Debug, Clone)]
pub struct Net {
    /// Fastest one-way delivery.
    pub latency_min: Duration,
    /// Slowest one-way delivery (latency is uniform in between).
    pub latency_max: Duration,
    /// Probability that a datagram is lost.
    pub loss: f64,
}

impl Net {
    /// A switched LAN: 0.2–2 ms one way, no loss.
    pub fn lan() -> Self {
        Net {
            latency_min: Duration::from_micros(200),
            latency_max: Duration::from_millis(2),
            loss: 0.0,
        }
    }

    /// The same network, losing a fraction `loss` of the datagrams.
    pub fn with_loss(self, loss: f64) -> Self {
        Net { loss, ..self }
    }
}

/// How nodes find each other besides SWIM itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Discovery {
    /// Only the announce to a seed at start, retried every [`REDISCOVER_EVERY`] while the
    /// node is alone: SWIM on its own.
    Seeds,
    /// Also the UDP broadcast beacon, as the runtime runs it (`runtime::discovery::beacon`):
    /// a node announces at start, then at the pace of [`announce_every`] for the number of
    /// members it has heard (the interval given while it hears none); every node of its
    /// partition group hears each announce (each copy lost at the network's loss rate) and
    /// answers, unicast, the announce of a member it has not heard from within
    /// [`stale_after`]. Whoever hears of a member absent from its view announces to it, as
    /// the runtime's discovery task does. Beacon datagrams are counted apart from gossip
    /// ([`Node::beacons_sent`], [`Node::beacons_heard`]) and delivered without latency.
    Beacon(Duration),
    /// [`Discovery::Beacon`] with every node announcing at this fixed interval whatever it
    /// hears (the runtime's rule before the pace adapted to the cluster size).
    FixedBeacon(Duration),
}

impl Discovery {
    /// The beacon's base interval, if it runs.
    fn beacon(self) -> Option<Duration> {
        match self {
            Discovery::Seeds => None,
            Discovery::Beacon(d) | Discovery::FixedBeacon(d) => Some(d),
        }
    }
}

/// Datagrams and gossip payload bytes a node sent (whether or not they arrived).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Datagrams sent.
    pub datagrams: u64,
    /// Gossip payload bytes, before mpreg's envelope.
    pub payload: u64,
}

impl Traffic {
    /// Bytes on the wire: payload plus envelope and IP/UDP headers per datagram.
    pub fn wire(&self) -> u64 {
        self.payload + self.datagrams * OVERHEAD
    }

    fn add(&mut self, payload: usize) {
        self.datagrams += 1;
        self.payload += payload as u64;
    }
}

impl Sub for Traffic {
    type Output = Traffic;

    fn sub(self, rhs: Traffic) -> Traffic {
        Traffic {
            datagrams: self.datagrams - rhs.datagrams,
            payload: self.payload - rhs.payload,
        }
    }
}

impl std::iter::Sum for Traffic {
    fn sum<I: Iterator<Item = Traffic>>(iter: I) -> Traffic {
        iter.fold(Traffic::default(), |a, b| Traffic {
            datagrams: a.datagrams + b.datagrams,
            payload: a.payload + b.payload,
        })
    }
}

/// Where a node is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Not started yet: unknown to everyone, receives nothing.
    NotStarted,
    /// Running: receives datagrams and fires timers.
    Running,
    /// Crashed: silent, its timers stopped, datagrams to it are lost.
    Crashed,
    /// Left gracefully, then stopped like a crashed node.
    Left,
}

/// One simulated node: its state machine and what the simulator observed of it.
pub struct Node {
    /// The state machine under test.
    pub membership: Membership,
    /// Its stable node id (SWIM renewals change `bump`, never `id`).
    pub id: u64,
    /// Where it is in its life.
    pub status: Status,
    /// Ids it considers live, as told by its `Up`/`Down` events (checked against
    /// `members()` by [`Sim::assert_consistent`]).
    pub view: HashSet<u64>,
    /// Every event it emitted, with the time.
    pub events: Vec<(Duration, Event)>,
    /// What it sent.
    pub sent: Traffic,
    /// Errors its inputs returned, by message; foca reports some benign ones.
    pub errors: BTreeMap<String, u64>,
    /// Beacon datagrams it sent (a broadcast counts once), with their wire size.
    pub beacons_sent: Traffic,
    /// Beacon datagrams it received, with their wire size.
    pub beacons_heard: Traffic,
    /// Members whose beacon it heard, by id, and when last.
    heard: HashMap<u64, Duration>,
    /// Payload size of its beacon announce or answer (what [`Payload::encode`] writes).
    beacon_len: usize,
}

/// Something scheduled on the virtual clock.
enum Action {
    /// Start a node, announcing to `seed` if any.
    Start { node: usize, seed: Option<usize> },
    /// Fire a membership timer.
    Timer { node: usize, timer: Timer },
    /// Hand a datagram to a node.
    Deliver { to: usize, data: Bytes },
    /// Re-announce if isolated (see [`REDISCOVER_EVERY`]).
    Rediscover { node: usize },
    /// Broadcast a discovery beacon (see [`Discovery::Beacon`]).
    Beacon { node: usize },
}

/// A queue entry; ordered by time, then by scheduling order so that ties are deterministic.
struct Entry {
    at: Duration,
    seq: u64,
    action: Action,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Entry {}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Entry {
    // Reversed: `BinaryHeap` is a max-heap and we want the earliest entry first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// The simulation: nodes, network, virtual clock and event queue.
pub struct Sim {
    now: Duration,
    seq: u64,
    queue: BinaryHeap<Entry>,
    /// The nodes, by index.
    pub nodes: Vec<Node>,
    by_addr: HashMap<SocketAddr, usize>,
    rng: SplitMix64,
    /// The network model; may be changed between runs.
    pub net: Net,
    /// Discovery besides SWIM; set it before starting nodes.
    pub discovery: Discovery,
    /// Partition group of each node; datagrams between groups are dropped.
    groups: Vec<usize>,
    /// When set, every datagram sent is kept in [`Sim::captured`] (to debug a scenario).
    pub capture: bool,
    /// Datagrams sent while [`Sim::capture`] was set: time, sender, receiver, payload.
    pub captured: Vec<(Duration, usize, usize, Bytes)>,
    /// Retune each node's timings to its view size after membership changes, as the
    /// runtime does (`Membership::fit_config_to_size`); off by default.
    pub fit_config: bool,
    /// With [`Sim::fit_config`], the timings for a cluster size; `lan_config` when `None`
    /// (another function compares tunings).
    pub tuning: Option<fn(u32) -> foca::Config>,
    /// Sum of the running nodes' view sizes, kept up to date by events so that
    /// [`Sim::converged`] can rule out most states without looking at every view.
    view_total: usize,
    /// The view total a converged cluster has, for the current statuses and groups;
    /// `None` when they changed since it was computed.
    expected_total: Cell<Option<usize>>,
}

/// The address of node `i`: 10.0.x.y:7700.
pub fn addr(i: usize) -> SocketAddr {
    let k = i + 1; // 10.0.0.0 is a network address
    SocketAddr::from(([10, 0, (k >> 8) as u8, (k & 0xff) as u8], PORT))
}

/// Start time (ms since the epoch) of the nodes created with the simulation; a process
/// started later by [`Sim::spawn`] starts this plus the virtual time.
const EPOCH_MS: u64 = 1_760_000_000_000;

/// The identity of node `i`, as a node started without a name has it: named
/// `node-` and 6 hex digits of its id (`node-{i:03}` if another node already took that
/// name, which `taken` records), with a machine id as host.
fn member(i: usize, id: u64, taken: &mut HashSet<String>) -> Member {
    let mut name = Member::default_name(DEFAULT_ROLE, id);
    if !taken.insert(name.clone()) {
        name = format!("node-{i:03}");
    }
    Member {
        addr: addr(i),
        id,
        name,
        role: DEFAULT_ROLE.into(),
        host: format!("{:032x}", u128::from(id) * 0x9E37_79B9_7F4A_7C15),
        started_ms: EPOCH_MS + i as u64,
        bump: 0,
    }
}

impl Sim {
    /// `n` nodes, none started, each configured with `lan_config(n)`.
    pub fn new(n: usize, seed: u64, net: Net) -> Self {
        Self::with_config(n, seed, net, &lan_config(n as u32))
    }

    /// `n` nodes, none started, configured as a real node is: `lan_config(16)` at start,
    /// retuned to the view size as it grows or shrinks ([`Sim::fit_config`]).
    pub fn as_deployed(n: usize, seed: u64, net: Net) -> Self {
        let mut sim = Self::with_config(n, seed, net, &lan_config(16));
        sim.fit_config = true;
        sim
    }

    /// `n` nodes, none started, each configured with `config` (to compare tunings).
    pub fn with_config(n: usize, seed: u64, net: Net, config: &foca::Config) -> Self {
        let mut rng = SplitMix64::new(seed);
        let mut taken = HashSet::new();
        let nodes = (0..n)
            .map(|i| Self::node(i, config, &mut rng, &mut taken))
            .collect();
        Sim {
            now: Duration::ZERO,
            seq: 0,
            queue: BinaryHeap::new(),
            nodes,
            by_addr: (0..n).map(|i| (addr(i), i)).collect(),
            rng,
            net,
            discovery: Discovery::Seeds,
            groups: vec![0; n],
            capture: false,
            captured: Vec::new(),
            fit_config: false,
            tuning: None,
            view_total: 0,
            expected_total: Cell::new(None),
        }
    }

    fn node(
        i: usize,
        config: &foca::Config,
        rng: &mut SplitMix64,
        taken: &mut HashSet<String>,
    ) -> Node {
        let id = rng.next_u64() | 1; // never 0, the id of announce placeholders
        Self::node_as(member(i, id, taken), config, rng)
    }

    fn node_as(me: Member, config: &foca::Config, rng: &mut SplitMix64) -> Node {
        let id = me.id;
        Node {
            membership: Membership::new(me.clone(), config.clone(), rng.next_u64()),
            id,
            status: Status::NotStarted,
            view: HashSet::new(),
            events: Vec::new(),
            sent: Traffic::default(),
            errors: BTreeMap::new(),
            beacons_sent: Traffic::default(),
            beacons_heard: Traffic::default(),
            heard: HashMap::new(),
            beacon_len: Payload {
                kind: BeaconKind::Announce,
                member: Some(me.clone()),
                http: None,
            }
            .encode()
            .len(),
        }
    }

    /// The virtual time.
    pub fn now(&self) -> Duration {
        self.now
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// A random number in `0..n` from the simulation's generator.
    pub fn random(&mut self, n: usize) -> usize {
        self.rng.below(n)
    }

    /// Indices of the running nodes.
    pub fn running(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.nodes.len()).filter(|&i| self.nodes[i].status == Status::Running)
    }

    fn schedule(&mut self, at: Duration, action: Action) {
        self.seq += 1;
        self.queue.push(Entry {
            at,
            seq: self.seq,
            action,
        });
    }

    // ---- scenario inputs -------------------------------------------------------------

    /// Starts node `i` at `at`, announcing to node `seed` if given.
    pub fn start_at(&mut self, i: usize, at: Duration, seed: Option<usize>) {
        self.schedule(at, Action::Start { node: i, seed });
    }

    /// Starts node 0 now and node `i` every `every` after it, each announcing to a random
    /// node started before it.
    pub fn start_staggered(&mut self, every: Duration) {
        self.start_at(0, self.now, None);
        for i in 1..self.nodes.len() {
            let seed = self.rng.below(i);
            self.start_at(i, self.now + every * i as u32, Some(seed));
        }
    }

    /// A new process named `name` on `host`, in partition group `group`, started now and
    /// announcing to node `seed` if given. It listens on the address of the stopped node
    /// `at` (a restart that got its port back: datagrams to that address reach the new
    /// process from now on) or on an address of its own. Returns its index.
    pub fn spawn(
        &mut self,
        name: &str,
        host: &str,
        at: Option<usize>,
        group: usize,
        seed: Option<usize>,
    ) -> usize {
        let i = self.nodes.len();
        let address = match at {
            Some(j) => {
                assert!(
                    self.nodes[j].status != Status::Running,
                    "node {j} still runs at its address"
                );
                self.addr_of(j)
            }
            None => addr(i),
        };
        let me = Member {
            addr: address,
            id: self.rng.next_u64() | 1,
            name: name.into(),
            role: "node".into(),
            host: host.into(),
            started_ms: EPOCH_MS + self.now.as_millis() as u64,
            bump: 0,
        };
        let config = lan_config(16);
        let node = Self::node_as(me, &config, &mut self.rng);
        self.nodes.push(node);
        self.by_addr.insert(address, i);
        self.groups.push(group);
        self.expected_total.set(None);
        self.start(i, seed);
        i
    }

    /// The address node `i` listens on (a restarted node may reuse an older node's).
    pub fn addr_of(&self, i: usize) -> SocketAddr {
        self.nodes[i].membership.identity().addr
    }

    /// Partition group of node `i`.
    pub fn group(&self, i: usize) -> usize {
        self.groups[i]
    }

    /// Whether any partition is active.
    pub fn partitioned(&self) -> bool {
        self.groups.iter().any(|&g| g != self.groups[0])
    }

    /// Crashes node `i` now: it goes silent, its timers stop.
    pub fn crash(&mut self, i: usize) {
        self.set_status(i, Status::Crashed);
    }

    /// Changes node `i`'s status, keeping the convergence bookkeeping right: only running
    /// nodes' views count.
    fn set_status(&mut self, i: usize, status: Status) {
        let was = self.nodes[i].status == Status::Running;
        let is = status == Status::Running;
        let size = self.nodes[i].view.len();
        match (was, is) {
            (true, false) => self.view_total -= size,
            (false, true) => self.view_total += size,
            _ => {}
        }
        self.nodes[i].status = status;
        self.expected_total.set(None);
    }

    /// Node `i` leaves gracefully now (its leave datagrams go out), then stops.
    pub fn leave(&mut self, i: usize) {
        let r = self.nodes[i].membership.leave();
        self.record(i, r);
        self.drive(i);
        self.set_status(i, Status::Left);
    }

    /// Node `i` publishes catalog version `version`.
    pub fn publish(&mut self, i: usize, version: u64) {
        let r = self.nodes[i].membership.publish_catalog_version(version);
        self.record(i, r);
        self.drive(i);
    }

    /// Splits the network: each node's group is the index of the slice holding it (nodes in
    /// none form one more group). Datagrams sent across groups from now on are dropped.
    pub fn partition(&mut self, groups: &[&[usize]]) {
        self.expected_total.set(None);
        self.groups = vec![groups.len(); self.nodes.len()];
        for (g, members) in groups.iter().enumerate() {
            for &i in members.iter() {
                self.groups[i] = g;
            }
        }
    }

    /// Heals every partition.
    pub fn heal(&mut self) {
        self.expected_total.set(None);
        self.groups = vec![0; self.nodes.len()];
    }

    // ---- running ---------------------------------------------------------------------

    /// Processes every event up to and including `t`, then sets the clock to `t`.
    pub fn run_until(&mut self, t: Duration) {
        while self.step(t).is_some() {}
        self.now = self.now.max(t);
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        self.run_until(self.now + d);
    }

    /// Runs until `cond` holds, for at most `limit`; returns how long that took.
    ///
    /// `cond` is evaluated now and after each step that produced a membership event: views
    /// only change through events, so a view condition is seen at the exact time it
    /// becomes true without paying for a check after every datagram.
    pub fn run_until_cond(
        &mut self,
        mut cond: impl FnMut(&Sim) -> bool,
        limit: Duration,
    ) -> Option<Duration> {
        let start = self.now;
        if cond(self) {
            return Some(Duration::ZERO);
        }
        while let Some(changed) = self.step(start + limit) {
            if changed && cond(self) {
                return Some(self.now - start);
            }
        }
        self.now = start + limit;
        None
    }

    /// Processes the next event if it is due by `deadline`; returns whether it produced a
    /// membership event, or `None` if nothing was due.
    fn step(&mut self, deadline: Duration) -> Option<bool> {
        if self.queue.peek()?.at > deadline {
            return None;
        }
        let entry = self.queue.pop().expect("peeked");
        self.now = entry.at;
        Some(self.dispatch(entry.action))
    }

    fn dispatch(&mut self, action: Action) -> bool {
        let (node, result) = match action {
            Action::Start { node, seed } => return self.start(node, seed),
            Action::Rediscover { node } => return self.rediscover(node),
            Action::Beacon { node } => return self.beacon(node),
            Action::Timer { node, timer } => {
                if self.nodes[node].status != Status::Running {
                    return false; // a stopped node's timers stop with it
                }
                (node, self.nodes[node].membership.handle_timer(timer))
            }
            Action::Deliver { to, data } => {
                if self.nodes[to].status != Status::Running {
                    return false;
                }
                (to, self.nodes[to].membership.handle_data(&data))
            }
        };
        self.record(node, result);
        self.drive(node)
    }

    fn start(&mut self, i: usize, seed: Option<usize>) -> bool {
        self.set_status(i, Status::Running);
        if let Some(s) = seed {
            let to = self.addr_of(s);
            let r = self.nodes[i].membership.announce(to);
            self.record(i, r);
        }
        self.schedule(self.now + REDISCOVER_EVERY, Action::Rediscover { node: i });
        if self.discovery.beacon().is_some() {
            self.schedule(self.now, Action::Beacon { node: i }); // at once, as the runtime
        }
        self.drive(i)
    }

    /// An isolated node announces to someone (see [`REDISCOVER_EVERY`]).
    fn rediscover(&mut self, i: usize) -> bool {
        if self.nodes[i].status != Status::Running {
            return false;
        }
        self.schedule(self.now + REDISCOVER_EVERY, Action::Rediscover { node: i });
        if !self.nodes[i].view.is_empty() {
            return false; // checked first: listing the running nodes costs O(n)
        }
        let others: Vec<usize> = self.running().filter(|&j| j != i).collect();
        if others.is_empty() {
            return false;
        }
        let to = others[self.rng.below(others.len())];
        let to = self.addr_of(to);
        let r = self.nodes[i].membership.announce(to);
        self.record(i, r);
        self.drive(i)
    }

    /// Node `i`'s beacon announce, heard by every node of its group; schedules the next.
    fn beacon(&mut self, i: usize) -> bool {
        let Some(base) = self.discovery.beacon() else {
            return false;
        };
        if self.nodes[i].status != Status::Running {
            return false;
        }
        let stale = self.stale_after(i, base);
        let now = self.now;
        self.nodes[i].heard.retain(|_, at| now - *at < stale);
        let every = match self.discovery {
            Discovery::Beacon(_) => announce_every(base, self.nodes[i].heard.len()),
            _ => base,
        };
        self.schedule(self.now + every, Action::Beacon { node: i });
        let size = self.nodes[i].beacon_len;
        self.nodes[i].beacons_sent.add(size);
        let hearers: Vec<usize> = self
            .running()
            .filter(|&j| j != i && self.groups[j] == self.groups[i])
            .collect();
        let mut any = false;
        for j in hearers {
            if !self.rng.chance(self.net.loss) {
                any |= self.hear_announce(j, i, base);
            }
        }
        any
    }

    /// How long node `i` counts a member as heard (see [`stale_after`]).
    fn stale_after(&self, i: usize, base: Duration) -> Duration {
        match self.discovery {
            Discovery::Beacon(_) => stale_after(base, self.nodes[i].heard.len()),
            _ => base * 3,
        }
    }

    /// Node `j` hears `i`'s announce: answers it if `i` is new to it, and announces to `i`
    /// if its view lacks it.
    fn hear_announce(&mut self, j: usize, i: usize, base: Duration) -> bool {
        let stale = self.stale_after(j, base);
        let newcomer = self.hear(j, i);
        let newcomer = newcomer.is_none_or(|at| self.now - at >= stale);
        let mut any = self.found(j, i);
        if newcomer {
            let size = self.nodes[j].beacon_len;
            self.nodes[j].beacons_sent.add(size);
            if !self.rng.chance(self.net.loss) {
                self.hear(i, j);
                any |= self.found(i, j);
            }
        }
        any
    }

    /// Node `j` receives a beacon datagram of `i`; returns when it last heard `i` before.
    fn hear(&mut self, j: usize, i: usize) -> Option<Duration> {
        let (id, size) = (self.nodes[i].id, self.nodes[i].beacon_len);
        let node = &mut self.nodes[j];
        node.beacons_heard.add(size);
        node.heard.insert(id, self.now)
    }

    /// Node `j` learned of `i` by discovery: it announces to `i` unless its view has it.
    fn found(&mut self, j: usize, i: usize) -> bool {
        if self.nodes[j].view.contains(&self.nodes[i].id) {
            return false;
        }
        let to = self.addr_of(i);
        let r = self.nodes[j].membership.announce(to);
        self.record(j, r);
        self.drive(j)
    }

    fn record(&mut self, i: usize, result: Result<(), mpreg::proto::membership::Error>) {
        if let Err(e) = result {
            *self.nodes[i].errors.entry(e.to_string()).or_default() += 1;
        }
    }

    /// Polls node `i`'s outputs in the documented order: datagrams, timers, events.
    /// Returns whether it emitted an event.
    fn drive(&mut self, i: usize) -> bool {
        while let Some((to, data)) = self.nodes[i].membership.poll_transmit() {
            self.send(i, to, data);
        }
        while let Some((after, timer)) = self.nodes[i].membership.poll_timer() {
            self.schedule(self.now + after, Action::Timer { node: i, timer });
        }
        let mut any = false;
        while let Some(event) = self.nodes[i].membership.poll_event() {
            self.observe(i, event);
            any = true;
        }
        if any && self.fit_config {
            match self.tuning {
                Some(tune) => self.nodes[i].membership.fit_config_to_size_with(tune),
                None => self.nodes[i].membership.fit_config_to_size(),
            }
        }
        any
    }

    fn observe(&mut self, i: usize, event: Event) {
        let node = &mut self.nodes[i];
        let running = node.status == Status::Running;
        let changed: isize = match &event {
            Event::Up(m) => isize::from(node.view.insert(m.id)),
            Event::Down(m) => -isize::from(node.view.remove(&m.id)),
            _ => 0,
        };
        if running {
            self.view_total = self
                .view_total
                .checked_add_signed(changed)
                .expect("views never hold fewer than zero members");
        }
        node.events.push((self.now, event));
    }

    /// Puts a datagram on the network: counted as sent, then lost, cut off by a partition
    /// or scheduled for delivery after a random latency.
    fn send(&mut self, from: usize, to: SocketAddr, data: Bytes) {
        self.nodes[from].sent.add(data.len());
        let Some(&dest) = self.by_addr.get(&to) else {
            return;
        };
        if self.capture {
            self.captured.push((self.now, from, dest, data.clone()));
        }
        if self.groups[from] != self.groups[dest] || self.rng.chance(self.net.loss) {
            return;
        }
        let latency = self.rng.between(self.net.latency_min, self.net.latency_max);
        self.schedule(self.now + latency, Action::Deliver { to: dest, data });
    }

    // ---- observations ----------------------------------------------------------------

    /// Whether every running node sees exactly the other running nodes of its partition
    /// group (the whole cluster when there is no partition).
    pub fn converged(&self) -> bool {
        if self.view_total != self.expected_total() {
            return false; // the common case while views change: no need to look closer
        }
        let running: Vec<usize> = self.running().collect();
        running.iter().all(|&i| {
            let peers: Vec<usize> = running
                .iter()
                .copied()
                .filter(|&j| j != i && self.groups[j] == self.groups[i])
                .collect();
            let view = &self.nodes[i].view;
            view.len() == peers.len() && peers.iter().all(|&j| view.contains(&self.nodes[j].id))
        })
    }

    /// The sum of the running nodes' view sizes when every one sees exactly the other
    /// running nodes of its group.
    fn expected_total(&self) -> usize {
        if let Some(t) = self.expected_total.get() {
            return t;
        }
        let mut per_group: HashMap<usize, usize> = HashMap::new();
        for i in self.running() {
            *per_group.entry(self.groups[i]).or_default() += 1;
        }
        let t = per_group.values().map(|&k| k * (k - 1)).sum();
        self.expected_total.set(Some(t));
        t
    }

    /// Whether no running node other than `i` has `i` in its view.
    pub fn nobody_sees(&self, i: usize) -> bool {
        let id = self.nodes[i].id;
        self.running().all(|j| !self.nodes[j].view.contains(&id))
    }

    /// Checks that the views built from events are what `members()` reports, and that no
    /// input returned an error.
    pub fn assert_consistent(&self) {
        assert!(
            self.errors().is_empty(),
            "membership errors: {:?}",
            self.errors()
        );
        for i in self.running() {
            let node = &self.nodes[i];
            let members: HashSet<u64> = node.membership.members().iter().map(|m| m.id).collect();
            assert_eq!(
                members, node.view,
                "node {i}: members() and Up/Down events disagree"
            );
        }
    }

    /// Total traffic sent by all nodes.
    pub fn traffic(&self) -> Traffic {
        self.nodes.iter().map(|n| n.sent).sum()
    }

    /// Beacon datagrams received by all nodes.
    pub fn beacons_heard(&self) -> Traffic {
        self.nodes.iter().map(|n| n.beacons_heard).sum()
    }

    /// The node index with node id `id`.
    pub fn index_of(&self, id: u64) -> Option<usize> {
        self.nodes.iter().position(|n| n.id == id)
    }

    /// Errors returned by all nodes' inputs, by message.
    pub fn errors(&self) -> BTreeMap<String, u64> {
        let mut all = BTreeMap::new();
        for node in &self.nodes {
            for (e, k) in &node.errors {
                *all.entry(e.clone()).or_default() += k;
            }
        }
        all
    }
}
