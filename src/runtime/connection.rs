//! One multiplexed connection to a peer: outgoing calls matched to replies by id, incoming
//! calls served concurrently, writes coalesced.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use parking_lot::{Mutex, RwLock};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::oneshot;
use tokio::task::AbortHandle;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::error::{Error, Result};
use crate::metrics::Traffic;
use crate::proto::call_frame::{CallFrame, CallRef};
use crate::proto::catalog::PeerCatalog;
use crate::proto::codec::{encode_frame, encode_frame_into, encode_into, FrameCodec, FrameError};
use crate::proto::crypto::Sealer;
use crate::proto::wire::{Cancel, CatalogMsg, Failure, FailureKind, Frame, MembersMsg, Refused};
use crate::runtime::outbound::{Outbound, Overflow, Wake};
use crate::runtime::pubsub::Wakes;
use crate::runtime::{dispatch, liveness, Shared};

/// Frames the reader handles in a row without waiting: a bound on how long subscribers it
/// fed wait for their wake-up, and on how late it notices that the connection closed.
const BURST: usize = 128;

/// Start of a "node lost" reason when the call never left this node (the connection
/// closed before it was queued): the call did not run, so it may go to another provider
/// whatever the function.
pub(crate) const NOT_SENT: &str = "the call was not sent: ";

/// What we know about the node at the other end.
#[derive(Debug, Clone)]
pub(crate) struct PeerInfo {
    pub id: u64,
    pub name: String,
    pub role: String,
    pub host_id: String,
    pub addr: SocketAddr,
    pub listen_port: u16,
    pub resources: Vec<String>,
}

/// A reply as the caller receives it: the result and, for relayed calls, who ran it.
type Answer = (std::result::Result<Bytes, Failure>, Option<String>);
type Pending = oneshot::Sender<Answer>;

/// What a call carries besides the function and its arguments (see [`Call`]), borrowed
/// from the invocation: a call's future holds no copy of it.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Relay<'a> {
    /// Ask the peer to resolve with these rules and relay.
    pub route: Option<&'a crate::proto::resolve::Route>,
    /// Host of the original caller, when we relay for someone.
    pub origin_host: Option<&'a str>,
}

/// The socket a finished handshake hands over: the frame reader (decrypting once a key
/// exchange was made), the write half, and the cipher of what we send.
pub(crate) struct Socket {
    pub frames: FramedRead<OwnedReadHalf, FrameCodec>,
    pub write: OwnedWriteHalf,
    pub sealer: Option<Sealer>,
}

#[derive(Default)]
struct State {
    /// Our calls awaiting a reply, by request id.
    pending: HashMap<u64, Pending>,
    /// Calls we are serving for the peer, by its request id; aborted on Cancel or close.
    served: HashMap<u64, AbortHandle>,
    /// Set once, with the reason, when the connection ends.
    closed: Option<String>,
}

/// A live connection. Shared by the reader, the writer, and every caller using it.
pub(crate) struct Connection {
    pub peer: PeerInfo,
    /// The peer's name, shared by every publication received from it.
    pub peer_name: Arc<str>,
    /// The sending side: bounded queue, backlog, writer.
    pub(crate) out: Outbound,
    /// Whether we dialed this connection (decides which of two duplicates survives).
    pub dialed: bool,
    /// Names this connection at both ends (see [`crate::runtime::handover`]).
    pub(crate) token: u64,
    /// Cancelled once the peer's `Fence` was read here, or the connection closed: a
    /// connection the peer moved to from this one may go on.
    pub(crate) fenced: CancellationToken,
    /// We sent our `Fence` here: nothing new goes on it.
    pub(crate) fence_sent: AtomicBool,
    /// Frames received: the watchdog's sign of life from the peer.
    pub(crate) received: AtomicU64,
    /// Frames received other than heartbeats (`Ping`): what a duplicate connection being
    /// retired waits to stop (the peer's heartbeat never does).
    pub(crate) traffic: AtomicU64,
    /// Answers the peer gave over UDP to our liveness questions (asked by the watchdog
    /// while this stream is quiet): a peer that answers is alive, its stream is stalled.
    pub(crate) udp_answers: AtomicU64,
    /// Our pings, shared by the watchdog and the reader.
    pub(crate) pings: liveness::Pings,
    /// Set while the reader holds back because our answers cannot be queued or a lossless
    /// subscriber's queue is full.
    paused: AtomicBool,
    /// The socket, to ask the kernel whether the peer sent bytes our reader has not read
    /// yet (a busy reader is not a silent peer).
    #[cfg(unix)]
    fd: std::os::fd::RawFd,
    state: Mutex<State>,
    next_id: AtomicU64,
    /// Our calls in flight on this connection: the load signal for choosing a provider.
    pub in_flight: AtomicUsize,
    /// The peer's catalog as last received.
    pub catalog: RwLock<PeerCatalog>,
    /// Cancelled when the connection ends.
    pub closed: CancellationToken,
    /// Who waits for the answer to our `MembersRequest`, if anyone.
    pub members_waiter: Mutex<Option<oneshot::Sender<MembersMsg>>>,
    /// Whether the peer asked for pushed views (`Watch`).
    pub(crate) watched: AtomicBool,
    /// Requests we sent the peer (calls, relays, workflows), for the peer metrics.
    pub(crate) calls_sent: AtomicU64,
    /// Requests the peer sent us.
    pub(crate) calls_received: AtomicU64,
    /// Bytes of frames read from the peer (the reader stores its codec's running total).
    pub(crate) bytes_in: AtomicU64,
    /// The part of this connection's traffic already added to the node's retired per-peer
    /// counts ([`Connection::retire_traffic`]); only what came after is still live.
    retired: Mutex<Traffic>,
}

impl Connection {
    /// Wraps the two halves of an authenticated stream and starts its reader and writer.
    pub(crate) fn start(
        shared: &Arc<Shared>,
        peer: PeerInfo,
        (dialed, token): (bool, u64),
        catalog: CatalogMsg,
        socket: Socket,
    ) -> Arc<Self> {
        let Socket {
            frames,
            write,
            sealer,
        } = socket;
        let out = Outbound::new();
        #[cfg(unix)]
        let fd = {
            use std::os::fd::AsRawFd;
            frames.get_ref().as_ref().as_raw_fd()
        };
        let mut pc = PeerCatalog::default();
        shared
            .pubsub
            .remote
            .write()
            .set(peer.id, catalog.version, &catalog.subscriptions);
        pc.update(catalog);
        let conn = Arc::new(Connection {
            peer_name: peer.name.as_str().into(),
            peer,
            out,
            dialed,
            token,
            fenced: CancellationToken::new(),
            fence_sent: AtomicBool::new(false),
            received: AtomicU64::new(0),
            traffic: AtomicU64::new(0),
            udp_answers: AtomicU64::new(0),
            pings: Default::default(),
            paused: AtomicBool::new(false),
            #[cfg(unix)]
            fd,
            state: Mutex::new(State::default()),
            next_id: AtomicU64::new(1),
            in_flight: AtomicUsize::new(0),
            catalog: RwLock::new(pc),
            closed: CancellationToken::new(),
            members_waiter: Mutex::new(None),
            watched: AtomicBool::new(false),
            calls_sent: AtomicU64::new(0),
            calls_received: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            retired: Mutex::new(Traffic::default()),
        });
        shared.handovers.opened(&conn);
        shared.metrics.connection_opened(&conn.peer.name);
        shared.counters.connections.fetch_add(1, Ordering::Relaxed);
        let c = conn.clone();
        shared.tasks.spawn(async move {
            if let Some(why) = c.out.write_loop(write, &c.closed, sealer).await {
                c.close(why);
            }
        });
        shared
            .tasks
            .spawn(read_loop(conn.clone(), frames, shared.clone()));
        liveness::watch(conn.clone(), shared);
        conn
    }

    /// Everything this connection carried so far.
    fn traffic(&self) -> Traffic {
        Traffic {
            calls_sent: self.calls_sent.load(Ordering::Relaxed),
            calls_received: self.calls_received.load(Ordering::Relaxed),
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            bytes_out: self.out.bytes.load(Ordering::Relaxed),
        }
    }

    /// Traffic not yet handed to the node's retired counts: what a metrics reader counts as
    /// this connection's while it is listed.
    pub(crate) fn unretired_traffic(&self) -> Traffic {
        self.traffic().since(*self.retired.lock())
    }

    /// Hands the traffic not yet retired over to the caller (to add to the node's retired
    /// counts), so that it is not counted as this connection's again.
    pub(crate) fn retire_traffic(&self) -> Traffic {
        let now = self.traffic();
        let mut retired = self.retired.lock();
        let new = now.since(*retired);
        *retired = now;
        new
    }

    /// Why the connection ended, if it has.
    pub(crate) fn close_reason(&self) -> Option<String> {
        self.state.lock().closed.clone()
    }

    /// Ends the connection: pending calls fail with "node lost" at once, served calls are
    /// aborted (their caller is gone), and the writer flushes what is queued and stops.
    pub(crate) fn close(&self, reason: impl Into<String>) {
        let (pending, served) = {
            let mut st = self.state.lock();
            if st.closed.is_some() {
                return;
            }
            st.closed = Some(reason.into());
            (
                std::mem::take(&mut st.pending),
                std::mem::take(&mut st.served),
            )
        };
        // Dropping the senders wakes every waiting caller with "node lost", and whoever
        // waits for a member list.
        drop(pending);
        drop(self.members_waiter.lock().take());
        for (_, h) in served {
            h.abort();
        }
        self.closed.cancel();
        self.fenced.cancel();
    }

    /// Queues an encoded frame; waits while the writer is a full queue behind.
    pub(crate) async fn send(&self, frame: Bytes) -> bool {
        self.out.send(frame).await
    }

    /// Queues a frame from a task that must not wait (the reader, an acknowledgement): in
    /// the queue if it has room, else in the bounded backlog, which makes the reader stop
    /// reading the peer until it drains. A peer that lets the backlog overflow is closed.
    pub(crate) fn send_soon(&self, frame: Bytes) {
        if let Err(o) = self.out.park(frame) {
            self.overflowed(o);
        }
    }

    /// Encodes `frame` straight into the queue, waiting while it is full: `Ok(false)` once
    /// the writer is gone, `Err` if it cannot be encoded (nothing was queued).
    pub(crate) async fn send_frame(&self, frame: &Frame) -> std::result::Result<bool, FrameError> {
        self.out
            .send_with(|buf| encode_frame_into(frame, buf))
            .await
    }

    /// [`send_soon`](Self::send_soon) for a frame the reader encodes straight into the
    /// queue; `Err` if it cannot be encoded (nothing was queued). It leaves when the reader
    /// next waits, with every other answer to the same read (see [`Wake::Later`]).
    pub(crate) fn send_frame_soon(&self, frame: &Frame) -> std::result::Result<(), FrameError> {
        let encode = |buf: &mut bytes::BytesMut| encode_frame_into(frame, buf);
        if let Err(o) = self.out.park_with(encode, Wake::Later)? {
            self.overflowed(o);
        }
        Ok(())
    }

    /// Closes a connection whose peer let our answers pile up past the backlog's limit.
    fn overflowed(&self, o: Overflow) {
        let why = format!(
            "peer stopped reading: {} answers waiting behind a full queue",
            o.0
        );
        tracing::warn!(peer = %self.peer.name, reason = %why, "closing connection");
        self.close(why);
    }

    /// Whether the reader is holding back (our answers cannot be queued, or a lossless
    /// subscriber it feeds is full).
    pub(crate) fn reader_paused(&self) -> bool {
        self.paused.load(Ordering::Relaxed)
    }

    /// The peer answered a liveness question over UDP (see [`liveness`]).
    pub(crate) fn answered_udp(&self) {
        self.udp_answers.fetch_add(1, Ordering::Relaxed);
    }

    /// The peer's gossip address (its listening port on its address), where liveness
    /// questions go; none for a client, which has no gossip socket.
    pub(crate) fn gossip_addr(&self) -> Option<SocketAddr> {
        let p = &self.peer;
        (p.listen_port != 0).then(|| SocketAddr::new(p.addr.ip(), p.listen_port))
    }

    /// Frames queued for the writer: the load signal for choosing a queue-group member.
    pub(crate) fn queued(&self) -> usize {
        self.out.queued()
    }

    /// Queues a frame without waiting; `false` if the queue is full or closed.
    pub(crate) fn try_send(&self, frame: Bytes) -> bool {
        self.out.try_send(&frame, Wake::Writer)
    }

    /// Bytes the peer sent that our reader has not read yet. The watchdog asks only while
    /// the connection is open, when the reader still owns the socket.
    pub(crate) fn unread_bytes(&self) -> usize {
        #[cfg(unix)]
        {
            let mut n: libc::c_int = 0;
            // SAFETY: FIONREAD writes one c_int through the pointer; a bad descriptor only
            // makes the call fail.
            let r = unsafe { libc::ioctl(self.fd, libc::FIONREAD, &mut n) };
            if r == 0 {
                return n.max(0) as usize;
            }
        }
        0
    }

    /// Whether nothing is in flight on this connection in either direction.
    pub(crate) fn is_idle(&self) -> bool {
        let st = self.state.lock();
        st.pending.is_empty() && st.served.is_empty()
    }

    /// Calls `fun` on the peer (or, with `relay.route`, through it) and returns the result
    /// with the name of the node that ran it.
    ///
    /// Not an `async fn`: the call's future is [`call_as`](Self::call_as)'s own, in its
    /// span, rather than one more layer around it. A call's future is moved whole at every
    /// layer it passes, and each layer of an `async fn` keeps its own copy of the
    /// arguments.
    pub(crate) fn call_via<'a>(
        self: &'a Arc<Self>,
        fun: &'a str,
        args: &'a Bytes,
        kwargs: Option<&'a Bytes>,
        timeout: Duration,
        relay: Relay<'a>,
    ) -> impl std::future::Future<Output = Result<(Bytes, String)>> + 'a {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        // `id` is the call's number on this connection: the serving node logs the same
        // `id` with this node as its `peer`, so `RUST_LOG=mpreg=debug` follows a call across.
        let span = tracing::debug_span!("call", id, fun, peer = %self.peer.name);
        self.call_as(id, fun, args, kwargs, timeout, relay)
            .instrument(span)
    }

    /// [`call_via`](Self::call_via) with the call's id chosen, logging in its span.
    async fn call_as(
        self: &Arc<Self>,
        id: u64,
        fun: &str,
        args: &Bytes,
        kwargs: Option<&Bytes>,
        timeout: Duration,
        relay: Relay<'_>,
    ) -> Result<(Bytes, String)> {
        tracing::debug!("sending");
        let r = 'call: {
            let (tx, rx) = oneshot::channel();
            let alone = {
                let mut st = self.state.lock();
                if let Some(reason) = &st.closed {
                    break 'call Err(self.lost(fun, format!("{NOT_SENT}{reason}")));
                }
                st.pending.insert(id, tx);
                st.pending.len() == 1
            };
            let mut guard = PendingGuard {
                conn: self,
                id,
                armed: true,
            };
            self.calls_sent.fetch_add(1, Ordering::Relaxed);
            let frame = CallFrame::Call(CallRef {
                id,
                fun,
                args,
                kwargs,
                timeout_ms: timeout.as_millis().min(u64::MAX as u128) as u64,
                route: relay.route,
                origin_host: relay.origin_host,
            });
            let nested = fun.len() + args.len() + kwargs.map_or(0, Bytes::len);
            let encode = |buf: &mut bytes::BytesMut| encode_into(&frame, nested, buf);
            // The only call in flight writes itself out; among many, the writer batches them.
            let wake = if alone { Wake::Through } else { Wake::Writer };
            let sent = match self.out.send_waking(encode, wake).await {
                Ok(sent) => sent,
                Err(e) => {
                    break 'call Err(Error::Codec {
                        what: "encode the call",
                        fun: fun.into(),
                        detail: e.to_string(),
                    })
                }
            };
            if !sent {
                guard.armed = false;
                let reason = self.close_reason().unwrap_or_default();
                break 'call Err(self.lost(fun, format!("{NOT_SENT}{reason}")));
            }
            let outcome = tokio::time::timeout(timeout, rx).await;
            match outcome {
                Ok(reply) => {
                    guard.armed = false;
                    let Ok((result, ran_on)) = reply else {
                        break 'call Err(self.lost(fun, self.close_reason().unwrap_or_default()));
                    };
                    let node = ran_on.unwrap_or_else(|| self.peer.name.clone());
                    match result {
                        Ok(bytes) => Ok((bytes, node)),
                        Err(failure) if failure.kind == FailureKind::Timeout => {
                            Err(Error::Timeout {
                                fun: fun.into(),
                                node,
                                after: timeout,
                            })
                        }
                        Err(failure) => Err(Error::from_failure(failure, fun, &node)),
                    }
                }
                // The guard's drop removes the pending entry and tells the peer to stop.
                Err(_) => Err(Error::Timeout {
                    fun: fun.into(),
                    node: self.peer.name.clone(),
                    after: timeout,
                }),
            }
        };
        match &r {
            Ok((_, node)) => tracing::debug!(%node, "answered"),
            Err(e) => tracing::debug!(error = %e, "failed"),
        }
        r
    }

    fn lost(&self, fun: &str, reason: String) -> Error {
        Error::NodeLost {
            fun: fun.into(),
            node: self.peer.name.clone(),
            reason,
        }
    }

    /// Asks the peer for its view of the cluster.
    pub(crate) async fn members(&self, timeout: Duration) -> Result<MembersMsg> {
        self.ask_members(Frame::MembersRequest, timeout).await
    }

    /// Asks the peer for its view now and after every change (a client attaching).
    pub(crate) async fn watch(&self, timeout: Duration) -> Result<MembersMsg> {
        self.ask_members(Frame::Watch, timeout).await
    }

    async fn ask_members(&self, ask: Frame, timeout: Duration) -> Result<MembersMsg> {
        let (tx, rx) = oneshot::channel();
        *self.members_waiter.lock() = Some(tx);
        let frame = encode_frame(&ask).expect("unit frame encodes");
        let lost = || Error::Protocol {
            peer: self.peer.name.clone(),
            detail: "connection closed before the member list arrived".into(),
        };
        // A connection closed already (its writer may still be draining, so the send below
        // would be taken) never answers: fail now rather than after `timeout`. One closed
        // after this check drops the waiter.
        if self.state.lock().closed.is_some() || !self.send(frame).await {
            return Err(lost());
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(m)) => Ok(m),
            Ok(Err(_)) => Err(lost()),
            Err(_) => Err(Error::Protocol {
                peer: self.peer.name.clone(),
                detail: format!("no member list within {timeout:?}"),
            }),
        }
    }

    /// Completes one of our pending calls with the peer's reply.
    fn complete(&self, id: u64, answer: Answer) {
        let tx = self.state.lock().pending.remove(&id);
        if let Some(tx) = tx {
            let _ = tx.send(answer);
        }
    }

    /// Number of calls currently served for this peer.
    pub(crate) fn served_count(&self) -> usize {
        self.state.lock().served.len()
    }

    /// Registers a call being served; `Err` if the connection already closed.
    pub(crate) fn track_served(&self, id: u64, spawn: impl FnOnce() -> AbortHandle) -> bool {
        let mut st = self.state.lock();
        if st.closed.is_some() {
            return false;
        }
        // Spawned under the lock so the task cannot finish (and untrack) before we track it.
        let h = spawn();
        st.served.insert(id, h);
        true
    }

    /// Forgets a served call once its reply is queued.
    pub(crate) fn untrack_served(&self, id: u64) {
        self.state.lock().served.remove(&id);
    }

    fn cancel_served(&self, id: u64) {
        if let Some(h) = self.state.lock().served.remove(&id) {
            h.abort();
        }
    }
}

/// Removes a pending call when its caller stops waiting (deadline or dropped future), and
/// tells the peer to abandon the work.
struct PendingGuard<'a> {
    conn: &'a Arc<Connection>,
    id: u64,
    armed: bool,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let removed = self.conn.state.lock().pending.remove(&self.id).is_some();
        if removed {
            if let Ok(frame) = encode_frame(&Frame::Cancel(Cancel { id: self.id })) {
                // Best effort: if the queue is full the callee's own deadline still ends it.
                self.conn.try_send(frame);
            }
        }
    }
}

async fn read_loop(
    conn: Arc<Connection>,
    mut frames: FramedRead<OwnedReadHalf, FrameCodec>,
    shared: Arc<Shared>,
) {
    let mut wakes = Wakes::default();
    let mut burst = 0;
    let reason = loop {
        // Frames already at hand are handled without waiting, up to `BURST` in a row;
        // then, or when none is at hand, the subscribers fed meanwhile are woken and the
        // loop waits — which is also when it notices a close or a shutdown.
        let ready = if burst < BURST {
            frames.next().now_or_never()
        } else {
            None
        };
        let next = match ready {
            Some(f) => {
                burst += 1;
                f
            }
            None => {
                burst = 0;
                before_waiting(&conn, &mut wakes);
                tokio::select! {
                    biased;
                    _ = conn.closed.cancelled() => break None,
                    // Also covers connections whose handshake finished after shutdown began.
                    _ = shared.shutdown.cancelled() => break Some("the node shut down".to_string()),
                    f = frames.next() => f,
                }
            }
        };
        conn.received.fetch_add(1, Ordering::Relaxed);
        if !matches!(next, Some(Ok(Frame::Ping))) {
            conn.traffic.fetch_add(1, Ordering::Relaxed);
        }
        conn.bytes_in
            .store(frames.decoder().consumed(), Ordering::Relaxed);
        match next {
            None => break Some("connection closed by the peer".to_string()),
            Some(Err(e)) => {
                let reason = e.to_string();
                tracing::warn!(peer = %conn.peer.name, %reason, "closing connection");
                if let Ok(f) = encode_frame(&Frame::Refused(Refused {
                    reason: reason.clone(),
                })) {
                    conn.try_send(f);
                }
                break Some(reason);
            }
            Some(Ok(Frame::Handover(token))) => {
                if !handed_over(&conn, &shared, token, &mut wakes).await {
                    break None;
                }
            }
            Some(Ok(frame)) => match handle(&conn, &shared, frame, &mut wakes) {
                Ok(()) => {}
                // A peer stopping (a client finishing its call) is normal: not a warning.
                Err(Ending::Goodbye(reason)) => {
                    tracing::debug!(peer = %conn.peer.name, %reason, "peer said goodbye");
                    break Some(reason);
                }
                Err(Ending::Fault(reason)) => {
                    tracing::warn!(peer = %conn.peer.name, %reason, "closing connection");
                    break Some(reason);
                }
            },
        }
        if wakes.is_crowded() {
            before_waiting(&conn, &mut wakes);
            tokio::task::yield_now().await;
        } else if wakes.due() {
            wakes.flush();
        }
        if conn.out.parked() > 0 && !hold_back(&conn, &shared, &mut wakes).await {
            break None;
        }
        if wakes.any_full() {
            if let Err(reason) = hold_for_subscribers(&conn, &shared, &mut wakes).await {
                break reason;
            }
        }
    };
    before_waiting(&conn, &mut wakes);
    if let Some(reason) = reason {
        conn.close(reason);
    }
    shared.counters.connections.fetch_sub(1, Ordering::Relaxed);
    shared.handovers.closed(&conn);
    shared.remove_connection(&conn);
    shared.mailbox.connection_closed(&conn);
}

/// What the reader does before it waits for anything (input, room, another task): wakes
/// the subscribers it fed and sends the answers it queued (see [`Wake::Later`]).
fn before_waiting(conn: &Connection, wakes: &mut Wakes) {
    wakes.flush();
    conn.out.flush();
}

/// The peer moved here from its connection `token`: waits until that one is fenced or
/// closed before reading on (see [`crate::runtime::handover`]). `false` if this
/// connection closed meanwhile.
async fn handed_over(conn: &Connection, shared: &Shared, token: u64, wakes: &mut Wakes) -> bool {
    before_waiting(conn, wakes);
    tokio::select! {
        done = shared.handovers.wait(token, conn.peer.id) => {
            if !done {
                tracing::debug!(peer = %conn.peer.name, "the connection handed over from was not fenced in time; reading on");
            }
            true
        }
        _ = conn.closed.cancelled() => false,
        _ = shared.shutdown.cancelled() => false,
    }
}

/// Back-pressure: our answers to this peer cannot be queued, so stop reading its requests
/// until they drain (the watchdog closes a peer that never reads). `false` if the
/// connection closed meanwhile.
async fn hold_back(conn: &Connection, shared: &Shared, wakes: &mut Wakes) -> bool {
    before_waiting(conn, wakes);
    conn.paused.store(true, Ordering::Relaxed);
    let open = tokio::select! {
        _ = conn.out.drained() => true,
        _ = conn.closed.cancelled() => false,
        _ = shared.shutdown.cancelled() => false,
    };
    conn.paused.store(false, Ordering::Relaxed);
    open
}

/// Back-pressure for lossless subscribers (DESIGN §9): this peer's publications filled
/// one, so stop reading the peer until each has room again or is gone. TCP then slows the
/// peer's `publish()`; other connections and local work go on. `Err` with the reason to
/// close (none if it closed already) when the connection or the node ends meanwhile.
async fn hold_for_subscribers(
    conn: &Connection,
    shared: &Shared,
    wakes: &mut Wakes,
) -> std::result::Result<(), Option<String>> {
    // The consumers must run to make room.
    before_waiting(conn, wakes);
    let full = wakes.take_full();
    shared.pubsub.stats.held.fetch_add(1, Ordering::Relaxed);
    conn.paused.store(true, Ordering::Relaxed);
    let room = async {
        for s in &full {
            s.queue.room().await;
        }
    };
    let r = tokio::select! {
        biased;
        _ = conn.closed.cancelled() => Err(None),
        _ = shared.shutdown.cancelled() => Err(Some("the node shut down".to_string())),
        _ = room => Ok(()),
    };
    conn.paused.store(false, Ordering::Relaxed);
    r
}

/// Why the reader stops after a frame: the peer's goodbye, or something to warn about.
enum Ending {
    Goodbye(String),
    Fault(String),
}

fn handle(
    conn: &Arc<Connection>,
    shared: &Arc<Shared>,
    frame: Frame,
    wakes: &mut Wakes,
) -> std::result::Result<(), Ending> {
    match frame {
        Frame::Call(call) => dispatch::serve(conn, shared, call),
        Frame::Reply(r) => conn.complete(r.id, (r.result, r.node)),
        Frame::Cancel(c) => conn.cancel_served(c.id),
        Frame::Catalog(c) => {
            let mut cat = conn.catalog.write();
            if c.version >= cat.version {
                let mut remote = shared.pubsub.remote.write();
                remote.set(conn.peer.id, c.version, &c.subscriptions);
            }
            cat.update(c);
            drop(cat);
            shared.view_changed();
        }
        Frame::Publish(p) => shared.on_publish(conn, p, wakes),
        Frame::Publications(b) => shared.on_publications(conn, b, wakes),
        Frame::PubAck(a) => shared.pubsub.acked(conn.peer.id, a),
        Frame::Sync(id) => {
            if let Ok(f) = encode_frame(&Frame::Synced(id)) {
                conn.send_soon(f);
            }
        }
        Frame::Synced(id) => shared.pubsub.synced(id),
        Frame::Refused(r) => return Err(Ending::Fault(r.reason)),
        Frame::Goodbye(r) => {
            // A graceful stop: drop the member from the view now rather than when gossip
            // confirms it, so callers stop choosing it at once.
            shared.member_left(conn.peer.id);
            return Err(Ending::Goodbye(r.reason));
        }
        Frame::CatalogPull => shared.send_catalog(conn),
        Frame::MembersRequest => {
            if let Ok(f) = encode_frame(&Frame::Members(shared.members_for(&conn.peer.host_id))) {
                conn.send_soon(f);
            }
        }
        Frame::Members(m) => {
            // A client follows the view its member pushes (see `attach`).
            if !shared.config.listen {
                shared.adopt_members(&m);
                shared.mailbox.membership_changed(shared);
            }
            if let Some(tx) = conn.members_waiter.lock().take() {
                let _ = tx.send(m);
            }
        }
        Frame::Message(envelope) => shared.mailbox.arrived(shared, conn, envelope),
        Frame::Ping => liveness::answer_ping(conn),
        Frame::Watch => shared.watch_members(conn),
        Frame::Fence => conn.fenced.cancel(),
        other => {
            return Err(Ending::Fault(format!(
                "unexpected {} frame after the handshake",
                frame_name(&other)
            )))
        }
    }
    Ok(())
}

/// Short name of a frame kind, for error messages.
pub(crate) fn frame_name(f: &Frame) -> &'static str {
    match f {
        Frame::Hello(_) => "hello",
        Frame::Auth(_) => "auth",
        Frame::Refused(_) => "refused",
        Frame::Catalog(_) => "catalog",
        Frame::Call(_) => "call",
        Frame::Reply(_) => "reply",
        Frame::Cancel(_) => "cancel",
        Frame::Goodbye(_) => "goodbye",
        Frame::CatalogPull => "catalog pull",
        Frame::MembersRequest => "members request",
        Frame::Members(_) => "members",
        Frame::Publish(_) => "publish",
        Frame::Publications(_) => "publications",
        Frame::PubAck(_) => "publication acknowledgement",
        Frame::Sync(_) => "sync",
        Frame::Synced(_) => "synced",
        Frame::Message(_) => "message",
        Frame::Ping => "ping",
        Frame::Watch => "watch",
        Frame::Fence => "fence",
        Frame::Handover(_) => "handover",
    }
}
