//! Which peers subscribe to what: one trie over every peer's advertised subscriptions, so a
//! publication finds its target nodes in one match instead of one per peer.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::changes::Changes;
use crate::proto::topic::{Pattern, Trie};
use crate::proto::wire::SubSpec;

/// A peer with a matching subscription, and the queue group of that subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub peer: u64,
    pub group: Option<Arc<str>>,
}

/// Peers' subscriptions.
#[derive(Default)]
pub(crate) struct Remote {
    trie: Trie<Target>,
    by_peer: HashMap<u64, Vec<(Pattern, Target)>>,
    /// Peers with a lossless subscription: they may stop reading us on purpose.
    lossless: HashSet<u64>,
    /// Grows whenever a peer's subscriptions change.
    changes: Changes,
    /// The catalog version each peer's subscriptions were taken from.
    versions: HashMap<u64, u64>,
}

impl Remote {
    /// Replaces what `peer` subscribes to with what its catalog of `version` says, unless
    /// a newer one was applied already. Two connections to one peer (both nodes dialed at
    /// once) each bring the catalog of its handshake, and the older can be read last: applied,
    /// it would hide a subscription the newer one brought until the peer's next change.
    /// Patterns a peer sends that do not parse are skipped with a warning: they could never
    /// match a valid topic anyway.
    pub(crate) fn set(&mut self, peer: u64, version: u64, subs: &[SubSpec]) {
        if self
            .versions
            .get(&peer)
            .is_some_and(|&known| version < known)
        {
            return;
        }
        self.versions.insert(peer, version);
        // Most catalog updates change functions, not subscriptions: keep the trie as is.
        if self.unchanged(peer, subs) {
            return;
        }
        // Counts as a change (`remove` counts it).
        self.remove(peer);
        self.versions.insert(peer, version);
        if subs.is_empty() {
            return;
        }
        if subs.iter().any(|s| s.lossless) {
            self.lossless.insert(peer);
        }
        let mut entries = Vec::with_capacity(subs.len());
        for s in subs {
            match Pattern::parse(&s.pattern) {
                Ok(p) => {
                    let t = Target {
                        peer,
                        group: s.group.as_deref().map(Arc::from),
                    };
                    self.trie.insert(&p, t.clone());
                    entries.push((p, t));
                }
                Err(e) => tracing::warn!(peer, error = %e, "ignoring a peer's subscription"),
            }
        }
        self.by_peer.insert(peer, entries);
    }

    fn unchanged(&self, peer: u64, subs: &[SubSpec]) -> bool {
        let held = self.by_peer.get(&peer).map_or(&[][..], Vec::as_slice);
        let lossless = subs.iter().any(|s| s.lossless);
        lossless == self.lossless.contains(&peer)
            && held.len() == subs.len()
            && held.iter().zip(subs).all(|((p, t), s)| {
                p.as_str() == s.pattern && t.group.as_deref() == s.group.as_deref()
            })
    }

    /// A count that grows whenever a peer's subscriptions change.
    pub(crate) fn changes(&self) -> &Changes {
        &self.changes
    }

    /// Forgets `peer`'s subscriptions.
    pub(crate) fn remove(&mut self, peer: u64) {
        self.changes.bump();
        self.versions.remove(&peer);
        self.lossless.remove(&peer);
        for (p, t) in self.by_peer.remove(&peer).unwrap_or_default() {
            self.trie.remove(&p, &t);
        }
    }

    /// Calls `f` with every (peer, group) whose subscription matches `topic`.
    pub(crate) fn for_each_match(&self, topic: &str, f: impl FnMut(&Target)) {
        self.trie.for_each_match(topic, f);
    }

    /// Whether `peer` has a lossless subscription: its node may stop reading us while
    /// the subscriber catches up, which is back-pressure, not a stalled peer.
    pub(crate) fn is_lossless(&self, peer: u64) -> bool {
        self.lossless.contains(&peer)
    }

    /// Whether `peer` has any subscription.
    #[cfg(test)]
    pub(crate) fn has_peer(&self, peer: u64) -> bool {
        self.by_peer.contains_key(&peer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(p: &str, g: Option<&str>) -> SubSpec {
        SubSpec {
            pattern: p.into(),
            group: g.map(String::from),
            lossless: false,
        }
    }

    #[test]
    fn peers_with_a_lossless_subscription_are_known() {
        let mut r = Remote::default();
        let mut held = spec("a", None);
        held.lossless = true;
        r.set(1, 1, &[spec("x", None), held.clone()]);
        r.set(2, 1, &[spec("a", None)]);
        assert!(r.is_lossless(1));
        assert!(!r.is_lossless(2));
        r.set(1, 2, &[spec("x", None)]);
        assert!(!r.is_lossless(1), "no longer lossless");
        r.set(2, 2, &[held]);
        assert!(r.is_lossless(2));
        r.remove(2);
        assert!(!r.is_lossless(2));
    }

    #[test]
    fn set_replaces_and_remove_forgets() {
        let mut r = Remote::default();
        r.set(1, 1, &[spec("a.*", None), spec("a.b", Some("g"))]);
        r.set(2, 1, &[spec("**", None)]);
        let mut hits = Vec::new();
        r.for_each_match("a.b", |t| hits.push((t.peer, t.group.clone())));
        hits.sort();
        assert_eq!(hits.len(), 3);
        r.set(1, 2, &[spec("x", None)]);
        let mut n = 0;
        r.for_each_match("a.b", |_| n += 1);
        assert_eq!(n, 1, "only peer 2's `**` is left");
        r.remove(2);
        assert!(!r.has_peer(2));
        r.for_each_match("a.b", |_| panic!("nothing should match"));
    }

    #[test]
    fn an_older_catalog_read_last_does_not_hide_a_newer_subscription() {
        // Both nodes dialed at once: the duplicate's handshake catalog (version 1, from
        // before the peer subscribed) is read after the survivor's update (version 2).
        let mut r = Remote::default();
        r.set(1, 2, &[spec("a.*", None)]);
        r.set(1, 1, &[]);
        let mut n = 0;
        r.for_each_match("a.b", |_| n += 1);
        assert_eq!(n, 1, "the stale copy is ignored");
        r.set(1, 2, &[]);
        r.for_each_match("a.b", |_| panic!("the same version applies"));
        r.remove(1);
        r.set(1, 1, &[spec("a.*", None)]);
        assert!(r.has_peer(1), "a peer forgotten starts over");
    }

    #[test]
    fn bad_patterns_from_peers_are_skipped() {
        let mut r = Remote::default();
        r.set(1, 1, &[spec("a..b", None), spec("ok", None)]);
        let mut n = 0;
        r.for_each_match("ok", |_| n += 1);
        assert_eq!(n, 1);
    }
}
