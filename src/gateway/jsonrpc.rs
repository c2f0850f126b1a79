//! JSON-RPC 2.0 over HTTP (`POST /`): single requests, batches and notifications; each
//! request is one call. mpreg's routing goes in an extension member,
//! `"mpreg": {"locs": [..], "scope": "host", "timeout": 5.0}`.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use rmpv::Value;
use serde_json::{json, Map, Value as Json};

use super::call::{self, One, Options};
use super::fault::Fault;
use super::Caller;
use crate::proto::json::{to_json, to_value};
use crate::runtime::Shared;

/// Requests one batch may hold.
pub(crate) const MAX_BATCH: usize = 256;

/// The answer to a POST body: `None` when nothing is to be sent back (only notifications).
pub(crate) async fn answer(shared: &Arc<Shared>, caller: &Caller, body: &[u8]) -> Option<Json> {
    let parsed: Json = match serde_json::from_slice(body) {
        Ok(j) => j,
        Err(e) => return Some(failure(Json::Null, -32700, format!("parse error: {e}"))),
    };
    match parsed {
        Json::Array(batch) if batch.is_empty() => Some(failure(
            Json::Null,
            -32600,
            "invalid request: an empty batch".into(),
        )),
        Json::Array(batch) if batch.len() > MAX_BATCH => Some(failure(
            Json::Null,
            -32600,
            format!("invalid request: a batch holds at most {MAX_BATCH} requests"),
        )),
        Json::Array(batch) => {
            let all = join_all(batch.iter().map(|r| one(shared, caller, r))).await;
            let answers: Vec<Json> = all.into_iter().flatten().collect();
            (!answers.is_empty()).then_some(Json::Array(answers))
        }
        single => one(shared, caller, &single).await,
    }
}

/// `{"jsonrpc":"2.0","error":{..},"id":id}`.
fn failure(id: Json, code: i64, message: String) -> Json {
    json!({"jsonrpc": "2.0", "error": {"code": code, "message": message}, "id": id})
}

/// One request's answer (`None` for a notification).
async fn one(shared: &Arc<Shared>, caller: &Caller, req: &Json) -> Option<Json> {
    let Json::Object(req) = req else {
        return Some(failure(
            Json::Null,
            -32600,
            "invalid request: not an object".into(),
        ));
    };
    let id = req.get("id").cloned();
    // A malformed request is answered even without an id (with id null), as the spec says.
    let (method, params, opts, locs) = match parse(shared.config.call_timeout(), req) {
        Ok(p) => p,
        Err(Invalid(code, message)) => {
            return Some(failure(id.unwrap_or(Json::Null), code, message))
        }
        Err(Failed(f)) => {
            return Some(json!({"jsonrpc": "2.0", "error": f.to_jsonrpc(), "id": id}))
        }
    };
    let outcome = run(shared, caller, method, params, opts, locs).await;
    let id = id?;
    Some(match outcome {
        Ok(v) => json!({"jsonrpc": "2.0", "result": v, "id": id}),
        Err(Invalid(code, message)) => failure(id, code, message),
        Err(Failed(f)) => json!({"jsonrpc": "2.0", "error": f.to_jsonrpc(), "id": id}),
    })
}

/// Why a request got no result: malformed (a JSON-RPC code), or the call failed.
pub(crate) enum Problem {
    Invalid(i64, String),
    Failed(Fault),
}
use Problem::{Failed, Invalid};

/// Method, (args, kwargs), options and locs of a well-formed request.
pub(crate) type Parsed<'a> = (&'a str, (Value, Option<Value>), Options, Vec<String>);

/// Reads one JSON-RPC request object; `default_timeout` is the node's call deadline.
pub(crate) fn parse(
    default_timeout: Duration,
    req: &Map<String, Json>,
) -> Result<Parsed<'_>, Problem> {
    if req.get("jsonrpc") != Some(&Json::String("2.0".into())) {
        return Err(Invalid(
            -32600,
            "invalid request: `jsonrpc` must be \"2.0\"".into(),
        ));
    }
    let method = match req.get("id") {
        None | Some(Json::Null | Json::String(_) | Json::Number(_)) => match req.get("method") {
            Some(Json::String(m)) => m.as_str(),
            _ => {
                return Err(Invalid(
                    -32600,
                    "invalid request: `method` must be a string".into(),
                ))
            }
        },
        Some(_) => {
            return Err(Invalid(
                -32600,
                "invalid request: `id` must be a string, number or null".into(),
            ))
        }
    };
    let params = match req.get("params") {
        None => (Value::Array(vec![]), None),
        Some(Json::Array(a)) => (Value::Array(a.iter().map(to_value).collect()), None),
        Some(o @ Json::Object(_)) => (Value::Array(vec![]), Some(to_value(o))),
        Some(_) => {
            return Err(Invalid(
                -32602,
                "invalid params: `params` must be an array or an object".into(),
            ))
        }
    };
    let ext = match req.get("mpreg") {
        None | Some(Json::Null) => None,
        Some(Json::Object(m)) => Some(m),
        Some(_) => {
            return Err(Invalid(
                -32600,
                "invalid request: `mpreg` must be an object".into(),
            ))
        }
    };
    let opts = Options::read_with(default_timeout, ext)
        .map_err(|f| Invalid(-32600, format!("invalid request: {}", f.message)))?;
    let locs = match ext.and_then(|m| m.get("locs")) {
        None | Some(Json::Null) => vec![],
        Some(Json::Array(a)) => a
            .iter()
            .map(|l| l.as_str().map(String::from))
            .collect::<Option<_>>()
            .ok_or_else(|| {
                Invalid(
                    -32600,
                    "invalid request: `mpreg.locs` must hold strings".into(),
                )
            })?,
        Some(_) => {
            return Err(Invalid(
                -32600,
                "invalid request: `mpreg.locs` must be an array".into(),
            ))
        }
    };
    Ok((method, params, opts, locs))
}

async fn run(
    shared: &Arc<Shared>,
    caller: &Caller,
    method: &str,
    (args, kwargs): (Value, Option<Value>),
    opts: Options,
    locs: Vec<String>,
) -> Result<Json, Problem> {
    let one = One {
        fun: method,
        args,
        kwargs,
        locs,
        scope: opts.scope,
        timeout: opts.timeout,
    };
    call::call(shared, caller, one)
        .await
        .map(|v| to_json(&v))
        .map_err(Failed)
}
