//! MARO-style conditional events: the `source:tag:amount` grammar and the [`Table`] that
//! decides when a handler fires.
//!
//! # Grammar
//!
//! A *unit event* is `source:tag:amount`:
//!
//! - `source` is `*` (any peer) or a pattern that matches a peer whose **role equals it** or
//!   whose **name starts with it**: `worker` matches role `worker`, `work` matches the peer
//!   named `worker-3`, and `orker` matches neither.
//! - `tag` is `*` (any tag) or an exact tag.
//! - `amount` is `N` (N ≥ 1 messages) or `P%` (1 ≤ P ≤ 100): messages from at least
//!   ceil(P·n/100) **distinct** senders, where n is the number of live peers matching `source`
//!   at the moment of evaluation. An absolute amount is not capped by the peer count:
//!   `x:t:5` waits for five messages even if only two peers exist.
//!
//! Units combine with `&` and `|` and parentheses; `&` binds tighter than `|`, and whitespace
//! is allowed around operators and parentheses. `|` takes the **first satisfied alternative
//! in order**. Source and tag may not contain whitespace, control characters, `:`, `&`, `|`,
//! `(` or `)`, and `*` only on its own, so that every [`Condition`] prints (`Display`) as text
//! that parses back to an equal value.
//!
//! ```
//! use mpreg::proto::condition::{Amount, Condition};
//!
//! let parsed: Condition = "worker:update:60% & (master:stop:1 | *:abort:1)".parse()?;
//! let built = Condition::unit("worker", "update", Amount::Percent(60))?.and(
//!     Condition::unit("master", "stop", Amount::Count(1))?
//!         .or(Condition::unit("*", "abort", Amount::Count(1))?),
//! );
//! assert_eq!(parsed, built);
//! assert_eq!(built.to_string(), "worker:update:60% & (master:stop:1 | *:abort:1)");
//! # Ok::<(), mpreg::proto::condition::ConditionError>(())
//! ```
//!
//! Bad input gives a [`ConditionError`] whose message quotes the offending part, e.g.
//! ``bad condition "worker:update:0": amount `0` must be at least 1 (column 15)``.
//!
//! # Where we deliberately differ from MARO
//!
//! MARO (`maro/communication/registry_table.py`) matches sources by *substring*, counts
//! *messages* (not senders) for `%`, rounds `%` down, caps absolute amounts at the peer
//! count, and freezes the peer count at start-up. Here sources match by role or name prefix,
//! `%` counts distinct senders against the peers live *now* and rounds up, absolute amounts
//! are never capped, and a handler fires as long as it is satisfied (see [`Table`]).
//!
//! # Layout
//!
//! - this file: [`Condition`] (the and/or tree, builder, `Display`/`FromStr`) and [`Peer`]
//! - `unit.rs`: [`Unit`] and [`Amount`], with the validation shared by parser and builder
//! - `error.rs`: [`ConditionError`], [`ErrorKind`], [`Part`]
//! - `parse.rs`: tokenizer and recursive-descent parser
//! - `table.rs`: [`Table`]: offering messages, evaluating conditions, [`Firing`]s
//! - `queue.rs`: storage behind the table: interned sender names, per-handler message
//!   slab, per-unit FIFO queues

use std::fmt;
use std::str::FromStr;

mod error;
mod parse;
mod queue;
mod table;
mod unit;

pub use error::{ConditionError, ErrorKind, Part};
pub use table::{Consumed, Firing, HandlerId, Table};
pub use unit::{Amount, Unit};

/// A live member of the cluster as the condition table sees it: the sender of a message,
/// or one entry of the live membership passed to [`Table::offer`] and
/// [`Table::reevaluate`], which lists every other member once (this node excluded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer<'a> {
    /// The member's unique name, matched by prefix against a unit's source.
    pub name: &'a str,
    /// The member's role, matched exactly against a unit's source.
    pub role: &'a str,
}

/// A conditional event: a unit event, or an and/or combination of them.
///
/// Every value is valid (units are checked when built) and kept in a normal form: `&` of
/// `&` and `|` of `|` are flattened, so `a & (b & c)`, `(a & b) & c` and `a & b & c` are the
/// same condition, and `Display` needs parentheses only around a `|` inside a `&`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Condition(Node);

/// The private tree behind [`Condition`]; `All`/`Any` always hold at least two parts and
/// never a part of their own kind (see [`Condition::join`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Node {
    Unit(Unit),
    All(Vec<Condition>),
    Any(Vec<Condition>),
}

/// A read-only view of a [`Condition`]'s top level, for code that walks the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape<'a> {
    /// A single unit event.
    Unit(&'a Unit),
    /// Satisfied when every part is (`&`); at least two parts, none of them `All`.
    All(&'a [Condition]),
    /// Satisfied by the first satisfied part in order (`|`); at least two parts, none `Any`.
    Any(&'a [Condition]),
}

impl Condition {
    /// Parses the text form, e.g. `"worker:update:60% & master:go:1"`.
    pub fn parse(text: &str) -> Result<Self, ConditionError> {
        parse::parse(text)
    }

    /// A condition of one unit event; fails on an invalid source, tag or amount with the
    /// same error the parser gives for `source:tag:amount`.
    pub fn unit(
        source: impl Into<String>,
        tag: impl Into<String>,
        amount: Amount,
    ) -> Result<Self, ConditionError> {
        Unit::new(source, tag, amount).map(Self::from)
    }

    /// Satisfied when both `self` and `other` are; a firing consumes the messages of both.
    #[must_use]
    pub fn and(self, other: Condition) -> Self {
        Self::join(self, other, true)
    }

    /// Satisfied by `self` if it is, else by `other`; a firing consumes only the messages of
    /// the alternative that was taken.
    #[must_use]
    pub fn or(self, other: Condition) -> Self {
        Self::join(self, other, false)
    }

    /// The top level of the tree.
    pub fn shape(&self) -> Shape<'_> {
        match &self.0 {
            Node::Unit(unit) => Shape::Unit(unit),
            Node::All(parts) => Shape::All(parts),
            Node::Any(parts) => Shape::Any(parts),
        }
    }

    /// Every unit event in the condition, left to right.
    pub fn units(&self) -> Vec<&Unit> {
        let mut out = Vec::new();
        self.collect_units(&mut out);
        out
    }

    fn collect_units<'a>(&'a self, out: &mut Vec<&'a Unit>) {
        match &self.0 {
            Node::Unit(unit) => out.push(unit),
            Node::All(parts) | Node::Any(parts) => {
                parts.iter().for_each(|p| p.collect_units(out));
            }
        }
    }

    /// Combines two conditions, splicing in the parts of an operand of the same kind so the
    /// tree stays flat; this is what makes `&` and `|` associative under `==`.
    fn join(left: Condition, right: Condition, all: bool) -> Self {
        let mut parts = left.into_parts(all);
        parts.extend(right.into_parts(all));
        Condition(if all {
            Node::All(parts)
        } else {
            Node::Any(parts)
        })
    }

    fn into_parts(self, all: bool) -> Vec<Condition> {
        match self.0 {
            Node::All(parts) if all => parts,
            Node::Any(parts) if !all => parts,
            node => vec![Condition(node)],
        }
    }
}

impl From<Unit> for Condition {
    fn from(unit: Unit) -> Self {
        Condition(Node::Unit(unit))
    }
}

impl FromStr for Condition {
    type Err = ConditionError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Node::Unit(unit) => unit.fmt(f),
            Node::All(parts) => write_parts(f, parts, " & "),
            Node::Any(parts) => write_parts(f, parts, " | "),
        }
    }
}

/// Writes `parts` separated by `separator`. Only an `Any` can sit inside an `All` and need
/// parentheses: the normal form never nests a kind inside itself.
fn write_parts(f: &mut fmt::Formatter<'_>, parts: &[Condition], separator: &str) -> fmt::Result {
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            f.write_str(separator)?;
        }
        match part.0 {
            Node::Any(_) => write!(f, "({part})")?,
            _ => write!(f, "{part}")?,
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "condition/tests.rs"]
mod tests;
