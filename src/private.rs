//! Items used only by the expansions of `mpreg-macros`. Not part of the public API: names
//! and shapes here may change in any release.
//!
//! Expansions refer to these through absolute `::mpreg::__private::…` paths so that users
//! never need `inventory`, `bytes` or `serde` in their own `Cargo.toml`.

pub use bytes::Bytes;
pub use inventory;
pub use serde;

pub use crate::function::{
    fallible, infallible, shim_async, shim_sync, BoxFuture, FnEntry, HandlerResult, ShimFn,
    Visibility,
};

pub use crate::handler::{HandlerFuture, HandlerOutcome, Handlers, OnEntry};
pub use crate::message::Message;
pub use crate::node::Node;
pub use crate::pubsub::{sub_async, sub_meta, sub_sync, Publication, SubEntry};
