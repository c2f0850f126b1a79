//! A private LAN of Linux network namespaces, for running the real `mpreg` binary on several
//! "hosts" of one machine (DESIGN §13).
//!
//! For a test whose name hashes to prefix `P` and subnet `10.X.Y.0/24`, with `n` hosts:
//!
//! ```text
//!   namespace Psw:  bridge Pbr  ──  Pv1  Pv2 .. Pvn      (the switch, bridge-side veths)
//!                                    │    │       │
//!   namespace Pi:                   eth0 10.X.Y.i/24, lo, default route via eth0
//! ```
//!
//! The switch lives in its own namespace rather than in the machine's: the machine's network
//! namespace never sees a single one of these links, so no packet can be bridged or routed
//! to a real interface, and no network manager on the machine reacts to them. Nothing is
//! ever routed outside: the only interfaces are `lo` and the veths.
//!
//! Every namespace of a test is removed when its [`Lan`] is dropped (also on panic), and
//! leftovers of a crashed earlier run under the same names are removed before building.
//! Processes run as `ip netns exec Pi unshare --uts ...` with their own hostname and
//! `MPREG_HOST=Pi`: namespaces share `/etc/machine-id` and the hostname, which would
//! otherwise make every host the same host.

use std::collections::HashMap;
use std::fs;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The port every `mpreg serve` of the LAN listens on (each host has its own stack, so they
/// can all use the default one, as on a real LAN).
pub const PORT: u16 = 7700;

/// Longest a short command ([`Lan::run`]) may take before it is killed and the test fails.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(20);

/// Longest a served node may take to print its `serving` line.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// The binary under test.
const MPREG: &str = env!("CARGO_BIN_EXE_mpreg");

/// Run inside the host's fresh UTS namespace: `sh -c SCRIPT sh HOSTNAME PROGRAM ARGS..`
/// names the host, then becomes the program (same pid, so signals reach it directly).
const SET_HOSTNAME_AND_EXEC: &str = r#"hostname "$1" && shift && exec "$@""#;

/// LAN tests of one process run one at a time: their figures are timings, and a 2-core
/// machine running several LANs at once would measure the machine rather than mpreg.
static SERIAL: Mutex<()> = Mutex::new(());

/// Test name of each prefix and subnet handed out in this process, to catch two tests whose
/// names hash alike (they would tear down each other's namespaces).
static TAKEN: Mutex<Option<HashMap<String, String>>> = Mutex::new(None);

/// A LAN of `n` hosts for one test. Dropping it kills every process inside and removes
/// every namespace, bridge and link it created.
pub struct Lan {
    test: String,
    prefix: String,
    /// Second and third octets of `10.X.Y.0/24`.
    net: (u8, u8),
    hosts: usize,
    /// Logs of spawned processes and the working directory of every command (so that no
    /// stray `./mpreg.toml` is picked up).
    dir: PathBuf,
    seq: AtomicUsize,
    _lock: RunLock,
    _serial: MutexGuard<'static, ()>,
}

impl Lan {
    /// Builds a LAN of `hosts` hosts for the test `test`. Panics, saying why, when this
    /// machine cannot (not root, no `ip`/`unshare`): the tests are `#[ignore]`d, so one
    /// runs only when asked for, and then a skip would be a pass that tested nothing.
    pub fn new(test: &str, hosts: usize) -> Option<Lan> {
        assert!((1..=250).contains(&hosts), "1..=250 hosts, not {hosts}");
        if let Err(reason) = preconditions() {
            return skip(test, &reason);
        }
        let serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
        let (prefix, net) = names(test);
        claim(test, &prefix, net);
        let _lock = RunLock::acquire(&prefix);
        let dir = std::env::temp_dir().join(format!("mpreg-lan-{prefix}-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("create the LAN's temp dir");
        let lan = Lan {
            test: test.to_string(),
            prefix,
            net,
            hosts,
            dir,
            seq: AtomicUsize::new(0),
            _lock,
            _serial: serial,
        };
        lan.remove_namespaces();
        // Creating a namespace is the first privileged step; failing it means this machine
        // cannot do it (e.g. root in a container without CAP_SYS_ADMIN), not a bug.
        if let Err(e) = ip(&["netns", "add", &lan.switch()]) {
            return skip(test, &format!("cannot create a network namespace: {e}"));
        }
        if let Err(e) = lan.build() {
            panic!("building the LAN of {test} failed: {e}");
        }
        Some(lan)
    }

    /// Namespace name of host `i`, also its hostname and `MPREG_HOST`.
    pub fn host_name(&self, i: usize) -> String {
        self.check_host(i);
        format!("{}{i}", self.prefix)
    }

    /// Address of host `i`: `10.X.Y.i`.
    pub fn addr(&self, i: usize) -> Ipv4Addr {
        self.check_host(i);
        Ipv4Addr::new(10, self.net.0, self.net.1, i as u8)
    }

    /// `ADDR:PORT` of the node served on host `i`, for `--seed`.
    pub fn seed(&self, i: usize) -> String {
        format!("{}:{PORT}", self.addr(i))
    }

    /// Pulls host `i`'s cable: its bridge-side veth goes down (the host keeps running and
    /// sees no carrier).
    pub fn cut(&self, i: usize) {
        let port = self.port_name(i);
        ipn(&self.switch(), &["link", "set", &port, "down"]).expect("cut");
    }

    /// Plugs host `i`'s cable back in.
    pub fn heal(&self, i: usize) {
        let port = self.port_name(i);
        ipn(&self.switch(), &["link", "set", &port, "up"]).expect("heal");
        // Carrier loss keeps routes in current kernels; make sure anyway, since multicast
        // and broadcast sends need the default route to pick an interface.
        ipn(
            &self.host_name(i),
            &["route", "replace", "default", "dev", "eth0"],
        )
        .expect("restore the default route");
    }

    /// Starts `mpreg ARGS` on host `i`, its output captured to files; killed on drop.
    pub fn spawn(&self, i: usize, args: &[&str], envs: &[(&str, &str)]) -> LanProc {
        let label = args.first().copied().unwrap_or("mpreg");
        self.spawn_labelled(i, MPREG, label, args, envs)
    }

    /// Starts any `program ARGS` on host `i` (e.g. an example), output captured; killed on
    /// drop.
    pub fn spawn_program(
        &self,
        i: usize,
        program: &str,
        args: &[&str],
        envs: &[(&str, &str)],
    ) -> LanProc {
        let base = program.rsplit('/').next().unwrap_or(program);
        self.spawn_labelled(i, program, base, args, envs)
    }

    /// Starts `tcpdump -w PCAP` on the switch: every interface of the switch namespace (the
    /// bridge's ports; the bridge device itself only sees what is addressed to it or
    /// flooded), so every packet between any two hosts, whole (`-s 0`), written as it comes
    /// (`-U`). Returns once tcpdump listens; killed on drop.
    pub fn capture_bridge(&self, pcap: &std::path::Path) -> LanProc {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let label = format!("switch-{n}-tcpdump");
        let out = self.dir.join(format!("{label}.out"));
        let err = self.dir.join(format!("{label}.err"));
        let sw = self.switch();
        let child = Command::new("ip")
            .args([
                "netns", "exec", &sw, "tcpdump", "-i", "any", "-n", "-U", "-s", "0",
            ])
            .args(["-Z", "root", "-w"])
            .arg(pcap)
            .stdin(Stdio::null())
            .stdout(fs::File::create(&out).expect("create stdout log"))
            .stderr(fs::File::create(&err).expect("create stderr log"))
            .spawn()
            .expect("spawn ip netns exec tcpdump");
        let p = LanProc {
            label,
            child,
            out,
            err,
            exited: None,
        };
        wait_until(READY_TIMEOUT, || p.stderr().contains("listening on"));
        p
    }

    /// Starts `program ARGS` on host `i` with logs named after `what`.
    fn spawn_labelled(
        &self,
        i: usize,
        program: &str,
        what: &str,
        args: &[&str],
        envs: &[(&str, &str)],
    ) -> LanProc {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let label = format!("h{i}-{n}-{what}");
        let out = self.dir.join(format!("{label}.out"));
        let err = self.dir.join(format!("{label}.err"));
        let child = self
            .command_of(i, program, args, envs)
            .stdout(fs::File::create(&out).expect("create stdout log"))
            .stderr(fs::File::create(&err).expect("create stderr log"))
            .spawn()
            .expect("spawn ip netns exec");
        LanProc {
            label,
            child,
            out,
            err,
            exited: None,
        }
    }

    /// Makes host `j` unreachable from host `i` (a blackhole route on `i`), as when a client
    /// is given a seed on another subnet it can reach while the providers are not.
    pub fn block(&self, i: usize, j: usize) {
        let dst = format!("{}/32", self.addr(j));
        ipn(&self.host_name(i), &["route", "add", "blackhole", &dst])
            .expect("add a blackhole route");
    }

    /// `mpreg serve --name NAME --port 7700 --bind 0.0.0.0 EXTRA..` on host `i`, once it has
    /// printed its `serving` line.
    pub fn serve(&self, i: usize, name: &str, extra: &[&str]) -> LanProc {
        self.serve_with(i, name, extra, &[])
    }

    /// [`Lan::serve`] with environment variables.
    pub fn serve_with(
        &self,
        i: usize,
        name: &str,
        extra: &[&str],
        envs: &[(&str, &str)],
    ) -> LanProc {
        let port = PORT.to_string();
        let mut args = vec![
            "serve", "--name", name, "--port", &port, "--bind", "0.0.0.0",
        ];
        args.extend_from_slice(extra);
        let mut p = self.spawn(i, &args, envs);
        p.wait_for_line(&format!("serving {name} on "), READY_TIMEOUT);
        p
    }

    /// Runs a short `mpreg ARGS` on host `i` to completion. Panics, with its output, if it
    /// is still running after [`RUN_TIMEOUT`].
    pub fn run(&self, i: usize, args: &[&str], envs: &[(&str, &str)]) -> Output {
        let child = self
            .command(i, args, envs)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ip netns exec");
        let pid = child.id();
        // A waiting thread, not a polling loop, so that callers timing a run measure its
        // exit to the microsecond.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        match rx.recv_timeout(RUN_TIMEOUT) {
            Ok(out) => out.expect("wait for mpreg"),
            Err(_) => {
                signal(pid, "KILL");
                let out = rx.recv().expect("waiter").expect("wait for mpreg");
                panic!(
                    "`mpreg {}` on host {i} still running after {RUN_TIMEOUT:?}\n{}",
                    args.join(" "),
                    show_output(&out)
                );
            }
        }
    }

    /// [`Lan::run`] that must succeed; returns its trimmed stdout.
    pub fn run_ok(&self, i: usize, args: &[&str], envs: &[(&str, &str)]) -> String {
        let out = self.run(i, args, envs);
        assert!(
            out.status.success(),
            "`mpreg {}` on host {i} failed\n{}",
            args.join(" "),
            show_output(&out)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Members listed by `mpreg nodes --json ARGS..` run on host `i`.
    pub fn nodes(&self, i: usize, args: &[&str], envs: &[(&str, &str)]) -> Vec<Member> {
        let mut all = vec!["nodes", "--json"];
        all.extend_from_slice(args);
        let out = self.run_ok(i, &all, envs);
        Member::parse_list(&out)
            .unwrap_or_else(|e| panic!("`mpreg {}`: {e}:\n{out}", all.join(" ")))
    }

    /// The view of the node served on host `seed`, asked from host `i` (membership only:
    /// polls stay fast while a member is unreachable).
    pub fn view(&self, i: usize, seed: usize) -> Vec<Member> {
        self.nodes(i, &["--no-stats", "--seed", &self.seed(seed)], &[])
    }

    /// Like [`Lan::view`], with each member's counters under `stats`.
    pub fn view_with_stats(&self, i: usize, seed: usize) -> Vec<Member> {
        self.nodes(i, &["--seed", &self.seed(seed)], &[])
    }

    /// The command running `mpreg ARGS` inside host `i`, with a clean `MPREG_*` environment.
    fn command(&self, i: usize, args: &[&str], envs: &[(&str, &str)]) -> Command {
        self.command_of(i, MPREG, args, envs)
    }

    /// Runs any `program ARGS` on host `i` to completion (e.g. a third-party mDNS browser),
    /// with the same environment rules and timeout as [`Lan::run`].
    pub fn run_program(&self, i: usize, program: &str, args: &[&str]) -> Output {
        let out = self
            .command_of(i, program, args, &[])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .expect("spawn ip netns exec");
        out
    }

    fn command_of(&self, i: usize, program: &str, args: &[&str], envs: &[(&str, &str)]) -> Command {
        let host = self.host_name(i);
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &host, "unshare", "--uts", "sh", "-c"])
            .args([SET_HOSTNAME_AND_EXEC, "sh", &host, program])
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null());
        // The test's own environment must not leak seeds, clusters or configs in.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("MPREG_") {
                cmd.env_remove(k);
            }
        }
        // Plain logs: they are read from files, not a terminal.
        cmd.env("MPREG_HOST", &host).env("NO_COLOR", "1");
        cmd.envs(envs.iter().copied());
        cmd
    }

    fn check_host(&self, i: usize) {
        assert!(
            (1..=self.hosts).contains(&i),
            "host {i} not in 1..={}",
            self.hosts
        );
    }

    /// Namespace holding the bridge.
    fn switch(&self) -> String {
        format!("{}sw", self.prefix)
    }

    fn bridge(&self) -> String {
        format!("{}br", self.prefix)
    }

    /// Bridge-side veth of host `i`.
    fn port_name(&self, i: usize) -> String {
        self.check_host(i);
        format!("{}v{i}", self.prefix)
    }

    /// The bridge, then every host (the switch namespace already exists).
    fn build(&self) -> Result<(), String> {
        let (sw, br) = (self.switch(), self.bridge());
        // Without snooping the bridge floods multicast like a plain switch, so mDNS never
        // depends on IGMP queriers (there are none here).
        ipn(
            &sw,
            &["link", "add", &br, "type", "bridge", "mcast_snooping", "0"],
        )?;
        ipn(&sw, &["link", "set", &br, "up"])?;
        for i in 1..=self.hosts {
            self.add_host(i)?;
        }
        Ok(())
    }

    fn add_host(&self, i: usize) -> Result<(), String> {
        let (sw, ns, port) = (self.switch(), self.host_name(i), self.port_name(i));
        ip(&["netns", "add", &ns])?;
        ipn(
            &sw,
            &[
                "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ],
        )?;
        ipn(&sw, &["link", "set", &port, "master", &self.bridge()])?;
        ipn(&sw, &["link", "set", &port, "up"])?;
        let cidr = format!("{}/24", self.addr(i));
        let brd = Ipv4Addr::new(10, self.net.0, self.net.1, 255).to_string();
        ipn(&ns, &["addr", "add", &cidr, "brd", &brd, "dev", "eth0"])?;
        ipn(&ns, &["link", "set", "eth0", "up"])?;
        ipn(&ns, &["link", "set", "lo", "up"])?;
        // A default route so that multicast and broadcast sends have an interface.
        ipn(&ns, &["route", "replace", "default", "dev", "eth0"])
    }

    /// Kills every process in this LAN's namespaces (of this run or a crashed earlier one)
    /// and deletes them; their links go with them.
    fn remove_namespaces(&self) {
        let Ok(list) = ip_output(&["netns", "list"]) else {
            return;
        };
        for ns in list.lines().filter_map(|l| l.split_whitespace().next()) {
            let ours = ns
                .strip_prefix(&self.prefix)
                .is_some_and(|rest| rest == "sw" || rest.parse::<u32>().is_ok());
            if !ours {
                continue;
            }
            if let Ok(pids) = ip_output(&["netns", "pids", ns]) {
                for pid in pids.split_whitespace().filter_map(|p| p.parse().ok()) {
                    signal(pid, "KILL");
                }
            }
            if let Err(e) = ip(&["netns", "del", ns]) {
                eprintln!("LAN {}: cannot delete namespace {ns}: {e}", self.test);
            }
        }
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        self.remove_namespaces();
        if std::thread::panicking() {
            eprintln!("LAN {}: logs kept in {}", self.test, self.dir.display());
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// An `mpreg` process on a host of the LAN. Killed (SIGKILL) when dropped; if the test is
/// panicking, its output is printed then.
pub struct LanProc {
    label: String,
    child: Child,
    out: PathBuf,
    err: PathBuf,
    exited: Option<ExitStatus>,
}

impl LanProc {
    /// Kills the process with SIGKILL (a crash: no leave announced) and reaps it.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        self.exited = self.child.wait().ok();
    }

    /// Asks the process to stop gracefully (SIGTERM); does not wait.
    pub fn term(&mut self) {
        // Never signal a reaped pid: it may belong to somebody else by now.
        if self.exited.is_some() {
            return;
        }
        match self.child.try_wait() {
            Ok(Some(status)) => self.exited = Some(status),
            _ => signal(self.child.id(), "TERM"),
        }
    }

    /// Sends signal `sig` (a name such as `USR1`) unless the process has exited; does not
    /// wait.
    pub fn signal(&mut self, sig: &str) {
        if !self.has_exited() {
            signal(self.child.id(), sig);
        }
    }

    /// Whether the process has exited (without waiting).
    pub fn has_exited(&mut self) -> bool {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().ok().flatten();
        }
        self.exited.is_some()
    }

    /// Waits until the process has exited; panics with its output after `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        if let Some(s) = self.exited {
            return s;
        }
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                self.exited = Some(s);
                return s;
            }
            assert!(
                start.elapsed() < limit,
                "{} still running after {limit:?}\n{}",
                self.label,
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits until stdout has a line containing `pattern` and returns that line. Panics,
    /// with the output, if the process exits first or after `limit`.
    pub fn wait_for_line(&mut self, pattern: &str, limit: Duration) -> String {
        let start = Instant::now();
        loop {
            if let Some(line) = self.stdout().lines().find(|l| l.contains(pattern)) {
                return line.to_string();
            }
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                self.exited = Some(status);
                // It may have printed the line just before exiting.
                if let Some(line) = self.stdout().lines().find(|l| l.contains(pattern)) {
                    return line.to_string();
                }
                panic!(
                    "{} exited ({status}) before printing {pattern:?}\n{}",
                    self.label,
                    self.logs()
                );
            }
            assert!(
                start.elapsed() < limit,
                "{} printed no {pattern:?} within {limit:?}\n{}",
                self.label,
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Everything printed on stdout so far.
    pub fn stdout(&self) -> String {
        fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// Everything printed on stderr so far.
    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.err).unwrap_or_default()
    }

    /// Both outputs, labelled, for failure messages.
    pub fn logs(&self) -> String {
        format!(
            "--- {} stdout ---\n{}--- {} stderr ---\n{}",
            self.label,
            tail(&self.stdout()),
            self.label,
            tail(&self.stderr())
        )
    }
}

impl Drop for LanProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
    }
}

/// One entry of `mpreg nodes --json`: the fields the tests match on, and the whole object.
#[derive(Debug, Clone)]
pub struct Member {
    pub name: String,
    pub state: String,
    pub json: Value,
}

/// Whether a node is in a view, as far as failure detection is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// Listed and not suspected.
    Alive,
    /// Listed but suspected: not yet detected as failed, not yet back either.
    Suspect,
    /// Not listed, or listed as dead or gone.
    Gone,
}

impl Member {
    /// Parses the JSON array printed by `mpreg nodes --json`.
    pub fn parse_list(text: &str) -> Result<Vec<Member>, String> {
        let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let items = v.as_array().ok_or("not a JSON array")?;
        items
            .iter()
            .map(|m| {
                let field = |k: &str| m[k].as_str().map(str::to_string);
                Ok(Member {
                    name: field("name").ok_or(format!("member without a name: {m}"))?,
                    state: field("state").unwrap_or_default(),
                    json: m.clone(),
                })
            })
            .collect()
    }

    /// The names in a JSON list field such as `functions` or `resources`, whether its
    /// items are strings or objects with a `name`.
    pub fn names_in(&self, field: &str) -> Vec<String> {
        let items = self.json[field].as_array().cloned().unwrap_or_default();
        items
            .iter()
            .filter_map(|x| x.as_str().or_else(|| x["name"].as_str()).map(String::from))
            .collect()
    }
}

/// Where `name` stands in `view`. The state words are SWIM's: anything that is not a
/// suspicion or a departure counts as alive.
pub fn presence(view: &[Member], name: &str) -> Presence {
    match view.iter().find(|m| m.name == name) {
        None => Presence::Gone,
        Some(m) => match m.state.to_ascii_lowercase().as_str() {
            "dead" | "down" | "failed" | "faulty" | "left" | "leaving" | "gone" => Presence::Gone,
            "suspect" | "suspected" => Presence::Suspect,
            _ => Presence::Alive,
        },
    }
}

/// Polls `cond` until it holds and returns how long that took; panics (at the caller's
/// line) after `limit`. Conditions may be slow (a whole process run): the time is taken
/// when the satisfying poll returns, so it is an upper bound.
#[track_caller]
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    loop {
        if cond() {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "condition not met within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Prints a measured figure in the one format scripts grep for, uncaptured: figures belong
/// in every test log, not only in failing ones.
pub fn figure(name: &str, value: impl std::fmt::Display) {
    say(&format!("LAN figure: {name}={value}"));
}

/// Writes a line to the real stderr. The test harness captures `eprintln!` (and shows it
/// only when a test fails); writing to the stream itself bypasses that.
fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Whether python3 can import `module`, which `.ci/run` installs (with `install`). Without
/// it a test skips, saying why — except in CI, where it must run.
pub fn python_module(test: &str, module: &str, install: &str) -> bool {
    let ok = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        let reason = format!("python3 with the {module} package is not installed ({install})");
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run this test: {reason}"
        );
        eprintln!("skipping LAN test {test}: {reason}");
    }
    ok
}

/// Why a capture with `tcpdump` cannot run here, if it cannot.
pub fn tcpdump_available() -> Result<(), String> {
    let ok = Command::new("tcpdump")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    match ok {
        true => Ok(()),
        false => Err("`tcpdump` not found (apt-get install tcpdump)".into()),
    }
}

/// The path of example `name` (cargo test builds examples next to the test binaries).
pub fn example(name: &str) -> String {
    let mut p: PathBuf = std::env::current_exe().expect("test binary path");
    p.pop();
    p.pop();
    p.push("examples");
    p.push(name);
    assert!(p.exists(), "{} not built", p.display());
    p.to_string_lossy().into_owned()
}

/// Milliseconds since the Unix epoch: the clock the programs under test print (one machine,
/// one clock for every namespace).
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
}

/// Milliseconds of a duration, with a fraction, for figures.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The `p`-th percentile (0..=100, nearest rank) of `xs`.
pub fn percentile(xs: &[f64], p: f64) -> f64 {
    assert!(!xs.is_empty(), "percentile of nothing");
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// The stdout and stderr of a finished command, for failure messages.
pub fn show_output(out: &Output) -> String {
    format!(
        "status: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        tail(&String::from_utf8_lossy(&out.stdout)),
        tail(&String::from_utf8_lossy(&out.stderr))
    )
}

/// The last lines of a log: enough to see what happened without flooding the report.
fn tail(s: &str) -> String {
    const LINES: usize = 60;
    let lines: Vec<&str> = s.lines().collect();
    let skip = lines.len().saturating_sub(LINES);
    let mut out = String::new();
    if skip > 0 {
        out.push_str(&format!("[.. {skip} lines ..]\n"));
    }
    for l in &lines[skip..] {
        out.push_str(l);
        out.push('\n');
    }
    out
}

/// Why this machine cannot run LAN tests, if it cannot.
fn preconditions() -> Result<(), String> {
    if effective_uid() != Some(0) {
        return Err("not root (network namespaces need root)".into());
    }
    if !runs("ip", &["-V"]) {
        return Err("`ip` (iproute2) not found".into());
    }
    if !runs("unshare", &["--version"]) {
        return Err("`unshare` (util-linux) not found".into());
    }
    Ok(())
}

/// Skips the test outside CI, fails it in CI.
fn skip(test: &str, reason: &str) -> Option<Lan> {
    panic!("LAN test {test} cannot run on this machine: {reason}");
}

/// The effective uid, from `/proc/self/status` (std has no `geteuid`).
fn effective_uid() -> Option<u32> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// Whether `program ARGS` can be run and succeeds.
fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Prefix and subnet of a test: stable across runs (so a crashed run's leftovers are found
/// again) and distinct between tests. FNV-1a, since std's hasher is randomly seeded.
fn names(test: &str) -> (String, (u8, u8)) {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in test.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    // "ml" + 4 hex digits: the longest link name, `PREFIXv250`, stays far below the
    // kernel's 15 characters.
    let prefix = format!("ml{:04x}", h & 0xffff);
    let net = (64 + ((h >> 16) % 128) as u8, (h >> 24) as u8);
    (prefix, net)
}

/// Records that `test` uses `prefix` and `net`; panics if another test already does.
fn claim(test: &str, prefix: &str, net: (u8, u8)) {
    let mut taken = TAKEN.lock().unwrap_or_else(PoisonError::into_inner);
    let taken = taken.get_or_insert_with(HashMap::new);
    for key in [prefix.to_string(), format!("10.{}.{}", net.0, net.1)] {
        let owner = taken.entry(key.clone()).or_insert_with(|| test.to_string());
        assert!(
            owner == test,
            "LAN tests {owner} and {test} both hash to {key}: rename one"
        );
    }
}

/// A lock file per prefix, so that two test processes on the machine (e.g. two checkouts
/// running `cargo test` at once) never build, or tear down, the same LAN simultaneously.
/// It holds `PID STARTTIME` of its owner; a lock whose owner is gone is stale.
struct RunLock {
    path: PathBuf,
}

impl RunLock {
    /// How long to wait for another process's run of the same test.
    const PATIENCE: Duration = Duration::from_secs(600);

    fn acquire(prefix: &str) -> RunLock {
        let dir = std::env::temp_dir().join("mpreg-lan-locks");
        fs::create_dir_all(&dir).expect("create the lock directory");
        let path = dir.join(format!("{prefix}.lock"));
        let me = process_identity(std::process::id()).expect("read /proc/self/stat");
        // Written aside, then hard-linked into place: the lock appears atomically and
        // never without its owner.
        let draft = dir.join(format!("{prefix}.{}", std::process::id()));
        fs::write(&draft, &me).expect("write the lock draft");
        let start = Instant::now();
        loop {
            match fs::hard_link(&draft, &path) {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let owner = fs::read_to_string(&path).unwrap_or_default();
                    if !owner_alive(&owner) {
                        let _ = fs::remove_file(&path);
                        continue;
                    }
                    assert!(
                        start.elapsed() < Self::PATIENCE,
                        "{} held by process {owner} for over {:?}",
                        path.display(),
                        Self::PATIENCE
                    );
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("cannot take {}: {e}", path.display()),
            }
        }
        let _ = fs::remove_file(&draft);
        RunLock { path }
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// `PID STARTTIME`: the start time tells a live owner from a reused pid.
fn process_identity(pid: u32) -> Option<String> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let start_time = rest.split_whitespace().nth(19)?;
    Some(format!("{pid} {start_time}"))
}

/// Whether the process recorded in a lock file still runs.
fn owner_alive(owner: &str) -> bool {
    let Some(pid) = owner.split_whitespace().next().and_then(|p| p.parse().ok()) else {
        return false;
    };
    process_identity(pid).as_deref() == Some(owner.trim())
}

/// Runs `ip ARGS`; the error names the command and says what `ip` said.
fn ip(args: &[&str]) -> Result<(), String> {
    ip_output(args).map(drop)
}

/// Runs `ip -n NS ARGS` (inside namespace `ns`).
fn ipn(ns: &str, args: &[&str]) -> Result<(), String> {
    let mut all = vec!["-n", ns];
    all.extend_from_slice(args);
    ip(&all)
}

/// Runs `ip ARGS` and returns its stdout.
fn ip_output(args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if !out.status.success() {
        return Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Sends signal `sig` (e.g. `TERM`) to `pid` with the shell's `kill` (std has no `kill(2)`
/// other than `Child::kill`).
fn signal(pid: u32, sig: &str) {
    let _ = Command::new("sh")
        .args(["-c", r#"kill -s "$1" "$2" 2>/dev/null"#, "sh", sig])
        .arg(pid.to_string())
        .status();
}
