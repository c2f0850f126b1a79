//! LAN tests: several hosts as Linux network namespaces on a private bridge, running the
//! real `mpreg` binary (DESIGN §13). They need root and iproute2; outside CI they skip with
//! a printed reason, in CI (`CI` set) they fail instead.
//!
//! Measured figures are printed as `LAN figure: NAME=VALUE` (run with `--nocapture` to
//! see them); targets that are not asserted are printed next to them.
//!
//! # Layout
//! - `harness`: the namespaces, bridge and processes ([`harness::Lan`]).
//! - `seed`: calls across hosts through explicit seeds; cluster isolation.
//! - `zero_config`: calls with no address, by each discovery mechanism alone.
//! - `failure`: kill -9, link cut, heal and graceful leave as seen by another host.
//! - `latency`: a fresh client's first call.
//! - `dns_sd`: an independent mDNS browser (python-zeroconf) sees nodes as DNS-SD services.
//! - `resolver`: visibility enforced by the serving node, forwarding through a seed.
//! - `pubsub`: matching subscribers across hosts, publish order, queue groups.
//! - `replay`: with a secret, captured gossip sent again is rejected and counted, and a
//!   killed node's replayed gossip never brings it back (needs `tcpdump`).

mod harness;

mod dns_sd;
mod failure;
mod latency;
mod pubsub;
mod replay;
mod resolver;
mod seed;
mod zero_config;
