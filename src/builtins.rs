//! Functions every node offers. `echo` and `echos` as MPREG's servers do (on `mpreg serve`
//! and whenever [`Config::builtins`](crate::Config::builtins) is on); `_metrics` and `_info`
//! as MaDRPC's do, on every node, so any member can be looked at from anywhere
//! (`mpreg call _metrics --node n1`, `mpreg top`).

use std::sync::{Arc, Weak};

use rmpv::Value;

use crate::function::Function;
use crate::metrics::collect;
use crate::metrics::snapshot::{MetricsSnapshot, NodeInfo};
use crate::runtime::Shared;

/// Name of the built-in answering with [`MetricsSnapshot`].
pub(crate) const METRICS: &str = "_metrics";
/// Name of the built-in answering with [`NodeInfo`].
pub(crate) const INFO: &str = "_info";

/// Whether `name` is one of mpreg's built-in functions (listed apart from users' own).
pub(crate) fn is_builtin(name: &str) -> bool {
    matches!(name, "echo" | "echos" | METRICS | INFO)
        || crate::control::is_control(name)
        || crate::keys::is_keys(name)
}

/// `echo(x) -> x` and `echos(xs..) -> [xs..]`.
pub(crate) fn functions() -> Vec<Function> {
    vec![
        Function::new("echo", |(x,): (Value,)| x).params(["x: any"]),
        Function::variadic("echos", |xs: Vec<Value>| Ok(Value::Array(xs))),
    ]
}

/// `_metrics()` and `_info()` of the node behind `shared`. They hold it weakly: a function
/// table must not keep its own node alive.
pub(crate) fn observers(shared: &Arc<Shared>) -> Vec<Function> {
    let (m, i) = (Arc::downgrade(shared), Arc::downgrade(shared));
    vec![
        Function::try_new(METRICS, move |(): ()| -> Result<MetricsSnapshot, String> {
            Ok(collect::snapshot(&*upgrade(&m)?))
        })
        .params(Vec::<&str>::new())
        .idempotent(true),
        Function::try_new(INFO, move |(): ()| -> Result<NodeInfo, String> {
            Ok(collect::info(&*upgrade(&i)?))
        })
        .params(Vec::<&str>::new())
        .idempotent(true),
    ]
}

fn upgrade(w: &Weak<Shared>) -> Result<Arc<Shared>, String> {
    w.upgrade()
        .ok_or_else(|| "the node is shutting down".to_string())
}
