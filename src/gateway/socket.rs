//! One WebSocket session: MPREG's `rpc` role and mpreg's roles (pub/sub, serving
//! functions), many requests in flight, replies matched by `u` in any order.
//!
//! Bounds: frames over [`MAX_FRAME`] are refused by the WebSocket layer (close 1009); at
//! most [`MAX_IN_FLIGHT`] requests run at once (more are answered "busy" at once); replies
//! and pushes wait in a queue of [`OUT_QUEUE`] frames, and while it is full the tasks that
//! produce them wait, so a client that stops reading stops being read (TCP back-pressure)
//! instead of growing our memory. When the socket ends, its requests are cancelled (their
//! calls with them), its subscriptions end and its functions are withdrawn.

use std::sync::Arc;

use axum::extract::ws::{close_code, CloseFrame, Message, WebSocket};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Map, Value as Json};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::task::JoinSet;

use super::call::{self, Options};
use super::fault::{self, Fault};
use super::serving::Serving;
use super::topics::{self, Topics};
use super::{Caller, Gateway};
use crate::node::Node;

/// Largest frame accepted or sent (MPREG's Python client refuses larger ones).
pub(crate) const MAX_FRAME: usize = 1 << 20;
/// Requests one socket runs at once.
pub(crate) const MAX_IN_FLIGHT: usize = 256;
/// Frames waiting to be written to one socket.
const OUT_QUEUE: usize = 1024;
/// Longest the last replies and the close handshake may take once the session ends.
const CLOSE_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Runs a session until the client goes away or the node shuts down.
pub(crate) async fn run(gw: Gateway, caller: Caller, socket: WebSocket) {
    let (mut sink, mut stream) = socket.split();
    let (out, mut queue) = mpsc::channel::<String>(OUT_QUEUE);
    let (close_tx, close_rx) = oneshot::channel::<Option<CloseFrame>>();
    let writer = tokio::spawn(async move {
        // Everything queued goes out in one flush: replies of many requests in flight
        // share write calls.
        while let Some(frame) = queue.recv().await {
            let mut next = Some(frame);
            while let Some(frame) = next {
                if sink.feed(Message::Text(frame.into())).await.is_err() {
                    return;
                }
                next = queue.try_recv().ok();
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
        let frame = close_rx.await.ok().flatten();
        let _ = sink.send(Message::Close(frame)).await;
        let _ = sink.close().await;
    });
    let session = Arc::new(Session {
        node: Node::from_shared(gw.shared.clone()),
        serving: Serving::new(gw.shared.clone(), out.clone()),
        topics: Topics::default(),
        permits: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
        caller,
        out,
    });
    let mut running = JoinSet::new();
    let stop = gw.shared.shutdown.clone();
    let mut close = None;
    loop {
        let msg = tokio::select! {
            _ = stop.cancelled() => break,
            // Reap finished requests so the set does not grow.
            Some(_) = running.join_next(), if !running.is_empty() => continue,
            m = stream.next() => m,
        };
        let text = match msg {
            Some(Ok(Message::Text(t))) => t.to_string(),
            Some(Ok(Message::Binary(b))) => match String::from_utf8(b.to_vec()) {
                Ok(t) => t,
                Err(_) => {
                    session
                        .reply(
                            Json::Null,
                            Err(Fault::malformed("a binary frame must hold UTF-8 JSON")),
                        )
                        .await;
                    continue;
                }
            },
            // Pings are answered by the WebSocket layer; a close ends the session.
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Err(e)) => {
                close = too_big(e);
                break;
            }
            Some(Ok(Message::Close(_))) | None => break,
        };
        session.clone().accept(&text, &mut running).await;
    }
    running.abort_all();
    let _ = close_tx.send(close);
    session.serving.close();
    drop(session);
    // The writer ends once every producer is gone; a client that stopped reading may hold
    // it in a write, so it gets a bounded time to finish the close handshake.
    let abort = writer.abort_handle();
    if tokio::time::timeout(CLOSE_LIMIT, writer).await.is_err() {
        abort.abort();
    }
}

/// A request frame as read, before it runs.
#[derive(Debug)]
pub(crate) enum Request {
    /// A served function's result (`role: "result"`), answered by nobody.
    Result(Map<String, Json>),
    /// Any other role, with its request id `u` (never null) and all its fields.
    Call {
        role: String,
        u: Json,
        req: Map<String, Json>,
    },
}

/// Reads one text frame; `Err` holds the id to answer (null when unknown) and the fault.
pub(crate) fn read_request(text: &str) -> Result<Request, (Json, Fault)> {
    let req = match serde_json::from_str::<Json>(text) {
        Ok(Json::Object(m)) => m,
        Ok(other) => {
            let f = Fault::malformed(format!(
                "a request must be a JSON object, got {}",
                kind(&other)
            ));
            return Err((Json::Null, f));
        }
        Err(e) => return Err((Json::Null, Fault::malformed(format!("invalid JSON: {e}")))),
    };
    let role = req
        .get("role")
        .and_then(Json::as_str)
        .unwrap_or_default()
        .to_string();
    if role == "result" {
        return Ok(Request::Result(req));
    }
    let u = req.get("u").cloned().unwrap_or(Json::Null);
    if u.is_null() {
        let f = Fault::malformed("field `u` (the request id) is missing");
        return Err((u, f));
    }
    Ok(Request::Call { role, u, req })
}

/// The state of one socket.
struct Session {
    node: Node,
    serving: Arc<Serving>,
    topics: Topics,
    permits: Arc<Semaphore>,
    caller: Caller,
    out: mpsc::Sender<String>,
}

impl Session {
    /// Reads one request and starts it (or answers at once when it cannot run).
    async fn accept(self: Arc<Self>, text: &str, running: &mut JoinSet<()>) {
        let (role, u, req) = match read_request(text) {
            Ok(Request::Result(req)) => return self.serving.result(&req),
            Ok(Request::Call { role, u, req }) => (role, u, req),
            Err((u, f)) => return self.reply(u, Err(f)).await,
        };
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            let f = Fault::new(
                fault::BUSY,
                format!(
                    "{MAX_IN_FLIGHT} requests are already running on this connection; retry later"
                ),
            );
            return self.reply(u, Err(f)).await;
        };
        running.spawn(async move {
            let result = self.handle(&role, req).await;
            self.reply(u, result).await;
            drop(permit);
        });
    }

    async fn handle(&self, role: &str, mut req: Map<String, Json>) -> Result<Json, Fault> {
        let shared = self.node.shared();
        match role {
            "rpc" => {
                let opts = Options::read(shared, Some(&req))?;
                let Some(cmds) = req.remove("cmds") else {
                    return Err(Fault::malformed("field `cmds` (the commands) is missing"));
                };
                call::commands(shared, &self.caller, cmds, &opts).await
            }
            "publish" => topics::publish(&self.node, &req).await,
            "subscribe" => self.topics.subscribe(&self.node, &req, &self.out).await,
            "unsubscribe" => self.topics.unsubscribe(&req),
            "register" => self.serving.register(&req),
            "unregister" => self.serving.unregister(&req),
            "" => Err(Fault::malformed("field `role` is missing")),
            other => Err(Fault::malformed(format!(
                "unknown role `{other}` (this gateway takes rpc, publish, subscribe, unsubscribe, \
                 register, unregister and result)"
            ))),
        }
    }

    /// Queues the reply to request `u`; one too large to send becomes an error saying so.
    async fn reply(&self, u: Json, result: Result<Json, Fault>) {
        let frame = match result {
            Ok(r) => json!({"r": r, "error": null, "u": u}),
            Err(f) => json!({"r": null, "error": f.to_mpreg(), "u": u}),
        };
        let mut text = frame.to_string();
        if text.len() > MAX_FRAME {
            let f = Fault::new(
                fault::INTERNAL,
                format!(
                    "the reply of {} bytes exceeds the {MAX_FRAME}-byte frame limit",
                    text.len()
                ),
            );
            text = json!({"r": null, "error": f.to_mpreg(), "u": u}).to_string();
        }
        let _ = self.out.send(text).await;
    }
}

/// The close frame for a read error: 1009 for a frame over [`MAX_FRAME`] (the client
/// learns why), none for a broken connection.
fn too_big(e: axum::Error) -> Option<CloseFrame> {
    let e = e.into_inner();
    let Some(tungstenite::Error::Capacity(c)) = e.downcast_ref::<tungstenite::Error>() else {
        return None;
    };
    Some(CloseFrame {
        code: close_code::SIZE,
        reason: format!("{c}").into(),
    })
}

/// "an array", "a string"…: for error messages.
pub(crate) fn kind(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}
