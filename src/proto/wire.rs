//! The messages two nodes exchange over one TCP connection.
//!
//! Every frame body is MessagePack with **named** fields (`rmp_serde::to_vec_named`), so
//! fields can be added without breaking older peers and non-Rust tools can read frames.
//! Function arguments and results travel as nested MessagePack byte strings (`Bytes`, so
//! they pass from socket to handler and back without copies): the node forwarding them
//! never has to decode a value it does not use.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::function::FnSpec;

/// Version of this wire protocol; a peer speaking another version is refused. 5: gossip
/// carries member identities in a compact form (`proto::membership`), which version 4
/// cannot read, so nodes of the two versions could not form one cluster anyway.
pub const PROTOCOL_VERSION: u32 = 5;

/// One frame on a connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Frame {
    /// First frame in each direction: who is speaking.
    Hello(Hello),
    /// A key exchange message (only with a shared secret): the dialer's first, then the
    /// listener's answer; every frame after it is encrypted (see `proto::crypto`).
    Auth(Auth),
    /// The sender refuses the connection; it closes right after.
    Refused(Refused),
    /// The sender's full function catalog, sent after the handshake and whenever it changes.
    Catalog(CatalogMsg),
    /// Invoke a function on the receiver.
    Call(Call),
    /// The outcome of a `Call` with the same id.
    Reply(Reply),
    /// The caller gave up on a call (deadline or dropped future): stop working on it.
    Cancel(Cancel),
    /// The sender is shutting down gracefully; it closes right after.
    Goodbye(Refused),
    /// Ask for the sender's catalog (sent when gossip says our copy is stale).
    CatalogPull,
    /// Ask for the cluster as the receiver sees it (used by clients that do not gossip).
    MembersRequest,
    /// The cluster as the sender sees it, itself included.
    Members(MembersMsg),
    /// A publication for the receiver's subscribers.
    Publish(Publish),
    /// The receiver's subscribers handled publication `id` (confirmed publish, or the
    /// answer to a request-publish).
    PubAck(PubAck),
    /// Answer `Synced` with this id once every frame before it is handled: lets a node know
    /// that a peer applied the catalog it just sent.
    Sync(u64),
    /// Every frame the sender received before `Sync(id)` is handled.
    Synced(u64),
    /// A MARO message (DESIGN §10): a request, or a reply travelling back to its session.
    Message(crate::proto::envelope::Envelope),
    /// Heartbeat: sent when a connection has been quiet for a while, so that a peer that
    /// hears nothing at all knows the link or the node is gone.
    Ping,
    /// A client asks the member it is attached to for its view of the cluster now and
    /// after every change (pushed as `Members` frames), instead of polling.
    Watch,
    /// The sender will send nothing more on this connection but answers to what it already
    /// received: it moved to another connection to the receiver (`runtime::handover`).
    Fence,
    /// The sender moved here from its connection named by this token: handle nothing more
    /// from this connection until that one's `Fence` has been read (or it closed), so that
    /// what the sender sent keeps its order.
    Handover(u64),
    /// Publications on one topic, without groups, acknowledgement or answer, sent one
    /// after the other: a publisher whose previous one still waits for the writer adds the
    /// next to it (`proto::publish_frame`), so that a fast stream is decoded, matched and
    /// counted once per batch.
    Publications(Publications),
}

/// One subscription as a catalog lists it: a pattern, and the queue group if any.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SubSpec {
    /// Topic pattern (`*` one segment, `**` any number).
    pub pattern: String,
    /// Queue group: each publication goes to one member of the group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Whether the subscriber is lossless: when it falls behind, its node stops reading
    /// its publishers rather than dropping. A publisher then does not take the pause as a
    /// peer that stopped reading. Absent (false) from peers that predate it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub lossless: bool,
}

/// A message published to `topic`. The sender is the peer at the other end of the
/// connection, so it is not repeated in every frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Publish {
    /// Literal topic.
    pub topic: String,
    /// MessagePack-encoded payload.
    pub payload: Bytes,
    /// Queue groups for which the publisher chose this receiver: one local member of each
    /// gets the message. Subscribers outside any group always get it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Non-zero: answer with a [`PubAck`] of this id once every subscriber handled it.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub ack: u64,
    /// For a request-publish: the group (one of `groups`) whose chosen member answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
}

/// Plain publications on one topic, in the order they were published.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Publications {
    /// Literal topic.
    pub topic: String,
    /// Each publication's MessagePack-encoded payload.
    pub payloads: Vec<Bytes>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// How the receiver's subscribers handled publication `id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PubAck {
    /// The `ack` id of the [`Publish`].
    pub id: u64,
    /// Subscribers that handled it.
    pub acked: u32,
    /// Subscribers that did not, each with why (e.g. dropped from a full queue).
    #[serde(default)]
    pub missing: Vec<String>,
    /// For a request-publish: the answering subscriber's result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<Result<Bytes, Failure>>,
}

/// The cluster as one node sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MembersMsg {
    /// Every live member, the sender included.
    pub members: Vec<MemberInfo>,
}

/// One member and what it offers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberInfo {
    /// Its identity (address, id, name, role, host).
    pub member: crate::proto::member::Member,
    /// `alive` or `suspect`.
    pub state: String,
    /// Resources it offers.
    #[serde(default)]
    pub resources: Vec<String>,
    /// Its functions as the requester may see them, if the sender knows them.
    pub catalog: Option<CatalogMsg>,
}

/// Identity and parameters of the speaker, sent once when a connection opens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    /// [`PROTOCOL_VERSION`] of the speaker.
    pub protocol: u32,
    /// Cluster id; nodes of different clusters never talk.
    pub cluster: String,
    /// Random node id, stable for the process.
    pub node_id: u64,
    /// Human-readable node name.
    pub name: String,
    /// Role (MARO component type).
    pub role: String,
    /// Host identity, for host scope and visibility.
    pub host_id: String,
    /// Port the speaker listens on, if any (0 for pure clients).
    pub listen_port: u16,
    /// Resources the speaker offers.
    #[serde(default)]
    pub resources: Vec<String>,
    /// Random bytes: two hellos of one node are never the same, so the key exchange,
    /// which covers both hellos, is unique to its connection.
    #[serde(with = "serde_bytes")]
    pub nonce: Vec<u8>,
    /// Whether the speaker requires a shared secret (and so encryption).
    pub auth: bool,
}

/// A Noise handshake message (see `proto::crypto`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Auth {
    /// The message, as `snow` writes it.
    #[serde(with = "serde_bytes")]
    pub message: Vec<u8>,
}

/// Why a connection is being refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Refused {
    /// Human-readable reason, shown to the other side's user.
    pub reason: String,
}

/// A node's function catalog at one version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CatalogMsg {
    /// Increases every time the node's set of functions changes.
    pub version: u64,
    /// Functions the receiver may call (already filtered by visibility).
    pub functions: Vec<FnSpec>,
    /// Topic subscriptions, each distinct `(pattern, group)` once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subscriptions: Vec<SubSpec>,
}

/// A request to run `fun`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Call {
    /// Caller-chosen id, unique among the caller's calls in flight on this connection.
    pub id: u64,
    /// Function name.
    pub fun: String,
    /// Positional arguments: a MessagePack array (or nil for none).
    pub args: Bytes,
    /// Keyword arguments: a MessagePack map from parameter name to value, if any.
    #[serde(default)]
    pub kwargs: Option<Bytes>,
    /// Milliseconds the caller will wait; the callee abandons the work after it (0: none).
    pub timeout_ms: u64,
    /// Set when the caller cannot reach providers itself: the receiver resolves `fun` with
    /// these rules on the caller's behalf (possibly to itself) and relays the result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<crate::proto::resolve::Route>,
    /// Set by a relaying node: the host of the original caller, so that the provider checks
    /// visibility against the caller and not only against the relay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin_host: Option<String>,
}

/// The outcome of a call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    /// Id of the `Call` this answers.
    pub id: u64,
    /// The MessagePack-encoded result, or why there is none.
    pub result: Result<Bytes, Failure>,
    /// For relayed calls: the node that ran the function (else the sender did).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// The caller abandoned call `id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cancel {
    /// Id of the abandoned call.
    pub id: u64,
}

/// Why a call produced no value, as sent back by the callee.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// What kind of failure.
    pub kind: FailureKind,
    /// Human-readable detail.
    pub message: String,
    /// For unknown functions: names the callee has that look alike.
    #[serde(default)]
    pub close: Vec<String>,
    /// For bad arguments: the expected signature, e.g. `(a: i64, b: i64)`.
    #[serde(default)]
    pub expected: String,
}

/// Kinds of [`Failure`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The function ran and returned an error (or panicked).
    Remote,
    /// The arguments did not fit the function's parameters.
    BadArguments,
    /// The callee has no function of that name.
    UnknownFunction,
    /// The function's visibility does not admit this caller.
    NotVisible,
    /// The callee has too many calls in flight on this connection.
    Busy,
    /// The callee gave up at the call's deadline.
    Timeout,
    /// Something went wrong inside the callee's runtime.
    Internal,
    /// A relaying node lost the provider during the call.
    NodeLost,
    /// A relaying node found no provider for the call.
    NoProvider,
    /// A workflow was malformed or one of its commands failed.
    Workflow,
}

impl Failure {
    fn of(kind: FailureKind, message: impl Into<String>) -> Self {
        Failure {
            kind,
            message: message.into(),
            close: Vec::new(),
            expected: String::new(),
        }
    }
    /// The function returned an error with this message.
    pub fn remote(message: impl Into<String>) -> Self {
        Self::of(FailureKind::Remote, message)
    }
    /// The arguments did not fit.
    pub fn bad_arguments(message: impl Into<String>) -> Self {
        Self::of(FailureKind::BadArguments, message)
    }
    /// No such function here; `close` lists look-alike names.
    pub fn unknown_function(fun: &str, close: Vec<String>) -> Self {
        let mut f = Self::of(FailureKind::UnknownFunction, format!("no function `{fun}`"));
        f.close = close;
        f
    }
    /// Visibility refused the caller.
    pub fn not_visible(message: impl Into<String>) -> Self {
        Self::of(FailureKind::NotVisible, message)
    }
    /// Too many calls in flight.
    pub fn busy(message: impl Into<String>) -> Self {
        Self::of(FailureKind::Busy, message)
    }
    /// The callee's deadline passed.
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::of(FailureKind::Timeout, message)
    }
    /// A failure of any kind (used when relaying another node's error).
    pub fn of_kind(kind: FailureKind, message: impl Into<String>) -> Self {
        Self::of(kind, message)
    }
    /// Something went wrong inside the callee's runtime.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::of(FailureKind::Internal, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::codec::{decode_body, encode_frame};

    fn roundtrip(f: Frame) {
        let bytes = encode_frame(&f).unwrap();
        let back = decode_body(&bytes[4..]).unwrap();
        assert_eq!(back, f);
    }

    #[test]
    fn frames_roundtrip() {
        roundtrip(Frame::Call(Call {
            id: 7,
            fun: "echo".into(),
            args: Bytes::from_static(&[0x91, 0xa2, b'h', b'i']),
            kwargs: None,
            timeout_ms: 30_000,
            route: None,
            origin_host: None,
        }));
        roundtrip(Frame::Call(Call {
            id: 9,
            fun: "train".into(),
            args: Bytes::from_static(&[0x90]),
            kwargs: None,
            timeout_ms: 30_000,
            route: Some(crate::proto::resolve::Route {
                locs: vec!["gpu".into()],
                scope: crate::proto::resolve::Scope::Host,
                perspective: crate::proto::resolve::Perspective::Node("w1".into()),
                policy: crate::proto::resolve::Policy::RoundRobin,
            }),
            origin_host: Some("lab-1".into()),
        }));
        roundtrip(Frame::Reply(Reply {
            id: 7,
            result: Ok(Bytes::from_static(&[0xc0])),
            node: None,
        }));
        roundtrip(Frame::Reply(Reply {
            id: 8,
            result: Err(Failure::busy("full")),
            node: Some("relayed-from".into()),
        }));
        roundtrip(Frame::Fence);
        roundtrip(Frame::Handover(u64::MAX));
        roundtrip(Frame::Publish(Publish {
            topic: "sensors.kitchen.temp".into(),
            payload: Bytes::from_static(&[0xcb, 0, 0, 0, 0, 0, 0, 0, 0]),
            groups: vec!["g".into()],
            ack: 4,
            answer: Some("g".into()),
        }));
        roundtrip(Frame::PubAck(PubAck {
            id: 4,
            acked: 1,
            missing: vec!["x".into()],
            answer: Some(Ok(Bytes::from_static(&[0xc0]))),
        }));
        roundtrip(Frame::Sync(5));
        roundtrip(Frame::Catalog(CatalogMsg {
            version: 3,
            functions: vec![],
            subscriptions: vec![
                SubSpec {
                    pattern: "a.**".into(),
                    group: Some("w".into()),
                    lossless: false,
                },
                SubSpec {
                    pattern: "b".into(),
                    group: None,
                    lossless: true,
                },
            ],
        }));
        roundtrip(Frame::Cancel(Cancel { id: 3 }));
    }

    #[test]
    fn bodies_use_named_fields() {
        let bytes = encode_frame(&Frame::Cancel(Cancel { id: 3 })).unwrap();
        let v: rmpv::Value = rmpv::decode::read_value(&mut &bytes[4..]).unwrap();
        assert_eq!(v.to_string(), r#"{"Cancel": {"id": 3}}"#);
    }
}
