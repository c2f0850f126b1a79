//! Services (issue #16) as a user drives them from the command line, on loopback: a node
//! (`mpreg serve`) controls the services installed in its user's folder; `mpreg services`,
//! `start`, `call`, `logs`, `stop` work from another process with no address of the service;
//! a crashing service is restarted under `on-failure` and reported with its count; control
//! from "another host" (another host id) is refused without a secret or
//! `--allow-remote-services`; the node's stop stops its services.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::scratch::Scratch;
use support::{built, free_port, mpreg_env, Proc};

/// A fresh empty folder for one test, removed when it passes.
fn scratch(test: &str) -> Scratch {
    Scratch::new(&format!("services-{test}"))
}

/// A host's services folder (its `XDG_CONFIG_HOME`) with `hello` (the example service),
/// `crashy` (the same, crashing `crashes` times first) and a malformed `broken`.
fn install(d: &Path, crashes: u32) -> PathBuf {
    let config = d.join("config");
    let env = [("XDG_CONFIG_HOME", config.display().to_string())];
    let example = built("service_hello");
    let (ok, out, err) = mpreg_env(
        &["install", example.to_str().unwrap(), "--name", "hello"],
        &env,
    );
    assert!(ok, "{out}\n{err}");
    let services = config.join("mpreg/services");
    support::services::crashy_and_broken(&services, &example, &d.join("crashes"), crashes);
    config
}

/// `mpreg serve` controlling `config`'s services, as host `host-a`.
fn serve(config: &Path, extra_env: &[(&str, String)], args: &[&str]) -> Proc {
    let port = free_port();
    let mut env = vec![
        ("XDG_CONFIG_HOME", config.display().to_string()),
        ("MPREG_HOST", "host-a".to_string()),
    ];
    env.extend(extra_env.iter().cloned());
    let mut all = vec!["serve", "--name", "ctl"];
    all.extend(args);
    Proc::start("mpreg", &all, &env, port)
}

/// Runs the CLI against `node` as a process of host `host`.
fn cli(node: &Proc, host: &str, args: &[&str], extra: &[(&str, String)]) -> (bool, String, String) {
    let seed = node.addr.to_string();
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--seed", &seed]);
    let mut env = vec![("MPREG_HOST", host.to_string())];
    env.extend(extra.iter().cloned());
    mpreg_env(&all, &env)
}

fn listed(node: &Proc, name: &str) -> serde_json::Value {
    let (ok, out, err) = cli(node, "host-a", &["services", "--json"], &[]);
    assert!(ok, "{out}\n{err}");
    let all: Vec<serde_json::Value> = serde_json::from_str(&out).expect(&out);
    all.into_iter()
        .find(|s| s["service"] == name)
        .unwrap_or_default()
}

fn alive(pid: u64) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid as libc::pid_t, 0) == 0 }
}

#[test]
fn listed_started_called_logged_restarted_and_stopped_from_the_cli() {
    let d = scratch("cli");
    let config = install(&d, 2);
    let mut node = serve(&config, &[], &[]);

    let (ok, out, err) = cli(&node, "host-a", &["services", "--json"], &[]);
    assert!(ok, "{err}");
    let all: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let hello = all.iter().find(|s| s["service"] == "hello").expect(&out);
    assert_eq!(
        (hello["state"].as_str(), hello["host"].as_str()),
        (Some("stopped"), Some("host-a"))
    );
    for key in [
        "service",
        "host",
        "node",
        "state",
        "pid",
        "uptime_ms",
        "restarts",
        "functions",
    ] {
        assert!(hello.get(key).is_some(), "`{key}` missing from {hello}");
    }
    // The malformed manifest is reported with its file and problem; the node lives on.
    assert!(
        err.contains("broken/service.toml: line 2, column 1: unknown field `argz`"),
        "{err}"
    );
    let (ok, table, _) = cli(&node, "host-a", &["services"], &[]);
    assert!(
        ok && table.contains("hello") && table.contains("stopped"),
        "{table}"
    );

    let (ok, out, err) = cli(&node, "host-a", &["start", "hello"], &[]);
    assert!(ok, "{out}\n{err}");
    assert!(
        out.contains("started `hello` on `ctl`") && out.contains("hello_from_service"),
        "{out}"
    );
    let (ok, out, err) = cli(&node, "host-a", &["call", "hello_from_service", "Ada"], &[]);
    assert!(ok, "{err}");
    assert_eq!(out, "\"hello Ada, from service `hello`\"");
    let running = listed(&node, "hello");
    assert_eq!(running["state"], "running");
    assert_eq!(
        running["functions"],
        serde_json::json!(["hello_from_service"])
    );
    let (ok, out, _) = cli(&node, "host-a", &["logs", "hello", "-n", "5"], &[]);
    assert!(ok && out.contains("serving as node hello@ctl"), "{out}");

    let (ok, out, err) = cli(&node, "host-a", &["stop", "hello"], &[]);
    assert!(ok, "{err}");
    assert!(
        out.contains("stopped `hello`") && out.contains("exit code 0"),
        "{out}"
    );
    let (ok, _, err) = cli(&node, "host-a", &["call", "hello_from_service", "Ada"], &[]);
    assert!(!ok && err.contains("hello_from_service"), "{err}");
    let (_, out, _) = cli(&node, "host-a", &["logs", "hello"], &[]);
    assert!(out.contains("saying goodbye"), "{out}");

    // Crashes twice after joining, restarted each time, then stays up.
    let (ok, out, err) = cli(&node, "host-a", &["start", "crashy"], &[]);
    assert!(ok, "{out}\n{err}");
    let start = Instant::now();
    let mut last = serde_json::Value::Null;
    while start.elapsed() < Duration::from_secs(20) {
        last = listed(&node, "crashy");
        if last["restarts"] == 2 && last["state"] == "running" {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        (last["restarts"].as_u64(), last["state"].as_str()),
        (Some(2), Some("running")),
        "{last}"
    );
    assert_eq!(last["last_exit"], "exit code 3");
    let pid = last["pid"].as_u64().unwrap();

    // The node's stop stops what it started.
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(node.child.id() as libc::pid_t, libc::SIGTERM) };
    let start = Instant::now();
    while node.child.try_wait().unwrap().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "mpreg serve did not stop"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!alive(pid), "service pid {pid} outlived its node");
}

#[test]
fn control_from_another_host_needs_a_secret_or_the_flag() {
    let d = scratch("remote");
    let config = install(&d, 0);
    let node = serve(&config, &[], &[]);
    // Listing is open to everyone; starting is not.
    let (ok, out, _) = cli(&node, "host-b", &["services"], &[]);
    assert!(ok && out.contains("hello"), "{out}");
    let (ok, _, err) = cli(&node, "host-b", &["start", "hello"], &[]);
    assert!(!ok, "{err}");
    assert!(
        err.contains("refuses to start or stop services for a caller on host `host-b`")
            && err.contains("no shared secret")
            && err.contains("--allow-remote-services"),
        "{err}"
    );
    let (ok, _, err) = cli(&node, "host-b", &["stop", "hello"], &[]);
    assert!(!ok && err.contains("refuses"), "{err}");
    // The same host may.
    let (ok, out, err) = cli(&node, "host-a", &["start", "hello"], &[]);
    assert!(ok, "{out}\n{err}");
    drop(node);

    let node = serve(&config, &[], &["--allow-remote-services"]);
    let (ok, out, err) = cli(&node, "host-b", &["restart", "hello"], &[]);
    assert!(ok && out.contains("started `hello`"), "{out}\n{err}");
    let (ok, out, err) = cli(&node, "host-b", &["stop", "hello"], &[]);
    assert!(ok && out.contains("stopped"), "{out}\n{err}");
    drop(node);

    let secret = d.join("secret");
    std::fs::write(&secret, "s3cret").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let with = [("MPREG_SECRET_FILE", secret.display().to_string())];
    let node = serve(&config, &with, &[]);
    let (ok, out, err) = cli(&node, "host-b", &["start", "hello"], &with);
    assert!(ok, "{out}\n{err}");
    let (ok, out, _) = cli(
        &node,
        "host-b",
        &["call", "hello_from_service", "Bo"],
        &with,
    );
    assert!(ok && out.contains("hello Bo"), "{out}");
    let (ok, _, err) = cli(&node, "host-b", &["stop", "hello"], &with);
    assert!(ok, "{err}");
}

#[test]
fn a_node_without_services_says_so() {
    let d = scratch("none");
    let config = install(&d, 0);
    let node = serve(&config, &[], &["--no-services"]);
    let (ok, _, err) = cli(&node, "host-a", &["start", "hello"], &[]);
    assert!(!ok && err.contains("no node controls services"), "{err}");
}

#[test]
fn a_service_installed_on_several_hosts_needs_a_choice() {
    let d = scratch("choice");
    let config_a = install(&d.join("a"), 0);
    let config_b = install(&d.join("b"), 0);
    let a = serve(&config_a, &[], &[]);
    let port = free_port();
    let b_env = [
        ("XDG_CONFIG_HOME", config_b.display().to_string()),
        ("MPREG_HOST", "host-b".to_string()),
        ("MPREG_SEEDS", a.addr.to_string()),
    ];
    let _b = Proc::start("mpreg", &["serve", "--name", "ctl-b"], &b_env, port);
    // Both controllers listed (b joins a's cluster through its seed).
    let start = Instant::now();
    loop {
        let (ok, out, _) = cli(&a, "host-a", &["services", "--json"], &[]);
        let n = serde_json::from_str::<Vec<serde_json::Value>>(&out)
            .map(|l| l.iter().filter(|s| s["service"] == "hello").count())
            .unwrap_or(0);
        if ok && n == 2 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "{out}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (ok, _, err) = cli(&a, "host-a", &["start", "hello"], &[]);
    assert!(!ok, "{err}");
    assert!(
        err.contains("installed on several nodes")
            && err.contains("host `host-a` (node `ctl`")
            && err.contains("host `host-b` (node `ctl-b`")
            && err.contains("--host or --node"),
        "{err}"
    );
    let (ok, out, err) = cli(&a, "host-a", &["start", "hello", "--host", "host-a"], &[]);
    assert!(ok && out.contains("on `ctl`"), "{out}\n{err}");
    // Only one runs, so stop and logs need no choice.
    let (ok, out, _) = cli(&a, "host-a", &["logs", "hello"], &[]);
    assert!(ok && out.contains("hello@ctl"), "{out}");
    let (ok, out, err) = cli(&a, "host-a", &["stop", "hello"], &[]);
    assert!(
        ok && out.contains("stopped `hello` on `ctl`"),
        "{out}\n{err}"
    );
    let (ok, _, err) = cli(&a, "host-a", &["start", "nope"], &[]);
    assert!(
        !ok && err.contains("no node has service `nope` installed"),
        "{err}"
    );
}

/// A shell-script service (ready as soon as it runs) in a fresh services folder.
fn script_service(d: &Path, name: &str) -> PathBuf {
    let folder = d.join("services");
    std::fs::create_dir_all(folder.join(name)).unwrap();
    let run = folder.join(name).join("run.sh");
    std::fs::write(
        &run,
        "#!/bin/sh\necho \"up as $MPREG_SERVICE\"\nexec sleep 300\n",
    )
    .unwrap();
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        folder.join(name).join("service.toml"),
        "command = \"run.sh\"\nready = \"started\"\nstop_timeout = 2\n",
    )
    .unwrap();
    folder
}

#[tokio::test]
async fn the_rust_api_starts_lists_reads_and_stops_by_host() {
    let d = scratch("api");
    let folder = script_service(&d, "ticker");
    let ctl = support::local("lab")
        .host("lab-pc")
        .services(true)
        .services_dir(&folder)
        .start()
        .await
        .unwrap();
    let user = support::local("user")
        .host("lab-pc")
        .seed(ctl.addr().unwrap())
        .start()
        .await
        .unwrap();
    support::wait_until(Duration::from_secs(10), || {
        user.members().iter().any(|m| m.name == "lab")
    })
    .await;
    let listed = user.services().await.unwrap();
    let lab = listed
        .iter()
        .find(|h| h.node == "lab")
        .expect("lab lists its services");
    assert!(lab.services.iter().any(|s| s.service == "ticker"));
    assert!(!lab.remote_control);

    let s = user.host("lab-pc").start_service("ticker").await.unwrap();
    assert_eq!(
        (s.state, s.node.as_str()),
        (mpreg::service::State::Running, "lab")
    );
    let pid = s.pid.unwrap() as u64;
    let start = Instant::now();
    loop {
        let logs = user.cluster().service_logs("ticker", 10, 0).await.unwrap();
        if logs.lines.iter().any(|l| l.text == "up as ticker") {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{logs:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stopped = user.host("lab-pc").stop_service("ticker").await.unwrap();
    assert!(stopped.was_running && !stopped.killed, "{stopped:?}");
    assert!(!alive(pid));
    // Another host is refused, naming why.
    let far = support::local("far")
        .host("other-pc")
        .seed(ctl.addr().unwrap())
        .start()
        .await
        .unwrap();
    support::wait_until(Duration::from_secs(10), || {
        far.members().iter().any(|m| m.name == "lab")
    })
    .await;
    let e = far
        .host("lab-pc")
        .start_service("ticker")
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("refuses to start or stop services"),
        "{e}"
    );
    // A perspective with no such service says which nodes were asked.
    let e = user.node("lab").start_service("nope").await.unwrap_err();
    assert!(
        e.to_string()
            .contains("no node on node `lab` has service `nope`"),
        "{e}"
    );
    for n in [far, user, ctl] {
        n.shutdown().await;
    }
}
