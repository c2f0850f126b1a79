//! What both sides of a new connection check in each other's hello, and what the key
//! exchange (with a shared secret, `proto::crypto`) binds: both hellos as sent.

use crate::proto::codec::encode_frame;
use crate::proto::wire::{Frame, Hello};

/// Bytes of each side's random hello nonce.
pub const NONCE_LEN: usize = 32;

/// The Noise prologue of a connection: the dialer's hello, then the listener's, encoded as
/// on the wire (re-encoding a decoded hello gives the same bytes). A hello altered in
/// transit makes the key exchange fail.
pub fn prologue(dialer: &Hello, listener: &Hello) -> Vec<u8> {
    let mut out = b"mpreg-v3 hellos ".to_vec();
    for h in [dialer, listener] {
        let bytes = encode_frame(&Frame::Hello(h.clone())).unwrap_or_default();
        out.extend_from_slice(&bytes);
    }
    out
}

/// End of the refusal of a connection a node made to itself (a seed list naming the node).
pub const SELF_CONNECTION: &str = "connected to itself";

/// Whether a refusal's `reason` is that a node connected to itself.
pub fn is_self_connection(reason: &str) -> bool {
    reason.ends_with(SELF_CONNECTION)
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
        return Err(format!("node `{m}` {SELF_CONNECTION}"));
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
    fn the_prologue_is_what_was_sent_and_changes_with_either_hello() {
        let (d, l) = (hello("a", PROTOCOL_VERSION), hello("a", PROTOCOL_VERSION));
        let p = prologue(&d, &l);
        // A decoded hello encodes to the bytes that were sent.
        let sent = encode_frame(&Frame::Hello(d.clone())).unwrap();
        let got = match crate::proto::codec::decode_body(&sent[4..]).unwrap() {
            Frame::Hello(h) => h,
            _ => unreachable!(),
        };
        assert_eq!(prologue(&got, &l), p);
        let mut altered = l.clone();
        altered.listen_port = 1;
        assert_ne!(prologue(&d, &altered), p);
        assert_ne!(prologue(&l, &d), prologue(&d, &altered));
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
