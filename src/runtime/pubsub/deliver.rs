//! Publications from peers: hand them to the matching subscribers here, and acknowledge
//! when the publisher asked.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use super::ack::Ledger;
use super::local::{Subscriber, Wakes};
use super::matched::Matched;
use crate::proto::codec::encode_frame;
use crate::proto::wire::{Frame, PubAck, Publications, Publish};
use crate::pubsub::payload::Payload;
use crate::pubsub::Publication;
use crate::runtime::{Connection, Shared};

impl Shared {
    /// Handles a `Publish` frame from `conn`'s peer without waiting: drop-oldest queues
    /// drop, lossless ones take it even when full. The subscribers are noted in `wakes` for
    /// the reader to wake, and full lossless ones for it to wait on before the next frame.
    pub(crate) fn on_publish(&self, conn: &Arc<Connection>, p: Publish, wakes: &mut Wakes) {
        // Taken out for the call, so that delivering can note wakes meanwhile.
        let mut matched = std::mem::take(&mut wakes.matched);
        if p.groups.is_empty() {
            let (topic, subs) = self.plain_subscribers(&mut matched, &p.topic);
            let targets = subs.iter().map(|s| (s, false));
            self.deliver(conn, p, topic, targets, wakes);
        } else {
            let targets = self.local_targets(&p);
            let topic: Arc<str> = p.topic.as_str().into();
            let targets = targets.iter().map(|(s, answers)| (s, *answers));
            self.deliver(conn, p, &topic, targets, wakes);
        }
        wakes.matched = matched;
    }

    /// Handles a `Publications` frame from `conn`'s peer as [`on_publish`](Self::on_publish)
    /// does each of its publications, matching and counting once for them all.
    pub(crate) fn on_publications(
        &self,
        conn: &Arc<Connection>,
        b: Publications,
        wakes: &mut Wakes,
    ) {
        let n = b.payloads.len();
        let mut matched = std::mem::take(&mut wakes.matched);
        let (topic, subs) = self.plain_subscribers(&mut matched, &b.topic);
        self.count_received(&b.topic, n, subs.len());
        let from = &conn.peer_name;
        for payload in b.payloads {
            // The last subscriber takes the payload itself.
            let mut payload = Some(payload);
            for (i, s) in subs.iter().enumerate() {
                let payload = match i + 1 == subs.len() {
                    true => payload.take(),
                    false => payload.clone(),
                };
                let p = Publication {
                    topic: topic.clone(),
                    from: from.clone(),
                    payload: Payload::Encoded(payload.expect("taken by the last only")),
                    ack: None,
                };
                if s.offer_quiet(p) {
                    wakes.crowded();
                }
            }
        }
        for s in subs {
            wakes.add(s);
        }
        wakes.queued(n * subs.len());
        wakes.matched = matched;
    }

    /// The subscribers here outside queue groups that `topic` matches, and the topic
    /// shared: those the reader's last topic matched when it is the same one and nothing
    /// changed since, else matched now (and kept in `matched`).
    fn plain_subscribers<'m>(
        &self,
        matched: &'m mut Matched,
        topic: &str,
    ) -> (&'m Arc<str>, &'m [Arc<Subscriber>]) {
        // Read before matching: a change after it only makes the result look stale.
        let changes = self.pubsub.local_changes.get();
        matched.lookup(topic, changes, || {
            let mut out = Vec::new();
            self.pubsub.local.read().for_each_match(topic, |s| {
                if s.spec.group.is_none() {
                    out.push(s.clone());
                }
            });
            out
        })
    }

    /// Counts `n` publications on `topic` received from a peer, each for `targets`
    /// subscribers here.
    fn count_received(&self, topic: &str, n: usize, targets: usize) {
        let n = n as u64;
        self.pubsub.stats.received.fetch_add(n, Relaxed);
        if targets == 0 {
            self.pubsub.stats.unmatched.fetch_add(n, Relaxed);
        }
        let delivered = &self.metrics.events.delivered;
        delivered.fetch_add(n * targets as u64, Relaxed);
        if self.metrics.enabled {
            self.metrics.with_prefix(topic, |x| x.received.add(n));
        }
    }

    /// Queues `p` (on `topic`, shared) for each of `targets`, with whether that one
    /// answers a request.
    fn deliver<'a>(
        &self,
        conn: &Arc<Connection>,
        p: Publish,
        topic: &Arc<str>,
        targets: impl ExactSizeIterator<Item = (&'a Arc<Subscriber>, bool)>,
        wakes: &mut Wakes,
    ) {
        self.count_received(&p.topic, 1, targets.len());
        let ledger = (p.ack != 0).then(|| {
            let c = conn.clone();
            let id = p.ack;
            Ledger::new(move |t| {
                let ack = PubAck {
                    id,
                    acked: t.acked,
                    missing: t.missing,
                    answer: t.answer,
                };
                if let Ok(f) = encode_frame(&Frame::PubAck(ack)) {
                    c.send_soon(f);
                }
            })
        });
        let from = &conn.peer_name;
        let request = p.answer.is_some();
        let mut payload = Some(Payload::Encoded(p.payload));
        let last = targets.len().saturating_sub(1);
        for (i, (s, answers)) in targets.enumerate() {
            // A request-publish waits only for its answerer; the rest is a publication.
            let ack = ledger
                .as_ref()
                .filter(|_| !request || answers)
                .map(|l| l.guard(s.label.clone(), answers));
            // The last one takes the payload: cloning a small one makes it shared first,
            // an allocation for the common single subscriber.
            let payload = if i == last {
                payload.take()
            } else {
                payload.clone()
            };
            let p = Publication {
                topic: topic.clone(),
                from: from.clone(),
                payload: payload.expect("taken by the last only"),
                ack,
            };
            if s.offer_quiet(p) {
                wakes.crowded();
            }
            wakes.add(s);
            wakes.queued(1);
        }
    }

    /// Subscribers here that get `p`: every matching one outside groups, and for each group
    /// the publisher chose us for, the matching member with the shortest queue.
    fn local_targets(&self, p: &Publish) -> Vec<(Arc<Subscriber>, bool)> {
        let mut out = Vec::new();
        let mut groups: HashMap<&str, Arc<Subscriber>> = HashMap::new();
        self.pubsub
            .local
            .read()
            .for_each_match(&p.topic, |s| match &s.spec.group {
                None => out.push((s.clone(), false)),
                Some(g) => {
                    let Some(g) = p.groups.iter().find(|x| *x == g) else {
                        return;
                    };
                    let e = groups.entry(g.as_str()).or_insert_with(|| s.clone());
                    if s.queue.len() < e.queue.len() {
                        *e = s.clone();
                    }
                }
            });
        for (g, s) in groups {
            out.push((s, p.answer.as_deref() == Some(g)));
        }
        out
    }
}
