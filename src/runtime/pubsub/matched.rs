//! The subscribers the last topic of a connection matched, kept while this node's
//! subscriptions stay as they were.
//!
//! A peer's publications come in runs on one topic (a sensor, a stream of results), and
//! matching each one again is a trie walk, a lookup per subscriber, a vector and a shared
//! copy of the topic. With the last topic's result at hand a publication on the same topic
//! costs one string comparison (issue #17: at 8 B the subscriber was the bottleneck).
//! Publications addressed to queue groups are matched every time: which member of a group
//! gets one depends on the queues' lengths at that moment.

use std::sync::Arc;

use super::local::Subscriber;

/// The last topic a reader matched without groups, and what it matched.
#[derive(Default)]
pub(crate) struct Matched {
    topic: Option<Arc<str>>,
    /// [`Local::changes`](super::local::Local::changes) when it was matched.
    changes: u64,
    subscribers: Vec<Arc<Subscriber>>,
}

impl Matched {
    /// The topic (shared) and the subscribers it matched, if `topic` is the last one and
    /// the subscriptions are still at `changes`.
    pub(crate) fn get(&self, topic: &str, changes: u64) -> Option<(&Arc<str>, &[Arc<Subscriber>])> {
        let last = self.topic.as_ref()?;
        (self.changes == changes && **last == *topic).then(|| (last, &self.subscribers[..]))
    }

    /// Remembers what `topic` matched at `changes`.
    pub(crate) fn set(&mut self, topic: Arc<str>, changes: u64, subscribers: Vec<Arc<Subscriber>>) {
        self.topic = Some(topic);
        self.changes = changes;
        self.subscribers = subscribers;
    }
}
