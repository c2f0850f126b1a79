//! Entry points for the `cargo fuzz` targets in `fuzz/` (cargo feature `fuzzing`, off by
//! default; hidden from the docs and no part of the public API).
//!
//! Each function takes the fuzzer's raw bytes, runs one decoder of the protocol on them
//! as a node would, and checks properties that must hold for any input: a decoder never
//! panics, what decodes re-encodes to the same thing, and a matcher agrees with a simple
//! reference. A property that fails panics, which the fuzzer reports as a crash; bad input
//! itself must never panic (it is an error value, as on a real node).
//!
//! - [`frames`]: TCP frame stream decoding (`proto::codec`, `proto::publish_frame`).
//! - [`handshake`]: the listener's side of the hello/HMAC handshake (`proto::handshake`).
//! - [`datagram`]: the UDP envelope and its replay window (`proto::datagram`, `replay`).
//! - [`membership`]: SWIM gossip payloads (`proto::membership`, foca's decoder).
//! - [`topic`]: topic and pattern parsing, pattern matching and the trie (`proto::topic`).
//! - [`condition`]: MARO condition parsing and printing (`proto::condition`).
//! - [`workflow`]: MPREG workflow JSON, its plan and a run of it (`proto::workflow`).
//! - [`args`]: fitting arguments to a signature (`proto::args`).
//! - [`gateway`]: the gateway's requests, MPREG JSON and JSON-RPC (`gateway`, `proto::json`).
//!
//! [`seeds`] produces real encodings of each kind, for the targets' starting corpora.

mod input;
mod seed;
#[cfg(test)]
mod tests;
mod text;
mod wire;

pub use seed::seeds;
#[cfg(feature = "http")]
pub use text::gateway;
pub use text::{args, condition, topic, workflow};
pub use wire::{datagram, frames, handshake, membership};

/// Names of the fuzz targets, one per entry point (`fuzz/fuzz_targets/<name>.rs`).
pub const TARGETS: [&str; 9] = [
    "frames",
    "handshake",
    "datagram",
    "membership",
    "topic",
    "condition",
    "workflow",
    "args",
    "gateway",
];

/// Runs target `name` on `data`; false for an unknown name (or `gateway` without the
/// `http` feature). Lets the normal test suite
/// replay inputs the fuzzer found, without libFuzzer.
pub fn run(name: &str, data: &[u8]) -> bool {
    let f: fn(&[u8]) = match name {
        "frames" => frames,
        "handshake" => handshake,
        "datagram" => datagram,
        "membership" => membership,
        "topic" => topic,
        "condition" => condition,
        "workflow" => workflow,
        "args" => args,
        #[cfg(feature = "http")]
        "gateway" => gateway,
        _ => return false,
    };
    f(data);
    true
}
