use super::*;

use proptest::prelude::*;

fn pattern(text: &str) -> Pattern {
    match Pattern::parse(text) {
        Ok(p) => p,
        Err(e) => panic!("test pattern `{text}` refused: {e}"),
    }
}

fn pattern_error(text: &str) -> String {
    match Pattern::parse(text) {
        Ok(p) => panic!("`{p}` accepted as a pattern"),
        Err(e) => e.to_string(),
    }
}

fn topic_error(text: &str) -> String {
    match check_topic(text) {
        Ok(()) => panic!("`{text}` accepted as a topic"),
        Err(e) => e.to_string(),
    }
}

/// The definition of matching, written as directly as possible (exponential, for tiny inputs
/// only): the oracle for both matchers.
fn spec(pattern: &[&str], topic: &[&str]) -> bool {
    match pattern.split_first() {
        None => topic.is_empty(),
        Some((&"**", rest)) => (0..=topic.len()).any(|k| spec(rest, &topic[k..])),
        Some((&"*", rest)) => !topic.is_empty() && spec(rest, &topic[1..]),
        Some((literal, rest)) => topic.first() == Some(literal) && spec(rest, &topic[1..]),
    }
}

fn spec_str(pattern: &str, topic: &str) -> bool {
    let p: Vec<&str> = pattern.split('.').collect();
    let t: Vec<&str> = topic.split('.').collect();
    spec(&p, &t)
}

/// Trie of `patterns`, each entry keyed by its own text.
fn trie_of(patterns: &[&str]) -> Trie<String> {
    let mut trie = Trie::new();
    for p in patterns {
        trie.insert(&pattern(p), p.to_string());
    }
    trie
}

fn sorted_matches(trie: &Trie<String>, topic: &str) -> Vec<String> {
    let mut keys = trie.matches(topic);
    keys.sort();
    keys
}

/// Checks `pattern` against each topic with the direct matcher, the trie and the oracle.
fn assert_matching(pattern_text: &str, matching: &[&str], not_matching: &[&str]) {
    let p = pattern(pattern_text);
    let trie = trie_of(&[pattern_text]);
    for (topics, want) in [(matching, true), (not_matching, false)] {
        for topic in topics {
            assert_eq!(p.matches(topic), want, "{pattern_text} vs {topic} (direct)");
            assert_eq!(
                trie.has_match(topic),
                want,
                "{pattern_text} vs {topic} (trie)"
            );
            assert_eq!(spec_str(pattern_text, topic), want, "oracle disagrees");
            let reported = trie.matches(topic).len();
            assert_eq!(reported, usize::from(want), "{pattern_text} vs {topic}");
        }
    }
}

// ---- checking topics and patterns

#[test]
fn valid_topics_and_patterns() {
    for t in [
        "a",
        "sensors.kitchen.temp",
        "a-b_c.d:e/f",
        "café.température",
        "x.y.z.w",
    ] {
        assert_eq!(check_topic(t), Ok(()), "{t}");
        assert_eq!(pattern(t).as_str(), t);
    }
    for p in ["*", "**", "a.*", "**.b", "a.**.b.*", "**.**", "*.*.**"] {
        assert_eq!(pattern(p).to_string(), p);
    }
}

#[test]
fn empty_segments_are_refused_with_their_number() {
    assert_eq!(
        pattern_error("a..b"),
        "bad pattern `a..b`: segment 2 is empty"
    );
    assert_eq!(pattern_error(".a"), "bad pattern `.a`: segment 1 is empty");
    assert_eq!(pattern_error("a."), "bad pattern `a.`: segment 2 is empty");
    assert_eq!(pattern_error("."), "bad pattern `.`: segment 1 is empty");
    assert_eq!(
        topic_error("a.b..c"),
        "bad topic `a.b..c`: segment 3 is empty"
    );
    assert_eq!(topic_error(""), "bad topic ``: it is empty");
    assert_eq!(pattern_error(""), "bad pattern ``: it is empty");
}

#[test]
fn wildcards_must_be_whole_segments() {
    assert_eq!(
        pattern_error("a.b*"),
        "bad pattern `a.b*`: segment 2 `b*` mixes a wildcard with text"
    );
    assert_eq!(
        pattern_error("**b.c"),
        "bad pattern `**b.c`: segment 1 `**b` mixes a wildcard with text"
    );
    assert_eq!(
        pattern_error("a.***"),
        "bad pattern `a.***`: segment 2 `***` mixes a wildcard with text"
    );
    assert_eq!(
        topic_error("a.b*c"),
        "bad topic `a.b*c`: segment 2 `b*c` mixes a wildcard with text"
    );
}

#[test]
fn topics_are_literal() {
    assert_eq!(
        topic_error("a.*"),
        "bad topic `a.*`: `*` is a wildcard; publish to literal topics only"
    );
    assert_eq!(
        topic_error("**"),
        "bad topic `**`: `**` is a wildcard; publish to literal topics only"
    );
    let err = check_topic("a.**.b").unwrap_err();
    assert_eq!(err.subject(), Subject::Topic);
    assert_eq!(
        err.reason(),
        &Reason::WildcardInTopic {
            index: 2,
            wildcard: "**"
        }
    );
}

#[test]
fn whitespace_and_control_characters_are_refused() {
    assert_eq!(
        topic_error("a.b c"),
        "bad topic `a.b c`: segment 2 `b c` contains whitespace (U+0020)"
    );
    assert_eq!(
        topic_error("a\n.b"),
        "bad topic `a\\n.b`: segment 1 `a\\n` contains a control character (U+000A)"
    );
    assert_eq!(
        pattern_error("x.\u{7}"),
        "bad pattern `x.\\u{7}`: segment 2 `\\u{7}` contains a control character (U+0007)"
    );
    assert_eq!(
        pattern_error("a.\u{a0}"),
        "bad pattern `a.\\u{a0}`: segment 2 `\\u{a0}` contains whitespace (U+00A0)"
    );
    assert_eq!(
        pattern_error("*. "),
        "bad pattern `*. `: segment 2 ` ` contains whitespace (U+0020)"
    );
}

#[test]
fn limits_are_named_in_the_error() {
    let long = "a".repeat(MAX_LEN + 1);
    let err = topic_error(&long);
    assert!(
        err.ends_with(": 1025 bytes is over the limit of 1024 bytes"),
        "{err}"
    );
    // The input is shown shortened, not all 1025 bytes.
    assert!(err.len() < 120, "{err}");
    assert!(err.contains(&format!("`{}…`", "a".repeat(48))), "{err}");
    assert_eq!(check_topic(&"a".repeat(MAX_LEN)), Ok(()));

    let many = vec!["s"; MAX_SEGMENTS + 1].join(".");
    let err = pattern_error(&many);
    assert!(
        err.ends_with(": 65 segments is over the limit of 64 segments"),
        "{err}"
    );
    let most = vec!["s"; MAX_SEGMENTS].join(".");
    assert_eq!(check_topic(&most), Ok(()));
    assert_eq!(Topic::parse(&most).map(|t| t.segment_count()), Ok(64));
}

#[test]
fn topic_segments() {
    let t = Topic::parse("ab.c.déf").unwrap();
    assert_eq!(t.as_str(), "ab.c.déf");
    assert_eq!(t.segment_count(), 3);
    let by_index: Vec<_> = (0..4).map(|i| t.segment(i)).collect();
    assert_eq!(by_index, [Some("ab"), Some("c"), Some("déf"), None]);
    assert!(t.segments().eq(["ab", "c", "déf"]));
}

#[test]
fn pattern_conversions() {
    let p: Pattern = "a.*.**".parse().unwrap();
    assert!(p
        .segments()
        .eq([Segment::Literal("a"), Segment::One, Segment::Many]));
    assert_eq!(String::from(p.clone()), "a.*.**");
    assert_eq!(Pattern::try_from(String::from("a.*.**")), Ok(p.clone()));
    assert!(Pattern::try_from(String::from("a..b")).is_err());
    let json = serde_json::to_string(&p).unwrap();
    assert_eq!(json, "\"a.*.**\"");
    assert_eq!(serde_json::from_str::<Pattern>(&json).unwrap(), p);
    let bad = serde_json::from_str::<Pattern>("\"a.b*\"").unwrap_err();
    assert!(bad.to_string().contains("segment 2 `b*` mixes"), "{bad}");
}

// ---- matching rules (direct matcher, trie and oracle together)

#[test]
fn literal_patterns_match_exactly() {
    assert_matching("a.b", &["a.b"], &["a", "a.b.c", "b.a", "a.c"]);
}

#[test]
fn one_matches_exactly_one_segment() {
    assert_matching("a.*", &["a.b", "a.zz"], &["a", "a.b.c", "b.b"]);
    assert_matching("*.b", &["a.b", "b.b"], &["b", "a.a.b"]);
    assert_matching("*", &["a", "b"], &["a.b"]);
    assert_matching("a.*.*", &["a.b.c"], &["a.b", "a.b.c.d"]);
}

#[test]
fn many_last_matches_zero_or_more() {
    assert_matching("a.**", &["a", "a.b", "a.b.c.d"], &["b", "b.a"]);
}

#[test]
fn many_first() {
    assert_matching("**.z", &["z", "a.z", "a.b.c.z"], &["z.a", "a"]);
}

#[test]
fn many_in_the_middle() {
    assert_matching("a.**.z", &["a.z", "a.b.z", "a.b.c.z"], &["a", "z", "a.z.b"]);
}

#[test]
fn many_alone_matches_everything() {
    assert_matching("**", &["a", "a.b", "x.y.z.w.v"], &[]);
}

#[test]
fn several_many() {
    assert_matching("a.**.**", &["a", "a.b", "a.b.b.c"], &["b.a"]);
    assert_matching("**.b.**", &["b", "a.b", "b.c", "a.b.b.c"], &["a.c", "a"]);
    assert_matching("**.*.**", &["a", "a.b.c"], &[]);
    assert_matching("*.**.*", &["a.b", "a.b.c.d"], &["a"]);
    assert_matching(
        "**.a.**.b.**",
        &["a.b", "x.a.y.b.z", "b.a.b"],
        &["b.a", "a.a"],
    );
}

#[test]
fn invalid_topics_match_nothing() {
    let trie = trie_of(&["**", "*", "*.*", "a.*"]);
    for topic in ["", "a..b", "a.*", "**", "a b", ".a"] {
        assert!(trie.matches(topic).is_empty(), "{topic:?}");
        assert!(!trie.has_match(topic));
        assert!(!pattern("**").matches(topic));
    }
}

// ---- the trie

#[test]
fn a_multi_path_pattern_is_reported_once() {
    let trie = trie_of(&["a.**.**", "**.b.**", "**.**.**.**"]);
    assert_eq!(
        sorted_matches(&trie, "a.b.b.c"),
        ["**.**.**.**", "**.b.**", "a.**.**"]
    );
}

#[test]
fn one_key_under_two_matching_patterns_is_reported_twice() {
    let mut trie = Trie::new();
    trie.insert(&pattern("a.*"), 7);
    trie.insert(&pattern("a.**"), 7);
    trie.insert(&pattern("b.*"), 7);
    assert_eq!(trie.matches("a.x"), [7, 7]);
    assert_eq!(trie.matches("b.x"), [7]);
    assert_eq!(trie.len(), 3);
}

#[test]
fn copies_are_counted_and_removed_one_at_a_time() {
    let p = pattern("a.*");
    let mut trie = Trie::new();
    trie.insert(&p, 1);
    trie.insert(&p, 1);
    trie.insert(&p, 2);
    assert_eq!((trie.len(), trie.count(&p, &1)), (3, 2));
    let mut keys = trie.matches("a.b");
    keys.sort();
    assert_eq!(keys, [1, 1, 2]);

    assert!(trie.remove(&p, &1));
    assert_eq!((trie.len(), trie.count(&p, &1)), (2, 1));
    let mut keys = trie.matches("a.b");
    keys.sort();
    assert_eq!(keys, [1, 2]);

    assert!(trie.remove(&p, &1));
    assert!(!trie.remove(&p, &1), "no copy left");
    assert_eq!(trie.matches("a.b"), [2]);
}

#[test]
fn remove_prunes_empty_nodes() {
    let mut trie = trie_of(&["a.b.c", "a.b"]);
    assert_eq!(trie.live_nodes(), 4);
    assert!(trie.remove(&pattern("a.b.c"), &"a.b.c".to_string()));
    assert_eq!(
        trie.live_nodes(),
        3,
        "only `c` goes: `a.b` still has an entry"
    );
    assert!(trie.remove(&pattern("a.b"), &"a.b".to_string()));
    assert_eq!(trie.live_nodes(), 1, "only the root is left");
    assert_eq!(trie.live_symbols(), 0, "no segment text kept");
    assert!(trie.is_empty());

    // Freed nodes are reused, and wildcard links are pruned too.
    let mut trie = trie_of(&["*.**.x", "*.**"]);
    assert!(trie.remove(&pattern("*.**.x"), &"*.**.x".to_string()));
    assert!(trie.remove(&pattern("*.**"), &"*.**".to_string()));
    assert_eq!(trie.live_nodes(), 1);
    trie.insert(&pattern("q.r"), "q.r".to_string());
    assert_eq!((trie.live_nodes(), trie.live_symbols()), (3, 2));
    assert_eq!(trie.matches("q.r"), ["q.r"]);
}

#[test]
fn segment_text_shared_by_edges_outlives_one_of_them() {
    let mut trie = trie_of(&["a.b", "b.a", "a.a"]);
    assert_eq!(trie.live_symbols(), 2);
    assert!(trie.remove(&pattern("a.b"), &"a.b".to_string()));
    assert!(trie.remove(&pattern("a.a"), &"a.a".to_string()));
    assert_eq!(trie.live_symbols(), 2, "`b.a` still uses both");
    assert_eq!(trie.matches("b.a"), ["b.a"]);
    assert!(trie.matches("a.b").is_empty());
    trie.insert(&pattern("c.a"), "c.a".to_string());
    assert_eq!(trie.live_symbols(), 3);
    assert_eq!(trie.matches("c.a"), ["c.a"]);
}

#[test]
fn remove_of_an_absent_entry_changes_nothing() {
    let mut trie = trie_of(&["a.b"]);
    assert!(!trie.remove(&pattern("a.b"), &"other".to_string()));
    assert!(!trie.remove(&pattern("a"), &"a.b".to_string()));
    assert!(!trie.remove(&pattern("a.b.c"), &"a.b".to_string()));
    assert!(!trie.remove(&pattern("a.*"), &"a.b".to_string()));
    assert_eq!((trie.len(), trie.live_nodes()), (1, 3));
}

#[test]
fn many_children_switch_to_a_map_and_back_out() {
    let names: Vec<String> = (0..50).map(|i| format!("w{i}")).collect();
    let mut trie = Trie::new();
    for (i, name) in names.iter().enumerate() {
        trie.insert(&pattern(&format!("root.{name}")), i);
    }
    for (i, name) in names.iter().enumerate() {
        assert_eq!(trie.matches(&format!("root.{name}")), [i]);
    }
    assert!(trie.matches("root.w50").is_empty());
    for (i, name) in names.iter().enumerate() {
        assert!(trie.remove(&pattern(&format!("root.{name}")), &i));
    }
    assert_eq!(trie.live_nodes(), 1);
}

#[test]
fn patterns_lists_every_copy() {
    let mut trie = trie_of(&["a.*", "a.**", "**", "a.b.c", "x"]);
    trie.insert(&pattern("a.*"), "again".into());
    trie.insert(&pattern("a.*"), "again".into());
    let mut listed: Vec<(String, String)> = trie
        .patterns()
        .map(|(p, k)| (p.to_string(), k.clone()))
        .collect();
    listed.sort();
    let want = [
        ("**", "**"),
        ("a.*", "a.*"),
        ("a.*", "again"),
        ("a.*", "again"),
        ("a.**", "a.**"),
        ("a.b.c", "a.b.c"),
        ("x", "x"),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(p, k)| (p.to_string(), k.to_string()))
        .collect();
    assert_eq!(listed, want);
    assert_eq!(listed.len(), trie.len());
    assert_eq!(Trie::<u8>::new().patterns().count(), 0);
}

#[test]
fn pathological_patterns_stay_polynomial() {
    // Without the memo this is C(64 + 8, 8) ≈ 1.1e10 paths; with it, a few thousand states.
    let stars = ["**"; 8].join(".");
    let many = format!("{stars}.x");
    let trie = trie_of(&[&many, "**.**.**.**.x", "**.*.**.*.**.*.**"]);
    let mut topic = vec!["a"; MAX_SEGMENTS - 1];
    topic.push("x");
    let topic = topic.join(".");
    assert_eq!(trie.matches(&topic).len(), 3);
    assert!(pattern(&many).matches(&topic));
    let miss = vec!["a"; MAX_SEGMENTS].join(".");
    assert_eq!(sorted_matches(&trie, &miss), ["**.*.**.*.**.*.**"]);
    assert!(!pattern(&many).matches(&miss));
}

#[test]
fn has_match_stops_early_and_agrees() {
    let trie = trie_of(&["a.**", "a.b", "*.b"]);
    assert!(trie.has_match("a.b"));
    assert!(trie.has_match("a"));
    assert!(!trie.has_match("b.c"));
    assert!(!Trie::<u8>::new().has_match("a"));
}

// ---- properties

fn segment_from(alphabet: &'static [&'static str]) -> impl Strategy<Value = &'static str> {
    prop::sample::select(alphabet)
}

fn pattern_text() -> impl Strategy<Value = String> {
    prop::collection::vec(segment_from(&["a", "b", "c", "*", "**"]), 1..=6)
        .prop_map(|segments| segments.join("."))
}

fn topic_text() -> impl Strategy<Value = String> {
    prop::collection::vec(segment_from(&["a", "b", "c"]), 1..=6)
        .prop_map(|segments| segments.join("."))
}

/// What the trie should report for `topic`, from the entries stored: a sorted multiset.
fn model_matches(model: &[(String, u8)], topic: &str) -> Vec<(String, u8)> {
    let mut want: Vec<_> = model
        .iter()
        .filter(|(p, _)| pattern(p).matches(topic))
        .cloned()
        .collect();
    want.sort();
    want
}

fn trie_matches(trie: &Trie<(String, u8)>, topic: &str) -> Vec<(String, u8)> {
    let mut got = trie.matches(topic);
    got.sort();
    got
}

fn assert_trie_is_model(trie: &Trie<(String, u8)>, model: &[(String, u8)], topics: &[String]) {
    for topic in topics {
        let want = model_matches(model, topic);
        assert_eq!(trie_matches(trie, topic), want, "topic {topic}");
        assert_eq!(trie.has_match(topic), !want.is_empty(), "topic {topic}");
    }
    assert_eq!(trie.len(), model.len());
    let mut listed: Vec<_> = trie
        .patterns()
        .map(|(p, (text, key))| {
            assert_eq!(p.as_str(), text);
            (text.clone(), *key)
        })
        .collect();
    listed.sort();
    let mut stored = model.to_vec();
    stored.sort();
    assert_eq!(listed, stored);
}

proptest! {
    #[test]
    fn direct_matcher_follows_the_definition(p in pattern_text(), t in topic_text()) {
        prop_assert_eq!(pattern(&p).matches(&t), spec_str(&p, &t), "{} vs {}", p, t);
    }

    #[test]
    fn trie_reports_what_the_direct_matcher_does(
        entries in prop::collection::vec((pattern_text(), 0u8..3), 0..40),
        topics in prop::collection::vec(topic_text(), 1..20),
        removals in prop::collection::vec((any::<prop::sample::Index>(), any::<bool>()), 0..40),
    ) {
        // Keys are (pattern text, tag): reported keys name their entry, and repeats of the
        // same entry exercise the copy count.
        let mut trie = Trie::new();
        let mut model: Vec<(String, u8)> = Vec::new();
        for (p, tag) in &entries {
            let key = (p.clone(), *tag);
            trie.insert(&pattern(p), key.clone());
            model.push(key);
        }
        assert_trie_is_model(&trie, &model, &topics);

        for (which, present) in removals {
            if present && !model.is_empty() {
                let key = model.swap_remove(which.index(model.len()));
                prop_assert!(trie.remove(&pattern(&key.0), &key));
            } else {
                // An entry that was never stored (tag 9): nothing to remove.
                let p = &entries.get(which.index(entries.len().max(1))).map_or("a", |e| &e.0);
                prop_assert!(!trie.remove(&pattern(p), &(p.to_string(), 9)));
            }
            assert_trie_is_model(&trie, &model, &topics);
        }
        if model.is_empty() {
            prop_assert_eq!(trie.live_nodes(), 1, "everything pruned");
            prop_assert_eq!(trie.live_symbols(), 0, "every segment forgotten");
        }
    }
}

/// Any text: refused with a message, or accepted and then matched without a panic.
fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[ab.* \n\u{e9}\u{a0}]{0,12}",
        "([ab]{1,3}|\\*|\\*\\*)(\\.([ab]{1,3}|\\*|\\*\\*)){0,70}",
    ]
}

proptest! {
    #[test]
    fn any_input_is_refused_cleanly_or_accepted(text in any_text()) {
        let trie = trie_of(&["**", "a.*", "*.**.b", "a"]);
        match Pattern::parse(&text) {
            Ok(p) => {
                prop_assert_eq!(p.as_str(), text.as_str());
                prop_assert_eq!(p.to_string().parse::<Pattern>(), Ok(p.clone()));
            }
            Err(e) => {
                let message = e.to_string();
                prop_assert!(message.starts_with("bad pattern `"));
                prop_assert!(!message.chars().any(char::is_control), "loggable: {:?}", message);
            }
        }
        match check_topic(&text) {
            Ok(()) => prop_assert!(trie.has_match(&text), "`**` matches every topic"),
            Err(e) => {
                prop_assert!(e.to_string().starts_with("bad topic `"));
                prop_assert!(trie.matches(&text).is_empty());
            }
        }
    }
}
