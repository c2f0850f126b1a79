//! How SWIM messages are encoded: foca's postcard encoding, with each member identity in a
//! compact form.
//!
//! Every gossip datagram names its sender and its destination, and each membership update
//! it piggybacks names one more member, so the size of an identity sets how many updates fit
//! in a datagram and what forming a large cluster costs (each node must learn every other
//! one, several times over). Encoded by serde, a node with the default name and role and a
//! machine id as host took 74 bytes (76 with its SWIM state). Here it takes 41 (43):
//!
//! - the id is 8 fixed bytes (a random `u64` is 10 as a varint);
//! - a name of the default form `{role}-{6 hex digits of the id}` is left out, and so is
//!   the default role `node` (one byte each says so);
//! - a host of 32 lowercase hex digits (a machine id) travels as its 16 bytes.
//!
//! Nothing is lost: every identity decodes to exactly what was encoded. Beacons and TCP
//! keep the serde form of [`Member`] (other languages read beacons).

use std::borrow::Cow;
use std::net::SocketAddr;

use bytes::{Buf, BufMut};
use foca::{Codec, Header, Message, PostcardCodec};
use serde::{Deserialize, Serialize};

use crate::proto::member::{Member, DEFAULT_ROLE};

/// foca's codec for [`Member`]: postcard, with identities as [`Wire`].
#[derive(Debug, Clone, Copy, Default)]
pub struct MemberCodec;

/// A member identity as gossip carries it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Wire<'a> {
    addr: SocketAddr,
    id: [u8; 8],
    /// `None`: [`Member::default_name`].
    name: Option<Cow<'a, str>>,
    /// `None`: [`DEFAULT_ROLE`].
    role: Option<Cow<'a, str>>,
    host: Host<'a>,
    started_ms: u64,
    bump: u32,
}

/// A host id: a machine id in 16 bytes, anything else as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Host<'a> {
    MachineId([u8; 16]),
    Text(Cow<'a, str>),
}

impl<'a> Host<'a> {
    fn of(host: &'a str) -> Self {
        match machine_id(host) {
            Some(b) => Host::MachineId(b),
            None => Host::Text(Cow::Borrowed(host)),
        }
    }

    fn into_static(self) -> Host<'static> {
        match self {
            Host::MachineId(b) => Host::MachineId(b),
            Host::Text(s) => Host::Text(Cow::Owned(s.into_owned())),
        }
    }

    fn into_string(self) -> String {
        match self {
            Host::MachineId(b) => b.iter().map(|x| format!("{x:02x}")).collect(),
            Host::Text(s) => s.into_owned(),
        }
    }
}

/// The 16 bytes of `host` if it is exactly 32 lowercase hex digits (so that they print
/// back to the same text).
fn machine_id(host: &str) -> Option<[u8; 16]> {
    let digits = host.as_bytes();
    if digits.len() != 32
        || !digits
            .iter()
            .all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
    {
        return None;
    }
    let mut out = [0u8; 16];
    for (o, pair) in out.iter_mut().zip(digits.chunks(2)) {
        let s = std::str::from_utf8(pair).ok()?;
        *o = u8::from_str_radix(s, 16).ok()?;
    }
    Some(out)
}

impl<'a> Wire<'a> {
    fn of(m: &'a Member) -> Self {
        let named = m.name != Member::default_name(&m.role, m.id);
        Wire {
            addr: m.addr,
            id: m.id.to_be_bytes(),
            name: named.then_some(Cow::Borrowed(m.name.as_str())),
            role: (m.role != DEFAULT_ROLE).then_some(Cow::Borrowed(m.role.as_str())),
            host: Host::of(&m.host),
            started_ms: m.started_ms,
            bump: m.bump,
        }
    }

    fn into_static(self) -> Wire<'static> {
        Wire {
            name: self.name.map(|s| Cow::Owned(s.into_owned())),
            role: self.role.map(|s| Cow::Owned(s.into_owned())),
            host: self.host.into_static(),
            addr: self.addr,
            id: self.id,
            started_ms: self.started_ms,
            bump: self.bump,
        }
    }

    fn into_member(self) -> Member {
        let id = u64::from_be_bytes(self.id);
        let role = self
            .role
            .map_or_else(|| DEFAULT_ROLE.to_owned(), Cow::into_owned);
        let name = self
            .name
            .map_or_else(|| Member::default_name(&role, id), Cow::into_owned);
        Member {
            addr: self.addr,
            id,
            name,
            role,
            host: self.host.into_string(),
            started_ms: self.started_ms,
            bump: self.bump,
        }
    }
}

/// `message` with its members mapped by `f`.
fn map_message<A, B>(message: Message<A>, f: impl Fn(A) -> B) -> Message<B> {
    use Message::*;
    match message {
        Ping(n) => Ping(n),
        Ack(n) => Ack(n),
        PingReq {
            target,
            probe_number,
        } => PingReq {
            target: f(target),
            probe_number,
        },
        IndirectPing {
            origin,
            probe_number,
        } => IndirectPing {
            origin: f(origin),
            probe_number,
        },
        IndirectAck {
            target,
            probe_number,
        } => IndirectAck {
            target: f(target),
            probe_number,
        },
        ForwardedAck {
            origin,
            probe_number,
        } => ForwardedAck {
            origin: f(origin),
            probe_number,
        },
        Announce => Announce,
        Feed => Feed,
        Gossip => Gossip,
        Broadcast => Broadcast,
        TurnUndead => TurnUndead,
    }
}

impl Codec<Member> for MemberCodec {
    // postcard's error type (foca does not re-export postcard).
    type Error = <PostcardCodec as Codec<u8>>::Error;

    fn encode_header(
        &mut self,
        header: &Header<Member>,
        buf: impl BufMut,
    ) -> Result<(), Self::Error> {
        // Only the rare probe relays name a member in the message: cloning it is cheap.
        let wire = Header {
            src: Wire::of(&header.src),
            src_incarnation: header.src_incarnation,
            dst: Wire::of(&header.dst),
            message: map_message(header.message.clone(), |m| Wire::of(&m).into_static()),
        };
        PostcardCodec.encode_header(&wire, buf)
    }

    fn decode_header(&mut self, buf: impl Buf) -> Result<Header<Member>, Self::Error> {
        let wire: Header<Wire<'static>> = PostcardCodec.decode_header(buf)?;
        Ok(Header {
            src: wire.src.into_member(),
            src_incarnation: wire.src_incarnation,
            dst: wire.dst.into_member(),
            message: map_message(wire.message, Wire::into_member),
        })
    }

    fn encode_member(
        &mut self,
        member: &foca::Member<Member>,
        buf: impl BufMut,
    ) -> Result<(), Self::Error> {
        let wire = foca::Member::new(Wire::of(member.id()), member.incarnation(), member.state());
        PostcardCodec.encode_member(&wire, buf)
    }

    fn decode_member(&mut self, buf: impl Buf) -> Result<foca::Member<Member>, Self::Error> {
        let wire: foca::Member<Wire<'static>> = PostcardCodec.decode_member(buf)?;
        let id = wire.id().clone().into_member();
        Ok(foca::Member::new(id, wire.incarnation(), wire.state()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use foca::State;

    fn member(name: &str, role: &str, host: &str) -> Member {
        Member {
            addr: "192.168.1.20:7700".parse().unwrap(),
            id: 0xfedc_ba98_7654_3210,
            name: name.into(),
            role: role.into(),
            host: host.into(),
            started_ms: 1_760_000_000_123,
            bump: 3,
        }
    }

    fn round_trip(m: &Member) -> usize {
        let update = foca::Member::new(m.clone(), 7, State::Suspect);
        let mut buf = Vec::new();
        MemberCodec.encode_member(&update, &mut buf).unwrap();
        let back = MemberCodec.decode_member(&buf[..]).unwrap();
        assert_eq!(back.id(), m, "{:?}", m);
        assert_eq!((back.incarnation(), back.state()), (7, State::Suspect));
        buf.len()
    }

    const MACHINE_ID: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn every_identity_decodes_to_itself() {
        let default = Member::default_name(DEFAULT_ROLE, 0xfedc_ba98_7654_3210);
        assert_eq!(default, "node-543210");
        for m in [
            member(&default, DEFAULT_ROLE, MACHINE_ID),
            member(&default, "worker", MACHINE_ID),
            member("worker-543210", "worker", "my-laptop"),
            member("db", DEFAULT_ROLE, &MACHINE_ID.to_uppercase()),
            member("", "", ""),
            member(&default, DEFAULT_ROLE, &MACHINE_ID[1..]),
            member(&default, DEFAULT_ROLE, "0123456789abcdef0123456789abcdeg"),
        ] {
            round_trip(&m);
        }
    }

    #[test]
    fn a_default_identity_is_about_half_the_serde_size() {
        let m = member(
            &Member::default_name(DEFAULT_ROLE, 0xfedc_ba98_7654_3210),
            DEFAULT_ROLE,
            MACHINE_ID,
        );
        let update = foca::Member::new(m.clone(), 7, State::Suspect);
        let mut serde = Vec::new();
        PostcardCodec.encode_member(&update, &mut serde).unwrap();
        assert_eq!(serde.len(), 76);
        assert_eq!(round_trip(&m), 43);
    }

    #[test]
    fn headers_with_a_member_in_the_message_decode_to_themselves() {
        let a = member("a", DEFAULT_ROLE, MACHINE_ID);
        let b = member("b", "worker", "h");
        for message in [
            Message::Ping(1),
            Message::PingReq {
                target: b.clone(),
                probe_number: 2,
            },
            Message::ForwardedAck {
                origin: a.clone(),
                probe_number: 3,
            },
            Message::TurnUndead,
        ] {
            let header = Header {
                src: a.clone(),
                src_incarnation: 4,
                dst: b.clone(),
                message,
            };
            let mut buf = Vec::new();
            MemberCodec.encode_header(&header, &mut buf).unwrap();
            assert_eq!(MemberCodec.decode_header(&buf[..]).unwrap(), header);
        }
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(MemberCodec.decode_member(&[0xffu8; 3][..]).is_err());
        assert!(MemberCodec.decode_header(&[][..]).is_err());
    }
}
