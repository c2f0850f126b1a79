//! Starting inputs for each target, made by the code itself (real frames, sealed
//! datagrams, gossip between two nodes) or taken from the tests' examples.

use bytes::Bytes;

use super::wire::gossip_seeds;
use crate::proto::codec::encode_frame;
use crate::proto::crypto::Initiator;
use crate::proto::datagram::{cluster_tag, seal, Kind, Stamp};
use crate::proto::handshake::{prologue, NONCE_LEN};
use crate::proto::publish_frame::{encode_publish, Batch, PublishRef};
use crate::proto::wire::{Auth, Call, Cancel, Frame, Hello, Refused, PROTOCOL_VERSION};

/// Seed inputs of every target: `(target, input)` pairs, a few per target.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let mut out = Vec::new();
    let mut add = |t: &'static str, inputs: Vec<Vec<u8>>| {
        out.extend(inputs.into_iter().map(|i| (t, i)));
    };
    add("frames", frames());
    add("handshake", handshakes());
    add("datagram", datagrams());
    add("membership", gossip());
    add("topic", texts(TOPICS));
    add("condition", texts(CONDITIONS));
    add("workflow", texts(WORKFLOWS));
    add("args", args());
    add("gateway", gateway());
    out
}

fn texts(list: &[&str]) -> Vec<Vec<u8>> {
    list.iter().map(|t| t.as_bytes().to_vec()).collect()
}

/// Frames of every common kind, and one stream of several.
fn frames() -> Vec<Vec<u8>> {
    let call = Frame::Call(Call {
        id: 7,
        fun: "add".into(),
        args: Bytes::from_static(&[0x92, 0x01, 0x02]),
        kwargs: Some(Bytes::from_static(&[0x81, 0xa1, b'a', 0x01])),
        timeout_ms: 5_000,
        route: None,
        origin_host: Some("host".into()),
    });
    let publish = encode_publish(&PublishRef {
        topic: "sensors.kitchen.temp",
        payload: &[0xcb, 0x40, 0x35, 0, 0, 0, 0, 0, 0],
        groups: &["g".to_string()],
        ack: 3,
        answer: Some("g"),
    });
    let mut list: Vec<Vec<u8>> = [
        Frame::Hello(hello(false, 9, 2)),
        call,
        Frame::Cancel(Cancel { id: 9 }),
        Frame::Refused(Refused {
            reason: "no".into(),
        }),
        Frame::Ping,
        Frame::Sync(4),
    ]
    .iter()
    .map(|f| encode_frame(f).expect("encodes").to_vec())
    .collect();
    list.push(publish.to_vec());
    let mut batch = bytes::BytesMut::new();
    Batch::begin(&mut batch, "sensors.kitchen.temp", &[0x01]).add(&mut batch, &[0xa2, b'h', b'i']);
    list.push(batch.to_vec());
    let stream: Vec<u8> = list.concat();
    // The first byte also picks where the target splits the stream: any is fine.
    list.push(stream);
    list
}

fn hello(auth: bool, nonce: u8, node_id: u64) -> Hello {
    Hello {
        protocol: PROTOCOL_VERSION,
        cluster: "fuzz".into(),
        node_id,
        name: if node_id == 2 { "dialer" } else { "listener" }.into(),
        role: "node".into(),
        host_id: "host".into(),
        listen_port: 7701,
        resources: vec!["gpu".into()],
        nonce: vec![nonce; NONCE_LEN],
        auth,
    }
}

/// A dialer's hello (and with a secret its key-exchange message, made with the target's
/// key and bound to both hellos), after the target's flag byte.
fn handshakes() -> Vec<Vec<u8>> {
    let dialer = hello(true, 9, 2);
    // The prologue binds every field of both hellos: the seed's exchange is made against
    // the target's own hello exactly.
    let mut listener = hello(true, 7, 1);
    listener.listen_port = 7700;
    listener.resources = vec![];
    let (_, first) = Initiator::start(b"fuzz-secret", "fuzz", &prologue(&dialer, &listener));
    let plain = encode_frame(&Frame::Hello(hello(false, 9, 2))).expect("encodes");
    let authed = encode_frame(&Frame::Hello(dialer)).expect("encodes");
    let auth = encode_frame(&Frame::Auth(Auth { message: first })).expect("encodes");
    vec![
        [&[0u8][..], &plain].concat(),
        [&[1u8][..], &authed, &auth].concat(),
    ]
}

/// A datagram sealed with and without the secret, in the target's layout.
fn datagrams() -> Vec<Vec<u8>> {
    let tag = cluster_tag("fuzz");
    let stamp = Stamp {
        sender: 42,
        counter: 1,
        to: 0,
    };
    let mut out = Vec::new();
    for flags in [0u8, 1, 3] {
        let secret = (flags & 1 == 1).then_some(&b"fuzz-secret"[..]);
        let packet = seal(
            Kind::Gossip,
            &tag,
            secret,
            1_700_000_000_000,
            stamp,
            b"payload",
        );
        let mut input = vec![flags, packet.len() as u8];
        input.extend_from_slice(&packet);
        input.extend_from_slice(&[0; 24]);
        input.push(5);
        input.extend_from_slice(&[6, 0x10, 0x21, 0x05, 0x11, 0x21, 0x05, 0x21, 0x40]);
        input.extend_from_slice(b"payload");
        out.push(input);
    }
    out
}

/// Real gossip payloads, each as one length-prefixed part.
fn gossip() -> Vec<Vec<u8>> {
    let payloads = gossip_seeds();
    let mut out: Vec<Vec<u8>> = payloads.iter().map(|p| part16(p)).collect();
    out.push(payloads.iter().flat_map(|p| part16(p)).collect());
    out
}

fn part16(p: &[u8]) -> Vec<u8> {
    let mut v = (p.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(p);
    v
}

const TOPICS: &[&str] = &[
    "sensors.*.temp\nsensors.**\n**\na.**.b.*\nsensors.kitchen.temp",
    "*\n**.x\nx",
    "a.b\na.*.c\n**\na.b.c",
];

const CONDITIONS: &[&str] = &[
    "worker:update:60% & master:go:1",
    "(a:t:1 | b:t:2) & c:t:3",
    "a:t:1 | b:t:1 & c:t:1",
    "*:*:3",
    "  ( a:t:1|b:t:2 )\t&\n c:t:3 ",
];

const WORKFLOWS: &[&str] = &[
    r#"{"role": "rpc", "u": "01H", "cmds": [
        {"name": "|a", "fun": "train", "args": ["x", 3, 1.5, null],
         "kwargs": {"epochs": 3}, "locs": ["gpu"], "scope": "host"},
        {"name": "|b", "fun": "eval", "args": ["|a", "|a.score"], "kwargs": {"m": "|a.m.0"}}]}"#,
    r#"[{"name": "a", "fun": "f"}, {"name": "a.b", "fun": "g", "args": ["a"]},
        {"name": "c", "fun": "h", "args": [["a.b.c"], {"k": "a"}]}]"#,
    r#"[{"name": "a", "fun": "f", "args": ["b"]}, {"name": "b", "fun": "g", "args": ["a"]}]"#,
];

/// Signatures of two and three parameters with positional and keyword arguments.
fn args() -> Vec<Vec<u8>> {
    let mut kw = vec![0x82, 0xa1, b'b', 0x02, 0xa1, b'c', 0xa1, b'x'];
    let mut out = vec![vec![0x02, 3, 0x92, 0x01, 0x02], vec![0x03, 2, 0x91, 0x01]];
    let mut with_kw = vec![0x83, 2, 0x91, 0x01];
    with_kw.append(&mut kw);
    out.push(with_kw);
    out.push(vec![0x02, 5, 0x82, 0xa1, b'a', 0x01, 0xc0]);
    out
}

/// MPREG requests (flag 0) and JSON-RPC bodies (flag 1).
fn gateway() -> Vec<Vec<u8>> {
    let mpreg = [
        r#"{"role": "rpc", "u": 1, "cmds": [{"name": "x", "fun": "echo", "args": ["hi"]}]}"#,
        r#"{"role": "rpc", "u": "q", "timeout": 2.5, "scope": "host", "all": true, "cmds": [
            {"name": "a", "fun": "f", "locs": ["gpu"]}, {"name": "b", "fun": "g", "args": ["a"]}]}"#,
        r#"{"role": "publish", "u": 2, "topic": "a.b", "payload": {"x": 1}}"#,
        r#"{"role": "result", "id": 3, "r": [1, 2]}"#,
    ];
    let rpc = [
        r#"{"jsonrpc": "2.0", "method": "add", "params": [1, 2], "id": 1}"#,
        r#"[{"jsonrpc": "2.0", "method": "f", "params": {"a": 1},
             "mpreg": {"locs": ["gpu"], "scope": "node", "timeout": 5.0}, "id": "x"},
            {"jsonrpc": "2.0", "method": "n"}]"#,
    ];
    let mut out: Vec<Vec<u8>> = mpreg
        .iter()
        .map(|t| [b"\0", t.as_bytes()].concat())
        .collect();
    out.extend(rpc.iter().map(|t| [b"\x01", t.as_bytes()].concat()));
    out
}
