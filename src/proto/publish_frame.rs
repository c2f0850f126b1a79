//! The `Publish` and `Publications` frames, encoded and decoded by hand: they are the
//! frames sent at a rate of millions a second, where serde's generic path (a topic copy, a
//! payload copy, field names matched as strings) costs more than the message itself.
//!
//! The bytes are exactly what `encode_frame(&Frame::Publish(..))` (or `Publications`)
//! writes (a named MessagePack map inside the variant), so either side may use either
//! path; the decoder returns `None` for anything it does not recognise and the caller falls
//! back to serde, which also produces the error messages for malformed frames.
//!
//! A [`Batch`] is a `Publications` frame still being filled at the end of a connection's
//! outgoing buffer: the next publication on its topic is appended to it in place (its
//! count is a fixed-width `array32`, so adding one patches four bytes), up to
//! [`BATCH_BYTES`].

use bytes::{BufMut, Bytes, BytesMut};
use rmp::decode::{self as rd, Bytes as Cursor};
use rmp::encode as re;

use super::codec::{begin_frame, end_frame, MIN_MAX_FRAME};
use super::wire::{Frame, Publications, Publish};

/// A payload at least this large is handed on as a slice of the received buffer; a
/// smaller one is copied, so that it does not keep a whole read buffer alive.
pub(super) const SHARE_FROM: usize = 512;

/// Whether a publication of `payload` goes in a [`Batch`]: only small ones (a large one
/// gains nothing from sharing a frame, and travels as a `Publish` whose payload the
/// receiver shares rather than copies).
pub fn batches(payload: &[u8]) -> bool {
    payload.len() < SHARE_FROM
}

/// A `Publish` frame's parts, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct PublishRef<'a> {
    /// Literal topic.
    pub topic: &'a str,
    /// MessagePack-encoded payload.
    pub payload: &'a [u8],
    /// Queue groups for which this receiver was chosen.
    pub groups: &'a [String],
    /// Non-zero: the acknowledgement id.
    pub ack: u64,
    /// For a request-publish, the answering group.
    pub answer: Option<&'a str>,
}

/// Encodes `p` as a whole frame with its length prefix.
pub fn encode_publish(p: &PublishRef) -> Bytes {
    let mut buf = BytesMut::new();
    encode_publish_into(p, &mut buf);
    buf.freeze()
}

/// Appends `p` as a whole frame with its length prefix to `buf` (a connection's outgoing
/// buffer).
pub fn encode_publish_into(p: &PublishRef, buf: &mut BytesMut) {
    let start = begin_frame(buf, 48 + p.topic.len() + p.payload.len());
    write_publish(&mut (&mut *buf).writer(), p);
    end_frame(buf, start);
}

fn write_publish(buf: &mut impl std::io::Write, p: &PublishRef) {
    // Writing into memory cannot fail.
    let fields =
        2 + u32::from(!p.groups.is_empty()) + u32::from(p.ack != 0) + u32::from(p.answer.is_some());
    let _ = re::write_map_len(buf, 1);
    let _ = re::write_str(buf, "Publish");
    let _ = re::write_map_len(buf, fields);
    let _ = re::write_str(buf, "topic");
    let _ = re::write_str(buf, p.topic);
    let _ = re::write_str(buf, "payload");
    let _ = re::write_bin(buf, p.payload);
    if !p.groups.is_empty() {
        let _ = re::write_str(buf, "groups");
        let _ = re::write_array_len(buf, p.groups.len() as u32);
        for g in p.groups {
            let _ = re::write_str(buf, g);
        }
    }
    if p.ack != 0 {
        let _ = re::write_str(buf, "ack");
        let _ = re::write_uint(buf, p.ack);
    }
    if let Some(a) = p.answer {
        let _ = re::write_str(buf, "answer");
        let _ = re::write_str(buf, a);
    }
}

/// Largest `Publications` frame a publisher fills, length prefix included: the smallest
/// frame limit a node may have ([`MIN_MAX_FRAME`]), so that every peer takes it. A hundred
/// small publications per frame already make the per-frame work negligible.
pub const BATCH_BYTES: usize = MIN_MAX_FRAME;

/// MessagePack's `array32` marker: a count that can be patched in place.
const ARRAY32: u8 = 0xdd;

/// Where a `Publications` frame being filled sits in a buffer: enough to add to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batch {
    /// Offset of the frame's length prefix.
    start: usize,
    /// Offset of the payload count (big-endian, after the `array32` marker).
    count_at: usize,
    /// Offset and length of the topic's bytes.
    topic_at: usize,
    topic_len: usize,
}

impl Batch {
    /// Appends a `Publications` frame on `topic` holding `payload` to `buf`.
    pub fn begin(buf: &mut BytesMut, topic: &str, payload: &[u8]) -> Batch {
        let start = begin_frame(buf, 40 + topic.len() + payload.len());
        // Writing into memory cannot fail.
        let mut w = (&mut *buf).writer();
        let _ = re::write_map_len(&mut w, 1);
        let _ = re::write_str(&mut w, "Publications");
        let _ = re::write_map_len(&mut w, 2);
        let _ = re::write_str(&mut w, "topic");
        let _ = re::write_str_len(&mut w, topic.len() as u32);
        let topic_at = buf.len();
        buf.extend_from_slice(topic.as_bytes());
        let _ = re::write_str(&mut (&mut *buf).writer(), "payloads");
        buf.put_u8(ARRAY32);
        let count_at = buf.len();
        buf.put_u32(0);
        let b = Batch {
            start,
            count_at,
            topic_at,
            topic_len: topic.len(),
        };
        b.add(buf, payload);
        b
    }

    /// Whether `payload` on `topic` can be added to this batch in `buf`: the same topic, and
    /// the frame stays within [`BATCH_BYTES`].
    pub fn takes(&self, buf: &[u8], topic: &str, payload: &[u8]) -> bool {
        let grown = buf.len() - self.start + 5 + payload.len();
        grown <= BATCH_BYTES
            && buf.get(self.topic_at..self.topic_at + self.topic_len) == Some(topic.as_bytes())
    }

    /// Adds `payload` to the batch, which must be the last frame in `buf`.
    pub fn add(&self, buf: &mut BytesMut, payload: &[u8]) {
        let _ = re::write_bin(&mut (&mut *buf).writer(), payload);
        let at = self.count_at;
        let count = u32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]) + 1;
        buf[at..at + 4].copy_from_slice(&count.to_be_bytes());
        end_frame(buf, self.start);
    }
}

/// Decodes a frame body that is one of the frames decoded by hand — `Publish`,
/// `Publications`, or a successful `Reply` (see `proto::call_frame`); `None` for any other
/// frame, or for anything unexpected (serde then decodes it or says what is wrong).
pub fn decode_fast(body: &Bytes) -> Option<Frame> {
    let mut c = Cursor::new(body);
    if rd::read_map_len(&mut c).ok()? != 1 {
        return None;
    }
    match read_str(&mut c)? {
        "Publish" => decode_one(body, c),
        "Publications" => decode_batch(body, c),
        "Reply" => super::call_frame::decode_reply(body, c),
        _ => None,
    }
}

/// The rest of a `Publish` frame, from its fields (`c`, in `body`).
fn decode_one(body: &Bytes, mut c: Cursor<'_>) -> Option<Frame> {
    let mut p = Publish {
        topic: String::new(),
        payload: Bytes::new(),
        groups: Vec::new(),
        ack: 0,
        answer: None,
    };
    let (mut topic, mut payload) = (false, false);
    for _ in 0..rd::read_map_len(&mut c).ok()? {
        match read_str(&mut c)? {
            "topic" => {
                p.topic = read_str(&mut c)?.to_string();
                topic = true;
            }
            "payload" => {
                let len = rd::read_bin_len(&mut c).ok()? as usize;
                let start = body.len() - c.remaining_slice().len();
                let bytes = c.remaining_slice().get(..len)?;
                p.payload = if len >= SHARE_FROM {
                    body.slice(start..start + len)
                } else {
                    Bytes::copy_from_slice(bytes)
                };
                c = Cursor::new(&c.remaining_slice()[len..]);
                payload = true;
            }
            "groups" => {
                for _ in 0..rd::read_array_len(&mut c).ok()? {
                    p.groups.push(read_str(&mut c)?.to_string());
                }
            }
            "ack" => p.ack = rd::read_int(&mut c).ok()?,
            "answer" => p.answer = Some(read_str(&mut c)?.to_string()),
            _ => return None,
        }
    }
    (topic && payload && c.remaining_slice().is_empty()).then_some(Frame::Publish(p))
}

/// The rest of a `Publications` frame, from its fields (`c`, in `body`). Publishers batch
/// only small payloads ([`batches`]): rather than one by one, the bytes holding them are
/// copied once and each payload is a slice of that copy, so no small payload keeps a whole
/// read buffer alive.
fn decode_batch(body: &Bytes, mut c: Cursor<'_>) -> Option<Frame> {
    if rd::read_map_len(&mut c).ok()? != 2 || read_str(&mut c)? != "topic" {
        return None;
    }
    let topic = read_str(&mut c)?.to_string();
    if read_str(&mut c)? != "payloads" {
        return None;
    }
    let n = rd::read_array_len(&mut c).ok()? as usize;
    let from = body.len() - c.remaining_slice().len();
    let region = body.get(from..)?;
    // Each payload takes at least its one-byte length: a count beyond that is malformed
    // (and must not size an allocation).
    if n > region.len() {
        return None;
    }
    let region = Bytes::copy_from_slice(region);
    let mut payloads = Vec::with_capacity(n);
    let mut c = Cursor::new(&region[..]);
    for _ in 0..n {
        let len = rd::read_bin_len(&mut c).ok()? as usize;
        let at = region.len() - c.remaining_slice().len();
        region.get(at..at + len)?;
        payloads.push(region.slice(at..at + len));
        c = Cursor::new(&c.remaining_slice()[len..]);
    }
    c.remaining_slice()
        .is_empty()
        .then_some(Frame::Publications(Publications { topic, payloads }))
}

/// A MessagePack string, borrowed from the buffer.
pub(super) fn read_str<'a>(c: &mut Cursor<'a>) -> Option<&'a str> {
    let len = rd::read_str_len(c).ok()? as usize;
    let rest: &'a [u8] = c.remaining_slice();
    let s = std::str::from_utf8(rest.get(..len)?).ok()?;
    *c = Cursor::new(&rest[len..]);
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::codec::{decode_body, encode_frame, HEADER_LEN};

    fn owned(p: &PublishRef) -> Frame {
        Frame::Publish(Publish {
            topic: p.topic.to_string(),
            payload: Bytes::copy_from_slice(p.payload),
            groups: p.groups.to_vec(),
            ack: p.ack,
            answer: p.answer.map(String::from),
        })
    }

    fn check(p: PublishRef) {
        let ours = encode_publish(&p);
        let serde = encode_frame(&owned(&p)).unwrap();
        assert_eq!(ours, serde, "same bytes as serde for {p:?}");
        let body = ours.slice(HEADER_LEN..);
        assert_eq!(decode_fast(&body), Some(owned(&p)));
        assert_eq!(decode_body(&body).unwrap(), owned(&p));
    }

    #[test]
    fn same_bytes_as_serde_and_back() {
        let groups = vec!["workers".to_string(), "g2".to_string()];
        let big = vec![9u8; 70_000];
        check(PublishRef {
            topic: "a.b",
            payload: &[0x93, 1, 2, 3],
            groups: &[],
            ack: 0,
            answer: None,
        });
        check(PublishRef {
            topic: "sensors.lab-1.temp",
            payload: &big,
            groups: &groups,
            ack: u64::MAX,
            answer: Some("workers"),
        });
        check(PublishRef {
            topic: "x",
            payload: &[],
            groups: &groups[..1],
            ack: 300,
            answer: None,
        });
    }

    #[test]
    fn large_payloads_share_the_buffer() {
        let big = vec![1u8; SHARE_FROM];
        let p = PublishRef {
            topic: "t",
            payload: &big,
            groups: &[],
            ack: 0,
            answer: None,
        };
        let body = encode_publish(&p).slice(HEADER_LEN..);
        let Some(Frame::Publish(d)) = decode_fast(&body) else {
            panic!("not decoded")
        };
        let inside = body.as_ptr_range().contains(&d.payload.as_ptr());
        assert!(inside, "a large payload is a slice of the frame");
    }

    #[test]
    fn other_or_broken_frames_are_left_to_serde() {
        let other = encode_frame(&Frame::Sync(7)).unwrap().slice(HEADER_LEN..);
        assert_eq!(decode_fast(&other), None);
        let p = PublishRef {
            topic: "a.b",
            payload: &[1, 2, 3],
            groups: &[],
            ack: 5,
            answer: None,
        };
        let whole = encode_publish(&p).slice(HEADER_LEN..);
        for cut in 0..whole.len() {
            assert_eq!(decode_fast(&whole.slice(..cut)), None, "cut at {cut}");
        }
        let mut extra = whole.to_vec();
        extra.push(0xc0);
        assert_eq!(decode_fast(&Bytes::from(extra)), None);
    }

    fn batch_of(topic: &str, payloads: &[&[u8]]) -> BytesMut {
        let mut buf = BytesMut::from(&b"earlier frames"[..]);
        let b = Batch::begin(&mut buf, topic, payloads[0]);
        for p in &payloads[1..] {
            assert!(b.takes(&buf, topic, p));
            b.add(&mut buf, p);
        }
        buf.split_off(b"earlier frames".len())
    }

    #[test]
    fn a_batch_filled_in_place_decodes_as_serde_does() {
        let payloads: [&[u8]; 3] = [&[0x01], &[], &[0xa2, b'h', b'i']];
        let frame = batch_of("sensors.kitchen.temp", &payloads);
        let len = u32::from_be_bytes(frame[..HEADER_LEN].try_into().unwrap()) as usize;
        assert_eq!(
            len,
            frame.len() - HEADER_LEN,
            "the length prefix follows each add"
        );
        let body = frame.freeze().slice(HEADER_LEN..);
        let want = Frame::Publications(Publications {
            topic: "sensors.kitchen.temp".into(),
            payloads: payloads.iter().map(|p| Bytes::copy_from_slice(p)).collect(),
        });
        assert_eq!(decode_fast(&body), Some(want.clone()));
        assert_eq!(
            decode_body(&body).unwrap(),
            want,
            "serde reads the batch too"
        );
        let serde = encode_frame(&want).unwrap().slice(HEADER_LEN..);
        assert_eq!(decode_fast(&serde), Some(want), "and we read serde's");
    }

    #[test]
    fn a_batch_takes_only_its_topic_and_stays_within_the_smallest_frame_limit() {
        let mut buf = BytesMut::new();
        let b = Batch::begin(&mut buf, "a.b", &[1; 8]);
        assert!(b.takes(&buf, "a.b", &[2; 8]));
        assert!(!b.takes(&buf, "a.c", &[2; 8]), "another topic");
        assert!(!b.takes(&buf, "a.bc", &[2; 8]), "a longer topic");
        let mut added = 1;
        while b.takes(&buf, "a.b", &[2; 8]) {
            b.add(&mut buf, &[2; 8]);
            added += 1;
        }
        assert!(buf.len() <= BATCH_BYTES, "{} bytes", buf.len());
        assert!(
            added > 90,
            "about a hundred 8-byte publications per frame: {added}"
        );
        let body = buf.freeze().slice(HEADER_LEN..);
        let Some(Frame::Publications(d)) = decode_fast(&body) else {
            panic!("not decoded")
        };
        assert_eq!(d.payloads.len(), added);
        // bin8 headers are two bytes: the next payload starts right after them.
        let next = d.payloads[0].as_ptr_range().end.wrapping_add(2);
        assert_eq!(
            next,
            d.payloads[1].as_ptr(),
            "payloads are slices of one copy"
        );
        let inside = body.as_ptr_range().contains(&d.payloads[0].as_ptr());
        assert!(!inside, "not of the read buffer");
    }

    #[test]
    fn a_broken_batch_is_left_to_serde() {
        let whole = batch_of("t", &[&[1], &[2, 3]]).freeze().slice(HEADER_LEN..);
        for cut in 0..whole.len() {
            assert_eq!(decode_fast(&whole.slice(..cut)), None, "cut at {cut}");
        }
        // A count larger than the bytes that follow could hold.
        let mut lying = whole.to_vec();
        let at = lying.iter().position(|b| *b == ARRAY32).unwrap();
        lying[at + 1..at + 5].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(decode_fast(&Bytes::from(lying.clone())), None);
        assert!(decode_body(&lying).is_err());
    }
}
