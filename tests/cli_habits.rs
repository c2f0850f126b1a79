//! The CLI as a person uses it (issue #14): negative numbers are arguments, `--json`
//! timings are rounded, a client's comings and goings are not warnings on the server, and
//! logs written to a file carry no colour codes.

mod support;

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
    drop(server); // stops it

    let text = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_file(&log);
    let warnings: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("WARN"))
        .filter(|l| !l.contains("no shared secret"))
        .collect();
    assert!(
        warnings.is_empty(),
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
    assert!(out.contains("(4 built-ins)"), "{out}");
    let (ok, wide, err) = mpreg(&["nodes", "--wide", "--seed", &seed]);
    assert!(ok, "{err}");
    assert!(
        wide.contains(name) && wide.contains("_metrics,echo"),
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
