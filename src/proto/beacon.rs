//! What the discovery beacon says and how often a serving node says it (DESIGN §4, way 2):
//! the pure part of `runtime::discovery::beacon`, shared with the membership simulation.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::proto::member::Member;

/// What a beacon says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BeaconKind {
    /// A serving node advertises itself (broadcast).
    Announce,
    /// A client asks who is there (broadcast).
    Probe,
    /// A serving node answers a probe or a new node's announce (unicast).
    Answer,
}

/// The payload of a beacon datagram (MessagePack, named fields).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Payload {
    /// What the datagram says.
    pub kind: BeaconKind,
    /// The sender, for `announce` and `answer`.
    pub member: Option<Member>,
    /// The sender's HTTP gateway (`ip:port`; `0.0.0.0` = the datagram's source address),
    /// for `announce` and `answer` of a node that has one: how clients in other languages
    /// find a gateway without an address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<String>,
}

impl Payload {
    /// The datagram body: MessagePack with named fields (other languages read it).
    pub fn encode(&self) -> Vec<u8> {
        rmp_serde::to_vec_named(self).expect("a beacon payload always encodes")
    }

    /// A body as [`Payload::encode`] writes it.
    pub fn decode(body: &[u8]) -> Result<Self, rmp_serde::decode::Error> {
        rmp_serde::from_slice(body)
    }
}

/// How often a node that hears `others` other nodes announces itself.
///
/// Every `base` while it hears none: alone, or cut off from the rest, it is found (and
/// finds them) within one interval. Among others it only restates what they know, since a
/// newcomer's own announce is answered by every node at once: so every 4 intervals, and
/// one more interval per 8 nodes heard, so that each node of a LAN of 1,000 receives about
/// 8 announces a second instead of 1,000 (and an idle node of a small cluster wakes for
/// them a quarter as often).
pub fn announce_every(base: Duration, others: usize) -> Duration {
    if others == 0 {
        return base;
    }
    let factor = u32::try_from(others / 8).unwrap_or(u32::MAX).clamp(4, 125);
    base * factor
}

/// How long after last hearing a member its next announce is answered again (and it stops
/// counting among the `others` of [`announce_every`]): three of its announce intervals.
pub fn stale_after(base: Duration, others: usize) -> Duration {
    announce_every(base, others) * 3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_announces_fast_alone_and_slowly_among_many() {
        let base = Duration::from_secs(1);
        assert_eq!(announce_every(base, 0), base, "alone or cut off");
        assert_eq!(announce_every(base, 2), base * 4);
        assert_eq!(announce_every(base, 64), base * 8);
        // A LAN of 1,000: each node hears about 8 announces a second.
        let every = announce_every(base, 999);
        assert_eq!(every, base * 124);
        assert!((999.0 / every.as_secs_f64()) < 10.0);
        assert_eq!(announce_every(base, 100_000), base * 125, "capped");
    }
}
