//! Scenarios built on the simulator, shared by the tests and the benchmark: form a
//! cluster, remove a node, spread a catalog version, and measure how long each took.

use std::collections::HashSet;
use std::time::Duration;

use mpreg::proto::membership::Event;

use super::{Net, Sim, Traffic};

/// SWIM probe period of `lan_config`: one "round".
pub const PROBE_PERIOD: Duration = Duration::from_millis(500);
/// Interval between node starts when a cluster forms.
pub const JOIN_EVERY: Duration = Duration::from_millis(10);
/// Time given to a converged cluster to finish gossiping the joins before a measurement,
/// so that leftovers of the join do not blur it.
pub const SETTLE: Duration = Duration::from_secs(5);

/// Time for one node to probe every other member once (foca probes in a shuffled
/// round-robin, one member per period).
pub fn probe_cycle(n: usize) -> Duration {
    PROBE_PERIOD * (n as u32 - 1)
}

/// Deadline for `n` nodes started by [`form_cluster`] to converge. Dissemination reaches
/// almost every pair within seconds but may miss a few; such a pair is repaired at the
/// latest when the member that knows the other probes it (a ping adds its sender to the
/// receiver's view): within two probe cycles, since the order is reshuffled every cycle.
pub fn join_bound(n: usize) -> Duration {
    JOIN_EVERY * (n as u32 - 1) + probe_cycle(n) * 2 + Duration::from_secs(5)
}

/// Probe periods in `d`.
pub fn rounds(d: Duration) -> f64 {
    d.as_secs_f64() / PROBE_PERIOD.as_secs_f64()
}

/// Starts `n` nodes every [`JOIN_EVERY`], each announcing to a random earlier one, and runs
/// until every view holds every other node. Returns the simulation and the convergence time
/// counted from the first start, or `None` if it did not converge within `limit`.
pub fn form_cluster(n: usize, seed: u64, net: Net, limit: Duration) -> (Sim, Option<Duration>) {
    form(Sim::new(n, seed, net), limit)
}

/// [`form_cluster`] for a simulation built by the caller (say, with another config).
pub fn form(mut sim: Sim, limit: Duration) -> (Sim, Option<Duration>) {
    let n = sim.len();
    sim.start_staggered(JOIN_EVERY);
    // The last start is queued, so no node is missing when `converged` first holds.
    sim.run_until(JOIN_EVERY * (n as u32 - 1));
    let took = sim.run_until_cond(Sim::converged, limit).map(|_| sim.now());
    (sim, took)
}

/// The time from the first start by which a fraction `q` (0–1) of the (observer, member)
/// pairs had their first `Up`: the bulk of a join, as opposed to its slowest straggler.
pub fn joined_fraction(sim: &Sim, q: f64) -> Duration {
    let mut firsts: Vec<Duration> = Vec::new();
    for node in &sim.nodes {
        let mut seen = HashSet::new();
        for (t, e) in &node.events {
            if let Event::Up(m) = e {
                if seen.insert(m.id) {
                    firsts.push(*t);
                }
            }
        }
    }
    firsts.sort();
    let k = ((firsts.len() as f64 * q).ceil() as usize).clamp(1, firsts.len().max(1));
    firsts.get(k - 1).copied().unwrap_or_default()
}

/// How long the removal of one node took to reach the other views.
#[derive(Debug, Clone, Copy)]
pub struct Removal {
    /// Median over observers of the time to drop the node from their view.
    pub median: Duration,
    /// Time until the last observer dropped it.
    pub max: Duration,
}

/// Crashes `victim` now and runs until no view holds it, for at most `limit`.
pub fn crash(sim: &mut Sim, victim: usize, limit: Duration) -> Option<Removal> {
    let t0 = sim.now();
    sim.crash(victim);
    sim.run_until_cond(|s| s.nobody_sees(victim), limit)?;
    Some(removal(sim, victim, t0))
}

/// `victim` leaves gracefully now; runs until no view holds it, for at most `limit`.
pub fn leave(sim: &mut Sim, victim: usize, limit: Duration) -> Option<Removal> {
    let t0 = sim.now();
    sim.leave(victim);
    sim.run_until_cond(|s| s.nobody_sees(victim), limit)?;
    Some(removal(sim, victim, t0))
}

/// Median and maximum over the running nodes of the delay, after `t0`, of their first
/// `Down` event for `victim`.
fn removal(sim: &Sim, victim: usize, t0: Duration) -> Removal {
    let id = sim.nodes[victim].id;
    let mut times: Vec<Duration> = sim
        .running()
        .filter_map(|j| {
            sim.nodes[j].events.iter().find_map(|(t, e)| match e {
                Event::Down(m) if m.id == id && *t >= t0 => Some(*t - t0),
                _ => None,
            })
        })
        .collect();
    times.sort();
    Removal {
        median: median(&times),
        max: times.last().copied().unwrap_or_default(),
    }
}

/// The median of sorted `v` (zero when empty).
pub fn median(v: &[Duration]) -> Duration {
    match v.len() {
        0 => Duration::ZERO,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2,
    }
}

/// Whether `node` emitted `CatalogVersion { id, version }` at or after `since`.
fn got_version(sim: &Sim, node: usize, id: u64, version: u64, since: Duration) -> bool {
    let wanted = Event::CatalogVersion { id, version };
    // Scanning from the end stops at the first event older than `since`.
    sim.nodes[node]
        .events
        .iter()
        .rev()
        .take_while(|(t, _)| *t >= since)
        .any(|(_, e)| *e == wanted)
}

/// `publisher` publishes catalog `version` now; runs until every other running node has
/// reported it, for at most `limit`. Returns how long that took.
pub fn spread_version(
    sim: &mut Sim,
    publisher: usize,
    version: u64,
    limit: Duration,
) -> Option<Duration> {
    let t0 = sim.now();
    let id = sim.nodes[publisher].id;
    sim.publish(publisher, version);
    sim.run_until_cond(
        |s| {
            s.running()
                .filter(|&j| j != publisher)
                .all(|j| got_version(s, j, id, version, t0))
        },
        limit,
    )
}

/// Live nodes wrongly declared down since `since`, as seen by the running nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FalseDowns {
    /// Distinct identities (id and SWIM renewal) of still-running nodes declared down.
    pub incidents: usize,
    /// `Down` events about them, summed over observers.
    pub events: usize,
}

/// `Down` events since `since`, at running nodes, about nodes that are still running: a
/// live node wrongly declared down (SWIM renews its identity and it comes back `Up`).
pub fn false_downs(sim: &Sim, since: Duration) -> FalseDowns {
    let live: HashSet<u64> = sim.running().map(|i| sim.nodes[i].id).collect();
    let downs: Vec<(u64, u32)> = sim
        .running()
        .flat_map(|i| sim.nodes[i].events.iter())
        .filter(|(t, _)| *t >= since)
        .filter_map(|(_, e)| match e {
            Event::Down(m) if live.contains(&m.id) => Some((m.id, m.bump)),
            _ => None,
        })
        .collect();
    let incidents = downs.iter().collect::<HashSet<_>>().len();
    FalseDowns {
        incidents,
        events: downs.len(),
    }
}

/// Nodes `0..n/2` and `n/2..n`.
pub fn halves(n: usize) -> [Vec<usize>; 2] {
    [(0..n / 2).collect(), (n / 2..n).collect()]
}

/// How a partition played out.
#[derive(Debug, Clone, Copy)]
pub struct Partition {
    /// Time until each half saw only itself, if within the limit.
    pub split: Option<Duration>,
    /// Time after healing until the whole cluster saw everyone again, if within the limit.
    pub heal: Option<Duration>,
}

/// Splits the cluster in two halves, waits up to `limit` for each to see only itself, keeps
/// it split `hold` longer, heals, and waits up to `limit` for full views again.
pub fn split_and_heal(sim: &mut Sim, hold: Duration, limit: Duration) -> Partition {
    let [a, b] = halves(sim.len());
    sim.partition(&[&a, &b]);
    let split = sim.run_until_cond(Sim::converged, limit);
    sim.run_for(hold);
    sim.heal();
    let heal = sim.run_until_cond(Sim::converged, limit);
    Partition { split, heal }
}

/// Traffic of one node per second.
#[derive(Debug, Clone, Copy)]
pub struct Rates {
    /// Datagrams per second.
    pub datagrams: f64,
    /// Gossip payload bytes per second.
    pub payload: f64,
    /// Wire bytes per second: payload, mpreg envelope and IP/UDP headers.
    pub wire: f64,
    /// Discovery beacon wire bytes received per second (broadcasts reach every node).
    pub beacons: f64,
}

impl Rates {
    /// Rates per node per second of what `sent` gossip and `heard` beacons add up to, for
    /// `nodes` nodes over `span`.
    fn of(sent: Traffic, heard: Traffic, nodes: usize, span: Duration) -> Self {
        let per = nodes as f64 * span.as_secs_f64();
        Rates {
            datagrams: sent.datagrams as f64 / per,
            payload: sent.payload as f64 / per,
            wire: sent.wire() as f64 / per,
            beacons: heard.wire() as f64 / per,
        }
    }
}

/// Traffic per running node per second over the next `window` of simulated time.
pub fn steady_traffic(sim: &mut Sim, window: Duration) -> Rates {
    let (sent, heard) = (sim.traffic(), sim.beacons_heard());
    sim.run_for(window);
    let sent = sim.traffic() - sent;
    let heard = sim.beacons_heard() - heard;
    Rates::of(sent, heard, sim.running().count(), window)
}

/// When each running observer first had a running `member` in its view, at or after
/// `since`; observers that have not are left out.
fn first_ups_of(sim: &Sim, member: u64, since: Duration) -> Vec<Duration> {
    sim.running()
        .filter(|&j| sim.nodes[j].id != member)
        .filter_map(|j| {
            sim.nodes[j].events.iter().find_map(|(t, e)| match e {
                Event::Up(m) if m.id == member && *t >= since => Some(*t),
                _ => None,
            })
        })
        .collect()
}

/// The time, counted from `from`, by which a fraction `q` (0–1) of the ordered pairs of
/// running nodes (observer, member) had seen the member come up (zero if that was before
/// `from`); `None` if that fraction was never reached.
pub fn pairs_joined(sim: &Sim, q: f64, from: Duration) -> Option<Duration> {
    let live: HashSet<u64> = sim.running().map(|i| sim.nodes[i].id).collect();
    let mut firsts: Vec<Duration> = Vec::new();
    for i in sim.running() {
        let mut seen = HashSet::new();
        for (t, e) in &sim.nodes[i].events {
            if let Event::Up(m) = e {
                if live.contains(&m.id) && seen.insert(m.id) {
                    firsts.push(*t);
                }
            }
        }
    }
    let total = live.len() * live.len().saturating_sub(1);
    let k = ((total as f64 * q).ceil() as usize).max(1);
    if firsts.len() < k {
        return None;
    }
    firsts.sort();
    Some(firsts[k - 1].saturating_sub(from))
}

/// How a cluster formed (see [`form_measured`]).
#[derive(Debug, Clone, Copy)]
pub struct Formation {
    /// From the last start until 99 % of the (observer, member) pairs had joined.
    pub p99: Option<Duration>,
    /// From the last start until every view was full.
    pub full: Option<Duration>,
    /// Traffic per node from the first start until full views (or the limit).
    pub rates: Rates,
}

/// [`form`], measured from the last start (a cluster of a thousand nodes takes ten seconds
/// just to start), with the traffic it cost; waits at most `limit` after the last start.
pub fn form_measured(sim: Sim, limit: Duration) -> (Sim, Formation) {
    let n = sim.len();
    let last_start = JOIN_EVERY * (n as u32 - 1);
    let (sim, took) = form(sim, last_start + limit);
    let span = sim.now().max(Duration::from_millis(1));
    let formation = Formation {
        p99: pairs_joined(&sim, 0.99, last_start),
        full: took.map(|t| t.saturating_sub(last_start)),
        rates: Rates::of(sim.traffic(), sim.beacons_heard(), n, span),
    };
    (sim, formation)
}

/// How one new node joined a formed cluster (see [`join_one`]).
#[derive(Debug, Clone, Copy)]
pub struct Join {
    /// Until 99 % of the other nodes had the newcomer in their view.
    pub seen99: Option<Duration>,
    /// Until every other node had it.
    pub seen_all: Option<Duration>,
    /// Until the newcomer's own view held every other node.
    pub sees_all: Option<Duration>,
}

/// Starts one new node now, announcing to a random running node (its seed), and runs
/// until it is in every view and its view is full, for at most `limit`.
pub fn join_one(sim: &mut Sim, limit: Duration) -> Join {
    let t0 = sim.now();
    let running: Vec<usize> = sim.running().collect();
    let seed = running[sim.random(running.len())];
    let k = sim.len();
    let host = format!("{:032x}", k as u128 * 0x9E37_79B9_7F4A_7C15);
    let i = sim.spawn(&format!("node-{k:03}"), &host, None, 0, Some(seed));
    let id = sim.nodes[i].id;
    let others = running.len();
    sim.run_until_cond(
        |s| {
            s.nodes[i].view.len() >= others
                && s.running().all(|j| j == i || s.nodes[j].view.contains(&id))
        },
        limit,
    );
    let mut seen = first_ups_of(sim, id, t0);
    seen.sort();
    let nth = |v: &[Duration], q: f64| {
        let k = ((others as f64 * q).ceil() as usize).max(1);
        v.get(k - 1).map(|t| *t - t0)
    };
    let mut sees: Vec<Duration> = Vec::new();
    let mut got = HashSet::new();
    for (t, e) in &sim.nodes[i].events {
        if let Event::Up(m) = e {
            if got.insert(m.id) {
                sees.push(*t);
            }
        }
    }
    Join {
        seen99: nth(&seen, 0.99),
        seen_all: nth(&seen, 1.0),
        sees_all: nth(&sees, 1.0),
    }
}
