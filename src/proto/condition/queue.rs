//! Storage behind the [`Table`](super::Table): interned sender names, the per-handler slab
//! of queued messages, and the per-unit FIFO queues that point into it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use super::{Amount, Consumed, Unit};

/// A sender's identity for comparisons: the address of its interned name. Never 0 for an
/// interned name, so 0 can mean "has sent nothing".
pub(super) type SenderId = usize;

/// Interns sender names so that every queued message from one sender shares one
/// `Arc<str>`, and senders compare by address instead of by string.
///
/// Names nobody references any more are swept when the set has doubled since the last
/// sweep, so memory stays proportional to the senders with queued messages. A sweep only
/// happens inside [`Names::intern`], which the table calls before evaluating anything, so
/// an id computed during an evaluation can never be freed and reused under it.
#[derive(Debug, Default)]
pub(super) struct Names {
    set: HashSet<Arc<str>>,
    sweep_at: usize,
}

impl Names {
    pub(super) fn intern(&mut self, name: &str) -> Arc<str> {
        if let Some(known) = self.set.get(name) {
            return Arc::clone(known);
        }
        if self.set.len() >= self.sweep_at {
            self.set.retain(|n| Arc::strong_count(n) > 1);
            self.sweep_at = (2 * self.set.len()).max(64);
        }
        let name: Arc<str> = name.into();
        self.set.insert(Arc::clone(&name));
        name
    }

    /// How many names are interned (swept or not yet).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.set.len()
    }

    /// The id of `name`, or 0 if it has not been interned.
    pub(super) fn id(&self, name: &str) -> SenderId {
        self.set.get(name).map_or(0, sender_id)
    }
}

pub(super) fn sender_id(name: &Arc<str>) -> SenderId {
    Arc::as_ptr(name).cast::<u8>() as usize
}

/// Queued messages per sender.
pub(super) type SenderCounts = HashMap<SenderId, u32, BuildHasherDefault<IdHasher>>;

/// Hashes a [`SenderId`] with one multiply. SipHash's flood resistance buys nothing for
/// keys the table made itself (addresses of its own allocations), and it was the largest
/// single cost of evaluating `P%` units.
#[derive(Debug, Default)]
pub(super) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(self.0.rotate_left(8) ^ u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        // Addresses are aligned (low bits zero); fold the product's well-mixed high half
        // into the low bits the hash table indexes with.
        let x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = x ^ (x >> 32);
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

/// A queued message, stored once per handler however many of its units hold it.
#[derive(Debug)]
pub(super) struct Entry<M> {
    /// Arrival order across the whole table, to hand messages over in order.
    pub(super) seq: u64,
    /// Interned (see [`Names`]).
    pub(super) sender: Arc<str>,
    pub(super) tag: Arc<str>,
    pub(super) msg: M,
    /// How many of the handler's queues hold this entry.
    refs: usize,
    /// Chosen by the firing being consumed.
    picked: bool,
}

impl<M> Entry<M> {
    pub(super) fn new(seq: u64, sender: Arc<str>, tag: Arc<str>, msg: M) -> Self {
        Entry {
            seq,
            sender,
            tag,
            msg,
            refs: 0,
            picked: false,
        }
    }

    pub(super) fn consumed(self) -> Consumed<M> {
        Consumed {
            sender: self.sender,
            tag: self.tag,
            msg: self.msg,
        }
    }
}

/// A slab of entries addressed by index, reusing freed indices.
#[derive(Debug)]
pub(super) struct Slots<M> {
    entries: Vec<Option<Entry<M>>>,
    free: Vec<usize>,
}

impl<M> Default for Slots<M> {
    fn default() -> Self {
        Slots {
            entries: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl<M> Slots<M> {
    /// Number of occupied slots.
    pub(super) fn len(&self) -> usize {
        self.entries.len() - self.free.len()
    }

    pub(super) fn insert(&mut self, entry: Entry<M>) -> usize {
        match self.free.pop() {
            Some(slot) => {
                self.entries[slot] = Some(entry);
                slot
            }
            None => {
                self.entries.push(Some(entry));
                self.entries.len() - 1
            }
        }
    }

    fn get(&self, slot: usize) -> Option<&Entry<M>> {
        self.entries.get(slot).and_then(Option::as_ref)
    }

    fn get_mut(&mut self, slot: usize) -> Option<&mut Entry<M>> {
        self.entries.get_mut(slot).and_then(Option::as_mut)
    }

    /// Notes that one more queue holds `slot`.
    pub(super) fn hold(&mut self, slot: usize) {
        if let Some(entry) = self.get_mut(slot) {
            entry.refs += 1;
        }
    }

    /// Notes that one queue let go of `slot`; frees it and returns `true` if none holds it.
    pub(super) fn release(&mut self, slot: usize) -> bool {
        let Some(entry) = self.get_mut(slot) else {
            return false;
        };
        entry.refs = entry.refs.saturating_sub(1);
        let unused = entry.refs == 0;
        if unused {
            self.take(slot);
        }
        unused
    }

    pub(super) fn take(&mut self, slot: usize) -> Option<Entry<M>> {
        let entry = self.entries.get_mut(slot)?.take()?;
        self.free.push(slot);
        Some(entry)
    }

    pub(super) fn mark(&mut self, slot: usize) {
        if let Some(entry) = self.get_mut(slot) {
            entry.picked = true;
        }
    }

    fn is_marked(&self, slot: usize) -> bool {
        self.get(slot).is_some_and(|e| e.picked)
    }

    /// Arrival order of `slot`'s message (0 for a free slot).
    pub(super) fn seq(&self, slot: usize) -> u64 {
        self.get(slot).map_or(0, |e| e.seq)
    }

    pub(super) fn sender(&self, slot: usize) -> SenderId {
        self.get(slot).map_or(0, |e| sender_id(&e.sender))
    }
}

/// A unit event and the slots of its queued messages, oldest first.
#[derive(Debug)]
pub(super) struct UnitQueue {
    pub(super) unit: Unit,
    pub(super) slots: VecDeque<usize>,
    /// For `P%` units only: queued messages per sender. Its length is the number of
    /// distinct queued senders, which rejects most evaluations without a scan.
    pub(super) senders: SenderCounts,
}

impl UnitQueue {
    pub(super) fn new(unit: Unit) -> Self {
        UnitQueue {
            unit,
            slots: VecDeque::new(),
            senders: SenderCounts::default(),
        }
    }

    fn counts_senders(&self) -> bool {
        matches!(self.unit.amount(), Amount::Percent(_))
    }

    pub(super) fn push_back(&mut self, slot: usize, sender: SenderId) {
        self.slots.push_back(slot);
        if self.counts_senders() {
            *self.senders.entry(sender).or_insert(0) += 1;
        }
    }

    pub(super) fn pop_front<M>(&mut self, slots: &Slots<M>) -> Option<usize> {
        let slot = self.slots.pop_front()?;
        forget(&mut self.senders, slots.sender(slot));
        Some(slot)
    }

    /// Drops the slots a firing consumed (marked with [`Slots::mark`]).
    pub(super) fn remove_marked<M>(&mut self, slots: &Slots<M>) {
        let UnitQueue {
            slots: queue,
            senders,
            ..
        } = self;
        queue.retain(|&slot| {
            let keep = !slots.is_marked(slot);
            if !keep {
                forget(senders, slots.sender(slot));
            }
            keep
        });
    }
}

/// One message from `sender` left a queue.
fn forget(senders: &mut SenderCounts, sender: SenderId) {
    if let Some(count) = senders.get_mut(&sender) {
        *count -= 1;
        if *count == 0 {
            senders.remove(&sender);
        }
    }
}
