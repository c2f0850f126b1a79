//! A member this node could not connect to is dialed again for as long as it stays a
//! member: a connection carries the catalog (functions, resources, subscriptions), so one
//! failed dial — a single lost SYN is enough — must not leave two members blind to each
//! other for good (the chaos soak met exactly that: two nodes never learned each other's
//! subscriptions). The same holds for a connection lost while both stay members.

use std::time::Duration;

use crate::harness::{figure, wait_until, Lan};
use crate::netem::iptables;

/// The longest pause between two dials (4 s, +25 % jitter), one dial's timeout and a poll.
const RECONNECT_LIMIT: Duration = Duration::from_secs(9);

#[test]
#[ignore = "needs root and iptables: cargo test --test lan -- --ignored"]
fn a_member_that_could_not_be_dialed_is_dialed_again() {
    let Some(lan) = Lan::new("redial", 3) else {
        return;
    };
    // TCP between hosts 2 and 3 is dropped both ways; UDP passes, so both learn through
    // host 1's gossip that the other is a member, yet no connection between them opens.
    let rules: Vec<(String, Vec<String>)> = [(2, 3), (3, 2)]
        .iter()
        .map(|&(i, j)| {
            let rule = [
                "INPUT",
                "-p",
                "tcp",
                "-s",
                &lan.addr(j).to_string(),
                "-j",
                "DROP",
            ];
            (
                lan.host_name(i),
                rule.iter().map(|s| s.to_string()).collect(),
            )
        })
        .collect();
    let apply = |op: &str| {
        for (ns, rule) in &rules {
            let mut args = vec![op];
            args.extend(rule.iter().map(String::as_str));
            iptables(ns, &args);
        }
    };
    apply("-A");
    let seed = lan.seed(1);
    let _n1 = lan.serve(1, "n1", &["--no-mdns", "--no-beacon"]);
    let _n2 = lan.serve(2, "n2", &["--no-mdns", "--no-beacon", "--seed", &seed]);
    let _n3 = lan.serve(
        3,
        "n3",
        &[
            "--no-mdns",
            "--no-beacon",
            "--seed",
            &seed,
            "--resources",
            "camera",
        ],
    );
    // n2 sees n3 alive, but without a connection it does not know n3's resources.
    let n3_in_view_of_n2 = || {
        lan.view(1, 2)
            .into_iter()
            .find(|m| m.name == "n3" && m.state == "alive")
    };
    wait_until(Duration::from_secs(10), || n3_in_view_of_n2().is_some());
    // Several dials fail meanwhile (each one's SYNs are dropped).
    std::thread::sleep(Duration::from_secs(3));
    let blind = n3_in_view_of_n2().expect("n3 still a member");
    assert!(
        blind.names_in("resources").is_empty(),
        "the block is not real: n2 knows n3's resources without a connection: {}",
        blind.json
    );
    apply("-D");
    let t = wait_until(RECONNECT_LIMIT, || {
        n3_in_view_of_n2().is_some_and(|m| m.names_in("resources") == ["camera"])
    });
    figure("redial_connected_after_unblock_ms", t.as_millis());

    // The same link fails again while both stay members (gossip still passes): the
    // connection's heartbeat closes it once its stream has moved nothing for 10 s (the
    // peer still answers over UDP, so it is taken for a stall until then), and n2 dials
    // again once TCP passes.
    apply("-A");
    wait_until(Duration::from_secs(16), || {
        n3_in_view_of_n2().is_some_and(|m| m.names_in("resources").is_empty())
    });
    std::thread::sleep(Duration::from_secs(2));
    apply("-D");
    let t = wait_until(RECONNECT_LIMIT, || {
        n3_in_view_of_n2().is_some_and(|m| m.names_in("resources") == ["camera"])
    });
    figure("redial_reconnected_after_unblock_ms", t.as_millis());
}
