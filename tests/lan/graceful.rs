//! Graceful means lossless (issue #12, DESIGN §5): a member on host 1 publishes 200,000
//! numbered messages as fast as it can, then calls `shutdown()` and exits; a subscriber on
//! host 2 (its queue deep enough for all of them) receives every one, in order — in 10
//! runs out of 10. The publisher is a member, so its shutdown is a SWIM leave that must not
//! overtake the publications still in flight.

use std::time::{Duration, Instant};

use crate::harness::{example, figure, wait_until, Lan, LanProc};

/// Publications per run.
const N: u64 = 200_000;
/// Runs, all of which must be lossless.
const RUNS: usize = 10;
/// Subscriber queue: deeper than a run, so that no publication is dropped for space.
const SUB_QUEUE: &str = "250000";
/// Both ends log their connections and membership changes: a lossy run is explained by
/// its logs (kept when the test fails).
const LOG: (&str, &str) = ("RUST_LOG", "mpreg=info,warn");
/// How long the subscriber may take, after the publisher exited, to print the rest.
const DRAIN: Duration = Duration::from_secs(10);

/// `mpreg sub TOPIC --count N` on host 2, once subscribed.
fn subscriber(lan: &Lan, topic: &str) -> LanProc {
    let count = N.to_string();
    let args = ["sub", topic, "--count", &count];
    let mut s = lan.spawn(2, &args, &[("MPREG_SUB_QUEUE", SUB_QUEUE), LOG]);
    wait_until(Duration::from_secs(20), || {
        s.stderr().contains("subscribed to") || s.has_exited()
    });
    assert!(s.stderr().contains("subscribed to"), "{}", s.logs());
    s
}

/// `sensor_feed --member` publishing N messages on `topic` from host 1, once it knows the
/// subscriber; returns its publishing time in ms, as it printed it.
fn publish(lan: &Lan, topic: &str) -> u64 {
    let n = N.to_string();
    let args = ["--member", "--wait-subscribers", "1", &n, topic];
    let mut p = lan.spawn_program(1, &example("sensor_feed"), &args, &[LOG]);
    let line = p.wait_for_line(&format!("published {N} in "), Duration::from_secs(120));
    let status = p.wait_exit(Duration::from_secs(20));
    assert!(status.success(), "{}", p.logs());
    line.split_whitespace()
        .nth(3)
        .and_then(|ms| ms.parse().ok())
        .unwrap_or_else(|| panic!("no time in {line:?}"))
}

/// The `i` of every publication the subscriber printed, in order.
fn numbers(s: &LanProc) -> Vec<u64> {
    s.stdout()
        .lines()
        .map(|l| {
            // `{"topic":..,"payload":{"i":N},"from":..}`: the number is all we need, and a
            // JSON parse of 200,000 lines per run would dominate the test's time.
            let at = l.find("\"i\":").unwrap_or_else(|| panic!("no i in {l}")) + 4;
            let digits: String = l[at..].chars().take_while(char::is_ascii_digit).collect();
            digits.parse().unwrap_or_else(|e| panic!("{e}: {l}"))
        })
        .collect()
}

/// What went wrong with a run's numbers, if anything.
fn defects(got: &[u64]) -> Option<String> {
    if got.len() as u64 == N && got.iter().zip(0..).all(|(&g, i)| g == i) {
        return None;
    }
    let first_gap = got
        .iter()
        .zip(0..)
        .find(|(&g, i)| g != *i)
        .map(|(&g, i)| (i, g));
    Some(format!(
        "received {} of {N} (lost {}); first out of sequence: {first_gap:?} (position, got)",
        got.len(),
        N.saturating_sub(got.len() as u64)
    ))
}

#[test]
#[ignore = "needs root (network namespaces): sudo -E cargo test --test lan -- --ignored"]
fn a_graceful_publisher_loses_nothing() {
    let Some(lan) = Lan::new("graceful_lossless", 3) else {
        return;
    };
    let _hub = lan.serve(3, "hub3", &[]);
    let mut failed = Vec::new();
    let mut rates = Vec::new();
    let begun = Instant::now();
    for run in 0..RUNS {
        // A topic per run: nothing of an earlier run can be counted in a later one.
        let topic = format!("seq.run{run}");
        let mut sub = subscriber(&lan, &topic);
        let publish_ms = publish(&lan, &topic);
        rates.push(N as f64 / (publish_ms.max(1) as f64 / 1000.0));
        let drained = Instant::now();
        while !sub.has_exited() && drained.elapsed() < DRAIN {
            std::thread::sleep(Duration::from_millis(20));
        }
        sub.kill9();
        if let Some(d) = defects(&numbers(&sub)) {
            eprintln!("run {run}: {d}");
            failed.push((run, d));
        }
    }
    figure(
        "graceful_lossless_runs",
        format!("{}/{RUNS}", RUNS - failed.len()),
    );
    let rates: Vec<String> = rates.iter().map(|r| format!("{r:.0}")).collect();
    figure("graceful_publish_rate_per_s", rates.join(","));
    figure(
        "graceful_total_s",
        format!("{:.1}", begun.elapsed().as_secs_f64()),
    );
    assert!(failed.is_empty(), "lossy runs: {failed:?}");
}
