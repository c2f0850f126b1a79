//! Calls across hosts through explicit seeds, and cluster isolation. These work without
//! any discovery, which is switched off so that which node answers is deterministic.

use serde_json::Value;

use crate::harness::{show_output, Lan};

/// mDNS and beacon off (through the environment, which every mpreg version reads): nodes
/// 1 and 2 never meet, and a client seeded with one of them sees that one only.
const SEEDS_ONLY: &[(&str, &str)] = &[("MPREG_MDNS", "0"), ("MPREG_BEACON", "0")];

#[test]
#[ignore = "needs root (network namespaces): sudo -E cargo test --test lan -- --ignored"]
fn seed_calls_across_hosts() {
    let Some(lan) = Lan::new("seed_calls_across_hosts", 3) else {
        return;
    };
    let _n1 = lan.serve_with(1, "node1", &[], SEEDS_ONLY);
    let _n2 = lan.serve_with(2, "node2", &[], SEEDS_ONLY);
    for (host, node) in [(1, "node1"), (2, "node2")] {
        let seed = lan.seed(host);
        let out = lan.run_ok(3, &["call", "--seed", &seed, "echo", "hi"], SEEDS_ONLY);
        assert_eq!(out, "\"hi\"", "via {seed}");
        let out = lan.run_ok(
            3,
            &["call", "--seed", &seed, "--json", "echo", "hi"],
            SEEDS_ONLY,
        );
        let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
        assert_eq!(v["result"], "hi", "{out}");
        assert_eq!(v["node"], node, "{out}");
        assert!(v["elapsed_ms"].as_f64().is_some_and(|t| t > 0.0), "{out}");
    }
}

#[test]
#[ignore = "needs root (network namespaces): sudo -E cargo test --test lan -- --ignored"]
fn other_cluster_is_refused() {
    let Some(lan) = Lan::new("other_cluster_is_refused", 3) else {
        return;
    };
    let _other = lan.serve_with(2, "other2", &["--cluster", "other"], SEEDS_ONLY);
    let seed = lan.seed(2);
    let out = lan.run(3, &["call", "--seed", &seed, "echo", "hi"], SEEDS_ONLY);
    let err = String::from_utf8_lossy(&out.stderr);
    let err = err.trim();
    assert!(!out.status.success(), "{}", show_output(&out));
    assert!(out.stdout.is_empty(), "{}", show_output(&out));
    assert!(err.contains("cluster mismatch"), "{err}");
    assert_eq!(err.lines().count(), 1, "a one-line error: {err}");
    // The refusal is about the cluster, not reachability: its own cluster gets an answer.
    let out = lan.run_ok(
        3,
        &["call", "--seed", &seed, "--cluster", "other", "echo", "hi"],
        SEEDS_ONLY,
    );
    assert_eq!(out, "\"hi\"");
}
