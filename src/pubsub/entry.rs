//! The runtime half of `#[mpreg::subscribe]`: the link-time entry and the shim helpers its
//! expansion calls.

use std::future::Future;

use serde::de::DeserializeOwned;

use super::{PubMeta, Publication};
use crate::function::{BoxFuture, HandlerResult};
use crate::proto::wire::Failure;

/// A function subscribed with `#[mpreg::subscribe]`, collected at link time.
#[derive(Debug)]
pub struct SubEntry {
    /// Topic pattern.
    pub pattern: &'static str,
    /// Queue group, if any.
    pub group: Option<&'static str>,
    /// Whether a full queue slows the publishers instead of dropping the oldest
    /// (see [`SubscriptionBuilder::lossless`](crate::pubsub::SubscriptionBuilder::lossless)).
    pub lossless: bool,
    /// Name of the function.
    pub function: &'static str,
    /// `module_path!()` of the function.
    pub module: &'static str,
    /// `file!()` of the function.
    pub file: &'static str,
    /// Line of `fn`.
    pub line: u32,
    /// The shim: publication in, encoded result out.
    pub handler: fn(Publication) -> BoxFuture<HandlerResult>,
}

inventory::collect!(SubEntry);

impl SubEntry {
    /// How errors and reports name it: `fn on_temp (src/main.rs:12)`.
    pub(crate) fn origin(&self) -> String {
        format!("fn {} ({}:{})", self.function, self.file, self.line)
    }
}

fn decode<T: DeserializeOwned + 'static>(p: &Publication) -> Result<T, Failure> {
    p.payload::<T>()
        .map_err(|e| Failure::bad_arguments(e.to_string()))
}

/// Shim of a synchronous subscriber.
pub fn sub_sync<T, F>(p: Publication, f: F) -> BoxFuture<HandlerResult>
where
    T: DeserializeOwned + 'static,
    F: FnOnce(T, &Publication) -> HandlerResult,
{
    let r = decode::<T>(&p).and_then(|v| f(v, &p));
    Box::pin(std::future::ready(r))
}

/// Shim of an async subscriber.
pub fn sub_async<T, F, Fut>(p: Publication, f: F) -> BoxFuture<HandlerResult>
where
    T: DeserializeOwned + 'static,
    F: FnOnce(T, &Publication) -> Fut,
    Fut: Future<Output = HandlerResult> + Send + 'static,
{
    match decode::<T>(&p) {
        Ok(v) => Box::pin(f(v, &p)),
        Err(e) => Box::pin(std::future::ready(Err(e))),
    }
}

/// The metadata a two-parameter subscriber receives.
pub fn sub_meta(p: &Publication) -> PubMeta {
    p.meta()
}

/// Subscribes every `#[mpreg::subscribe]` function on a listening node at start. A bad
/// pattern or group fails the start with an error naming the function.
pub(crate) fn install_link_time(
    shared: &std::sync::Arc<crate::runtime::Shared>,
) -> crate::Result<()> {
    let mut entries: Vec<&SubEntry> = inventory::iter::<SubEntry>.into_iter().collect();
    entries.sort_by_key(|e| (e.pattern, e.module, e.line));
    for e in entries {
        let handler = e.handler;
        let h: crate::runtime::pubsub::SubHandler = std::sync::Arc::new(handler);
        let what = e.origin();
        let full = if e.lossless {
            crate::runtime::queue::Full::Wait
        } else {
            crate::runtime::queue::Full::DropOldest
        };
        shared
            .add_subscriber(e.pattern, e.group, &what, Some(h), full)
            .map_err(|err| crate::Error::Config(format!("cannot subscribe {what}: {err}")))?;
    }
    Ok(())
}
