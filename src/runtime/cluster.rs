//! The node's view of the cluster: who is alive (from SWIM, or for a client from a member
//! list), and keeping one TCP connection to each live member.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use crate::proto::catalog::{admits, Relation};
use crate::proto::codec::encode_frame;
use crate::proto::member::Member;
use crate::proto::wire::{CatalogMsg, Frame, MemberInfo, MembersMsg};
use crate::runtime::Shared;

/// How long the member with the larger id waits for the smaller one to dial before it
/// dials itself (both dialing at once would open two connections).
const DIAL_GRACE: Duration = Duration::from_millis(500);

/// Pause before dialing a member again after the first failed dial; it doubles with each
/// failure up to [`REDIAL_MAX`].
const REDIAL_FIRST: Duration = Duration::from_millis(250);
/// Longest pause between two dials of a member that stays unreachable (until SWIM reports
/// it down, or it comes back).
const REDIAL_MAX: Duration = Duration::from_secs(4);

/// The pause after `failures` failed dials: exponential, capped, with ±25 % jitter so that
/// members cut off together do not all dial again in the same instant.
fn redial_pause(failures: u32) -> Duration {
    let base = REDIAL_FIRST
        .saturating_mul(1 << failures.saturating_sub(1).min(8))
        .min(REDIAL_MAX);
    base.mul_f64(rand::random_range(0.75..1.25))
}

/// How long a member SWIM reports down may take to say goodbye on a connection still
/// open: a stopping node sends its goodbyes within about 2 s of leaving the gossip.
const GOODBYE_WAIT: Duration = Duration::from_secs(3);

/// One member of the directory.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub member: Member,
    /// Resources, when known (from a member list).
    pub resources: Vec<String>,
    /// Catalog as a member list reported it (clients only; members use the connection's).
    pub catalog: Option<CatalogMsg>,
}

/// Datagram counters, visible in `mpreg nodes` and the metrics.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub gossip_sent: AtomicU64,
    pub gossip_received: AtomicU64,
    pub gossip_bytes_sent: AtomicU64,
    pub dropped_malformed: AtomicU64,
    pub dropped_other_cluster: AtomicU64,
    pub dropped_unauthenticated: AtomicU64,
    /// Requests this node sent to other nodes (calls, relays, workflow submissions).
    pub requests_sent: AtomicU64,
    /// Live TCP connections, duplicates being retired included.
    pub connections: AtomicU64,
    /// Gossip datagrams dropped as replays (with a secret): see `proto::replay`.
    pub dropped_replayed: AtomicU64,
}

impl Shared {
    /// SWIM says `m` is alive: record it and make sure we have a connection.
    pub(crate) fn member_up(self: &Arc<Self>, m: Member) {
        self.directory.write().insert(
            m.id,
            Entry {
                member: m.clone(),
                resources: Vec::new(),
                catalog: None,
            },
        );
        self.unreachable.lock().remove(&m.id);
        // Back after a false "down": its subscriptions come from the connection it kept.
        if let Some(c) = self.connection_to(m.id) {
            let (version, subs) = {
                let cat = c.catalog.read();
                (cat.version, cat.subscriptions().to_vec())
            };
            self.pubsub.remote.write().set(m.id, version, &subs);
        }
        self.mailbox.membership_changed(self);
        self.view_changed();
        self.ensure_connected(m);
    }

    /// SWIM declared `m` down, or it left (or was replaced): forget it, so calls stop
    /// choosing it. Its connections are not closed here, and while one lives its
    /// subscriptions stay: a node that left gracefully has frames in flight that must
    /// still be read up to its `Goodbye` (DESIGN §5), and a verdict of "down" is most often
    /// false when the peer is merely starved of CPU, which is exactly when it also sends
    /// nothing on its connections, so "quiet" is no proof of death either. A dead peer's
    /// connection is closed by TCP at once (a crashed process) or by the connection's own
    /// heartbeat within [`SILENCE_LIMIT`](crate::runtime::liveness::SILENCE_LIMIT) (a cut
    /// link, a frozen host), which fails the calls still on it; closing the last one then
    /// drops its subscriptions (`Shared::remove_connection`).
    pub(crate) fn member_down(&self, m: &Member) {
        let removed = {
            let mut d = self.directory.write();
            match d.get(&m.id) {
                Some(e) if e.member.bump <= m.bump => d.remove(&m.id).is_some(),
                _ => false,
            }
        };
        if !removed {
            return;
        }
        if !self.peers.read().contains_key(&m.id) {
            self.pubsub.remote.write().remove(m.id);
        }
        self.mailbox.membership_changed(self);
        self.view_changed();
    }

    /// Counts SWIM's verdict that `m` is down as a leave or a down. A member that stops
    /// gracefully leaves the gossip first and says goodbye on its connections a moment
    /// later, and SWIM reports both a leave and a death as "down": while a connection to
    /// `m` is open, the verdict waits for it to end, with a goodbye (a leave) or without.
    /// Called after [`member_down`](Self::member_down).
    pub(crate) fn count_down(self: &Arc<Self>, m: &Member) {
        let metrics = &self.metrics;
        if metrics.said_goodbye(m.id) {
            return; // counted as a leave when it said goodbye
        }
        // Still listed: the verdict was about an older identity; a goodbye on the
        // connection would be the listed one's, counted by `member_left`.
        let listed = self.directory.read().contains_key(&m.id);
        let conn = self.connection_to(m.id).filter(|_| !listed);
        let Some(conn) = conn else {
            return crate::metrics::bump(&metrics.events.downs);
        };
        if !metrics.await_verdict(m.id) {
            return;
        }
        let (s, id) = (self.clone(), m.id);
        self.tasks.spawn(async move {
            let _ = tokio::time::timeout(GOODBYE_WAIT, conn.closed.cancelled()).await;
            let e = &s.metrics.events;
            match s.metrics.verdict(id) {
                true => crate::metrics::bump(&e.leaves),
                false => crate::metrics::bump(&e.downs),
            }
        });
    }

    /// The peer said goodbye over TCP.
    pub(crate) fn member_left(&self, id: u64) {
        // Not in the directory any more: a client, or SWIM reported the leave first and
        // `count_down` counts it.
        let listed = self.directory.write().remove(&id).is_some();
        self.metrics.goodbye(id, listed);
        if listed {
            crate::metrics::bump(&self.metrics.events.leaves);
        }
        self.pubsub.remote.write().remove(id);
        self.mailbox.membership_changed(self);
        self.view_changed();
    }

    /// Gossip says member `id` has catalog `version`: pull it if our copy is older.
    pub(crate) fn catalog_version_seen(&self, id: u64, version: u64) {
        let conn = self.connection_to(id);
        if let Some(c) = conn {
            if c.catalog.read().version < version {
                if let Ok(f) = encode_frame(&Frame::CatalogPull) {
                    c.try_send(f);
                }
            }
        }
    }

    /// Keeps a connection to member `m`: dials it unless one exists or is being dialed,
    /// and dials again after a failure for as long as `m` stays a member (see
    /// [`Shared::keep_dialing`]).
    pub(crate) fn ensure_connected(self: &Arc<Self>, m: Member) {
        if m.id == self.id || self.peers.read().contains_key(&m.id) {
            return;
        }
        if !self.dialing.lock().insert(m.id) {
            return;
        }
        let s = self.clone();
        self.tasks.spawn(async move {
            s.keep_dialing(&m).await;
            s.dialing.lock().remove(&m.id);
        });
    }

    /// Dials member `m` until a connection to it exists, it leaves the directory, or the
    /// node stops. One failed dial must not leave two members unconnected for good: a
    /// connection carries the catalog (functions, subscriptions), so without one neither
    /// would learn what the other offers. A single lost SYN fails a dial (its
    /// retransmission comes after [`CONNECT_TIMEOUT`](super::handshake::CONNECT_TIMEOUT)).
    async fn keep_dialing(self: &Arc<Self>, m: &Member) {
        // The smaller id dials first; the other gives it the chance (both dialing at once
        // would open two connections).
        let mut pause = if self.id > m.id {
            DIAL_GRACE
        } else {
            Duration::ZERO
        };
        let mut failures = 0u32;
        loop {
            if !pause.is_zero() {
                tokio::select! {
                    _ = self.shutdown.cancelled() => return,
                    _ = tokio::time::sleep(pause) => {}
                }
            }
            let wanted = self
                .directory
                .read()
                .get(&m.id)
                .is_some_and(|e| e.member.addr == m.addr);
            if !wanted || self.shutdown.is_cancelled() || self.peers.read().contains_key(&m.id) {
                return;
            }
            match self.connect_to(&m.addr.to_string()).await {
                Ok(_) => return,
                Err(e) => {
                    failures += 1;
                    pause = redial_pause(failures);
                    tracing::debug!(member = ?m, error = %e, retry_in = ?pause, "cannot connect to member");
                }
            }
        }
    }

    /// Records the suspects of the last membership round.
    pub(crate) fn set_suspects(&self, ids: Vec<u64>) {
        let ids: HashSet<u64> = ids.into_iter().collect();
        let mut s = self.suspects.write();
        let raised = ids.iter().filter(|id| !s.contains(id)).count();
        let suspicions = &self.metrics.events.suspicions;
        suspicions.fetch_add(raised as u64, std::sync::atomic::Ordering::Relaxed);
        if *s != ids {
            *s = ids;
            drop(s);
            self.view_changed();
        }
    }

    /// The cluster as a requester on `requester_host` may see it: every live member
    /// (ourselves included) with its catalog filtered by visibility.
    pub(crate) fn members_for(&self, requester_host: &str) -> MembersMsg {
        let mut members = Vec::new();
        if let Some(me) = self.me.get() {
            let relation = Relation::of_peer(&self.host_id, requester_host);
            members.push(MemberInfo {
                member: me.clone(),
                state: "alive".into(),
                resources: self.resources.clone(),
                catalog: Some(self.catalog_view(relation)),
            });
        }
        let suspects = self.suspects.read().clone();
        let conns: HashMap<u64, _> = self
            .connections()
            .into_iter()
            .map(|c| (c.peer.id, c))
            .collect();
        for e in self.directory.read().values() {
            let relation = Relation::of_peer(&e.member.host, requester_host);
            let (resources, catalog) = match conns.get(&e.member.id) {
                Some(c) => {
                    let cat = c.catalog.read();
                    let functions = cat
                        .functions()
                        .filter(|f| admits(f.visibility, relation))
                        .cloned()
                        .collect();
                    (
                        c.peer.resources.clone(),
                        Some(CatalogMsg {
                            version: cat.version,
                            functions,
                            subscriptions: cat.subscriptions().to_vec(),
                        }),
                    )
                }
                None => (e.resources.clone(), e.catalog.clone()),
            };
            members.push(MemberInfo {
                member: e.member.clone(),
                state: if suspects.contains(&e.member.id) {
                    "suspect"
                } else {
                    "alive"
                }
                .into(),
                resources,
                catalog,
            });
        }
        members.sort_by(|a, b| a.member.name.cmp(&b.member.name));
        MembersMsg { members }
    }

    /// A client adopts a member list as its directory: the list is the attached member's
    /// whole view, so members missing from it are gone. A member that reappears is
    /// reachable again as far as we know (it was heard from).
    pub(crate) fn adopt_members(&self, msg: &MembersMsg) {
        // Taken before the directory lock: `remove_connection` takes them the other way.
        let connected: HashSet<u64> = self.peers.read().keys().copied().collect();
        let listed: HashSet<u64> = msg.members.iter().map(|i| i.member.id).collect();
        let mut d = self.directory.write();
        d.retain(|id, _| listed.contains(id));
        for info in &msg.members {
            if info.member.id == self.id {
                continue;
            }
            // A connection's own catalog is fresher than a member list's copy.
            if let (Some(cat), false) = (&info.catalog, connected.contains(&info.member.id)) {
                let mut remote = self.pubsub.remote.write();
                remote.set(info.member.id, cat.version, &cat.subscriptions);
            }
            let fresh = d
                .get(&info.member.id)
                .is_none_or(|e| e.member.bump != info.member.bump);
            if fresh {
                self.unreachable.lock().remove(&info.member.id);
            }
            d.insert(
                info.member.id,
                Entry {
                    member: info.member.clone(),
                    resources: info.resources.clone(),
                    catalog: info.catalog.clone(),
                },
            );
        }
    }
}
