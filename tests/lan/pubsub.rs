//! Pub/sub across hosts (DESIGN §9): subscribers on two hosts get exactly the publications
//! matching their patterns, in publish order, from a publisher on a third; nodes without a
//! matching subscription receive nothing; a queue group spread over three hosts gets each
//! message exactly once.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::Value;

use crate::harness::{example, wait_until, Lan, LanProc};

const QUIET: [&str; 2] = ["--no-mdns", "--no-beacon"];
const QUIET_ENV: [(&str, &str); 2] = [("MPREG_MDNS", "0"), ("MPREG_BEACON", "0")];

/// `mpreg sub ARGS` on host `i`, seeded with host 1, once it says it subscribed.
fn sub(lan: &Lan, i: usize, name: &str, args: &[&str]) -> LanProc {
    let seed = lan.seed(1);
    let mut all = vec!["sub", QUIET[0], QUIET[1], "--seed", seed.as_str()];
    all.extend_from_slice(args);
    let mut p = lan.spawn(i, &all, &[("MPREG_NAME", name)]);
    wait_until(Duration::from_secs(20), || {
        p.stderr().contains("subscribed to") || p.has_exited()
    });
    assert!(p.stderr().contains("subscribed to"), "{}", p.logs());
    p
}

/// The `"i"` of every publication `p` printed, in order, with its topic.
fn received(p: &LanProc) -> Vec<(String, u64)> {
    p.stdout()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            (
                v["topic"].as_str().unwrap().to_string(),
                v["payload"]["i"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// `publications_received` of member `name` as `mpreg nodes --json` on host `i` shows it.
fn received_count(lan: &Lan, i: usize, name: &str) -> u64 {
    let view = lan.view_with_stats(i, 1);
    let m = view
        .iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("{name} not listed"));
    m.json["stats"]["publications_received"]
        .as_u64()
        .expect("stats listed")
}

/// Waits until the cluster's membership, as host `i` learns it from host 1, lists every
/// `(name, subscription)`: a fresh publisher learns subscribers from that list.
fn listed(lan: &Lan, i: usize, subs: &[(&str, &str)]) {
    wait_until(Duration::from_secs(20), || {
        let view = lan.view(i, 1);
        subs.iter().all(|(name, sub)| {
            view.iter().any(|m| {
                m.name == *name
                    && m.json["subscriptions"]
                        .as_array()
                        .is_some_and(|a| a.iter().any(|s| s == sub))
            })
        })
    });
}

fn publish(lan: &Lan, i: usize, n: &str, topics: &[&str]) {
    let seed = lan.seed(1);
    let envs = [QUIET_ENV[0], QUIET_ENV[1], ("MPREG_SEEDS", seed.as_str())];
    let mut args = vec![n];
    args.extend_from_slice(topics);
    let mut p = lan.spawn_program(i, &example("sensor_feed"), &args, &envs);
    p.wait_for_line(&format!("published {n}"), Duration::from_secs(30));
    assert!(
        p.wait_exit(Duration::from_secs(10)).success(),
        "{}",
        p.logs()
    );
}

#[test]
#[ignore = "needs root (network namespaces): sudo -E cargo test --test lan -- --ignored"]
fn subscribers_on_two_hosts_get_exactly_their_matches_in_order() {
    let Some(lan) = Lan::new("pubsub_matching", 3) else {
        return;
    };
    let _hub = lan.serve(1, "hub1", &QUIET);
    let _idle = lan.serve_with(2, "idle2", &QUIET, &[("MPREG_SEEDS", &lan.seed(1))]);
    let temps = sub(&lan, 1, "temps1", &["sensors.*.temp", "--count", "100"]);
    let all = sub(&lan, 2, "sensors2", &["sensors.**", "--count", "150"]);
    listed(
        &lan,
        3,
        &[("temps1", "sensors.*.temp"), ("sensors2", "sensors.**")],
    );
    publish(&lan, 3, "200", &[]);
    let topics = [
        "sensors.kitchen.temp",
        "sensors.kitchen.hum",
        "sensors.lab.temp",
        "other.x",
    ];
    let expected = |keep: &dyn Fn(&str) -> bool| -> Vec<(String, u64)> {
        (0..200u64)
            .map(|i| (topics[i as usize % 4].to_string(), i))
            .filter(|(t, _)| keep(t))
            .collect()
    };
    let want_temps = expected(&|t| t.ends_with(".temp"));
    let want_all = expected(&|t| t.starts_with("sensors."));
    wait_until(Duration::from_secs(20), || {
        received(&temps).len() == want_temps.len() && received(&all).len() == want_all.len()
    });
    assert_eq!(
        received(&temps),
        want_temps,
        "host 1: `sensors.*.temp`, in publish order"
    );
    assert_eq!(
        received(&all),
        want_all,
        "host 2: `sensors.**`, in publish order"
    );
    for (host, name) in [(1, "hub1"), (2, "idle2")] {
        assert_eq!(
            received_count(&lan, host, name),
            0,
            "{name} subscribes to nothing"
        );
    }
}

#[test]
#[ignore = "needs root (network namespaces): sudo -E cargo test --test lan -- --ignored"]
fn a_queue_group_across_three_hosts_gets_each_message_once() {
    let Some(lan) = Lan::new("pubsub_group", 4) else {
        return;
    };
    let _hub = lan.serve(1, "hub", &QUIET);
    let group = ["jobs.*", "--group", "workers", "--timeout", "60"];
    let members: Vec<LanProc> = (1..=3)
        .map(|i| sub(&lan, i, &format!("worker{i}"), &group))
        .collect();
    let group_sub = "jobs.* (workers)";
    listed(
        &lan,
        4,
        &[
            ("worker1", group_sub),
            ("worker2", group_sub),
            ("worker3", group_sub),
        ],
    );
    publish(&lan, 4, "1000", &["jobs.render"]);
    let counts = || {
        members
            .iter()
            .map(|m| received(m).len())
            .collect::<Vec<_>>()
    };
    wait_until(Duration::from_secs(20), || {
        counts().iter().sum::<usize>() >= 1000
    });
    let mut seen = HashSet::new();
    for m in &members {
        for (_, i) in received(m) {
            assert!(seen.insert(i), "message {i} delivered twice");
        }
    }
    let c = counts();
    println!("LAN figure: queue_group_split={c:?}");
    assert_eq!(c.iter().sum::<usize>(), 1000, "{c:?}");
    assert_eq!(seen.len(), 1000);
    assert!(
        c.iter().all(|&n| n > 0),
        "members on equal footing take turns: {c:?}"
    );
}
