//! A count of changes that readers can check without the lock of what it counts.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Grows whenever what it counts changes (bumped under that state's write lock). Clones
/// share the count, so a publishing loop can check a route's freshness from a plain atomic
/// load instead of taking the read lock of each table for it.
#[derive(Default, Clone)]
pub(crate) struct Changes(Arc<AtomicU64>);

impl Changes {
    /// Counts one change, under the write lock of the changed state: a reader that sees the
    /// new count and then takes the lock sees the whole change.
    pub(crate) fn bump(&self) {
        self.0.fetch_add(1, Ordering::Release);
    }

    /// The count now.
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }
}
