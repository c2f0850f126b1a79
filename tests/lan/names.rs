//! Unique names (issue #12, DESIGN §3): `mpreg serve --name alpha` on host 3 while `alpha`
//! runs on host 1 is refused with an error naming host 1, and no view ever loses host 1's
//! `alpha`; once that `alpha` is killed, a new `alpha` on host 1 replaces the dead entry
//! within the detection budget.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{figure, ms, presence, wait_until, Lan, Member, Presence};

/// How long the duplicate may take to give up (it has to find the cluster first).
const REFUSE_LIMIT: Duration = Duration::from_secs(10);

/// Detection budget: a restarted `alpha` replaces the dead one within it (asserted).
const REPLACE_LIMIT: Duration = Duration::from_secs(3);

/// How long the views are watched after the duplicate gave up: a split would show by then.
const AFTER_REFUSAL: Duration = Duration::from_secs(3);

/// Asserts that `view` (of the member on host `of`) lists `alpha` alive, on host 1, with id
/// `id`, and `beta`.
fn check_view(lan: &Lan, of: usize, view: &[Member], id: &Value) {
    let alpha = view.iter().find(|m| m.name == "alpha");
    let alpha = alpha.unwrap_or_else(|| panic!("host {of}'s view lost alpha: {view:?}"));
    assert_eq!(
        presence(view, "alpha"),
        Presence::Alive,
        "host {of}'s view: {view:?}"
    );
    assert_eq!(
        alpha.json["host"],
        lan.host_name(1),
        "host {of}'s view has another alpha: {view:?}"
    );
    assert_eq!(&alpha.json["id"], id, "host {of}'s view: {view:?}");
    assert_eq!(
        presence(view, "beta"),
        Presence::Alive,
        "host {of}'s view: {view:?}"
    );
}

/// The views of both members, each asked from the other's host: alpha's (host 1) from
/// host 2, beta's (host 2) from host 1.
fn views(lan: &Lan) -> [(usize, Vec<Member>); 2] {
    [(1, lan.view(2, 1)), (2, lan.view(1, 2))]
}

#[test]
#[ignore = "needs root (network namespaces): sudo -E cargo test --test lan -- --ignored"]
fn a_live_name_is_refused_and_a_dead_one_replaced() {
    let Some(lan) = Lan::new("names_unique", 3) else {
        return;
    };
    let mut alpha = lan.serve(1, "alpha", &[]);
    let _beta = lan.serve(2, "beta", &[]);
    let mut id = Value::Null;
    wait_until(Duration::from_secs(20), || {
        let view = lan.view(2, 2);
        let found = view.iter().find(|m| m.name == "alpha");
        id = found.map(|m| m.json["id"].clone()).unwrap_or(Value::Null);
        found.is_some() && presence(&view, "beta") == Presence::Alive
    });

    let mut dup = lan.spawn(
        3,
        &[
            "serve", "--name", "alpha", "--port", "7700", "--bind", "0.0.0.0",
        ],
        &[],
    );
    let start = Instant::now();
    let mut polls = 0;
    // Watch the views while the duplicate tries, then for a while after it gave up.
    let mut gave_up: Option<Instant> = None;
    loop {
        for (of, view) in views(&lan) {
            check_view(&lan, of, &view, &id);
        }
        polls += 1;
        if gave_up.is_none() && dup.has_exited() {
            gave_up = Some(Instant::now());
            figure(
                "duplicate_refused_ms",
                format!("{:.1}", ms(start.elapsed())),
            );
        }
        match gave_up {
            Some(t) if t.elapsed() > AFTER_REFUSAL => break,
            None => assert!(
                start.elapsed() < REFUSE_LIMIT,
                "the duplicate alpha on host 3 still runs after {REFUSE_LIMIT:?}\n{}",
                dup.logs()
            ),
            _ => {}
        }
    }
    figure("name_view_polls", polls);
    let status = dup.wait_exit(Duration::from_secs(1));
    let err = dup.stderr();
    assert!(!status.success(), "the duplicate must fail\n{}", dup.logs());
    assert!(
        err.contains("alpha") && err.contains(&lan.host_name(1)) && err.contains("taken"),
        "the error names the holder's host {}:\n{}",
        lan.host_name(1),
        dup.logs()
    );
    eprintln!("duplicate alpha on host 3: {}", err.trim());

    alpha.kill9();
    let restart = Instant::now();
    let _alpha = lan.serve(1, "alpha", &[]);
    wait_until(Duration::from_secs(30), || {
        let view = lan.view(1, 2);
        view.iter().any(|m| {
            m.name == "alpha"
                && m.json["id"] != id
                && m.json["host"] == lan.host_name(1)
                && presence(&view, "alpha") == Presence::Alive
        })
    });
    // From the restart's spawn: the new node's start-up counts.
    let t = restart.elapsed();
    figure(
        "name_replaced_ms",
        format!("{:.1} limit_ms={}", ms(t), REPLACE_LIMIT.as_millis()),
    );
    assert!(
        t < REPLACE_LIMIT,
        "the new alpha replaced the dead one after {t:?}"
    );
    let view = lan.view(2, 1);
    assert_eq!(
        presence(&view, "beta"),
        Presence::Alive,
        "new alpha's view: {view:?}"
    );
}
