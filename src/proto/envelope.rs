//! A MARO message as it travels between nodes (DESIGN §10): the [`Envelope`] of the
//! `Message` wire frame, its session ids and session stages.
//!
//! Sessions follow MARO (`maro/communication/message.py`): a **task** goes
//! request → receive (optional acknowledgement) → complete, a **notification** goes
//! request → receive. A reply keeps the session id and takes a new message id, so the sender
//! matches replies to what it sent by session id alone.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Identifies one session: a message and the replies that answer it. Chosen at random by the
/// node that opens the session; replies carry it back unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SessionId(pub u64);

/// Identifies one message; every message, replies included, gets a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MessageId(pub u64);

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// What a session is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionKind {
    /// Work that the sender waits on: its reply completes the session.
    Task,
    /// Information; the receiver may acknowledge it, the sender need not wait.
    Notification,
}

/// Where a message stands in its session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// The message that opens the session.
    Request,
    /// An acknowledgement: the request arrived (the reply to a notification).
    Receive,
    /// The answer to a task.
    Complete,
}

impl Stage {
    /// The stage of the reply to a message of `kind`: a task is completed, a notification
    /// only acknowledged.
    pub fn reply_to(kind: SessionKind) -> Stage {
        match kind {
            SessionKind::Task => Stage::Complete,
            SessionKind::Notification => Stage::Receive,
        }
    }

    /// Whether a message at this stage answers an earlier one.
    pub fn is_reply(self) -> bool {
        self != Stage::Request
    }
}

/// The body of the `Message` frame: every field of a message, the payload as a MessagePack
/// value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// What the message is about, matched by conditions (`source:tag:amount`).
    pub tag: String,
    /// Name of the sending node.
    pub source: String,
    /// Role of the sending node, so that conditions can match it without a directory.
    pub source_role: String,
    /// Name of the node it is for.
    pub destination: String,
    /// The content.
    pub payload: rmpv::Value,
    /// The session it belongs to.
    pub session_id: SessionId,
    /// This message.
    pub message_id: MessageId,
    /// Task or notification.
    pub kind: SessionKind,
    /// Request, receive or complete.
    pub stage: Stage,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::codec::{decode_body, encode_frame};
    use crate::proto::wire::Frame;

    #[test]
    fn message_frame_roundtrips_with_named_fields() {
        let frame = Frame::Message(Envelope {
            tag: "update".into(),
            source: "worker-1".into(),
            source_role: "worker".into(),
            destination: "master".into(),
            payload: rmpv::Value::Map(vec![("round".into(), 3.into())]),
            session_id: SessionId(u64::MAX),
            message_id: MessageId(7),
            kind: SessionKind::Notification,
            stage: Stage::Request,
        });
        let bytes = encode_frame(&frame).unwrap();
        assert_eq!(decode_body(&bytes[4..]).unwrap(), frame);
        let v: rmpv::Value = rmpv::decode::read_value(&mut &bytes[4..]).unwrap();
        let text = v.to_string();
        assert!(
            text.starts_with(r#"{"Message": {"tag": "update""#),
            "{text}"
        );
        assert!(
            text.contains(r#""kind": "notification", "stage": "request""#),
            "{text}"
        );
    }

    #[test]
    fn replies_complete_tasks_and_acknowledge_notifications() {
        assert_eq!(Stage::reply_to(SessionKind::Task), Stage::Complete);
        assert_eq!(Stage::reply_to(SessionKind::Notification), Stage::Receive);
        assert!(!Stage::Request.is_reply());
        assert!(Stage::Receive.is_reply() && Stage::Complete.is_reply());
    }
}
