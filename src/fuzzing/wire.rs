//! Targets for what arrives from the network as bytes: TCP frames, the handshake, UDP
//! datagrams and gossip.

use std::collections::HashSet;
use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use tokio_util::codec::Decoder;

use super::input::Input;
use crate::proto::codec::{encode_frame, FrameCodec};
use crate::proto::crypto::{respond, Initiator};
use crate::proto::datagram::{cluster_tag, open, outside_clock_window, seal, Kind, Stamp};
use crate::proto::handshake::{check_hello, prologue, NONCE_LEN};
use crate::proto::keyring::Keyring;
use crate::proto::member::Member;
use crate::proto::membership::{lan_config, Membership, MAX_PACKET};
use crate::proto::publish_frame::{encode_publish, Batch, PublishRef};
use crate::proto::replay::ReplayWindow;
use crate::proto::wire::{Frame, Hello, PROTOCOL_VERSION};

/// Frame limit of the targets: small, so that a length prefix cannot make a target wait
/// for megabytes it will never get.
const MAX_FRAME: usize = 64 * 1024;

/// What a connection reads from a byte stream: its frames, then the error that closed it.
struct Read {
    frames: Vec<Frame>,
    error: Option<String>,
}

impl Read {
    /// The frames re-encoded, to compare reads by bytes: a frame may hold a NaN, which is
    /// not equal to itself.
    fn encoded(&self) -> (Vec<Bytes>, Option<String>) {
        let frames = self.frames.iter();
        let bytes = frames.map(|f| encode_frame(f).expect("a decoded frame encodes"));
        (bytes.collect(), self.error.clone())
    }
}

/// Decodes `chunks` as they arrive on one connection, until the first error.
fn read_stream(chunks: &[&[u8]]) -> Read {
    let mut codec = FrameCodec::new(MAX_FRAME);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut bytes = 0u64;
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            let before = buf.len();
            match codec.decode(&mut buf) {
                Ok(Some(f)) => {
                    bytes += (before - buf.len()) as u64;
                    frames.push(f);
                }
                Ok(None) => break,
                Err(e) => {
                    let error = Some(e.to_string());
                    return Read { frames, error };
                }
            }
        }
    }
    assert_eq!(codec.consumed(), bytes, "consumed() counts the frames read");
    Read {
        frames,
        error: None,
    }
}

/// TCP frame decoding: the same frames and error whether the bytes arrive at once or in
/// two reads, and every decoded frame encodes (both encoders for `Publish`) to bytes that
/// decode to it again.
pub fn frames(data: &[u8]) {
    let cut = data
        .first()
        .map_or(0, |b| usize::from(*b) % (data.len() + 1));
    let whole = read_stream(&[data]);
    let split = read_stream(&[&data[..cut], &data[cut..]]);
    let encoded = whole.encoded();
    assert_eq!(
        encoded,
        split.encoded(),
        "a stream decodes the same in two reads"
    );
    for (f, bytes) in whole.frames.iter().zip(&encoded.0) {
        let again = read_stream(&[bytes]).encoded();
        assert_eq!(again, (vec![bytes.clone()], None), "round trip of {f:?}");
        if let Frame::Publish(p) = f {
            let fast = encode_publish(&PublishRef {
                topic: &p.topic,
                payload: &p.payload,
                groups: &p.groups,
                ack: p.ack,
                answer: p.answer.as_deref(),
            });
            let again = read_stream(&[&fast]).encoded();
            assert_eq!(again, (vec![bytes.clone()], None), "publish of {p:?}");
        }
        if let Frame::Publications(b) = f {
            // A publisher's batch, filled in place, decodes to the same frame.
            if let Some((first, rest)) = b.payloads.split_first() {
                let mut buf = BytesMut::new();
                let batch = Batch::begin(&mut buf, &b.topic, first);
                for p in rest {
                    batch.add(&mut buf, p);
                }
                let again = read_stream(&[&buf]).encoded();
                assert_eq!(again, (vec![bytes.clone()], None), "publications of {b:?}");
            }
        }
    }
}

/// Our side of a handshake, as the listener of `node_id` 1 in cluster `fuzz`.
fn my_hello(auth: bool) -> Hello {
    Hello {
        protocol: PROTOCOL_VERSION,
        cluster: "fuzz".into(),
        node_id: 1,
        name: "listener".into(),
        role: "node".into(),
        host_id: "host".into(),
        listen_port: 7700,
        resources: vec![],
        nonce: vec![7; NONCE_LEN],
        auth,
    }
}

const SECRET: &[u8] = b"fuzz-secret";

/// The listener's side of a handshake over the dialer's byte stream: its hello is checked
/// (the check is symmetric: two nodes agree whether they may talk); with a secret, its
/// key-exchange message is answered only if it opens with our key and is bound to both
/// hellos, and an exchange made with the right key and hellos always completes; what is
/// left of the input, read as encrypted records, never opens under a key it was not
/// sealed with, and sealed under a session key it opens to itself.
pub fn handshake(data: &[u8]) {
    let mut input = Input::new(data);
    let auth = input.byte() & 1 == 1;
    let mut frames = read_stream(&[input.rest()]).frames.into_iter();
    let Some(Frame::Hello(peer)) = frames.next() else {
        return;
    };
    let mine = my_hello(auth);
    let ok = check_hello(&peer, &mine);
    assert_eq!(ok.is_ok(), check_hello(&mine, &peer).is_ok(), "symmetric");
    if ok.is_err() || !auth {
        return;
    }
    let bound = prologue(&peer, &mine);
    let keys = [SECRET.to_vec()];
    let (init, first) = Initiator::start(SECRET, &mine.cluster, &bound);
    let (mut theirs, answer, key) =
        respond(&keys, &mine.cluster, &bound, &first).expect("the right key exchange opens");
    assert_eq!(key, 0);
    let mut ours = init.finish(&answer).expect("the right answer completes");
    let Some(Frame::Auth(a)) = frames.next() else {
        return;
    };
    // Anything may or may not open (a seed is a real exchange); it must never panic.
    let _ = respond(&keys, &mine.cluster, &bound, &a.message);
    // The message as records: nothing opens under a session it was not sealed with.
    let mut src = BytesMut::from(&a.message[..]);
    let mut plain = BytesMut::new();
    assert!(
        !matches!(theirs.open.open(&mut src, &mut plain), Ok(true)),
        "a record opened that was never sealed"
    );
    // Sealed by one end, it opens at the other to the same bytes.
    let mut sealed = BytesMut::new();
    ours.seal.seal(&a.message, &mut sealed).expect("seals");
    let mut plain = BytesMut::new();
    while !sealed.is_empty() {
        assert!(theirs.open.open(&mut sealed, &mut plain).expect("opens"));
    }
    assert_eq!(&plain[..], &a.message[..]);
}

/// The receiver's clock in the datagram target.
const NOW: u64 = 1_700_000_000_000;

/// UDP datagrams: what opens reseals to what opens the same (and without a secret, to the
/// very same bytes: sealed gossip draws a fresh nonce); what we seal opens to what was
/// sealed, and with a secret no changed or truncated copy opens; the replay window accepts
/// no (sender, counter) twice.
pub fn datagram(data: &[u8]) {
    let mut input = Input::new(data);
    let flags = input.byte();
    let ring = Keyring::single(SECRET);
    let keys = (flags & 1 == 1).then_some(&ring);
    let secret = keys.map(|_| SECRET);
    let tag = cluster_tag("fuzz");
    let packet = input.part(255);
    if let Ok(d) = open(packet, &tag, keys, NOW) {
        let again = seal(d.kind, &tag, secret, d.sent_ms, d.stamp, &d.payload);
        if secret.is_none() {
            assert_eq!(again, packet, "an opened datagram reseals to itself");
        }
        let re = open(&again, &tag, keys, NOW).expect("a resealed datagram opens");
        assert_eq!(
            (re.kind, re.stamp, re.sent_ms, &re.payload[..]),
            (d.kind, d.stamp, d.sent_ms, &d.payload[..])
        );
    }
    let kind = match (flags >> 1) % 3 {
        0 => Kind::Gossip,
        1 => Kind::Beacon,
        _ => Kind::Liveness,
    };
    let stamp = Stamp {
        sender: input.u64(),
        counter: input.u64(),
        to: input.u64(),
    };
    let flip = usize::from(input.byte());
    let ops = input.part(255);
    let payload = input.rest();
    let sealed = seal(kind, &tag, secret, NOW, stamp, payload);
    let d = open(&sealed, &tag, keys, NOW).expect("what we seal opens");
    assert_eq!(
        (d.kind, d.stamp, d.sent_ms, &d.payload[..]),
        (kind, stamp, NOW, payload)
    );
    if secret.is_some() {
        let mut changed = sealed.clone();
        changed[flip % sealed.len()] ^= 0x01;
        assert!(
            open(&changed, &tag, keys, NOW).is_err(),
            "a changed datagram"
        );
        let short = &sealed[..sealed.len() - 1 - flip % sealed.len()];
        assert!(
            open(short, &tag, keys, NOW).is_err(),
            "a truncated datagram"
        );
    }
    replay(ops);
}

/// Feeds the replay window datagrams (new ones and replays of earlier ones) with a clock
/// that only moves forward, passing on only those inside the clock window as `open` does.
/// A datagram is its (sender, counter, clock): a new one may reuse a counter (the window
/// must refuse it, but that is no replay), a replay repeats all three.
fn replay(ops: &[u8]) {
    let mut window = ReplayWindow::new(3);
    let mut now = NOW;
    let mut sent: Vec<(u64, u64, u64)> = Vec::new();
    let mut accepted = HashSet::new();
    for op in ops.chunks(3) {
        let [a, b, c] = [op[0], *op.get(1).unwrap_or(&0), *op.get(2).unwrap_or(&0)];
        now += u64::from(a >> 4) * 40_000;
        let d = if a & 1 == 1 && !sent.is_empty() {
            sent[usize::from(b) % sent.len()]
        } else {
            let clock = (now + 1_000 * u64::from(c)).saturating_sub(128_000);
            (
                u64::from(b >> 5),
                u64::from(b & 0x1f) * 60 + u64::from(c),
                clock,
            )
        };
        sent.push(d);
        let (sender, counter, clock) = d;
        if outside_clock_window(clock, now) {
            continue;
        }
        let fresh_only = a & 2 == 2;
        if window
            .accept(sender, counter, clock, now, fresh_only)
            .is_ok()
        {
            assert!(accepted.insert(d), "replay accepted: {d:?}");
        }
    }
}

fn member(id: u64, name: &str, port: u16) -> Member {
    Member {
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        id,
        name: name.into(),
        role: "node".into(),
        host: "host".into(),
        started_ms: 1_000,
        bump: 0,
    }
}

/// SWIM gossip: a node fed up to eight payloads (each with the timers that fall due)
/// keeps a view of unique names without itself, and sends nothing over [`MAX_PACKET`].
pub fn membership(data: &[u8]) {
    let me = member(1, "me", 7700);
    let mut m = Membership::new(me.clone(), lan_config(4), 7);
    let mut input = Input::new(data);
    for _ in 0..8 {
        let payload = input.part(MAX_PACKET);
        if payload.is_empty() {
            break;
        }
        let _ = m.handle_data(payload);
        drain(&mut m, 4);
        let view = m.members();
        let names: HashSet<&str> = view.iter().map(|x| x.name.as_str()).collect();
        assert_eq!(names.len(), view.len(), "one member per name");
        assert!(!names.contains(me.name.as_str()), "ourselves in the view");
    }
}

/// Takes every output of `m`, handing back the first `timers` timers that fall due (a
/// periodic timer sets the next one, so they never run out).
fn drain(m: &mut Membership, timers: usize) {
    let mut due = Vec::new();
    for handled in 0..=timers {
        while let Some((_, data)) = m.poll_transmit() {
            assert!(data.len() <= MAX_PACKET, "gossip of {} bytes", data.len());
        }
        while let Some((_, t)) = m.poll_timer() {
            due.push(t);
        }
        while m.poll_event().is_some() {}
        if due.is_empty() || handled == timers {
            return;
        }
        let _ = m.handle_timer(due.remove(0));
    }
}

/// Real gossip between two nodes: the payloads `b` receives while `a` joins it.
pub(super) fn gossip_seeds() -> Vec<Vec<u8>> {
    let mut a = Membership::new(member(2, "a", 7701), lan_config(4), 1);
    let mut b = Membership::new(member(3, "b", 7702), lan_config(4), 2);
    let _ = a.announce(SocketAddr::from(([127, 0, 0, 1], 7702)));
    let mut out = Vec::new();
    for _ in 0..4 {
        while let Some((_, data)) = a.poll_transmit() {
            out.push(data.to_vec());
            let _ = b.handle_data(&data);
        }
        while let Some((_, data)) = b.poll_transmit() {
            let _ = a.handle_data(&data);
        }
        let _ = a.gossip();
    }
    out
}
