//! A peer that completes the handshake offering `f`, then never answers (issue #12, "dead
//! links are noticed by the calls on them"): a call to `f` with a 30 s timeout must fail
//! with `Error::NodeLost` within ~2.5 s, because the peer sends nothing, not even pings,
//! whether it reads what the node sends or not, and whether the caller is a member or a
//! client. And a peer that never finishes the handshake holds a call no longer than the
//! call's own deadline.

mod rawpeer;
mod support;

use std::io::Read;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mpreg::{Error, Node};
use support::local;

/// The call's own timeout: far beyond the detection budget.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The assertion's bound on the time to `NodeLost` (the budget is ~2-2.5 s).
const LOST_WITHIN: Duration = Duration::from_secs(4);

/// How long we let the call run before calling it hung (it would otherwise wait for its
/// 30 s deadline).
const GIVE_UP: Duration = Duration::from_secs(8);

/// What the silent peer does with the bytes the node sends it.
#[derive(Debug, Clone, Copy)]
enum Silence {
    /// Never reads: the node's frames pile up in the socket buffers.
    ReadsNothing,
    /// Reads and discards everything (so the node's writes always progress).
    Discards,
}

/// The silent peer's side: the socket it holds open, and how many bytes it discarded.
struct Silent {
    discarded: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

/// Listens on loopback, completes the handshake with whoever dials offering `f`, then
/// keeps the socket open sending nothing, until `stop`.
fn silent_peer(how: Silence) -> (std::net::SocketAddr, Silent) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let discarded = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (d, s) = (discarded.clone(), stop.clone());
    let thread = std::thread::spawn(move || {
        let peer = rawpeer::accept(&listener, "mute", &["f"]);
        let mut stream = peer.stream;
        stream
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        while !s.load(Ordering::SeqCst) {
            match how {
                Silence::ReadsNothing => std::thread::park_timeout(Duration::from_millis(50)),
                Silence::Discards => match stream.read(&mut buf) {
                    Ok(0) => break, // the node closed the connection
                    Ok(n) => {
                        d.fetch_add(n as u64, Ordering::SeqCst);
                    }
                    Err(_) => {} // read timeout: look at `stop` again
                },
            }
        }
        drop(stream);
    });
    (
        addr,
        Silent {
            discarded,
            stop,
            thread,
        },
    )
}

/// Connects `caller` to a silent peer, calls `f`, and checks the call fails as lost in time.
async fn lost_in_time(caller: Node, how: Silence, label: &str) {
    let (addr, silent) = silent_peer(how);
    let name = caller.connect(&addr.to_string()).await.expect("handshake");
    assert_eq!(name, "mute");
    let start = Instant::now();
    let call = caller
        .request("f")
        .args(("hello?",))
        .timeout(CALL_TIMEOUT)
        .send::<String>();
    let result = tokio::time::timeout(GIVE_UP, call).await;
    let took = start.elapsed();
    println!(
        "figure: {label}_lost_after_ms={} discarded_bytes={}",
        took.as_millis(),
        silent.discarded.load(Ordering::SeqCst)
    );
    silent.stop.store(true, Ordering::SeqCst);
    silent.thread.thread().unpark();
    silent.thread.join().unwrap();
    caller.shutdown().await;
    match result {
        Err(_) => panic!(
            "{label}: the call to a peer that went silent was still pending after {GIVE_UP:?} \
             (it would wait for its {CALL_TIMEOUT:?} deadline): the dead link was not noticed"
        ),
        Ok(Ok(r)) => panic!("{label}: the silent peer cannot answer, yet got {r:?}"),
        Ok(Err(e)) => {
            assert!(
                matches!(&e, Error::NodeLost { node, .. } if node == "mute"),
                "{label}: expected NodeLost for `mute`, got: {e}"
            );
            assert!(
                e.to_string().contains("node `mute` was lost"),
                "{label}: {e}"
            );
            assert!(
                took < LOST_WITHIN,
                "{label}: NodeLost came after {took:?}, not within {LOST_WITHIN:?}"
            );
        }
    }
}

fn member() -> mpreg::NodeBuilder {
    local("caller").builtins(false)
}

fn client() -> mpreg::NodeBuilder {
    local("caller").builtins(false).listen(false)
}

#[tokio::test]
async fn member_loses_a_peer_that_reads_nothing() {
    let caller = member().start().await.unwrap();
    lost_in_time(caller, Silence::ReadsNothing, "member_reads_nothing").await;
}

#[tokio::test]
async fn member_loses_a_peer_that_reads_and_discards() {
    let caller = member().start().await.unwrap();
    lost_in_time(caller, Silence::Discards, "member_discards").await;
}

#[tokio::test]
async fn client_loses_a_peer_that_reads_nothing() {
    let caller = client().start().await.unwrap();
    lost_in_time(caller, Silence::ReadsNothing, "client_reads_nothing").await;
}

#[tokio::test]
async fn client_loses_a_peer_that_reads_and_discards() {
    let caller = client().start().await.unwrap();
    lost_in_time(caller, Silence::Discards, "client_discards").await;
}

/// A peer that accepts the TCP connection (the kernel does, from its backlog) and never
/// says hello: a call addressed to it fails at its own deadline, not at the handshake's
/// 5 s limit (the chaos soak saw calls held that long by a dial to a host being cut off).
#[tokio::test]
async fn a_call_to_a_peer_stuck_in_the_handshake_ends_at_its_deadline() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let caller = member().start().await.unwrap();
    let deadline = Duration::from_millis(400);
    let start = Instant::now();
    let call = caller
        .request("f")
        .at(addr)
        .timeout(deadline)
        .send::<String>();
    let result = tokio::time::timeout(GIVE_UP, call).await;
    let took = start.elapsed();
    caller.shutdown().await;
    drop(listener);
    println!(
        "figure: stuck_handshake_call_ended_after_ms={}",
        took.as_millis()
    );
    let result = result.expect("the call outlived its deadline by seconds");
    assert!(
        matches!(&result, Err(Error::Timeout { fun, .. }) if fun == "f"),
        "expected a timeout of `f`, got {result:?}"
    );
    assert!(
        took < deadline + Duration::from_millis(600),
        "the call ended {took:?} after it started, its deadline being {deadline:?}"
    );
}
