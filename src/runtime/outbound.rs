//! What a connection sends: one bounded buffer of encoded frames, filled by the tasks that
//! send and drained by one writer task that writes all it holds at once, plus room beyond
//! the bound for frames produced by tasks that must not wait (the reader's own answers,
//! publication acknowledgements).
//!
//! Hot frames (calls, replies, publications) are encoded straight into the buffer: a frame
//! costs no allocation of its own and no hand-over through a channel, and the buffer the
//! writer takes is written as it is (or encrypted as a whole). Written by hand because a
//! channel of frames (tokio's `mpsc`, as before) costs an allocation and a free per frame,
//! mostly on two different threads, which made glibc's allocator lock its arenas on every
//! call at high rates (seen in perf as futex wakes under `malloc` and `free`).
//!
//! Bounds, per connection (DESIGN §5): [`OUTBOUND_QUEUE`] frames or [`OUTBOUND_BYTES`] in
//! the buffer, where ordinary senders wait for room (a frame always fits in an empty
//! buffer); [`BACKLOG_LIMIT`] frames beyond that bound, parked by tasks that must not
//! wait. The reader stops reading the peer while anything is parked, so a peer that sends
//! requests and never reads the replies is throttled by TCP instead of growing our memory;
//! parking past the limit (acknowledgements have no reader to stop) closes the connection
//! with a reason. Frames go out in the order they were queued. No frame ever costs a task.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use parking_lot::Mutex;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::Notify;

use crate::proto::crypto::Sealer;
use crate::proto::publish_frame::Batch;
use crate::proto::scratch::with_scratch;

/// Frames queued for the writer before senders wait.
pub(crate) const OUTBOUND_QUEUE: usize = 1024;

/// Bytes queued for the writer before senders wait (whichever bound comes first).
pub(crate) const OUTBOUND_BYTES: usize = 1024 * 1024;

/// Frames that tasks which must not wait may park beyond the bound before the connection
/// is closed as not reading.
pub(crate) const BACKLOG_LIMIT: usize = 4096;

/// Longest the writer flushes what was queued once the connection closes.
const FLUSH_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

/// During that flush, longest the writer waits for the peer to take any byte.
const FLUSH_STALL: std::time::Duration = std::time::Duration::from_secs(1);

/// Capacity the writer's buffers start with, and keep after a write.
const BUFFER: usize = 64 * 1024;

/// The sending side of one connection.
pub(crate) struct Outbound {
    queue: Mutex<Queue>,
    /// Frames in the queue, readable without its lock (the watchdog and queue groups look).
    queued: AtomicUsize,
    /// Frames parked beyond the bound, readable without the lock: the reader looks after
    /// every frame, and it is almost always 0.
    parked: AtomicUsize,
    /// Wakes the writer when the queue gets its first frame (a stored permit: no wake-up is
    /// lost).
    wake_writer: Notify,
    /// Wakes senders waiting for room once the writer took the queue (or it closed).
    room: Notify,
    /// Wakes the reader waiting for the parked frames to be taken.
    drained: Notify,
    /// Writes completed: the watchdog's sign that the peer reads.
    pub(crate) written: AtomicU64,
    /// Bytes written (frames whose write completed).
    pub(crate) bytes: AtomicU64,
}

/// The frames waiting for the writer, encoded one after the other.
struct Queue {
    buf: BytesMut,
    frames: usize,
    parked: usize,
    /// The last frame in `buf`, when it is a batch of publications that can take more.
    batch: Option<Batch>,
    /// The writer is gone: nothing more is taken.
    closed: bool,
    /// The writer took a buffer and has not finished writing it.
    writing: bool,
    /// The socket, for a sender that writes its frame itself while the writer is idle
    /// (see [`Wake::Through`]); none with encryption, or once the writer is closing.
    sock: Option<Arc<OwnedWriteHalf>>,
}

/// What a sender does for the writer after queueing a frame into an empty queue.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wake {
    /// Wake the writer task.
    Writer,
    /// Write the queue to the socket from the sending task if the writer is idle (waking
    /// it only for what the socket did not take). On an idle connection this saves the
    /// hand-over to the writer task, a trip through the scheduler that often wakes a
    /// parked worker thread: tens of microseconds of a round trip on a multi-thread
    /// runtime. Meant for a sender that knows nothing else is on its way, since each such
    /// write is a system call of its own.
    Through,
    /// Leave the frame queued without waking anyone: the sender (the connection's reader)
    /// calls [`Outbound::flush`] before it next waits, so every frame it queues while
    /// handling what one read brought goes out in one write, as an echo server's would.
    Later,
}

impl Queue {
    fn is_full(&self) -> bool {
        self.frames >= OUTBOUND_QUEUE || (self.frames > 0 && self.buf.len() >= OUTBOUND_BYTES)
    }

    /// Resets the counts as the queue's bytes leave it (taken by the writer or written by a
    /// sender); what [`Outbound::made_room`] must publish.
    fn emptied(&mut self) -> Emptied {
        let e = Emptied {
            parked: self.parked,
        };
        self.batch = None;
        self.frames = 0;
        self.parked = 0;
        e
    }
}

/// What emptying a queue freed (see [`Queue::emptied`]).
struct Emptied {
    parked: usize,
}

/// Why a frame could not be parked.
pub(crate) struct Overflow(pub usize);

/// Where a sender's first try left its frame.
enum Put {
    Queued,
    Closed,
    /// The queue is full: nothing was queued.
    Full,
}

impl Outbound {
    /// An empty queue; [`write_loop`](Self::write_loop) drains it.
    pub(crate) fn new() -> Self {
        Outbound {
            queue: Mutex::new(Queue {
                buf: BytesMut::with_capacity(BUFFER),
                frames: 0,
                parked: 0,
                batch: None,
                closed: false,
                writing: false,
                sock: None,
            }),
            queued: AtomicUsize::new(0),
            parked: AtomicUsize::new(0),
            wake_writer: Notify::new(),
            room: Notify::new(),
            drained: Notify::new(),
            written: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
        }
    }

    /// Queues a frame, waiting while the queue is full; `false` once the writer is gone.
    pub(crate) async fn send(&self, frame: Bytes) -> bool {
        match self.put(&frame, Wake::Writer) {
            Put::Queued => true,
            Put::Closed => false,
            Put::Full => self.put_when_room(&frame, Wake::Writer).await,
        }
    }

    /// Queues the frame `encode` appends to the buffer, waiting while the queue is full:
    /// `Ok(false)` once the writer is gone, `Err` (nothing queued) if `encode` failed.
    pub(crate) async fn send_with<E>(
        &self,
        encode: impl FnOnce(&mut BytesMut) -> Result<(), E>,
    ) -> Result<bool, E> {
        self.send_waking(encode, Wake::Writer).await
    }

    /// [`send_with`](Self::send_with), then `wake` for the writer if the queue was empty.
    ///
    /// The frame is encoded before the queue's lock is taken (into the thread's scratch,
    /// see [`with_scratch`]) and copied in under it: encoding under the lock made callers
    /// on two threads and the writer wait on each other.
    pub(crate) async fn send_waking<E>(
        &self,
        encode: impl FnOnce(&mut BytesMut) -> Result<(), E>,
        wake: Wake,
    ) -> Result<bool, E> {
        let first = with_scratch(|frame| {
            encode(frame)?;
            Ok(match self.put(frame, wake) {
                Put::Queued => Ok(true),
                Put::Closed => Ok(false),
                // Kept past the wait for room, which the scratch cannot be.
                Put::Full => Err(Bytes::copy_from_slice(frame)),
            })
        })?;
        Ok(match first {
            Ok(sent) => sent,
            Err(frame) => self.put_when_room(&frame, wake).await,
        })
    }

    /// Appends the encoded `frame` if the queue has room, then `wake` for the writer if the
    /// queue was empty.
    fn put(&self, frame: &[u8], wake: Wake) -> Put {
        let mut q = self.queue.lock();
        if q.closed {
            return Put::Closed;
        }
        match self.append(&mut q, frame, wake) {
            Some(()) => Put::Queued,
            None => Put::Full,
        }
    }

    /// [`put`](Self::put), waiting while the queue is full; `false` once the writer is gone.
    async fn put_when_room(&self, frame: &[u8], wake: Wake) -> bool {
        self.when_room(|q| self.append(q, frame, wake))
            .await
            .is_some()
    }

    /// Appends `frame` to `q` unless it is full.
    fn append(&self, q: &mut Queue, frame: &[u8], wake: Wake) -> Option<()> {
        if q.is_full() {
            return None;
        }
        q.buf.extend_from_slice(frame);
        self.added(q, false, wake);
        Some(())
    }

    /// Queues a plain publication (no groups, acknowledgement or answer) of a small
    /// `payload` on `topic`, waiting while the queue is full; `false` once the writer is
    /// gone. It joins the batch of publications the queue ends with when that one is on
    /// the same topic and has room (see [`Batch`]), else starts one.
    pub(crate) async fn send_publication(&self, topic: &str, payload: &[u8]) -> bool {
        let queued = self.when_room(|q| {
            let joins = q.batch.filter(|b| b.takes(&q.buf, topic, payload));
            if let Some(b) = joins.filter(|_| q.buf.len() < OUTBOUND_BYTES) {
                b.add(&mut q.buf, payload);
            } else if q.is_full() {
                return None;
            } else {
                let b = Batch::begin(&mut q.buf, topic, payload);
                self.added(q, false, Wake::Writer);
                q.batch = Some(b);
            }
            Some(())
        });
        queued.await.is_some()
    }

    /// Runs `put` on the queue, waiting for room while it finds none (returns `None`);
    /// `None` once the writer is gone.
    async fn when_room<R>(&self, mut put: impl FnMut(&mut Queue) -> Option<R>) -> Option<R> {
        loop {
            // Created before the check: a take between the check and the wait still wakes it.
            let room = self.room.notified();
            {
                let mut q = self.queue.lock();
                if q.closed {
                    return None;
                }
                if let Some(r) = put(&mut q) {
                    return Some(r);
                }
            }
            room.await;
        }
    }

    /// Queues a frame without waiting, then `wake` for the writer if the queue was empty;
    /// `false` if the queue is full or closed.
    pub(crate) fn try_send(&self, frame: &[u8], wake: Wake) -> bool {
        matches!(self.put(frame, wake), Put::Queued)
    }

    /// Queues a frame from a task that must not wait, parking it beyond the bound when the
    /// queue is full. `Err` when too many are parked already (the peer is not reading).
    pub(crate) fn park(&self, frame: Bytes) -> Result<(), Overflow> {
        self.park_encoded(&frame, Wake::Writer)
    }

    /// [`park`](Self::park) for the frame `encode` appends (see [`send_with`](Self::send_with)),
    /// then `wake` for the writer if the queue was empty.
    pub(crate) fn park_with<E>(
        &self,
        encode: impl FnOnce(&mut BytesMut) -> Result<(), E>,
        wake: Wake,
    ) -> Result<Result<(), Overflow>, E> {
        // Encoded out of the lock, as in `send_waking`.
        with_scratch(|frame| {
            encode(frame)?;
            Ok(self.park_encoded(frame, wake))
        })
    }

    /// [`park`](Self::park) for an encoded frame, then `wake` for the writer if the queue
    /// was empty.
    fn park_encoded(&self, frame: &[u8], wake: Wake) -> Result<(), Overflow> {
        let mut q = self.queue.lock();
        if q.closed {
            return Ok(());
        }
        let full = q.is_full();
        if full && q.parked >= BACKLOG_LIMIT {
            return Err(Overflow(q.parked));
        }
        q.buf.extend_from_slice(frame);
        self.added(&mut q, full, wake);
        Ok(())
    }

    /// Counts the frame just appended to `q` (`parked` beyond the bound) and, for a first
    /// one, does what `wake` says.
    fn added(&self, q: &mut Queue, parked: bool, wake: Wake) {
        q.batch = None;
        q.frames += 1;
        self.queued.store(q.frames, Relaxed);
        if parked {
            q.parked += 1;
            self.parked.store(q.parked, Relaxed);
        }
        if q.frames == 1 {
            match wake {
                Wake::Writer => self.wake_writer.notify_one(),
                Wake::Through => self.write_through(q),
                Wake::Later => {}
            }
        }
    }

    /// Sends what was queued with [`Wake::Later`]: written from here if the writer is idle,
    /// else left to the writer. The reader calls it before it waits for anything.
    pub(crate) fn flush(&self) {
        let mut q = self.queue.lock();
        if q.frames > 0 {
            self.write_through(&mut q);
        }
    }

    /// Writes the queue to the socket from the calling task when the writer is idle, and
    /// wakes the writer for whatever the socket did not take (or when it cannot). Under
    /// the lock, so frames still leave in the order they were queued.
    fn write_through(&self, q: &mut Queue) {
        if q.writing {
            // The writer looks for more once its write is done.
            return;
        }
        let Some(sock) = q.sock.as_ref() else {
            self.wake_writer.notify_one();
            return;
        };
        // Errors (and a full socket buffer) are the writer's to meet: it retries, waits
        // or reports the failure.
        let n = sock.try_write(&q.buf).unwrap_or(0);
        if n < q.buf.len() {
            // Batch offsets no longer hold once bytes leave the front.
            q.buf.advance(n);
            q.batch = None;
            self.wake_writer.notify_one();
            return;
        }
        self.written.fetch_add(1, Relaxed);
        self.bytes.fetch_add(n as u64, Relaxed);
        let emptied = q.emptied();
        q.buf.clear();
        self.made_room(emptied);
    }

    /// Publishes an emptied queue's counts and wakes whoever waits on them: the reader
    /// for parked frames, senders for room.
    fn made_room(&self, e: Emptied) {
        self.queued.store(0, Relaxed);
        if e.parked > 0 {
            self.parked.store(0, Relaxed);
            self.drained.notify_waiters();
        }
        // Always: a sender may have found the queue full before a partial write-through
        // shrank it, so "full now" does not tell whether anyone waits.
        self.room.notify_waiters();
    }

    /// Frames parked beyond the bound, not yet taken by the writer.
    pub(crate) fn parked(&self) -> usize {
        self.parked.load(Relaxed)
    }

    /// Waits until no frame is parked (the reader's back-pressure on the peer).
    pub(crate) async fn drained(&self) {
        loop {
            let notified = self.drained.notified();
            if self.parked() == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Frames queued for the writer, parked ones included.
    pub(crate) fn queued(&self) -> usize {
        self.queued.load(Relaxed)
    }

    /// The writer begins a write: swaps the queue's frames into `into` (empty) and makes
    /// room for more; the number of frames taken. Until [`end_write`](Self::end_write),
    /// senders leave the socket to the writer.
    fn begin_write(&self, into: &mut BytesMut) -> usize {
        let mut q = self.queue.lock();
        let frames = q.frames;
        if frames == 0 {
            return 0;
        }
        let emptied = q.emptied();
        std::mem::swap(&mut q.buf, into);
        q.writing = true;
        drop(q);
        self.made_room(emptied);
        frames
    }

    /// Frames queued, read under the lock (the writer's own check).
    fn frames(&self) -> usize {
        self.queue.lock().frames
    }

    /// The writer finished writing what [`begin_write`](Self::begin_write) took: senders
    /// may write through again.
    fn end_write(&self) {
        self.queue.lock().writing = false;
    }

    /// Refuses further frames and wakes whoever waits for room (they fail).
    fn close_queue(&self) {
        self.queue.lock().closed = true;
        self.room.notify_waiters();
        self.drained.notify_waiters();
    }

    /// Writes what the queue holds to the socket, all at once, until `closed`; then
    /// flushes what was queued and shuts the socket down. A write blocked on a peer that
    /// does not read gives way to `closed` at once. With `sealer` (a shared secret) each
    /// write is encrypted as a whole: one batch of frames, one to a few records.
    pub(crate) async fn write_loop(
        &self,
        w: OwnedWriteHalf,
        closed: &tokio_util::sync::CancellationToken,
        mut sealer: Option<Sealer>,
    ) -> Option<String> {
        let w = Arc::new(w);
        if sealer.is_none() {
            // Encrypted batches are sealed by the writer alone.
            self.queue.lock().sock = Some(w.clone());
        }
        let mut buf = BytesMut::with_capacity(BUFFER);
        // The encrypted bytes of the batch in `buf` (with a secret only).
        let mut wire = BytesMut::new();
        let failure = loop {
            let notified = self.wake_writer.notified();
            if self.frames() == 0 {
                tokio::select! {
                    biased;
                    _ = notified => continue,
                    _ = closed.cancelled() => break None,
                }
            }
            drop(notified);
            if self.frames() == 1 {
                // Let the tasks woken together with us queue their frames first: on a busy
                // connection this turns one write per reply into one write per batch, and
                // on an idle one it costs a single trip through the scheduler.
                tokio::task::yield_now().await;
            }
            self.begin_write(&mut buf);
            let len = buf.len();
            let written = match sealer.as_mut() {
                None => write_until(&w, &mut buf, closed).await,
                Some(s) => {
                    if let Err(e) = s.seal(&buf, &mut wire) {
                        break Some(format!("cannot encrypt: {e}"));
                    }
                    buf.clear();
                    write_until(&w, &mut wire, closed).await
                }
            };
            self.end_write();
            match written {
                Ok(true) => {
                    self.written.fetch_add(1, Relaxed);
                    self.bytes.fetch_add(len as u64, Relaxed);
                    reuse(&mut buf);
                }
                Ok(false) => break None,
                Err(e) => break Some(format!("write failed: {e}")),
            }
        };
        // From here on the writer alone writes: it owns the socket again.
        self.queue.lock().sock = None;
        let owned = Arc::try_unwrap(w);
        if let (None, Ok(mut w)) = (&failure, owned) {
            let rest = if sealer.is_some() {
                &mut wire
            } else {
                &mut buf
            };
            self.drain(&mut w, rest, sealer.as_mut()).await;
        }
        self.close_queue();
        failure
    }

    /// After a close: writes what was queued before it (a refusal, last replies, a
    /// goodbye) while the peer keeps reading — at most [`FLUSH_LIMIT`] in all, and
    /// giving up after [`FLUSH_STALL`] without progress — then shuts the socket down.
    /// `rest` holds bytes ready for the socket (already encrypted with a `sealer`).
    async fn drain(
        &self,
        w: &mut OwnedWriteHalf,
        rest: &mut BytesMut,
        mut sealer: Option<&mut Sealer>,
    ) {
        let flush = async {
            let mut next = BytesMut::new();
            loop {
                while !rest.is_empty() {
                    match tokio::time::timeout(FLUSH_STALL, w.write_buf(rest)).await {
                        Ok(Ok(n)) if n > 0 => {}
                        _ => return,
                    }
                }
                next.clear();
                if self.begin_write(&mut next) == 0 {
                    break;
                }
                match sealer.as_deref_mut() {
                    None => rest.extend_from_slice(&next),
                    Some(s) => {
                        if s.seal(&next, rest).is_err() {
                            return;
                        }
                    }
                }
            }
            let _ = w.shutdown().await;
        };
        let _ = tokio::time::timeout(FLUSH_LIMIT, flush).await;
    }
}

/// Readies a written buffer for the next batch: empty, its room reclaimed, and back to
/// [`BUFFER`] if one large batch grew it (a connection that once sent 16 MiB does not keep
/// them).
fn reuse(buf: &mut BytesMut) {
    buf.clear();
    if buf.capacity() > 16 * BUFFER {
        *buf = BytesMut::with_capacity(BUFFER);
    } else {
        buf.reserve(BUFFER);
    }
}

/// Writes all of `data` unless `closed` comes first: `Ok(true)` when written, `Ok(false)`
/// when closed with `data` holding what is left (each write is all or nothing). Through
/// `&OwnedWriteHalf`, which senders writing through share (never while this runs).
async fn write_until(
    w: &OwnedWriteHalf,
    data: &mut BytesMut,
    closed: &tokio_util::sync::CancellationToken,
) -> std::io::Result<bool> {
    while data.has_remaining() {
        match w.try_write(data) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => data.advance(n),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                tokio::select! {
                    biased;
                    r = w.writable() => r?,
                    _ = closed.cancelled() => return Ok(false),
                }
            }
            Err(e) => return Err(e),
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
        let out = Outbound::new();
        for i in 0..OUTBOUND_QUEUE as u32 {
            assert!(out.try_send(&frame(i), Wake::Writer));
        }
        assert!(
            !out.try_send(&frame(0), Wake::Writer),
            "the queue is bounded"
        );
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
        let out = Outbound::new();
        let out = std::sync::Arc::new(out);
        for i in 0..OUTBOUND_QUEUE as u32 {
            assert!(out.try_send(&frame(i), Wake::Writer));
        }
        for i in 0..10 {
            out.park(frame(OUTBOUND_QUEUE as u32 + i)).ok().unwrap();
        }
        let closed = CancellationToken::new();
        let (o, c) = (out.clone(), closed.clone());
        let writer = tokio::spawn(async move { o.write_loop(w, &c, None).await });
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

    /// A sender waiting for room is woken by the writer's next take even when a partial
    /// write-through has meanwhile shrunk the queue below its bound (so it no longer looks
    /// full): a take always announces room.
    #[tokio::test]
    async fn a_take_wakes_senders_even_when_a_partial_write_unfilled_the_queue() {
        let out = std::sync::Arc::new(Outbound::new());
        assert!(out.try_send(&vec![7u8; OUTBOUND_BYTES], Wake::Later));
        let o = out.clone();
        let waiting = tokio::spawn(async move { o.send(Bytes::from_static(b"next")).await });
        // Time for the sender to find the queue full and wait.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(
            !waiting.is_finished(),
            "the queue is full: the sender waits"
        );
        // What a write-through that the socket took most of leaves behind.
        out.queue.lock().buf.advance(OUTBOUND_BYTES - 10);
        let mut taken = BytesMut::new();
        assert_eq!(out.begin_write(&mut taken), 1);
        let sent = tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("the take woke the waiting sender");
        assert!(sent.unwrap(), "queued once woken");
    }

    /// A connected pair: the queue's writer running on one end, the other end to read.
    async fn writing_pair() -> (
        std::sync::Arc<Outbound>,
        tokio::net::TcpStream,
        CancellationToken,
        tokio::task::JoinHandle<Option<String>>,
    ) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let (_, w) = client.into_split();
        let out = std::sync::Arc::new(Outbound::new());
        let closed = CancellationToken::new();
        let (o, c) = (out.clone(), closed.clone());
        let writer = tokio::spawn(async move { o.write_loop(w, &c, None).await });
        // Let the writer start and lend the queue its socket.
        while out.queue.lock().sock.is_none() {
            tokio::task::yield_now().await;
        }
        (out, server, closed, writer)
    }

    fn put(
        frame: &[u8],
    ) -> impl FnOnce(&mut BytesMut) -> Result<(), std::convert::Infallible> + '_ {
        move |buf| {
            buf.extend_from_slice(frame);
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_lone_frame_is_written_by_its_sender_while_the_writer_is_idle() {
        let (out, mut server, closed, writer) = writing_pair().await;
        assert!(out
            .send_waking(put(b"through"), Wake::Through)
            .await
            .unwrap());
        // No await since: only the sender can have written it.
        assert_eq!(out.queued(), 0, "written through, not left for the writer");
        assert_eq!(out.written.load(Relaxed), 1);
        // The same frame woken for the writer is still queued when the send returns.
        assert!(out.send_waking(put(b"writer"), Wake::Writer).await.unwrap());
        assert_eq!(out.queued(), 1);
        let mut got = [0u8; 13];
        server.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"throughwriter");
        closed.cancel();
        assert!(writer.await.unwrap().is_none());
    }

    #[tokio::test]
    async fn answers_queued_for_later_leave_together_on_flush() {
        let (out, mut server, closed, writer) = writing_pair().await;
        for f in [&b"one "[..], b"two ", b"three"] {
            out.park_with(put(f), Wake::Later).unwrap().ok().unwrap();
        }
        // Nobody was woken: the writer leaves them alone.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(out.queued(), 3);
        let mut got = [0u8; 13];
        let early = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            server.read_exact(&mut got[..1]),
        );
        assert!(early.await.is_err(), "nothing is sent before the flush");
        out.flush();
        assert_eq!(out.queued(), 0);
        server.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"one two three");
        closed.cancel();
        assert!(writer.await.unwrap().is_none());
    }

    #[tokio::test]
    async fn what_the_socket_does_not_take_the_writer_sends_after_it_in_order() {
        let (out, mut server, closed, writer) = writing_pair().await;
        // Far more than loopback buffers hold while nobody reads: the sender's write is
        // partial and the writer must finish the frame before the next one.
        let big: Vec<u8> = (0..8 * 1024 * 1024).map(|i| (i % 253) as u8).collect();
        assert!(out.send_waking(put(&big), Wake::Through).await.unwrap());
        assert_eq!(out.queued(), 1, "the rest is the writer's");
        assert!(out.send_waking(put(b"after"), Wake::Through).await.unwrap());
        let mut got = vec![0u8; big.len() + 5];
        server.read_exact(&mut got).await.unwrap();
        assert!(got[..big.len()] == big[..], "the big frame arrives whole");
        assert_eq!(&got[big.len()..], b"after");
        closed.cancel();
        assert!(writer.await.unwrap().is_none());
    }

    #[tokio::test]
    async fn with_a_sealer_every_batch_is_encrypted_and_opens_in_order() {
        use crate::proto::crypto::Opener;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        let (_r, w) = client.into_split();
        let out = Outbound::new();
        // Enough to make batches of several records (300 KiB).
        let frames: Vec<Bytes> = (0..300u32)
            .map(|i| Bytes::from(vec![(i % 251) as u8; 1024]))
            .collect();
        for f in &frames {
            assert!(out.try_send(f, Wake::Writer));
        }
        let key = [3u8; 32];
        let closed = CancellationToken::new();
        let c = closed.clone();
        let out = std::sync::Arc::new(out);
        let o = out.clone();
        let writer =
            tokio::spawn(async move { o.write_loop(w, &c, Some(Sealer::new(&key))).await });
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
