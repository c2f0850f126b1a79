//! A client program (not a cluster member: it does not listen) that keeps many calls in
//! flight for a while, as a load generator or a script would, and reports every failure.
//!
//! ```text
//! MPREG_INTERFACES=lo cargo run --example load_client -- work 20 10 200 2
//! ```
//!
//! `load_client FUN MS SECS [IN_FLIGHT] [PROVIDERS]` finds the cluster like every mpreg
//! program (`MPREG_*` variables: interfaces, seeds, discovery...), waits until it knows
//! `PROVIDERS` (default 1) providers of `FUN`, then keeps `IN_FLIGHT` (default 200) calls
//! `FUN(MS)` in flight for `SECS` seconds or until SIGTERM/Ctrl-C, and waits for the calls
//! still running. It prints:
//! - `ready PROVIDERS` once the providers are known;
//! - `serving NODE START_MS` when a node answers a call and had answered none in the
//!   previous second (its first answer, or its return after a gap);
//! - `fail START_MS END_MS ERROR` for each failed call (unix milliseconds; the first
//!   [`MAX_FAIL_LINES`] only, the summary counts them all);
//! - a final JSON summary: `{"ok", "failed", "by_node", "last_answer_ms" (per node, the
//!   start of its latest answered call), "ok_per_s" (answered calls by the unix second they
//!   started in), "slowest_ok_ms" and "slowest_ok_start_ms" (the longest answered call),
//!   "first_fail_start_ms", "last_fail_start_ms", "last_fail_end_ms",
//!   "elapsed_ms"}`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use serde_json::json;

/// Failure lines printed at most (a broken cluster could fail millions of calls).
const MAX_FAIL_LINES: u64 = 5_000;

/// A node that answered nothing for this long is announced again when it answers.
const GAP_MS: u64 = 1_000;

/// Longest wait for the providers to be known.
const PROVIDERS_WAIT: Duration = Duration::from_secs(30);

/// Deadline of each call: long enough that a call hanging on a dead link is visible as
/// such (it would fail only here), short enough that the client always finishes.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// What the workers saw, shared between them.
#[derive(Default)]
struct Tally {
    ok: u64,
    failed: u64,
    by_node: BTreeMap<String, u64>,
    /// Unix ms of each node's latest answered call's start.
    last_answer: BTreeMap<String, u64>,
    /// The longest answered call: (duration, start), unix ms.
    slowest_ok: (u64, u64),
    /// Answered calls by the second (unix) they started in.
    ok_per_s: BTreeMap<u64, u64>,
    first_fail_start: Option<u64>,
    last_fail_start: Option<u64>,
    last_fail_end: Option<u64>,
}

impl Tally {
    fn success(&mut self, node: String, start: u64, end: u64) {
        self.ok += 1;
        self.slowest_ok = self.slowest_ok.max((end - start, start));
        *self.ok_per_s.entry(start / 1000).or_default() += 1;
        *self.by_node.entry(node.clone()).or_default() += 1;
        let previous = self.last_answer.get(&node).copied();
        if previous.is_none_or(|p| start > p + GAP_MS) {
            println!("serving {node} {start}");
        }
        // Calls end out of order: keep the latest start seen.
        let latest = previous.map_or(start, |p| p.max(start));
        self.last_answer.insert(node, latest);
    }

    fn failure(&mut self, start: u64, end: u64, error: &str) {
        self.failed += 1;
        if self.failed <= MAX_FAIL_LINES {
            // One line per failure, whatever the error text holds.
            println!("fail {start} {end} {}", error.replace('\n', " "));
        }
        self.first_fail_start = Some(self.first_fail_start.map_or(start, |f| f.min(start)));
        self.last_fail_start = Some(self.last_fail_start.map_or(start, |l| l.max(start)));
        self.last_fail_end = Some(self.last_fail_end.map_or(end, |l| l.max(end)));
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn usage() -> mpreg::Error {
    mpreg::Error::Config("usage: load_client FUN MS SECS [IN_FLIGHT] [PROVIDERS]".into())
}

fn arg<T: std::str::FromStr>(v: Option<String>, default: Option<T>) -> mpreg::Result<T> {
    match v {
        Some(s) => s.parse().map_err(|_| usage()),
        None => default.ok_or_else(usage),
    }
}

/// One of the in-flight slots: calls back to back until `until`.
async fn worker(
    node: mpreg::Node,
    fun: Arc<str>,
    ms: u64,
    until: tokio::time::Instant,
    stop: tokio::sync::watch::Receiver<bool>,
    tally: Arc<Mutex<Tally>>,
) {
    while tokio::time::Instant::now() < until && !*stop.borrow() {
        let start = unix_ms();
        let r = node
            .request(&fun)
            .args((ms,))
            .timeout(CALL_TIMEOUT)
            .send::<u64>()
            .await;
        let end = unix_ms();
        match r {
            Ok(resp) => tally.lock().success(resp.node, start, end),
            Err(e) => tally.lock().failure(start, end, &e.to_string()),
        }
    }
}

#[tokio::main]
async fn main() -> mpreg::Result<()> {
    mpreg::init_logging_with("warn");
    let mut args = std::env::args().skip(1);
    let fun: Arc<str> = arg::<String>(args.next(), None)?.into();
    let ms: u64 = arg(args.next(), None)?;
    let secs: f64 = arg(args.next(), None)?;
    let in_flight: usize = arg(args.next(), Some(200))?;
    let providers: usize = arg(args.next(), Some(1))?;
    let node = mpreg::Node::builder()
        .config(mpreg::Config::load()?)
        .listen(false)
        .builtins(false)
        .start()
        .await?;
    let have = node
        .wait_for_providers(&fun, providers, PROVIDERS_WAIT)
        .await?;
    println!("ready {have}");
    let began = Instant::now();
    let until = tokio::time::Instant::now() + Duration::from_secs_f64(secs);
    let tally = Arc::new(Mutex::new(Tally::default()));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // SIGTERM ends the run early: no new calls, the running ones finish.
    let stopper = tokio::spawn(async move {
        mpreg::shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let workers: Vec<_> = (0..in_flight)
        .map(|_| {
            tokio::spawn(worker(
                node.clone(),
                fun.clone(),
                ms,
                until,
                stop_rx.clone(),
                tally.clone(),
            ))
        })
        .collect();
    for w in workers {
        let _ = w.await;
    }
    stopper.abort();
    let summary = {
        let t = tally.lock();
        json!({
            "ok": t.ok,
            "failed": t.failed,
            "by_node": t.by_node,
            "last_answer_ms": t.last_answer,
            "ok_per_s": t.ok_per_s,
            "slowest_ok_ms": t.slowest_ok.0,
            "slowest_ok_start_ms": t.slowest_ok.1,
            "first_fail_start_ms": t.first_fail_start,
            "last_fail_start_ms": t.last_fail_start,
            "last_fail_end_ms": t.last_fail_end,
            "elapsed_ms": began.elapsed().as_millis() as u64,
        })
    };
    println!("{summary}");
    node.shutdown().await;
    Ok(())
}
