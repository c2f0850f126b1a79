//! Calls of functions learnt to be quick run on the connection's reader, without a task
//! (src/runtime/quick.rs). What a caller sees must not change: results, failures, panics,
//! deadlines, metrics; and a function that turns slow must not keep its reader blocked.

mod support;

use std::time::{Duration, Instant};

use mpreg::{Error, Function};
use support::{local, pair};

/// Enough quick calls for any function to be trusted (src/runtime/quick.rs asks 16 first).
const WARM: usize = 40;

/// `work(ms)` holds its thread for `ms` without yielding (a synchronous body), `nap(ms)`
/// waits `ms` asynchronously, `boom(panic)` panics when asked, `fail(x)` always fails.
fn functions() -> Vec<Function> {
    vec![
        Function::new("work", |(ms,): (u64,)| {
            std::thread::sleep(Duration::from_millis(ms));
            ms
        }),
        Function::new_async("nap", |(ms,): (u64,)| async move {
            if ms > 0 {
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            ms
        }),
        Function::new("boom", |(panic,): (bool,)| {
            assert!(!panic, "asked to panic");
            1
        }),
        Function::try_new("fail", |(x,): (i64,)| Err::<i64, _>(format!("no {x}"))),
    ]
}

/// A node `server` with [`functions`] and a client connected to it.
async fn served() -> (mpreg::Node, mpreg::Node) {
    let mut server = local("server");
    for f in functions() {
        server = server.function(f);
    }
    pair(server, local("client").builtins(false)).await
}

async fn warm(client: &mpreg::Node, fun: &str, arg: impl serde::Serialize + Copy) {
    for _ in 0..WARM {
        let _ = client.call::<mpreg::Value>(fun, (arg,)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_calls_answer_fail_and_panic_as_before_and_are_counted() {
    let (a, b) = served().await;
    warm(&b, "boom", false).await;
    warm(&b, "fail", 1).await;
    assert_eq!(b.call::<i64>("boom", (false,)).await.unwrap(), 1);
    let e = b.call::<i64>("boom", (true,)).await.unwrap_err();
    assert!(
        e.to_string().contains("function panicked: asked to panic"),
        "{e}"
    );
    assert_eq!(b.call::<i64>("boom", (false,)).await.unwrap(), 1);
    let e = b.call::<i64>("fail", (7,)).await.unwrap_err();
    assert!(e.to_string().contains("no 7"), "{e}");
    // Bad arguments are explained with the signature, as for a call in a task.
    let e = b.call::<i64>("fail", ("seven",)).await.unwrap_err();
    assert!(matches!(e, Error::BadArguments { .. }), "{e:?}");
    let m = a.metrics();
    let boom = &m.functions["boom"];
    assert_eq!((boom.calls, boom.errors), (WARM as u64 + 3, 1));
    let fail = &m.functions["fail"];
    assert_eq!(
        (fail.calls, fail.errors),
        (WARM as u64 + 2, WARM as u64 + 2)
    );
    a.shutdown().await;
}

/// A trusted function whose body has to wait moves to a task: it finishes, and its
/// deadline still counts from its start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quick_function_that_waits_finishes_in_a_task_under_its_deadline() {
    let (a, b) = served().await;
    warm(&b, "nap", 0).await;
    let r = b.request("nap").args((30,)).send::<u64>().await.unwrap();
    assert_eq!(r.value, 30);
    let t = Instant::now();
    let e = b
        .request("nap")
        .args((5_000,))
        .timeout(Duration::from_millis(300))
        .send::<u64>()
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }), "{e:?}");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    // The abandoned body is no longer counted as running on the server.
    support::wait_until(Duration::from_secs(5), || {
        a.metrics().functions["nap"].in_flight == 0
    })
    .await;
    a.shutdown().await;
}

/// One slow call of a function that was quick costs it its place on the reader: the next
/// slow call runs in a task, and another call on the same connection is answered at once
/// instead of waiting behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_that_turns_slow_stops_blocking_its_connection() {
    let (a, b) = served().await;
    warm(&b, "work", 0).await;
    warm(&b, "nap", 0).await;
    // Runs on the reader (it was trusted) and holds it for 300 ms: the fall.
    assert_eq!(b.call::<u64>("work", (300,)).await.unwrap(), 300);
    let slow = {
        let b = b.clone();
        tokio::spawn(async move { b.call::<u64>("work", (1_500,)).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t = Instant::now();
    assert_eq!(b.call::<u64>("nap", (0,)).await.unwrap(), 0);
    let waited = t.elapsed();
    assert!(
        waited < Duration::from_millis(700),
        "a call waited {waited:?} behind a slow body on the reader"
    );
    assert_eq!(slow.await.unwrap().unwrap(), 1_500);
    a.shutdown().await;
}
