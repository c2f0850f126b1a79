//! Round-trip benchmark of mpreg calls against a raw TCP echo baseline.
//!
//! Run with `cargo bench --bench rpc`. Every call echoes a 64-byte payload over loopback
//! (127.0.0.1 only) to a server running in a *separate process*: this binary re-executes
//! itself with `MPREG_BENCH_ROLE` set to start either an mpreg node (serving the built-in
//! `echo`) or a raw TCP echo server (4-byte big-endian length prefix + payload). Scenarios:
//!
//! 1. raw TCP ping-pong, 1 request in flight;
//! 2. mpreg `echo`, 1 call in flight on one connection;
//! 3. raw TCP pipelined, 256 requests in flight on one connection;
//! 4. mpreg `echo`, 256 concurrent calls (one task each) on one connection;
//! 5. mpreg `echo` from 4 client processes (one connection each) x 64 calls in flight.
//!
//! Each scenario warms up for 1 s, then runs closed-loop for `MPREG_BENCH_SECS` seconds
//! (default 3, fractions allowed). Latency is per call, from just before sending to the
//! decoded reply; percentiles come from sorting every recorded duration. Scenarios 2 and 4
//! are measured in ten slices alternating with their raw TCP baselines (1 and 3), so that
//! load from other programs on a shared machine skews both sides alike; scenario 5 is
//! compared with the last pipelined raw TCP row.
//!
//! Scenarios 1-4 run twice: with a 2-worker multi-thread client runtime, then with a
//! current-thread one (`MPREG_BENCH_CLIENT_RT=multi` or `=current` runs only one); the
//! client processes of scenario 5 use the last of these. Servers always use 2 workers.
//!
//! Last, the cost of metrics (issue #13): mpreg `echo` with metrics on (client and server)
//! against a second server and client with metrics off (`Config::metrics`), 1 and 256 in
//! flight, in alternating slices; the table gives the on/off ratio of calls/s.
//! `MPREG_BENCH_ONLY=metrics` runs just that comparison.
//!
//! Then the cost of encryption (issue #18): mpreg `echo` between a client and server that
//! share a secret (every frame encrypted) against a pair without one, 1 and 256 in flight,
//! in alternating slices; the table gives the encrypted/clear ratio of calls/s.
//! `MPREG_BENCH_ONLY=encryption` runs just that comparison.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use serde_bytes::ByteBuf;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, Semaphore};

mod support;
use support::{
    cpu_ns, elapsed_nanos, thousands, wait_for_parent, ChildProc, Samples, Stats, ROLE_VAR,
};

/// Server port handed to client child processes.
const PORT_VAR: &str = "MPREG_BENCH_PORT";
/// Calls in flight for a client child process.
const IN_FLIGHT_VAR: &str = "MPREG_BENCH_IN_FLIGHT";
/// Measured seconds per scenario.
const SECS_VAR: &str = "MPREG_BENCH_SECS";
/// Client runtimes to measure: `both` (default), `multi` or `current`.
const CLIENT_RT_VAR: &str = "MPREG_BENCH_CLIENT_RT";
/// `0` starts the mpreg server (or client) with metrics off.
const METRICS_VAR: &str = "MPREG_BENCH_METRICS";
/// `metrics`, `encryption`, `pipelined` or `single` runs only that comparison.
const ONLY_VAR: &str = "MPREG_BENCH_ONLY";
/// A secret file: the mpreg server starts with it (encrypted connections).
const SECRET_VAR: &str = "MPREG_BENCH_SECRET";
/// Calls/s ratio (metrics on / off) the issue asks for.
const TARGET_METRICS_RATIO: f64 = 0.97;

const PAYLOAD: usize = 64;
const HEADER: usize = 4;
const PIPELINE: usize = 256;
const CLIENT_PROCS: usize = 4;
const WARMUP: Duration = Duration::from_secs(1);
/// Alternating slices per compared pair (see `compare`).
const SLICES: u32 = 10;
const LOCALHOST: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// p50 ratio at or below which mpreg (1 in flight) meets its latency target.
const TARGET_P50_RATIO: f64 = 1.5;
/// Calls/s mpreg must reach with 256 in flight.
const TARGET_THROUGHPUT: f64 = 100_000.0;

fn main() {
    match std::env::var(ROLE_VAR).as_deref() {
        Err(_) => run_benchmarks(),
        Ok("mpreg-server") => mpreg_server(),
        Ok("tcp-server") => tcp_server(),
        Ok("mpreg-client") => mpreg_client_process(),
        Ok(other) => panic!("unknown {ROLE_VAR} `{other}`"),
    }
}

// ---------------------------------------------------------------------------------------
// Settings, runtimes, statistics
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Flavor {
    Multi,
    Current,
}

impl Flavor {
    /// Name in `MPREG_BENCH_CLIENT_RT` and in the table.
    fn name(self) -> &'static str {
        match self {
            Flavor::Multi => "multi",
            Flavor::Current => "current",
        }
    }
}

#[derive(Clone, Copy)]
struct Settings {
    run: Duration,
    warmup: Duration,
    /// Client runtimes to measure, in order.
    clients: &'static [Flavor],
}

impl Settings {
    fn from_env() -> Self {
        let secs: f64 = match std::env::var(SECS_VAR) {
            Ok(s) => s
                .parse()
                .unwrap_or_else(|_| panic!("{SECS_VAR} must be a number of seconds, not `{s}`")),
            Err(_) => 3.0,
        };
        let run = Duration::from_secs_f64(secs);
        let clients: &[Flavor] = match std::env::var(CLIENT_RT_VAR).as_deref() {
            Err(_) | Ok("both") => &[Flavor::Multi, Flavor::Current],
            Ok("multi") => &[Flavor::Multi],
            Ok("current") => &[Flavor::Current],
            Ok(other) => {
                panic!("{CLIENT_RT_VAR} must be `both`, `multi` or `current`, not `{other}`")
            }
        };
        // Short runs (for trying the bench out) get an equally short warm-up.
        Settings {
            run,
            warmup: WARMUP.min(run),
            clients,
        }
    }
}

fn runtime(flavor: Flavor) -> Runtime {
    let mut b = match flavor {
        // Two workers: the machine this is tuned for has two cores.
        Flavor::Multi => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(2);
            b
        }
        Flavor::Current => tokio::runtime::Builder::new_current_thread(),
    };
    b.enable_all()
        .build()
        .expect("cannot build a tokio runtime")
}

// ---------------------------------------------------------------------------------------
// Child processes
// ---------------------------------------------------------------------------------------

fn print_port(port: u16) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{port}")
        .and_then(|_| out.flush())
        .expect("cannot report the port");
}

// ---------------------------------------------------------------------------------------
// Servers (child processes)
// ---------------------------------------------------------------------------------------

fn mpreg_server() {
    let rt = runtime(Flavor::Multi);
    let node = rt.block_on(async {
        let start = mpreg::Node::builder()
            // Loopback only: no discovery broadcast or multicast from the benchmark.
            .interfaces(["lo"])
            .mdns(false)
            .beacon(false)
            .name("bench-server")
            .bind(LOCALHOST.into())
            .port(0)
            .metrics(std::env::var(METRICS_VAR).as_deref() != Ok("0"));
        let start = match std::env::var_os(SECRET_VAR) {
            Some(f) => start.secret_file(f),
            None => start,
        }
        .start();
        start.await.expect("cannot start the mpreg server")
    });
    print_port(node.addr().expect("the server listens").port());
    wait_for_parent();
    rt.block_on(node.shutdown());
}

fn tcp_server() {
    let rt = runtime(Flavor::Multi);
    let listener = rt
        .block_on(TcpListener::bind((LOCALHOST, 0)))
        .expect("cannot listen");
    print_port(listener.local_addr().expect("local address").port());
    rt.spawn(accept_loop(listener));
    wait_for_parent();
    rt.shutdown_timeout(Duration::from_secs(1));
}

async fn accept_loop(listener: TcpListener) {
    while let Ok((sock, _)) = listener.accept().await {
        tokio::spawn(async move {
            if let Err(e) = echo_connection(sock).await {
                eprintln!("tcp echo server: {e}");
            }
        });
    }
}

/// Length of the first frame in `buf` if it is complete.
fn complete_frame(buf: &[u8]) -> Option<usize> {
    let len = u32::from_be_bytes(buf.get(..HEADER)?.try_into().ok()?) as usize;
    (buf.len() >= HEADER + len).then_some(len)
}

/// Reads whatever is available into `buf`, keeping room for many frames per read.
async fn read_more(r: &mut OwnedReadHalf, buf: &mut BytesMut) -> std::io::Result<usize> {
    buf.reserve(16 * 1024);
    r.read_buf(buf).await
}

/// Echoes frames back. One read gathers every frame the client has pipelined and one write
/// answers them all, like mpreg's coalescing writer; a half-close from the client ends it
/// after the last reply.
async fn echo_connection(sock: TcpStream) -> std::io::Result<()> {
    sock.set_nodelay(true)?;
    let (mut r, mut w) = sock.into_split();
    let mut input = BytesMut::with_capacity(64 * 1024);
    let mut output = Vec::with_capacity(64 * 1024);
    while read_more(&mut r, &mut input).await? > 0 {
        while let Some(len) = complete_frame(&input) {
            output.extend_from_slice(&input[..HEADER + len]);
            input.advance(HEADER + len);
        }
        if !output.is_empty() {
            w.write_all(&output).await?;
            output.clear();
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Raw TCP clients
// ---------------------------------------------------------------------------------------

fn request_frame() -> Vec<u8> {
    let mut f = (PAYLOAD as u32).to_be_bytes().to_vec();
    f.resize(HEADER + PAYLOAD, 0xA5);
    f
}

async fn tcp_connect(port: u16) -> TcpStream {
    let sock = TcpStream::connect((LOCALHOST, port))
        .await
        .expect("cannot connect to the tcp server");
    sock.set_nodelay(true).expect("set TCP_NODELAY");
    sock
}

/// One request at a time on `sock` for `run`.
async fn tcp_ping_pong(sock: &mut TcpStream, run: Duration) -> Samples {
    let frame = request_frame();
    let mut reply = vec![0u8; frame.len()];
    let mut nanos = Vec::new();
    let start = Instant::now();
    let mut t0 = start;
    while t0 < start + run {
        sock.write_all(&frame).await.expect("tcp write");
        sock.read_exact(&mut reply).await.expect("tcp read");
        let t1 = Instant::now();
        nanos.push(elapsed_nanos(t0, t1));
        t0 = t1;
    }
    Samples {
        nanos,
        wall: start.elapsed(),
    }
}

/// `window` requests in flight on a new connection for `run`: a writer task tops the window
/// up as replies free slots, a reader task times each reply against its batch's send time
/// (the server answers in order).
async fn tcp_pipelined(port: u16, window: usize, run: Duration) -> Samples {
    let (r, w) = tcp_connect(port).await.into_split();
    let slots = Arc::new(Semaphore::new(window));
    let (sent_tx, sent_rx) = mpsc::unbounded_channel();
    let start = Instant::now();
    let writer = tokio::spawn(pipelined_writer(w, slots.clone(), sent_tx, start + run));
    let reader = tokio::spawn(pipelined_reader(r, slots, sent_rx));
    writer.await.expect("writer panicked").expect("tcp write");
    let nanos = reader.await.expect("reader panicked").expect("tcp read");
    Samples {
        nanos,
        wall: start.elapsed(),
    }
}

/// Sends batches of requests, one write per batch, recording `(send time, count)` for each.
async fn pipelined_writer(
    mut w: OwnedWriteHalf,
    slots: Arc<Semaphore>,
    sent: mpsc::UnboundedSender<(Instant, usize)>,
    deadline: Instant,
) -> std::io::Result<()> {
    let frame = request_frame();
    let mut batch = Vec::new();
    while Instant::now() < deadline {
        slots.acquire().await.expect("semaphore open").forget();
        let mut n = 1;
        while let Ok(p) = slots.try_acquire() {
            p.forget();
            n += 1;
        }
        batch.clear();
        for _ in 0..n {
            batch.extend_from_slice(&frame);
        }
        // Recorded before the write, so the reader always finds a reply's batch.
        sent.send((Instant::now(), n)).expect("reader alive");
        w.write_all(&batch).await?;
    }
    // Half-close: the server answers what is in flight, then closes, ending the reader.
    w.shutdown().await
}

async fn pipelined_reader(
    mut r: OwnedReadHalf,
    slots: Arc<Semaphore>,
    mut sent: mpsc::UnboundedReceiver<(Instant, usize)>,
) -> std::io::Result<Vec<u64>> {
    let mut input = BytesMut::with_capacity(64 * 1024);
    let mut nanos = Vec::new();
    let (mut batch_start, mut batch_left) = (Instant::now(), 0);
    while read_more(&mut r, &mut input).await? > 0 {
        let now = Instant::now();
        let mut replies = 0;
        while let Some(len) = complete_frame(&input) {
            input.advance(HEADER + len);
            if batch_left == 0 {
                (batch_start, batch_left) = sent.try_recv().expect("a reply to an unsent request");
            }
            batch_left -= 1;
            nanos.push(elapsed_nanos(batch_start, now));
            replies += 1;
        }
        slots.add_permits(replies);
    }
    Ok(nanos)
}

// ---------------------------------------------------------------------------------------
// mpreg clients
// ---------------------------------------------------------------------------------------

async fn mpreg_connect(port: u16) -> mpreg::Node {
    mpreg_connect_with(port, true).await
}

/// A client node connected to the server on `port`, with or without `metrics`.
async fn mpreg_connect_with(port: u16, metrics: bool) -> mpreg::Node {
    mpreg_connect_as(port, metrics, None).await
}

/// A client node connected to the server on `port`, with the secret in `secret` if any.
async fn mpreg_connect_as(
    port: u16,
    metrics: bool,
    secret: Option<&std::path::Path>,
) -> mpreg::Node {
    let b = mpreg::Node::builder();
    let b = match secret {
        Some(f) => b.secret_file(f),
        None => b,
    };
    let node = b
        .metrics(metrics)
        // Loopback only: no discovery broadcast or multicast from the benchmark.
        .interfaces(["lo"])
        .mdns(false)
        .beacon(false)
        .name(format!("bench-client-{}", std::process::id()))
        .bind(LOCALHOST.into())
        .listen(false)
        .builtins(false)
        .seed(SocketAddr::from((LOCALHOST, port)))
        .start()
        .await
        .expect("cannot start the mpreg client");
    assert_eq!(
        node.peers().len(),
        1,
        "the client did not connect to the server"
    );
    node
}

/// `in_flight` concurrent callers, one task each, on `node`'s one connection for `run`.
async fn mpreg_load(node: &mpreg::Node, in_flight: usize, run: Duration) -> Samples {
    let start = Instant::now();
    let callers: Vec<_> = (0..in_flight)
        .map(|_| tokio::spawn(mpreg_caller(node.clone(), start + run)))
        .collect();
    let mut nanos = Vec::new();
    for c in callers {
        nanos.extend(c.await.expect("caller panicked"));
    }
    Samples {
        nanos,
        wall: start.elapsed(),
    }
}

/// Calls `echo` back to back until `deadline` through the typed API users would use.
async fn mpreg_caller(node: mpreg::Node, deadline: Instant) -> Vec<u64> {
    let payload = ByteBuf::from(vec![0xA5; PAYLOAD]);
    let mut nanos = Vec::new();
    let mut t0 = Instant::now();
    while t0 < deadline {
        let reply: ByteBuf = node.call("echo", (&payload,)).await.expect("echo failed");
        let t1 = Instant::now();
        assert_eq!(reply.len(), PAYLOAD, "echo returned another payload");
        nanos.push(elapsed_nanos(t0, t1));
        t0 = t1;
    }
    nanos
}

/// Child role for scenario 5: connect, warm up, say `ready`, wait for `go`, measure, then
/// write the wall time and every latency to stdout as little-endian u64 nanoseconds.
fn mpreg_client_process() {
    let settings = Settings::from_env();
    let port: u16 = env_number(PORT_VAR);
    let in_flight: usize = env_number(IN_FLIGHT_VAR);
    let rt = runtime(settings.clients[0]);
    let node = rt.block_on(mpreg_connect(port));
    rt.block_on(mpreg_load(&node, in_flight, settings.warmup));
    println!("ready");
    std::io::stdout().flush().expect("flush");
    let mut go = String::new();
    std::io::stdin()
        .read_line(&mut go)
        .expect("cannot read `go`");
    let samples = rt.block_on(mpreg_load(&node, in_flight, settings.run));
    rt.block_on(node.shutdown());
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let words = std::iter::once(samples.wall.as_nanos() as u64).chain(samples.nanos);
    for w in words {
        out.write_all(&w.to_le_bytes()).expect("write samples");
    }
    out.flush().expect("flush samples");
}

fn env_number<T: std::str::FromStr>(var: &str) -> T {
    let v = std::env::var(var).unwrap_or_else(|_| panic!("{var} not set"));
    v.parse()
        .unwrap_or_else(|_| panic!("{var} is not a number: `{v}`"))
}

fn parse_samples(bytes: &[u8]) -> Samples {
    let mut words = bytes
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")));
    let wall = Duration::from_nanos(words.next().expect("a client sent no samples"));
    Samples {
        nanos: words.collect(),
        wall,
    }
}

// ---------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------

/// One kind of load, keeping its connection between slices.
enum Probe {
    TcpPingPong(TcpStream),
    TcpPipelined { port: u16, window: usize },
    Mpreg { node: mpreg::Node, in_flight: usize },
}

impl Probe {
    async fn run(&mut self, d: Duration) -> Samples {
        match self {
            Probe::TcpPingPong(sock) => tcp_ping_pong(sock, d).await,
            // Each run ends its connection with a half-close, so each run opens a new one.
            Probe::TcpPipelined { port, window } => tcp_pipelined(*port, *window, d).await,
            Probe::Mpreg { node, in_flight } => mpreg_load(node, *in_flight, d).await,
        }
    }

    async fn close(self) {
        if let Probe::Mpreg { node, .. } = self {
            node.shutdown().await;
        }
    }
}

/// Measures `raw` and `mp` in alternating slices rather than one after the other, so that
/// background load on a shared machine hits both alike and the ratio stays meaningful. The
/// order flips every slice (A B B A …): a machine slowly getting faster or slower would
/// otherwise always favour the side measured first.
async fn compare(s: Settings, mut raw: Probe, mut mp: Probe) -> (Stats, Stats) {
    raw.run(s.warmup).await;
    mp.run(s.warmup).await;
    let slice = s.run / SLICES;
    let (mut raw_samples, mut mp_samples) = (Samples::default(), Samples::default());
    for i in 0..SLICES {
        if i % 2 == 0 {
            raw_samples.append(raw.run(slice).await);
            mp_samples.append(mp.run(slice).await);
        } else {
            mp_samples.append(mp.run(slice).await);
            raw_samples.append(raw.run(slice).await);
        }
    }
    raw.close().await;
    mp.close().await;
    (raw_samples.stats(), mp_samples.stats())
}

/// Scenarios 1 and 2: one request or call at a time.
fn scenario_one_in_flight(
    rt: &Runtime,
    s: Settings,
    tcp_port: u16,
    mpreg_port: u16,
) -> (Stats, Stats) {
    rt.block_on(async {
        let raw = Probe::TcpPingPong(tcp_connect(tcp_port).await);
        let node = mpreg_connect(mpreg_port).await;
        compare(s, raw, Probe::Mpreg { node, in_flight: 1 }).await
    })
}

/// Scenarios 3 and 4: `PIPELINE` requests or calls in flight on one connection.
fn scenario_pipelined(rt: &Runtime, s: Settings, tcp_port: u16, mpreg_port: u16) -> (Stats, Stats) {
    rt.block_on(async {
        let raw = Probe::TcpPipelined {
            port: tcp_port,
            window: PIPELINE,
        };
        let node = mpreg_connect(mpreg_port).await;
        compare(
            s,
            raw,
            Probe::Mpreg {
                node,
                in_flight: PIPELINE,
            },
        )
        .await
    })
}

/// Just one pair, raw TCP against mpreg, on the first client runtime listed (for profiling
/// or A/B-ing a hot path): 256 in flight (`MPREG_BENCH_ONLY=pipelined`) or 1 in flight
/// (`MPREG_BENCH_ONLY=single`).
fn pair_only(s: Settings, in_flight: usize) {
    let mut tcp = ChildProc::spawn("tcp-server", &[]);
    let mut mpreg = ChildProc::spawn("mpreg-server", &[]);
    let client = s.clients[0];
    let rt = runtime(client);
    eprintln!(
        "running raw TCP vs mpreg echo, {in_flight} in flight ({} client runtime) ...",
        client.name()
    );
    let (raw, mp) = if in_flight == 1 {
        scenario_one_in_flight(&rt, s, tcp.port(), mpreg.port())
    } else {
        scenario_pipelined(&rt, s, tcp.port(), mpreg.port())
    };
    drop((tcp, mpreg));
    let reference = if in_flight == 1 {
        "raw TCP ping-pong"
    } else {
        "raw TCP pipelined"
    };
    let rows = [
        Row::raw(reference, client, in_flight, raw),
        Row::mpreg(client, in_flight, mp, raw),
    ];
    print_table(s, &rows);
}

/// Starts every client process, lets them all warm up, then starts their measured runs
/// together so that the runs overlap.
fn scenario_mpreg_processes(
    s: Settings,
    client: Flavor,
    port: u16,
    procs: usize,
    in_flight: usize,
) -> Stats {
    let env = [
        (PORT_VAR, port.to_string()),
        (IN_FLIGHT_VAR, in_flight.to_string()),
        (SECS_VAR, s.run.as_secs_f64().to_string()),
        (CLIENT_RT_VAR, client.name().to_string()),
    ];
    let mut clients: Vec<ChildProc> = (0..procs)
        .map(|_| ChildProc::spawn("mpreg-client", &env))
        .collect();
    for c in &mut clients {
        assert_eq!(c.read_line(), "ready");
    }
    for c in &mut clients {
        c.send_line("go");
    }
    Samples::merge(
        clients
            .into_iter()
            .map(|c| parse_samples(&c.finish()))
            .collect(),
    )
    .stats()
}

struct Row {
    name: &'static str,
    client: Flavor,
    in_flight: String,
    stats: Stats,
    /// The raw TCP row this one is compared with.
    baseline: Option<Stats>,
}

impl Row {
    fn raw(name: &'static str, client: Flavor, in_flight: usize, stats: Stats) -> Row {
        let in_flight = in_flight.to_string();
        Row {
            name,
            client,
            in_flight,
            stats,
            baseline: None,
        }
    }

    fn mpreg(client: Flavor, in_flight: usize, stats: Stats, baseline: Stats) -> Row {
        let in_flight = in_flight.to_string();
        Row {
            name: "mpreg echo",
            client,
            in_flight,
            stats,
            baseline: Some(baseline),
        }
    }
}

/// What the targets are judged on, for one client runtime.
struct TargetInputs {
    client: Flavor,
    raw_p50_us: f64,
    mpreg_p50_us: f64,
    mpreg_pipelined: f64,
}

fn run_benchmarks() {
    let s = Settings::from_env();
    match std::env::var(ONLY_VAR).as_deref() {
        Ok("metrics") => return print_metrics_cost(&metrics_cost(s)),
        Ok("encryption") => return print_encryption_cost(&encryption_cost(s)),
        Ok("pipelined") => return pair_only(s, PIPELINE),
        Ok("single") => return pair_only(s, 1),
        _ => {}
    }
    let mut tcp = ChildProc::spawn("tcp-server", &[]);
    let mut mpreg = ChildProc::spawn("mpreg-server", &[]);
    let (tcp_port, mpreg_port) = (tcp.port(), mpreg.port());
    let progress = |what: &str, client: Flavor| {
        eprintln!("running {what} ({} client runtime) ...", client.name())
    };

    let (mut rows, mut targets) = (Vec::new(), Vec::new());
    let mut raw_pipelined = None;
    for &client in s.clients {
        let rt = runtime(client);
        progress("raw TCP ping-pong vs mpreg echo, 1 in flight", client);
        let (raw1, mp1) = scenario_one_in_flight(&rt, s, tcp_port, mpreg_port);
        progress("raw TCP pipelined vs mpreg echo, 256 in flight", client);
        let (raw_many, mp_many) = scenario_pipelined(&rt, s, tcp_port, mpreg_port);
        rows.push(Row::raw("raw TCP ping-pong", client, 1, raw1));
        rows.push(Row::mpreg(client, 1, mp1, raw1));
        rows.push(Row::raw("raw TCP pipelined", client, PIPELINE, raw_many));
        rows.push(Row::mpreg(client, PIPELINE, mp_many, raw_many));
        targets.push(TargetInputs {
            client,
            raw_p50_us: raw1.p50_us,
            mpreg_p50_us: mp1.p50_us,
            mpreg_pipelined: mp_many.calls_per_sec,
        });
        raw_pipelined = Some(raw_many);
    }

    // With several processes the processes are the parallelism: the last runtime listed
    // (current-thread by default) suits each of them best.
    let client = *s.clients.last().expect("at least one client runtime");
    progress("mpreg echo, 4 client processes", client);
    let per_proc = PIPELINE / CLIENT_PROCS;
    let mp_procs = scenario_mpreg_processes(s, client, mpreg_port, CLIENT_PROCS, per_proc);
    rows.push(Row {
        name: "mpreg echo, 4 processes",
        client,
        in_flight: format!("{CLIENT_PROCS}x{per_proc}"),
        stats: mp_procs,
        baseline: raw_pipelined,
    });
    drop((tcp, mpreg));

    print_table(s, &rows);
    print_targets(&targets);
    print_metrics_cost(&metrics_cost(s));
    print_encryption_cost(&encryption_cost(s));
}

/// Slice pairs of the metrics comparison: many short pairs, so that the median ratio
/// shrugs off the bursts of a shared machine.
const METRICS_PAIRS: u32 = 30;

/// One row of the metrics comparison: stats off and on, the median of the per-pair
/// calls/s ratios (on/off), and the same for CPU time per call (off/on, so that both read
/// "≥ 1 means metrics cost nothing").
struct Cost {
    in_flight: usize,
    off: Stats,
    on: Stats,
    median_ratio: f64,
    /// CPU ns per call (client and server processes together), off and on, over all slices.
    cpu_off: f64,
    cpu_on: f64,
    median_cpu_ratio: f64,
}

/// The server process behind each probe, for its CPU time.
struct Servers {
    off: String,
    on: String,
}

/// One slice of `probe` against `server`: its samples and the CPU time (ns) the client
/// (this process) and the server spent on it.
async fn slice(probe: &mut Probe, server: &str, d: Duration) -> (Samples, u64) {
    let before = cpu_ns("self") + cpu_ns(server);
    let samples = probe.run(d).await;
    let after = cpu_ns("self") + cpu_ns(server);
    (samples, after.saturating_sub(before))
}

/// `off` and `on` in [`METRICS_PAIRS`] adjacent slice pairs (order flipping every pair).
async fn paired(
    s: Settings,
    mut off: Probe,
    mut on: Probe,
    servers: &Servers,
    in_flight: usize,
) -> Cost {
    off.run(s.warmup).await;
    on.run(s.warmup).await;
    let d = s.run / METRICS_PAIRS;
    let (mut all_off, mut all_on) = (Samples::default(), Samples::default());
    let (mut ratios, mut cpu_ratios) = (Vec::new(), Vec::new());
    let (mut cpu_off, mut cpu_on) = (0u64, 0u64);
    for i in 0..METRICS_PAIRS {
        let ((a, ca), (b, cb)) = if i % 2 == 0 {
            let a = slice(&mut off, &servers.off, d).await;
            (a, slice(&mut on, &servers.on, d).await)
        } else {
            let b = slice(&mut on, &servers.on, d).await;
            (slice(&mut off, &servers.off, d).await, b)
        };
        let rate = |x: &Samples| x.nanos.len() as f64 / x.wall.as_secs_f64();
        ratios.push(rate(&b) / rate(&a));
        let per_call = |cpu: u64, x: &Samples| cpu as f64 / x.nanos.len().max(1) as f64;
        cpu_ratios.push(per_call(ca, &a) / per_call(cb, &b));
        (cpu_off, cpu_on) = (cpu_off + ca, cpu_on + cb);
        all_off.append(a);
        all_on.append(b);
    }
    off.close().await;
    on.close().await;
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (n_off, n_on) = (
        all_off.nanos.len().max(1) as f64,
        all_on.nanos.len().max(1) as f64,
    );
    Cost {
        in_flight,
        off: all_off.stats(),
        on: all_on.stats(),
        median_ratio: median(ratios),
        cpu_off: cpu_off as f64 / n_off,
        cpu_on: cpu_on as f64 / n_on,
        median_cpu_ratio: median(cpu_ratios),
    }
}

/// Calls/s and p50 with metrics off and on, at 1 and at 256 in flight.
fn metrics_cost(s: Settings) -> Vec<Cost> {
    eprintln!("running mpreg echo with metrics off vs on ...");
    let mut on = ChildProc::spawn("mpreg-server", &[(METRICS_VAR, "1".to_string())]);
    let mut off = ChildProc::spawn("mpreg-server", &[(METRICS_VAR, "0".to_string())]);
    let (on_port, off_port) = (on.port(), off.port());
    let servers = Servers {
        off: off.pid().to_string(),
        on: on.pid().to_string(),
    };
    let rt = runtime(Flavor::Multi);
    let rows = [1, PIPELINE]
        .into_iter()
        .map(|in_flight| {
            rt.block_on(async {
                let without = mpreg_connect_with(off_port, false).await;
                let with = mpreg_connect_with(on_port, true).await;
                let probe = |node| Probe::Mpreg { node, in_flight };
                paired(s, probe(without), probe(with), &servers, in_flight).await
            })
        })
        .collect();
    drop((on, off));
    rows
}

fn print_metrics_cost(rows: &[Cost]) {
    println!();
    println!(
        "metrics cost — mpreg echo, client and server both with metrics off vs both on, \
         {METRICS_PAIRS} adjacent slice pairs; ratios = median of the pairs' on/off calls/s \
         and off/on CPU ns per call (client + server processes, steal not counted)"
    );
    println!(
        "{:>10}{:>13}{:>13}{:>11}{:>11}{:>9}{:>9}{:>11}{:>11}{:>9}   target ≥ {TARGET_METRICS_RATIO}",
        "in flight", "off calls/s", "on calls/s", "off p50µs", "on p50µs", "totals", "median",
        "off CPU/c", "on CPU/c", "CPU med"
    );
    for c in rows {
        let totals = c.on.calls_per_sec / c.off.calls_per_sec;
        let verdict = |r: f64| {
            if r >= TARGET_METRICS_RATIO {
                "met"
            } else {
                "NOT met"
            }
        };
        println!(
            "{:>10}{:>13}{:>13}{:>11.1}{:>11.1}{:>9.3}{:>9.3}{:>9.0}ns{:>9.0}ns{:>9.3}   \
             calls/s {}, CPU/call {}",
            c.in_flight,
            thousands(c.off.calls_per_sec),
            thousands(c.on.calls_per_sec),
            c.off.p50_us,
            c.on.p50_us,
            totals,
            c.median_ratio,
            c.cpu_off,
            c.cpu_on,
            c.median_cpu_ratio,
            verdict(c.median_ratio),
            verdict(c.median_cpu_ratio),
        );
    }
}

/// Calls/s and p50 without and with a shared secret, at 1 and at 256 in flight.
fn encryption_cost(s: Settings) -> Vec<Cost> {
    eprintln!("running mpreg echo in clear vs encrypted ...");
    let dir = std::env::temp_dir().join(format!("mpreg-bench-rpc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create the secret's folder");
    let secret = dir.join("secret");
    std::fs::write(&secret, "bench secret").expect("write the secret");
    let path = secret.to_string_lossy().into_owned();
    let mut sealed = ChildProc::spawn("mpreg-server", &[(SECRET_VAR, path)]);
    let mut clear = ChildProc::spawn("mpreg-server", &[]);
    let (sealed_port, clear_port) = (sealed.port(), clear.port());
    let servers = Servers {
        off: clear.pid().to_string(),
        on: sealed.pid().to_string(),
    };
    let rt = runtime(Flavor::Multi);
    let rows = [1, PIPELINE]
        .into_iter()
        .map(|in_flight| {
            rt.block_on(async {
                let plain = mpreg_connect_as(clear_port, true, None).await;
                let enc = mpreg_connect_as(sealed_port, true, Some(&secret)).await;
                let probe = |node| Probe::Mpreg { node, in_flight };
                paired(s, probe(plain), probe(enc), &servers, in_flight).await
            })
        })
        .collect();
    drop((sealed, clear));
    let _ = std::fs::remove_dir_all(&dir);
    rows
}

fn print_encryption_cost(rows: &[Cost]) {
    println!();
    println!(
        "encryption cost — mpreg echo (64 B), client and server without a secret vs both \
         with one, {METRICS_PAIRS} adjacent slice pairs; ratios = median of the pairs' \
         encrypted/clear calls/s and clear/encrypted CPU ns per call (client + server)"
    );
    println!(
        "{:>10}{:>14}{:>14}{:>12}{:>12}{:>10}{:>10}{:>11}{:>11}{:>9}",
        "in flight",
        "clear c/s",
        "sealed c/s",
        "clear p50",
        "sealed p50",
        "totals",
        "median",
        "clear CPU",
        "sealed CPU",
        "CPU med"
    );
    for c in rows {
        println!(
            "{:>10}{:>14}{:>14}{:>12.1}{:>12.1}{:>10.3}{:>10.3}{:>9.0}ns{:>9.0}ns{:>9.3}",
            c.in_flight,
            thousands(c.off.calls_per_sec),
            thousands(c.on.calls_per_sec),
            c.off.p50_us,
            c.on.p50_us,
            c.on.calls_per_sec / c.off.calls_per_sec,
            c.median_ratio,
            c.cpu_off,
            c.cpu_on,
            c.median_cpu_ratio,
        );
    }
}

// ---------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------

fn print_table(s: Settings, rows: &[Row]) {
    println!();
    println!(
        "mpreg rpc benchmark — {PAYLOAD} B payload, loopback, server in a separate process, {} s per row",
        s.run.as_secs_f64()
    );
    println!("client runtime: multi = 2-worker multi-thread, current = current-thread; servers: 2-worker multi-thread");
    println!(
        "{:<26}{:>8}{:>11}{:>12}{:>10}{:>10}   vs raw TCP (p50 / throughput)",
        "scenario", "client", "in flight", "calls/s", "p50 µs", "p99 µs"
    );
    for r in rows {
        let vs = r.baseline.map_or(String::new(), |b| {
            format!(
                "{:.2}x / {:.2}x",
                r.stats.p50_us / b.p50_us,
                r.stats.calls_per_sec / b.calls_per_sec
            )
        });
        println!(
            "{:<26}{:>8}{:>11}{:>12}{:>10.1}{:>10.1}   {vs}",
            r.name,
            r.client.name(),
            r.in_flight,
            thousands(r.stats.calls_per_sec),
            r.stats.p50_us,
            r.stats.p99_us
        );
    }
}

fn print_targets(targets: &[TargetInputs]) {
    let verdict = |ok: bool| if ok { "MET" } else { "MISSED" };
    let latency: Vec<String> = targets
        .iter()
        .map(|t| {
            let ratio = t.mpreg_p50_us / t.raw_p50_us;
            format!(
                "{} {} ({ratio:.2}x)",
                t.client.name(),
                verdict(ratio <= TARGET_P50_RATIO)
            )
        })
        .collect();
    let throughput: Vec<String> = targets
        .iter()
        .map(|t| {
            let ok = t.mpreg_pipelined >= TARGET_THROUGHPUT;
            format!(
                "{} {} ({})",
                t.client.name(),
                verdict(ok),
                thousands(t.mpreg_pipelined)
            )
        })
        .collect();
    println!();
    println!(
        "targets: mpreg p50 within {TARGET_P50_RATIO}x of raw TCP (1 in flight): {}",
        latency.join(", ")
    );
    println!(
        "         at least {} calls/s with {PIPELINE} in flight: {}",
        thousands(TARGET_THROUGHPUT),
        throughput.join(", ")
    );
}
