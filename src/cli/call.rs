//! `mpreg call FUN [ARG..]`: call a function by name, print the result as JSON.

use std::time::Duration;

use bytes::Bytes;
use clap::Args;
use mpreg::proto::json;
use mpreg::{Error, Value};

use super::NodeArgs;

/// Arguments of `mpreg call`.
#[derive(Debug, Args)]
pub struct CallArgs {
    /// Function name.
    fun: String,
    /// Positional arguments; each is parsed as JSON, else taken as a plain string.
    /// Negative numbers are arguments, not flags (`mpreg call add -1 2`).
    #[arg(allow_negative_numbers = true)]
    args: Vec<String>,
    /// Keyword argument `NAME=JSON` (a non-JSON value is taken as a string); repeatable.
    #[arg(long = "kw", value_name = "NAME=JSON")]
    kwargs: Vec<String>,
    /// Seconds to wait for the result.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
    /// Print `{"result": .., "node": .., "elapsed_ms": ..}` instead of the bare result (with
    /// `--all`, one such object per node).
    #[arg(long)]
    json: bool,
    /// Resources the provider must offer (MPREG locs), comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "A,B")]
    locs: Vec<String>,
    /// How far the call may go: node, host or network.
    #[arg(long, default_value = "network")]
    scope: mpreg::Scope,
    /// Only providers on this host (host id).
    #[arg(long, value_name = "HOST", conflicts_with = "node_name")]
    host: Option<String>,
    /// Only the node with this name.
    #[arg(long = "node", id = "node_name", value_name = "NAME")]
    node_name: Option<String>,
    /// Choice among providers: least_loaded, random or round_robin.
    #[arg(long)]
    policy: Option<mpreg::Policy>,
    /// Call every qualifying provider and print the results keyed by node name.
    #[arg(long)]
    all: bool,
    /// Send the call straight to the node at HOST:PORT, without resolving (diagnostics: the
    /// serving node's own checks answer).
    #[arg(long, value_name = "HOST:PORT", conflicts_with = "all")]
    addr: Option<String>,
    #[command(flatten)]
    node: NodeArgs,
}

fn encode(v: &Value) -> mpreg::Result<Bytes> {
    let mut buf = Vec::new();
    rmpv::encode::write_value(&mut buf, v)
        .map_err(|e| Error::Usage(format!("cannot encode arguments: {e}")))?;
    Ok(Bytes::from(buf))
}

fn kwargs(pairs: &[String]) -> mpreg::Result<Option<Bytes>> {
    if pairs.is_empty() {
        return Ok(None);
    }
    let mut map = Vec::new();
    for p in pairs {
        let (k, v) = p
            .split_once('=')
            .ok_or_else(|| Error::Usage(format!("--kw {p:?}: expected NAME=JSON")))?;
        if k.is_empty() {
            return Err(Error::Usage(format!("--kw {p:?}: the name is empty")));
        }
        map.push((Value::from(k), json::parse_arg(v)));
    }
    encode(&Value::Map(map)).map(Some)
}

/// Runs the call as a short-lived client: no listener, no built-ins, no gossip; it finds
/// the cluster by discovery (or `--seed`) and calls the provider directly.
pub async fn run(a: CallArgs) -> mpreg::Result<()> {
    if !(a.timeout.is_finite() && a.timeout > 0.0) {
        return Err(Error::Usage(format!(
            "--timeout {}: must be a positive number of seconds",
            a.timeout
        )));
    }
    let mut cfg = a.node.client_config()?;
    // Finding the cluster is part of the call: never wait longer than the call may take.
    let timeout_ms = (a.timeout * 1000.0) as u64;
    cfg.discovery_wait_ms = cfg.discovery_wait_ms.min(timeout_ms.max(1));
    // Arguments are checked before the cluster is looked for: a typo fails at once.
    let positional = Value::Array(a.args.iter().map(|s| json::parse_arg(s)).collect());
    let (args, kwargs) = (encode(&positional)?, kwargs(&a.kwargs)?);
    let node = mpreg::Node::start(cfg).await?;
    let mut req = node
        .request(&a.fun)
        .raw_args(args, kwargs)
        .timeout(Duration::from_secs_f64(a.timeout))
        .locs(a.locs.clone())
        .scope(a.scope);
    if let Some(h) = &a.host {
        req = req.on_host(h);
    }
    if let Some(n) = &a.node_name {
        req = req.on_node(n);
    }
    if let Some(p) = a.policy {
        req = req.policy(p);
    }
    if let Some(addr) = &a.addr {
        req = req.at(addr);
    }
    if a.all {
        let results = req.send_all::<Value>().await;
        node.shutdown().await;
        return print_all(&a.fun, results?, a.json);
    }
    let result = req.send::<Value>().await;
    node.shutdown().await;
    let r = result?;
    let out = if a.json {
        serde_json::json!({
            "result": json::to_json(&r.value),
            "node": r.node,
            "elapsed_ms": elapsed_ms(r.elapsed),
        })
    } else {
        json::to_json(&r.value)
    };
    println!("{out}");
    Ok(())
}

/// Prints `call --all` results as one JSON object keyed by node name; fails (after printing)
/// if any provider failed, so scripts see a non-zero exit.
fn print_all(
    fun: &str,
    results: std::collections::BTreeMap<String, mpreg::Result<Value>>,
    json_lines: bool,
) -> mpreg::Result<()> {
    let mut out = serde_json::Map::new();
    let mut failed = Vec::new();
    for (node, r) in results {
        let v = match r {
            Ok(v) if json_lines => serde_json::json!({"result": json::to_json(&v), "node": node}),
            Ok(v) => json::to_json(&v),
            Err(e) => {
                failed.push(node.clone());
                serde_json::json!({"error": e.to_string()})
            }
        };
        out.insert(node, v);
    }
    println!("{}", serde_json::Value::Object(out));
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Error::Remote {
            fun: fun.to_string(),
            node: failed.join("`, `"),
            message: "see its entry above".into(),
        })
    }
}

/// Milliseconds rounded to the microsecond (`0.487`, not `0.48663999999999996`).
fn elapsed_ms(d: Duration) -> f64 {
    d.as_micros() as f64 / 1000.0
}
