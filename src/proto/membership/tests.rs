//! Small deterministic exchanges between a few memberships; the large-scale simulation
//! lives in `tests/simulation.rs`.

use super::*;

fn member(i: u64) -> Member {
    Member {
        addr: format!("10.0.{}.{}:7700", i / 256 % 256, i % 256)
            .parse()
            .unwrap(),
        id: i,
        name: format!("n{i}"),
        role: "node".into(),
        host: format!("h{i}"),
        started_ms: 1000,
        bump: 0,
    }
}

/// Delivers every datagram at once (no time passes) until nothing is left to send.
fn pump(nodes: &mut [Membership]) {
    loop {
        let mut sent = Vec::new();
        for n in nodes.iter_mut() {
            while let Some(d) = n.poll_transmit() {
                sent.push(d);
            }
            while n.poll_timer().is_some() {}
        }
        if sent.is_empty() {
            return;
        }
        for (to, data) in sent {
            if let Some(n) = nodes.iter_mut().find(|n| n.identity().addr == to) {
                let _ = n.handle_data(&data);
            }
        }
    }
}

fn drain(n: &mut Membership) -> Vec<Event> {
    std::iter::from_fn(|| n.poll_event()).collect()
}

#[test]
fn announce_joins_both_sides() {
    let mut nodes = vec![
        Membership::new(member(1), lan_config(3), 1),
        Membership::new(member(2), lan_config(3), 2),
    ];
    nodes[1].announce(member(1).addr).unwrap();
    pump(&mut nodes);
    assert_eq!(nodes[0].members(), vec![member(2)]);
    assert_eq!(nodes[1].members(), vec![member(1)]);
    assert!(drain(&mut nodes[0]).contains(&Event::Up(member(2))));
}

#[test]
fn leave_is_seen_as_down() {
    let mut nodes = vec![
        Membership::new(member(1), lan_config(3), 1),
        Membership::new(member(2), lan_config(3), 2),
    ];
    nodes[1].announce(member(1).addr).unwrap();
    pump(&mut nodes);
    drain(&mut nodes[0]);
    nodes[1].leave().unwrap();
    pump(&mut nodes);
    assert!(nodes[0].members().is_empty());
    assert_eq!(
        drain(&mut nodes[0]),
        vec![Event::Down(member(2)), Event::Idle]
    );
}

#[test]
fn catalog_versions_spread() {
    let mut nodes = vec![
        Membership::new(member(1), lan_config(3), 1),
        Membership::new(member(2), lan_config(3), 2),
    ];
    nodes[1].announce(member(1).addr).unwrap();
    pump(&mut nodes);
    drain(&mut nodes[0]);
    nodes[1].publish_catalog_version(7).unwrap();
    // Broadcasts ride along with the next gossip; force one round of it.
    nodes[1].gossip().unwrap();
    pump(&mut nodes);
    assert!(drain(&mut nodes[0]).contains(&Event::CatalogVersion { id: 2, version: 7 }));
}

/// Member `i` under `name`, started at `started_ms`.
fn named(i: u64, name: &str, started_ms: u64) -> Member {
    Member {
        name: name.into(),
        started_ms,
        ..member(i)
    }
}

#[test]
fn a_restarted_name_replaces_the_old_identity() {
    let mut a = Membership::new(member(1), lan_config(3), 1);
    let old = member(2);
    let new = named(3, &old.name, 2000);
    a.up(old.clone());
    drain(&mut a);
    a.up(new.clone());
    assert_eq!(a.members(), vec![new.clone()]);
    assert_eq!(
        drain(&mut a),
        vec![Event::Down(old.clone()), Event::Up(new.clone())]
    );
    // The old identity coming "up" again (stale gossip) stays hidden, silently.
    a.up(old.clone());
    assert_eq!(a.members(), vec![new.clone()]);
    assert!(drain(&mut a).is_empty());
    // SWIM then declares the dead predecessor down: it was not shown, so no event.
    a.down(&old);
    assert_eq!(a.members(), vec![new]);
    assert!(drain(&mut a).is_empty());
}

#[test]
fn an_older_namesake_comes_back_when_the_newer_one_goes() {
    let mut a = Membership::new(member(1), lan_config(3), 1);
    let real = named(2, "alpha", 1000);
    let dup = named(3, "alpha", 2000);
    a.up(real.clone());
    a.up(dup.clone());
    assert_eq!(a.members(), vec![dup.clone()]);
    drain(&mut a);
    // The duplicate stops: the real one, still alive in SWIM, is shown again at once.
    a.down(&dup);
    assert_eq!(a.members(), vec![real.clone()]);
    assert_eq!(
        drain(&mut a),
        vec![Event::Down(dup.clone()), Event::Up(real.clone())]
    );
    // And again: hiding is never permanent.
    a.up(dup.clone());
    a.down(&dup);
    assert_eq!(a.members(), vec![real.clone()]);
    assert_eq!(
        drain(&mut a),
        vec![
            Event::Down(real.clone()),
            Event::Up(dup.clone()),
            Event::Down(dup),
            Event::Up(real)
        ]
    );
}

#[test]
fn an_older_identity_arriving_late_stays_hidden_until_it_is_the_newest() {
    let mut a = Membership::new(member(1), lan_config(3), 1);
    let older = named(2, "alpha", 1000);
    let newer = named(3, "alpha", 2000);
    a.up(newer.clone());
    drain(&mut a);
    a.up(older.clone());
    assert!(drain(&mut a).is_empty(), "no Up for a hidden identity");
    a.down(&older);
    assert!(
        drain(&mut a).is_empty(),
        "no Down for something never shown"
    );
    a.up(older.clone());
    a.down(&newer);
    assert_eq!(
        drain(&mut a),
        vec![Event::Down(newer), Event::Up(older.clone())]
    );
    a.down(&older);
    assert_eq!(drain(&mut a), vec![Event::Down(older)]);
    assert!(a.members().is_empty());
}

#[test]
fn a_renewal_replaces_the_shown_identity_and_a_hidden_one_stays_silent() {
    let mut a = Membership::new(member(1), lan_config(3), 1);
    let older = named(2, "alpha", 1000);
    let newer = named(3, "alpha", 2000);
    a.up(older.clone());
    a.up(newer.clone());
    drain(&mut a);
    // The hidden process renews its identity: still older than `newer` (start first).
    let older_renewed = Member {
        bump: 1,
        ..older.clone()
    };
    a.up(older_renewed.clone());
    assert!(drain(&mut a).is_empty());
    // The stale first identity is not resurrected by an old notification.
    a.up(older);
    a.down(&newer);
    assert_eq!(
        drain(&mut a),
        vec![Event::Down(newer), Event::Up(older_renewed.clone())]
    );
    let renewed_again = Member {
        bump: 2,
        ..older_renewed.clone()
    };
    a.up(renewed_again.clone());
    assert_eq!(
        drain(&mut a),
        vec![Event::Down(older_renewed), Event::Up(renewed_again.clone())]
    );
    assert_eq!(a.members(), vec![renewed_again]);
}

#[test]
fn our_own_name_is_never_shown_and_a_newer_holder_is_reported() {
    let me = named(1, "alpha", 1500);
    let mut a = Membership::new(me, lan_config(3), 1);
    let older = named(2, "alpha", 1000);
    let newer = named(3, "alpha", 2000);
    a.up(older.clone());
    assert!(a.members().is_empty());
    assert!(drain(&mut a).is_empty());
    assert_eq!(a.holder_of("alpha"), Some(older.clone()));
    assert_eq!(a.name_holder(), None, "an older namesake does not hide us");
    a.up(newer.clone());
    assert!(a.members().is_empty());
    assert_eq!(a.name_holder(), Some(newer.clone()));
    a.down(&newer);
    assert_eq!(a.name_holder(), None);
    assert_eq!(a.holder_of("alpha"), Some(older));
    assert!(drain(&mut a).is_empty());
    // Any other name: the holder is what the view shows.
    let b = named(4, "beta", 1000);
    a.up(b.clone());
    assert_eq!(a.holder_of("beta"), Some(b));
    assert_eq!(a.holder_of("gamma"), None);
}

#[test]
fn churn_leaves_no_state_behind() {
    let mut a = Membership::new(member(1), lan_config(3), 1);
    for round in 0..1000u64 {
        let m = named(10 + round, &format!("n{}", round % 7), 1000 + round);
        a.up(m.clone());
        if round % 3 == 0 {
            let stale = named(5000 + round, &m.name, 0);
            a.up(stale.clone());
            a.down(&stale);
        }
        a.down(&m);
    }
    drain(&mut a);
    assert!(a.alive.is_empty(), "alive: {:?}", a.alive);
    assert!(a.shown.is_empty());
}

/// Joins `nodes[joiner]` through `nodes[0]`, then lets every node gossip twice so that
/// all of them know each other (the pump fires no timers).
fn join(nodes: &mut [Membership], joiner: usize) {
    let to = nodes[0].identity().addr;
    nodes[joiner].announce(to).unwrap();
    pump(nodes);
    for _ in 0..2 {
        for n in nodes.iter_mut() {
            n.gossip().unwrap();
        }
        pump(nodes);
    }
}

#[test]
fn a_duplicate_that_stops_gives_the_name_back_through_swim() {
    // The measured fault: a second `alpha` on another host, then stopped.
    let real = named(2, "alpha", 1000);
    let dup = named(3, "alpha", 2000);
    let mut nodes = vec![
        Membership::new(member(1), lan_config(3), 1),
        Membership::new(real.clone(), lan_config(3), 2),
        Membership::new(dup.clone(), lan_config(3), 3),
    ];
    join(&mut nodes, 1);
    assert_eq!(nodes[0].members(), vec![real.clone()]);
    join(&mut nodes, 2);
    assert_eq!(nodes[0].members(), vec![dup.clone()]);
    assert_eq!(nodes[1].name_holder(), Some(dup.clone()));
    assert_eq!(
        nodes[1].members(),
        vec![member(1)],
        "no namesake in our view"
    );
    drain(&mut nodes[0]);
    nodes[2].leave().unwrap();
    pump(&mut nodes);
    assert_eq!(nodes[0].members(), vec![real.clone()]);
    assert_eq!(
        drain(&mut nodes[0]),
        vec![Event::Down(dup), Event::Up(real)]
    );
    assert_eq!(nodes[1].name_holder(), None);
}

#[test]
fn a_restart_at_the_same_address_replaces_the_predecessor_at_once() {
    let old = member(2);
    let mut nodes = vec![
        Membership::new(member(1), lan_config(3), 1),
        Membership::new(old.clone(), lan_config(3), 2),
    ];
    join(&mut nodes, 1);
    drain(&mut nodes[0]);
    // kill -9, then a new process on the same address (foca renames the old identity).
    let new = Member {
        id: 99,
        started_ms: 5000,
        ..old.clone()
    };
    nodes[1] = Membership::new(new.clone(), lan_config(3), 3);
    join(&mut nodes, 1);
    assert_eq!(nodes[0].members(), vec![new.clone()]);
    assert_eq!(drain(&mut nodes[0]), vec![Event::Down(old), Event::Up(new)]);
}

#[test]
fn membership_can_move_between_threads() {
    fn is_send<T: Send>() {}
    is_send::<Membership>();
}

/// Joins nodes 1..=n through node 1; returns them, events drained.
fn joined(n: u64) -> Vec<Membership> {
    let mut nodes: Vec<Membership> = (1..=n)
        .map(|i| Membership::new(member(i), lan_config(n as u32), i))
        .collect();
    for node in nodes.iter_mut().skip(1) {
        node.announce(member(1).addr).unwrap();
    }
    pump(&mut nodes);
    for n in nodes.iter_mut() {
        drain(n);
    }
    nodes
}

/// Hands `n` a suspicion of `m` as gossip would (no timer of foca's runs for it).
fn hear_suspicion(n: &mut Membership, m: &Member) {
    let update = foca::Member::new(m.clone(), 0, State::Suspect);
    n.foca
        .apply_many(std::iter::once(update), true, &mut n.rt)
        .unwrap();
    n.collect();
}

/// The suspicion watches `n` has scheduled (its other timers are dropped).
fn watches(n: &mut Membership) -> Vec<(Duration, Timer)> {
    std::iter::from_fn(|| n.poll_timer())
        .filter(|(_, t)| matches!(t.0, TimerKind::Suspicion(_)))
        .collect()
}

#[test]
fn a_suspicion_learned_by_gossip_ends_in_down_when_nobody_ends_it() {
    let mut nodes = joined(3);
    let a = &mut nodes[0];
    while a.poll_timer().is_some() {}
    hear_suspicion(a, &member(2));
    assert_eq!(a.suspects(), vec![2]);
    let due = watches(a);
    let timeout = lan_config(3).suspect_to_down_after;
    assert_eq!(due.len(), 1, "one watch for the one suspicion");
    assert_eq!(due[0].0, timeout * 2);
    // foca alone would hold it suspect for good: it has no timer for a suspicion it heard.
    a.handle_timer(due[0].1.clone()).unwrap();
    assert!(a.suspects().is_empty());
    assert!(!a.is_live(2), "declared down when the watch came due");
    assert_eq!(a.overdue_suspicions(), 1);
    assert!(drain(a).contains(&Event::Down(member(2))));
}

#[test]
fn a_refuted_suspicion_is_left_alone_when_its_watch_comes_due() {
    let mut nodes = joined(3);
    let a = &mut nodes[0];
    while a.poll_timer().is_some() {}
    hear_suspicion(a, &member(2));
    let due = watches(a);
    // Node 2 refutes: its incarnation grows.
    let refuted = foca::Member::new(member(2), 1, State::Alive);
    a.foca
        .apply_many(std::iter::once(refuted), true, &mut a.rt)
        .unwrap();
    a.collect();
    a.handle_timer(due[0].1.clone()).unwrap();
    assert!(a.is_live(2));
    assert_eq!(a.overdue_suspicions(), 0);
    assert!(
        watches(a).is_empty(),
        "no new watch for a member no longer suspect"
    );
}
