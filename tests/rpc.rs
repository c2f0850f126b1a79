//! Calls between two nodes in one process over real loopback sockets.

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mpreg::{Error, Function, Value, Visibility};
use support::{local, pair, wait_until, DropFlag as Flag};

fn math() -> Vec<Function> {
    vec![
        Function::new("add", |(a, b): (i64, i64)| a + b).params(["a: i64", "b: i64"]),
        Function::new_async("slow_upper", |(s, ms): (String, u64)| async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            s.to_uppercase()
        })
        .params(["s: String", "ms: u64"]),
        Function::try_new("divide", |(a, b): (f64, f64)| {
            if b == 0.0 {
                Err(format!("cannot divide {a} by zero"))
            } else {
                Ok(a / b)
            }
        })
        .params(["a", "b"]),
        Function::try_new_async("fetch", |(key,): (String,)| async move {
            Err::<String, _>(format!("no such key: {key}"))
        }),
    ]
}

async fn math_pair() -> (mpreg::Node, mpreg::Node) {
    let mut a = local("server");
    for f in math() {
        a = a.function(f);
    }
    pair(a, local("client").builtins(false)).await
}

#[tokio::test]
async fn positional_and_named_arguments_sync_and_async() {
    let (a, b) = math_pair().await;
    let sum: i64 = b.call("add", (2, 3)).await.unwrap();
    assert_eq!(sum, 5);
    let mut kw = BTreeMap::new();
    kw.insert("b", 10);
    kw.insert("a", 1);
    let sum: i64 = b.call("add", &kw).await.unwrap();
    assert_eq!(sum, 11);
    let r = b
        .request("add")
        .args((7,))
        .kwargs(BTreeMap::from([("b", 1)]))
        .send::<i64>()
        .await
        .unwrap();
    assert_eq!((r.value, r.node.as_str()), (8, "server"));
    let up: String = b.call("slow_upper", ("hi", 1)).await.unwrap();
    assert_eq!(up, "HI");
    let v = b
        .call_value("add", Value::Array(vec![1.into(), 2.into()]))
        .await
        .unwrap();
    assert_eq!(v, Value::from(3));
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn err_surfaces_as_remote_error_with_message() {
    let (a, b) = math_pair().await;
    let e = b.call::<f64>("divide", (1.0, 0.0)).await.unwrap_err();
    assert!(
        matches!(&e, Error::Remote { fun, node, message } if fun == "divide" && node == "server" && message == "cannot divide 1 by zero"),
        "{e}"
    );
    assert_eq!(
        e.to_string(),
        "`divide` failed on node `server`: cannot divide 1 by zero"
    );
    let e = b.call::<String>("fetch", ("k",)).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "`fetch` failed on node `server`: no such key: k"
    );
    a.shutdown().await;
}

#[tokio::test]
async fn unknown_function_lists_close_names() {
    let (a, b) = math_pair().await;
    let e = b.call::<i64>("ad", (1, 2)).await.unwrap_err();
    assert!(
        matches!(&e, Error::UnknownFunction { close, .. } if close.contains(&"add".to_string())),
        "{e}"
    );
    assert!(
        e.to_string()
            .starts_with("unknown function `ad`; did you mean `add`"),
        "{e}"
    );
    a.shutdown().await;
}

#[tokio::test]
async fn bad_arguments_name_the_expected_parameters() {
    let (a, b) = math_pair().await;
    let e = b.call::<i64>("add", ("x", 2)).await.unwrap_err();
    assert!(
        matches!(&e, Error::BadArguments { expected, .. } if expected == "(a: i64, b: i64)"),
        "{e}"
    );
    let e = b.call::<i64>("add", (1,)).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "bad arguments for `add(a: i64, b: i64)`: missing argument `b`"
    );
    let e = b
        .call::<i64>("add", BTreeMap::from([("a", 1), ("c", 2)]))
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "bad arguments for `add(a: i64, b: i64)`: unknown argument `c`"
    );
    let e = b.call::<i64>("add", (1, 2, 3)).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "bad arguments for `add(a: i64, b: i64)`: takes 2 arguments, got 3 positional"
    );
    // The connection survives bad input.
    assert_eq!(b.call::<i64>("add", (1, 1)).await.unwrap(), 2);
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_calls_on_one_connection() {
    let (a, b) = math_pair().await;
    let calls = (0..1000i64).map(|i| {
        let b = b.clone();
        tokio::spawn(async move { (i, b.call::<i64>("add", (i, 1000 * i)).await) })
    });
    let results = futures_util::future::join_all(calls).await;
    for r in results {
        let (i, v) = r.unwrap();
        assert_eq!(v.unwrap(), i + 1000 * i);
    }
    assert_eq!(b.peers().len(), 1, "all calls shared one connection");
    a.shutdown().await;
}

#[tokio::test]
async fn replies_may_arrive_out_of_order() {
    let (a, b) = math_pair().await;
    let slow = b.call::<String>("slow_upper", ("slow", 300));
    let fast = async {
        let r = b.call::<String>("slow_upper", ("fast", 1)).await.unwrap();
        (r, Instant::now())
    };
    let (slow, (fast, fast_done)) = tokio::join!(slow, fast);
    assert_eq!((slow.unwrap().as_str(), fast.as_str()), ("SLOW", "FAST"));
    assert!(
        fast_done.elapsed() >= Duration::from_millis(200),
        "the fast reply came first"
    );
    a.shutdown().await;
}

#[tokio::test]
async fn deadline_fails_the_call_and_cancels_the_remote_work() {
    let started = Arc::new(AtomicBool::new(false));
    let dropped = Arc::new(AtomicBool::new(false));
    let (s, d) = (started.clone(), dropped.clone());
    let forever = Function::new_async("forever", move |(): ()| {
        let (s, d) = (s.clone(), d.clone());
        async move {
            s.store(true, Ordering::SeqCst);
            let _flag = Flag(d);
            std::future::pending::<()>().await;
        }
    });
    let (a, b) = pair(local("server").function(forever), local("client")).await;
    let t0 = Instant::now();
    let e = b
        .request("forever")
        .timeout(Duration::from_millis(200))
        .send::<()>()
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }), "{e}");
    assert!(t0.elapsed() < Duration::from_secs(2));
    assert_eq!(
        e.to_string(),
        "call to `forever` on node `server` timed out after 200ms"
    );
    assert!(started.load(Ordering::SeqCst));
    wait_until(Duration::from_secs(2), || dropped.load(Ordering::SeqCst)).await;
    a.shutdown().await;
}

#[tokio::test]
async fn in_flight_limit_answers_busy_instead_of_queueing() {
    let release = Arc::new(tokio::sync::Notify::new());
    let r = release.clone();
    let running = Arc::new(AtomicUsize::new(0));
    let run2 = running.clone();
    let block = Function::new_async("block", move |(): ()| {
        let (r, run2) = (r.clone(), run2.clone());
        async move {
            run2.fetch_add(1, Ordering::SeqCst);
            r.notified().await;
        }
    });
    let (a, b) = pair(
        local("server").function(block).max_in_flight(4),
        local("client"),
    )
    .await;
    let held: Vec<_> = (0..4)
        .map(|_| {
            let b = b.clone();
            tokio::spawn(async move { b.call::<()>("block", ()).await })
        })
        .collect();
    wait_until(Duration::from_secs(5), || {
        running.load(Ordering::SeqCst) == 4
    })
    .await;
    let e = b.call::<()>("block", ()).await.unwrap_err();
    assert!(matches!(e, Error::Busy { .. }), "{e}");
    assert!(e.to_string().contains("4 calls already in flight"), "{e}");
    release.notify_waiters();
    for h in held {
        h.await.unwrap().unwrap();
    }
    a.shutdown().await;
}

#[tokio::test]
async fn functions_registered_later_reach_connected_peers() {
    let (a, b) = pair(local("server"), local("client").builtins(false)).await;
    assert!(b.call::<i64>("triple", (2,)).await.is_err());
    a.register("triple", |(x,): (i64,)| 3 * x).unwrap();
    wait_until(Duration::from_secs(5), || {
        b.peers()[0].functions.contains(&"triple".to_string())
    })
    .await;
    assert_eq!(b.call::<i64>("triple", (2,)).await.unwrap(), 6);
    assert!(a.unregister("triple"));
    wait_until(Duration::from_secs(5), || {
        !b.peers()[0].functions.contains(&"triple".to_string())
    })
    .await;
    a.shutdown().await;
}

/// A function registered while a peer's handshake runs (after our catalog was sent, before
/// the connection was listed) reaches that peer over the connection at once — not only when
/// membership gossip (every 200 ms) makes the peer pull the catalog.
#[tokio::test]
async fn functions_registered_during_a_handshake_reach_the_peer() {
    for round in 0..40u64 {
        let a = local("server").start().await.unwrap();
        let dial = tokio::spawn(local("client").seed(a.addr().unwrap()).start());
        // Spread the registration over the handshake window, a few microseconds apart.
        tokio::time::sleep(Duration::from_micros(50 * (round % 20))).await;
        let name = format!("late_{round}");
        a.register(&name, |(): ()| 1u8).unwrap();
        let b = dial.await.unwrap().unwrap();
        let seen = tokio::time::timeout(Duration::from_millis(100), async {
            while !b.peers().iter().any(|p| p.functions.contains(&name)) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        assert!(
            seen.is_ok(),
            "round {round}: the peer did not learn `{name}` within 100 ms"
        );
        b.shutdown().await;
        a.shutdown().await;
    }
}

#[tokio::test]
async fn node_lost_fails_pending_calls_at_once() {
    let (a, b) = math_pair().await;
    let pending = tokio::spawn({
        let b = b.clone();
        async move { b.call::<String>("slow_upper", ("x", 60_000)).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let t0 = Instant::now();
    a.shutdown().await;
    let e = pending.await.unwrap().unwrap_err();
    assert!(matches!(e, Error::NodeLost { .. }), "{e}");
    assert!(
        t0.elapsed() < Duration::from_secs(1),
        "failed after {:?}",
        t0.elapsed()
    );
}

#[tokio::test]
async fn visibility_is_enforced_by_the_serving_node() {
    let host_only = Function::new("local_temp", |(): ()| 42).visibility(Visibility::Host);
    let node_only = Function::new("secret", |(): ()| 1).visibility(Visibility::Node);
    // Same host: host-visible works, node-visible is not offered.
    let (a, b) = pair(
        local("server")
            .host("h1")
            .function(host_only.clone())
            .function(node_only),
        local("client").host("h1"),
    )
    .await;
    assert_eq!(b.call::<i64>("local_temp", ()).await.unwrap(), 42);
    assert!(matches!(
        b.call::<i64>("secret", ()).await.unwrap_err(),
        Error::UnknownFunction { .. }
    ));
    assert_eq!(
        a.call::<i64>("secret", ()).await.unwrap(),
        1,
        "the node itself may call it"
    );
    // Another host: not offered in the catalog at all.
    let c = local("far")
        .host("h2")
        .seed(a.addr().unwrap())
        .start()
        .await
        .unwrap();
    assert!(!c.peers()[0].functions.contains(&"local_temp".to_string()));
    a.shutdown().await;
}

#[tokio::test]
async fn duplicate_names_fail_node_start_naming_both() {
    let e = local("dup")
        .function(Function::new("f", |(): ()| 1))
        .function(Function::new("f", |(): ()| 2))
        .start()
        .await
        .unwrap_err();
    assert!(matches!(e, Error::DuplicateFunction { .. }), "{e}");
    assert!(
        e.to_string()
            .starts_with("duplicate function `f`: registered by"),
        "{e}"
    );
}

#[tokio::test]
async fn panics_are_remote_errors_and_the_node_survives() {
    let boom = Function::new("boom", |(): ()| -> i64 { panic!("kaboom") });
    let (a, b) = pair(local("server").function(boom), local("client")).await;
    let e = b.call::<i64>("boom", ()).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "`boom` failed on node `server`: function panicked: kaboom"
    );
    assert_eq!(
        b.call::<String>("echo", ("still here",)).await.unwrap(),
        "still here"
    );
    a.shutdown().await;
}

#[tokio::test]
async fn builtins_echo_and_echos() {
    let (a, b) = pair(local("server"), local("client").builtins(false)).await;
    assert_eq!(b.call::<String>("echo", ("hi",)).await.unwrap(), "hi");
    assert_eq!(b.call::<String>("echo", "hi").await.unwrap(), "hi");
    let v: Vec<Value> = b.call("echos", (1, "two", 3.5)).await.unwrap();
    assert_eq!(v, vec![Value::from(1), Value::from("two"), Value::F64(3.5)]);
    a.shutdown().await;
}

/// A loop of calls to a synchronous local function yields to the runtime now and then: on
/// a single-threaded runtime, a task spawned before the loop runs while the loop goes on.
#[tokio::test(flavor = "current_thread")]
async fn a_loop_of_local_calls_does_not_starve_other_tasks() {
    let node = local("busy")
        .function(Function::new("inc", |(x,): (u64,)| x + 1))
        .start()
        .await
        .unwrap();
    let ran = Arc::new(AtomicBool::new(false));
    let flag = ran.clone();
    tokio::spawn(async move { flag.store(true, Ordering::SeqCst) });
    let mut calls = 0u64;
    while !ran.load(Ordering::SeqCst) {
        calls = node.call("inc", (calls,)).await.unwrap();
        assert!(
            calls < 100_000,
            "the spawned task never ran during {calls} local calls"
        );
    }
    node.shutdown().await;
}
