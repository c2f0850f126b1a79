//! Bad peers are refused with a clear reason, and the node keeps serving everyone else.

mod support;

use std::time::Duration;

use futures_util::StreamExt;
use mpreg::proto::codec::{encode_frame, FrameCodec};
use mpreg::proto::wire::{CatalogMsg, Frame, Hello, PROTOCOL_VERSION};
use mpreg::{Error, Node};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_util::codec::FramedRead;

use support::local;

/// A node with a connected bystander client that must keep working throughout.
async fn server_and_bystander() -> (Node, Node) {
    let server = local("server").max_frame(64 * 1024).start().await.unwrap();
    let bystander = local("bystander")
        .seed(server.addr().unwrap())
        .start()
        .await
        .unwrap();
    (server, bystander)
}

async fn still_serving(bystander: &Node) {
    let s: String = bystander
        .call("echo", ("ok",))
        .await
        .expect("bystander call after a bad peer");
    assert_eq!(s, "ok");
}

/// Sends `bytes` on a raw connection and returns the reason of the `Refused` frame the
/// node answers with.
async fn refusal_after(node: &Node, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(node.addr().unwrap()).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut frames = FramedRead::new(s, FrameCodec::new(1 << 20));
    loop {
        let f = tokio::time::timeout(Duration::from_secs(5), frames.next())
            .await
            .expect("the node answers in time")
            .expect("the node answers before closing")
            .expect("a valid frame");
        if let Frame::Refused(r) = f {
            // ... and then closes the connection.
            let end = tokio::time::timeout(Duration::from_secs(5), frames.next())
                .await
                .unwrap();
            assert!(end.is_none(), "connection closed after the refusal");
            return r.reason;
        }
    }
}

fn hello(protocol: u32, cluster: &str) -> Hello {
    Hello {
        protocol,
        cluster: cluster.into(),
        node_id: 12345,
        name: "raw".into(),
        role: "test".into(),
        host_id: "h".into(),
        listen_port: 0,
        resources: vec![],
        nonce: vec![0; 32],
        auth: false,
    }
}

#[tokio::test]
async fn garbage_bytes_are_refused() {
    let (server, bystander) = server_and_bystander().await;
    let reason = refusal_after(&server, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(
        reason,
        "frame of 1195725856 bytes exceeds the limit of 65536 bytes"
    );
    let reason = refusal_after(&server, &[0, 0, 0, 3, 0xc1, 0xc1, 0xc1]).await;
    assert!(reason.starts_with("malformed frame:"), "{reason}");
    still_serving(&bystander).await;
}

#[tokio::test]
async fn oversized_frame_after_the_handshake_is_refused() {
    let (server, bystander) = server_and_bystander().await;
    let mut s = TcpStream::connect(server.addr().unwrap()).await.unwrap();
    s.write_all(&encode_frame(&Frame::Hello(hello(PROTOCOL_VERSION, "default"))).unwrap())
        .await
        .unwrap();
    s.write_all(
        &encode_frame(&Frame::Catalog(CatalogMsg {
            version: 0,
            functions: vec![],
            subscriptions: vec![],
        }))
        .unwrap(),
    )
    .await
    .unwrap();
    let oversized = 100_000u32.to_be_bytes();
    let reason = refusal_after_stream(s, &oversized).await;
    assert_eq!(
        reason,
        "frame of 100000 bytes exceeds the limit of 65536 bytes"
    );
    still_serving(&bystander).await;
}

async fn refusal_after_stream(mut s: TcpStream, bytes: &[u8]) -> String {
    s.write_all(bytes).await.unwrap();
    let mut frames = FramedRead::new(s, FrameCodec::new(1 << 20));
    while let Some(f) = tokio::time::timeout(Duration::from_secs(5), frames.next())
        .await
        .unwrap()
    {
        if let Frame::Refused(r) = f.unwrap() {
            return r.reason;
        }
    }
    panic!("closed without a refusal");
}

#[tokio::test]
async fn wrong_protocol_version_is_refused() {
    let (server, bystander) = server_and_bystander().await;
    let reason = refusal_after(
        &server,
        &encode_frame(&Frame::Hello(hello(99, "default"))).unwrap(),
    )
    .await;
    assert_eq!(
        reason,
        format!("protocol version mismatch: node `raw` speaks version 99, node `server` speaks version {PROTOCOL_VERSION}")
    );
    still_serving(&bystander).await;
}

#[tokio::test]
async fn wrong_cluster_is_refused_on_both_sides() {
    let (server, bystander) = server_and_bystander().await;
    let other = local("intruder").cluster("other").start().await.unwrap();
    let e = other
        .connect(&server.addr().unwrap().to_string())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Refused { .. }), "{e}");
    assert!(
        e.to_string().ends_with("refused: cluster mismatch: node `intruder` is in cluster `other`, node `server` is in cluster `default`"),
        "{e}"
    );
    // The node refuses a dialer of another cluster just the same.
    let e = server
        .connect(&other.addr().unwrap().to_string())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("cluster mismatch"), "{e}");
    still_serving(&bystander).await;
}

#[tokio::test]
async fn secrets_must_match() {
    let dir = support::scratch::Scratch::new("secret");
    let (good, bad) = (dir.join("good"), dir.join("bad"));
    std::fs::write(&good, "correct horse\n").unwrap();
    std::fs::write(&bad, "battery staple\n").unwrap();

    let server = local("vault").secret_file(&good).start().await.unwrap();
    let addr = server.addr().unwrap().to_string();
    let friend = local("friend")
        .secret_file(&good)
        .seed(&addr)
        .start()
        .await
        .unwrap();
    assert_eq!(friend.call::<String>("echo", ("in",)).await.unwrap(), "in");

    let wrong = local("wrong").secret_file(&bad).start().await.unwrap();
    let e = wrong.connect(&addr).await.unwrap_err();
    assert!(e.to_string().contains("wrong shared secret"), "{e}");
    let none = local("none").start().await.unwrap();
    let e = none.connect(&addr).await.unwrap_err();
    assert!(
        e.to_string()
            .contains("node `vault` requires a shared secret but node `none` has none"),
        "{e}"
    );
    // The listener also checks the dialer: a secret-less listener refuses a dialer with one.
    let e = friend
        .connect(&none.addr().unwrap().to_string())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("requires a shared secret"), "{e}");

    assert_eq!(
        friend.call::<String>("echo", ("still",)).await.unwrap(),
        "still"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn empty_secret_file_is_a_config_error() {
    let path = std::env::temp_dir().join(format!("mpreg-empty-secret-{}", std::process::id()));
    std::fs::write(&path, "\n").unwrap();
    let e = local("x").secret_file(&path).start().await.unwrap_err();
    assert!(e.to_string().contains("is empty"), "{e}");
    std::fs::remove_file(&path).unwrap();
}

/// A raw dialer that completes the key exchange with `secret`, then sends one encrypted
/// record with a byte flipped: the node must close the connection, saying why.
#[tokio::test]
async fn a_tampered_record_closes_the_connection_with_a_reason() {
    use mpreg::proto::crypto::Initiator;
    use mpreg::proto::handshake::prologue;
    use mpreg::proto::wire::Auth;

    let path = std::env::temp_dir().join(format!("mpreg-tamper-{}", std::process::id()));
    std::fs::write(&path, "tamper secret\n").unwrap();
    let server = local("vault").secret_file(&path).start().await.unwrap();
    let s = TcpStream::connect(server.addr().unwrap()).await.unwrap();
    let mut frames = FramedRead::new(s, FrameCodec::new(1 << 20));
    async fn next(f: &mut FramedRead<TcpStream, FrameCodec>) -> Option<Frame> {
        tokio::time::timeout(Duration::from_secs(5), f.next())
            .await
            .expect("the node answers in time")
            .map(|f| f.expect("a valid frame"))
    }
    let mut mine = hello(PROTOCOL_VERSION, "default");
    mine.auth = true;
    let out = encode_frame(&Frame::Hello(mine.clone())).unwrap();
    frames.get_mut().write_all(&out).await.unwrap();
    let Some(Frame::Hello(theirs)) = next(&mut frames).await else {
        panic!("a hello first")
    };
    let (init, first) = Initiator::start(b"tamper secret", "default", &prologue(&mine, &theirs));
    let out = encode_frame(&Frame::Auth(Auth { message: first })).unwrap();
    frames.get_mut().write_all(&out).await.unwrap();
    let Some(Frame::Auth(answer)) = next(&mut frames).await else {
        panic!("the key exchange answer")
    };
    let session = init.finish(&answer.message).expect("the same secret");
    frames.decoder_mut().decrypt_with(session.open);
    let mut sealer = session.seal;
    let Some(Frame::Catalog(_)) = next(&mut frames).await else {
        panic!("an encrypted catalog")
    };
    let catalog = encode_frame(&Frame::Ping).unwrap();
    let mut wire = bytes::BytesMut::new();
    sealer.seal(&catalog, &mut wire).unwrap();
    let last = wire.len() - 1;
    wire[last] ^= 1;
    frames.get_mut().write_all(&wire).await.unwrap();
    // The node refuses (encrypted, with the reason) and closes; or, if our bad record
    // made it close first, just closes.
    let reason = match next(&mut frames).await {
        Some(Frame::Refused(r)) => Some(r.reason),
        None => None,
        Some(other) => panic!("unexpected {other:?}"),
    };
    if let Some(reason) = reason {
        assert!(reason.contains("failed authentication"), "{reason}");
        assert!(
            next(&mut frames).await.is_none(),
            "closed after the refusal"
        );
    }
    // The node itself keeps serving peers with the secret.
    let friend = local("friend")
        .secret_file(&path)
        .seed(server.addr().unwrap().to_string())
        .start()
        .await
        .unwrap();
    assert_eq!(friend.call::<String>("echo", ("ok",)).await.unwrap(), "ok");
    std::fs::remove_file(&path).unwrap();
}
