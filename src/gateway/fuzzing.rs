//! Reading gateway requests without a node, for the fuzz targets (`crate::fuzzing`): the
//! same functions the WebSocket session and the JSON-RPC handler read requests with.

use std::time::Duration;

use serde_json::Value as Json;

use super::call::{scope_of, workflow_of, Options};
use super::jsonrpc::{parse, Problem, MAX_BATCH};
use super::socket::{read_request, Request};
use crate::proto::resolve::Scope;
use crate::proto::workflow::{Command, Workflow};

/// Reads an MPREG request frame: `Ok(Some)` with the workflow of an `rpc` request,
/// `Ok(None)` for other roles, `Err` with the message a client would be answered with.
pub(crate) fn mpreg(default_timeout: Duration, text: &str) -> Result<Option<Workflow>, String> {
    let (role, mut req) = match read_request(text) {
        Err((_, f)) => return Err(f.message),
        Ok(Request::Result(_)) => return Ok(None),
        Ok(Request::Call { role, u, req }) => {
            assert!(!u.is_null(), "a request id is never null");
            (role, req)
        }
    };
    if role != "rpc" {
        return Ok(None);
    }
    Options::read_with(default_timeout, Some(&req)).map_err(|f| f.message)?;
    let Some(mut cmds) = req.remove("cmds") else {
        return Err("field `cmds` is missing".into());
    };
    workflow_of(&mut cmds).map(Some).map_err(|f| f.message)
}

/// The scope a single command of an MPREG request runs in.
pub(crate) fn scope(cmd: &Command, default: Scope) -> Result<Scope, String> {
    scope_of(cmd, default).map_err(|f| f.message)
}

/// Reads a JSON-RPC body as the handler does: the code and message of every request that
/// is refused before it runs (a failure of `parse` other than a JSON-RPC code is code 0).
pub(crate) fn jsonrpc(default_timeout: Duration, body: &[u8]) -> Vec<(i64, String)> {
    let parsed: Json = match serde_json::from_slice(body) {
        Ok(j) => j,
        Err(e) => return vec![(-32700, format!("parse error: {e}"))],
    };
    let batch = match &parsed {
        Json::Array(b) if b.is_empty() || b.len() > MAX_BATCH => {
            return vec![(-32600, "invalid request: batch size".into())]
        }
        Json::Array(b) => b.iter().collect(),
        single => vec![single],
    };
    let mut refused = Vec::new();
    for req in batch {
        let Json::Object(req) = req else {
            refused.push((-32600, "invalid request: not an object".into()));
            continue;
        };
        match parse(default_timeout, req) {
            Ok(_) => {}
            Err(Problem::Invalid(code, message)) => refused.push((code, message)),
            Err(Problem::Failed(f)) => refused.push((0, f.message)),
        }
    }
    refused
}
