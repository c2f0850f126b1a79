//! One watchdog per connection: it sends a `Ping` when the connection has written nothing
//! for a tick, and closes the connection when the peer has sent nothing for
//! [`SILENCE_LIMIT`] (link cut, host frozen) or has read nothing of ours for
//! [`STALL_LIMIT`] (a peer that stopped reading, unless it has a lossless subscriber:
//! then not reading is its back-pressure on us, and only silence closes it).
//!
//! An application heartbeat rather than TCP keepalive/`TCP_USER_TIMEOUT`: keepalive only
//! probes an idle connection and the user timeout only a connection with unacknowledged
//! data, while a connection with our calls in flight and nothing to send is neither; a
//! heartbeat covers every case with one rule, on every platform, and the closing reason
//! says which side went quiet. Calls in flight then fail at once with "node lost".
//!
//! Silence alone does not tell a dead link from a stalled stream: at a few percent of loss
//! a TCP segment lost four times in a row holds everything behind it for over 2 s (the
//! retransmission timer doubles from 200 ms), and closing then loses what was in flight
//! between two healthy nodes. So once the stream has been quiet for [`PROBE_AFTER`], the
//! watchdog asks the peer over UDP, on its gossip socket, every tick; a peer that answers
//! is alive and its connection is kept up to [`STALL_LIMIT`] of silence, the limit for a
//! stream that moves nothing whatever the cause. A cut link or a frozen host answers
//! nothing and is closed at [`SILENCE_LIMIT`] as before.
//!
//! The two ends of an idle connection each ping on their own tick, and ticks of different
//! processes fall at unrelated instants: each ping woke its receiver for nothing else.
//! So a node whose own ping is nearly due sends it as soon as the peer's arrives
//! ([`answer_ping`]), while the peer, which has just pinged, is usually still awake:
//! the two pings of a round then cost one wakeup instead of two, and which end leads
//! settles by itself. The rule only ever sends a ping earlier, never later, so the peer
//! hears from us at least as often as before.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::proto::codec::encode_frame;
use crate::proto::wire::Frame;
use crate::runtime::gossip::Command;
use crate::runtime::grid;
use crate::runtime::outbound::Wake;
use crate::runtime::{Connection, Shared};

/// How often the watchdog looks. Every watchdog of the node ticks on the node's
/// timer grid ([`grid`]), so a node with many connections wakes once per tick for all of
/// them, not once per connection.
pub(crate) const TICK: Duration = grid::TICK;

/// A connection that wrote nothing for this long sends a `Ping`, so a healthy peer hears
/// from us at least this often: well within the peer's [`PROBE_AFTER`], and half as many
/// wakeups on both sides of an idle connection as a ping every tick.
pub(crate) const PING_EVERY: Duration = Duration::from_millis(500);

/// A peer silent this long (not even a `Ping`) is taken as lost, unless it answered over
/// UDP within this time.
pub(crate) const SILENCE_LIMIT: Duration = Duration::from_secs(2);

/// A ping of the peer's arriving when ours is due within this long is answered with ours
/// at once (see the module's comment).
const ANSWER_WITHIN: Duration = TICK;

/// A stream quiet this long makes the watchdog ask the peer over UDP, every tick.
pub(crate) const PROBE_AFTER: Duration = Duration::from_secs(1);

/// A peer that reads nothing of ours while we have frames for it for this long is closed;
/// so is a peer silent this long on the stream though it answers over UDP.
pub(crate) const STALL_LIMIT: Duration = Duration::from_secs(10);

/// Why a stream quiet for `quiet` is closed, if it is: silent past [`SILENCE_LIMIT`] with no
/// UDP answer lately, or past [`STALL_LIMIT`] whatever the peer answers.
fn silence_verdict(quiet: Duration, answering: bool) -> Option<String> {
    let secs = quiet.as_secs_f64();
    if quiet >= STALL_LIMIT {
        let how = if answering {
            "though the peer answers over UDP: the stream is stuck"
        } else {
            "(link cut or host frozen)"
        };
        Some(format!("no frame from the peer for {secs:.1} s {how}"))
    } else if quiet >= SILENCE_LIMIT && !answering {
        Some(format!(
            "no frame from the peer for {secs:.1} s and no answer over UDP (link cut or host frozen)"
        ))
    } else {
        None
    }
}

/// Asks the peer of `conn` over UDP whether it is alive (through the gossip task; skipped
/// when its queue is full, or on a client, which has no gossip socket).
fn ask(conn: &Connection, shared: &Shared) {
    let Some(gossip) = shared.gossip.get() else {
        return;
    };
    let id = conn.peer.id;
    let listed = shared.directory.read().get(&id).map(|e| e.member.addr);
    if let Some(addr) = listed.or_else(|| conn.gossip_addr()) {
        let _ = gossip.try_send(Command::Probe(addr, id));
    }
}

/// What the reader and the watchdog of one connection share about our pings, in
/// milliseconds on the timer grid's clock ([`grid::ms`]).
#[derive(Debug, Default)]
pub(crate) struct Pings {
    /// When our next ping is due if we write nothing else.
    due: AtomicU64,
    /// Pings the reader sent in answer to the peer's, so far.
    answers: AtomicU64,
    /// When the last of those went out.
    answered: AtomicU64,
}

/// The peer pinged us (the reader calls this): when our own ping is due soon and nothing
/// else is on its way, send it now (see the module's comment). Not more than once per
/// tick: two ends a long round trip apart (over 125 ms) would otherwise answer each
/// other's answers, a ping per round trip.
pub(crate) fn answer_ping(conn: &Connection) {
    let p = &conn.pings;
    let now = grid::ms(Instant::now());
    let last = (p.answers.load(Relaxed) > 0).then(|| p.answered.load(Relaxed));
    if !to_answer(now, p.due.load(Relaxed), last) || conn.out.queued() > 0 {
        return;
    }
    // Sent with the reader's other answers when it next waits: no hand-over to the
    // writer task, which on an idle node is a thread woken for nothing else.
    if conn.out.try_send(&ping(), Wake::Later) {
        p.answered.store(now, Relaxed);
        p.due.store(due_after(now), Relaxed);
        p.answers.fetch_add(1, Relaxed);
    }
}

/// When our next ping is due after we last wrote at `sent` (in ms, see [`Pings`]): the
/// instant [`to_ping`] fires at, off its turn.
fn due_after(sent: u64) -> u64 {
    sent + millis(PING_EVERY - TICK / 2)
}

/// Whether the watchdog pings at a tick `since` our last write, on its `turn` or not
/// (see [`Watch::turn`]), `following` the peer (our last write answered its ping).
///
/// Half a tick of slack: ticks land a little late, by varying amounts. On its turn a
/// connection pings a tick early rather than a tick after, unless it follows: its next
/// answer comes with the peer's next ping, and a ping of its own before that would wake
/// the peer out of its round.
fn to_ping(since: Duration, turn: bool, following: bool) -> bool {
    let since = since + TICK / 2;
    since >= PING_EVERY || (turn && !following && since + TICK >= PING_EVERY)
}

/// Whether a peer's ping arriving at `now` is answered with ours, due at `due`, when we
/// last answered at `last` (all in ms).
fn to_answer(now: u64, due: u64, last: Option<u64>) -> bool {
    let soon = now + millis(ANSWER_WITHIN) >= due;
    soon && last.is_none_or(|at| now.saturating_sub(at) >= millis(TICK))
}

fn millis(d: Duration) -> u64 {
    d.as_millis() as u64
}

/// Watches `conn` until it closes: a chore of the node's grid clock, run on the clock's
/// own task at every tick, so that a tick wakes one task for every connection of the node
/// rather than one task per connection (which also woke a second worker thread).
pub(crate) fn watch(conn: Arc<Connection>, shared: &Arc<Shared>) {
    let mut w = Watch::new(conn);
    let node = Arc::downgrade(shared);
    shared.grid.every_tick(Box::new(move || {
        let Some(shared) = node.upgrade() else {
            return false;
        };
        !w.conn.closed.is_cancelled() && !shared.shutdown.is_cancelled() && w.tick(&shared)
    }));
}

/// What the watchdog of one connection has seen so far.
struct Watch {
    conn: Arc<Connection>,
    /// Frames received, and when their count last grew.
    heard: (u64, Instant),
    /// The peer's UDP answers so far, and when their count last grew.
    answered: (u64, Option<Instant>),
    last_tick: Instant,
    /// Bytes written, and when their count last grew (or the queue was empty).
    wrote: (u64, Instant),
    /// Writes our own ping made since the last tick: they are not traffic.
    pinged: u64,
    /// The reader's answers to the peer's pings counted so far ([`answer_ping`]).
    answers: u64,
    /// When we last wrote anything the peer hears from (traffic, or our ping).
    last_sent: Instant,
    /// Whether that was an answer to the peer's ping: the peer leads the round.
    following: bool,
}

impl Watch {
    fn new(conn: Arc<Connection>) -> Watch {
        let now = Instant::now();
        Watch {
            heard: (conn.received.load(Relaxed), now),
            answered: (conn.udp_answers.load(Relaxed), None),
            last_tick: now,
            wrote: (conn.out.written.load(Relaxed), now),
            pinged: 0,
            answers: 0,
            last_sent: now,
            following: false,
            conn,
        }
    }

    /// Whether the tick at `now` is this connection's turn to ping: connections take
    /// alternate ticks (by their token), so a ping falls a tick early rather than on the
    /// same tick as every other connection's. Pings queued on two connections at one tick
    /// wake two writer tasks, and tokio then wakes a second worker thread to share them.
    fn turn(&self, now: Instant) -> bool {
        let tick = (grid::ms(now) + millis(TICK) / 2) / millis(TICK);
        tick.wrapping_add(self.conn.token).is_multiple_of(2)
    }

    /// One tick: pings a quiet connection, closes a silent or stalled one. `false` once it
    /// closed the connection.
    fn tick(&mut self, shared: &Shared) -> bool {
        let conn = &self.conn;
        let now = Instant::now();
        // A tick this late means this process was starved of CPU: what looks like
        // silence may be our own reader not having run. Judge from here on.
        let starved = now - self.last_tick > 2 * TICK;
        self.last_tick = now;
        let received = conn.received.load(Relaxed);
        // Frames came, or the reader holds back (back-pressure), or it is merely behind
        // (the kernel holds bytes from the peer): the peer is not silent.
        if received != self.heard.0 || conn.reader_paused() || starved || conn.unread_bytes() > 0 {
            self.heard = (received, now);
        } else {
            let answers = conn.udp_answers.load(Relaxed);
            if answers != self.answered.0 {
                self.answered = (answers, Some(now));
            }
            let quiet = now - self.heard.1;
            let answering = self.answered.1.is_some_and(|t| now - t < SILENCE_LIMIT);
            if let Some(why) = silence_verdict(quiet, answering) {
                tracing::info!(peer = %conn.peer.name, reason = %why, "closing connection");
                conn.close(why);
                return false;
            }
            if quiet >= PROBE_AFTER {
                ask(conn, shared);
            }
        }
        let written = conn.out.written.load(Relaxed);
        // A peer with a lossless subscriber stops reading us on purpose while it catches
        // up (DESIGN §9): that is back-pressure, not a stall, as long as it is heard from.
        let holding = shared.pubsub.remote.read().is_lossless(conn.peer.id);
        if written != self.wrote.0 || conn.out.queued() == 0 || holding {
            let answers = conn.pings.answers.load(Relaxed);
            let answered = answers - self.answers;
            self.answers = answers;
            if written - self.wrote.0 > self.pinged + answered {
                (self.last_sent, self.following) = (now, false);
            } else if answered > 0 {
                let at = grid::at_ms(conn.pings.answered.load(Relaxed));
                (self.last_sent, self.following) = (self.last_sent.max(at), true);
            }
            self.pinged = 0;
            if to_ping(now - self.last_sent, self.turn(now), self.following) {
                // Nothing but our pings written for a while: tell the peer we are alive.
                // Written by this task if the writer is idle: one thread woken, not two.
                self.pinged = u64::from(conn.out.try_send(&ping(), Wake::Through));
                (self.last_sent, self.following) = (now, false);
            }
            conn.pings
                .due
                .store(due_after(grid::ms(self.last_sent)), Relaxed);
            self.wrote = (written, now);
        } else if now - self.wrote.1 >= STALL_LIMIT {
            let why = format!(
                "peer stopped reading: {} frames waiting for {:.0} s",
                conn.out.queued(),
                (now - self.wrote.1).as_secs_f64()
            );
            tracing::warn!(peer = %conn.peer.name, reason = %why, "closing connection");
            conn.close(why);
            return false;
        }
        true
    }
}

/// The `Ping` frame, encoded once.
fn ping() -> Bytes {
    static PING: OnceLock<Bytes> = OnceLock::new();
    PING.get_or_init(|| encode_frame(&Frame::Ping).expect("unit frame encodes"))
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn a_quiet_peer_that_answers_over_udp_is_kept_until_the_stall_limit() {
        assert_eq!(silence_verdict(secs(1.9), false), None);
        assert_eq!(silence_verdict(secs(5.0), true), None);
        assert_eq!(silence_verdict(secs(9.9), true), None);
        let stuck = silence_verdict(STALL_LIMIT, true).expect("closed at the stall limit");
        assert!(stuck.contains("answers over UDP"), "{stuck}");
    }

    #[test]
    fn a_ping_is_answered_when_ours_is_nearly_due_and_not_twice_in_a_tick() {
        let due = 10_000;
        assert!(to_answer(due - 250, due, None), "due within a tick");
        assert!(to_answer(due + 600, due, None), "overdue");
        assert!(!to_answer(due - 251, due, None), "ours is not due yet");
        assert!(to_answer(due, due, Some(due - 250)));
        assert!(
            !to_answer(due, due, Some(due - 100)),
            "answered 100 ms ago: a peer a long round trip away answering our answers"
        );
    }

    #[test]
    fn a_ping_goes_out_when_due_or_a_tick_early_on_its_turn_unless_following() {
        let ms = Duration::from_millis;
        assert!(to_ping(ms(375), false, false), "due");
        assert!(to_ping(ms(375), false, true), "due, following too");
        assert!(!to_ping(ms(374), false, false), "not due");
        assert!(to_ping(ms(250), true, false), "a tick early, on its turn");
        assert!(
            !to_ping(ms(250), true, true),
            "following: the peer's next ping comes first"
        );
        assert!(!to_ping(ms(124), true, false), "more than a tick early");
    }

    #[test]
    fn a_quiet_peer_that_does_not_answer_is_closed_at_the_silence_limit() {
        let why = silence_verdict(SILENCE_LIMIT, false).expect("closed");
        assert!(why.contains("no answer over UDP"), "{why}");
        assert!(why.contains("link cut or host frozen"), "{why}");
    }
}
