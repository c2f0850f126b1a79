//! Validating a workflow and building its dependency graph, once per request.

use std::collections::HashMap;

use rmpv::Value;

use super::{Command, Workflow};

/// Why a workflow cannot run. Nothing has been called when this is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The workflow has no commands.
    #[error("the workflow has no commands")]
    Empty,
    /// A command has an empty name, so nothing could refer to it and the result could not
    /// name it.
    #[error("command {index}: field `name` is empty")]
    EmptyName {
        /// Position of the command.
        index: usize,
    },
    /// A command names no function.
    #[error("command {index} (`{name}`): field `fun` is empty")]
    EmptyFun {
        /// Position of the command.
        index: usize,
        /// Its name.
        name: String,
    },
    /// Two commands share a name, so references to it would be ambiguous.
    #[error("duplicate command name `{name}` (commands {first} and {second})")]
    Duplicate {
        /// The shared name.
        name: String,
        /// Position of the first command with it.
        first: usize,
        /// Position of the second.
        second: usize,
    },
    /// Commands need each other's results in a circle (a command naming itself included).
    #[error("cycle `{}` (each command needs the result of the one before it)", cycle_text(.names))]
    Cycle {
        /// The commands on the cycle in data-flow order, starting with the earliest in the
        /// workflow: each one's result is an input of the next, and the last one's is an
        /// input of the first.
        names: Vec<String>,
    },
}

fn cycle_text(names: &[String]) -> String {
    let first = names.first().map(String::as_str).unwrap_or_default();
    let mut text = names.join(" -> ");
    text.push_str(" -> ");
    text.push_str(first);
    text
}

/// A reference found in a command's arguments, located so that the run can put the result
/// in its place without searching the arguments again.
#[derive(Debug, Clone)]
pub(super) struct Ref {
    /// Which argument holds it.
    pub(super) slot: Slot,
    /// Indexes from that argument down to the string: array positions, or positions of
    /// map entries (whose values hold the rest).
    pub(super) steps: Vec<usize>,
    /// The command whose result it names.
    pub(super) target: usize,
    /// The whole string, e.g. `|a.items.3`.
    pub(super) text: String,
    /// `text[..name_len]` is the target's name; any rest is `.` and a path.
    pub(super) name_len: usize,
}

/// The top-level argument holding a reference.
#[derive(Debug, Clone, Copy)]
pub(super) enum Slot {
    /// Positional argument `args[i]`.
    Arg(usize),
    /// Keyword argument `kwargs[i]`'s value.
    Kwarg(usize),
}

/// A validated workflow with its dependency graph. Commands keep their positions from the
/// workflow; every index below is such a position.
#[derive(Debug, Clone)]
pub struct Plan {
    cmds: Vec<Command>,
    names: HashMap<String, usize>,
    refs: Vec<Vec<Ref>>,
    deps: Vec<Vec<usize>>,
    dependents: Vec<Vec<usize>>,
    sinks: Vec<usize>,
    order: Vec<usize>,
}

impl Plan {
    /// Validates `workflow` (not empty, non-empty unique names, a function per command, no
    /// cycle) and builds its graph. Paths inside results are checked only at run time.
    pub fn new(workflow: Workflow) -> Result<Plan, PlanError> {
        let cmds = workflow.cmds;
        if cmds.is_empty() {
            return Err(PlanError::Empty);
        }
        let names = index_names(&cmds)?;
        let refs: Vec<Vec<Ref>> = cmds.iter().map(|c| find_refs(&names, c)).collect();
        let deps: Vec<Vec<usize>> = refs.iter().map(|r| targets(r)).collect();
        let dependents = invert(&deps);
        let order = topo_order(&deps, &dependents).map_err(|cycle| PlanError::Cycle {
            names: cycle.iter().map(|&i| cmds[i].name.clone()).collect(),
        })?;
        let sinks = (0..cmds.len())
            .filter(|&i| dependents[i].is_empty())
            .collect();
        Ok(Plan {
            cmds,
            names,
            refs,
            deps,
            dependents,
            sinks,
            order,
        })
    }

    /// All commands, in workflow order.
    pub fn commands(&self) -> &[Command] {
        &self.cmds
    }

    /// Command `i`, if there is one.
    pub fn command(&self, i: usize) -> Option<&Command> {
        self.cmds.get(i)
    }

    /// Position of the command called `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.names.get(name).copied()
    }

    /// Commands whose results command `i` uses, ascending, each once (empty when `i` is
    /// out of range).
    pub fn deps(&self, i: usize) -> &[usize] {
        self.deps.get(i).map_or(&[], Vec::as_slice)
    }

    /// Commands that use the result of command `i`, ascending, each once.
    pub fn dependents(&self, i: usize) -> &[usize] {
        self.dependents.get(i).map_or(&[], Vec::as_slice)
    }

    /// Commands whose results no other command uses, ascending: these make the result.
    pub fn sinks(&self) -> &[usize] {
        &self.sinks
    }

    /// Every command once, each after all the commands it uses.
    pub fn order(&self) -> &[usize] {
        &self.order
    }

    /// References in command `i`'s arguments, in argument order.
    pub(super) fn refs(&self, i: usize) -> &[Ref] {
        self.refs.get(i).map_or(&[], Vec::as_slice)
    }
}

/// Maps names to positions, rejecting empty fields and duplicates.
fn index_names(cmds: &[Command]) -> Result<HashMap<String, usize>, PlanError> {
    let mut names = HashMap::with_capacity(cmds.len());
    for (index, c) in cmds.iter().enumerate() {
        if c.name.is_empty() {
            return Err(PlanError::EmptyName { index });
        }
        if c.fun.is_empty() {
            let name = c.name.clone();
            return Err(PlanError::EmptyFun { index, name });
        }
        if let Some(first) = names.insert(c.name.clone(), index) {
            let name = c.name.clone();
            return Err(PlanError::Duplicate {
                name,
                first,
                second: index,
            });
        }
    }
    Ok(names)
}

/// The command `text` refers to and the length of its name: the whole string if it is a
/// name, else the longest name followed by a `.` (so names may contain dots).
fn resolve(names: &HashMap<String, usize>, text: &str) -> Option<(usize, usize)> {
    if let Some(&i) = names.get(text) {
        return Some((i, text.len()));
    }
    text.rmatch_indices('.')
        .find_map(|(dot, _)| names.get(&text[..dot]).map(|&i| (i, dot)))
}

fn find_refs(names: &HashMap<String, usize>, c: &Command) -> Vec<Ref> {
    let mut scanner = Scanner {
        names,
        slot: Slot::Arg(0),
        steps: Vec::new(),
        found: Vec::new(),
    };
    for (i, arg) in c.args.iter().enumerate() {
        scanner.slot = Slot::Arg(i);
        scanner.value(arg);
    }
    for (i, (_, arg)) in c.kwargs.iter().enumerate() {
        scanner.slot = Slot::Kwarg(i);
        scanner.value(arg);
    }
    scanner.found
}

/// Walks one argument, noting where each reference sits.
struct Scanner<'n> {
    names: &'n HashMap<String, usize>,
    slot: Slot,
    /// Position of the value being looked at, below `slot`.
    steps: Vec<usize>,
    found: Vec<Ref>,
}

impl Scanner<'_> {
    fn value(&mut self, v: &Value) {
        match v {
            Value::String(s) => self.string(s.as_str().unwrap_or_default()),
            Value::Array(items) => self.children(items.iter()),
            // Map keys are never references: only values are looked at.
            Value::Map(pairs) => self.children(pairs.iter().map(|(_, v)| v)),
            _ => {}
        }
    }

    fn children<'v>(&mut self, items: impl Iterator<Item = &'v Value>) {
        for (k, item) in items.enumerate() {
            self.steps.push(k);
            self.value(item);
            self.steps.pop();
        }
    }

    fn string(&mut self, text: &str) {
        if let Some((target, name_len)) = resolve(self.names, text) {
            self.found.push(Ref {
                slot: self.slot,
                steps: self.steps.clone(),
                target,
                text: text.to_owned(),
                name_len,
            });
        }
    }
}

fn targets(refs: &[Ref]) -> Vec<usize> {
    let mut t: Vec<usize> = refs.iter().map(|r| r.target).collect();
    t.sort_unstable();
    t.dedup();
    t
}

fn invert(deps: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let mut dependents = vec![Vec::new(); deps.len()];
    for (i, ds) in deps.iter().enumerate() {
        for &d in ds {
            dependents[d].push(i);
        }
    }
    dependents
}

/// Kahn's algorithm; on failure, a cycle among the commands it could not order.
fn topo_order(deps: &[Vec<usize>], dependents: &[Vec<usize>]) -> Result<Vec<usize>, Vec<usize>> {
    let mut missing: Vec<usize> = deps.iter().map(Vec::len).collect();
    let mut order: Vec<usize> = (0..deps.len()).filter(|&i| missing[i] == 0).collect();
    let mut next = 0;
    while let Some(&i) = order.get(next) {
        next += 1;
        for &d in &dependents[i] {
            missing[d] -= 1;
            if missing[d] == 0 {
                order.push(d);
            }
        }
    }
    if order.len() == deps.len() {
        Ok(order)
    } else {
        Err(find_cycle(deps, &missing))
    }
}

/// A cycle among the unordered commands (`missing > 0`), in data-flow order starting at
/// its lowest index. Every unordered command uses another unordered one (else Kahn would
/// have ordered it), so following such uses from any of them must close a loop.
fn find_cycle(deps: &[Vec<usize>], missing: &[usize]) -> Vec<usize> {
    let stuck = |i: &usize| missing[*i] > 0;
    let Some(mut cur) = (0..deps.len()).find(stuck) else {
        return Vec::new();
    };
    let mut seen_at = vec![None; deps.len()];
    let mut path = Vec::new();
    while seen_at[cur].is_none() {
        seen_at[cur] = Some(path.len());
        path.push(cur);
        match deps[cur].iter().copied().find(stuck) {
            Some(d) => cur = d,
            None => break,
        }
    }
    path.drain(..seen_at[cur].unwrap_or(0));
    // `path` follows "uses" edges; data flows the other way.
    path.reverse();
    let lowest = (0..path.len()).min_by_key(|&k| path[k]).unwrap_or(0);
    path.rotate_left(lowest);
    path
}
