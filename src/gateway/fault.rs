//! What a gateway client is told when a request fails: MPREG's error codes for the
//! WebSocket protocol and JSON-RPC 2.0's for HTTP, derived from one [`Fault`].

use serde_json::{json, Value as Json};

use crate::error::Error;

/// MPREG: a message the server does not understand (not JSON, unknown role, bad shape).
pub(crate) const UNKNOWN_MESSAGE: i64 = 1000;
/// MPREG: no function of that name in the cluster.
pub(crate) const NOT_FOUND: i64 = 1001;
/// MPREG: something failed inside the gateway (also: a reply too large to send).
pub(crate) const INTERNAL: i64 = 1002;
/// MPREG: the function (or a workflow step) failed, or the caller may not see it.
pub(crate) const FAILED: i64 = 1003;
/// MPREG: the deadline passed.
pub(crate) const TIMEOUT: i64 = 1004;
/// mpreg: too many requests in flight; retry later.
pub(crate) const BUSY: i64 = 1006;

/// A failed request: an MPREG code, a one-line message and details.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Fault {
    pub code: i64,
    pub message: String,
    pub details: Json,
    /// The caller was refused by a function's visibility (JSON-RPC tells it apart).
    pub hidden: bool,
    /// The arguments did not fit (JSON-RPC's "invalid params").
    pub bad_params: bool,
}

impl Fault {
    /// A fault with `code` and `message`; the details repeat the message.
    pub(crate) fn new(code: i64, message: impl Into<String>) -> Self {
        let message = message.into();
        Fault {
            code,
            details: Json::String(message.clone()),
            message,
            hidden: false,
            bad_params: false,
        }
    }

    /// "Command not found: `fun`", as MPREG words it (its clients match on it).
    pub(crate) fn not_found(fun: &str, cause: impl std::fmt::Display) -> Self {
        let mut f = Fault::new(NOT_FOUND, format!("command not found: `{fun}` ({cause})"));
        f.details = Json::String(format!("Command not found: {fun}"));
        f
    }

    /// A request that is not understood.
    pub(crate) fn malformed(message: impl Into<String>) -> Self {
        Fault::new(UNKNOWN_MESSAGE, message)
    }

    /// The caller may not see the function.
    pub(crate) fn hidden(message: impl Into<String>) -> Self {
        let mut f = Fault::new(FAILED, message);
        f.hidden = true;
        f
    }

    /// The MPREG error object `{"code","message","details"}`.
    pub(crate) fn to_mpreg(&self) -> Json {
        json!({"code": self.code, "message": self.message, "details": self.details})
    }

    /// The JSON-RPC 2.0 error object; `data` carries the MPREG code and message.
    pub(crate) fn to_jsonrpc(&self) -> Json {
        let code = match self.code {
            _ if self.hidden => -32003,
            _ if self.bad_params => -32602,
            NOT_FOUND => -32601,
            UNKNOWN_MESSAGE => -32600,
            TIMEOUT => -32001,
            BUSY => -32002,
            INTERNAL => -32603,
            _ => -32000,
        };
        json!({
            "code": code,
            "message": self.message,
            "data": {"code": self.code, "message": self.message},
        })
    }
}

impl From<&Error> for Fault {
    fn from(e: &Error) -> Self {
        let message = e.to_string();
        match e {
            Error::UnknownFunction { fun, .. } => Fault::not_found(fun, e),
            Error::NotVisible { .. } => Fault::hidden(message),
            Error::BadArguments { .. } => Fault {
                bad_params: true,
                ..Fault::new(FAILED, message)
            },
            Error::Timeout { .. } => Fault::new(TIMEOUT, message),
            Error::Busy { .. } => Fault::new(BUSY, message),
            Error::Workflow { detail } if detail.contains("deadline") => {
                Fault::new(TIMEOUT, message)
            }
            Error::Codec { .. } | Error::Shutdown | Error::Io { .. } => {
                Fault::new(INTERNAL, message)
            }
            _ => Fault::new(FAILED, message),
        }
    }
}
