//! A peer that completes the handshake, then sends 300,000 requests and never reads a reply
//! (issue #12, "bounded memory per connection under any peer behaviour").
//!
//! The server is the real `mpreg serve` binary on loopback (discovery off), so its memory
//! is measured alone, from `/proc/<pid>/status`. The abuser is written by hand with the
//! crate's public codec; an ordinary client keeps calling `echo` throughout and every one
//! of its calls must succeed.

mod rawpeer;
mod support;

use std::fs::File;
use std::io::{ErrorKind, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mpreg::proto::codec::encode_frame;
use mpreg::proto::wire::{Call, Frame};
use mpreg::Node;
use support::{built, free_port, tcp};

/// Requests the abuser tries to push.
const REQUESTS: u64 = 300_000;

/// Allowed growth of the server's resident memory under the flood.
const RSS_BOUND: u64 = 64 * 1024 * 1024;

/// The abuser's writes count as throttled once they make no progress for this long (the
/// server may also close the connection sooner: it does after 10 s without write progress).
const STALL: Duration = Duration::from_secs(20);

/// After pushing everything, how long we wait for the server to log why it closes the
/// connection of a peer that never reads.
const REASON_WAIT: Duration = Duration::from_secs(15);

/// The reason the server logs when it closes a peer that does not read (interfaces.md).
const REASON: &str = "peer stopped reading";

/// `mpreg serve`, killed when dropped, its stderr in a file.
struct Server {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

impl Server {
    fn start() -> Server {
        let port = free_port();
        let log =
            std::env::temp_dir().join(format!("mpreg-flood-{}-{port}.log", std::process::id()));
        let err = File::create(&log).expect("create server log");
        let mut cmd = Command::new(built("mpreg"));
        support::confine(&mut cmd);
        let child = cmd
            .args(["serve", "--name", "flooded", "--bind", "127.0.0.1"])
            .args(["--port", &port.to_string()])
            .args(["--interface", "lo", "--no-mdns", "--no-beacon"])
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::from(err))
            .spawn()
            .expect("spawn mpreg serve");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let server = Server { child, addr, log };
        let start = Instant::now();
        while TcpStream::connect(addr).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "mpreg serve did not listen on {addr}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        server
    }

    fn rss(&self) -> u64 {
        rss_of(self.child.id()).expect("the server is running")
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Resident memory of process `pid` in bytes (VmRSS); `None` once it has exited.
fn rss_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Samples the server's RSS until told to stop; keeps the peak.
struct RssWatch {
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Vec<u64>>>,
}

impl RssWatch {
    fn start(pid: u32) -> RssWatch {
        let peak = Arc::new(AtomicU64::new(rss_of(pid).unwrap_or(0)));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (peak.clone(), stop.clone());
        // Samples every 20 ms; keeps one per second as a timeline.
        let thread = std::thread::spawn(move || {
            let mut timeline = Vec::new();
            let start = Instant::now();
            while !s.load(Ordering::Relaxed) {
                let Some(rss) = rss_of(pid) else { break };
                p.fetch_max(rss, Ordering::Relaxed);
                if start.elapsed() >= Duration::from_secs(timeline.len() as u64) {
                    timeline.push(rss);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            timeline
        });
        RssWatch {
            peak,
            stop,
            thread: Some(thread),
        }
    }

    fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }

    /// Stops sampling: the peak and the timeline (one sample per second).
    fn finish(mut self) -> (u64, Vec<u64>) {
        self.stop.store(true, Ordering::Relaxed);
        let timeline = self.thread.take().map(|t| t.join().unwrap());
        (self.peak(), timeline.unwrap_or_default())
    }
}

/// How the abuser's pushing ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// Every request went into the socket.
    AllSent,
    /// Writes made no progress for [`STALL`].
    Stalled,
    /// The server closed or reset the connection.
    Closed,
}

/// What the abuser managed.
#[derive(Debug)]
struct Flood {
    ending: Ending,
    /// Requests wholly written to the socket.
    sent: u64,
    /// Time from the first write to the ending.
    took: Duration,
    /// Socket kept open (unread) so the server still faces it while we check the log.
    stream: TcpStream,
}

/// 300,000 `echo` calls, encoded back to back, all of one size (ids encode as 9-byte
/// MessagePack integers from 2^32 on), so bytes written tell requests sent.
fn requests() -> (Vec<u8>, usize) {
    let first = 1u64 << 32;
    let call = |id: u64| {
        encode_frame(&Frame::Call(Call {
            id,
            fun: "echo".into(),
            // ["flood"]: a one-element MessagePack array holding a small string.
            args: Bytes::from_static(&[0x91, 0xa5, b'f', b'l', b'o', b'o', b'd']),
            kwargs: None,
            timeout_ms: 60_000,
            route: None,
            origin_host: None,
        }))
        .unwrap()
    };
    let size = call(first).len();
    let mut all = Vec::with_capacity(size * REQUESTS as usize);
    for id in first..first + REQUESTS {
        let frame = call(id);
        assert_eq!(frame.len(), size, "requests must all be one size");
        all.extend_from_slice(&frame);
    }
    (all, size)
}

/// Handshakes with the server, then writes every request as fast as the socket takes
/// them, never reading.
fn flood(addr: SocketAddr) -> Flood {
    let (all, size) = requests();
    let peer = rawpeer::dial(addr, "abuser", &[]);
    let mut stream = peer.stream;
    stream
        .set_write_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let start = Instant::now();
    let mut written = 0usize;
    let mut progress = Instant::now();
    let ending = loop {
        if written == all.len() {
            break Ending::AllSent;
        }
        let end = (written + 256 * 1024).min(all.len());
        match stream.write(&all[written..end]) {
            Ok(0) => break Ending::Closed,
            Ok(n) => {
                written += n;
                progress = Instant::now();
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if progress.elapsed() >= STALL {
                    break Ending::Stalled;
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => break Ending::Closed,
        }
    };
    Flood {
        ending,
        sent: (written / size) as u64,
        took: start.elapsed(),
        stream,
    }
}

fn client(server: SocketAddr) -> mpreg::NodeBuilder {
    Node::builder()
        .name("bystander")
        .listen(false)
        .builtins(false)
        .interfaces(["lo"])
        .mdns(false)
        .beacon(false)
        .seed(server)
        .call_timeout(Duration::from_secs(5))
}

/// The ordinary client's record: every call must succeed while the flood goes on.
#[derive(Default)]
struct Bystander {
    calls: u64,
    failures: Vec<String>,
    slowest: Duration,
}

impl Bystander {
    /// One ordinary call, recorded.
    async fn echo(&mut self, node: &Node) {
        let i = self.calls;
        self.calls += 1;
        let t = Instant::now();
        let r: Result<u64, _> = node.call("echo", (i,)).await;
        self.slowest = self.slowest.max(t.elapsed());
        match r {
            Ok(v) if v == i => {}
            Ok(v) => self.failures.push(format!("call {i} answered {v}")),
            Err(e) => self
                .failures
                .push(format!("call {i} after {:?}: {e}", t.elapsed())),
        }
    }
}

/// State of our loopback socket bound to local port `port`: what the kernel knows of the
/// server's side (CLOSE_WAIT once the server closed it).
fn tcp_state(port: u16) -> &'static str {
    match tcp::state_of(port).as_deref() {
        None => "gone",
        Some(tcp::ESTABLISHED) => "ESTABLISHED",
        Some(tcp::CLOSE_WAIT) => "CLOSE_WAIT",
        Some(tcp::CLOSE) => "CLOSE",
        Some(_) => "other",
    }
}

/// `line` without ANSI colour sequences (`ESC [ ... m`).
fn plain(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Waits (bounded) until our socket on `port` is no longer ESTABLISHED.
async fn socket_closed(port: u16, limit: Duration) -> bool {
    let start = Instant::now();
    while tcp_state(port) == "ESTABLISHED" {
        if start.elapsed() >= limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Waits (bounded) for the server's stderr to contain `what`.
async fn logged(server: &Server, what: &str, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if server.stderr().contains(what) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.stderr().contains(what)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_never_reads_cannot_grow_the_server_and_others_keep_working() {
    let server = Server::start();
    let node = client(server.addr).start().await.expect("start the client");
    let mut by = Bystander::default();
    for _ in 0..20 {
        by.echo(&node).await;
    }
    let before = server.rss();
    let watch = RssWatch::start(server.child.id());
    let started = Instant::now();

    let addr = server.addr;
    let abuser = tokio::task::spawn_blocking(move || flood(addr));
    while !abuser.is_finished() {
        by.echo(&node).await;
    }
    let flood = abuser.await.expect("abuser thread");
    let reason_logged = match flood.ending {
        Ending::Stalled => server.stderr().contains(REASON),
        Ending::Closed => logged(&server, REASON, Duration::from_secs(2)).await,
        Ending::AllSent => {
            // Not throttled: the server must at least close it with a logged reason. Keep
            // calling meanwhile.
            let start = Instant::now();
            let mut seen = false;
            while !seen && start.elapsed() < REASON_WAIT {
                by.echo(&node).await;
                seen = server.stderr().contains(REASON);
            }
            seen
        }
    };
    // A close the server logged must be a real one: the socket ends (we see its FIN/RST).
    let abuser_port = flood.stream.local_addr().unwrap().port();
    let closed_for_real = flood.ending == Ending::Closed
        || !reason_logged
        || socket_closed(abuser_port, Duration::from_secs(5)).await;
    for _ in 0..20 {
        by.echo(&node).await;
    }
    let (peak, timeline) = watch.finish();
    let took = started.elapsed();
    let abuser_state = tcp_state(abuser_port);
    drop(flood.stream);

    println!("figure: rss_before_mib={:.1}", mib(before));
    println!("figure: rss_peak_mib={:.1}", mib(peak));
    println!(
        "figure: rss_growth_mib={:.1}",
        mib(peak.saturating_sub(before))
    );
    println!("figure: abuser_sent={}", flood.sent);
    println!("figure: abuser_ending={:?}", flood.ending);
    println!("figure: abuser_secs={:.2}", flood.took.as_secs_f64());
    println!("figure: reason_logged={reason_logged}");
    println!("figure: bystander_calls={}", by.calls);
    println!("figure: bystander_failures={}", by.failures.len());
    println!("figure: bystander_slowest_ms={}", by.slowest.as_millis());
    println!("figure: test_secs={:.2}", took.as_secs_f64());
    let timeline: Vec<String> = timeline.iter().map(|b| format!("{:.0}", mib(*b))).collect();
    println!("figure: rss_timeline_mib_per_s={}", timeline.join(","));
    println!("figure: abuser_socket_state_at_end={abuser_state}");
    for line in server.stderr().lines().filter(|l| l.contains("abuser")) {
        println!("server: {}", plain(line));
    }
    let _ = std::io::stdout().flush();

    assert!(
        by.failures.is_empty(),
        "{} of the ordinary client's {} calls failed during the flood, e.g. {:?}",
        by.failures.len(),
        by.calls,
        &by.failures[..by.failures.len().min(3)]
    );
    assert!(
        peak.saturating_sub(before) <= RSS_BOUND,
        "server RSS grew by {:.1} MiB (from {:.1} to {:.1} MiB), over the {} MiB bound, \
         while a peer sent {} requests without reading",
        mib(peak.saturating_sub(before)),
        mib(before),
        mib(peak),
        RSS_BOUND >> 20,
        flood.sent
    );
    assert!(
        closed_for_real,
        "the server logged that it closed the abusive connection, but the socket is still \
         {abuser_state} on our side (no FIN or RST from the server) 5 s later"
    );
    match flood.ending {
        Ending::Stalled => {}
        Ending::Closed => assert!(
            reason_logged,
            "the server closed the abusive connection without logging `{REASON}`; its stderr:\n{}",
            server.stderr()
        ),
        Ending::AllSent => assert!(
            reason_logged,
            "the abuser pushed all {REQUESTS} requests (no back-pressure) and the server did not \
             log `{REASON}` within {REASON_WAIT:?}; its stderr:\n{}",
            server.stderr()
        ),
    }
    node.shutdown().await;
}
