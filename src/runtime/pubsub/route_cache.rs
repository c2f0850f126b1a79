//! The publisher's last route: which subscribers and peers its last topic went to, kept
//! while nothing it depends on changed.
//!
//! A publishing loop sends run after run on one topic. Planning each publication again
//! checks the topic's syntax, walks both tries, hashes per peer and looks up each
//! connection (issue #17: at 8 B the publisher was the bottleneck once the subscriber
//! matched a run once). A route is reused only for the same topic and scope, while this
//! node's subscribers, its peers' subscriptions and its connections are unchanged (each
//! counted at every change) and no queue group is involved (which member gets a
//! publication depends on the queues at that moment).

use parking_lot::Mutex;

use crate::proto::resolve::Scope;

/// What a route depends on: the counts of changes of this node's subscribers, of its
/// peers' subscriptions, and of its listed connections, read before the route was planned.
pub(crate) type Stamp = [u64; 3];

/// The last route planned, for any publishing task of the node.
pub(crate) struct RouteCache<P> {
    last: Mutex<Option<Route<P>>>,
}

struct Route<P> {
    topic: String,
    scope: Scope,
    stamp: Stamp,
    plan: P,
}

impl<P> Default for RouteCache<P> {
    fn default() -> Self {
        RouteCache {
            last: Mutex::new(None),
        }
    }
}

impl<P: Clone> RouteCache<P> {
    /// The route kept for `topic` within `scope`, if nothing changed since (`stamp`).
    /// Never waits: with another task at the cache, the caller plans for itself.
    pub(crate) fn get(&self, topic: &str, scope: Scope, stamp: Stamp) -> Option<P> {
        let last = self.last.try_lock()?;
        let r = last.as_ref()?;
        (r.stamp == stamp && r.scope == scope && r.topic == topic).then(|| r.plan.clone())
    }

    /// Keeps `plan` as the route of `topic` within `scope`, planned at `stamp`.
    pub(crate) fn set(&self, topic: &str, scope: Scope, stamp: Stamp, plan: P) {
        if let Some(mut last) = self.last.try_lock() {
            *last = Some(Route {
                topic: topic.to_string(),
                scope,
                stamp,
                plan,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_is_reused_only_for_the_same_topic_scope_and_stamp() {
        let c = RouteCache::default();
        assert_eq!(c.get("a.b", Scope::Network, [1, 2, 3]), None);
        c.set("a.b", Scope::Network, [1, 2, 3], 7);
        assert_eq!(c.get("a.b", Scope::Network, [1, 2, 3]), Some(7));
        assert_eq!(c.get("a.c", Scope::Network, [1, 2, 3]), None);
        assert_eq!(c.get("a.b", Scope::Host, [1, 2, 3]), None);
        assert_eq!(
            c.get("a.b", Scope::Network, [2, 2, 3]),
            None,
            "subscribers changed"
        );
        assert_eq!(
            c.get("a.b", Scope::Network, [1, 3, 3]),
            None,
            "peers' changed"
        );
        assert_eq!(
            c.get("a.b", Scope::Network, [1, 2, 4]),
            None,
            "connections changed"
        );
    }
}
