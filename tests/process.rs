//! Separate processes on loopback: `mpreg serve`, the example nodes, and the CLI.

mod support;

use std::time::{Duration, Instant};

use mpreg::Error;
use support::{free_port, local, mpreg, Proc};

fn seed(p: &Proc) -> String {
    p.addr.to_string()
}

#[test]
fn cli_calls_mpreg_serve_by_name() {
    let port = free_port();
    let node = Proc::start("mpreg", &["serve", "--name", "alpha"], &[], port);
    let (ok, out, err) = mpreg(&["call", "--seed", &seed(&node), "echo", "hi"]);
    assert!(ok, "{err}");
    assert_eq!(out, "\"hi\"");
    let (ok, out, _) = mpreg(&[
        "call",
        "--seed",
        &seed(&node),
        "echos",
        "1",
        "[2,3]",
        "x",
        "{\"k\":null}",
    ]);
    assert!(ok);
    assert_eq!(out, r#"[1,[2,3],"x",{"k":null}]"#);
    let (ok, out, _) = mpreg(&[
        "call",
        "--seed",
        &seed(&node),
        "--json",
        "echo",
        "--kw",
        "x=42",
    ]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["result"], 42);
    assert_eq!(v["node"], "alpha");
    assert!(v["elapsed_ms"].as_f64().unwrap() > 0.0);
}

#[test]
fn cli_errors_are_one_line_and_exit_non_zero() {
    let port = free_port();
    let node = Proc::start("mpreg", &["serve", "--name", "alpha"], &[], port);
    let (ok, out, err) = mpreg(&["call", "--seed", &seed(&node), "ehco", "hi"]);
    assert!(!ok);
    assert!(out.is_empty());
    assert_eq!(
        err,
        "mpreg: unknown function `ehco`; did you mean `echo`? (offered by none of the 1 member known: alpha)"
    );
    let (ok, _, err) = mpreg(&[
        "call",
        "--seed",
        &seed(&node),
        "--cluster",
        "other",
        "echo",
        "hi",
    ]);
    assert!(!ok);
    assert!(err.contains("cluster mismatch"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    let (ok, _, err) = mpreg(&["call", "--seed", &seed(&node), "--kw", "oops", "echo"]);
    assert!(!ok);
    assert_eq!(err, "mpreg: --kw \"oops\": expected NAME=JSON");
}

#[test]
fn two_serving_processes_call_each_others_functions() {
    let (p1, p2) = (free_port(), free_port());
    let calc = Proc::start("calculator", &[], &[("MPREG_NAME", "calc".into())], p1);
    let front = Proc::start(
        "frontend",
        &[],
        &[("MPREG_NAME", "front".into()), ("MPREG_SEEDS", seed(&calc))],
        p2,
    );
    // The frontend dialed the calculator; wait until both know each other.
    let start = Instant::now();
    loop {
        let (ok, out, _) = mpreg(&["call", "--seed", &seed(&calc), "describe", "6"]);
        if ok {
            // calculator (sync/async functions) -> frontend's sync `shout`
            assert_eq!(out, "\"6 IS EVEN!\"");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "calc never reached frontend"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // frontend's async function -> calculator's async `slow_square`
    let (ok, out, err) = mpreg(&["call", "--seed", &seed(&front), "sum_of_squares", "[1,2,3]"]);
    assert!(ok, "{err}");
    assert_eq!(out, "14");
    // Named and positional arguments across processes.
    let (ok, out, _) = mpreg(&[
        "call",
        "--seed",
        &seed(&calc),
        "add",
        "--kw",
        "b=5",
        "--kw",
        "a=1",
    ]);
    assert!(ok);
    assert_eq!(out, "6");
    let (ok, out, _) = mpreg(&["call", "--seed", &seed(&calc), "add", "2", "--kw", "b=5"]);
    assert!(ok);
    assert_eq!(out, "7");
    // Err surfaces as a remote error carrying the message.
    let (ok, _, err) = mpreg(&["call", "--seed", &seed(&calc), "divide", "1", "0"]);
    assert!(!ok);
    assert_eq!(
        err,
        "mpreg: `divide` failed on node `calc`: cannot divide 1 by zero"
    );
    drop(front);
}

#[tokio::test]
async fn killing_the_server_mid_call_fails_the_caller_within_a_second() {
    let port = free_port();
    let mut calc = Proc::start("calculator", &[], &[("MPREG_NAME", "calc".into())], port);
    let client = local("client")
        .builtins(false)
        .seed(calc.addr)
        .start()
        .await
        .unwrap();
    let pending = tokio::spawn({
        let client = client.clone();
        async move { client.call::<i64>("slow_square", (3, 60_000)).await }
    });
    // Make sure the call is in flight before the kill.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t0 = Instant::now();
    calc.child.kill().unwrap(); // SIGKILL: no goodbye
    let e = pending.await.unwrap().unwrap_err();
    let took = t0.elapsed();
    assert!(matches!(e, Error::NodeLost { .. }), "{e}");
    assert!(
        took < Duration::from_secs(1),
        "node lost reported after {took:?}"
    );
    eprintln!("node lost reported {took:?} after kill -9");
    client.shutdown().await;
}
