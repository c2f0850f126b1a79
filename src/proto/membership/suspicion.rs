//! A watch of our own over every suspicion this node holds.
//!
//! foca 2.0.0 runs a suspicion's timer only on the node whose probe failed. A node that
//! learns of a suspicion through gossip holds the member as suspect until it hears either a
//! refutation or the originator's "down", and the originator's timer is dropped whenever
//! its own state resets (its identity renewed after it was itself declared down, as after a
//! cut). The chaos soak met it: a node held a live member as suspect for 6.5 s, after the
//! originator was cut off, because the member never heard of the suspicion to refute it.
//!
//! So every suspicion gets a watch here: if the member is still suspect, at the same
//! incarnation, after twice the suspicion timeout, this node declares it down itself, as
//! the originator would have (memberlist runs a timer on every node). A live member then
//! learns it is down the first time it talks to us and rejoins under a renewed identity.

use std::collections::HashMap;

use foca::{Incarnation, State};

use crate::proto::member::Member;

/// A suspicion being watched: the identity suspected and its incarnation at the time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Watch {
    pub member: Member,
    pub incarnation: Incarnation,
}

/// The suspicions already watched, by identity (node id, renewal): bounded by the members
/// foca holds, since each pass keeps only the current suspects.
#[derive(Debug, Default)]
pub(super) struct Suspicions {
    watched: HashMap<(u64, u32), Incarnation>,
}

impl Suspicions {
    /// The suspicions among `states` not watched yet (each to be checked later); forgets
    /// those that ended.
    pub(super) fn track<'a>(
        &mut self,
        states: impl Iterator<Item = &'a foca::Member<Member>>,
    ) -> Vec<Watch> {
        let mut fresh = Vec::new();
        let mut now = HashMap::new();
        for m in states.filter(|m| m.state() == State::Suspect) {
            let key = (m.id().id, m.id().bump);
            if self.watched.get(&key) != Some(&m.incarnation()) {
                fresh.push(Watch {
                    member: m.id().clone(),
                    incarnation: m.incarnation(),
                });
            }
            now.insert(key, m.incarnation());
        }
        self.watched = now;
        fresh
    }
}
