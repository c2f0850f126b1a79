//! Targets for what arrives as text or as values: topics and patterns, conditions,
//! workflows, call arguments and the gateway's JSON requests.

#[cfg(feature = "http")]
use std::time::Duration;

use rmpv::Value;
#[cfg(feature = "http")]
use serde_json::Value as Json;

use super::input::Input;
use crate::function::Param;
#[cfg(feature = "http")]
use crate::gateway::fuzzing as gw;
use crate::proto::args::{array_len, as_sent, decode_args, fit, missing, shape, Shape};
use crate::proto::condition::Condition;
#[cfg(feature = "http")]
use crate::proto::json::{to_json, to_value};
#[cfg(feature = "http")]
use crate::proto::resolve::Scope;
use crate::proto::topic::{Pattern, Topic, Trie, MAX_LEN, MAX_SEGMENTS};
use crate::proto::workflow::{Plan, Run, Workflow};

/// Whether `text` is a valid topic (or, with `wildcards`, pattern), from the rules as the
/// module docs state them: the reference the parsers are checked against.
fn valid(text: &str, wildcards: bool) -> bool {
    let segments: Vec<&str> = text.split('.').collect();
    !text.is_empty()
        && text.len() <= MAX_LEN
        && segments.len() <= MAX_SEGMENTS
        && segments.iter().all(|s| {
            let plain = !s.is_empty() && !s.chars().any(|c| c.is_whitespace() || c.is_control());
            (plain && !s.contains('*')) || (wildcards && (*s == "*" || *s == "**"))
        })
}

/// Glob matching over segments by the textbook table (`m[i][j]`: pattern from segment `i`
/// matches topic from segment `j`): the reference for the matchers.
fn glob(pattern: &[&str], topic: &[&str]) -> bool {
    let (p, t) = (pattern.len(), topic.len());
    let mut m = vec![vec![false; t + 1]; p + 1];
    m[p][t] = true;
    for i in (0..p).rev() {
        for j in (0..=t).rev() {
            m[i][j] = match pattern[i] {
                "**" => m[i + 1][j] || (j < t && m[i][j + 1]),
                s => j < t && (s == "*" || s == topic[j]) && m[i + 1][j + 1],
            };
        }
    }
    m[0][0]
}

/// Topics and patterns: lines of text, every line but the last a pattern and the last a
/// topic. Each parses exactly when the stated rules allow; [`Pattern::matches`] and a
/// [`Trie`] of the patterns (before and after removing some) agree with the reference.
pub fn topic(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut lines: Vec<&str> = text.split('\n').collect();
    let topic = lines.pop().unwrap_or_default();
    lines.truncate(16);
    let parsed_topic = Topic::parse(topic);
    assert_eq!(parsed_topic.is_ok(), valid(topic, false), "topic {topic:?}");
    let segs: Vec<&str> = topic.split('.').collect();
    let mut trie = Trie::new();
    let mut patterns = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let p = Pattern::parse(line);
        assert_eq!(p.is_ok(), valid(line, true), "pattern {line:?}");
        let Ok(p) = p else { continue };
        assert_eq!(p.as_str(), *line);
        let expected = parsed_topic.is_ok() && glob(&line.split('.').collect::<Vec<_>>(), &segs);
        assert_eq!(p.matches(topic), expected, "{line:?} on {topic:?}");
        trie.insert(&p, i);
        patterns.push((i, p, expected));
    }
    let check = |trie: &Trie<usize>, kept: &[(usize, Pattern, bool)]| {
        let mut got = trie.matches(topic);
        got.sort_unstable();
        let want: Vec<usize> = kept.iter().filter(|e| e.2).map(|e| e.0).collect();
        assert_eq!(got, want, "trie on {topic:?}");
        assert_eq!(trie.has_match(topic), !want.is_empty());
    };
    check(&trie, &patterns);
    let (gone, kept): (Vec<_>, Vec<_>) = patterns.into_iter().partition(|e| e.0 % 2 == 1);
    for (i, p, _) in &gone {
        assert!(trie.remove(p, i), "removing an inserted pattern");
    }
    check(&trie, &kept);
}

/// Conditions: what parses prints as text that parses to the same condition; an error
/// points into its input.
pub fn condition(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Condition::parse(text) {
        Ok(c) => {
            let shown = c.to_string();
            let again = Condition::parse(&shown).expect("a printed condition parses");
            assert_eq!(again, c, "{text:?} printed as {shown:?}");
        }
        Err(e) => {
            assert!(e.column() <= text.chars().count() + 1, "column of {e}");
            assert_eq!(e.input(), text);
            assert!(!e.to_string().is_empty());
        }
    }
}

/// Workflows: what parses writes back to the same workflow; a plan orders every command
/// after its inputs; a run that completes whatever is handed out ends done.
pub fn workflow(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(wf) = Workflow::from_json_str(text) else {
        return;
    };
    let v = wf.to_value();
    let again = Workflow::from_value(&v).expect("a written workflow parses");
    assert_eq!(again.to_value(), v, "workflow round trip");
    if let Ok(plan) = Plan::new(wf) {
        run_plan(plan);
    }
}

/// Checks `plan`'s order, then runs it with each command's index as its result.
fn run_plan(plan: Plan) {
    let n = plan.commands().len();
    let order = plan.order().to_vec();
    assert_eq!(order.len(), n);
    let mut at = vec![usize::MAX; n];
    for (pos, &i) in order.iter().enumerate() {
        at[i] = pos;
    }
    for i in 0..n {
        assert!(plan.deps(i).iter().all(|&d| at[d] < at[i]), "order of {i}");
    }
    let mut run = Run::new(plan);
    let mut todo = run.ready();
    let mut steps = 0;
    while let Some(i) = todo.pop() {
        steps += 1;
        assert!(steps <= n, "a command handed out twice");
        let _ = run.inputs(i);
        todo.extend(run.complete(i, Value::from(i)));
    }
    assert!(run.is_done(), "every command ran");
    let _ = run.into_result(true);
}

/// Parameter names the args target picks from.
const NAMES: [&str; 4] = ["a", "b", "c", "d"];

/// Argument fitting: a signature from the first byte, then positional and keyword bytes.
/// Fitting passes the arguments on unchanged only when they already fit, and otherwise
/// builds an array of exactly one value per parameter.
pub fn args(data: &[u8]) {
    let mut input = Input::new(data);
    let sig = input.byte();
    let params: Option<Vec<Param>> = (sig & 7 < 5).then(|| {
        (0..usize::from(sig & 7))
            .map(|i| Param {
                name: NAMES[(i + usize::from(sig >> 3)) % NAMES.len()].to_string(),
                ty: String::new(),
            })
            .collect()
    });
    let args = input.part(255);
    let kwargs = (sig & 0x80 != 0).then(|| input.rest());
    match fit(params.as_deref(), args, kwargs) {
        Ok(None) => {
            let fits = |p: &[Param]| {
                kwargs.is_none() && shape(args) != Shape::Map && array_len(args) == Some(p.len())
            };
            assert!(params.as_deref().is_none_or(fits), "passed on unfitted");
        }
        Ok(Some(bytes)) => {
            let want = params.as_ref().map(Vec::len).expect("variadic: unchanged");
            let mut rd = &bytes[..];
            let v = rmpv::decode::read_value(&mut rd).expect("fitted arguments decode");
            assert!(rd.is_empty(), "one value");
            assert!(
                matches!(v, Value::Array(a) if a.len() == want),
                "one per parameter"
            );
        }
        Err(f) => assert!(!f.message.is_empty()),
    }
    if let Some(ps) = &params {
        for name in missing(ps, args, kwargs) {
            assert!(ps.iter().any(|p| p.name == name), "missing `{name}`");
        }
    }
    if let Ok(b) = as_sent(args, kwargs) {
        let v = rmpv::decode::read_value(&mut &b[..]).expect("as sent decodes");
        assert!(matches!(v, Value::Array(a) if a.len() == 2));
    }
    let _ = decode_args::<(i64, Option<String>, Vec<u8>)>(args);
}

/// The node's call deadline in the gateway target.
#[cfg(feature = "http")]
const TIMEOUT: Duration = Duration::from_secs(5);

/// The gateway: the first byte picks MPREG's WebSocket protocol or JSON-RPC, the rest is
/// the request. Reading never panics, a refused request is answered with a non-empty
/// message, and JSON maps to MessagePack values and back exactly.
#[cfg(feature = "http")]
pub fn gateway(data: &[u8]) {
    let Some((which, body)) = data.split_first() else {
        return;
    };
    if let Ok(j) = serde_json::from_slice::<Json>(body) {
        assert_eq!(to_json(&to_value(&j)), j, "JSON through MessagePack");
    }
    if which & 1 == 0 {
        if let Ok(text) = std::str::from_utf8(body) {
            mpreg_request(text);
        }
    } else {
        for (code, message) in gw::jsonrpc(TIMEOUT, body) {
            assert!(matches!(code, -32700 | -32600 | -32602), "code {code}");
            assert!(!message.is_empty());
        }
    }
}

/// One MPREG request frame, read as the WebSocket session does, then planned.
#[cfg(feature = "http")]
fn mpreg_request(text: &str) {
    match gw::mpreg(TIMEOUT, text) {
        Ok(Some(wf)) => {
            let single = wf.cmds.len() == 1;
            if single {
                let _ = gw::scope(&wf.cmds[0], Scope::Network);
            }
            if let Ok(plan) = Plan::new(wf) {
                run_plan(plan);
            }
        }
        Ok(None) => {}
        Err(message) => assert!(!message.is_empty()),
    }
}
