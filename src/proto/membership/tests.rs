//! Small deterministic exchanges between a few memberships; the large-scale simulation
//! lives in `tests/simulation.rs`.

use super::*;

fn member(i: u64) -> Member {
    Member {
        addr: format!("10.0.0.{i}:7700").parse().unwrap(),
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

#[test]
fn a_restarted_name_replaces_the_old_identity() {
    let mut a = Membership::new(member(1), lan_config(3), 1);
    let old = member(2);
    let mut new = member(3);
    new.name = old.name.clone();
    new.started_ms = 2000;
    a.up(old.clone());
    drain(&mut a);
    a.up(new.clone());
    assert_eq!(a.members(), vec![new.clone()]);
    assert_eq!(
        drain(&mut a),
        vec![Event::Down(old.clone()), Event::Up(new.clone())]
    );
    // The old identity coming "up" again (stale gossip) is ignored.
    a.up(old);
    assert_eq!(a.members(), vec![new]);
}

#[test]
fn membership_can_move_between_threads() {
    fn is_send<T: Send>() {}
    is_send::<Membership>();
}
