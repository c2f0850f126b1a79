//! What a connection sends: a bounded queue drained by one writer task that coalesces
//! frames into few writes, plus a bounded backlog for frames produced by tasks that must
//! not wait (the reader's own answers, publication acknowledgements).
//!
//! Bounds, per connection (DESIGN §5): [`OUTBOUND_QUEUE`] frames in the queue, where
//! ordinary senders wait for room; [`BACKLOG_LIMIT`] frames in the backlog. The reader
//! stops reading the peer while the backlog holds anything, so a peer that sends requests
//! and never reads the replies is throttled by TCP instead of growing our memory; a
//! backlog pushed past its limit (by acknowledgements, which have no reader to stop)
//! closes the connection with a reason. No frame ever costs a task of its own.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{mpsc, Notify};

use crate::proto::crypto::Sealer;

/// Frames queued for the writer before senders wait.
pub(crate) const OUTBOUND_QUEUE: usize = 1024;

/// Frames that tasks which must not wait may park behind a full queue before the
/// connection is closed as not reading.
pub(crate) const BACKLOG_LIMIT: usize = 4096;

/// Longest the writer flushes what was queued once the connection closes.
const FLUSH_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

/// During that flush, longest the writer waits for the peer to take any byte.
const FLUSH_STALL: std::time::Duration = std::time::Duration::from_secs(1);

/// Bytes the writer gathers before issuing one write.
const COALESCE_BYTES: usize = 256 * 1024;

/// The sending side of one connection.
pub(crate) struct Outbound {
    tx: mpsc::Sender<Bytes>,
    /// Frames that found the queue full, sent before anything queued later.
    backlog: Mutex<VecDeque<Bytes>>,
    /// Length of `backlog`, readable without its lock: the reader and the writer look at
    /// it for every frame, and it is almost always 0.
    parked: AtomicUsize,
    /// Wakes the writer for the backlog (a stored permit: no wake-up is lost).
    wake_writer: Notify,
    /// Wakes the reader waiting for the backlog to drain.
    drained: Notify,
    /// Writes completed: the watchdog's sign that the peer reads.
    pub(crate) written: AtomicU64,
    /// Bytes written (frames whose write completed).
    pub(crate) bytes: AtomicU64,
}

/// Why a frame could not be parked.
pub(crate) struct Overflow(pub usize);

impl Outbound {
    /// A sender and the receiver its writer drains.
    pub(crate) fn new() -> (Self, mpsc::Receiver<Bytes>) {
        let (tx, rx) = mpsc::channel(OUTBOUND_QUEUE);
        let out = Outbound {
            tx,
            backlog: Mutex::new(VecDeque::new()),
            parked: AtomicUsize::new(0),
            wake_writer: Notify::new(),
            drained: Notify::new(),
            written: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
        };
        (out, rx)
    }

    /// Queues a frame, waiting while the queue is full; `false` once the writer is gone.
    pub(crate) async fn send(&self, frame: Bytes) -> bool {
        self.tx.send(frame).await.is_ok()
    }

    /// Queues a frame without waiting; `false` if the queue is full or closed.
    pub(crate) fn try_send(&self, frame: Bytes) -> bool {
        self.tx.try_send(frame).is_ok()
    }

    /// Queues a frame from a task that must not wait: into the queue if it has room, else
    /// into the backlog. `Err` when the backlog is full (the peer is not reading).
    pub(crate) fn park(&self, frame: Bytes) -> Result<(), Overflow> {
        let frame = match self.tx.try_send(frame) {
            Ok(()) => return Ok(()),
            Err(mpsc::error::TrySendError::Closed(_)) => return Ok(()),
            Err(mpsc::error::TrySendError::Full(f)) => f,
        };
        let mut b = self.backlog.lock();
        if b.len() >= BACKLOG_LIMIT {
            return Err(Overflow(b.len()));
        }
        b.push_back(frame);
        self.parked.store(b.len(), Relaxed);
        drop(b);
        self.wake_writer.notify_one();
        Ok(())
    }

    /// Frames parked in the backlog.
    pub(crate) fn parked(&self) -> usize {
        self.parked.load(Relaxed)
    }

    /// Waits until the backlog is empty (the reader's back-pressure on the peer).
    pub(crate) async fn drained(&self) {
        loop {
            let notified = self.drained.notified();
            if self.backlog.lock().is_empty() {
                return;
            }
            notified.await;
        }
    }

    /// Frames queued for the writer, backlog included.
    pub(crate) fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity() + self.parked()
    }

    fn pop_parked(&self) -> Option<Bytes> {
        if self.parked.load(Relaxed) == 0 {
            return None;
        }
        let mut b = self.backlog.lock();
        let f = b.pop_front();
        self.parked.store(b.len(), Relaxed);
        if b.is_empty() {
            self.drained.notify_waiters();
        }
        f
    }

    /// Drains the queue and the backlog into the socket, gathering what is at hand into
    /// one write, until `closed`; then flushes what was queued and shuts the socket down.
    /// A write blocked on a peer that does not read gives way to `closed` at once. With
    /// `sealer` (a shared secret) each write is encrypted as a whole: one batch of frames,
    /// one to a few records.
    pub(crate) async fn write_loop(
        &self,
        mut rx: mpsc::Receiver<Bytes>,
        mut w: OwnedWriteHalf,
        closed: &tokio_util::sync::CancellationToken,
        mut sealer: Option<Sealer>,
    ) -> Option<String> {
        let mut buf = BytesMut::with_capacity(64 * 1024);
        // The encrypted bytes of the batch in `buf` (with a secret only).
        let mut wire = BytesMut::new();
        let failure = loop {
            let first = match self.pop_parked() {
                Some(f) => Some(f),
                None => tokio::select! {
                    biased;
                    f = rx.recv() => f,
                    _ = self.wake_writer.notified() => continue,
                    _ = closed.cancelled() => None,
                },
            };
            let Some(first) = first else { break None };
            let mut next = self.next_at_hand(&mut rx);
            if next.is_none() {
                // Let the tasks woken together with us queue their frames first: on a busy
                // connection this turns one write per reply into one write per batch, and
                // on an idle one it costs a single trip through the scheduler.
                tokio::task::yield_now().await;
                next = self.next_at_hand(&mut rx);
            }
            let (written, len) = match (next, sealer.as_mut()) {
                (None, None) => {
                    let mut one = first;
                    let len = one.len();
                    let r = write_until(&mut w, &mut one, closed).await;
                    buf.extend_from_slice(&one);
                    (r, len)
                }
                (next, sealer) => {
                    buf.extend_from_slice(&first);
                    if let Some(second) = next {
                        buf.extend_from_slice(&second);
                        while buf.len() < COALESCE_BYTES {
                            match self.next_at_hand(&mut rx) {
                                Some(f) => buf.extend_from_slice(&f),
                                None => break,
                            }
                        }
                    }
                    let len = buf.len();
                    match sealer {
                        None => (write_until(&mut w, &mut buf, closed).await, len),
                        Some(s) => {
                            if let Err(e) = s.seal(&buf, &mut wire) {
                                break Some(format!("cannot encrypt: {e}"));
                            }
                            buf.clear();
                            (write_until(&mut w, &mut wire, closed).await, len)
                        }
                    }
                }
            };
            match written {
                Ok(true) => {
                    self.written.fetch_add(1, Relaxed);
                    self.bytes.fetch_add(len as u64, Relaxed);
                }
                Ok(false) => break None,
                Err(e) => break Some(format!("write failed: {e}")),
            }
        };
        if failure.is_none() {
            let rest = if sealer.is_some() {
                &mut wire
            } else {
                &mut buf
            };
            self.flush(&mut rx, &mut w, rest, sealer.as_mut()).await;
        }
        failure
    }

    /// The next frame already waiting: the backlog first, then the queue.
    fn next_at_hand(&self, rx: &mut mpsc::Receiver<Bytes>) -> Option<Bytes> {
        self.pop_parked().or_else(|| rx.try_recv().ok())
    }

    /// After a close: writes what was queued before it (a refusal, last replies, a
    /// goodbye) while the peer keeps reading — at most [`FLUSH_LIMIT`] in all, and
    /// giving up after [`FLUSH_STALL`] without progress — then shuts the socket down.
    /// `rest` holds bytes ready for the socket (already encrypted with a `sealer`).
    async fn flush(
        &self,
        rx: &mut mpsc::Receiver<Bytes>,
        w: &mut OwnedWriteHalf,
        rest: &mut BytesMut,
        mut sealer: Option<&mut Sealer>,
    ) {
        let flush = async {
            loop {
                while !rest.is_empty() {
                    match tokio::time::timeout(FLUSH_STALL, w.write_buf(rest)).await {
                        Ok(Ok(n)) if n > 0 => {}
                        _ => return,
                    }
                }
                match (self.next_at_hand(rx), sealer.as_deref_mut()) {
                    (Some(f), None) => rest.extend_from_slice(&f),
                    (Some(f), Some(s)) => {
                        if s.seal(&f, rest).is_err() {
                            return;
                        }
                    }
                    (None, _) => break,
                }
            }
            let _ = w.shutdown().await;
        };
        let _ = tokio::time::timeout(FLUSH_LIMIT, flush).await;
    }
}

/// Writes all of `data` unless `closed` comes first: `Ok(true)` when written, `Ok(false)`
/// when closed with `data` holding what is left (each write is all or nothing).
async fn write_until<B: bytes::Buf>(
    w: &mut OwnedWriteHalf,
    data: &mut B,
    closed: &tokio_util::sync::CancellationToken,
) -> std::io::Result<bool> {
    while data.has_remaining() {
        tokio::select! {
            biased;
            r = w.write_buf(data) => {
                if r? == 0 {
                    return Err(std::io::ErrorKind::WriteZero.into());
                }
            }
            _ = closed.cancelled() => return Ok(false),
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio_util::sync::CancellationToken;

    fn frame(i: u32) -> Bytes {
        Bytes::copy_from_slice(&i.to_be_bytes())
    }

    #[tokio::test]
    async fn full_queue_parks_then_overflows_without_waiting() {
        let (out, _rx) = Outbound::new();
        for i in 0..OUTBOUND_QUEUE as u32 {
            assert!(out.try_send(frame(i)));
        }
        assert!(!out.try_send(frame(0)), "the queue is bounded");
        for i in 0..BACKLOG_LIMIT as u32 {
            assert!(out.park(frame(i)).is_ok());
        }
        assert_eq!(out.parked(), BACKLOG_LIMIT);
        assert_eq!(out.queued(), OUTBOUND_QUEUE + BACKLOG_LIMIT);
        let Err(Overflow(n)) = out.park(frame(0)) else {
            panic!("a full backlog must refuse")
        };
        assert_eq!(n, BACKLOG_LIMIT);
    }

    #[tokio::test]
    async fn the_writer_drains_queue_and_backlog_and_wakes_the_reader() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        let (_r, w) = client.into_split();
        let (out, rx) = Outbound::new();
        let out = std::sync::Arc::new(out);
        for i in 0..OUTBOUND_QUEUE as u32 {
            assert!(out.try_send(frame(i)));
        }
        for i in 0..10 {
            out.park(frame(OUTBOUND_QUEUE as u32 + i)).ok().unwrap();
        }
        let closed = CancellationToken::new();
        let (o, c) = (out.clone(), closed.clone());
        let writer = tokio::spawn(async move { o.write_loop(rx, w, &c, None).await });
        tokio::time::timeout(std::time::Duration::from_secs(5), out.drained())
            .await
            .expect("the backlog drains once the peer reads");
        let mut got = vec![0u8; (OUTBOUND_QUEUE + 10) * 4];
        server.read_exact(&mut got).await.unwrap();
        let mut ids: Vec<u32> = got
            .chunks(4)
            .map(|c| u32::from_be_bytes(c.try_into().unwrap()))
            .collect();
        ids.sort();
        assert_eq!(ids, (0..OUTBOUND_QUEUE as u32 + 10).collect::<Vec<_>>());
        closed.cancel();
        assert!(
            writer.await.unwrap().is_none(),
            "a clean close is no failure"
        );
    }

    #[tokio::test]
    async fn with_a_sealer_every_batch_is_encrypted_and_opens_in_order() {
        use crate::proto::crypto::Opener;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        let (_r, w) = client.into_split();
        let (out, rx) = Outbound::new();
        // Enough to make batches of several records (300 KiB).
        let frames: Vec<Bytes> = (0..300u32)
            .map(|i| Bytes::from(vec![(i % 251) as u8; 1024]))
            .collect();
        for f in &frames {
            assert!(out.try_send(f.clone()));
        }
        let key = [3u8; 32];
        let closed = CancellationToken::new();
        let c = closed.clone();
        let out = std::sync::Arc::new(out);
        let o = out.clone();
        let writer =
            tokio::spawn(async move { o.write_loop(rx, w, &c, Some(Sealer::new(&key))).await });
        let want: Vec<u8> = frames.iter().flat_map(|f| f.iter().copied()).collect();
        let (mut wire, mut plain) = (bytes::BytesMut::new(), bytes::BytesMut::new());
        let mut opener = Opener::new(&key);
        while plain.len() < want.len() {
            let n = server.read_buf(&mut wire).await.unwrap();
            assert!(n > 0, "the writer sent everything before closing");
            while opener.open(&mut wire, &mut plain).unwrap() {}
        }
        assert_eq!(&plain[..], &want[..], "every frame, in order");
        closed.cancel();
        assert!(writer.await.unwrap().is_none());
    }
}
