//! Clients follow the cluster live (issue #12): a client attached to one member is pushed
//! every change of the cluster (members and catalogs) without calling anything, and
//! re-attaches to another member when its member goes away: gracefully, killed, or frozen.

mod support;

use std::time::{Duration, Instant};

use support::{free_port, local, wait_until, Proc};

fn names(n: &mpreg::Node) -> Vec<String> {
    let mut v: Vec<String> = n.members().into_iter().map(|m| m.name).collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_sees_joins_and_leaves_pushed_and_reattaches() {
    let a = local("att-a").start().await.unwrap();
    let seed_a = a.addr().unwrap().to_string();
    let client = local("att-client")
        .listen(false)
        .seed(&seed_a)
        .start()
        .await
        .unwrap();
    assert_eq!(names(&client), ["att-a"]);

    // A member joining later reaches the client's view with no call and no poll.
    let b = local("att-b").seed(&seed_a).start().await.unwrap();
    wait_until(Duration::from_secs(5), || {
        names(&client) == ["att-a", "att-b"]
    })
    .await;

    // A graceful leave is pushed at once.
    b.shutdown().await;
    wait_until(Duration::from_secs(2), || names(&client) == ["att-a"]).await;

    // Its member stops: the client attaches to another member it knows (learned from a
    // push), and that one's pushes keep its view current.
    let c = local("att-c").seed(&seed_a).start().await.unwrap();
    wait_until(Duration::from_secs(5), || {
        names(&client) == ["att-a", "att-c"]
    })
    .await;
    a.shutdown().await;
    wait_until(Duration::from_secs(5), || names(&client) == ["att-c"]).await;
    let seed_c = c.addr().unwrap().to_string();
    let d = local("att-d").seed(&seed_c).start().await.unwrap();
    wait_until(Duration::from_secs(5), || {
        names(&client) == ["att-c", "att-d"]
    })
    .await;
    let r: String = client.call("echo", ("x",)).await.unwrap();
    assert_eq!(r, "x");
    for n in [client, c, d] {
        n.shutdown().await;
    }
}

/// How a member stops answering without saying goodbye.
#[derive(Debug, Clone, Copy)]
enum Death {
    /// `kill -9`: the kernel closes its connections at once.
    Killed,
    /// `kill -STOP`: its connections stay open and go silent (a frozen host, or a cut link
    /// as far as TCP can tell), so only the heartbeat notices.
    Frozen,
}

/// A client attached to a member that is a child process (`mpreg serve`), with another
/// member in this process; the child dies as `death` says. Returns how long after the
/// death the client's view showed only the other member: the client re-attached to it
/// (nobody else would update its view: it calls nothing meanwhile) and it reported the
/// death. The client then keeps calling and is still pushed changes.
async fn reattach_after(death: Death, tag: &str) -> Duration {
    // The dying member's address sorts first: a client that tried its members in address
    // order would dial the frozen one again first and wait out its handshake (5 s).
    let mut ports = [free_port(), free_port()];
    ports.sort_by_key(|p| p.to_string());
    let a_name = format!("{tag}-a");
    let mut a = Proc::start("mpreg", &["serve", "--name", &a_name], &[], ports[0]);
    let b = local(&format!("{tag}-b"))
        .port(ports[1])
        .seed(a.addr)
        .start()
        .await
        .unwrap();
    // Seeded with the child only: it is the member the client attaches to.
    let client = local(&format!("{tag}-client"))
        .listen(false)
        .builtins(false)
        .seed(a.addr)
        .start()
        .await
        .unwrap();
    let both = [a_name.clone(), format!("{tag}-b")];
    wait_until(Duration::from_secs(10), || names(&client) == both).await;

    let t0 = Instant::now();
    match death {
        Death::Killed => {
            a.child.kill().unwrap();
            a.child.wait().unwrap();
        }
        Death::Frozen => {
            let pid = a.child.id() as libc::pid_t;
            assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
        }
    }
    wait_until(Duration::from_secs(15), || {
        names(&client) == [format!("{tag}-b")]
    })
    .await;
    let took = t0.elapsed();

    let r = client.request("echo").args(("x",)).send::<String>().await;
    assert_eq!(r.unwrap().node, format!("{tag}-b"));
    let c = local(&format!("{tag}-c"))
        .seed(b.addr().unwrap())
        .start()
        .await
        .unwrap();
    let after = [format!("{tag}-b"), format!("{tag}-c")];
    wait_until(Duration::from_secs(5), || names(&client) == after).await;
    for n in [client, b, c] {
        n.shutdown().await;
    }
    drop(a); // SIGKILL, which also ends a stopped process.
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_reattaches_when_its_member_is_killed() {
    let took = reattach_after(Death::Killed, "ak").await;
    println!("figure: client_view_after_kill_ms={}", took.as_millis());
    // SWIM's detection budget (~1.2-3 s; tests/membership.rs allows 4 s): the re-attach
    // itself is immediate, the other member's verdict on the dead one is what takes time.
    assert!(took < Duration::from_secs(4), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_reattaches_when_its_member_freezes() {
    let took = reattach_after(Death::Frozen, "af").await;
    println!("figure: client_view_after_freeze_ms={}", took.as_millis());
    // The heartbeat closes the silent connection after 2 s; SWIM's verdict runs meanwhile.
    assert!(took < Duration::from_secs(5), "{took:?}");
}

/// A function registered on a member the client is not connected to reaches the client
/// by its attached member's push (with no call and no connection to that member), and
/// so does its removal; the client calls it without restarting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catalog_change_on_another_member_is_pushed_to_a_client() {
    let nodes = support::cluster(vec![local("cat-a"), local("cat-b")]).await;
    let client = local("cat-client")
        .listen(false)
        .seed(nodes[0].addr().unwrap())
        .start()
        .await
        .unwrap();
    wait_until(Duration::from_secs(5), || {
        names(&client) == ["cat-a", "cat-b"]
    })
    .await;
    let offers_late = |c: &mpreg::Node| {
        c.members()
            .iter()
            .any(|m| m.name == "cat-b" && m.offers("late"))
    };
    let peers =
        |c: &mpreg::Node| -> Vec<String> { c.peers().into_iter().map(|p| p.name).collect() };
    assert!(!offers_late(&client));

    nodes[1]
        .register("late", |(): ()| "registered later".to_string())
        .unwrap();
    wait_until(Duration::from_secs(5), || offers_late(&client)).await;
    assert_eq!(
        peers(&client),
        ["cat-a"],
        "the catalog came by push, not by a connection"
    );
    let r = client.request("late").send::<String>().await.unwrap();
    assert_eq!(
        (r.value.as_str(), r.node.as_str()),
        ("registered later", "cat-b")
    );

    // A connected client learns from the connection too: watch the push from a fresh one.
    let fresh = local("cat-fresh")
        .listen(false)
        .seed(nodes[0].addr().unwrap())
        .start()
        .await
        .unwrap();
    wait_until(Duration::from_secs(5), || offers_late(&fresh)).await;
    assert!(nodes[1].unregister("late"));
    wait_until(Duration::from_secs(5), || !offers_late(&fresh)).await;
    assert_eq!(peers(&fresh), ["cat-a"]);
    for n in [client, fresh] {
        n.shutdown().await;
    }
    for n in nodes {
        n.shutdown().await;
    }
}
