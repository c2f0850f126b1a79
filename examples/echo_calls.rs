//! A client program that makes N calls of the built-in `echo` as fast as it can with a few
//! in flight, then prints one JSON summary: a load generator for tests and demos of the
//! node metrics (`/metrics`, `_metrics`).
//!
//! ```text
//! MPREG_INTERFACES=lo cargo run --example echo_calls -- 1000 8 3
//! ```
//!
//! `echo_calls N [IN_FLIGHT] [PROVIDERS]` finds the cluster like every mpreg program
//! (`MPREG_*` variables: seeds, interfaces, discovery...), waits until it knows `PROVIDERS`
//! (default 1) members offering `echo`, makes `N` calls `echo(i)` with `IN_FLIGHT`
//! (default 8) at a time, checks every answer, and prints
//! `{"ok","failed","elapsed_ms","by_node":{NODE: calls}}`. It exits non-zero if a call
//! failed or answered wrongly.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::json;

/// Longest wait for the providers to be known.
const PROVIDERS_WAIT: Duration = Duration::from_secs(30);

fn usage() -> mpreg::Error {
    mpreg::Error::Config("usage: echo_calls N [IN_FLIGHT] [PROVIDERS]".into())
}

fn arg<T: std::str::FromStr>(v: Option<String>, default: Option<T>) -> mpreg::Result<T> {
    match v {
        Some(s) => s.parse().map_err(|_| usage()),
        None => default.ok_or_else(usage),
    }
}

/// One of the in-flight slots: takes the next call number until `n` are taken.
async fn worker(
    node: mpreg::Node,
    next: Arc<AtomicU64>,
    n: u64,
    by_node: Arc<Mutex<BTreeMap<String, u64>>>,
) -> u64 {
    let mut failed = 0;
    loop {
        let i = next.fetch_add(1, Relaxed);
        if i >= n {
            return failed;
        }
        match node.request("echo").args((i,)).send::<u64>().await {
            Ok(r) if r.value == i => *by_node.lock().entry(r.node).or_default() += 1,
            Ok(r) => {
                eprintln!("echo({i}) answered {} by {}", r.value, r.node);
                failed += 1;
            }
            Err(e) => {
                eprintln!("echo({i}) failed: {e}");
                failed += 1;
            }
        }
    }
}

#[tokio::main]
async fn main() -> mpreg::Result<()> {
    mpreg::init_logging_with("warn");
    let mut args = std::env::args().skip(1);
    let n: u64 = arg(args.next(), None)?;
    let in_flight: usize = arg(args.next(), Some(8))?;
    let providers: usize = arg(args.next(), Some(1))?;
    let node = mpreg::Node::builder()
        .config(mpreg::Config::load()?)
        .listen(false)
        .builtins(false)
        .start()
        .await?;
    node.wait_for_providers("echo", providers, PROVIDERS_WAIT)
        .await?;
    let began = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let by_node = Arc::new(Mutex::new(BTreeMap::new()));
    let workers: Vec<_> = (0..in_flight.max(1))
        .map(|_| tokio::spawn(worker(node.clone(), next.clone(), n, by_node.clone())))
        .collect();
    let mut failed = 0;
    for w in workers {
        failed += w.await.unwrap_or(1);
    }
    let elapsed_ms = began.elapsed().as_secs_f64() * 1000.0;
    let by_node = by_node.lock().clone();
    let ok: u64 = by_node.values().sum();
    println!(
        "{}",
        json!({"ok": ok, "failed": failed, "elapsed_ms": elapsed_ms, "by_node": by_node})
    );
    node.shutdown().await;
    if failed > 0 {
        return Err(mpreg::Error::Config(format!(
            "{failed} of {n} calls failed"
        )));
    }
    Ok(())
}
