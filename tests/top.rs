//! `mpreg top` against a real 3-node cluster of `mpreg serve` processes on loopback under
//! load: the live screen in a real terminal (tmux) shows every node, the busy function and
//! its calls/s, quits on `q` with status 0 and gives the terminal back; `--once --json`
//! prints the documented shape.

mod support;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{free_port, mpreg, Proc};

/// Three `mpreg serve` nodes, n2 and n3 seeded with n1 (discovery off: nothing leaves
/// loopback). Their logs go to temporary files.
struct Cluster {
    nodes: Vec<Proc>,
    logs: Vec<std::path::PathBuf>,
}

impl Cluster {
    fn start(tag: &str) -> Cluster {
        let mut nodes: Vec<Proc> = Vec::new();
        let mut logs = Vec::new();
        for name in ["n1", "n2", "n3"] {
            let port = free_port();
            let log = std::env::temp_dir()
                .join(format!("mpreg-top-{tag}-{}-{name}.log", std::process::id()));
            let seed = nodes.first().map(|n| n.addr.to_string());
            let mut args = vec!["serve", "--name", name];
            if let Some(seed) = &seed {
                args.extend(["--seed", seed.as_str()]);
            }
            nodes.push(Proc::start_logged("mpreg", &args, port, &log));
            logs.push(log);
        }
        Cluster { nodes, logs }
    }

    fn seed(&self) -> String {
        self.nodes[0].addr.to_string()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.nodes.clear();
        for l in &self.logs {
            let _ = std::fs::remove_file(l);
        }
    }
}

/// Calls `echo` from a client node in a loop, on `workers` tasks, until dropped.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    node: mpreg::Node,
}

impl Load {
    async fn start(seed: &str, workers: usize) -> Load {
        let node = support::local("loader")
            .listen(false)
            .builtins(false)
            .seed(seed)
            .start()
            .await
            .expect("start the load client");
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        for _ in 0..workers {
            let (node, stop, ok) = (node.clone(), stop.clone(), ok.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let r = node.request("echo").args(("hi",)).send::<String>().await;
                    if r.is_ok() {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
        Load { stop, ok, node }
    }

    async fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.node.shutdown().await;
        self.ok.load(Ordering::Relaxed)
    }
}

/// Fails the test, saying why, when tmux is missing (the test is `#[ignore]`d so that a
/// plain `cargo test` reports it as ignored; `.ci/run` installs tmux and runs it).
fn need_tmux() {
    let found = Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "tmux is not runnable: install it (Debian package `tmux`) to run this test"
    );
}

/// A tmux server of its own (its own socket file), killed and its socket removed when
/// dropped.
struct Tmux {
    socket: std::path::PathBuf,
}

impl Tmux {
    fn cmd(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("run tmux")
    }

    fn pane(&self) -> String {
        String::from_utf8_lossy(&self.cmd(&["capture-pane", "-p", "-t", "top"]).stdout).into_owned()
    }

    /// Polls the pane until `cond` holds; panics with the last capture after `limit`.
    fn wait_for(&self, limit: Duration, what: &str, cond: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let pane = self.pane();
            if cond(&pane) {
                return pane;
            }
            assert!(
                start.elapsed() < limit,
                "{what} not seen within {limit:?}; the pane:\n{pane}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// The shell command that runs `top` confined like the cluster (same environment as
/// `support::confine`, in a directory with no `mpreg.toml`) and reports its exit status.
fn top_command(seed: &str) -> String {
    let bin = support::built("mpreg");
    assert!(Path::new(&bin).exists());
    format!(
        "env -u RUST_LOG -u MPREG_SEEDS -u MPREG_CLUSTER -u MPREG_SECRET_FILE -u MPREG_CONFIG \
         MPREG_BIND=127.0.0.1 MPREG_INTERFACES=lo MPREG_MDNS=0 MPREG_BEACON=0 TERM=xterm-256color \
         {} top --seed {seed} --interval 500ms; echo TOP_EXIT=$?; sleep 600",
        bin.display()
    )
}

/// The calls/s of `function` in the Functions table of a capture (`None` if no such row).
fn calls_per_s(pane: &str, function: &str) -> Option<f64> {
    pane.lines().find_map(|l| {
        let cells: Vec<&str> = l
            .trim_matches(|c: char| c == '│' || c.is_whitespace())
            .split_whitespace()
            .collect();
        // function, providers, calls/s, ...
        (cells.first() == Some(&function) && cells.len() >= 3)
            .then(|| cells[2].parse().ok())
            .flatten()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs tmux: cargo test --test top -- --ignored"]
async fn top_shows_the_cluster_under_load_and_quits_cleanly() {
    need_tmux();
    let cluster = Cluster::start("tui");
    let load = Load::start(&cluster.seed(), 4).await;
    let tmux = Tmux {
        socket: std::env::temp_dir().join(format!("mpreg-top-{}.tmux", std::process::id())),
    };
    let dir = std::env::temp_dir();
    let out = tmux.cmd(&[
        "new-session",
        "-d",
        "-x",
        "160",
        "-y",
        "45",
        "-s",
        "top",
        "-c",
        &dir.to_string_lossy(),
        &top_command(&cluster.seed()),
    ]);
    assert!(
        out.status.success(),
        "tmux: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let screen = tokio::task::block_in_place(|| {
        tmux.wait_for(
            Duration::from_secs(20),
            "n1, n2, n3 and echo with calls/s > 0",
            |p| {
                ["n1", "n2", "n3"].iter().all(|n| p.contains(n))
                    && calls_per_s(p, "echo").is_some_and(|r| r > 0.0)
            },
        )
    });
    eprintln!("{screen}");
    assert!(
        screen.contains("Nodes") && screen.contains("Functions"),
        "{screen}"
    );
    assert!(
        calls_per_s(&screen, "_metrics").is_none(),
        "built-ins are hidden:\n{screen}"
    );

    let out = tmux.cmd(&["send-keys", "-t", "top", "q"]);
    assert!(out.status.success());
    let after = tokio::task::block_in_place(|| {
        tmux.wait_for(Duration::from_secs(10), "TOP_EXIT=", |p| {
            p.contains("TOP_EXIT=")
        })
    });
    assert!(
        after.contains("TOP_EXIT=0"),
        "top did not exit with 0:\n{after}"
    );
    // Back on the normal screen: nothing of top's alternate screen is left.
    assert!(
        !after.contains("Functions") && !after.contains("calls/s"),
        "the terminal was not restored:\n{after}"
    );
    let calls = load.stop().await;
    assert!(calls > 0, "the load made no call");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_json_lists_every_node_and_function_with_rates() {
    let cluster = Cluster::start("json");
    let load = Load::start(&cluster.seed(), 2).await;
    let seed = cluster.seed();
    let start = Instant::now();
    let doc = loop {
        let (ok, out, err) = top_once_json(&seed);
        assert!(ok, "mpreg top --once --json failed: {err}");
        let doc: serde_json::Value =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
        let nodes = doc["nodes"].as_array().expect("nodes is an array").len();
        let echo_rate = doc["functions"]
            .as_array()
            .expect("functions is an array")
            .iter()
            .find(|f| f["function"] == "echo")
            .and_then(|f| f["calls_per_s"].as_f64());
        if nodes == 3 && echo_rate.is_some_and(|r| r > 0.0) {
            break doc;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "3 nodes and echo calls/s > 0 not seen: {doc}"
        );
    };
    load.stop().await;

    assert_eq!(doc["cluster"], "default");
    assert!(doc["events"].is_array());
    let mut names: Vec<&str> = doc["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["n1", "n2", "n3"]);
    for n in doc["nodes"].as_array().unwrap() {
        for key in [
            "name",
            "host",
            "role",
            "state",
            "calls_per_s",
            "in_flight",
            "p99_us",
            "pub_per_s",
            "drops",
        ] {
            assert!(n.get(key).is_some(), "node without {key}: {n}");
        }
        assert_eq!(n["state"], "alive");
        assert!(
            n["calls_per_s"].is_number(),
            "every node answered twice: {n}"
        );
    }
    let functions = doc["functions"].as_array().unwrap();
    for f in functions {
        for key in [
            "function",
            "providers",
            "calls_per_s",
            "errors_per_s",
            "p50_us",
            "p95_us",
            "p99_us",
        ] {
            assert!(f.get(key).is_some(), "function without {key}: {f}");
        }
        assert!(
            !f["function"].as_str().unwrap().starts_with('_'),
            "built-in listed: {f}"
        );
    }
    let echo = functions.iter().find(|f| f["function"] == "echo").unwrap();
    assert_eq!(echo["providers"], 3);
    assert!(echo["p99_us"].as_u64().unwrap() > 0, "{echo}");

    // A member that stops answering (frozen, still a member until SWIM suspects it) costs
    // a bounded wait and shows as unknown, not a hang.
    let frozen = cluster.nodes[2].child.id() as libc::pid_t;
    // SAFETY: signals a child process this test started (and resumes below).
    assert_eq!(unsafe { libc::kill(frozen, libc::SIGSTOP) }, 0);
    let start = Instant::now();
    let (ok, out, err) = top_once_json(&seed);
    let took = start.elapsed();
    eprintln!("top --once --json with n3 frozen took {took:?}");
    // SAFETY: as above.
    unsafe { libc::kill(frozen, libc::SIGCONT) };
    assert!(ok, "{err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    if let Some(n3) = doc["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "n3")
    {
        assert!(
            n3["calls_per_s"].is_null() && n3["in_flight"].is_null(),
            "a frozen node has no figures: {n3}"
        );
    }
    assert!(
        took < Duration::from_secs(5),
        "--once took {took:?} with a frozen member"
    );
}

/// `mpreg top --once --json` against `seed`, polling every 250 ms, from an async test.
fn top_once_json(seed: &str) -> (bool, String, String) {
    let args = [
        "top",
        "--once",
        "--json",
        "--seed",
        seed,
        "--interval",
        "250ms",
    ];
    tokio::task::block_in_place(|| mpreg(&args))
}

#[test]
fn an_interval_out_of_bounds_is_refused_clearly() {
    let (ok, _, err) = mpreg(&["top", "--once", "--interval", "100ms"]);
    assert!(!ok);
    assert!(err.contains("outside 250ms..5s"), "{err}");
    let (ok, _, err) = mpreg(&["top", "--json"]);
    assert!(!ok);
    assert!(err.contains("--once"), "{err}");
}

#[test]
fn without_a_terminal_the_live_screen_points_to_once_json() {
    let (ok, _, err) = mpreg(&["top"]);
    assert!(!ok);
    assert!(err.contains("--once --json"), "{err}");
}
