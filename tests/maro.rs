//! MARO messaging (DESIGN §10) between separate processes on loopback: a master (this test
//! process) and five worker processes (`examples/maro_round.rs worker`, discovery off,
//! seeded with the master), plus in-process cases for what needs no processes.

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use mpreg::{Error, Message, MessageError, Node};
use support::{cluster, free_port, local, wait_until, Proc};
use tokio::sync::mpsc;

const LIMIT: Duration = Duration::from_secs(15);

/// A master node in this process and `n` worker processes that joined it.
struct Workers {
    master: Node,
    procs: Vec<Proc>,
}

impl Workers {
    async fn start(n: usize) -> Workers {
        let master = local("master").role("master").start().await.unwrap();
        let seed = master.addr().unwrap().to_string();
        let procs = (1..=n)
            .map(|i| {
                let env = [
                    ("MPREG_NAME", format!("worker-{i}")),
                    ("MPREG_ROLE", "worker".to_string()),
                    ("MPREG_SEEDS", seed.clone()),
                ];
                Proc::start("maro_round", &["worker"], &env, free_port())
            })
            .collect();
        master.wait_for_peers([("worker", n)], LIMIT).await.unwrap();
        Workers { master, procs }
    }
}

fn senders(msgs: &[Message]) -> BTreeSet<String> {
    msgs.iter().map(|m| m.source.clone()).collect()
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// A handler that reports each firing's messages on a channel.
fn reporting(node: &Node, condition: &str) -> mpsc::UnboundedReceiver<Vec<Message>> {
    let (tx, rx) = mpsc::unbounded_channel();
    node.on(condition, move |msgs| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(msgs);
        }
    })
    .unwrap();
    rx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_percent_of_five_workers_fires_at_three_distinct_senders_not_two() {
    let w = Workers::start(5).await;
    let mut fired = reporting(&w.master, "worker:update:60%");
    let queued = |m: &Node| m.messaging_stats().handlers[0].queued;
    // `poke` makes a worker send the master an `update`, then reply.
    for name in ["worker-1", "worker-2", "worker-1"] {
        let r = w.master.send(name, "poke", (), LIMIT).await.unwrap();
        assert_eq!(r.payload_as::<String>().unwrap(), "poked");
    }
    wait_until(LIMIT, || queued(&w.master) == 3).await;
    // Three updates, but from two distinct workers: 60% of 5 needs three.
    assert!(fired.try_recv().is_err(), "fired with two distinct senders");
    assert_eq!(w.master.messaging_stats().handlers[0].firings, 0);

    w.master.send("worker-3", "poke", (), LIMIT).await.unwrap();
    let msgs = tokio::time::timeout(LIMIT, fired.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(senders(&msgs), names(&["worker-1", "worker-2", "worker-3"]));
    assert_eq!(msgs.len(), 3, "one message per distinct sender");
    // worker-1's second update is left over for the next firing.
    wait_until(LIMIT, || queued(&w.master) == 1).await;
    assert!(msgs.iter().all(|m| m.tag == "update" && !m.is_reply()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_scatter_and_out_of_order_replies() {
    let w = Workers::start(5).await;
    let m = &w.master;

    // broadcast to role `worker`: one reply from each of the five.
    let replies = m.broadcast("worker", "work", (0, 21), LIMIT).await.unwrap();
    assert_eq!(replies.len(), 5);
    let all: Vec<String> = (1..=5).map(|i| format!("worker-{i}")).collect();
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    assert_eq!(senders(&replies), names(&all));
    for r in &replies {
        assert_eq!(r.payload_as::<i64>().unwrap(), 42);
        assert_eq!(r.destination, "master");
        assert!(r.is_reply());
    }

    // scatter: a payload per destination (a name or a role), replies in that order.
    let items = [
        ("worker-2", (0, 1)),
        ("worker-4", (0, 2)),
        ("worker", (0, 3)),
    ];
    let replies = m.scatter("work", items, LIMIT).await.unwrap();
    let values: Vec<i64> = replies.iter().map(|r| r.payload_as().unwrap()).collect();
    assert_eq!(values, [2, 4, 6]);
    assert_eq!(replies[0].source, "worker-2");
    assert_eq!(replies[1].source, "worker-4");

    // isend + receive_by_id: the slow first reply arrives last; the others are held.
    let slow = m.isend("worker-1", "work", (1500, 1)).await.unwrap();
    let fast = m.isend("worker-2", "work", (0, 2)).await.unwrap();
    let faster = m.isend("worker-3", "work", (0, 3)).await.unwrap();
    wait_until(LIMIT, || m.messaging_stats().replies_held == 2).await;
    assert_eq!(
        m.messaging_stats().sessions_open,
        3,
        "the slow one still waits"
    );
    let replies = m.receive_by_id(&[slow, fast, faster], LIMIT).await.unwrap();
    let values: Vec<i64> = replies.iter().map(|r| r.payload_as().unwrap()).collect();
    assert_eq!(values, [2, 4, 6], "replies come back in the order asked");
    assert_eq!(replies[0].session_id, slow);
    // Taken replies are gone; asking again is a clear error.
    let e = m.receive_by_id(&[fast], LIMIT).await.unwrap_err();
    assert!(
        matches!(e, Error::Message(MessageError::UnknownSession(id)) if id == fast),
        "{e}"
    );
    assert_eq!(m.messaging_stats().sessions_open, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_to_a_dead_worker_fail_at_once() {
    let mut w = Workers::start(5).await;
    // A session in flight with a worker that then dies fails at once, not at its deadline.
    let pending = w
        .master
        .isend("worker-4", "work", (60_000, 1))
        .await
        .unwrap();
    wait_until(LIMIT, || w.master.messaging_stats().sessions_open == 1).await;
    let start = Instant::now();
    kill(&mut w.procs[3]);
    let e = w.master.receive_by_id(&[pending], LIMIT).await.unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(3), "{e}");
    assert!(e.to_string().contains("`worker-4`"), "{e}");

    kill(&mut w.procs[4]);
    let start = Instant::now();
    let e = w
        .master
        .send("worker-5", "work", (0, 1), LIMIT)
        .await
        .unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "took {:?}: {e}",
        start.elapsed()
    );
    assert!(e.to_string().contains("worker-5"), "{e}");
    // The others still answer.
    let r = w
        .master
        .send("worker-1", "work", (0, 5), LIMIT)
        .await
        .unwrap();
    assert_eq!(r.payload_as::<i64>().unwrap(), 10);
}

fn kill(p: &mut Proc) {
    p.child.kill().unwrap();
    p.child.wait().unwrap();
}

// ---- in one process ----

/// Answers every request with its payload, from a task.
fn echo_replies(node: &Node) {
    let mut incoming = node.receive();
    tokio::spawn(async move {
        while let Some(m) = incoming.recv().await {
            let _ = m.reply(m.payload.clone()).await;
        }
    });
}

#[tokio::test]
async fn unknown_destinations_fail_at_once_naming_what_is_live() {
    let nodes = cluster(vec![local("a").role("master"), local("b").role("worker")]).await;
    let start = Instant::now();
    let e = nodes[0]
        .send("wrker", "x", (), LIMIT)
        .await
        .unwrap_err()
        .to_string();
    assert!(start.elapsed() < Duration::from_secs(1));
    assert_eq!(e, "no live node or role `wrker` (live: b, role worker)");
    let e = nodes[0].broadcast("gpu", "x", (), LIMIT).await.unwrap_err();
    assert!(
        e.to_string().starts_with("no live node or role `gpu`"),
        "{e}"
    );
    // A scatter with one unknown destination sends nothing.
    echo_replies(&nodes[1]);
    let e = nodes[0]
        .scatter("x", [("b", 1), ("nobody", 2)], LIMIT)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("`nobody`"), "{e}");
    assert_eq!(nodes[1].messaging_stats().inbox, 0);
}

#[tokio::test]
async fn a_client_that_does_not_listen_gets_its_reply() {
    let server = local("server").role("worker").start().await.unwrap();
    echo_replies(&server);
    let client = local("client")
        .listen(false)
        .seed(server.addr().unwrap())
        .start()
        .await
        .unwrap();
    let r = client
        .send("worker", "echo", "over the same connection", LIMIT)
        .await
        .unwrap();
    assert_eq!(
        r.payload_as::<String>().unwrap(),
        "over the same connection"
    );
    assert_eq!(r.source, "server");
    // And a node can message itself.
    echo_replies(&client);
    let r = client.send("client", "self", 7, LIMIT).await.unwrap();
    assert_eq!(r.payload_as::<i32>().unwrap(), 7);
}

#[tokio::test]
async fn bad_conditions_and_missing_peers_are_clear_errors() {
    let node = local("solo").start().await.unwrap();
    let e = node.on("worker:update:0", |_msgs| async {}).unwrap_err();
    assert_eq!(
        e.to_string(),
        "handler `runtime handler`: bad condition \"worker:update:0\": amount `0` must be at least 1 (column 15)"
    );
    let e = node
        .wait_for_peers([("worker", 2)], Duration::from_millis(50))
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "peers missing after 50ms: worker: 0 of 2 live"
    );
    let e = node
        .receive_by_id(&[mpreg::SessionId(1)], LIMIT)
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "session 0000000000000001 is not open on this node"
    );
}

#[tokio::test]
async fn a_worker_leaving_lowers_the_percent_count() {
    let nodes = cluster(vec![
        local("master").role("master"),
        local("w1").role("worker"),
        local("w2").role("worker"),
        local("w3").role("worker"),
    ])
    .await;
    let master = &nodes[0];
    let mut fired = reporting(master, "worker:update:100%");
    for w in &nodes[1..3] {
        w.notify("master", "update", ()).await.unwrap();
    }
    wait_until(LIMIT, || master.messaging_stats().handlers[0].queued == 2).await;
    assert!(fired.try_recv().is_err(), "100% of three needs three");
    nodes[3].shutdown().await;
    let msgs = tokio::time::timeout(LIMIT, fired.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(senders(&msgs), names(&["w1", "w2"]));
}

#[tokio::test]
async fn full_handler_queues_drop_the_oldest_and_count_it() {
    let (a, b) = support::pair(local("sink"), local("source")).await;
    // Never satisfied: `t` messages pile up in the unit queue of `*:t:1`.
    let _never = reporting(&a, "*:never:1 & *:t:1");
    for i in 0..1030u32 {
        b.notify("sink", "t", i).await.unwrap();
    }
    wait_until(LIMIT, || a.messaging_stats().handlers[0].dropped == 6).await;
    let h = &a.messaging_stats().handlers[0];
    assert_eq!((h.queued, h.firings), (1024, 0));
    assert_eq!(h.condition, "*:never:1 & *:t:1");
    // Messages no handler wants go to the inbox, which is bounded as well.
    b.notify("sink", "other", ()).await.unwrap();
    wait_until(LIMIT, || a.messaging_stats().inbox == 1).await;
}

/// State kept across firings, as MARO's `dist` decorator intended.
struct Tally {
    seen: Vec<String>,
    out: mpsc::UnboundedSender<Vec<String>>,
}

#[mpreg::handlers]
impl Tally {
    #[on("worker:update:2")]
    async fn updates(&mut self, messages: Vec<Message>) {
        self.seen.extend(messages.into_iter().map(|m| m.source));
        let _ = self.out.send(self.seen.clone());
    }

    #[mpreg::on("*:reset:1")]
    fn reset(&mut self, _messages: Vec<Message>) -> Result<(), String> {
        self.seen.clear();
        Err("reset is logged as a failure, and the node carries on".into())
    }

    /// Not a handler: left alone by the macro.
    #[allow(dead_code)]
    fn len(&self) -> usize {
        self.seen.len()
    }
}

#[tokio::test]
async fn an_attached_value_keeps_its_state_across_firings() {
    let (master, w) = support::pair(local("master"), local("w1").role("worker")).await;
    let (out, mut rx) = mpsc::unbounded_channel();
    let ids = master
        .attach(Tally {
            seen: Vec::new(),
            out,
        })
        .unwrap();
    assert_eq!(ids.len(), 2);
    let stats = master.messaging_stats();
    assert_eq!(stats.handlers[0].name, "Tally::updates");
    assert_eq!(stats.handlers[1].condition, "*:reset:1");
    for _ in 0..4 {
        w.notify("master", "update", ()).await.unwrap();
    }
    let first = tokio::time::timeout(LIMIT, rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.len(), 2);
    let second = tokio::time::timeout(LIMIT, rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        second.len(),
        4,
        "the second firing sees the first one's state"
    );
    w.notify("master", "reset", ()).await.unwrap();
    wait_until(LIMIT, || master.messaging_stats().handlers[1].firings == 1).await;
    for _ in 0..2 {
        w.notify("master", "update", ()).await.unwrap();
    }
    let after = tokio::time::timeout(LIMIT, rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.len(), 2, "reset cleared the state");
    assert!(master.off(ids[0]));
    assert!(!master.off(ids[0]));
}

/// `wait_for_peers` counts the *other* members only (issue #14 item 11): a worker waiting
/// for one worker is not satisfied by itself, and is once another worker joins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_peers_never_counts_the_waiting_node() {
    let me = local("w1").role("worker").start().await.unwrap();
    let e = me
        .wait_for_peers([("worker", 1)], Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("worker: 0 of 1 live"), "{e}");
    let seed = me.addr().unwrap();
    let other = local("w2").role("worker").seed(seed).start().await.unwrap();
    me.wait_for_peers([("worker", 1)], LIMIT).await.unwrap();
    let e = me
        .wait_for_peers([("worker", 2)], Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("worker: 1 of 2 live"), "{e}");
    other.shutdown().await;
    me.shutdown().await;
}
