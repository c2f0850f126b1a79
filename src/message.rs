//! MARO messages as users see them (DESIGN §10): [`Message`], its reply and forward, and
//! [`MessageError`], what can go wrong when messaging.

use std::fmt;
use std::sync::{Arc, Weak};
use std::time::Duration;

use rmpv::Value;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::proto::condition::ConditionError;
use crate::proto::envelope::{Envelope, MessageId, SessionId, SessionKind, Stage};
use crate::runtime::{Connection, Shared};

/// A message between nodes: a request that opens a session, or a reply in one.
///
/// Received messages remember how they came in, so [`reply`](Self::reply) travels back
/// over the same connection: a sender that does not listen (a client) still gets its
/// answer. Equality ignores that path and compares every field.
#[derive(Clone)]
pub struct Message {
    /// What the message is about; conditions (`source:tag:amount`) match it exactly.
    pub tag: String,
    /// Name of the node that sent it.
    pub source: String,
    /// Role of the node that sent it.
    pub source_role: String,
    /// Name of the node it was sent to.
    pub destination: String,
    /// The content; [`payload_as`](Self::payload_as) decodes it into a type.
    pub payload: Value,
    /// The session: a reply carries the session id of the message it answers.
    pub session_id: SessionId,
    /// This message's own id.
    pub message_id: MessageId,
    /// Task (the sender waits for the reply) or notification.
    pub kind: SessionKind,
    /// Request, acknowledgement (receive) or answer (complete).
    pub stage: Stage,
    origin: Origin,
}

/// How a received message can be answered.
#[derive(Clone, Default)]
pub(crate) enum Origin {
    /// Built here, never received: nothing to answer through.
    #[default]
    Detached,
    /// Sent by this node to itself.
    Local(Weak<Shared>),
    /// Arrived over `conn`.
    Remote {
        shared: Weak<Shared>,
        conn: Weak<Connection>,
    },
}

impl Message {
    /// A received message, from its wire form.
    pub(crate) fn received(envelope: Envelope, origin: Origin) -> Self {
        let Envelope {
            tag,
            source,
            source_role,
            destination,
            payload,
            session_id,
            message_id,
            kind,
            stage,
        } = envelope;
        Message {
            tag,
            source,
            source_role,
            destination,
            payload,
            session_id,
            message_id,
            kind,
            stage,
            origin,
        }
    }

    /// The wire form (without the path it came in on).
    pub(crate) fn envelope(&self) -> Envelope {
        Envelope {
            tag: self.tag.clone(),
            source: self.source.clone(),
            source_role: self.source_role.clone(),
            destination: self.destination.clone(),
            payload: self.payload.clone(),
            session_id: self.session_id,
            message_id: self.message_id,
            kind: self.kind,
            stage: self.stage,
        }
    }

    /// Decodes the payload into `T`; the error names the tag, the sender and the mismatch.
    pub fn payload_as<T: DeserializeOwned>(&self) -> Result<T> {
        rmpv::ext::from_value(self.payload.clone()).map_err(|e| {
            Error::from(MessageError::Payload {
                tag: self.tag.clone(),
                sender: self.source.clone(),
                detail: e.to_string(),
            })
        })
    }

    /// Whether this message answers an earlier one (stage receive or complete).
    pub fn is_reply(&self) -> bool {
        self.stage.is_reply()
    }

    /// The reply to this message, not sent: same session and tag, back to the source, a
    /// new message id, and the stage that answers this kind of session.
    pub fn answer(&self, payload: Value) -> Message {
        Message {
            tag: self.tag.clone(),
            source: self.destination.clone(),
            source_role: String::new(),
            destination: self.source.clone(),
            payload,
            session_id: self.session_id,
            message_id: MessageId(rand::random()),
            kind: self.kind,
            stage: Stage::reply_to(self.kind),
            origin: Origin::Detached,
        }
    }

    /// Sends `payload` back to the source in this message's session, over the connection
    /// the message came in on (so a sender that does not listen gets it too), else by
    /// name. Fails if the message was not received by a node, or the source is gone.
    pub async fn reply(&self, payload: impl Serialize) -> Result<()> {
        let payload = to_payload(&self.tag, &payload)?;
        let shared = self.receiver()?;
        let mut reply = self.answer(payload);
        reply.source.clone_from(&shared.name);
        reply.source_role.clone_from(&shared.role);
        shared
            .mailbox
            .send_reply(&shared, &self.origin, reply)
            .await
    }

    /// Hands this message on to `destination` in the same session, with this node as the
    /// source (MARO's `forward`). For a task, the answer comes back to this node: wait for
    /// it with [`Node::receive_by_id`](crate::Node::receive_by_id) and the returned id.
    pub async fn forward(&self, destination: &str) -> Result<SessionId> {
        let shared = self.receiver()?;
        let mut next = self.clone();
        next.source.clone_from(&shared.name);
        next.source_role.clone_from(&shared.role);
        next.destination = destination.to_string();
        next.message_id = MessageId(rand::random());
        next.stage = Stage::Request;
        shared.mailbox.open(&shared, next).await
    }

    /// The node that received this message.
    fn receiver(&self) -> Result<Arc<Shared>> {
        let shared = match &self.origin {
            Origin::Detached => None,
            Origin::Local(s) | Origin::Remote { shared: s, .. } => s.upgrade(),
        };
        shared.ok_or_else(|| {
            MessageError::Unanswerable {
                tag: self.tag.clone(),
                sender: self.source.clone(),
            }
            .into()
        })
    }
}

/// Encodes a payload; the error names the tag it was for.
pub(crate) fn to_payload(tag: &str, payload: &impl Serialize) -> Result<Value> {
    rmpv::ext::to_value(payload).map_err(|e| {
        MessageError::Payload {
            tag: tag.to_string(),
            sender: "this node".into(),
            detail: e.to_string(),
        }
        .into()
    })
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("tag", &self.tag)
            .field("source", &self.source)
            .field("destination", &self.destination)
            .field("payload", &self.payload)
            .field("session_id", &self.session_id)
            .field("message_id", &self.message_id)
            .field("kind", &self.kind)
            .field("stage", &self.stage)
            .finish()
    }
}

impl PartialEq for Message {
    fn eq(&self, other: &Self) -> bool {
        self.envelope() == other.envelope()
    }
}

/// What went wrong sending, receiving or handling messages. Nothing is sent when sending
/// fails before the first destination was reached (unknown destinations are found first).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    /// No live node has this name and no live member has this role.
    #[error("no live node or role `{destination}`{}", live_list(live))]
    UnknownDestination {
        /// The name or role asked for.
        destination: String,
        /// Live node names and roles, to spot a typo.
        live: Vec<String>,
    },
    /// The destination could not be reached, or was lost before it answered.
    #[error("node `{node}` was lost before answering `{tag}`: {reason}")]
    Lost {
        /// The destination node.
        node: String,
        /// Tag of the message.
        tag: String,
        /// Why.
        reason: String,
    },
    /// No reply within the deadline. The sessions stay open (except for `send`, `scatter`
    /// and `broadcast`, which give up on them): asking again may still get the replies.
    #[error("no reply from {} within {after:?}", waiting.join(", "))]
    Timeout {
        /// Each silent session as `` `tag` to `node` ``.
        waiting: Vec<String>,
        /// The deadline that passed.
        after: Duration,
    },
    /// `receive_by_id` was given an id this node is not waiting on (never opened here,
    /// already received, or evicted because too many sessions were open).
    #[error("session {0} is not open on this node")]
    UnknownSession(SessionId),
    /// The expected peers did not all become live in time.
    #[error("peers missing after {after:?}: {}", missing.join(", "))]
    PeersMissing {
        /// Per role, `role: live of wanted`.
        missing: Vec<String>,
        /// The deadline that passed.
        after: Duration,
    },
    /// A payload could not be encoded, or decoded into the requested type.
    #[error("payload of `{tag}` from {sender}: {detail}")]
    Payload {
        /// Tag of the message.
        tag: String,
        /// Who sent it.
        sender: String,
        /// The serde error.
        detail: String,
    },
    /// `reply` or `forward` on a message that this node did not receive (built locally),
    /// or whose node has shut down.
    #[error(
        "message `{tag}` from `{sender}` was not received by a running node; it cannot be answered"
    )]
    Unanswerable {
        /// Tag of the message.
        tag: String,
        /// Its source.
        sender: String,
    },
    /// A handler's condition does not parse; nothing was registered.
    #[error("handler `{handler}`: {error}")]
    BadCondition {
        /// The handler (function or `Type::method`, or `runtime handler`).
        handler: String,
        /// What is wrong with the condition, quoting the bad part.
        error: ConditionError,
    },
}

fn live_list(live: &[String]) -> String {
    if live.is_empty() {
        " (no peer is live)".to_string()
    } else {
        format!(" (live: {})", live.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> Message {
        Message::received(
            Envelope {
                tag: "work".into(),
                source: "master".into(),
                source_role: "master".into(),
                destination: "worker-1".into(),
                payload: Value::from(1),
                session_id: SessionId(42),
                message_id: MessageId(1),
                kind: SessionKind::Task,
                stage: Stage::Request,
            },
            Origin::Detached,
        )
    }

    #[test]
    fn answer_keeps_the_session_and_goes_back() {
        let m = request();
        let r = m.answer(Value::from("done"));
        assert_eq!(r.session_id, m.session_id);
        assert_ne!(r.message_id, m.message_id);
        assert_eq!(
            (r.source.as_str(), r.destination.as_str()),
            ("worker-1", "master")
        );
        assert_eq!(r.stage, Stage::Complete);
        assert!(r.is_reply() && !m.is_reply());
    }

    #[test]
    fn payload_decodes_or_names_the_mismatch() {
        let m = request();
        assert_eq!(m.payload_as::<u32>().unwrap(), 1);
        let e = m.payload_as::<String>().unwrap_err().to_string();
        assert!(e.starts_with("payload of `work` from master:"), "{e}");
    }

    #[tokio::test]
    async fn a_detached_message_cannot_be_answered() {
        let e = request().reply(()).await.unwrap_err().to_string();
        assert_eq!(
            e,
            "message `work` from `master` was not received by a running node; it cannot be answered"
        );
    }

    #[test]
    fn unknown_destination_lists_what_is_live() {
        let e = MessageError::UnknownDestination {
            destination: "wokrer".into(),
            live: vec!["worker-1".into(), "role worker".into()],
        };
        assert_eq!(
            e.to_string(),
            "no live node or role `wokrer` (live: worker-1, role worker)"
        );
    }
}
