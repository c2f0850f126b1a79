//! The identity of a cluster member, as gossiped by SWIM and carried by discovery
//! datagrams (beacon answers, mDNS records resolve to one).

use std::fmt;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// A member of the cluster: a node that listens and takes part in membership.
///
/// One port serves TCP (calls) and UDP (gossip), so `addr` is both. Small on purpose: every
/// gossip message carries several of these.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Member {
    /// Address for TCP calls and UDP gossip.
    pub addr: SocketAddr,
    /// Random node id, stable for the process.
    pub id: u64,
    /// Node name, unique among live members.
    pub name: String,
    /// Role (MARO component type).
    pub role: String,
    /// Host identity, for host scope.
    pub host: String,
    /// Process start time in milliseconds since the Unix epoch: when two identities claim
    /// one address or one name, the later start wins (a restarted node replaces its past).
    pub started_ms: u64,
    /// Renewals of this identity after being declared down (SWIM rejoin).
    pub bump: u32,
}

impl fmt::Debug for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}#{:x}@{}/{}",
            self.name,
            self.id & 0xffff,
            self.addr,
            self.bump
        )
    }
}

/// The role of a node that names none (MARO's component type).
pub const DEFAULT_ROLE: &str = "node";

impl Member {
    /// The name of a node with role `role` and id `id` that sets no name: `{role}-` and
    /// the last 6 hex digits of the id.
    pub fn default_name(role: &str, id: u64) -> String {
        format!("{role}-{:06x}", id & 0xff_ffff)
    }

    /// Whether `self` is a newer incarnation than `other` (later start, then more renewals,
    /// then the larger id so that the order is total).
    pub fn newer_than(&self, other: &Member) -> bool {
        (self.started_ms, self.bump, self.id) > (other.started_ms, other.bump, other.id)
    }
}

impl foca::Identity for Member {
    type Addr = SocketAddr;

    fn renew(&self) -> Option<Self> {
        Some(Member {
            bump: self.bump.wrapping_add(1),
            ..self.clone()
        })
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        self.newer_than(adversary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use foca::Identity;

    fn m(id: u64, started_ms: u64, bump: u32) -> Member {
        Member {
            addr: "127.0.0.1:7700".parse().unwrap(),
            id,
            name: "n".into(),
            role: "node".into(),
            host: "h".into(),
            started_ms,
            bump,
        }
    }

    #[test]
    fn later_start_wins_then_bump() {
        assert!(m(1, 20, 0).win_addr_conflict(&m(2, 10, 5)));
        assert!(m(1, 10, 1).win_addr_conflict(&m(1, 10, 0)));
        assert!(!m(1, 10, 0).win_addr_conflict(&m(1, 10, 1)));
        assert_eq!(m(1, 10, 0).renew().unwrap().bump, 1);
    }
}
