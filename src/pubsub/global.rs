//! Pub/sub on the process-global default node: `mpreg::publish`, `mpreg::subscribe`, ...
//!
//! Publishing works from a client default node (no listener); subscribing needs the
//! default node to listen, so the first `subscribe` starts it as a member. Subscribe before
//! the first `mpreg::call`/`publish` in a process that does both.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{Confirmation, SubscriptionBuilder};
use crate::error::Result;
use crate::global::on_runtime;

/// Publishes `payload` to `topic` through the default node (see [`Node::publish`](crate::Node::publish)).
pub async fn publish<T>(topic: &str, payload: &T) -> Result<()>
where
    T: Serialize + Clone + Send + Sync + 'static,
{
    let node = crate::default_node().await?;
    let (topic, payload) = (topic.to_string(), payload.clone());
    on_runtime(async move { node.publish(&topic, &payload).await }).await
}

/// Publishes and waits for every current matching subscriber (see
/// [`Node::publish_confirmed`](crate::Node::publish_confirmed)).
pub async fn publish_confirmed<T>(topic: &str, payload: &T) -> Result<Confirmation>
where
    T: Serialize + Clone + Send + Sync + 'static,
{
    let node = crate::default_node().await?;
    let (topic, payload) = (topic.to_string(), payload.clone());
    on_runtime(async move { node.publish_confirmed(&topic, &payload).await }).await
}

/// One member of `group` answers (see [`Node::request_publish`](crate::Node::request_publish)).
pub async fn request_publish<T, R>(topic: &str, group: &str, payload: &T) -> Result<R>
where
    T: Serialize + Clone + Send + Sync + 'static,
    R: DeserializeOwned + Send + 'static,
{
    let node = crate::default_node().await?;
    let (topic, group, payload) = (topic.to_string(), group.to_string(), payload.clone());
    on_runtime(async move { node.request_publish(&topic, &group, &payload).await }).await
}

/// Subscribes the default node (started listening if needed) to `pattern` once awaited
/// (see [`Node::subscribe`](crate::Node::subscribe); `.lossless()` and `.group(..)` apply).
pub fn subscribe(pattern: &str) -> SubscriptionBuilder {
    SubscriptionBuilder::new(None, pattern)
}

/// Subscribes the default node as a member of queue group `group` (see
/// [`Node::subscribe_group`](crate::Node::subscribe_group)).
pub fn subscribe_group(pattern: &str, group: &str) -> SubscriptionBuilder {
    subscribe(pattern).group(group)
}
