//! Publishing: find the subscribers of a topic here and on peers, choose one member per
//! queue group, send one frame per target node, and — for confirmed publish and
//! request-publish — wait for their acknowledgements.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::oneshot;

use super::ack::{Ledger, Tally};
use super::local::Subscriber;
use super::route_cache;
use crate::error::{Error, Result};
use crate::proto::catalog::Relation;
use crate::proto::publish_frame::{batches, encode_publish_into, PublishRef};
use crate::proto::resolve::Scope;
use crate::proto::topic::check_topic;
use crate::proto::wire::PubAck;
use crate::pubsub::payload::{Inline, Payload, Source};
use crate::pubsub::{Confirmation, Publication};
use crate::runtime::{Connection, Shared};

/// Publications per unit of tokio's cooperative budget (128 units a turn).
///
/// A publication into a queue with room is a few hundred nanoseconds of work, far less
/// than the I/O operation a unit stands for. One unit each made a publishing loop give its
/// worker thread up every 128 publications: each time tokio woke an idle worker (an
/// eventfd write) and the connection's writer, next in line on the same thread, wrote the
/// ~1 KiB queued so far (issue #17: a third of the publishing thread went to these writes
/// and wake-ups at 8 B). Every fourth still yields every ~100 µs.
const PUBLICATIONS_PER_UNIT: u32 = 4;

/// Whether this publication spends a unit of the cooperative budget (see
/// [`PUBLICATIONS_PER_UNIT`]); counted per thread, without atomics.
fn spends_budget() -> bool {
    thread_local! {
        static SINCE: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
    }
    SINCE.with(|n| {
        let v = n.get() + 1;
        let spend = v >= PUBLICATIONS_PER_UNIT;
        n.set(if spend { 0 } else { v });
        spend
    })
}

/// What the publisher waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Wait {
    /// Nothing: at-most-once.
    Nothing,
    /// Every current matching subscriber's acknowledgement.
    Confirmed,
    /// The answer of the chosen member of this queue group (request-publish).
    Answer(String),
}

/// One publication to send.
pub(crate) struct Outgoing<'a> {
    pub topic: &'a str,
    pub payload: &'a dyn Source,
    pub scope: Scope,
    pub wait: Wait,
    /// Deadline for acknowledgements or the answer.
    pub timeout: Duration,
}

/// What publishing produced.
#[derive(Debug)]
pub(crate) enum Report {
    /// Sent (not confirmed) to this many subscribing nodes, this one included.
    Sent(usize),
    /// Every subscriber acknowledged.
    Confirmed(Confirmation),
    /// The answer of a request-publish and the node that gave it.
    Answer(Bytes, String),
}

/// How to reach a subscribing peer.
enum Reach {
    Conn(Arc<Connection>),
    Dial(SocketAddr, String),
}

/// A peer that gets one frame.
struct PeerTarget {
    reach: Reach,
    groups: Vec<String>,
    answers: bool,
}

impl PeerTarget {
    fn name(&self) -> &str {
        match &self.reach {
            Reach::Conn(c) => &c.peer.name,
            Reach::Dial(_, name) => name,
        }
    }
}

/// A candidate member of a queue group.
enum Member {
    Local(Arc<Subscriber>),
    /// A peer, with how to reach it and its rank (looked up once per publication).
    Peer(u64, PeerTarget, (u8, usize)),
}

impl Member {
    /// Nearest first (this node, this host, the network), then least loaded (queued
    /// publications here, queued frames to a peer). A peer not connected yet ranks by its
    /// host like the others (it is dialed if chosen), so connecting to one member does not
    /// shut the rest out.
    fn rank(&self) -> (u8, usize) {
        match self {
            Member::Local(s) => (0, s.queue.len()),
            Member::Peer(_, _, rank) => *rank,
        }
    }
}

/// Where a publication goes (shared with the route cache, so a kept route is not copied).
#[derive(Default)]
pub(super) struct Plan {
    local: Vec<(Arc<Subscriber>, bool)>,
    /// Few per publication: a vector beats hashing.
    peers: Vec<(u64, PeerTarget)>,
    /// Whether a queue group had a say (its choice depends on the queues of the moment).
    grouped: bool,
}

impl Plan {
    /// Whether the next publication on the topic may take this route too: no queue group
    /// chose, and every peer is reached over a listed connection (not dialed).
    fn reusable(&self) -> bool {
        !self.grouped
            && self
                .peers
                .iter()
                .all(|(_, t)| matches!(t.reach, Reach::Conn(_)))
    }

    /// The entry of peer `id`, made by `make` if new.
    fn peer(
        &mut self,
        id: u64,
        make: impl FnOnce() -> Option<PeerTarget>,
    ) -> Option<&mut PeerTarget> {
        let i = match self.peers.iter().position(|(p, _)| *p == id) {
            Some(i) => i,
            None => {
                self.peers.push((id, make()?));
                self.peers.len() - 1
            }
        };
        Some(&mut self.peers[i].1)
    }
}

impl Shared {
    /// Publishes `out` and waits for what `out.wait` asks.
    pub(crate) async fn publish(self: &Arc<Self>, out: Outgoing<'_>) -> Result<Report> {
        // Handing a publication to a queue with room never returns `Pending`: without
        // spending tokio's cooperative budget, a publishing loop would starve every other
        // task of its worker thread (see `run_local` for calls).
        if spends_budget() {
            tokio::task::consume_budget().await;
        }
        // Read before planning: a change after it only makes the route look stale.
        let stamp = self.route_stamp();
        let answer_group = match &out.wait {
            Wait::Answer(g) => Some(g.as_str()),
            _ => None,
        };
        let kept = answer_group
            .is_none()
            .then(|| self.pubsub.routes.get(out.topic, out.scope, stamp))
            .flatten();
        // A kept route's topic was checked when it was planned.
        if kept.is_none() {
            check_topic(out.topic).map_err(|e| Error::Topic(e.to_string()))?;
        }
        self.pubsub.stats.published.fetch_add(1, Relaxed);
        if self.metrics.enabled {
            let m = &self.metrics;
            m.with_prefix(out.topic, |p| p.published.add(1));
        }
        let plan = kept.unwrap_or_else(|| {
            let plan = Arc::new(self.plan(out.topic, out.scope, answer_group));
            if answer_group.is_none() && plan.reusable() {
                let routes = &self.pubsub.routes;
                routes.set(out.topic, out.scope, stamp, plan.clone());
            }
            plan
        });
        if let Some(g) = answer_group {
            let chosen =
                plan.local.iter().any(|(_, a)| *a) || plan.peers.iter().any(|(_, p)| p.answers);
            if !chosen {
                return Err(Error::NoSubscriber {
                    topic: out.topic.to_string(),
                    detail: format!(
                        "no member of queue group `{g}` subscribes to it within {} scope",
                        out.scope
                    ),
                });
            }
        }
        // Read the clock only when something is waited for.
        let deadline = (out.wait != Wait::Nothing).then(|| Instant::now() + out.timeout);
        // The value is copied only for local subscribers; peers alone need just the bytes,
        // encoded on this task's stack when small (no allocation per publication).
        let local_payload = (!plan.local.is_empty()).then(|| out.payload.local());
        let mut inline = Inline::new();
        if local_payload.is_none() {
            out.payload
                .encode_into(&mut inline)
                .map_err(|detail| Error::Codec {
                    what: "encode the payload",
                    fun: out.topic.to_string(),
                    detail,
                })?;
        }
        let mut reached = usize::from(!plan.local.is_empty());
        let local = match &local_payload {
            Some(p) => self.deliver_local(&out, p, &plan.local).await,
            None => None,
        };
        let from_local;
        let encoded: std::result::Result<&[u8], String> = match &local_payload {
            None => Ok(&inline),
            Some(_) if plan.peers.is_empty() => Ok(&[]),
            Some(p) => match p.bytes() {
                Ok(b) => {
                    from_local = b;
                    Ok(&from_local)
                }
                Err(e) => Err(e),
            },
        };
        let mut waits = Vec::new();
        let mut missing = Vec::new();
        for (id, target) in &plan.peers {
            let payload = encoded.as_deref().map_err(String::as_str);
            match self.send_publish(&out, payload, *id, target).await {
                Ok(Some(w)) => {
                    reached += 1;
                    waits.push(w)
                }
                Ok(None) => reached += 1,
                Err(why) => {
                    let waited = match &out.wait {
                        Wait::Nothing => false,
                        Wait::Confirmed => true,
                        Wait::Answer(_) => target.answers,
                    };
                    if waited {
                        missing.push(format!("node `{}`: {why}", target.name()));
                    } else {
                        tracing::debug!(node = %target.name(), topic = %out.topic, %why, "publication not delivered");
                    }
                }
            }
        }
        match out.wait {
            Wait::Nothing => Ok(Report::Sent(reached)),
            Wait::Confirmed => {
                let deadline = deadline.unwrap_or_else(Instant::now);
                let conf =
                    collect_acks(out.topic, local, waits, missing, deadline, &self.name).await;
                if conf.is_err() {
                    crate::metrics::bump(&self.metrics.events.confirm_failures);
                }
                Ok(Report::Confirmed(conf?))
            }
            Wait::Answer(_) => {
                let deadline = deadline.unwrap_or_else(Instant::now);
                answer_of(out.topic, local, waits, missing, deadline, &self.name).await
            }
        }
    }

    /// What a route depends on (see `route_cache`).
    fn route_stamp(&self) -> route_cache::Stamp {
        let p = &self.pubsub;
        let local = p.local_changes.get();
        let remote = p.remote_changes.get();
        [local, remote, p.links.load(Relaxed)]
    }

    /// Finds the subscribers of `topic` within `scope` and picks one member per group.
    fn plan(&self, topic: &str, scope: Scope, answer_group: Option<&str>) -> Plan {
        let mut plan = Plan::default();
        let mut groups: HashMap<Arc<str>, Vec<Member>> = HashMap::new();
        self.pubsub
            .local
            .read()
            .for_each_match(topic, |s| match &s.spec.group {
                None => plan.local.push((s.clone(), false)),
                Some(g) => groups
                    .entry(g.as_str().into())
                    .or_default()
                    .push(Member::Local(s.clone())),
            });
        if scope != Scope::Node {
            let mut hits = Vec::new();
            self.pubsub
                .remote
                .read()
                .for_each_match(topic, |t| hits.push(t.clone()));
            for t in hits {
                if plan.peers.iter().any(|(p, _)| *p == t.peer) && t.group.is_none() {
                    continue;
                }
                let Some((tier, target)) = self.peer_target(t.peer) else {
                    continue;
                };
                if scope == Scope::Host && tier == Relation::OtherHost {
                    continue;
                }
                match t.group {
                    None => {
                        plan.peer(t.peer, || Some(target));
                    }
                    Some(g) => {
                        let near = if tier == Relation::OtherHost { 2 } else { 1 };
                        let load = match &target.reach {
                            Reach::Conn(c) => c.queued(),
                            Reach::Dial(..) => 0,
                        };
                        let m = Member::Peer(t.peer, target, (near, load));
                        groups.entry(g).or_default().push(m)
                    }
                }
            }
        }
        plan.grouped = !groups.is_empty();
        for (group, members) in groups {
            let answers = answer_group == Some(&*group);
            match self.choose_member(&group, members) {
                Member::Local(s) => plan.local.push((s, answers)),
                Member::Peer(id, target, _) => {
                    let Some(t) = plan.peer(id, || Some(target)) else {
                        continue;
                    };
                    t.groups.push(group.to_string());
                    t.answers |= answers;
                }
            }
        }
        plan
    }

    /// How to reach peer `id` and how near it is; `None` if it is gone.
    fn peer_target(&self, id: u64) -> Option<(Relation, PeerTarget)> {
        let conn = self.connection_to(id);
        let (tier, reach) = match conn {
            Some(c) => (
                Relation::of_peer(&self.host_id, &c.peer.host_id),
                Reach::Conn(c),
            ),
            None => {
                let d = self.directory.read();
                let e = d.get(&id)?;
                let tier = Relation::of_peer(&self.host_id, &e.member.host);
                (tier, Reach::Dial(e.member.addr, e.member.name.clone()))
            }
        };
        let target = PeerTarget {
            reach,
            groups: Vec::new(),
            answers: false,
        };
        Some((tier, target))
    }

    /// One member of a queue group: the best [`Member::rank`]; equals take turns, so a
    /// steady stream spreads evenly.
    fn choose_member(&self, group: &str, mut members: Vec<Member>) -> Member {
        let ranks: Vec<(u8, usize)> = members.iter().map(Member::rank).collect();
        let best = *ranks
            .iter()
            .min()
            .expect("a group with a match has a member");
        let ties: Vec<usize> = (0..members.len()).filter(|&i| ranks[i] == best).collect();
        let turn = {
            let mut turns = self.pubsub.turns.lock();
            let t = turns.entry(group.to_string()).or_insert(0);
            *t += 1;
            *t
        };
        members.swap_remove(ties[(turn as usize) % ties.len()])
    }

    /// Queues the publication for local subscribers (waiting for room at lossless ones);
    /// returns the tally to wait for, if any.
    async fn deliver_local(
        &self,
        out: &Outgoing<'_>,
        payload: &Payload,
        local: &[(Arc<Subscriber>, bool)],
    ) -> Option<oneshot::Receiver<Tally>> {
        if local.is_empty() {
            return None;
        }
        let delivered = &self.metrics.events.delivered;
        delivered.fetch_add(local.len() as u64, Relaxed);
        let topic: Arc<str> = out.topic.into();
        let from: Arc<str> = self.name.as_str().into();
        let (ledger, rx) = match out.wait {
            Wait::Nothing => (None, None),
            _ => {
                let (tx, rx) = oneshot::channel();
                (
                    Some(Ledger::new(move |t| {
                        let _ = tx.send(t);
                    })),
                    Some(rx),
                )
            }
        };
        for (s, answers) in local {
            let ack = match (&ledger, &out.wait) {
                (Some(l), Wait::Confirmed) => Some(l.guard(s.label.clone(), false)),
                (Some(l), Wait::Answer(_)) if *answers => Some(l.guard(s.label.clone(), true)),
                _ => None,
            };
            s.offer(Publication {
                topic: topic.clone(),
                from: from.clone(),
                payload: payload.clone(),
                ack,
            })
            .await;
        }
        rx
    }

    /// Sends the frame for one peer (dialing it if needed); returns what to wait for.
    async fn send_publish(
        self: &Arc<Self>,
        out: &Outgoing<'_>,
        payload: std::result::Result<&[u8], &str>,
        id: u64,
        t: &PeerTarget,
    ) -> std::result::Result<Option<PeerWait>, String> {
        let payload = payload.map_err(|e| format!("cannot encode the payload: {e}"))?;
        let waited = match out.wait {
            Wait::Nothing => false,
            Wait::Confirmed => true,
            Wait::Answer(_) => t.answers,
        };
        let ack = if waited { self.pubsub.next_id() } else { 0 };
        let frame = PublishRef {
            topic: out.topic,
            payload,
            groups: &t.groups,
            ack,
            answer: match &out.wait {
                Wait::Answer(g) if t.answers => Some(g),
                _ => None,
            },
        };
        let conn = match &t.reach {
            // Planned a moment ago: it may have been fenced since (a duplicate won).
            Reach::Conn(c) => self.current(c.clone()),
            Reach::Dial(addr, _) => {
                let c = self
                    .connect_to(&addr.to_string())
                    .await
                    .map_err(|e| format!("cannot connect: {e}"))?;
                // A member that died and was replaced at the same address (a restart)
                // leads to its successor, which has its own entry in this plan: sending
                // here too would hand the successor the publication twice.
                if c.peer.id != id {
                    return Err(format!(
                        "its address now belongs to `{}` (a later run)",
                        c.peer.name
                    ));
                }
                c
            }
        };
        let rx = waited.then(|| {
            let (tx, rx) = oneshot::channel();
            self.pubsub.acks.lock().insert(ack, (id, tx));
            rx
        });
        // Encoded straight into the connection's queue (no frame of its own); a small plain
        // publication joins the batch the queue ends with.
        let plain = frame.ack == 0 && frame.groups.is_empty() && frame.answer.is_none();
        let sent = if plain && batches(frame.payload) {
            conn.out.send_publication(frame.topic, frame.payload).await
        } else {
            let encode = |buf: &mut bytes::BytesMut| {
                encode_publish_into(&frame, buf);
                Ok::<(), std::convert::Infallible>(())
            };
            matches!(conn.out.send_with(encode).await, Ok(true))
        };
        if !sent {
            self.pubsub.acks.lock().remove(&ack);
            return Err(format!(
                "connection lost: {}",
                conn.close_reason().unwrap_or_default()
            ));
        }
        Ok(rx.map(|rx| PeerWait {
            shared: self.clone(),
            ack,
            conn,
            rx,
        }))
    }
}

/// A peer's acknowledgement being waited for.
struct PeerWait {
    shared: Arc<Shared>,
    ack: u64,
    conn: Arc<Connection>,
    rx: oneshot::Receiver<PubAck>,
}

impl PeerWait {
    /// The peer's acknowledgement, or why there is none by `deadline`.
    async fn wait(self, deadline: Instant) -> (String, std::result::Result<PubAck, String>) {
        let name = self.conn.peer.name.clone();
        let r = tokio::select! {
            // The reader hands over the acknowledgement before it reads the Goodbye that
            // closes the connection; when both are in by the time we look, the
            // acknowledgement counts (unbiased, select! would pick either).
            biased;
            r = self.rx => r.map_err(|_| "the node shut down".to_string()),
            _ = self.conn.closed.cancelled() => Err(format!(
                "connection lost before it acknowledged: {}",
                self.conn.close_reason().unwrap_or_default()
            )),
            _ = tokio::time::sleep_until(deadline.into()) => Err("no acknowledgement in time".to_string()),
        };
        self.shared.pubsub.acks.lock().remove(&self.ack);
        (name, r)
    }
}

/// Gathers every acknowledgement of a confirmed publish.
async fn collect_acks(
    topic: &str,
    local: Option<oneshot::Receiver<Tally>>,
    waits: Vec<PeerWait>,
    mut missing: Vec<String>,
    deadline: Instant,
    me: &str,
) -> Result<Confirmation> {
    let mut conf = Confirmation::default();
    if let Some(rx) = local {
        match tokio::time::timeout_at(deadline.into(), rx).await {
            Ok(Ok(t)) => {
                conf.subscribers += t.acked as usize;
                conf.nodes.push(me.to_string());
                missing.extend(t.missing.into_iter().map(|m| format!("node `{me}`: {m}")));
            }
            _ => missing.push(format!(
                "node `{me}`: local subscribers did not acknowledge in time"
            )),
        }
    }
    let acks = waits.into_iter().map(|w| w.wait(deadline));
    for (name, r) in futures_util::future::join_all(acks).await {
        match r {
            Ok(a) if a.acked == 0 && a.missing.is_empty() => {
                missing.push(format!("node `{name}`: no matching subscriber any more"))
            }
            Ok(a) => {
                conf.subscribers += a.acked as usize;
                conf.nodes.push(name.clone());
                missing.extend(a.missing.into_iter().map(|m| format!("node `{name}`: {m}")));
            }
            Err(why) => missing.push(format!("node `{name}`: {why}")),
        }
    }
    conf.nodes.sort();
    if missing.is_empty() {
        Ok(conf)
    } else {
        Err(Error::Unconfirmed {
            topic: topic.to_string(),
            acked: conf.subscribers,
            missing,
        })
    }
}

/// The answer of the chosen group member of a request-publish.
async fn answer_of(
    topic: &str,
    local: Option<oneshot::Receiver<Tally>>,
    waits: Vec<PeerWait>,
    missing: Vec<String>,
    deadline: Instant,
    me: &str,
) -> Result<Report> {
    let failed = |node: &str, detail: String| Error::Remote {
        fun: format!("request on `{topic}`"),
        node: node.to_string(),
        message: detail,
    };
    if let Some(why) = missing.into_iter().next() {
        return Err(Error::NoSubscriber {
            topic: topic.to_string(),
            detail: why,
        });
    }
    if let Some(w) = waits.into_iter().next() {
        let (name, r) = w.wait(deadline).await;
        return match r.map(|a| a.answer) {
            Ok(Some(Ok(v))) => Ok(Report::Answer(v, name)),
            Ok(Some(Err(f))) => Err(failed(&name, f.message)),
            Ok(None) => Err(failed(
                &name,
                "no member of the group was left to answer".into(),
            )),
            Err(why) => Err(failed(&name, why)),
        };
    }
    let Some(rx) = local else {
        return Err(failed(
            me,
            "the chosen member was gone before it got the request".into(),
        ));
    };
    match tokio::time::timeout_at(deadline.into(), rx).await {
        Ok(Ok(Tally {
            answer: Some(Ok(v)),
            ..
        })) => Ok(Report::Answer(v, me.to_string())),
        Ok(Ok(Tally {
            answer: Some(Err(f)),
            ..
        })) => Err(failed(me, f.message)),
        Ok(_) => Err(failed(me, "the subscriber did not answer".into())),
        Err(_) => Err(failed(me, "no answer in time".into())),
    }
}
