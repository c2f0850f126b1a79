//! [`Subscription`]: a stream of publications that unsubscribes when dropped.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::Stream;

use super::Publication;
use crate::runtime::pubsub::Subscriber;
use crate::runtime::Shared;

/// Publications a stream takes from its queue at once. They leave the queue (and its
/// drop-oldest bound) then, so the stream holds at most this many beyond `sub_queue`.
const BATCH: usize = 64;

/// Publications matching a pattern, from [`Node::subscribe`](crate::Node::subscribe) or
/// [`mpreg::subscribe`](crate::subscribe()). Dropping it unsubscribes. The stream ends when
/// the node shuts down.
///
/// Its queue holds [`Config::sub_queue`](crate::Config::sub_queue) publications; when the
/// consumer falls that far behind, the oldest are dropped and counted
/// ([`dropped`](Self::dropped)), and nothing else slows down — unless it was made
/// [`lossless`](crate::SubscriptionBuilder::lossless): then its publishers wait.
pub struct Subscription {
    sub: Arc<Subscriber>,
    shared: Arc<Shared>,
    /// The runtime the node runs on: unsubscribing announces the catalog from it, even when
    /// the subscription is dropped outside any runtime.
    runtime: tokio::runtime::Handle,
    items: Pin<Box<dyn Stream<Item = Publication> + Send>>,
}

impl Subscription {
    pub(crate) fn new(sub: Arc<Subscriber>, shared: Arc<Shared>) -> Self {
        let q = sub.clone();
        // Taken from the queue a batch at a time, handed out one at a time.
        let items =
            futures_util::stream::unfold((q, VecDeque::new()), |(q, mut batch)| async move {
                if batch.is_empty() && !q.queue.pop_batch(&mut batch, BATCH).await {
                    return None;
                }
                let p = batch.pop_front()?;
                Some((p, (q, batch)))
            });
        Subscription {
            sub,
            shared,
            runtime: tokio::runtime::Handle::current(),
            items: Box::pin(items),
        }
    }

    /// The pattern subscribed to.
    pub fn pattern(&self) -> &str {
        &self.sub.spec.pattern
    }

    /// The queue group, if any.
    pub fn group(&self) -> Option<&str> {
        self.sub.spec.group.as_deref()
    }

    /// Publications dropped so far because this subscription's queue was full.
    pub fn dropped(&self) -> u64 {
        self.sub.queue.dropped()
    }
}

impl Stream for Subscription {
    type Item = Publication;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Publication>> {
        self.items.as_mut().poll_next(cx).map(|p| {
            p.map(|mut p| {
                // Handing it to the consumer is this subscriber's acknowledgement.
                p.confirm_receipt();
                p
            })
        })
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let _in_runtime = self.runtime.enter();
        self.shared.unsubscribe(self.sub.id);
    }
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("pattern", &self.sub.spec.pattern)
            .field("group", &self.sub.spec.group)
            .field("dropped", &self.dropped())
            .finish()
    }
}
