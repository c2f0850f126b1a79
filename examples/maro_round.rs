//! MARO on this machine, loopback only: a master and five workers. Each round the master
//! broadcasts `round` to role `worker` and collects five acknowledgements; every worker then
//! sends the master an `update`. The master's handler `worker:update:60%` fires as soon as
//! three distinct workers have reported and prints the senders it consumed; updates beyond
//! those three stay queued for the next firing (MARO's leftovers). Exits 0 after 3 rounds.
//!
//! Run: `cargo run --example maro_round`
//!
//! `maro_round worker` runs one worker as the process's default node, configured by
//! `MPREG_*` variables (name, role, seeds, port): the multi-process tests use it. Besides
//! `round` it answers `poke` (send the sender an `update`, then reply) and `work` (wait
//! the given milliseconds, then reply with the value doubled).

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use mpreg::{Message, Node};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

const WORKERS: usize = 5;
const ROUNDS: u32 = 3;
const DEADLINE: Duration = Duration::from_secs(10);

/// What a worker reports after each round.
#[derive(Debug, Serialize, Deserialize)]
struct Update {
    round: u32,
    worker: String,
}

/// The master's aggregation, with state of its own.
struct Aggregator {
    firings: u32,
    /// Each firing's `(worker, round)` pairs, for the master's loop.
    done: mpsc::Sender<Vec<(String, u32)>>,
}

#[mpreg::handlers]
impl Aggregator {
    #[on("worker:update:60%")]
    async fn aggregate(&mut self, messages: Vec<Message>) -> mpreg::Result<()> {
        self.firings += 1;
        let mut seen = Vec::new();
        let mut text = Vec::new();
        for m in &messages {
            let u: Update = m.payload_as()?;
            text.push(format!("{} (round {})", m.source, u.round));
            seen.push((m.source.clone(), u.round));
        }
        println!("firing {}: consumed {}", self.firings, text.join(", "));
        let _ = self.done.send(seen).await;
        Ok(())
    }
}

/// What a worker does with one incoming message.
async fn serve(msg: Message, node: Option<&Node>) -> mpreg::Result<()> {
    let me = msg.destination.clone();
    match msg.tag.as_str() {
        "round" => {
            let round: u32 = msg.payload_as()?;
            msg.reply(format!("{me} starts round {round}")).await?;
            let update = Update { round, worker: me };
            match node {
                Some(n) => n.notify(&msg.source, "update", &update).await?,
                None => mpreg::notify(&msg.source, "update", &update).await?,
            };
        }
        "poke" => {
            let update = Update {
                round: 0,
                worker: me,
            };
            match node {
                Some(n) => n.notify(&msg.source, "update", &update).await?,
                None => mpreg::notify(&msg.source, "update", &update).await?,
            };
            msg.reply("poked").await?;
        }
        "work" => {
            let (delay_ms, value): (u64, i64) = msg.payload_as()?;
            // Simulated work of a given length, so that replies overtake each other.
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            msg.reply(value * 2).await?;
        }
        other => msg.reply(format!("unknown tag `{other}`")).await?,
    }
    Ok(())
}

/// A worker loop: every message in its own task, so a slow `work` does not hold up others.
async fn work(mut incoming: mpreg::Incoming, node: Option<Node>) {
    while let Some(msg) = incoming.recv().await {
        let node = node.clone();
        tokio::spawn(async move {
            if let Err(e) = serve(msg, node.as_ref()).await {
                eprintln!("worker: {e}");
            }
        });
    }
}

fn loopback(name: &str, role: &str) -> mpreg::NodeBuilder {
    // Confined to 127.0.0.1 with broadcast and multicast discovery off: nodes find each
    // other through the master's address (a seed) and gossip, and nothing leaves this host.
    Node::builder()
        .name(name)
        .role(role)
        .bind(IpAddr::V4(Ipv4Addr::LOCALHOST))
        .port(0)
        .interfaces(["lo"])
        .mdns(false)
        .beacon(false)
        .builtins(false)
}

async fn run_all() -> mpreg::Result<()> {
    let master = loopback("master", "master").start().await?;
    let (done, mut firings) = mpsc::channel(16);
    master.attach(Aggregator { firings: 0, done })?;
    let mut workers = Vec::new();
    for i in 1..=WORKERS {
        let seed = master.addr().expect("the master listens");
        let w = loopback(&format!("worker-{i}"), "worker")
            .seed(seed)
            .start()
            .await?;
        tokio::spawn(work(w.receive(), Some(w.clone())));
        workers.push(w);
    }
    master
        .wait_for_peers([("worker", WORKERS)], DEADLINE)
        .await?;
    for round in 1..=ROUNDS {
        let acks = master.broadcast("worker", "round", round, DEADLINE).await?;
        let acks: Vec<String> = acks
            .iter()
            .map(|m| m.payload_as())
            .collect::<mpreg::Result<_>>()?;
        println!(
            "round {round}: {} acknowledgements: {}",
            acks.len(),
            acks.join("; ")
        );
        // Leftovers of the last round may make a firing of their own first: wait for the
        // one that includes this round's updates.
        loop {
            let seen = tokio::time::timeout(DEADLINE, firings.recv())
                .await
                .ok()
                .flatten()
                .ok_or_else(|| {
                    mpreg::Error::Config(format!("round {round}: the handler never fired"))
                })?;
            if seen.iter().any(|(_, r)| *r == round) {
                break;
            }
        }
        println!("round {round}: done");
    }
    for w in workers {
        w.shutdown().await;
    }
    master.shutdown().await;
    Ok(())
}

async fn run_worker() -> mpreg::Result<()> {
    let incoming = mpreg::receive().await?;
    tokio::select! {
        _ = work(incoming, None) => {}
        _ = mpreg::shutdown_signal() => {}
    }
    Ok(())
}

#[tokio::main]
async fn main() {
    let worker = std::env::args().nth(1).as_deref() == Some("worker");
    let result = if worker {
        run_worker().await
    } else {
        run_all().await
    };
    if let Err(e) = result {
        eprintln!("maro_round: {e}");
        std::process::exit(1);
    }
}
