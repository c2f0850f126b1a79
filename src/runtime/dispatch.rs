//! Serving one incoming call: find the function, enforce visibility, fit the arguments,
//! bound the work in flight, run it under the caller's deadline, reply.

use std::ops::Deref;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::FutureExt;
use tracing::Instrument;

use crate::function::{FnSpec, Function, HandlerResult};
use crate::proto::args;
use crate::proto::catalog::{admits, close_names, Relation};
use crate::proto::codec::FrameError;
use crate::proto::resolve::Route;
use crate::proto::wire::{Call, Failure, FailureKind, Frame, Reply};
use crate::proto::workflow::Workflow;
use crate::runtime::route::Invocation;
use crate::runtime::workflow;
use crate::runtime::{Connection, Shared};
use rmpv::Value;

/// Reserved function answering with the node's counters ([`crate::NodeStats`]).
pub(crate) const STATS: &str = "mpreg:stats";

/// Handles a `Call` frame from `conn`'s peer. Never fails the connection: every problem is
/// answered with a [`Failure`] reply.
pub(crate) fn serve(conn: &Arc<Connection>, shared: &Arc<Shared>, mut call: Call) {
    let id = call.id;
    crate::metrics::bump(&conn.calls_received);
    if call.fun == workflow::RUN {
        return run_workflow(conn, shared, call);
    }
    if call.fun == STATS {
        let stats = crate::node::stats_of(shared);
        return reply_now(conn, id, args::encode_value(&stats));
    }
    if let Some(route) = call.route.take() {
        return relay(conn, shared, call, route);
    }
    let func = match admit(conn, shared, &call) {
        Ok(f) => f,
        Err(failure) => return reply_now(conn, id, Err(failure)),
    };
    let fitted = match fitted(&func, &call.args, call.kwargs.as_deref()) {
        Ok(Some(b)) => b,
        Ok(None) => call.args.clone(),
        Err(f) => {
            if shared.metrics.enabled {
                // Counted as a call that took no time: it never ran.
                func.served.latency.record(Duration::ZERO);
                crate::metrics::bump(&func.served.errors);
            }
            return reply_now(conn, id, Err(f));
        }
    };
    let timeout = (call.timeout_ms > 0).then(|| Duration::from_millis(call.timeout_ms));
    let measure = shared.metrics.enabled;
    if refused(conn, shared, id) {
        if measure {
            crate::metrics::bump(&func.served.busy);
        }
        return;
    }
    if func.wants_caller {
        call.origin_host = Some(caller_host(conn, shared, &call));
    }
    let span = tracing::debug_span!("serve", id, fun = %call.fun, peer = %conn.peer.name);
    if func.quick.trusted() {
        return serve_on_reader(conn, shared, func, fitted, timeout, call, measure, span);
    }
    let work = async move {
        tracing::debug!("running");
        (run(&func, fitted, timeout, &call, measure).await, None)
    };
    spawn_served(conn, shared, id, work.instrument(span));
}

/// Serves a call of a function learnt to be quick ([`crate::runtime::quick`]) on the
/// reader: the body's first poll happens here, and a body that answers at once is replied
/// to without a task, a timer or an entry among the served calls. One that has to wait
/// becomes a served task like any other, its deadline counted from its start here.
#[allow(clippy::too_many_arguments)]
fn serve_on_reader(
    conn: &Arc<Connection>,
    shared: &Arc<Shared>,
    func: Arc<Function>,
    args: Bytes,
    timeout: Option<Duration>,
    call: Call,
    measure: bool,
    span: tracing::Span,
) {
    let id = call.id;
    let start = Instant::now();
    let load = Load::enter(&*func.in_flight);
    let first = span.in_scope(|| {
        tracing::debug!("running");
        first_poll(&func, args, &call)
    });
    func.quick
        .first_poll(start.elapsed(), !matches!(first, First::Waiting(_)));
    let outcome = match first {
        First::Done(r) => Ok(r),
        First::Panicked(p) => Err(p),
        First::Waiting(body) => {
            // The task owns its count from here (entered before the reader's is left).
            let owned = Load::enter(func.in_flight.clone());
            drop(load);
            let work = async move {
                let _load = owned;
                let outcome = bounded(body, timeout.map(|t| (start + t, t)), &call).await;
                let r = finish(outcome, &func, &call, measure.then_some(start));
                (r, None)
            };
            return spawn_served(conn, shared, id, work.instrument(span));
        }
    };
    drop(load);
    let r = span.in_scope(|| finish(outcome, &func, &call, measure.then_some(start)));
    reply_now(conn, id, r);
}

/// What a body's first poll on the reader gave.
enum First {
    Done(HandlerResult),
    Waiting(crate::function::BoxFuture<HandlerResult>),
    Panicked(Box<dyn std::any::Any + Send>),
}

/// Starts `func`'s body and polls it once, with a waker that does nothing: a body that
/// waits is polled again at once by the task it moves to, which registers that task's
/// waker (a future must, at every poll).
fn first_poll(func: &Function, args: Bytes, call: &Call) -> First {
    let polled = std::panic::catch_unwind(AssertUnwindSafe(|| {
        let mut body = start_body(func, args, call);
        let mut cx = Context::from_waker(Waker::noop());
        match body.as_mut().poll(&mut cx) {
            Poll::Ready(r) => First::Done(r),
            Poll::Pending => First::Waiting(body),
        }
    }));
    polled.unwrap_or_else(First::Panicked)
}

/// Answers call `id` "busy" when `conn` already has `max_in_flight` calls served; whether
/// it did. Checked before any work is built for the call.
fn refused(conn: &Arc<Connection>, shared: &Shared, id: u64) -> bool {
    let limit = shared.config.max_in_flight;
    if conn.served_count() < limit {
        return false;
    }
    let msg = format!("{limit} calls already in flight on this connection (max_in_flight)");
    reply_now(conn, id, Err(Failure::busy(msg)));
    true
}

/// Runs `work` as a call served for `conn`'s peer (admitted by [`refused`]): aborted on
/// Cancel or when the connection closes, answered with its result and, for work done
/// elsewhere, the node that did it.
fn spawn_served<W>(conn: &Arc<Connection>, shared: &Arc<Shared>, id: u64, work: W)
where
    W: std::future::Future<Output = (HandlerResult, Option<String>)> + Send + 'static,
{
    let c = conn.clone();
    let handle = shared.tasks.clone();
    conn.track_served(id, move || {
        handle
            .spawn(async move {
                let (result, node) = work.await;
                // Still counted against `max_in_flight` while its reply waits for room:
                // a peer that does not read meets "busy" (and the reader's back-pressure)
                // instead of an ever-growing number of finished calls holding replies.
                reply_later(&c, id, result, node).await;
                c.untrack_served(id);
            })
            .abort_handle()
    });
}

/// The deadline of work a call starts here on the caller's behalf (0: the node's default).
fn deadline(shared: &Shared, call: &Call) -> Duration {
    match call.timeout_ms {
        0 => shared.config.call_timeout(),
        ms => Duration::from_millis(ms),
    }
}

/// The caller asked us to resolve for it (it cannot reach providers itself): resolve with
/// its route and host, run or relay, and answer naming the node that ran the call.
fn relay(conn: &Arc<Connection>, shared: &Arc<Shared>, call: Call, route: Route) {
    let id = call.id;
    let timeout = deadline(shared, &call);
    let inv = Invocation {
        fun: call.fun,
        args: call.args,
        kwargs: call.kwargs,
        timeout,
        route,
        origin_host: Some(conn.peer.host_id.clone()),
    };
    if refused(conn, shared, id) {
        return;
    }
    // Like `serve`'s span, with this node's onward `call` span inside it: the debug log
    // ties the caller's `id` here to the `id` of the call on the next hop.
    let span = tracing::debug_span!("relay", id, fun = %inv.fun, peer = %conn.peer.name);
    let s = shared.clone();
    let work = async move {
        tracing::debug!("relaying");
        match s.invoke(&inv).await {
            Ok(o) => {
                tracing::debug!(node = %o.node, "done");
                (Ok(o.value), Some(o.node))
            }
            Err(e) => {
                tracing::debug!(error = %e, "failed");
                (Err(e.to_failure()), None)
            }
        }
    };
    spawn_served(conn, shared, id, work.instrument(span));
}

/// A client submitted a workflow (`[workflow, all]`): run it here, answer with the result map.
fn run_workflow(conn: &Arc<Connection>, shared: &Arc<Shared>, call: Call) {
    let id = call.id;
    let parsed = rmpv::decode::read_value(&mut &call.args[..])
        .map_err(|e| e.to_string())
        .and_then(|v| match v {
            Value::Array(mut a) if a.len() == 2 => {
                let all = a.pop().and_then(|b| b.as_bool()).unwrap_or(false);
                Workflow::from_value(&a[0])
                    .map(|w| (w, all))
                    .map_err(|e| e.to_string())
            }
            _ => Err("expected [workflow, all]".into()),
        });
    let (w, all) = match parsed {
        Ok(p) => p,
        Err(e) => {
            let f = Failure::of_kind(FailureKind::Workflow, format!("bad workflow request: {e}"));
            return reply_now(conn, id, Err(f));
        }
    };
    if refused(conn, shared, id) {
        return;
    }
    let timeout = deadline(shared, &call);
    let s = shared.clone();
    let origin = Some(conn.peer.host_id.clone());
    spawn_served(conn, shared, id, async move {
        let result = match s.run_workflow(w, all, timeout, origin).await {
            Ok(v) => Ok(workflow::encode(&v)),
            Err(e) => Err(e.to_failure()),
        };
        (result, None)
    });
}

/// The host a call counts as coming from: the peer's when it is on another host (a relay
/// cannot vouch for a caller elsewhere), else the original caller's it relayed for.
fn caller_host(conn: &Connection, shared: &Shared, call: &Call) -> String {
    if Relation::of_peer(&shared.host_id, &conn.peer.host_id) == Relation::OtherHost {
        return conn.peer.host_id.clone();
    }
    call.origin_host
        .clone()
        .unwrap_or_else(|| conn.peer.host_id.clone())
}

/// Looks the function up and checks that this caller may use it — and, for a relayed call,
/// that the original caller may too.
fn admit(conn: &Connection, shared: &Shared, call: &Call) -> Result<Arc<Function>, Failure> {
    let mut relation = Relation::of_peer(&shared.host_id, &conn.peer.host_id);
    if let Some(origin) = &call.origin_host {
        if Relation::of_peer(&shared.host_id, origin) == Relation::OtherHost {
            relation = Relation::OtherHost;
        }
    }
    let reg = shared.registry.read();
    let Some(func) = reg.get(&call.fun) else {
        let visible = reg
            .specs()
            .into_iter()
            .filter(|s| admits(s.visibility, relation))
            .map(|s| s.name);
        let names: Vec<String> = visible.collect();
        return Err(Failure::unknown_function(
            &call.fun,
            close_names(&call.fun, names.iter().map(String::as_str)),
        ));
    };
    if !admits(func.spec.visibility, relation) {
        let caller = match &call.origin_host {
            Some(o) => format!(
                "the caller (relayed by `{}`) is on host `{o}`",
                conn.peer.name
            ),
            None => format!(
                "the caller `{}` is on host `{}`",
                conn.peer.name, conn.peer.host_id
            ),
        };
        return Err(Failure::not_visible(format!(
            "`{}` is {}-visible and {caller}, not `{}`",
            call.fun, func.spec.visibility, shared.host_id
        )));
    }
    Ok(func.clone())
}

/// Runs a function body with panic isolation and an optional deadline, completing
/// bad-argument failures with the expected signature; with `measure`, counts the call, its
/// failure and its latency in the function's metrics. Its first poll is timed, for the
/// function's [`Quick`](crate::runtime::quick::Quick) record.
pub(crate) async fn run(
    func: &Function,
    args: Bytes,
    timeout: Option<Duration>,
    call: &Call,
    measure: bool,
) -> HandlerResult {
    let start = measure.then(Instant::now);
    let _load = Load::enter(&*func.in_flight);
    // The body is started inside the poll so that a panic in a synchronous body is caught
    // too, not just one raised while polling.
    let mut body = None;
    let mut timed = false;
    let mut args = Some(args);
    let body = std::future::poll_fn(|cx| {
        let t0 = (!timed).then(Instant::now);
        let b = body.get_or_insert_with(|| start_body(func, args.take().unwrap_or_default(), call));
        let p = b.as_mut().poll(cx);
        if let Some(t0) = t0 {
            timed = true;
            func.quick.first_poll(t0.elapsed(), p.is_ready());
        }
        p
    });
    let deadline = timeout.map(|t| (Instant::now() + t, t));
    finish(bounded(body, deadline, call).await, func, call, start)
}

/// Runs `body` with its panics caught, failing it as late at `deadline` (the instant, and
/// the timeout it ends) if it has one.
async fn bounded(
    body: impl std::future::Future<Output = HandlerResult>,
    deadline: Option<(Instant, Duration)>,
    call: &Call,
) -> std::thread::Result<HandlerResult> {
    let body = AssertUnwindSafe(body).catch_unwind();
    match deadline {
        Some((at, t)) => match tokio::time::timeout_at(at.into(), body).await {
            Ok(o) => o,
            Err(_) => Ok(Err(late(call, t))),
        },
        None => body.await,
    }
}

/// The body of one call of `func` (started, not yet polled; a synchronous body may already
/// have run).
fn start_body(
    func: &Function,
    args: Bytes,
    call: &Call,
) -> crate::function::BoxFuture<HandlerResult> {
    let handler = &func.handler;
    match func.wants_caller {
        true => Box::pin(super::caller::scoped(
            call.origin_host.clone(),
            handler(args),
        )),
        false => handler(args),
    }
}

/// The failure of a call whose deadline `t` passed while its body ran.
fn late(call: &Call, t: Duration) -> Failure {
    Failure::timeout(format!("`{}` did not finish within {t:?}", call.fun))
}

/// The reply to a finished body (a panic becomes a failure, a bad-argument failure is
/// explained), counted in the function's metrics when `measured` since that instant.
fn finish(
    outcome: std::thread::Result<HandlerResult>,
    func: &Function,
    call: &Call,
    measured: Option<Instant>,
) -> HandlerResult {
    let r = match outcome {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(f)) => Err(explain(f, &func.spec, call)),
        Err(panic) => Err(Failure::remote(format!(
            "function panicked: {}",
            panic_message(&*panic)
        ))),
    };
    if let Some(start) = measured {
        let m = &func.served;
        m.latency.record(start.elapsed());
        if r.is_err() {
            crate::metrics::bump(&m.errors);
        }
    }
    match &r {
        Ok(_) => tracing::debug!("done"),
        Err(f) => tracing::debug!(kind = ?f.kind, error = %f.message, "failed"),
    }
    r
}

/// Adds the signature to a bad-argument failure and turns "invalid type: nil" for an
/// omitted argument into "missing argument `x`".
fn explain(mut f: Failure, spec: &FnSpec, call: &Call) -> Failure {
    if f.kind != FailureKind::BadArguments {
        return f;
    }
    f.expected = spec.signature();
    if let Some(params) = &spec.params {
        // `argument 1: expected …` (from decoding) names the parameter instead.
        let named = f
            .message
            .strip_prefix("argument ")
            .and_then(|r| r.split_once(": "))
            .and_then(|(i, rest)| Some((params.get(i.parse::<usize>().ok()?)?, rest)));
        if let Some((p, rest)) = named {
            f.message = format!("`{}`: {rest}", p.name);
        }
        let missing = args::missing(params, &call.args, call.kwargs.as_deref());
        if !missing.is_empty() && f.message.contains("nil")
            || f.message.contains("unit value") && !missing.is_empty()
        {
            let names: Vec<String> = missing.iter().map(|m| format!("`{m}`")).collect();
            f.message = format!(
                "missing argument{} {}",
                if names.len() == 1 { "" } else { "s" },
                names.join(", ")
            );
        }
    }
    f
}

/// Counts a running call for as long as it lives (also when aborted or panicking), on a
/// counter it borrows or shares.
struct Load<C: Deref<Target = AtomicUsize>>(C);

impl<C: Deref<Target = AtomicUsize>> Load<C> {
    fn enter(counter: C) -> Self {
        counter.fetch_add(1, Relaxed);
        Load(counter)
    }
}

impl<C: Deref<Target = AtomicUsize>> Drop for Load<C> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".into()
    }
}

/// A reply frame; `node` names the node that ran the call when it was not this one.
fn reply(id: u64, result: HandlerResult, node: Option<String>) -> Frame {
    Frame::Reply(Reply { id, result, node })
}

/// What answers call `id` when its reply cannot be encoded.
fn unencodable(id: u64, e: FrameError, node: Option<String>) -> Frame {
    reply(id, Err(Failure::internal(e.to_string())), node)
}

/// Replies from a served call's task, waiting for room in the queue; `node` as in [`reply`].
async fn reply_later(conn: &Connection, id: u64, result: HandlerResult, node: Option<String>) {
    if let Err(e) = conn.send_frame(&reply(id, result, node.clone())).await {
        let _ = conn.send_frame(&unencodable(id, e, node)).await;
    }
}

/// Replies from the reader task without waiting (see [`Connection::send_soon`]).
fn reply_now(conn: &Arc<Connection>, id: u64, result: HandlerResult) {
    if let Err(e) = conn.send_frame_soon(&reply(id, result, None)) {
        let _ = conn.send_frame_soon(&unencodable(id, e, None));
    }
}

/// The arguments `func`'s handler takes: fitted to its parameters (`Ok(None)`: as they
/// are), or as sent for a function that binds them itself.
pub(crate) fn fitted(
    func: &Function,
    args: &[u8],
    kwargs: Option<&[u8]>,
) -> Result<Option<Bytes>, Failure> {
    if func.as_sent {
        return args::as_sent(args, kwargs).map(Some);
    }
    args::fit(func.spec.params.as_deref(), args, kwargs)
}
