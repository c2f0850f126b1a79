//! What the benchmark programs share: per-call samples and their statistics, the child
//! processes a benchmark starts (this binary again, in another role), and number formatting.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// Which part a process plays; unset in the process `cargo bench` starts.
pub const ROLE_VAR: &str = "MPREG_BENCH_ROLE";

/// Per-call latencies and the wall time over which they were collected.
#[derive(Default)]
pub struct Samples {
    pub nanos: Vec<u64>,
    pub wall: Duration,
}

impl Samples {
    /// Adds a run that followed this one.
    pub fn append(&mut self, later: Samples) {
        self.nanos.extend(later.nanos);
        self.wall += later.wall;
    }

    /// Combines runs that overlapped in time.
    pub fn merge(parts: Vec<Samples>) -> Samples {
        let wall = parts.iter().map(|s| s.wall).max().unwrap_or_default();
        Samples {
            nanos: parts.into_iter().flat_map(|s| s.nanos).collect(),
            wall,
        }
    }

    pub fn stats(mut self) -> Stats {
        assert!(!self.nanos.is_empty(), "no call completed");
        self.nanos.sort_unstable();
        let pct = |q: f64| {
            self.nanos[((self.nanos.len() - 1) as f64 * q).round() as usize] as f64 / 1000.0
        };
        Stats {
            calls_per_sec: self.nanos.len() as f64 / self.wall.as_secs_f64(),
            p50_us: pct(0.50),
            p99_us: pct(0.99),
        }
    }
}

#[derive(Clone, Copy)]
pub struct Stats {
    pub calls_per_sec: f64,
    pub p50_us: f64,
    pub p99_us: f64,
}

pub fn elapsed_nanos(since: Instant, now: Instant) -> u64 {
    now.duration_since(since).as_nanos() as u64
}

/// A child running this binary in another role. Dropping it closes the child's stdin (its
/// signal to stop), kills it in case it did not, and reaps it — also when a scenario panics.
pub struct ChildProc {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl ChildProc {
    pub fn spawn(role: &str, env: &[(&str, String)]) -> ChildProc {
        let exe = std::env::current_exe().expect("cannot find the bench executable");
        let mut child = Command::new(exe)
            .env(ROLE_VAR, role)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the {role} process: {e}"));
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        ChildProc {
            child,
            stdin,
            stdout,
        }
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn read_line(&mut self) -> String {
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .expect("cannot read from a child");
        assert!(
            !line.is_empty(),
            "a child exited early (see its stderr above)"
        );
        line.trim().to_string()
    }

    /// Servers print the port they listen on as their first line.
    pub fn port(&mut self) -> u16 {
        let line = self.read_line();
        line.parse()
            .unwrap_or_else(|_| panic!("expected a port from the server, got `{line}`"))
    }

    pub fn send_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        writeln!(stdin, "{line}").expect("cannot write to a child");
    }

    /// Closes stdin and returns everything the child writes until it exits.
    pub fn finish(mut self) -> Vec<u8> {
        self.stdin = None;
        let mut out = Vec::new();
        self.stdout
            .read_to_end(&mut out)
            .expect("cannot read from a child");
        out
    }
}

impl Drop for ChildProc {
    fn drop(&mut self) {
        self.stdin = None;
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Blocks until the parent closes our stdin — which also happens if the parent dies, so a
/// server child never outlives the benchmark.
pub fn wait_for_parent() {
    let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
}

/// `1234567` as `1,234,567`.
pub fn thousands(x: f64) -> String {
    let digits = format!("{:.0}", x);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// CPU time (ns) the threads of process `pid` (`"self"` for this one) have run so far, from
/// the scheduler's per-thread `schedstat`: nanosecond resolution, and with paravirtual steal
/// accounting (this machine's kernel) time stolen by the hypervisor is not counted, so it
/// measures work done rather than how busy the host was. Threads that already exited are
/// not counted (the benchmarks' runtimes keep theirs).
pub fn cpu_ns(pid: &str) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}
