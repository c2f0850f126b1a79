//! The process-global default node: `mpreg::call` and `mpreg::blocking::call` configured
//! from `MPREG_*` variables. One test per binary because it sets process environment.

mod support;

#[test]
fn default_node_calls_by_name_async_and_blocking() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(support::local("server").start()).unwrap();
    std::env::set_var("MPREG_SEEDS", server.addr().unwrap().to_string());
    // Loopback only, no broadcast or multicast from this test.
    std::env::set_var("MPREG_INTERFACES", "lo");
    std::env::set_var("MPREG_MDNS", "0");
    std::env::set_var("MPREG_BEACON", "0");
    std::env::set_var("MPREG_CALL_TIMEOUT_MS", "5000");

    // From an async context (a runtime that is not the default node's).
    let s: String = rt.block_on(mpreg::call("echo", ("hi",))).unwrap();
    assert_eq!(s, "hi");
    // From a plain thread.
    let v: Vec<i64> = std::thread::spawn(|| mpreg::blocking::call("echos", (1, 2)))
        .join()
        .unwrap()
        .unwrap();
    assert_eq!(v, vec![1, 2]);
    // Refused inside a runtime, with a message saying what to do instead.
    let e = rt
        .block_on(async { mpreg::blocking::call::<String>("echo", ("x",)) })
        .unwrap_err();
    assert!(e.to_string().contains("use mpreg::call(..).await"), "{e}");
    // The default node is a client: it does not listen.
    let node = rt.block_on(mpreg::default_node()).unwrap();
    assert!(node.addr().is_none());
    // `mpreg::shutdown()` stops it (its connections close); the next call starts another.
    let first = node.name().to_string();
    rt.block_on(mpreg::shutdown());
    assert!(
        node.peers().is_empty(),
        "the stopped default node keeps no connection"
    );
    let s: String = rt.block_on(mpreg::call("echo", ("again",))).unwrap();
    assert_eq!(s, "again");
    let again = rt.block_on(mpreg::default_node()).unwrap();
    assert_ne!(again.name(), first, "a new default node after shutdown");
    rt.block_on(mpreg::shutdown());
    rt.block_on(mpreg::shutdown()); // none running: nothing to do
    rt.block_on(server.shutdown());
}

/// A library server (`mpreg::serve()`, the calculator example) says where it is and, with
/// 7700 taken, serves on a free port instead of failing.
#[test]
fn a_library_server_says_where_it_serves_and_falls_back_from_a_taken_7700() {
    use std::io::{BufRead, BufReader};
    // Hold 7700 (if someone else already does, it is taken all the same).
    let _holder = std::net::TcpListener::bind(("127.0.0.1", mpreg::DEFAULT_PORT));
    let mut cmd = std::process::Command::new(support::built("calculator"));
    support::confine(&mut cmd);
    let mut child = cmd
        .env_remove("MPREG_PORT")
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run the calculator example");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    let serving = loop {
        let line = lines.next().expect("stderr ended").unwrap();
        seen.push(line.clone());
        match line.find("serving ") {
            Some(at) if !line.contains("is taken") => break line[at..].to_string(),
            _ => {}
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        seen.iter().any(|l| l.contains("port 7700 is taken")),
        "{seen:#?}"
    );
    let addr = serving.rsplit(' ').next().unwrap();
    let addr: std::net::SocketAddr = addr.parse().unwrap_or_else(|e| panic!("{e}: {serving}"));
    assert_ne!(addr.port(), mpreg::DEFAULT_PORT, "{serving}");
}

/// A library server that never calls `init_logging` (the `bare_server` example) still
/// prints where it serves: the `eprintln!` fallback of `serve()`, not a log line.
#[test]
fn a_library_server_without_init_logging_still_says_where_it_serves() {
    let port = support::free_port();
    let mut cmd = std::process::Command::new(support::built("bare_server"));
    support::confine(&mut cmd);
    let mut child = cmd
        .env("MPREG_PORT", port.to_string())
        .env("MPREG_NAME", "bare")
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run the bare_server example");
    let stderr = child.stderr.take().unwrap();
    let line = first_line_with(stderr, "serving", std::time::Duration::from_secs(20));
    let _ = child.kill();
    let _ = child.wait();
    let line = line.unwrap_or_else(|seen| panic!("no `serving` line on stderr: {seen:#?}"));
    assert_eq!(line, format!("mpreg: serving bare on 127.0.0.1:{port}"));
}

/// The first line of `stream` containing `needle`, read on a thread so that a child that
/// says nothing fails the test after `limit` instead of hanging it; else the lines seen.
fn first_line_with(
    stream: impl std::io::Read + Send + 'static,
    needle: &'static str,
    limit: std::time::Duration,
) -> Result<String, Vec<String>> {
    use std::io::BufRead;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = std::time::Instant::now() + limit;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return Ok(line),
            Ok(line) => seen.push(line),
            Err(_) => return Err(seen),
        }
    }
}
