//! One node's messaging state (DESIGN §10): the sessions it waits on and the replies held
//! for them, the inbox behind `receive()`, and the handler [`Reactor`]; plus routing of
//! arriving messages and reaching destinations.
//!
//! An arriving message goes, in this order, to: the session it answers, if this node opened
//! it and is still waiting; else every handler whose condition mentions it; else, if no
//! handler wants it, the inbox.

use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::message::{Message, MessageError, Origin};
use crate::proto::codec::encode_frame;
use crate::proto::condition::Peer;
use crate::proto::envelope::{Envelope, SessionId, SessionKind};
use crate::proto::wire::Frame;
use crate::runtime::queue::DropQueue;
use crate::runtime::reactor::Reactor;
use crate::runtime::{Connection, Shared};

/// Messages `receive()` holds before the oldest is dropped (counted in the stats).
pub(crate) const INBOX: usize = 4096;

/// Sessions a node keeps open at once; opening one more forgets the oldest (counted), so
/// `isend` without a matching `receive_by_id` cannot grow memory without bound.
pub(crate) const MAX_SESSIONS: usize = 65_536;

/// Messaging state of one node; lives in [`Shared`].
pub(crate) struct Mailbox {
    sessions: Mutex<Sessions>,
    /// Bumped whenever a session is answered or fails; waiters re-check.
    answered: watch::Sender<u64>,
    /// Bumped whenever the membership changes; `wait_for_peers` re-checks.
    pub(crate) members: watch::Sender<u64>,
    pub(crate) inbox: DropQueue<Message>,
    pub(crate) reactor: Mutex<Reactor>,
}

impl Default for Mailbox {
    fn default() -> Self {
        Mailbox {
            sessions: Mutex::new(Sessions::default()),
            answered: watch::Sender::new(0),
            members: watch::Sender::new(0),
            inbox: DropQueue::new(INBOX),
            reactor: Mutex::new(Reactor::default()),
        }
    }
}

/// A destination resolved to one node.
#[derive(Debug, Clone)]
pub(crate) struct Dest {
    pub name: String,
    reach: Reach,
}

#[derive(Debug, Clone)]
enum Reach {
    /// This node.
    Local,
    /// A member (dial `addr` if not connected) or a connected client (no address).
    Peer { id: u64, addr: Option<SocketAddr> },
}

impl Mailbox {
    /// A `Message` frame arrived over `conn`.
    pub(crate) fn arrived(&self, shared: &Arc<Shared>, conn: &Arc<Connection>, env: Envelope) {
        let origin = Origin::Remote {
            shared: Arc::downgrade(shared),
            conn: Arc::downgrade(conn),
        };
        self.route(shared, Message::received(env, origin));
    }

    /// Hands a received message to its session, its handlers or the inbox.
    fn route(&self, shared: &Shared, msg: Message) {
        crate::metrics::bump(&shared.metrics.events.messages_received);
        let msg = if msg.is_reply() {
            match self.sessions.lock().answer(msg) {
                None => {
                    self.answered.send_modify(|v| *v += 1);
                    return;
                }
                Some(unclaimed) => unclaimed,
            }
        } else {
            msg
        };
        let live = live_peers(shared);
        let peers = as_peers(&live);
        let wanted = self.reactor.lock().offer(&msg, &peers);
        if !wanted {
            self.inbox.push(msg);
        }
    }

    /// The membership changed: `%` conditions re-evaluate, peer waiters re-check.
    pub(crate) fn membership_changed(&self, shared: &Shared) {
        let live = live_peers(shared);
        self.reactor.lock().reevaluate(&as_peers(&live));
        self.members.send_modify(|v| *v += 1);
    }

    /// A connection ended: sessions waiting for a reply over it fail at once.
    pub(crate) fn connection_closed(&self, conn: &Arc<Connection>) {
        let reason = conn
            .close_reason()
            .unwrap_or_else(|| "connection closed".into());
        if self.sessions.lock().fail(key(conn), &reason) {
            self.answered.send_modify(|v| *v += 1);
        }
    }

    /// Resolves a destination: this node, a live node by name, or the live members of a
    /// role (one chosen at random when `one`). Unknown destinations fail at once.
    pub(crate) fn resolve(
        &self,
        shared: &Shared,
        destination: &str,
        one: bool,
    ) -> Result<Vec<Dest>> {
        if destination == shared.name {
            return Ok(vec![Dest {
                name: shared.name.clone(),
                reach: Reach::Local,
            }]);
        }
        let dir = shared.directory.read();
        let by_name = dir.values().find(|e| e.member.name == destination);
        if let Some(e) = by_name {
            return Ok(vec![peer_dest(
                &e.member.name,
                e.member.id,
                Some(e.member.addr),
            )]);
        }
        let client = shared
            .connections()
            .into_iter()
            .find(|c| c.peer.name == destination);
        if let Some(c) = client {
            return Ok(vec![peer_dest(&c.peer.name, c.peer.id, None)]);
        }
        let mut of_role: Vec<Dest> = dir
            .values()
            .filter(|e| e.member.role == destination)
            .map(|e| peer_dest(&e.member.name, e.member.id, Some(e.member.addr)))
            .collect();
        of_role.sort_by(|a, b| a.name.cmp(&b.name));
        if of_role.is_empty() {
            let mut live: Vec<String> = dir.values().map(|e| e.member.name.clone()).collect();
            let mut roles: Vec<String> = dir
                .values()
                .map(|e| format!("role {}", e.member.role))
                .collect();
            live.sort();
            roles.sort();
            roles.dedup();
            live.extend(roles);
            return Err(MessageError::UnknownDestination {
                destination: destination.to_string(),
                live,
            }
            .into());
        }
        if one {
            let pick = rand::random_range(0..of_role.len());
            of_role = vec![of_role.swap_remove(pick)];
        }
        Ok(of_role)
    }

    /// Sends `msgs` (destinations already resolved by name) and opens a session for every
    /// task among them. Every destination is reached before anything is sent, so a dead
    /// one fails the whole call with nothing sent.
    pub(crate) async fn open_all(
        &self,
        shared: &Arc<Shared>,
        msgs: Vec<(Dest, Message)>,
    ) -> Result<Vec<SessionId>> {
        let reached =
            futures_util::future::join_all(msgs.iter().map(|(d, m)| reach(shared, d, &m.tag)))
                .await;
        let conns: Vec<Option<Arc<Connection>>> = reached.into_iter().collect::<Result<_>>()?;
        let mut ids = Vec::with_capacity(msgs.len());
        for ((dest, msg), conn) in msgs.into_iter().zip(conns) {
            let id = msg.session_id;
            if msg.kind == SessionKind::Task {
                let k = conn.as_ref().map_or(0, key);
                self.sessions.lock().open(id, &dest.name, &msg.tag, k);
            }
            if let Err(e) = self.deliver(shared, conn.as_ref(), msg).await {
                self.sessions.lock().forget(&[id]);
                return Err(e);
            }
            ids.push(id);
        }
        Ok(ids)
    }

    /// Resolves `msg.destination` (a name or a role: one member) and sends it.
    pub(crate) async fn open(&self, shared: &Arc<Shared>, mut msg: Message) -> Result<SessionId> {
        let dest = self.resolve(shared, &msg.destination, true)?.remove(0);
        msg.destination.clone_from(&dest.name);
        let ids = self.open_all(shared, vec![(dest, msg)]).await?;
        Ok(ids[0])
    }

    /// Sends a reply over the connection its request came in on, else to the source by
    /// name (e.g. the connection was replaced meanwhile).
    pub(crate) async fn send_reply(
        &self,
        shared: &Arc<Shared>,
        origin: &Origin,
        reply: Message,
    ) -> Result<()> {
        match origin {
            Origin::Local(_) => return self.deliver(shared, None, reply).await,
            Origin::Remote { conn, .. } => {
                if let Some(conn) = conn.upgrade().filter(|c| !c.closed.is_cancelled()) {
                    return self.deliver(shared, Some(&conn), reply).await;
                }
            }
            Origin::Detached => {}
        }
        let dest = self.resolve(shared, &reply.destination, true)?.remove(0);
        let conn = reach(shared, &dest, &reply.tag).await?;
        self.deliver(shared, conn.as_ref(), reply).await
    }

    /// Puts one message on its way: to this node's own routing, or over `conn`.
    async fn deliver(
        &self,
        shared: &Arc<Shared>,
        conn: Option<&Arc<Connection>>,
        msg: Message,
    ) -> Result<()> {
        crate::metrics::bump(&shared.metrics.events.messages_sent);
        let Some(conn) = conn else {
            let local = Message::received(msg.envelope(), Origin::Local(Arc::downgrade(shared)));
            self.route(shared, local);
            return Ok(());
        };
        let tag = msg.tag.clone();
        let frame =
            encode_frame(&Frame::Message(msg.envelope())).map_err(|e| MessageError::Payload {
                tag: tag.clone(),
                sender: shared.name.clone(),
                detail: e.to_string(),
            })?;
        if conn.send(frame).await {
            Ok(())
        } else {
            Err(lost(
                &conn.peer.name,
                &tag,
                conn.close_reason().unwrap_or_default(),
            ))
        }
    }

    /// Waits until every session in `ids` is answered and returns the replies in `ids`
    /// order. A failed session fails the wait at once; at the deadline the silent sessions
    /// are named. With `give_up`, a failed wait also closes every session in `ids`.
    pub(crate) async fn collect(
        &self,
        shared: &Shared,
        ids: &[SessionId],
        timeout: Duration,
        give_up: bool,
    ) -> Result<Vec<Message>> {
        let deadline = Instant::now() + timeout;
        let mut changes = self.answered.subscribe();
        let outcome = loop {
            changes.borrow_and_update();
            let waiting = match self.sessions.lock().take(ids) {
                Take::Done(msgs) => return Ok(msgs),
                Take::Failed(e) => break Err(e),
                Take::Waiting(names) => names,
            };
            if Instant::now() >= deadline {
                break Err(MessageError::Timeout {
                    waiting,
                    after: timeout,
                }
                .into());
            }
            tokio::select! {
                _ = changes.changed() => {}
                _ = tokio::time::sleep_until(deadline.into()) => {}
                _ = shared.shutdown.cancelled() => break Err(Error::Shutdown),
            }
        };
        if give_up {
            self.sessions.lock().forget(ids);
        }
        outcome
    }

    /// `(open sessions, replies held, sessions evicted)`.
    pub(crate) fn session_stats(&self) -> (usize, usize, u64) {
        let s = self.sessions.lock();
        let held = s
            .open
            .values()
            .filter(|s| matches!(s.slot, Slot::Answered(_)))
            .count();
        (s.open.len(), held, s.evicted)
    }
}

fn peer_dest(name: &str, id: u64, addr: Option<SocketAddr>) -> Dest {
    Dest {
        name: name.to_string(),
        reach: Reach::Peer { id, addr },
    }
}

fn lost(node: &str, tag: &str, reason: String) -> Error {
    MessageError::Lost {
        node: node.to_string(),
        tag: tag.to_string(),
        reason,
    }
    .into()
}

/// The connection to `dest` (`None` for this node): an existing one, else a new one.
async fn reach(shared: &Arc<Shared>, dest: &Dest, tag: &str) -> Result<Option<Arc<Connection>>> {
    let Reach::Peer { id, addr } = &dest.reach else {
        return Ok(None);
    };
    let existing = shared.connection_to(*id);
    if let Some(c) = existing {
        return Ok(Some(c));
    }
    let Some(addr) = addr else {
        return Err(lost(&dest.name, tag, "its connection closed".into()));
    };
    match shared.connect_to(&addr.to_string()).await {
        Ok(c) => Ok(Some(c)),
        Err(e) => Err(lost(
            &dest.name,
            tag,
            format!("cannot connect to {addr}: {e}"),
        )),
    }
}

/// Identifies a connection for the sessions sent over it.
fn key(conn: &Arc<Connection>) -> usize {
    Arc::as_ptr(conn) as usize
}

/// `(name, role)` of every live member but this node.
pub(crate) fn live_peers(shared: &Shared) -> Vec<(String, String)> {
    let dir = shared.directory.read();
    dir.values()
        .map(|e| (e.member.name.clone(), e.member.role.clone()))
        .collect()
}

fn as_peers(live: &[(String, String)]) -> Vec<Peer<'_>> {
    live.iter()
        .map(|(name, role)| Peer { name, role })
        .collect()
}

/// Sessions this node opened and is waiting on.
#[derive(Default)]
struct Sessions {
    open: HashMap<SessionId, Session>,
    /// Opening order, for evicting the oldest.
    order: BTreeMap<u64, SessionId>,
    next_seq: u64,
    evicted: u64,
}

struct Session {
    seq: u64,
    node: String,
    tag: String,
    /// The connection the request left on (0: this node).
    conn: usize,
    slot: Slot,
}

enum Slot {
    Waiting,
    Answered(Message),
    Failed(String),
}

/// What waiting for a set of sessions found.
enum Take {
    Done(Vec<Message>),
    Failed(Error),
    Waiting(Vec<String>),
}

impl Sessions {
    fn open(&mut self, id: SessionId, node: &str, tag: &str, conn: usize) {
        while self.open.len() >= MAX_SESSIONS {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            if self.open.remove(&oldest).is_some() {
                self.evicted += 1;
            }
        }
        self.next_seq += 1;
        self.order.insert(self.next_seq, id);
        let session = Session {
            seq: self.next_seq,
            node: node.to_string(),
            tag: tag.to_string(),
            conn,
            slot: Slot::Waiting,
        };
        if let Some(old) = self.open.insert(id, session) {
            self.order.remove(&old.seq);
        }
    }

    /// Holds `msg` for its session; gives it back if no session waits for it.
    fn answer(&mut self, msg: Message) -> Option<Message> {
        match self.open.get_mut(&msg.session_id) {
            Some(s) if matches!(s.slot, Slot::Waiting) => {
                s.slot = Slot::Answered(msg);
                None
            }
            _ => Some(msg),
        }
    }

    /// Fails the sessions waiting on connection `conn`; whether there were any.
    fn fail(&mut self, conn: usize, reason: &str) -> bool {
        let mut any = false;
        for s in self.open.values_mut() {
            if s.conn == conn && matches!(s.slot, Slot::Waiting) {
                s.slot = Slot::Failed(reason.to_string());
                any = true;
            }
        }
        any
    }

    fn forget(&mut self, ids: &[SessionId]) {
        for id in ids {
            if let Some(s) = self.open.remove(id) {
                self.order.remove(&s.seq);
            }
        }
    }

    /// Takes the replies of `ids` if all are there; else takes a failure, or names the
    /// sessions still silent.
    fn take(&mut self, ids: &[SessionId]) -> Take {
        let mut waiting = Vec::new();
        for id in ids {
            let Some(s) = self.open.get(id) else {
                return Take::Failed(MessageError::UnknownSession(*id).into());
            };
            match &s.slot {
                Slot::Waiting => waiting.push(format!("`{}` to `{}`", s.tag, s.node)),
                Slot::Failed(reason) => {
                    let e = lost(&s.node, &s.tag, reason.clone());
                    self.forget(&[*id]);
                    return Take::Failed(e);
                }
                Slot::Answered(_) => {}
            }
        }
        if !waiting.is_empty() {
            return Take::Waiting(waiting);
        }
        // Every id was checked above to be answered.
        let out = ids
            .iter()
            .filter_map(|id| match self.open.get(id).map(|s| &s.slot) {
                Some(Slot::Answered(m)) => Some(m.clone()),
                _ => None,
            })
            .collect();
        self.forget(ids);
        Take::Done(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::envelope::{MessageId, Stage};

    fn reply(session: u64, payload: i64) -> Message {
        let env = Envelope {
            tag: "t".into(),
            source: "w".into(),
            source_role: "worker".into(),
            destination: "m".into(),
            payload: payload.into(),
            session_id: SessionId(session),
            message_id: MessageId(rand::random()),
            kind: SessionKind::Task,
            stage: Stage::Complete,
        };
        Message::received(env, Origin::Detached)
    }

    fn payloads(take: Take) -> Vec<i64> {
        match take {
            Take::Done(msgs) => msgs.iter().map(|m| m.payload_as().unwrap()).collect(),
            _ => panic!("expected every reply"),
        }
    }

    #[test]
    fn replies_are_held_until_all_are_there_and_come_back_in_asked_order() {
        let mut s = Sessions::default();
        let ids = [SessionId(1), SessionId(2), SessionId(3)];
        for (i, id) in ids.iter().enumerate() {
            s.open(*id, &format!("w{i}"), "t", 7);
        }
        assert!(s.answer(reply(3, 30)).is_none());
        assert!(s.answer(reply(2, 20)).is_none());
        match s.take(&ids) {
            Take::Waiting(names) => assert_eq!(names, ["`t` to `w0`"]),
            _ => panic!("session 1 has not answered"),
        }
        assert!(s.answer(reply(1, 10)).is_none());
        assert_eq!(payloads(s.take(&ids)), [10, 20, 30]);
        assert!(s.open.is_empty() && s.order.is_empty());
    }

    #[test]
    fn a_second_reply_or_a_stranger_is_given_back() {
        let mut s = Sessions::default();
        s.open(SessionId(1), "w", "t", 7);
        assert!(s.answer(reply(1, 1)).is_none());
        assert!(s.answer(reply(1, 2)).is_some(), "already answered");
        assert!(s.answer(reply(9, 3)).is_some(), "never opened");
    }

    #[test]
    fn a_closed_connection_fails_only_its_sessions() {
        let mut s = Sessions::default();
        s.open(SessionId(1), "w1", "t", 7);
        s.open(SessionId(2), "w2", "t", 8);
        assert!(s.fail(7, "connection closed by the peer"));
        assert!(!s.fail(7, "again"), "nothing left waiting on it");
        match s.take(&[SessionId(2), SessionId(1)]) {
            Take::Failed(e) => assert_eq!(
                e.to_string(),
                "node `w1` was lost before answering `t`: connection closed by the peer"
            ),
            _ => panic!("expected the failure"),
        }
        assert!(
            s.open.contains_key(&SessionId(2)),
            "the other one still waits"
        );
    }

    #[test]
    fn opening_beyond_the_limit_forgets_the_oldest() {
        let mut s = Sessions::default();
        for i in 0..=MAX_SESSIONS as u64 {
            s.open(SessionId(i), "w", "t", 1);
        }
        assert_eq!((s.open.len(), s.evicted), (MAX_SESSIONS, 1));
        assert!(!s.open.contains_key(&SessionId(0)));
        match s.take(&[SessionId(0)]) {
            Take::Failed(e) => assert!(e.to_string().contains("not open"), "{e}"),
            _ => panic!("the oldest session was evicted"),
        }
    }
}
