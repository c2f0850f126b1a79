//! Key rotation without downtime (issue #18 item 2): a 3-node cluster goes from key A to
//! key B (install B, use B, remove A) through the cluster itself while calls run, and no
//! call fails; afterwards a process that knows only A is refused.

mod support;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mpreg::keys::{self, ClusterKey};
use mpreg::proto::crypto::fingerprint;
use mpreg::Node;

use support::{cluster, local, wait_until};

const A: &[u8] = b"old key of the cluster";
const B: &[u8] = b"new key of the cluster";

fn write(dir: &Path, name: &str, contents: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, contents).unwrap();
    p
}

/// A short-lived admin process, as `mpreg keys` starts, holding the key in `file`.
async fn admin(name: &str, file: &Path, seed: &Node) -> Node {
    local(name)
        .listen(false)
        .builtins(false)
        .secret_file(file)
        .seed(seed.addr().unwrap())
        .start()
        .await
        .expect("an admin holding a cluster key connects")
}

fn all_changed(changes: keys::Changes, what: &str) {
    assert_eq!(
        changes.len(),
        3,
        "{what}: every member answered: {changes:?}"
    );
    for (node, r) in changes {
        assert!(matches!(r, Ok(true)), "{what} on {node}: {r:?}");
    }
}

fn names(k: &ClusterKey) -> Vec<&str> {
    k.nodes.iter().map(String::as_str).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_rotates_from_a_to_b_while_calls_run() {
    let dir = support::scratch::Scratch::new("keys");
    // Each node its own secret file: nodes write their keyring back to it.
    let files: Vec<PathBuf> = (1..=3)
        .map(|i| write(&dir, &format!("n{i}.keys"), A))
        .collect();
    let (a_file, b_file) = (write(&dir, "a.key", A), write(&dir, "b.key", B));
    let nodes = cluster(
        (1..=3)
            .map(|i| local(&format!("n{i}")).secret_file(&files[i - 1]))
            .collect(),
    )
    .await;
    for n in &nodes[..2] {
        let me = n.name().to_string();
        n.register("whoami", move |(): ()| me.clone()).unwrap();
    }
    wait_until(Duration::from_secs(10), || {
        nodes[2]
            .members()
            .iter()
            .filter(|m| m.functions.iter().any(|f| f == "whoami"))
            .count()
            == 2
    })
    .await;

    // Calls from n3 to n1 and n2 all along, each counted.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let caller = {
        let (n3, stop, ok, failed) = (nodes[2].clone(), stop.clone(), ok.clone(), failed.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match n3.call::<String>("whoami", ()).await {
                    Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        eprintln!("call failed during the rotation: {e}");
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        })
    };

    let (fa, fb) = (fingerprint(A), fingerprint(B));
    let old = admin("admin-a", &a_file, &nodes[0]).await;
    all_changed(keys::install(&old, B).await.unwrap(), "install B");
    let (listed, failed_nodes) = keys::list(&old).await.unwrap();
    assert!(failed_nodes.is_empty(), "{failed_nodes:?}");
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(
        (listed[0].fingerprint.as_str(), listed[0].primary),
        (fa.as_str(), true)
    );
    assert_eq!(
        (listed[1].fingerprint.as_str(), listed[1].primary),
        (fb.as_str(), false)
    );
    assert_eq!(names(&listed[1]), ["n1", "n2", "n3"]);
    assert!(listed[1].primary_on.is_empty());

    all_changed(keys::use_key(&old, &fb).await.unwrap(), "use B");
    // The old admin, holding only A, still gets in: A is still accepted everywhere.
    let (listed, _) = keys::list(&old).await.unwrap();
    assert_eq!(
        (listed[0].fingerprint.as_str(), listed[0].primary),
        (fb.as_str(), true)
    );
    old.shutdown().await;

    // Removing A takes an admin holding B.
    let new = admin("admin-b", &b_file, &nodes[0]).await;
    all_changed(keys::remove(&new, &fa).await.unwrap(), "remove A");
    let (listed, _) = keys::list(&new).await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].fingerprint, fb);
    assert!(listed[0].primary);
    assert_eq!(names(&listed[0]), ["n1", "n2", "n3"]);

    // Gossip goes on under B alone: every node keeps receiving it and drops none as
    // unauthenticated (a datagram sealed with a key it does not hold would be).
    let received: Vec<u64> = nodes.iter().map(|n| n.stats().gossip_received).collect();
    for (n, before) in nodes.iter().zip(received) {
        wait_until(Duration::from_secs(10), || {
            n.stats().gossip_received > before + 3
        })
        .await;
        assert_eq!(n.stats().dropped_unauthenticated, 0, "{}", n.name());
        assert_eq!(n.members().len(), 2, "{} still sees both others", n.name());
    }
    // Calls go on after the removal too.
    let before = ok.load(Ordering::Relaxed);
    wait_until(Duration::from_secs(10), || {
        ok.load(Ordering::Relaxed) > before + 50
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    caller.await.unwrap();
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "no call failed during the rotation"
    );
    assert!(ok.load(Ordering::Relaxed) > 100, "calls ran throughout");

    // A process that knows only A is refused, with the reason.
    let stale = local("stale").secret_file(&a_file).start().await.unwrap();
    let e = stale
        .connect(&nodes[0].addr().unwrap().to_string())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("wrong shared secret"), "{e}");
    // One that knows B joins.
    let fresh = local("fresh").secret_file(&b_file).start().await.unwrap();
    fresh
        .connect(&nodes[1].addr().unwrap().to_string())
        .await
        .unwrap();

    // The rotation is saved: each node's file now holds B alone.
    for f in &files {
        assert_eq!(std::fs::read(f).unwrap(), [B, b"\n"].concat());
    }
    // Mistakes are refused with a reason: removing the primary, using an unknown key.
    let changes = keys::remove(&new, &fb).await.unwrap();
    let e = changes
        .values()
        .next()
        .unwrap()
        .as_ref()
        .unwrap_err()
        .to_string();
    assert!(e.contains("is the primary"), "{e}");
    let changes = keys::use_key(&new, &fa).await.unwrap();
    let e = changes
        .values()
        .next()
        .unwrap()
        .as_ref()
        .unwrap_err()
        .to_string();
    assert!(e.contains("no key with fingerprint"), "{e}");

    for n in [stale, fresh, new] {
        n.shutdown().await;
    }
    for n in nodes {
        n.shutdown().await;
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_secret_file_may_list_several_keys_the_first_primary() {
    let dir = support::scratch::Scratch::new("keyring");
    let both = write(&dir, "both", b"primary key\n\nsecond key  \n");
    let second = write(&dir, "second", b"second key\n");
    let server = local("ring").secret_file(&both).start().await.unwrap();
    // Accepts a peer holding only its second key.
    let peer = local("peer").secret_file(&second).start().await.unwrap();
    peer.connect(&server.addr().unwrap().to_string())
        .await
        .unwrap();
    let (listed, _) = keys::list(&peer).await.unwrap();
    let ring = listed
        .iter()
        .filter(|k| k.nodes.iter().any(|n| n == "ring"));
    let fps: Vec<(&str, bool)> = ring
        .map(|k| {
            (
                k.fingerprint.as_str(),
                k.primary_on.contains(&"ring".to_string()),
            )
        })
        .collect();
    assert!(
        fps.contains(&(fingerprint(b"primary key").as_str(), true)),
        "{fps:?}"
    );
    assert!(
        fps.contains(&(fingerprint(b"second key").as_str(), false)),
        "{fps:?}"
    );
    server.shutdown().await;
    peer.shutdown().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `mpreg keys` does the same from the command line, with the caller's own key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_rotates_and_lists_fingerprints_only() {
    let dir = support::scratch::Scratch::new("keys-cli");
    let files: Vec<PathBuf> = (1..=2)
        .map(|i| write(&dir, &format!("n{i}.keys"), A))
        .collect();
    let (a_file, b_file) = (write(&dir, "a.key", A), write(&dir, "b.key", B));
    let nodes = cluster(
        (1..=2)
            .map(|i| local(&format!("c{i}")).secret_file(&files[i - 1]))
            .collect(),
    )
    .await;
    let seed = nodes[0].addr().unwrap().to_string();
    let cli = |args: Vec<String>, key: &Path| {
        let mut all = args;
        all.extend(["--seed".into(), seed.clone(), "--secret-file".into()]);
        all.push(key.to_string_lossy().into_owned());
        tokio::task::spawn_blocking(move || {
            let refs: Vec<&str> = all.iter().map(String::as_str).collect();
            support::mpreg(&refs)
        })
    };
    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let (fa, fb) = (fingerprint(A), fingerprint(B));

    let (ok, out, err) = cli(args(&["keys", "list", "--json"]), &a_file)
        .await
        .unwrap();
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["fingerprint"], fa.as_str());
    assert_eq!(v[0]["primary"], true);
    assert_eq!(v[0]["nodes"], serde_json::json!(["c1", "c2"]));
    assert!(!out.contains("old key"), "never the key itself: {out}");

    let b = b_file.to_string_lossy().into_owned();
    let (ok, out, err) = cli(args(&["keys", "install", &b]), &a_file).await.unwrap();
    assert!(ok, "{err}");
    assert_eq!(out, "c1: installed\nc2: installed");
    let (ok, out, err) = cli(args(&["keys", "use", &fb]), &a_file).await.unwrap();
    assert!(ok, "{err}");
    assert_eq!(out, "c1: made primary\nc2: made primary");
    let a = a_file.to_string_lossy().into_owned();
    let (ok, out, err) = cli(args(&["keys", "remove", &a]), &b_file).await.unwrap();
    assert!(ok, "{err}");
    assert_eq!(out, "c1: removed\nc2: removed");

    let (ok, out, err) = cli(args(&["keys", "list"]), &b_file).await.unwrap();
    assert!(ok, "{err}");
    assert_eq!(
        out,
        format!("FINGERPRINT       PRIMARY   NODES\n{fb}  yes       c1, c2")
    );
    // The old key no longer gets in.
    let (ok, _, err) = cli(args(&["keys", "list"]), &a_file).await.unwrap();
    assert!(!ok);
    assert!(err.contains("wrong shared secret"), "{err}");

    for n in nodes {
        n.shutdown().await;
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
