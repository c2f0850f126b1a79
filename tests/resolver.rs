//! The resolver end to end on loopback (DESIGN §7): locs, scopes, perspectives, tiers and
//! spilling, policies, call_all, server-side visibility and idempotent retries. Hosts are
//! simulated with distinct host ids (all on this machine's loopback).

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mpreg::{Error, Function, Node, Policy, Scope, Visibility};
use support::{cluster, local, wait_until};

/// A client (no listener, no gossip) that learned the cluster from `seed`.
async fn client(seed: &Node) -> Node {
    local("client")
        .listen(false)
        .builtins(false)
        .seed(seed.addr().unwrap())
        .start()
        .await
        .unwrap()
}

fn whoami(name: &'static str) -> Function {
    Function::new("whoami", move |(): ()| name.to_string())
}

async fn stop(nodes: impl IntoIterator<Item = Node>) {
    for n in nodes {
        n.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locs_send_every_call_to_the_matching_node() {
    // MPREG's two-server layout.
    let train = |n: &'static str| Function::new("train", move |(m,): (String,)| format!("{n}:{m}"));
    let nodes = cluster(vec![
        local("server-a")
            .resources(["model-a", "dataset-1"])
            .function(train("a")),
        local("server-b")
            .resources(["model-b", "dataset-2"])
            .function(train("b")),
    ])
    .await;
    let c = client(&nodes[0]).await;
    let mut landed: BTreeMap<(String, String), usize> = BTreeMap::new();
    for round in 0..12 {
        let calls = (0..100).map(|i| {
            let (locs, want): (&[&str], _) = if (round * 100 + i) % 2 == 0 {
                (&["model-a", "dataset-1"], "server-a")
            } else {
                (&["dataset-2"], "server-b")
            };
            let c = &c;
            async move {
                let r = c
                    .request("train")
                    .args(("m",))
                    .locs(locs.iter().copied())
                    .send::<String>()
                    .await
                    .unwrap();
                (want.to_string(), r.node)
            }
        });
        for pair in futures_util::future::join_all(calls).await {
            *landed.entry(pair).or_default() += 1;
        }
    }
    eprintln!("locs: (wanted, landed) -> calls: {landed:?}");
    let total: usize = landed.values().sum();
    assert_eq!(total, 1200);
    assert!(landed.keys().all(|(want, got)| want == got), "{landed:?}");
    let e = c
        .request("train")
        .args(("m",))
        .locs(["model-c"])
        .send::<String>()
        .await
        .unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::NoProvider { .. }), "{msg}");
    assert!(msg.contains("locs [model-c]"), "{msg}");
    assert!(msg.contains("[dataset-1, model-a]"), "{msg}");
    assert!(msg.contains("[dataset-2, model-b]"), "{msg}");
    stop([c]).await;
    stop(nodes).await;
}

/// Counts which node answered `calls` calls of `work` made by `workers` concurrent loops.
async fn spread(c: &Node, policy: Policy, workers: usize, calls: usize) -> BTreeMap<String, usize> {
    let loops = (0..workers).map(|_| async move {
        let mut seen = Vec::new();
        for _ in 0..calls / workers {
            let r = c.request("work").policy(policy).send::<()>().await.unwrap();
            seen.push(r.node);
        }
        seen
    });
    let mut counts = BTreeMap::new();
    for node in futures_util::future::join_all(loops)
        .await
        .into_iter()
        .flatten()
    {
        *counts.entry(node).or_default() += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_distribute_calls_as_expected() {
    let work = |ms: u64| {
        Function::new_async("work", move |(): ()| async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        })
    };
    let nodes = cluster(vec![
        local("p1").function(work(2)),
        local("p2").function(work(2)),
        local("p3").function(work(2)),
        local("slow").function(work(40)),
    ])
    .await;
    let c = client(&nodes[0]).await;
    let least = spread(&c, Policy::LeastLoaded, 16, 400).await;
    let random = spread(&c, Policy::Random, 16, 400).await;
    let rr = spread(&c, Policy::RoundRobin, 16, 400).await;
    eprintln!("| policy | p1 | p2 | p3 | slow |");
    eprintln!("|---|---|---|---|---|");
    for (name, counts) in [
        ("least_loaded", &least),
        ("random", &random),
        ("round_robin", &rr),
    ] {
        let n = |k: &str| counts.get(k).copied().unwrap_or(0);
        eprintln!(
            "| {name} | {} | {} | {} | {} |",
            n("p1"),
            n("p2"),
            n("p3"),
            n("slow")
        );
    }
    let get = |m: &BTreeMap<String, usize>, k: &str| m.get(k).copied().unwrap_or(0);
    // Least loaded: the slow provider accumulates calls in flight and is chosen less.
    let fastest_min = ["p1", "p2", "p3"]
        .iter()
        .map(|k| get(&least, k))
        .min()
        .unwrap();
    assert!(get(&least, "slow") * 3 < fastest_min, "{least:?}");
    // Random: about 100 each (binomial sd ≈ 8.7; ±45 is over 5 sd).
    for k in ["p1", "p2", "p3", "slow"] {
        assert!((55..=145).contains(&get(&random, k)), "{random:?}");
    }
    // Round robin: exactly in turn, whatever the speed.
    for k in ["p1", "p2", "p3", "slow"] {
        assert_eq!(get(&rr, k), 100, "{rr:?}");
    }
    stop([c]).await;
    stop(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nearest_provider_first_then_spill_to_the_network() {
    let slow = || {
        Function::new_async("slow", |(): ()| async {
            tokio::time::sleep(Duration::from_millis(300)).await;
        })
    };
    let hosted = || Function::new("hosted", |(): ()| ());
    let nodes = cluster(vec![
        local("me").host("h1").spill_at(2).function(slow()),
        local("twin").host("h1").function(slow()).function(hosted()),
        local("far").host("h2").function(slow()).function(hosted()),
    ])
    .await;
    let me = &nodes[0];
    // One at a time: always this node, then this host.
    for _ in 0..20 {
        assert_eq!(me.request("slow").send::<()>().await.unwrap().node, "me");
        assert_eq!(
            me.request("hosted").send::<()>().await.unwrap().node,
            "twin"
        );
    }
    // Six at once with spill_at 2: two here, two on this host, two across the network.
    let calls = (0..6).map(|_| me.request("slow").send::<()>());
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for r in futures_util::future::join_all(calls).await {
        *counts.entry(r.unwrap().node).or_default() += 1;
    }
    eprintln!("six concurrent calls with spill_at 2: {counts:?}");
    let want: BTreeMap<String, usize> =
        [("far".into(), 2), ("me".into(), 2), ("twin".into(), 2)].into();
    assert_eq!(counts, want);
    stop(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scopes_and_perspectives_restrict_candidates() {
    let nodes = cluster(vec![
        local("n1").host("h1").function(whoami("n1")),
        local("n2").host("h2").function(whoami("n2")),
        local("n3").host("h2").function(whoami("n3")),
    ])
    .await;
    let n1 = &nodes[0];
    for _ in 0..10 {
        let on_h2: String = n1.host("h2").call("whoami", ()).await.unwrap();
        assert!(on_h2 == "n2" || on_h2 == "n3", "{on_h2}");
        assert_eq!(
            n1.node("n3").call::<String>("whoami", ()).await.unwrap(),
            "n3"
        );
    }
    // Node and host scope keep n1's calls at home even though peers serve it too.
    for scope in [Scope::Node, Scope::Host] {
        let r = n1
            .request("whoami")
            .scope(scope)
            .send::<String>()
            .await
            .unwrap();
        assert_eq!(r.node, "n1");
    }
    // From n2, host scope means n2 or n3, never n1.
    for _ in 0..10 {
        let r = nodes[1].request("whoami").scope(Scope::Host).on_host("h1");
        let e = r.send::<String>().await.unwrap_err();
        assert!(e.to_string().contains("outside host scope"), "{e}");
    }
    let e = n1
        .node("nobody")
        .call::<String>("whoami", ())
        .await
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.starts_with("no provider of `whoami` in network scope on node `nobody`"),
        "{msg}"
    );
    assert!(msg.contains("`n2` on host `h2`"), "{msg}");
    let e = n1.call::<String>("whoamj", ()).await.unwrap_err();
    assert!(e.to_string().contains("did you mean `whoami`"), "{e}");
    stop(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_all_returns_one_result_per_provider() {
    let nodes = cluster(vec![
        local("w1").resources(["gpu"]).function(whoami("w1")),
        local("w2").function(whoami("w2")),
        local("w3").resources(["gpu"]).function(whoami("w3")),
    ])
    .await;
    let c = client(&nodes[1]).await;
    let all = c.call_all::<String>("whoami", ()).await.unwrap();
    let got: BTreeMap<String, String> = all.into_iter().map(|(k, v)| (k, v.unwrap())).collect();
    let want: BTreeMap<String, String> = ["w1", "w2", "w3"]
        .iter()
        .map(|n| (n.to_string(), n.to_string()))
        .collect();
    assert_eq!(got, want);
    let gpus = c
        .request("whoami")
        .locs(["gpu"])
        .send_all::<String>()
        .await
        .unwrap();
    assert_eq!(gpus.keys().cloned().collect::<Vec<_>>(), vec!["w1", "w3"]);
    let e = c.call_all::<String>("nothing", ()).await.unwrap_err();
    assert!(matches!(e, Error::UnknownFunction { .. }), "{e}");
    stop([c]).await;
    stop(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serving_node_enforces_visibility_even_when_addressed_directly() {
    let hv = Function::new("host_only", |(): ()| "secret").visibility(Visibility::Host);
    let nv = Function::new("node_only", |(): ()| "mine").visibility(Visibility::Node);
    let nodes = cluster(vec![
        local("owner").host("h1").function(hv).function(nv),
        local("neighbour").host("h1"),
        local("stranger").host("h3"),
    ])
    .await;
    let (owner, neighbour, stranger) = (&nodes[0], &nodes[1], &nodes[2]);
    let addr = owner.addr().unwrap();
    assert_eq!(owner.call::<String>("node_only", ()).await.unwrap(), "mine");
    assert_eq!(
        neighbour.call::<String>("host_only", ()).await.unwrap(),
        "secret"
    );
    // The stranger's resolver does not even see it...
    let e = stranger.call::<String>("host_only", ()).await.unwrap_err();
    assert!(matches!(e, Error::UnknownFunction { .. }), "{e}");
    // ...and sending it straight to the owner is refused by the owner.
    let e = stranger
        .request("host_only")
        .at(addr)
        .send::<String>()
        .await
        .unwrap_err();
    assert!(matches!(e, Error::NotVisible { .. }), "{e}");
    assert!(e.to_string().contains("host-visible"), "{e}");
    for n in [neighbour, stranger] {
        let e = n
            .request("node_only")
            .at(addr)
            .send::<String>()
            .await
            .unwrap_err();
        assert!(matches!(e, Error::NotVisible { .. }), "{e}");
    }
    stop(nodes).await;
}

/// Two providers of `name`; the one named `doomed` hangs until shut down.
async fn doomed_pair(idempotent: bool) -> (Vec<Node>, Arc<AtomicBool>) {
    let started = Arc::new(AtomicBool::new(false));
    let s = started.clone();
    let hang = Function::new_async("job", move |(): ()| {
        s.store(true, Ordering::SeqCst);
        async {
            std::future::pending::<()>().await;
            "never".to_string()
        }
    })
    .idempotent(idempotent);
    let fine = Function::new("job", |(): ()| "done".to_string()).idempotent(idempotent);
    let nodes = cluster(vec![
        local("caller"),
        local("a-doomed").function(hang),
        local("b-fine").function(fine),
    ])
    .await;
    (nodes, started)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_calls_are_retried_after_a_lost_node_and_others_are_not() {
    for idempotent in [true, false] {
        let (nodes, started) = doomed_pair(idempotent).await;
        let caller = nodes[0].clone();
        // Round robin starts with the first name: `a-doomed`.
        let call = tokio::spawn(async move {
            let r = caller.request("job").policy(Policy::RoundRobin);
            r.send::<String>().await
        });
        wait_until(Duration::from_secs(5), || started.load(Ordering::SeqCst)).await;
        nodes[1].shutdown().await;
        let r = tokio::time::timeout(Duration::from_secs(5), call)
            .await
            .unwrap()
            .unwrap();
        if idempotent {
            let r = r.unwrap();
            assert_eq!((r.value.as_str(), r.node.as_str()), ("done", "b-fine"));
        } else {
            let e = r.unwrap_err();
            assert!(matches!(e, Error::NodeLost { .. }), "{e}");
            assert!(e.to_string().contains("not retried"), "{e}");
        }
        stop([nodes[0].clone(), nodes[2].clone()]).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_call_takes_locs_scope_perspective_policy_and_all() {
    use support::{free_port, mpreg, Proc};
    let (pa, pb) = (free_port(), free_port());
    let env = |name: &str, res: &str, seeds: String| {
        vec![
            ("MPREG_NAME", name.to_string()),
            ("MPREG_RESOURCES", res.to_string()),
            ("MPREG_SEEDS", seeds),
        ]
    };
    let _a = Proc::start(
        "mpreg",
        &["serve"],
        &env("cli-a", "model-a,dataset-1", String::new()),
        pa,
    );
    let _b = Proc::start(
        "mpreg",
        &["serve"],
        &env("cli-b", "model-b,dataset-2", format!("127.0.0.1:{pa}")),
        pb,
    );
    let seed = format!("127.0.0.1:{pa}");
    let run = |extra: &[&str]| {
        let mut args = vec!["call", "--seed", seed.as_str(), "--json"];
        args.extend_from_slice(extra);
        let (ok, out, err) = mpreg(&args);
        assert!(ok, "mpreg {}: {err}", args.join(" "));
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v
    };
    // Until b has joined, `--locs dataset-2` has no provider: wait for it through the CLI.
    wait_until(Duration::from_secs(10), || {
        mpreg(&["call", "--seed", &seed, "--locs", "dataset-2", "echo", "x"]).0
    })
    .await;
    assert_eq!(run(&["--locs", "dataset-2", "echo", "x"])["node"], "cli-b");
    assert_eq!(
        run(&["--locs", "model-a,dataset-1", "echo", "x"])["node"],
        "cli-a"
    );
    assert_eq!(run(&["--node", "cli-b", "echo", "x"])["node"], "cli-b");
    let host = mpreg::host_id(None);
    let on_host = run(&["--host", &host, "--scope", "host", "echo", "x"]);
    assert_eq!(on_host["result"], "x");
    let firsts: Vec<String> = (0..4)
        .map(|_| {
            run(&["--policy", "round_robin", "echo", "x"])["node"]
                .as_str()
                .unwrap()
                .into()
        })
        .collect();
    assert!(
        firsts.iter().all(|n| n == "cli-a"),
        "a fresh client starts its turn at the first name: {firsts:?}"
    );
    let all = run(&["--all", "echo", "x"]);
    assert_eq!(all["cli-a"]["result"], "x");
    assert_eq!(all["cli-b"]["result"], "x");
    let (ok, _, err) = mpreg(&["call", "--seed", &seed, "--locs", "gpu", "echo", "x"]);
    assert!(!ok);
    assert!(
        err.contains("no provider of `echo` with locs [gpu] in network scope"),
        "{err}"
    );
    assert!(err.contains("[dataset-2, model-b]"), "{err}");
    let (ok, _, err) = mpreg(&["call", "--seed", &seed, "--scope", "planet", "echo", "x"]);
    assert!(!ok && err.contains("unknown scope `planet`"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_functions_routes_and_balances() {
    let nodes = cluster(vec![
        local("router").builtins(false),
        local("r1").function(whoami("r1")),
        local("r2").function(whoami("r2")),
    ])
    .await;
    let router = nodes[0].addr().unwrap();
    let c = client(&nodes[0]).await;
    let calls = (0..200).map(|_| c.request("whoami").via(router).send::<String>());
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for r in futures_util::future::join_all(calls).await {
        let r = r.unwrap();
        assert_eq!(
            r.value, r.node,
            "the answer names the provider, not the router"
        );
        *counts.entry(r.node).or_default() += 1;
    }
    eprintln!("200 calls through a function-less router: {counts:?}");
    assert_eq!(counts.values().sum::<usize>(), 200);
    assert!(counts.get("r1").is_some_and(|&n| n >= 40), "{counts:?}");
    assert!(counts.get("r2").is_some_and(|&n| n >= 40), "{counts:?}");
    let r = c
        .request("whoami")
        .via(router)
        .on_node("r2")
        .send::<String>();
    assert_eq!(r.await.unwrap().node, "r2");
    let e = c
        .request("whoami")
        .via(router)
        .locs(["gpu"])
        .send::<String>();
    let e = e.await.unwrap_err().to_string();
    assert!(e.contains("no provider of `whoami` with locs [gpu]"), "{e}");
    stop([c]).await;
    stop(nodes).await;
}
