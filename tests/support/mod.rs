//! Helpers shared by the integration tests: nodes on loopback with port 0, child processes
//! that die with the test, and waiting for a condition with a deadline (never a bare sleep).
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mpreg::{Node, NodeBuilder};

pub mod scratch;
pub mod services;
pub mod tcp;

/// A node builder confined to loopback on a free port, with broadcast and multicast
/// discovery off (tests that exercise discovery turn it on with [`lo_discovery`]).
pub fn local(name: &str) -> NodeBuilder {
    Node::builder()
        .name(name)
        .bind(IpAddr::V4(Ipv4Addr::LOCALHOST))
        .port(0)
        .interfaces(["lo"])
        .mdns(false)
        .beacon(false)
}

/// Ports for discovery confined to `lo` and to one test: a beacon port and an mDNS port
/// nobody else uses.
#[derive(Debug, Clone, Copy)]
pub struct LoDiscovery {
    pub beacon_port: u16,
    pub mdns_port: u16,
}

/// Fresh discovery ports for one test.
pub fn lo_discovery() -> LoDiscovery {
    LoDiscovery {
        beacon_port: free_udp_port(),
        mdns_port: free_udp_port(),
    }
}

impl LoDiscovery {
    /// Turns discovery on for `b`, on loopback only, with this test's ports.
    pub fn apply(&self, b: NodeBuilder, mdns: bool) -> NodeBuilder {
        b.interfaces(["lo"])
            .beacon(true)
            .beacon_port(self.beacon_port)
            .mdns(mdns)
            .mdns_port(self.mdns_port)
    }

    /// The same as environment variables for child processes.
    pub fn env(&self, mdns: bool) -> Vec<(&'static str, String)> {
        vec![
            ("MPREG_INTERFACES", "lo".into()),
            ("MPREG_BEACON", "1".into()),
            ("MPREG_BEACON_PORT", self.beacon_port.to_string()),
            ("MPREG_MDNS", if mdns { "1" } else { "0" }.into()),
            ("MPREG_MDNS_PORT", self.mdns_port.to_string()),
        ]
    }
}

/// A free UDP port on loopback.
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Environment that keeps a child process on loopback with discovery off; tests that
/// want discovery add [`LoDiscovery::env`] after it (later values win).
pub fn confine(cmd: &mut Command) {
    cmd.env("MPREG_BIND", "127.0.0.1")
        .env("MPREG_INTERFACES", "lo")
        .env("MPREG_MDNS", "0")
        .env("MPREG_BEACON", "0")
        .env_remove("MPREG_SEEDS")
        .env_remove("MPREG_CLUSTER")
        .env_remove("MPREG_SECRET_FILE")
        .env_remove("MPREG_CONFIG");
}

/// A client (a node that does not listen, with no built-ins) on loopback, started with
/// `seed` as its way into the cluster.
pub async fn client(name: &str, seed: SocketAddr) -> Node {
    local(name)
        .listen(false)
        .builtins(false)
        .seed(seed)
        .start()
        .await
        .expect("start the client")
}

/// Two connected nodes: `b` dialed `a`.
pub async fn pair(a: NodeBuilder, b: NodeBuilder) -> (Node, Node) {
    let a = a.start().await.expect("start a");
    let b = b.seed(a.addr().unwrap()).start().await.expect("start b");
    assert_eq!(b.peers().len(), 1, "b must be connected to a");
    wait_until(Duration::from_secs(5), || a.peers().len() == 1).await;
    (a, b)
}

/// Polls `cond` every 5 ms until it holds; panics after `limit`.
pub async fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < limit,
            "condition not met within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A free TCP port on loopback (bound and released; good enough for tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Path of a binary built by cargo for this test run: the `mpreg` binary or an example.
pub fn built(name: &str) -> PathBuf {
    if name == "mpreg" {
        return PathBuf::from(env!("CARGO_BIN_EXE_mpreg"));
    }
    // target/<profile>/deps/<test> -> target/<profile>/examples/<name>
    let mut p = std::env::current_exe().unwrap();
    p.pop();
    p.pop();
    p.push("examples");
    p.push(name);
    assert!(
        p.exists(),
        "example binary {} not built (cargo test builds examples)",
        p.display()
    );
    p
}

/// A child process killed when dropped.
pub struct Proc {
    pub child: Child,
    pub addr: SocketAddr,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    /// Starts `bin` with `args` and `envs`, confined to loopback on `port`, and waits until
    /// it accepts TCP connections.
    pub fn start(bin: &str, args: &[&str], envs: &[(&str, String)], port: u16) -> Proc {
        Self::spawn(bin, args, envs, port, Stdio::null())
    }

    /// Like [`Proc::start`], with the process's stderr (its log) written to `log`.
    pub fn start_logged(bin: &str, args: &[&str], port: u16, log: &std::path::Path) -> Proc {
        Self::start_logged_env(bin, args, &[], port, log)
    }

    /// Like [`Proc::start_logged`], with extra environment (set after `RUST_LOG` is
    /// cleared, so it may set `RUST_LOG`).
    pub fn start_logged_env(
        bin: &str,
        args: &[&str],
        envs: &[(&str, String)],
        port: u16,
        log: &std::path::Path,
    ) -> Proc {
        let file = std::fs::File::create(log).expect("create the log file");
        Self::spawn(bin, args, envs, port, Stdio::from(file))
    }

    fn spawn(bin: &str, args: &[&str], envs: &[(&str, String)], port: u16, stderr: Stdio) -> Proc {
        let mut cmd = Command::new(built(bin));
        confine(&mut cmd);
        cmd.args(args)
            .env("MPREG_PORT", port.to_string())
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(stderr);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let start = Instant::now();
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "{bin} did not start listening on {addr}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        Proc { child, addr }
    }
}

/// Runs the `mpreg` CLI to completion, confined to loopback with discovery off:
/// (exit success, stdout, stderr).
pub fn mpreg(args: &[&str]) -> (bool, String, String) {
    mpreg_env(args, &[])
}

/// Like [`mpreg`] with extra environment (e.g. [`LoDiscovery::env`]).
pub fn mpreg_env(args: &[&str], envs: &[(&str, String)]) -> (bool, String, String) {
    let mut cmd = Command::new(built("mpreg"));
    confine(&mut cmd);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.args(args).output().expect("run mpreg");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).trim().to_string(),
    )
}

/// Starts `builders` as one cluster (each seeded with the first) and waits until every node
/// is connected to every other and sees every other in its membership (what a client's
/// member list is built from).
pub async fn cluster(builders: Vec<NodeBuilder>) -> Vec<Node> {
    let mut nodes: Vec<Node> = Vec::new();
    for b in builders {
        let b = match nodes.first() {
            Some(first) => b.seed(first.addr().unwrap()),
            None => b,
        };
        nodes.push(b.start().await.expect("start node"));
    }
    let n = nodes.len();
    for node in &nodes {
        wait_until(Duration::from_secs(10), || {
            node.peers().len() == n - 1 && node.members().len() == n - 1
        })
        .await;
    }
    nodes
}

/// Sets its flag when dropped: shows that a function's future was dropped (cancelled).
pub struct DropFlag(pub std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Asserts that `promtool check metrics` finds nothing wrong with a Prometheus `page`.
/// Tests using it need promtool (Debian's `prometheus` package, which `.ci/run` installs)
/// and are `#[ignore]`d so that a machine without it reports them as ignored.
pub fn promtool_accepts(page: &str) {
    use std::io::Write;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("promtool (package `prometheus`) is not runnable: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(page.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics: {said}\n--- page ---\n{page}"
    );
}
