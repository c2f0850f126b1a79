//! What the `_metrics` and `_info` built-ins answer: the public, serde-friendly shapes of a
//! node's metrics. Every counter counts since the node started (or, for a function, since
//! it was registered); latencies are in microseconds, quantiles since the same start.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `_metrics`: everything one node measures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MetricsSnapshot {
    /// The node that answered.
    pub node: String,
    /// Milliseconds since it started.
    pub uptime_ms: u64,
    /// Whether the node records call counts and latencies (`Config::metrics`); when off,
    /// `functions`, `called` and `workflows` stay empty or zero.
    pub enabled: bool,
    /// Functions this node serves, by name (built-ins included): the served side.
    pub functions: BTreeMap<String, FunctionMetrics>,
    /// Functions this node called through [`Node::call`](crate::Node::call) and friends,
    /// by name: the caller's side, latency measured end to end.
    pub called: BTreeMap<String, CalledMetrics>,
    /// Connected peers, by node name.
    pub peers: BTreeMap<String, PeerMetrics>,
    /// Publish/subscribe.
    pub pubsub: PubSubMetrics,
    /// Membership (SWIM and discovery).
    pub membership: MembershipMetrics,
    /// MARO messaging.
    pub messaging: MessagingMetrics,
    /// Workflows run on this node.
    pub workflows: WorkflowMetrics,
}

/// One function as its provider sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FunctionMetrics {
    /// Calls that ran (successful or not).
    pub calls: u64,
    /// Of those, the ones that failed (an error returned, a panic, a deadline, bad
    /// arguments).
    pub errors: u64,
    /// Calls refused as busy (`max_in_flight` reached), not counted in `calls`.
    pub busy: u64,
    /// Calls running now.
    pub in_flight: u64,
    /// Median latency, µs (to within 12.5 %).
    pub p50_us: u64,
    /// 95th percentile latency, µs.
    pub p95_us: u64,
    /// 99th percentile latency, µs.
    pub p99_us: u64,
    /// Largest latency, µs (exact).
    pub max_us: u64,
}

/// One function as a caller sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CalledMetrics {
    /// Calls made (each counted once, however many providers it tried).
    pub calls: u64,
    /// Of those, the ones that returned an error.
    pub errors: u64,
    /// Of the errors, the ones where every provider was busy.
    pub busy: u64,
    /// Calls waiting for their answer now.
    pub in_flight: u64,
    /// Median latency, µs, end to end.
    pub p50_us: u64,
    /// 95th percentile latency, µs.
    pub p95_us: u64,
    /// 99th percentile latency, µs.
    pub p99_us: u64,
    /// Largest latency, µs.
    pub max_us: u64,
    /// Successful calls by the node that answered.
    pub answered_by: BTreeMap<String, u64>,
}

/// Traffic with one peer since this node started, closed connections included: every
/// count here only grows. Peers stay listed after their last connection closes
/// (`connections` 0); beyond 256 peer names, the one gone longest is forgotten.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PeerMetrics {
    /// Requests (calls, relayed calls, workflows) sent to it.
    pub calls_sent: u64,
    /// Requests it sent us.
    pub calls_received: u64,
    /// Bytes read from it.
    pub bytes_in: u64,
    /// Bytes written to it.
    pub bytes_out: u64,
    /// Live connections (1, or 2 briefly after both sides dialed at once).
    pub connections: u64,
    /// Connections opened to or by it after the first.
    pub reconnects: u64,
}

/// Publish/subscribe counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PubSubMetrics {
    /// Publications this node published.
    pub published: u64,
    /// Publications peers sent to this node.
    pub received: u64,
    /// Publications handed to a local subscriber (one per subscription matched).
    pub delivered: u64,
    /// Publications dropped from full subscriber queues (oldest first; lossless
    /// subscribers never drop).
    pub dropped: u64,
    /// Publications received that no subscription here matched.
    pub unmatched: u64,
    /// Times a connection reader stopped reading a peer because a lossless subscriber's
    /// queue was full (back-pressure on its publishers; lossless queues never drop).
    pub held: u64,
    /// Confirmed publications that a subscriber's node did not acknowledge in time.
    pub confirm_failures: u64,
    /// Subscriptions on this node now.
    pub subscriptions: u64,
    /// Publications by the first `.`-segment of their topic (at most 64 prefixes are
    /// tracked; later ones count under `other`).
    pub by_prefix: BTreeMap<String, PrefixMetrics>,
}

/// Publications of one topic prefix.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PrefixMetrics {
    /// Published here.
    pub published: u64,
    /// Received from peers.
    pub received: u64,
}

/// Membership counters and the current view.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MembershipMetrics {
    /// Other members alive now.
    pub alive: u64,
    /// Other members suspected now.
    pub suspect: u64,
    /// Members that joined (came up) since start.
    pub joins: u64,
    /// Members that left gracefully.
    pub leaves: u64,
    /// Members declared down by SWIM.
    pub downs: u64,
    /// Suspicions raised (some refuted later).
    pub suspicions: u64,
    /// Gossip datagrams sent.
    pub gossip_sent: u64,
    /// Gossip datagrams received and accepted.
    pub gossip_received: u64,
    /// Bytes of gossip sent.
    pub gossip_bytes_out: u64,
    /// Bytes of gossip received and accepted.
    pub gossip_bytes_in: u64,
    /// Datagrams rejected, by reason: `malformed`, `other_cluster`, `unauthenticated`,
    /// `replayed`.
    pub rejected: BTreeMap<String, u64>,
}

/// MARO messaging counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MessagingMetrics {
    /// Messages this node sent (one per destination).
    pub sent: u64,
    /// Messages delivered to this node's inbox.
    pub received: u64,
    /// Conditional-event handlers fired (removed handlers included).
    pub handler_firings: u64,
    /// Messages dropped from full queues (inbox or handler queues, removed handlers'
    /// included).
    pub queue_drops: u64,
}

/// Workflows run on this node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WorkflowMetrics {
    /// Workflows run.
    pub runs: u64,
    /// Steps (calls) they ran.
    pub steps: u64,
    /// Workflows that failed.
    pub failures: u64,
    /// Median duration, µs.
    pub p50_us: u64,
    /// 99th percentile duration, µs.
    pub p99_us: u64,
    /// Longest, µs.
    pub max_us: u64,
}

/// `_info`: who a node is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NodeInfo {
    /// Node name.
    pub name: String,
    /// Role.
    pub role: String,
    /// Host identity.
    pub host: String,
    /// mpreg version.
    pub version: String,
    /// Milliseconds since it started.
    pub uptime_ms: u64,
    /// `IP:PORT` it listens on (empty for a client).
    pub address: String,
    /// Resources it offers.
    pub resources: Vec<String>,
}
