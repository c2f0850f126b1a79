//! Running an MPREG workflow on the node that received it (DESIGN §8). The pure
//! `proto::workflow::Run` says what is ready; this drives it with real calls, each resolved
//! on its own `fun`/`locs`/scope, all in flight at once, under one deadline. The first
//! failure ends the run and drops the calls still pending, which cancels them remotely.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{FuturesUnordered, StreamExt};
use rmpv::Value;
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::proto::resolve::{Route, Scope};
use crate::proto::workflow::{Plan, Run, Workflow};
use crate::runtime::route::{Invocation, Outcome};
use crate::runtime::Shared;

/// Function names starting with this are mpreg's own and cannot be registered.
pub(crate) const RESERVED_PREFIX: &str = "mpreg:";

/// The call that submits a workflow to a node: positional args `[workflow, all]`.
pub(crate) const RUN: &str = "mpreg:run";

fn failed(detail: impl Into<String>) -> Error {
    Error::Workflow {
        detail: detail.into(),
    }
}

/// MessagePack bytes of a value (writing to a Vec cannot fail).
pub(crate) fn encode(v: &Value) -> Bytes {
    let mut buf = Vec::new();
    rmpv::encode::write_value(&mut buf, v).expect("writing to a Vec");
    Bytes::from(buf)
}

impl Shared {
    /// Plans and runs `w` here; the sinks' results (or every command's, with `all`) as a map.
    pub(crate) async fn run_workflow(
        self: &Arc<Self>,
        w: Workflow,
        all: bool,
        timeout: Duration,
        origin_host: Option<String>,
    ) -> Result<Value> {
        if !self.metrics.enabled {
            return self.run_plan(w, all, timeout, origin_host).await;
        }
        let start = Instant::now();
        let result = self.run_plan(w, all, timeout, origin_host).await;
        let m = &self.metrics.events;
        crate::metrics::bump(&m.workflows);
        m.workflow_latency.record(start.elapsed());
        if result.is_err() {
            crate::metrics::bump(&m.workflow_failures);
        }
        result
    }

    async fn run_plan(
        self: &Arc<Self>,
        w: Workflow,
        all: bool,
        timeout: Duration,
        origin_host: Option<String>,
    ) -> Result<Value> {
        let plan = Plan::new(w).map_err(|e| failed(e.to_string()))?;
        let deadline = Instant::now() + timeout;
        let mut run = Run::new(plan);
        let mut steps = FuturesUnordered::new();
        for i in run.ready() {
            steps.push(self.launch(&run, i, deadline, &origin_host)?);
        }
        while !run.is_done() {
            let (i, outcome) = match tokio::time::timeout_at(deadline, steps.next()).await {
                Ok(Some(done)) => done,
                Ok(None) => return Err(failed("internal: no command running and none ready")),
                Err(_) => {
                    return Err(failed(format!(
                        "the deadline of {timeout:?} passed; still running: {}",
                        names(&run, &run.pending())
                    )))
                }
            };
            if let Err(Error::Timeout { .. }) = outcome {
                return Err(failed(format!(
                    "the deadline of {timeout:?} passed; still running: {}",
                    names(&run, &run.pending())
                )));
            }
            let value = outcome.and_then(|o| decode(&o)).map_err(|e| {
                let pending: Vec<usize> = run.pending().into_iter().filter(|&p| p != i).collect();
                step_failed(&run, i, &e, &pending)
            })?;
            for j in run.complete(i, value) {
                steps.push(self.launch(&run, j, deadline, &origin_host)?);
            }
        }
        Ok(run.into_result(all))
    }

    /// Starts command `i`: its inputs substituted, resolved on its own route.
    fn launch(
        self: &Arc<Self>,
        run: &Run,
        i: usize,
        deadline: Instant,
        origin_host: &Option<String>,
    ) -> Result<impl std::future::Future<Output = (usize, Result<Outcome>)>> {
        let cmd = run
            .plan()
            .command(i)
            .ok_or_else(|| failed(format!("internal: no command {i}")))?;
        crate::metrics::bump(&self.metrics.events.workflow_steps);
        let inputs = run.inputs(i).map_err(|e| failed(e.to_string()))?;
        let scope = match cmd.scope.as_deref() {
            None => Scope::Network,
            Some(s) => s
                .parse()
                .map_err(|e| failed(format!("command `{}`: {e}", cmd.name)))?,
        };
        let kwargs = (!inputs.kwargs.is_empty()).then(|| {
            let map = inputs.kwargs.into_iter();
            encode(&Value::Map(map.map(|(k, v)| (Value::from(k), v)).collect()))
        });
        let inv = Invocation {
            fun: cmd.fun.clone(),
            args: encode(&Value::Array(inputs.args)),
            kwargs,
            timeout: deadline.saturating_duration_since(Instant::now()),
            route: Route {
                locs: cmd.locs.clone(),
                scope,
                ..Route::default()
            },
            origin_host: origin_host.clone(),
        };
        let me = self.clone();
        Ok(async move { (i, me.invoke(&inv).await) })
    }
}

fn decode(o: &Outcome) -> Result<Value> {
    rmpv::decode::read_value(&mut &o.value[..]).map_err(|e| Error::Codec {
        what: "decode a step's result",
        fun: String::new(),
        detail: format!("{e} (from node `{}`)", o.node),
    })
}

fn names(run: &Run, ids: &[usize]) -> String {
    let v: Vec<String> = ids
        .iter()
        .filter_map(|&i| run.plan().command(i))
        .map(|c| format!("`{}`", c.name))
        .collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// "command `|b` (`train`) failed: <cause>; cancelled: `|c`".
fn step_failed(run: &Run, i: usize, cause: &Error, pending: &[usize]) -> Error {
    let (name, fun) = run
        .plan()
        .command(i)
        .map(|c| (c.name.as_str(), c.fun.as_str()))
        .unwrap_or(("?", "?"));
    let mut detail = format!("command `{name}` (`{fun}`) failed: {cause}");
    if !pending.is_empty() {
        detail.push_str(&format!("; cancelled: {}", names(run, pending)));
    }
    failed(detail)
}

impl Shared {
    /// Runs `w` with this node as the entry node if it is a member; a client sends it, in
    /// one message, to a member it is connected to, which runs it and answers with the
    /// result alone (intermediate results never travel back to the client).
    pub(crate) async fn submit_workflow(
        self: &Arc<Self>,
        w: Workflow,
        all: bool,
        timeout: Duration,
    ) -> Result<Value> {
        if self.config.listen {
            return self.run_workflow(w, all, timeout, None).await;
        }
        let entry = self
            .connections()
            .into_iter()
            .find(|c| c.peer.listen_port != 0)
            .ok_or_else(|| failed("no member node is connected to run it on"))?;
        let inv = Invocation {
            fun: RUN.into(),
            args: encode(&Value::Array(vec![w.to_value(), Value::from(all)])),
            kwargs: None,
            timeout,
            route: Route::default(),
            origin_host: None,
        };
        let out = self.over(&entry, &inv, timeout, None).await?;
        decode(&out)
    }
}
