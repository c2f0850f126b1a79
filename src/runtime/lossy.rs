//! A bounded queue that never blocks its producer: when full, the oldest item is dropped
//! and counted. Used where a slow consumer (a handler, a `receive` loop) must not stall the
//! connection reader that produces for it (DESIGN §9, §12: no silent loss, no back-pressure
//! storms).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use tokio::sync::Notify;

/// A bounded FIFO with drop-oldest overflow and an async `pop`.
#[derive(Debug)]
pub(crate) struct Lossy<T> {
    items: Mutex<State<T>>,
    ready: Notify,
    capacity: usize,
    dropped: AtomicU64,
}

#[derive(Debug)]
struct State<T> {
    items: VecDeque<T>,
    closed: bool,
}

impl<T> Lossy<T> {
    /// An empty queue holding at most `capacity` items (at least 1).
    pub(crate) fn new(capacity: usize) -> Self {
        Lossy {
            items: Mutex::new(State {
                items: VecDeque::new(),
                closed: false,
            }),
            ready: Notify::new(),
            capacity: capacity.max(1),
            dropped: AtomicU64::new(0),
        }
    }

    /// Appends `item`, dropping the oldest one if the queue is full. Returns `false` (and
    /// drops `item`) once the queue is closed.
    pub(crate) fn push(&self, item: T) -> bool {
        {
            let mut st = self.items.lock().unwrap();
            if st.closed {
                return false;
            }
            if st.items.len() >= self.capacity {
                st.items.pop_front();
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            st.items.push_back(item);
        }
        self.ready.notify_one();
        true
    }

    /// The oldest item, waiting for one; `None` once the queue is closed and empty.
    pub(crate) async fn pop(&self) -> Option<T> {
        loop {
            // Registered before looking, so a push between the look and the wait still
            // wakes us (`notify_one` also stores a permit if nobody waits yet).
            let notified = self.ready.notified();
            {
                let mut st = self.items.lock().unwrap();
                if let Some(item) = st.items.pop_front() {
                    if !st.items.is_empty() {
                        // Pass the wake-up on: other consumers may be waiting.
                        self.ready.notify_one();
                    }
                    return Some(item);
                }
                if st.closed {
                    return None;
                }
            }
            notified.await;
        }
    }

    /// Ends the queue: pushes are refused, `pop` drains what is left and then ends.
    pub(crate) fn close(&self) {
        self.items.lock().unwrap().closed = true;
        self.ready.notify_waiters();
        self.ready.notify_one();
    }

    /// Items waiting.
    pub(crate) fn len(&self) -> usize {
        self.items.lock().unwrap().items.len()
    }

    /// Items dropped because the queue was full.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn overflow_drops_the_oldest_and_counts() {
        let q = Lossy::new(2);
        for i in 1..=4 {
            assert!(q.push(i));
        }
        assert_eq!((q.len(), q.dropped()), (2, 2));
        assert_eq!(q.pop().await, Some(3));
        assert_eq!(q.pop().await, Some(4));
    }

    #[tokio::test]
    async fn pop_waits_for_a_push_and_ends_after_close() {
        let q = std::sync::Arc::new(Lossy::new(4));
        let waiter = tokio::spawn({
            let q = q.clone();
            async move { (q.pop().await, q.pop().await) }
        });
        q.push("a");
        q.close();
        assert!(!q.push("b"), "a closed queue refuses items");
        assert_eq!(waiter.await.unwrap(), (Some("a"), None));
    }
}
