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
    /// The topic (shared) and the subscribers `topic` matches, with the subscriptions at
    /// `changes`: the kept ones if `topic` is the last one and nothing changed since, else
    /// those `matching` finds, kept for the next publication.
    pub(crate) fn lookup(
        &mut self,
        topic: &str,
        changes: u64,
        matching: impl FnOnce() -> Vec<Arc<Subscriber>>,
    ) -> (&Arc<str>, &[Arc<Subscriber>]) {
        if self.changes != changes || self.topic.as_deref() != Some(topic) {
            self.subscribers = matching();
            self.changes = changes;
            self.topic = Some(topic.into());
        }
        let topic = self.topic.as_ref().expect("set above if it was not");
        (topic, &self.subscribers)
    }
}
