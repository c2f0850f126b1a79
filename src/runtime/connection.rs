//! One multiplexed connection to a peer: outgoing calls matched to replies by id, incoming
//! calls served concurrently, writes coalesced.

use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{FutureExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::proto::catalog::PeerCatalog;
use crate::proto::codec::{encode_frame, FrameCodec};
use crate::proto::wire::{
    Call, Cancel, CatalogMsg, Failure, FailureKind, Frame, MembersMsg, Refused,
};
use crate::runtime::pubsub::Wakes;
use crate::runtime::{dispatch, Shared};

/// Frames queued for the writer before senders wait: bounds memory per connection.
pub(crate) const OUTBOUND_QUEUE: usize = 1024;

/// Bytes the writer gathers from the queue before issuing one write.
const COALESCE_BYTES: usize = 256 * 1024;

/// Frames the reader handles in a row without waiting: a bound on how long subscribers it
/// fed wait for their wake-up, and on how late it notices that the connection closed.
const BURST: usize = 128;

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

/// What a call carries besides the function and its arguments (see [`Call`]).
#[derive(Debug, Clone, Default)]
pub(crate) struct Relay {
    /// Ask the peer to resolve with these rules and relay.
    pub route: Option<crate::proto::resolve::Route>,
    /// Host of the original caller, when we relay for someone.
    pub origin_host: Option<String>,
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
    out: mpsc::Sender<Bytes>,
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
}

impl Connection {
    /// Wraps the two halves of an authenticated stream and starts its reader and writer.
    pub(crate) fn start(
        shared: &Arc<Shared>,
        peer: PeerInfo,
        catalog: CatalogMsg,
        frames: FramedRead<OwnedReadHalf, FrameCodec>,
        write: OwnedWriteHalf,
    ) -> Arc<Self> {
        let (out, rx) = mpsc::channel(OUTBOUND_QUEUE);
        let mut pc = PeerCatalog::default();
        shared
            .pubsub
            .remote
            .write()
            .set(peer.id, &catalog.subscriptions);
        pc.update(catalog);
        let conn = Arc::new(Connection {
            peer_name: peer.name.as_str().into(),
            peer,
            out,
            state: Mutex::new(State::default()),
            next_id: AtomicU64::new(1),
            in_flight: AtomicUsize::new(0),
            catalog: RwLock::new(pc),
            closed: CancellationToken::new(),
            members_waiter: Mutex::new(None),
        });
        shared.tasks.spawn(write_loop(rx, write, conn.clone()));
        shared
            .tasks
            .spawn(read_loop(conn.clone(), frames, shared.clone()));
        conn
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
        // Dropping the senders wakes every waiting caller with "node lost".
        drop(pending);
        for (_, h) in served {
            h.abort();
        }
        self.closed.cancel();
    }

    /// Queues an encoded frame; waits when the writer is `OUTBOUND_QUEUE` frames behind.
    pub(crate) async fn send(&self, frame: Bytes) -> bool {
        self.out.send(frame).await.is_ok()
    }

    /// Queues a frame from a task that must not wait (the reader): at once if the queue has
    /// room, else from a spawned task, so the frame is neither lost nor blocks the caller.
    pub(crate) fn send_soon(self: &Arc<Self>, frame: Bytes) {
        if let Err(mpsc::error::TrySendError::Full(frame)) = self.out.try_send(frame) {
            let c = self.clone();
            tokio::spawn(async move { c.send(frame).await });
        }
    }

    /// Frames queued for the writer: the load signal for choosing a queue-group member.
    pub(crate) fn queued(&self) -> usize {
        self.out.max_capacity() - self.out.capacity()
    }

    /// Queues a frame without waiting; `false` if the queue is full or closed.
    pub(crate) fn try_send(&self, frame: Bytes) -> bool {
        self.out.try_send(frame).is_ok()
    }
    /// Calls `fun` on the peer (or, with `relay.route`, through it) and returns the result
    /// with the name of the node that ran it.
    pub(crate) async fn call_via(
        self: &Arc<Self>,
        fun: &str,
        args: Bytes,
        kwargs: Option<Bytes>,
        timeout: Duration,
        relay: Relay,
    ) -> Result<(Bytes, String)> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut st = self.state.lock();
            if let Some(reason) = &st.closed {
                return Err(self.lost(fun, reason.clone()));
            }
            st.pending.insert(id, tx);
        }
        let mut guard = PendingGuard {
            conn: self,
            id,
            armed: true,
        };
        let frame = Frame::Call(Call {
            id,
            fun: fun.to_string(),
            args: args.clone(),
            kwargs,
            timeout_ms: timeout.as_millis().min(u64::MAX as u128) as u64,
            route: relay.route,
            origin_host: relay.origin_host,
        });
        let bytes = encode_frame(&frame).map_err(|e| Error::Codec {
            what: "encode the call",
            fun: fun.into(),
            detail: e.to_string(),
        })?;
        if !self.send(bytes).await {
            guard.armed = false;
            return Err(self.lost(fun, self.close_reason().unwrap_or_default()));
        }
        let outcome = tokio::time::timeout(timeout, rx).await;
        match outcome {
            Ok(reply) => {
                guard.armed = false;
                let Ok((result, ran_on)) = reply else {
                    return Err(self.lost(fun, self.close_reason().unwrap_or_default()));
                };
                let node = ran_on.unwrap_or_else(|| self.peer.name.clone());
                match result {
                    Ok(bytes) => Ok((bytes, node)),
                    Err(failure) if failure.kind == FailureKind::Timeout => Err(Error::Timeout {
                        fun: fun.into(),
                        node,
                        after: timeout,
                    }),
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
        let (tx, rx) = oneshot::channel();
        *self.members_waiter.lock() = Some(tx);
        let frame = encode_frame(&Frame::MembersRequest).expect("unit frame encodes");
        let lost = || Error::Protocol {
            peer: self.peer.name.clone(),
            detail: "connection closed before the member list arrived".into(),
        };
        if !self.send(frame).await {
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
                wakes.flush();
                tokio::select! {
                    biased;
                    _ = conn.closed.cancelled() => break None,
                    // Also covers connections whose handshake finished after shutdown began.
                    _ = shared.shutdown.cancelled() => break Some("the node shut down".to_string()),
                    f = frames.next() => f,
                }
            }
        };
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
            Some(Ok(frame)) => {
                if let Err(reason) = handle(&conn, &shared, frame, &mut wakes) {
                    tracing::warn!(peer = %conn.peer.name, %reason, "closing connection");
                    break Some(reason);
                }
            }
        }
    };
    wakes.flush();
    if let Some(reason) = reason {
        conn.close(reason);
    }
    shared.remove_connection(&conn);
    shared.mailbox.connection_closed(&conn);
}

fn handle(
    conn: &Arc<Connection>,
    shared: &Arc<Shared>,
    frame: Frame,
    wakes: &mut Wakes,
) -> std::result::Result<(), String> {
    match frame {
        Frame::Call(call) => dispatch::serve(conn, shared, call),
        Frame::Reply(r) => conn.complete(r.id, (r.result, r.node)),
        Frame::Cancel(c) => conn.cancel_served(c.id),
        Frame::Catalog(c) => {
            let mut cat = conn.catalog.write();
            if c.version >= cat.version {
                let mut remote = shared.pubsub.remote.write();
                remote.set(conn.peer.id, &c.subscriptions);
            }
            cat.update(c);
        }
        Frame::Publish(p) => shared.on_publish(conn, p, wakes),
        Frame::PubAck(a) => shared.pubsub.acked(conn.peer.id, a),
        Frame::Sync(id) => {
            if let Ok(f) = encode_frame(&Frame::Synced(id)) {
                conn.send_soon(f);
            }
        }
        Frame::Synced(id) => shared.pubsub.synced(id),
        Frame::Refused(r) => return Err(r.reason),
        Frame::Goodbye(r) => {
            // A graceful stop: drop the member from the view now rather than when gossip
            // confirms it, so callers stop choosing it at once.
            shared.member_left(conn.peer.id);
            return Err(r.reason);
        }
        Frame::CatalogPull => shared.send_catalog(conn),
        Frame::MembersRequest => {
            if let Ok(f) = encode_frame(&Frame::Members(shared.members_for(&conn.peer.host_id))) {
                conn.send_soon(f);
            }
        }
        Frame::Members(m) => {
            if let Some(tx) = conn.members_waiter.lock().take() {
                let _ = tx.send(m);
            }
        }
        Frame::Message(envelope) => shared.mailbox.arrived(shared, conn, envelope),
        other => {
            return Err(format!(
                "unexpected {} frame after the handshake",
                frame_name(&other)
            ))
        }
    }
    Ok(())
}

/// Short name of a frame kind, for error messages.
pub(crate) fn frame_name(f: &Frame) -> &'static str {
    match f {
        Frame::Hello(_) => "hello",
        Frame::Auth(_) => "auth",
        Frame::Ready => "ready",
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
        Frame::PubAck(_) => "publication acknowledgement",
        Frame::Sync(_) => "sync",
        Frame::Synced(_) => "synced",
        Frame::Message(_) => "message",
    }
}

/// Drains the outbound queue into the socket, gathering everything queued into one write.
async fn write_loop(mut rx: mpsc::Receiver<Bytes>, mut w: OwnedWriteHalf, conn: Arc<Connection>) {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    loop {
        let first = tokio::select! {
            biased;
            f = rx.recv() => f,
            _ = conn.closed.cancelled() => None,
        };
        let Some(first) = first else { break };
        let mut next = rx.try_recv();
        if next.is_err() {
            // Let the tasks that were woken together with us queue their frames first: on a
            // busy connection this turns one write per reply into one write per batch, and
            // on an idle one it costs a single trip through the scheduler.
            tokio::task::yield_now().await;
            next = rx.try_recv();
        }
        let ok = if let Ok(second) = next {
            buf.extend_from_slice(&first);
            buf.extend_from_slice(&second);
            while buf.len() < COALESCE_BYTES {
                match rx.try_recv() {
                    Ok(f) => buf.extend_from_slice(&f),
                    Err(_) => break,
                }
            }
            let r = w.write_all(&buf).await;
            buf.clear();
            r
        } else {
            w.write_all(&first).await
        };
        if let Err(e) = ok {
            conn.close(format!("write failed: {e}"));
            break;
        }
    }
    // Flush what was queued before the close (a refusal, last replies), then say goodbye.
    while let Ok(f) = rx.try_recv() {
        if w.write_all(&f).await.is_err() {
            break;
        }
    }
    let _ = w.shutdown().await;
}
