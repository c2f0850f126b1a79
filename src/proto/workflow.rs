//! MPREG workflows: one request made of named commands whose arguments use each other's
//! results, planned here and driven by the runtime.
//!
//! A workflow is a list of [`Command`]s `{name, fun, args, kwargs, locs}`. The pieces:
//! - [`Workflow::from_value`] / [`Workflow::from_json_str`] read MPREG's request shape
//!   (`{"cmds": [...]}` or a bare array of commands); [`Workflow::to_value`] writes it back.
//! - [`Plan::new`] validates the workflow (names, references, cycles) and builds the
//!   dependency graph once.
//! - [`Run`] is the pure state machine the executor drives: it hands out each command as
//!   soon as its inputs are complete (no level barrier), substitutes results into the
//!   arguments, and collects the final result.
//!
//! # References
//! A string anywhere in a command's `args` or `kwargs` values — at any depth of arrays and
//! maps, map *values* only, never map keys — that equals another command's name is a
//! reference: the executor passes that command's result in its place. `name.a.b` navigates
//! into the result: a map by key (a string key, or an integer key when the part is a
//! number), an array by index (`name.items.0`). Only exact strings count; a string that
//! merely contains a name is data.
//!
//! Names may contain dots. Then the **longest** command name that is the whole string or is
//! followed by a `.` wins: with commands `a` and `a.b`, `"a.b.c"` is part `c` of `a.b`'s
//! result. A string equal to a command's own name is a self-reference, i.e. a cycle.
//!
//! Whether a path like `name.a.b` exists is known only once `name` has a result, so a
//! missing path is a run-time [`PathError`], not a planning error.
//!
//! # Differences from MPREG (on purpose)
//! - `kwargs` are scanned for references too (MPREG substitutes them but adds no
//!   dependency, so a kwarg reference could run before its input).
//! - A missing path is an error naming the missing part (MPREG silently passes the
//!   literal string on).
//! - The result maps every **sink** (a command no other command uses) to its value; MPREG
//!   returns its last topological level, which drops an unused command from an earlier
//!   level. For MPREG's README examples both give the same answer.

use rmpv::Value;

mod parse;
mod plan;
mod run;

pub use parse::ParseError;
pub use plan::{Plan, PlanError};
pub use run::{InputError, Inputs, PathError, PathProblem, Run, SHOWN_KEYS};

/// One step of a workflow: call `fun` with `args` and `kwargs` on a node that has every
/// resource in `locs`, and keep the result under `name`.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    /// Name of the step, unique in its workflow; other steps refer to its result by it.
    pub name: String,
    /// Name of the function to call.
    pub fun: String,
    /// Positional arguments; strings naming other commands are references (module docs).
    pub args: Vec<Value>,
    /// Keyword arguments in request order; their values may hold references too.
    pub kwargs: Vec<(String, Value)>,
    /// Resources the serving node must have (all of them).
    pub locs: Vec<String>,
    /// Call scope (`node`, `host` or `network`); `None` means the caller's default.
    pub scope: Option<String>,
}

impl Command {
    /// A command with positional arguments only, no resources and the default scope.
    pub fn new(name: impl Into<String>, fun: impl Into<String>, args: Vec<Value>) -> Self {
        Command {
            name: name.into(),
            fun: fun.into(),
            args,
            kwargs: Vec::new(),
            locs: Vec::new(),
            scope: None,
        }
    }

    /// Adds the keyword argument `key = value` (after any already set).
    pub fn kwarg(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.kwargs.push((key.into(), value.into()));
        self
    }

    /// Sets the resources the serving node must have.
    pub fn locs<I, S>(mut self, locs: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.locs = locs.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the call scope (`node`, `host` or `network`).
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }
}

/// A whole request: the commands in the order the client sent them (the order matters only
/// for error messages and the order of the result map, never for execution).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Workflow {
    /// The commands.
    pub cmds: Vec<Command>,
}

impl Workflow {
    /// An empty workflow, to be filled with [`Workflow::step`].
    pub fn new() -> Self {
        Workflow::default()
    }

    /// Appends a command.
    pub fn step(mut self, cmd: Command) -> Self {
        self.cmds.push(cmd);
        self
    }
}

impl From<Vec<Command>> for Workflow {
    fn from(cmds: Vec<Command>) -> Self {
        Workflow { cmds }
    }
}

impl FromIterator<Command> for Workflow {
    fn from_iter<I: IntoIterator<Item = Command>>(iter: I) -> Self {
        Workflow {
            cmds: iter.into_iter().collect(),
        }
    }
}

/// What kind of value `v` is, for error messages ("got an integer").
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Nil => "nil",
        Value::Boolean(_) => "a boolean",
        Value::Integer(_) => "an integer",
        Value::F32(_) | Value::F64(_) => "a float",
        Value::String(s) if s.is_str() => "a string",
        Value::String(_) => "a string that is not UTF-8",
        Value::Binary(_) => "binary data",
        Value::Array(_) => "an array",
        Value::Map(_) => "a map",
        Value::Ext(..) => "an extension value",
    }
}

#[cfg(test)]
#[path = "workflow/tests.rs"]
mod tests;
