//! Failover inside a call on loopback (issue #12, item 2): a call goes on through every
//! candidate it could not reach — one that cannot be dialed, one that answers "busy", one
//! a forwarder could not place — and fails only when no candidate is left, naming every
//! provider tried and why.
//!
//! Dead providers are members at closed ports, listed to a client by a hand-written
//! directory peer (as in tests/burst.rs). No membership protocol runs there, so nothing
//! removes them from the client's view while a call runs, which makes the tests
//! deterministic. The same peer stands in for a forwarder and answers the calls relayed to
//! it as each test says: a forwarder that reaches a provider the caller cannot is an
//! asymmetry that nodes all on one loopback interface cannot produce otherwise.

mod rawpeer;
mod support;

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mpreg::proto::member::Member;
use mpreg::proto::wire::{Call, Failure, FailureKind, Frame, MemberInfo, MembersMsg, Reply};
use mpreg::{Error, Function, Node, Perspective, Policy};
use support::{free_port, local, wait_until};

/// Ids of fake members: far from the random ids of real nodes.
const FAKE_ID: u64 = 0xdead_0000_0000;

/// How the directory peer answers a call relayed to it: given the node the caller wants
/// and how many relayed calls came before this one.
type Forward = Box<dyn Fn(&str, usize) -> Result<String, Failure> + Send>;

/// A forwarder that can place no call.
fn places_nothing() -> Forward {
    Box::new(|node, _| Err(cannot_place(node)))
}

fn cannot_place(node: &str) -> Failure {
    Failure {
        kind: FailureKind::NoProvider,
        message: format!("node `{node}` cannot be reached from the forwarder either"),
        close: Vec::new(),
        expected: String::new(),
    }
}

/// A member list entry for a provider of `job` at `addr`, on this machine's host.
fn entry(name: &str, id: u64, addr: SocketAddr) -> MemberInfo {
    MemberInfo {
        member: Member {
            addr,
            id,
            name: name.into(),
            role: "node".into(),
            host: mpreg::host_id(None),
            started_ms: 1,
            bump: 0,
        },
        state: "alive".into(),
        resources: vec![],
        catalog: Some(rawpeer::catalog(&["job"])),
    }
}

/// A provider of `job` nobody can dial: its port is closed.
fn dead(name: &str, n: u64) -> MemberInfo {
    entry(
        name,
        FAKE_ID + n,
        SocketAddr::from(([127, 0, 0, 1], free_port())),
    )
}

/// A running node as a member list describes it.
fn live(node: &Node) -> MemberInfo {
    entry(node.name(), node.id(), node.addr().unwrap())
}

/// The hand-written member the client attaches to: it answers every member-list request
/// or watch with `members`, answers relayed calls with `forward`, pings when idle, and
/// records which node each relayed call was for.
struct Directory {
    addr: SocketAddr,
    asked: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl Drop for Directory {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

impl Directory {
    fn start(members: Vec<MemberInfo>, forward: Forward) -> Directory {
        // Not on a port just picked for a dead member (`free_port` releases it, and the
        // kernel may hand it out again here): the client would take us for that member.
        let listener = loop {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let port = l.local_addr().unwrap().port();
            if members.iter().all(|m| m.member.addr.port() != port) {
                break l;
            }
        };
        let addr = listener.local_addr().unwrap();
        let asked = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, s) = (asked.clone(), stop.clone());
        let members = MembersMsg { members };
        std::thread::spawn(move || serve(listener, members, forward, a, s));
        Directory { addr, asked, stop }
    }

    fn asked(&self) -> Vec<String> {
        let mut v = self.asked.lock().unwrap().clone();
        v.sort();
        v
    }
}

fn serve(
    listener: TcpListener,
    members: MembersMsg,
    forward: Forward,
    asked: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
) {
    let mut hello = rawpeer::hello("fo-directory");
    hello.listen_port = listener.local_addr().unwrap().port();
    let mut stream = rawpeer::accept_as(&listener, hello, &[]).stream;
    stream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut reader = rawpeer::FrameReader::default();
    let mut last_sent = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        let answer = match reader.next(&mut stream) {
            Ok(Some(Frame::MembersRequest | Frame::Watch)) => Frame::Members(members.clone()),
            Ok(Some(Frame::Call(call))) => relayed(&call, &forward, &asked),
            Ok(_) if last_sent.elapsed() >= Duration::from_millis(500) => Frame::Ping,
            Ok(_) => continue,
            Err(_) => return,
        };
        rawpeer::send(&mut stream, &answer);
        last_sent = Instant::now();
    }
}

/// The answer to a call relayed for the node its route names.
fn relayed(call: &Call, forward: &Forward, asked: &Mutex<Vec<String>>) -> Frame {
    let node = match call.route.as_ref().map(|r| &r.perspective) {
        Some(Perspective::Node(n)) => n.clone(),
        other => panic!("a relayed call names its provider; got {other:?}"),
    };
    let before = {
        let mut a = asked.lock().unwrap();
        a.push(node.clone());
        a.len() - 1
    };
    let result = forward(&node, before)
        .map(|v| Bytes::from(rmp_serde::to_vec(&v).expect("encode the answer")));
    // As a real forwarder does: the node that ran it on success, else the reply is its own.
    let node = result.is_ok().then_some(node);
    Frame::Reply(Reply {
        id: call.id,
        result,
        node,
    })
}

/// A client that knows the cluster only from `dir`.
async fn client(name: &str, dir: &Directory, expected_members: usize) -> Node {
    let c = support::client(name, dir.addr).await;
    wait_until(Duration::from_secs(5), || {
        c.members().len() == expected_members
    })
    .await;
    c
}

/// `job()`, answering the name of the node that ran it.
fn job(name: &'static str) -> Function {
    Function::new("job", move |(): ()| name.to_string())
}

/// In name order, round robin tries the six in the order 1, 3, 5, 2, 4, 6 (the turn
/// advances once per choice among several), so the live provider is the sixth attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_goes_past_five_undialable_providers_to_the_live_one() {
    let p6 = local("fo-p6")
        .builtins(false)
        .function(job("fo-p6"))
        .start()
        .await
        .unwrap();
    let mut members: Vec<MemberInfo> = (1..=5).map(|i| dead(&format!("fo-p{i}"), i)).collect();
    members.push(live(&p6));
    let dir = Directory::start(members, places_nothing());
    let c = client("fo-client", &dir, 6).await;
    let r = c
        .request("job")
        .policy(Policy::RoundRobin)
        .send::<String>()
        .await
        .expect("the live provider answers after five misses");
    assert_eq!((r.value.as_str(), r.node.as_str()), ("fo-p6", "fo-p6"));
    // A provider that can be dialed is preferred to asking a forwarder.
    assert!(dir.asked().is_empty(), "relayed: {:?}", dir.asked());
    c.shutdown().await;
    p6.shutdown().await;
}

/// With every provider dead, each is tried directly and then through the forwarder, and
/// the error names all of them with the reason of each attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_no_provider_is_left_the_error_names_each_one_tried_and_why() {
    let members: Vec<MemberInfo> = (1..=6).map(|i| dead(&format!("fo-d{i}"), i)).collect();
    let ports: Vec<u16> = members.iter().map(|m| m.member.addr.port()).collect();
    let dir = Directory::start(members, places_nothing());
    let c = client("fo-client", &dir, 6).await;
    let e = c.call::<String>("job", ()).await.unwrap_err();
    let msg = e.to_string();
    eprintln!("error with no provider left: {msg}");
    assert!(matches!(e, Error::NoProvider { .. }), "{msg}");
    assert!(msg.contains("(providers tried: `fo-d"), "{msg}");
    for (i, port) in (1..=6).zip(ports) {
        let direct = format!("`fo-d{i}`: cannot connect to 127.0.0.1:{port}: Connection refused");
        assert!(msg.contains(&direct), "missing «{direct}» in {msg}");
        let relayed = format!(
            "`fo-d{i}` (not reachable from here): no provider of `job` in \
             the cluster as node `fo-directory` sees it (node `fo-d{i}` cannot be reached"
        );
        assert!(msg.contains(&relayed), "missing «{relayed}» in {msg}");
        // The forwarder is named as such, and the provider as the one gone.
        let forwarded = format!(
            "forwarded through `fo-directory`, which cannot reach `fo-d{i}` either: `fo-d{i}` is gone or cut off"
        );
        assert!(msg.contains(&forwarded), "missing «{forwarded}» in {msg}");
    }
    let all: Vec<String> = (1..=6).map(|i| format!("fo-d{i}")).collect();
    assert_eq!(
        dir.asked(),
        all,
        "each is relayed once, after every direct attempt"
    );
    c.shutdown().await;
}

/// The forwarder cannot place the call on the first provider it is asked for but reaches
/// the other: the caller chooses again after the first answer instead of failing with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarder_that_cannot_place_the_call_makes_the_caller_choose_again() {
    let members = vec![dead("fo-r1", 1), dead("fo-r2", 2)];
    let forward: Forward = Box::new(|node, before| match before {
        0 => Err(cannot_place(node)),
        _ => Ok(format!("ran on {node}")),
    });
    let dir = Directory::start(members, forward);
    let c = client("fo-client", &dir, 2).await;
    let r = c
        .request("job")
        .policy(Policy::RoundRobin)
        .send::<String>()
        .await
        .expect("the second relayed attempt answers");
    let asked = dir.asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 2, "{asked:?}");
    assert_ne!(asked[0], asked[1], "{asked:?}");
    assert_eq!(r.node, asked[1]);
    assert_eq!(r.value, format!("ran on {}", asked[1]));
    c.shutdown().await;
}

/// Six providers that take one call at a time per connection; the client keeps `hold`
/// calls running on some, and a new call goes to one that is free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_providers_pass_the_call_on_and_all_busy_is_busy() {
    let (release, held) = tokio::sync::watch::channel(false);
    let running = Arc::new(AtomicUsize::new(0));
    let builders = (1..=6)
        .map(|i| {
            let name: &'static str = Box::leak(format!("fo-b{i}").into_boxed_str());
            local(name)
                .builtins(false)
                .max_in_flight(1)
                .function(holding_job(name, held.clone(), running.clone()))
        })
        .collect();
    let nodes = support::cluster(builders).await;
    let c = support::client("fo-client", nodes[0].addr().unwrap()).await;
    wait_until(Duration::from_secs(10), || c.members().len() == 6).await;
    let mut holds = Vec::new();
    for i in 1..=5 {
        holds.push(hold(&c, &format!("fo-b{i}")));
    }
    wait_until(Duration::from_secs(10), || {
        running.load(Ordering::SeqCst) == 5
    })
    .await;
    let r = c
        .request("job")
        .args((false,))
        .policy(Policy::RoundRobin)
        .send::<String>()
        .await
        .expect("the one free provider answers after five busy ones");
    assert_eq!(r.node, "fo-b6");

    holds.push(hold(&c, "fo-b6"));
    wait_until(Duration::from_secs(10), || {
        running.load(Ordering::SeqCst) == 6
    })
    .await;
    let e = c.call::<String>("job", (false,)).await.unwrap_err();
    let msg = e.to_string();
    eprintln!("error with every provider busy: {msg}");
    assert!(matches!(e, Error::Busy { .. }), "{msg}");
    assert!(msg.contains("providers tried: `fo-b"), "{msg}");
    for i in 1..=6 {
        let why = format!(
            "`fo-b{i}`: node `fo-b{i}` is busy and refused `job`: 1 calls already in flight \
             on this connection (max_in_flight)"
        );
        assert!(msg.contains(&why), "missing «{why}» in {msg}");
    }

    release.send(true).unwrap();
    for (i, h) in holds.into_iter().enumerate() {
        let r = h.await.unwrap().expect("a held call ends once released");
        assert_eq!(r, format!("fo-b{}", i + 1));
    }
    c.shutdown().await;
    for n in nodes {
        n.shutdown().await;
    }
}

/// `job(hold)`: with `hold`, runs until `held` turns true (counted in `running`).
fn holding_job(
    name: &'static str,
    held: tokio::sync::watch::Receiver<bool>,
    running: Arc<AtomicUsize>,
) -> Function {
    Function::new_async("job", move |(hold,): (bool,)| {
        let (mut held, running) = (held.clone(), running.clone());
        async move {
            if hold {
                running.fetch_add(1, Ordering::SeqCst);
                let _ = held.wait_for(|released| *released).await;
            }
            name.to_string()
        }
    })
}

/// Keeps one call running on `node` until released.
fn hold(c: &Node, node: &str) -> tokio::task::JoinHandle<mpreg::Result<String>> {
    let (c, node) = (c.clone(), node.to_string());
    tokio::spawn(async move {
        let r = c.request("job").args((true,)).on_node(&node);
        Ok(r.send::<String>().await?.value)
    })
}
