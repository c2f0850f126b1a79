//! Pub/sub for users (DESIGN §9): publish to a topic, subscribe to patterns with a stream or
//! `#[mpreg::subscribe]`, queue groups, confirmed publish and request-publish.
//!
//! ```no_run
//! # async fn demo(node: mpreg::Node) -> mpreg::Result<()> {
//! use futures_util::StreamExt;
//! let mut temps = node.subscribe("sensors.*.temp").await?;
//! node.publish("sensors.kitchen.temp", &21.5).await?;
//! let p = temps.next().await.unwrap();
//! assert_eq!(p.payload::<f64>()?, 21.5);
//! # Ok(()) }
//! ```
//!
//! Delivery is at-most-once and FIFO per publisher–subscriber pair. A publication goes only
//! to nodes with a matching subscription, and to subscribers in this process without
//! serialization.
//!
//! Each subscription has a bounded queue ([`Config::sub_queue`](crate::Config::sub_queue)).
//! When it is full, a default subscription drops its oldest publication and counts it
//! ([`Subscription::dropped`]); a lossless one ([`SubscriptionBuilder::lossless`],
//! `#[mpreg::subscribe(pattern, lossless)]`) drops nothing and slows its publishers
//! instead.

mod builder;
mod entry;
mod global;
pub(crate) mod payload;
mod publication;
mod subscription;

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

pub use builder::SubscriptionBuilder;
pub(crate) use entry::install_link_time;
pub use entry::{sub_async, sub_meta, sub_sync, SubEntry};
pub use global::{publish, publish_confirmed, request_publish, subscribe, subscribe_group};
pub use publication::{PubMeta, Publication};
pub use subscription::Subscription;

use crate::error::{Error, Result};
use crate::node::Node;
use crate::proto::resolve::Scope;
use crate::runtime::pubsub::{Outgoing, Report, Wait};

/// Who acknowledged a [`publish_confirmed`](Node::publish_confirmed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Confirmation {
    /// Subscribers that handled the publication.
    pub subscribers: usize,
    /// Nodes they run on, sorted.
    pub nodes: Vec<String>,
}

/// A publication being prepared: `node.topic("a.b").scope(Scope::Host).publish(&v)`.
#[must_use = "nothing is published until `publish`, `confirmed` or `request` is awaited"]
#[derive(Debug, Clone)]
pub struct Publisher<'a> {
    node: &'a Node,
    topic: &'a str,
    scope: Scope,
    timeout: Option<Duration>,
}

impl<'a> Publisher<'a> {
    pub(crate) fn new(node: &'a Node, topic: &'a str) -> Self {
        Publisher {
            node,
            topic,
            scope: Scope::Network,
            timeout: None,
        }
    }

    /// Only subscribers within `scope`: this node, this host, or the network (default).
    pub fn scope(mut self, scope: Scope) -> Self {
        self.scope = scope;
        self
    }

    /// How long `confirmed` and `request` wait (default: the node's call timeout).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    async fn send<T>(self, payload: &T, wait: Wait) -> Result<Report>
    where
        T: Serialize + Clone + Send + Sync + 'static,
    {
        // Borrowed, not cloned: a publishing loop would bump the node's reference count
        // twice per publication.
        let shared = self.node.shared();
        let out = Outgoing {
            topic: self.topic,
            payload,
            scope: self.scope,
            wait,
            timeout: self.timeout.unwrap_or(shared.config.call_timeout()),
        };
        shared.publish(out).await
    }

    /// Publishes at-most-once: returns once the publication is queued for every
    /// subscribing node, without waiting for them.
    pub async fn publish<T>(self, payload: &T) -> Result<()>
    where
        T: Serialize + Clone + Send + Sync + 'static,
    {
        self.send(payload, Wait::Nothing).await.map(|_| ())
    }

    /// Like [`publish`](Self::publish), and says to how many nodes (this one included)
    /// the publication was queued: those with a matching subscriber.
    pub async fn publish_counted<T>(self, payload: &T) -> Result<usize>
    where
        T: Serialize + Clone + Send + Sync + 'static,
    {
        match self.send(payload, Wait::Nothing).await? {
            Report::Sent(n) => Ok(n),
            other => unreachable!("plain publish reported {other:?}"),
        }
    }

    /// Publishes and waits until every current matching subscriber handled it. Fails with
    /// [`Error::Unconfirmed`] naming each subscriber that did not (node lost, queue
    /// overflow, handler error, deadline).
    pub async fn confirmed<T>(self, payload: &T) -> Result<Confirmation>
    where
        T: Serialize + Clone + Send + Sync + 'static,
    {
        match self.send(payload, Wait::Confirmed).await? {
            Report::Confirmed(c) => Ok(c),
            other => unreachable!("confirmed publish reported {other:?}"),
        }
    }

    /// labc's `reqpub`: one member of queue group `group` (nearest, least loaded) handles
    /// the publication and its answer is returned with the node that gave it; every other
    /// matching subscriber receives it as an ordinary publication.
    pub async fn request<T, R>(self, group: &str, payload: &T) -> Result<(R, String)>
    where
        T: Serialize + Clone + Send + Sync + 'static,
        R: DeserializeOwned,
    {
        let topic = self.topic;
        match self.send(payload, Wait::Answer(group.to_string())).await? {
            Report::Answer(bytes, node) => {
                let v = rmp_serde::from_slice(&bytes).map_err(|e| Error::Codec {
                    what: "decode the answer",
                    fun: topic.to_string(),
                    detail: e.to_string(),
                })?;
                Ok((v, node))
            }
            other => unreachable!("request-publish reported {other:?}"),
        }
    }
}

impl Node {
    /// A publication to `topic` with options (scope, timeout).
    pub fn topic<'a>(&'a self, topic: &'a str) -> Publisher<'a> {
        Publisher::new(self, topic)
    }

    /// Publishes `payload` to `topic` (network scope, at-most-once). Subscribers in this
    /// process get a copy of the value itself; others get it as MessagePack.
    pub async fn publish<T>(&self, topic: &str, payload: &T) -> Result<()>
    where
        T: Serialize + Clone + Send + Sync + 'static,
    {
        self.topic(topic).publish(payload).await
    }

    /// Publishes and waits for every current matching subscriber (see
    /// [`Publisher::confirmed`]).
    pub async fn publish_confirmed<T>(&self, topic: &str, payload: &T) -> Result<Confirmation>
    where
        T: Serialize + Clone + Send + Sync + 'static,
    {
        self.topic(topic).confirmed(payload).await
    }

    /// One member of `group` answers, the other subscribers receive a publication (see
    /// [`Publisher::request`]).
    pub async fn request_publish<T, R>(&self, topic: &str, group: &str, payload: &T) -> Result<R>
    where
        T: Serialize + Clone + Send + Sync + 'static,
        R: DeserializeOwned,
    {
        Ok(self.topic(topic).request(group, payload).await?.0)
    }

    /// Subscribes to `pattern` (`*` one segment, `**` any number) once awaited. Returns
    /// once the subscription is known to this node's current peers, so a publication they
    /// issue afterwards reaches it. Needs a listening node: peers must be able to reach it.
    ///
    /// By default a full queue drops its oldest publication; `.lossless()` on the returned
    /// builder makes publishers wait instead (see [`SubscriptionBuilder::lossless`]).
    pub fn subscribe(&self, pattern: &str) -> SubscriptionBuilder {
        SubscriptionBuilder::new(Some(self.clone()), pattern)
    }

    /// Subscribes as a member of queue group `group`: each publication goes to one member.
    /// Same as `node.subscribe(pattern).group(group)`.
    pub fn subscribe_group(&self, pattern: &str, group: &str) -> SubscriptionBuilder {
        self.subscribe(pattern).group(group)
    }
}
