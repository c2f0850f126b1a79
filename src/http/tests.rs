use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::connections::MAX_CONNECTIONS;
use crate::Node;

/// `GET /health/live` on a fresh connection: the answer, or the error or end of stream.
async fn live(addr: std::net::SocketAddr) -> std::io::Result<String> {
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await?;
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out))
        .await
        .map_err(|_| std::io::Error::other("no answer within 5 s"))??;
    Ok(out)
}

/// A node on loopback (discovery off) with its HTTP listener on a free port.
async fn http_node() -> Node {
    Node::builder()
        .bind(IpAddr::V4(Ipv4Addr::LOCALHOST))
        .interfaces(["lo"])
        .mdns(false)
        .beacon(false)
        .http("127.0.0.1:0".parse().unwrap())
        .start()
        .await
        .unwrap()
}

/// A client holding every connection it may gets further ones closed unanswered; once it
/// lets one go, others are served again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_connections_are_bounded() {
    let node = http_node().await;
    let addr = node.http_addr().unwrap();
    let mut held = Vec::new();
    for _ in 0..MAX_CONNECTIONS {
        held.push(TcpStream::connect(addr).await.unwrap());
    }
    // The last of them has been accepted (it holds a permit) once it is answered.
    let last = held.last_mut().unwrap();
    last.write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 12];
    last.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"HTTP/1.1 200");

    let over = live(addr).await;
    assert!(
        !over.as_ref().is_ok_and(|a| a.starts_with("HTTP/1.1 200")),
        "one connection over the cap is closed unanswered: {over:?}"
    );

    held.pop();
    let start = Instant::now();
    loop {
        if live(addr)
            .await
            .is_ok_and(|a| a.starts_with("HTTP/1.1 200"))
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "a freed slot is reused"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(held);
    node.shutdown().await;
}

/// A client that never finishes its request's headers loses its connection (and the slot
/// it holds) after the header limit; a prompt client on another connection is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_are_cut_off() {
    let node = http_node().await;
    let addr = node.http_addr().unwrap();
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let start = Instant::now();
    assert!(live(addr).await.unwrap().starts_with("HTTP/1.1 200"));
    let mut rest = Vec::new();
    let ended = tokio::time::timeout(
        super::server::HEADER_READ_TIMEOUT + Duration::from_secs(10),
        slow.read_to_end(&mut rest),
    )
    .await;
    let took = start.elapsed();
    assert!(ended.is_ok(), "the connection is still open after {took:?}");
    assert!(
        took >= super::server::HEADER_READ_TIMEOUT - Duration::from_millis(500),
        "cut after {took:?}, before the limit"
    );
    node.shutdown().await;
}
