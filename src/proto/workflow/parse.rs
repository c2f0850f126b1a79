//! Reading and writing MPREG's request shape.
//!
//! Accepted: `{"cmds": [command, ..]}` (other top-level fields such as MPREG's `role` and
//! `u` are ignored) or a bare array of commands. A command is a map with `name` and `fun`
//! (strings), and optional `args` (array, default `[]`), `kwargs` (map with string keys,
//! default `{}`), `locs` (array of strings, default `[]`) and `scope` (string). A `nil`
//! (JSON `null`) counts as absent. The optional fields newer MPREG clients add to a command
//! (`function_id`, `version_constraint`, `target_cluster`, `routing_topic`) are accepted
//! and ignored; any other field is an error naming it, with the field it probably meant
//! (a typo such as `nam` must not turn into "`name` is missing").

use rmpv::Value;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value as Json;

use super::{kind, Command, Workflow};

/// Why a request is not a workflow. Command indexes count from 0, as in `cmds[2]`.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// The text is not JSON at all.
    #[error("invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The top level is neither an array nor a map with `cmds`.
    #[error("a workflow must be an array of commands or a map with a `cmds` array, got {0}")]
    NotAWorkflow(&'static str),
    /// The `cmds` field is missing or not an array.
    #[error("field `cmds` must be an array of commands, got {0}")]
    Cmds(&'static str),
    /// One command is malformed; `problem` names the field.
    #[error("command {index}{}: {problem}", label(.name))]
    Command {
        /// Position of the command in `cmds`.
        index: usize,
        /// Its name, when that much could be read.
        name: Option<String>,
        /// What is wrong, naming the field (``field `fun` must be a string, got nil``).
        problem: String,
    },
}

fn label(name: &Option<String>) -> String {
    name.as_ref()
        .map(|n| format!(" (`{n}`)"))
        .unwrap_or_default()
}

impl Workflow {
    /// Reads a workflow from MPREG's request shape (see the module docs).
    pub fn from_value(v: &Value) -> Result<Self, ParseError> {
        let cmds = match v {
            Value::Array(cmds) => cmds,
            Value::Map(_) => match field(v, "cmds") {
                Some(Value::Array(cmds)) => cmds,
                Some(other) => return Err(ParseError::Cmds(kind(other))),
                None => return Err(ParseError::Cmds("nothing")),
            },
            other => return Err(ParseError::NotAWorkflow(kind(other))),
        };
        let cmds = cmds.iter().enumerate().map(|(i, c)| parse_command(i, c));
        Ok(Workflow {
            cmds: cmds.collect::<Result<_, _>>()?,
        })
    }

    /// Reads a workflow from JSON text. JSON numbers become integers (`u64` when they fit,
    /// else `i64`) or `f64` floats; strings, arrays and objects map to their MessagePack
    /// counterparts.
    pub fn from_json_str(text: &str) -> Result<Self, ParseError> {
        let json: Json = serde_json::from_str(text)?;
        Workflow::from_value(&crate::proto::json::to_value(&json))
    }

    /// Writes the workflow as `{"cmds": [..]}`, the shape [`Workflow::from_value`] reads
    /// (`scope` only when set).
    pub fn to_value(&self) -> Value {
        let cmds = self.cmds.iter().map(command_to_value).collect();
        Value::Map(vec![(Value::from("cmds"), Value::Array(cmds))])
    }
}

/// Serialized as [`Workflow::to_value`], so a workflow can travel inside wire messages.
impl Serialize for Workflow {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_value().serialize(s)
    }
}

/// Deserialized through [`Workflow::from_value`], with its error messages.
impl<'de> Deserialize<'de> for Workflow {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        Workflow::from_value(&v).map_err(serde::de::Error::custom)
    }
}

/// The value of the string key `key` in map `v` (`nil` counts as absent).
fn field<'v>(v: &'v Value, key: &str) -> Option<&'v Value> {
    let Value::Map(pairs) = v else { return None };
    pairs
        .iter()
        .find(|(k, _)| k.as_str() == Some(key))
        .map(|(_, v)| v)
        .filter(|v| !v.is_nil())
}

fn parse_command(index: usize, v: &Value) -> Result<Command, ParseError> {
    let fail = |name: Option<&str>, problem: String| ParseError::Command {
        index,
        name: name.map(str::to_owned),
        problem,
    };
    let Value::Map(pairs) = v else {
        return Err(fail(None, format!("must be a map, got {}", kind(v))));
    };
    let named = optional_string(v, "name").ok().flatten();
    if let Some(problem) = pairs.iter().find_map(|(k, _)| unknown_field(k)) {
        return Err(fail(named.as_deref(), problem));
    }
    let name = string(v, "name").map_err(|p| fail(None, p))?;
    let at = |p| fail(Some(&name), p);
    Ok(Command {
        fun: string(v, "fun").map_err(at)?,
        args: args(v).map_err(at)?,
        kwargs: kwargs(v).map_err(at)?,
        locs: locs(v).map_err(at)?,
        scope: optional_string(v, "scope").map_err(at)?,
        name,
    })
}

/// A command's fields, then those MPREG's newer clients send and we ignore.
const FIELDS: [&str; 6] = ["name", "fun", "args", "kwargs", "locs", "scope"];
const MPREG_IGNORED: [&str; 4] = [
    "function_id",
    "version_constraint",
    "target_cluster",
    "routing_topic",
];

/// What is wrong with key `k` of a command, if it is not a field we know.
fn unknown_field(k: &Value) -> Option<String> {
    let key = k.as_str()?;
    if FIELDS.contains(&key) || MPREG_IGNORED.contains(&key) {
        return None;
    }
    let close = crate::proto::catalog::close_names(key, FIELDS);
    Some(match close.first() {
        Some(c) => format!("unknown field `{key}` (did you mean `{c}`?)"),
        None => format!("unknown field `{key}` (fields: {})", FIELDS.join(", ")),
    })
}

fn string(v: &Value, key: &str) -> Result<String, String> {
    optional_string(v, key)?.ok_or_else(|| format!("field `{key}` is missing"))
}

fn optional_string(v: &Value, key: &str) -> Result<Option<String>, String> {
    match field(v, key) {
        None => Ok(None),
        Some(Value::String(s)) if s.is_str() => Ok(s.as_str().map(str::to_owned)),
        Some(other) => Err(format!(
            "field `{key}` must be a string, got {}",
            kind(other)
        )),
    }
}

fn args(v: &Value) -> Result<Vec<Value>, String> {
    match field(v, "args") {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => Ok(items.clone()),
        Some(other) => Err(format!(
            "field `args` must be an array, got {}",
            kind(other)
        )),
    }
}

fn kwargs(v: &Value) -> Result<Vec<(String, Value)>, String> {
    let pairs = match field(v, "kwargs") {
        None => return Ok(Vec::new()),
        Some(Value::Map(pairs)) => pairs,
        Some(other) => return Err(format!("field `kwargs` must be a map, got {}", kind(other))),
    };
    let pair = |(i, (k, v)): (usize, &(Value, Value))| match k.as_str() {
        Some(k) => Ok((k.to_owned(), v.clone())),
        None => Err(format!(
            "field `kwargs`: key {i} must be a string, got {}",
            kind(k)
        )),
    };
    pairs.iter().enumerate().map(pair).collect()
}

fn locs(v: &Value) -> Result<Vec<String>, String> {
    let items = match field(v, "locs") {
        None => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(other) => {
            return Err(format!(
                "field `locs` must be an array, got {}",
                kind(other)
            ))
        }
    };
    let item = |(i, loc): (usize, &Value)| match loc.as_str() {
        Some(s) => Ok(s.to_owned()),
        None => Err(format!(
            "field `locs`: item {i} must be a string, got {}",
            kind(loc)
        )),
    };
    items.iter().enumerate().map(item).collect()
}

fn command_to_value(c: &Command) -> Value {
    let kwargs = c
        .kwargs
        .iter()
        .map(|(k, v)| (Value::from(k.as_str()), v.clone()))
        .collect();
    let locs = c.locs.iter().map(|l| Value::from(l.as_str())).collect();
    let mut fields = vec![
        (Value::from("name"), Value::from(c.name.as_str())),
        (Value::from("fun"), Value::from(c.fun.as_str())),
        (Value::from("args"), Value::Array(c.args.clone())),
        (Value::from("kwargs"), Value::Map(kwargs)),
        (Value::from("locs"), Value::Array(locs)),
    ];
    if let Some(scope) = &c.scope {
        fields.push((Value::from("scope"), Value::from(scope.as_str())));
    }
    Value::Map(fields)
}
