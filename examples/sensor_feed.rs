//! Publishes sensor readings from a node with no address configured: start some
//! subscribers first, e.g. `mpreg sub 'sensors.*.temp'`, then run
//!
//! ```text
//! MPREG_INTERFACES=lo cargo run --example sensor_feed -- 12
//! ```
//!
//! `sensor_feed [--member] [--wait-subscribers K] N [TOPIC..]` publishes N readings
//! `{"i": i}` as fast as it can, cycling over the topics (default: `sensors.kitchen.temp
//! sensors.kitchen.hum sensors.lab.temp other.x`), prints `published N in MS ms`, and shuts
//! down gracefully, which flushes every queued publication.
//! - `--member`: run as a listening cluster member (its shutdown is a SWIM leave) rather
//!   than as a client;
//! - `--wait-subscribers K`: first wait until K other nodes are known to subscribe to the
//!   first topic (a member learns subscriptions through gossip, shortly after it joins).
//!
//! Configured like every mpreg program by `MPREG_*` variables (seeds, interfaces, ...).

use std::time::{Duration, Instant};

use serde_json::json;

/// Longest wait for `--wait-subscribers`.
const SUBSCRIBERS_WAIT: Duration = Duration::from_secs(30);

/// What the command line asks for.
struct Args {
    member: bool,
    wait_subscribers: usize,
    n: u64,
    topics: Vec<String>,
}

fn usage() -> mpreg::Error {
    mpreg::Error::Config("usage: sensor_feed [--member] [--wait-subscribers K] N [TOPIC..]".into())
}

fn parse_args() -> mpreg::Result<Args> {
    let mut args = std::env::args().skip(1).peekable();
    let (mut member, mut wait_subscribers) = (false, 0);
    while let Some(flag) = args.next_if(|a| a.starts_with("--")) {
        match flag.as_str() {
            "--member" => member = true,
            "--wait-subscribers" => {
                wait_subscribers = args.next().and_then(|k| k.parse().ok()).ok_or_else(usage)?;
            }
            _ => return Err(usage()),
        }
    }
    let n = args.next().and_then(|n| n.parse().ok()).ok_or_else(usage)?;
    let mut topics: Vec<String> = args.collect();
    if topics.is_empty() {
        topics = [
            "sensors.kitchen.temp",
            "sensors.kitchen.hum",
            "sensors.lab.temp",
            "other.x",
        ]
        .map(String::from)
        .to_vec();
    }
    Ok(Args {
        member,
        wait_subscribers,
        n,
        topics,
    })
}

/// Whether a subscription as members list it (`pattern` or `pattern (group)`) matches
/// `topic`.
fn matches(subscription: &str, topic: &str) -> bool {
    let pattern = subscription.split(" (").next().unwrap_or(subscription);
    mpreg::proto::topic::Pattern::parse(pattern).is_ok_and(|p| p.matches(topic))
}

/// Waits until `k` other nodes subscribe to a pattern matching `topic`.
async fn wait_for_subscribers(node: &mpreg::Node, k: usize, topic: &str) -> mpreg::Result<()> {
    let start = Instant::now();
    loop {
        let have = node
            .members()
            .iter()
            .filter(|m| m.name != node.name())
            .filter(|m| m.subscriptions.iter().any(|s| matches(s, topic)))
            .count();
        if have >= k {
            return Ok(());
        }
        if start.elapsed() > SUBSCRIBERS_WAIT {
            return Err(mpreg::Error::Config(format!(
                "only {have} of {k} subscribers of `{topic}` known after {SUBSCRIBERS_WAIT:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::main]
async fn main() -> mpreg::Result<()> {
    mpreg::init_logging_with("warn");
    let args = parse_args()?;
    let mut config = mpreg::Config::load()?;
    // A publisher needs no listener: it reaches the subscribers it learns of. As a member
    // it listens, and leaves the cluster when it shuts down.
    config.listen = args.member;
    config.builtins = false;
    let node = mpreg::Node::start(config).await?;
    wait_for_subscribers(&node, args.wait_subscribers, &args.topics[0]).await?;
    let start = Instant::now();
    for i in 0..args.n {
        let topic = &args.topics[(i as usize) % args.topics.len()];
        node.publish(topic, &json!({ "i": i })).await?;
    }
    println!("published {} in {} ms", args.n, start.elapsed().as_millis());
    node.shutdown().await;
    Ok(())
}
