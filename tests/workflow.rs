//! MPREG multi-call workflows end to end (DESIGN §8): MPREG's README examples through
//! `mpreg run`, routing each step by `locs`, one request from the client, concurrency of
//! independent steps, and errors that name the command.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mpreg::{Error, Function, Value};
use serde_json::json;
use support::{cluster, free_port, local, mpreg, wait_until, DropFlag as Flag, Proc};

fn cmd(name: &str, fun: &str, args: serde_json::Value) -> serde_json::Value {
    json!({"name": name, "fun": fun, "args": args, "locs": []})
}

#[test]
fn mpreg_readme_examples_through_mpreg_run() {
    let (pa, pb) = (free_port(), free_port());
    let name = |n: &str| vec![("MPREG_NAME", n.to_string())];
    let _a = Proc::start("mpreg", &["serve"], &name("wf-a"), pa);
    let seed = format!("127.0.0.1:{pa}");
    let mut env_b = name("wf-b");
    env_b.push(("MPREG_SEEDS", seed.clone()));
    let _b = Proc::start("mpreg", &["serve"], &env_b, pb);
    let dir = support::scratch::Scratch::new("wf");
    let first = cmd("|first", "echo", json!(["hi there!"]));
    let second = cmd("|second", "echo", json!(["|first"]));
    let cases = [
        (
            json!({"cmds": [first, second, cmd("|third", "echos", json!(["|first", "AND ME TOO"]))]}),
            json!({"|second": "hi there!", "|third": ["hi there!", "AND ME TOO"]}),
        ),
        (
            json!([
                first,
                second,
                cmd(
                    "|third",
                    "echos",
                    json!(["|first", "|second", "AND ME TOO"])
                )
            ]),
            json!({"|third": ["hi there!", "hi there!", "AND ME TOO"]}),
        ),
        (
            json!({"cmds": [first, second,
                cmd("|third", "echos", json!(["|first", "|second", "AND ME TOO"])),
                cmd("|4th", "echo", json!(["|third"]))], "extra": "ignored"}),
            json!({"|4th": ["hi there!", "hi there!", "AND ME TOO"]}),
        ),
    ];
    for (i, (request, want)) in cases.iter().enumerate() {
        let file = dir.join(format!("case{i}.json"));
        std::fs::write(&file, request.to_string()).unwrap();
        let (ok, out, err) = mpreg(&["run", file.to_str().unwrap(), "--seed", &seed]);
        assert!(ok, "case {i}: {err}");
        let got: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(&got, want, "case {i}");
    }
    let (ok, _, err) = mpreg(&["run", dir.join("missing.json").to_str().unwrap()]);
    assert!(!ok && err.contains("missing.json"), "{err}");
    std::fs::write(dir.join("dup.json"), json!([first, first]).to_string()).unwrap();
    let (ok, _, err) = mpreg(&[
        "run",
        dir.join("dup.json").to_str().unwrap(),
        "--seed",
        &seed,
    ]);
    assert!(
        !ok && err.contains("duplicate") && err.contains("|first"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_runs_each_step_where_its_locs_are_in_one_request() {
    let step = |tag: &'static str| {
        Function::new("step", move |(x,): (String,)| format!("{x}>{tag}")).params(["x"])
    };
    let nodes = cluster(vec![
        local("n1").resources(["stage-1"]).function(step("1")),
        local("n2").resources(["stage-2"]).function(step("2")),
        local("n3").resources(["stage-3"]).function(step("3")),
    ])
    .await;
    let client = support::client("client", nodes[0].addr().unwrap()).await;
    let before = client.stats().requests_sent;
    let out = client
        .workflow()
        .step("|a", "step", ("start",))
        .locs(["stage-1"])
        .step("|b", "step", ("|a",))
        .locs(["stage-2"])
        .step("|c", "step", ("|b",))
        .locs(["stage-3"])
        .run()
        .await
        .unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out["|c"], Value::from("start>1>2>3"));
    assert_eq!(
        client.stats().requests_sent - before,
        1,
        "one message from the client"
    );
    // `all` returns every step; kwargs may reference results too.
    let out = client
        .workflow()
        .step("|a", "step", ("start",))
        .locs(["stage-1"])
        .step("|b", "step", ())
        .kwargs(
            [("x", "|a")]
                .into_iter()
                .collect::<std::collections::HashMap<_, _>>(),
        )
        .locs(["stage-3"])
        .all(true)
        .run()
        .await
        .unwrap();
    assert_eq!(out["|a"], Value::from("start>1"));
    assert_eq!(out["|b"], Value::from("start>1>3"));
    client.shutdown().await;
    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_diamond_runs_its_middle_steps_at_the_same_time() {
    // Each middle step waits until the other has started: run one after the other, they
    // would wait forever (and the workflow deadline would fail the test).
    let started = Arc::new(AtomicUsize::new(0));
    let meet = |s: Arc<AtomicUsize>, name: &'static str| {
        Function::new_async(name, move |(x,): (String,)| {
            let s = s.clone();
            async move {
                s.fetch_add(1, Ordering::SeqCst);
                while s.load(Ordering::SeqCst) < 2 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                format!("{name}({x})")
            }
        })
    };
    let nodes = cluster(vec![
        local("left").function(meet(started.clone(), "left")),
        local("right").function(meet(started.clone(), "right")),
    ])
    .await;
    let out = nodes[0]
        .workflow()
        .step("top", "echo", ("x",))
        .step("l", "left", ("top",))
        .step("r", "right", ("top",))
        .step("bottom", "echos", ("l", "r"))
        .timeout(Duration::from_secs(5))
        .run()
        .await
        .unwrap();
    let want = Value::Array(vec!["left(x)".into(), "right(x)".into()]);
    assert_eq!(out["bottom"], want);
    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_name_the_command_and_a_failure_cancels_pending_steps() {
    let dropped = Arc::new(AtomicBool::new(false));
    let started = Arc::new(AtomicBool::new(false));
    let (d, s) = (dropped.clone(), started.clone());
    let hang = Function::new_async("hang", move |(): ()| {
        let (d, s) = (d.clone(), s.clone());
        async move {
            let _flag = Flag(d);
            s.store(true, Ordering::SeqCst);
            std::future::pending::<()>().await;
        }
    });
    let s2 = started.clone();
    let fail = Function::try_new_async("fail", move |(): ()| {
        let s = s2.clone();
        async move {
            // Fail only once the other branch is running, so there is something to cancel.
            while !s.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Err::<(), _>("disk full")
        }
    });
    let nodes = cluster(vec![
        local("entry"),
        local("worker").function(hang).function(fail),
    ])
    .await;
    let entry = &nodes[0];
    let err = |r: mpreg::Result<_>| r.unwrap_err().to_string();
    let e = entry
        .workflow()
        .step("a", "hang", ())
        .step("b", "fail", ())
        .run()
        .await;
    let e = err(e);
    assert!(
        e.contains("command `b` (`fail`) failed") && e.contains("disk full"),
        "{e}"
    );
    assert!(e.contains("cancelled: `a`"), "{e}");
    wait_until(Duration::from_secs(3), || dropped.load(Ordering::SeqCst)).await;

    let e = err(entry
        .workflow()
        .step("a", "echo", ("b",))
        .step("b", "echo", ("a",))
        .run()
        .await);
    assert!(
        e.contains("cycle") && (e.contains("a -> b -> a") || e.contains("b -> a -> b")),
        "{e}"
    );
    let e = err(entry
        .workflow()
        .step("a", "echo", (1,))
        .step("a", "echo", (2,))
        .run()
        .await);
    assert!(e.contains("duplicate") && e.contains("`a`"), "{e}");
    let e = err(entry
        .workflow()
        .step("a", "echo", (json_map(),))
        .step("b", "echo", ("a.nope",))
        .run()
        .await);
    assert!(e.contains("command `b`") && e.contains("a.nope"), "{e}");
    let e = err(entry.workflow().step("a", "ecoh", ("x",)).run().await);
    assert!(
        e.contains("command `a` (`ecoh`)") && e.contains("did you mean `echo`"),
        "{e}"
    );
    let slow = entry
        .workflow()
        .step("a", "hang", ())
        .timeout(Duration::from_millis(200));
    let e = err(slow.run().await);
    assert!(
        e.contains("deadline of 200ms passed; still running: `a`"),
        "{e}"
    );
    let e = entry
        .workflow()
        .step("a", "echo", ("x",))
        .locs(["gpu"])
        .run()
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Workflow { .. }), "{e}");
    for n in nodes {
        n.shutdown().await;
    }
}

fn json_map() -> std::collections::HashMap<String, i32> {
    [("k".to_string(), 1)].into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_print_as_json() {
    let node = support::local("printer").start().await.unwrap();
    let out = node
        .workflow()
        .step("|a", "echo", (13,))
        .step("|b", "echos", ("|a", "x"))
        .all(true)
        .run()
        .await
        .unwrap();
    assert_eq!(format!("{out}"), r#"{"|a":13,"|b":[13,"x"]}"#);
    assert_eq!(format!("{out:?}"), format!("{out}"));
    assert_eq!(out["|a"], mpreg::Value::from(13));
    node.shutdown().await;
}
