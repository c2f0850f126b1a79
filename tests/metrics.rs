//! Metrics (issue #13): `_metrics` and `_info` answer their documented shapes from any
//! node, calls are counted on both sides with latency quantiles, switching metrics off
//! stops the counting, and the Prometheus page passes `promtool check metrics`.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use mpreg::{MetricsSnapshot, Node, NodeInfo};

use serde_json::Value;

async fn member(name: &str, seed: Option<std::net::SocketAddr>, metrics: bool) -> Node {
    let mut b = support::local(name).metrics(metrics);
    if let Some(s) = seed {
        b = b.seed(s);
    }
    b.start().await.expect("node starts")
}

/// Two members, `a` serving `slow_echo`, once `b` sees `a`'s catalog.
async fn pair(metrics: bool) -> (Node, Node) {
    let a = member("a", None, metrics).await;
    a.register("slow_echo", |(x,): (u64,)| {
        std::thread::sleep(Duration::from_micros(200));
        x
    })
    .unwrap();
    let b = member("b", a.addr(), metrics).await;
    support::wait_until(Duration::from_secs(10), || {
        b.members()
            .iter()
            .any(|m| m.name == "a" && m.functions.contains(&"slow_echo".to_string()))
    })
    .await;
    (a, b)
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_are_counted_on_both_sides_and_metrics_answer_their_shape() {
    let (a, b) = pair(true).await;
    for i in 0..200u64 {
        let v: u64 = b.call("slow_echo", (i,)).await.unwrap();
        assert_eq!(v, i);
    }
    // The served side, asked remotely like any function.
    let m: MetricsSnapshot = b
        .request("_metrics")
        .on_node("a")
        .send()
        .await
        .unwrap()
        .value;
    assert_eq!(m.node, "a");
    let f = &m.functions["slow_echo"];
    assert_eq!((f.calls, f.errors, f.busy, f.in_flight), (200, 0, 0, 0));
    assert!(f.p50_us >= 150, "the body sleeps 200 µs: {f:?}");
    assert!(
        f.p50_us <= f.p95_us && f.p95_us <= f.p99_us && f.p99_us <= f.max_us,
        "{f:?}"
    );
    // The caller's side, with who answered.
    let c = &b.metrics().called["slow_echo"];
    assert_eq!((c.calls, c.errors, c.in_flight), (200, 0, 0));
    assert_eq!(c.answered_by.get("a"), Some(&200));
    assert!(
        c.p50_us >= f.p50_us,
        "end to end includes the run: {c:?} vs {f:?}"
    );
    // Peers saw the traffic.
    let peer = &m.peers["b"];
    assert!(
        peer.calls_received >= 200 && peer.bytes_in > 0 && peer.bytes_out > 0,
        "{peer:?}"
    );
    assert_eq!(m.membership.alive, 1);
    // The documented JSON keys, exactly.
    let json = serde_json::to_value(&m).unwrap();
    assert_eq!(
        keys(&json),
        set(&[
            "node",
            "uptime_ms",
            "enabled",
            "functions",
            "called",
            "peers",
            "pubsub",
            "membership",
            "messaging",
            "workflows"
        ])
    );
    assert_eq!(
        keys(&json["functions"]["slow_echo"]),
        set(&[
            "calls",
            "errors",
            "busy",
            "in_flight",
            "p50_us",
            "p95_us",
            "p99_us",
            "max_us"
        ])
    );
    let info: NodeInfo = b.request("_info").on_node("a").send().await.unwrap().value;
    assert_eq!(info.name, "a");
    assert_eq!(info.address, a.addr().unwrap().to_string());
    assert_eq!(info.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(
        keys(&serde_json::to_value(&info).unwrap()),
        set(&[
            "name",
            "role",
            "host",
            "version",
            "uptime_ms",
            "address",
            "resources"
        ])
    );
    // Built-ins are listed apart from the user's functions.
    let seen = b.members().into_iter().find(|m| m.name == "a").unwrap();
    assert_eq!(seen.functions, vec!["slow_echo".to_string()]);
    assert!(seen.builtins.contains(&"_metrics".to_string()), "{seen:?}");
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_counted_and_metrics_can_be_switched_off() {
    let (a, b) = pair(true).await;
    let fails = mpreg::Function::try_new("fails", |(): ()| -> Result<u8, String> {
        Err("refused on purpose".into())
    });
    a.register_function(fails).unwrap();
    support::wait_until(Duration::from_secs(10), || {
        b.members()
            .iter()
            .any(|m| m.functions.contains(&"fails".to_string()))
    })
    .await;
    for _ in 0..3 {
        let e = b.call::<u8>("fails", ()).await.unwrap_err();
        assert!(e.to_string().contains("refused on purpose"), "{e}");
    }
    // Bad arguments are a served error too, answered before the body runs.
    let e = b
        .call::<u64>("slow_echo", ("not a number",))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("slow_echo"), "{e}");
    assert_eq!(a.metrics().functions["fails"].errors, 3);
    assert_eq!(a.metrics().functions["slow_echo"].errors, 1);
    assert_eq!(b.metrics().called["fails"].errors, 3);
    a.shutdown().await;
    b.shutdown().await;

    let (a, b) = pair(false).await;
    for i in 0..10u64 {
        let _: u64 = b.call("slow_echo", (i,)).await.unwrap();
    }
    let m = a.metrics();
    assert!(!m.enabled);
    assert_eq!(m.functions["slow_echo"].calls, 0);
    assert!(b.metrics().called.is_empty());
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_prometheus_page_names_what_the_issue_asks() {
    let (a, b) = pair(true).await;
    for i in 0..50u64 {
        let _: u64 = b.call("slow_echo", (i,)).await.unwrap();
    }
    let page = a.prometheus();
    for needle in [
        "mpreg_calls_served_total{node=\"a\",function=\"slow_echo\"} 50",
        "# TYPE mpreg_call_duration_seconds histogram",
        "mpreg_call_duration_seconds_bucket{node=\"a\",function=\"slow_echo\",side=\"served\",le=\"+Inf\"} 50",
        "mpreg_call_errors_total{",
        "mpreg_calls_in_flight{",
        "mpreg_members{node=\"a\",state=\"alive\"} 1",
        "mpreg_pubsub_published_total{node=\"a\"} 0",
        "mpreg_pubsub_dropped_total{",
    ] {
        assert!(page.contains(needle), "no `{needle}` in\n{page}");
    }
    let caller = b.prometheus();
    assert!(caller.contains(
        "mpreg_calls_answered_total{node=\"b\",function=\"slow_echo\",answered_by=\"a\"} 50"
    ));
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs promtool (package prometheus): cargo test --test metrics -- --ignored"]
async fn the_prometheus_page_passes_promtool() {
    let (a, b) = pair(true).await;
    for i in 0..50u64 {
        let _: u64 = b.call("slow_echo", (i,)).await.unwrap();
    }
    let t = mpreg::Function::try_new("fails", |(): ()| -> Result<u8, String> { Err("x".into()) });
    a.register_function(t).unwrap();
    let _ = b.request("fails").at(a.addr().unwrap()).send::<u8>().await;
    let _sub = a.subscribe("t.*").await.unwrap();
    support::wait_until(Duration::from_secs(10), || {
        b.members().iter().any(|m| !m.subscriptions.is_empty())
    })
    .await;
    b.publish("t.x", &1).await.unwrap();
    support::wait_until(Duration::from_secs(10), || {
        a.metrics().pubsub.delivered == 1
    })
    .await;
    support::promtool_accepts(&a.prometheus());
    support::promtool_accepts(&b.prometheus());
    a.shutdown().await;
    b.shutdown().await;
}

/// The samples of a Prometheus page, by series (`name{labels}`).
fn samples(page: &str) -> BTreeMap<String, f64> {
    page.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// Whether `series` belongs to a counter: a `_total` family or a histogram's parts.
fn is_counter(series: &str) -> bool {
    let name = series.split('{').next().unwrap_or(series);
    ["_total", "_bucket", "_count", "_sum"]
        .iter()
        .any(|s| name.ends_with(s))
}

/// Every counter series of `before` is still on `after`, with a value at least as large.
fn counters_grew(before: &str, after: &str) {
    let after = samples(after);
    for (series, was) in samples(before).into_iter().filter(|(s, _)| is_counter(s)) {
        let now = after.get(&series).copied();
        assert!(
            now.is_some_and(|n| n >= was),
            "counter `{series}` went from {was} to {now:?}"
        );
    }
}

/// A client named `c` attached to `a` that made `n` calls of `slow_echo`.
async fn client_calls(a: &Node, n: u64) -> Node {
    let c = support::local("c")
        .listen(false)
        .seed(a.addr().unwrap())
        .start()
        .await
        .unwrap();
    for i in 0..n {
        let v: u64 = c.call("slow_echo", (i,)).await.unwrap();
        assert_eq!(v, i);
    }
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_never_go_down_when_a_connection_closes_or_a_handler_goes() {
    let (a, b) = pair(true).await;
    // A client connects, calls, and leaves; then comes back under the same name.
    for round in 1..=2u64 {
        let c = client_calls(&a, 20).await;
        let sent = &c.metrics().peers["a"];
        assert!(sent.calls_sent >= 20 && sent.connections == 1, "{sent:?}");
        let live = a.metrics().peers["c"].clone();
        assert!(live.calls_received >= 20 * round, "{live:?}");
        // At least: a stopping client may reconnect once more before it is gone.
        assert!(
            live.connections == 1 && live.reconnects >= round - 1,
            "{live:?}"
        );
        let before = a.prometheus();
        c.shutdown().await;
        support::wait_until(Duration::from_secs(10), || {
            a.metrics().peers["c"].connections == 0
        })
        .await;
        counters_grew(&before, &a.prometheus());
        let gone = &a.metrics().peers["c"];
        assert!(
            gone.calls_received >= live.calls_received
                && gone.bytes_in >= live.bytes_in
                && gone.bytes_out >= live.bytes_out
                && gone.calls_sent >= live.calls_sent,
            "{live:?} then {gone:?}"
        );
    }
    assert!(a.metrics().peers["c"].reconnects >= 1);

    // Handlers: one that fires, one whose unit queue overflows; both removed.
    let fires = a.on("*:t:1", |_msgs| async {}).unwrap();
    let never = a.on("*:never:1 & *:u:1", |_msgs| async {}).unwrap();
    for i in 0..3u32 {
        b.notify("a", "t", i).await.unwrap();
    }
    // The unit queue holds 1024 messages: 6 more are dropped, oldest first.
    for i in 0..1030u32 {
        b.notify("a", "u", i).await.unwrap();
    }
    let limit = Duration::from_secs(10);
    support::wait_until(limit, || {
        let m = a.metrics().messaging;
        m.handler_firings == 3 && m.queue_drops == 6
    })
    .await;
    let before = a.prometheus();
    assert!(a.off(fires) && a.off(never));
    assert!(a.messaging_stats().handlers.is_empty());
    counters_grew(&before, &a.prometheus());
    let m = a.metrics().messaging;
    assert_eq!((m.handler_firings, m.queue_drops), (3, 6));
    // Messaging counts what went each way (one message per notification).
    assert!(m.received >= 1033, "{m:?}");
    assert!(b.metrics().messaging.sent >= 1033);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_refusals_are_counted_on_both_sides() {
    let a = support::local("a").max_in_flight(1).start().await.unwrap();
    // `hold` runs until the test adds a permit.
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(0));
    let g = gate.clone();
    let hold = mpreg::Function::new_async("hold", move |(): ()| {
        let g = g.clone();
        async move { g.acquire().await.unwrap().forget() }
    });
    a.register_function(hold).unwrap();
    let b = member("b", a.addr(), true).await;
    support::wait_until(Duration::from_secs(10), || {
        b.members()
            .iter()
            .any(|m| m.functions.contains(&"hold".to_string()))
    })
    .await;
    let first = {
        let b = b.clone();
        tokio::spawn(async move { b.call::<()>("hold", ()).await })
    };
    support::wait_until(Duration::from_secs(10), || {
        a.metrics().functions["hold"].in_flight == 1
    })
    .await;
    // The one call a allows on the connection is running: the next is refused at once.
    let e = b.call::<()>("hold", ()).await.unwrap_err();
    assert!(matches!(e, mpreg::Error::Busy { .. }), "{e}");
    gate.add_permits(1);
    first.await.unwrap().unwrap();
    let served = &a.metrics().functions["hold"];
    assert_eq!((served.calls, served.busy, served.errors), (1, 1, 0));
    let caller = &b.metrics().called["hold"];
    assert_eq!((caller.calls, caller.busy, caller.errors), (2, 1, 1));
    assert!(a
        .prometheus()
        .contains("mpreg_calls_busy_total{node=\"a\",function=\"hold\",side=\"served\"} 1"));
    assert!(b
        .prometheus()
        .contains("mpreg_calls_busy_total{node=\"b\",function=\"hold\",side=\"caller\"} 1"));
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_leaves_and_gossip_are_counted() {
    let (a, b) = pair(true).await;
    let limit = Duration::from_secs(10);
    support::wait_until(limit, || a.metrics().membership.joins >= 1).await;
    support::wait_until(limit, || {
        let m = a.metrics().membership;
        m.gossip_sent > 0
            && m.gossip_received > 0
            && m.gossip_bytes_in > 0
            && m.gossip_bytes_out > 0
    })
    .await;
    b.shutdown().await;
    support::wait_until(limit, || a.metrics().membership.leaves == 1).await;
    let m = a.metrics().membership;
    assert_eq!((m.alive, m.downs), (0, 0), "{m:?}");
    let page = a.prometheus();
    assert!(
        page.contains("mpreg_member_events_total{node=\"a\",event=\"leave\"} 1"),
        "{page}"
    );
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publications_are_counted_published_received_delivered_and_dropped() {
    // The subscriber's queue holds one publication, and nobody reads it.
    let a = support::local("a").sub_queue(1).start().await.unwrap();
    let b = member("b", a.addr(), true).await;
    let _unread = a.subscribe("t.*").await.unwrap();
    support::wait_until(Duration::from_secs(10), || {
        b.members().iter().any(|m| !m.subscriptions.is_empty())
    })
    .await;
    for i in 0..5u32 {
        b.publish("t.x", &i).await.unwrap();
    }
    support::wait_until(Duration::from_secs(10), || {
        a.metrics().pubsub.delivered == 5
    })
    .await;
    // A confirmed publication nobody takes out of the queue is not confirmed in time.
    let e = b
        .topic("t.y")
        .timeout(Duration::from_millis(300))
        .confirmed(&9u32)
        .await
        .unwrap_err();
    assert!(matches!(e, mpreg::Error::Unconfirmed { .. }), "{e}");
    let (pa, pb) = (a.metrics().pubsub, b.metrics().pubsub);
    assert_eq!((pb.published, pb.confirm_failures), (6, 1), "{pb:?}");
    assert_eq!(pb.by_prefix["t"].published, 6);
    assert_eq!((pa.received, pa.delivered, pa.dropped), (6, 6, 5), "{pa:?}");
    assert_eq!((pa.subscriptions, pa.by_prefix["t"].received), (1, 6));
    let page = a.prometheus();
    for needle in [
        "mpreg_pubsub_received_total{node=\"a\"} 6",
        "mpreg_pubsub_delivered_total{node=\"a\"} 6",
        "mpreg_pubsub_dropped_total{node=\"a\"} 5",
        "mpreg_pubsub_prefix_received_total{node=\"a\",prefix=\"t\"} 6",
    ] {
        assert!(page.contains(needle), "no `{needle}` in\n{page}");
    }
    assert!(b
        .prometheus()
        .contains("mpreg_pubsub_confirm_failures_total{node=\"b\"} 1"));
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflow_runs_steps_and_failures_are_counted() {
    let (a, b) = pair(true).await;
    let out = b
        .workflow()
        .step("|x", "slow_echo", (1u64,))
        .step("|y", "slow_echo", ("|x",))
        .run()
        .await
        .unwrap();
    assert_eq!(out["|y"], mpreg::Value::from(1u64));
    let e = b.workflow().step("|z", "nowhere", ()).run().await;
    assert!(e.is_err());
    let w = b.metrics().workflows;
    assert_eq!((w.runs, w.steps, w.failures), (2, 3, 1), "{w:?}");
    assert!(w.max_us > 0, "{w:?}");
    let page = b.prometheus();
    for needle in [
        "mpreg_workflows_total{node=\"b\"} 2",
        "mpreg_workflow_steps_total{node=\"b\"} 3",
        "mpreg_workflow_failures_total{node=\"b\"} 1",
        "mpreg_workflow_duration_seconds_count{node=\"b\"} 2",
    ] {
        assert!(page.contains(needle), "no `{needle}` in\n{page}");
    }
    a.shutdown().await;
    b.shutdown().await;
}

/// The metric names in README's table of Prometheus families.
fn readme_metric_table() -> BTreeSet<String> {
    let readme = include_str!("../README.md");
    let table: Vec<&str> = readme
        .lines()
        .skip_while(|l| !l.starts_with("| metric | type | labels | what |"))
        .take_while(|l| l.starts_with('|'))
        .collect();
    assert!(table.len() > 2, "README has no metrics table");
    table
        .iter()
        .filter_map(|row| row.split('|').nth(1))
        .flat_map(|cell| cell.split('`'))
        .filter(|w| w.starts_with("mpreg_"))
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_names_every_metric_family_in_full_and_no_other() {
    let (a, b) = pair(true).await;
    for i in 0..5u64 {
        let _: u64 = b.call("slow_echo", (i,)).await.unwrap();
    }
    let mut families = BTreeSet::new();
    for page in [a.prometheus(), b.prometheus()] {
        for line in page.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                families.insert(rest.split(' ').next().unwrap().to_string());
            }
        }
    }
    let readme = include_str!("../README.md");
    let missing: Vec<_> = families
        .iter()
        .filter(|f| !readme.contains(&format!("`{f}`")))
        .collect();
    assert!(missing.is_empty(), "not in README in full: {missing:?}");
    let table = readme_metric_table();
    let extra: Vec<_> = table.difference(&families).collect();
    assert!(
        extra.is_empty(),
        "in README's table but not on the page: {extra:?}"
    );
    assert_eq!(table, families);
    a.shutdown().await;
    b.shutdown().await;
}
