//! README's Rust snippets compile (issue #14): each is pasted below, in a function or
//! module that gives it its context (a `node`, the types it names), and
//! `every_readme_snippet_line_is_compiled_here` checks that every line of every ```rust
//! block of README.md appears in this file, so README and code cannot drift apart.
//! Nothing here runs a node: compiling is the test.
#![allow(unused, clippy::all, deprecated)]

// rustfmt would rewrap the snippets and break the line-for-line check.
#[rustfmt::skip]
mod snippets {
    use std::collections::HashMap;
    use std::time::Duration;

    use mpreg::Node;

    /// Block 1: a server.
    mod server {
        #[mpreg::register]
        fn add(a: i64, b: i64) -> i64 { a + b }

        #[mpreg::register(resources = ["dataset-1"], visibility = "host")]
        async fn train(model: String, epochs: u32) -> Result<f64, String> {
            if epochs == 0 { return Err("epochs must be positive".into()) }
            Ok(0.93)
        }

        #[tokio::main]
        async fn main() -> mpreg::Result<()> {
            mpreg::serve().await            // serves every #[register] function plus `echo`/`echos`
        }
    }

    /// Blocks 2 and 3: calls.
    async fn calls() -> mpreg::Result<()> {
        let sum: i64 = mpreg::call("add", (1, 2)).await?;                         // positional
        let sum: i64 = mpreg::call("add", HashMap::from([("a", 1), ("b", 2)])).await?; // by name
        let sum: i64 = mpreg::blocking::call("add", (1, 2))?;                     // no async runtime

        let node = mpreg::Node::builder().name("client").seed("10.0.0.5:7700").start().await?;
        let r = node.request("train").args(("resnet",)).kwargs(HashMap::from([("epochs", 3)]))
            .timeout(Duration::from_secs(5)).send::<f64>().await?;
        println!("{} answered in {:?}", r.node, r.elapsed);
        node.register_function(mpreg::Function::new("triple", |(x,): (i64,)| 3 * x).params(["x"]))?;
        Ok(())
    }

    #[derive(serde::Deserialize)]
    struct Stats {}

    /// Block 4: who answers.
    async fn resolution(node: Node) -> mpreg::Result<()> {
        node.request("train").args(("m",)).locs(["model-a", "dataset-1"]).send::<Stats>().await?;
        node.request("gpu_temp").scope(mpreg::Scope::Host).send::<f32>().await?;   // this host only
        mpreg::on_host("lab-pc").call::<f32>("gpu_temp", ()).await?;               // perspective
        mpreg::on_node("worker-3").call::<String>("status", ()).await?;
        let all = node.call_all::<String>("status", ()).await?;                     // by node name
        Ok(())
    }

    /// The services block.
    async fn services(node: Node) -> mpreg::Result<()> {
let camera = mpreg::on_host("lab-pc").start_service("camera").await?;   // waits until it joined
println!("{} runs as node {:?}, pid {:?}", camera.service, camera.service_node, camera.pid);
let all = node.services().await?;                                        // every controlling node's list
let lines = node.host("lab-pc").service_logs("camera", 20, 0).await?;
mpreg::on_host("lab-pc").stop_service("camera").await?;
if let Some(me) = mpreg::service_name() { println!("running as service {me}"); }
        Ok(())
    }

    /// Block 5: a workflow.
    async fn workflow() -> mpreg::Result<()> {
        let out = mpreg::workflow()
            .step("|a", "echo", ("hi",))
            .step("|b", "train", ("|a", 3)).locs(["dataset-1"])
            .run().await?;                                   // {"|b": ...}: the commands nobody uses
        Ok(())
    }

    /// Block 6: pub/sub.
    mod pubsub {
        use super::*;

        #[mpreg::subscribe("sensors.*.temp")]                 // on every listening node of the process
        async fn on_temp(celsius: f64, meta: mpreg::PubMeta) { println!("{}: {celsius}", meta.topic) }
        #[mpreg::subscribe("ledger.entries", lossless)]       // never drops: slows its publishers
        async fn record(entry: String) { /* must see every entry, in order */ }

        async fn use_it(node: Node, order: u32, job: u32) -> mpreg::Result<()> {
            mpreg::publish("sensors.kitchen.temp", &21.5).await?;           // at-most-once
            let mut s = node.subscribe("sensors.**").await?;                // a Stream; drop = unsubscribe
            let c = node.publish_confirmed("orders.new", &order).await?;    // every subscriber handled it
            let mut w = node.subscribe_group("jobs.*", "workers").await?;   // one member gets each
            let mut l = node.subscribe("audit.**").lossless().await?;       // full queue: publishers wait
            let r: u32 = node.request_publish("jobs.sum", "workers", &job).await?; // labc's reqpub
            node.topic("lab.alarm").scope(mpreg::Scope::Host).publish(&1).await?;
            Ok(())
        }
    }

    /// Block 7: MARO messaging.
    mod maro {
        use super::*;

        #[mpreg::on("worker:update:60%")]              // 60% of the live `worker`s sent `update`
        async fn aggregate(msgs: Vec<mpreg::Message>) { /* one message per distinct sender */ }

        async fn use_it(node: Node, cfg: u32, a: u32, b: u32, round: u32) -> mpreg::Result<()> {
            let reply = node.send("worker-3", "train", &cfg, Duration::from_secs(5)).await?;
            let ids = node.iscatter("eval", [("worker-1", a), ("worker-2", b)]).await?;
            let replies = node.receive_by_id(&ids, Duration::from_secs(5)).await?; // in the order asked
            let all = node.broadcast("worker", "next_round", &round, Duration::from_secs(5)).await?;
            node.wait_for_peers([("worker", 5)], Duration::from_secs(10)).await?;
            Ok(())
        }
    }
}

#[test]
fn every_readme_snippet_line_is_compiled_here() {
    let readme = include_str!("../README.md");
    let here = include_str!("readme.rs");
    let compiled: std::collections::HashSet<&str> = here.lines().map(str::trim).collect();
    let mut in_rust = false;
    let mut blocks = 0;
    for (n, line) in readme.lines().enumerate() {
        if line.starts_with("```") {
            in_rust = line.trim() == "```rust";
            blocks += usize::from(in_rust);
            continue;
        }
        let line = line.trim();
        if in_rust && !line.is_empty() {
            assert!(
                compiled.contains(line),
                "README.md line {} is not compiled by tests/readme.rs: {line}",
                n + 1
            );
        }
    }
    assert!(blocks >= 7, "only {blocks} rust blocks found in README.md");
}
