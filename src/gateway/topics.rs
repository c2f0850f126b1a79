//! Pub/sub from a WebSocket client: `publish` (counted or confirmed), `subscribe` with
//! publications pushed as frames, `unsubscribe`.
//!
//! Each subscription is a node subscription whose queue holds `Config::sub_queue`
//! publications and drops the oldest when the client falls behind; a forwarding task moves
//! them into the session's bounded outbound queue, waiting while it is full. So a client
//! that stops reading costs at most its subscriptions' queues ([`MAX_SUBSCRIPTIONS`] of
//! them), and every drop is counted and reported in the next push (`dropped`).

use futures_util::StreamExt;
use parking_lot::Mutex;
use serde_json::{json, Map, Value as Json};
use std::collections::HashMap;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::fault::Fault;
use crate::node::Node;
use crate::proto::json::{to_json, to_value};
use crate::pubsub::Subscription;

/// Subscriptions one WebSocket may hold at once.
pub(crate) const MAX_SUBSCRIPTIONS: usize = 64;

/// The subscriptions of one WebSocket session, by id; their tasks end with the session.
#[derive(Default)]
pub(crate) struct Topics {
    subs: Mutex<HashMap<String, Vec<JoinHandle<()>>>>,
    next: Mutex<u64>,
}

impl Drop for Topics {
    fn drop(&mut self) {
        for tasks in self.subs.get_mut().values() {
            for t in tasks {
                t.abort();
            }
        }
    }
}

/// A string field of `req`, or a fault naming it.
fn text<'a>(req: &'a Map<String, Json>, field: &str) -> Result<&'a str, Fault> {
    match req.get(field) {
        Some(Json::String(s)) => Ok(s),
        Some(other) => Err(Fault::malformed(format!(
            "field `{field}` must be a string, got {other}"
        ))),
        None => Err(Fault::malformed(format!("field `{field}` is missing"))),
    }
}

/// `publish`: `{"topic", "message", "confirm"}`.
pub(crate) async fn publish(node: &Node, req: &Map<String, Json>) -> Result<Json, Fault> {
    let topic = text(req, "topic")?;
    let message = to_value(req.get("message").unwrap_or(&Json::Null));
    if matches!(req.get("confirm"), Some(Json::Bool(true))) {
        let c = node
            .topic(topic)
            .confirmed(&message)
            .await
            .map_err(|e| Fault::from(&e))?;
        return Ok(json!({"confirmed": c.subscribers, "nodes": c.nodes}));
    }
    let n = node
        .topic(topic)
        .publish_counted(&message)
        .await
        .map_err(|e| Fault::from(&e))?;
    Ok(json!({ "nodes": n }))
}

impl Topics {
    /// `subscribe`: `{"patterns": [..], "group"}`; pushes go to `out` until unsubscribed.
    pub(crate) async fn subscribe(
        &self,
        node: &Node,
        req: &Map<String, Json>,
        out: &mpsc::Sender<String>,
    ) -> Result<Json, Fault> {
        let patterns: Vec<&str> = match req.get("patterns") {
            Some(Json::Array(a)) if !a.is_empty() => a
                .iter()
                .map(|p| p.as_str())
                .collect::<Option<_>>()
                .ok_or_else(|| Fault::malformed("field `patterns` must hold strings"))?,
            _ => {
                return Err(Fault::malformed(
                    "field `patterns` must be a non-empty array of strings",
                ))
            }
        };
        let group = match req.get("group") {
            None | Some(Json::Null) => None,
            Some(Json::String(g)) => Some(g.as_str()),
            Some(other) => {
                return Err(Fault::malformed(format!(
                    "field `group` must be a string, got {other}"
                )))
            }
        };
        if self.subs.lock().len() >= MAX_SUBSCRIPTIONS {
            return Err(Fault::malformed(format!(
                "this connection already holds {MAX_SUBSCRIPTIONS} subscriptions (the limit)"
            )));
        }
        let mut subs = Vec::new();
        for p in patterns {
            let sub = match group {
                Some(g) => node.subscribe_group(p, g).await,
                None => node.subscribe(p).await,
            };
            subs.push(sub.map_err(|e| Fault::from(&e))?);
        }
        let id = {
            let mut next = self.next.lock();
            *next += 1;
            format!("s{}", *next)
        };
        let tasks = subs
            .into_iter()
            .map(|s| tokio::spawn(forward(s, id.clone(), out.clone())))
            .collect();
        self.subs.lock().insert(id.clone(), tasks);
        Ok(json!({ "subscription": id }))
    }

    /// `unsubscribe`: `{"subscription"}`.
    pub(crate) fn unsubscribe(&self, req: &Map<String, Json>) -> Result<Json, Fault> {
        let id = text(req, "subscription")?;
        match self.subs.lock().remove(id) {
            Some(tasks) => {
                tasks.iter().for_each(|t| t.abort());
                Ok(Json::Bool(true))
            }
            None => Err(Fault::malformed(format!(
                "no subscription `{id}` on this connection"
            ))),
        }
    }
}

/// Moves the publications of `sub` to the session as `message` frames.
async fn forward(mut sub: Subscription, id: String, out: mpsc::Sender<String>) {
    let mut reported = 0;
    while let Some(p) = sub.next().await {
        let dropped = sub.dropped();
        let message = match p.value() {
            Ok(v) => to_json(&v),
            Err(e) => json!({ "undecodable": e.to_string() }),
        };
        let frame = json!({
            "role": "message",
            "subscription": id,
            "topic": p.topic(),
            "message": message,
            "dropped": dropped - reported,
        });
        reported = dropped;
        if out.send(frame.to_string()).await.is_err() {
            return;
        }
    }
}
