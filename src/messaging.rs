//! MARO primitives (DESIGN §10) on [`Node`] and on the default node: `send`, `isend`,
//! `notify`, `scatter`/`iscatter`, `broadcast`/`ibroadcast`, `receive`, `receive_by_id`,
//! `wait_for_peers`, and handlers (`on`, `attach`).
//!
//! Destinations are node names or roles. A role in `send`/`isend`/`scatter` picks one live
//! member of that role at random; `broadcast` reaches every live member of the role (this
//! node excluded). An unknown or unreachable destination fails at once, naming it.
//!
//! # Where an arriving message goes
//!
//! A reply to a session this node opened and still waits on is held for that session
//! (`send`, `scatter`, `broadcast` and `receive_by_id` take it). Any other message is offered
//! to every handler; one that no handler's condition mentions goes to the inbox behind
//! `receive()`.
//!
//! # Bounded queues (none blocks the connection that feeds it)
//!
//! | queue | holds | when full |
//! |---|---|---|
//! | inbox (`receive`) | 4096 messages | oldest dropped, [`MessagingStats::inbox_dropped`] |
//! | each unit event of a handler | 1024 messages (more if its amount needs it) | oldest dropped, [`HandlerStats::dropped`] |
//! | firings waiting for a handler task | 64 firings | oldest dropped, [`HandlerStats::firings_dropped`] |
//! | open sessions | 65 536 | oldest forgotten, [`MessagingStats::sessions_evicted`] |

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::Stream;
use serde::Serialize;

use crate::error::Result;
use crate::global::{member_node, on_runtime};
use crate::handler::{HandlerOutcome, Handlers, OnEntry};
use crate::message::{to_payload, Message, MessageError, Origin};
use crate::node::Node;
use crate::proto::condition::{Condition, HandlerId};
use crate::proto::envelope::{Envelope, MessageId, SessionId, SessionKind, Stage};
use crate::runtime::reactor::{self, Closure, Group, HandlerStats};
use crate::runtime::Shared;

/// Messaging counters of a node: what its bounded queues hold and dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessagingStats {
    /// Messages waiting in the inbox behind [`Node::receive`].
    pub inbox: usize,
    /// Messages the inbox dropped (oldest first) because nobody received them in time.
    pub inbox_dropped: u64,
    /// Sessions this node opened and still waits on, or holds a reply for.
    pub sessions_open: usize,
    /// Replies held for [`Node::receive_by_id`] (they arrived before being asked for).
    pub replies_held: usize,
    /// Sessions forgotten because too many were open at once.
    pub sessions_evicted: u64,
    /// Every handler, by id.
    pub handlers: Vec<HandlerStats>,
}

/// A condition given as text or already built; text is parsed when the handler is added.
pub trait IntoCondition {
    /// The condition, or why the text does not parse (quoting the bad part).
    fn into_condition(
        self,
    ) -> std::result::Result<Condition, crate::proto::condition::ConditionError>;
}

impl IntoCondition for Condition {
    fn into_condition(
        self,
    ) -> std::result::Result<Condition, crate::proto::condition::ConditionError> {
        Ok(self)
    }
}

impl IntoCondition for &Condition {
    fn into_condition(
        self,
    ) -> std::result::Result<Condition, crate::proto::condition::ConditionError> {
        Ok(self.clone())
    }
}

impl IntoCondition for &str {
    fn into_condition(
        self,
    ) -> std::result::Result<Condition, crate::proto::condition::ConditionError> {
        Condition::parse(self)
    }
}

impl IntoCondition for String {
    fn into_condition(
        self,
    ) -> std::result::Result<Condition, crate::proto::condition::ConditionError> {
        Condition::parse(&self)
    }
}

fn bad_condition(handler: &str, error: crate::proto::condition::ConditionError) -> crate::Error {
    MessageError::BadCondition {
        handler: handler.to_string(),
        error,
    }
    .into()
}

impl Node {
    /// A new request from this node, not yet sent.
    fn outgoing(
        &self,
        destination: &str,
        tag: &str,
        payload: rmpv::Value,
        kind: SessionKind,
    ) -> Message {
        let s = self.shared();
        Message::received(
            Envelope {
                tag: tag.to_string(),
                source: s.name.clone(),
                source_role: s.role.clone(),
                destination: destination.to_string(),
                payload,
                session_id: SessionId(rand::random()),
                message_id: MessageId(rand::random()),
                kind,
                stage: Stage::Request,
            },
            Origin::Detached,
        )
    }

    /// Sends a task to `destination` (a node name, or a role: one live member) without
    /// waiting; returns its session id for [`receive_by_id`](Self::receive_by_id).
    pub async fn isend(
        &self,
        destination: &str,
        tag: &str,
        payload: impl Serialize,
    ) -> Result<SessionId> {
        self.open(destination, tag, &payload, SessionKind::Task)
            .await
    }

    /// Sends a task and waits up to `timeout` for its reply.
    pub async fn send(
        &self,
        destination: &str,
        tag: &str,
        payload: impl Serialize,
        timeout: Duration,
    ) -> Result<Message> {
        let id = self.isend(destination, tag, payload).await?;
        let mut replies = self.collect(&[id], timeout, true).await?;
        Ok(replies.remove(0))
    }

    /// Sends a notification: no session is kept open and nothing is awaited (an
    /// acknowledgement, if the receiver sends one, arrives through [`receive`](Self::receive)).
    pub async fn notify(
        &self,
        destination: &str,
        tag: &str,
        payload: impl Serialize,
    ) -> Result<SessionId> {
        self.open(destination, tag, &payload, SessionKind::Notification)
            .await
    }

    /// Sends one message of session `kind` to `destination`.
    async fn open(
        &self,
        destination: &str,
        tag: &str,
        payload: &impl Serialize,
        kind: SessionKind,
    ) -> Result<SessionId> {
        let msg = self.outgoing(destination, tag, to_payload(tag, payload)?, kind);
        let s = self.shared();
        s.mailbox.open(s, msg).await
    }

    /// Sends each destination its own payload (tasks, all with `tag`); returns the session
    /// ids in the order given. Every destination is resolved and reached before anything is
    /// sent.
    pub async fn iscatter<D, P>(
        &self,
        tag: &str,
        items: impl IntoIterator<Item = (D, P)>,
    ) -> Result<Vec<SessionId>>
    where
        D: AsRef<str>,
        P: Serialize,
    {
        let s = self.shared();
        let mut msgs = Vec::new();
        for (dest, payload) in items {
            let resolved = s.mailbox.resolve(s, dest.as_ref(), true)?.remove(0);
            let msg = self.outgoing(
                &resolved.name,
                tag,
                to_payload(tag, &payload)?,
                SessionKind::Task,
            );
            msgs.push((resolved, msg));
        }
        s.mailbox.open_all(s, msgs).await
    }

    /// [`iscatter`](Self::iscatter), then waits up to `timeout` for every reply; replies in
    /// the order of `items`.
    pub async fn scatter<D, P>(
        &self,
        tag: &str,
        items: impl IntoIterator<Item = (D, P)>,
        timeout: Duration,
    ) -> Result<Vec<Message>>
    where
        D: AsRef<str>,
        P: Serialize,
    {
        let ids = self.iscatter(tag, items).await?;
        self.collect(&ids, timeout, true).await
    }

    /// Sends one task to every live member of `role` (this node excluded); one session id
    /// per member, in name order. Fails at once if no live member has that role.
    pub async fn ibroadcast(
        &self,
        role: &str,
        tag: &str,
        payload: impl Serialize,
    ) -> Result<Vec<SessionId>> {
        let s = self.shared();
        let payload = to_payload(tag, &payload)?;
        let members = s.mailbox.resolve(s, role, false)?;
        let msgs = members
            .into_iter()
            .map(|d| {
                let msg = self.outgoing(&d.name, tag, payload.clone(), SessionKind::Task);
                (d, msg)
            })
            .collect();
        s.mailbox.open_all(s, msgs).await
    }

    /// [`ibroadcast`](Self::ibroadcast), then waits up to `timeout` for every reply.
    pub async fn broadcast(
        &self,
        role: &str,
        tag: &str,
        payload: impl Serialize,
        timeout: Duration,
    ) -> Result<Vec<Message>> {
        let ids = self.ibroadcast(role, tag, payload).await?;
        self.collect(&ids, timeout, true).await
    }

    /// Waits up to `timeout` for the replies of the sessions `ids` and returns them in
    /// `ids` order. Replies that arrive earlier, in any order, are held until asked for. On
    /// timeout the error names the silent sessions, which stay open: asking again may still
    /// get them. A session whose destination was lost fails at once.
    pub async fn receive_by_id(
        &self,
        ids: &[SessionId],
        timeout: Duration,
    ) -> Result<Vec<Message>> {
        self.collect(ids, timeout, false).await
    }

    async fn collect(
        &self,
        ids: &[SessionId],
        timeout: Duration,
        give_up: bool,
    ) -> Result<Vec<Message>> {
        let s = self.shared();
        s.mailbox.collect(s, ids, timeout, give_up).await
    }

    /// The messages that arrive here and that neither answer a session this node waits on
    /// nor interest any handler. Several streams share one inbox (each message goes to one
    /// of them); the inbox holds the messages that arrive while nobody receives (bounded:
    /// the oldest are dropped, counted in [`messaging_stats`](Self::messaging_stats)). The
    /// stream ends when the node shuts down.
    pub fn receive(&self) -> Incoming {
        let shared = self.shared().clone();
        let stream = futures_util::stream::unfold(shared, |shared| async move {
            let next = tokio::select! {
                _ = shared.shutdown.cancelled() => None,
                m = shared.mailbox.inbox.pop() => m,
            };
            next.map(|m| (m, shared))
        });
        Incoming {
            inner: Box::pin(stream),
        }
    }

    /// Waits until at least `count` live *peers* have `role`, for every `(role, count)`;
    /// the error names the roles still short at the deadline. Peers are the other members:
    /// this node is never counted, even when it has `role` itself (a worker waiting for
    /// "3 workers" waits for three others), since what one waits for is someone to
    /// exchange messages with.
    pub async fn wait_for_peers<R: AsRef<str>>(
        &self,
        expected: impl IntoIterator<Item = (R, usize)>,
        timeout: Duration,
    ) -> Result<()> {
        let expected: Vec<(String, usize)> = expected
            .into_iter()
            .map(|(r, n)| (r.as_ref().to_string(), n))
            .collect();
        let s = self.shared();
        let deadline = Instant::now() + timeout;
        let mut changes = s.mailbox.members.subscribe();
        loop {
            changes.borrow_and_update();
            let missing = missing_peers(s, &expected);
            if missing.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(MessageError::PeersMissing {
                    missing,
                    after: timeout,
                }
                .into());
            }
            // A client has no membership feed: it asks its peer again every so often.
            let poll = if s.config.listen {
                deadline
            } else {
                Instant::now() + Duration::from_millis(100)
            };
            tokio::select! {
                _ = changes.changed() => {}
                _ = tokio::time::sleep_until(poll.min(deadline).into()) => {}
                _ = s.shutdown.cancelled() => return Err(crate::Error::Shutdown),
            }
            if !s.config.listen {
                if let Some(conn) = s.connections().into_iter().next() {
                    let _ = crate::runtime::bootstrap::learn_members(s, &conn).await;
                }
            }
        }
    }

    /// Runs `handler` with the consumed messages every time `condition` holds (text such as
    /// `"worker:update:60%"`, or a built [`Condition`]). The handler runs in a task of its
    /// own, one firing at a time; returns its id for [`off`](Self::off).
    pub fn on<C, F, Fut>(&self, condition: C, mut handler: F) -> Result<HandlerId>
    where
        C: IntoCondition,
        F: FnMut(Vec<Message>) -> Fut + Send + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: HandlerOutcome,
    {
        let condition = condition
            .into_condition()
            .map_err(|e| bad_condition("runtime handler", e))?;
        let group = Closure(Box::new(move |msgs| {
            let fut = handler(msgs);
            Box::pin(async move { fut.await.report("runtime handler") })
        }));
        Ok(self.add_group(
            Box::new(group),
            vec![("runtime handler".to_string(), condition)],
        )[0])
    }

    /// Attaches a value whose methods are handlers (see `#[mpreg::handlers]`): one task
    /// owns it and runs its handlers one firing at a time. Fails, registering nothing, if a
    /// condition does not parse; the error names the method and the bad part.
    pub fn attach<H: Handlers>(&self, handlers: H) -> Result<Vec<HandlerId>> {
        let mut parsed = Vec::new();
        for (name, text) in H::conditions() {
            let c = Condition::parse(text).map_err(|e| bad_condition(name, e))?;
            parsed.push((name.to_string(), c));
        }
        Ok(self.add_group(Box::new(handlers), parsed))
    }

    /// Removes a handler; whether it existed. Its queued messages are dropped.
    pub fn off(&self, id: HandlerId) -> bool {
        self.shared().mailbox.reactor.lock().remove(id)
    }

    /// What the messaging queues hold and dropped.
    pub fn messaging_stats(&self) -> MessagingStats {
        let m = &self.shared().mailbox;
        let (sessions_open, replies_held, sessions_evicted) = m.session_stats();
        MessagingStats {
            inbox: m.inbox.len(),
            inbox_dropped: m.inbox.dropped(),
            sessions_open,
            replies_held,
            sessions_evicted,
            handlers: m.reactor.lock().stats(),
        }
    }

    fn add_group(
        &self,
        group: Box<dyn Group>,
        handlers: Vec<(String, Condition)>,
    ) -> Vec<HandlerId> {
        let s = self.shared();
        let names = handlers.iter().map(|(n, _)| n.clone()).collect();
        let queue = reactor::spawn(s, group, names);
        let ids = s.mailbox.reactor.lock().add(handlers, &queue);
        // Messages may already be queued elsewhere, but conditions start empty; a `%`
        // condition of a handler added late only needs the live count, which is current.
        s.mailbox.membership_changed(s);
        ids
    }

    /// Attaches every `#[mpreg::on]` function of the process; fails (attaching nothing) on
    /// the first condition that does not parse, naming the function and where it is.
    pub(crate) fn attach_link_time_handlers(&self) -> Result<()> {
        let mut entries: Vec<&OnEntry> = inventory::iter::<OnEntry>.into_iter().collect();
        entries.sort_by_key(|e| (e.file, e.line));
        let mut parsed = Vec::new();
        for e in &entries {
            let c = Condition::parse(e.condition).map_err(|err| {
                bad_condition(&format!("{} ({}:{})", e.name, e.file, e.line), err)
            })?;
            parsed.push((e, c));
        }
        for (e, c) in parsed {
            let node = self.clone();
            let shim = e.shim;
            let group = Closure(Box::new(move |msgs| shim(node.clone(), msgs)));
            self.add_group(Box::new(group), vec![(e.name.to_string(), c)]);
        }
        Ok(())
    }
}

fn missing_peers(s: &Shared, expected: &[(String, usize)]) -> Vec<String> {
    let live = crate::runtime::mailbox::live_peers(s);
    expected
        .iter()
        .filter_map(|(role, want)| {
            let have = live.iter().filter(|(_, r)| r == role).count();
            (have < *want).then(|| format!("{role}: {have} of {want} live"))
        })
        .collect()
}

/// The stream of messages returned by [`Node::receive`]; also usable without
/// `StreamExt` through [`recv`](Self::recv).
pub struct Incoming {
    inner: Pin<Box<dyn Stream<Item = Message> + Send>>,
}

impl Incoming {
    /// The next message; `None` once the node has shut down.
    pub async fn recv(&mut self) -> Option<Message> {
        futures_util::StreamExt::next(&mut self.inner).await
    }
}

impl Stream for Incoming {
    type Item = Message;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        self.inner.as_mut().poll_next(cx)
    }
}

impl std::fmt::Debug for Incoming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Incoming")
    }
}

/// Runs `f` with the default node (started as a listening member if needed: messages must
/// be able to reach it) on the default node's runtime.
async fn with_member<T, F, Fut>(f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(Node) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T>> + Send + 'static,
{
    let node = member_node().await?;
    on_runtime(async move { f(node).await }).await
}

/// [`Node::send`] on the default node.
pub async fn send(
    destination: &str,
    tag: &str,
    payload: impl Serialize,
    timeout: Duration,
) -> Result<Message> {
    let (d, t, p) = (
        destination.to_string(),
        tag.to_string(),
        to_payload(tag, &payload)?,
    );
    with_member(move |n| async move { n.send(&d, &t, p, timeout).await }).await
}

/// [`Node::isend`] on the default node.
pub async fn isend(destination: &str, tag: &str, payload: impl Serialize) -> Result<SessionId> {
    let (d, t, p) = (
        destination.to_string(),
        tag.to_string(),
        to_payload(tag, &payload)?,
    );
    with_member(move |n| async move { n.isend(&d, &t, p).await }).await
}

/// [`Node::notify`] on the default node.
pub async fn notify(destination: &str, tag: &str, payload: impl Serialize) -> Result<SessionId> {
    let (d, t, p) = (
        destination.to_string(),
        tag.to_string(),
        to_payload(tag, &payload)?,
    );
    with_member(move |n| async move { n.notify(&d, &t, p).await }).await
}

/// [`Node::scatter`] on the default node.
pub async fn scatter<D: AsRef<str>, P: Serialize>(
    tag: &str,
    items: impl IntoIterator<Item = (D, P)>,
    timeout: Duration,
) -> Result<Vec<Message>> {
    let (t, items) = (tag.to_string(), owned_items(tag, items)?);
    with_member(move |n| async move { n.scatter(&t, items, timeout).await }).await
}

/// [`Node::iscatter`] on the default node.
pub async fn iscatter<D: AsRef<str>, P: Serialize>(
    tag: &str,
    items: impl IntoIterator<Item = (D, P)>,
) -> Result<Vec<SessionId>> {
    let (t, items) = (tag.to_string(), owned_items(tag, items)?);
    with_member(move |n| async move { n.iscatter(&t, items).await }).await
}

fn owned_items<D: AsRef<str>, P: Serialize>(
    tag: &str,
    items: impl IntoIterator<Item = (D, P)>,
) -> Result<Vec<(String, rmpv::Value)>> {
    items
        .into_iter()
        .map(|(d, p)| Ok((d.as_ref().to_string(), to_payload(tag, &p)?)))
        .collect()
}

/// [`Node::broadcast`] on the default node.
pub async fn broadcast(
    role: &str,
    tag: &str,
    payload: impl Serialize,
    timeout: Duration,
) -> Result<Vec<Message>> {
    let (r, t, p) = (
        role.to_string(),
        tag.to_string(),
        to_payload(tag, &payload)?,
    );
    with_member(move |n| async move { n.broadcast(&r, &t, p, timeout).await }).await
}

/// [`Node::ibroadcast`] on the default node.
pub async fn ibroadcast(role: &str, tag: &str, payload: impl Serialize) -> Result<Vec<SessionId>> {
    let (r, t, p) = (
        role.to_string(),
        tag.to_string(),
        to_payload(tag, &payload)?,
    );
    with_member(move |n| async move { n.ibroadcast(&r, &t, p).await }).await
}

/// [`Node::receive_by_id`] on the default node.
pub async fn receive_by_id(ids: &[SessionId], timeout: Duration) -> Result<Vec<Message>> {
    let ids = ids.to_vec();
    with_member(move |n| async move { n.receive_by_id(&ids, timeout).await }).await
}

/// [`Node::receive`] on the default node (started as a listening member if needed).
pub async fn receive() -> Result<Incoming> {
    Ok(member_node().await?.receive())
}

/// [`Node::wait_for_peers`] on the default node.
pub async fn wait_for_peers<R: AsRef<str>>(
    expected: impl IntoIterator<Item = (R, usize)>,
    timeout: Duration,
) -> Result<()> {
    let expected: Vec<(String, usize)> = expected
        .into_iter()
        .map(|(r, n)| (r.as_ref().to_string(), n))
        .collect();
    with_member(move |n| async move { n.wait_for_peers(expected, timeout).await }).await
}

/// [`Node::attach`] on the default node.
pub async fn attach<H: Handlers>(handlers: H) -> Result<Vec<HandlerId>> {
    with_member(move |n| async move { n.attach(handlers) }).await
}
