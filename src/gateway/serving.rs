//! Functions served from a WebSocket client (`register` / `unregister`): the gateway node
//! registers each under the client's name and forwards every call it receives over the
//! socket as an `invoke` frame, waiting for the client's `result` frame within the call's
//! deadline. At most `max_in_flight` calls are forwarded at once (more get "busy"). When
//! the socket closes its functions are withdrawn and the calls waiting on it fail.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use serde_json::{json, Map, Value as Json};
use tokio::sync::{mpsc, oneshot, Semaphore};

use super::fault::Fault;
use crate::function::{Function, HandlerResult, Visibility};
use crate::proto::json::{to_json, to_value};
use crate::proto::wire::Failure;
use crate::runtime::workflow::encode;
use crate::runtime::Shared;

/// Calls forwarded to one client at once unless it asks otherwise.
const DEFAULT_IN_FLIGHT: usize = 64;
/// The most a client may ask for.
const MAX_IN_FLIGHT: usize = 4096;
/// Functions one socket may register.
const MAX_FUNCTIONS: usize = 256;

/// What a client answered: its result, or its error message.
type Answer = Result<Json, String>;

/// The functions one WebSocket session serves.
pub(crate) struct Serving {
    shared: Arc<Shared>,
    out: mpsc::Sender<String>,
    /// Calls waiting for the client's `result`, by invoke id.
    waiting: Mutex<HashMap<u64, oneshot::Sender<Answer>>>,
    next: AtomicU64,
    permits: Mutex<Option<Arc<Semaphore>>>,
    names: Mutex<Vec<String>>,
}

impl Serving {
    pub(crate) fn new(shared: Arc<Shared>, out: mpsc::Sender<String>) -> Arc<Self> {
        Arc::new(Serving {
            shared,
            out,
            waiting: Mutex::new(HashMap::new()),
            next: AtomicU64::new(1),
            permits: Mutex::new(None),
            names: Mutex::new(Vec::new()),
        })
    }

    /// `register`: `{"functions": [{"name","params","resources","visibility"}], "max_in_flight"}`.
    pub(crate) fn register(self: &Arc<Self>, req: &Map<String, Json>) -> Result<Json, Fault> {
        let Some(Json::Array(specs)) = req.get("functions") else {
            return Err(Fault::malformed(
                "field `functions` must be an array of functions",
            ));
        };
        let permits = self.permits(req)?;
        let functions = specs
            .iter()
            .map(|s| self.function(s, &permits))
            .collect::<Result<Vec<_>, _>>()?;
        if self.names.lock().len() + functions.len() > MAX_FUNCTIONS {
            return Err(Fault::malformed(format!(
                "a connection serves at most {MAX_FUNCTIONS} functions"
            )));
        }
        let mut done = Vec::new();
        for f in functions {
            let name = f.spec.name.clone();
            if let Err(e) = self.shared.registry.write().insert(f) {
                self.withdraw(&done);
                return Err(Fault::new(super::fault::FAILED, e.to_string()));
            }
            done.push(name);
        }
        self.names.lock().extend(done.iter().cloned());
        self.shared.announce_catalog();
        Ok(json!({ "registered": done }))
    }

    /// `unregister`: `{"names": [..]}`; only this socket's functions.
    pub(crate) fn unregister(&self, req: &Map<String, Json>) -> Result<Json, Fault> {
        let Some(Json::Array(names)) = req.get("names") else {
            return Err(Fault::malformed(
                "field `names` must be an array of strings",
            ));
        };
        let wanted: Vec<String> = names
            .iter()
            .filter_map(|n| n.as_str().map(String::from))
            .collect();
        let gone: Vec<String> = {
            let mut mine = self.names.lock();
            let gone = mine
                .iter()
                .filter(|n| wanted.contains(n))
                .cloned()
                .collect();
            mine.retain(|n| !wanted.contains(n));
            gone
        };
        self.withdraw(&gone);
        Ok(json!({ "unregistered": gone }))
    }

    /// A `result` frame from the client: `{"id", "result"}` or `{"id", "error"}`.
    pub(crate) fn result(&self, req: &Map<String, Json>) {
        let id = match req.get("id") {
            Some(Json::String(s)) => s.parse().ok(),
            Some(Json::Number(n)) => n.as_u64(),
            _ => None,
        };
        let Some(tx) = id.and_then(|id| self.waiting.lock().remove(&id)) else {
            // Late (the call's deadline passed) or unknown: nobody waits for it.
            return;
        };
        let answer = match req.get("error") {
            Some(Json::Null) | None => Ok(req.get("result").cloned().unwrap_or(Json::Null)),
            Some(Json::String(m)) => Err(m.clone()),
            Some(other) => Err(other.to_string()),
        };
        let _ = tx.send(answer);
    }

    /// Withdraws every function of this socket (it closed); waiting calls fail.
    pub(crate) fn close(&self) {
        let names = std::mem::take(&mut *self.names.lock());
        self.withdraw(&names);
        self.waiting.lock().clear();
    }

    fn withdraw(&self, names: &[String]) {
        if names.is_empty() {
            return;
        }
        let mut reg = self.shared.registry.write();
        for n in names {
            reg.remove(n);
        }
        drop(reg);
        self.shared.announce_catalog();
    }

    /// The in-flight limit of this socket's functions (set by its first `register`).
    fn permits(&self, req: &Map<String, Json>) -> Result<Arc<Semaphore>, Fault> {
        let n = match req.get("max_in_flight") {
            None | Some(Json::Null) => DEFAULT_IN_FLIGHT,
            Some(Json::Number(n)) => match n.as_u64() {
                Some(n) if (1..=MAX_IN_FLIGHT as u64).contains(&n) => n as usize,
                _ => {
                    return Err(Fault::malformed(format!(
                        "field `max_in_flight` must be 1..={MAX_IN_FLIGHT}, got {n}"
                    )))
                }
            },
            Some(other) => {
                return Err(Fault::malformed(format!(
                    "field `max_in_flight` must be a number, got {other}"
                )))
            }
        };
        Ok(self
            .permits
            .lock()
            .get_or_insert_with(|| Arc::new(Semaphore::new(n)))
            .clone())
    }

    /// The function that forwards calls of `spec` to this socket.
    fn function(
        self: &Arc<Self>,
        spec: &Json,
        permits: &Arc<Semaphore>,
    ) -> Result<Function, Fault> {
        let name = match spec.get("name") {
            Some(Json::String(n)) if !n.is_empty() => n.clone(),
            _ => {
                return Err(Fault::malformed(
                    "each function needs a non-empty string `name`",
                ))
            }
        };
        let strings = |field: &str| -> Result<Option<Vec<String>>, Fault> {
            match spec.get(field) {
                None | Some(Json::Null) => Ok(None),
                Some(Json::Array(a)) => a
                    .iter()
                    .map(|v| v.as_str().map(String::from))
                    .collect::<Option<Vec<_>>>()
                    .map(Some)
                    .ok_or_else(|| {
                        Fault::malformed(format!("`{name}`: field `{field}` must hold strings"))
                    }),
                Some(other) => Err(Fault::malformed(format!(
                    "`{name}`: field `{field}` must be an array of strings, got {other}"
                ))),
            }
        };
        let visibility: Visibility = match spec.get("visibility") {
            None | Some(Json::Null) => Visibility::Network,
            Some(Json::String(v)) => v
                .parse()
                .map_err(|e| Fault::malformed(format!("`{name}`: {e}")))?,
            Some(other) => {
                return Err(Fault::malformed(format!(
                    "`{name}`: field `visibility` must be a string, got {other}"
                )))
            }
        };
        let me = Arc::downgrade(self);
        let permits = permits.clone();
        let fun = name.clone();
        let handler = move |args: Bytes| -> crate::function::BoxFuture<HandlerResult> {
            let me = me.clone();
            let permits = permits.clone();
            let fun = fun.clone();
            Box::pin(async move {
                let Some(me) = me.upgrade() else {
                    return Err(Failure::remote(format!(
                        "the client serving `{fun}` is gone"
                    )));
                };
                let Ok(_permit) = permits.try_acquire_owned() else {
                    return Err(Failure::busy(format!(
                        "the WebSocket client serving `{fun}` has its maximum of calls in flight"
                    )));
                };
                me.forward(&fun, &args).await
            })
        };
        let mut f = Function::from_handler(&name, Arc::new(handler)).visibility(visibility);
        // The client's language binds keyword arguments and defaults itself.
        f.as_sent = true;
        if let Some(p) = strings("params")? {
            f = f.params(p);
        }
        if let Some(r) = strings("resources")? {
            f = f.resources(r);
        }
        Ok(f)
    }

    /// Sends one call to the client and waits for its answer within the node's call timeout.
    /// `sent` is `[args, kwargs]` as the caller sent them (`Function::as_sent`).
    async fn forward(&self, fun: &str, sent: &Bytes) -> HandlerResult {
        let undecodable = |e: &dyn std::fmt::Display| {
            Failure::bad_arguments(format!("undecodable arguments: {e}"))
        };
        let sent = rmpv::decode::read_value(&mut &sent[..]).map_err(|e| undecodable(&e))?;
        let (args, kwargs) = match sent {
            rmpv::Value::Array(mut pair) if pair.len() == 2 => {
                let kwargs = pair.pop().unwrap_or(rmpv::Value::Nil);
                (pair.pop().unwrap_or(rmpv::Value::Nil), kwargs)
            }
            other => {
                return Err(undecodable(&format!(
                    "expected [args, kwargs], got {other}"
                )))
            }
        };
        let id = self.next.fetch_add(1, Relaxed);
        let limit: Duration = self.shared.config.call_timeout();
        let (tx, rx) = oneshot::channel();
        self.waiting.lock().insert(id, tx);
        let _forget = Forget {
            waiting: &self.waiting,
            id,
        };
        let frame = json!({
            "role": "invoke",
            "id": id.to_string(),
            "fun": fun,
            "args": to_json(&args),
            "kwargs": to_json(&kwargs),
            "timeout": limit.as_secs_f64(),
        });
        let answered = tokio::time::timeout(limit, async {
            if self.out.send(frame.to_string()).await.is_err() {
                return None;
            }
            rx.await.ok()
        })
        .await;
        match answered {
            Ok(Some(Ok(v))) => Ok(encode(&to_value(&v))),
            Ok(Some(Err(message))) => Err(Failure::remote(message)),
            Ok(None) => Err(Failure::remote(format!(
                "the WebSocket client serving `{fun}` disconnected"
            ))),
            Err(_) => Err(Failure::timeout(format!(
                "the WebSocket client serving `{fun}` did not answer within {limit:?}"
            ))),
        }
    }
}

/// Removes a call from the waiting map however its wait ends.
struct Forget<'a> {
    waiting: &'a Mutex<HashMap<u64, oneshot::Sender<Answer>>>,
    id: u64,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.waiting.lock().remove(&self.id);
    }
}
