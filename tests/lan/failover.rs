//! Calls keep working while a provider dies or is cut off (issue #12, DESIGN §4): a
//! function served on hosts 1 and 2 (`work(ms)` of the `lab_node` example), called from
//! host 3 by a client program keeping 200 calls in flight (`load_client`, not a member), and
//! by `mpreg call` run in a loop (a fresh process each time).
//!
//! - kill -9 of host 2's provider: the calls in flight on it fail with "node lost" within
//!   1 s, and every call started ≥ 1 s after the kill succeeds on host 1;
//! - host 2's link cut: the calls in flight on it fail within 3 s (not at their deadline),
//!   later calls succeed; after the heal host 2 serves again within 3 s;
//! - `mpreg call` in a loop: an invocation in flight at the kill or cut may fail (as above),
//!   every later invocation succeeds, none taking longer than those limits; after the heal
//!   host 2 serves again within 3 s.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{example, figure, unix_ms, wait_until, Lan, LanProc, PORT};

/// How long one `work` call of the load client takes on the provider.
const LOAD_WORK_MS: &str = "20";
/// Calls the load client keeps in flight.
const IN_FLIGHT: &str = "200";
/// Failure lines the load client prints at most (its `MAX_FAIL_LINES`).
const MAX_FAIL_LINES: u64 = 5_000;
/// How long one `work` call of `mpreg call` takes: long enough that an invocation is often
/// in flight at the kill or cut.
const CLI_WORK_MS: &str = "300";

/// The kill is noticed by the calls on the killed node within this (asserted).
const KILL_LIMIT_MS: u64 = 1_000;
/// A cut link is noticed by the calls on it within this (asserted), and a healed host
/// serves again within it.
const CUT_LIMIT_MS: u64 = 3_000;

/// How long the client keeps calling after a kill, and a cut lasts: long enough for calls
/// started well after the limits above.
const OBSERVE: Duration = Duration::from_secs(4);

/// Longest wait for something that should take a second or two.
const SETTLE: Duration = Duration::from_secs(20);

/// The text of a "node lost" error (`Error::NodeLost`).
const NODE_LOST: &str = "was lost";

/// `lab_node` named `name` on host `i`, with zero-config discovery (the LAN's default).
fn provider(lan: &Lan, i: usize, name: &str) -> LanProc {
    let port = PORT.to_string();
    let envs = [("MPREG_NAME", name), ("MPREG_PORT", port.as_str())];
    let mut p = lan.spawn_program(i, &example("lab_node"), &[], &envs);
    p.wait_for_line(&format!("serving {name} on "), SETTLE);
    p
}

/// The load client on host 3, once both providers have answered it.
fn load_client(lan: &Lan) -> LanProc {
    // Stopped with SIGTERM by the test; the duration is only a backstop.
    let args = ["work", LOAD_WORK_MS, "120", IN_FLIGHT, "2"];
    let mut c = lan.spawn_program(3, &example("load_client"), &args, &[]);
    c.wait_for_line("ready 2", SETTLE);
    c.wait_for_line("serving node1 ", SETTLE);
    c.wait_for_line("serving node2 ", SETTLE);
    c
}

/// One failed call of the load client.
#[derive(Debug)]
struct Failure {
    start: u64,
    end: u64,
    error: String,
}

/// What the load client printed once stopped: its failures and its summary.
struct Report {
    failures: Vec<Failure>,
    summary: Value,
    /// `serving NODE START_MS` lines: when each node answered again after a gap.
    serving: Vec<(String, u64)>,
}

/// Stops the load client (SIGTERM: its running calls finish, up to their deadline) and
/// parses what it printed.
fn stop(mut c: LanProc) -> Report {
    c.term();
    let status = c.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "load client failed\n{}", c.logs());
    let out = c.stdout();
    let mut failures = Vec::new();
    let mut serving = Vec::new();
    let mut summary = None;
    for line in out.lines() {
        if let Some(rest) = line.strip_prefix("fail ") {
            let mut parts = rest.splitn(3, ' ');
            let mut num = || parts.next().and_then(|x| x.parse().ok()).expect(line);
            let (start, end) = (num(), num());
            let error = rest.splitn(3, ' ').nth(2).unwrap_or_default().to_string();
            failures.push(Failure { start, end, error });
        } else if let Some(rest) = line.strip_prefix("serving ") {
            let (node, t) = rest.split_once(' ').expect(line);
            serving.push((node.to_string(), t.parse().expect(line)));
        } else if line.starts_with('{') {
            summary = Some(serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")));
        }
    }
    let summary: Value = summary.unwrap_or_else(|| panic!("no summary\n{}", c.logs()));
    let failed = summary["failed"].as_u64().expect("failed");
    // The client prints its first failures only: a broken cluster fails millions of calls.
    assert_eq!(
        failures.len() as u64,
        failed.min(MAX_FAIL_LINES),
        "failure lines (summary: {summary})"
    );
    Report {
        failures,
        summary,
        serving,
    }
}

/// Answered calls per second of the client from `from_s` to `to_s` (unix seconds) inclusive.
fn ok_per_s(r: &Report, from_s: u64, to_s: u64) -> Vec<u64> {
    (from_s..=to_s)
        .map(|s| r.summary["ok_per_s"][s.to_string()].as_u64().unwrap_or(0))
        .collect()
}

/// Asserts what the issue demands of the failures around an event at `t0` (a kill or a
/// cut): those of calls started before it are node2's "node lost"; all end within `limit`
/// of it; no answered call took longer than `limit`; no call started `limit` or more after
/// it fails, and node1 kept answering.
fn check_failures(r: &Report, what: &str, t0: u64, limit: u64) {
    let s = &r.summary;
    let failed = s["failed"].as_u64().unwrap_or(0);
    for f in r.failures.iter().filter(|f| f.start < t0) {
        assert!(
            f.error.contains(NODE_LOST) && f.error.contains("node2"),
            "{what}: a call in flight failed with another error than \"node `node2` was lost\": {f:?}"
        );
    }
    // The summary's bounds cover every failure, printed or not.
    let last_end = s["last_fail_end_ms"].as_u64().unwrap_or(0);
    let example = |late: &dyn Fn(&Failure) -> bool| r.failures.iter().find(|f| late(f));
    assert!(
        failed == 0 || last_end <= t0 + limit,
        "{what}: of {failed} failed calls, the last failed {} ms after it (limit {limit} ms), e.g. {:?}",
        last_end.saturating_sub(t0),
        example(&|f| f.end > t0 + limit)
    );
    let last_start = s["last_fail_start_ms"].as_u64().unwrap_or(0);
    assert!(
        failed == 0 || last_start < t0 + limit,
        "{what}: of {failed} failed calls, some started {limit} ms or more after it (the last \
         {} ms after), e.g. {:?}",
        last_start.saturating_sub(t0),
        example(&|f| f.start >= t0 + limit)
    );
    // A call that hung on the lost node and was answered after all (e.g. once a cut link
    // came back) was not failed "at once" either.
    let slowest = s["slowest_ok_ms"].as_u64().unwrap_or(0);
    assert!(
        slowest <= limit,
        "{what}: an answered call took {slowest} ms (started {} ms after it; limit {limit} ms)",
        s["slowest_ok_start_ms"].as_u64().unwrap_or(0) as i64 - t0 as i64
    );
    let node1_last = s["last_answer_ms"]["node1"].as_u64().unwrap_or(0);
    assert!(
        node1_last > t0 + limit,
        "{what}: node1 answered no call started {limit} ms or more after it: {s}"
    );
}

/// Time from `t0` to the end of the last failed call, for figures.
fn last_failure_after(r: &Report, t0: u64) -> String {
    match r.summary["last_fail_end_ms"].as_u64() {
        Some(end) => (end as i64 - t0 as i64).to_string(),
        None => "none".into(),
    }
}

#[test]
#[ignore = "needs root (network namespaces): sudo -E cargo test --test lan -- --ignored"]
fn failover_after_kill() {
    let Some(lan) = Lan::new("failover_kill", 3) else {
        return;
    };
    let _p1 = provider(&lan, 1, "node1");
    let mut p2 = provider(&lan, 2, "node2");
    let client = load_client(&lan);
    let kill = unix_ms();
    p2.kill9();
    // The observation window (a measurement, not a synchronisation).
    std::thread::sleep(OBSERVE);
    let r = stop(client);
    figure("kill_failed_calls", &r.summary["failed"]);
    figure("kill_last_failure_ms", last_failure_after(&r, kill));
    figure("kill_answered_calls", &r.summary["ok"]);
    figure("kill_slowest_answered_ms", &r.summary["slowest_ok_ms"]);
    let (k, end) = (kill / 1000, (kill + OBSERVE.as_millis() as u64) / 1000);
    figure("kill_ok_per_s", format!("{:?}", ok_per_s(&r, k, end)));
    check_failures(&r, "kill -9 of node2", kill, KILL_LIMIT_MS);
}

#[test]
#[ignore = "needs root (network namespaces): sudo -E cargo test --test lan -- --ignored"]
fn failover_after_cut_and_heal() {
    let Some(lan) = Lan::new("failover_cut", 3) else {
        return;
    };
    let _p1 = provider(&lan, 1, "node1");
    let _p2 = provider(&lan, 2, "node2");
    let client = load_client(&lan);
    let cut = unix_ms();
    lan.cut(2);
    std::thread::sleep(OBSERVE);
    let heal = unix_ms();
    lan.heal(2);
    let back_after_heal = |c: &LanProc| {
        c.stdout().lines().find_map(|l| {
            let t: u64 = l.strip_prefix("serving node2 ")?.parse().ok()?;
            (t >= heal).then(|| t - heal)
        })
    };
    // Not asserted here: the failures around the cut are checked first, as they come first.
    let deadline = Instant::now() + SETTLE;
    while back_after_heal(&client).is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let back = back_after_heal(&client);
    let r = stop(client);
    figure("cut_failed_calls", &r.summary["failed"]);
    figure("cut_last_failure_ms", last_failure_after(&r, cut));
    figure("cut_answered_calls", &r.summary["ok"]);
    figure("cut_slowest_answered_ms", &r.summary["slowest_ok_ms"]);
    figure(
        "heal_node2_serving_ms",
        back.map_or("never".into(), |b| b.to_string()),
    );
    check_failures(&r, "cut of host 2", cut, CUT_LIMIT_MS);
    let back = back.unwrap_or_else(|| panic!("node2 never served after the heal: {:?}", r.serving));
    assert!(
        back <= CUT_LIMIT_MS,
        "node2 served again {back} ms after the heal"
    );
}

/// One `mpreg call` invocation of the loop.
#[derive(Debug)]
struct Invocation {
    start: u64,
    end: u64,
    /// The answering node, or the error.
    outcome: Result<String, String>,
}

/// Runs `mpreg call --json work MS` on host 3 back to back until `stop` is set; each
/// invocation is recorded as it ends.
fn call_loop(lan: &Lan, stop: &AtomicBool, log: &Log) {
    while !stop.load(Ordering::Relaxed) {
        let start = unix_ms();
        let out = lan.run(
            3,
            &["call", "--json", "--timeout", "10", "work", CLI_WORK_MS],
            &[],
        );
        let end = unix_ms();
        let outcome = if out.status.success() {
            let v: Value = serde_json::from_slice(&out.stdout)
                .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
            Ok(v["node"].as_str().unwrap_or_default().to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        };
        log.push(Invocation {
            start,
            end,
            outcome,
        });
    }
}

/// The loop's invocations, shared between the loop thread and the test.
#[derive(Default)]
struct Log(Mutex<Vec<Invocation>>);

impl Log {
    fn push(&self, i: Invocation) {
        self.lock().push(i);
    }

    /// Whether some invocation matches `f`.
    fn any(&self, f: impl Fn(&Invocation) -> bool) -> bool {
        self.lock().iter().any(f)
    }

    fn take(&self) -> Vec<Invocation> {
        std::mem::take(&mut *self.lock())
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Invocation>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Whether `i` was answered by `node` and started at or after `t`.
fn served_by(i: &Invocation, node: &str, t: u64) -> bool {
    i.start >= t && i.outcome.as_deref() == Ok(node)
}

/// Asserts the loop's invocations around an event at `t0`: the one in flight at `t0` ends
/// within `limit` (it may fail, with "node lost"); every invocation started after it
/// succeeds, none taking longer than `limit`.
fn check_invocations(log: &[Invocation], what: &str, t0: u64, limit: u64) {
    for i in log.iter().filter(|i| i.start < t0 && i.end > t0) {
        // On node2 it fails with "node lost", on node1 it succeeds; either way at once,
        // not at its deadline.
        assert!(
            i.end <= t0 + limit,
            "{what}: the invocation in flight ended {} ms after it (limit {limit} ms): {i:?}",
            i.end - t0
        );
        if let Err(e) = &i.outcome {
            assert!(
                e.contains(NODE_LOST),
                "{what}: the invocation in flight failed with: {e}"
            );
        }
    }
    // A fresh process may still see node2 listed and try it: it must move on at once,
    // not hang until the link comes back or the deadline.
    let slow: Vec<&Invocation> = log
        .iter()
        .filter(|i| i.start >= t0 && i.end - i.start > limit)
        .collect();
    assert!(
        slow.is_empty(),
        "{what}: {} later invocations took over {limit} ms, e.g. {:?}",
        slow.len(),
        slow.first()
    );
    let failed: Vec<&Invocation> = log
        .iter()
        .filter(|i| i.start >= t0 && i.outcome.is_err())
        .collect();
    assert!(
        failed.is_empty(),
        "{what}: {} of {} later invocations failed, e.g. {:?}",
        failed.len(),
        log.iter().filter(|i| i.start >= t0).count(),
        failed.first()
    );
}

/// Figures of the loop after an event at `t0`.
fn loop_figures(log: &[Invocation], prefix: &str, t0: u64) {
    let after: Vec<&Invocation> = log.iter().filter(|i| i.start >= t0).collect();
    figure(&format!("{prefix}_invocations_after"), after.len());
    figure(
        &format!("{prefix}_failed_invocations"),
        log.iter()
            .filter(|i| i.end > t0 && i.outcome.is_err())
            .count(),
    );
    let slowest = after.iter().map(|i| i.end - i.start).max().unwrap_or(0);
    figure(&format!("{prefix}_slowest_invocation_after_ms"), slowest);
}

#[test]
#[ignore = "needs root (network namespaces): sudo -E cargo test --test lan -- --ignored"]
fn cli_loop_failover_after_kill() {
    let Some(lan) = Lan::new("failover_cli_kill", 3) else {
        return;
    };
    let _p1 = provider(&lan, 1, "node1");
    let mut p2 = provider(&lan, 2, "node2");
    let (stop, log) = (AtomicBool::new(false), Log::default());
    let (kill, log) = std::thread::scope(|s| {
        let looping = s.spawn(|| call_loop(&lan, &stop, &log));
        // Both providers answer before the kill: the loop really chooses among them.
        wait_until(SETTLE, || {
            log.any(|i| served_by(i, "node1", 0)) && log.any(|i| served_by(i, "node2", 0))
        });
        let kill = unix_ms();
        p2.kill9();
        std::thread::sleep(OBSERVE);
        stop.store(true, Ordering::Relaxed);
        looping.join().expect("loop thread");
        (kill, log.take())
    });
    loop_figures(&log, "cli_kill", kill);
    check_invocations(&log, "kill -9 of node2", kill, KILL_LIMIT_MS);
}

#[test]
#[ignore = "needs root (network namespaces): sudo -E cargo test --test lan -- --ignored"]
fn cli_loop_failover_after_cut_and_heal() {
    let Some(lan) = Lan::new("failover_cli_cut", 3) else {
        return;
    };
    let _p1 = provider(&lan, 1, "node1");
    let _p2 = provider(&lan, 2, "node2");
    let (stop, log) = (AtomicBool::new(false), Log::default());
    let (cut, heal, back, log) = std::thread::scope(|s| {
        let looping = s.spawn(|| call_loop(&lan, &stop, &log));
        wait_until(SETTLE, || {
            log.any(|i| served_by(i, "node1", 0)) && log.any(|i| served_by(i, "node2", 0))
        });
        let cut = unix_ms();
        lan.cut(2);
        std::thread::sleep(OBSERVE);
        let heal = unix_ms();
        lan.heal(2);
        // Checked after the failures, which come first.
        let deadline = Instant::now() + SETTLE;
        while !log.any(|i| served_by(i, "node2", heal)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        stop.store(true, Ordering::Relaxed);
        looping.join().expect("loop thread");
        let log = log.take();
        let back = log
            .iter()
            .filter(|i| served_by(i, "node2", heal))
            .map(|i| i.start - heal)
            .min();
        (cut, heal, back, log)
    });
    loop_figures(&log, "cli_cut", cut);
    figure(
        "cli_heal_node2_serving_ms",
        back.map_or("never".into(), |b| b.to_string()),
    );
    check_invocations(&log, "cut of host 2", cut, CUT_LIMIT_MS);
    let back = back.unwrap_or_else(|| panic!("node2 never served after the heal at {heal}"));
    assert!(
        back <= CUT_LIMIT_MS,
        "node2 served again {back} ms after the heal"
    );
}
