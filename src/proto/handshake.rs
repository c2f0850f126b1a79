//! Mutual authentication with a shared secret: each side proves knowledge of the secret by
//! an HMAC-SHA256 over both nonces, the cluster id and a role label, so a proof can be
//! neither replayed on another connection nor reflected back to its sender.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::proto::wire::Hello;

/// Bytes of each side's random challenge.
pub const NONCE_LEN: usize = 32;

/// Which side of the handshake a proof belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The side that opened the TCP connection.
    Dialer,
    /// The side that accepted it.
    Listener,
}

/// HMAC proof for `side` over `(dialer_nonce, listener_nonce, cluster)`.
pub fn proof(
    secret: &[u8],
    side: Side,
    dialer_nonce: &[u8],
    listener_nonce: &[u8],
    cluster: &str,
) -> Vec<u8> {
    mac(secret, side, dialer_nonce, listener_nonce, cluster)
        .finalize()
        .into_bytes()
        .to_vec()
}

/// Checks `candidate` in constant time.
pub fn verify(
    secret: &[u8],
    side: Side,
    dialer_nonce: &[u8],
    listener_nonce: &[u8],
    cluster: &str,
    candidate: &[u8],
) -> bool {
    mac(secret, side, dialer_nonce, listener_nonce, cluster)
        .verify_slice(candidate)
        .is_ok()
}

fn mac(secret: &[u8], side: Side, dn: &[u8], ln: &[u8], cluster: &str) -> Hmac<Sha256> {
    let mut m =
        <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("hmac takes any key length");
    m.update(b"mpreg-v1 ");
    m.update(match side {
        Side::Dialer => b"dialer",
        Side::Listener => b"listen",
    });
    for part in [dn, ln, cluster.as_bytes()] {
        m.update(&(part.len() as u32).to_be_bytes());
        m.update(part);
    }
    m
}

/// Checks a peer's hello against our own parameters; `Err` is the refusal reason, phrased
/// for both sides' logs.
///
/// Reasons name both nodes rather than saying "peer" and "this node", because the same
/// text is shown on both sides.
pub fn check_hello(peer: &Hello, me: &Hello) -> Result<(), String> {
    let (p, m) = (&peer.name, &me.name);
    if peer.protocol != me.protocol {
        return Err(format!(
            "protocol version mismatch: node `{p}` speaks version {}, node `{m}` speaks version {}",
            peer.protocol, me.protocol
        ));
    }
    if peer.cluster != me.cluster {
        return Err(format!(
            "cluster mismatch: node `{p}` is in cluster `{}`, node `{m}` is in cluster `{}`",
            peer.cluster, me.cluster
        ));
    }
    if peer.node_id == me.node_id {
        return Err(format!("node `{m}` connected to itself"));
    }
    match (peer.auth, me.auth) {
        (true, false) => Err(format!(
            "node `{p}` requires a shared secret but node `{m}` has none"
        )),
        (false, true) => Err(format!(
            "node `{m}` requires a shared secret but node `{p}` has none"
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::wire::PROTOCOL_VERSION;

    #[test]
    fn proofs_verify_and_differ_by_side() {
        let (d, l) = ([1u8; 32], [2u8; 32]);
        let p = proof(b"s3cret", Side::Dialer, &d, &l, "c");
        assert!(verify(b"s3cret", Side::Dialer, &d, &l, "c", &p));
        assert!(!verify(b"s3cret", Side::Listener, &d, &l, "c", &p));
        assert!(!verify(b"other", Side::Dialer, &d, &l, "c", &p));
        assert!(!verify(b"s3cret", Side::Dialer, &d, &l, "c2", &p));
    }

    fn hello(cluster: &str, protocol: u32) -> Hello {
        Hello {
            protocol,
            cluster: cluster.into(),
            node_id: 2,
            name: "n".into(),
            role: "node".into(),
            host_id: "h".into(),
            listen_port: 0,
            resources: vec![],
            nonce: vec![],
            auth: false,
            proof: None,
        }
    }

    #[test]
    fn hello_checks_name_the_mismatch() {
        let mut me = hello("a", PROTOCOL_VERSION);
        me.node_id = 1;
        me.name = "me".into();
        assert!(check_hello(&hello("a", PROTOCOL_VERSION), &me).is_ok());
        let e = check_hello(&hello("b", PROTOCOL_VERSION), &me).unwrap_err();
        assert_eq!(
            e,
            "cluster mismatch: node `n` is in cluster `b`, node `me` is in cluster `a`"
        );
        let e = check_hello(&hello("a", 99), &me).unwrap_err();
        assert!(e.contains("node `n` speaks version 99"), "{e}");
        me.auth = true;
        let e = check_hello(&hello("a", PROTOCOL_VERSION), &me).unwrap_err();
        assert_eq!(
            e,
            "node `me` requires a shared secret but node `n` has none"
        );
    }
}
