//! Clients follow the cluster live (issue #12): a client attached to one member is pushed
//! every change of the cluster without calling anything, and re-attaches to another member
//! when its member goes away.

mod support;

use std::time::Duration;

use support::{local, wait_until};

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
