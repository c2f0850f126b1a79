//! The resolver across hosts: host and node visibility enforced by the serving node (also
//! when a call is sent straight to it), and forwarding for a client that reaches only its
//! seed.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use crate::harness::{wait_until, Lan, LanProc, PORT};

/// The `lab_node` example (cargo test builds examples next to the test binaries).
fn lab_node() -> String {
    let mut p: PathBuf = std::env::current_exe().expect("test binary path");
    p.pop();
    p.pop();
    p.push("examples");
    p.push("lab_node");
    assert!(p.exists(), "{} not built", p.display());
    p.to_string_lossy().into_owned()
}

/// Starts `lab_node` named `name` on host `i` with discovery off, seeded as given.
fn lab(lan: &Lan, i: usize, name: &str, seeds: &str, extra: &[&str]) -> LanProc {
    let port = PORT.to_string();
    let envs = [
        ("MPREG_NAME", name),
        ("MPREG_PORT", port.as_str()),
        ("MPREG_MDNS", "0"),
        ("MPREG_BEACON", "0"),
        ("MPREG_SEEDS", seeds),
    ];
    let mut p = lan.spawn_program(i, &lab_node(), extra, &envs);
    p.wait_for_line(&format!("serving {name} on "), Duration::from_secs(20));
    p
}

const QUIET: [&str; 2] = ["--no-mdns", "--no-beacon"];

/// `mpreg call ARGS` on host `i` with discovery off and `--seed` host 1; (ok, stdout, stderr).
fn call(lan: &Lan, i: usize, args: &[&str]) -> (bool, String, String) {
    let seed = lan.seed(1);
    let mut all = vec!["call", QUIET[0], QUIET[1], "--seed", seed.as_str()];
    all.extend_from_slice(args);
    let out = lan.run(i, &all, &[]);
    let text = |b: &[u8]| String::from_utf8_lossy(b).trim().to_string();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

#[test]
#[ignore = "needs root (network namespaces): sudo -E cargo test --test lan -- --ignored"]
fn visibility_and_forwarding_across_hosts() {
    let Some(lan) = Lan::new("resolver_visibility", 3) else {
        return;
    };
    let _lab1 = lab(&lan, 1, "lab1", "", &[]);
    let _lab2 = lab(&lan, 2, "lab2", &lan.seed(1), &["only_on_2"]);
    // Until lab1 lists lab2 with `only_on_2`, a client seeded with lab1 cannot know it.
    wait_until(Duration::from_secs(10), || {
        lan.view(1, 1)
            .iter()
            .any(|m| m.name == "lab2" && m.names_in("functions").iter().any(|f| f == "only_on_2"))
    });
    host_visible_stays_on_its_host(&lan);
    node_visible_stays_in_its_process(&lan);
    forwarded_through_the_seed(&lan);
}

fn host_visible_stays_on_its_host(lan: &Lan) {
    let (ok, out, err) = call(lan, 1, &["gpu_temp"]);
    assert!(ok, "same host: {err}");
    assert_eq!(out, "41.5");
    // From host 3 the resolver does not see it...
    let (ok, _, err) = call(lan, 3, &["gpu_temp"]);
    assert!(!ok && err.contains("unknown function `gpu_temp`"), "{err}");
    // ...and host 1's node refuses it when host 3 sends the call straight there.
    let at = lan.seed(1);
    let (ok, _, err) = call(lan, 3, &["--addr", &at, "gpu_temp"]);
    assert!(!ok, "must be refused");
    assert!(
        err.contains("`gpu_temp` on node `lab1` is not visible to this caller")
            && err.contains("host-visible"),
        "{err}"
    );
    eprintln!("host 3 calling host 1's host-visible function directly: {err}");
}

fn node_visible_stays_in_its_process(lan: &Lan) {
    let at = lan.seed(1);
    for host in [1, 3] {
        let (ok, _, err) = call(lan, host, &["--addr", &at, "calibrate"]);
        assert!(
            !ok && err.contains("node-visible"),
            "from host {host}: {err}"
        );
        let (ok, _, err) = call(lan, host, &["calibrate"]);
        assert!(
            !ok && err.contains("unknown function"),
            "from host {host}: {err}"
        );
    }
}

fn forwarded_through_the_seed(lan: &Lan) {
    // Host 3 can reach host 1 only; `only_on_2` exists only on host 2.
    lan.block(3, 2);
    let (ok, out, err) = call(lan, 3, &["--json", "only_on_2"]);
    assert!(ok, "forwarded call failed: {err}");
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["result"], "lab2", "{out}");
    assert_eq!(
        v["node"], "lab2",
        "the answer names the provider, not the relay: {out}"
    );
    eprintln!("LAN figure: forwarded_call_ms={}", v["elapsed_ms"]);
    // `--all` reaches both providers of `echo`: lab1 directly, lab2 through lab1.
    let (ok, out, err) = call(lan, 3, &["--all", "echo", "x"]);
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v, serde_json::json!({"lab1": "x", "lab2": "x"}), "{out}");
}
