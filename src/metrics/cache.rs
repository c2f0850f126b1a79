//! Per-thread caches of metric records, for the hot paths (every call, every publication).
//!
//! Records live in a node's maps behind a lock and are handed out as `Arc`s; both the lock
//! word and the reference count are shared by every worker thread, and touching them on
//! each call cost several percent of the RPC benchmark's throughput. A thread instead keeps
//! the few records it used lately, keyed by their owner's process-unique id (not its
//! address, which a later node may reuse) and their name.

use std::cell::RefCell;
use std::sync::Arc;

/// Entries a thread keeps per cache.
const CACHED: usize = 16;

/// A per-thread cache: `(owner id, name) -> record`, oldest first.
pub(crate) type Cache<T> = RefCell<Vec<(u64, String, Arc<T>)>>;

/// `f` applied to the cached record for `(owner, name)`, made by `make` when missing.
pub(crate) fn cached<T, R>(
    cache: &'static std::thread::LocalKey<Cache<T>>,
    owner: u64,
    name: &str,
    make: impl FnOnce() -> Arc<T>,
    f: impl FnOnce(&T) -> R,
) -> R {
    cache.with(|c| {
        let mut c = c.borrow_mut();
        let at = match c.iter().position(|(o, n, _)| *o == owner && n == name) {
            Some(i) => i,
            None => {
                if c.len() >= CACHED {
                    c.remove(0);
                }
                c.push((owner, name.to_string(), make()));
                c.len() - 1
            }
        };
        f(&c[at].2)
    })
}
