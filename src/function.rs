//! Function descriptions and type-erased handlers: the runtime half of `#[mpreg::register]`.
//!
//! A registered function is a [`Function`]: its public description ([`FnSpec`]: name,
//! parameters, resources, visibility) plus a [`Handler`] that turns MessagePack-encoded
//! arguments into a MessagePack-encoded result. The macro builds the same thing at link time
//! through [`FnEntry`]; runtime registration builds it with the `Function::*` constructors.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::proto::args::{decode_args, encode_value};
use crate::proto::wire::Failure;

/// A boxed, sendable future; what every handler returns.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// The outcome of one invocation: the encoded result or a failure to send back.
pub type HandlerResult = Result<Bytes, Failure>;

/// A type-erased function body: encoded arguments in, encoded result out.
pub type Handler = Arc<dyn Fn(Bytes) -> BoxFuture<HandlerResult> + Send + Sync>;

/// Who may call a function (DESIGN §7). The serving node enforces it on every call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// Only callers in the same process (the same node).
    Node,
    /// Only callers on the same host (same host id).
    Host,
    /// Any member of the cluster.
    #[default]
    Network,
}

impl Visibility {
    /// The lower-case name used in config, CLI and the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Node => "node",
            Visibility::Host => "host",
            Visibility::Network => "network",
        }
    }
}

impl fmt::Display for Visibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Visibility {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "node" => Ok(Visibility::Node),
            "host" => Ok(Visibility::Host),
            "network" => Ok(Visibility::Network),
            other => Err(format!(
                "unknown visibility `{other}` (expected node, host or network)"
            )),
        }
    }
}

/// One declared parameter of a function: its name (for keyword arguments) and its type as
/// written (for error messages).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Param {
    /// Parameter name, used to match keyword arguments.
    pub name: String,
    /// Type as written in the source, e.g. `Vec<u32>`; empty when unknown.
    #[serde(default)]
    pub ty: String,
}

/// The public description of a function, as exchanged in catalogs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FnSpec {
    /// Name callers use.
    pub name: String,
    /// Declared parameters; `None` when the function takes any positional list (like `echos`).
    #[serde(default)]
    pub params: Option<Vec<Param>>,
    /// Resources this provider offers for the function (MPREG `locs` match against them).
    #[serde(default)]
    pub resources: Vec<String>,
    /// Who may call it.
    #[serde(default)]
    pub visibility: Visibility,
    /// Whether a call that lost its node may be retried on another provider (the function
    /// has no effect that running it twice would repeat).
    #[serde(default)]
    pub idempotent: bool,
}

impl FnSpec {
    /// `(a: i64, b: i64)`, or `(..)` for variadic functions: used in bad-argument errors.
    pub fn signature(&self) -> String {
        signature(self.params.as_deref())
    }
}

pub(crate) fn signature(params: Option<&[Param]>) -> String {
    match params {
        None => "(..)".to_string(),
        Some(ps) => {
            let parts: Vec<String> = ps
                .iter()
                .map(|p| {
                    if p.ty.is_empty() {
                        p.name.clone()
                    } else {
                        format!("{}: {}", p.name, p.ty)
                    }
                })
                .collect();
            format!("({})", parts.join(", "))
        }
    }
}

/// A function ready to be registered on a node: description, body and where it came from.
#[derive(Clone)]
pub struct Function {
    pub(crate) spec: Arc<FnSpec>,
    pub(crate) handler: Handler,
    /// Calls of this function running on this node now (served or local): the local
    /// provider's load for the resolver. Shared by clones.
    pub(crate) in_flight: Arc<std::sync::atomic::AtomicUsize>,
    /// Calls, errors, busy refusals and latencies served here (fresh per registration).
    pub(crate) served: Arc<crate::metrics::Served>,
    /// Where it was defined (module path and source position), to name both sides of a
    /// duplicate-name error.
    pub(crate) origin: String,
    /// The handler takes `[args, kwargs]` as the caller sent them instead of arguments fitted
    /// to `spec.params`: functions served by a gateway client, whose own language binds
    /// keyword arguments and defaults (`proto::args::as_sent`).
    pub(crate) as_sent: bool,
    /// The body asks who called it ([`crate::runtime::caller`]): served calls then run
    /// with the caller's host in a task-local (service control decides by it).
    pub(crate) wants_caller: bool,
    /// Whether its calls have been quick enough to run on a connection's reader.
    pub(crate) quick: Arc<crate::runtime::quick::Quick>,
}

impl fmt::Debug for Function {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Function")
            .field("spec", &self.spec)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl Function {
    pub(crate) fn from_handler(name: &str, handler: Handler) -> Self {
        Function {
            spec: Arc::new(FnSpec {
                name: name.to_string(),
                params: None,
                resources: Vec::new(),
                visibility: Visibility::Network,
                idempotent: false,
            }),
            handler,
            in_flight: Default::default(),
            as_sent: false,
            wants_caller: false,
            quick: Default::default(),
            served: Default::default(),
            origin: format!("runtime registration of `{name}`"),
        }
    }

    /// A synchronous function whose arguments deserialize into `A` (a tuple for several
    /// parameters, e.g. `|(a, b): (i64, i64)| a + b`) and whose result is a plain value.
    ///
    /// It runs on the node's runtime: keep it short, or use [`new_async`](Self::new_async)
    /// and move long blocking work to `tokio::task::spawn_blocking`. Once a function's calls
    /// have been short (under 50 µs) many times in a row, a node serves them on the
    /// connection's reader, without a task each; one long call ends that until the calls
    /// are short again.
    pub fn new<A, R, F>(name: &str, f: F) -> Self
    where
        A: DeserializeOwned + Send + 'static,
        R: Serialize,
        F: Fn(A) -> R + Send + Sync + 'static,
    {
        Self::try_new(name, move |a: A| Ok::<R, std::convert::Infallible>(f(a)))
    }

    /// A synchronous function returning `Result<T, E>`; `Err` travels back to the caller as a
    /// remote error carrying `E`'s message.
    pub fn try_new<A, T, E, F>(name: &str, f: F) -> Self
    where
        A: DeserializeOwned + Send + 'static,
        T: Serialize,
        E: fmt::Display,
        F: Fn(A) -> Result<T, E> + Send + Sync + 'static,
    {
        let handler: Handler = Arc::new(move |args: Bytes| {
            Box::pin(std::future::ready(
                decode_args::<A>(&args).and_then(|a| fallible(f(a))),
            ))
        });
        Self::from_handler(name, handler)
    }

    /// An async function returning a plain value.
    pub fn new_async<A, R, Fut, F>(name: &str, f: F) -> Self
    where
        A: DeserializeOwned + Send + 'static,
        R: Serialize + 'static,
        Fut: Future<Output = R> + Send + 'static,
        F: Fn(A) -> Fut + Send + Sync + 'static,
    {
        Self::try_new_async(name, move |a: A| {
            let fut = f(a);
            async move { Ok::<R, std::convert::Infallible>(fut.await) }
        })
    }

    /// An async function returning `Result<T, E>`.
    pub fn try_new_async<A, T, E, Fut, F>(name: &str, f: F) -> Self
    where
        A: DeserializeOwned + Send + 'static,
        T: Serialize + 'static,
        E: fmt::Display + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        F: Fn(A) -> Fut + Send + Sync + 'static,
    {
        let handler: Handler = Arc::new(move |args: Bytes| match decode_args::<A>(&args) {
            Ok(a) => {
                let fut = f(a);
                Box::pin(async move { fallible(fut.await) })
            }
            Err(e) => Box::pin(std::future::ready(Err(e))),
        });
        Self::from_handler(name, handler)
    }

    /// A function over the raw positional argument list, e.g. a variadic one like `echos`.
    pub fn variadic<F>(name: &str, f: F) -> Self
    where
        F: Fn(Vec<rmpv::Value>) -> Result<rmpv::Value, String> + Send + Sync + 'static,
    {
        Self::try_new(name, f)
    }

    /// Names (and optionally types) of the parameters, so that callers can pass keyword
    /// arguments and errors can show the expected signature. Each item is `"name"` or
    /// `"name: Type"`.
    pub fn params<I, S>(mut self, params: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let ps = params
            .into_iter()
            .map(|p| {
                let p = p.as_ref();
                match p.split_once(':') {
                    Some((n, t)) => Param {
                        name: n.trim().into(),
                        ty: t.trim().into(),
                    },
                    None => Param {
                        name: p.trim().into(),
                        ty: String::new(),
                    },
                }
            })
            .collect();
        Arc::make_mut(&mut self.spec).params = Some(ps);
        self
    }

    /// Resources this provider offers (callers' `locs` must be a subset).
    pub fn resources<I, S>(mut self, resources: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Arc::make_mut(&mut self.spec).resources = resources.into_iter().map(Into::into).collect();
        self
    }

    /// Who may call the function; default [`Visibility::Network`].
    pub fn visibility(mut self, visibility: Visibility) -> Self {
        Arc::make_mut(&mut self.spec).visibility = visibility;
        self
    }

    /// Marks the function idempotent: a call whose provider is lost mid-call is retried on
    /// another provider. Without it such a call fails with "node lost", never retried.
    pub fn idempotent(mut self, yes: bool) -> Self {
        Arc::make_mut(&mut self.spec).idempotent = yes;
        self
    }

    /// The function's public description.
    pub fn spec(&self) -> &FnSpec {
        &self.spec
    }

    /// Builds a function from a link-time entry emitted by `#[mpreg::register]`.
    pub(crate) fn from_entry(e: &FnEntry) -> Self {
        let shim = e.shim;
        let blocking = e.blocking;
        let handler: Handler = if blocking {
            Arc::new(move |args: Bytes| {
                Box::pin(async move {
                    match tokio::task::spawn_blocking(move || shim(args)).await {
                        Ok(fut) => fut.await,
                        Err(e) => Err(Failure::remote(format!("function panicked: {e}"))),
                    }
                })
            })
        } else {
            Arc::new(shim)
        };
        Function {
            spec: Arc::new(FnSpec {
                name: e.name.to_string(),
                params: Some(
                    e.params
                        .iter()
                        .map(|(n, t)| Param {
                            name: (*n).into(),
                            ty: (*t).into(),
                        })
                        .collect(),
                ),
                resources: e.resources.iter().map(|r| r.to_string()).collect(),
                visibility: e.visibility,
                idempotent: e.idempotent,
            }),
            handler,
            in_flight: Default::default(),
            as_sent: false,
            wants_caller: false,
            quick: Default::default(),
            served: Default::default(),
            origin: format!("{} ({}:{})", e.module, e.file, e.line),
        }
    }
}

/// Turns a function's `Result` into a handler result; `Err` becomes a remote error.
pub fn fallible<T: Serialize, E: fmt::Display>(r: Result<T, E>) -> HandlerResult {
    match r {
        Ok(v) => encode_value(&v),
        // `{:#}` keeps anyhow's cause chain and is plain `Display` for other types.
        Err(e) => Err(Failure::remote(format!("{e:#}"))),
    }
}

/// Turns a plain return value into a handler result.
pub fn infallible<T: Serialize>(v: T) -> HandlerResult {
    encode_value(&v)
}

/// The signature of the per-function shim that `#[mpreg::register]` generates: positional
/// MessagePack arguments in, a future of the encoded result out.
pub type ShimFn = fn(Bytes) -> BoxFuture<HandlerResult>;

/// A function registered at link time by `#[mpreg::register]`; collected with `inventory`.
///
/// Every field is const-constructible because the macro places the entry in a `static`.
#[derive(Debug)]
pub struct FnEntry {
    /// Name callers use.
    pub name: &'static str,
    /// `(name, type)` of each parameter, in order.
    pub params: &'static [(&'static str, &'static str)],
    /// Resources offered.
    pub resources: &'static [&'static str],
    /// Who may call it.
    pub visibility: Visibility,
    /// Run the body on tokio's blocking pool (`#[register(blocking)]`).
    pub blocking: bool,
    /// Safe to retry on another provider after a lost node (`#[register(idempotent)]`).
    pub idempotent: bool,
    /// `module_path!()` of the definition.
    pub module: &'static str,
    /// `file!()` of the definition.
    pub file: &'static str,
    /// `line!()` of the definition.
    pub line: u32,
    /// The generated shim.
    pub shim: ShimFn,
}

inventory::collect!(FnEntry);

/// Shim body for a synchronous function: decode the positional arguments into `A`, run `f`.
/// `f` returns an already-converted [`HandlerResult`] (see [`fallible`] and [`infallible`]).
pub fn shim_sync<A, F>(args: Bytes, f: F) -> BoxFuture<HandlerResult>
where
    A: DeserializeOwned,
    F: FnOnce(A) -> HandlerResult,
{
    Box::pin(std::future::ready(decode_args::<A>(&args).and_then(f)))
}

/// Shim body for an async function: decode the arguments into `A`, then await `f(A)`.
pub fn shim_async<A, F, Fut>(args: Bytes, f: F) -> BoxFuture<HandlerResult>
where
    A: DeserializeOwned,
    F: FnOnce(A) -> Fut,
    Fut: Future<Output = HandlerResult> + Send + 'static,
{
    match decode_args::<A>(&args) {
        Ok(a) => Box::pin(f(a)),
        Err(e) => Box::pin(std::future::ready(Err(e))),
    }
}
