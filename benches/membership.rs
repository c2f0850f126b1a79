//! Membership figures from the deterministic simulation (`tests/sim`), for clusters of 10,
//! 100 and 1,000 nodes, with SWIM alone (seeds) and with the discovery beacon, lossless
//! and at 5 % loss. Each node runs as a real one does: it starts with `lan_config(16)` and
//! retunes to its view size as the cluster grows (`Membership::fit_config_to_size`).
//!
//! Printed per run, then as medians over the seeds: how the cluster formed (99 % of the
//! pairs and every view, from the last start) and what that cost per node; how one more
//! node joined the formed cluster; steady-state gossip traffic; crash and leave detection;
//! and (lossless only) a 50/50 partition split and heal. Times are simulated; the
//! wall-clock cost of each run is a side note.
//!
//! `cargo bench --bench membership` (10 and 100 nodes, about a minute). Environment:
//! `MPREG_BENCH_SIZES=1000` picks the sizes (each 1,000-node run takes minutes of CPU,
//! nearly all inside foca, whose work per datagram grows with the cluster),
//! `MPREG_BENCH_LOSS=0,5` the loss rates in percent, `MPREG_BENCH_SEEDS=1,2,3` the seeds,
//! and `MPREG_BENCH_DISCOVERY=seeds` or `=beacon` runs only that setup (both by default;
//! `=fixed` runs the beacon at a fixed 1 s interval on every node, the rule before its pace
//! adapted to the cluster size).
//! `MPREG_BENCH_TUNING=candidate` runs the nodes with [`candidate`] instead of
//! `lan_config` (a tuning for large clusters under evaluation, not in production).

#[path = "../tests/sim/mod.rs"]
mod sim;

use std::time::{Duration, Instant};

use mpreg::proto::membership::lan_config;
use sim::scenario::{self, Formation, Join, Partition, Rates, Removal, SETTLE};
use sim::{Discovery, Net, Sim};

/// Seeds each configuration runs under, unless `MPREG_BENCH_SEEDS` lists others.
const SEEDS: [f64; 3] = [1.0, 2.0, 3.0];
/// Steady-state traffic is measured over this much simulated time.
const STEADY: Duration = Duration::from_secs(30);
/// The runtime's default beacon interval.
const BEACON: Duration = Duration::from_secs(1);
/// How long formation may take after the last start before it counts as not converged.
const FORM_LIMIT: Duration = Duration::from_secs(60);
/// Largest cluster whose partition split and heal is measured.
const PARTITION_MAX: usize = 100;
/// How long one node joining, a crash or a leave may take before it counts as not done.
const EVENT_LIMIT: Duration = Duration::from_secs(30);

/// Everything measured for one cluster.
struct Row {
    form: Formation,
    join: Join,
    rates: Rates,
    crash: Option<Removal>,
    leave: Option<Removal>,
    partition: Option<Partition>,
    wall: Duration,
}

/// A tuning under evaluation for clusters above 100 nodes, meant to cut the gossip burst of
/// a mass join: periodic gossip to one member instead of three, and memberlist's
/// retransmission count (4·log10(n+1)) instead of twice it. Smaller clusters keep
/// `lan_config`.
fn candidate(n: u32) -> foca::Config {
    let mut c = lan_config(n);
    if n > 100 {
        c.periodic_gossip = Some(foca::PeriodicParams {
            frequency: Duration::from_millis(200),
            num_members: std::num::NonZeroUsize::new(1).expect("non-zero"),
        });
        let memberlist = (f64::from(n + 1).log10() * 4.0) as u8;
        c.max_transmissions = std::num::NonZeroU8::new(memberlist.max(8)).expect("non-zero");
    }
    c
}

/// A simulation of `n` nodes configured as real nodes are.
fn real_nodes(n: usize, seed: u64, net: Net, discovery: Discovery) -> Sim {
    let mut sim = Sim::as_deployed(n, seed, net);
    if std::env::var("MPREG_BENCH_TUNING").as_deref() == Ok("candidate") {
        sim.tuning = Some(candidate);
    }
    sim.discovery = discovery;
    sim
}

/// Forms the cluster, then measures in order: one more node joining, steady traffic, a
/// crash, a leave, and (lossless only) a 50/50 partition held 5 s after it took hold,
/// then healed.
fn run(n: usize, seed: u64, loss: f64, discovery: Discovery) -> Row {
    let started = Instant::now();
    let sim = real_nodes(n, seed, Net::lan().with_loss(loss), discovery);
    let phase = |what: &str, sim: &Sim| {
        if n >= 1000 {
            eprintln!(
                "  {n} nodes, seed {seed}: {what} done at {:.1} s simulated, {:.1} s wall",
                sim.now().as_secs_f64(),
                started.elapsed().as_secs_f64()
            );
        }
    };
    let (mut sim, form) = scenario::form_measured(sim, FORM_LIMIT);
    phase("formation", &sim);
    sim.run_for(SETTLE);
    let join = scenario::join_one(&mut sim, EVENT_LIMIT);
    phase("join", &sim);
    sim.run_for(SETTLE);
    let rates = scenario::steady_traffic(&mut sim, STEADY);
    phase("steady", &sim);
    let crash = scenario::crash(&mut sim, n / 3, EVENT_LIMIT);
    phase("crash", &sim);
    sim.run_for(SETTLE);
    let leave = scenario::leave(&mut sim, n / 2, EVENT_LIMIT);
    phase("leave", &sim);
    // A partition of a large cluster costs minutes of wall clock for a figure the issue
    // does not ask for at that size.
    let partition = (loss == 0.0 && n <= PARTITION_MAX).then(|| {
        sim.run_for(SETTLE);
        scenario::split_and_heal(&mut sim, Duration::from_secs(5), Duration::from_secs(60))
    });
    Row {
        form,
        join,
        rates,
        crash,
        leave,
        partition,
        wall: started.elapsed(),
    }
}

fn secs(d: Option<Duration>) -> String {
    d.map_or("none".into(), |d| format!("{:.2}", d.as_secs_f64()))
}

fn removal(r: Option<Removal>) -> String {
    r.map_or("none".into(), |r| {
        format!("{:.2} / {:.2}", r.median.as_secs_f64(), r.max.as_secs_f64())
    })
}

fn kbit(bytes_per_s: f64) -> f64 {
    bytes_per_s * 8.0 / 1000.0
}

fn print_header() {
    println!(
        "{:>5} {:>6} {:>4} {:>6} | {:>6} {:>6} {:>7} {:>6} | {:>6} {:>6} {:>6} | {:>7} {:>6} {:>6} {:>6} | {:>13} {:>13} | {:>6} {:>6} | {:>6}",
        "nodes",
        "disc",
        "loss",
        "seed",
        "f99 s",
        "f100 s",
        "f kbps",
        "f bcn",
        "j99 s",
        "j100 s",
        "jsee s",
        "wire B/s",
        "kbit/s",
        "dgr/s",
        "bcn",
        "crash med/max",
        "leave med/max",
        "split",
        "heal",
        "wall s"
    );
}

fn print_row(n: usize, disc: &str, loss: f64, seed: &str, r: &Row) {
    let (split, heal) = r
        .partition
        .map_or(("-".into(), "-".into()), |p| (secs(p.split), secs(p.heal)));
    println!(
        "{:>5} {:>6} {:>3}% {:>6} | {:>6} {:>6} {:>7.1} {:>6.1} | {:>6} {:>6} {:>6} | {:>7.0} {:>6.1} {:>6.2} {:>6.1} | {:>13} {:>13} | {:>6} {:>6} | {:>6.1}",
        n,
        disc,
        (loss * 100.0).round(),
        seed,
        secs(r.form.p99),
        secs(r.form.full),
        kbit(r.form.rates.wire),
        kbit(r.form.rates.beacons),
        secs(r.join.seen99),
        secs(r.join.seen_all),
        secs(r.join.sees_all),
        r.rates.wire,
        kbit(r.rates.wire),
        r.rates.datagrams,
        kbit(r.rates.beacons),
        removal(r.crash),
        removal(r.leave),
        split,
        heal,
        r.wall.as_secs_f64()
    );
}

/// The median of `v`, a missing value counting as larger than any (so the median is
/// missing when most are).
fn median_opt(v: impl Iterator<Item = Option<Duration>>) -> Option<Duration> {
    let mut v: Vec<Option<Duration>> = v.collect();
    v.sort_by_key(|d| d.unwrap_or(Duration::MAX));
    v[v.len() / 2]
}

fn median_f(v: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = v.collect();
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// The per-column median of `rows` (the middle seed of each column, not of a run).
fn median_row(rows: &[Row]) -> Row {
    let med = |f: &dyn Fn(&Row) -> Option<Duration>| median_opt(rows.iter().map(f));
    let rate = |f: &dyn Fn(&Row) -> f64| median_f(rows.iter().map(f));
    let removal = |f: &dyn Fn(&Row) -> Option<Removal>| {
        let median = med(&|r| f(r).map(|x| x.median));
        let max = med(&|r| f(r).map(|x| x.max));
        median.zip(max).map(|(median, max)| Removal { median, max })
    };
    Row {
        form: Formation {
            p99: med(&|r| r.form.p99),
            full: med(&|r| r.form.full),
            rates: Rates {
                datagrams: rate(&|r| r.form.rates.datagrams),
                payload: rate(&|r| r.form.rates.payload),
                wire: rate(&|r| r.form.rates.wire),
                beacons: rate(&|r| r.form.rates.beacons),
            },
        },
        join: Join {
            seen99: med(&|r| r.join.seen99),
            seen_all: med(&|r| r.join.seen_all),
            sees_all: med(&|r| r.join.sees_all),
        },
        rates: Rates {
            datagrams: rate(&|r| r.rates.datagrams),
            payload: rate(&|r| r.rates.payload),
            wire: rate(&|r| r.rates.wire),
            beacons: rate(&|r| r.rates.beacons),
        },
        crash: removal(&|r| r.crash),
        leave: removal(&|r| r.leave),
        partition: rows[0].partition.map(|_| Partition {
            split: med(&|r| r.partition.and_then(|p| p.split)),
            heal: med(&|r| r.partition.and_then(|p| p.heal)),
        }),
        wall: rows.iter().map(|r| r.wall).sum(),
    }
}

/// A comma-separated list of numbers from the environment variable `var`, or `default`.
fn list_env(var: &str, default: &[f64]) -> Vec<f64> {
    match std::env::var(var) {
        Ok(s) => s
            .split(',')
            .map(|x| {
                x.trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("{var}: not a number: {x:?}"))
            })
            .collect(),
        Err(_) => default.to_vec(),
    }
}

/// The discovery setups to run: seeds and beacon, or the one named by
/// `MPREG_BENCH_DISCOVERY` (`seeds`, `beacon` or `fixed`).
fn discoveries() -> Vec<(&'static str, Discovery)> {
    let all = [
        ("seeds", Discovery::Seeds),
        ("beacon", Discovery::Beacon(BEACON)),
        ("fixed", Discovery::FixedBeacon(BEACON)),
    ];
    match std::env::var("MPREG_BENCH_DISCOVERY") {
        Ok(only) => all.into_iter().filter(|(name, _)| *name == only).collect(),
        Err(_) => all[..2].to_vec(),
    }
}

fn main() {
    let sizes: Vec<usize> = list_env("MPREG_BENCH_SIZES", &[10.0, 100.0])
        .into_iter()
        .map(|n| n as usize)
        .collect();
    let seeds: Vec<u64> = list_env("MPREG_BENCH_SEEDS", &SEEDS)
        .into_iter()
        .map(|s| s as u64)
        .collect();
    let losses: Vec<f64> = list_env("MPREG_BENCH_LOSS", &[0.0, 5.0])
        .into_iter()
        .map(|p| p / 100.0)
        .collect();
    println!("mpreg membership simulation: real-node config (lan_config(16), retuned to the view size), one-way latency 0.2-2 ms");
    println!("f99 / f100: from the last start (nodes start every 10 ms) until 99 % of the pairs / every view; f kbps: gossip wire kbit/s sent per node meanwhile, f bcn: beacon kbit/s received per node");
    println!("j99 / j100: one more node, until 99 % / all of the others see it; jsee: until it sees all of them");
    println!("wire B/s, kbit/s, dgr/s: gossip sent per node, steady state over {} s; wire = payload + {} B envelope + 28 B IP/UDP; bcn: beacon kbit/s received per node", STEADY.as_secs(), mpreg::proto::datagram::HEADER_LEN);
    println!("crash/leave: seconds until dropped from a view, median / max over observers (max: out of every view)");
    println!("split: until each half of a 50/50 partition sees only itself; heal: until full views after healing (lossless, up to {PARTITION_MAX} nodes)");
    println!(
        "'none': not within the limit ({} s after the last start for formation, {} s otherwise)",
        FORM_LIMIT.as_secs(),
        EVENT_LIMIT.as_secs()
    );
    println!();
    print_header();
    let total = Instant::now();
    let mut medians = Vec::new();
    for &loss in &losses {
        for (name, discovery) in discoveries() {
            for &n in &sizes {
                let rows: Vec<Row> = seeds
                    .iter()
                    .map(|&seed| {
                        let r = run(n, seed, loss, discovery);
                        print_row(n, name, loss, &seed.to_string(), &r);
                        r
                    })
                    .collect();
                medians.push((n, name, loss, median_row(&rows)));
            }
        }
    }
    println!();
    println!("medians over seeds {seeds:?} (each column on its own; wall: sum)");
    print_header();
    for (n, name, loss, r) in &medians {
        print_row(*n, name, *loss, "median", r);
    }
    println!();
    println!(
        "simulation wall clock, all runs: {:.2} s",
        total.elapsed().as_secs_f64()
    );
}
