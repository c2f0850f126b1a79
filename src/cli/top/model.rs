//! What `mpreg top` shows, computed from polls: per-node and per-function rates, the events
//! seen between two polls, and the orders the tables can be sorted in. Pure functions only,
//! so every figure on the screen is unit-tested.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use mpreg::{FunctionMetrics, MetricsSnapshot};
use serde::Serialize;

/// One member as one poll saw it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Seen {
    /// Node name.
    pub name: String,
    /// Host identity.
    pub host: String,
    /// Role.
    pub role: String,
    /// Membership state (`alive`, `suspect`).
    pub state: String,
    /// Functions its catalog offers, built-ins included (from the membership: known even
    /// when it is silent).
    pub functions: Vec<String>,
    /// Its `_metrics` answer; `None` when it did not answer in time.
    pub metrics: Option<MetricsSnapshot>,
    /// Polls in a row, this one included, that it did not answer (0 when it answered);
    /// counted by [`Session::update`].
    pub silent_polls: u32,
}

/// Every member at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Poll {
    /// When, since the `top` session started.
    pub at: Duration,
    /// The members, by the membership of the polling node.
    pub nodes: Vec<Seen>,
}

/// One row of the Nodes table; `None` is a figure the node did not give (shown as `?`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeRow {
    /// Node name.
    pub name: String,
    /// Host identity.
    pub host: String,
    /// Role.
    pub role: String,
    /// Membership state.
    pub state: String,
    /// Calls served per second over the last interval (user functions and `echo`; the
    /// `_` built-ins, which `top` itself calls, are left out).
    pub calls_per_s: Option<f64>,
    /// Calls running now.
    pub in_flight: Option<u64>,
    /// The p99 latency of its slowest function (the largest p99 among those it served).
    pub p99_us: Option<u64>,
    /// Publications per second over the last interval.
    pub pub_per_s: Option<f64>,
    /// Publications and messages dropped since it started (pub/sub + messaging queues).
    pub drops: Option<u64>,
}

/// One row of the Functions table: a function across every node that serves it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FunctionRow {
    /// Function name.
    pub function: String,
    /// Nodes that serve it.
    pub providers: usize,
    /// Calls per second, all providers together.
    pub calls_per_s: f64,
    /// Failed calls per second, all providers together.
    pub errors_per_s: f64,
    /// Median latency of the provider that served it most (since that provider started).
    pub p50_us: u64,
    /// 95th percentile, same provider.
    pub p95_us: u64,
    /// 99th percentile, same provider.
    pub p99_us: u64,
}

/// Both tables at one moment.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Tables {
    /// One row per member.
    pub nodes: Vec<NodeRow>,
    /// One row per user function (and `echo`/`echos`).
    pub functions: Vec<FunctionRow>,
}

/// Whether `top` shows this function: mpreg's own built-ins start with `_`.
pub fn is_shown(function: &str) -> bool {
    !function.starts_with('_')
}

/// Seconds between two answers of the same node: by the node's own clock when it moved
/// forward (network jitter does not skew the rate), else by the poll times. `None` when the
/// node restarted in between (its counters went back to zero).
fn seconds_between(prev: &MetricsSnapshot, cur: &MetricsSnapshot, polls: Duration) -> Option<f64> {
    if cur.uptime_ms < prev.uptime_ms {
        return None;
    }
    let by_node = Duration::from_millis(cur.uptime_ms - prev.uptime_ms);
    let dt = if by_node.is_zero() { polls } else { by_node };
    (!dt.is_zero()).then_some(dt.as_secs_f64())
}

/// `(cur - prev) / secs` to the hundredth, 0 for a counter that went backwards.
fn rate(prev: u64, cur: u64, secs: f64) -> f64 {
    let r = cur.saturating_sub(prev) as f64 / secs;
    (r * 100.0).round() / 100.0
}

/// Shown functions of one node.
fn shown(m: &MetricsSnapshot) -> impl Iterator<Item = (&String, &FunctionMetrics)> {
    m.functions.iter().filter(|(f, _)| is_shown(f))
}

/// The two answers of one node and the seconds between them, when both exist.
fn pair<'a>(
    prev: Option<&'a Poll>,
    cur: &'a Poll,
    seen: &'a Seen,
) -> Option<(&'a MetricsSnapshot, &'a MetricsSnapshot, f64)> {
    let now = seen.metrics.as_ref()?;
    let prev = prev?;
    let before = prev.nodes.iter().find(|s| s.name == seen.name)?;
    let before = before.metrics.as_ref()?;
    let secs = seconds_between(before, now, cur.at.saturating_sub(prev.at))?;
    Some((before, now, secs))
}

/// The Nodes and Functions tables of `cur`; rates need `prev` (the poll before), without it
/// they are `None` (nodes) or 0 (functions).
pub fn tables(prev: Option<&Poll>, cur: &Poll) -> Tables {
    Tables {
        nodes: cur.nodes.iter().map(|s| node_row(prev, cur, s)).collect(),
        functions: function_rows(prev, cur),
    }
}

fn node_row(prev: Option<&Poll>, cur: &Poll, seen: &Seen) -> NodeRow {
    let m = seen.metrics.as_ref();
    let rates = pair(prev, cur, seen).map(|(before, now, secs)| {
        let calls = |m: &MetricsSnapshot| shown(m).map(|(_, f)| f.calls).sum::<u64>();
        (
            rate(calls(before), calls(now), secs),
            rate(before.pubsub.published, now.pubsub.published, secs),
        )
    });
    NodeRow {
        name: seen.name.clone(),
        host: seen.host.clone(),
        role: seen.role.clone(),
        state: seen.state.clone(),
        calls_per_s: rates.map(|r| r.0),
        in_flight: m.map(|m| shown(m).map(|(_, f)| f.in_flight).sum()),
        p99_us: m.map(|m| {
            shown(m)
                .filter(|(_, f)| f.calls > 0)
                .map(|(_, f)| f.p99_us)
                .max()
                .unwrap_or(0)
        }),
        pub_per_s: rates.map(|r| r.1),
        drops: m.map(|m| m.pubsub.dropped + m.messaging.queue_drops),
    }
}

/// Per function, across nodes: providers are the nodes whose catalog or metrics list it;
/// rates add each provider's own rate; the p-values are those of the provider with the most
/// calls (latencies of different nodes cannot be merged from their quantiles, and the
/// busiest one is what most callers see).
fn function_rows(prev: Option<&Poll>, cur: &Poll) -> Vec<FunctionRow> {
    let mut rows: BTreeMap<&str, (FunctionRow, u64)> = BTreeMap::new();
    for seen in &cur.nodes {
        let mut names: BTreeSet<&str> = seen.functions.iter().map(String::as_str).collect();
        if let Some(m) = &seen.metrics {
            names.extend(m.functions.keys().map(String::as_str));
        }
        let pair = pair(prev, cur, seen);
        for name in names.into_iter().filter(|f| is_shown(f)) {
            let (row, most) = rows.entry(name).or_insert_with(|| (empty_row(name), 0));
            row.providers += 1;
            let Some(f) = seen.metrics.as_ref().and_then(|m| m.functions.get(name)) else {
                continue;
            };
            if let Some((before, _, secs)) = pair {
                let old = before.functions.get(name).cloned().unwrap_or_default();
                row.calls_per_s += rate(old.calls, f.calls, secs);
                row.errors_per_s += rate(old.errors, f.errors, secs);
            }
            if f.calls > *most || *most == 0 {
                *most = f.calls;
                (row.p50_us, row.p95_us, row.p99_us) = (f.p50_us, f.p95_us, f.p99_us);
            }
        }
    }
    rows.into_values().map(|(row, _)| row).collect()
}

fn empty_row(name: &str) -> FunctionRow {
    FunctionRow {
        function: name.to_string(),
        providers: 0,
        calls_per_s: 0.0,
        errors_per_s: 0.0,
        p50_us: 0,
        p95_us: 0,
        p99_us: 0,
    }
}

/// The column both tables are sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortKey {
    /// Calls per second, busiest first.
    #[default]
    Calls,
    /// Name, A to Z.
    Name,
    /// p99 latency, slowest first.
    P99,
    /// Errors per second (functions) or drops (nodes), most first.
    Errors,
}

impl SortKey {
    /// The next key, for the key that cycles through them.
    pub fn next(self) -> Self {
        match self {
            SortKey::Calls => SortKey::Name,
            SortKey::Name => SortKey::P99,
            SortKey::P99 => SortKey::Errors,
            SortKey::Errors => SortKey::Calls,
        }
    }

    /// What the footer calls it.
    pub fn label(self) -> &'static str {
        match self {
            SortKey::Calls => "calls/s",
            SortKey::Name => "name",
            SortKey::P99 => "p99",
            SortKey::Errors => "errors/drops",
        }
    }
}

/// Largest first, unknown (`None`) last.
fn desc<T: PartialOrd>(a: Option<T>, b: Option<T>) -> Ordering {
    match (a, b) {
        (Some(a), Some(b)) => b.partial_cmp(&a).unwrap_or(Ordering::Equal),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

/// Sorts the Nodes table by `key`, ties by name.
pub fn sort_nodes(rows: &mut [NodeRow], key: SortKey) {
    rows.sort_by(|a, b| {
        let by = match key {
            SortKey::Calls => desc(a.calls_per_s, b.calls_per_s),
            SortKey::Name => Ordering::Equal,
            SortKey::P99 => desc(a.p99_us, b.p99_us),
            SortKey::Errors => desc(a.drops, b.drops),
        };
        by.then_with(|| a.name.cmp(&b.name))
    });
}

/// Sorts the Functions table by `key`, ties by name.
pub fn sort_functions(rows: &mut [FunctionRow], key: SortKey) {
    rows.sort_by(|a, b| {
        let by = match key {
            SortKey::Calls => desc(Some(a.calls_per_s), Some(b.calls_per_s)),
            SortKey::Name => Ordering::Equal,
            SortKey::P99 => desc(Some(a.p99_us), Some(b.p99_us)),
            SortKey::Errors => desc(Some(a.errors_per_s), Some(b.errors_per_s)),
        };
        by.then_with(|| a.function.cmp(&b.function))
    });
}

/// Something that changed between two polls.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// When it was seen, ms since the `top` session started.
    pub at_ms: u64,
    /// `join`, `leave`, `down`, `suspect`, `alive`, `silent`, `answering` or `errors`.
    pub kind: &'static str,
    /// The node or function it is about.
    pub subject: String,
    /// One line for people.
    pub text: String,
}

/// Errors per second a function must reach, and at least double, to make an event.
const ERROR_JUMP: f64 = 1.0;

/// The events between two polls: members that appeared, disappeared, changed state or
/// stopped answering, and functions whose errors/s jumped (to at least 1/s and at least
/// double). A member that disappeared after it was suspected or had stopped answering for
/// two polls or more (a crash: SWIM takes seconds to declare it) is `down`; one that went
/// while alive and answering, or silent for one poll only (a node that shuts down stops
/// answering just before its goodbye), `leave`s. The membership counters do not tell them
/// apart: a graceful leave often counts as a SWIM `down` too.
pub fn events(
    prev: &Poll,
    cur: &Poll,
    prev_fns: &[FunctionRow],
    cur_fns: &[FunctionRow],
) -> Vec<Event> {
    let at_ms = cur.at.as_millis() as u64;
    let ev = |kind, subject: &str, text: String| Event {
        at_ms,
        kind,
        subject: subject.to_string(),
        text,
    };
    let mut out = Vec::new();
    for s in &cur.nodes {
        let Some(p) = prev.nodes.iter().find(|p| p.name == s.name) else {
            let host: String = s.host.chars().take(16).collect();
            let text = format!("{} joined ({} on {host})", s.name, s.role);
            out.push(ev("join", &s.name, text));
            continue;
        };
        if p.state != s.state {
            let kind = if s.state == "alive" {
                "alive"
            } else {
                "suspect"
            };
            out.push(ev(
                kind,
                &s.name,
                format!("{} is {} (was {})", s.name, s.state, p.state),
            ));
        }
        match (p.metrics.is_some(), s.metrics.is_some()) {
            (true, false) => out.push(ev(
                "silent",
                &s.name,
                format!("{} stopped answering", s.name),
            )),
            (false, true) => out.push(ev(
                "answering",
                &s.name,
                format!("{} answers again", s.name),
            )),
            _ => {}
        }
    }
    for p in &prev.nodes {
        if !cur.nodes.iter().any(|s| s.name == p.name) {
            let crashed = p.state != "alive" || p.silent_polls >= 2;
            let (kind, verb) = if !crashed {
                ("leave", "left")
            } else {
                ("down", "is down")
            };
            out.push(ev(kind, &p.name, format!("{} {verb}", p.name)));
        }
    }
    for f in cur_fns {
        let before = prev_fns
            .iter()
            .find(|p| p.function == f.function)
            .map_or(0.0, |p| p.errors_per_s);
        if f.errors_per_s >= ERROR_JUMP && f.errors_per_s >= 2.0 * before {
            let text = format!(
                "{}: {:.1} errors/s (was {before:.1})",
                f.function, f.errors_per_s
            );
            out.push(ev("errors", &f.function, text));
        }
    }
    out
}

/// The most recent events, oldest first, at most [`EventLog::CAP`].
#[derive(Debug, Clone, Default)]
pub struct EventLog {
    events: VecDeque<Event>,
}

impl EventLog {
    /// How many events are kept.
    pub const CAP: usize = 50;

    /// Adds events, forgetting the oldest beyond [`EventLog::CAP`].
    pub fn extend(&mut self, new: impl IntoIterator<Item = Event>) {
        for e in new {
            if self.events.len() == Self::CAP {
                self.events.pop_front();
            }
            self.events.push_back(e);
        }
    }

    /// Oldest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Event> + ExactSizeIterator {
        self.events.iter()
    }
}

/// What a `top` session remembers between polls: the last poll (for rates), the tables it
/// gave, recent events and the sort order.
#[derive(Debug, Default)]
pub struct Session {
    last: Option<Poll>,
    tables: Tables,
    events: EventLog,
    /// The sort column.
    pub sort: SortKey,
}

impl Session {
    /// Takes a new poll: new rates, and the events since the last one.
    pub fn update(&mut self, mut poll: Poll) {
        for s in poll.nodes.iter_mut().filter(|s| s.metrics.is_none()) {
            let before = self
                .last
                .as_ref()
                .and_then(|l| l.nodes.iter().find(|p| p.name == s.name));
            s.silent_polls = before.map_or(0, |p| p.silent_polls) + 1;
        }
        let tables = tables(self.last.as_ref(), &poll);
        if let Some(last) = &self.last {
            self.events.extend(events(
                last,
                &poll,
                &self.tables.functions,
                &tables.functions,
            ));
        }
        self.tables = tables;
        self.last = Some(poll);
    }

    /// Both tables in the sort order.
    pub fn sorted(&self) -> Tables {
        let mut t = self.tables.clone();
        sort_nodes(&mut t.nodes, self.sort);
        sort_functions(&mut t.functions, self.sort);
        t
    }

    /// Recent events.
    pub fn events(&self) -> &EventLog {
        &self.events
    }

    /// Members in the last poll.
    pub fn members(&self) -> usize {
        self.last.as_ref().map_or(0, |p| p.nodes.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fm(calls: u64, errors: u64, p99: u64) -> FunctionMetrics {
        FunctionMetrics {
            calls,
            errors,
            in_flight: 1,
            p50_us: p99 / 4,
            p95_us: p99 / 2,
            p99_us: p99,
            ..Default::default()
        }
    }

    fn seen(name: &str, uptime_ms: u64, fns: &[(&str, FunctionMetrics)], published: u64) -> Seen {
        let mut m = MetricsSnapshot {
            node: name.into(),
            uptime_ms,
            enabled: true,
            ..Default::default()
        };
        for (f, v) in fns {
            m.functions.insert(f.to_string(), v.clone());
        }
        m.pubsub.published = published;
        m.pubsub.dropped = 2;
        m.messaging.queue_drops = 3;
        Seen {
            name: name.into(),
            host: "h".into(),
            role: "server".into(),
            state: "alive".into(),
            functions: fns.iter().map(|(f, _)| f.to_string()).collect(),
            metrics: Some(m),
            silent_polls: 0,
        }
    }

    fn poll(at_ms: u64, nodes: Vec<Seen>) -> Poll {
        Poll {
            at: Duration::from_millis(at_ms),
            nodes,
        }
    }

    #[test]
    fn node_rates_come_from_deltas_over_the_node_clock_and_skip_builtins() {
        let p0 = poll(
            0,
            vec![seen(
                "n1",
                1_000,
                &[("echo", fm(100, 0, 50)), ("_metrics", fm(9, 0, 9_999))],
                10,
            )],
        );
        // The poll arrived 600 ms later, but the node's clock moved 500 ms: its clock wins.
        let p1 = poll(
            600,
            vec![seen(
                "n1",
                1_500,
                &[("echo", fm(150, 0, 80)), ("_metrics", fm(90, 0, 9_999))],
                20,
            )],
        );
        let t = tables(Some(&p0), &p1);
        let n = &t.nodes[0];
        assert_eq!(n.calls_per_s, Some(100.0));
        assert_eq!(n.pub_per_s, Some(20.0));
        assert_eq!(
            n.in_flight,
            Some(1),
            "built-ins' in-flight calls (top's own) are left out"
        );
        assert_eq!(n.p99_us, Some(80), "the built-ins' p99 is not the node's");
        assert_eq!(n.drops, Some(5));
    }

    #[test]
    fn without_a_previous_answer_rates_are_unknown() {
        let p1 = poll(
            500,
            vec![seen("n1", 1_500, &[("echo", fm(150, 0, 80))], 20)],
        );
        let t = tables(None, &p1);
        assert_eq!(t.nodes[0].calls_per_s, None);
        assert_eq!(t.nodes[0].in_flight, Some(1));
        assert_eq!(t.functions[0].calls_per_s, 0.0);
        let silent = Seen {
            metrics: None,
            ..p1.nodes[0].clone()
        };
        let t = tables(Some(&p1), &poll(1_000, vec![silent]));
        let n = &t.nodes[0];
        assert_eq!(
            (n.calls_per_s, n.in_flight, n.p99_us, n.drops),
            (None, None, None, None)
        );
        assert_eq!(
            t.functions[0].providers, 1,
            "a silent provider still counts from its catalog"
        );
    }

    #[test]
    fn a_restarted_node_has_no_rate_rather_than_a_negative_or_huge_one() {
        let p0 = poll(
            0,
            vec![seen("n1", 90_000, &[("echo", fm(1_000, 0, 50))], 0)],
        );
        let p1 = poll(500, vec![seen("n1", 400, &[("echo", fm(3, 0, 50))], 0)]);
        let t = tables(Some(&p0), &p1);
        assert_eq!(t.nodes[0].calls_per_s, None);
        assert_eq!(t.functions[0].calls_per_s, 0.0);
    }

    #[test]
    fn functions_add_rates_across_providers_and_take_the_busiest_providers_latency() {
        let p0 = poll(
            0,
            vec![
                seen(
                    "n1",
                    1_000,
                    &[("echo", fm(100, 0, 50)), ("work", fm(10, 0, 7_000))],
                    0,
                ),
                seen("n2", 1_000, &[("echo", fm(1_000, 10, 90))], 0),
            ],
        );
        let p1 = poll(
            500,
            vec![
                seen(
                    "n1",
                    1_500,
                    &[("echo", fm(150, 0, 60)), ("work", fm(10, 0, 7_000))],
                    0,
                ),
                seen("n2", 2_000, &[("echo", fm(1_200, 30, 95))], 0),
            ],
        );
        let mut t = tables(Some(&p0), &p1);
        sort_functions(&mut t.functions, SortKey::Calls);
        let echo = &t.functions[0];
        assert_eq!(echo.function, "echo");
        assert_eq!(echo.providers, 2);
        assert_eq!(echo.calls_per_s, 100.0 + 200.0);
        assert_eq!(echo.errors_per_s, 20.0);
        assert_eq!(
            (echo.p50_us, echo.p95_us, echo.p99_us),
            (23, 47, 95),
            "n2 served the most"
        );
        assert_eq!(t.functions[1].function, "work");
        assert_eq!(t.functions[1].calls_per_s, 0.0);
        assert!(t.functions.iter().all(|f| !f.function.starts_with('_')));
    }

    #[test]
    fn sorting_puts_unknowns_last_and_breaks_ties_by_name() {
        let row = |name: &str, calls: Option<f64>, p99: Option<u64>| NodeRow {
            name: name.into(),
            host: String::new(),
            role: String::new(),
            state: String::new(),
            calls_per_s: calls,
            in_flight: None,
            p99_us: p99,
            pub_per_s: None,
            drops: None,
        };
        let mut rows = vec![
            row("c", None, Some(5)),
            row("b", Some(1.0), None),
            row("a", Some(1.0), Some(9)),
            row("d", Some(7.0), Some(1)),
        ];
        sort_nodes(&mut rows, SortKey::Calls);
        let names = |r: &[NodeRow]| {
            r.iter()
                .map(|r| r.name.clone())
                .collect::<Vec<_>>()
                .join("")
        };
        assert_eq!(names(&rows), "dabc");
        sort_nodes(&mut rows, SortKey::P99);
        assert_eq!(names(&rows), "acdb");
        sort_nodes(&mut rows, SortKey::Name);
        assert_eq!(names(&rows), "abcd");
        assert_eq!(SortKey::Calls.next().next().next().next(), SortKey::Calls);
    }

    #[test]
    fn events_name_joins_leaves_downs_state_changes_silences_and_error_jumps() {
        let mut suspect = seen("n3", 1_000, &[], 0);
        suspect.state = "suspect".into();
        let mut silent = seen("n6", 1_000, &[], 0);
        silent.metrics = None;
        silent.silent_polls = 2;
        let mut shutting_down = seen("n7", 1_000, &[], 0);
        shutting_down.metrics = None;
        shutting_down.silent_polls = 1;
        let p0 = poll(
            0,
            vec![
                seen("n1", 1_000, &[], 0),
                seen("n2", 1_000, &[], 0),
                suspect,
                seen("n5", 1_000, &[], 0),
                silent,
                shutting_down,
            ],
        );
        let mut n5 = seen("n5", 1_500, &[], 0);
        n5.state = "suspect".into();
        n5.metrics = None;
        let n1 = seen("n1", 1_500, &[], 0);
        let p1 = poll(500, vec![n1, seen("n4", 10, &[], 0), n5]);
        let f = |errors_per_s: f64| FunctionRow {
            errors_per_s,
            ..empty_row("echo")
        };
        let got = events(&p0, &p1, &[f(1.0)], &[f(2.5)]);
        let kinds: Vec<(&str, &str)> = got.iter().map(|e| (e.kind, e.subject.as_str())).collect();
        assert_eq!(
            kinds,
            [
                ("join", "n4"),
                ("suspect", "n5"),
                ("silent", "n5"),
                ("leave", "n2"),
                ("down", "n3"),
                ("down", "n6"),
                ("leave", "n7"),
                ("errors", "echo")
            ]
        );
        assert_eq!(got[3].text, "n2 left");
        assert_eq!(
            got[5].text, "n6 is down",
            "it had stopped answering for two polls"
        );
        assert!(got.iter().all(|e| e.at_ms == 500));
        let jump = events(&p0, &p0, &[f(1.0)], &[f(2.5)]);
        assert_eq!(jump[0].text, "echo: 2.5 errors/s (was 1.0)");

        assert!(
            events(&p0, &p0, &[f(2.0)], &[f(3.0)]).is_empty(),
            "less than double is no jump"
        );
        assert!(
            events(&p0, &p0, &[f(0.0)], &[f(0.5)]).is_empty(),
            "below 1/s is noise"
        );
    }

    #[test]
    fn a_session_rates_its_second_poll_and_logs_what_changed_between_them() {
        let mut s = Session::default();
        s.update(poll(
            0,
            vec![seen("n1", 1_000, &[("echo", fm(0, 0, 50))], 0)],
        ));
        assert_eq!(s.sorted().nodes[0].calls_per_s, None);
        assert_eq!(
            s.events().iter().len(),
            0,
            "the first poll is the baseline, not joins"
        );
        s.update(poll(
            500,
            vec![
                seen("n1", 1_500, &[("echo", fm(50, 0, 50))], 0),
                seen("n2", 100, &[("echo", fm(400, 0, 50))], 0),
            ],
        ));
        let t = s.sorted();
        assert_eq!(t.nodes[0].calls_per_s, Some(100.0));
        assert_eq!(t.nodes[1].name, "n2", "no rate yet: sorted after");
        assert_eq!(s.members(), 2);
        let e: Vec<_> = s.events().iter().map(|e| e.text.as_str()).collect();
        assert_eq!(e, ["n2 joined (server on h)"]);
        s.sort = SortKey::Name;
        assert_eq!(s.sorted().nodes[0].name, "n1");
        let quiet = |at| {
            let mut n = seen("n2", 0, &[], 0);
            n.metrics = None;
            poll(at, vec![n])
        };
        s.update(quiet(1_000));
        s.update(quiet(1_500));
        s.update(poll(2_000, vec![]));
        let last = s.events().iter().last().unwrap();
        assert_eq!(last.text, "n2 is down", "silent for two polls, then gone");
    }

    #[test]
    fn the_event_log_keeps_the_latest_fifty() {
        let mut log = EventLog::default();
        log.extend((0..120).map(|i| Event {
            at_ms: i,
            kind: "join",
            subject: String::new(),
            text: String::new(),
        }));
        assert_eq!(log.iter().len(), EventLog::CAP);
        assert_eq!(log.iter().next().unwrap().at_ms, 70);
        assert_eq!(log.iter().last().unwrap().at_ms, 119);
    }
}
