//! A member node under a steady mixed load, for long runs: the worker of the LAN chaos soak
//! (`tests/lan/chaos.rs`), and a quick way to watch a cluster of your own under calls,
//! publications and messages at once.
//!
//! ```text
//! MPREG_NAME=s1 MPREG_INTERFACES=lo MPREG_MDNS=0 SOAK_PEERS=1 cargo run --example soak_node
//! ```
//!
//! Configured like every mpreg program (`MPREG_*`: name, seeds, discovery...) plus:
//! - `SOAK_PEERS`: members (itself included) to see before the load starts (default 1);
//! - `SOAK_RATE`: publications per second on `soak.seq.NAME` (default 100);
//! - `SOAK_CALLS`: loops calling `soak_echo` on the other members, each one call every
//!   20 ms (default 4);
//! - `SOAK_DEADLINE_MS`: each call's and message's deadline (default 2000).
//!
//! Every node serves `soak_echo`, subscribes to `soak.seq.**` (lossless), publishes a numbered stream
//! `(incarnation, seq)`, and sends a MARO task to a random member every 100 ms (and answers
//! those it receives). Each publisher's stream is checked as it arrives: numbers must rise
//! by one; a skipped number is a gap, a repeated or earlier one is disorder.
//!
//! It prints `ready NAME` once the load starts, then every 250 ms a JSON report:
//! `{"t" (unix ms), "name", "inc", "view" (alive members, sorted, comma-separated), "rss_kb",
//! "calls_ok", "calls_failed" {kind: n}, "max_call_ms", "hangs" (calls that outlived their
//! deadline by more than a second), "pub_sent", "pub_failed", "pub_dropped" (by this
//! node's subscription queue), "streams" {publisher: {"inc", "next", "received", "gaps",
//! "disorder"}}, "msg_ok", "msg_failed" {kind: n}, "msg_answered", "stopped"}`.
//! SIGUSR1 stops the load (the node keeps serving and reporting, so that the last
//! publications can arrive); SIGTERM stops the node.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use mpreg::{Error, Node};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::signal::unix::{signal, SignalKind};

/// Answers its argument.
#[mpreg::register]
fn soak_echo(x: u64) -> u64 {
    x
}

/// One publication of a node's numbered stream.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Seq {
    from: String,
    inc: u64,
    seq: u64,
}

/// What one subscriber saw of one publisher's stream (its latest incarnation).
#[derive(Debug, Default, Serialize)]
struct Stream {
    inc: u64,
    next: u64,
    received: u64,
    gaps: u64,
    disorder: u64,
}

impl Stream {
    fn see(&mut self, s: &Seq) {
        if s.inc != self.inc {
            if s.inc < self.inc {
                // A late publication of an earlier run of the publisher.
                self.disorder += 1;
                return;
            }
            // A new run of the publisher: its numbers start again. The first one seen may
            // be past 0 if this node subscribed (or restarted) after the stream began.
            *self = Stream {
                inc: s.inc,
                next: s.seq,
                ..Stream::default()
            };
        }
        self.received += 1;
        if s.seq == self.next {
            self.next += 1;
        } else if s.seq > self.next {
            self.gaps += s.seq - self.next;
            self.next = s.seq + 1;
        } else {
            self.disorder += 1;
            eprintln!(
                "disorder: {} #{} arrived after #{} (run {})",
                s.from,
                s.seq,
                self.next - 1,
                s.inc
            );
        }
    }
}

/// Everything counted, shared by the load's tasks and the reporter.
#[derive(Default)]
struct Counts {
    calls_ok: AtomicU64,
    calls_failed: Mutex<BTreeMap<String, u64>>,
    max_call_ms: AtomicU64,
    hangs: AtomicU64,
    pub_sent: AtomicU64,
    pub_failed: AtomicU64,
    streams: Mutex<BTreeMap<String, Stream>>,
    msg_ok: AtomicU64,
    msg_failed: Mutex<BTreeMap<String, u64>>,
    msg_answered: AtomicU64,
}

/// The variant name of an error (`Timeout`, `NodeLost`, ...), to count failures by kind.
fn kind(e: &Error) -> String {
    // `{:#?}` starts with the variant's name.
    let debug = format!("{e:#?}");
    debug
        .split(|c: char| !c.is_alphanumeric())
        .next()
        .unwrap_or("?")
        .to_string()
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Resident memory of this process, KiB.
fn rss_kb() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4
}

/// Alive members other than this node, sorted.
fn view(node: &Node) -> Vec<String> {
    let mut v: Vec<String> = node
        .members()
        .into_iter()
        .filter(|m| m.state == "alive")
        .map(|m| m.name)
        .collect();
    v.sort();
    v
}

/// Until `stop`, calls `soak_echo` on each other member in turn, one call every 20 ms,
/// timing each call.
async fn call_loop(node: Node, counts: Arc<Counts>, deadline: Duration, stop: Arc<AtomicBool>) {
    let mut x = 0u64;
    while !stop.load(Relaxed) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let peers = view(&node);
        if peers.is_empty() {
            continue;
        }
        x += 1;
        let start = Instant::now();
        let r = node
            .request("soak_echo")
            .on_node(&peers[x as usize % peers.len()])
            .args((x,))
            .timeout(deadline)
            .send::<u64>()
            .await;
        let took = start.elapsed();
        counts
            .max_call_ms
            .fetch_max(took.as_millis() as u64, Relaxed);
        if took > deadline + Duration::from_secs(1) {
            counts.hangs.fetch_add(1, Relaxed);
        }
        match r {
            Ok(v) if v.value == x => {
                counts.calls_ok.fetch_add(1, Relaxed);
            }
            Ok(_) => {
                *counts
                    .calls_failed
                    .lock()
                    .entry("WrongAnswer".into())
                    .or_default() += 1
            }
            Err(e) => *counts.calls_failed.lock().entry(kind(&e)).or_default() += 1,
        }
    }
}

/// Publishes this node's numbered stream at `rate` per second until `stop`.
async fn publish_loop(node: Node, counts: Arc<Counts>, inc: u64, rate: u64, stop: Arc<AtomicBool>) {
    let topic = format!("soak.seq.{}", node.name());
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate.max(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seq = 0;
    while !stop.load(Relaxed) {
        tick.tick().await;
        let p = Seq {
            from: node.name().to_string(),
            inc,
            seq,
        };
        match node.publish(&topic, &p).await {
            Ok(()) => {
                seq += 1;
                counts.pub_sent.fetch_add(1, Relaxed);
            }
            Err(_) => {
                counts.pub_failed.fetch_add(1, Relaxed);
            }
        }
    }
}

/// Sends a task to a random other member every 100 ms until `stop`.
async fn message_loop(node: Node, counts: Arc<Counts>, deadline: Duration, stop: Arc<AtomicBool>) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut n = 0u64;
    while !stop.load(Relaxed) {
        tick.tick().await;
        let peers = view(&node);
        if peers.is_empty() {
            continue;
        }
        n += 1;
        let to = &peers[(n as usize) % peers.len()];
        match node.send(to, "soak", n, deadline).await {
            Ok(_) => {
                counts.msg_ok.fetch_add(1, Relaxed);
            }
            Err(e) => *counts.msg_failed.lock().entry(kind(&e)).or_default() += 1,
        }
    }
}

/// Answers every task received.
async fn answer_loop(node: Node, counts: Arc<Counts>) {
    let mut inbox = node.receive();
    while let Some(m) = inbox.recv().await {
        if m.reply("ok").await.is_ok() {
            counts.msg_answered.fetch_add(1, Relaxed);
        }
    }
}

fn report(node: &Node, counts: &Counts, inc: u64, dropped: u64, stopped: bool) -> String {
    json!({
        "t": unix_ms(),
        "name": node.name(),
        "inc": inc,
        "view": view(node).join(","),
        "rss_kb": rss_kb(),
        "calls_ok": counts.calls_ok.load(Relaxed),
        "calls_failed": *counts.calls_failed.lock(),
        "max_call_ms": counts.max_call_ms.load(Relaxed),
        "hangs": counts.hangs.load(Relaxed),
        "pub_sent": counts.pub_sent.load(Relaxed),
        "pub_failed": counts.pub_failed.load(Relaxed),
        "pub_dropped": dropped,
        "streams": serde_json::to_value(&*counts.streams.lock()).unwrap_or_default(),
        "msg_ok": counts.msg_ok.load(Relaxed),
        "msg_failed": *counts.msg_failed.lock(),
        "msg_answered": counts.msg_answered.load(Relaxed),
        "stopped": stopped,
    })
    .to_string()
}

#[tokio::main]
async fn main() -> mpreg::Result<()> {
    mpreg::init_logging();
    let node = Node::start(mpreg::Config::load()?).await?;
    let peers = env_u64("SOAK_PEERS", 1) as usize;
    let rate = env_u64("SOAK_RATE", 100);
    let loops = env_u64("SOAK_CALLS", 4);
    let deadline = Duration::from_millis(env_u64("SOAK_DEADLINE_MS", 2000));
    // Unique per run of a node of this name: subscribers tell a restart from disorder.
    let inc = unix_ms();
    let counts = Arc::new(Counts::default());

    // Lossless: a subscriber that falls behind slows the publishers instead of dropping.
    let mut sub = node.subscribe("soak.seq.**").lossless().await?;
    // Start only once every peer's subscription is known, so that streams are seen whole.
    while view(&node).len() + 1 < peers
        || node
            .members()
            .iter()
            .filter(|m| m.subscriptions.iter().any(|s| s == "soak.seq.**"))
            .count()
            + 1
            < peers
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("ready {}", node.name());

    let stop = Arc::new(AtomicBool::new(false));
    for _ in 0..loops {
        tokio::spawn(call_loop(
            node.clone(),
            counts.clone(),
            deadline,
            stop.clone(),
        ));
    }
    tokio::spawn(publish_loop(
        node.clone(),
        counts.clone(),
        inc,
        rate,
        stop.clone(),
    ));
    tokio::spawn(message_loop(
        node.clone(),
        counts.clone(),
        deadline,
        stop.clone(),
    ));
    tokio::spawn(answer_loop(node.clone(), counts.clone()));

    let mut usr1 = signal(SignalKind::user_defined1()).expect("SIGUSR1 handler");
    let mut every = tokio::time::interval(Duration::from_millis(250));
    let shutdown = mpreg::shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = usr1.recv() => stop.store(true, Relaxed),
            _ = every.tick() => {
                println!("{}", report(&node, &counts, inc, sub.dropped(), stop.load(Relaxed)));
            }
            Some(p) = sub.next() => {
                if let Ok(s) = p.payload::<Seq>() {
                    counts.streams.lock().entry(s.from.clone()).or_default().see(&s);
                }
            }
        }
    }
    node.shutdown().await;
    Ok(())
}
