//! One connection per peer after a simultaneous dial (issue #12, item 4): when two members
//! dial each other at the same moment, each ends up with two connections for a moment;
//! both keep the one dialed by the smaller id and close the other (`connect::retire`), so
//! each settles to exactly one, by its own counters.
//!
//! Whether two dials really cross is up to the scheduler (one handshake on loopback can
//! finish before the other dial starts, and the second dial then finds its connection), so
//! the tests read from each node's counters how many connections were opened, rather than
//! assume it.

mod support;

use std::time::{Duration, Instant};

use mpreg::Node;
use support::{free_port, local, wait_until};

/// Rounds of simultaneous dials tried until one really crosses.
const ROUNDS: usize = 10;

/// What `n` knows of its connections with `peer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Link {
    /// Live TCP connections, by the node's own stats (it has no other peer).
    live: u64,
    /// Connections ever opened with `peer`, dialed or accepted.
    opened: u64,
    /// Whether the connection calls use is the one `n` dialed (it leads to the peer's
    /// listening address; an accepted one comes from an ephemeral port).
    dialed: bool,
}

fn link(n: &Node, peer: &Node) -> Link {
    let reconnects = n.metrics().peers.get(peer.name()).map(|p| p.reconnects);
    Link {
        live: n.stats().connections,
        opened: reconnects.map_or(0, |r| r + 1),
        dialed: n.peers().first().map(|p| p.addr) == peer.addr(),
    }
}

/// One connection each, and the same one: every connection opened is known to both ends
/// (a handshake still finishing on one end shows as a count that differs), and exactly
/// one end dialed the connection both use.
fn settled(a: &Node, b: &Node) -> bool {
    let (la, lb) = (link(a, b), link(b, a));
    la.live == 1 && lb.live == 1 && la.opened == lb.opened && la.dialed != lb.dialed
}

/// Waits until `a` and `b` settle; how long it took and how many connections were opened.
/// Calls then work both ways, and nothing was opened again meanwhile.
async fn settle(a: &Node, b: &Node) -> (Duration, u64) {
    let t0 = Instant::now();
    wait_until(Duration::from_secs(5), || settled(a, b)).await;
    let took = t0.elapsed();
    let opened = link(a, b).opened;
    let from_a = a.request("echo").args(("x",)).on_node(b.name());
    assert_eq!(from_a.send::<String>().await.unwrap().node, b.name());
    let from_b = b.request("echo").args(("x",)).on_node(a.name());
    assert_eq!(from_b.send::<String>().await.unwrap().node, a.name());
    assert!(settled(a, b), "{:?} {:?}", link(a, b), link(b, a));
    assert_eq!(link(a, b).opened, opened, "a connection was opened again");
    (took, opened)
}

/// Both call `connect` at once, on fresh pairs, until the dials cross: each node then
/// opened two connections (its own dial and the other's) and is left with one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_members_dialing_each_other_at_once_keep_one_connection() {
    let mut crossed = None;
    for round in 1..=ROUNDS {
        let a = local(&format!("race-a{round}")).start().await.unwrap();
        let b = local(&format!("race-b{round}")).start().await.unwrap();
        let (to_a, to_b) = (a.addr().unwrap().to_string(), b.addr().unwrap().to_string());
        let (ra, rb) = tokio::join!(a.connect(&to_b), b.connect(&to_a));
        assert_eq!(
            (ra.unwrap(), rb.unwrap()),
            (b.name().into(), a.name().into())
        );
        let (took, opened) = settle(&a, &b).await;
        assert!(opened <= 2, "{opened} connections opened");
        a.shutdown().await;
        b.shutdown().await;
        if opened == 2 {
            crossed = Some((round, took));
            break;
        }
    }
    let (round, took) = crossed.expect("no two dials crossed in any round");
    println!(
        "figure: crossed_dials_round={round} settled_to_one_ms={}",
        took.as_millis()
    );
}

/// The case: two members started at the same moment, each with the other as its
/// seed. Whether the dials cross or not, each ends with one connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_members_seeding_each_other_settle_to_one_connection() {
    let (pa, pb) = (free_port(), free_port());
    let a = local("seeds-a").port(pa).seed(format!("127.0.0.1:{pb}"));
    let b = local("seeds-b").port(pb).seed(format!("127.0.0.1:{pa}"));
    let (a, b) = tokio::join!(a.start(), b.start());
    let (a, b) = (a.unwrap(), b.unwrap());
    let (took, opened) = settle(&a, &b).await;
    println!(
        "figure: mutual_seeds opened={opened} settled_to_one_ms={}",
        took.as_millis()
    );
    a.shutdown().await;
    b.shutdown().await;
}
