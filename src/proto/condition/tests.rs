//! Tests for the grammar and the table. The table cases port MARO's
//! `tests/communication/test_registry_table.py` to our semantics, then pin each deliberate
//! difference from MARO.

use proptest::prelude::*;

use super::*;

// ---- helpers ---------------------------------------------------------------------------

fn cond(text: &str) -> Condition {
    match Condition::parse(text) {
        Ok(c) => c,
        Err(e) => panic!("{text:?} should parse: {e}"),
    }
}

fn unit(source: &str, tag: &str, amount: Amount) -> Condition {
    match Condition::unit(source, tag, amount) {
        Ok(c) => c,
        Err(e) => panic!("{source}:{tag}:{amount} should build: {e}"),
    }
}

fn err(text: &str) -> ConditionError {
    match Condition::parse(text) {
        Ok(c) => panic!("{text:?} should be rejected, parsed as {c}"),
        Err(e) => e,
    }
}

/// Peer names and roles owned by the test, viewed as `Peer`s with [`view`].
type Members = Vec<(String, String)>;

fn members(role: &str, n: usize) -> Members {
    (1..=n)
        .map(|i| (format!("{role}-{i}"), role.to_owned()))
        .collect()
}

fn view(members: &Members) -> Vec<Peer<'_>> {
    members
        .iter()
        .map(|(name, role)| Peer { name, role })
        .collect()
}

fn peer<'a>(name: &'a str, role: &'a str) -> Peer<'a> {
    Peer { name, role }
}

/// The messages of one firing, by value.
fn msgs(firing: &Firing<u32>) -> Vec<u32> {
    firing.messages.iter().map(|c| c.msg).collect()
}

/// A table with one handler for `condition`.
fn table(condition: &str) -> (Table<u32>, HandlerId) {
    let mut t = Table::new(64);
    let id = t.add(cond(condition));
    (t, id)
}

// ---- grammar: accepted forms -----------------------------------------------------------

#[test]
fn parses_a_unit_event() {
    let c = cond("worker:update:60%");
    let Shape::Unit(u) = c.shape() else {
        panic!("expected a unit, got {c:?}");
    };
    assert_eq!(
        (u.source(), u.tag(), u.amount()),
        ("worker", "update", Amount::Percent(60))
    );
    assert_eq!(cond("*:*:3").units()[0].amount(), Amount::Count(3));
}

#[test]
fn and_binds_tighter_than_or() {
    let (a, b, c) = (cond("a:t:1"), cond("b:t:1"), cond("c:t:1"));
    assert_eq!(
        cond("a:t:1 | b:t:1 & c:t:1"),
        a.clone().or(b.clone().and(c.clone()))
    );
    assert_eq!(cond("(a:t:1 | b:t:1) & c:t:1"), a.or(b).and(c));
}

#[test]
fn whitespace_is_allowed_around_operators_and_parens() {
    let spaced = cond("  ( a:t:1|b:t:2 )\t&\n c:t:3 ");
    assert_eq!(spaced, cond("(a:t:1 | b:t:2) & c:t:3"));
    assert_eq!(spaced.to_string(), "(a:t:1 | b:t:2) & c:t:3");
}

#[test]
fn same_operator_nesting_is_flattened() {
    let flat = cond("a:t:1 & b:t:1 & c:t:1");
    assert_eq!(cond("(a:t:1 & b:t:1) & c:t:1"), flat);
    assert_eq!(cond("a:t:1 & (b:t:1 & c:t:1)"), flat);
    assert_eq!(cond("((a:t:1))"), cond("a:t:1"));
    assert!(matches!(flat.shape(), Shape::All(parts) if parts.len() == 3));
}

#[test]
fn display_round_trips_and_parenthesizes_only_or_inside_and() {
    for text in [
        "worker:update:60%",
        "a:t:1 & b:t:2",
        "a:t:1 | b:t:2 & c:t:3",
        "(a:t:1 | b:t:2) & c:t:3",
        "(a:t:1 | b:t:2) & (c:t:3 | d:t:4 & e:t:5)",
        "é-node:ünïcode:100%",
    ] {
        assert_eq!(cond(text).to_string(), text);
        assert_eq!(cond(&cond(text).to_string()), cond(text));
    }
}

#[test]
fn builder_equals_parser_and_via_from_str() {
    let built = unit("worker", "update", Amount::Percent(60))
        .and(unit("master", "stop", Amount::Count(1)).or(unit("*", "*", Amount::Count(2))));
    let parsed: Condition = "worker:update:60% & (master:stop:1 | *:*:2)"
        .parse()
        .unwrap();
    assert_eq!(built, parsed);
    let u = Unit::new("w", "t", Amount::Count(7)).unwrap();
    assert_eq!(Condition::from(u), cond("w:t:7"));
}

#[test]
fn nesting_up_to_the_limit_parses() {
    let depth = parse::MAX_DEPTH;
    let text = format!("{}a:t:1{}", "(".repeat(depth), ")".repeat(depth));
    assert_eq!(cond(&text), cond("a:t:1"));
}

// ---- grammar: errors name the offending part --------------------------------------------

#[test]
fn error_messages_quote_the_offending_part() {
    let cases = [
        (
            "worker:update:0",
            "amount `0` must be at least 1 (column 15)",
        ),
        ("a:b", "unit event `a:b` needs source:tag:amount (column 1)"),
        ("a:b:1:2", "unit event `a:b:1:2` needs source:tag:amount"),
        ("x:y:1 & (a:b:1", "unbalanced `(` at column 9"),
        ("a:b:1)", "unbalanced `)` at column 6"),
        ("a:b:1 & & c:d:1", "unexpected `&` at column 9"),
        ("a:b:1 && c:d:1", "unexpected `&` at column 8"),
        ("a:b:1 c:d:1", "unexpected `c:d:1` at column 7"),
        ("()", "unexpected `)` at column 2"),
        (
            "a:b:1 &",
            "expected a unit event or `(` but the condition ends at column 8",
        ),
        ("a:b:150%", "amount `150%` is over 100%"),
        ("a:b:99999999999999999999999%", "is over 100%"),
        ("a:b:x", "amount `x` is not a number (column 5)"),
        ("a:b:%", "amount `%` is not a number"),
        ("a:b:+3", "amount `+3` is not a number"),
        ("a:b:0%", "amount `0%` must be at least 1%"),
        ("a:b:00", "amount `00` must be at least 1"),
        ("a:b:-3", "amount `-3` must not be negative"),
        ("a:b:1.5", "amount `1.5` is not a whole number"),
        ("a:b:2.5%", "amount `2.5%` is not a whole number"),
        (
            "a:b:4294967296",
            "amount `4294967296` is too large (at most 4294967295)",
        ),
        ("a:b:", "unit event `a:b:` has an empty amount (column 5)"),
        (":b:1", "unit event `:b:1` has an empty source (column 1)"),
        ("a::1", "unit event `a::1` has an empty tag (column 3)"),
        (
            "wor*:b:1",
            "source `wor*` may use `*` only on its own (column 4)",
        ),
        ("a:**:1", "tag `**` may use `*` only on its own (column 3)"),
        ("", "condition is empty"),
        (" \t ", "condition is empty"),
    ];
    for (input, expected) in cases {
        let e = err(input);
        let shown = e.to_string();
        let prefix = format!("bad condition {input:?}: ");
        assert!(shown.starts_with(&prefix), "{input:?}: {shown}");
        assert!(shown.contains(expected), "{input:?}: {shown}");
        assert_eq!(e.input(), input);
    }
}

#[test]
fn the_brief_example_reads_exactly() {
    assert_eq!(
        err("worker:update:0").to_string(),
        "bad condition \"worker:update:0\": amount `0` must be at least 1 (column 15)"
    );
}

#[test]
fn errors_in_compound_conditions_point_at_the_bad_unit() {
    let e = err("a:b:1 & (c:d:2 | e:f:0%)");
    assert_eq!(e.kind(), &ErrorKind::Zero { text: "0%".into() });
    assert_eq!(e.column(), 22);
}

#[test]
fn columns_count_characters_not_bytes() {
    assert_eq!(err("é:b:0").column(), 5);
    assert_eq!(err("éé & x").column(), 1);
}

#[test]
fn nesting_beyond_the_limit_is_an_error_not_a_stack_overflow() {
    let depth = parse::MAX_DEPTH + 1;
    let text = format!("{}a:t:1{}", "(".repeat(depth), ")".repeat(depth));
    assert_eq!(
        err(&text).kind(),
        &ErrorKind::TooDeep {
            max: parse::MAX_DEPTH
        }
    );
    assert!(Condition::parse(&"(".repeat(100_000)).is_err());
}

#[test]
fn builder_validates_like_the_parser() {
    let cases = [
        (
            "worker",
            "update",
            Amount::Count(0),
            "amount `0` must be at least 1",
        ),
        (
            "w",
            "t",
            Amount::Percent(0),
            "amount `0%` must be at least 1%",
        ),
        ("w", "t", Amount::Percent(150), "amount `150%` is over 100%"),
        ("", "t", Amount::Count(1), "has an empty source"),
        ("w", "", Amount::Count(1), "has an empty tag"),
        (
            "w",
            "a b",
            Amount::Count(1),
            "tag `a b` must not contain ' '",
        ),
        (
            "a:b",
            "t",
            Amount::Count(1),
            "source `a:b` must not contain ':'",
        ),
        (
            "w",
            "x|y",
            Amount::Count(1),
            "tag `x|y` must not contain '|'",
        ),
        ("w\n", "t", Amount::Count(1), "must not contain '\\n'"),
        (
            "w*",
            "t",
            Amount::Count(1),
            "source `w*` may use `*` only on its own",
        ),
    ];
    for (source, tag, amount, expected) in cases {
        let e = Condition::unit(source, tag, amount).unwrap_err();
        assert!(e.to_string().contains(expected), "{e}");
        assert_eq!(e.input(), format!("{source}:{tag}:{amount}"));
    }
    assert_eq!(
        Condition::unit("worker", "update", Amount::Count(0))
            .unwrap_err()
            .to_string(),
        err("worker:update:0").to_string()
    );
}

// ---- table: MARO's register-table cases, in our semantics --------------------------------

#[test]
fn single_unit_fires_on_a_matching_message_only() {
    let (mut t, id) = table("worker:update:1");
    let ws = members("worker", 2);
    let peers = view(&ws);
    assert!(t.offer(peers[0], "other", 1, &peers).is_empty());
    assert!(t
        .offer(peer("master-1", "master"), "update", 2, &peers)
        .is_empty());
    let fired = t.offer(peers[1], "update", 3, &peers);
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].handler, id);
    assert_eq!(msgs(&fired[0]), [3]);
    assert_eq!(&*fired[0].messages[0].sender, "worker-2");
    assert_eq!(&*fired[0].messages[0].tag, "update");
    assert_eq!(t.pending(id), 0);
}

#[test]
fn star_source_and_star_tag_match_anything() {
    let (mut t, _) = table("*:*:2");
    let peers = [peer("a", "x"), peer("b", "y")];
    assert!(t.offer(peers[0], "t1", 1, &peers).is_empty());
    let fired = t.offer(peers[1], "t2", 2, &peers);
    assert_eq!(msgs(&fired[0]), [1, 2]);
}

#[test]
fn fifty_percent_of_ten_peers_needs_five_distinct_senders() {
    let (mut t, id) = table("worker:update:50%");
    let ws = members("worker", 10);
    let peers = view(&ws);
    // Four senders, three messages each: twelve messages, but only four senders.
    for round in 0..3 {
        for (i, p) in peers.iter().take(4).enumerate() {
            let msg = (round * 10 + i) as u32;
            assert!(t.offer(*p, "update", msg, &peers).is_empty());
        }
    }
    let fired = t.offer(peers[4], "update", 99, &peers);
    assert_eq!(fired.len(), 1);
    // The first message of each of the five senders, in arrival order.
    assert_eq!(msgs(&fired[0]), [0, 1, 2, 3, 99]);
    // Leftovers: the later messages of the first four senders wait for the next firing.
    assert_eq!(t.pending(id), 8);
}

#[test]
fn and_needs_both_sides_and_consumes_both() {
    let (mut t, id) = table("a:x:1 & b:y:2");
    let peers = [peer("a", "r"), peer("b", "r")];
    assert!(t.offer(peers[1], "y", 1, &peers).is_empty());
    assert!(t.offer(peers[0], "x", 2, &peers).is_empty());
    let fired = t.offer(peers[1], "y", 3, &peers);
    assert_eq!(msgs(&fired[0]), [1, 2, 3]);
    assert_eq!(t.pending(id), 0);
}

#[test]
fn or_takes_its_first_satisfied_alternative_in_order() {
    let (mut t, id) = table("(a:t:1 & c:go:1) | (b:t:1 & c:go:1)");
    let peers = [peer("a", "r"), peer("b", "r"), peer("c", "r")];
    assert!(t.offer(peers[1], "t", 1, &peers).is_empty());
    assert!(t.offer(peers[0], "t", 2, &peers).is_empty());
    // Both alternatives hold now; the first one wins and only its messages are consumed.
    let fired = t.offer(peers[2], "go", 3, &peers);
    assert_eq!(fired.len(), 1);
    assert_eq!(msgs(&fired[0]), [2, 3]);
    assert_eq!(
        t.pending(id),
        1,
        "b's message stays for the other alternative"
    );
}

#[test]
fn or_falls_through_to_a_later_alternative() {
    let (mut t, id) = table("a:t:2 | b:t:1");
    let peers = [peer("a", "r"), peer("b", "r")];
    assert!(t.offer(peers[0], "t", 1, &peers).is_empty());
    let fired = t.offer(peers[1], "t", 2, &peers);
    assert_eq!(msgs(&fired[0]), [2]);
    assert_eq!(
        t.pending(id),
        1,
        "the losing alternative's queue is untouched"
    );
}

#[test]
fn nested_parentheses_evaluate_as_written() {
    let (mut t, _) = table("(a:t:1 | b:t:1) & c:t:2");
    let peers = [peer("a", "r"), peer("b", "r"), peer("c", "r")];
    assert!(t.offer(peers[1], "t", 1, &peers).is_empty());
    assert!(t.offer(peers[2], "t", 2, &peers).is_empty());
    let fired = t.offer(peers[2], "t", 3, &peers);
    assert_eq!(msgs(&fired[0]), [1, 2, 3]);
}

#[test]
fn one_message_feeds_several_handlers_in_handler_order() {
    let mut t = Table::new(8);
    let first = t.add(cond("*:t:1"));
    let untouched = t.add(cond("other:t:1"));
    let last = t.add(cond("w:t:1"));
    let peers = [peer("w", "r")];
    let fired = t.offer(peers[0], "t", 7, &peers);
    let handlers: Vec<HandlerId> = fired.iter().map(|f| f.handler).collect();
    assert_eq!(handlers, [first, last]);
    assert!(fired.iter().all(|f| msgs(f) == [7]));
    assert_eq!(t.pending(untouched), 0);
}

#[test]
fn leftovers_are_kept_for_the_next_firing() {
    let (mut t, id) = table("w:t:2");
    let peers = [peer("w", "r")];
    let mut fired = Vec::new();
    for m in 1..=5 {
        fired.extend(t.offer(peers[0], "t", m, &peers));
    }
    let batches: Vec<Vec<u32>> = fired.iter().map(msgs).collect();
    assert_eq!(batches, [vec![1, 2], vec![3, 4]]);
    assert_eq!(t.pending(id), 1);
}

#[test]
fn a_message_matching_several_units_of_a_handler_is_delivered_once() {
    let (mut t, id) = table("w:t:2 & *:t:1");
    let peers = [peer("w", "r")];
    assert!(t.offer(peers[0], "t", 1, &peers).is_empty());
    let fired = t.offer(peers[0], "t", 2, &peers);
    assert_eq!(msgs(&fired[0]), [1, 2]);
    assert_eq!(
        t.pending(id),
        0,
        "consumed messages leave every queue of the handler"
    );
}

#[test]
fn a_backlog_drains_in_one_call() {
    // 100% of three workers; two of them send three messages each, then the third leaves.
    let (mut t, id) = table("worker:t:100%");
    let ws = members("worker", 3);
    let peers = view(&ws);
    for m in 0..3 {
        assert!(t.offer(peers[0], "t", 10 + m, &peers).is_empty());
        assert!(t.offer(peers[1], "t", 20 + m, &peers).is_empty());
    }
    let fired = t.reevaluate(&peers[..2]);
    let batches: Vec<Vec<u32>> = fired.iter().map(msgs).collect();
    assert_eq!(batches, [vec![10, 20], vec![11, 21], vec![12, 22]]);
    assert_eq!(t.pending(id), 0);
    assert!(t.reevaluate(&peers[..2]).is_empty());
}

// ---- table: deliberate differences from MARO --------------------------------------------

#[test]
fn source_matches_role_or_name_prefix_never_substring() {
    let peers = [peer("worker-3", "gpu"), peer("alpha", "worker")];
    let (mut by_prefix, _) = table("work:t:1");
    assert_eq!(by_prefix.offer(peers[0], "t", 1, &peers).len(), 1);
    let (mut by_role, _) = table("worker:t:1");
    assert_eq!(by_role.offer(peers[1], "t", 2, &peers).len(), 1);
    let (mut by_substring, id) = table("orker:t:1");
    assert!(by_substring.offer(peers[0], "t", 3, &peers).is_empty());
    assert!(by_substring.offer(peers[1], "t", 4, &peers).is_empty());
    assert_eq!(by_substring.pending(id), 0, "not even queued");
}

#[test]
fn sixty_percent_of_five_workers_fires_at_three_distinct_workers_not_two() {
    let (mut t, _) = table("worker:update:60%");
    let ws = members("worker", 5);
    let peers = view(&ws);
    // MARO counts messages: three from one worker would satisfy it there.
    for m in 0..3 {
        assert!(t.offer(peers[0], "update", m, &peers).is_empty());
    }
    assert!(t.offer(peers[1], "update", 10, &peers).is_empty());
    let fired = t.offer(peers[2], "update", 20, &peers);
    assert_eq!(msgs(&fired[0]), [0, 10, 20]);
}

#[test]
fn a_worker_leaving_lowers_the_count_and_reevaluate_fires() {
    let (mut t, _) = table("worker:update:60%");
    let ws = members("worker", 5);
    let peers = view(&ws);
    assert!(t.offer(peers[0], "update", 1, &peers).is_empty());
    assert!(t.offer(peers[1], "update", 2, &peers).is_empty());
    // Four workers: ceil(2.4) = 3 still needed.
    assert!(t.reevaluate(&peers[..4]).is_empty());
    // Three workers: ceil(1.8) = 2, which workers 1 and 2 provide.
    let fired = t.reevaluate(&peers[..3]);
    assert_eq!(msgs(&fired[0]), [1, 2]);
}

#[test]
fn percent_counts_only_live_senders_but_count_keeps_departed_ones() {
    let ws = members("worker", 5);
    let all = view(&ws);
    let without_first: Vec<Peer<'_>> = all[1..].to_vec();

    let (mut pct, id) = table("worker:t:60%");
    pct.offer(all[0], "t", 1, &all);
    pct.offer(all[1], "t", 2, &all);
    // worker-1 leaves: n = 4, so three live senders are needed; its message does not count.
    assert!(pct.offer(all[2], "t", 3, &without_first).is_empty());
    let fired = pct.offer(all[3], "t", 4, &without_first);
    assert_eq!(msgs(&fired[0]), [2, 3, 4]);
    assert_eq!(
        pct.pending(id),
        1,
        "the departed sender's message stays queued"
    );

    let (mut count, _) = table("worker:t:2");
    count.offer(all[0], "t", 1, &all);
    let fired = count.offer(all[1], "t", 2, &without_first);
    assert_eq!(msgs(&fired[0]), [1, 2]);
}

#[test]
fn percent_with_no_matching_peer_never_fires_and_count_is_not_capped() {
    let peers = [peer("a", "r"), peer("b", "r")];
    let (mut pct, _) = table("ghost:t:1%");
    assert!(pct.offer(peer("ghost", "g"), "t", 1, &peers).is_empty());
    assert!(pct.reevaluate(&peers).is_empty());

    let (mut count, _) = table("*:t:5");
    let fired: Vec<_> = (1..=5)
        .flat_map(|m| count.offer(peers[0], "t", m, &peers))
        .collect();
    assert_eq!(
        msgs(&fired[0]),
        [1, 2, 3, 4, 5],
        "five messages from two peers"
    );
}

#[test]
fn messages_to_self_count_for_count_but_not_percent() {
    let me = peer("me", "worker");
    let others = [peer("w", "worker")];
    let (mut pct, _) = table("worker:t:100%");
    assert!(pct.offer(me, "t", 1, &others).is_empty());
    let (mut count, _) = table("worker:t:1");
    assert_eq!(count.offer(me, "t", 1, &others).len(), 1);
}

// ---- table: bounds and bookkeeping -----------------------------------------------------

#[test]
fn overflow_drops_the_oldest_and_counts_it() {
    let mut t = Table::new(2);
    let id = t.add(cond("a:t:1 & b:t:1"));
    let peers = [peer("a", "r"), peer("b", "r")];
    for m in 1..=3 {
        assert!(t.offer(peers[0], "t", m, &peers).is_empty());
    }
    assert_eq!(t.dropped(id), 1);
    let fired = t.offer(peers[1], "t", 4, &peers);
    assert_eq!(msgs(&fired[0]), [2, 4]);
    assert_eq!(t.pending(id), 1);
}

#[test]
fn dropped_counts_only_messages_lost_from_every_queue() {
    // Queue bounds: `w:t:1` holds 2 (the capacity), `*:t:3` holds 3 (its amount);
    // `never:z:1` keeps the handler from firing.
    let mut t = Table::new(2);
    let id = t.add(cond("w:t:1 & *:t:3 & never:z:1"));
    let peers = [peer("w", "r")];
    for m in 1..=3 {
        t.offer(peers[0], "t", m, &peers);
    }
    assert_eq!(
        t.dropped(id),
        0,
        "message 1 left `w:t:1` but `*:t:3` still holds it"
    );
    t.offer(peers[0], "t", 4, &peers);
    assert_eq!(t.dropped(id), 1);
    assert_eq!(t.pending(id), 3);
}

#[test]
fn an_amount_above_the_capacity_is_still_reachable() {
    let mut t = Table::new(2);
    let id = t.add(cond("w:t:5"));
    let peers = [peer("w", "r")];
    let fired: Vec<_> = (1..=5)
        .flat_map(|m| t.offer(peers[0], "t", m, &peers))
        .collect();
    assert_eq!(msgs(&fired[0]), [1, 2, 3, 4, 5]);
    assert_eq!(t.dropped(id), 0);
}

#[test]
fn a_zero_capacity_table_still_holds_one_message() {
    let mut t = Table::new(0);
    t.add(cond("a:t:1 & b:t:1"));
    let peers = [peer("a", "r"), peer("b", "r")];
    t.offer(peers[0], "t", 1, &peers);
    assert_eq!(t.offer(peers[1], "t", 2, &peers).len(), 1);
}

#[test]
fn removed_handlers_stop_firing_and_ids_are_not_reused() {
    let mut t = Table::new(4);
    let a = t.add(cond("*:t:1"));
    assert_eq!(t.condition(a), Some(&cond("*:t:1")));
    assert!(t.remove(a));
    assert!(!t.remove(a));
    assert!(t.is_empty());
    let b = t.add(cond("*:t:1"));
    assert_ne!(a, b);
    assert_eq!((t.dropped(a), t.pending(a), t.condition(a)), (0, 0, None));
    let fired = t.offer(peer("x", "r"), "t", 1, &[]);
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].handler, b);
    assert_eq!(t.len(), 1);
}

#[test]
fn a_member_listed_twice_is_still_one_sender() {
    let (mut t, _) = table("w:t:100%");
    let peers = [peer("w-1", "r"), peer("w-1", "r"), peer("w-2", "r")];
    // n = 3 as listed, so three distinct live senders are needed. w-3 has left, but its
    // message makes three distinct senders queued, so the live ones are examined.
    assert!(t.offer(peers[0], "t", 1, &peers).is_empty());
    assert!(t.offer(peers[0], "t", 2, &peers).is_empty());
    assert!(t.offer(peer("w-3", "r"), "t", 3, &peers).is_empty());
    assert!(t.offer(peers[2], "t", 4, &peers).is_empty());
}

#[test]
fn handlers_added_later_see_only_later_messages() {
    let mut t = Table::new(8);
    let peers = [peer("w", "r")];
    t.offer(peers[0], "t", 1, &peers);
    let id = t.add(cond("w:t:1"));
    assert_eq!(t.pending(id), 0);
    assert!(t.reevaluate(&peers).is_empty());
    assert_eq!(msgs(&t.offer(peers[0], "t", 2, &peers)[0]), [2]);
}

#[test]
fn sender_names_are_swept_as_members_come_and_go() {
    // Two fresh members per round; every round must fire with exactly their messages,
    // through many sweeps of the name interner (which compares senders by address).
    let (mut t, id) = table("x:t:100%");
    for round in 0..2_000u32 {
        let (a, b) = (format!("x-{round}-a"), format!("x-{round}-b"));
        let peers = [peer(&a, "r"), peer(&b, "r")];
        assert!(t.offer(peers[0], "t", 2 * round, &peers).is_empty());
        let fired = t.offer(peers[1], "t", 2 * round + 1, &peers);
        assert_eq!(msgs(&fired[0]), [2 * round, 2 * round + 1]);
    }
    assert_eq!(t.pending(id), 0);
    assert!(t.interned() <= 130, "interned {}", t.interned());
}

#[test]
fn the_table_can_move_to_another_thread() {
    fn assert_send<T: Send>() {}
    assert_send::<Table<String>>();
    assert_send::<Firing<String>>();
    assert_send::<ConditionError>();
}

// ---- properties ------------------------------------------------------------------------

fn arb_name() -> impl Strategy<Value = String> {
    prop_oneof![Just("*".to_owned()), "[a-zA-Z0-9_.é-][a-zA-Z0-9_.%é-]{0,6}"]
}

fn arb_amount() -> impl Strategy<Value = Amount> {
    prop_oneof![
        (1u32..=u32::MAX).prop_map(Amount::Count),
        (1u8..=100).prop_map(Amount::Percent),
    ]
}

fn arb_condition() -> impl Strategy<Value = Condition> {
    let leaf = (arb_name(), arb_name(), arb_amount())
        .prop_map(|(s, t, a)| Condition::unit(s, t, a).expect("generated parts are valid"));
    leaf.prop_recursive(4, 24, 4, |inner| {
        (prop::collection::vec(inner, 2..4), any::<bool>()).prop_map(|(parts, all)| {
            let mut parts = parts.into_iter();
            let first = parts.next().expect("at least two parts");
            parts.fold(first, |acc, p| if all { acc.and(p) } else { acc.or(p) })
        })
    })
}

/// One step of a random table session.
#[derive(Debug, Clone)]
enum Op {
    Offer { sender: usize, tag: usize },
    Leave(usize),
    Join(usize),
    Reevaluate,
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..7usize, 0..2usize).prop_map(|(sender, tag)| Op::Offer { sender, tag }),
        1 => (0..6usize).prop_map(Op::Leave),
        1 => (0..6usize).prop_map(Op::Join),
        1 => Just(Op::Reevaluate),
    ]
}

proptest! {
    #[test]
    fn display_then_parse_is_identity(c in arb_condition()) {
        prop_assert_eq!(Condition::parse(&c.to_string()), Ok(c));
    }

    #[test]
    fn parse_never_panics_on_arbitrary_text(text in any::<String>()) {
        if let Ok(c) = Condition::parse(&text) {
            prop_assert_eq!(Condition::parse(&c.to_string()), Ok(c));
        }
    }

    #[test]
    fn parse_never_panics_on_grammar_soup(text in "[a-c*:%&|() 0-9.-]{0,40}") {
        match Condition::parse(&text) {
            Ok(c) => prop_assert_eq!(Condition::parse(&c.to_string()), Ok(c)),
            Err(e) => prop_assert!(e.to_string().starts_with("bad condition")),
        }
    }

    /// Random sessions against a naive model of the semantics: the same firings, drops
    /// and backlogs; no message delivered twice; every call leaves the table quiescent.
    #[test]
    fn table_matches_the_model(
        conditions in prop::collection::vec(arb_table_condition(), 1..5),
        ops in prop::collection::vec(arb_op(), 0..80),
        capacity in 1usize..6,
    ) {
        // The last name is never a live member: it stands for a sender that has left.
        let names = ["worker-1", "worker-2", "worker-3", "master-1", "sensor-1", "worker-4", "worker-9"];
        let roles = ["worker", "worker", "worker", "master", "sensor", "worker", "worker"];
        let mut live = [true, true, true, true, true, true, false];
        let mut t = Table::new(capacity);
        let mut m = model::Model::new(capacity);
        let ids: Vec<HandlerId> = conditions.into_iter().map(|c| { m.add(&c); t.add(c) }).collect();
        let mut seen: Vec<std::collections::HashSet<u32>> = vec![Default::default(); ids.len()];
        for (next, op) in (0u32..).zip(ops) {
            match op {
                Op::Leave(i) => live[i] = false,
                Op::Join(i) => live[i] = true,
                _ => {}
            }
            let peers: Vec<Peer<'_>> = (0..6)
                .filter(|&i| live[i])
                .map(|i| peer(names[i], roles[i]))
                .collect();
            // As the runtime does: membership changes are followed by a re-evaluation.
            let (fired, expected) = match op {
                Op::Offer { sender, tag } => {
                    let from = peer(names[sender], roles[sender]);
                    let tag = ["t", "u"][tag];
                    (t.offer(from, tag, next, &peers), m.offer(from, tag, next, &peers))
                }
                Op::Leave(_) | Op::Join(_) | Op::Reevaluate => (t.reevaluate(&peers), m.reevaluate(&peers)),
            };
            let got: Vec<(usize, Vec<u32>)> = fired
                .iter()
                .map(|f| (ids.iter().position(|&id| id == f.handler).expect("known handler"), msgs(f)))
                .collect();
            prop_assert_eq!(&got, &expected, "after {:?}", op);
            for (h, batch) in &got {
                for &msg in batch {
                    prop_assert!(seen[*h].insert(msg), "message {} delivered twice", msg);
                }
            }
            for (h, &id) in ids.iter().enumerate() {
                prop_assert_eq!((t.dropped(id), t.pending(id)), m.counters(h), "handler {}", h);
            }
            prop_assert!(t.reevaluate(&peers).is_empty());
        }
    }
}

/// A deliberately naive reference for the table's semantics: names compared as strings,
/// every evaluation a fresh scan, no interning, counts or caches.
mod model {
    use super::super::{Amount, Condition, Peer, Shape, Unit};

    pub struct Model {
        capacity: usize,
        handlers: Vec<Handler>,
    }

    struct Handler {
        condition: Condition,
        /// Per unit, left to right: queued (message id, sender name).
        queues: Vec<(Unit, Vec<(u32, String)>)>,
        dropped: u64,
    }

    impl Model {
        pub fn new(capacity: usize) -> Self {
            Model {
                capacity,
                handlers: Vec::new(),
            }
        }

        pub fn add(&mut self, condition: &Condition) {
            let queues = condition
                .units()
                .into_iter()
                .map(|u| (u.clone(), Vec::new()))
                .collect();
            self.handlers.push(Handler {
                condition: condition.clone(),
                queues,
                dropped: 0,
            });
        }

        pub fn counters(&self, h: usize) -> (u64, usize) {
            let handler = &self.handlers[h];
            let mut ids: Vec<u32> = handler
                .queues
                .iter()
                .flat_map(|(_, q)| q.iter().map(|m| m.0))
                .collect();
            ids.sort_unstable();
            ids.dedup();
            (handler.dropped, ids.len())
        }

        pub fn offer(
            &mut self,
            from: Peer<'_>,
            tag: &str,
            id: u32,
            peers: &[Peer<'_>],
        ) -> Vec<(usize, Vec<u32>)> {
            let mut out = Vec::new();
            for (h, handler) in self.handlers.iter_mut().enumerate() {
                let mut matched = false;
                for u in 0..handler.queues.len() {
                    let unit = &handler.queues[u].0;
                    if !(unit.matches_tag(tag) && unit.matches_peer(&from)) {
                        continue;
                    }
                    matched = true;
                    let bound = match unit.amount() {
                        Amount::Count(n) => n as usize,
                        Amount::Percent(p) => need(unit, p, peers).unwrap_or(0),
                    }
                    .max(self.capacity);
                    while handler.queues[u].1.len() >= bound {
                        let (old, _) = handler.queues[u].1.remove(0);
                        if !handler
                            .queues
                            .iter()
                            .any(|(_, q)| q.iter().any(|m| m.0 == old))
                        {
                            handler.dropped += 1;
                        }
                    }
                    handler.queues[u].1.push((id, from.name.to_owned()));
                }
                if matched {
                    handler.drain(h, peers, &mut out);
                }
            }
            out
        }

        pub fn reevaluate(&mut self, peers: &[Peer<'_>]) -> Vec<(usize, Vec<u32>)> {
            let mut out = Vec::new();
            for (h, handler) in self.handlers.iter_mut().enumerate() {
                handler.drain(h, peers, &mut out);
            }
            out
        }
    }

    impl Handler {
        fn drain(&mut self, h: usize, peers: &[Peer<'_>], out: &mut Vec<(usize, Vec<u32>)>) {
            loop {
                let mut next = 0;
                let Some(mut picked) = self.eval(&self.condition, &mut next, peers) else {
                    return;
                };
                picked.sort_unstable();
                picked.dedup();
                for (_, q) in &mut self.queues {
                    q.retain(|m| !picked.contains(&m.0));
                }
                out.push((h, picked));
            }
        }

        /// The ids a satisfied `condition` takes; `next` walks the units left to right.
        fn eval(
            &self,
            condition: &Condition,
            next: &mut usize,
            peers: &[Peer<'_>],
        ) -> Option<Vec<u32>> {
            match condition.shape() {
                Shape::Unit(_) => {
                    *next += 1;
                    self.eval_unit(*next - 1, peers)
                }
                Shape::All(parts) => {
                    let results: Vec<_> = parts.iter().map(|p| self.eval(p, next, peers)).collect();
                    results
                        .into_iter()
                        .collect::<Option<Vec<_>>>()
                        .map(|v| v.concat())
                }
                Shape::Any(parts) => {
                    let results: Vec<_> = parts.iter().map(|p| self.eval(p, next, peers)).collect();
                    results.into_iter().flatten().next()
                }
            }
        }

        fn eval_unit(&self, u: usize, peers: &[Peer<'_>]) -> Option<Vec<u32>> {
            let (unit, queue) = &self.queues[u];
            match unit.amount() {
                Amount::Count(n) => (queue.len() >= n as usize)
                    .then(|| queue.iter().take(n as usize).map(|m| m.0).collect()),
                Amount::Percent(p) => {
                    let k = need(unit, p, peers)?;
                    let mut senders: Vec<&str> = Vec::new();
                    let mut ids = Vec::new();
                    for (id, sender) in queue {
                        let live = peers
                            .iter()
                            .any(|peer| peer.name == sender && unit.matches_peer(peer));
                        if live && !senders.contains(&sender.as_str()) && senders.len() < k {
                            senders.push(sender);
                            ids.push(*id);
                        }
                    }
                    (senders.len() == k).then_some(ids)
                }
            }
        }
    }

    /// max(1, ceil(p·n/100)) over the live peers matching `unit`; `None` when n = 0.
    fn need(unit: &Unit, p: u8, peers: &[Peer<'_>]) -> Option<usize> {
        let n = peers.iter().filter(|peer| unit.matches_peer(peer)).count();
        (n > 0).then(|| ((n * p as usize).div_ceil(100)).max(1))
    }
}

fn arb_table_condition() -> impl Strategy<Value = Condition> {
    let source = prop_oneof![Just("*"), Just("worker"), Just("work"), Just("master")];
    let tag = prop_oneof![Just("*"), Just("t"), Just("u")];
    let amount = prop_oneof![
        (1u32..4).prop_map(Amount::Count),
        (1u8..=100).prop_map(Amount::Percent)
    ];
    let leaf =
        (source, tag, amount).prop_map(|(s, t, a)| Condition::unit(s, t, a).expect("valid parts"));
    leaf.prop_recursive(3, 8, 3, |inner| {
        (inner.clone(), inner, any::<bool>())
            .prop_map(|(a, b, all)| if all { a.and(b) } else { a.or(b) })
    })
}
