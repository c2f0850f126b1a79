//! Workflow overhead per step (DESIGN §8, §13): a 100-step chain and a 100-wide fan-out of
//! node-local `echo`, against 100 direct calls of the same `echo` in the same run.
//!
//! Run with `cargo bench --bench workflow`. One node on 127.0.0.1 with discovery off runs
//! everything (it is the workflow's entry node and the provider), so the figures isolate
//! what the workflow machinery adds: planning, substituting references, scheduling and
//! resolving each step. Rows alternate for `ROUNDS` rounds and report the median.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use mpreg::{Flow, Node};

const STEPS: usize = 100;
const ROUNDS: usize = 200;

fn chain(node: &Node) -> Flow {
    let mut f = node.workflow().step("s0", "echo", ("x",));
    for i in 1..STEPS {
        f = f.step(&format!("s{i}"), "echo", (format!("s{}", i - 1),));
    }
    f
}

fn fan_out(node: &Node) -> Flow {
    let mut f = node.workflow().step("root", "echo", ("x",));
    for i in 1..STEPS {
        f = f.step(&format!("s{i}"), "echo", ("root",));
    }
    f
}

async fn direct(node: &Node) -> Duration {
    let t = Instant::now();
    for _ in 0..STEPS {
        let _: String = node.call("echo", ("x",)).await.unwrap();
    }
    t.elapsed()
}

async fn flow(f: Flow) -> Duration {
    let t = Instant::now();
    f.run().await.unwrap();
    t.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let node = Node::builder()
            .name("bench")
            .bind(IpAddr::V4(Ipv4Addr::LOCALHOST))
            .interfaces(["lo"])
            .mdns(false)
            .beacon(false)
            .start()
            .await
            .unwrap();
        let (mut d, mut c, mut f) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            d.push(direct(&node).await);
            c.push(flow(chain(&node)).await);
            f.push(flow(fan_out(&node)).await);
        }
        let (d, c, f) = (median(d), median(c), median(f));
        let per = |x: Duration| x.as_secs_f64() * 1e6 / STEPS as f64;
        println!("mpreg workflow benchmark — {STEPS} node-local `echo` steps, median of {ROUNDS} rounds\n");
        println!("| run | total µs | µs per step | overhead per step vs direct µs |");
        println!("|---|---:|---:|---:|");
        println!("| {STEPS} direct calls (reference) | {:.0} | {:.2} | — |", d.as_secs_f64() * 1e6, per(d));
        for (name, x) in [("chain of 100", c), ("fan-out of 100", f)] {
            println!("| workflow: {name} | {:.0} | {:.2} | {:.2} |", x.as_secs_f64() * 1e6, per(x), per(x) - per(d));
        }
        println!("\ntarget: at most 20 µs overhead per step");
        node.shutdown().await;
    });
}
