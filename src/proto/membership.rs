//! SWIM membership, sans-IO: foca plus what mpreg adds on top.
//!
//! Inputs are `handle_*` methods; outputs are pulled with `poll_transmit` (datagrams to
//! send), `poll_timer` (timers to schedule, handed back through [`Membership::handle_timer`]
//! when due) and `poll_event` (membership changes). Call the polls after every input, in
//! that order. Time and randomness come from outside (the RNG is seeded by the caller), so
//! the same code runs on real sockets and in deterministic simulation.
//!
//! On top of foca:
//! - catalog versions travel as custom broadcasts (`id`, `version`), so a peer holding an
//!   older catalog copy learns it must pull the new one;
//! - names: the view shows, for each name other than ours, only the newest identity
//!   ([`Member::newer_than`]) that SWIM holds alive. A restarted process therefore replaces
//!   its dead predecessor at once, without waiting for SWIM to declare the old identity
//!   down; an older identity that is still alive is only hidden while a newer namesake is,
//!   and comes back (`Up`) as soon as that one goes down or leaves, so a duplicate that
//!   stops can never leave the cluster split.
//! - suspicions: every suspicion held here, learned by gossip or not, ends within twice
//!   the suspicion timeout (`suspicion` module): foca times only its own.

use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroU8, NonZeroUsize};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use foca::{
    AccumulatingRuntime, BroadcastHandler, Codec, Config as FocaConfig, Foca, Invalidates, Message,
    OwnedNotification, PeriodicParams, State,
};
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::proto::member::Member;

mod codec;
mod parked;
mod suspicion;

use codec::MemberCodec;

use parked::{Parked, Work};
use suspicion::{Suspicions, Watch};

/// A membership timer; opaque to the shell, which only schedules it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timer(TimerKind);

#[derive(Debug, Clone, PartialEq, Eq)]
enum TimerKind {
    /// One of foca's.
    Foca(foca::Timer<Member>),
    /// A suspicion's watch is due (see the `suspicion` module).
    Suspicion(Watch),
}

/// Largest gossip datagram payload: with our envelope (46 bytes, plus 40 of nonce and
/// tag with a secret) and IP/UDP (28) it fits an Ethernet MTU of 1500 bytes.
pub const MAX_PACKET: usize = 1376;

/// A change in the membership view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A member entered the view: it became active, came back, or the newer namesake that
    /// hid it went down or left.
    Up(Member),
    /// A member left the view: it was declared down, left, or is hidden by a newer live
    /// identity of its name (a restarted process, or a duplicate).
    Down(Member),
    /// A member published a new catalog version.
    CatalogVersion {
        /// The member's node id.
        id: u64,
        /// Its new catalog version.
        version: u64,
    },
    /// This node is known by at least one other member.
    Active,
    /// No other member is active.
    Idle,
}

/// Timings for a LAN. Chosen for detection within ~3 s at tens of nodes: probe every
/// 500 ms with a 200 ms round trip, then 1–2 s of suspicion (grows with the cluster, as
/// memberlist's formula does). Down members are re-announced every second so that a healed
/// partition merges back in about that time.
pub fn lan_config(expected_members: u32) -> FocaConfig {
    let n = NonZeroU32::new(expected_members.max(1)).expect("non-zero");
    let mut c = FocaConfig::new_lan(n);
    c.probe_period = Duration::from_millis(500);
    c.probe_rtt = Duration::from_millis(200);
    let log = f64::from(expected_members.max(2)).log10().max(1.0);
    c.suspect_to_down_after = Duration::from_millis((1000.0 * log).min(1500.0) as u64);
    c.max_packet_size = NonZeroUsize::new(MAX_PACKET).expect("non-zero");
    c.remove_down_after = Some(Duration::from_secs(30));
    c.periodic_announce = Some(PeriodicParams {
        frequency: Duration::from_secs(10),
        num_members: NonZeroUsize::new(1).expect("non-zero"),
    });
    c.periodic_announce_to_down_members = Some(PeriodicParams {
        frequency: Duration::from_secs(1),
        num_members: NonZeroUsize::new(2).expect("non-zero"),
    });
    c.periodic_gossip = Some(PeriodicParams {
        frequency: Duration::from_millis(200),
        num_members: NonZeroUsize::new(3).expect("non-zero"),
    });
    // Twice memberlist's count: after a burst of joins or a partition, foca's default
    // leaves a few pairs unaware of each other until a direct probe (tens of seconds at 100
    // nodes); doubling brought 100-node convergence to ~4 s in simulation, for bytes only
    // during churn.
    c.max_transmissions =
        NonZeroU8::new(c.max_transmissions.get().saturating_mul(2).max(8)).expect("non-zero");
    c
}

/// What foca's periodic gossip has to do now.
fn work(foca: &Foca<Member, MemberCodec, StdRng, CatalogNotices>) -> Work {
    Work {
        to_gossip: foca.updates_backlog() > 0 || foca.custom_broadcast_backlog() > 0,
    }
}

/// Key of a catalog-version broadcast: a newer version of the same node supersedes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoticeKey {
    id: u64,
    version: u64,
}

impl Invalidates for NoticeKey {
    fn invalidates(&self, other: &Self) -> bool {
        self.id == other.id && self.version >= other.version
    }
}

/// A catalog-version broadcast that does not decode.
#[derive(Debug, thiserror::Error)]
#[error("malformed catalog notice of {0} bytes")]
pub struct NoticeError(usize);

/// Receives catalog-version broadcasts; keeps the newest per node and queues events.
/// The event queue is shared with [`Membership`] (a mutex only to keep both `Send`; there
/// is never contention: one owner drives both).
#[derive(Debug, Default)]
pub struct CatalogNotices {
    known: HashMap<u64, u64>,
    events: Arc<Mutex<VecDeque<Event>>>,
}

fn encode_notice(id: u64, version: u64) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&id.to_be_bytes());
    b[8..].copy_from_slice(&version.to_be_bytes());
    b
}

impl BroadcastHandler<Member> for CatalogNotices {
    type Key = NoticeKey;
    type Error = NoticeError;

    fn receive_item(
        &mut self,
        data: &[u8],
        _sender: Option<&Member>,
    ) -> Result<Option<NoticeKey>, NoticeError> {
        if data.len() != 16 {
            return Err(NoticeError(data.len()));
        }
        let id = u64::from_be_bytes(data[..8].try_into().expect("8 bytes"));
        let version = u64::from_be_bytes(data[8..].try_into().expect("8 bytes"));
        if self.known.get(&id).is_some_and(|v| *v >= version) {
            return Ok(None);
        }
        self.known.insert(id, version);
        self.events
            .lock()
            .push_back(Event::CatalogVersion { id, version });
        Ok(Some(NoticeKey { id, version }))
    }
}

/// One node's membership state machine.
pub struct Membership {
    foca: Foca<Member, MemberCodec, StdRng, CatalogNotices>,
    rt: AccumulatingRuntime<Member>,
    events: Arc<Mutex<VecDeque<Event>>>,
    /// Every identity SWIM holds alive (foca's active set), by name; hidden namesakes stay
    /// here so that they can come back. Bounded by the active set: entries go with it.
    alive: HashMap<String, Vec<Member>>,
    /// The view: for each name other than ours, the newest identity of `alive`.
    shown: HashMap<String, Member>,
    /// Spurious `TurnUndead` messages dropped (see `spurious_turn_undead`).
    suppressed: u64,
    /// Cluster size the current timings were computed for.
    tuned_for: u32,
    /// Suspicions watched, and how long a watch runs (twice foca's suspicion timeout).
    suspicions: Suspicions,
    watch_for: Duration,
    /// Our own timers to hand out before foca's.
    own_timers: VecDeque<(Duration, Timer)>,
    /// Members declared down by a watch (see the `suspicion` module).
    overdue: u64,
    /// Periodic timers held while they have nothing to do (see the `parked` module).
    parked: Parked,
}

impl std::fmt::Debug for Membership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Membership")
            .field("me", self.identity())
            .field("live", &self.shown.len())
            .finish()
    }
}

/// A foca error, with whether it affected state (see foca's docs).
pub type Error = foca::Error;

impl Membership {
    /// A new, not yet joined, membership for `me`.
    pub fn new(me: Member, config: FocaConfig, rng_seed: u64) -> Self {
        let watch_for = config.suspect_to_down_after * 2;
        let events = Arc::new(Mutex::new(VecDeque::new()));
        let handler = CatalogNotices {
            known: HashMap::new(),
            events: events.clone(),
        };
        let foca = Foca::with_custom_broadcast(
            me,
            config,
            StdRng::seed_from_u64(rng_seed),
            MemberCodec,
            handler,
        );
        Membership {
            foca,
            rt: AccumulatingRuntime::new(),
            events,
            alive: HashMap::new(),
            shown: HashMap::new(),
            suppressed: 0,
            tuned_for: 16,
            suspicions: Suspicions::default(),
            watch_for,
            own_timers: VecDeque::new(),
            overdue: 0,
            parked: Parked::default(),
        }
    }

    /// Our own identity (changes when SWIM renews it after being declared down).
    pub fn identity(&self) -> &Member {
        self.foca.identity()
    }

    /// Handles a received gossip payload (already unwrapped from its envelope).
    pub fn handle_data(&mut self, data: &[u8]) -> Result<(), Error> {
        let r = self.foca.handle_data(data, &mut self.rt);
        self.collect();
        r
    }

    /// Handles a timer that came due.
    pub fn handle_timer(&mut self, timer: Timer) -> Result<(), Error> {
        let r = match timer.0 {
            TimerKind::Foca(t) => match self.parked.park(t, || work(&self.foca)) {
                Some(t) => self.foca.handle_timer(t, &mut self.rt),
                None => Ok(()),
            },
            TimerKind::Suspicion(w) => self.watch_due(w),
        };
        self.collect();
        r
    }

    /// A suspicion watched for twice the timeout: still there, unrefuted, it was left
    /// without a timer, and the member is declared down here.
    fn watch_due(&mut self, w: Watch) -> Result<(), Error> {
        let unrefuted = self.foca.iter_membership_state().any(|m| {
            m.id() == &w.member && m.state() == State::Suspect && m.incarnation() == w.incarnation
        });
        if !unrefuted {
            return Ok(());
        }
        self.overdue += 1;
        let down = foca::Member::new(w.member, w.incarnation, State::Down);
        self.foca
            .apply_many(std::iter::once(down), true, &mut self.rt)
    }

    /// Members this node declared down because their suspicion outlived its timeout
    /// twice over (for tests and metrics).
    pub fn overdue_suspicions(&self) -> u64 {
        self.overdue
    }

    /// Asks the node at `addr` (a seed, or a node found by discovery) to let us join.
    pub fn announce(&mut self, addr: SocketAddr) -> Result<(), Error> {
        // foca ignores the destination identity of a message, so a placeholder with the
        // right address reaches the node whatever its real identity is.
        let placeholder = Member {
            addr,
            id: 0,
            name: String::new(),
            role: String::new(),
            host: String::new(),
            started_ms: 0,
            bump: 0,
        };
        let r = self.foca.announce(placeholder, &mut self.rt);
        self.collect();
        r
    }

    /// Gossips to a few members now (normally driven by the periodic gossip timer).
    pub fn gossip(&mut self) -> Result<(), Error> {
        let r = self.foca.gossip(&mut self.rt);
        self.collect();
        r
    }

    /// Retunes the timings for the current cluster size when it has doubled or halved
    /// since the last tuning (suspicion and retransmissions grow with the cluster).
    pub fn fit_config_to_size(&mut self) {
        self.fit_config_to_size_with(lan_config);
    }

    /// [`Membership::fit_config_to_size`] with another tuning than [`lan_config`]: `tune`
    /// gives the timings for a cluster size (to compare tunings in simulation).
    pub fn fit_config_to_size_with(&mut self, tune: impl Fn(u32) -> FocaConfig) {
        let n = (self.foca.num_members() + 1) as u32;
        let drifted = n > self.tuned_for.saturating_mul(2) || n.saturating_mul(2) < self.tuned_for;
        let config = tune(n);
        let watch_for = config.suspect_to_down_after * 2;
        if drifted && self.foca.set_config(config).is_ok() {
            self.tuned_for = n;
            self.watch_for = watch_for;
        }
    }

    /// Whether `id` is in the live view.
    pub fn is_live(&self, id: u64) -> bool {
        self.shown.values().any(|m| m.id == id)
    }

    /// The newest identity SWIM holds alive under `name`, other than ourselves: for any
    /// other name, the member this view shows for it. For our own name (which the view
    /// never shows) it is a live namesake, older or newer than us: the runtime uses it to
    /// tell that our name is taken.
    pub fn holder_of(&self, name: &str) -> Option<Member> {
        newest(self.alive.get(name)?).cloned()
    }

    /// A newer live identity holding our own name: while there is one, every other view
    /// shows it instead of us (we are hidden), until it goes down or leaves.
    pub fn name_holder(&self) -> Option<Member> {
        let me = self.identity();
        self.holder_of(&me.name).filter(|h| h.newer_than(me))
    }

    /// Leaves the cluster: tells a few members, which spread it.
    pub fn leave(&mut self) -> Result<(), Error> {
        let r = self.foca.leave_cluster(&mut self.rt);
        self.collect();
        r
    }

    /// Publishes that our catalog is now at `version`.
    pub fn publish_catalog_version(&mut self, version: u64) -> Result<(), Error> {
        let id = self.identity().id;
        self.foca
            .add_broadcast(&encode_notice(id, version))
            .map(|_| ())
    }

    /// Live members other than ourselves, sorted by name: one per name, the newest live
    /// identity of each, none under our own name.
    pub fn members(&self) -> Vec<Member> {
        let mut v: Vec<Member> = self.shown.values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Members SWIM currently suspects (still in the live view until declared down).
    pub fn suspects(&self) -> Vec<u64> {
        self.foca
            .iter_membership_state()
            .filter(|m| m.state() == State::Suspect)
            .map(|m| m.id().id)
            .collect()
    }

    /// Next datagram to send: destination and gossip payload (to be sealed).
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Bytes)> {
        self.poll_transmit_to().map(|(addr, _, data)| (addr, data))
    }

    /// [`Membership::poll_transmit`] with the destination's node id as well (0 for a join
    /// request to an address whose node is not known yet), which the envelope binds the
    /// datagram to.
    #[must_use]
    pub fn poll_transmit_to(&mut self) -> Option<(SocketAddr, u64, Bytes)> {
        while let Some((to, data)) = self.rt.to_send() {
            if self.spurious_turn_undead(&data) {
                self.suppressed += 1;
                continue;
            }
            return Some((to.addr, to.id, data));
        }
        None
    }

    /// Whether `data` is a `TurnUndead` to a member we do not hold down.
    ///
    /// Works around foca 2.0.0: when a suspicion timer fires for a member that has since
    /// refuted it, `apply_existing_if` still returns a summary, so foca sends `TurnUndead`
    /// to a live member, which then declares itself down and rejoins — every refuted
    /// suspicion became a false "down" in every view (found by tests/simulation.rs). A
    /// legitimate `TurnUndead` (to a member we really consider down, e.g. after a
    /// partition) still goes out.
    fn spurious_turn_undead(&self, data: &[u8]) -> bool {
        let Ok(header) = MemberCodec.decode_header(data) else {
            return false;
        };
        if header.message != Message::TurnUndead {
            return false;
        }
        !self
            .foca
            .iter_membership_state()
            .any(|m| m.id() == &header.dst && m.state() == State::Down)
    }

    /// `TurnUndead` messages held back by the workaround above (for tests and metrics).
    pub fn suppressed_turn_undead(&self) -> u64 {
        self.suppressed
    }

    /// Next timer to schedule: fire it after the duration via `handle_timer`.
    #[must_use]
    pub fn poll_timer(&mut self) -> Option<(Duration, Timer)> {
        if let Some(t) = self.own_timers.pop_front() {
            return Some(t);
        }
        if let Some(t) = self.parked.unpark(|| work(&self.foca)) {
            return Some((Duration::ZERO, Timer(TimerKind::Foca(t))));
        }
        let (after, t) = self.rt.to_schedule()?;
        self.parked.asked(&t);
        Some((after, Timer(TimerKind::Foca(t))))
    }

    /// Next membership change.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.lock().pop_front()
    }

    /// Turns foca's notifications into view changes.
    fn collect(&mut self) {
        while let Some(n) = self.rt.to_notify() {
            match n {
                OwnedNotification::MemberUp(m) => self.up(m),
                OwnedNotification::MemberDown(m) => self.down(&m),
                OwnedNotification::Rename(old, new) => {
                    // `new` took over `old`'s address; it is up only if foca says so.
                    let active = self.foca.iter_members().any(|x| x.id() == &new);
                    self.forget(&old);
                    if active {
                        self.remember(new.clone());
                    }
                    self.settle(&old.name);
                    if new.name != old.name {
                        self.settle(&new.name);
                    }
                }
                OwnedNotification::Active => self.push(Event::Active),
                OwnedNotification::Idle => self.push(Event::Idle),
                // With renewable identities foca rejoins by itself instead of going defunct.
                OwnedNotification::Rejoin(_) | OwnedNotification::Defunct => {}
                #[allow(unreachable_patterns)]
                _ => {}
            }
        }
        for w in self.suspicions.track(self.foca.iter_membership_state()) {
            let t = Timer(TimerKind::Suspicion(w));
            self.own_timers.push_back((self.watch_for, t));
        }
    }

    fn push(&self, e: Event) {
        self.events.lock().push_back(e);
    }

    /// SWIM holds `m` alive.
    fn up(&mut self, m: Member) {
        let name = m.name.clone();
        self.remember(m);
        self.settle(&name);
    }

    /// SWIM declared `m` down, or it left.
    fn down(&mut self, m: &Member) {
        self.forget(m);
        self.settle(&m.name);
    }

    /// Adds `m` to the alive identities, replacing an older renewal of the same process.
    fn remember(&mut self, m: Member) {
        let same = self.alive.entry(m.name.clone()).or_default();
        if same.iter().any(|x| x.id == m.id && x.bump > m.bump) {
            return; // a renewal of this process is already known: `m` is stale
        }
        same.retain(|x| x.id != m.id);
        same.push(m);
    }

    /// Removes `m` (and any older renewal of it) from the alive identities.
    fn forget(&mut self, m: &Member) {
        if let Some(same) = self.alive.get_mut(&m.name) {
            same.retain(|x| x.id != m.id || x.bump > m.bump);
            if same.is_empty() {
                self.alive.remove(&m.name);
            }
        }
    }

    /// Makes the view show the newest alive identity of `name` (none for our own name), and
    /// emits `Down`/`Up` for exactly what changed.
    fn settle(&mut self, name: &str) {
        let wanted = if name == self.identity().name {
            None
        } else {
            self.alive.get(name).and_then(|v| newest(v)).cloned()
        };
        if self.shown.get(name) == wanted.as_ref() {
            return;
        }
        if let Some(old) = self.shown.remove(name) {
            self.push(Event::Down(old));
        }
        if let Some(new) = wanted {
            self.shown.insert(name.to_owned(), new.clone());
            self.push(Event::Up(new));
        }
    }
}

/// The newest of `members` by [`Member::newer_than`].
fn newest(members: &[Member]) -> Option<&Member> {
    members
        .iter()
        .reduce(|a, b| if b.newer_than(a) { b } else { a })
}

#[cfg(test)]
mod tests;
