//! The condition table: handlers, their per-unit queues, and when they fire.

use std::fmt;
use std::sync::Arc;

use super::queue::{sender_id, Entry, Names, SenderId, Slots, UnitQueue};
use super::{Amount, Condition, Peer, Shape, Unit};

/// Identifies a handler within one [`Table`]. Ids grow with registration order and are
/// never reused, so a stale id simply finds nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HandlerId(u64);

impl HandlerId {
    /// The id as a number (1 for the first handler added to a table).
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for HandlerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "handler #{}", self.0)
    }
}

/// A message handed to a handler by a firing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumed<M> {
    /// Name of the peer that sent it (shared by every handler that received it).
    pub sender: Arc<str>,
    /// Its tag.
    pub tag: Arc<str>,
    /// The message itself; each handler gets its own clone.
    pub msg: M,
}

/// A satisfied condition: call `handler` with `messages`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Firing<M> {
    /// The handler whose condition was satisfied.
    pub handler: HandlerId,
    /// The consumed messages, each once, in arrival order.
    pub messages: Vec<Consumed<M>>,
}

/// Registered conditions and the messages waiting for them.
///
/// `M` is the message type (the runtime uses its `Message`); it is cloned once per handler
/// that queues it.
///
/// # Semantics
///
/// - **Own queues.** Every handler keeps one FIFO queue per unit event of its condition, so
///   one message can feed several handlers. Within a handler, a message matching several
///   units is queued in each and counts for each, but a firing removes it from all of them:
///   a handler never receives the same message twice.
/// - **Consumption.** `N` takes the first N queued messages. `P%` takes, in FIFO order, the
///   first message of each of the first k distinct senders, k = max(1, ceil(P·n/100));
///   a sender's later messages stay queued. `A & B` takes both, `A | B` only the first
///   satisfied alternative; queues of the alternatives not taken are left alone.
/// - **Firing loops while satisfied.** MARO fires each handler at most once per call, so a
///   backlog only drains when unrelated messages happen to arrive. Here every call leaves
///   every handler it evaluated unsatisfied: that lets [`offer`](Self::offer) evaluate only
///   the handlers the message reached. It terminates because each firing consumes at least
///   one queued message and nothing is queued during the loop.
/// - **Departed senders.** A `N` unit counts every queued message, including ones from
///   peers that have left since (they were real messages). A `P%` unit counts only senders
///   that are live *now* and match its source, because P% is a fraction of the live
///   members; messages from departed senders stay queued (and count again if that peer
///   returns) until they are consumed by another unit or age out of the bounded queue. A
///   message the node sends to itself counts for `N` but not for `P%`, since `peers`
///   excludes this node.
/// - **Bounded queues.** Each unit queue holds `queue_capacity` messages, raised to what
///   its unit needs (N for `N`, k for `P%`) so a unit is never unsatisfiable by
///   construction. When full, the oldest message is dropped; [`dropped`](Self::dropped)
///   counts messages a handler lost from all its queues without receiving them.
#[derive(Debug)]
pub struct Table<M> {
    capacity: usize,
    next_id: u64,
    next_seq: u64,
    /// Sorted by id (ids grow), which is also the order firings are reported in.
    handlers: Vec<Handler<M>>,
    names: Names,
    scratch: Scratch,
}

impl<M: Clone> Table<M> {
    /// An empty table whose unit queues hold `queue_capacity` messages each (at least 1).
    pub fn new(queue_capacity: usize) -> Self {
        Table {
            capacity: queue_capacity.max(1),
            next_id: 0,
            next_seq: 0,
            handlers: Vec::new(),
            names: Names::default(),
            scratch: Scratch::default(),
        }
    }

    /// Registers `condition`; its queues start empty, so it cannot fire until a message
    /// arrives or [`reevaluate`](Self::reevaluate) is called.
    pub fn add(&mut self, condition: Condition) -> HandlerId {
        self.next_id += 1;
        let id = HandlerId(self.next_id);
        self.handlers.push(Handler::new(id, condition));
        id
    }

    /// Unregisters a handler and drops its queued messages; `false` if it was not there.
    pub fn remove(&mut self, id: HandlerId) -> bool {
        match self.index(id) {
            Some(i) => {
                self.handlers.remove(i);
                true
            }
            None => false,
        }
    }

    /// A message arrives from `sender` (name + role) with `tag`: queue it in every handler
    /// unit that matches, then evaluate those handlers against the live `peers`; return
    /// every firing in handler order.
    pub fn offer(
        &mut self,
        sender: Peer<'_>,
        tag: &str,
        msg: M,
        peers: &[Peer<'_>],
    ) -> Vec<Firing<M>> {
        self.next_seq += 1;
        // Interned before any evaluation starts: see `Names` on why the order matters.
        let name = self.names.intern(sender.name);
        let mut arrival = Arrival {
            seq: self.next_seq,
            sender,
            name,
            tag,
            shared_tag: None,
            msg,
        };
        let mut firings = Vec::new();
        let mut call = Call::new(peers, &self.names, &mut self.scratch);
        for handler in &mut self.handlers {
            if handler.enqueue(&mut arrival, self.capacity, &mut call) {
                handler.drain(&mut call, &mut firings);
            }
        }
        firings
    }

    /// Membership changed: re-evaluate every handler (a worker leaving lowers n, so `60%`
    /// may now hold).
    pub fn reevaluate(&mut self, peers: &[Peer<'_>]) -> Vec<Firing<M>> {
        let mut firings = Vec::new();
        let mut call = Call::new(peers, &self.names, &mut self.scratch);
        for handler in &mut self.handlers {
            handler.drain(&mut call, &mut firings);
        }
        firings
    }

    /// How many queued messages `id` lost to overflow so far (0 for an unknown id).
    pub fn dropped(&self, id: HandlerId) -> u64 {
        self.handler(id).map_or(0, |h| h.dropped)
    }

    /// How many distinct messages are waiting in `id`'s queues (0 for an unknown id).
    pub fn pending(&self, id: HandlerId) -> usize {
        self.handler(id).map_or(0, |h| h.slots.len())
    }

    /// The condition registered as `id`.
    pub fn condition(&self, id: HandlerId) -> Option<&Condition> {
        self.handler(id).map(|h| &h.condition)
    }

    /// Number of registered handlers.
    pub fn len(&self) -> usize {
        self.handlers.len()
    }

    /// Whether no handler is registered.
    pub fn is_empty(&self) -> bool {
        self.handlers.is_empty()
    }

    /// How many sender names are interned, for tests of the sweep.
    #[cfg(test)]
    pub(super) fn interned(&self) -> usize {
        self.names.len()
    }

    fn index(&self, id: HandlerId) -> Option<usize> {
        self.handlers.binary_search_by_key(&id, |h| h.id).ok()
    }

    fn handler(&self, id: HandlerId) -> Option<&Handler<M>> {
        self.index(id).and_then(|i| self.handlers.get(i))
    }
}

/// The message being offered. The shared tag string is made only once some handler
/// actually queues the message.
struct Arrival<'a, M> {
    seq: u64,
    sender: Peer<'a>,
    /// `sender.name`, interned.
    name: Arc<str>,
    tag: &'a str,
    shared_tag: Option<Arc<str>>,
    msg: M,
}

impl<M: Clone> Arrival<'_, M> {
    fn entry(&mut self) -> Entry<M> {
        let tag = self.shared_tag.get_or_insert_with(|| self.tag.into());
        Entry::new(
            self.seq,
            Arc::clone(&self.name),
            Arc::clone(tag),
            self.msg.clone(),
        )
    }
}

/// Buffers kept between calls so that evaluating allocates nothing in the steady state.
#[derive(Debug, Default)]
struct Scratch {
    /// Sender id of each peer, 0 if its name is not interned (then nothing from it is
    /// queued); filled on first use in a call.
    peer_ids: Vec<SenderId>,
    /// Live peers per source pattern; the first `sources_used` entries are this call's.
    sources: Vec<LiveSet>,
    sources_used: usize,
    /// Live senders with queued messages, while a `P%` unit picks.
    ready: Vec<SenderId>,
    /// Slots chosen so far by the evaluation in progress.
    picked: Vec<usize>,
}

/// The live peers matching one source pattern, as sender ids.
#[derive(Debug, Default)]
struct LiveSet {
    source: String,
    ids: Vec<SenderId>,
}

/// One `offer` or `reevaluate` call: the live peers, and what has been derived from them.
/// Many handlers share a source pattern, so each live set is computed once per call.
struct Call<'c, 'p> {
    peers: &'c [Peer<'p>],
    names: &'c Names,
    scratch: &'c mut Scratch,
    peer_ids_ready: bool,
}

impl<'c, 'p> Call<'c, 'p> {
    fn new(peers: &'c [Peer<'p>], names: &'c Names, scratch: &'c mut Scratch) -> Self {
        scratch.sources_used = 0;
        Call {
            peers,
            names,
            scratch,
            peer_ids_ready: false,
        }
    }

    /// Index in `scratch.sources` of the live set for `unit`'s source.
    fn live_set(&mut self, unit: &Unit) -> usize {
        let used = self.scratch.sources_used;
        let cached = self.scratch.sources[..used]
            .iter()
            .position(|l| l.source == unit.source());
        if let Some(i) = cached {
            return i;
        }
        self.fill_peer_ids();
        if used == self.scratch.sources.len() {
            self.scratch.sources.push(LiveSet::default());
        }
        let Scratch {
            peer_ids, sources, ..
        } = &mut *self.scratch;
        let set = &mut sources[used];
        set.source.clear();
        set.source.push_str(unit.source());
        set.ids.clear();
        let matching = self.peers.iter().zip(peer_ids.iter());
        set.ids.extend(
            matching
                .filter(|(p, _)| unit.matches_peer(p))
                .map(|(_, &id)| id),
        );
        self.scratch.sources_used += 1;
        used
    }

    fn fill_peer_ids(&mut self) {
        if !self.peer_ids_ready {
            let ids = self.peers.iter().map(|p| self.names.id(p.name));
            self.scratch.peer_ids.clear();
            self.scratch.peer_ids.extend(ids);
            self.peer_ids_ready = true;
        }
    }

    /// How many distinct senders a `p%` unit needs now; 0 if no live peer matches.
    fn need(&mut self, unit: &Unit, p: u8) -> usize {
        let set = self.live_set(unit);
        let n = self.scratch.sources[set].ids.len();
        if n == 0 {
            return 0;
        }
        need(p, n)
    }
}

/// Distinct senders a `p%` unit needs out of `n` live matching peers: max(1, ceil(p·n/100)).
fn need(p: u8, n: usize) -> usize {
    n.saturating_mul(usize::from(p)).div_ceil(100).max(1)
}

/// How a handler's condition is evaluated: the condition tree with units replaced by
/// indices into the handler's queues.
#[derive(Debug)]
enum Plan {
    Unit(usize),
    All(Vec<Plan>),
    Any(Vec<Plan>),
}

impl Plan {
    fn compile(condition: &Condition, queues: &mut Vec<UnitQueue>) -> Plan {
        let mut compile_all =
            |parts: &[Condition]| parts.iter().map(|p| Self::compile(p, queues)).collect();
        match condition.shape() {
            Shape::Unit(unit) => {
                queues.push(UnitQueue::new(unit.clone()));
                Plan::Unit(queues.len() - 1)
            }
            Shape::All(parts) => Plan::All(compile_all(parts)),
            Shape::Any(parts) => Plan::Any(compile_all(parts)),
        }
    }
}

#[derive(Debug)]
struct Handler<M> {
    id: HandlerId,
    condition: Condition,
    plan: Plan,
    /// One queue per unit event, in the condition's left-to-right order.
    queues: Vec<UnitQueue>,
    /// The messages the queues refer to, stored once per handler.
    slots: Slots<M>,
    dropped: u64,
}

impl<M: Clone> Handler<M> {
    fn new(id: HandlerId, condition: Condition) -> Self {
        let mut queues = Vec::new();
        let plan = Plan::compile(&condition, &mut queues);
        Handler {
            id,
            condition,
            plan,
            queues,
            slots: Slots::default(),
            dropped: 0,
        }
    }

    /// Queues the arrival in every matching unit; whether any matched.
    fn enqueue(&mut self, arrival: &mut Arrival<'_, M>, capacity: usize, call: &mut Call) -> bool {
        let mut slot = None;
        for u in 0..self.queues.len() {
            let unit = &self.queues[u].unit;
            if unit.matches_tag(arrival.tag) && unit.matches_peer(&arrival.sender) {
                let slot = *slot.get_or_insert_with(|| self.slots.insert(arrival.entry()));
                self.push(u, slot, sender_id(&arrival.name), capacity, call);
            }
        }
        slot.is_some()
    }

    /// Appends `slot` to queue `u`, first dropping the oldest entries if it is full.
    fn push(&mut self, u: usize, slot: usize, sender: SenderId, capacity: usize, call: &mut Call) {
        let bound = self.bound(u, capacity, call);
        self.slots.hold(slot);
        while self.queues[u].slots.len() >= bound {
            let Some(old) = self.queues[u].pop_front(&self.slots) else {
                break;
            };
            if self.slots.release(old) {
                self.dropped += 1;
            }
        }
        self.queues[u].push_back(slot, sender);
    }

    /// Queue `u`'s size limit: `capacity`, raised to what its unit needs right now.
    fn bound(&self, u: usize, capacity: usize, call: &mut Call) -> usize {
        let queue = &self.queues[u];
        if queue.slots.len() < capacity {
            return capacity; // not full: skip computing the need
        }
        let need = match queue.unit.amount() {
            Amount::Count(n) => usize::try_from(n).unwrap_or(usize::MAX),
            Amount::Percent(p) => call.need(&queue.unit, p),
        };
        capacity.max(need)
    }

    /// Fires while the condition holds, appending each firing to `out`.
    fn drain(&mut self, call: &mut Call, out: &mut Vec<Firing<M>>) {
        // Each firing consumes at least one slot and none are added here, so this bound is
        // never reached; it makes termination obvious rather than argued.
        for _ in 0..=self.slots.len() {
            call.scratch.picked.clear();
            if !self.eval(&self.plan, call) || call.scratch.picked.is_empty() {
                return;
            }
            let mut picked = std::mem::take(&mut call.scratch.picked);
            out.push(self.consume(&mut picked));
            call.scratch.picked = picked;
        }
    }

    /// Whether `plan` holds; if so its chosen slots are appended to `picked`, and if not
    /// `picked` is left as it was.
    fn eval(&self, plan: &Plan, call: &mut Call) -> bool {
        match plan {
            Plan::Unit(u) => self.eval_unit(&self.queues[*u], call),
            Plan::All(parts) => {
                let mark = call.scratch.picked.len();
                let ok = parts.iter().all(|p| self.eval(p, call));
                if !ok {
                    call.scratch.picked.truncate(mark);
                }
                ok
            }
            Plan::Any(parts) => parts.iter().any(|p| self.eval(p, call)),
        }
    }

    fn eval_unit(&self, queue: &UnitQueue, call: &mut Call) -> bool {
        match queue.unit.amount() {
            Amount::Count(n) => {
                let n = usize::try_from(n).unwrap_or(usize::MAX);
                let ok = queue.slots.len() >= n;
                if ok {
                    call.scratch.picked.extend(queue.slots.iter().take(n));
                }
                ok
            }
            Amount::Percent(p) => self.eval_percent(queue, p, call),
        }
    }

    /// Picks the first message of each of the first k distinct live senders.
    fn eval_percent(&self, queue: &UnitQueue, p: u8, call: &mut Call) -> bool {
        if queue.senders.is_empty() {
            return false; // the common case for a quiet unit: skip the live set
        }
        let k = call.need(&queue.unit, p);
        if k == 0 || queue.senders.len() < k {
            return false; // fewer distinct senders queued than needed, live or not
        }
        let set = call.live_set(&queue.unit);
        let Scratch {
            sources,
            ready,
            picked,
            ..
        } = &mut *call.scratch;
        ready.clear();
        let live = sources[set].ids.iter();
        ready.extend(live.filter(|id| queue.senders.contains_key(id)));
        // A member listed twice in `peers` must still be picked only once.
        ready.sort_unstable();
        ready.dedup();
        if ready.len() < k {
            return false;
        }
        // Every sender in `ready` has a queued message, so this scan picks exactly k.
        let mark = picked.len();
        for &slot in &queue.slots {
            let sender = self.slots.sender(slot);
            if let Some(i) = ready.iter().position(|&r| r == sender) {
                ready.swap_remove(i);
                picked.push(slot);
                if picked.len() - mark == k {
                    return true;
                }
            }
        }
        picked.truncate(mark);
        false
    }

    /// Removes the `picked` slots from every queue and returns them as a firing.
    fn consume(&mut self, picked: &mut Vec<usize>) -> Firing<M> {
        // Arrival order; a slot picked by two units appears twice, adjacent after sorting.
        picked.sort_unstable_by_key(|&slot| (self.slots.seq(slot), slot));
        picked.dedup();
        for &slot in picked.iter() {
            self.slots.mark(slot);
        }
        for queue in &mut self.queues {
            queue.remove_marked(&self.slots);
        }
        let taken = picked.iter().filter_map(|&slot| self.slots.take(slot));
        Firing {
            handler: self.id,
            messages: taken.map(Entry::consumed).collect(),
        }
    }
}
