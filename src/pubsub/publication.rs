//! What a subscriber receives.

use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::payload::Payload;
use crate::error::{Error, Result};
use crate::runtime::pubsub::ack::AckGuard;

/// The metadata of a publication: what `#[mpreg::subscribe]` functions may take as a second
/// parameter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PubMeta {
    /// The topic it was published to.
    pub topic: String,
    /// Name of the publishing node.
    pub from: String,
}

/// One message received by a subscription.
pub struct Publication {
    pub(crate) topic: Arc<str>,
    pub(crate) from: Arc<str>,
    pub(crate) payload: Payload,
    /// Set when the publisher waits for this subscriber (confirmed or request-publish).
    pub(crate) ack: Option<AckGuard>,
}

impl Publication {
    /// The topic it was published to.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Name of the publishing node.
    pub fn from(&self) -> &str {
        &self.from
    }

    /// Topic and sender, owned.
    pub fn meta(&self) -> PubMeta {
        PubMeta {
            topic: self.topic.to_string(),
            from: self.from.to_string(),
        }
    }

    /// The payload as a `T`. Published in this process as a `T`, it is a copy of the
    /// publisher's value, never serialized; otherwise it is decoded from MessagePack.
    pub fn payload<T: DeserializeOwned + 'static>(&self) -> Result<T> {
        self.payload.decode().map_err(|detail| Error::Codec {
            what: "decode the payload",
            fun: self.topic.to_string(),
            detail,
        })
    }

    /// The payload as a dynamic value.
    pub fn value(&self) -> Result<rmpv::Value> {
        self.payload()
    }

    /// Whether the publisher waits for this subscriber's answer (a request-publish chose it).
    pub fn wants_answer(&self) -> bool {
        self.ack.as_ref().is_some_and(|a| a.answers())
    }

    /// Answers a request-publish (see [`wants_answer`](Self::wants_answer)); does nothing
    /// for an ordinary publication. A stream subscriber chosen to answer that drops the
    /// publication unanswered makes the request fail with "dropped before it was handled".
    pub fn respond<T: Serialize + ?Sized>(mut self, value: &T) -> Result<()> {
        let encoded = crate::proto::args::encode_value(value).map_err(|f| Error::Codec {
            what: "encode the answer",
            fun: self.topic.to_string(),
            detail: f.message,
        })?;
        if let Some(a) = self.ack.take() {
            a.settle(Ok(encoded));
        }
        Ok(())
    }

    /// Confirms receipt now unless an answer is expected (stream subscribers: on yield).
    pub(crate) fn confirm_receipt(&mut self) {
        if self.ack.as_ref().is_some_and(|a| !a.answers()) {
            if let Some(a) = self.ack.take() {
                a.settle(Ok(bytes::Bytes::new()));
            }
        }
    }
}

impl fmt::Debug for Publication {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Publication")
            .field("topic", &self.topic)
            .field("from", &self.from)
            .field("payload", &self.value().map(|v| v.to_string()))
            .finish()
    }
}
