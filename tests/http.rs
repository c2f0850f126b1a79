//! The node's HTTP listener (`--http`, issue #13 point 3), on loopback: Prometheus
//! `/metrics`, `/health/live`, `/health/ready` (503 with a reason until the node is ready),
//! 404 elsewhere, and the port closed again by `Node::shutdown`. The page passing
//! `promtool check metrics` is an ignored test (it needs promtool).
#![cfg(feature = "http")]

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use support::{free_port, local, wait_until};

/// An answer of the node's HTTP listener.
#[derive(Debug)]
struct Reply {
    status: u16,
    content_type: String,
    body: String,
}

/// `GET path` on `addr` with a plain HTTP/1.1 exchange (one request, then close).
async fn get(addr: SocketAddr, path: &str) -> std::io::Result<Reply> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await?;
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut raw))
        .await
        .map_err(|_| std::io::Error::other("no complete answer within 5 s"))??;
    let text = String::from_utf8(raw).map_err(std::io::Error::other)?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no header end in {text:?}")))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line in {head:?}")))?;
    let content_type = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    Ok(Reply {
        status,
        content_type,
        body: body.to_string(),
    })
}

async fn get_ok(addr: SocketAddr, path: &str) -> Reply {
    get(addr, path)
        .await
        .unwrap_or_else(|e| panic!("GET {path} on {addr}: {e}"))
}

/// Status of `/health/ready`, polled until it is `want` (or the deadline).
async fn await_ready_status(addr: SocketAddr, want: u16, limit: Duration) {
    let start = std::time::Instant::now();
    loop {
        let r = get_ok(addr, "/health/ready").await;
        if r.status == want {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "/health/ready still {} ({:?}) after {limit:?}, wanted {want}",
            r.status,
            r.body
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_serves_metrics_and_health_until_it_stops() {
    let a = local("http-a").http(any_port()).start().await.unwrap();
    let addr = a.http_addr().expect("bound");
    assert_eq!(addr.ip().to_string(), "127.0.0.1");
    assert_ne!(addr.port(), 0, "the bound port, not the configured 0");
    // Without built-ins, so that b's `echo` runs on a.
    let b = local("http-b")
        .builtins(false)
        .seed(a.addr().unwrap())
        .start()
        .await
        .unwrap();
    assert_eq!(b.http_addr(), None, "off unless asked for");

    let live = get_ok(addr, "/health/live").await;
    assert_eq!((live.status, live.body.trim()), (200, "ok"));

    // Ready once b joined (well before the default 1.5 s discovery wait ends by itself).
    await_ready_status(addr, 200, Duration::from_secs(5)).await;
    assert!(a.is_ready());

    let _: String = b.call("echo", ("hi",)).await.unwrap();
    let m = get_ok(addr, "/metrics").await;
    assert_eq!(m.status, 200, "{}", m.body);
    assert_eq!(m.content_type, "text/plain; version=0.0.4; charset=utf-8");
    assert!(m.body.contains("mpreg_"), "{}", m.body);
    let served = "mpreg_calls_served_total{node=\"http-a\",function=\"echo\"} 1\n";
    assert!(m.body.contains(served), "{}", m.body);
    assert!(
        m.body
            .contains("# TYPE mpreg_call_duration_seconds histogram"),
        "{}",
        m.body
    );

    let nope = get_ok(addr, "/nope").await;
    assert_eq!(nope.status, 404);
    assert!(nope.body.contains("/metrics"), "{}", nope.body);

    b.shutdown().await;
    a.shutdown().await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the HTTP port is closed after shutdown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_is_not_ready_until_it_joins_or_its_discovery_wait_ends() {
    // Its seed does not answer yet, and the discovery wait is long: not ready, saying why.
    let seed_port = free_port();
    let late = local("http-late")
        .seed(format!("127.0.0.1:{seed_port}"))
        .discovery_wait(Duration::from_secs(60))
        .http(any_port())
        .start()
        .await
        .unwrap();
    let addr = late.http_addr().unwrap();
    assert_eq!(get_ok(addr, "/health/live").await.status, 200);
    let r = get_ok(addr, "/health/ready").await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.body.contains("discovery"), "{}", r.body);
    assert_eq!(r.body.trim().lines().count(), 1, "one line: {:?}", r.body);
    assert!(!late.is_ready());

    // The seed comes up: once they joined, ready.
    let seed = local("http-seed").port(seed_port).start().await.unwrap();
    await_ready_status(addr, 200, Duration::from_secs(20)).await;

    // A lone member is ready too, once its discovery wait ends with nobody found.
    let lone = local("http-lone")
        .discovery_wait(Duration::from_millis(300))
        .http(any_port())
        .start()
        .await
        .unwrap();
    await_ready_status(lone.http_addr().unwrap(), 200, Duration::from_secs(5)).await;
    for n in [lone, late, seed] {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_is_ready_while_attached() {
    // Its seed is not up: the client is alive, not ready.
    let seed_port = free_port();
    let client = local("http-client")
        .listen(false)
        .seed(format!("127.0.0.1:{seed_port}"))
        .http(any_port())
        .start()
        .await
        .unwrap();
    let addr = client.http_addr().unwrap();
    assert_eq!(get_ok(addr, "/health/live").await.status, 200);
    let r = get_ok(addr, "/health/ready").await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.body.contains("attached"), "{}", r.body);

    // The member comes up: the client attaches and is ready.
    let member = local("http-member").port(seed_port).start().await.unwrap();
    await_ready_status(addr, 200, Duration::from_secs(10)).await;
    wait_until(Duration::from_secs(1), || client.is_ready()).await;
    let m = get_ok(addr, "/metrics").await;
    assert_eq!(m.status, 200);
    assert!(m.body.contains("node=\"http-client\""), "{}", m.body);

    // It goes away: the client is no longer ready.
    member.shutdown().await;
    await_ready_status(addr, 503, Duration::from_secs(10)).await;
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs promtool (package prometheus): cargo test --test http -- --ignored"]
async fn the_metrics_page_over_http_passes_promtool() {
    let a = local("http-prom-a").http(any_port()).start().await.unwrap();
    let b = local("http-prom-b")
        .builtins(false)
        .seed(a.addr().unwrap())
        .start()
        .await
        .unwrap();
    for i in 0..20u64 {
        let _: u64 = b.call("echo", (i,)).await.unwrap();
    }
    let m = get_ok(a.http_addr().unwrap(), "/metrics").await;
    assert_eq!(m.status, 200);
    support::promtool_accepts(&m.body);
    b.shutdown().await;
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_http_port_fails_the_start_naming_it() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let err = local("http-taken").http(addr).start().await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(&addr.to_string()), "{msg}");
    assert!(msg.contains("HTTP"), "{msg}");
}

/// `mpreg serve --http ADDR` and `MPREG_HTTP_ADDR` open the listener (the flag winning);
/// a `--http` that is no address is refused by the CLI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mpreg_serve_takes_the_flag_and_the_variable() {
    let (port, flag, env) = (free_port(), free_port(), free_port());
    let flag_addr: SocketAddr = format!("127.0.0.1:{flag}").parse().unwrap();
    let env_addr: SocketAddr = format!("127.0.0.1:{env}").parse().unwrap();
    let _p = support::Proc::start(
        "mpreg",
        &["serve", "--http", &flag_addr.to_string()],
        &[("MPREG_HTTP_ADDR", env_addr.to_string())],
        port,
    );
    assert_eq!(get_ok(flag_addr, "/health/live").await.status, 200);
    assert!(
        tokio::net::TcpStream::connect(env_addr).await.is_err(),
        "the flag overrides the variable"
    );

    let port2 = free_port();
    let _q = support::Proc::start(
        "mpreg",
        &["serve"],
        &[("MPREG_HTTP_ADDR", env_addr.to_string())],
        port2,
    );
    let m = get_ok(env_addr, "/metrics").await;
    assert_eq!(m.status, 200);
    assert!(m.body.contains("mpreg_calls_served_total"), "{}", m.body);

    let (ok, _, err) = support::mpreg(&["serve", "--http", "9464"]);
    assert!(!ok);
    assert!(err.contains("--http"), "{err}");
}
