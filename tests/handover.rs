//! A peer that moves its traffic from one connection to another (after both nodes dialed
//! each other at once) keeps its order: frames after its `Handover` wait for the old
//! connection's `Fence`, or for the old connection to close.

mod rawpeer;
mod support;

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::StreamExt;
use mpreg::proto::wire::{Frame, Publish};
use mpreg::Subscription;
use rawpeer::{dial_as, hello, send, FrameReader, RawPeer};

/// How long the node is given to deliver what it must not deliver yet.
const TEMPTATION: Duration = Duration::from_millis(300);

fn publication(i: u64) -> Frame {
    Frame::Publish(Publish {
        topic: "order.seq".into(),
        payload: rmp_serde::to_vec(&i).unwrap().into(),
        groups: vec![],
        ack: 0,
        answer: None,
    })
}

/// Two connections of one raw peer `mover` to the node at `addr`: the first (older) and
/// the second, told apart by their dialer nonces.
fn two_connections(addr: SocketAddr) -> (RawPeer, RawPeer) {
    let mut ours = hello("mover");
    ours.nonce = vec![1; 32];
    let old = dial_as(addr, ours.clone(), &[]);
    ours.nonce = vec![2; 32];
    let new = dial_as(addr, ours, &[]);
    (old, new)
}

/// The token both ends give the connection dialed with nonce `[byte; 32]`.
fn token(byte: u8) -> u64 {
    u64::from_le_bytes([byte; 8])
}

async fn received(sub: &mut Subscription, n: usize) -> Vec<u64> {
    let mut got = Vec::new();
    while got.len() < n {
        let p = tokio::time::timeout(Duration::from_secs(10), sub.next())
            .await
            .unwrap_or_else(|_| panic!("only {got:?} arrived within 10 s"))
            .expect("subscription open");
        got.push(p.payload::<u64>().unwrap());
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_after_a_handover_wait_for_the_old_connections_fence() {
    let node = support::local("subscriber").start().await.unwrap();
    let mut sub = node.subscribe("order.**").await.unwrap();
    let addr = node.addr().unwrap();
    let peer = tokio::task::spawn_blocking(move || {
        let (mut old, mut new) = two_connections(addr);
        // The later half of the stream arrives first, on the new connection...
        send(&mut new.stream, &Frame::Handover(token(1)));
        for i in 10..20 {
            send(&mut new.stream, &publication(i));
        }
        std::thread::sleep(TEMPTATION);
        // ... the earlier half, sent before the move, after it.
        for i in 0..10 {
            send(&mut old.stream, &publication(i));
        }
        send(&mut old.stream, &Frame::Fence);
        (old, new)
    });
    let got = received(&mut sub, 20).await;
    assert_eq!(
        got,
        (0..20).collect::<Vec<_>>(),
        "the peer's order was lost"
    );
    drop(peer.await.unwrap());
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_connection_that_closes_releases_the_new_one() {
    let node = support::local("subscriber").start().await.unwrap();
    let mut sub = node.subscribe("order.**").await.unwrap();
    let addr = node.addr().unwrap();
    let peer = tokio::task::spawn_blocking(move || {
        let (mut old, mut new) = two_connections(addr);
        send(&mut old.stream, &publication(0));
        send(&mut new.stream, &Frame::Handover(token(1)));
        send(&mut new.stream, &publication(1));
        std::thread::sleep(TEMPTATION);
        // No fence: the old connection just goes away.
        drop(old);
        new
    });
    let started = std::time::Instant::now();
    assert_eq!(received(&mut sub, 2).await, vec![0, 1]);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the new connection waited {:?} for an old one that had closed",
        started.elapsed()
    );
    drop(peer.await.unwrap());
    node.shutdown().await;
}

/// Which of `conns` the node fences within a second (a duplicate it retires, or the one it
/// moves away from).
fn fenced(conns: &mut [&mut RawPeer]) -> Vec<bool> {
    let mut readers: Vec<FrameReader> = conns.iter().map(|_| FrameReader::default()).collect();
    let mut seen = vec![false; conns.len()];
    let until = std::time::Instant::now() + Duration::from_secs(1);
    for c in conns.iter_mut() {
        c.stream
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
    }
    while std::time::Instant::now() < until {
        for (i, c) in conns.iter_mut().enumerate() {
            while let Ok(Some(f)) = readers[i].next(&mut c.stream) {
                seen[i] |= matches!(f, Frame::Fence);
            }
        }
    }
    seen
}

/// Both ends must keep the same one of two connections dialed by the same node, whatever
/// order their handshakes finished in: the one with the smaller token (which both know).
/// Were the node to keep "the older", a peer whose handshakes finished in the other order
/// would move its traffic to a connection the node retires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_connections_from_one_dialer_the_smaller_token_stays_in_either_order() {
    let node = support::local("subscriber").start().await.unwrap();
    let addr = node.addr().unwrap();
    for first_byte in [1u8, 2] {
        let second_byte = 3 - first_byte;
        let (first, second) = tokio::task::spawn_blocking(move || {
            let mut ours = hello(&format!("dialer-{first_byte}"));
            ours.nonce = vec![first_byte; 32];
            let mut first = dial_as(addr, ours.clone(), &[]);
            ours.nonce = vec![second_byte; 32];
            let mut second = dial_as(addr, ours, &[]);
            let seen = fenced(&mut [&mut first, &mut second]);
            (seen[0], seen[1])
        })
        .await
        .unwrap();
        // Token(1) < token(2): the connection dialed with nonce 1 stays, the other is fenced.
        let (kept_first, kept_second) = (!first, !second);
        assert_eq!(
            (kept_first, kept_second),
            (first_byte == 1, second_byte == 1),
            "dialed with nonce {first_byte} then {second_byte}: the node fenced first={first}, \
             second={second}; it must keep the one with the smaller token"
        );
    }
    node.shutdown().await;
}
