//! The gateway for other languages (WebSocket and JSON-RPC on a node's HTTP listener)
//! against native mpreg calls to the same node.
//!
//! Run with `cargo bench --bench gateway`. One server node runs in a *separate process*
//! (this binary re-executed with `MPREG_BENCH_ROLE=server`): it serves the built-in `echo`
//! to mpreg clients on its TCP port and through the gateway on its HTTP port. Everything
//! binds 127.0.0.1 with the interfaces limited to `lo`, mDNS and beacons off, and the
//! client reaches the server by address: nothing leaves this machine.
//!
//! Every call echoes a 64-byte string. Scenarios, each paired with its native reference:
//!
//! 1. native: an mpreg client node (no listener, no built-ins, so `echo` runs on the
//!    server) with 64 calls in flight (one task each), against
//! 2. gateway WebSocket: one connection, 64 `rpc` requests in flight, pipelined and matched
//!    to their replies by `u`;
//! 3. native with 1 call in flight, against
//! 4. gateway JSON-RPC over one HTTP/1.1 keep-alive connection, one request at a time;
//! 5. native with 64 in flight again, against
//! 6. gateway JSON-RPC over 64 keep-alive connections, one request at a time on each.
//!
//! Method: the client side runs on a 2-worker multi-thread runtime (the machine this is
//! tuned for has two cores), the server on another. Each pair warms up for 1 s, then runs
//! closed-loop for `MPREG_BENCH_SECS` seconds per side (default 3, fractions allowed), cut
//! into ten slices that alternate between the two sides (A B B A …) so that load from
//! other programs on a shared machine hits both alike and the ratio stays meaningful.
//! Connections are kept across slices. Latency is per call, from just before its request
//! is written to its decoded reply; percentiles come from sorting every recorded duration.
//!
//! Every reply is checked: each request carries a distinct payload (its sequence number,
//! zero-padded to 64 digits) and the reply must carry the same one, with no error; a
//! mismatch, an error or a closed connection aborts the benchmark with a message.

use std::collections::HashMap;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use futures_util::{FutureExt, SinkExt, StreamExt};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::runtime::Runtime;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

mod support;
use support::{elapsed_nanos, thousands, wait_for_parent, ChildProc, Samples, Stats, ROLE_VAR};

/// Measured seconds per side of each pair.
const SECS_VAR: &str = "MPREG_BENCH_SECS";

/// Bytes of every echoed string.
const PAYLOAD: usize = 64;
/// Calls in flight for the concurrent scenarios (the gateway allows 256 per socket).
const WINDOW: usize = 64;
const WARMUP: Duration = Duration::from_secs(1);
/// Alternating slices per compared pair (see `compare`).
const SLICES: u32 = 10;
const LOCALHOST: Ipv4Addr = Ipv4Addr::LOCALHOST;

fn main() {
    match std::env::var(ROLE_VAR).as_deref() {
        Err(_) => run_benchmarks(),
        Ok("server") => server(),
        Ok(other) => panic!("unknown {ROLE_VAR} `{other}`"),
    }
}

// ---------------------------------------------------------------------------------------
// Settings, runtime, statistics
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy)]
struct Settings {
    run: Duration,
    warmup: Duration,
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
        // Short runs (for trying the bench out) get an equally short warm-up.
        Settings {
            run,
            warmup: WARMUP.min(run),
        }
    }
}

/// Two workers: the machine this is tuned for has two cores.
fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("cannot build a tokio runtime")
}

/// The string sent with request `seq`: distinct per request, so that a reply matched to
/// the wrong request fails the check.
fn payload(seq: u64) -> String {
    let p = format!("{seq:0PAYLOAD$}");
    debug_assert_eq!(p.len(), PAYLOAD);
    p
}

/// A node builder confined to loopback: bound to 127.0.0.1, interfaces limited to `lo`,
/// no mDNS and no beacon (so no multicast or broadcast); peers are given by address.
fn loopback_node(name: &str) -> mpreg::NodeBuilder {
    mpreg::Node::builder()
        .name(name)
        .bind(LOCALHOST.into())
        .port(0)
        .interfaces(["lo"])
        .mdns(false)
        .beacon(false)
}

// ---------------------------------------------------------------------------------------
// The server process
// ---------------------------------------------------------------------------------------

/// Starts the server node with its HTTP listener, prints `ADDR HTTP_ADDR`, and runs until
/// the parent closes our stdin — which also happens if the parent dies, so the server
/// never outlives the benchmark.
fn server() {
    let rt = runtime();
    let node = rt.block_on(async {
        loopback_node("bench-gateway-server")
            .http(SocketAddr::from((LOCALHOST, 0)))
            .start()
            .await
            .expect("cannot start the server node")
    });
    let addr = node.addr().expect("the server listens");
    let http = node.http_addr().expect("the server has an HTTP listener");
    let mut out = std::io::stdout().lock();
    writeln!(out, "{addr} {http}")
        .and_then(|_| out.flush())
        .expect("cannot report the addresses");
    drop(out);
    wait_for_parent();
    rt.block_on(node.shutdown());
}

/// The server child and the addresses it reported.
struct ServerProc {
    _child: ChildProc,
    /// The node's mpreg port and its HTTP listener.
    addr: SocketAddr,
    http: SocketAddr,
}

impl ServerProc {
    fn spawn() -> ServerProc {
        let mut child = ChildProc::spawn("server", &[]);
        let line = child.read_line();
        let parse = |s: Option<&str>| -> SocketAddr {
            s.and_then(|s| s.parse().ok()).unwrap_or_else(|| {
                panic!("expected `ADDR HTTP_ADDR` from the server, got `{line}`")
            })
        };
        let mut words = line.split(' ');
        let (addr, http) = (parse(words.next()), parse(words.next()));
        ServerProc {
            _child: child,
            addr,
            http,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Native mpreg calls
// ---------------------------------------------------------------------------------------

/// A client node (no listener, no built-ins, so `echo` runs on the server) seeded with the
/// server's address.
async fn native_connect(server: SocketAddr) -> mpreg::Node {
    let node = loopback_node("bench-gateway-client")
        .listen(false)
        .builtins(false)
        .seed(server)
        .start()
        .await
        .expect("cannot start the mpreg client");
    assert_eq!(node.peers().len(), 1, "the client did not reach the server");
    node
}

/// `in_flight` concurrent callers, one task each, on `node`'s one connection for `run`.
async fn native_load(node: &mpreg::Node, in_flight: usize, run: Duration) -> Samples {
    let start = Instant::now();
    let callers: Vec<_> = (0..in_flight as u64)
        // Disjoint sequence ranges, so every caller's payloads are its own.
        .map(|i| tokio::spawn(native_caller(node.clone(), i << 40, start + run)))
        .collect();
    let mut nanos = Vec::new();
    for c in callers {
        nanos.extend(c.await.expect("a native caller panicked"));
    }
    Samples {
        nanos,
        wall: start.elapsed(),
    }
}

/// Calls `echo` back to back until `deadline` through the typed API users would use.
async fn native_caller(node: mpreg::Node, mut seq: u64, deadline: Instant) -> Vec<u64> {
    let mut nanos = Vec::new();
    let mut t0 = Instant::now();
    while t0 < deadline {
        let sent = payload(seq);
        let reply: String = node
            .call("echo", (&sent,))
            .await
            .unwrap_or_else(|e| panic!("native echo failed: {e}"));
        let t1 = Instant::now();
        assert_eq!(reply, sent, "native echo returned another string");
        nanos.push(elapsed_nanos(t0, t1));
        (t0, seq) = (t1, seq + 1);
    }
    nanos
}

// ---------------------------------------------------------------------------------------
// Gateway WebSocket
// ---------------------------------------------------------------------------------------

type Ws = WebSocketStream<TcpStream>;

/// A WebSocket to the gateway on `/`.
async fn ws_connect(http: SocketAddr) -> Ws {
    let tcp = TcpStream::connect(http)
        .await
        .expect("cannot connect to the HTTP listener");
    tcp.set_nodelay(true).expect("set TCP_NODELAY");
    let (ws, _) = tokio_tungstenite::client_async(format!("ws://{http}/"), tcp)
        .await
        .expect("WebSocket handshake with the gateway failed");
    ws
}

/// MPREG's `rpc` request calling `echo` with `payload(seq)`; `u` is `seq` in decimal.
fn ws_request(seq: u64) -> Message {
    let p = payload(seq);
    Message::text(format!(
        r#"{{"role":"rpc","u":"{seq}","cmds":[{{"name":"echo","fun":"echo","args":["{p}"],"kwargs":{{}},"locs":[]}}]}}"#
    ))
}

/// `{"r": {"echo": ...}, "error": null, "u": ...}`.
#[derive(Deserialize)]
struct WsReply {
    r: Option<WsResult>,
    error: Option<serde_json::Value>,
    u: Option<String>,
}

#[derive(Deserialize)]
struct WsResult {
    echo: String,
}

/// Checks one reply frame and returns the `seq` of the request it answers.
fn check_ws_reply(msg: Message) -> u64 {
    let text = match msg {
        Message::Text(t) => t.to_string(),
        Message::Binary(b) => String::from_utf8(b.to_vec()).expect("a binary reply not UTF-8"),
        Message::Close(c) => panic!("the gateway closed the WebSocket: {c:?}"),
        other => panic!("unexpected WebSocket frame {other:?}"),
    };
    let reply: WsReply = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("unexpected WebSocket reply ({e}): {text}"));
    if let Some(error) = reply.error {
        panic!("the gateway answered with an error: {error} (reply {text})");
    }
    let seq: u64 = reply
        .u
        .and_then(|u| u.parse().ok())
        .unwrap_or_else(|| panic!("a reply without a valid `u`: {text}"));
    let echoed = reply
        .r
        .unwrap_or_else(|| panic!("a reply without `r`: {text}"));
    assert_eq!(echoed.echo, payload(seq), "wrong echo for u={seq}: {text}");
    seq
}

/// Keeps `window` requests in flight on `ws` until `run` is over, then collects the
/// replies still due, so the socket is idle for the next slice. `next` numbers requests
/// across slices.
async fn ws_load(ws: &mut Ws, next: &mut u64, window: usize, run: Duration) -> Samples {
    let start = Instant::now();
    let deadline = start + run;
    let mut pending: HashMap<u64, Instant> = HashMap::with_capacity(window);
    let mut nanos = Vec::new();
    loop {
        // Top the window up: requests are buffered (`feed`) and written together by one
        // flush, like the native client's coalescing writer.
        let mut fed = false;
        while pending.len() < window && Instant::now() < deadline {
            ws.feed(ws_request(*next)).await.expect("WebSocket write");
            pending.insert(*next, Instant::now());
            *next += 1;
            fed = true;
        }
        if fed {
            ws.flush().await.expect("WebSocket write");
        }
        if pending.is_empty() {
            break;
        }
        // Wait for one reply, then take every reply already received before writing again.
        let first = ws.next().await.expect("the gateway closed the WebSocket");
        let mut replies = vec![first];
        while let Some(Some(more)) = ws.next().now_or_never() {
            replies.push(more);
        }
        for reply in replies {
            let msg = reply.expect("WebSocket read");
            let now = Instant::now();
            let seq = check_ws_reply(msg);
            let sent = pending
                .remove(&seq)
                .unwrap_or_else(|| panic!("a reply to u={seq}, which is not in flight"));
            nanos.push(elapsed_nanos(sent, now));
        }
    }
    Samples {
        nanos,
        wall: start.elapsed(),
    }
}

// ---------------------------------------------------------------------------------------
// Gateway JSON-RPC over HTTP/1.1 keep-alive
// ---------------------------------------------------------------------------------------

/// One keep-alive connection to the gateway. The HTTP/1.1 exchange is hand-written to keep
/// the benchmark free of an HTTP client dependency: a POST with a Content-Length, and an
/// answer read up to the end of its headers plus its Content-Length.
struct HttpConn {
    sock: TcpStream,
    /// Bytes read but not yet consumed.
    buf: Vec<u8>,
    /// JSON-RPC id (and payload number) of the next request.
    next_id: u64,
}

/// `{"jsonrpc":"2.0","result": ...,"id": ...}`.
#[derive(Deserialize)]
struct RpcReply {
    jsonrpc: String,
    result: Option<String>,
    error: Option<serde_json::Value>,
    id: Option<u64>,
}

impl HttpConn {
    async fn connect(http: SocketAddr, first_id: u64) -> HttpConn {
        let sock = TcpStream::connect(http)
            .await
            .expect("cannot connect to the HTTP listener");
        sock.set_nodelay(true).expect("set TCP_NODELAY");
        HttpConn {
            sock,
            buf: Vec::with_capacity(4096),
            next_id: first_id,
        }
    }

    /// One JSON-RPC `echo` call, checked.
    async fn call(&mut self) {
        let id = self.next_id;
        self.next_id += 1;
        let sent = payload(id);
        let body = format!(r#"{{"jsonrpc":"2.0","method":"echo","params":["{sent}"],"id":{id}}}"#);
        let request = format!(
            "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.sock
            .write_all(request.as_bytes())
            .await
            .expect("HTTP write");
        let answer = self.read_answer().await;
        let reply: RpcReply = serde_json::from_slice(&answer).unwrap_or_else(|e| {
            panic!(
                "unexpected JSON-RPC answer ({e}): {}",
                String::from_utf8_lossy(&answer)
            )
        });
        if let Some(error) = reply.error {
            panic!("the gateway answered JSON-RPC id {id} with an error: {error}");
        }
        assert_eq!(reply.jsonrpc, "2.0", "not a JSON-RPC 2.0 answer");
        assert_eq!(reply.id, Some(id), "a JSON-RPC answer for another id");
        assert_eq!(reply.result, Some(sent), "wrong echo for JSON-RPC id {id}");
    }

    /// The body of the next answer, which must be `200` with a Content-Length.
    async fn read_answer(&mut self) -> Vec<u8> {
        loop {
            if let Some(body) = self.take_answer() {
                return body;
            }
            let n = self.sock.read_buf(&mut self.buf).await.expect("HTTP read");
            assert!(n > 0, "the gateway closed the keep-alive connection");
        }
    }

    /// Removes a complete answer from `buf` and returns its body, if one is there.
    fn take_answer(&mut self) -> Option<Vec<u8>> {
        let head_len = self.buf.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = std::str::from_utf8(&self.buf[..head_len]).expect("HTTP head not UTF-8");
        let status = head.split(' ').nth(1);
        assert_eq!(status, Some("200"), "HTTP answer not 200: {head}");
        let body_len: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .unwrap_or_else(|| panic!("an HTTP answer without Content-Length: {head}"));
        let end = head_len + 4 + body_len;
        if self.buf.len() < end {
            return None;
        }
        let body = self.buf[head_len + 4..end].to_vec();
        self.buf.drain(..end);
        Some(body)
    }
}

/// Sequential calls on `conn` until `deadline`.
async fn http_caller(mut conn: HttpConn, deadline: Instant) -> (HttpConn, Vec<u64>) {
    let mut nanos = Vec::new();
    let mut t0 = Instant::now();
    while t0 < deadline {
        conn.call().await;
        let t1 = Instant::now();
        nanos.push(elapsed_nanos(t0, t1));
        t0 = t1;
    }
    (conn, nanos)
}

/// One request at a time on each of `conns` (one task each) for `run`; the connections
/// come back for the next slice.
async fn http_load(conns: &mut Vec<HttpConn>, run: Duration) -> Samples {
    let start = Instant::now();
    let callers: Vec<_> = conns
        .drain(..)
        .map(|c| tokio::spawn(http_caller(c, start + run)))
        .collect();
    let mut nanos = Vec::new();
    for c in callers {
        let (conn, more) = c.await.expect("a JSON-RPC caller panicked");
        conns.push(conn);
        nanos.extend(more);
    }
    Samples {
        nanos,
        wall: start.elapsed(),
    }
}

// ---------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------

/// One kind of load, keeping its connections between slices.
enum Probe {
    Native { node: mpreg::Node, in_flight: usize },
    WebSocket { ws: Box<Ws>, next: u64 },
    JsonRpc { conns: Vec<HttpConn> },
}

impl Probe {
    async fn run(&mut self, d: Duration) -> Samples {
        match self {
            Probe::Native { node, in_flight } => native_load(node, *in_flight, d).await,
            Probe::WebSocket { ws, next } => ws_load(ws, next, WINDOW, d).await,
            Probe::JsonRpc { conns } => http_load(conns, d).await,
        }
    }

    async fn close(self) {
        match self {
            Probe::Native { node, .. } => node.shutdown().await,
            Probe::WebSocket { mut ws, .. } => {
                // A close handshake, so the server sees a clean end (best effort).
                let _ = WebSocketStream::close(&mut *ws, None).await;
            }
            Probe::JsonRpc { .. } => {}
        }
    }
}

/// Measures `native` and `gateway` in alternating slices rather than one after the other,
/// so that background load on a shared machine hits both alike. The order flips every
/// slice (A B B A …): a machine slowly getting faster or slower would otherwise always
/// favour the side measured first.
async fn compare(s: Settings, mut native: Probe, mut gateway: Probe) -> (Stats, Stats) {
    native.run(s.warmup).await;
    gateway.run(s.warmup).await;
    let slice = s.run / SLICES;
    let (mut a, mut b) = (Samples::default(), Samples::default());
    for i in 0..SLICES {
        if i % 2 == 0 {
            a.append(native.run(slice).await);
            b.append(gateway.run(slice).await);
        } else {
            b.append(gateway.run(slice).await);
            a.append(native.run(slice).await);
        }
    }
    native.close().await;
    gateway.close().await;
    (a.stats(), b.stats())
}

/// A gateway row and the native row it is compared with.
struct Pair {
    gateway: String,
    /// Calls in flight on the gateway side (the native side has as many, on one connection).
    in_flight: String,
    native_in_flight: usize,
    native: Stats,
    measured: Stats,
}

/// Native with 64 in flight against one WebSocket with 64 in flight.
async fn websocket_pair(s: Settings, server: &ServerProc) -> Pair {
    let node = native_connect(server.addr).await;
    let ws = Box::new(ws_connect(server.http).await);
    let native = Probe::Native {
        node,
        in_flight: WINDOW,
    };
    let (native, measured) = compare(s, native, Probe::WebSocket { ws, next: 0 }).await;
    Pair {
        gateway: "gateway WebSocket, 1 conn".to_string(),
        in_flight: WINDOW.to_string(),
        native_in_flight: WINDOW,
        native,
        measured,
    }
}

/// Native with `conns` in flight against JSON-RPC on `conns` keep-alive connections, one
/// request in flight on each.
async fn json_rpc_pair(s: Settings, server: &ServerProc, conns: usize) -> Pair {
    let node = native_connect(server.addr).await;
    let mut http = Vec::with_capacity(conns);
    for i in 0..conns as u64 {
        // Disjoint id ranges, so every connection's ids and payloads are its own.
        http.push(HttpConn::connect(server.http, i << 40).await);
    }
    let native = Probe::Native {
        node,
        in_flight: conns,
    };
    let (native, measured) = compare(s, native, Probe::JsonRpc { conns: http }).await;
    let (gateway, in_flight) = if conns == 1 {
        ("gateway JSON-RPC, 1 conn".to_string(), "1".to_string())
    } else {
        (
            format!("gateway JSON-RPC, {conns} conns"),
            format!("{conns}x1"),
        )
    };
    Pair {
        gateway,
        in_flight,
        native_in_flight: conns,
        native,
        measured,
    }
}

fn run_benchmarks() {
    let s = Settings::from_env();
    let server = ServerProc::spawn();
    let rt = runtime();
    eprintln!("running native vs gateway WebSocket, {WINDOW} in flight ...");
    let ws = rt.block_on(websocket_pair(s, &server));
    eprintln!("running native vs gateway JSON-RPC, 1 connection, 1 in flight ...");
    let rpc1 = rt.block_on(json_rpc_pair(s, &server, 1));
    eprintln!("running native vs gateway JSON-RPC, {WINDOW} connections x 1 in flight ...");
    let rpc_many = rt.block_on(json_rpc_pair(s, &server, WINDOW));
    drop(server);
    print_table(s, &[ws, rpc1, rpc_many]);
}

// ---------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------

fn print_table(s: Settings, pairs: &[Pair]) {
    println!();
    println!(
        "mpreg gateway benchmark — echo of a {PAYLOAD} B string, 127.0.0.1, server node in a \
         separate process, {} s per row in {SLICES} slices alternating within each pair",
        s.run.as_secs_f64()
    );
    println!(
        "{:<28}{:>11}{:>12}{:>10}{:>10}   vs native (p50 / calls/s)",
        "scenario", "in flight", "calls/s", "p50 µs", "p99 µs"
    );
    for p in pairs {
        let native_in_flight = p.native_in_flight.to_string();
        print_row("native mpreg client", &native_in_flight, p.native, None);
        print_row(&p.gateway, &p.in_flight, p.measured, Some(p.native));
    }
}

fn print_row(name: &str, in_flight: &str, stats: Stats, native: Option<Stats>) {
    let vs = native.map_or(String::new(), |n| {
        format!(
            "{:.2}x / {:.2}x",
            stats.p50_us / n.p50_us,
            stats.calls_per_sec / n.calls_per_sec
        )
    });
    println!(
        "{name:<28}{in_flight:>11}{:>12}{:>10.1}{:>10.1}   {vs}",
        thousands(stats.calls_per_sec),
        stats.p50_us,
        stats.p99_us
    );
}
