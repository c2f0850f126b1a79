//! A controller's services through their lives, with shell-script services and a stand-in
//! for the cluster: start, ready, output, stop (gracefully and by SIGKILL), restarts under
//! the policy, failures reported with their last lines, everything stopped at the end.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;

use super::controller::{Controller, View};
use super::status::State;

/// The cluster as a test sets it: members by name, with their start times and functions.
#[derive(Default)]
struct Members {
    list: Mutex<HashMap<String, (u64, Vec<String>)>>,
    epoch: Option<watch::Sender<u64>>,
}

impl View for Members {
    fn member(&self, name: &str, since_ms: u64) -> Option<Vec<String>> {
        let list = self.list.lock();
        let (started, f) = list.get(name)?;
        (*started >= since_ms).then(|| f.clone())
    }

    fn changes(&self) -> watch::Receiver<u64> {
        self.epoch.as_ref().unwrap().subscribe()
    }
}

impl Members {
    fn new() -> Arc<Members> {
        Arc::new(Members {
            list: Mutex::default(),
            epoch: Some(watch::Sender::new(0)),
        })
    }

    fn set(&self, name: &str, started_ms: u64, functions: &[&str]) {
        let f = functions.iter().map(|s| s.to_string()).collect();
        self.list.lock().insert(name.into(), (started_ms, f));
        self.epoch.as_ref().unwrap().send_modify(|e| *e += 1);
    }

    fn remove(&self, name: &str) {
        self.list.lock().remove(name);
        self.epoch.as_ref().unwrap().send_modify(|e| *e += 1);
    }
}

/// A fresh empty folder for one test, removed when it passes.
fn scratch(test: &str) -> super::scratch::Scratch {
    super::scratch::Scratch::new(&format!("life-{test}"))
}

/// A service folder `name` with `script` as its program and `manifest` lines added.
fn service(folder: &Path, name: &str, script: &str, manifest: &str) {
    let d = folder.join(name);
    std::fs::create_dir_all(&d).unwrap();
    let run = d.join("run.sh");
    std::fs::write(&run, format!("#!/bin/sh\n{script}\n")).unwrap();
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        d.join("service.toml"),
        format!("command = \"run.sh\"\n{manifest}\n"),
    )
    .unwrap();
}

fn controller(folder: &Path, members: &Arc<Members>) -> Arc<Controller> {
    Controller::new(
        "ctl".into(),
        "host-a".into(),
        vec![folder.to_path_buf()],
        vec![("MPREG_CLUSTER".into(), "test".into())],
        members.clone(),
    )
}

fn alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid as libc::pid_t, 0) == 0 }
}

async fn until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < end {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cond()
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn state_of(ctl: &Controller, name: &str) -> super::ServiceStatus {
    ctl.list()
        .0
        .into_iter()
        .find(|s| s.service == name)
        .unwrap()
}

#[tokio::test]
async fn a_started_service_gets_the_environment_prints_and_stops_gracefully() {
    let d = scratch("graceful");
    service(
        &d,
        "talk",
        "echo \"service=$MPREG_SERVICE name=$MPREG_NAME cluster=$MPREG_CLUSTER\"\necho oops >&2\n\
         trap 'echo got TERM; exit 0' TERM\nwhile true; do sleep 0.05; done",
        "ready = \"started\"\ndescription = \"talks\"",
    );
    let members = Members::new();
    let ctl = controller(&d, &members);
    assert_eq!(state_of(&ctl, "talk").state, State::Stopped);
    let s = ctl.start("talk").await.unwrap();
    assert_eq!((s.state, s.description.as_str()), (State::Running, "talks"));
    let pid = s.pid.unwrap();
    assert!(alive(pid));
    assert!(
        until(Duration::from_secs(5), || ctl
            .logs("talk", 10, 0)
            .unwrap()
            .lines
            .len()
            >= 3)
        .await
    );
    let logs = ctl.logs("talk", 100, 0).unwrap();
    let text: Vec<(String, String)> = logs
        .lines
        .iter()
        .map(|l| (l.stream.clone(), l.text.clone()))
        .collect();
    assert!(
        text.contains(&(
            "stdout".into(),
            "service=talk name=talk@ctl cluster=test".into()
        )),
        "{text:?}"
    );
    assert!(text.contains(&("stderr".into(), "oops".into())), "{text:?}");
    // Asking from the last number gives only newer lines.
    assert!(ctl.logs("talk", 100, logs.next).unwrap().lines.is_empty());
    // Starting a running service is a no-op that answers its state.
    assert_eq!(ctl.start("talk").await.unwrap().pid, Some(pid));
    let stopped = ctl.stop("talk").await.unwrap();
    assert!(stopped.was_running && !stopped.killed, "{stopped:?}");
    assert_eq!(stopped.status.state, State::Stopped);
    assert_eq!(stopped.status.last_exit.as_deref(), Some("exit code 0"));
    assert!(!alive(pid));
    assert!(ctl
        .logs("talk", 100, 0)
        .unwrap()
        .lines
        .iter()
        .any(|l| l.text == "got TERM"));
    // Stopping it again says it was not running.
    assert!(!ctl.stop("talk").await.unwrap().was_running);
}

#[tokio::test]
async fn a_service_ignoring_sigterm_is_killed_after_stop_timeout_with_what_it_started() {
    let d = scratch("kill");
    service(
        &d,
        "stubborn",
        "trap '' TERM\nsleep 300 &\necho child $!\nwhile true; do sleep 0.05; done",
        "ready = \"started\"\nstop_timeout = 0.3",
    );
    let members = Members::new();
    let ctl = controller(&d, &members);
    ctl.start("stubborn").await.unwrap();
    let mut grandchild = None;
    assert!(
        until(Duration::from_secs(5), || {
            grandchild = ctl
                .logs("stubborn", 10, 0)
                .unwrap()
                .lines
                .iter()
                .find_map(|l| {
                    l.text
                        .strip_prefix("child ")
                        .and_then(|p| p.parse::<u32>().ok())
                });
            grandchild.is_some()
        })
        .await
    );
    let stopped = ctl.stop("stubborn").await.unwrap();
    assert!(stopped.killed, "{stopped:?}");
    assert!(stopped.took_ms >= 300, "{stopped:?}");
    assert_eq!(
        stopped.status.last_exit.as_deref(),
        Some("killed by signal 9")
    );
    // The whole process group went: what the service started is gone too.
    assert!(until(Duration::from_secs(2), || !alive(grandchild.unwrap())).await);
}

#[tokio::test]
async fn on_failure_restarts_with_a_count_then_gives_up_and_never_does_not() {
    let d = scratch("restart");
    let count = d.join("runs");
    service(
        &d,
        "flaky",
        &format!("echo run >> {}\necho failing\nexit 4", count.display()),
        "ready = \"started\"\nrestart = { policy = \"on-failure\", max_restarts = 2, backoff_ms = 20 }",
    );
    service(&d, "once", "echo bad config\nexit 2", "");
    let members = Members::new();
    let ctl = controller(&d, &members);
    ctl.start("flaky").await.unwrap();
    assert!(
        until(Duration::from_secs(10), || state_of(&ctl, "flaky").state
            == State::Failed)
        .await
    );
    let s = state_of(&ctl, "flaky");
    assert_eq!(
        (s.restarts, s.last_exit.as_deref()),
        (2, Some("exit code 4"))
    );
    assert_eq!(std::fs::read_to_string(&count).unwrap().lines().count(), 3);
    let notes: Vec<String> = ctl
        .logs("flaky", 100, 0)
        .unwrap()
        .lines
        .into_iter()
        .filter(|l| l.stream == "mpreg")
        .map(|l| l.text)
        .collect();
    assert!(
        notes.iter().any(|n| n.contains("restart 2 of 2")),
        "{notes:?}"
    );
    assert!(
        notes
            .iter()
            .any(|n| n.contains("restarts in a row used up")),
        "{notes:?}"
    );
    // A service waited for (ready = joined) that exits first: start fails with its lines.
    let e = ctl.start("once").await.unwrap_err();
    assert!(e.contains("ended before it was ready (exit code 2)"), "{e}");
    assert!(e.contains("bad config"), "{e}");
    assert_eq!(state_of(&ctl, "once").state, State::Failed);
}

#[tokio::test]
async fn ready_waits_for_its_own_node_not_a_dead_predecessor_of_the_same_name() {
    let d = scratch("join");
    service(
        &d,
        "svc",
        "while true; do sleep 0.05; done",
        "start_timeout = 5",
    );
    let members = Members::new();
    // A crashed earlier run of it is still listed, with an older start time.
    members.set("svc@ctl", now_ms() - 10_000, &["old"]);
    let ctl = controller(&d, &members);
    let start = {
        let ctl = ctl.clone();
        tokio::spawn(async move { ctl.start("svc").await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(state_of(&ctl, "svc").state, State::Starting);
    members.set("svc@ctl", now_ms(), &["fresh"]);
    let s = start.await.unwrap().unwrap();
    assert_eq!(
        (s.state, s.functions.clone()),
        (State::Running, vec!["fresh".to_string()])
    );
    assert_eq!(s.service_node.as_deref(), Some("svc@ctl"));
    // Stopping waits for the node to leave; here the test makes it leave.
    let leave = {
        let m = members.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            m.remove("svc@ctl");
        })
    };
    ctl.stop("svc").await.unwrap();
    leave.await.unwrap();
}

#[tokio::test]
async fn a_node_that_never_joins_is_stopped_at_start_timeout() {
    let d = scratch("timeout");
    service(
        &d,
        "mute",
        "echo waiting\nwhile true; do sleep 0.05; done",
        "start_timeout = 0.5",
    );
    let members = Members::new();
    let ctl = controller(&d, &members);
    let e = ctl.start("mute").await.unwrap_err();
    assert!(e.contains("did not join within 500ms"), "{e}");
    assert!(e.contains("waiting"), "{e}");
    assert_eq!(state_of(&ctl, "mute").state, State::Stopped);
}

#[tokio::test]
async fn unknown_and_broken_services_are_named_and_stop_all_ends_everything() {
    let d = scratch("all");
    service(
        &d,
        "a",
        "while true; do sleep 0.05; done",
        "ready = \"started\"",
    );
    service(
        &d,
        "b",
        "while true; do sleep 0.05; done",
        "ready = \"started\"",
    );
    std::fs::create_dir_all(d.join("broken")).unwrap();
    std::fs::write(d.join("broken/service.toml"), "command = 1\n").unwrap();
    let members = Members::new();
    let ctl = controller(&d, &members);
    let e = ctl.start("nope").await.unwrap_err();
    assert!(
        e.contains("no service `nope` is installed on host `host-a`"),
        "{e}"
    );
    assert!(e.contains("installed: a, b"), "{e}");
    let e = ctl.start("broken").await.unwrap_err();
    assert!(e.contains("cannot be used") && e.contains("line 1"), "{e}");
    assert!(ctl
        .list()
        .1
        .iter()
        .any(|p| p.contains("broken/service.toml: line 1")));
    let pa = ctl.start("a").await.unwrap().pid.unwrap();
    let pb = ctl.start("b").await.unwrap().pid.unwrap();
    ctl.stop_all().await;
    assert!(!alive(pa) && !alive(pb));
    let e = ctl.start("a").await.unwrap_err();
    assert!(e.contains("shutting down"), "{e}");
}
