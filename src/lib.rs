//! mpreg: zero-config LAN middleware. Register functions by name in one process, call
//! them by name from any other.
//!
//! ```no_run
//! #[mpreg::register]
//! fn add(a: i64, b: i64) -> i64 { a + b }
//!
//! #[mpreg::register(resources = ["dataset-1"], visibility = "host")]
//! async fn train(model: String, epochs: u32) -> Result<f64, String> {
//!     if epochs == 0 { return Err("epochs must be positive".into()) }
//!     Ok(0.93)
//! }
//!
//! #[tokio::main]
//! async fn main() -> mpreg::Result<()> {
//!     mpreg::serve().await // until Ctrl-C
//! }
//! ```
//! and in another process, `let sum: i64 = mpreg::call("add", (1, 2)).await?;`, or with an
//! explicit handle, `Node::builder().seed("10.0.0.5:7700").start().await?.call("add", (1, 2))`.
//!
//! # Layout
//! What each file and folder of `src/` is for:
//! - `lib.rs`: this page, the public re-exports, and [`init_logging`] (its filter and
//!   format).
//! - [`proto`]: pure protocol logic, no I/O and no clock — wire frames and codec
//!   (`wire`, `codec`, the hand-coded `publish_frame`), the UDP datagram envelope
//!   (`datagram`) and its replay window (`replay`), argument fitting (`args`), catalogs and
//!   visibility (`catalog`), the hello checks (`handshake`), encryption with a shared
//!   secret — Noise key exchange, encrypted records, sealed datagrams (`crypto`) — JSON
//!   mapping (`json`), a
//!   member's identity (`member`), membership over SWIM and its compact gossip encoding
//!   (`membership`), what the discovery beacon says and how often (`beacon`), who answers a call
//!   (`resolve`), MPREG multi-call planning and run state (`workflow`), MARO conditional
//!   events and their queues (`condition`), message envelopes (`envelope`), the pub/sub
//!   topic trie (`topic`).
//! - `runtime/`: the tokio shell — connections (multiplexed calls, `connection`), what they
//!   send (bounded queue and backlog, coalesced writes: `outbound`), heartbeats and the
//!   stall watchdog (`liveness`), single-flight dials and duplicate retirement (`connect`),
//!   handshakes, serving calls (`dispatch`), the listener, seed dialers, starting a node's
//!   sockets and joining (`bootstrap`), the SWIM task (`gossip`), the live members and a
//!   connection to each (`cluster`), zero-config discovery by UDP beacon and mDNS
//!   (`discovery/`), routing calls (`route`), running workflows (`workflow`), pub/sub
//!   routing and delivery (`pubsub/`), clients attached to a member that pushes them the
//!   cluster's changes (`attach`), shared node state (`shared`).
//! - [`Node`] / [`NodeBuilder`] (`node.rs`): the public handle to start, register, call, stop;
//!   [`Request`] / [`Target`] (`request.rs`): calls with `locs`, scope, perspective, policy,
//!   and `call_all`. Resolution itself is the pure `proto::resolve` (who qualifies, who is
//!   chosen) driven by `runtime/route.rs` (gather providers, dial, forward, retry).
//! - [`Function`] (`function.rs`): function descriptions and type-erased handlers, the
//!   runtime half of `#[register]`; `registry.rs`: one node's function table.
//! - [`Config`] (`config.rs`): flags > `MPREG_*` > `mpreg.toml` > defaults.
//! - [`Error`] (`error.rs`): one error enum whose messages name what was wrong.
//! - `global.rs`: the process-global default node behind [`serve`], [`call`] and
//!   [`blocking::call`]. `builtins.rs`: `echo` and `echos`, and `_metrics`/`_info` on
//!   every node.
//! - `pubsub/`: the pub/sub API — [`publish`], [`subscribe`](fn@subscribe) (streams and
//!   `#[mpreg::subscribe]`), queue groups, confirmed publish and [`request_publish`]; the
//!   routing and delivery behind it are `runtime/pubsub/`.
//! - `workflow.rs`: MPREG multi-call workflows as users build and run them ([`workflow()`],
//!   [`Flow`], [`Results`]); planned by `proto::workflow`, run by `runtime/workflow.rs`.
//! - MARO messaging: [`Message`] and [`MessageError`] (`message.rs`); the primitives
//!   `send`/`isend`/`notify`/`scatter`/`broadcast`/`receive`/`receive_by_id`/
//!   `wait_for_peers` on [`Node`] and the default node (`messaging.rs`); [`Handlers`] and
//!   the link-time entries of `#[mpreg::on]` (`handler.rs`); the wire form in
//!   `proto::envelope`; in the runtime, `mailbox.rs` (sessions, inbox, routing),
//!   `reactor.rs` (condition table and handler tasks) and `queue.rs` (bounded drop-oldest
//!   queues).
//! - `metrics/`: what a node measures — the lock-free latency histogram (`histogram`),
//!   per-node tables (`mod.rs`) and per-thread caches of their records for the hot paths
//!   (`cache`), the caller's side of a call (`caller`), reading them into
//!   [`MetricsSnapshot`]/[`NodeInfo`] (`collect`, `snapshot`) and into Prometheus text
//!   (`prometheus`).
//! - `http/` (cargo feature `http`, on by default): the node's optional HTTP listener
//!   (`--http`) — Prometheus `/metrics`, `/health/live` and `/health/ready` (readiness:
//!   `Shared::readiness`) — with a bounded number of connections (`connections`).
//! - `gateway/` (feature `http`): the gateway for other languages on that listener — a
//!   WebSocket on `GET /` (MPREG's client protocol, pub/sub, functions served from the
//!   socket) and JSON-RPC 2.0 on `POST /`; the wire contract is `docs/gateway.md`.
//! - [`service`]: services as programs installed into a services folder — the
//!   `service.toml` manifest, what a host has installed, `mpreg install` and
//!   `mpreg uninstall`, and a serving node's controller that runs them (`controller`; one
//!   `supervise` task per running service, its `process`, the `ring` of its last lines;
//!   the answers' shapes in `status`).
//! - `control.rs`: the service-control built-ins (`_services`, `_service_start`, …) with
//!   the rule of who may start and stop; `service_client.rs`: the caller's side
//!   ([`Target::start_service`] and its siblings, [`service_name`]); `runtime/caller.rs`:
//!   the caller's host, for the functions that decide by it.
//! - `keys.rs` ([`keys`]): key rotation — the keyring built-ins (`_keys`, `_keys_install`,
//!   …) of a node with a secret and the caller's side (`mpreg keys`); the keyring itself is
//!   `proto::keyring`.
//! - `private.rs`: `__private`, what the macros' expansions refer to; not public API.
//! - `fuzzing/` (cargo feature `fuzzing`, off by default): entry points and seed inputs
//!   for the `cargo fuzz` targets of `fuzz/` (see `fuzz/README.md`); not public API.
//! - `main.rs` and `cli/`: the `mpreg` command line, a thin client of this library
//!   (`cli/top/`: the `mpreg top` TUI — polling, a pure model of rates and events, the
//!   view, the terminal loop).
//!
//! Outside `src/`: `macros/` is the `mpreg-macros` crate behind `#[mpreg::register]`,
//! `#[mpreg::on]`, `#[mpreg::handlers]` and `#[mpreg::subscribe]`.

#![deny(missing_docs)]

mod builtins;
mod config;
mod control;
mod error;
mod function;
#[cfg(feature = "http")]
mod gateway;
mod global;
mod handler;
#[cfg(feature = "http")]
mod http;
pub mod keys;
mod message;
mod messaging;
mod metrics;
mod node;
pub mod proto;
mod pubsub;
mod registry;
mod request;
mod runtime;
pub mod service;
mod service_client;
mod workflow;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

// Also in the crate's own tests, which replay the seeds and every input the fuzzers found.
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;

pub use config::{
    host_id, Config, DEFAULT_BEACON_PORT, DEFAULT_CALL_TIMEOUT, DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_MDNS_PORT, DEFAULT_PORT,
};
pub use error::{Error, Result};
pub use function::{FnSpec, Function, Param, Visibility};
pub use global::{
    blocking, call, call_all, node as default_node, on_host, on_node, serve, shutdown,
    shutdown_signal, workflow, DefaultTarget,
};
#[allow(deprecated)]
pub use global::{host, named as node};
pub use handler::{HandlerFuture, HandlerOutcome, Handlers};
pub use message::{Message, MessageError};
pub use messaging::{
    attach, broadcast, ibroadcast, iscatter, isend, notify, receive, receive_by_id, scatter, send,
    wait_for_peers, Incoming, IntoCondition, MessagingStats,
};
pub use metrics::snapshot::{
    CalledMetrics, FunctionMetrics, MembershipMetrics, MessagingMetrics, MetricsSnapshot, NodeInfo,
    PeerMetrics, PrefixMetrics, PubSubMetrics, WorkflowMetrics,
};
pub use node::{MemberSummary, Node, NodeBuilder, NodeStats, PeerSummary, Response};
pub use proto::condition::{Condition, HandlerId};
pub use proto::envelope::{MessageId, SessionId, SessionKind, Stage};
pub use proto::resolve::{Perspective, Policy, Scope};
pub use pubsub::{
    publish, publish_confirmed, request_publish, subscribe, subscribe_group, Confirmation, PubMeta,
    Publication, Publisher, Subscription, SubscriptionBuilder,
};
pub use request::{Request, Target};
pub use rmpv::Value;
pub use runtime::reactor::HandlerStats;
pub use service_client::service_name;
pub use workflow::{Flow, Results};

/// Registers a function so that any node of the cluster can call it by name.
///
/// ```no_run
/// #[mpreg::register]                                   // name "echo", network visible
/// fn echo(s: String) -> String { s }
///
/// #[mpreg::register(name = "fit", resources = ["gpu"], visibility = "host")]
/// async fn train(model: String, epochs: u32) -> Result<f64, String> { Ok(0.9) }
///
/// #[mpreg::register(blocking)]                        // runs on the blocking pool
/// fn crunch(n: u64) -> u64 { (0..n).sum() }
/// ```
/// Parameters and the return type must be owned serde types. A return type whose last path
/// segment is `Result` is treated as fallible: `Err(e)` reaches the caller as
/// [`Error::Remote`] carrying `e.to_string()`. Callers may pass arguments by position or by
/// parameter name. Functions are collected at link time: a function in a library crate is
/// registered only if the binary uses that crate (add `use that_crate as _;` otherwise).
/// Two functions with one name make node start fail with an error naming both.
pub use mpreg_macros::register;

/// Runs a free function every time a MARO condition holds, on every node the process
/// starts, with the messages that satisfied it.
///
/// ```no_run
/// #[mpreg::on("worker:update:60%")]
/// async fn aggregate(messages: Vec<mpreg::Message>) {
///     let senders: Vec<&str> = messages.iter().map(|m| m.source.as_str()).collect();
///     println!("3 of 5 workers reported: {senders:?}");
/// }
/// ```
/// The function is sync or `async` and takes `Vec<Message>`, optionally after the receiving
/// node (`Node` or `&Node`); it returns `()` or a `Result<(), E: Display>` (errors are
/// logged). Conditions are parsed when a node starts: a bad one makes the start fail with an
/// error naming the function and the bad part. See [`Condition`] for the grammar.
pub use mpreg_macros::on;

/// Implements [`Handlers`] for a type whose `impl` block marks methods with
/// `#[on("condition")]`; attach a value with [`Node::attach`].
///
/// ```no_run
/// struct Aggregator { rounds: u32 }
///
/// #[mpreg::handlers]
/// impl Aggregator {
///     #[on("worker:update:60%")]
///     async fn aggregate(&mut self, messages: Vec<mpreg::Message>) { self.rounds += 1; }
/// }
/// // node.attach(Aggregator { rounds: 0 })?;
/// ```
pub use mpreg_macros::handlers;

/// Starts tracing output to stderr for binaries and examples. Does nothing if a
/// subscriber is already installed.
///
/// - Filter: `RUST_LOG` if set, else `info` for mpreg and `warn` for other crates. A bare
///   level (`RUST_LOG=debug`) applies to mpreg only — other crates stay at `warn`, so
///   mDNS internals do not flood the output; a full directive (`RUST_LOG=debug,mdns_sd=debug`,
///   anything with `=` or `,`) is used as written.
/// - Format: `MPREG_LOG_FORMAT=json` writes one JSON object per line (fields, the call's
///   span, a timestamp); `text` (the default) is human-readable. Another value is named on
///   stderr and text is used.
/// - Colours only when stderr is a terminal and `NO_COLOR` is unset.
pub fn init_logging() {
    init_logging_with("mpreg=info,warn")
}

/// Like [`init_logging`] with another default filter (used when `RUST_LOG` is unset).
pub fn init_logging_with(default_filter: &str) {
    let directives = filter_directives(std::env::var("RUST_LOG").ok().as_deref(), default_filter);
    let filter = tracing_subscriber::EnvFilter::try_new(&directives).unwrap_or_else(|e| {
        eprintln!(
            "mpreg: RUST_LOG `{directives}` is not a valid filter ({e}); using `{default_filter}`"
        );
        tracing_subscriber::EnvFilter::new(default_filter)
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match std::env::var("MPREG_LOG_FORMAT").as_deref() {
        Ok("json") => builder.json().with_current_span(true).try_init(),
        Ok("text") | Err(_) => builder.with_ansi(colours()).try_init(),
        Ok(other) => {
            eprintln!("mpreg: MPREG_LOG_FORMAT `{other}` is neither `text` nor `json`; using text");
            builder.with_ansi(colours()).try_init()
        }
    };
}

/// Colours only for a person at a terminal: not in files or pipes, nor with `NO_COLOR`.
fn colours() -> bool {
    std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// The filter [`init_logging_with`] uses: `RUST_LOG` (`rust_log`) if set and not blank, a
/// bare verbose level applying to mpreg only, else `default_filter`.
fn filter_directives(rust_log: Option<&str>, default_filter: &str) -> String {
    match rust_log.map(str::trim) {
        Some(v) if !v.is_empty() => mpreg_only(v),
        _ => default_filter.to_string(),
    }
}

/// A bare verbose level means "this much of mpreg": `debug` becomes `warn,mpreg=debug`
/// (`warn`, `error` and `off` already quiet every crate and are used as written).
fn mpreg_only(rust_log: &str) -> String {
    const VERBOSE: [&str; 3] = ["trace", "debug", "info"];
    let lower = rust_log.to_ascii_lowercase();
    if VERBOSE.contains(&lower.as_str()) {
        format!("warn,mpreg={lower}")
    } else {
        rust_log.to_string()
    }
}

/// Subscribes a function to a topic pattern: `#[mpreg::subscribe("sensors.*.temp")]`.
///
/// ```no_run
/// #[mpreg::subscribe("sensors.*.temp")]
/// async fn on_temp(celsius: f64, meta: mpreg::PubMeta) { println!("{}: {celsius}", meta.topic) }
///
/// #[mpreg::subscribe("jobs.*", group = "workers")]
/// fn work(job: String) -> usize { job.len() }
///
/// #[mpreg::subscribe("ledger.entries", lossless)]
/// async fn record(entry: String) { /* slow, and must see every entry */ }
/// ```
/// A full queue drops its oldest publication unless the subscriber is `lossless`: then the
/// node stops reading its publishers until there is room, which slows their `publish()`
/// (see [`SubscriptionBuilder::lossless`]). The first parameter receives the payload, an optional second one the [`PubMeta`]. Every
/// listening node of the process subscribes it at start; a bad pattern makes start fail
/// with an error naming the function and the segment. See [`Node::subscribe`] for streams.
pub use mpreg_macros::subscribe;

#[cfg(test)]
mod tests {
    use super::filter_directives;
    use tracing::Level;

    /// Whether the filter made of `$directives` lets an event of `$level` from `$target`
    /// through. A macro because `tracing::enabled!` needs its target as a literal.
    macro_rules! passes {
        ($directives:expr, $target:literal, $level:expr) => {{
            let subscriber = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new($directives))
                .with_writer(std::io::sink)
                .finish();
            tracing::subscriber::with_default(subscriber, || {
                tracing::enabled!(target: $target, $level)
            })
        }};
    }

    #[test]
    fn a_bare_debug_is_mpregs_alone_and_keeps_mdns_quiet() {
        let default = "mpreg=info,warn";
        for asked in ["debug", "DEBUG", " debug "] {
            let f = filter_directives(Some(asked), default);
            assert_eq!(f, "warn,mpreg=debug", "RUST_LOG={asked:?}");
            assert!(!passes!(&f, "mdns_sd", Level::DEBUG), "{f}");
            assert!(!passes!(&f, "mdns_sd::service_daemon", Level::INFO), "{f}");
            assert!(passes!(&f, "mdns_sd", Level::WARN), "{f}");
            assert!(
                passes!(&f, "mpreg::runtime::connection", Level::DEBUG),
                "{f}"
            );
            assert!(!passes!(&f, "mpreg", Level::TRACE), "{f}");
        }
    }

    #[test]
    fn full_directives_are_used_as_written_and_unset_means_the_default() {
        let default = "mpreg=info,warn";
        let f = filter_directives(Some("debug,mdns_sd=debug"), default);
        assert_eq!(f, "debug,mdns_sd=debug");
        assert!(passes!(&f, "mdns_sd", Level::DEBUG), "asked for by name");
        assert_eq!(filter_directives(Some("warn"), default), "warn");
        assert_eq!(filter_directives(None, default), default);
        assert_eq!(filter_directives(Some("  "), default), default);
        assert!(!passes!(default, "mdns_sd", Level::INFO));
        assert!(passes!(default, "mpreg::node", Level::INFO));
    }
}
