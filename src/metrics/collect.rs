//! Reading a node's metrics into the public shapes of `_metrics` and `_info`.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;

use super::histogram::Counts;
use super::snapshot::{
    CalledMetrics, FunctionMetrics, MembershipMetrics, MessagingMetrics, MetricsSnapshot, NodeInfo,
    PeerMetrics, PrefixMetrics, PubSubMetrics, WorkflowMetrics,
};
use super::Traffic;
use crate::runtime::Shared;

/// Everything `shared`'s node measures, now.
pub(crate) fn snapshot(shared: &Shared) -> MetricsSnapshot {
    MetricsSnapshot {
        node: shared.name.clone(),
        uptime_ms: shared.started.elapsed().as_millis() as u64,
        enabled: shared.metrics.enabled,
        functions: served(shared),
        called: called(shared),
        peers: snapshot_peers(shared),
        pubsub: snapshot_pubsub(shared),
        membership: snapshot_membership(shared),
        messaging: snapshot_messaging(shared),
        workflows: workflows(shared),
    }
}

/// Who `shared`'s node is.
pub(crate) fn info(shared: &Shared) -> NodeInfo {
    NodeInfo {
        name: shared.name.clone(),
        role: shared.role.clone(),
        host: shared.host_id.clone(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        uptime_ms: shared.started.elapsed().as_millis() as u64,
        address: shared
            .me
            .get()
            .map(|m| m.addr.to_string())
            .unwrap_or_default(),
        resources: shared.resources.clone(),
    }
}

/// `(p50, p95, p99, max)` in µs.
fn quantiles(c: &Counts) -> (u64, u64, u64, u64) {
    (
        c.quantile(0.50),
        c.quantile(0.95),
        c.quantile(0.99),
        c.max_us,
    )
}

fn served(shared: &Shared) -> BTreeMap<String, FunctionMetrics> {
    let functions: Vec<_> = shared.registry.read().functions().cloned().collect();
    functions
        .into_iter()
        .map(|f| {
            let m = &f.served;
            let (p50_us, p95_us, p99_us, max_us) = quantiles(&m.latency.snapshot());
            let fm = FunctionMetrics {
                calls: m.latency.count(),
                errors: m.errors.load(Relaxed),
                busy: m.busy.load(Relaxed),
                in_flight: f.in_flight.load(Relaxed) as u64,
                p50_us,
                p95_us,
                p99_us,
                max_us,
            };
            (f.spec.name.clone(), fm)
        })
        .collect()
}

fn called(shared: &Shared) -> BTreeMap<String, CalledMetrics> {
    shared
        .metrics
        .called_list()
        .into_iter()
        .map(|(name, c)| {
            let (p50_us, p95_us, p99_us, max_us) = quantiles(&c.latency.snapshot());
            let answered_by = c
                .answered_by
                .read()
                .iter()
                .map(|(n, v)| (n.clone(), v.get()))
                .collect();
            let cm = CalledMetrics {
                calls: c.calls(),
                errors: c.errors.load(Relaxed),
                busy: c.busy.load(Relaxed),
                in_flight: c.in_flight(),
                p50_us,
                p95_us,
                p99_us,
                max_us,
                answered_by,
            };
            (name, cm)
        })
        .collect()
}

/// Every peer with a live connection or a record of closed ones: the live connections'
/// traffic plus what the closed ones carried, so the counts never go down.
pub(crate) fn snapshot_peers(shared: &Shared) -> BTreeMap<String, PeerMetrics> {
    // Connections retire their traffic while holding `peers` for writing: holding it here
    // sees each count once, live or retired.
    let listed = shared.peers.read();
    let book = shared.metrics.peers.lock();
    let mut out: BTreeMap<String, PeerMetrics> = BTreeMap::new();
    for (name, r) in book.records() {
        let p = out.entry(name.clone()).or_default();
        add(p, r.retired);
        p.reconnects = r.opened.saturating_sub(1);
    }
    for c in listed.values().flatten() {
        let p = out.entry(c.peer.name.clone()).or_default();
        add(p, c.unretired_traffic());
        p.connections += 1;
    }
    out
}

fn add(p: &mut PeerMetrics, t: Traffic) {
    p.calls_sent += t.calls_sent;
    p.calls_received += t.calls_received;
    p.bytes_in += t.bytes_in;
    p.bytes_out += t.bytes_out;
}

pub(crate) fn snapshot_pubsub(shared: &Shared) -> PubSubMetrics {
    let s = &shared.pubsub.stats;
    let local = shared.pubsub.local.read();
    let by_prefix = shared
        .metrics
        .prefixes
        .read()
        .iter()
        .map(|(k, v)| {
            let p = PrefixMetrics {
                published: v.published.get(),
                received: v.received.get(),
            };
            (k.clone(), p)
        })
        .collect();
    PubSubMetrics {
        published: s.published.load(Relaxed),
        received: s.received.load(Relaxed),
        delivered: shared.metrics.events.delivered.load(Relaxed),
        dropped: local.dropped(),
        unmatched: s.unmatched.load(Relaxed),
        held: s.held.load(Relaxed),
        confirm_failures: shared.metrics.events.confirm_failures.load(Relaxed),
        subscriptions: local.len() as u64,
        by_prefix,
    }
}

pub(crate) fn snapshot_membership(shared: &Shared) -> MembershipMetrics {
    let stats = crate::node::stats_of(shared);
    let e = &shared.metrics.events;
    let (alive, suspect) = {
        let dir = shared.directory.read();
        let sus = shared.suspects.read();
        let suspect = dir.keys().filter(|id| sus.contains(id)).count() as u64;
        (dir.len() as u64 - suspect, suspect)
    };
    let rejected = [
        ("malformed", stats.dropped_malformed),
        ("other_cluster", stats.dropped_other_cluster),
        ("unauthenticated", stats.dropped_unauthenticated),
        ("replayed", stats.dropped_replayed),
    ];
    MembershipMetrics {
        alive,
        suspect,
        joins: e.joins.load(Relaxed),
        leaves: e.leaves.load(Relaxed),
        downs: e.downs.load(Relaxed),
        suspicions: e.suspicions.load(Relaxed),
        gossip_sent: stats.gossip_sent,
        gossip_received: stats.gossip_received,
        gossip_bytes_out: stats.gossip_bytes_sent,
        gossip_bytes_in: e.gossip_bytes_received.load(Relaxed),
        rejected: rejected.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
    }
}

pub(crate) fn snapshot_messaging(shared: &Shared) -> MessagingMetrics {
    let e = &shared.metrics.events;
    // Removed handlers included: these are counters and must not go down.
    let handlers = shared.mailbox.reactor.lock().totals();
    MessagingMetrics {
        sent: e.messages_sent.load(Relaxed),
        received: e.messages_received.load(Relaxed),
        handler_firings: handlers.firings,
        queue_drops: handlers.dropped + shared.mailbox.inbox.dropped(),
    }
}

fn workflows(shared: &Shared) -> WorkflowMetrics {
    let e = &shared.metrics.events;
    let (p50_us, _, p99_us, max_us) = quantiles(&e.workflow_latency.snapshot());
    WorkflowMetrics {
        runs: e.workflows.load(Relaxed),
        steps: e.workflow_steps.load(Relaxed),
        failures: e.workflow_failures.load(Relaxed),
        p50_us,
        p99_us,
        max_us,
    }
}
