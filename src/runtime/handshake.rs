//! Opening a connection: hello exchange, key exchange (with a shared secret), catalog
//! exchange.
//!
//! ```text
//! dialer                                listener
//!   Hello                     ──►
//!                             ◄──   Hello                     (+ Catalog when no secret)
//!   Auth{noise 1}             ──►                              (secret only)
//!                             ◄──   Auth{noise 2}, Catalog🔒   (secret only)
//!   Catalog(🔒)               ──►
//! ```
//! With a secret, the two `Auth` frames are a Noise NNpsk0 handshake (`proto::crypto`)
//! that proves each side knows the secret; every frame after them, in each direction, is
//! encrypted (🔒). The hellos stay in clear — they carry node names, the cluster id and
//! the protocol version, so that a mismatch is refused with a clear reason — and the key
//! exchange covers them, so they cannot be altered. Either side answers a problem with
//! `Refused{reason}` (in clear until the exchange is done) and closes, so both users see
//! why.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio_util::codec::FramedRead;

use crate::error::{Error, Result};
use crate::proto::catalog::Relation;
use crate::proto::codec::{encode_frame, FrameCodec};
use crate::proto::crypto::{self, Initiator, Sealer, Session};
use crate::proto::handshake::{check_hello, is_self_connection, prologue, NONCE_LEN};
use crate::proto::wire::{Auth, CatalogMsg, Frame, Hello, Refused};
use crate::runtime::connection::frame_name;
use crate::runtime::{Connection, PeerInfo, Shared};

/// Longest a handshake may take before the connection is dropped.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// What a handshake fails with when the peer hangs up before finishing it: a port probe
/// or a health check does that, so it is not worth a warning.
pub(crate) const CLOSED_EARLY: &str = "connection closed during the handshake";

/// Longest a TCP connect may take. On a LAN an answer takes well under a millisecond; a
/// host that does not answer within this is down or cut off, and a call waiting on it
/// fails over to another provider instead.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

struct Io {
    frames: FramedRead<OwnedReadHalf, FrameCodec>,
    write: OwnedWriteHalf,
    peer: String,
    /// Set once the key exchange is done: what we send is encrypted.
    sealer: Option<Sealer>,
}

impl Io {
    fn new(shared: &Shared, stream: TcpStream, peer: String) -> Self {
        let _ = stream.set_nodelay(true);
        let (r, w) = stream.into_split();
        let frames =
            FramedRead::with_capacity(r, FrameCodec::new(shared.config.max_frame), 64 * 1024);
        Io {
            frames,
            write: w,
            peer,
            sealer: None,
        }
    }

    /// From now on, frames are encrypted both ways.
    fn encrypt(&mut self, session: Session) {
        self.frames.decoder_mut().decrypt_with(session.open);
        self.sealer = Some(session.seal);
    }

    async fn send(&mut self, f: &Frame) -> Result<()> {
        let mut bytes = encode_frame(f).map_err(|e| self.protocol(e.to_string()))?;
        if let Some(s) = &mut self.sealer {
            let mut wire = bytes::BytesMut::new();
            s.seal(&bytes, &mut wire)
                .map_err(|e| self.protocol(e.to_string()))?;
            bytes = wire.freeze();
        }
        self.write
            .write_all(&bytes)
            .await
            .map_err(|e| Error::io(format!("cannot write to {}", self.peer), e))
    }

    /// Ends the handshake: the connection to `peer` (at `remote`) takes over the socket.
    fn start(
        self,
        shared: &Arc<Shared>,
        peer: &Hello,
        remote: SocketAddr,
        dialed: bool,
        dialer_nonce: &[u8],
        catalog: CatalogMsg,
    ) -> Arc<Connection> {
        let info = peer_info(peer, remote);
        // The dialer's nonce names the connection at both ends.
        let token = crate::runtime::handover::token_of(dialer_nonce);
        let io = crate::runtime::connection::Socket {
            frames: self.frames,
            write: self.write,
            sealer: self.sealer,
        };
        Connection::start(shared, info, (dialed, token), catalog, io)
    }

    /// Reads the next frame; a bad frame is answered with a refusal before failing.
    async fn recv(&mut self) -> Result<Frame> {
        match self.frames.next().await {
            Some(Ok(f)) => Ok(f),
            // The peer reset the connection: it hung up, as for an end of stream.
            Some(Err(crate::proto::codec::CodecError::Io(e)))
                if crate::runtime::listener::hung_up(&e) =>
            {
                Err(self.protocol(CLOSED_EARLY.into()))
            }
            Some(Err(e)) => {
                let reason = e.to_string();
                self.refuse(&reason).await;
                Err(self.protocol(reason))
            }
            None => Err(self.protocol(CLOSED_EARLY.into())),
        }
    }

    async fn refuse(&mut self, reason: &str) {
        let _ = self
            .send(&Frame::Refused(Refused {
                reason: reason.to_string(),
            }))
            .await;
        let _ = self.write.shutdown().await;
    }

    fn protocol(&self, detail: String) -> Error {
        Error::Protocol {
            peer: self.peer.clone(),
            detail,
        }
    }

    /// Reads a frame that must be `what`; a refusal from the peer becomes `Error::Refused`.
    async fn expect(&mut self, what: &'static str) -> Result<Frame> {
        let f = self.recv().await?;
        match &f {
            Frame::Refused(r) => Err(Error::Refused {
                peer: self.peer.clone(),
                reason: r.reason.clone(),
            }),
            other if frame_name(other) == what => Ok(f),
            other => {
                let reason = format!("expected a {what} frame, got {}", frame_name(other));
                self.refuse(&reason).await;
                Err(self.protocol(reason))
            }
        }
    }

    /// Refuses with `reason` and returns the matching error.
    async fn refused(&mut self, reason: String) -> Error {
        self.refuse(&reason).await;
        Error::Refused {
            peer: self.peer.clone(),
            reason,
        }
    }
}

fn nonce() -> Vec<u8> {
    rand::random::<[u8; NONCE_LEN]>().to_vec()
}

fn my_hello(shared: &Shared, nonce: Vec<u8>) -> Hello {
    Hello {
        protocol: crate::proto::wire::PROTOCOL_VERSION,
        cluster: shared.cluster.clone(),
        node_id: shared.id,
        name: shared.name.clone(),
        role: shared.role.clone(),
        host_id: shared.host_id.clone(),
        listen_port: shared.listen_port(),
        resources: shared.resources.clone(),
        nonce,
        auth: shared.secret.is_some(),
    }
}

/// Host visibility rests on the host id a peer claims; a peer claiming ours must also
/// connect from an address of this machine, else it is treated as another host (with its
/// address appended to the id), so a remote process cannot call host-visible functions by
/// copying our host id. (Two machines cloned with one machine-id also land here.)
fn vet_host(h: &mut Hello, remote: SocketAddr, my_host: &str) {
    if h.host_id != my_host || is_local_ip(remote.ip()) {
        return;
    }
    tracing::warn!(peer = %h.name, %remote, host = %h.host_id,
        "peer claims this host's id from another machine; treating it as another host");
    h.host_id = format!("{}@{}", h.host_id, remote.ip());
}

/// Whether `ip` belongs to this machine: loopback or one of its interface addresses.
fn is_local_ip(ip: std::net::IpAddr) -> bool {
    ip.is_loopback()
        || if_addrs::get_if_addrs()
            .map(|l| l.iter().any(|i| i.ip() == ip))
            .unwrap_or(false)
}

fn peer_info(h: &Hello, addr: SocketAddr) -> PeerInfo {
    PeerInfo {
        id: h.node_id,
        name: h.name.clone(),
        role: h.role.clone(),
        host_id: h.host_id.clone(),
        addr,
        listen_port: h.listen_port,
        resources: h.resources.clone(),
    }
}

/// Our catalog as `peer` may see it, and its version (checked again once the connection
/// is registered: a change in between would otherwise never reach this peer).
fn catalog_for(shared: &Shared, peer: &Hello) -> (Frame, u64) {
    let view = shared.catalog_view(Relation::of_peer(&shared.host_id, &peer.host_id));
    let version = view.version;
    (Frame::Catalog(view), version)
}

fn take_catalog(f: Frame) -> CatalogMsg {
    match f {
        Frame::Catalog(c) => c,
        _ => unreachable!("expect() checked the kind"),
    }
}

fn take_auth(f: Frame) -> Auth {
    match f {
        Frame::Auth(a) => a,
        _ => unreachable!("expect() checked the kind"),
    }
}

fn take_hello(f: Frame) -> Hello {
    match f {
        Frame::Hello(h) => h,
        _ => unreachable!("expect() checked the kind"),
    }
}

/// Connects to `addr` and completes the handshake. Use [`Shared::connect_to`], which
/// coalesces concurrent dials, rather than this.
pub(crate) async fn dial(shared: &Arc<Shared>, addr: &str) -> Result<Arc<Connection>> {
    let fut = async {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| {
                let e = std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no answer within {CONNECT_TIMEOUT:?} (host down or link cut)"),
                );
                Error::io(format!("cannot connect to {addr}"), e)
            })?
            .map_err(|e| Error::io(format!("cannot connect to {addr}"), e))?;
        let remote = stream
            .peer_addr()
            .map_err(|e| Error::io(format!("cannot connect to {addr}"), e))?;
        let mut io = Io::new(shared, stream, addr.to_string());
        let mine = my_hello(shared, nonce());
        io.send(&Frame::Hello(mine.clone())).await?;
        let mut peer = take_hello(io.expect("hello").await?);
        let bound = prologue(&mine, &peer);
        vet_host(&mut peer, remote, &shared.host_id);
        if let Err(reason) = check_hello(&peer, &mine) {
            tracing::warn!(%addr, %reason, "refusing peer");
            return Err(io.refused(reason).await);
        }
        if let Some(keys) = &shared.secret {
            // The primary: a rotation makes every node dial with the new key only once
            // every node accepts it (`keys install` before `keys use`).
            let ring = keys.get();
            let (init, first) = Initiator::start(ring.primary(), &shared.cluster, &bound);
            io.send(&Frame::Auth(Auth { message: first })).await?;
            let answer = take_auth(io.expect("auth").await?);
            match init.finish(&answer.message) {
                Ok(session) => io.encrypt(session),
                Err(e) => {
                    let reason = e.to_string();
                    tracing::warn!(%addr, %reason, "refusing peer");
                    return Err(io.refused(reason).await);
                }
            }
        }
        let catalog = take_catalog(io.expect("catalog").await?);
        let (ours, sent) = catalog_for(shared, &peer);
        io.send(&ours).await?;
        Ok((
            io.start(shared, &peer, remote, true, &mine.nonce, catalog),
            sent,
        ))
    };
    bounded(shared, addr.to_string(), fut).await
}

/// Runs a handshake under [`HANDSHAKE_TIMEOUT`] and registers the connection it opens.
///
/// The handshake yields the connection and the version of the catalog it sent. A function
/// registered while the handshake ran is announced only to registered connections, so once
/// this one is registered we send the catalog again if it changed in between.
async fn bounded(
    shared: &Arc<Shared>,
    peer: String,
    handshake: impl std::future::Future<Output = Result<(Arc<Connection>, u64)>>,
) -> Result<Arc<Connection>> {
    let (conn, sent) = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake)
        .await
        .map_err(|_| Error::Protocol {
            peer,
            detail: format!("handshake timed out after {HANDSHAKE_TIMEOUT:?}"),
        })??;
    shared.add_connection(&conn);
    if shared.catalog_version() != sent {
        shared.send_catalog(&conn);
    }
    Ok(conn)
}

/// Completes the listener side of the handshake on an accepted stream.
pub(crate) async fn accept(
    shared: &Arc<Shared>,
    stream: TcpStream,
    remote: SocketAddr,
) -> Result<Arc<Connection>> {
    let fut = async {
        let mut io = Io::new(shared, stream, remote.to_string());
        let mut peer = take_hello(io.expect("hello").await?);
        let mine = my_hello(shared, nonce());
        let bound = prologue(&peer, &mine);
        vet_host(&mut peer, remote, &shared.host_id);
        if let Err(reason) = check_hello(&peer, &mine) {
            // Our own dial reaching us (a seed names this node) is no one's fault: its
            // dialer stops at this refusal.
            if is_self_connection(&reason) {
                tracing::debug!(%remote, %reason, "refusing our own connection");
            } else {
                tracing::warn!(%remote, %reason, "refusing peer");
            }
            return Err(io.refused(reason).await);
        }
        io.send(&Frame::Hello(mine)).await?;
        if let Some(keys) = &shared.secret {
            let first = take_auth(io.expect("auth").await?);
            let ring = keys.get();
            match crypto::respond(ring.keys(), &shared.cluster, &bound, &first.message) {
                Ok((session, answer, _)) => {
                    io.send(&Frame::Auth(Auth { message: answer })).await?;
                    io.encrypt(session);
                }
                Err(e) => {
                    let reason = e.to_string();
                    tracing::warn!(%remote, %reason, "refusing peer");
                    return Err(io.refused(reason).await);
                }
            }
        }
        let (ours, sent) = catalog_for(shared, &peer);
        io.send(&ours).await?;
        let catalog = take_catalog(io.expect("catalog").await?);
        let dn = peer.nonce.clone();
        Ok((io.start(shared, &peer, remote, false, &dn, catalog), sent))
    };
    bounded(shared, remote.to_string(), fut).await
}
