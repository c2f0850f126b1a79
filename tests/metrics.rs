//! Metrics (issue #13): `_metrics` and `_info` answer their documented shapes from any
//! node, calls are counted on both sides with latency quantiles, switching metrics off
//! stops the counting, and the Prometheus page passes `promtool check metrics`.

mod support;

use std::collections::BTreeSet;
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
