//! Runs conditional-event handlers: the node's condition [`Table`], and one task per
//! handler group (a closure, a `#[mpreg::on]` function, or an attached [`Handlers`] value)
//! fed with firings through a bounded queue.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt;

use crate::handler::{HandlerFuture, Handlers};
use crate::message::Message;
use crate::proto::condition::{Condition, Firing, HandlerId, Peer, Table, Unit};
use crate::runtime::queue::DropQueue;
use crate::runtime::Shared;

/// Messages each unit event of a handler holds before the oldest is dropped (raised per
/// unit to what its amount needs; see [`Table`]).
pub(crate) const HANDLER_QUEUE: usize = 1024;

/// Firings waiting for a handler group's task before the oldest is dropped: a handler that
/// cannot keep up loses old firings (counted) instead of stalling the connection readers.
pub(crate) const FIRING_QUEUE: usize = 64;

/// One firing as a group's task receives it: which handler, which messages.
type Batch = (usize, Vec<Message>);

/// A handler group as its task runs it; `index` picks the handler within the group.
pub(crate) trait Group: Send + 'static {
    fn call(&mut self, index: usize, messages: Vec<Message>) -> HandlerFuture<'_>;
}

impl<T: Handlers> Group for T {
    fn call(&mut self, index: usize, messages: Vec<Message>) -> HandlerFuture<'_> {
        self.handle(index, messages)
    }
}

/// A handler registered with [`Node::on`](crate::Node::on) or `#[mpreg::on]`.
pub(crate) struct Closure(pub Box<dyn FnMut(Vec<Message>) -> HandlerFuture<'static> + Send>);

impl Group for Closure {
    fn call(&mut self, _index: usize, messages: Vec<Message>) -> HandlerFuture<'_> {
        (self.0)(messages)
    }
}

/// Where a handler's firings go.
struct Sink {
    name: String,
    index: usize,
    queue: Arc<DropQueue<Batch>>,
    firings: u64,
}

/// Statistics of one handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerStats {
    /// Its id on this node.
    pub id: HandlerId,
    /// Function name, `Type::method`, or `runtime handler`.
    pub name: String,
    /// Its condition, as text.
    pub condition: String,
    /// Distinct messages queued for it, waiting for the condition to hold.
    pub queued: usize,
    /// Messages its queues dropped (oldest first) before it received them.
    pub dropped: u64,
    /// Times its condition held.
    pub firings: u64,
    /// Firings dropped because its group's task was 64 firings behind (shared by the
    /// handlers of one attached value).
    pub firings_dropped: u64,
}

/// The condition table and the sinks of its handlers.
pub(crate) struct Reactor {
    table: Table<Message>,
    sinks: HashMap<HandlerId, Sink>,
    /// Every unit of every handler, to tell whether a message interests any handler.
    units: Vec<(HandlerId, Unit)>,
    /// Counts of removed handlers, so the node's totals never go down.
    retired: Totals,
}

/// Firings and drops over every handler the node had, removed ones included.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Totals {
    /// Times a handler's condition held.
    pub firings: u64,
    /// Messages dropped from handlers' unit queues, and firings dropped from their groups'
    /// queues.
    pub dropped: u64,
}

impl Default for Reactor {
    fn default() -> Self {
        Reactor {
            table: Table::new(HANDLER_QUEUE),
            sinks: HashMap::new(),
            units: Vec::new(),
            retired: Totals::default(),
        }
    }
}

impl Reactor {
    /// Registers the handlers of one group: `(name, condition)` per handler index, all
    /// fed through `queue`.
    pub(crate) fn add(
        &mut self,
        handlers: Vec<(String, Condition)>,
        queue: &Arc<DropQueue<Batch>>,
    ) -> Vec<HandlerId> {
        let mut ids = Vec::new();
        for (index, (name, condition)) in handlers.into_iter().enumerate() {
            let units: Vec<Unit> = condition.units().into_iter().cloned().collect();
            let id = self.table.add(condition);
            self.units.extend(units.into_iter().map(|u| (id, u)));
            let queue = queue.clone();
            let sink = Sink {
                name,
                index,
                queue,
                firings: 0,
            };
            self.sinks.insert(id, sink);
            ids.push(id);
        }
        ids
    }

    /// Unregisters a handler; its group's task ends once no handler of the group is left.
    pub(crate) fn remove(&mut self, id: HandlerId) -> bool {
        let Some(sink) = self.sinks.remove(&id) else {
            return false;
        };
        self.retired.firings += sink.firings;
        self.retired.dropped += self.table.dropped(id);
        self.table.remove(id);
        self.units.retain(|(h, _)| *h != id);
        let shared = self
            .sinks
            .values()
            .any(|s| Arc::ptr_eq(&s.queue, &sink.queue));
        if !shared {
            sink.queue.close();
            // The group's queue is counted once, when its last handler goes.
            self.retired.dropped += sink.queue.dropped();
        }
        true
    }

    /// Firings and drops over the node's life: the handlers here now plus removed ones.
    /// A group's queue, shared by its handlers, counts once.
    pub(crate) fn totals(&self) -> Totals {
        let mut t = self.retired;
        let mut queues: Vec<&Arc<DropQueue<Batch>>> = Vec::new();
        for (&id, sink) in &self.sinks {
            t.firings += sink.firings;
            t.dropped += self.table.dropped(id);
            if !queues.iter().any(|q| Arc::ptr_eq(q, &sink.queue)) {
                queues.push(&sink.queue);
            }
        }
        t.dropped += queues.iter().map(|q| q.dropped()).sum::<u64>();
        t
    }

    /// Offers a message to every handler; whether any handler's condition mentions it.
    pub(crate) fn offer(&mut self, msg: &Message, peers: &[Peer<'_>]) -> bool {
        let sender = Peer {
            name: &msg.source,
            role: &msg.source_role,
        };
        let wanted = self
            .units
            .iter()
            .any(|(_, u)| u.matches_tag(&msg.tag) && u.matches_peer(&sender));
        if wanted {
            let firings = self.table.offer(sender, &msg.tag, msg.clone(), peers);
            self.dispatch(firings);
        }
        wanted
    }

    /// Membership changed: conditions with `%` may hold now.
    pub(crate) fn reevaluate(&mut self, peers: &[Peer<'_>]) {
        let firings = self.table.reevaluate(peers);
        self.dispatch(firings);
    }

    fn dispatch(&mut self, firings: Vec<Firing<Message>>) {
        for firing in firings {
            let Some(sink) = self.sinks.get_mut(&firing.handler) else {
                continue;
            };
            sink.firings += 1;
            let messages = firing.messages.into_iter().map(|c| c.msg).collect();
            sink.queue.push((sink.index, messages));
        }
    }

    /// Statistics of every handler, by id.
    pub(crate) fn stats(&self) -> Vec<HandlerStats> {
        let mut out: Vec<HandlerStats> = self
            .sinks
            .iter()
            .map(|(&id, sink)| HandlerStats {
                id,
                name: sink.name.clone(),
                condition: self
                    .table
                    .condition(id)
                    .map(ToString::to_string)
                    .unwrap_or_default(),
                queued: self.table.pending(id),
                dropped: self.table.dropped(id),
                firings: sink.firings,
                firings_dropped: sink.queue.dropped(),
            })
            .collect();
        out.sort_by_key(|s| s.id);
        out
    }
}

/// Starts the task that runs `group`'s handlers one firing at a time; returns the queue
/// that feeds it. The task ends at node shutdown or when the queue is closed.
pub(crate) fn spawn(
    shared: &Shared,
    mut group: Box<dyn Group>,
    names: Vec<String>,
) -> Arc<DropQueue<Batch>> {
    let queue = Arc::new(DropQueue::new(FIRING_QUEUE));
    let feed = queue.clone();
    let shutdown = shared.shutdown.clone();
    shared.tasks.spawn(async move {
        loop {
            let next = tokio::select! {
                _ = shutdown.cancelled() => None,
                batch = feed.pop() => batch,
            };
            let Some((index, messages)) = next else { break };
            // A panicking handler loses this firing only, not its task or the node.
            let run = AssertUnwindSafe(group.call(index, messages)).catch_unwind();
            if run.await.is_err() {
                let name = names.get(index).map_or("?", String::as_str);
                tracing::error!(handler = name, "message handler panicked");
            }
        }
    });
    queue
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Origin;
    use crate::proto::envelope::{Envelope, MessageId, SessionId, SessionKind, Stage};

    fn message(tag: &str) -> Message {
        let env = Envelope {
            tag: tag.into(),
            source: "w".into(),
            source_role: "worker".into(),
            destination: "m".into(),
            payload: 1.into(),
            session_id: SessionId(rand::random()),
            message_id: MessageId(rand::random()),
            kind: SessionKind::Notification,
            stage: Stage::Request,
        };
        Message::received(env, Origin::Detached)
    }

    #[test]
    fn totals_count_a_shared_queue_once_and_keep_removed_handlers() {
        let mut r = Reactor::default();
        // Nobody pops this group's queue: of its 6 firings, 5 are dropped.
        let queue = Arc::new(DropQueue::new(1));
        let cond = || Condition::parse("*:t:1").unwrap();
        let group = vec![("one".to_string(), cond()), ("two".to_string(), cond())];
        let ids = r.add(group, &queue);
        let peers = [Peer {
            name: "w",
            role: "worker",
        }];
        for _ in 0..3 {
            assert!(r.offer(&message("t"), &peers));
        }
        let want = Totals {
            firings: 6,
            dropped: 5,
        };
        assert_eq!(r.totals(), want);
        for id in ids {
            assert!(r.remove(id));
            assert_eq!(r.totals(), want, "removing a handler lowers nothing");
        }
    }
}
