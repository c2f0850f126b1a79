//! Lossless subscribers end to end on loopback (DESIGN §9, issue #17): a full lossless
//! queue drops nothing and holds its publishers back (a peer's connection stops being
//! read, a local publisher waits), every publication arrives exactly once and in order
//! per publisher, and only the publishers feeding it slow down — a third node's calls and
//! the node's own work go on. Unsubscribing or shutting down releases what was held.

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use mpreg::{Node, PubMeta, Subscription};
use serde::{Deserialize, Serialize};
use support::{cluster, local, wait_until};

const LIMIT: Duration = Duration::from_secs(20);

/// Queue of the lossless subscribers here: small, so that it fills at once.
const QUEUE: usize = 16;

/// One publication: who sent it, its number in that publisher's sequence, and padding
/// that makes the frames large enough for the socket buffers to fill with few of them.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Item {
    publisher: u32,
    seq: u32,
    pad: String,
}

/// A publishing task: how many `publish` calls returned, and a flag that stops it.
struct Feed {
    sent: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

/// Publishes up to `n` items to `topic` from `node` in a task, until stopped.
fn publisher(node: &Node, topic: &'static str, id: u32, n: u32, pad: usize) -> Feed {
    let sent = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (node, s, halt) = (node.clone(), sent.clone(), stop.clone());
    let task = tokio::spawn(async move {
        for seq in 0..n {
            if halt.load(SeqCst) {
                break;
            }
            let item = Item {
                publisher: id,
                seq,
                pad: "x".repeat(pad),
            };
            node.publish(topic, &item).await.expect("publish");
            s.fetch_add(1, SeqCst);
        }
    });
    Feed { sent, stop, task }
}

/// Waits until `counter` has not moved for half a second: the publisher is held back.
async fn settled(counter: &AtomicUsize) -> usize {
    let start = Instant::now();
    loop {
        let before = counter.load(SeqCst);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after = counter.load(SeqCst);
        if after == before {
            return after;
        }
        assert!(start.elapsed() < LIMIT, "the publisher never stopped");
    }
}

/// Takes `n` items from `sub`, counting each in `received`.
async fn take(sub: &mut Subscription, n: usize, received: &AtomicUsize) -> Vec<Item> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let p = tokio::time::timeout(LIMIT, sub.next())
            .await
            .expect("publication in time")
            .expect("stream open");
        out.push(p.payload::<Item>().unwrap());
        received.fetch_add(1, SeqCst);
    }
    out
}

/// Asserts that each publisher's items arrived exactly once, in order: `0..n` each.
fn assert_in_order(items: &[Item], publishers: &[(u32, u32)]) {
    let mut by: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for i in items {
        by.entry(i.publisher).or_default().push(i.seq);
    }
    assert_eq!(by.len(), publishers.len(), "publishers heard from");
    for (id, n) in publishers {
        let seqs = &by[id];
        assert!(
            seqs.iter().copied().eq(0..*n),
            "publisher {id}: {} items, first out of order at {:?}",
            seqs.len(),
            seqs.iter().zip(0..).find(|(s, i)| **s != *i)
        );
    }
}

/// Waits until `p` knows that some node subscribes to `pattern`.
async fn knows(p: &Node, pattern: &str) {
    wait_until(LIMIT, || {
        p.members()
            .iter()
            .any(|m| m.subscriptions.iter().any(|x| x == pattern))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_lossless_subscriber_holds_only_its_publisher() {
    let nodes = cluster(vec![
        local("ll-sub").sub_queue(QUEUE),
        local("ll-pub"),
        local("ll-caller"),
    ])
    .await;
    let (s, p, c) = (&nodes[0], &nodes[1], &nodes[2]);
    s.register("ll_echo", |(x,): (u32,)| x).unwrap();
    let mut sub = s.subscribe("feed").lossless().await.unwrap();
    let mut other = s.subscribe("local.other").await.unwrap();
    knows(p, "feed").await;
    let feed = publisher(p, "feed", 1, u32::MAX, 1024);

    // Nobody reads `sub`: the node stops reading ll-pub and ll-pub's publish() stops.
    wait_until(LIMIT, || s.metrics().pubsub.held > 0).await;
    let stuck = settled(&feed.sent).await;

    // A third node's calls and the node's own work go on meanwhile.
    for i in 0..50u32 {
        let back: u32 = tokio::time::timeout(Duration::from_secs(5), c.call("ll_echo", (i,)))
            .await
            .expect("a third node's call is not held")
            .unwrap();
        assert_eq!(back, i);
    }
    let local: u32 = s.call("ll_echo", (7u32,)).await.unwrap();
    assert_eq!(local, 7);
    s.publish("local.other", &5u32).await.unwrap();
    let got = tokio::time::timeout(LIMIT, other.next()).await.unwrap();
    assert_eq!(got.unwrap().payload::<u32>().unwrap(), 5);
    assert_eq!(
        feed.sent.load(SeqCst),
        stuck,
        "still held while the rest worked"
    );

    // Reading again releases the publisher; nothing was lost or reordered.
    let received = AtomicUsize::new(0);
    let mut items = take(&mut sub, stuck + 1000, &received).await;
    feed.stop.store(true, SeqCst);
    while items.len() < feed.sent.load(SeqCst) || !feed.task.is_finished() {
        items.extend(take(&mut sub, 1, &received).await);
    }
    let n = feed.sent.load(SeqCst) as u32;
    assert_eq!(items.len(), n as usize, "nothing more than was published");
    assert_in_order(&items, &[(1, n)]);
    assert_eq!(sub.dropped(), 0);
    assert_eq!(s.stats().publications_dropped, 0);
    assert_eq!(s.metrics().pubsub.dropped, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_publisher_arrives_exactly_once_in_order_at_the_subscribers_pace() {
    let nodes = cluster(vec![
        local("pace-sub").sub_queue(QUEUE),
        local("pace-pub-a"),
        local("pace-pub-b"),
    ])
    .await;
    let (s, a, b) = (&nodes[0], &nodes[1], &nodes[2]);
    let mut sub = s.subscribe("paced").lossless().await.unwrap();
    knows(a, "paced").await;
    knows(b, "paced").await;
    let (n, pad) = (2000u32, 1024);
    // A publisher on the subscriber's own node waits for room too.
    let feeds = [
        publisher(a, "paced", 1, n, pad),
        publisher(b, "paced", 2, n, pad),
        publisher(s, "paced", 3, n, pad),
    ];
    // A slow consumer: a pause every few publications.
    let received = AtomicUsize::new(0);
    let mut items = Vec::new();
    for _ in 0..(3 * n / 8) {
        items.extend(take(&mut sub, 8, &received).await);
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    for f in feeds {
        tokio::time::timeout(LIMIT, f.task).await.unwrap().unwrap();
    }
    assert_in_order(&items, &[(1, n), (2, n), (3, n)]);
    assert_eq!(sub.dropped(), 0);
    assert_eq!(s.stats().publications_dropped, 0);
    assert!(s.metrics().pubsub.held > 0, "the consumer was the slowest");
}

/// Longer than a publisher's watchdog waits for a peer that stopped reading (10 s).
const PAST_STALL_LIMIT: Duration = Duration::from_secs(12);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_longer_than_the_stall_limit_keeps_the_connection_and_loses_nothing() {
    let nodes = cluster(vec![local("long-sub").sub_queue(QUEUE), local("long-pub")]).await;
    let (s, p) = (&nodes[0], &nodes[1]);
    let mut sub = s.subscribe("long").lossless().await.unwrap();
    knows(p, "long").await;
    let feed = publisher(p, "long", 1, u32::MAX, 1024);
    wait_until(LIMIT, || s.metrics().pubsub.held > 0).await;
    let stuck = settled(&feed.sent).await;
    // The publisher's watchdog sees a peer that reads nothing of its frames for longer
    // than it allows a stalled peer; a lossless subscriber's node is not closed for it.
    tokio::time::sleep(PAST_STALL_LIMIT).await;
    assert_eq!(feed.sent.load(SeqCst), stuck);
    assert_eq!(p.peers().len(), 1, "the connection is kept");
    let received = AtomicUsize::new(0);
    let mut items = take(&mut sub, stuck + 100, &received).await;
    feed.stop.store(true, SeqCst);
    while items.len() < feed.sent.load(SeqCst) || !feed.task.is_finished() {
        items.extend(take(&mut sub, 1, &received).await);
    }
    assert_in_order(&items, &[(1, feed.sent.load(SeqCst) as u32)]);
    assert_eq!(sub.dropped(), 0);
    assert_eq!(
        p.metrics().peers["long-sub"].reconnects,
        0,
        "never reconnected"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsubscribing_or_shutting_down_releases_held_publishers() {
    let nodes = cluster(vec![local("rel-sub").sub_queue(QUEUE), local("rel-pub")]).await;
    let (s, p) = (&nodes[0], &nodes[1]);
    let sub = s.subscribe("held").lossless().await.unwrap();
    knows(p, "held").await;
    let feed = publisher(p, "held", 1, u32::MAX, 1024);
    wait_until(LIMIT, || s.metrics().pubsub.held > 0).await;
    let stuck = settled(&feed.sent).await;
    // Dropping the stream unsubscribes: the held reader goes on, the rest is unmatched.
    drop(sub);
    wait_until(LIMIT, || feed.sent.load(SeqCst) > stuck + 1000).await;
    feed.stop.store(true, SeqCst);
    tokio::time::timeout(LIMIT, feed.task)
        .await
        .expect("the publisher is released")
        .unwrap();
    assert_eq!(s.stats().publications_dropped, 0);

    // Held again by a stream that is never read, the node still shuts down promptly.
    let _never_read = s.subscribe("held.again").lossless().await.unwrap();
    knows(p, "held.again").await;
    let before = s.metrics().pubsub.held;
    let feed = publisher(p, "held.again", 1, u32::MAX, 1024);
    wait_until(LIMIT, || s.metrics().pubsub.held > before).await;
    settled(&feed.sent).await;
    tokio::time::timeout(LIMIT, s.shutdown())
        .await
        .expect("a held reader does not wedge shutdown");
    feed.stop.store(true, SeqCst);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lossless_queue_groups_and_confirmed_publish_work() {
    let nodes = cluster(vec![
        local("grp-1").sub_queue(QUEUE),
        local("grp-2").sub_queue(QUEUE),
        local("grp-pub"),
    ])
    .await;
    let p = &nodes[2];
    let subs = [
        nodes[0]
            .subscribe_group("jobs", "w")
            .lossless()
            .await
            .unwrap(),
        nodes[1]
            .subscribe("jobs")
            .group("w")
            .lossless()
            .await
            .unwrap(),
    ];
    wait_until(LIMIT, || {
        p.members()
            .iter()
            .filter(|m| m.subscriptions.iter().any(|x| x == "jobs (w)"))
            .count()
            == 2
    })
    .await;
    let received = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut readers = Vec::new();
    for mut sub in subs {
        let (r, seen) = (received.clone(), seen.clone());
        readers.push(tokio::spawn(async move {
            while let Some(p) = sub.next().await {
                seen.lock().unwrap().push(p.payload::<u32>().unwrap());
                r.fetch_add(1, SeqCst);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }));
    }
    let n = 2000u32;
    for i in 0..n {
        p.publish("jobs", &i).await.unwrap();
    }
    wait_until(LIMIT, || received.load(SeqCst) == n as usize).await;
    let mut seen = seen.lock().unwrap().clone();
    seen.sort();
    assert_eq!(seen, (0..n).collect::<Vec<_>>(), "each job once");
    for node in &nodes[..2] {
        assert_eq!(node.stats().publications_dropped, 0);
    }
    let c = p.publish_confirmed("jobs", &n).await.unwrap();
    assert_eq!(c.subscribers, 1, "one member of the group acknowledges");
    for r in readers {
        r.abort();
    }
}

// A link-time lossless subscriber: every listening node of this test binary runs it.
static MACRO_SEEN: Mutex<Vec<(String, u32)>> = Mutex::new(Vec::new());

#[mpreg::subscribe("lossless.macro", lossless)]
async fn slow_record(n: u32, meta: PubMeta) {
    tokio::time::sleep(Duration::from_millis(1)).await;
    MACRO_SEEN.lock().unwrap().push((meta.from, n));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lossless_subscribe_function_sees_every_publication_in_order() {
    let s = local("mac-sub").sub_queue(QUEUE).start().await.unwrap();
    // A client does not listen, so only the subscriber's node runs the function.
    let p = support::client("mac-pub", s.addr().unwrap()).await;
    knows(&p, "lossless.macro").await;
    let n = 1000u32;
    for i in 0..n {
        p.publish("lossless.macro", &i).await.unwrap();
    }
    let mine = || -> Vec<u32> {
        let seen = MACRO_SEEN.lock().unwrap();
        seen.iter()
            .filter(|(from, _)| from == "mac-pub")
            .map(|(_, n)| *n)
            .collect()
    };
    wait_until(LIMIT, || mine().len() >= n as usize).await;
    assert_eq!(mine(), (0..n).collect::<Vec<_>>());
    assert_eq!(s.stats().publications_dropped, 0);
    assert!(
        s.metrics().pubsub.held > 0,
        "the function was slower than the client"
    );
}
