//! The crate's error type. Every message names what was wrong, so that a one-line print of
//! it (as the CLI does) is enough to act on.

use std::time::Duration;

use crate::proto::wire::{Failure, FailureKind};

/// Result alias with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong when starting a node or calling a function.
///
/// `Debug` prints the same one-line message as `Display`, so `fn main() -> mpreg::Result<()>`
/// reports `Error: unknown function `ecoh`; did you mean `echo`?` rather than a struct dump
/// (as `anyhow` does); `{:#?}` adds the variant's name, and `match` gives its fields.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No reachable node offers the function. `close` lists look-alike names that exist.
    #[error("unknown function `{fun}`{}{}", hint(close), context(detail))]
    UnknownFunction {
        /// The name asked for.
        fun: String,
        /// Existing names that look alike.
        close: Vec<String>,
        /// Extra context, e.g. which peers were reachable.
        detail: String,
    },
    /// The arguments did not fit the function's parameters.
    #[error("bad arguments for `{fun}{expected}`: {detail}")]
    BadArguments {
        /// Function called.
        fun: String,
        /// Expected signature, e.g. `(a: i64, b: i64)`.
        expected: String,
        /// What did not fit.
        detail: String,
    },
    /// The function ran on `node` and returned an error (or panicked).
    #[error("`{fun}` failed on node `{node}`: {message}")]
    Remote {
        /// Function called.
        fun: String,
        /// Node that ran it.
        node: String,
        /// The function's error message.
        message: String,
    },
    /// No reply within the deadline; the callee was told to abandon the work.
    #[error("call to `{fun}` on node `{node}` timed out after {after:?}")]
    Timeout {
        /// Function called.
        fun: String,
        /// Node it was sent to.
        node: String,
        /// The deadline that passed.
        after: Duration,
    },
    /// The connection to the serving node broke while the call was in flight.
    #[error("node `{node}` was lost during the call to `{fun}`: {reason}")]
    NodeLost {
        /// Function called.
        fun: String,
        /// Node that was lost.
        node: String,
        /// Why the connection ended.
        reason: String,
    },
    /// The serving node has too many calls in flight from this connection.
    #[error("node `{node}` is busy and refused `{fun}`: {detail}")]
    Busy {
        /// Function called.
        fun: String,
        /// Busy node.
        node: String,
        /// The limit that was hit.
        detail: String,
    },
    /// The function's visibility does not admit this caller.
    #[error("`{fun}` on node `{node}` is not visible to this caller: {detail}")]
    NotVisible {
        /// Function called.
        fun: String,
        /// Serving node.
        node: String,
        /// The rule that refused.
        detail: String,
    },
    /// A peer refused the handshake, or this node refused the peer's.
    #[error("connection with {peer} refused: {reason}")]
    Refused {
        /// The peer's address or name.
        peer: String,
        /// Why.
        reason: String,
    },
    /// A peer sent something this protocol does not allow.
    #[error("protocol error with {peer}: {detail}")]
    Protocol {
        /// The peer's address or name.
        peer: String,
        /// What was wrong.
        detail: String,
    },
    /// Two functions were registered under one name.
    #[error("duplicate function `{name}`: registered by {first} and by {second}")]
    DuplicateFunction {
        /// The contested name.
        name: String,
        /// Where the first came from.
        first: String,
        /// Where the second came from.
        second: String,
    },
    /// Arguments could not be encoded, or a result not decoded into the requested type.
    #[error("cannot {what} for `{fun}`: {detail}")]
    Codec {
        /// `encode arguments` or `decode the result`.
        what: &'static str,
        /// Function called.
        fun: String,
        /// The serde error.
        detail: String,
    },
    /// Invalid configuration (file, environment, or the node options of a command).
    #[error("configuration: {0}")]
    Config(String),
    /// A command-line argument or an API call used wrongly (a malformed `--kw`, a
    /// non-positive `--timeout`, a blocking call inside an async runtime): the message
    /// names it and says what is expected.
    #[error("{0}")]
    Usage(String),
    /// A wait ended before what was waited for arrived (e.g. `mpreg sub --count N`
    /// received fewer before its `--timeout`).
    #[error("{0}")]
    Incomplete(String),
    /// An I/O error, with what was being done.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, e.g. `cannot bind 0.0.0.0:7700`.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The node was shut down.
    #[error("the node is shut down")]
    Shutdown,
    /// A workflow was malformed (duplicate name, cycle, bad JSON) or one of its commands
    /// failed; `detail` names the command and the cause.
    #[error("workflow failed: {detail}")]
    Workflow {
        /// What went wrong, naming the command.
        detail: String,
    },
    /// The function exists but no provider fits the call's `locs`, scope or perspective.
    /// `detail` says what the cluster does offer.
    #[error(
        "no provider of `{fun}`{} in {within}{}",
        locs_text(locs),
        context(detail)
    )]
    NoProvider {
        /// Function name.
        fun: String,
        /// Resources the call asked for.
        locs: Vec<String>,
        /// The scope and perspective, e.g. `network scope` or `host scope on node `w3``.
        within: String,
        /// What the cluster offers instead.
        detail: String,
    },
    /// No peer at all was found: nothing answered discovery and no seed could be reached
    /// within [`Config::discovery_wait_ms`](crate::Config::discovery_wait_ms). Nothing was
    /// called. `tried` lists each way in and why it found nobody.
    #[error("no cluster found after {waited:?}: {tried}")]
    NoCluster {
        /// How long discovery was waited for.
        waited: Duration,
        /// What was tried (interfaces, beacon, mDNS, seeds) and why each failed.
        tried: String,
    },
    /// The node's name is held by another live node of the cluster (DESIGN §3): the node
    /// did not start and no member's view changed.
    #[error("name `{name}` is taken by a live node on host `{host}` at {addr}; choose another name or stop that node")]
    NameTaken {
        /// The contested name.
        name: String,
        /// Host of the live holder.
        host: String,
        /// Address of the live holder.
        addr: String,
    },
    /// A topic or subscription pattern (or queue group) is malformed; names the bad part.
    #[error("{0}")]
    Topic(String),
    /// A request-publish found no subscriber to answer it.
    #[error("no subscriber can answer a request on `{topic}`: {detail}")]
    NoSubscriber {
        /// The topic published to.
        topic: String,
        /// What was missing.
        detail: String,
    },
    /// A confirmed publish was not acknowledged by every subscriber.
    #[error(
        "publication on `{topic}` confirmed by {acked} subscriber(s) but not by: {}",
        missing.join("; ")
    )]
    Unconfirmed {
        /// The topic published to.
        topic: String,
        /// Subscribers that did acknowledge.
        acked: usize,
        /// One line per subscriber (or node) that did not, with why.
        missing: Vec<String>,
    },
    /// Sending, receiving or handling MARO messages failed (see [`MessageError`]).
    ///
    /// [`MessageError`]: crate::MessageError
    #[error(transparent)]
    Message(#[from] crate::message::MessageError),
}

impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if f.alternate() {
            f.debug_tuple(self.variant())
                .field(&self.to_string())
                .finish()
        } else {
            std::fmt::Display::fmt(self, f)
        }
    }
}

fn hint(close: &[String]) -> String {
    if close.is_empty() {
        String::new()
    } else {
        let names: Vec<String> = close.iter().map(|c| format!("`{c}`")).collect();
        format!("; did you mean {}?", names.join(", "))
    }
}

fn locs_text(locs: &[String]) -> String {
    if locs.is_empty() {
        String::new()
    } else {
        format!(" with locs [{}]", locs.join(", "))
    }
}

fn context(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(" ({detail})")
    }
}

impl Error {
    /// The variant's name, e.g. `"UnknownFunction"` (what `{:#?}` shows).
    pub fn variant(&self) -> &'static str {
        match self {
            Error::UnknownFunction { .. } => "UnknownFunction",
            Error::BadArguments { .. } => "BadArguments",
            Error::Remote { .. } => "Remote",
            Error::Timeout { .. } => "Timeout",
            Error::NodeLost { .. } => "NodeLost",
            Error::Busy { .. } => "Busy",
            Error::NotVisible { .. } => "NotVisible",
            Error::Refused { .. } => "Refused",
            Error::Protocol { .. } => "Protocol",
            Error::DuplicateFunction { .. } => "DuplicateFunction",
            Error::Codec { .. } => "Codec",
            Error::Config(_) => "Config",
            Error::Usage(_) => "Usage",
            Error::Incomplete(_) => "Incomplete",
            Error::Io { .. } => "Io",
            Error::Shutdown => "Shutdown",
            Error::Workflow { .. } => "Workflow",
            Error::NoProvider { .. } => "NoProvider",
            Error::NoCluster { .. } => "NoCluster",
            Error::NameTaken { .. } => "NameTaken",
            Error::Topic(_) => "Topic",
            Error::NoSubscriber { .. } => "NoSubscriber",
            Error::Unconfirmed { .. } => "Unconfirmed",
            Error::Message(_) => "Message",
        }
    }

    /// Wraps an I/O error with what was being attempted.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// Turns a callee's [`Failure`] into an error naming the function and node.
    pub(crate) fn from_failure(f: Failure, fun: &str, node: &str) -> Self {
        let (fun, node) = (fun.to_string(), node.to_string());
        match f.kind {
            FailureKind::Remote | FailureKind::Internal => Error::Remote {
                fun,
                node,
                message: f.message,
            },
            FailureKind::BadArguments => Error::BadArguments {
                fun,
                expected: f.expected,
                detail: f.message,
            },
            FailureKind::UnknownFunction => Error::UnknownFunction {
                fun,
                close: f.close,
                detail: format!("node `{node}` does not serve it"),
            },
            FailureKind::NotVisible => Error::NotVisible {
                fun,
                node,
                detail: f.message,
            },
            FailureKind::Busy => Error::Busy {
                fun,
                node,
                detail: f.message,
            },
            FailureKind::Timeout => Error::Timeout {
                fun,
                node,
                after: Duration::ZERO,
            },
            FailureKind::NodeLost => Error::NodeLost {
                fun,
                node,
                reason: f.message,
            },
            // A node that resolved for us (forwarding) found no provider.
            FailureKind::NoProvider => Error::NoProvider {
                fun,
                locs: Vec::new(),
                within: format!("the cluster as node `{node}` sees it"),
                detail: f.message,
            },
            FailureKind::Workflow => Error::Workflow { detail: f.message },
        }
    }

    /// The failure a relaying node sends back for this error: the kind survives, and the
    /// message is the whole error text (it already names the function and the node).
    pub(crate) fn to_failure(&self) -> Failure {
        let kind = match self {
            Error::UnknownFunction { .. } => FailureKind::UnknownFunction,
            Error::BadArguments { .. } => FailureKind::BadArguments,
            Error::NotVisible { .. } => FailureKind::NotVisible,
            Error::Busy { .. } => FailureKind::Busy,
            Error::Timeout { .. } => FailureKind::Timeout,
            Error::NodeLost { .. } => FailureKind::NodeLost,
            Error::NoProvider { .. } => FailureKind::NoProvider,
            Error::Workflow { .. } => FailureKind::Workflow,
            _ => FailureKind::Remote,
        };
        let mut f = Failure::of_kind(kind, self.to_string());
        match self {
            Error::UnknownFunction { close, .. } => f.close = close.clone(),
            Error::BadArguments {
                expected, detail, ..
            } => {
                f.expected = expected.clone();
                f.message = detail.clone();
            }
            Error::Remote { message, .. } => f.message = message.clone(),
            Error::Workflow { detail } => f.message = detail.clone(),
            _ => {}
        }
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_prints_the_message_and_alternate_the_variant() {
        let e = Error::NoCluster {
            waited: Duration::from_millis(1500),
            tried: "beacon off".into(),
        };
        assert_eq!(format!("{e:?}"), e.to_string());
        assert_eq!(
            format!("{:?}", Err::<(), _>(e.to_string())),
            format!("Err({:?})", e.to_string())
        );
        let pretty = format!("{e:#?}");
        assert!(pretty.starts_with("NoCluster(\n"), "{pretty}");
        assert!(
            pretty.contains("no cluster found after 1.5s: beacon off"),
            "{pretty}"
        );
    }

    #[test]
    fn messages_are_one_line_and_name_things() {
        let e = Error::UnknownFunction {
            fun: "ecoh".into(),
            close: vec!["echo".into()],
            detail: String::new(),
        };
        assert_eq!(
            e.to_string(),
            "unknown function `ecoh`; did you mean `echo`?"
        );
        let e = Error::BadArguments {
            fun: "add".into(),
            expected: "(a: i64, b: i64)".into(),
            detail: "missing argument `b`".into(),
        };
        assert_eq!(
            e.to_string(),
            "bad arguments for `add(a: i64, b: i64)`: missing argument `b`"
        );
    }
}
