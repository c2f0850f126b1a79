//! Helpers shared by the integration tests: nodes on loopback with port 0, child processes
//! that die with the test, and waiting for a condition with a deadline (never a bare sleep).
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mpreg::{Node, NodeBuilder};

/// A node builder confined to loopback on a free port.
pub fn local(name: &str) -> NodeBuilder {
    Node::builder()
        .name(name)
        .bind(IpAddr::V4(Ipv4Addr::LOCALHOST))
        .port(0)
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
        let mut cmd = Command::new(built(bin));
        cmd.args(args)
            .env("MPREG_BIND", "127.0.0.1")
            .env("MPREG_PORT", port.to_string())
            .env_remove("MPREG_SEEDS")
            .env_remove("MPREG_CLUSTER")
            .env_remove("MPREG_SECRET_FILE")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
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

/// Runs the `mpreg` CLI to completion: (exit success, stdout, stderr).
pub fn mpreg(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(built("mpreg"))
        .args(args)
        .env_remove("MPREG_SEEDS")
        .env_remove("MPREG_CLUSTER")
        .output()
        .expect("run mpreg");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).trim().to_string(),
    )
}
