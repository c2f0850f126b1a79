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

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::proto::codec::encode_frame;
use crate::proto::wire::Frame;
use crate::runtime::gossip::Command;
use crate::runtime::grid;
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

/// Watches `conn` until it closes.
pub(crate) async fn watch(conn: Arc<Connection>, shared: Arc<Shared>) {
    let ping = encode_frame(&Frame::Ping).expect("unit frame encodes");
    let mut ticks = shared.grid.ticks();
    let mut heard = (conn.received.load(Relaxed), Instant::now());
    // The peer's UDP answers so far, and when their count last grew.
    let mut answered: (u64, Option<Instant>) = (conn.udp_answers.load(Relaxed), None);
    let mut last_tick = Instant::now();
    let mut wrote = (conn.out.written.load(Relaxed), Instant::now());
    // Writes our own ping made since the last tick: they are not traffic.
    let mut pinged = 0;
    // When we last wrote anything the peer hears from (traffic, or our ping).
    let mut last_sent = Instant::now();
    loop {
        tokio::select! {
            _ = conn.closed.cancelled() => return,
            _ = shared.shutdown.cancelled() => return,
            _ = ticks.next() => {}
        }
        let now = Instant::now();
        // A tick this late means this process was starved of CPU: what looks like
        // silence may be our own reader not having run. Judge from here on.
        let starved = now - last_tick > 2 * TICK;
        last_tick = now;
        let received = conn.received.load(Relaxed);
        // Frames came, or the reader holds back (back-pressure), or it is merely behind
        // (the kernel holds bytes from the peer): the peer is not silent.
        if received != heard.0 || conn.reader_paused() || starved || conn.unread_bytes() > 0 {
            heard = (received, now);
        } else {
            let answers = conn.udp_answers.load(Relaxed);
            if answers != answered.0 {
                answered = (answers, Some(now));
            }
            let quiet = now - heard.1;
            let answering = answered.1.is_some_and(|t| now - t < SILENCE_LIMIT);
            if let Some(why) = silence_verdict(quiet, answering) {
                tracing::info!(peer = %conn.peer.name, reason = %why, "closing connection");
                conn.close(why);
                return;
            }
            if quiet >= PROBE_AFTER {
                ask(&conn, &shared);
            }
        }
        let written = conn.out.written.load(Relaxed);
        // A peer with a lossless subscriber stops reading us on purpose while it catches
        // up (DESIGN §9): that is back-pressure, not a stall, as long as it is heard from.
        let holding = shared.pubsub.remote.read().is_lossless(conn.peer.id);
        if written != wrote.0 || conn.out.queued() == 0 || holding {
            if written - wrote.0 > pinged {
                last_sent = now;
            }
            pinged = 0;
            // Half a tick of slack: ticks land a little late, by varying amounts.
            if now - last_sent + TICK / 2 >= PING_EVERY {
                // Nothing but our pings written for a while: tell the peer we are alive.
                pinged = u64::from(conn.out.try_send(ping.clone()));
                last_sent = now;
            }
            wrote = (written, now);
        } else if now - wrote.1 >= STALL_LIMIT {
            let why = format!(
                "peer stopped reading: {} frames waiting for {:.0} s",
                conn.out.queued(),
                (now - wrote.1).as_secs_f64()
            );
            tracing::warn!(peer = %conn.peer.name, reason = %why, "closing connection");
            conn.close(why);
            return;
        }
    }
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
    fn a_quiet_peer_that_does_not_answer_is_closed_at_the_silence_limit() {
        let why = silence_verdict(SILENCE_LIMIT, false).expect("closed");
        assert!(why.contains("no answer over UDP"), "{why}");
        assert!(why.contains("link cut or host frozen"), "{why}");
    }
}
