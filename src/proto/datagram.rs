//! The envelope of every UDP datagram mpreg sends (gossip, connection liveness probes and
//! discovery beacons).
//!
//! ```text
//! 0..4    magic "MPRG"
//! 4       format version: 3 for gossip and liveness with a secret (encrypted), 2 otherwise
//! 5       kind (see [`Kind`])
//! 6..14   cluster tag: the first 8 bytes of SHA-256(cluster id)
//! 14..22  sender's clock, ms since the Unix epoch (clock window when authenticated)
//! 22..30  sender id: the node id of a member, a random id of a client
//! 30..38  sender's counter: grows by one with every datagram of that sender and socket
//! 38..46  destination id: the node id the datagram is for, 0 for "whoever receives it"
//! 46..    payload — without a secret
//!
//! gossip and liveness with a shared secret (version 3):
//! 46..70  random nonce                       ┐ the payload encrypted with
//! 70..    payload, encrypted                 │ XChaCha20-Poly1305, the header
//! last 16 tag                                ┘ authenticated with it
//!
//! beacons with a shared secret (version 2):
//! 46..    payload
//! last 16 HMAC-SHA256(secret, "mpreg-datagram-v2" ‖ everything before it), truncated
//! ```
//! The cluster tag keeps clusters apart even without a secret; the tag is checked before
//! anything is decoded, so a datagram of another cluster costs almost nothing. The gossip
//! key is derived from the secret and the cluster tag (`proto::crypto::DatagramKey`); the
//! header stays in clear (it holds no name) so that a receiver can drop another cluster's
//! datagram before decrypting it.
//!
//! Beacons are authenticated, not encrypted: they carry only what the clear TCP hello shows
//! as well (a member's name, role, host, address, gateway address), so encrypting them
//! would hide nothing, and keeping their format lets clients in other languages (the
//! stdlib-only Python client) discover a cluster with a secret.
//!
//! With a secret, a datagram is accepted at most once ([`open_checked`]): it must be
//! inside the clock window ([`REPLAY_WINDOW_MS`]), its (sender, counter) must be new to the
//! receiver's [`ReplayWindow`], and it must be addressed to the receiver — a datagram a
//! member sent to another member cannot be replayed to a third one. One addressed to
//! nobody in particular (a broadcast beacon, or a join request to an address whose node is
//! not known yet) is accepted only when newer than everything its sender sent before.
//!
//! Without a secret nothing is authenticated: anyone can forge any header, so the ids,
//! counters and clock are not checked at all and replays are not detected.

use std::borrow::Cow;

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use crate::proto::crypto::{DatagramKey, AEAD_TAG, DATAGRAM_NONCE};
use crate::proto::keyring::Keyring;

pub use crate::proto::replay::ReplayWindow;

/// First bytes of every datagram.
pub const MAGIC: &[u8; 4] = b"MPRG";
/// Envelope format version of beacons, and of gossip without a secret.
pub const VERSION: u8 = 2;
/// Envelope format version of gossip with a secret (encrypted).
pub const VERSION_SEALED: u8 = 3;
/// Bytes of a beacon's truncated HMAC tag (with a secret).
pub const TAG_LEN: usize = 16;

/// Domain separation of the beacons' HMAC.
const HMAC_CONTEXT: &[u8] = b"mpreg-datagram-v2";
/// Bytes before the payload.
pub const HEADER_LEN: usize = 46;
/// Bytes a shared secret adds to a gossip datagram: nonce and tag.
pub const SEAL_LEN: usize = DATAGRAM_NONCE + AEAD_TAG;
/// An authenticated datagram older or newer than this (sender's clock vs ours) is dropped.
pub const REPLAY_WINDOW_MS: u64 = 5 * 60 * 1000;
/// Destination id of a datagram for whoever receives it.
pub const ANYONE: u64 = 0;

/// What a datagram carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// SWIM membership traffic (foca).
    Gossip = 0,
    /// Discovery beacon / probe / answer.
    Beacon = 1,
    /// A connection's liveness question or answer, on the gossip socket: whether a peer
    /// whose TCP stream has gone quiet still answers (`runtime::liveness`). The payload is
    /// [`LIVENESS_QUESTION`] or [`LIVENESS_ANSWER`].
    Liveness = 2,
}

/// Payload of a [`Kind::Liveness`] question: "are you alive?".
pub const LIVENESS_QUESTION: &[u8] = b"?";
/// Payload of a [`Kind::Liveness`] answer.
pub const LIVENESS_ANSWER: &[u8] = b"!";

impl Kind {
    /// Whether a datagram of this kind is encrypted under a secret: all but beacons (see
    /// the module docs).
    fn sealed(self) -> bool {
        self != Kind::Beacon
    }

    /// The socket that takes it: gossip's socket takes gossip and liveness datagrams.
    fn socket(self) -> Kind {
        match self {
            Kind::Liveness => Kind::Gossip,
            k => k,
        }
    }
}

/// Why a datagram was dropped; each is counted by the receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Reject {
    /// Not an mpreg datagram, or truncated, or not of the kind the socket takes.
    #[error("malformed datagram")]
    Malformed,
    /// From another cluster.
    #[error("datagram from another cluster")]
    OtherCluster,
    /// Does not decrypt with our key (altered, or another secret), or outside the clock
    /// window.
    #[error("unauthenticated datagram")]
    Unauthenticated,
    /// Authentic but not new: a counter already accepted or older than the replay window,
    /// addressed to another node, or from a new sender while the window is full.
    #[error("replayed datagram")]
    Replayed,
}

/// Who sends a datagram, as sealed into its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Sender id (node id, or a client's random id).
    pub sender: u64,
    /// The sender's counter for this datagram; never repeated for one sender and socket.
    pub counter: u64,
    /// Node id of the receiver, or [`ANYONE`].
    pub to: u64,
}

/// A datagram that passed [`open`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened<'a> {
    /// What it carries.
    pub kind: Kind,
    /// Its header fields (meaningless without a secret: anyone can write them).
    pub stamp: Stamp,
    /// The sender's clock.
    pub sent_ms: u64,
    /// The payload (decrypted, with a secret).
    pub payload: Cow<'a, [u8]>,
}

/// Whether a datagram stamped `sent_ms` is outside the clock window at `now_ms`. The
/// replay window forgets a sender with this very comparison (see [`ReplayWindow`]).
pub fn outside_clock_window(sent_ms: u64, now_ms: u64) -> bool {
    sent_ms.abs_diff(now_ms) > REPLAY_WINDOW_MS
}

/// The 8-byte tag of a cluster id.
pub fn cluster_tag(cluster: &str) -> [u8; 8] {
    let d = Sha256::digest(cluster.as_bytes());
    let mut t = [0u8; 8];
    t.copy_from_slice(&d[..8]);
    t
}

fn mac(secret: &[u8], data: &[u8]) -> Hmac<Sha256> {
    let mut m =
        <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("hmac takes any key length");
    m.update(HMAC_CONTEXT);
    m.update(data);
    m
}

thread_local! {
    /// The datagram keys last derived on this thread, with the secrets and cluster they
    /// came from: deriving (HKDF) costs more than decrypting a datagram, and the keys
    /// change only with the keyring.
    static DERIVED: std::cell::RefCell<Option<Derived>> = const { std::cell::RefCell::new(None) };
}

/// Secrets, cluster tag, and the datagram keys derived from them.
type Derived = (Vec<Vec<u8>>, [u8; 8], Vec<DatagramKey>);

/// Runs `f` with the datagram keys of `secrets` in `cluster`, derived once per change.
fn with_keys<R>(secrets: &[Vec<u8>], cluster: &[u8; 8], f: impl FnOnce(&[DatagramKey]) -> R) -> R {
    DERIVED.with(|cell| {
        let mut cached = cell.borrow_mut();
        let fresh = match &*cached {
            Some((s, c, _)) => s.as_slice() != secrets || c != cluster,
            None => true,
        };
        if fresh {
            let keys = secrets
                .iter()
                .map(|k| DatagramKey::new(k, cluster))
                .collect();
            *cached = Some((secrets.to_vec(), *cluster, keys));
        }
        let (_, _, keys) = cached.as_ref().expect("just filled");
        f(keys)
    })
}

fn u64_at(data: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(data[at..at + 8].try_into().expect("8 bytes"))
}

/// Wraps `payload` for sending.
pub fn seal(
    kind: Kind,
    cluster: &[u8; 8],
    secret: Option<&[u8]>,
    now_ms: u64,
    stamp: Stamp,
    payload: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len() + SEAL_LEN);
    let sealed = secret.is_some() && kind.sealed();
    out.extend_from_slice(MAGIC);
    out.push(if sealed { VERSION_SEALED } else { VERSION });
    out.push(kind as u8);
    out.extend_from_slice(cluster);
    out.extend_from_slice(&now_ms.to_be_bytes());
    out.extend_from_slice(&stamp.sender.to_be_bytes());
    out.extend_from_slice(&stamp.counter.to_be_bytes());
    out.extend_from_slice(&stamp.to.to_be_bytes());
    match secret {
        None => out.extend_from_slice(payload),
        Some(s) if sealed => {
            let header = out.clone();
            with_keys(&[s.to_vec()], cluster, |k| {
                k[0].seal(&header, payload, &mut out)
            });
        }
        Some(s) => {
            out.extend_from_slice(payload);
            let full = mac(s, &out).finalize().into_bytes();
            out.extend_from_slice(&full[..TAG_LEN]);
        }
    }
    out
}

/// Checks a received datagram's format, cluster, and (with secrets) its clock, and decrypts
/// it with whichever key of `secret` it was sealed with. Does not detect replays: receivers
/// use [`open_checked`].
pub fn open<'a>(
    data: &'a [u8],
    cluster: &[u8; 8],
    secret: Option<&Keyring>,
    now_ms: u64,
) -> Result<Opened<'a>, Reject> {
    if data.len() < HEADER_LEN
        || &data[..4] != MAGIC
        || !matches!(data[4], VERSION | VERSION_SEALED)
    {
        return Err(Reject::Malformed);
    }
    let kind = match data[5] {
        0 => Kind::Gossip,
        1 => Kind::Beacon,
        2 => Kind::Liveness,
        _ => return Err(Reject::Malformed),
    };
    if &data[6..14] != cluster {
        return Err(Reject::OtherCluster);
    }
    let sent_ms = u64_at(data, 14);
    let (header, body) = data.split_at(HEADER_LEN);
    // Sealed exactly when the receiver expects it: gossip and liveness under a secret.
    let want_sealed = secret.is_some() && kind.sealed();
    if (data[4] == VERSION_SEALED) != want_sealed {
        return Err(Reject::Unauthenticated);
    }
    let payload = match secret {
        None => Cow::Borrowed(body),
        Some(s) => {
            // The clock first: it costs nothing, decrypting does.
            if outside_clock_window(sent_ms, now_ms) {
                return Err(Reject::Unauthenticated);
            }
            if want_sealed {
                let plain = with_keys(s.keys(), cluster, |keys| {
                    keys.iter().find_map(|k| k.open(header, body))
                });
                Cow::Owned(plain.ok_or(Reject::Unauthenticated)?)
            } else {
                if body.len() < TAG_LEN {
                    return Err(Reject::Unauthenticated);
                }
                let (signed, t) = data.split_at(data.len() - TAG_LEN);
                // Constant-time comparison of the truncated tag, with each key held.
                let ok = s
                    .keys()
                    .iter()
                    .any(|k| mac(k, signed).verify_truncated_left(t).is_ok());
                if !ok {
                    return Err(Reject::Unauthenticated);
                }
                Cow::Borrowed(&signed[HEADER_LEN..])
            }
        }
    };
    Ok(Opened {
        kind,
        stamp: Stamp {
            sender: u64_at(data, 22),
            counter: u64_at(data, 30),
            to: u64_at(data, 38),
        },
        sent_ms,
        payload,
    })
}

/// [`open`] for a receiver: only datagrams `kind`'s socket takes (gossip's takes liveness
/// datagrams as well), and with a secret only one addressed
/// to node `me` (or to anyone) and new to `window`, which then records it.
pub fn open_checked<'a>(
    data: &'a [u8],
    cluster: &[u8; 8],
    secret: Option<&Keyring>,
    now_ms: u64,
    kind: Kind,
    me: u64,
    window: &mut ReplayWindow,
) -> Result<Opened<'a>, Reject> {
    let d = open(data, cluster, secret, now_ms)?;
    // Before the window: a datagram for another socket must not use up a counter.
    if d.kind.socket() != kind.socket() {
        return Err(Reject::Malformed);
    }
    if secret.is_none() {
        return Ok(d);
    }
    let s = d.stamp;
    if s.to != ANYONE && s.to != me {
        return Err(Reject::Replayed);
    }
    window.accept(s.sender, s.counter, d.sent_ms, now_ms, s.to == ANYONE)?;
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_000_000;
    const ME: u64 = 0xa11ce;

    fn stamp(counter: u64, to: u64) -> Stamp {
        Stamp {
            sender: 42,
            counter,
            to,
        }
    }

    #[test]
    fn roundtrip_with_and_without_secret() {
        let c = cluster_tag("lab");
        let d = seal(Kind::Gossip, &c, None, NOW, stamp(1, ME), b"hello");
        let o = open(&d, &c, None, NOW).unwrap();
        assert_eq!(
            (o.kind, &*o.payload, o.stamp),
            (Kind::Gossip, &b"hello"[..], stamp(1, ME))
        );
        let d = seal(Kind::Beacon, &c, Some(b"s"), NOW, stamp(7, ANYONE), b"hi");
        let o = open(&d, &c, Some(&Keyring::single(b"s")), NOW + 1000).unwrap();
        assert_eq!(
            (o.kind, &*o.payload, o.sent_ms),
            (Kind::Beacon, &b"hi"[..], NOW)
        );
        assert_eq!(o.stamp, stamp(7, ANYONE));
    }

    #[test]
    fn rejects_are_specific() {
        let c = cluster_tag("lab");
        let d = seal(Kind::Gossip, &c, Some(b"s"), NOW, stamp(0, ME), b"x");
        assert_eq!(
            open(&d, &cluster_tag("other"), Some(&Keyring::single(b"s")), NOW),
            Err(Reject::OtherCluster)
        );
        assert_eq!(
            open(&d, &c, Some(&Keyring::single(b"t")), NOW),
            Err(Reject::Unauthenticated)
        );
        assert_eq!(
            open(
                &d,
                &c,
                Some(&Keyring::single(b"s")),
                NOW + REPLAY_WINDOW_MS + 1
            ),
            Err(Reject::Unauthenticated)
        );
        assert_eq!(
            open(
                &d,
                &c,
                Some(&Keyring::single(b"s")),
                NOW - REPLAY_WINDOW_MS - 1
            ),
            Err(Reject::Unauthenticated)
        );
        assert!(open(&d, &c, Some(&Keyring::single(b"s")), NOW + REPLAY_WINDOW_MS).is_ok());
        let unsigned = seal(
            Kind::Gossip,
            &c,
            None,
            NOW,
            stamp(0, ME),
            b"xxxxxxxxxxxxxxxxxxxx",
        );
        assert_eq!(
            open(&unsigned, &c, Some(&Keyring::single(b"s")), NOW),
            Err(Reject::Unauthenticated)
        );
        assert_eq!(
            open(&[b"GET / HTTP/1.1\r\n".as_slice(); 4].concat(), &c, None, 0),
            Err(Reject::Malformed)
        );
        // Every header field is authenticated with the payload: sender, counter,
        // destination, and the nonce and ciphertext themselves.
        for at in [21, 22, 30, 38, HEADER_LEN, d.len() - 20, d.len() - 1] {
            let mut tampered = d.clone();
            tampered[at] ^= 1;
            assert_eq!(
                open(&tampered, &c, Some(&Keyring::single(b"s")), NOW),
                Err(Reject::Unauthenticated),
                "byte {at}"
            );
        }
    }

    #[test]
    fn with_a_secret_the_payload_is_not_in_clear() {
        let c = cluster_tag("lab");
        let secret_payload = b"member sensor-7 at 10.0.0.7";
        let clear = seal(Kind::Gossip, &c, None, NOW, stamp(1, ME), secret_payload);
        let sealed = seal(
            Kind::Gossip,
            &c,
            Some(b"s"),
            NOW,
            stamp(1, ME),
            secret_payload,
        );
        let contains = |d: &[u8]| d.windows(secret_payload.len()).any(|w| w == secret_payload);
        assert!(contains(&clear), "the check is real");
        assert!(!contains(&sealed));
        assert_eq!(sealed.len(), clear.len() + SEAL_LEN);
        // Two datagrams of the same payload differ (random nonce).
        let again = seal(
            Kind::Gossip,
            &c,
            Some(b"s"),
            NOW,
            stamp(1, ME),
            secret_payload,
        );
        assert_ne!(sealed[HEADER_LEN..], again[HEADER_LEN..]);
    }

    #[test]
    fn any_key_of_the_ring_opens_only_the_primary_seals() {
        let c = cluster_tag("lab");
        let d = seal(Kind::Gossip, &c, Some(b"new"), NOW, stamp(1, ME), b"x");
        let both = Keyring::new(vec![b"old".to_vec(), b"new".to_vec()]).unwrap();
        assert_eq!(&*open(&d, &c, Some(&both), NOW).unwrap().payload, b"x");
        assert_eq!(
            open(&d, &c, Some(&Keyring::single(b"old")), NOW),
            Err(Reject::Unauthenticated)
        );
    }

    #[test]
    fn beacons_keep_the_version_2_hmac_format_that_other_languages_speak() {
        let c = cluster_tag("lab");
        let d = seal(
            Kind::Beacon,
            &c,
            Some(b"new"),
            NOW,
            stamp(1, ANYONE),
            b"probe",
        );
        assert_eq!(d[4], VERSION);
        let (signed, tag) = d.split_at(d.len() - TAG_LEN);
        assert_eq!(&signed[HEADER_LEN..], b"probe");
        let full = mac(b"new", signed).finalize().into_bytes();
        assert_eq!(tag, &full[..TAG_LEN]);
        // Any key of the ring verifies it; a ring without its key does not.
        let both = Keyring::new(vec![b"old".to_vec(), b"new".to_vec()]).unwrap();
        assert!(open(&d, &c, Some(&both), NOW).is_ok());
        let old = Keyring::single(b"old");
        assert_eq!(open(&d, &c, Some(&old), NOW), Err(Reject::Unauthenticated));
        // Gossip under a secret is version 3; each is refused where the other is expected.
        let g = seal(Kind::Gossip, &c, Some(b"new"), NOW, stamp(2, ME), b"swim");
        assert_eq!(g[4], VERSION_SEALED);
        assert_eq!(open(&g, &c, None, NOW), Err(Reject::Unauthenticated));
        let clear = seal(Kind::Gossip, &c, None, NOW, stamp(3, ME), b"swim");
        assert_eq!(
            open(&clear, &c, Some(&both), NOW),
            Err(Reject::Unauthenticated)
        );
    }

    #[test]
    fn version_1_is_not_accepted() {
        let c = cluster_tag("lab");
        let mut d = seal(Kind::Gossip, &c, None, NOW, stamp(0, ME), b"x");
        d[4] = 1;
        assert_eq!(open(&d, &c, None, NOW), Err(Reject::Malformed));
    }

    fn checked(d: &[u8], w: &mut ReplayWindow, now: u64) -> Result<u64, Reject> {
        let c = cluster_tag("lab");
        open_checked(
            d,
            &c,
            Some(&Keyring::single(b"s")),
            now,
            Kind::Gossip,
            ME,
            w,
        )
        .map(|o| o.stamp.counter)
    }

    fn sealed(counter: u64, to: u64, at: u64) -> Vec<u8> {
        seal(
            Kind::Gossip,
            &cluster_tag("lab"),
            Some(b"s"),
            at,
            stamp(counter, to),
            b"p",
        )
    }

    #[test]
    fn a_datagram_is_accepted_once() {
        let mut w = ReplayWindow::default();
        let d = sealed(5, ME, NOW);
        assert_eq!(checked(&d, &mut w, NOW), Ok(5));
        assert_eq!(checked(&d, &mut w, NOW + 1), Err(Reject::Replayed));
        assert_eq!(checked(&d, &mut w, NOW + 60_000), Err(Reject::Replayed));
        // Reordered ones still pass, once.
        let earlier = sealed(3, ME, NOW);
        assert_eq!(checked(&earlier, &mut w, NOW), Ok(3));
        assert_eq!(checked(&earlier, &mut w, NOW), Err(Reject::Replayed));
        // Outside the clock window it is the clock that rejects it.
        assert_eq!(
            checked(&d, &mut w, NOW + REPLAY_WINDOW_MS + 1),
            Err(Reject::Unauthenticated)
        );
    }

    #[test]
    fn a_datagram_for_another_node_is_refused() {
        let mut w = ReplayWindow::default();
        assert_eq!(
            checked(&sealed(1, ME + 1, NOW), &mut w, NOW),
            Err(Reject::Replayed)
        );
        // It did not use up the counter.
        assert_eq!(checked(&sealed(1, ME, NOW), &mut w, NOW), Ok(1));
    }

    #[test]
    fn a_datagram_for_anyone_must_be_newer_than_all_before() {
        let mut w = ReplayWindow::default();
        assert_eq!(checked(&sealed(10, ME, NOW), &mut w, NOW), Ok(10));
        // An announce the sender made before (to somebody else) is not taken.
        assert_eq!(
            checked(&sealed(4, ANYONE, NOW), &mut w, NOW),
            Err(Reject::Replayed)
        );
        let d = sealed(11, ANYONE, NOW);
        assert_eq!(checked(&d, &mut w, NOW), Ok(11));
        assert_eq!(checked(&d, &mut w, NOW), Err(Reject::Replayed));
    }

    #[test]
    fn the_other_kind_does_not_use_up_a_counter() {
        let c = cluster_tag("lab");
        let mut w = ReplayWindow::default();
        let beacon = seal(Kind::Beacon, &c, Some(b"s"), NOW, stamp(1, ME), b"b");
        assert_eq!(checked(&beacon, &mut w, NOW), Err(Reject::Malformed));
        assert_eq!(checked(&sealed(1, ME, NOW), &mut w, NOW), Ok(1));
    }

    #[test]
    fn liveness_datagrams_are_encrypted_and_share_gossips_socket_and_counters() {
        let c = cluster_tag("lab");
        let q = seal(
            Kind::Liveness,
            &c,
            Some(b"s"),
            NOW,
            stamp(2, ME),
            LIVENESS_QUESTION,
        );
        assert_eq!(q[4], VERSION_SEALED, "encrypted like gossip");
        let mut w = ReplayWindow::default();
        assert_eq!(checked(&sealed(1, ME, NOW), &mut w, NOW), Ok(1));
        assert_eq!(checked(&q, &mut w, NOW), Ok(2));
        assert_eq!(checked(&q, &mut w, NOW), Err(Reject::Replayed));
        let ring = Keyring::single(b"s");
        let o = open(&q, &c, Some(&ring), NOW).unwrap();
        assert_eq!(
            (o.kind, &o.payload[..]),
            (Kind::Liveness, LIVENESS_QUESTION)
        );
        // The beacon socket does not take it.
        let mut bw = ReplayWindow::default();
        let on_beacon = open_checked(&q, &c, Some(&ring), NOW, Kind::Beacon, ME, &mut bw);
        assert_eq!(on_beacon.unwrap_err(), Reject::Malformed);
    }

    #[test]
    fn without_a_secret_nothing_is_checked() {
        // Documented: without a secret anyone can forge the header, so replays pass.
        let c = cluster_tag("lab");
        let mut w = ReplayWindow::default();
        let d = seal(Kind::Gossip, &c, None, 0, stamp(1, ME + 1), b"x");
        for _ in 0..3 {
            assert!(open_checked(&d, &c, None, NOW, Kind::Gossip, ME, &mut w).is_ok());
        }
        assert_eq!(w.senders(), 0);
    }
}
