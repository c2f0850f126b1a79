//! Conditional-event handlers (DESIGN §10) as users write them: the [`Handlers`] trait that
//! `#[mpreg::handlers]` implements for a struct with state, the link-time [`OnEntry`] that
//! `#[mpreg::on]` emits, and [`HandlerOutcome`], what a handler may return.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use crate::message::Message;
use crate::node::Node;

/// The future of one handler call; it may borrow the handler's state.
pub type HandlerFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// A value with handlers that keep their own state (MARO's `dist` decorator): each method
/// has a condition and takes `&mut self` and the consumed messages.
///
/// Implemented by `#[mpreg::handlers]` on an `impl` block whose handler methods are marked
/// `#[on("condition")]`; attach a value with [`Node::attach`]. One task owns the value and
/// runs its handlers one firing at a time, so `&mut self` needs no lock.
pub trait Handlers: Send + 'static {
    /// `(handler name, condition)` of every handler, in declaration order; the name is
    /// `Type::method`, used in errors and statistics.
    fn conditions() -> Vec<(&'static str, &'static str)>
    where
        Self: Sized;

    /// Runs handler number `index` (in [`conditions`](Self::conditions) order) on the
    /// messages of one firing.
    fn handle(&mut self, index: usize, messages: Vec<Message>) -> HandlerFuture<'_>;
}

/// What a handler may return: nothing, or a `Result` whose error is logged with the
/// handler's name (a failing handler never stops the node or its other handlers).
pub trait HandlerOutcome {
    /// Logs a failure, if this outcome is one.
    fn report(self, handler: &str);
}

impl HandlerOutcome for () {
    fn report(self, _handler: &str) {}
}

impl<E: fmt::Display> HandlerOutcome for Result<(), E> {
    fn report(self, handler: &str) {
        if let Err(e) = self {
            tracing::warn!(handler, error = %format!("{e:#}"), "message handler failed");
        }
    }
}

/// The shim `#[mpreg::on]` generates: the receiving node and the consumed messages in,
/// the handler's future out.
pub type OnShim = fn(Node, Vec<Message>) -> HandlerFuture<'static>;

/// A free-function handler registered at link time by `#[mpreg::on]`; every node started
/// in the process attaches it. Const-constructible: the macro places it in a `static`.
#[derive(Debug)]
pub struct OnEntry {
    /// The function's name (with its module path, for errors).
    pub name: &'static str,
    /// The condition text, validated when a node starts.
    pub condition: &'static str,
    /// `file!()` of the definition.
    pub file: &'static str,
    /// `line!()` of the definition.
    pub line: u32,
    /// The generated shim.
    pub shim: OnShim,
}

inventory::collect!(OnEntry);
