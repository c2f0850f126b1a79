//! The hot paths of the `Call` and `Reply` frames: a call encoded from borrowed parts (no
//! copy of the function's name per call), and a successful reply decoded by hand. At
//! hundreds of thousands of calls a second, serde's generic path (field names matched as
//! strings, the result's enum and a copy of every name) was a visible share of a caller's
//! time.
//!
//! Both produce or accept exactly the bytes serde's `Frame::Call` / `Frame::Reply` do (a
//! named MessagePack map inside the variant): the decoder returns `None` for anything it
//! does not recognise (a failure, a relayed reply naming its node) and the caller falls
//! back to serde.

use bytes::Bytes;
use rmp::decode::{self as rd, Bytes as Cursor};
use serde::Serialize;

use super::publish_frame::{read_str, SHARE_FROM};
use super::resolve::Route;
use super::wire::{Frame, Reply};

/// A `Frame::Call`, borrowed: serialises to the same bytes.
#[derive(Debug, Serialize)]
pub enum CallFrame<'a> {
    /// The call.
    Call(CallRef<'a>),
}

/// A [`Call`](super::wire::Call)'s parts, borrowed; the fields and their serde attributes
/// are the same.
#[derive(Debug, Serialize)]
pub struct CallRef<'a> {
    /// Caller-chosen id.
    pub id: u64,
    /// Function name.
    pub fun: &'a str,
    /// Positional arguments.
    pub args: &'a Bytes,
    /// Keyword arguments.
    pub kwargs: Option<&'a Bytes>,
    /// Milliseconds the caller will wait.
    pub timeout_ms: u64,
    /// Rules for the receiver to resolve with, when it relays.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<&'a Route>,
    /// Host of the original caller, when relayed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin_host: Option<&'a str>,
}

/// The rest of a `Reply` frame, from its fields (`c`, in `body`), when it is a success
/// without a `node`; `None` for anything else.
pub(super) fn decode_reply(body: &Bytes, mut c: Cursor<'_>) -> Option<Frame> {
    if rd::read_map_len(&mut c).ok()? != 2 || read_str(&mut c)? != "id" {
        return None;
    }
    let id = rd::read_int(&mut c).ok()?;
    if read_str(&mut c)? != "result" || rd::read_map_len(&mut c).ok()? != 1 {
        return None;
    }
    if read_str(&mut c)? != "Ok" {
        return None;
    }
    let len = rd::read_bin_len(&mut c).ok()? as usize;
    let start = body.len() - c.remaining_slice().len();
    let bytes = c.remaining_slice().get(..len)?;
    if c.remaining_slice().len() != len {
        return None;
    }
    // As for publications: a large result is shared with the read buffer, a small one
    // copied so that it does not keep the buffer alive.
    let result = if len >= SHARE_FROM {
        body.slice(start..start + len)
    } else {
        Bytes::copy_from_slice(bytes)
    };
    Some(Frame::Reply(Reply {
        id,
        result: Ok(result),
        node: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::codec::{decode_body, encode_frame, HEADER_LEN};
    use crate::proto::publish_frame::decode_fast;
    use crate::proto::wire::{Call, Failure};

    fn serde_bytes_of(f: &impl Serialize) -> Vec<u8> {
        rmp_serde::to_vec_named(f).unwrap()
    }

    #[test]
    fn a_borrowed_call_encodes_as_the_call() {
        let route = Route {
            locs: vec!["gpu".into()],
            ..Route::default()
        };
        let args = Bytes::from_static(&[0x92, 1, 2]);
        let kwargs = Bytes::from_static(&[0x81, 0xa1, b'a', 1]);
        for (kw, relayed) in [(None, false), (Some(&kwargs), true)] {
            let call = Frame::Call(Call {
                id: 77,
                fun: "train".into(),
                args: args.clone(),
                kwargs: kw.cloned(),
                timeout_ms: 5_000,
                route: relayed.then(|| route.clone()),
                origin_host: relayed.then(|| "lab-1".into()),
            });
            let borrowed = CallFrame::Call(CallRef {
                id: 77,
                fun: "train",
                args: &args,
                kwargs: kw,
                timeout_ms: 5_000,
                route: relayed.then_some(&route),
                origin_host: relayed.then_some("lab-1"),
            });
            assert_eq!(serde_bytes_of(&borrowed), serde_bytes_of(&call));
        }
    }

    fn body(f: &Frame) -> Bytes {
        encode_frame(f).unwrap().slice(HEADER_LEN..)
    }

    #[test]
    fn a_successful_reply_decodes_by_hand_as_serde_does() {
        for len in [0, 3, SHARE_FROM - 1, SHARE_FROM, 70_000] {
            let reply = Frame::Reply(Reply {
                id: u64::MAX - len as u64,
                result: Ok(Bytes::from(vec![7u8; len])),
                node: None,
            });
            let b = body(&reply);
            assert_eq!(decode_fast(&b), Some(reply.clone()), "{len} bytes");
            assert_eq!(decode_body(&b).unwrap(), reply);
        }
    }

    #[test]
    fn failures_relayed_replies_and_broken_ones_are_left_to_serde() {
        let failed = Frame::Reply(Reply {
            id: 1,
            result: Err(Failure::internal("boom")),
            node: None,
        });
        let relayed = Frame::Reply(Reply {
            id: 2,
            result: Ok(Bytes::from_static(&[1])),
            node: Some("n2".into()),
        });
        assert_eq!(decode_fast(&body(&failed)), None);
        assert_eq!(decode_fast(&body(&relayed)), None);
        let whole = body(&Frame::Reply(Reply {
            id: 3,
            result: Ok(Bytes::from_static(&[1, 2, 3])),
            node: None,
        }));
        for cut in 0..whole.len() {
            assert_eq!(decode_fast(&whole.slice(..cut)), None, "cut at {cut}");
        }
        let mut extra = whole.to_vec();
        extra.push(0xc0);
        assert_eq!(decode_fast(&Bytes::from(extra)), None);
    }
}
