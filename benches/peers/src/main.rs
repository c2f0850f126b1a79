//! mpreg beside its peers (issue #17): raw TCP, tarpc, zenoh and NATS measured side by side
//! in one run, on loopback, with alternating rounds.
//!
//! Run (as root, for the private network namespace) from `benches/peers`:
//!
//! ```text
//! nice -n 10 cargo run --release
//! PEERS_SECS=1 PEERS_ROUNDS=1 PEERS_ONLY=rpc PEERS_SYSTEMS=tcp,mpreg cargo run --release
//! ```
//!
//! What is measured, every figure with the two sides in **separate processes** (this
//! binary re-executed with `PEERS_ROLE`), each on a tokio multi-thread runtime with 2
//! workers (zenoh also runs its own internal runtimes):
//!
//! - **RPC round trip p50**, 64 B, one call in flight (zenoh: `get` on a queryable; NATS:
//!   request/reply; raw TCP: length-prefixed echo ping-pong).
//! - **RPC calls/s**, 256 calls in flight from one client over one connection (raw TCP: a
//!   256-frame pipelined window).
//! - **pub/sub delivered msgs/s**, 8 B and 1 KiB: a plain publish loop; the rate counted at
//!   the subscriber over the window after the warm-up, and the % of what was published that
//!   never arrived (mpreg drop-oldest with the default queue; mpreg lossless; zenoh with its
//!   default congestion control, drop; NATS core; raw TCP: a stream of length-prefixed
//!   frames read by a plain loop).
//! - **pub/sub one-way p50**, 64 B, one message every 200 µs stamped with the system-wide
//!   `CLOCK_MONOTONIC`.
//!
//! Each round measures every system in turn (the order rotating from round to round), so
//! that noise from other programs hits all of them alike; the table gives the medians of
//! the rounds, then every round's figures, then mpreg's ratios to the others.
//!
//! Settings (environment): `PEERS_SECS` (measured window, default 3), `PEERS_WARMUP`
//! (default 1), `PEERS_ROUNDS` (default 3), `PEERS_ONLY=rpc|pubsub`,
//! `PEERS_SYSTEMS=tcp,tarpc,zenoh,nats,mpreg,mpreg-lossless` (default all),
//! `PEERS_PERIOD_US` (latency publisher's pace, default 200).
//!
//! Network safety: as root the program first moves itself into a private network namespace
//! (only its own `lo`), which every child process — `nats-server` included — inherits.
//! Without root it says so on stderr and relies on every system being configured for
//! 127.0.0.1 only: zenoh with multicast and gossip scouting off and explicit endpoints,
//! mpreg with interfaces `lo`, mDNS and beacon off, `nats-server -a 127.0.0.1`.

mod child;
mod clock;
mod mpreg_side;
mod nats_side;
mod netns;
mod pubsub;
mod rpc;
mod settings;
mod system;
mod table;
mod tarpc_side;
mod tcp;
mod zenoh_side;

use child::ROLE_VAR;
use netns::Isolation;
use settings::Settings;
use system::System;
use table::{Cell, Figure, Table};

fn main() {
    match std::env::var(ROLE_VAR).as_deref() {
        Err(_) => parent(),
        Ok("server") => rpc::server_role(),
        Ok("client") => rpc::client_role(),
        Ok("sub") => pubsub::sub_role(),
        Ok("pub") => pubsub::pub_role(),
        Ok(other) => panic!("unknown {ROLE_VAR} `{other}`"),
    }
}

/// Versions of the compared crates, from the lock file this binary was built with.
fn versions() -> String {
    let lock = include_str!("../Cargo.lock");
    let mut out = Vec::new();
    for name in ["tarpc", "zenoh", "async-nats", "tokio"] {
        let needle = format!("name = \"{name}\"\nversion = \"");
        if let Some(i) = lock.find(&needle) {
            let rest = &lock[i + needle.len()..];
            out.push(format!("{name} {}", &rest[..rest.find('"').unwrap_or(0)]));
        }
    }
    out.join(", ")
}

fn parent() {
    // First, while this process has one thread: every child inherits the namespace.
    let isolation = netns::isolate();
    let s = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    match &isolation {
        Isolation::Namespace => {
            eprintln!("network: private network namespace (only its own lo)")
        }
        Isolation::LoopbackOnly(why) => eprintln!(
            "network: NOT isolated ({why}); every system is configured for 127.0.0.1 only"
        ),
    }
    let nats = if s.systems.contains(&System::Nats) {
        nats_side::Server::start()
    } else {
        Err("not measured".into())
    };
    let nats_addr = nats.as_ref().ok().map(|n| n.addr.clone());
    let mut table = Table::new(&s);
    for round in 0..s.rounds {
        let mut order = s.systems.clone();
        let n = order.len();
        order.rotate_left(round % n);
        let progress = |what: &str, sys: System| {
            eprintln!(
                "round {}/{}: {what} {} ...",
                round + 1,
                s.rounds,
                sys.label()
            )
        };
        for &sys in order.iter().filter(|x| s.rpc && x.does_rpc()) {
            progress("rpc", sys);
            let r = match (&nats, sys) {
                (Err(e), System::Nats) => Err(e.clone()),
                _ => rpc::round(sys, &s, nats_addr.as_deref()),
            };
            let cell = |v: f64| Cell {
                value: v,
                dropped_pct: None,
            };
            table.record(Figure::RpcP50, sys, r.clone().map(|f| cell(f.p50_us)));
            table.record(Figure::RpcRate, sys, r.map(|f| cell(f.calls_per_sec)));
        }
        for &sys in order.iter().filter(|x| s.pubsub && x.does_pubsub()) {
            progress("pub/sub", sys);
            let r = match (&nats, sys) {
                (Err(e), System::Nats) => pubsub::PubsubFigures {
                    small: Err(e.clone()),
                    large: Err(e.clone()),
                    latency: Err(e.clone()),
                },
                _ => pubsub::round(sys, &s, nats_addr.as_deref()),
            };
            let flow = |f: pubsub::Flow| Cell {
                value: f.delivered,
                dropped_pct: Some(f.drop_pct()),
            };
            if let Ok(f) = &r.small {
                eprintln!(
                    "  8 B: publish() {}/s, delivered {}/s, {} of {} dropped",
                    table::thousands(f.published),
                    table::thousands(f.delivered),
                    f.dropped,
                    f.sent
                );
            }
            table.record(Figure::Small, sys, r.small.map(flow));
            table.record(Figure::Large, sys, r.large.map(flow));
            let lat = r.latency.map(|(p50, _)| Cell {
                value: p50,
                dropped_pct: None,
            });
            table.record(Figure::OneWay, sys, lat);
        }
    }
    drop(nats);
    println!(
        "## mpreg and its peers — loopback, {} rounds, {} s windows after {} s warm-up",
        s.rounds,
        s.window.as_secs_f64(),
        s.warmup.as_secs_f64()
    );
    println!();
    println!(
        "Versions: {}, {}; network: {}.",
        versions(),
        nats_side::Server::version(),
        match isolation {
            Isolation::Namespace => "private network namespace".to_string(),
            Isolation::LoopbackOnly(why) => format!("host namespace, 127.0.0.1 only ({why})"),
        }
    );
    table.print();
}
