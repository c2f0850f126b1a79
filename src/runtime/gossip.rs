//! The owner task of a node's SWIM membership: one UDP socket on the node's port, one
//! timer queue, commands from the node, and membership events turned into connections.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::proto::datagram::{self, Kind, Opened, Reject, ReplayWindow, Stamp};
use crate::proto::member::Member;
use crate::proto::membership::{Event, Membership, Timer};
use crate::runtime::datagrams::Datagrams;
use crate::runtime::grid::Timers;
use crate::runtime::{now_ms, Shared};

/// Commands queued for the gossip task before senders wait.
pub(crate) const COMMAND_QUEUE: usize = 256;

/// What the node asks of its membership.
#[derive(Debug)]
pub(crate) enum Command {
    /// Join through the node at this address (a seed, or one found by discovery).
    Announce(SocketAddr),
    /// Our catalog changed to this version.
    CatalogVersion(u64),
    /// Leave the cluster, then report back.
    Leave(oneshot::Sender<()>),
    /// Ask the member `id` at this gossip address whether it is alive (its TCP stream to
    /// us went quiet); its answer marks its connections (`Connection::answered_udp`).
    Probe(SocketAddr, u64),
}

/// Runs until shutdown (or until a `Leave` has been flushed).
pub(crate) async fn run(
    shared: Arc<Shared>,
    socket: Datagrams,
    mut m: Membership,
    mut commands: mpsc::Receiver<Command>,
) {
    let mut wire = Wire {
        cluster: datagram::cluster_tag(&shared.cluster),
        counter: 0,
        window: ReplayWindow::default(),
    };
    let mut timers: Timers<Timer> = Timers::default();
    let mut ticks = shared.grid.ticks();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        drain(&shared, &socket, &mut wire, &mut m, &mut timers).await;
        tokio::select! {
            _ = shared.shutdown.cancelled() => break,
            r = socket.recv_from(&mut buf) => match r {
                Ok((n, from)) => {
                    if let Some(asker) = receive(&shared, &mut wire, &mut m, &buf[..n], from) {
                        let answer = datagram::LIVENESS_ANSWER;
                        send(&shared, &socket, &mut wire, Kind::Liveness, asker, answer).await;
                    }
                }
                Err(e) => tracing::debug!(error = %e, "gossip socket receive failed"),
            },
            t = timers.next(&mut ticks) => {
                if let Err(e) = m.handle_timer(t) {
                    tracing::debug!(error = %e, "membership timer");
                }
            }
            Some(cmd) = commands.recv() => {
                if let Command::Leave(done) = cmd {
                    let _ = m.leave();
                    drain(&shared, &socket, &mut wire, &mut m, &mut timers).await;
                    let _ = done.send(());
                    break;
                }
                if let Command::Probe(to, id) = cmd {
                    let question = datagram::LIVENESS_QUESTION;
                    send(&shared, &socket, &mut wire, Kind::Liveness, (to, id), question).await;
                    continue;
                }
                apply(&mut m, cmd);
            }
        }
    }
}

fn apply(m: &mut Membership, cmd: Command) {
    let r = match cmd {
        Command::Announce(addr) => m.announce(addr),
        Command::CatalogVersion(v) => m.publish_catalog_version(v),
        Command::Leave(_) | Command::Probe(..) => Ok(()),
    };
    if let Err(e) = r {
        tracing::debug!(error = %e, "membership command");
    }
}

/// Takes one datagram: membership traffic goes to `m`; a liveness question is answered
/// (returned, to be sent); a liveness answer marks the sender's connections alive.
fn receive(
    shared: &Shared,
    wire: &mut Wire,
    m: &mut Membership,
    data: &[u8],
    from: SocketAddr,
) -> Option<(SocketAddr, u64)> {
    let c = &shared.counters;
    let ring = shared.secret.as_ref().map(|k| k.get());
    let secret = ring.as_deref();
    let opened = datagram::open_checked(
        data,
        &wire.cluster,
        secret,
        now_ms(),
        Kind::Gossip,
        shared.id,
        &mut wire.window,
    );
    let counter = match opened {
        Ok(d) => {
            c.gossip_received.fetch_add(1, Ordering::Relaxed);
            let bytes = &shared.metrics.events.gossip_bytes_received;
            bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
            if d.kind == Kind::Liveness {
                return liveness(shared, &d, from);
            }
            if let Err(e) = m.handle_data(&d.payload) {
                tracing::debug!(%from, error = %e, "gossip datagram not accepted");
            }
            return None;
        }
        Err(Reject::Malformed) => &c.dropped_malformed,
        Err(Reject::OtherCluster) => &c.dropped_other_cluster,
        Err(Reject::Unauthenticated) => &c.dropped_unauthenticated,
        Err(Reject::Replayed) => {
            tracing::debug!(%from, "replayed gossip datagram dropped");
            &c.dropped_replayed
        }
    };
    counter.fetch_add(1, Ordering::Relaxed);
    None
}

/// A liveness datagram: a question addressed to us is answered (one datagram of the same
/// size, so a forged question amplifies nothing); an answer marks every connection to its
/// sender as answering.
fn liveness(shared: &Shared, d: &Opened<'_>, from: SocketAddr) -> Option<(SocketAddr, u64)> {
    let sender = d.stamp.sender;
    match &d.payload[..] {
        datagram::LIVENESS_QUESTION if d.stamp.to == shared.id => Some((from, sender)),
        datagram::LIVENESS_ANSWER => {
            if let Some(conns) = shared.peers.read().get(&sender) {
                for c in conns {
                    c.answered_udp();
                }
            }
            None
        }
        _ => {
            shared
                .counters
                .dropped_malformed
                .fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

/// The gossip socket's envelope state: what seals our datagrams and checks others'.
struct Wire {
    cluster: [u8; 8],
    /// Our next datagram's counter (this task alone sends gossip).
    counter: u64,
    /// Counters already accepted, per sender (used only with a secret).
    window: ReplayWindow,
}

/// Sends what membership wants sent, schedules its timers, applies its events.
async fn drain(
    shared: &Arc<Shared>,
    socket: &Datagrams,
    wire: &mut Wire,
    m: &mut Membership,
    timers: &mut Timers<Timer>,
) {
    while let Some((to, to_id, data)) = m.poll_transmit_to() {
        send(shared, socket, wire, Kind::Gossip, (to, to_id), &data).await;
    }
    while let Some((after, t)) = m.poll_timer() {
        timers.insert(t, after);
    }
    let suspects = m.suspects();
    let mut changed = false;
    while let Some(ev) = m.poll_event() {
        changed |= matches!(ev, Event::Up(_) | Event::Down(_));
        on_event(shared, ev);
    }
    if changed {
        m.fit_config_to_size();
        note_name_holder(shared, m);
    }
    shared.set_suspects(suspects);
}

/// Seals `payload` for the member `to` (address, node id) and sends it.
async fn send(
    shared: &Shared,
    socket: &Datagrams,
    wire: &mut Wire,
    kind: Kind,
    to: (SocketAddr, u64),
    payload: &[u8],
) {
    let stamp = Stamp {
        sender: shared.id,
        counter: wire.counter,
        to: to.1,
    };
    wire.counter += 1;
    let ring = shared.secret.as_ref().map(|k| k.get());
    let primary = ring.as_ref().map(|r| r.primary());
    let sealed = datagram::seal(kind, &wire.cluster, primary, now_ms(), stamp, payload);
    shared.counters.gossip_sent.fetch_add(1, Ordering::Relaxed);
    shared
        .counters
        .gossip_bytes_sent
        .fetch_add(sealed.len() as u64, Ordering::Relaxed);
    if let Err(e) = socket.send_to(&sealed, to.0).await {
        tracing::debug!(to = %to.0, error = %e, "gossip send failed");
    }
}

/// Says so when a newer live node holding our name hides us from every view (a duplicate
/// started where this node could not be seen, e.g. across a partition), and when that
/// ends. Checked on membership changes only, which is when it can change.
fn note_name_holder(shared: &Shared, m: &Membership) {
    let holder = m.name_holder();
    let mut hidden = shared.hidden_by.lock();
    if holder.as_ref().map(|h| h.id) == *hidden {
        return;
    }
    match &holder {
        Some(h) => tracing::warn!(name = %shared.name, holder = ?h, host = %h.host,
            "a newer live node holds this node's name: the cluster shows it instead of this node until it stops"),
        None => {
            tracing::info!(name = %shared.name, "this node's name is its own again; the cluster shows it")
        }
    }
    *hidden = holder.map(|h| h.id);
}

fn on_event(shared: &Arc<Shared>, ev: Event) {
    match ev {
        Event::Up(member) => {
            tracing::info!(member = ?member, "member up");
            crate::metrics::bump(&shared.metrics.events.joins);
            shared.member_up(member);
        }
        Event::Down(member) => {
            tracing::info!(member = ?member, "member down");
            shared.member_down(&member);
            shared.count_down(&member);
        }
        Event::CatalogVersion { id, version } => shared.catalog_version_seen(id, version),
        Event::Active => tracing::debug!("joined the cluster"),
        Event::Idle => tracing::debug!("no other member is alive"),
    }
}

/// Our identity as gossiped.
pub(crate) fn identity(shared: &Shared, addr: SocketAddr) -> Member {
    Member {
        addr,
        id: shared.id,
        name: shared.name.clone(),
        role: shared.role.clone(),
        host: shared.host_id.clone(),
        started_ms: now_ms(),
        bump: 0,
    }
}
