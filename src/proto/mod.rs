//! Pure protocol logic: no tokio, no sockets, no clock. Everything here is deterministic and
//! unit-tested in place; the runtime shell (`crate::runtime`) feeds it bytes and events.

pub mod args;
pub mod beacon;
pub mod call_frame;
pub mod catalog;
pub mod codec;
pub mod condition;
pub mod crypto;
pub mod datagram;
pub mod envelope;
pub mod handshake;
pub mod json;
pub mod keyring;
pub mod member;
pub mod membership;
pub mod publish_frame;
pub mod replay;
pub mod resolve;
pub(crate) mod scratch;
pub mod topic;
pub mod wire;
pub mod workflow;
