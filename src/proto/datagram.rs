//! The envelope of every UDP datagram mpreg sends (gossip and discovery beacons).
//!
//! ```text
//! 0..4    magic "MPRG"
//! 4       format version (1)
//! 5       kind (see [`Kind`])
//! 6..14   cluster tag: the first 8 bytes of SHA-256(cluster id)
//! 14..22  sender's clock, ms since the Unix epoch (replay window when authenticated)
//! 22..    payload
//! last 16 HMAC-SHA256(secret, everything before it), truncated — only with a shared secret
//! ```
//! The cluster tag keeps clusters apart even without a secret; the tag is checked before
//! anything is decoded, so a datagram of another cluster costs almost nothing.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// First bytes of every datagram.
pub const MAGIC: &[u8; 4] = b"MPRG";
/// Envelope format version.
pub const VERSION: u8 = 1;
/// Bytes before the payload.
pub const HEADER_LEN: usize = 22;
/// Bytes of the truncated HMAC tag.
pub const TAG_LEN: usize = 16;
/// An authenticated datagram older or newer than this (sender's clock vs ours) is dropped.
pub const REPLAY_WINDOW_MS: u64 = 5 * 60 * 1000;

/// What a datagram carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// SWIM membership traffic (foca).
    Gossip = 0,
    /// Discovery beacon / probe / answer.
    Beacon = 1,
}

/// Why a datagram was dropped; each is counted by the receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Reject {
    /// Not an mpreg datagram, or truncated.
    #[error("malformed datagram")]
    Malformed,
    /// From another cluster.
    #[error("datagram from another cluster")]
    OtherCluster,
    /// Missing or wrong HMAC tag, or outside the replay window.
    #[error("unauthenticated datagram")]
    Unauthenticated,
}

/// The 8-byte tag of a cluster id.
pub fn cluster_tag(cluster: &str) -> [u8; 8] {
    let d = Sha256::digest(cluster.as_bytes());
    let mut t = [0u8; 8];
    t.copy_from_slice(&d[..8]);
    t
}

fn tag(secret: &[u8], data: &[u8]) -> [u8; TAG_LEN] {
    let mut m =
        <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("hmac takes any key length");
    m.update(b"mpreg-datagram-v1");
    m.update(data);
    let full = m.finalize().into_bytes();
    let mut t = [0u8; TAG_LEN];
    t.copy_from_slice(&full[..TAG_LEN]);
    t
}

/// Wraps `payload` for sending.
pub fn seal(
    kind: Kind,
    cluster: &[u8; 8],
    secret: Option<&[u8]>,
    now_ms: u64,
    payload: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len() + TAG_LEN);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.push(kind as u8);
    out.extend_from_slice(cluster);
    out.extend_from_slice(&now_ms.to_be_bytes());
    out.extend_from_slice(payload);
    if let Some(s) = secret {
        let t = tag(s, &out);
        out.extend_from_slice(&t);
    }
    out
}

/// Checks a received datagram and returns its kind and payload.
pub fn open<'a>(
    data: &'a [u8],
    cluster: &[u8; 8],
    secret: Option<&[u8]>,
    now_ms: u64,
) -> Result<(Kind, &'a [u8]), Reject> {
    if data.len() < HEADER_LEN || &data[..4] != MAGIC || data[4] != VERSION {
        return Err(Reject::Malformed);
    }
    let kind = match data[5] {
        0 => Kind::Gossip,
        1 => Kind::Beacon,
        _ => return Err(Reject::Malformed),
    };
    if &data[6..14] != cluster {
        return Err(Reject::OtherCluster);
    }
    let body = match secret {
        None => &data[HEADER_LEN..],
        Some(s) => {
            if data.len() < HEADER_LEN + TAG_LEN {
                return Err(Reject::Unauthenticated);
            }
            let (signed, t) = data.split_at(data.len() - TAG_LEN);
            let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(s).expect("any key length");
            m.update(b"mpreg-datagram-v1");
            m.update(signed);
            // Constant-time comparison of the truncated tag.
            m.verify_truncated_left(t)
                .map_err(|_| Reject::Unauthenticated)?;
            let sent = u64::from_be_bytes(data[14..22].try_into().expect("8 bytes"));
            if sent.abs_diff(now_ms) > REPLAY_WINDOW_MS {
                return Err(Reject::Unauthenticated);
            }
            &signed[HEADER_LEN..]
        }
    };
    Ok((kind, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_with_and_without_secret() {
        let c = cluster_tag("lab");
        let d = seal(Kind::Gossip, &c, None, 1000, b"hello");
        assert_eq!(
            open(&d, &c, None, 1000).unwrap(),
            (Kind::Gossip, &b"hello"[..])
        );
        let d = seal(Kind::Beacon, &c, Some(b"s"), 1000, b"hi");
        assert_eq!(
            open(&d, &c, Some(b"s"), 2000).unwrap(),
            (Kind::Beacon, &b"hi"[..])
        );
    }

    #[test]
    fn rejects_are_specific() {
        let c = cluster_tag("lab");
        let d = seal(Kind::Gossip, &c, Some(b"s"), 1000, b"x");
        assert_eq!(
            open(&d, &cluster_tag("other"), Some(b"s"), 1000),
            Err(Reject::OtherCluster)
        );
        assert_eq!(open(&d, &c, Some(b"t"), 1000), Err(Reject::Unauthenticated));
        assert_eq!(
            open(&d, &c, Some(b"s"), 1000 + REPLAY_WINDOW_MS + 1),
            Err(Reject::Unauthenticated)
        );
        let unsigned = seal(Kind::Gossip, &c, None, 1000, b"xxxxxxxxxxxxxxxxxxxx");
        assert_eq!(
            open(&unsigned, &c, Some(b"s"), 1000),
            Err(Reject::Unauthenticated)
        );
        assert_eq!(
            open(b"GET / HTTP/1.1\r\n\r\n\r\n\r\n", &c, None, 0),
            Err(Reject::Malformed)
        );
        let mut tampered = d.clone();
        tampered[HEADER_LEN] ^= 1;
        assert_eq!(
            open(&tampered, &c, Some(b"s"), 1000),
            Err(Reject::Unauthenticated)
        );
    }
}
