//! Functions registered with `#[mpreg::register]`, called across nodes.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use mpreg::{Error, Visibility};
use serde::{Deserialize, Serialize};
use support::{local, pair};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Stats {
    model: String,
    epochs: u32,
    accuracy: f64,
}

#[mpreg::register]
fn add(a: i64, b: i64) -> i64 {
    a + b
}

#[mpreg::register(name = "train", resources = ["dataset-1"])]
async fn train_model(model: String, epochs: u32) -> Result<Stats, String> {
    if epochs == 0 {
        return Err(format!("cannot train {model} for 0 epochs"));
    }
    tokio::time::sleep(Duration::from_millis(1)).await;
    Ok(Stats {
        model,
        epochs,
        accuracy: 0.9,
    })
}

#[mpreg::register]
fn greet(name: String, greeting: Option<String>) -> String {
    format!("{}, {name}", greeting.unwrap_or_else(|| "hello".into()))
}

#[mpreg::register]
fn nothing() -> u8 {
    7
}

#[mpreg::register(visibility = "host")]
fn host_only() -> String {
    "same host".into()
}

#[mpreg::register(blocking)]
fn crunch(n: u64) -> u64 {
    (0..=n).sum()
}

#[tokio::test]
async fn macro_functions_are_served_with_their_options() {
    let (a, b) = pair(local("server").host("h"), local("client").host("h")).await;
    let spec_of = |name: &str| b.peers()[0].functions.contains(&name.to_string());
    assert!(spec_of("add") && spec_of("train") && spec_of("greet") && spec_of("host_only"));
    // Every node of this process serves them too, so address the server explicitly by
    // asking the server node itself for a catalog-visible answer.
    let r = a.request("add").args((1, 2)).send::<i64>().await.unwrap();
    assert_eq!((r.value, r.node.as_str()), (3, "server"));
    let s: Stats = a
        .call(
            "train",
            BTreeMap::from([("epochs", mpreg::Value::from(3)), ("model", "m".into())]),
        )
        .await
        .unwrap();
    assert_eq!(
        s,
        Stats {
            model: "m".into(),
            epochs: 3,
            accuracy: 0.9
        }
    );
    let e = a.call::<Stats>("train", ("m", 0)).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "`train` failed on node `server`: cannot train m for 0 epochs"
    );
    assert_eq!(
        a.call::<String>("greet", ("ann",)).await.unwrap(),
        "hello, ann"
    );
    assert_eq!(
        a.call::<String>("greet", ("ann", "hi")).await.unwrap(),
        "hi, ann"
    );
    assert_eq!(a.call::<u8>("nothing", ()).await.unwrap(), 7);
    assert_eq!(a.call::<u64>("crunch", (10,)).await.unwrap(), 55);
    let e = a.call::<i64>("add", ("x",)).await.unwrap_err();
    assert!(
        matches!(&e, Error::BadArguments { expected, .. } if expected == "(a: i64, b: i64)"),
        "{e}"
    );
    let e = a
        .call::<Stats>("train", BTreeMap::from([("model", "m")]))
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "bad arguments for `train(model: String, epochs: u32)`: missing argument `epochs`"
    );
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn macro_options_reach_the_catalog() {
    let node = local("solo").start().await.unwrap();
    let peer = local("peer")
        .host("elsewhere")
        .seed(node.addr().unwrap())
        .start()
        .await
        .unwrap();
    let offered = &peer.peers()[0].functions;
    assert!(offered.contains(&"train".to_string()));
    assert!(
        !offered.contains(&"host_only".to_string()),
        "host-visible functions are not offered to other hosts"
    );
    let _ = Visibility::Host;
    node.shutdown().await;
    peer.shutdown().await;
}

/// A node alone, called for a function nobody offers yet, waits for a cluster; a provider
/// registered on the node itself during that wait ends it (as a gateway client's
/// registration does), so the call is served instead of failing with "no cluster found".
#[tokio::test]
async fn a_function_registered_while_a_lonely_node_waits_serves_the_call() {
    let node = local("alone")
        .discovery_wait(Duration::from_secs(20))
        .start()
        .await
        .unwrap();
    let caller = node.clone();
    let call = tokio::spawn(async move {
        let started = std::time::Instant::now();
        let r = caller.call::<i64>("late", (4,)).await;
        (r, started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!call.is_finished(), "the call must wait for a provider");
    node.register("late", |(x,): (i64,)| x * 10).unwrap();
    let (r, took) = call.await.unwrap();
    assert_eq!(r.unwrap(), 40);
    assert!(took < Duration::from_secs(5), "served after {took:?}");
}
