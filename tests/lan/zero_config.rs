//! Calls with no address: a fresh client finds a node by itself — with mDNS and the beacon
//! (the default), with the beacon alone, and through a seed when both are off — and never
//! sees nodes of another cluster.

use std::time::Duration;

use serde_json::Value;

use crate::harness::{presence, show_output, wait_until, Lan, Member, Presence};

/// How long discovery may take before `mpreg nodes` must list a node; generous, since this
/// checks that discovery works, not how fast (`latency` and `failure` measure that).
const DISCOVERY_LIMIT: Duration = Duration::from_secs(10);

#[test]
#[ignore = "needs root (network namespaces): sudo -E cargo test --test lan -- --ignored"]
fn zero_config_call() {
    let Some(lan) = Lan::new("zero_config_call", 4) else {
        return;
    };
    all_discovery(&lan);
    beacon_only(&lan);
    seeds_only(&lan);
    other_cluster_is_invisible(&lan);
}

/// The default: mDNS and beacon. `mpreg nodes` from a third host lists both servers with
/// the documented fields.
fn all_discovery(lan: &Lan) {
    let _n1 = lan.serve(1, "node1", &["--resources", "r1"]);
    let _n2 = lan.serve(2, "node2", &["--resources", "r2"]);
    assert_eq!(lan.run_ok(3, &["call", "echo", "hi"], &[]), "\"hi\"");
    let view = wait_for_members(lan, 3, &[], &["node1", "node2"], None);
    for (host, name, resource) in [(1, "node1", "r1"), (2, "node2", "r2")] {
        let m = view.iter().find(|m| m.name == name).expect("listed");
        check_member(lan, m, host, resource);
    }
}

/// The beacon alone (`--no-mdns` on every process).
fn beacon_only(lan: &Lan) {
    let _n1 = lan.serve(1, "node1", &["--resources", "r1", "--no-mdns"]);
    let _n2 = lan.serve(2, "node2", &["--resources", "r2", "--no-mdns"]);
    let out = lan.run_ok(3, &["call", "--no-mdns", "echo", "hi"], &[]);
    assert_eq!(out, "\"hi\"", "beacon only");
}

/// No discovery at all: a seed works, and without one a client finds nothing (proving the
/// flags really switch discovery off).
fn seeds_only(lan: &Lan) {
    let off = ["--no-mdns", "--no-beacon"];
    let _n1 = lan.serve(1, "node1", &["--resources", "r1", off[0], off[1]]);
    let _n2 = lan.serve(2, "node2", &["--resources", "r2", off[0], off[1]]);
    let seed = lan.seed(1);
    let out = lan.run_ok(
        3,
        &["call", off[0], off[1], "--seed", &seed, "echo", "hi"],
        &[],
    );
    assert_eq!(out, "\"hi\"", "seeds only");
    let out = lan.run(3, &["call", off[0], off[1], "echo", "hi"], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "found a node with discovery off\n{}",
        show_output(&out)
    );
    assert_eq!(err.trim().lines().count(), 1, "a one-line error: {err}");
}

/// A node of cluster `other` on host 4, which clients of `other` do find, is never listed
/// nor called by the default cluster — and the other cluster does not see ours.
fn other_cluster_is_invisible(lan: &Lan) {
    let _other = lan.serve(4, "other4", &["--cluster", "other"]);
    // First prove its advertisements reach host 3: its own cluster finds it from there.
    let v = call_json(lan, 3, &["--cluster", "other"]);
    assert_eq!(v["node"], "other4", "{v}");
    let _n1 = lan.serve(1, "node1", &[]);
    let _n2 = lan.serve(2, "node2", &[]);
    let view = wait_for_members(lan, 3, &[], &["node1", "node2"], Some("other4"));
    assert_eq!(presence(&view, "other4"), Presence::Gone);
    for _ in 0..10 {
        let v = call_json(lan, 3, &[]);
        assert!(v["node"] == "node1" || v["node"] == "node2", "{v}");
    }
    let theirs = wait_for_members(lan, 3, &["--cluster", "other"], &["other4"], Some("node1"));
    assert_eq!(presence(&theirs, "node2"), Presence::Gone, "{theirs:?}");
}

/// Polls `mpreg nodes --json ARGS` on host `i` until every one of `names` is alive,
/// checking on every poll that `never` is not listed. Returns the last view.
fn wait_for_members(
    lan: &Lan,
    i: usize,
    args: &[&str],
    names: &[&str],
    never: Option<&str>,
) -> Vec<Member> {
    let mut view = Vec::new();
    wait_until(DISCOVERY_LIMIT, || {
        view = lan.nodes(i, args, &[]);
        if let Some(n) = never {
            assert!(
                view.iter().all(|m| m.name != n),
                "{n} listed by `mpreg nodes {}`: {view:?}",
                args.join(" ")
            );
        }
        names.iter().all(|n| presence(&view, n) == Presence::Alive)
    });
    view
}

/// `mpreg call --json ARGS echo hi` on host `i`, checked and parsed.
fn call_json(lan: &Lan, i: usize, args: &[&str]) -> Value {
    let mut all = vec!["call", "--json"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["echo", "hi"]);
    let out = lan.run_ok(i, &all, &[]);
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["result"], "hi", "{out}");
    v
}

/// The fields `mpreg nodes --json` promises for a node served on `host` with `resource`.
fn check_member(lan: &Lan, m: &Member, host: usize, resource: &str) {
    let j = &m.json;
    let id = &j["id"];
    assert!(
        id.as_str().is_some_and(|s| !s.is_empty()) || id.is_number(),
        "id: {j}"
    );
    assert_eq!(j["role"], "node", "{j}");
    assert_eq!(j["host"], lan.host_name(host), "{j}");
    // The address others dial, not the wildcard it is bound to.
    assert_eq!(j["addr"], lan.seed(host), "{j}");
    assert_eq!(m.names_in("resources"), [resource], "{j}");
    // `mpreg serve` offers only mpreg's built-ins, listed apart from users' functions.
    assert!(m.names_in("functions").is_empty(), "{j}");
    let builtins = m.names_in("builtins");
    for f in ["_info", "_metrics", "echo", "echos"] {
        assert!(builtins.iter().any(|x| x == f), "{f} not in {j}");
    }
}
