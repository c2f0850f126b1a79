//! The CLI as a person uses it (issue #14): negative numbers are arguments, `--json`
//! timings are rounded, a client's comings and goings are not warnings on the server, and
//! logs written to a file carry no colour codes.

mod support;

use std::time::Duration;

use support::{free_port, mpreg, Proc};

#[test]
fn negative_numbers_are_arguments_not_flags() {
    let port = free_port();
    let node = Proc::start("mpreg", &["serve", "--name", "neg"], &[], port);
    let seed = node.addr.to_string();
    let (ok, out, err) = mpreg(&["call", "--seed", &seed, "echos", "-1", "-1.5", "2"]);
    assert!(ok, "{err}");
    assert_eq!(out, "[-1,-1.5,2]");
    // `--` still ends the flags.
    let (ok, out, err) = mpreg(&["call", "--seed", &seed, "echo", "--", "-7"]);
    assert!(ok, "{err}");
    assert_eq!(out, "-7");
}

#[test]
fn json_elapsed_is_rounded_to_the_microsecond() {
    let port = free_port();
    let node = Proc::start("mpreg", &["serve", "--name", "timed"], &[], port);
    let seed = node.addr.to_string();
    for _ in 0..5 {
        let (ok, out, err) = mpreg(&["call", "--seed", &seed, "--json", "echo", "x"]);
        assert!(ok, "{err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let text = v["elapsed_ms"].to_string();
        let decimals = text.split('.').nth(1).map_or(0, str::len);
        assert!(decimals <= 3, "elapsed_ms {text} is not rounded to µs");
    }
}

/// One seed list for a whole cluster names each node too: a node dials its own address
/// once, sees it reached itself, and stops (it used to warn twice every 5 s forever).
#[test]
fn a_seed_naming_the_node_itself_is_dialed_once_without_a_warning() {
    let port = free_port();
    let log = std::env::temp_dir().join(format!("mpreg-self-seed-{}.log", std::process::id()));
    let envs = [
        ("MPREG_SEEDS", format!("127.0.0.1:{port}")),
        ("RUST_LOG", "mpreg=debug".to_string()),
    ];
    let server =
        Proc::start_logged_env("mpreg", &["serve", "--name", "selfish"], &envs, port, &log);
    // The redial backoff (100 ms, doubling) would have dialed 5 times by now.
    std::thread::sleep(Duration::from_millis(2_500));
    drop(server);
    let text = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_file(&log);
    let warned: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("itself"))
        .collect();
    assert!(warned.is_empty(), "warnings: {warned:#?}");
    let refusals = text.matches("refusing our own connection").count();
    assert_eq!(refusals, 1, "own dials refused:\n{text}");
    assert!(text.contains("this seed is this node itself"), "{text}");
}

#[test]
fn clients_coming_and_going_are_not_warnings() {
    let port = free_port();
    let log = std::env::temp_dir().join(format!("mpreg-habits-{}.log", std::process::id()));
    let server = Proc::start_logged("mpreg", &["serve", "--name", "quiet"], port, &log);
    let seed = server.addr.to_string();
    for _ in 0..3 {
        let (ok, _, err) = mpreg(&["call", "--seed", &seed, "echo", "hi"]);
        assert!(ok, "{err}");
    }
    // `mpreg sub` listens (publications are pushed to it) but is a client: it says nothing
    // about the missing secret, which is the server's to say.
    let (ok, _, err) = mpreg(&["sub", "--seed", &seed, "x.y", "--timeout", "0.3"]);
    assert!(ok, "{err}");
    assert!(err.contains("subscribed to `x.y`"), "{err}");
    assert!(!err.contains("no shared secret"), "mpreg sub warned: {err}");
    drop(server); // stops it

    let text = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_file(&log);
    let warnings: Vec<&str> = text.lines().filter(|l| l.contains("WARN")).collect();
    // The server without a secret says so once, and warns of nothing else.
    assert_eq!(warnings.len(), 1, "server warnings: {warnings:#?}");
    assert!(
        warnings[0].contains("no shared secret configured"),
        "client calls logged warnings: {warnings:#?}"
    );
    // A log written to a file carries no terminal colour codes.
    assert!(text.contains("listening"), "{text}");
    assert!(
        !text.contains('\u{1b}'),
        "ANSI escapes in a log file: {text:?}"
    );
}

#[test]
fn the_nodes_table_fits_100_columns_and_lists_built_ins_apart() {
    let port = free_port();
    let name = "a-node-with-a-rather-long-name-indeed";
    let node = Proc::start("mpreg", &["serve", "--name", name], &[], port);
    let seed = node.addr.to_string();
    let (ok, out, err) = mpreg(&["nodes", "--seed", &seed]);
    assert!(ok, "{err}");
    assert!(out.lines().count() >= 2, "{out}");
    for line in out.lines() {
        assert!(line.chars().count() <= 100, "wider than 100: {line:?}");
    }
    // _info, _metrics, echo, echos, and the five of the service controller.
    assert!(out.contains("(9 built-ins)"), "{out}");
    let (ok, wide, err) = mpreg(&["nodes", "--wide", "--seed", &seed]);
    assert!(ok, "{err}");
    assert!(
        wide.contains(name)
            && wide.contains("_metrics,_service_logs")
            && wide.contains("echo,echos"),
        "{wide}"
    );
}

#[test]
fn metrics_and_info_are_called_like_any_function() {
    let port = free_port();
    let node = Proc::start("mpreg", &["serve", "--name", "n1"], &[], port);
    let seed = node.addr.to_string();
    for _ in 0..3 {
        let (ok, _, err) = mpreg(&["call", "--seed", &seed, "echo", "x"]);
        assert!(ok, "{err}");
    }
    let (ok, out, err) = mpreg(&["call", "--seed", &seed, "_metrics", "--node", "n1"]);
    assert!(ok, "{err}");
    let m: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(m["node"], "n1", "{m}");
    assert_eq!(m["functions"]["echo"]["calls"], 3, "{m}");
    for key in ["peers", "pubsub", "membership", "messaging", "workflows"] {
        assert!(m[key].is_object(), "{key} missing: {m}");
    }
    let (ok, out, err) = mpreg(&["call", "--seed", &seed, "_info", "--node", "n1"]);
    assert!(ok, "{err}");
    let i: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(i["name"], "n1");
    assert_eq!(i["address"], seed);
    assert_eq!(i["version"], env!("CARGO_PKG_VERSION"));
}

/// The JSON log lines of `text` that are inside a span named `span`.
fn in_span(text: &str, span: &str) -> Vec<serde_json::Value> {
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["span"]["name"] == span)
        .collect()
}

#[test]
fn debug_logs_follow_one_call_across_nodes_as_json_without_other_crates() {
    let port = free_port();
    let log = std::env::temp_dir().join(format!("mpreg-trace-{}.log", std::process::id()));
    let debug_json = [
        ("RUST_LOG", "debug".to_string()),
        ("MPREG_LOG_FORMAT", "json".to_string()),
    ];
    let server = Proc::start_logged_env(
        "mpreg",
        &["serve", "--name", "srv"],
        &debug_json,
        port,
        &log,
    );
    let seed = server.addr.to_string();
    let (ok, _, client_log) =
        support::mpreg_env(&["call", "--seed", &seed, "echo", "traced"], &debug_json);
    assert!(ok, "{client_log}");
    drop(server);
    let server_log = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_file(&log);

    let sent = in_span(&client_log, "call");
    let call = sent
        .iter()
        .find(|v| v["span"]["fun"] == "echo")
        .unwrap_or_else(|| panic!("no `call` span for echo in the client's log:\n{client_log}"));
    assert_eq!(call["span"]["peer"], "srv", "{call}");
    let id = call["span"]["id"].clone();
    let served = in_span(&server_log, "serve");
    assert!(
        served
            .iter()
            .any(|v| v["span"]["fun"] == "echo" && v["span"]["id"] == id),
        "no `serve` span with id {id} for echo in the server's log:\n{server_log}"
    );
    // Every line is JSON, and a bare `debug` is mpreg's alone.
    for text in [&client_log, &server_log] {
        for line in text.lines() {
            let v: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            let target = v["target"].as_str().unwrap_or_default();
            let level = v["level"].as_str().unwrap_or_default();
            assert!(
                target.starts_with("mpreg") || matches!(level, "WARN" | "ERROR"),
                "another crate's {level} line with RUST_LOG=debug: {line}"
            );
        }
    }
}

/// Runs the CLI with nobody to find (discovery on `lo` only, on ports nobody uses) and a
/// discovery wait of `wait_ms`: (success, stdout, stderr, seconds taken).
fn alone(args: &[&str], wait_ms: u64) -> (bool, String, String, f64) {
    let env = [
        ("MPREG_DISCOVERY_WAIT_MS", wait_ms.to_string()),
        ("MPREG_BEACON_PORT", support::free_udp_port().to_string()),
    ];
    let t = std::time::Instant::now();
    let (ok, out, err) = support::mpreg_env(args, &env);
    (ok, out, err, t.elapsed().as_secs_f64())
}

#[test]
fn publishing_with_no_node_anywhere_fails_and_json_counts_the_nodes() {
    let (ok, out, err, _) = alone(&["pub", "a.b", "1"], 300);
    assert!(!ok, "published into the void: {out}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("no cluster found"), "{err}");

    let port = free_port();
    let node = Proc::start("mpreg", &["serve", "--name", "pubhost"], &[], port);
    let seed = node.addr.to_string();
    let (ok, out, err) = mpreg(&["pub", "--json", "--seed", &seed, "a.b", "1"]);
    assert!(ok, "{err}");
    assert_eq!(out, r#"{"nodes":0}"#, "nobody subscribes to a.b");
}

#[test]
fn only_configuration_errors_say_configuration_and_usage_is_checked_first() {
    // A malformed --kw fails before discovery (which would take 3 s here).
    let (ok, _, err, took) = alone(&["call", "--kw", "noequals", "echo"], 3000);
    assert!(!ok);
    assert!(
        err.contains("--kw \"noequals\": expected NAME=JSON"),
        "{err}"
    );
    assert!(!err.contains("configuration"), "{err}");
    assert!(took < 2.0, "--kw checked after discovery: {took:.1} s");
    // Finding nobody is not a configuration error either.
    for args in [&["nodes"][..], &["call", "echo", "x"][..]] {
        let (ok, _, err, _) = alone(args, 300);
        assert!(!ok);
        assert!(err.contains("no cluster found"), "{args:?}: {err}");
        assert!(!err.contains("configuration"), "{args:?}: {err}");
    }
    let (ok, _, err, _) = alone(&["sub", "x.y", "--count", "1", "--timeout", "0.2"], 300);
    assert!(!ok);
    assert!(err.contains("received 0 of 1"), "{err}");
    assert!(!err.contains("configuration"), "{err}");
    // A real configuration error still says so.
    let (ok, _, err) = support::mpreg_env(&["nodes"], &[("MPREG_PORT", "x".into())]);
    assert!(!ok);
    assert!(err.contains("configuration"), "{err}");
}

#[test]
fn mpreg_top_finding_nobody_or_no_terminal_is_not_a_configuration_error() {
    let (ok, out, err, _) = alone(&["top", "--once"], 300);
    assert!(!ok, "top found a cluster: {out}");
    assert!(err.contains("no cluster found"), "{err}");
    assert!(!err.contains("configuration"), "{err}");
    // Output to a pipe, not a terminal: how `top` was run is wrong, not the configuration.
    let (ok, _, err) = mpreg(&["top"]);
    assert!(!ok);
    assert!(err.contains("mpreg top needs a terminal"), "{err}");
    assert!(!err.contains("configuration"), "{err}");
}

#[test]
fn an_unknown_function_lists_the_members_known_not_here() {
    let port = free_port();
    let node = Proc::start("mpreg", &["serve", "--name", "alpha"], &[], port);
    let seed = node.addr.to_string();
    let (ok, _, err) = mpreg(&["call", "--seed", &seed, "ehco", "x"]);
    assert!(!ok);
    assert!(
        err.contains("unknown function `ehco`; did you mean `echo`?"),
        "{err}"
    );
    assert!(
        err.contains("offered by none of the 1 member known: alpha"),
        "{err}"
    );
    assert!(!err.contains("here"), "{err}");
}
