//! What an idle cluster costs (issue #17): three member nodes, each in its own process on
//! loopback (the discovery beacon confined to `lo` on a private port, mDNS off), doing
//! nothing but staying a cluster: connection heartbeats, SWIM probes, beacons. Measured
//! per node over a window: CPU as a share of one core (the scheduler's run time of every
//! thread), thread wakeups per second (context switches: what idle CPU is made of, and a
//! figure a busy host does not inflate) and resident memory. The reference, in the same run, is a process holding an
//! idle tokio multi-thread runtime, which is what every node pays before mpreg does
//! anything.
//!
//! Each node's periodic work ticks on a grid whose origin is the node's start, so nodes
//! started together tick nearly together and wake each other less than nodes of a real
//! cluster, started at unrelated times. The nodes here start a third of a tick apart, so
//! that their ticks are spread as far as three can be.
//!
//! `cargo bench --bench idle`. Environment: `MPREG_BENCH_SECS` sets the window (default
//! 30 s), `MPREG_BENCH_SECRET=1` gives the nodes a shared secret (everything encrypted).

#[path = "support/mod.rs"]
mod support;

use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::time::{Duration, Instant};

use mpreg::Node;
use support::{cpu_ns, wait_for_parent, ChildProc, ROLE_VAR};

/// Nodes in the cluster.
const NODES: usize = 3;
/// How far apart the nodes start, in ms: a third of the timer grid's 250 ms tick.
const PHASE_MS: u64 = 83;
/// Time to settle after every node sees the others, before measuring.
const SETTLE: Duration = Duration::from_secs(3);

fn main() {
    match std::env::var(ROLE_VAR).as_deref() {
        Err(_) => measure(),
        Ok("node") => node(),
        Ok("reference") => reference(),
        Ok(other) => panic!("unknown {ROLE_VAR} `{other}`"),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// A member node that prints `ready` once it sees the other nodes, then idles until the
/// parent closes its stdin.
fn node() {
    let env = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} is not set"));
    let beacon_port: u16 = env("MPREG_BENCH_BEACON").parse().expect("a port");
    let phase: u64 = env("MPREG_BENCH_PHASE_MS").parse().expect("milliseconds");
    std::thread::sleep(Duration::from_millis(phase));
    runtime().block_on(async {
        let mut b = Node::builder()
            .name(env("MPREG_BENCH_NAME"))
            .bind(IpAddr::V4(Ipv4Addr::LOCALHOST))
            .port(0)
            .interfaces(["lo"])
            .mdns(false)
            .beacon(true)
            .beacon_port(beacon_port);
        if let Ok(f) = std::env::var("MPREG_BENCH_SECRET_FILE") {
            b = b.secret_file(f);
        }
        let node = b.start().await.expect("the node starts");
        while node.members().len() < NODES - 1 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        println!("ready");
        let _ = tokio::task::spawn_blocking(wait_for_parent).await;
        node.shutdown().await;
    });
}

/// An idle tokio runtime: the floor under every node's figure.
fn reference() {
    runtime().block_on(async {
        println!("ready");
        let _ = tokio::task::spawn_blocking(wait_for_parent).await;
    });
}

/// Resident memory of `pid` in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Context switches of every thread of `pid` so far (voluntary: it slept and was woken;
/// involuntary: preempted). Wakeups are what an idle node pays for, and unlike CPU time
/// they do not grow when the host is busy.
fn switches(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .map(|t| std::fs::read_to_string(t.path().join("status")).unwrap_or_default())
        .flat_map(|status| {
            status
                .lines()
                .filter_map(|l| {
                    let v = l
                        .strip_prefix("voluntary_ctxt_switches:")
                        .or_else(|| l.strip_prefix("nonvoluntary_ctxt_switches:"))?;
                    v.trim().parse::<u64>().ok()
                })
                .collect::<Vec<_>>()
        })
        .sum()
}

fn free_udp_port() -> u16 {
    let s = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("a free UDP port");
    s.local_addr().expect("bound").port()
}

fn measure() {
    let secs: u64 = std::env::var("MPREG_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let secret = std::env::var("MPREG_BENCH_SECRET").as_deref() == Ok("1");
    let secret_file = std::env::temp_dir().join(format!("mpreg-idle-{}", std::process::id()));
    if secret {
        std::fs::write(&secret_file, "idle bench secret").expect("write the secret");
    }
    let beacon = free_udp_port().to_string();
    let mut procs: Vec<(String, ChildProc)> = (1..=NODES)
        .map(|i| {
            let mut env = vec![
                ("MPREG_BENCH_NAME", format!("idle{i}")),
                ("MPREG_BENCH_BEACON", beacon.clone()),
                (
                    "MPREG_BENCH_PHASE_MS",
                    (PHASE_MS * (i as u64 - 1)).to_string(),
                ),
            ];
            if secret {
                let f = secret_file.to_string_lossy().into_owned();
                env.push(("MPREG_BENCH_SECRET_FILE", f));
            }
            (format!("node idle{i}"), ChildProc::spawn("node", &env))
        })
        .collect();
    procs.push((
        "idle tokio runtime".into(),
        ChildProc::spawn("reference", &[]),
    ));
    for (name, p) in &mut procs {
        let line = p.read_line();
        assert_eq!(line, "ready", "{name} said `{line}`");
    }
    std::thread::sleep(SETTLE);
    let start: Vec<(u64, u64)> = procs
        .iter()
        .map(|(_, p)| (cpu_ns(&p.pid().to_string()), switches(p.pid())))
        .collect();
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(secs));
    let wall = t0.elapsed().as_nanos() as f64;
    println!(
        "idle cluster: {NODES} nodes on loopback started {PHASE_MS} ms apart, beacon on, mDNS off, {}; {secs} s window",
        if secret { "shared secret" } else { "no secret" }
    );
    println!("| process | CPU, % of one core | thread wakeups/s | RSS MiB |");
    println!("|---|---|---|---|");
    for ((name, p), (cpu, woken)) in procs.iter().zip(start) {
        let used = cpu_ns(&p.pid().to_string()).saturating_sub(cpu) as f64;
        let wakeups = switches(p.pid()).saturating_sub(woken) as f64;
        let rss = rss_kib(p.pid()) as f64 / 1024.0;
        println!(
            "| {name} | {:.3} | {:.1} | {rss:.1} |",
            100.0 * used / wall,
            wakeups * 1e9 / wall
        );
    }
    drop(procs);
    let _ = std::fs::remove_file(&secret_file);
}
