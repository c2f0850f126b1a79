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

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::proto::codec::encode_frame;
use crate::proto::wire::Frame;
use crate::runtime::{Connection, Shared};

/// How often the watchdog looks; a connection that wrote nothing during one tick sends a
/// `Ping`, so a healthy peer always hears from us at least this often.
pub(crate) const TICK: Duration = Duration::from_millis(250);

/// A peer silent this long (not even a `Ping`) is taken as lost.
pub(crate) const SILENCE_LIMIT: Duration = Duration::from_secs(2);

/// A peer that reads nothing of ours while we have frames for it for this long is closed.
pub(crate) const STALL_LIMIT: Duration = Duration::from_secs(10);

/// Watches `conn` until it closes.
pub(crate) async fn watch(conn: Arc<Connection>, shared: Arc<Shared>) {
    let ping = encode_frame(&Frame::Ping).expect("unit frame encodes");
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut heard = (conn.received.load(Relaxed), Instant::now());
    let mut last_tick = Instant::now();
    let mut wrote = (conn.out.written.load(Relaxed), Instant::now());
    // Writes our own ping made since the last tick: they are not traffic.
    let mut pinged = 0;
    loop {
        tokio::select! {
            _ = conn.closed.cancelled() => return,
            _ = shared.shutdown.cancelled() => return,
            _ = tick.tick() => {}
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
        } else if now - heard.1 >= SILENCE_LIMIT {
            let why = format!(
                "no frame from the peer for {:.1} s (link cut or host frozen)",
                (now - heard.1).as_secs_f64()
            );
            tracing::info!(peer = %conn.peer.name, reason = %why, "closing connection");
            conn.close(why);
            return;
        }
        let written = conn.out.written.load(Relaxed);
        // A peer with a lossless subscriber stops reading us on purpose while it catches
        // up (DESIGN §9): that is back-pressure, not a stall, as long as it is heard from.
        let holding = shared.pubsub.remote.read().is_lossless(conn.peer.id);
        if written != wrote.0 || conn.out.queued() == 0 || holding {
            pinged = if written - wrote.0 <= pinged {
                // Nothing but our ping written this tick: tell the peer we are alive.
                u64::from(conn.out.try_send(ping.clone()))
            } else {
                0
            };
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
