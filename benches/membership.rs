//! Membership figures from the deterministic simulation (`tests/sim`): for 10 and 100 nodes,
//! with SWIM alone (seeds) and with the discovery beacon, it prints convergence, steady-state
//! gossip traffic, crash and leave detection, and partition split/heal times. Times are
//! simulated; the wall-clock cost of each run is a side note.
//!
//! `cargo bench --bench membership`

#[path = "../tests/sim/mod.rs"]
mod sim;

use std::time::{Duration, Instant};

use sim::scenario::{self, rounds, Partition, Rates, Removal, SETTLE};
use sim::{Discovery, Net, Sim};

const SIZES: [usize; 2] = [10, 100];
const SEEDS: [u64; 3] = [1, 2, 3];
/// Steady-state traffic is measured over this much simulated time.
const STEADY: Duration = Duration::from_secs(60);
/// The runtime's default beacon interval.
const BEACON: Duration = Duration::from_secs(1);

/// Everything measured for one cluster.
struct Row {
    converge: Option<Duration>,
    rates: Rates,
    crash: Option<Removal>,
    leave: Option<Removal>,
    partition: Partition,
    wall: Duration,
}

/// Forms the cluster, then measures in order: steady traffic, a crash, a leave, a 50/50
/// partition held 5 s after it took hold, then healed.
fn run(n: usize, seed: u64, discovery: Discovery) -> Row {
    let started = Instant::now();
    let mut sim = Sim::new(n, seed, Net::lan());
    sim.discovery = discovery;
    let (mut sim, converge) = scenario::form(sim, scenario::join_bound(n));
    sim.run_for(SETTLE);
    let rates = scenario::steady_traffic(&mut sim, STEADY);
    let crash = scenario::crash(&mut sim, n / 3, Duration::from_secs(60));
    sim.run_for(SETTLE);
    let leave = scenario::leave(&mut sim, n / 2, Duration::from_secs(60));
    sim.run_for(SETTLE);
    let partition =
        scenario::split_and_heal(&mut sim, Duration::from_secs(5), Duration::from_secs(120));
    Row {
        converge,
        rates,
        crash,
        leave,
        partition,
        wall: started.elapsed(),
    }
}

fn opt_secs(d: Option<Duration>) -> String {
    d.map_or("none".into(), |d| format!("{:.2}", d.as_secs_f64()))
}

fn removal(r: Option<Removal>) -> String {
    r.map_or("none".into(), |r| {
        format!("{:.2} / {:.2}", r.median.as_secs_f64(), r.max.as_secs_f64())
    })
}

fn print_header() {
    println!(
        "{:>5} {:>9} {:>4} | {:>8} {:>6} | {:>8} {:>8} {:>7} | {:>13} {:>13} | {:>7} {:>7} | {:>7}",
        "nodes",
        "discovery",
        "seed",
        "conv s",
        "rounds",
        "pay B/s",
        "wire B/s",
        "dgram/s",
        "crash med/max",
        "leave med/max",
        "split s",
        "heal s",
        "wall s"
    );
}

fn print_row(n: usize, discovery: &str, seed: u64, r: &Row) {
    println!(
        "{:>5} {:>9} {:>4} | {:>8} {:>6} | {:>8.0} {:>8.0} {:>7.2} | {:>13} {:>13} | {:>7} {:>7} | {:>7.2}",
        n,
        discovery,
        seed,
        opt_secs(r.converge),
        r.converge.map_or("-".into(), |d| format!("{:.1}", rounds(d))),
        r.rates.payload,
        r.rates.wire,
        r.rates.datagrams,
        removal(r.crash),
        removal(r.leave),
        opt_secs(r.partition.split),
        opt_secs(r.partition.heal),
        r.wall.as_secs_f64()
    );
}

fn main() {
    println!("mpreg membership simulation: lan_config(n), one-way latency 0.2-2 ms, no loss");
    println!("conv: all views full, from the first start (nodes start every 10 ms); rounds = conv / 500 ms probe period");
    println!("B/s and dgram/s: per node, steady state over {} s; wire = payload + 22 B envelope + 28 B IP/UDP", STEADY.as_secs());
    println!("crash/leave: seconds until dropped from a view, median / max over observers");
    println!("split: until each half of a 50/50 partition sees only itself; heal: until full views after healing");
    println!();
    print_header();
    let total = Instant::now();
    for (name, discovery) in [
        ("seeds", Discovery::Seeds),
        ("beacon 1s", Discovery::Beacon(BEACON)),
    ] {
        for n in SIZES {
            for seed in SEEDS {
                print_row(n, name, seed, &run(n, seed, discovery));
            }
        }
    }
    println!();
    println!(
        "simulation wall clock, all runs: {:.2} s",
        total.elapsed().as_secs_f64()
    );
}
