use proptest::prelude::*;
use rmpv::Value;

use super::*;
use crate::proto::json::to_value as json_to_value;

fn s(x: &str) -> Value {
    Value::from(x)
}

fn json(text: &str) -> Value {
    json_to_value(&serde_json::from_str(text).expect("test JSON is valid"))
}

/// A map value with entries in the given order (results keep workflow order).
fn map(entries: &[(&str, Value)]) -> Value {
    Value::Map(entries.iter().map(|(k, v)| (s(k), v.clone())).collect())
}

fn parse_err(text: &str) -> String {
    Workflow::from_json_str(text)
        .expect_err("should not parse")
        .to_string()
}

fn plan(text: &str) -> Plan {
    Plan::new(Workflow::from_json_str(text).expect("parses")).expect("plans")
}

fn plan_err(text: &str) -> String {
    let wf = Workflow::from_json_str(text).expect("parses");
    Plan::new(wf).expect_err("should not plan").to_string()
}

/// The fake executor: `echo` returns its single argument, `echos` all its arguments as an
/// array, anything else the map `{fun, args}`.
fn call(fun: &str, inputs: Inputs) -> Value {
    match fun {
        "echo" => inputs.args.into_iter().next().unwrap_or(Value::Nil),
        "echos" => Value::Array(inputs.args),
        _ => map(&[("fun", s(fun)), ("args", Value::Array(inputs.args))]),
    }
}

/// Runs `plan` to the end with the fake executor, first come first served.
fn execute(plan: Plan, all: bool) -> Result<Value, InputError> {
    let mut run = Run::new(plan);
    let mut queue = run.ready();
    while let Some(i) = queue.pop() {
        let inputs = run.inputs(i)?;
        let fun = run.plan().commands()[i].fun.clone();
        queue.extend(run.complete(i, call(&fun, inputs)));
    }
    assert!(run.is_done());
    Ok(run.into_result(all))
}

fn readme(cmds: &str) -> Value {
    execute(plan(cmds), false).expect("runs")
}

// ---------------------------------------------------------------- parsing

#[test]
fn parses_mpreg_request_with_unknown_fields() {
    let wf = Workflow::from_json_str(
        r#"{"role": "rpc", "u": "01H", "cmds": [
            {"name": "|a", "fun": "train", "args": ["x", 3, 1.5, null],
             "kwargs": {"epochs": 3}, "locs": ["gpu", "dataset-1"], "scope": "host",
             "function_id": null, "routing_topic": "t"}]}"#,
    )
    .expect("parses");
    let expected = Command::new(
        "|a",
        "train",
        vec![s("x"), 3.into(), 1.5.into(), Value::Nil],
    )
    .kwarg("epochs", 3)
    .locs(["gpu", "dataset-1"])
    .scope("host");
    assert_eq!(wf, Workflow::new().step(expected));
}

#[test]
fn parses_bare_array_with_optional_fields_absent_or_null() {
    let wf = Workflow::from_json_str(
        r#"[{"name": "a", "fun": "f"},
            {"name": "b", "fun": "g", "args": null, "kwargs": null, "locs": null}]"#,
    )
    .expect("parses");
    assert_eq!(
        wf,
        Workflow::from(vec![
            Command::new("a", "f", vec![]),
            Command::new("b", "g", vec![])
        ])
    );
}

#[test]
fn json_numbers_keep_their_kind() {
    let v = json(r#"[1, -1, 18446744073709551615, 0.5]"#);
    let expected = Value::Array(vec![
        Value::from(1u64),
        Value::from(-1i64),
        Value::from(u64::MAX),
        Value::F64(0.5),
    ]);
    assert_eq!(v, expected);
}

#[test]
fn type_errors_name_the_command_and_field() {
    let cases = [
        (
            r#"[{"name": "a", "fun": "f"}, {"name": "|b", "fun": 3}]"#,
            "command 1 (`|b`): field `fun` must be a string, got an integer",
        ),
        (r#"[{"fun": "f"}]"#, "command 0: field `name` is missing"),
        (
            r#"[{"name": ["a"], "fun": "f"}]"#,
            "command 0: field `name` must be a string, got an array",
        ),
        (
            r#"[{"name": "a"}]"#,
            "command 0 (`a`): field `fun` is missing",
        ),
        (
            r#"[{"name": "a", "fun": "f", "args": "x"}]"#,
            "command 0 (`a`): field `args` must be an array, got a string",
        ),
        (
            r#"[{"name": "a", "fun": "f", "kwargs": [1]}]"#,
            "command 0 (`a`): field `kwargs` must be a map, got an array",
        ),
        (
            r#"[{"name": "a", "fun": "f", "locs": ["x", 2]}]"#,
            "command 0 (`a`): field `locs`: item 1 must be a string, got an integer",
        ),
        (
            r#"[{"name": "a", "fun": "f", "scope": true}]"#,
            "command 0 (`a`): field `scope` must be a string, got a boolean",
        ),
        (r#"["a"]"#, "command 0: must be a map, got a string"),
        (
            r#""a""#,
            "a workflow must be an array of commands or a map with a `cmds` array, got a string",
        ),
        (
            r#"{"cmd": []}"#,
            "field `cmds` must be an array of commands, got nothing",
        ),
        (
            r#"{"cmds": {}}"#,
            "field `cmds` must be an array of commands, got a map",
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(parse_err(text), expected, "for {text}");
    }
    assert!(parse_err("[{").starts_with("invalid JSON: "));
}

#[test]
fn kwargs_keys_must_be_strings() {
    let cmd = Value::Map(vec![
        (s("name"), s("a")),
        (s("fun"), s("f")),
        (
            s("kwargs"),
            Value::Map(vec![(s("k"), s("v")), (7.into(), s("w"))]),
        ),
    ]);
    let err = Workflow::from_value(&Value::Array(vec![cmd])).expect_err("int key");
    assert_eq!(
        err.to_string(),
        "command 0 (`a`): field `kwargs`: key 1 must be a string, got an integer"
    );
}

#[test]
fn to_value_and_serde_round_trip() {
    let wf = Workflow::new()
        .step(Command::new("|a", "echo", vec![s("hi")]).locs(["x"]))
        .step(Command::new("|b", "f", vec![s("|a"), json(r#"{"k": [1, 2]}"#)]).kwarg("n", -3))
        .step(Command::new("|c", "g", vec![]).scope("node"));
    assert_eq!(Workflow::from_value(&wf.to_value()).expect("parses"), wf);

    let text = serde_json::to_string(&wf).expect("serializes");
    let back: Workflow = serde_json::from_str(&text).expect("deserializes");
    assert_eq!(back, wf);
    let err = serde_json::from_str::<Workflow>("[1]").expect_err("not a command");
    assert!(err
        .to_string()
        .contains("command 0: must be a map, got an integer"));
}

// ---------------------------------------------------------------- planning

#[test]
fn references_in_nested_lists_maps_and_kwargs() {
    let p = plan(
        r#"[{"name": "|a", "fun": "f"}, {"name": "|b", "fun": "f"}, {"name": "|n", "fun": "f"},
            {"name": "|c", "fun": "f",
             "args": [["x", {"k": "|a", "|n": "key, not a ref"}], "say |n", "|n!"],
             "kwargs": {"z": {"deep": [["|b"]]}}}]"#,
    );
    assert_eq!(p.deps(3), &[0, 1]);
    assert_eq!(p.dependents(0), &[3]);
    assert_eq!(p.sinks(), &[2, 3]);

    let mut run = Run::new(p);
    assert_eq!(run.ready(), vec![0, 1, 2]);
    assert!(run.complete(0, s("A")).is_empty());
    assert!(run.complete(2, s("N")).is_empty());
    assert_eq!(run.complete(1, json(r#"{"b": 1}"#)), vec![3]);
    let inputs = run.inputs(3).expect("inputs");
    let expected_args = json(r#"[["x", {"k": "A", "|n": "key, not a ref"}], "say |n", "|n!"]"#);
    assert_eq!(Value::Array(inputs.args), expected_args);
    assert_eq!(
        inputs.kwargs,
        vec![("z".to_owned(), json(r#"{"deep": [[{"b": 1}]]}"#))]
    );
}

#[test]
fn paths_navigate_maps_and_arrays() {
    let p = plan(
        r#"[{"name": "|a", "fun": "f"},
            {"name": "|c", "fun": "f",
             "args": ["|a.items.1", "|a.m.k", "|a.7", "|a.items", "|a"]}]"#,
    );
    let mut run = Run::new(p);
    run.ready();
    let result = Value::Map(vec![
        (s("items"), json("[10, 20]")),
        (s("m"), json(r#"{"k": "v"}"#)),
        (7.into(), s("seven")),
    ]);
    run.complete(0, result.clone());
    let args = run.inputs(1).expect("inputs").args;
    let expected = vec![20.into(), s("v"), s("seven"), json("[10, 20]"), result];
    assert_eq!(args, expected);
}

#[test]
fn missing_paths_are_run_time_errors_naming_the_part() {
    let refs = [
        (
            "|a.items.3",
            "command `|c`: reference `|a.items.3`: `|a.items` has no index 3 (array of length 2)",
        ),
        (
            "|a.nope",
            "command `|c`: reference `|a.nope`: `|a` has no key `nope` (map with 3 keys: `items`, `m`, `n`)",
        ),
        (
            "|a.items.x",
            "command `|c`: reference `|a.items.x`: `|a.items` is an array of length 2, and `x` is not an index",
        ),
        (
            "|a.m.k.z",
            "command `|c`: reference `|a.m.k.z`: `|a.m.k` is a string, not a map or an array, so it has no `z`",
        ),
        (
            "|a.m.",
            "command `|c`: reference `|a.m.`: `|a.m` has no key `` (map with key `k`)",
        ),
    ];
    for (reference, expected) in refs {
        let p = Plan::new(Workflow::from(vec![
            Command::new("|a", "f", vec![]),
            Command::new("|c", "f", vec![s("ok"), s(reference)]),
        ]))
        .expect("plans");
        let mut run = Run::new(p);
        run.ready();
        run.complete(0, json(r#"{"items": [1, 2], "m": {"k": "v"}, "n": null}"#));
        let err = run.inputs(1).expect_err("missing path");
        assert_eq!(err.to_string(), expected);
        let InputError::Path(path) = err else {
            panic!("not a path error: {err:?}")
        };
        assert_eq!(path.reference, reference);
    }
}

#[test]
fn longest_command_name_prefix_wins() {
    let p = plan(
        r#"[{"name": "a", "fun": "f"}, {"name": "a.b", "fun": "f"},
            {"name": "c", "fun": "f", "args": ["a.b.c", "a.b", "a.x"]}]"#,
    );
    assert_eq!(p.deps(2), &[0, 1]);
    let mut run = Run::new(p);
    run.ready();
    run.complete(0, json(r#"{"x": "from a", "b": {"c": "wrong"}}"#));
    run.complete(1, json(r#"{"c": "from a.b"}"#));
    let args = run.inputs(2).expect("inputs").args;
    assert_eq!(
        args,
        vec![s("from a.b"), json(r#"{"c": "from a.b"}"#), s("from a")]
    );
}

#[test]
fn validation_errors() {
    assert_eq!(plan_err("[]"), "the workflow has no commands");
    assert_eq!(
        plan_err(
            r#"[{"name": "|a", "fun": "f"}, {"name": "|b", "fun": "f"}, {"name": "|a", "fun": "g"}]"#
        ),
        "duplicate command name `|a` (commands 0 and 2)"
    );
    assert_eq!(
        plan_err(r#"[{"name": "x", "fun": "f"}, {"name": "", "fun": "f"}]"#),
        "command 1: field `name` is empty"
    );
    assert_eq!(
        plan_err(r#"[{"name": "x", "fun": ""}]"#),
        "command 0 (`x`): field `fun` is empty"
    );
}

#[test]
fn self_reference_is_a_cycle() {
    let expected = "cycle `|a -> |a` (each command needs the result of the one before it)";
    assert_eq!(
        plan_err(r#"[{"name": "|a", "fun": "f", "args": ["|a"]}]"#),
        expected
    );
    let nested = r#"[{"name": "|z", "fun": "f"},
                     {"name": "|a", "fun": "f", "kwargs": {"k": ["|z", "|a.x"]}}]"#;
    assert_eq!(plan_err(nested), expected);
}

#[test]
fn three_cycle_is_shown_in_data_flow_order() {
    // |b takes |a, |c takes |b, |a takes |c; |z and |w are bystanders.
    let err = plan_err(
        r#"[{"name": "|z", "fun": "f"},
            {"name": "|w", "fun": "f", "args": ["|c"]},
            {"name": "|a", "fun": "f", "args": ["|c", "|z"]},
            {"name": "|b", "fun": "f", "args": ["|a"]},
            {"name": "|c", "fun": "f", "args": [{"x": "|b.out"}]}]"#,
    );
    assert_eq!(
        err,
        "cycle `|a -> |b -> |c -> |a` (each command needs the result of the one before it)"
    );
}

#[test]
fn graph_accessors() {
    // Diamond a -> {b, c} -> d, plus a lone e.
    let p = plan(
        r#"[{"name": "d", "fun": "f", "args": ["b", "c", "b"]},
            {"name": "c", "fun": "f", "args": ["a"]},
            {"name": "b", "fun": "f", "args": ["a"]},
            {"name": "a", "fun": "f"},
            {"name": "e", "fun": "f"}]"#,
    );
    assert_eq!(p.deps(0), &[1, 2]);
    assert_eq!(p.dependents(3), &[1, 2]);
    assert_eq!(p.sinks(), &[0, 4]);
    assert_eq!(p.order(), &[3, 4, 1, 2, 0]);
    assert_eq!(p.index_of("c"), Some(1));
    assert_eq!(p.index_of("zz"), None);
    assert!(p.deps(99).is_empty() && p.dependents(99).is_empty() && p.command(99).is_none());
}

// ---------------------------------------------------------------- running

#[test]
fn readme_examples() {
    let call = r#"[{"name": "first", "fun": "echo", "args": ["hi there!"], "locs": []}]"#;
    assert_eq!(readme(call), map(&[("first", s("hi there!"))]));

    let chain = r#"[{"name": "first", "fun": "echo", "args": ["hi there!"]},
                    {"name": "second", "fun": "echo", "args": ["first"]}]"#;
    assert_eq!(readme(chain), map(&[("second", s("hi there!"))]));

    let clear = r#"[{"name": "|first", "fun": "echo", "args": ["hi there!"]},
                    {"name": "|second", "fun": "echo", "args": ["|first"]},
                    {"name": "|third", "fun": "echos", "args": ["|first", "AND ME TOO"]}]"#;
    let third = Value::Array(vec![s("hi there!"), s("AND ME TOO")]);
    let expected = map(&[("|second", s("hi there!")), ("|third", third)]);
    assert_eq!(readme(clear), expected);

    let three = r#"[{"name": "|first", "fun": "echo", "args": ["hi there!"]},
                    {"name": "|second", "fun": "echo", "args": ["|first"]},
                    {"name": "|third", "fun": "echos", "args": ["|first", "|second", "AND ME TOO"]}]"#;
    let all3 = Value::Array(vec![s("hi there!"), s("hi there!"), s("AND ME TOO")]);
    assert_eq!(readme(three), map(&[("|third", all3.clone())]));

    let four = r#"[{"name": "|first", "fun": "echo", "args": ["hi there!"]},
                   {"name": "|second", "fun": "echo", "args": ["|first"]},
                   {"name": "|third", "fun": "echos", "args": ["|first", "|second", "AND ME TOO"]},
                   {"name": "|4th", "fun": "echo", "args": ["|third"]}]"#;
    assert_eq!(readme(four), map(&[("|4th", all3)]));

    let demo = r#"{"role": "rpc", "u": "x", "cmds": [
                    {"name": "step1", "fun": "echo", "args": ["first step"], "locs": []},
                    {"name": "step2", "fun": "echo", "args": ["step1"], "locs": []}]}"#;
    assert_eq!(readme(demo), map(&[("step2", s("first step"))]));
}

#[test]
fn all_results_on_request() {
    let p = plan(
        r#"[{"name": "|first", "fun": "echo", "args": ["hi"]},
            {"name": "|second", "fun": "echo", "args": ["|first"]}]"#,
    );
    let expected = map(&[("|first", s("hi")), ("|second", s("hi"))]);
    assert_eq!(execute(p, true).expect("runs"), expected);
}

#[test]
fn no_level_barrier_and_misuse_is_harmless() {
    // a -> b, and a slow independent c: b starts as soon as a is done.
    let p = plan(
        r#"[{"name": "a", "fun": "f"}, {"name": "b", "fun": "f", "args": ["a"]},
            {"name": "c", "fun": "f"}]"#,
    );
    let mut run = Run::new(p);
    assert!(run.complete(0, s("early")).is_empty(), "not handed out yet");
    assert_eq!(run.ready(), vec![0, 2]);
    assert!(run.ready().is_empty());
    let not_ready = run.inputs(1).expect_err("a has no result");
    assert_eq!(
        not_ready.to_string(),
        "command `b`: reference `a`: `a` has no result yet"
    );
    assert_eq!(
        run.inputs(9).expect_err("no such command").to_string(),
        "no command with index 9 (the workflow has 3)"
    );
    assert_eq!(run.complete(0, s("A")), vec![1]);
    assert!(
        run.complete(0, s("again")).is_empty(),
        "duplicate answer ignored"
    );
    assert!(run.complete(1, s("B")).is_empty());
    assert_eq!(run.pending(), vec![2]);
    assert!(!run.is_done());
    assert_eq!(
        run.result(false),
        map(&[("b", s("B"))]),
        "c has no result yet"
    );
    assert_eq!(run.result_of(0), Some(&s("A")));
    run.complete(2, s("C"));
    assert!(run.is_done() && run.pending().is_empty());
    assert_eq!(run.into_result(false), map(&[("b", s("B")), ("c", s("C"))]));
}

// ---------------------------------------------------------------- properties

/// A random DAG over logical commands 0..n (edges only to earlier ones), placed at
/// shuffled positions in the workflow, with each reference written in one of four ways.
#[derive(Debug, Clone)]
struct Dag {
    /// Per logical command, `(target, style)` of each reference, targets earlier.
    refs: Vec<Vec<(usize, u8)>>,
    /// Logical command -> position in the workflow.
    pos: Vec<usize>,
    names: Vec<String>,
}

fn dag(max: usize) -> impl Strategy<Value = Dag> {
    (1..=max).prop_flat_map(|n| {
        let refs = prop::collection::vec(prop::collection::vec((any::<usize>(), 0..4u8), 0..5), n);
        let pos = Just((0..n).collect::<Vec<_>>()).prop_shuffle();
        let names = prop::collection::vec("[a-z|]{1,4}", n);
        (refs, pos, names).prop_map(|(refs, pos, names)| Dag {
            refs: refs
                .into_iter()
                .enumerate()
                .map(|(i, r)| {
                    r.into_iter()
                        .filter(|_| i > 0)
                        .map(|(t, st)| (t % i.max(1), st))
                        .collect()
                })
                .collect(),
            pos,
            // The suffix keeps names unique; none has a dot, so `name.id` is a path.
            names: names
                .into_iter()
                .enumerate()
                .map(|(i, p)| format!("{p}#{i}"))
                .collect(),
        })
    })
}

impl Dag {
    /// Logical command `i`, its references written by `refer(target, style)`.
    fn command(&self, i: usize, refer: impl Fn(usize, u8) -> Value) -> Command {
        let mut cmd = Command::new(self.names[i].clone(), "f", vec![s("data"), 7.into()]);
        for (k, &(t, style)) in self.refs[i].iter().enumerate() {
            match style {
                0 | 2 => cmd.args.push(refer(t, style)),
                1 => cmd
                    .args
                    .push(Value::Array(vec![map(&[("x", refer(t, style))])])),
                _ => cmd.kwargs.push((format!("k{k}"), refer(t, style))),
            }
        }
        cmd
    }

    fn workflow(&self) -> Workflow {
        let text = |t: usize, style: u8| match style {
            2 => s(&format!("{}.id", self.names[t])),
            _ => s(&self.names[t]),
        };
        let mut cmds = vec![None; self.pos.len()];
        for i in 0..self.pos.len() {
            cmds[self.pos[i]] = Some(self.command(i, text));
        }
        cmds.into_iter().flatten().collect()
    }

    /// What logical command `i` returns: `{"id": i}`.
    fn result(i: usize) -> Value {
        map(&[("id", i.into())])
    }

    fn expected_inputs(&self, i: usize) -> Inputs {
        let value = |t: usize, style: u8| match style {
            2 => Value::from(t),
            _ => Dag::result(t),
        };
        let cmd = self.command(i, value);
        Inputs {
            args: cmd.args,
            kwargs: cmd.kwargs,
        }
    }

    fn deps(&self, i: usize) -> impl Iterator<Item = usize> + '_ {
        self.refs[i].iter().map(|&(t, _)| t)
    }

    /// Logical commands nobody references.
    fn sinks(&self) -> Vec<usize> {
        let n = self.pos.len();
        (0..n)
            .filter(|&t| (0..n).all(|i| self.deps(i).all(|d| d != t)))
            .collect()
    }
}

proptest! {
    #[test]
    fn random_dags_run_each_command_once_after_its_inputs(
        d in dag(40),
        choices in prop::collection::vec(any::<usize>(), 40),
    ) {
        let n = d.pos.len();
        let logical: Vec<usize> = {
            let mut l = vec![0; n];
            for (i, &p) in d.pos.iter().enumerate() { l[p] = i; }
            l
        };
        let plan = Plan::new(d.workflow()).expect("a DAG plans");
        let mut seen = vec![false; n];
        for &p in plan.order() {
            prop_assert!(d.deps(logical[p]).all(|t| seen[d.pos[t]]));
            seen[p] = true;
        }
        prop_assert!(seen.iter().all(|&x| x));

        let mut run = Run::new(plan);
        let mut handed = vec![0; n];
        let mut completed = vec![false; n];
        let mut pool = Vec::new();
        let mut hand_out = |new: Vec<usize>, completed: &[bool], pool: &mut Vec<usize>| {
            for p in new {
                handed[p] += 1;
                assert!(d.deps(logical[p]).all(|t| completed[d.pos[t]]), "handed out early");
                pool.push(p);
            }
        };
        hand_out(run.ready(), &completed, &mut pool);
        let mut step = 0;
        while !pool.is_empty() {
            let p = pool.swap_remove(choices[step % choices.len()] % pool.len());
            step += 1;
            prop_assert_eq!(run.inputs(p).expect("inputs"), d.expected_inputs(logical[p]));
            completed[p] = true;
            let new = run.complete(p, Dag::result(logical[p]));
            hand_out(new, &completed, &mut pool);
            prop_assert!(run.ready().is_empty());
        }
        prop_assert!(run.is_done());
        prop_assert!(handed.iter().all(|&h| h == 1), "handed out {:?}", handed);
        let mut sinks: Vec<usize> = d.sinks().into_iter().map(|i| d.pos[i]).collect();
        sinks.sort_unstable();
        let expected = sinks.iter().map(|&p| (s(&d.names[logical[p]]), Dag::result(logical[p])));
        prop_assert_eq!(run.into_result(false), Value::Map(expected.collect()));
    }

    #[test]
    fn a_back_edge_is_reported_as_a_real_cycle(
        d in dag(40),
        pick in any::<(usize, usize, u8)>(),
    ) {
        let n = d.pos.len();
        let mut d = d;
        // Commands that use `a`, directly or not; `a` itself if there are none.
        let a = pick.0 % n;
        let mut users = vec![false; n];
        users[a] = true;
        for i in a + 1..n {
            users[i] = d.deps(i).any(|t| users[t]);
        }
        users[a] = false;
        let later: Vec<usize> = (0..n).filter(|&i| users[i]).collect();
        let b = if later.is_empty() { a } else { later[pick.1 % later.len()] };
        d.refs[a].push((b, pick.2 % 4));

        let err = Plan::new(d.workflow()).expect_err("cyclic");
        let PlanError::Cycle { names } = err else { panic!("not a cycle: {err}") };
        let index: Vec<usize> = names
            .iter()
            .map(|name| d.names.iter().position(|x| x == name).expect("a command"))
            .collect();
        let mut distinct = index.clone();
        distinct.sort_unstable();
        distinct.dedup();
        prop_assert_eq!(distinct.len(), index.len());
        for k in 0..index.len() {
            let (from, to) = (index[k], index[(k + 1) % index.len()]);
            prop_assert!(d.deps(to).any(|t| t == from), "{} does not use {}", to, from);
        }
        let first = d.pos[index[0]];
        prop_assert!(index.iter().all(|&i| d.pos[i] >= first), "starts at the earliest");
    }
}

#[test]
fn unknown_fields_are_named_with_the_field_meant() {
    let e = parse_err(r#"[{"nam": "|a", "fun": "echo"}]"#);
    assert!(
        e.contains("unknown field `nam` (did you mean `name`?)"),
        "{e}"
    );
    let e = parse_err(r#"[{"name": "|a", "fun": "echo", "lcos": ["x"]}]"#);
    assert!(
        e.contains("`|a`") && e.contains("did you mean `locs`?"),
        "{e}"
    );
    let e = parse_err(r#"[{"name": "|a", "fun": "echo", "zzzzzz": 1}]"#);
    assert!(
        e.contains("unknown field `zzzzzz` (fields: name, fun"),
        "{e}"
    );
    // What newer MPREG clients add is accepted.
    let w = Workflow::from_json_str(
        r#"[{"name": "|a", "fun": "echo", "function_id": null, "routing_topic": "t"}]"#,
    )
    .expect("MPREG's optional fields parse");
    assert_eq!(w.cmds.len(), 1);
}
