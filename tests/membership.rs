//! Membership and zero-config discovery on loopback: discovery confined to `lo` with this
//! test's own beacon and mDNS ports, so nothing leaves the machine or mixes with other runs.

mod support;

use std::time::{Duration, Instant};

use mpreg::{Function, Node};
use support::{free_port, lo_discovery, local, mpreg_env, wait_until, LoDiscovery, Proc};

async fn member(name: &str, d: &LoDiscovery) -> Node {
    d.apply(local(name), false)
        .start()
        .await
        .expect("start member")
}

fn names(n: &Node) -> Vec<String> {
    n.members().into_iter().map(|m| m.name).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_find_each_other_on_loopback() {
    let d = lo_discovery();
    let t0 = Instant::now();
    let a = d
        .apply(
            local("a").function(Function::new("only_a", |(): ()| "a")),
            false,
        )
        .start()
        .await
        .unwrap();
    let b = member("b", &d).await;
    let c = d
        .apply(
            local("c").function(Function::new("only_c", |(): ()| "c")),
            false,
        )
        .start()
        .await
        .unwrap();
    for n in [&a, &b, &c] {
        wait_until(Duration::from_secs(10), || n.members().len() == 2).await;
    }
    eprintln!("three nodes converged on lo in {:?}", t0.elapsed());
    assert_eq!(names(&a), vec!["b", "c"]);
    // Calls by name across the members, no address given anywhere.
    assert_eq!(a.call::<String>("only_c", ()).await.unwrap(), "c");
    assert_eq!(c.call::<String>("only_a", ()).await.unwrap(), "a");
    assert_eq!(b.call::<String>("only_a", ()).await.unwrap(), "a");
    for n in [a, b, c] {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gossip_spreads_members_learned_through_seeds() {
    // Discovery off: only seeds, and each node knows just one other.
    let a = local("a")
        .function(Function::new("only_a", |(): ()| 1))
        .start()
        .await
        .unwrap();
    let b = local("b").seed(a.addr().unwrap()).start().await.unwrap();
    let c = local("c").seed(b.addr().unwrap()).start().await.unwrap();
    for n in [&a, &b, &c] {
        wait_until(Duration::from_secs(10), || n.members().len() == 2).await;
    }
    assert_eq!(c.call::<i64>("only_a", ()).await.unwrap(), 1);
    for n in [a, b, c] {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_leave_is_seen_at_once() {
    let d = lo_discovery();
    let a = member("a", &d).await;
    let b = member("b", &d).await;
    wait_until(Duration::from_secs(10), || {
        a.members().len() == 1 && b.members().len() == 1
    })
    .await;
    let t0 = Instant::now();
    b.shutdown().await;
    wait_until(Duration::from_secs(2), || a.members().is_empty()).await;
    let took = t0.elapsed();
    eprintln!("graceful leave seen after {took:?} (shutdown included)");
    assert!(took < Duration::from_millis(500), "{took:?}");
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_process_leaves_the_view_and_a_restart_replaces_it() {
    let d = lo_discovery();
    let a = member("a", &d).await;
    let mut env = d.env(false);
    env.push(("MPREG_NAME", "victim".into()));
    let port = free_port();
    let mut victim = Proc::start("mpreg", &["serve"], &env, port);
    wait_until(Duration::from_secs(10), || names(&a) == ["victim"]).await;
    let old_id = a.members()[0].id;
    let t0 = Instant::now();
    victim.child.kill().unwrap(); // SIGKILL: no goodbye, no leave
    wait_until(Duration::from_secs(6), || a.members().is_empty()).await;
    let detected = t0.elapsed();
    eprintln!("kill -9 detected after {detected:?}");
    assert!(detected < Duration::from_secs(4), "{detected:?}");
    // A restart under the same name (new id) is one entry, the new one.
    let _again = Proc::start("mpreg", &["serve"], &env, free_port());
    wait_until(Duration::from_secs(10), || names(&a) == ["victim"]).await;
    assert_ne!(a.members()[0].id, old_id);
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_clusters_and_wrong_secrets_never_mix() {
    let d = lo_discovery();
    let dir = support::scratch::Scratch::new("gossip-secret");
    std::fs::write(dir.join("s1"), "one").unwrap();
    std::fs::write(dir.join("s2"), "two").unwrap();
    let a = d
        .apply(local("a").secret_file(dir.join("s1")), false)
        .start()
        .await
        .unwrap();
    let friend = d
        .apply(local("friend").secret_file(dir.join("s1")), false)
        .start()
        .await
        .unwrap();
    let stranger = d
        .apply(local("stranger").secret_file(dir.join("s2")), false)
        .start()
        .await
        .unwrap();
    let other = d
        .apply(local("other").cluster("elsewhere"), false)
        .start()
        .await
        .unwrap();
    wait_until(Duration::from_secs(10), || names(&a) == ["friend"]).await;
    // Give the others several beacon rounds to (wrongly) show up.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(names(&a), vec!["friend"]);
    assert!(a.stats().dropped_unauthenticated > 0, "{:?}", a.stats());
    assert!(other.members().is_empty());
    assert!(
        other.stats().dropped_other_cluster > 0,
        "{:?}",
        other.stats()
    );
    for n in [a, friend, stranger, other] {
        n.shutdown().await;
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_finds_the_cluster_with_no_address() {
    let d = lo_discovery();
    let a = member("alpha", &d).await;
    let b = d
        .apply(local("beta").resources(["gpu"]), false)
        .start()
        .await
        .unwrap();
    wait_until(Duration::from_secs(10), || a.members().len() == 1).await;
    let env = d.env(false);
    let t0 = Instant::now();
    let (ok, out, err) = mpreg_env(&["call", "--json", "echo", "hi"], &env);
    eprintln!("fresh `mpreg call` with no address took {:?}", t0.elapsed());
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["result"], "hi");
    let (ok, out, err) = mpreg_env(&["nodes", "--json"], &env);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let listed: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(listed, vec!["alpha", "beta"]);
    let beta = v
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "beta")
        .unwrap();
    assert_eq!(beta["resources"], serde_json::json!(["gpu"]));
    assert!(beta["builtins"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!("echo")));
    // Another fresh process, same way in.
    let (ok, out, err) = mpreg_env(&["call", "echo", "via-beacon"], &env);
    assert!(ok && out == "\"via-beacon\"", "{err}");
    a.shutdown().await;
    b.shutdown().await;
}

// mDNS is deliberately not exercised here: starting an mdns-sd daemon joins its multicast
// group on every interface (IGMP) before the interface selection applies, which would
// send packets out of real interfaces. mDNS is tested inside private network namespaces
// (src/runtime/discovery/tests.rs and tests/lan).
