//! [`SubscriptionBuilder`]: what `subscribe` returns before it is awaited — a queue group
//! and the delivery mode (drop-oldest or lossless) can be chosen first.

use std::future::{Future, IntoFuture};
use std::pin::Pin;

use super::Subscription;
use crate::error::{Error, Result};
use crate::global::{member_node, on_runtime};
use crate::node::Node;
use crate::runtime::queue::Full;

/// A subscription being prepared: `node.subscribe("a.*").lossless().await?`. Awaiting it
/// subscribes (see [`Node::subscribe`]).
#[must_use = "nothing is subscribed until the builder is awaited"]
#[derive(Debug, Clone)]
pub struct SubscriptionBuilder {
    /// The node to subscribe on; `None` for the process-global default node.
    node: Option<Node>,
    pattern: String,
    group: Option<String>,
    lossless: bool,
}

impl SubscriptionBuilder {
    pub(crate) fn new(node: Option<Node>, pattern: &str) -> Self {
        SubscriptionBuilder {
            node,
            pattern: pattern.to_string(),
            group: None,
            lossless: false,
        }
    }

    /// Joins queue group `group`: each publication goes to one member of it.
    pub fn group(mut self, group: &str) -> Self {
        self.group = Some(group.to_string());
        self
    }

    /// Never drops (zenoh's `CongestionControl::Block`). When this subscription's queue
    /// ([`Config::sub_queue`](crate::Config::sub_queue)) is full, the node stops reading
    /// the connections of the peers whose publications fill it, so TCP back-pressure slows
    /// their `publish()` to this consumer's pace, and publishers on this node wait in
    /// `publish()` for room. Every publication then arrives exactly once and in order per
    /// publisher, as long as the connection between the two nodes lasts.
    ///
    /// The cost: while it holds back, everything else that peer sends this node waits too
    /// (its calls, and the replies to this node's calls to it — so a lossless handler must
    /// not call the publisher's node and wait for the answer). Other peers and this node's
    /// own work go on. Without `lossless` (the default) a full queue drops its oldest
    /// publication, counts it ([`Subscription::dropped`]) and slows nothing.
    pub fn lossless(mut self) -> Self {
        self.lossless = true;
        self
    }

    async fn run(self) -> Result<Subscription> {
        let full = if self.lossless {
            Full::Wait
        } else {
            Full::DropOldest
        };
        match self.node {
            Some(node) => subscribe_on(&node, &self.pattern, self.group.as_deref(), full).await,
            // The default node runs on its own runtime: subscribe there.
            None => {
                let node = member_node().await?;
                on_runtime(async move {
                    subscribe_on(&node, &self.pattern, self.group.as_deref(), full).await
                })
                .await
            }
        }
    }
}

impl IntoFuture for SubscriptionBuilder {
    type Output = Result<Subscription>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<Subscription>> + Send + 'static>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}

/// Subscribes a stream on `node`, which must listen (peers must be able to reach it).
async fn subscribe_on(
    node: &Node,
    pattern: &str,
    group: Option<&str>,
    full: Full,
) -> Result<Subscription> {
    let shared = node.shared();
    if !shared.config.listen {
        return Err(Error::Usage(format!(
            "cannot subscribe to `{pattern}` on node `{}`: it does not listen, so publishers cannot reach it",
            shared.name
        )));
    }
    let sub = shared
        .subscribe(pattern, group, "stream", None, full)
        .await?;
    Ok(Subscription::new(sub, shared.clone()))
}
