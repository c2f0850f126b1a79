//! A hand-written peer speaking the wire protocol with blocking std sockets, built from the
//! crate's public codec and wire types, for tests of peers that misbehave after a correct
//! handshake (flooding without reading, going silent). No shared secret.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mpreg::proto::codec::{decode_body, encode_frame, FrameCodec, DEFAULT_MAX_FRAME};
use mpreg::proto::wire::{CatalogMsg, Frame, Hello, PROTOCOL_VERSION};
use mpreg::{FnSpec, Visibility};

/// Longest any single handshake step may take here.
const HANDSHAKE_LIMIT: Duration = Duration::from_secs(10);

/// A connection that completed the handshake; what happens next is up to the test.
pub struct RawPeer {
    /// The socket, handed to the test.
    pub stream: TcpStream,
    /// The node's hello.
    pub hello: Hello,
    /// The node's catalog as it sent it.
    pub catalog: CatalogMsg,
}

/// Our hello as the peer named `name` (cluster `default`, another host, no listener).
pub fn hello(name: &str) -> Hello {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    Hello {
        protocol: PROTOCOL_VERSION,
        cluster: "default".into(),
        node_id: nanos ^ (u64::from(std::process::id()) << 32) ^ 0x5eed,
        name: name.into(),
        role: "node".into(),
        host_id: format!("rawpeer-host-{name}"),
        listen_port: 0,
        resources: vec![],
        nonce: (0..32u8).collect(),
        auth: false,
    }
}

/// A catalog offering `functions` (variadic, visible to every host, not idempotent).
pub fn catalog(functions: &[&str]) -> CatalogMsg {
    CatalogMsg {
        version: 1,
        functions: functions
            .iter()
            .map(|name| FnSpec {
                name: (*name).into(),
                params: None,
                resources: vec![],
                visibility: Visibility::Network,
                idempotent: false,
            })
            .collect(),
        subscriptions: vec![],
    }
}

/// Writes one frame.
pub fn send(stream: &mut TcpStream, frame: &Frame) {
    let bytes = encode_frame(frame).expect("encode frame");
    stream.write_all(&bytes).expect("write frame");
}

/// Reads exactly one frame (byte by byte around the header so nothing after it is
/// consumed: the rest of the stream stays in the socket for the test to use or ignore).
pub fn recv(stream: &mut TcpStream) -> Frame {
    let codec = FrameCodec::new(DEFAULT_MAX_FRAME);
    let mut buf = vec![0u8; 4];
    stream.read_exact(&mut buf).expect("read frame header");
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    buf.resize(4 + len, 0);
    stream.read_exact(&mut buf[4..]).expect("read frame body");
    assert_eq!(codec.check(&buf).expect("frame within limits"), Some(len));
    decode_body(&buf[4..]).expect("decode frame")
}

fn expect_hello(stream: &mut TcpStream) -> Hello {
    match recv(stream) {
        Frame::Hello(h) => h,
        other => panic!("expected the node's hello, got {other:?}"),
    }
}

fn expect_catalog(stream: &mut TcpStream) -> CatalogMsg {
    match recv(stream) {
        Frame::Catalog(c) => c,
        other => panic!("expected the node's catalog, got {other:?}"),
    }
}

fn prepare(stream: &TcpStream) {
    stream.set_nodelay(true).unwrap();
    stream.set_read_timeout(Some(HANDSHAKE_LIMIT)).unwrap();
    stream.set_write_timeout(Some(HANDSHAKE_LIMIT)).unwrap();
}

/// Dials the node at `addr` and completes the handshake as the dialer:
/// Hello ->, <- Hello, <- Catalog, Catalog ->.
pub fn dial(addr: SocketAddr, name: &str, offers: &[&str]) -> RawPeer {
    dial_as(addr, hello(name), offers)
}

/// Like [`dial`], introducing ourselves with `ours` (e.g. one node's second connection:
/// the same id, another nonce).
pub fn dial_as(addr: SocketAddr, ours: Hello, offers: &[&str]) -> RawPeer {
    let mut stream = TcpStream::connect(addr).expect("connect to the node");
    prepare(&stream);
    send(&mut stream, &Frame::Hello(ours));
    let hello = expect_hello(&mut stream);
    let catalog = expect_catalog(&mut stream);
    send(&mut stream, &Frame::Catalog(self::catalog(offers)));
    RawPeer {
        stream,
        hello,
        catalog,
    }
}

/// Accepts one connection on `listener` and completes the handshake as the listener:
/// <- Hello, Hello ->, Catalog ->, <- Catalog.
pub fn accept(listener: &TcpListener, name: &str, offers: &[&str]) -> RawPeer {
    accept_as(listener, self::hello(name), offers)
}

/// Like [`accept`], introducing ourselves with `ours` (e.g. with a listening port, to be
/// taken for a member).
pub fn accept_as(listener: &TcpListener, ours: Hello, offers: &[&str]) -> RawPeer {
    let (mut stream, _) = listener.accept().expect("accept the node");
    prepare(&stream);
    let hello = expect_hello(&mut stream);
    send(&mut stream, &Frame::Hello(ours));
    send(&mut stream, &Frame::Catalog(self::catalog(offers)));
    let catalog = expect_catalog(&mut stream);
    RawPeer {
        stream,
        hello,
        catalog,
    }
}

/// Reads frames from a stream with a read timeout, keeping partial frames across timeouts.
#[derive(Default)]
pub struct FrameReader {
    buf: Vec<u8>,
}

impl FrameReader {
    /// The next whole frame; `Ok(None)` when the read timed out first. `Err` when the
    /// connection closed or failed.
    pub fn next(&mut self, stream: &mut TcpStream) -> std::io::Result<Option<Frame>> {
        let codec = FrameCodec::new(DEFAULT_MAX_FRAME);
        loop {
            if let Some(len) = codec.check(&self.buf).map_err(std::io::Error::other)? {
                let frame = decode_body(&self.buf[4..4 + len]).map_err(std::io::Error::other)?;
                self.buf.drain(..4 + len);
                return Ok(Some(frame));
            }
            let mut chunk = [0u8; 16 * 1024];
            match stream.read(&mut chunk) {
                Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(None)
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}
