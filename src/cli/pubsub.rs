//! `mpreg pub TOPIC [JSON]` and `mpreg sub PATTERN`: publish, and print what arrives as
//! JSON lines `{"topic": .., "payload": .., "from": ..}`.

use std::time::{Duration, Instant};

use clap::Args;
use futures_util::StreamExt;
use mpreg::proto::json;
use mpreg::{Error, Value};

use super::NodeArgs;

/// Arguments of `mpreg pub`.
#[derive(Debug, Args)]
pub struct PubArgs {
    /// Literal topic, e.g. `sensors.kitchen.temp`.
    topic: String,
    /// Payload as JSON (a non-JSON value is taken as a string); none publishes `null`.
    #[arg(allow_negative_numbers = true)]
    payload: Option<String>,
    /// Wait until every subscriber acknowledged and print who did; fail naming those that
    /// did not.
    #[arg(long)]
    confirm: bool,
    /// How far the publication goes: node, host or network.
    #[arg(long, default_value = "network")]
    scope: mpreg::Scope,
    /// Seconds to wait for acknowledgements (with --confirm).
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    /// Print `{"nodes": N}`: how many nodes had a matching subscriber and were sent it.
    #[arg(long, conflicts_with = "confirm")]
    json: bool,
    #[command(flatten)]
    node: NodeArgs,
}

/// Arguments of `mpreg sub`.
#[derive(Debug, Args)]
pub struct SubArgs {
    /// Topic pattern: `*` matches one segment, `**` any number.
    pattern: String,
    /// Exit after this many publications.
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// Exit after this many seconds (failing if --count was not reached).
    #[arg(long, value_name = "SECS")]
    timeout: Option<f64>,
    /// Join queue group GROUP: each publication goes to one member of the group.
    #[arg(long, value_name = "GROUP")]
    group: Option<String>,
    /// Never drop: when this subscriber falls `MPREG_SUB_QUEUE` publications behind (its
    /// output is slow), slow the publishers down instead of dropping the oldest.
    #[arg(long)]
    lossless: bool,
    #[command(flatten)]
    node: NodeArgs,
}

fn seconds(s: f64, what: &str) -> mpreg::Result<Duration> {
    Duration::try_from_secs_f64(s).map_err(|_| {
        Error::Usage(format!(
            "bad {what} `{s}`: expected a positive number of seconds"
        ))
    })
}

/// Publishes once from a short-lived client.
pub async fn run_pub(a: PubArgs) -> mpreg::Result<()> {
    let payload: Value = a
        .payload
        .as_deref()
        .map(json::parse_arg)
        .unwrap_or(Value::Nil);
    let timeout = seconds(a.timeout, "--timeout")?;
    let node = mpreg::Node::start(a.node.client_config()?).await?;
    // No node anywhere is a failure, not a publication into the void.
    if let Err(e) = node.wait_for_cluster().await {
        node.shutdown().await;
        return Err(e);
    }
    let p = node.topic(&a.topic).scope(a.scope).timeout(timeout);
    let result = if a.confirm {
        p.confirmed(&payload).await.map(|c| {
            println!(
                "{}",
                serde_json::json!({"subscribers": c.subscribers, "nodes": c.nodes})
            );
        })
    } else {
        p.publish_counted(&payload).await.map(|n| {
            if a.json {
                println!("{}", serde_json::json!({ "nodes": n }));
            }
        })
    };
    // Shutting down flushes what is queued on every connection.
    node.shutdown().await;
    result
}

/// Subscribes from a member node and prints each publication as one JSON line.
pub async fn run_sub(a: SubArgs) -> mpreg::Result<()> {
    let deadline = a
        .timeout
        .map(|t| seconds(t, "--timeout"))
        .transpose()?
        .map(|d| Instant::now() + d);
    let mut cfg = a.node.config()?;
    cfg.builtins = false;
    // A client that listens only to receive its publications: the "no shared secret"
    // warning is for the servers an operator runs, not for every `mpreg sub`.
    cfg.trust_warning = false;
    let node = mpreg::Node::start(cfg).await?;
    // Give zero-config discovery a moment to find the cluster, so the subscription is
    // announced to the peers that exist rather than learned later through gossip.
    let found_by = Instant::now() + Duration::from_secs(2);
    while node.peers().is_empty() && Instant::now() < found_by {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut sub = node.subscribe(&a.pattern);
    if let Some(g) = &a.group {
        sub = sub.group(g);
    }
    if a.lossless {
        sub = sub.lossless();
    }
    let mut sub = sub.await?;
    let peers = node.peers().len();
    eprintln!(
        "mpreg: subscribed to `{}` as {} ({peers} peer{})",
        a.pattern,
        node.name(),
        if peers == 1 { "" } else { "s" }
    );
    let got = print_until(&mut sub, a.count, deadline).await;
    drop(sub);
    node.shutdown().await;
    match a.count {
        Some(n) if got < n => Err(Error::Incomplete(format!(
            "received {got} of {n} publications on `{}` before the timeout",
            a.pattern
        ))),
        _ => Ok(()),
    }
}

/// Prints publications until `count`, the deadline, or Ctrl-C; returns how many.
async fn print_until(
    sub: &mut mpreg::Subscription,
    count: Option<u64>,
    deadline: Option<Instant>,
) -> u64 {
    let mut n = 0;
    while count.is_none_or(|c| n < c) {
        let next = async {
            match deadline {
                Some(d) => tokio::time::timeout_at(d.into(), sub.next())
                    .await
                    .ok()
                    .flatten(),
                None => sub.next().await,
            }
        };
        let p = tokio::select! {
            p = next => p,
            _ = mpreg::shutdown_signal() => None,
        };
        let Some(p) = p else { break };
        let payload = p
            .value()
            .map(|v| json::to_json(&v))
            .unwrap_or_else(|e| serde_json::json!({"error": e.to_string()}));
        println!(
            "{}",
            serde_json::json!({"topic": p.topic(), "payload": payload, "from": p.from()})
        );
        n += 1;
    }
    n
}
