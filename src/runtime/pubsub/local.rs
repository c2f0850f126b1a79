//! This node's subscriptions: a trie from pattern to subscriber, each subscriber with its
//! own bounded queue, and the distinct `(pattern, group)` pairs the catalog advertises.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use super::changes::Changes;
use super::matched::Matched;
use crate::proto::topic::{Pattern, Trie};
use crate::proto::wire::SubSpec;
use crate::pubsub::Publication;
use crate::runtime::queue::{DropQueue, Full};

/// One subscription of this node: a `#[subscribe]` function, a run-time handler, or a
/// [`Subscription`](crate::Subscription) stream.
pub(crate) struct Subscriber {
    pub id: u64,
    pub spec: SubSpec,
    pub pattern: Pattern,
    /// How reports name it: pattern, group and what consumes it.
    pub label: Arc<str>,
    pub queue: DropQueue<Publication>,
    /// Publications queued for it so far.
    pub received: AtomicU64,
}

impl Subscriber {
    pub(crate) fn new(
        id: u64,
        pattern: Pattern,
        group: Option<String>,
        what: &str,
        capacity: usize,
        full: Full,
    ) -> Self {
        let mode = match full {
            Full::Wait => ", lossless",
            Full::DropOldest => "",
        };
        let label = match &group {
            Some(g) => format!("`{pattern}` (group `{g}`, {what}{mode})"),
            None => format!("`{pattern}` ({what}{mode})"),
        };
        Subscriber {
            id,
            spec: SubSpec {
                pattern: pattern.as_str().to_string(),
                group,
                lossless: full == Full::Wait,
            },
            pattern,
            label: label.into(),
            queue: DropQueue::with_policy(capacity, full),
            received: AtomicU64::new(0),
        }
    }

    /// Whether a full queue makes its publishers wait instead of dropping.
    pub(crate) fn lossless(&self) -> bool {
        self.queue.policy() == Full::Wait
    }

    /// Queues `p` and wakes the consumer; a full queue drops its oldest publication, whose
    /// publisher (if waiting) learns that it was dropped. A lossless subscriber's queue
    /// first waits for room: a publisher on this node slows to its consumer's pace.
    pub(crate) async fn offer(&self, p: Publication) {
        if self.lossless() {
            self.queue.room().await;
        }
        self.offer_quiet(p);
        self.queue.wake();
    }

    /// Like [`offer`](Self::offer), leaving the wake to the caller's [`Wakes`]; whether
    /// the full queue dropped its oldest publication for it.
    pub(crate) fn offer_quiet(&self, p: Publication) -> bool {
        self.received.fetch_add(1, Relaxed);
        let Some(mut old) = self.queue.push_quiet(p) else {
            return false;
        };
        if let Some(a) = old.ack.take() {
            a.fail("dropped from its full queue (oldest first)");
        }
        true
    }
}

/// Publications a reader queues before it wakes their subscribers without waiting to be
/// idle: well under a subscriber queue's default capacity (4096), so that a consumer that
/// keeps up is never found asleep behind a full queue.
pub(crate) const WAKE_AFTER: usize = 256;

/// Subscribers given publications without a wake: a connection reader collects them over
/// the frames it has at hand and wakes each once ([`Wakes::flush`]) before it waits for
/// more, or once it queued [`WAKE_AFTER`] publications, so a fast stream costs the consumer
/// one wake-up per batch, not per publication, and a consumer is not left asleep while its
/// queue fills (a frame can carry a hundred publications). It also notes the lossless
/// subscribers it filled, to wait for their room ([`Wakes::take_full`]) before it reads
/// the next frame.
#[derive(Default)]
pub(crate) struct Wakes {
    subs: Vec<Arc<Subscriber>>,
    full: Vec<Arc<Subscriber>>,
    /// Publications queued since the last flush.
    queued: usize,
    /// A drop-oldest subscriber fed since the last flush dropped for lack of room.
    crowded: bool,
    /// What the reader's last topic matched (see [`Matched`]).
    pub(crate) matched: Matched,
}

impl Wakes {
    /// Notes that `s` got a publication.
    pub(crate) fn add(&mut self, s: &Arc<Subscriber>) {
        // Few subscribers per reader: a scan beats hashing.
        if !self.subs.iter().any(|x| x.id == s.id) {
            self.subs.push(s.clone());
        }
        if s.lossless() && s.queue.is_full() && !self.full.iter().any(|x| x.id == s.id) {
            self.full.push(s.clone());
        }
    }

    /// Whether a lossless subscriber fed since the last [`take_full`](Self::take_full) is full.
    pub(crate) fn any_full(&self) -> bool {
        !self.full.is_empty()
    }

    /// The full lossless subscribers noted, for the reader to wait on.
    pub(crate) fn take_full(&mut self) -> Vec<Arc<Subscriber>> {
        std::mem::take(&mut self.full)
    }

    /// Counts `n` publications queued for the noted subscribers.
    pub(crate) fn queued(&mut self, n: usize) {
        self.queued += n;
    }

    /// Notes that a subscriber's full queue dropped a publication.
    pub(crate) fn crowded(&mut self) {
        self.crowded = true;
    }

    /// Whether a subscriber dropped since the last flush: the reader then wakes them and
    /// lets them run before it reads on (one trip through the scheduler, not a wait).
    /// Dropping stays the answer to a subscriber that cannot keep up, but one that could
    /// is not starved by the reader filling its queue: on a busy machine the pause also
    /// slows a flooding publisher through TCP, as a subscriber that reads inline would.
    pub(crate) fn is_crowded(&self) -> bool {
        self.crowded
    }

    /// Whether enough was queued since the last flush that the subscribers should be woken
    /// now rather than when the reader next waits.
    pub(crate) fn due(&self) -> bool {
        self.queued >= WAKE_AFTER
    }

    /// Wakes every noted subscriber.
    pub(crate) fn flush(&mut self) {
        self.queued = 0;
        self.crowded = false;
        for s in self.subs.drain(..) {
            s.queue.wake();
        }
    }
}

/// Every subscription of this node.
#[derive(Default)]
pub(crate) struct Local {
    trie: Trie<u64>,
    subs: HashMap<u64, Arc<Subscriber>>,
    /// Distinct `(pattern, group)` with how many subscribers share it.
    specs: BTreeMap<SubSpec, usize>,
    /// Grows whenever `specs` gains or loses an entry.
    version: u64,
    /// Grows whenever a subscriber comes or goes (what a topic matches may change).
    changes: Changes,
    /// Drops of subscribers already removed, so totals never go down.
    dropped_gone: u64,
}

impl Local {
    /// Adds `sub`; returns whether the advertised catalog changed.
    pub(crate) fn insert(&mut self, sub: Arc<Subscriber>) -> bool {
        self.trie.insert(&sub.pattern, sub.id);
        self.changes.bump();
        let n = self.specs.entry(sub.spec.clone()).or_insert(0);
        *n += 1;
        let changed = *n == 1;
        self.subs.insert(sub.id, sub);
        if changed {
            self.version += 1;
        }
        changed
    }

    /// Removes subscriber `id`; returns it and whether the advertised catalog changed.
    pub(crate) fn remove(&mut self, id: u64) -> Option<(Arc<Subscriber>, bool)> {
        let sub = self.subs.remove(&id)?;
        self.trie.remove(&sub.pattern, &id);
        self.changes.bump();
        self.dropped_gone += sub.queue.dropped();
        let mut changed = false;
        if let Some(n) = self.specs.get_mut(&sub.spec) {
            *n -= 1;
            if *n == 0 {
                self.specs.remove(&sub.spec);
                self.version += 1;
                changed = true;
            }
        }
        Some((sub, changed))
    }

    /// Calls `f` with every subscriber whose pattern matches `topic`.
    pub(crate) fn for_each_match(&self, topic: &str, mut f: impl FnMut(&Arc<Subscriber>)) {
        self.trie.for_each_match(topic, |id| {
            if let Some(s) = self.subs.get(id) {
                f(s)
            }
        });
    }

    /// What the catalog advertises.
    pub(crate) fn specs(&self) -> Vec<SubSpec> {
        self.specs.keys().cloned().collect()
    }

    /// A count that grows whenever a subscriber comes or goes.
    pub(crate) fn changes(&self) -> &Changes {
        &self.changes
    }

    pub(crate) fn version(&self) -> u64 {
        self.version
    }

    /// Subscribers now.
    pub(crate) fn len(&self) -> usize {
        self.subs.len()
    }

    /// Publications dropped from full queues, over the node's life.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped_gone + self.subs.values().map(|s| s.queue.dropped()).sum::<u64>()
    }

    /// Every subscriber, for stats.
    pub(crate) fn subscribers(&self) -> impl Iterator<Item = &Arc<Subscriber>> {
        self.subs.values()
    }
}
