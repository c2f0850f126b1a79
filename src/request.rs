//! Calls with every option ([`Request`]) and calls seen from one host or node ([`Target`]).

use std::collections::BTreeMap;
use std::future::Future;

use futures_util::future::{ready, Either, FutureExt};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::node::{Node, Response};
use crate::proto::args::encode_value;
use crate::proto::resolve::{Perspective, Policy, Route, Scope};
use crate::runtime::route::Invocation;

/// A call being prepared; see [`Node::request`].
#[must_use = "a request does nothing until `send` is awaited"]
pub struct Request<'a> {
    node: &'a Node,
    fun: String,
    args: std::result::Result<Bytes, String>,
    kwargs: Option<std::result::Result<Bytes, String>>,
    timeout: Duration,
    route: Route,
    at: Option<(String, bool)>,
}

impl<'a> Request<'a> {
    pub(crate) fn new(node: &'a Node, fun: &str, perspective: Perspective) -> Self {
        let config = node.config();
        Request {
            node,
            fun: fun.to_string(),
            args: Ok(Bytes::from_static(&[0x90])),
            kwargs: None,
            timeout: config.call_timeout(),
            route: Route {
                locs: Vec::new(),
                scope: Scope::Network,
                perspective,
                policy: config.policy,
            },
            at: None,
        }
    }

    /// Positional arguments (a tuple or array), or keyword arguments (a map or struct).
    pub fn args(mut self, args: impl Serialize) -> Self {
        self.args = encode_value(&args).map_err(|f| f.message);
        self
    }

    /// Keyword arguments (a map or struct) in addition to positional ones.
    pub fn kwargs(mut self, kwargs: impl Serialize) -> Self {
        self.kwargs = Some(encode_value(&kwargs).map_err(|f| f.message));
        self
    }

    /// Pre-encoded MessagePack arguments (used by forwarding nodes and the CLI).
    pub fn raw_args(mut self, args: Bytes, kwargs: Option<Bytes>) -> Self {
        self.args = Ok(args);
        self.kwargs = kwargs.map(Ok);
        self
    }

    /// The deadline for this call (default from the config, 30 s).
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    /// Resources the provider must offer (MPREG `locs`): its node's resources together with
    /// the function's must include every one.
    pub fn locs<I: IntoIterator<Item = S>, S: Into<String>>(mut self, locs: I) -> Self {
        self.route.locs = locs.into_iter().map(Into::into).collect();
        self
    }

    /// How far the call may travel (default [`Scope::Network`]).
    pub fn scope(mut self, scope: Scope) -> Self {
        self.route.scope = scope;
        self
    }

    /// How to choose among providers (default from the config: least loaded).
    pub fn policy(mut self, policy: Policy) -> Self {
        self.route.policy = policy;
        self
    }

    /// Only providers on host `host`.
    pub fn on_host(mut self, host: &str) -> Self {
        self.route.perspective = Perspective::Host(host.into());
        self
    }

    /// Only the node named `name`.
    pub fn on_node(mut self, name: &str) -> Self {
        self.route.perspective = Perspective::Node(name.into());
        self
    }

    /// Sends the call straight to the node listening at `addr` (`host:port`), bypassing
    /// resolution: no catalog check on this side, so the serving node's own checks
    /// (visibility, existence) answer. For diagnostics and tests of those checks.
    pub fn at(mut self, addr: impl ToString) -> Self {
        self.at = Some((addr.to_string(), false));
        self
    }

    /// Sends the call through the node listening at `addr`, which resolves it with this
    /// call's rules (locs, scope, perspective, policy) among the providers it knows and
    /// relays the result: a node with no functions of its own acts as a router and balancer.
    pub fn via(mut self, addr: impl ToString) -> Self {
        self.at = Some((addr.to_string(), true));
        self
    }

    /// Sends the call and decodes the result as `R`.
    pub fn send<R: DeserializeOwned>(self) -> impl Future<Output = Result<Response<R>>> + 'a {
        self.send_named().map(|(fun, raw)| {
            let raw = raw?;
            let value = decode(&fun, &raw.value, &raw.node)?;
            Ok(Response {
                value,
                node: raw.node,
                elapsed: raw.elapsed,
            })
        })
    }

    /// Sends the call and returns the still-encoded result.
    pub fn send_raw(self) -> impl Future<Output = Result<Response<Bytes>>> + 'a {
        self.send_named().map(|(_, raw)| raw)
    }

    /// [`send_raw`](Self::send_raw), handing the function's name back for the decoding's
    /// errors (rather than copying it for every call).
    ///
    /// These three are plain functions returning futures, not `async fn`s: a call's future
    /// is moved whole at every layer it passes, and an `async fn` (or an `async` block
    /// awaiting a future it holds) keeps two copies of what it is given. Here every part
    /// of the call is held once.
    fn send_named(mut self) -> impl Future<Output = (String, Result<Response<Bytes>>)> + 'a {
        let node = self.node;
        let at = self.at.take();
        let inv = match self.invocation() {
            Ok(inv) => inv,
            Err(e) => return Either::Left(ready((String::new(), Err(e)))),
        };
        Either::Right(async move {
            // Read when the call is first polled, not when it was built: the deadline
            // counts from here, and `invoke_since` relies on `start` being a moment ago.
            let start = Instant::now();
            let shared = node.shared();
            // The measure borrows the function's name, given back below: its own block.
            let (out, elapsed) = {
                let measure = shared
                    .metrics
                    .enabled
                    .then(|| crate::metrics::caller::Caller::start(&shared.metrics, &inv.fun));
                let out = match &at {
                    // Boxed: it dials, and a dial's room would otherwise be in every call's
                    // future.
                    Some((addr, relay)) => Box::pin(shared.invoke_at(addr, &inv, *relay)).await,
                    None => shared.invoke_since(&inv, start).await,
                };
                // One clock read for the metrics and the response.
                let elapsed = start.elapsed();
                if let Some(m) = measure {
                    let answered = out.as_ref().ok().map(|o| o.node.as_str());
                    m.finish(&out, answered, elapsed);
                }
                (out, elapsed)
            };
            let out = out.map(|out| Response {
                value: out.value,
                node: out.node,
                elapsed,
            });
            (inv.fun, out)
        })
    }

    /// Sends the call to every qualifying provider at once and returns each one's result,
    /// keyed by node name. Fails only when no provider qualifies.
    pub async fn send_all<R: DeserializeOwned>(self) -> Result<BTreeMap<String, Result<R>>> {
        let node = self.node;
        let inv = self.invocation()?;
        let all = node.shared().invoke_all(&inv).await?;
        Ok(all
            .into_iter()
            .map(|(name, r)| {
                let v = r.and_then(|o| decode(&inv.fun, &o.value, &o.node));
                (name, v)
            })
            .collect())
    }

    fn invocation(self) -> Result<Invocation> {
        let fun = self.fun;
        let codec = |detail| Error::Codec {
            what: "encode arguments",
            fun: fun.clone(),
            detail,
        };
        let args = self.args.map_err(codec)?;
        let kwargs = self.kwargs.transpose().map_err(codec)?;
        Ok(Invocation {
            fun,
            args,
            kwargs,
            timeout: self.timeout,
            route: self.route,
            origin_host: None,
        })
    }
}

fn decode<R: DeserializeOwned>(fun: &str, bytes: &[u8], node: &str) -> Result<R> {
    rmp_serde::from_slice(bytes).map_err(|e| Error::Codec {
        what: "decode the result",
        fun: fun.to_string(),
        detail: format!("{e} (from node `{node}`)"),
    })
}

/// Calls restricted to one host or one node: `node.host("lab-pc").call("gpu_temp", ())`,
/// `mpreg::on_node("worker-3").call(..)`.
#[derive(Debug, Clone)]
pub struct Target {
    node: Node,
    perspective: Perspective,
}

impl Target {
    pub(crate) fn new(node: Node, perspective: Perspective) -> Self {
        Target { node, perspective }
    }

    /// Calls `fun` on a provider inside this perspective and decodes the result.
    pub async fn call<R: DeserializeOwned>(&self, fun: &str, args: impl Serialize) -> Result<R> {
        Ok(self.request(fun).args(args).send::<R>().await?.value)
    }

    /// Calls `fun` on every provider inside this perspective.
    pub async fn call_all<R: DeserializeOwned>(
        &self,
        fun: &str,
        args: impl Serialize,
    ) -> Result<BTreeMap<String, Result<R>>> {
        self.request(fun).args(args).send_all().await
    }

    /// A call with every option, inside this perspective.
    pub fn request(&self, fun: &str) -> Request<'_> {
        Request::new(&self.node, fun, self.perspective.clone())
    }

    pub(crate) fn node(&self) -> &Node {
        &self.node
    }

    pub(crate) fn perspective(&self) -> &Perspective {
        &self.perspective
    }
}
