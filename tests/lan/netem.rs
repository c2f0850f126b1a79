//! Loss, delay, jitter and reordering on a host's link, for the chaos soak.
//!
//! `tc netem` is what one would use, but this machine's kernel (and CI's, the same kind) is
//! built without `sch_netem`. The same effect is had in user space: an iptables rule in the
//! host's namespace hands every packet leaving `eth0` to an NFQUEUE, and a thread entered
//! into that namespace gives each one its verdict — dropped with probability `loss`, or
//! accepted after `delay ± jitter`. Verdicts may be given out of order, so jitter larger
//! than the gap between two packets reorders them, as netem's does.
//!
//! The rule carries `--queue-bypass`: once the thread stops, packets flow unimpaired rather
//! than being dropped for want of a listener.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::harness::Lan;

/// The queue each host's rule feeds (queues are per namespace, so every host uses the same).
const QUEUE: u16 = 0;

/// Packets the kernel holds for the thread before dropping new ones (counted by the kernel,
/// not by [`Counters`]): far more than 5 hosts' traffic delayed by tens of milliseconds.
const KERNEL_QUEUE: u32 = 65_536;

/// How a link misbehaves.
#[derive(Debug, Clone, Copy)]
pub struct Impairment {
    /// Probability that a packet is dropped.
    pub loss: f64,
    /// Mean delay of a packet.
    pub delay: Duration,
    /// Each delay is uniform in `delay ± jitter`.
    pub jitter: Duration,
}

/// What the threads did, over all hosts.
#[derive(Debug, Default)]
pub struct Counters {
    pub passed: AtomicU64,
    pub dropped: AtomicU64,
    /// Packets released before one that arrived earlier (reordered).
    pub reordered: AtomicU64,
}

/// Impairs the egress of some hosts of a LAN until dropped.
pub struct Netem {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    pub counters: Arc<Counters>,
}

impl Netem {
    /// Impairs every packet that `hosts` send on `eth0`. Panics, saying why, if a rule or
    /// a queue cannot be set up (iptables missing, no NFQUEUE support).
    pub fn start(lan: &Lan, hosts: impl IntoIterator<Item = usize>, imp: Impairment) -> Netem {
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(Counters::default());
        let mut threads = Vec::new();
        for (n, i) in hosts.into_iter().enumerate() {
            let ns = lan.host_name(i);
            let (ready_tx, ready_rx) = std::sync::mpsc::channel();
            let (stop, counters, ns2) = (stop.clone(), counters.clone(), ns.clone());
            let seed = 0x9E37_79B9_7F4A_7C15 ^ (n as u64 + 1);
            threads.push(std::thread::spawn(move || {
                hold(&ns2, imp, seed, &stop, &counters, ready_tx);
            }));
            ready_rx
                .recv()
                .expect("the netem thread ended before binding its queue")
                .unwrap_or_else(|e| panic!("netem on {ns}: cannot bind NFQUEUE {QUEUE}: {e}"));
            // The rule only after the queue is bound: no packet meets a queue nobody reads.
            let rule = [
                "-A",
                "OUTPUT",
                "-o",
                "eth0",
                "-j",
                "NFQUEUE",
                "--queue-num",
                "0",
                "--queue-bypass",
            ];
            iptables(&ns, &rule);
        }
        Netem {
            stop,
            threads,
            counters,
        }
    }
}

impl Drop for Netem {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// `iptables ARGS` inside namespace `ns`; panics with its output on failure.
pub fn iptables(ns: &str, args: &[&str]) {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "iptables"])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run iptables (is it installed?): {e}"));
    assert!(
        out.status.success(),
        "iptables {args:?} in {ns} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Moves this thread into network namespace `ns` (only this thread: `setns` is per thread).
fn enter(ns: &str) -> std::io::Result<()> {
    let f = File::open(format!("/run/netns/{ns}"))?;
    // SAFETY: setns on a valid namespace fd; it changes only the calling thread's namespace.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// A queue bound in namespace `ns`.
fn bind(ns: &str) -> std::io::Result<nfq::Queue> {
    enter(ns)?;
    let mut q = nfq::Queue::open()?;
    q.bind(QUEUE)?;
    // Metadata only: a verdict needs the packet's id, not its bytes.
    q.set_copy_range(QUEUE, 0)?;
    q.set_queue_max_len(QUEUE, KERNEL_QUEUE)?;
    q.set_nonblocking(true);
    Ok(q)
}

/// The thread of one host: binds its queue (reporting the outcome on `ready`), then holds
/// each packet for its delay or drops it, until `stop`; then releases what it holds.
fn hold(
    ns: &str,
    imp: Impairment,
    seed: u64,
    stop: &AtomicBool,
    counters: &Counters,
    ready: std::sync::mpsc::Sender<std::io::Result<()>>,
) {
    let mut q = match bind(ns) {
        Ok(q) => {
            let _ = ready.send(Ok(()));
            q
        }
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let mut rng = SplitMix(seed);
    // Due time and arrival number -> packet; the arrival number keeps keys unique and tells
    // a reordering.
    let mut held: BTreeMap<(Instant, u64), nfq::Message> = BTreeMap::new();
    let (mut arrivals, mut last_released) = (0u64, 0u64);
    while !stop.load(Relaxed) {
        let now = Instant::now();
        loop {
            match q.recv() {
                Ok(mut msg) => {
                    arrivals += 1;
                    if rng.unit() < imp.loss {
                        msg.set_verdict(nfq::Verdict::Drop);
                        let _ = q.verdict(msg);
                        counters.dropped.fetch_add(1, Relaxed);
                        continue;
                    }
                    let spread = imp.jitter.as_secs_f64() * (2.0 * rng.unit() - 1.0);
                    let d = (imp.delay.as_secs_f64() + spread).max(0.0);
                    held.insert((now + Duration::from_secs_f64(d), arrivals), msg);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    eprintln!("netem on {ns}: receive failed: {e}");
                    break;
                }
            }
        }
        while let Some(entry) = held.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let ((_, n), mut msg) = entry.remove_entry();
            if n < last_released {
                counters.reordered.fetch_add(1, Relaxed);
            }
            last_released = last_released.max(n);
            msg.set_verdict(nfq::Verdict::Accept);
            let _ = q.verdict(msg);
            counters.passed.fetch_add(1, Relaxed);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    for (_, mut msg) in std::mem::take(&mut held) {
        msg.set_verdict(nfq::Verdict::Accept);
        let _ = q.verdict(msg);
    }
}

/// A small seeded generator (splitmix64): reproducible impairments without a dependency.
struct SplitMix(u64);

impl SplitMix {
    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}
