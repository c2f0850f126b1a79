//! The node's metrics in Prometheus' text exposition format (version 0.0.4), for the HTTP
//! `/metrics` page.
//!
//! Written by hand, as a few lines of formatting over [`collect`](super::collect) and the
//! live histograms: `prometheus-client` encodes only OpenMetrics, which `promtool check
//! metrics` rejects (counter families without `_total`, `# EOF`), and the
//! `metrics-exporter-prometheus` recorder is one per process while a process here may hold
//! several nodes, each serving its own page. Names follow Prometheus' conventions: base
//! units (`_seconds`, `_bytes`), `_total` on counters only, `HELP` on every family; every
//! sample carries the `node` label.

use std::fmt::{Display, Write};
use std::sync::atomic::Ordering::Relaxed;

use super::collect;
use super::histogram::Counts;
use crate::runtime::Shared;

/// Content type of the page (served by the `http` feature's `/metrics`).
#[cfg_attr(not(feature = "http"), allow(dead_code))]
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds of the latency histograms' `le` buckets, µs: powers of two from 8 µs to
/// 33.5 s, which are edges of the in-memory histogram, so every count is exact.
fn bounds_us() -> Vec<u64> {
    (3..=25).map(|p| 1u64 << p).collect()
}

/// The page for `shared`'s node.
pub(crate) fn render(shared: &Shared) -> String {
    let mut o = Page::new(&shared.name);
    info(&mut o, shared);
    calls(&mut o, shared);
    peers(&mut o, shared);
    pubsub(&mut o, shared);
    membership(&mut o, shared);
    messaging_and_workflows(&mut o, shared);
    o.text
}

/// A page being written.
struct Page {
    text: String,
    node: String,
}

impl Page {
    fn new(node: &str) -> Self {
        Page {
            text: String::with_capacity(16 * 1024),
            node: escape_label(node),
        }
    }

    /// Starts a family: `# HELP` and `# TYPE`.
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    /// One sample of `name` with the `node` label and `labels`.
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        let _ = write!(self.text, "{name}{{node=\"{}\"", self.node);
        for (k, v) in labels {
            let _ = write!(self.text, ",{k}=\"{}\"", escape_label(v));
        }
        let _ = writeln!(self.text, "}} {value}");
    }

    /// A family with one unlabelled (but for `node`) sample.
    fn single(&mut self, name: &str, kind: &str, help: &str, value: impl Display) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }

    /// One histogram's `_bucket`, `_sum` and `_count` samples, in seconds.
    fn histogram(&mut self, name: &str, labels: &[(&str, &str)], c: &Counts) {
        let bounds = bounds_us();
        let bucket = format!("{name}_bucket");
        for (b, n) in bounds.iter().zip(c.cumulative(&bounds)) {
            let le = (*b as f64 / 1e6).to_string();
            let mut l = labels.to_vec();
            l.push(("le", &le));
            self.sample(&bucket, &l, n);
        }
        let mut l = labels.to_vec();
        l.push(("le", "+Inf"));
        self.sample(&bucket, &l, c.count());
        self.sample(&format!("{name}_sum"), labels, c.sum_us as f64 / 1e6);
        self.sample(&format!("{name}_count"), labels, c.count());
    }
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn info(o: &mut Page, shared: &Shared) {
    let i = collect::info(shared);
    o.family(
        "mpreg_node_info",
        "gauge",
        "Always 1; the labels say who the node is.",
    );
    let labels = [
        ("role", i.role.as_str()),
        ("host", i.host.as_str()),
        ("version", i.version.as_str()),
    ];
    o.sample("mpreg_node_info", &labels, 1);
    o.single(
        "mpreg_uptime_seconds",
        "gauge",
        "Seconds since the node started.",
        shared.started.elapsed().as_secs_f64(),
    );
}

/// Served and caller-side call metrics, by function.
fn calls(o: &mut Page, shared: &Shared) {
    let mut served: Vec<_> = shared.registry.read().functions().cloned().collect();
    served.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
    let called = shared.metrics.called_list();
    let fam = |o: &mut Page, name, kind, help| o.family(name, kind, help);
    fam(
        o,
        "mpreg_calls_served_total",
        "counter",
        "Calls this node ran, by function (successful or not; busy refusals excluded).",
    );
    for f in &served {
        o.sample(
            "mpreg_calls_served_total",
            &[("function", &f.spec.name)],
            f.served.latency.count(),
        );
    }
    fam(
        o,
        "mpreg_calls_made_total",
        "counter",
        "Calls this node made, by function, however many providers each tried.",
    );
    for (name, c) in &called {
        o.sample("mpreg_calls_made_total", &[("function", name)], c.calls());
    }
    fam(
        o,
        "mpreg_calls_answered_total",
        "counter",
        "Calls this node made that succeeded, by function and the node that answered.",
    );
    for (name, c) in &called {
        let mut by: Vec<_> = c
            .answered_by
            .read()
            .iter()
            .map(|(k, v)| (k.clone(), v.get()))
            .collect();
        by.sort();
        for (node, n) in by {
            o.sample(
                "mpreg_calls_answered_total",
                &[("function", name), ("answered_by", &node)],
                n,
            );
        }
    }
    fam(
        o,
        "mpreg_call_errors_total",
        "counter",
        "Calls that failed, by function and side (served: ran here; caller: made here).",
    );
    for f in &served {
        o.sample(
            "mpreg_call_errors_total",
            &[("function", &f.spec.name), ("side", "served")],
            f.served.errors.load(Relaxed),
        );
    }
    for (name, c) in &called {
        o.sample(
            "mpreg_call_errors_total",
            &[("function", name), ("side", "caller")],
            c.errors.load(Relaxed),
        );
    }
    fam(
        o,
        "mpreg_calls_busy_total",
        "counter",
        "Calls refused as busy (max_in_flight reached), by function and side.",
    );
    for f in &served {
        o.sample(
            "mpreg_calls_busy_total",
            &[("function", &f.spec.name), ("side", "served")],
            f.served.busy.load(Relaxed),
        );
    }
    for (name, c) in &called {
        o.sample(
            "mpreg_calls_busy_total",
            &[("function", name), ("side", "caller")],
            c.busy.load(Relaxed),
        );
    }
    fam(
        o,
        "mpreg_calls_in_flight",
        "gauge",
        "Calls running now, by function and side.",
    );
    for f in &served {
        o.sample(
            "mpreg_calls_in_flight",
            &[("function", &f.spec.name), ("side", "served")],
            f.in_flight.load(Relaxed),
        );
    }
    for (name, c) in &called {
        o.sample(
            "mpreg_calls_in_flight",
            &[("function", name), ("side", "caller")],
            c.in_flight(),
        );
    }
    fam(o, "mpreg_call_duration_seconds", "histogram",
        "Call latency by function and side: served is the function's run time here, caller is end to end.");
    for f in &served {
        o.histogram(
            "mpreg_call_duration_seconds",
            &[("function", &f.spec.name), ("side", "served")],
            &f.served.latency.snapshot(),
        );
    }
    for (name, c) in &called {
        o.histogram(
            "mpreg_call_duration_seconds",
            &[("function", name), ("side", "caller")],
            &c.latency.snapshot(),
        );
    }
}

fn peers(o: &mut Page, shared: &Shared) {
    let peers = collect::snapshot_peers(shared);
    type Pick = fn(&crate::PeerMetrics) -> u64;
    let families: [(&str, &str, &str, Pick); 6] = [
        (
            "mpreg_peer_calls_sent_total",
            "counter",
            "Requests sent to a peer, closed connections included.",
            |p| p.calls_sent,
        ),
        (
            "mpreg_peer_calls_received_total",
            "counter",
            "Requests a peer sent, closed connections included.",
            |p| p.calls_received,
        ),
        (
            "mpreg_peer_received_bytes_total",
            "counter",
            "Bytes read from a peer, closed connections included.",
            |p| p.bytes_in,
        ),
        (
            "mpreg_peer_sent_bytes_total",
            "counter",
            "Bytes written to a peer, closed connections included.",
            |p| p.bytes_out,
        ),
        (
            "mpreg_peer_connections",
            "gauge",
            "Live connections to a peer.",
            |p| p.connections,
        ),
        (
            "mpreg_peer_reconnects_total",
            "counter",
            "Connections opened to or by a peer after the first.",
            |p| p.reconnects,
        ),
    ];
    for (name, kind, help, pick) in families {
        o.family(name, kind, help);
        for (peer, p) in &peers {
            o.sample(name, &[("peer", peer)], pick(p));
        }
    }
}

fn pubsub(o: &mut Page, shared: &Shared) {
    let p = collect::snapshot_pubsub(shared);
    o.single(
        "mpreg_pubsub_published_total",
        "counter",
        "Publications this node published.",
        p.published,
    );
    o.single(
        "mpreg_pubsub_received_total",
        "counter",
        "Publications peers sent to this node.",
        p.received,
    );
    o.single(
        "mpreg_pubsub_delivered_total",
        "counter",
        "Publications handed to local subscribers (one per subscription matched).",
        p.delivered,
    );
    o.single(
        "mpreg_pubsub_dropped_total",
        "counter",
        "Publications dropped from full drop-oldest subscriber queues.",
        p.dropped,
    );
    o.single(
        "mpreg_pubsub_unmatched_total",
        "counter",
        "Publications received that no local subscription matched.",
        p.unmatched,
    );
    o.single(
        "mpreg_pubsub_held_total",
        "counter",
        "Times a reader stopped reading a peer because a lossless subscriber was full.",
        p.held,
    );
    o.single(
        "mpreg_pubsub_confirm_failures_total",
        "counter",
        "Confirmed publications not acknowledged by every subscriber in time.",
        p.confirm_failures,
    );
    o.single(
        "mpreg_pubsub_subscriptions",
        "gauge",
        "Subscriptions on this node now.",
        p.subscriptions,
    );
    o.family(
        "mpreg_pubsub_prefix_published_total",
        "counter",
        "Publications published here, by the first segment of their topic.",
    );
    for (prefix, m) in &p.by_prefix {
        o.sample(
            "mpreg_pubsub_prefix_published_total",
            &[("prefix", prefix)],
            m.published,
        );
    }
    o.family(
        "mpreg_pubsub_prefix_received_total",
        "counter",
        "Publications received from peers, by the first segment of their topic.",
    );
    for (prefix, m) in &p.by_prefix {
        o.sample(
            "mpreg_pubsub_prefix_received_total",
            &[("prefix", prefix)],
            m.received,
        );
    }
}

fn membership(o: &mut Page, shared: &Shared) {
    let m = collect::snapshot_membership(shared);
    o.family(
        "mpreg_members",
        "gauge",
        "Other members in this node's view, by state.",
    );
    o.sample("mpreg_members", &[("state", "alive")], m.alive);
    o.sample("mpreg_members", &[("state", "suspect")], m.suspect);
    o.family("mpreg_member_events_total", "counter",
        "Membership changes seen: join (came up), leave (said goodbye), down (declared dead), suspect.");
    for (event, n) in [
        ("join", m.joins),
        ("leave", m.leaves),
        ("down", m.downs),
        ("suspect", m.suspicions),
    ] {
        o.sample("mpreg_member_events_total", &[("event", event)], n);
    }
    o.single(
        "mpreg_gossip_datagrams_sent_total",
        "counter",
        "Gossip datagrams sent.",
        m.gossip_sent,
    );
    o.single(
        "mpreg_gossip_datagrams_received_total",
        "counter",
        "Gossip datagrams received and accepted.",
        m.gossip_received,
    );
    o.single(
        "mpreg_gossip_sent_bytes_total",
        "counter",
        "Bytes of gossip sent.",
        m.gossip_bytes_out,
    );
    o.single(
        "mpreg_gossip_received_bytes_total",
        "counter",
        "Bytes of gossip received and accepted.",
        m.gossip_bytes_in,
    );
    o.family(
        "mpreg_datagrams_rejected_total",
        "counter",
        "Gossip and discovery datagrams rejected, by reason.",
    );
    for (reason, n) in &m.rejected {
        o.sample("mpreg_datagrams_rejected_total", &[("reason", reason)], n);
    }
}

fn messaging_and_workflows(o: &mut Page, shared: &Shared) {
    let m = collect::snapshot_messaging(shared);
    o.single(
        "mpreg_messages_sent_total",
        "counter",
        "MARO messages sent (one per destination).",
        m.sent,
    );
    o.single(
        "mpreg_messages_received_total",
        "counter",
        "MARO messages that reached this node.",
        m.received,
    );
    o.single(
        "mpreg_handler_firings_total",
        "counter",
        "Conditional-event handler firings, removed handlers included.",
        m.handler_firings,
    );
    o.single(
        "mpreg_message_drops_total",
        "counter",
        "Messages and firings dropped from full queues (inbox, handler queues).",
        m.queue_drops,
    );
    let e = &shared.metrics.events;
    o.single(
        "mpreg_workflows_total",
        "counter",
        "Workflows run on this node.",
        e.workflows.load(Relaxed),
    );
    o.single(
        "mpreg_workflow_steps_total",
        "counter",
        "Workflow steps (calls) started.",
        e.workflow_steps.load(Relaxed),
    );
    o.single(
        "mpreg_workflow_failures_total",
        "counter",
        "Workflows that failed.",
        e.workflow_failures.load(Relaxed),
    );
    o.family(
        "mpreg_workflow_duration_seconds",
        "histogram",
        "Workflow run time.",
    );
    o.histogram(
        "mpreg_workflow_duration_seconds",
        &[],
        &e.workflow_latency.snapshot(),
    );
}
