//! Pub/sub throughput and latency between two processes on loopback, beside raw TCP.
//!
//! Run with `cargo bench --bench pubsub`. This binary re-executes itself (`MPREG_BENCH_ROLE`)
//! as the subscriber process: an mpreg node subscribed with a stream, or a raw TCP reader
//! of 4-byte length-prefixed frames (the physical limit for the same messages). Everything
//! binds 127.0.0.1 with discovery off.
//!
//! - **Throughput**: the parent publishes N messages of 8 B and 1 KiB as fast as
//!   `publish(..).await` returns, then an empty end marker (FIFO per pair: it arrives last,
//!   and drop-oldest never drops the newest). Rate = N / (first publish → subscriber saw the
//!   marker). Three rounds alternate mpreg and raw TCP; the table shows medians and the
//!   subscriber's drop count.
//! - **Default queue, drop-oldest vs lossless**: the same publish loop into a second
//!   subscriber node with the default queue (`sub_queue` 4096), once with a drop-oldest
//!   subscription and once with a lossless one. Drop-oldest lets the publisher run at its
//!   own pace and counts what the subscriber lost; lossless drops nothing and holds the
//!   publisher to the subscriber's pace (publish() rate ≈ delivered rate).
//! - **Latency**: ping-pong, one message in flight. Each 8-byte payload carries its send
//!   time (`SystemTime`, shared by both processes); the subscriber records the one-way
//!   delay and answers (mpreg: a publication back; TCP: one byte), then the next is sent.
//! - **Encryption** (issue #18): the throughput rounds also run between a second publisher
//!   and subscriber that share a secret (every frame encrypted), alternating with the clear
//!   pair; a second table gives the encrypted/clear ratio per payload size.

use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use serde_bytes::ByteBuf;

const ROLE_VAR: &str = "MPREG_BENCH_ROLE";
/// A secret file: the subscriber starts with it (encrypted connections).
const SECRET_VAR: &str = "MPREG_BENCH_SECRET";
const ROUNDS: usize = 3;
const PINGS: usize = 5_000;
const TARGET_8B: f64 = 1_000_000.0;

fn main() {
    match std::env::var(ROLE_VAR).as_deref() {
        Err(_) => run(),
        Ok("mpreg-sub") => mpreg_subscriber(),
        Ok("tcp-sub") => tcp_subscriber(),
        Ok(other) => panic!("unknown {ROLE_VAR} `{other}`"),
    }
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn local_node(name: &str) -> mpreg::NodeBuilder {
    mpreg::Node::builder()
        .name(name)
        .bind([127, 0, 0, 1].into())
        .port(0)
        .interfaces(["lo"])
        .mdns(false)
        .beacon(false)
}

/// A child playing `role`; its first stdout line is `ready ADDR`.
struct Sub {
    child: Child,
    lines: BufReader<ChildStdout>,
    addr: SocketAddr,
}

impl Sub {
    fn start(role: &str) -> Sub {
        Sub::start_with(role, None)
    }

    /// [`Sub::start`], with the secret in file `secret` if any.
    fn start_with(role: &str, secret: Option<&std::path::Path>) -> Sub {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        if let Some(f) = secret {
            cmd.env(SECRET_VAR, f);
        }
        let mut child = cmd
            .env(ROLE_VAR, role)
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn the subscriber");
        let mut lines = BufReader::new(child.stdout.take().unwrap());
        let first = line(&mut lines);
        let addr = first
            .strip_prefix("ready ")
            .expect("ready line")
            .parse()
            .unwrap();
        Sub { child, lines, addr }
    }

    fn line(&mut self) -> String {
        line(&mut self.lines)
    }
}

impl Drop for Sub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn line(r: &mut impl BufRead) -> String {
    let mut s = String::new();
    r.read_line(&mut s).unwrap();
    s.trim().to_string()
}

/// `done RECEIVED DROPPED` → (received, dropped).
fn done(s: &str) -> (u64, u64) {
    let v: Vec<u64> = s
        .strip_prefix("done ")
        .expect("done line")
        .split(' ')
        .map(|x| x.parse().unwrap())
        .collect();
    (v[0], v[1])
}

/// Percentiles of one-way latencies printed as `lat P50 P99` (microseconds).
fn latencies(s: &str) -> (f64, f64) {
    let v: Vec<f64> = s
        .strip_prefix("lat ")
        .expect("lat line")
        .split(' ')
        .map(|x| x.parse().unwrap())
        .collect();
    (v[0], v[1])
}

fn percentiles(mut ns: Vec<u64>) -> String {
    ns.sort_unstable();
    let p = |q: f64| ns[((ns.len() as f64 * q) as usize).min(ns.len() - 1)] as f64 / 1000.0;
    format!("lat {:.1} {:.1}", p(0.5), p(0.99))
}

// ----- subscriber processes ------------------------------------------------------------

fn mpreg_subscriber() {
    runtime().block_on(async {
        // A queue as deep as a whole run: the rate measured is what the subscriber
        // consumed, not what a short queue let through (drops are still reported).
        // With a secret (the encrypted rows), every connection is encrypted.
        let secret = std::env::var_os(SECRET_VAR);
        let with_secret = |b: mpreg::NodeBuilder| match &secret {
            Some(f) => b.secret_file(f),
            None => b,
        };
        let node = with_secret(local_node("bench-sub"))
            .builtins(false)
            .sub_queue(1 << 20)
            .start()
            .await
            .unwrap();
        // The default queue, for the drop-oldest and lossless rows.
        let small = with_secret(local_node("bench-sub-q"))
            .builtins(false)
            .seed(node.addr().unwrap())
            .start()
            .await
            .unwrap();
        let data = node.subscribe("bench.data").await.unwrap();
        let dropping = small.subscribe("bench.dropping").await.unwrap();
        let lossless = small.subscribe("bench.lossless").lossless().await.unwrap();
        let mut ping = node.subscribe("bench.ping").await.unwrap();
        for s in [data, dropping, lossless] {
            tokio::spawn(count_runs(s));
        }
        println!("ready {}", node.addr().unwrap());
        while let Some(p) = ping.next().await {
            let mut delays = Vec::with_capacity(PINGS);
            let mut p = p;
            loop {
                let sent: u64 = p.payload().unwrap();
                if sent == 0 {
                    break;
                }
                delays.push(now_ns().saturating_sub(sent));
                node.publish("bench.pong", &0u8).await.unwrap();
                p = ping.next().await.unwrap();
            }
            println!("{}", percentiles(delays));
        }
    });
}

/// Counts each run of publications up to its empty end marker, and prints
/// `done RECEIVED DROPPED` for it.
async fn count_runs(mut sub: mpreg::Subscription) {
    // Drops are counted from the end of the previous run, not from this run's first
    // message: the queue may overflow before this task wakes for it, and those drops
    // belong to this run (the end marker, the newest message, is never dropped).
    let mut dropped_before = sub.dropped();
    while let Some(mut p) = sub.next().await {
        let mut received = 0u64;
        loop {
            let b: ByteBuf = p.payload().unwrap();
            if b.is_empty() {
                break;
            }
            received += 1;
            p = sub.next().await.unwrap();
        }
        let dropped = sub.dropped();
        println!("done {received} {}", dropped - dropped_before);
        dropped_before = dropped;
    }
}

fn tcp_subscriber() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    println!("ready {}", l.local_addr().unwrap());
    for stream in l.incoming() {
        let s = stream.unwrap();
        s.set_nodelay(true).unwrap();
        let mut r = BufReader::with_capacity(256 * 1024, s.try_clone().unwrap());
        let mut w = s;
        let mut kind = [0u8; 1];
        r.read_exact(&mut kind).unwrap();
        let mut len = [0u8; 4];
        let mut buf = vec![0u8; 1 << 20];
        if kind[0] == b'T' {
            let mut received = 0u64;
            loop {
                r.read_exact(&mut len).unwrap();
                let n = u32::from_be_bytes(len) as usize;
                if n == 0 {
                    break;
                }
                r.read_exact(&mut buf[..n]).unwrap();
                received += 1;
            }
            println!("done {received} 0");
        } else {
            let mut delays = Vec::with_capacity(PINGS);
            loop {
                r.read_exact(&mut len).unwrap();
                r.read_exact(&mut buf[..8]).unwrap();
                let sent = u64::from_be_bytes(buf[..8].try_into().unwrap());
                if sent == 0 {
                    break;
                }
                delays.push(now_ns().saturating_sub(sent));
                w.write_all(&[1]).unwrap();
            }
            println!("{}", percentiles(delays));
        }
    }
}

// ----- publisher side -----------------------------------------------------------------

/// One run of publications through mpreg.
struct Run {
    /// `n` / how long the publish loop took.
    publish_rate: f64,
    /// `n` / (first publish → subscriber saw the end marker).
    rate: f64,
    /// Publications received / (first publish → subscriber saw the end marker).
    delivered_rate: f64,
    dropped: u64,
}

/// Publishes `n` payloads of `size` bytes to `topic` through mpreg, then the end marker.
fn mpreg_run(
    rt: &tokio::runtime::Runtime,
    node: &mpreg::Node,
    sub: &mut Sub,
    topic: &'static str,
    n: u64,
    size: usize,
) -> Run {
    let payload = ByteBuf::from(vec![7u8; size]);
    let start = Instant::now();
    // Published from a task, as a program built on tokio would.
    let node2 = node.clone();
    let published = rt
        .block_on(rt.spawn(async move {
            for _ in 0..n {
                node2.publish(topic, &payload).await.unwrap();
            }
            let published = start.elapsed();
            node2.publish(topic, &ByteBuf::new()).await.unwrap();
            published
        }))
        .unwrap();
    let (received, dropped) = done(&sub.line());
    assert_eq!(
        received + dropped,
        n,
        "every message is received or counted as dropped"
    );
    let elapsed = start.elapsed().as_secs_f64();
    Run {
        publish_rate: n as f64 / published.as_secs_f64(),
        rate: n as f64 / elapsed,
        delivered_rate: received as f64 / elapsed,
        dropped,
    }
}

/// Messages/s publishing `n` payloads of `size` bytes through mpreg, and drops.
fn mpreg_throughput(
    rt: &tokio::runtime::Runtime,
    node: &mpreg::Node,
    sub: &mut Sub,
    n: u64,
    size: usize,
) -> (f64, u64) {
    let r = mpreg_run(rt, node, sub, "bench.data", n, size);
    (r.rate, r.dropped)
}

fn tcp_throughput(addr: SocketAddr, sub: &mut Sub, n: u64, size: usize) -> f64 {
    let s = TcpStream::connect(addr).unwrap();
    s.set_nodelay(true).unwrap();
    let mut w = BufWriter::with_capacity(256 * 1024, s);
    let payload = vec![7u8; size];
    let start = Instant::now();
    w.write_all(b"T").unwrap();
    for _ in 0..n {
        w.write_all(&(size as u32).to_be_bytes()).unwrap();
        w.write_all(&payload).unwrap();
    }
    w.write_all(&0u32.to_be_bytes()).unwrap();
    w.flush().unwrap();
    let (received, _) = done(&sub.line());
    assert_eq!(received, n);
    n as f64 / start.elapsed().as_secs_f64()
}

fn mpreg_latency(rt: &tokio::runtime::Runtime, node: &mpreg::Node, sub: &mut Sub) -> (f64, f64) {
    rt.block_on(async {
        let mut pong = node.subscribe("bench.pong").await.unwrap();
        for _ in 0..PINGS {
            node.publish("bench.ping", &now_ns()).await.unwrap();
            pong.next().await.unwrap();
        }
        node.publish("bench.ping", &0u64).await.unwrap();
    });
    latencies(&sub.line())
}

fn tcp_latency(addr: SocketAddr, sub: &mut Sub) -> (f64, f64) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_nodelay(true).unwrap();
    s.write_all(b"L").unwrap();
    let mut one = [0u8; 1];
    for _ in 0..PINGS {
        let mut frame = 8u32.to_be_bytes().to_vec();
        frame.extend_from_slice(&now_ns().to_be_bytes());
        s.write_all(&frame).unwrap();
        s.read_exact(&mut one).unwrap();
    }
    let mut end = 8u32.to_be_bytes().to_vec();
    end.extend_from_slice(&0u64.to_be_bytes());
    s.write_all(&end).unwrap();
    latencies(&sub.line())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// The drop-oldest and lossless rows: the default queue, medians of [`ROUNDS`].
fn queue_modes(rt: &tokio::runtime::Runtime, node: &mpreg::Node, sub: &mut Sub) {
    println!();
    println!(
        "| subscription (default queue, 4096) | payload | messages | publish() msgs/s | delivered msgs/s | drops |"
    );
    println!("|---|---|---|---|---|---|");
    for (size, n) in [(8usize, 1_000_000u64), (1024, 200_000)] {
        for (mode, topic) in [
            ("drop-oldest", "bench.dropping"),
            ("lossless", "bench.lossless"),
        ] {
            let (mut p, mut d, mut drops) = (Vec::new(), Vec::new(), 0);
            for _ in 0..ROUNDS {
                let r = mpreg_run(rt, node, sub, topic, n, size);
                p.push(r.publish_rate);
                d.push(r.delivered_rate);
                drops += r.dropped;
            }
            println!(
                "| {mode} | {size} B | {n} ×{ROUNDS} | {:.0} | {:.0} | {drops} |",
                median(p),
                median(d)
            );
        }
    }
}

/// Waits until `node` knows a subscription to each of `topics` (only then is it published
/// to).
fn wait_for_subscriber(node: &mpreg::Node, topics: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let knows = |topic: &str| {
        node.members()
            .iter()
            .any(|m| m.subscriptions.iter().any(|s| s == topic))
    };
    while !topics.iter().all(|t| knows(t)) {
        assert!(
            Instant::now() < deadline,
            "the subscriber's catalog never arrived"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn run() {
    let rt = runtime();
    let dir = std::env::temp_dir().join(format!("mpreg-bench-pubsub-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let secret = dir.join("secret");
    std::fs::write(&secret, "bench secret").unwrap();
    let mut msub = Sub::start("mpreg-sub");
    let mut esub = Sub::start_with("mpreg-sub", Some(&secret));
    let mut tsub = Sub::start("tcp-sub");
    let seed = msub.addr;
    let node = rt
        .block_on(local_node("bench-pub").builtins(false).seed(seed).start())
        .unwrap();
    let enode = rt
        .block_on(
            local_node("bench-pub-sealed")
                .secret_file(&secret)
                .builtins(false)
                .seed(esub.addr)
                .start(),
        )
        .unwrap();
    wait_for_subscriber(&node, &["bench.data", "bench.dropping", "bench.lossless"]);
    wait_for_subscriber(&enode, &["bench.data"]);
    let mut sealed_rows = Vec::new();
    println!(
        "| payload | messages | mpreg msgs/s | raw TCP msgs/s | mpreg / TCP | drops | target |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (size, n) in [(8usize, 1_000_000u64), (1024, 200_000)] {
        let (mut m, mut t, mut drops) = (Vec::new(), Vec::new(), 0);
        let (mut e, mut edrops) = (Vec::new(), 0);
        for _ in 0..ROUNDS {
            let (rate, d) = mpreg_throughput(&rt, &node, &mut msub, n, size);
            m.push(rate);
            drops += d;
            let (rate, d) = mpreg_throughput(&rt, &enode, &mut esub, n, size);
            e.push(rate);
            edrops += d;
            t.push(tcp_throughput(tsub.addr, &mut tsub, n, size));
        }
        let (m, t) = (median(m), median(t));
        sealed_rows.push((size, n, m, median(e), edrops));
        let target = if size == 8 {
            if m >= TARGET_8B {
                "≥ 1 M: met"
            } else {
                "≥ 1 M: MISSED"
            }
        } else {
            "—"
        };
        println!(
            "| {size} B | {n} ×{ROUNDS} | {:.0} | {:.0} | {:.2} | {drops} | {target} |",
            m,
            t,
            m / t
        );
    }
    println!();
    println!("| payload | messages | clear msgs/s | encrypted msgs/s | encrypted / clear | encrypted drops |");
    println!("|---|---|---|---|---|---|");
    for (size, n, m, e, d) in sealed_rows {
        println!(
            "| {size} B | {n} ×{ROUNDS} | {m:.0} | {e:.0} | {:.2} | {d} |",
            e / m
        );
    }
    queue_modes(&rt, &node, &mut msub);
    let (mp50, mp99) = mpreg_latency(&rt, &node, &mut msub);
    let (tp50, tp99) = tcp_latency(tsub.addr, &mut tsub);
    println!();
    println!("| one-way latency, 8 B, 1 in flight ({PINGS} pings) | p50 µs | p99 µs |");
    println!("|---|---|---|");
    println!("| mpreg publish → subscriber stream | {mp50:.1} | {mp99:.1} |");
    println!("| raw TCP frame → reader | {tp50:.1} | {tp99:.1} |");
    rt.block_on(node.shutdown());
    rt.block_on(enode.shutdown());
    drop(esub);
    let _ = std::fs::remove_dir_all(&dir);
}
