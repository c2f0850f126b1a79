//! A bounded queue that never blocks its producer: when full, the oldest item is dropped and
//! counted. Used wherever a slow consumer (a subscriber, a message handler, a `receive`
//! loop) must not stall the connection reader producing for it. Written by hand because
//! neither tokio's nor futures' channels drop the *oldest* item (tokio's `broadcast` does,
//! but clones every item for every receiver).
//!
//! A lossless subscriber's queue ([`Full::Wait`]) drops nothing instead: its producers
//! push, see that it is full, and wait for [`room`](DropQueue::room) before producing more
//! (a connection reader stops reading, a local publisher waits), so it holds at most its
//! capacity plus what each producer that found room at the same instant adds at once: one
//! publication, or the rest of one `Publications` frame (at most about a hundred small
//! ones, as a frame of them stays within 1 KiB).

use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use tokio::sync::Notify;

/// What a full queue does with one more item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Full {
    /// Drops the oldest item and counts it: the producer never waits.
    DropOldest,
    /// Keeps every item; the producer waits for [`room`](DropQueue::room) before the next.
    Wait,
}

/// One consumer's queue. Full: `push` drops the oldest item and returns it (or, with
/// [`Full::Wait`], keeps it and leaves the waiting to the producer). Closed: `push`
/// returns the item, and `pop` yields what is left, then `None`.
pub(crate) struct DropQueue<T> {
    inner: Mutex<Inner<T>>,
    ready: Notify,
    /// Wakes producers of a [`Full::Wait`] queue once the consumer made room (or it closed).
    room: Notify,
    capacity: usize,
    full: Full,
    dropped: AtomicU64,
}

struct Inner<T> {
    items: VecDeque<T>,
    closed: bool,
}

impl<T> DropQueue<T> {
    /// A drop-oldest queue of at most `capacity` items (at least one).
    pub(crate) fn new(capacity: usize) -> Self {
        Self::with_policy(capacity, Full::DropOldest)
    }

    /// A queue of `capacity` items (at least one) that does `full` when full.
    pub(crate) fn with_policy(capacity: usize, full: Full) -> Self {
        DropQueue {
            inner: Mutex::new(Inner {
                items: VecDeque::new(),
                closed: false,
            }),
            ready: Notify::new(),
            room: Notify::new(),
            capacity: capacity.max(1),
            full,
            dropped: AtomicU64::new(0),
        }
    }

    /// What this queue does when full.
    pub(crate) fn policy(&self) -> Full {
        self.full
    }

    /// Appends `item` and wakes the consumer. Returns the item pushed out to make room
    /// (counted as dropped), or `item` itself if the queue is closed.
    pub(crate) fn push(&self, item: T) -> Option<T> {
        let out = self.push_quiet(item);
        self.wake();
        out
    }

    /// Like [`push`](Self::push) without waking the consumer: a producer queuing a batch
    /// calls [`wake`](Self::wake) once at its end, sparing the consumer a wake-up (a
    /// context switch when it waits on another thread) per item.
    pub(crate) fn push_quiet(&self, item: T) -> Option<T> {
        let out = {
            let mut q = self.inner.lock();
            if q.closed {
                return Some(item);
            }
            let out = if q.items.len() >= self.capacity && self.full == Full::DropOldest {
                q.items.pop_front()
            } else {
                None
            };
            q.items.push_back(item);
            out
        };
        if out.is_some() {
            self.dropped.fetch_add(1, Relaxed);
        }
        out
    }

    /// Whether the queue holds its capacity or more (and is open): a [`Full::Wait`]
    /// producer waits for [`room`](Self::room) before producing more.
    pub(crate) fn is_full(&self) -> bool {
        let q = self.inner.lock();
        !q.closed && q.items.len() >= self.capacity
    }

    /// Waits until the queue holds less than its capacity, or is closed (then nothing more
    /// will be taken, so there is nothing to wait for).
    pub(crate) async fn room(&self) {
        loop {
            // Created before the check: a pop between the check and the wait still wakes it.
            let notified = self.room.notified();
            if !self.is_full() {
                return;
            }
            notified.await;
        }
    }

    /// Wakes the consumer for what was pushed. A stored permit wakes it even if it is not
    /// waiting yet.
    pub(crate) fn wake(&self) {
        self.ready.notify_one();
    }

    /// The next item, waiting for one; `None` once closed and drained. One consumer only.
    pub(crate) async fn pop(&self) -> Option<T> {
        self.when_ready(VecDeque::pop_front).await.flatten()
    }

    /// Moves up to `max` items into `into`, waiting for at least one; `false` once closed
    /// and drained. One lock per batch: a fast consumer does not contend with the producer
    /// for every item.
    pub(crate) async fn pop_batch(&self, into: &mut VecDeque<T>, max: usize) -> bool {
        let take = |items: &mut VecDeque<T>| {
            let n = items.len().min(max.max(1));
            into.extend(items.drain(..n));
        };
        self.when_ready(take).await.is_some()
    }

    /// Waits until items are queued and applies `take` to them under the lock; `None` once
    /// closed and drained.
    async fn when_ready<R>(&self, mut take: impl FnMut(&mut VecDeque<T>) -> R) -> Option<R> {
        loop {
            {
                let mut q = self.inner.lock();
                if !q.items.is_empty() {
                    let r = take(&mut q.items);
                    drop(q);
                    if self.full == Full::Wait {
                        self.room.notify_waiters();
                    }
                    return Some(r);
                }
                if q.closed {
                    return None;
                }
            }
            self.ready.notified().await;
        }
    }

    /// Refuses further items and wakes the consumer; items already queued stay poppable.
    pub(crate) fn close(&self) {
        self.inner.lock().closed = true;
        self.ready.notify_one();
        self.room.notify_waiters();
    }

    /// Removes every queued item (the caller decides what dropping them means).
    pub(crate) fn drain(&self) -> Vec<T> {
        let items = self.inner.lock().items.drain(..).collect();
        self.room.notify_waiters();
        items
    }

    /// Items waiting.
    pub(crate) fn len(&self) -> usize {
        self.inner.lock().items.len()
    }

    /// Items dropped so far because the queue was full.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn full_queue_drops_oldest_and_counts() {
        let q = DropQueue::new(2);
        assert_eq!(q.push(1), None);
        assert_eq!(q.push(2), None);
        assert_eq!(q.push(3), Some(1));
        assert_eq!(q.dropped(), 1);
        assert_eq!(q.pop().await, Some(2));
        assert_eq!(q.pop().await, Some(3));
        assert_eq!(q.len(), 0);
    }

    #[tokio::test]
    async fn a_waiting_queue_keeps_everything_and_signals_room() {
        let q = std::sync::Arc::new(DropQueue::with_policy(2, Full::Wait));
        assert_eq!(q.push(1), None);
        assert!(!q.is_full());
        assert_eq!(q.push(2), None);
        assert!(q.is_full());
        // A producer that found room at the same instant as another may exceed it by one.
        assert_eq!(q.push(3), None);
        assert_eq!(q.dropped(), 0);
        let q2 = q.clone();
        let waiter = tokio::spawn(async move { q2.room().await });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "no room yet");
        assert_eq!(q.pop().await, Some(1));
        assert!(q.is_full(), "two left of capacity two");
        assert_eq!(q.pop().await, Some(2));
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("a pop below capacity wakes the producer")
            .unwrap();
        assert_eq!(q.pop().await, Some(3));
    }

    #[tokio::test]
    async fn closing_a_full_waiting_queue_releases_its_producers() {
        let q = std::sync::Arc::new(DropQueue::with_policy(1, Full::Wait));
        q.push(1);
        let q2 = q.clone();
        let waiter = tokio::spawn(async move { q2.room().await });
        tokio::task::yield_now().await;
        q.close();
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("closing wakes the producer")
            .unwrap();
    }

    #[tokio::test]
    async fn close_drains_then_ends_and_refuses() {
        let q = DropQueue::new(4);
        q.push("a");
        q.close();
        assert_eq!(q.push("b"), Some("b"));
        assert_eq!(q.pop().await, Some("a"));
        assert_eq!(q.pop().await, None);
    }

    #[tokio::test]
    async fn quiet_pushes_wait_for_the_wake() {
        let q = std::sync::Arc::new(DropQueue::new(4));
        let q2 = q.clone();
        let t = tokio::spawn(async move { (q2.pop().await, q2.pop().await) });
        tokio::task::yield_now().await;
        q.push_quiet(1);
        q.push_quiet(2);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(!t.is_finished(), "woken before wake()");
        q.wake();
        assert_eq!(t.await.unwrap(), (Some(1), Some(2)));
    }

    #[tokio::test]
    async fn batches_take_at_most_max_then_end_when_closed() {
        let q = DropQueue::new(8);
        for i in 0..5 {
            q.push(i);
        }
        q.close();
        let mut got = VecDeque::new();
        assert!(q.pop_batch(&mut got, 3).await);
        assert_eq!(got, [0, 1, 2]);
        assert!(q.pop_batch(&mut got, 3).await);
        assert_eq!(got, [0, 1, 2, 3, 4]);
        assert!(!q.pop_batch(&mut got, 3).await);
    }

    #[tokio::test]
    async fn waiting_consumer_is_woken() {
        let q = std::sync::Arc::new(DropQueue::new(4));
        let q2 = q.clone();
        let t = tokio::spawn(async move { q2.pop().await });
        tokio::task::yield_now().await;
        q.push(7);
        assert_eq!(t.await.unwrap(), Some(7));
    }
}
