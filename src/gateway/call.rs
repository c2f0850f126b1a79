//! Running a gateway request on the cluster as a call from the gateway's client: MPREG
//! commands (one command is a plain call, several are a workflow run on this node) and
//! JSON-RPC's single calls. Each is resolved like any call (`locs`, scope, visibility).

use std::sync::Arc;
use std::time::Duration;

use rmpv::Value;
use serde_json::{Map, Value as Json};

use super::fault::Fault;
use super::Caller;
use crate::error::Error;
use crate::proto::json::{to_json, to_value};
use crate::proto::resolve::{Route, Scope};
use crate::proto::workflow::{Command, Workflow};
use crate::runtime::route::Invocation;
use crate::runtime::workflow::encode;
use crate::runtime::Shared;

/// How a request runs: mpreg's extension fields (`timeout` in seconds, `scope`, `all`).
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub timeout: Duration,
    pub scope: Scope,
    pub all: bool,
}

/// Longest deadline a client may ask for (a day): keeps `Duration` arithmetic sane.
const MAX_TIMEOUT_SECS: f64 = 86_400.0;

impl Options {
    /// Reads the options from the fields of `obj` (absent ones take the node's defaults).
    pub(crate) fn read(shared: &Shared, obj: Option<&Map<String, Json>>) -> Result<Self, Fault> {
        Options::read_with(shared.config.call_timeout(), obj)
    }

    /// [`Options::read`] with the node's default deadline given (no node needed: the fuzz
    /// targets read requests with it).
    pub(crate) fn read_with(
        default_timeout: Duration,
        obj: Option<&Map<String, Json>>,
    ) -> Result<Self, Fault> {
        let mut o = Options {
            timeout: default_timeout,
            scope: Scope::Network,
            all: false,
        };
        let Some(obj) = obj else { return Ok(o) };
        match obj.get("timeout") {
            None | Some(Json::Null) => {}
            Some(Json::Number(n)) => match n.as_f64() {
                Some(s) if s > 0.0 && s <= MAX_TIMEOUT_SECS => {
                    o.timeout = Duration::from_secs_f64(s)
                }
                _ => {
                    return Err(Fault::malformed(format!(
                        "field `timeout` must be seconds in (0, {MAX_TIMEOUT_SECS}], got {n}"
                    )))
                }
            },
            Some(other) => {
                return Err(Fault::malformed(format!(
                    "field `timeout` must be a number of seconds, got {other}"
                )))
            }
        }
        match obj.get("scope") {
            None | Some(Json::Null) => {}
            Some(Json::String(s)) => {
                o.scope = s
                    .parse()
                    .map_err(|e| Fault::malformed(format!("field `scope`: {e}")))?
            }
            Some(other) => {
                return Err(Fault::malformed(format!(
                    "field `scope` must be \"network\", \"host\" or \"node\", got {other}"
                )))
            }
        }
        o.all = matches!(obj.get("all"), Some(Json::Bool(true)));
        Ok(o)
    }
}

/// Runs the commands of MPREG's `{"cmds": [..]}`: the results of the sink commands (every
/// command's with `all`) by name.
pub(crate) async fn commands(
    shared: &Arc<Shared>,
    caller: &Caller,
    mut cmds: Json,
    opts: &Options,
) -> Result<Json, Fault> {
    let mut wf = workflow_of(&mut cmds)?;
    for cmd in &wf.cmds {
        keyring_refused(&cmd.fun)?;
    }
    if wf.cmds.len() == 1 && !opts.all {
        let cmd = wf.cmds.remove(0);
        let scope = scope_of(&cmd, opts.scope)?;
        let kwargs = (!cmd.kwargs.is_empty()).then(|| {
            let map = cmd.kwargs.into_iter().map(|(k, v)| (Value::from(k), v));
            Value::Map(map.collect())
        });
        let one = One {
            fun: &cmd.fun,
            args: Value::Array(cmd.args),
            kwargs,
            locs: cmd.locs,
            scope,
            timeout: opts.timeout,
        };
        let v = call(shared, caller, one).await?;
        let mut r = Map::new();
        r.insert(cmd.name, to_json(&v));
        return Ok(Json::Object(r));
    }
    for cmd in &mut wf.cmds {
        if cmd.scope.is_none() {
            cmd.scope = Some(opts.scope.to_string());
        }
    }
    let funs: Vec<String> = wf.cmds.iter().map(|c| c.fun.clone()).collect();
    match shared
        .run_workflow(wf, opts.all, opts.timeout, caller.origin_host.clone())
        .await
    {
        Ok(v) => Ok(to_json(&v)),
        Err(e) => match funs.iter().find(|f| !shared.knows_function(f)) {
            Some(f) => Err(not_found(shared, f, &e)),
            None => Err(Fault::from(&e)),
        },
    }
}

/// The workflow of MPREG's `cmds` (at least one command); unknown command fields dropped.
pub(crate) fn workflow_of(cmds: &mut Json) -> Result<Workflow, Fault> {
    keep_known_fields(cmds);
    let wf = Workflow::from_value(&to_value(cmds))
        .map_err(|e| Fault::malformed(format!("not an MPREG request: {e}")))?;
    if wf.cmds.is_empty() {
        return Err(Fault::malformed("field `cmds` holds no command"));
    }
    Ok(wf)
}

/// The scope a single command runs in: its own, else the request's.
pub(crate) fn scope_of(cmd: &Command, default: Scope) -> Result<Scope, Fault> {
    match &cmd.scope {
        Some(s) => s
            .parse()
            .map_err(|e| Fault::malformed(format!("command `{}`: {e}", cmd.name))),
        None => Ok(default),
    }
}

/// MPREG's command fields: a gateway ignores the others, as MPREG's servers do, since
/// newer MPREG clients keep adding some (`mpreg run` files, by contrast, get a typo named).
const COMMAND_FIELDS: [&str; 6] = ["name", "fun", "args", "kwargs", "locs", "scope"];

/// Leaves only the fields mpreg reads in each command.
fn keep_known_fields(cmds: &mut Json) {
    if let Json::Array(cmds) = cmds {
        for c in cmds.iter_mut() {
            if let Json::Object(m) = c {
                m.retain(|k, _| COMMAND_FIELDS.contains(&k.as_str()));
            }
        }
    }
}

/// One call: what to call and how.
pub(crate) struct One<'a> {
    pub fun: &'a str,
    /// The positional arguments (an array).
    pub args: Value,
    /// Named arguments (a map), if any.
    pub kwargs: Option<Value>,
    pub locs: Vec<String>,
    pub scope: Scope,
    pub timeout: Duration,
}

/// The keyring built-ins are not for gateway clients: a bearer token (or none, on
/// loopback) must not become a way to install or remove the cluster's keys.
fn keyring_refused(fun: &str) -> Result<(), Fault> {
    if crate::keys::is_keys(fun) {
        return Err(Fault::hidden(format!(
            "`{fun}` is not callable through the gateway: change the keyring with `mpreg keys` \
             and a key of the cluster"
        )));
    }
    Ok(())
}

/// Runs one call for `caller`; its result.
pub(crate) async fn call(
    shared: &Arc<Shared>,
    caller: &Caller,
    one: One<'_>,
) -> Result<Value, Fault> {
    keyring_refused(one.fun)?;
    let inv = Invocation {
        fun: one.fun.to_string(),
        args: encode(&one.args),
        kwargs: one.kwargs.as_ref().map(encode),
        timeout: one.timeout,
        route: Route {
            locs: one.locs,
            scope: one.scope,
            ..Route::default()
        },
        origin_host: caller.origin_host.clone(),
    };
    match shared.invoke(&inv).await {
        Ok(o) => rmpv::decode::read_value(&mut &o.value[..]).map_err(|e| {
            Fault::new(
                super::fault::INTERNAL,
                format!(
                    "cannot decode the result of `{}` from node `{}`: {e}",
                    inv.fun, o.node
                ),
            )
        }),
        Err(Error::NoProvider { .. } | Error::NoCluster { .. }) if shared.hidden_from(&inv) => {
            Err(Fault::hidden(format!(
                "`{}` is not visible to a gateway client on {}: its visibility admits only \
                 callers on its own host or node",
                inv.fun,
                caller.place()
            )))
        }
        // Finding no cluster means nothing was called: the function was unknown when the
        // node gave up waiting, even if a registration landed just after.
        Err(e) if matches!(e, Error::NoCluster { .. }) || !shared.knows_function(&inv.fun) => {
            Err(not_found(shared, &inv.fun, &e))
        }
        Err(e) => Err(Fault::from(&e)),
    }
}

/// "Command not found" for `fun`; on a node that knows no other member, says so rather
/// than repeat how discovery found nobody (the node itself is the cluster here).
fn not_found(shared: &Shared, fun: &str, cause: &Error) -> Fault {
    match cause {
        Error::NoCluster { .. } | Error::Workflow { .. } if shared.config.listen => {
            Fault::not_found(
                fun,
                format!(
                    "offered neither by this node `{}` nor by any member it knows",
                    shared.name
                ),
            )
        }
        other => Fault::not_found(fun, other),
    }
}
