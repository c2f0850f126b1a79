//! Discovery waits, and "no cluster" says so (issue #12, DESIGN §4): a listening builder
//! node with no seed, started while a provider runs on another host, succeeds on its very
//! first call; with no node anywhere, `mpreg call` fails after the discovery wait (≈ 1.5 s,
//! or `--timeout`) with a "no cluster found" error saying what was tried.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{example, figure, ms, show_output, Lan};

#[test]
#[ignore = "needs root (network namespaces): sudo -E cargo test --test lan -- --ignored"]
fn a_seedless_builder_node_calls_on_its_first_try() {
    let Some(lan) = Lan::new("first_call_builder", 3) else {
        return;
    };
    let _provider = lan.serve(1, "prov1", &[]);
    let started = Instant::now();
    let out = lan.run_program(3, &example("first_call"), &["eth0", "echo", "hi"]);
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "the first call of a seedless builder node failed\n{}",
        show_output(&out)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(v["result"], "hi", "{v}");
    assert_eq!(v["node"], "prov1", "{v}");
    figure("builder_first_call_ms", format!("{:.1}", ms(took)));
    figure("builder_first_call_since_start_ms", &v["since_start_ms"]);
}

/// `mpreg call ARGS echo hi` on the only host: must fail with "no cluster found" within
/// `window`, aiming at `target`; the time it took is figure `name`.
fn no_cluster(
    lan: &Lan,
    args: &[&str],
    name: &str,
    target: Duration,
    window: (Duration, Duration),
) {
    let mut all = vec!["call"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["echo", "hi"]);
    let started = Instant::now();
    let out = lan.run(1, &all, &[]);
    let took = started.elapsed();
    figure(
        name,
        format!("{:.1} target_ms={}", ms(took), target.as_millis()),
    );
    let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(
        !out.status.success(),
        "found a node?\n{}",
        show_output(&out)
    );
    assert!(
        err.contains("no cluster found"),
        "`mpreg {}`: not a \"no cluster found\" error\n{}",
        all.join(" "),
        show_output(&out)
    );
    // The error says what was tried: the discovery mechanisms at least.
    assert!(
        err.contains("beacon") && err.contains("mdns"),
        "the error lists what was tried\n{}",
        show_output(&out)
    );
    eprintln!("`mpreg {}` after {took:?}: {}", all.join(" "), err.trim());
    assert!(
        took >= window.0 && took <= window.1,
        "`mpreg {}` failed after {took:?}, outside {window:?}",
        all.join(" ")
    );
}

#[test]
#[ignore = "needs root (network namespaces): sudo -E cargo test --test lan -- --ignored"]
fn no_cluster_found_after_the_discovery_wait() {
    let Some(lan) = Lan::new("first_call_no_cluster", 1) else {
        return;
    };
    let secs = |s: f64| Duration::from_secs_f64(s);
    let name = "no_cluster_default_ms";
    no_cluster(&lan, &[], name, secs(1.5), (secs(1.3), secs(3.0)));
    let name = "no_cluster_timeout_0.3_ms";
    no_cluster(
        &lan,
        &["--timeout", "0.3"],
        name,
        secs(0.3),
        (secs(0.25), secs(1.0)),
    );
}
