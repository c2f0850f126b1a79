//! Pub/sub end to end on loopback (DESIGN §9): routing only to matching nodes, order,
//! same-process delivery without serialization, subscribe/unsubscribe visibility, queue
//! groups, request-publish, confirmed publish with a killed subscriber, drop-oldest queues,
//! `#[mpreg::subscribe]` functions and the `mpreg pub`/`mpreg sub` CLI.

mod support;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use mpreg::{Error, Node, PubMeta, Scope, Subscription};
use serde::{Deserialize, Serialize};
use support::{cluster, free_port, local, mpreg, wait_until, Proc};

const LIMIT: Duration = Duration::from_secs(10);

/// Takes every publication the subscription has now or gets within `LIMIT`, up to `n`.
async fn take(sub: &mut Subscription, n: usize) -> Vec<(String, u32)> {
    let mut out = Vec::new();
    while out.len() < n {
        let p = tokio::time::timeout(LIMIT, sub.next())
            .await
            .expect("publication in time")
            .expect("stream open");
        out.push((p.topic().to_string(), p.payload::<u32>().unwrap()));
    }
    out
}

/// Waits until `publisher` knows whether the member `name` subscribes to `pattern`.
async fn knows_sub(publisher: &Node, name: &str, pattern: &str, present: bool) {
    wait_until(LIMIT, || {
        publisher
            .members()
            .iter()
            .any(|m| m.name == name && m.subscriptions.iter().any(|s| s == pattern) == present)
    })
    .await;
}

/// Consumes `sub` in the background (consuming is a stream's acknowledgement); the
/// returned list fills as publications arrive.
fn drain(mut sub: Subscription) -> (Arc<Mutex<Vec<u32>>>, tokio::task::JoinHandle<()>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    let task = tokio::spawn(async move {
        while let Some(p) = sub.next().await {
            g.lock().unwrap().push(p.payload::<u32>().unwrap());
        }
    });
    (got, task)
}

#[tokio::test]
async fn publications_reach_exactly_the_matching_subscribers_in_order() {
    let nodes = cluster(vec![
        local("ps-a"),
        local("ps-b"),
        local("ps-c"),
        local("ps-pub"),
    ])
    .await;
    let (a, b, c, publisher) = (&nodes[0], &nodes[1], &nodes[2], &nodes[3]);
    let mut temps = a.subscribe("sensors.*.temp").await.unwrap();
    let mut all = b.subscribe("sensors.**").await.unwrap();
    let _other = c.subscribe("other.x").await.unwrap();
    let topics = [
        "sensors.kitchen.temp",
        "sensors.kitchen.hum",
        "other.y",
        "sensors",
        "sensors.a.b.temp",
    ];
    let mut expected_a = Vec::new();
    let mut expected_b = Vec::new();
    for i in 0..500u32 {
        let t = topics[i as usize % topics.len()];
        publisher.publish(t, &i).await.unwrap();
        if t == "sensors.kitchen.temp" {
            expected_a.push((t.to_string(), i));
        }
        if t.starts_with("sensors") {
            expected_b.push((t.to_string(), i));
        }
    }
    assert_eq!(take(&mut temps, expected_a.len()).await, expected_a);
    assert_eq!(take(&mut all, expected_b.len()).await, expected_b);
    // Nothing more arrived, and nothing at all reached the node whose pattern never matched.
    publisher.publish("sensors.end.temp", &0u32).await.unwrap();
    assert_eq!(
        take(&mut temps, 1).await,
        vec![("sensors.end.temp".into(), 0)]
    );
    assert_eq!(
        c.stats().publications_received,
        0,
        "c subscribes only to other.x"
    );
    assert_eq!(a.stats().publications_received, expected_a.len() as u64 + 1);
    assert_eq!(a.stats().publications_unmatched, 0);
    assert_eq!(publisher.stats().published, 501);
}

/// A payload that counts how often it is serialized.
#[derive(Debug, Clone, PartialEq, Deserialize)]
struct Reading(f64);

static SERIALIZED: AtomicUsize = AtomicUsize::new(0);

impl Serialize for Reading {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        SERIALIZED.fetch_add(1, SeqCst);
        s.serialize_f64(self.0)
    }
}

#[tokio::test]
async fn same_process_subscribers_get_the_value_without_serialization() {
    let (node, peer) = support::pair(local("local-a"), local("local-b")).await;
    let mut here = node.subscribe("lab.reading").await.unwrap();
    node.publish("lab.reading", &Reading(21.5)).await.unwrap();
    let p = here.next().await.unwrap();
    assert_eq!(p.payload::<Reading>().unwrap(), Reading(21.5));
    assert_eq!(p.from(), "local-a");
    assert_eq!(
        SERIALIZED.load(SeqCst),
        0,
        "no remote subscriber: never serialized"
    );
    // A remote subscriber needs bytes: encoded once, whatever the number of peers.
    let mut there = peer.subscribe("lab.reading").await.unwrap();
    node.publish("lab.reading", &Reading(7.0)).await.unwrap();
    assert_eq!(there.next().await.unwrap().payload::<f64>().unwrap(), 7.0);
    assert_eq!(
        here.next().await.unwrap().payload::<Reading>().unwrap(),
        Reading(7.0)
    );
    assert_eq!(SERIALIZED.load(SeqCst), 1);
}

#[tokio::test]
async fn subscribe_returns_once_peers_know_and_drop_unsubscribes() {
    let (publisher, subscriber) = support::pair(local("sync-pub"), local("sync-sub")).await;
    for i in 0..20u32 {
        // Published right after `subscribe` returns: never lost to a discovery race.
        let mut s = subscriber.subscribe(&format!("race.{i}")).await.unwrap();
        publisher.publish(&format!("race.{i}"), &i).await.unwrap();
        assert_eq!(take(&mut s, 1).await, vec![(format!("race.{i}"), i)]);
    }
    knows_sub(&publisher, "sync-sub", "race.19", false).await;
    let before = subscriber.stats().publications_received;
    publisher.publish("race.3", &3u32).await.unwrap();
    let c = publisher.publish_confirmed("race.3", &3u32).await.unwrap();
    assert_eq!(c.subscribers, 0);
    assert_eq!(
        subscriber.stats().publications_received,
        before,
        "dropped subscriptions get nothing"
    );
    // Only the link-time `#[mpreg::subscribe]` functions of this test binary are left.
    assert_eq!(subscriber.stats().subscriptions, 3);
}

#[tokio::test]
async fn queue_group_delivers_each_message_to_exactly_one_member() {
    let nodes = cluster(vec![
        local("qg-1"),
        local("qg-2"),
        local("qg-3"),
        local("qg-all"),
        local("qg-pub"),
    ])
    .await;
    let mut members = Vec::new();
    for n in &nodes[..3] {
        members.push(n.subscribe_group("jobs.*", "workers").await.unwrap());
    }
    let mut everything = nodes[3].subscribe("jobs.*").await.unwrap();
    let publisher = &nodes[4];
    for i in 0..1000u32 {
        publisher.publish("jobs.render", &i).await.unwrap();
    }
    assert_eq!(
        take(&mut everything, 1000).await.len(),
        1000,
        "ungrouped subscribers get every message"
    );
    let mut seen = HashSet::new();
    let mut counts = Vec::new();
    wait_until(LIMIT, || {
        nodes[..3]
            .iter()
            .map(|n| n.stats().publications_received)
            .sum::<u64>()
            == 1000
    })
    .await;
    for m in &mut members {
        let mut got = 0;
        while let Ok(Some(p)) = tokio::time::timeout(Duration::from_millis(200), m.next()).await {
            assert!(seen.insert(p.payload::<u32>().unwrap()), "delivered twice");
            got += 1;
        }
        counts.push(got);
    }
    assert_eq!(counts.iter().sum::<usize>(), 1000, "{counts:?}");
    assert!(
        counts.iter().all(|&c| c > 0),
        "equal members take turns: {counts:?}"
    );
}

#[tokio::test]
async fn request_publish_is_answered_by_one_group_member() {
    let nodes = cluster(vec![
        local("rq-1"),
        local("rq-2"),
        local("rq-watch"),
        local("rq-pub"),
    ])
    .await;
    let mut answerers = Vec::new();
    for n in &nodes[..2] {
        let mut s = n.subscribe_group("ask.*", "oracles").await.unwrap();
        let name = n.name().to_string();
        answerers.push(tokio::spawn(async move {
            while let Some(p) = s.next().await {
                assert!(p.wants_answer());
                let q: String = p.payload().unwrap();
                p.respond(&format!("{name} says {q}")).unwrap();
            }
        }));
    }
    let mut watcher = nodes[2].subscribe("ask.**").await.unwrap();
    let publisher = &nodes[3];
    let (answer, node): (String, String) = publisher
        .topic("ask.time")
        .request("oracles", &"now?".to_string())
        .await
        .unwrap();
    assert_eq!(answer, format!("{node} says now?"));
    let p = watcher.next().await.unwrap();
    assert!(
        !p.wants_answer(),
        "the other subscribers get a plain publication"
    );
    assert_eq!(p.payload::<String>().unwrap(), "now?");
    let e = publisher
        .request_publish::<_, String>("ask.time", "nobody", &1)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::NoSubscriber { .. }), "{e}");
    assert!(e.to_string().contains("queue group `nobody`"), "{e}");
    for a in answerers {
        a.abort();
    }
}

#[tokio::test]
async fn bad_topics_and_patterns_name_the_bad_segment() {
    let node = local("bad-topics").start().await.unwrap();
    let e = node.subscribe("a..b").await.unwrap_err();
    assert!(e.to_string().contains("segment 2"), "{e}");
    let e = node.publish("a.*.b", &1).await.unwrap_err();
    assert!(e.to_string().contains('*'), "{e}");
    let e = node.subscribe_group("a", "").await.unwrap_err();
    assert!(e.to_string().contains("queue group"), "{e}");
    let client = local("bad-client").listen(false).start().await.unwrap();
    let e = client.subscribe("a").await.unwrap_err();
    assert!(e.to_string().contains("does not listen"), "{e}");
}

#[tokio::test]
async fn a_slow_subscriber_loses_its_oldest_while_a_fast_one_gets_everything() {
    let b = local("slow-node").sub_queue(16);
    let (publisher, node) = support::pair(local("slow-pub"), b).await;
    let (got, reader) = drain(node.subscribe("feed").await.unwrap());
    let slow = node.subscribe("feed").await.unwrap();
    for batch in 0..100u32 {
        for i in 0..10 {
            publisher.publish("feed", &(batch * 10 + i)).await.unwrap();
        }
        // The fast reader keeps up with each batch; the slow one reads nothing.
        wait_until(LIMIT, || {
            got.lock().unwrap().len() == (batch as usize + 1) * 10
        })
        .await;
    }
    assert_eq!(*got.lock().unwrap(), (0..1000).collect::<Vec<u32>>());
    assert_eq!(slow.dropped(), 1000 - 16);
    assert_eq!(node.stats().publications_dropped, 1000 - 16);
    let mut slow = slow;
    let kept = take(&mut slow, 16).await;
    assert_eq!(
        kept.iter().map(|k| k.1).collect::<Vec<_>>(),
        (984..1000).collect::<Vec<u32>>(),
        "the newest survive"
    );
    reader.abort();
}

#[tokio::test]
async fn publish_confirmed_names_the_subscriber_that_did_not_acknowledge() {
    let publisher = local("conf-pub").start().await.unwrap();
    let helper = local("conf-helper")
        .seed(publisher.addr().unwrap())
        .start()
        .await
        .unwrap();
    let (got, _task) = drain(helper.subscribe("orders.*").await.unwrap());
    let port = free_port();
    let seed = publisher.addr().unwrap().to_string();
    let mut child = Proc::start(
        "mpreg",
        &["sub", "orders.**", "--count", "1000"],
        &[("MPREG_SEEDS", seed), ("MPREG_NAME", "conf-victim".into())],
        port,
    );
    knows_sub(&publisher, "conf-victim", "orders.**", true).await;
    knows_sub(&publisher, "conf-helper", "orders.*", true).await;
    let c = publisher
        .publish_confirmed("orders.new", &1u32)
        .await
        .unwrap();
    assert_eq!(c.subscribers, 2);
    assert_eq!(
        c.nodes,
        vec!["conf-helper".to_string(), "conf-victim".into()]
    );
    assert_eq!(*got.lock().unwrap(), vec![1]);
    child.child.kill().unwrap();
    child.child.wait().unwrap();
    let e = publisher
        .topic("orders.new")
        .timeout(Duration::from_secs(3))
        .confirmed(&2u32)
        .await
        .unwrap_err();
    let Error::Unconfirmed { acked, missing, .. } = &e else {
        panic!("{e}")
    };
    assert_eq!(*acked, 1, "{e}");
    assert_eq!(missing.len(), 1, "{e}");
    assert!(missing[0].contains("conf-victim"), "{e}");
}

#[tokio::test]
async fn scope_host_keeps_publications_on_this_host() {
    let nodes = cluster(vec![
        local("sc-pub").host("h1"),
        local("sc-same").host("h1"),
        local("sc-other").host("h2"),
    ])
    .await;
    let (same, _task) = drain(nodes[1].subscribe("s.x").await.unwrap());
    let _other = nodes[2].subscribe("s.x").await.unwrap();
    nodes[0]
        .topic("s.x")
        .scope(Scope::Host)
        .publish(&5u32)
        .await
        .unwrap();
    let c = nodes[0]
        .topic("s.x")
        .scope(Scope::Host)
        .confirmed(&6u32)
        .await
        .unwrap();
    assert_eq!(c.nodes, vec!["sc-same".to_string()]);
    assert_eq!(*same.lock().unwrap(), vec![5, 6]);
    assert_eq!(nodes[2].stats().publications_received, 0);
}

// Link-time subscribers: every listening node of this test binary runs them.
static MACRO_SEEN: Mutex<Vec<(String, u32, String)>> = Mutex::new(Vec::new());

#[mpreg::subscribe("macro.*.count")]
#[mpreg::subscribe("macro.twice.*")]
fn on_count(n: u32, meta: PubMeta) {
    MACRO_SEEN.lock().unwrap().push((meta.topic, n, meta.from));
}

#[mpreg::subscribe("macro.answer", group = "macro-answerers")]
async fn double(n: u32) -> Result<u32, String> {
    n.checked_mul(2).ok_or_else(|| "too big".to_string())
}

#[tokio::test]
async fn subscribe_macro_functions_run_and_answer() {
    let node = local("macro-node").start().await.unwrap();
    node.publish("macro.one.count", &1u32).await.unwrap();
    node.publish("macro.twice.count", &2u32).await.unwrap();
    let mine = || -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for (t, _, from) in MACRO_SEEN.lock().unwrap().iter() {
            if from == "macro-node" {
                *m.entry(t.clone()).or_default() += 1;
            }
        }
        m
    };
    wait_until(LIMIT, || mine().values().sum::<usize>() == 3).await;
    // Subscribed twice, both patterns matching: called twice.
    assert_eq!(mine().get("macro.twice.count"), Some(&2));
    let doubled: u32 = node
        .request_publish("macro.answer", "macro-answerers", &21u32)
        .await
        .unwrap();
    assert_eq!(doubled, 42);
    let e = node
        .request_publish::<_, u32>("macro.answer", "macro-answerers", &u32::MAX)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("too big"), "{e}");
}

#[test]
fn cli_pub_and_sub_print_json_lines() {
    let port = free_port();
    let _server = Proc::start(
        "mpreg",
        &["serve"],
        &[("MPREG_NAME", "cli-hub".into())],
        port,
    );
    let seed = format!("127.0.0.1:{port}");
    let sub_port = free_port();
    let mut sub = std::process::Command::new(support::built("mpreg"));
    sub.args([
        "sub",
        "cli.*",
        "--count",
        "2",
        "--timeout",
        "20",
        "--seed",
        &seed,
        "--no-mdns",
        "--no-beacon",
        "--interface",
        "lo",
    ])
    .env("MPREG_PORT", sub_port.to_string())
    .env("MPREG_BIND", "127.0.0.1")
    .env("MPREG_NAME", "cli-sub")
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped());
    let child = sub.spawn().unwrap();
    // Published once the hub lists the subscription (the CLI prints nothing before).
    let start = std::time::Instant::now();
    loop {
        let (ok, out, _) = mpreg(&["nodes", "--json", "--seed", &seed]);
        if ok && out.contains("cli.*") {
            break;
        }
        assert!(start.elapsed() < LIMIT, "subscription never listed: {out}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (ok, _, err) = mpreg(&["pub", "cli.a", r#"{"x": 1}"#, "--seed", &seed]);
    assert!(ok, "{err}");
    let (ok, out, err) = mpreg(&["pub", "cli.b", "plain text", "--confirm", "--seed", &seed]);
    assert!(ok, "{err}");
    assert_eq!(out, r#"{"nodes":["cli-sub"],"subscribers":1}"#);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["topic"], "cli.a");
    assert_eq!(lines[0]["payload"], serde_json::json!({"x": 1}));
    assert_eq!(lines[1]["payload"], "plain text");
    assert!(
        lines[0]["from"].as_str().unwrap().starts_with("node-"),
        "{}",
        lines[0]
    );
    let (ok, _, err) = mpreg(&["sub", "a..b", "--timeout", "1"]);
    assert!(!ok && err.contains("segment 2"), "{err}");
}

/// A loop publishing to a subscriber with room in its queue yields to the runtime now and
/// then: on a single-threaded runtime, a task spawned before the loop runs while it goes on.
#[tokio::test(flavor = "current_thread")]
async fn a_publishing_loop_does_not_starve_other_tasks() {
    let node = local("talker").start().await.unwrap();
    let _sub = node.subscribe("loop.**").await.unwrap();
    let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = ran.clone();
    tokio::spawn(async move { flag.store(true, SeqCst) });
    let mut sent = 0u64;
    while !ran.load(SeqCst) {
        node.publish("loop.tick", &sent).await.unwrap();
        sent += 1;
        assert!(
            sent < 100_000,
            "the spawned task never ran during {sent} publications"
        );
    }
    node.shutdown().await;
}

/// A run of publications on one topic is matched once on the subscriber's node (issue #17);
/// a subscriber added or dropped mid-run must still count at once, even one whose pattern
/// another subscriber already has (the catalog does not change then).
#[tokio::test]
async fn a_subscriber_added_or_dropped_mid_stream_counts_from_the_next_publication() {
    let (publisher, node) = support::pair(local("run-pub"), local("run-node")).await;
    let mut first = node.subscribe("run.topic").await.unwrap();
    for i in 0..50u32 {
        publisher.publish("run.topic", &i).await.unwrap();
    }
    assert_eq!(take(&mut first, 50).await.len(), 50);
    // Same pattern: nothing changes in what the publisher knows of this node.
    let mut second = node.subscribe("run.topic").await.unwrap();
    for i in 50..60u32 {
        publisher.publish("run.topic", &i).await.unwrap();
    }
    let expect: Vec<(String, u32)> = (50..60).map(|i| ("run.topic".to_string(), i)).collect();
    assert_eq!(take(&mut first, 10).await, expect);
    assert_eq!(
        take(&mut second, 10).await,
        expect,
        "the newcomer gets the run"
    );
    drop(first);
    let before = node.stats().publications_dropped;
    for i in 60..70u32 {
        publisher.publish("run.topic", &i).await.unwrap();
    }
    let expect: Vec<(String, u32)> = (60..70).map(|i| ("run.topic".to_string(), i)).collect();
    assert_eq!(take(&mut second, 10).await, expect);
    assert_eq!(
        node.stats().publications_dropped,
        before,
        "nothing queued for the dropped subscriber"
    );
}

/// The publisher keeps its last topic's route (issue #17); a peer that subscribes or
/// unsubscribes mid-run, and a subscriber of its own, change the route from the next
/// publication.
#[tokio::test]
async fn a_publishers_route_follows_subscribers_coming_and_going_mid_run() {
    let nodes = cluster(vec![local("route-a"), local("route-b"), local("route-pub")]).await;
    let (a, b, publisher) = (&nodes[0], &nodes[1], &nodes[2]);
    let mut on_a = a.subscribe("route.feed").await.unwrap();
    for i in 0..20u32 {
        publisher.publish("route.feed", &i).await.unwrap();
    }
    assert_eq!(take(&mut on_a, 20).await.len(), 20);
    // Another pattern matching the same topic, on another node.
    let mut on_b = b.subscribe("route.*").await.unwrap();
    let mut own = publisher.subscribe("route.feed").await.unwrap();
    for i in 20..30u32 {
        publisher.publish("route.feed", &i).await.unwrap();
    }
    let expect: Vec<(String, u32)> = (20..30).map(|i| ("route.feed".to_string(), i)).collect();
    assert_eq!(take(&mut on_a, 10).await, expect);
    assert_eq!(
        take(&mut on_b, 10).await,
        expect,
        "a new peer joins the run"
    );
    assert_eq!(take(&mut own, 10).await, expect, "a new local one too");
    drop(on_a);
    knows_sub(publisher, "route-a", "route.feed", false).await;
    let before = a.stats().publications_received;
    for i in 30..40u32 {
        publisher.publish("route.feed", &i).await.unwrap();
    }
    let expect: Vec<(String, u32)> = (30..40).map(|i| ("route.feed".to_string(), i)).collect();
    assert_eq!(take(&mut on_b, 10).await, expect);
    assert_eq!(
        a.stats().publications_received,
        before,
        "a node that unsubscribed is sent nothing"
    );
}

/// Takes `n` payloads from `sub` (within `LIMIT` each), owning it (for a task).
async fn take_values(mut sub: Subscription, n: usize) -> Vec<u32> {
    take(&mut sub, n)
        .await
        .into_iter()
        .map(|(_, v)| v)
        .collect()
}

#[tokio::test]
async fn a_flood_of_small_publications_keeps_its_order_across_batches_topics_and_confirmed_ones() {
    // Small plain publications on one topic share frames (`Publications`); a change of
    // topic or a confirmed publication ends a frame. Whatever the cut, each subscriber gets
    // every publication of its topic once, in order.
    let (publisher, node) = support::pair(local("batch-pub"), local("batch-sub")).await;
    let a = node.subscribe("batch.a").lossless().await.unwrap();
    let b = node.subscribe("batch.b").lossless().await.unwrap();
    let topic = |i: u32| {
        if (i / 7) % 3 == 2 {
            "batch.b"
        } else {
            "batch.a"
        }
    };
    let n = 5_000u32;
    let on_a = (0..n).filter(|i| topic(*i) == "batch.a").count();
    let (a, b) = (
        tokio::spawn(take_values(a, on_a)),
        tokio::spawn(take_values(b, n as usize - on_a)),
    );
    for i in 0..n {
        if i % 250 == 249 {
            let c = publisher.publish_confirmed(topic(i), &i).await.unwrap();
            assert_eq!(c.subscribers, 1, "publication {i}");
        } else {
            publisher.publish(topic(i), &i).await.unwrap();
        }
    }
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    let want = |t: &str| (0..n).filter(|i| topic(*i) == t).collect::<Vec<u32>>();
    assert_eq!(a, want("batch.a"));
    assert_eq!(b, want("batch.b"));
    assert_eq!(node.stats().publications_dropped, 0);
}

#[tokio::test]
async fn a_subscriber_that_never_reads_under_a_flood_stops_neither_its_reader_nor_calls() {
    // A full drop-oldest queue makes the reader let its consumer run before it reads on
    // (one trip through the scheduler): that must never become a wait. The node keeps
    // reading and dropping the oldest, and a call on the same connection is answered.
    let (publisher, node) =
        support::pair(local("stuck-pub"), local("stuck-node").sub_queue(64)).await;
    let stuck = node.subscribe("flood").await.unwrap();
    let n = 40_000u32;
    let p = publisher.clone();
    let flood = tokio::spawn(async move {
        for i in 0..n {
            p.publish("flood", &i).await.unwrap();
        }
    });
    let there = publisher.node("stuck-node");
    for i in 0..20u32 {
        let call = there.call::<u32>("echo", (i,));
        let back = tokio::time::timeout(LIMIT, call)
            .await
            .expect("answered during the flood");
        assert_eq!(back.unwrap(), i);
    }
    tokio::time::timeout(LIMIT, flood)
        .await
        .expect("the flood is read")
        .unwrap();
    wait_until(LIMIT, || node.stats().publications_received == u64::from(n)).await;
    assert_eq!(stuck.dropped(), u64::from(n) - 64);
    let mut stuck = stuck;
    let kept = take(&mut stuck, 64).await;
    let newest: Vec<u32> = (n - 64..n).collect();
    assert_eq!(
        kept.iter().map(|k| k.1).collect::<Vec<_>>(),
        newest,
        "the newest survive"
    );
}
