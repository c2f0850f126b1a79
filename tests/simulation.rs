//! Deterministic simulation of SWIM membership (`mpreg::proto::membership`): many nodes on
//! a virtual clock over a modelled LAN with loss, crashes and partitions (`tests/sim`).
//! Each scenario runs under a few fixed seeds and prints its figures
//! (`cargo test --test simulation -- --nocapture`). Bytes are gossip payload unless marked
//! "wire" (payload + 46-byte mpreg envelope + 28 bytes of IP/UDP per datagram).

mod sim;

use std::time::Duration;

use sim::scenario::{self, rounds, Removal, SETTLE};
use sim::{Discovery, Net, Sim};

/// Seeds every scenario runs under.
const SEEDS: [u64; 3] = [1, 2, 3];
/// The product target for a crashed node to leave every view (DESIGN.md §4).
const CRASH_TARGET: Duration = Duration::from_secs(3);
/// The product target for a graceful leave to be seen (DESIGN.md §4).
const LEAVE_TARGET: Duration = Duration::from_millis(200);
/// The runtime's default beacon interval (`runtime::discovery`).
const BEACON: Duration = Duration::from_secs(1);

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// A converged, settled cluster of `n` nodes; fails the test if it does not converge.
fn cluster(n: usize, seed: u64, net: Net) -> Sim {
    let bound = scenario::join_bound(n);
    let (mut sim, took) = scenario::form_cluster(n, seed, net, bound);
    assert!(
        took.is_some(),
        "{n} nodes, seed {seed}: no convergence within {bound:?}"
    );
    sim.run_for(SETTLE);
    sim
}

/// `n` nodes, not started, that also run the discovery beacon.
fn with_beacon(n: usize, seed: u64, net: Net) -> Sim {
    let mut sim = Sim::new(n, seed, net);
    sim.discovery = Discovery::Beacon(BEACON);
    sim
}

/// A random node other than node 0 (the first one started).
fn victim(sim: &mut Sim) -> usize {
    1 + sim.random(sim.len() - 1)
}

fn print_removal(what: &str, n: usize, seed: u64, r: Removal, target: Duration) {
    println!(
        "{what}: {n} nodes, seed {seed}: median {:.3} s, max {:.3} s (target {:.1} s {})",
        secs(r.median),
        secs(r.max),
        secs(target),
        if r.max <= target { "met" } else { "MISSED" }
    );
}

/// Joins reach 99.9% of the (observer, member) pairs within this, from the first start.
const BULK_JOIN: Duration = Duration::from_secs(5);
/// With the discovery beacon, every view is full within this, from the first start.
const BEACON_JOIN: Duration = Duration::from_secs(5);

/// SWIM alone: each node announces to one earlier node. Gossip reaches almost every pair
/// in seconds; the few pairs it misses wait for a probe (see `scenario::join_bound`).
#[test]
fn hundred_nodes_converge() {
    const N: usize = 100;
    let bound = scenario::join_bound(N);
    for seed in SEEDS {
        let (sim, took) = scenario::form_cluster(N, seed, Net::lan(), bound);
        let took =
            took.unwrap_or_else(|| panic!("seed {seed}: {N} nodes did not converge in {bound:?}"));
        sim.assert_consistent();
        let (p99, p999) = (
            scenario::joined_fraction(&sim, 0.99),
            scenario::joined_fraction(&sim, 0.999),
        );
        assert!(
            p999 <= BULK_JOIN,
            "seed {seed}: 99.9% of pairs joined only after {p999:?}"
        );
        let t = sim.traffic();
        println!(
            "converge: {N} nodes, seed {seed}: all views full at {:.3} s ({:.1} rounds; last start at 0.99 s); \
             99% of pairs at {:.3} s, 99.9% at {:.3} s; {} datagrams, {} payload bytes, {} wire bytes",
            secs(took),
            rounds(took),
            secs(p99),
            secs(p999),
            t.datagrams,
            t.payload,
            t.wire()
        );
    }
}

/// With the beacon a real node runs, a member missing from a view is announced to within a
/// beacon interval, so the stragglers of SWIM-only dissemination disappear.
#[test]
fn hundred_nodes_converge_with_beacon() {
    const N: usize = 100;
    for seed in SEEDS {
        let (sim, took) = scenario::form(with_beacon(N, seed, Net::lan()), BEACON_JOIN);
        let took = took.unwrap_or_else(|| {
            panic!("seed {seed}: {N} nodes with beacon did not converge in {BEACON_JOIN:?}")
        });
        sim.assert_consistent();
        let t = sim.traffic();
        println!(
            "converge with beacon: {N} nodes, seed {seed}: all views full at {:.3} s ({:.1} rounds); \
             {} datagrams, {} payload bytes, {} wire bytes",
            secs(took),
            rounds(took),
            t.datagrams,
            t.payload,
            t.wire()
        );
    }
}

#[test]
fn crashed_node_leaves_every_view() {
    for n in [10, 100] {
        for seed in SEEDS {
            let mut sim = cluster(n, seed, Net::lan());
            let v = victim(&mut sim);
            let r = scenario::crash(&mut sim, v, Duration::from_secs(10)).unwrap_or_else(|| {
                panic!("{n} nodes, seed {seed}: crash of node {v} not detected in 10 s")
            });
            print_removal("crash", n, seed, r, CRASH_TARGET);
            sim.assert_consistent();
        }
    }
}

#[test]
fn graceful_leave_is_fast() {
    for n in [10, 100] {
        for seed in SEEDS {
            let mut sim = cluster(n, seed, Net::lan());
            let v = victim(&mut sim);
            let r = scenario::leave(&mut sim, v, Duration::from_secs(2)).unwrap_or_else(|| {
                panic!("{n} nodes, seed {seed}: leave of node {v} not seen in 2 s")
            });
            print_removal("leave", n, seed, r, LEAVE_TARGET);
            sim.assert_consistent();
        }
    }
}

/// SWIM alone heals a short partition: members declared down are re-announced to every
/// second, for as long as they are remembered (`remove_down_after`, 30 s).
#[test]
fn partition_heals() {
    const N: usize = 20;
    for seed in SEEDS {
        let mut sim = cluster(N, seed, Net::lan());
        let p = scenario::split_and_heal(&mut sim, Duration::from_secs(5), Duration::from_secs(30));
        let split = p
            .split
            .unwrap_or_else(|| panic!("seed {seed}: halves did not separate in 30 s"));
        let heal = p.heal.unwrap_or_else(|| {
            panic!("seed {seed}: cluster did not re-form in 30 s after healing")
        });
        sim.assert_consistent();
        println!(
            "partition: {N} nodes, seed {seed}: halves separated in {:.3} s, re-formed {:.3} s after healing",
            secs(split),
            secs(heal)
        );
    }
}

/// At 10% loss SWIM alone can split a cluster into islands that never merge (a member is
/// forgotten 30 s after it is declared down), so this runs with the beacon, as real nodes
/// do. False `Down`s of live nodes at 5% loss are printed, and must at least be transient.
#[test]
fn packet_loss() {
    const N: usize = 30;
    for seed in SEEDS {
        let (mut sim, took) = scenario::form(
            with_beacon(N, seed, Net::lan().with_loss(0.10)),
            Duration::from_secs(30),
        );
        let took =
            took.unwrap_or_else(|| panic!("seed {seed}: no convergence at 10% loss in 30 s"));
        sim.run_for(SETTLE);
        let v = victim(&mut sim);
        let r = scenario::crash(&mut sim, v, Duration::from_secs(15))
            .unwrap_or_else(|| panic!("seed {seed}: crash not detected at 10% loss in 15 s"));
        println!(
            "loss 10% with beacon: {N} nodes, seed {seed}: converged in {:.3} s; crash seen by all in {:.3} s (median {:.3} s)",
            secs(took),
            secs(r.max),
            secs(r.median)
        );
        sim.net.loss = 0.05;
        let quiet = sim.now();
        sim.run_for(Duration::from_secs(30));
        let f = scenario::false_downs(&sim, quiet);
        sim.net.loss = 0.0;
        let back = sim
            .run_until_cond(Sim::converged, Duration::from_secs(10))
            .unwrap_or_else(|| panic!("seed {seed}: views not whole 10 s after loss stopped"));
        sim.assert_consistent();
        println!(
            "loss 5% with beacon: {N} nodes, seed {seed}: {} live nodes declared down ({} Down events) in 30 s; \
             views whole {:.3} s after loss stopped",
            f.incidents,
            f.events,
            secs(back)
        );
    }
}

/// No live node is declared down at 5% loss. With foca 2.0.0 alone this fails: when a
/// suspicion times out after being refuted, `Timer::ChangeSuspectToDown` still sends
/// `TurnUndead` to the member, which then declares itself down and rejoins under a renewed
/// identity. `Membership::poll_transmit` drops such spurious `TurnUndead`s; this pins it.
#[test]
fn no_false_downs_at_5_percent_loss() {
    const N: usize = 30;
    let mut found = Vec::new();
    for seed in SEEDS {
        let mut sim = cluster(N, seed, Net::lan());
        sim.net.loss = 0.05;
        let quiet = sim.now();
        sim.run_for(Duration::from_secs(30));
        found.push(scenario::false_downs(&sim, quiet).incidents);
    }
    assert_eq!(
        found,
        vec![0; SEEDS.len()],
        "live nodes declared down, per seed"
    );
}

#[test]
fn catalog_versions_reach_everyone() {
    for n in [10, 100] {
        for seed in SEEDS {
            let mut sim = cluster(n, seed, Net::lan());
            let publisher = victim(&mut sim);
            let took = scenario::spread_version(&mut sim, publisher, 2, Duration::from_secs(5))
                .unwrap_or_else(|| {
                    panic!("{n} nodes, seed {seed}: catalog version not everywhere in 5 s")
                });
            println!(
                "catalog: {n} nodes, seed {seed}: version reached all others in {:.3} s",
                secs(took)
            );
        }
    }
}

/// The detection budget a view change must meet (DESIGN.md §4).
const NAMES_TARGET: Duration = Duration::from_secs(3);
/// Measured bound for a `kill -9` to be reflected everywhere (the killed node gone, an
/// older namesake it hid back) in 3–10 node clusters: SWIM detection with `lan_config`
/// (first probe up to a period, 200 ms round trip, 1–1.2 s suspicion, then gossip) takes
/// 1.6 s median but up to 3.2 s lossless and 3.5 s at 2% loss: the 3 s target is missed
/// by ~1% of kills.
const KILL_BOUND: Duration = Duration::from_secs(4);
/// Measured bound for each side of a fresh partition to drop the other side: every node of
/// the other side must be detected at once (2.5 s median, up to 4.5 s lossless and 6 s at
/// 2% loss). Not a name rule: views are only required to be whole with no partition.
const PARTITION_BOUND: Duration = Duration::from_millis(6500);

/// The bound each step kind must meet: the 3 s target, except the two measured above.
fn names_bound(step: sim::names::Step) -> Duration {
    match step {
        sim::names::Step::Kill => KILL_BOUND,
        sim::names::Step::Partition => PARTITION_BOUND,
        _ => NAMES_TARGET,
    }
}

/// Runs the unique-names churn under `seeds` and `net`; prints per-run and per-step-kind
/// figures and checks every step against [`names_bound`].
fn names_churn(what: &str, seeds: std::ops::Range<u64>, net: Net) {
    use sim::names::{self, Setup, Step};
    let setup = Setup {
        steps: 40,
        hosts: 4,
        min_live: 3,
        max_live: 10,
        budget: NAMES_TARGET,
        limit: Duration::from_secs(30),
        net,
        beacon: BEACON,
    };
    let mut all: std::collections::BTreeMap<Step, Vec<Duration>> = Default::default();
    for seed in seeds {
        let f = names::run(seed, &setup).unwrap_or_else(|e| panic!("{what}, seed {seed}: {e}"));
        let (kind, max) = f
            .times
            .iter()
            .map(|(k, t)| (*k, t.iter().copied().max().unwrap_or_default()))
            .max_by_key(|(_, d)| *d)
            .expect("steps ran");
        println!(
            "names {what}: seed {seed}: {} steps, {} starts refused, {} duplicates joined across \
             a partition, peak {} live; worst convergence {:.3} s (after {kind:?})",
            f.steps,
            f.refused,
            f.duplicates_joined,
            f.peak,
            secs(max)
        );
        for (k, t) in f.times {
            all.entry(k).or_default().extend(t);
        }
    }
    let mut failed = Vec::new();
    for (k, t) in &mut all {
        t.sort();
        let max = *t.last().expect("non-empty");
        let over = t.iter().filter(|d| **d > NAMES_TARGET).count();
        println!(
            "names {what}: {k:?}: {} steps, median {:.3} s, p99 {:.3} s, max {:.3} s, \
             {over} over the {:.0} s target (bound {:.1} s)",
            t.len(),
            secs(scenario::median(t)),
            secs(t[(t.len() * 99).div_ceil(100) - 1]),
            secs(max),
            secs(NAMES_TARGET),
            secs(names_bound(*k))
        );
        if max > names_bound(*k) {
            failed.push((*k, max));
        }
    }
    assert!(
        failed.is_empty(),
        "{what}: steps over their bound: {failed:?}"
    );
}

/// Unique names (issue #12): random sequences of fresh starts, restarts, duplicate claims
/// (refused when the holder is reachable, as the runtime does), kills, leaves, partitions
/// and heals. After every step each live node must see, for every other name, exactly the
/// newest live identity of its partition side (the whole cluster when none), within the
/// step kind's bound, and still so at the end of the 3 s budget. Also at 2% loss.
#[test]
fn unique_names_converge_under_churn() {
    names_churn("lossless", 0..48, Net::lan());
    names_churn("2% loss", 100..124, Net::lan().with_loss(0.02));
}

/// Issue #17 item 5, scaled down (the 1,000-node figures take minutes of release-mode
/// simulation: `MPREG_BENCH_SIZES=1000 cargo bench --bench membership`). Nodes configured
/// as deployed (`lan_config(16)`, retuned to the view size) with the beacon: one more node
/// joining a formed cluster is in every view, and sees every node, within the 3 s
/// budget, and the steady-state gossip stays far below 100 kbit/s per node.
#[test]
fn deployed_config_joins_fast_and_gossips_little() {
    const N: usize = 100;
    const BUDGET: Duration = Duration::from_secs(3);
    const KBIT_PER_S: f64 = 100.0;
    for seed in SEEDS {
        let mut sim = Sim::as_deployed(N, seed, Net::lan());
        sim.discovery = Discovery::Beacon(BEACON);
        let (mut sim, formed) = scenario::form_measured(sim, Duration::from_secs(30));
        assert!(
            formed.full.is_some(),
            "seed {seed}: {N} nodes did not converge"
        );
        sim.run_for(SETTLE);
        let join = scenario::join_one(&mut sim, Duration::from_secs(10));
        let seen = join.seen_all.unwrap_or(Duration::MAX);
        let sees = join.sees_all.unwrap_or(Duration::MAX);
        assert!(
            seen <= BUDGET && sees <= BUDGET,
            "seed {seed}: newcomer in every view after {seen:?}, saw everyone after {sees:?}"
        );
        sim.run_for(SETTLE);
        let rates = scenario::steady_traffic(&mut sim, Duration::from_secs(20));
        let kbit = rates.wire * 8.0 / 1000.0;
        assert!(
            kbit < KBIT_PER_S / 4.0,
            "seed {seed}: steady gossip {kbit:.1} kbit/s per node"
        );
        sim.assert_consistent();
        println!(
            "deployed config, {N} nodes with beacon, seed {seed}: newcomer in every view in {:.3} s, \
             saw everyone in {:.3} s; steady gossip {kbit:.1} kbit/s per node",
            secs(seen),
            secs(sees)
        );
    }
}

/// The chaos soak's cut-and-heal, hundreds of times at 5 % loss: within 3 s of each heal,
/// every view is whole again and no node still holds a live member as suspect. foca 2.0.0
/// alone fails this: a suspicion learned by gossip has no timer on the nodes that heard it,
/// and the originator's timer is dropped when the originator renews its identity after the
/// heal (it was declared down while cut off), so the suspicion outlived the heal (by 6.5 s
/// once in the hour-long LAN soak; here, without the watch of `membership::suspicion`, 39
/// of the 1,200 heals left one for 10 to 30 s).
#[test]
fn no_suspicion_outlives_a_heal() {
    const N: usize = 5;
    const HEALS: usize = 400;
    let mut net = Net::lan().with_loss(0.05);
    net.latency_min = Duration::from_millis(10);
    net.latency_max = Duration::from_millis(30);
    let step = Duration::from_millis(50);
    let limit = Duration::from_secs(3);
    let mut slow = Vec::new();
    for seed in SEEDS {
        let mut sim = Sim::as_deployed(N, seed, net.clone());
        sim.start_staggered(Duration::from_millis(100));
        sim.run_until_cond(Sim::converged, Duration::from_secs(30))
            .unwrap_or_else(|| panic!("seed {seed}: no convergence"));
        sim.run_for(SETTLE);
        let mut worst = Duration::ZERO;
        for k in 0..HEALS {
            let v = 2 + k % 3;
            let others: Vec<usize> = (0..N).filter(|&i| i != v).collect();
            sim.partition(&[&[v], &others]);
            // Cuts of 3.5 to 4.5 s, so that suspicions are raised at every point of a cut.
            sim.run_for(Duration::from_millis(3_500 + (k as u64 * 37) % 1_000));
            sim.heal();
            let healed = sim.now();
            let settled = |sim: &Sim| {
                sim.converged()
                    && sim
                        .running()
                        .all(|i| sim.nodes[i].membership.suspects().is_empty())
            };
            while !settled(&sim) && sim.now() - healed < Duration::from_secs(30) {
                sim.run_for(step);
            }
            let took = sim.now() - healed;
            worst = worst.max(took);
            if took > limit {
                slow.push(format!("seed {seed}, heal {k}: {took:?}"));
            }
            sim.run_for(Duration::from_secs(5));
        }
        println!(
            "cut and heal: {N} nodes at 5% loss, seed {seed}: {HEALS} heals, views whole and no suspect left within {:.3} s at worst",
            secs(worst)
        );
    }
    assert!(slow.is_empty(), "heals slower than {limit:?}: {slow:?}");
}
