//! 10,000 concurrent calls from one client to two providers (issue #12, "one connection per
//! peer, really"): every call completes or is refused as busy, none hangs, each provider
//! sees exactly one connection from the client, and no provider serves more calls at once
//! than its `max_in_flight`.
//!
//! Two starts: a client seeded with both providers (connected before the burst), and a
//! "cold" client that only knows them from a member list, so the burst itself opens the
//! connections (the case the issue measured: 562 connections to one node). The providers
//! are never connected to each other (no seeds, discovery off), so each provider's only
//! connection is the client's. In the cold case the member list comes from a hand-written
//! directory peer, since two real members would connect to each other.

mod rawpeer;
mod support;

use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mpreg::proto::member::Member;
use mpreg::proto::wire::{Frame, MemberInfo, MembersMsg};
use mpreg::{Error, Function, Node};
use support::tcp::established_on;
use support::{local, wait_until};

/// Concurrent calls in the burst.
const CALLS: u64 = 10_000;

/// Each call's own deadline (the node's and an outer one): a call still pending after it
/// hangs.
const CALL_DEADLINE: Duration = Duration::from_secs(30);

/// The whole test.
const TEST_DEADLINE: Duration = Duration::from_secs(120);

/// The providers' limit of calls in flight per connection: low enough for the burst to reach it.
const MAX_IN_FLIGHT: usize = 1000;

/// Calls one provider is running right now, and the most it ever ran at once.
#[derive(Default)]
struct Load {
    now: AtomicUsize,
    peak: AtomicUsize,
}

/// A provider of `slow(i) -> i`, which sleeps 5 ms; providers get no seeds, so they are
/// not connected to each other (discovery is off).
async fn provider(name: &str, load: Arc<Load>) -> Node {
    let slow = Function::new_async("slow", move |(i,): (u64,)| {
        let load = load.clone();
        async move {
            let n = load.now.fetch_add(1, Ordering::SeqCst) + 1;
            load.peak.fetch_max(n, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(5)).await;
            load.now.fetch_sub(1, Ordering::SeqCst);
            i
        }
    })
    .params(["i: u64"]);
    local(name)
        .builtins(false)
        .max_in_flight(MAX_IN_FLIGHT)
        .function(slow)
        .start()
        .await
        .expect("start provider")
}

/// The most connections each provider had during the burst.
struct Peaks {
    socket: [AtomicUsize; 2],
    stats: [AtomicUsize; 2],
}

/// Samples connection counts of both providers until `stop`.
async fn watch(providers: [Node; 2], peaks: Arc<Peaks>, stop: Arc<AtomicBool>) {
    let ports = providers
        .each_ref()
        .map(|p| p.addr().expect("provider listens").port());
    while !stop.load(Ordering::SeqCst) {
        for (i, (p, port)) in providers.iter().zip(ports).enumerate() {
            peaks.socket[i].fetch_max(established_on(port), Ordering::SeqCst);
            let stats = p.stats().connections as usize;
            peaks.stats[i].fetch_max(stats, Ordering::SeqCst);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Failures grouped by their text with numbers blanked, most frequent first.
fn kinds(failures: &[String]) -> Vec<(String, usize)> {
    let mut counts = std::collections::BTreeMap::new();
    for f in failures {
        let kind: String = f
            .chars()
            .map(|c| if c.is_ascii_digit() { '#' } else { c })
            .collect();
        *counts.entry(kind).or_insert(0) += 1;
    }
    let mut v: Vec<(String, usize)> = counts.into_iter().collect();
    v.sort_by_key(|k| std::cmp::Reverse(k.1));
    v
}

/// Runs the burst; returns (busy, other failures as text).
async fn burst(client: &Node) -> (usize, Vec<String>) {
    let mut tasks = Vec::with_capacity(CALLS as usize);
    for i in 0..CALLS {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let call = client
                .request("slow")
                .args((i,))
                .timeout(CALL_DEADLINE)
                .send::<u64>();
            match tokio::time::timeout(CALL_DEADLINE + Duration::from_secs(5), call).await {
                Ok(Ok(r)) if r.value == i => Ok(false),
                Ok(Ok(r)) => Err(format!("call {i} answered {}", r.value)),
                Ok(Err(Error::Busy { .. })) => Ok(true),
                Ok(Err(e)) => Err(format!("call {i} failed: {e}")),
                Err(_) => Err(format!("call {i} hung past its deadline")),
            }
        }));
    }
    let mut busy = 0;
    let mut failures = Vec::new();
    for t in tasks {
        match t.await.expect("call task") {
            Ok(true) => busy += 1,
            Ok(false) => {}
            Err(e) => failures.push(e),
        }
    }
    (busy, failures)
}

/// How the client learns of the providers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    /// Seeded with both: connected before the burst.
    Seeded,
    /// Only from a member list: the burst opens the connections.
    Cold,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_client_ten_thousand_calls_one_connection_per_provider() {
    tokio::time::timeout(TEST_DEADLINE, run(Start::Seeded))
        .await
        .expect("the burst test hung");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_client_ten_thousand_calls_open_one_connection_per_provider() {
    tokio::time::timeout(TEST_DEADLINE, run(Start::Cold))
        .await
        .expect("the burst test hung");
}

/// `node` as a member list describes it, serving `slow`.
fn member_info(node: &Node) -> MemberInfo {
    MemberInfo {
        member: Member {
            addr: node.addr().unwrap(),
            id: node.id(),
            name: node.name().into(),
            role: "node".into(),
            host: node.host_id().into(),
            started_ms: 1,
            bump: 0,
        },
        state: "alive".into(),
        resources: vec![],
        catalog: Some(rawpeer::catalog(&["slow"])),
    }
}

/// A hand-written peer that completes the handshake (serving nothing, claiming to listen so
/// the client attaches to it) and answers every member-list request or watch with
/// `members`; it reads and ignores everything else and pings when idle, until `stop`.
fn directory_peer(members: MembersMsg, stop: Arc<AtomicBool>) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut hello = rawpeer::hello("directory");
        hello.listen_port = addr.port();
        let peer = rawpeer::accept_as(&listener, hello, &[]);
        let mut stream = peer.stream;
        stream
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let mut reader = rawpeer::FrameReader::default();
        let mut last_sent = Instant::now();
        while !stop.load(Ordering::SeqCst) {
            match reader.next(&mut stream) {
                Ok(Some(Frame::MembersRequest | Frame::Watch)) => {
                    rawpeer::send(&mut stream, &Frame::Members(members.clone()));
                    last_sent = Instant::now();
                }
                Ok(_) => {}
                Err(_) => break,
            }
            if last_sent.elapsed() >= Duration::from_millis(500) {
                rawpeer::send(&mut stream, &Frame::Ping);
                last_sent = Instant::now();
            }
        }
    });
    addr
}

/// The client, knowing of `a` and `b` as `start` says.
async fn client(start: Start, a: &Node, b: &Node, stop: &Arc<AtomicBool>) -> Node {
    let builder = local("burst-client").listen(false).builtins(false);
    let builder = match start {
        Start::Seeded => builder.seed(a.addr().unwrap()).seed(b.addr().unwrap()),
        Start::Cold => {
            let members = MembersMsg {
                members: vec![member_info(a), member_info(b)],
            };
            builder.seed(directory_peer(members, stop.clone()))
        }
    };
    let client = builder.start().await.expect("start client");
    match start {
        Start::Seeded => {
            wait_until(Duration::from_secs(10), || client.peers().len() == 2).await;
        }
        Start::Cold => {
            let names: Vec<String> = client.members().into_iter().map(|m| m.name).collect();
            assert!(
                names.contains(&"burst-a".to_string()) && names.contains(&"burst-b".to_string()),
                "the client must know both providers from the member list: {names:?}"
            );
            assert!(
                established_on(a.addr().unwrap().port()) == 0
                    && established_on(b.addr().unwrap().port()) == 0,
                "the cold client must not be connected to the providers before the burst"
            );
        }
    }
    client
}

async fn run(start: Start) {
    let loads = [Arc::new(Load::default()), Arc::new(Load::default())];
    let a = provider("burst-a", loads[0].clone()).await;
    let b = provider("burst-b", loads[1].clone()).await;
    let directory_stop = Arc::new(AtomicBool::new(false));
    let client = client(start, &a, &b, &directory_stop).await;
    assert!(
        a.peers().iter().all(|p| p.name != "burst-b"),
        "providers must not be connected"
    );

    let peaks = Arc::new(Peaks {
        socket: [AtomicUsize::new(0), AtomicUsize::new(0)],
        stats: [AtomicUsize::new(0), AtomicUsize::new(0)],
    });
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = tokio::spawn(watch([a.clone(), b.clone()], peaks.clone(), stop.clone()));
    let began = Instant::now();
    let (busy, failures) = burst(&client).await;
    let took = began.elapsed();
    stop.store(true, Ordering::SeqCst);
    watcher.await.unwrap();

    let ports = [a.addr().unwrap().port(), b.addr().unwrap().port()];
    let peak = |i: usize| {
        (
            peaks.socket[i].load(Ordering::SeqCst),
            peaks.stats[i].load(Ordering::SeqCst),
            loads[i].peak.load(Ordering::SeqCst),
        )
    };
    println!("figure: start={start:?}");
    println!("figure: busy={busy}");
    println!("figure: failures={}", failures.len());
    println!("figure: burst_secs={:.2}", took.as_secs_f64());
    for (i, name) in ["a", "b"].iter().enumerate() {
        let (sockets, stats, load) = peak(i);
        println!("figure: provider_{name}_peak_sockets={sockets}");
        println!("figure: provider_{name}_peak_stats_connections={stats}");
        println!("figure: provider_{name}_peak_concurrent_calls={load}");
    }

    for (kind, n) in kinds(&failures) {
        println!("figure: failure_kind[{kind}]={n}");
    }
    assert!(
        failures.is_empty(),
        "{} calls neither completed nor got busy, e.g. {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    for (i, p) in [&a, &b].into_iter().enumerate() {
        let (sockets, stats, load) = peak(i);
        assert!(
            sockets <= 2 && stats <= 2,
            "provider {} had {sockets} TCP connections ({stats} by its stats) during the burst: \
             the client's dials were not coalesced",
            p.name()
        );
        assert!(
            load <= MAX_IN_FLIGHT,
            "provider {} ran {load} calls at once against max_in_flight {MAX_IN_FLIGHT}",
            p.name()
        );
        // Settled: exactly the client's one connection (a transient second one closes).
        let port = ports[i];
        let settle = Instant::now();
        while established_on(port) != 1 || p.stats().connections != 1 {
            assert!(
                settle.elapsed() < Duration::from_secs(5),
                "provider {} keeps {} TCP connections ({} by its stats) after the burst, not 1",
                p.name(),
                established_on(port),
                p.stats().connections
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    directory_stop.store(true, Ordering::SeqCst);
    client.shutdown().await;
    a.shutdown().await;
    b.shutdown().await;
}
