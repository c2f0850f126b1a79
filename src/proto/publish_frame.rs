//! The `Publish` frame, encoded and decoded by hand: it is the one frame sent at a rate of
//! a million a second, where serde's generic path (a topic copy, a payload copy, field
//! names matched as strings) costs more than the message itself.
//!
//! The bytes are exactly what `encode_frame(&Frame::Publish(..))` writes (a named
//! MessagePack map inside the `Publish` variant), so either side may use either path; the
//! decoder returns `None` for anything it does not recognise and the caller falls back to
//! serde, which also produces the error messages for malformed frames.

use bytes::Bytes;
use rmp::decode::{self as rd, Bytes as Cursor};
use rmp::encode as re;

use super::codec::HEADER_LEN;
use super::wire::{Frame, Publish};

/// A payload at least this large is handed on as a slice of the received buffer; a
/// smaller one is copied, so that it does not keep a whole read buffer alive.
const SHARE_FROM: usize = 512;

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
    let mut buf = Vec::with_capacity(48 + p.topic.len() + p.payload.len());
    buf.extend_from_slice(&[0; HEADER_LEN]);
    write_publish(&mut buf, p);
    let len = (buf.len() - HEADER_LEN) as u32;
    buf[..HEADER_LEN].copy_from_slice(&len.to_be_bytes());
    Bytes::from(buf)
}

fn write_publish(buf: &mut Vec<u8>, p: &PublishRef) {
    // Writing into a Vec cannot fail.
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

/// Decodes a frame body that is a `Publish` frame; `None` for any other frame, or for
/// anything unexpected (serde then decodes it or says what is wrong).
pub fn decode_publish(body: &Bytes) -> Option<Frame> {
    let mut c = Cursor::new(body);
    if rd::read_map_len(&mut c).ok()? != 1 || read_str(&mut c)? != "Publish" {
        return None;
    }
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

/// A MessagePack string, borrowed from the buffer.
fn read_str<'a>(c: &mut Cursor<'a>) -> Option<&'a str> {
    let len = rd::read_str_len(c).ok()? as usize;
    let rest: &'a [u8] = c.remaining_slice();
    let s = std::str::from_utf8(rest.get(..len)?).ok()?;
    *c = Cursor::new(&rest[len..]);
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::codec::{decode_body, encode_frame};

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
        assert_eq!(decode_publish(&body), Some(owned(&p)));
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
        let Some(Frame::Publish(d)) = decode_publish(&body) else {
            panic!("not decoded")
        };
        let inside = body.as_ptr_range().contains(&d.payload.as_ptr());
        assert!(inside, "a large payload is a slice of the frame");
    }

    #[test]
    fn other_or_broken_frames_are_left_to_serde() {
        let other = encode_frame(&Frame::Sync(7)).unwrap().slice(HEADER_LEN..);
        assert_eq!(decode_publish(&other), None);
        let p = PublishRef {
            topic: "a.b",
            payload: &[1, 2, 3],
            groups: &[],
            ack: 5,
            answer: None,
        };
        let whole = encode_publish(&p).slice(HEADER_LEN..);
        for cut in 0..whole.len() {
            assert_eq!(decode_publish(&whole.slice(..cut)), None, "cut at {cut}");
        }
        let mut extra = whole.to_vec();
        extra.push(0xc0);
        assert_eq!(decode_publish(&Bytes::from(extra)), None);
    }
}
