//! Encryption with a shared secret (#18): the key exchange that opens a TCP connection, the
//! encrypted records that carry its frames, and the sealing of UDP datagrams.
//!
//! No cryptography is made here; it is put together from reviewed pieces:
//!
//! - **Key exchange**: the Noise protocol `Noise_NNpsk0_25519_ChaChaPoly_SHA256` (the `snow`
//!   crate). Its first message already proves the dialer knows the pre-shared key, its
//!   second proves the listener does, and its ephemeral X25519 keys give forward secrecy: a
//!   secret stolen later does not decrypt a capture made today. Noise was chosen over TLS
//!   because a shared secret is all mpreg has — TLS would need certificates made up from
//!   the secret — and because snow is small and pure Rust. The PSK is
//!   HKDF-SHA256(secret, cluster), so a secret of any length works and two clusters sharing
//!   a secret still get different keys. The prologue binds both clear `Hello` frames, so
//!   an altered hello fails the handshake.
//! - **Records**: the handshake's two split keys (one per direction) key ChaCha20-Poly1305
//!   with a 64-bit counter as the nonce (as Noise's own transport does, but without its
//!   65535-byte message limit). A record is a 4-byte big-endian length and the ciphertext
//!   of up to [`RECORD_PLAIN`] bytes of frames followed by its 16-byte tag. The stream of
//!   frames is cut into records independently of frame boundaries; the reader decrypts
//!   records into a plaintext buffer and decodes frames from it. A record that does not
//!   decrypt (tampered, reordered, replayed, wrong key) ends the connection.
//! - **Gossip datagrams**: XChaCha20-Poly1305 under HKDF-SHA256(secret, cluster tag) with
//!   a random 24-byte nonce per datagram (random because counters restart with a process,
//!   and a nonce must never repeat under one key; 24 bytes so that random nonces never
//!   collide in practice); see `proto::datagram` (beacons are only authenticated, and why).

use bytes::{Buf, BufMut, BytesMut};
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Nonce, Tag, XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use sha2::Sha256;

/// The Noise protocol of the key exchange.
pub const NOISE_PATTERN: &str = "Noise_NNpsk0_25519_ChaChaPoly_SHA256";

/// Bytes of an AEAD tag.
pub const AEAD_TAG: usize = 16;

/// Bytes of a record's length prefix.
pub const RECORD_HEADER: usize = 4;

/// Most plaintext bytes in one record. Large enough that the per-record cost (20 bytes,
/// one tag) is negligible, small enough that the reader's buffers stay small.
pub const RECORD_PLAIN: usize = 64 * 1024;

const _: () = assert!(
    RECORD_PLAIN + AEAD_TAG == 65552,
    "BadRecord's message says 65552"
);

/// Bytes of a datagram's nonce.
pub const DATAGRAM_NONCE: usize = 24;

/// Longest Noise handshake message we accept (ours are 48 and 48 bytes).
const MAX_NOISE_MESSAGE: usize = 1024;

/// Why encrypted bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// A record's length is below a tag or over [`RECORD_PLAIN`] plus a tag (65552): not a
    /// record of this protocol.
    #[error("encrypted record of {0} bytes is not valid (limit 65552)")]
    BadRecord(usize),
    /// A record's tag does not match: altered, replayed or reordered in transit.
    #[error("encrypted record failed authentication (altered, replayed or reordered in transit)")]
    Tampered,
    /// 2^64 records were sent under one key; the connection must be opened anew.
    #[error("the record counter is exhausted")]
    Exhausted,
    /// The peer's handshake message does not decrypt with any of our keys.
    #[error("wrong shared secret: the peer's key exchange does not match this node's secret")]
    WrongSecret,
    /// A handshake message this side could not produce or parse.
    #[error("key exchange failed: {0}")]
    Handshake(String),
}

fn hkdf(secret: &[u8], cluster: &str, label: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    Hkdf::<Sha256>::new(Some(b"mpreg-v3"), secret)
        .expand_multi_info(&[label, b" ", cluster.as_bytes()], &mut out)
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    out
}

/// The Noise pre-shared key of `secret` in `cluster`.
pub fn noise_psk(secret: &[u8], cluster: &str) -> [u8; 32] {
    hkdf(secret, cluster, b"noise psk")
}

/// A short public fingerprint of a secret: names a key in logs and `keys list` without
/// revealing it (a one-way function of a key derived for nothing else).
pub fn fingerprint(secret: &[u8]) -> String {
    let k = hkdf(secret, "", b"fingerprint");
    k[..8].iter().map(|b| format!("{b:02x}")).collect()
}

fn noise(psk: &[u8; 32], prologue: &[u8], initiator: bool) -> snow::HandshakeState {
    let b = snow::Builder::new(NOISE_PATTERN.parse().expect("a valid Noise pattern"))
        .psk(0, psk)
        .and_then(|b| b.prologue(prologue))
        .expect("one PSK and one prologue are accepted");
    if initiator {
        b.build_initiator()
    } else {
        b.build_responder()
    }
    .expect("the default resolver has every primitive of NOISE_PATTERN")
}

/// The two record ciphers a finished key exchange yields.
pub struct Session {
    /// For what this side sends.
    pub seal: Sealer,
    /// For what this side receives.
    pub open: Opener,
}

fn session(hs: &mut snow::HandshakeState) -> Session {
    let (i2r, r2i) = hs.dangerously_get_raw_split();
    let (send, recv) = if hs.is_initiator() {
        (i2r, r2i)
    } else {
        (r2i, i2r)
    };
    Session {
        seal: Sealer::new(&send),
        open: Opener::new(&recv),
    }
}

/// The dialer's side of the key exchange, between its two messages.
pub struct Initiator(snow::HandshakeState);

impl Initiator {
    /// Starts with `secret` (the primary key); returns the first message to send.
    pub fn start(secret: &[u8], cluster: &str, prologue: &[u8]) -> (Self, Vec<u8>) {
        let mut hs = noise(&noise_psk(secret, cluster), prologue, true);
        let mut msg = vec![0u8; MAX_NOISE_MESSAGE];
        let n = hs
            .write_message(&[], &mut msg)
            .expect("the first NNpsk0 message fits its buffer");
        msg.truncate(n);
        (Initiator(hs), msg)
    }

    /// Reads the listener's answer: `Err(WrongSecret)` when it was made with another key.
    pub fn finish(mut self, answer: &[u8]) -> Result<Session, CryptoError> {
        let mut out = vec![0u8; MAX_NOISE_MESSAGE];
        self.0
            .read_message(answer, &mut out)
            .map_err(|_| CryptoError::WrongSecret)?;
        Ok(session(&mut self.0))
    }
}

/// The listener's side: tries the dialer's first message with each of `keys` (the primary
/// first), and answers with the one that opens it. Returns the session, the answer to send
/// and the index of the key used.
pub fn respond(
    keys: &[Vec<u8>],
    cluster: &str,
    prologue: &[u8],
    first: &[u8],
) -> Result<(Session, Vec<u8>, usize), CryptoError> {
    if first.len() > MAX_NOISE_MESSAGE {
        return Err(CryptoError::Handshake(format!(
            "a key exchange message of {} bytes",
            first.len()
        )));
    }
    let mut out = vec![0u8; MAX_NOISE_MESSAGE];
    for (i, key) in keys.iter().enumerate() {
        let mut hs = noise(&noise_psk(key, cluster), prologue, false);
        if hs.read_message(first, &mut out).is_err() {
            continue;
        }
        let mut msg = vec![0u8; MAX_NOISE_MESSAGE];
        let n = hs
            .write_message(&[], &mut msg)
            .map_err(|e| CryptoError::Handshake(e.to_string()))?;
        msg.truncate(n);
        return Ok((session(&mut hs), msg, i));
    }
    Err(CryptoError::WrongSecret)
}

fn record_nonce(counter: u64) -> Nonce {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&counter.to_be_bytes());
    n.into()
}

/// Encrypts what one side sends into records.
pub struct Sealer {
    cipher: ChaCha20Poly1305,
    counter: u64,
}

impl Sealer {
    /// A sealer under the 32-byte `key`, its counter at 0.
    pub fn new(key: &[u8; 32]) -> Self {
        Sealer {
            cipher: ChaCha20Poly1305::new(key.into()),
            counter: 0,
        }
    }

    /// Appends `plain` to `out` as records.
    pub fn seal(&mut self, plain: &[u8], out: &mut BytesMut) -> Result<(), CryptoError> {
        out.reserve(plain.len() + plain.len().div_ceil(RECORD_PLAIN) * 20);
        for chunk in plain.chunks(RECORD_PLAIN) {
            let nonce = record_nonce(self.counter);
            self.counter = self.counter.checked_add(1).ok_or(CryptoError::Exhausted)?;
            out.put_u32((chunk.len() + AEAD_TAG) as u32);
            let start = out.len();
            out.put_slice(chunk);
            let tag = self
                .cipher
                .encrypt_in_place_detached(&nonce, &[], &mut out[start..])
                .map_err(|_| CryptoError::Exhausted)?;
            out.put_slice(&tag);
        }
        Ok(())
    }
}

/// Decrypts the records one side receives.
pub struct Opener {
    cipher: ChaCha20Poly1305,
    counter: u64,
}

impl Opener {
    /// An opener under the 32-byte `key`, expecting record 0 first.
    pub fn new(key: &[u8; 32]) -> Self {
        Opener {
            cipher: ChaCha20Poly1305::new(key.into()),
            counter: 0,
        }
    }

    /// Moves the next whole record of `src` into `plain`, decrypted: `Ok(false)` when `src`
    /// does not hold a whole record yet (it then has room reserved for it).
    pub fn open(&mut self, src: &mut BytesMut, plain: &mut BytesMut) -> Result<bool, CryptoError> {
        if src.len() < RECORD_HEADER {
            return Ok(false);
        }
        let len = u32::from_be_bytes([src[0], src[1], src[2], src[3]]) as usize;
        if !(AEAD_TAG..=RECORD_PLAIN + AEAD_TAG).contains(&len) {
            return Err(CryptoError::BadRecord(len));
        }
        if src.len() < RECORD_HEADER + len {
            src.reserve(RECORD_HEADER + len - src.len());
            return Ok(false);
        }
        src.advance(RECORD_HEADER);
        let body = src.split_to(len);
        let (ct, tag) = body.split_at(len - AEAD_TAG);
        let start = plain.len();
        plain.extend_from_slice(ct);
        let nonce = record_nonce(self.counter);
        if self
            .cipher
            .decrypt_in_place_detached(&nonce, &[], &mut plain[start..], Tag::from_slice(tag))
            .is_err()
        {
            plain.truncate(start);
            return Err(CryptoError::Tampered);
        }
        self.counter = self.counter.checked_add(1).ok_or(CryptoError::Exhausted)?;
        Ok(true)
    }
}

/// The AEAD key of datagrams under one secret.
pub struct DatagramKey(XChaCha20Poly1305);

impl DatagramKey {
    /// The key of `secret` in `cluster`.
    pub fn new(secret: &[u8], cluster_tag: &[u8]) -> Self {
        let mut k = [0u8; 32];
        Hkdf::<Sha256>::new(Some(b"mpreg-v3"), secret)
            .expand_multi_info(&[b"datagram ", cluster_tag], &mut k)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        DatagramKey(XChaCha20Poly1305::new(&k.into()))
    }

    /// Appends a random nonce, then `payload` encrypted with `header` authenticated, then
    /// the tag.
    pub fn seal(&self, header: &[u8], payload: &[u8], out: &mut Vec<u8>) {
        let nonce: [u8; DATAGRAM_NONCE] = rand::random();
        out.extend_from_slice(&nonce);
        let start = out.len();
        out.extend_from_slice(payload);
        let tag = self
            .0
            .encrypt_in_place_detached(XNonce::from_slice(&nonce), header, &mut out[start..])
            .expect("a datagram is far below the AEAD's length limit");
        out.extend_from_slice(&tag);
    }

    /// Decrypts `sealed` (nonce, ciphertext, tag) with `header` authenticated; `None` when it
    /// was not sealed with this key or was altered.
    pub fn open(&self, header: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < DATAGRAM_NONCE + AEAD_TAG {
            return None;
        }
        let (nonce, rest) = sealed.split_at(DATAGRAM_NONCE);
        let (ct, tag) = rest.split_at(rest.len() - AEAD_TAG);
        let mut plain = ct.to_vec();
        self.0
            .decrypt_in_place_detached(
                XNonce::from_slice(nonce),
                header,
                &mut plain,
                Tag::from_slice(tag),
            )
            .ok()?;
        Some(plain)
    }
}

#[cfg(test)]
mod tests;
