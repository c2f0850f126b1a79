//! One execution of a [`Plan`]: which commands may start, their inputs, and the result.
//!
//! The executor (the runtime) loops:
//! 1. start everything [`Run::ready`] returns (once, at the beginning);
//! 2. for each started command, call it with [`Run::inputs`];
//! 3. feed each answer to [`Run::complete`] and start the commands it returns;
//! 4. when [`Run::is_done`], answer with [`Run::into_result`].
//!
//! On a failure it cancels [`Run::pending`] and reports the failed command. Each step costs
//! O(degree): nothing rescans the whole workflow.

use std::fmt;

use rmpv::Value;

use super::kind;
use super::plan::{Plan, Ref, Slot};

/// A reference whose path does not exist in the result it points into.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("command `{command}`: reference `{reference}`: `{at}` {problem}")]
pub struct PathError {
    /// The command whose argument holds the reference.
    pub command: String,
    /// The whole reference string, e.g. `|a.items.3`.
    pub reference: String,
    /// The part of the reference that did resolve, e.g. `|a.items`.
    pub at: String,
    /// Why the next part does not.
    pub problem: PathProblem,
}

/// Why one part of a reference path does not resolve (the value at `at` is described).
#[derive(Debug, Clone, PartialEq)]
pub enum PathProblem {
    /// A map without the key.
    NoKey {
        /// The key looked for.
        key: String,
        /// Up to [`SHOWN_KEYS`] keys the map does have, to spot typos.
        keys: Vec<String>,
        /// How many keys the map has.
        count: usize,
    },
    /// An array shorter than the index.
    NoIndex {
        /// The index looked for.
        index: usize,
        /// The array's length.
        len: usize,
    },
    /// An array, and the part is not a number.
    NotIndex {
        /// The part.
        part: String,
        /// The array's length.
        len: usize,
    },
    /// Neither a map nor an array, so it has no parts.
    NotContainer {
        /// The part looked for.
        part: String,
        /// What the value is ("an integer").
        kind: &'static str,
    },
}

/// How many of a map's keys a [`PathProblem::NoKey`] lists.
pub const SHOWN_KEYS: usize = 5;

impl fmt::Display for PathProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathProblem::NoKey { key, keys, count } => {
                write!(f, "has no key `{key}` ")?;
                let listed = keys.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>();
                let more = if *count > keys.len() { ", ..." } else { "" };
                match count {
                    0 => write!(f, "(empty map)"),
                    1 => write!(f, "(map with key {})", listed.join(", ")),
                    n => write!(f, "(map with {n} keys: {}{more})", listed.join(", ")),
                }
            }
            PathProblem::NoIndex { index, len } => {
                write!(f, "has no index {index} (array of length {len})")
            }
            PathProblem::NotIndex { part, len } => {
                write!(
                    f,
                    "is an array of length {len}, and `{part}` is not an index"
                )
            }
            PathProblem::NotContainer { part, kind } => {
                write!(f, "is {kind}, not a map or an array, so it has no `{part}`")
            }
        }
    }
}

/// Why [`Run::inputs`] cannot build a command's arguments.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InputError {
    /// A reference path is missing from its result (a fault of the request).
    #[error(transparent)]
    Path(Box<PathError>),
    /// A referenced command has not completed: the executor asked too early.
    #[error("command `{command}`: reference `{reference}`: `{dependency}` has no result yet")]
    NotReady {
        /// The command whose inputs were asked for.
        command: String,
        /// The reference string.
        reference: String,
        /// The command without a result.
        dependency: String,
    },
    /// The index is not a command of the plan.
    #[error("no command with index {index} (the workflow has {len})")]
    NoSuchCommand {
        /// The index asked for.
        index: usize,
        /// The number of commands.
        len: usize,
    },
}

/// A command's arguments with every reference replaced, ready for the call.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Inputs {
    /// Positional arguments.
    pub args: Vec<Value>,
    /// Keyword arguments, in request order.
    pub kwargs: Vec<(String, Value)>,
}

/// Where a command is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Some input is missing.
    Waiting,
    /// All inputs complete, not yet handed out (only commands without inputs, before the
    /// first [`Run::ready`]).
    Ready,
    /// Handed out, no result yet.
    Running,
    /// Has a result.
    Done,
}

/// The state of one execution of a [`Plan`]. It owns the plan ([`Run::plan`] gives it
/// back for `fun`/`locs`) and every result until the end.
#[derive(Debug, Clone)]
pub struct Run {
    plan: Plan,
    state: Vec<State>,
    /// Per command, how many of its inputs have no result yet.
    missing: Vec<usize>,
    results: Vec<Option<Value>>,
    /// Commands in [`State::Ready`].
    fresh: Vec<usize>,
    done: usize,
}

impl Run {
    /// A run where nothing has started.
    pub fn new(plan: Plan) -> Self {
        let n = plan.commands().len();
        let missing: Vec<usize> = (0..n).map(|i| plan.deps(i).len()).collect();
        let fresh: Vec<usize> = (0..n).filter(|&i| missing[i] == 0).collect();
        let mut state = vec![State::Waiting; n];
        for &i in &fresh {
            state[i] = State::Ready;
        }
        Run {
            plan,
            state,
            missing,
            results: vec![None; n],
            fresh,
            done: 0,
        }
    }

    /// The plan being run.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Hands out the commands whose inputs are complete and that were not handed out yet.
    /// Over a run, each command is handed out exactly once, by this or by
    /// [`Run::complete`]; in practice this returns the commands without inputs on its first
    /// call and nothing afterwards.
    pub fn ready(&mut self) -> Vec<usize> {
        for &i in &self.fresh {
            self.state[i] = State::Running;
        }
        std::mem::take(&mut self.fresh)
    }

    /// The arguments of command `i` with every reference replaced by (a copy of) the part
    /// of the result it names. Only the referenced parts of results are copied.
    pub fn inputs(&self, i: usize) -> Result<Inputs, InputError> {
        let len = self.state.len();
        let cmd = self
            .plan
            .command(i)
            .ok_or(InputError::NoSuchCommand { index: i, len })?;
        let mut args = cmd.args.clone();
        let mut kwargs = cmd.kwargs.clone();
        for r in self.plan.refs(i) {
            let value = self.lookup(&cmd.name, r)?.clone();
            if let Some(place) = place_mut(&mut args, &mut kwargs, r) {
                *place = value;
            }
        }
        Ok(Inputs { args, kwargs })
    }

    /// Records the result of command `i` and hands out the commands that it made ready
    /// (they will not come from [`Run::ready`]). A result for a command that is not
    /// running — never handed out, already complete, or out of range — is ignored and
    /// hands out nothing, so a late or duplicate answer cannot corrupt the run.
    pub fn complete(&mut self, i: usize, result: Value) -> Vec<usize> {
        if self.state.get(i) != Some(&State::Running) {
            return Vec::new();
        }
        self.state[i] = State::Done;
        self.results[i] = Some(result);
        self.done += 1;
        let mut now_ready = Vec::new();
        for &d in self.plan.dependents(i) {
            self.missing[d] -= 1;
            if self.missing[d] == 0 {
                self.state[d] = State::Running;
                now_ready.push(d);
            }
        }
        now_ready
    }

    /// Whether every command has a result.
    pub fn is_done(&self) -> bool {
        self.done == self.state.len()
    }

    /// Commands handed out and not complete: the ones to cancel when the run fails.
    pub fn pending(&self) -> Vec<usize> {
        let running = |&i: &usize| self.state[i] == State::Running;
        (0..self.state.len()).filter(running).collect()
    }

    /// The result of command `i`, once it is complete.
    pub fn result_of(&self, i: usize) -> Option<&Value> {
        self.results.get(i)?.as_ref()
    }

    /// The answer: a map from the names of the sinks (or, with `all`, of every command) to
    /// their results, in workflow order. Commands without a result yet are left out.
    /// Copies the results; [`Run::into_result`] moves them.
    pub fn result(&self, all: bool) -> Value {
        let cmds = self.plan.commands();
        let entry = |i: usize| Some((Value::from(cmds[i].name.as_str()), self.results[i].clone()?));
        Value::Map(self.answer(all).into_iter().filter_map(entry).collect())
    }

    /// [`Run::result`] without copying: the run is used up.
    pub fn into_result(mut self, all: bool) -> Value {
        let picked = self.answer(all);
        let cmds = self.plan.commands();
        let results = &mut self.results;
        let entry = |i: usize| Some((Value::from(cmds[i].name.as_str()), results[i].take()?));
        Value::Map(picked.into_iter().filter_map(entry).collect())
    }

    /// Indexes of the commands that make the answer.
    fn answer(&self, all: bool) -> Vec<usize> {
        if all {
            (0..self.state.len()).collect()
        } else {
            self.plan.sinks().to_vec()
        }
    }

    /// The value `r` names inside its target's result.
    fn lookup(&self, command: &str, r: &Ref) -> Result<&Value, InputError> {
        let Some(result) = self.results[r.target].as_ref() else {
            return Err(InputError::NotReady {
                command: command.to_owned(),
                reference: r.text.clone(),
                dependency: r.text[..r.name_len].to_owned(),
            });
        };
        navigate(result, &r.text, r.name_len).map_err(|(end, problem)| {
            InputError::Path(Box::new(PathError {
                command: command.to_owned(),
                reference: r.text.clone(),
                at: r.text[..end].to_owned(),
                problem,
            }))
        })
    }
}

/// Follows the path after the name (`text[name_len..]`, `.`-separated) into `root`. On
/// failure, gives the length of the prefix of `text` that did resolve, and the problem.
fn navigate<'v>(
    root: &'v Value,
    text: &str,
    name_len: usize,
) -> Result<&'v Value, (usize, PathProblem)> {
    let Some(path) = text.get(name_len + 1..) else {
        return Ok(root);
    };
    let mut cur = root;
    let mut end = name_len;
    for part in path.split('.') {
        cur = child(cur, part).map_err(|problem| (end, problem))?;
        end += 1 + part.len();
    }
    Ok(cur)
}

/// Part `part` of `v`: a map entry by key, an array item by index.
fn child<'v>(v: &'v Value, part: &str) -> Result<&'v Value, PathProblem> {
    match v {
        Value::Map(pairs) => map_entry(pairs, part).ok_or_else(|| PathProblem::NoKey {
            key: part.to_owned(),
            keys: pairs
                .iter()
                .take(SHOWN_KEYS)
                .map(|(k, _)| key_text(k))
                .collect(),
            count: pairs.len(),
        }),
        Value::Array(items) => {
            let len = items.len();
            let not_index = || PathProblem::NotIndex {
                part: part.to_owned(),
                len,
            };
            let index: usize = part.parse().map_err(|_| not_index())?;
            items.get(index).ok_or(PathProblem::NoIndex { index, len })
        }
        other => Err(PathProblem::NotContainer {
            part: part.to_owned(),
            kind: kind(other),
        }),
    }
}

/// The value under key `part`: a string key equal to it, else an integer key equal to its
/// number (MessagePack maps may have integer keys).
fn map_entry<'v>(pairs: &'v [(Value, Value)], part: &str) -> Option<&'v Value> {
    let by_string = pairs.iter().find(|(k, _)| k.as_str() == Some(part));
    let by_number = || {
        let n: i128 = part.parse().ok()?;
        let same = |k: &Value| k.as_i64().map(i128::from).or(k.as_u64().map(i128::from));
        pairs.iter().find(|(k, _)| same(k) == Some(n))
    };
    by_string.or_else(by_number).map(|(_, v)| v)
}

fn key_text(k: &Value) -> String {
    match k.as_str() {
        Some(s) => s.to_owned(),
        None => k.to_string(),
    }
}

/// The argument value where reference `r` sits. `None` cannot happen for arguments cloned
/// from the command `r` was found in; it is handled rather than assumed.
fn place_mut<'a>(
    args: &'a mut [Value],
    kwargs: &'a mut [(String, Value)],
    r: &Ref,
) -> Option<&'a mut Value> {
    let mut cur = match r.slot {
        Slot::Arg(i) => args.get_mut(i)?,
        Slot::Kwarg(i) => &mut kwargs.get_mut(i)?.1,
    };
    for &k in &r.steps {
        cur = match cur {
            Value::Array(items) => items.get_mut(k)?,
            Value::Map(pairs) => &mut pairs.get_mut(k)?.1,
            _ => return None,
        };
    }
    Some(cur)
}
