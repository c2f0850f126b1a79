//! MPREG multi-call workflows (DESIGN §8): commands whose arguments name other commands'
//! results, run cluster-side as a dependency graph.
//!
//! ```no_run
//! # async fn demo() -> mpreg::Result<()> {
//! let out = mpreg::workflow()
//!     .step("|a", "echo", ("hi",))
//!     .step("|b", "train", ("|a", 3)).locs(["dataset-1"])
//!     .run().await?;                                   // {"|b": ...}
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use rmpv::Value;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::node::Node;
use crate::proto::workflow::{Command, Workflow};
use crate::Scope;

/// A workflow being built; see [`workflow`](crate::workflow()) and [`Node::workflow`].
#[must_use = "a workflow does nothing until `run` is awaited"]
#[derive(Debug, Clone)]
pub struct Flow {
    node: Option<Node>,
    cmds: Vec<Command>,
    all: bool,
    timeout: Option<Duration>,
    error: Option<String>,
}

impl Flow {
    pub(crate) fn new(node: Option<Node>) -> Self {
        Flow {
            node,
            cmds: Vec::new(),
            all: false,
            timeout: None,
            error: None,
        }
    }

    /// A workflow in MPREG's JSON form: `{"cmds": [{"name", "fun", "args", "kwargs",
    /// "locs"}, ..]}` or a bare array of commands; unknown fields are ignored.
    pub fn from_json(mut self, text: &str) -> Self {
        match Workflow::from_json_str(text) {
            Ok(w) => self.cmds = w.cmds,
            Err(e) => self.error = Some(e.to_string()),
        }
        self
    }

    /// Adds command `name` calling `fun`. `args` is a tuple or array (positional), a map
    /// (keyword), or one value; any string in it equal to another command's name (or
    /// `name.key.0` paths into it) is replaced by that command's result.
    pub fn step(mut self, name: &str, fun: &str, args: impl Serialize) -> Self {
        let (args, kwargs) = match rmpv::ext::to_value(&args) {
            Ok(Value::Array(a)) => (a, Vec::new()),
            Ok(Value::Nil) => (Vec::new(), Vec::new()),
            Ok(Value::Map(m)) => (Vec::new(), keyword(m)),
            Ok(v) => (vec![v], Vec::new()),
            Err(e) => {
                self.error = Some(format!("command `{name}`: cannot encode arguments: {e}"));
                (Vec::new(), Vec::new())
            }
        };
        let mut cmd = Command::new(name, fun, args);
        cmd.kwargs = kwargs;
        self.cmds.push(cmd);
        self
    }

    /// Keyword arguments of the last step (a map or struct).
    pub fn kwargs(mut self, kwargs: impl Serialize) -> Self {
        match (rmpv::ext::to_value(&kwargs), self.cmds.last_mut()) {
            (Ok(Value::Map(m)), Some(c)) => c.kwargs.extend(keyword(m)),
            (_, None) => self.error = Some("`kwargs` before any `step`".into()),
            (_, Some(c)) => {
                self.error = Some(format!("command `{}`: kwargs must be a map", c.name))
            }
        }
        self
    }

    /// Resources the provider of the last step must offer (MPREG `locs`).
    pub fn locs<I: IntoIterator<Item = S>, S: Into<String>>(mut self, locs: I) -> Self {
        match self.cmds.last_mut() {
            Some(c) => c.locs = locs.into_iter().map(Into::into).collect(),
            None => self.error = Some("`locs` before any `step`".into()),
        }
        self
    }

    /// Scope of the last step.
    pub fn scope(mut self, scope: Scope) -> Self {
        match self.cmds.last_mut() {
            Some(c) => c.scope = Some(scope.to_string()),
            None => self.error = Some("`scope` before any `step`".into()),
        }
        self
    }

    /// Returns every command's result, not only the sinks'.
    pub fn all(mut self, yes: bool) -> Self {
        self.all = yes;
        self
    }

    /// One deadline for the whole workflow (default: the node's call timeout).
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = Some(t);
        self
    }

    /// Runs the workflow: on this node if it is a member, else on a member it is connected
    /// to, sent there in one message. Returns the results by command name: the sinks (the
    /// commands no other command references), or all with [`Flow::all`].
    pub async fn run(self) -> Result<Results> {
        if let Some(e) = self.error {
            return Err(Error::Workflow { detail: e });
        }
        let w = Workflow { cmds: self.cmds };
        let (all, timeout) = (self.all, self.timeout);
        let map = match self.node {
            Some(node) => submit(node, w, all, timeout).await?,
            None => {
                let node = crate::global::node().await?;
                crate::global::on_runtime(submit(node, w, all, timeout)).await?
            }
        };
        let Value::Map(pairs) = map else {
            return Err(Error::Workflow {
                detail: format!("the entry node answered a non-map result: {map}"),
            });
        };
        Ok(Results(
            pairs
                .into_iter()
                .map(|(k, v)| {
                    (
                        k.as_str()
                            .map(String::from)
                            .unwrap_or_else(|| k.to_string()),
                        v,
                    )
                })
                .collect(),
        ))
    }
}

/// A workflow's results by command name: a map (it derefs to `BTreeMap<String, Value>`)
/// that prints as JSON with `{}` and `{:?}` alike, so `println!("{results:?}")` shows
/// `{"|b":13}` rather than MessagePack's `Integer(PosInt(13))`.
#[derive(Clone, PartialEq, Default)]
pub struct Results(pub BTreeMap<String, Value>);

impl Results {
    /// The map itself.
    pub fn into_inner(self) -> BTreeMap<String, Value> {
        self.0
    }

    /// The results as one JSON object.
    pub fn to_json(&self) -> serde_json::Value {
        let map = self
            .0
            .iter()
            .map(|(k, v)| (k.clone(), crate::proto::json::to_json(v)))
            .collect();
        serde_json::Value::Object(map)
    }
}

impl std::ops::Deref for Results {
    type Target = BTreeMap<String, Value>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl IntoIterator for Results {
    type Item = (String, Value);
    type IntoIter = std::collections::btree_map::IntoIter<String, Value>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl std::fmt::Display for Results {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.to_json())
    }
}

impl std::fmt::Debug for Results {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

async fn submit(node: Node, w: Workflow, all: bool, timeout: Option<Duration>) -> Result<Value> {
    let t = timeout.unwrap_or_else(|| node.config().call_timeout());
    node.shared().submit_workflow(w, all, t).await
}

fn keyword(m: Vec<(Value, Value)>) -> Vec<(String, Value)> {
    m.into_iter()
        .map(|(k, v)| {
            (
                k.as_str()
                    .map(String::from)
                    .unwrap_or_else(|| k.to_string()),
                v,
            )
        })
        .collect()
}
