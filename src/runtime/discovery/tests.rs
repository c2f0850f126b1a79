//! Discovery over real sockets, confined to loopback with per-test ports (DESIGN §13:
//! nothing here may send multicast or broadcast out of a real interface).
//!
//! Beacon tests send only to 127.255.255.255 and 127.0.0.1. mDNS tests run in a private
//! network namespace of the test thread when they can (root): mdns-sd joins its multicast
//! group on every interface of the namespace it starts in, which makes the kernel send IGMP
//! reports out of real interfaces even though no mDNS message leaves `lo`.

use crate::proto::keyring::{Keyring, SharedKeyring};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::*;

/// A free UDP port (ephemeral range, so never 5353 or 7701).
fn free_port() -> u16 {
    let port = std::net::UdpSocket::bind("0.0.0.0:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    assert!(port != 5353 && port != crate::DEFAULT_BEACON_PORT);
    port
}

/// Discovery on `lo` only, with the given ports (0 disables that transport).
fn lo_cfg(
    cluster: &str,
    secret: Option<&[u8]>,
    beacon_port: u16,
    mdns_port: u16,
) -> DiscoveryConfig {
    let interfaces = interfaces::select(&["lo".into()]).expect("lo exists");
    assert!(
        interfaces.iter().all(|i| i.loopback),
        "tests must stay on loopback"
    );
    DiscoveryConfig {
        cluster: cluster.into(),
        secret: secret.map(|s| SharedKeyring::new(Keyring::single(s))),
        interfaces,
        beacon: beacon_port != 0,
        beacon_port,
        beacon_interval: Duration::from_millis(100),
        mdns: mdns_port != 0,
        mdns_port,
        http: None,
    }
}

/// A member with a random id, "listening" on 127.0.0.1:`port`.
fn member(name: &str, port: u16) -> Member {
    Member {
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        id: rand::random(),
        name: name.into(),
        role: "node".into(),
        host: "test-host".into(),
        started_ms: now_ms(),
        bump: 0,
    }
}

/// A running serving discovery and what it reports.
struct Running {
    d: Discovery,
    me: Member,
    found: mpsc::Receiver<Member>,
    tasks: TaskTracker,
}

/// Starts a serving discovery for a new member called `name`.
async fn serve(cfg: &DiscoveryConfig, name: &str) -> Running {
    let me = member(name, free_port());
    let (tx, found) = mpsc::channel(64);
    let tasks = TaskTracker::new();
    let d = Discovery::start(
        cfg.clone(),
        me.clone(),
        1,
        tx,
        &tasks,
        CancellationToken::new(),
        crate::runtime::grid::Clock::default().ticks(),
    )
    .await
    .expect("discovery starts");
    Running {
        d,
        me,
        found,
        tasks,
    }
}

/// Waits until `r` reports member `id`; returns the member and how long it took.
async fn expect_found(r: &mut Running, id: u64, within: Duration) -> (Member, Duration) {
    let start = Instant::now();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, r.found.recv()).await {
            Ok(Some(m)) if m.id == id => return (m, start.elapsed()),
            Ok(Some(_)) => continue,
            _ => panic!(
                "{} did not find {id:x} within {within:?}; stats {:?}",
                r.me.name,
                r.d.stats()
            ),
        }
    }
}

/// Waits until `cond` holds on `r`'s stats.
async fn expect_stat(r: &Running, what: &str, cond: impl Fn(&DiscoveryStats) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cond(&r.d.stats()) {
        assert!(
            Instant::now() < deadline,
            "{}: no {what}; stats {:?}",
            r.me.name,
            r.d.stats()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Stops `r` and checks that its tasks are gone.
async fn stop(r: Running) {
    r.d.stop().await;
    r.d.stop().await; // idempotent
    r.tasks.close();
    tokio::time::timeout(Duration::from_secs(3), r.tasks.wait())
        .await
        .expect("tasks end after stop");
}

#[test]
fn config_comes_from_the_node_config_and_hides_the_secret() {
    let cfg = crate::Config {
        interfaces: vec!["lo".into()],
        cluster: "lab".into(),
        beacon_port: 40001,
        mdns: false,
        ..crate::Config::default()
    };
    let ring = SharedKeyring::new(Keyring::single(b"hunter2"));
    let d = DiscoveryConfig::from_config(&cfg, Some(ring)).unwrap();
    assert_eq!(
        (d.cluster.as_str(), d.beacon, d.beacon_port, d.mdns),
        ("lab", true, 40001, false)
    );
    assert_eq!(d.beacon_interval, DEFAULT_BEACON_INTERVAL);
    assert!(d.interfaces.iter().all(|i| i.loopback));
    assert!(!format!("{d:?}").contains("hunter2"));
    let bad = crate::Config {
        interfaces: vec!["nosuch0".into()],
        ..cfg
    };
    let err = DiscoveryConfig::from_config(&bad, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("nosuch0"), "{err}");
}

#[tokio::test]
async fn beacon_nodes_on_one_host_find_each_other() {
    let cfg = lo_cfg("lab", None, free_port(), 0);
    // A long interval: finding each other must not wait for the periodic announce.
    let cfg = DiscoveryConfig {
        beacon_interval: Duration::from_secs(30),
        ..cfg
    };
    let mut a = serve(&cfg, "a").await;
    let mut b = serve(&cfg, "b").await;
    let (got_b, t_ab) = expect_found(&mut a, b.me.id, Duration::from_secs(3)).await;
    let (got_a, t_ba) = expect_found(&mut b, a.me.id, Duration::from_secs(3)).await;
    println!("beacon: a found b in {t_ab:?}, b found a in {t_ba:?}");
    assert_eq!(got_b, b.me);
    assert_eq!(got_a, a.me);
    assert!(a.d.stats().beacons_sent >= 1 && b.d.stats().beacons_received >= 1);
    stop(a).await;
    stop(b).await;
}

#[tokio::test]
async fn beacon_ignores_other_clusters_and_counts_them() {
    let port = free_port();
    let mut a = serve(&lo_cfg("lab", None, port, 0), "a").await;
    let c = serve(&lo_cfg("other", None, port, 0), "c").await;
    // A third member of `lab` proves that `a` listens while it drops `c`.
    let mut b = serve(&lo_cfg("lab", None, port, 0), "b").await;
    expect_found(&mut a, b.me.id, Duration::from_secs(3)).await;
    expect_stat(&a, "other-cluster drop", |s| s.beacons_other_cluster >= 1).await;
    expect_stat(&c, "other-cluster drop", |s| s.beacons_other_cluster >= 1).await;
    while let Ok(m) = a.found.try_recv() {
        assert_ne!(m.id, c.me.id, "a member of another cluster was reported");
    }
    expect_found(&mut b, a.me.id, Duration::from_secs(3)).await;
    for r in [a, b, c] {
        stop(r).await;
    }
}

#[tokio::test]
async fn beacon_with_secret_drops_unauthenticated_members() {
    let port = free_port();
    let mut a = serve(&lo_cfg("lab", Some(b"s3cret"), port, 0), "a").await;
    let plain = serve(&lo_cfg("lab", None, port, 0), "plain").await;
    let wrong = serve(&lo_cfg("lab", Some(b"wrong"), port, 0), "wrong").await;
    let b = serve(&lo_cfg("lab", Some(b"s3cret"), port, 0), "b").await;
    expect_found(&mut a, b.me.id, Duration::from_secs(3)).await;
    // Both the unsigned and the wrongly signed announces arrive within an interval or two.
    expect_stat(&a, "unauthenticated drops", |s| {
        s.beacons_unauthenticated >= 2
    })
    .await;
    while let Ok(m) = a.found.try_recv() {
        assert!(m.id == b.me.id, "unauthenticated member {m:?} was reported");
    }
    for r in [a, plain, wrong, b] {
        stop(r).await;
    }
}

#[tokio::test]
async fn probe_finds_serving_nodes_in_milliseconds() {
    let port = free_port();
    let cfg = lo_cfg("lab", None, port, 0);
    let a = serve(&cfg, "a").await;
    let b = serve(&cfg, "b").await;
    let start = Instant::now();
    let found = probe(&cfg, Duration::from_secs(2)).await.unwrap();
    let took = start.elapsed();
    println!("beacon probe: found {} members in {took:?}", found.len());
    assert!(took < Duration::from_millis(500), "probe took {took:?}");
    let mut ids: Vec<u64> = found.iter().map(|m| m.id).collect();
    ids.sort();
    let mut want = vec![a.me.id, b.me.id];
    want.sort();
    assert_eq!(
        ids, want,
        "both nodes of this host answer the one broadcast"
    );
    stop(a).await;
    stop(b).await;
}

#[tokio::test]
async fn probe_without_answer_waits_for_the_deadline() {
    let cfg = lo_cfg("lab", None, free_port(), 0);
    let start = Instant::now();
    assert!(probe(&cfg, Duration::from_millis(150))
        .await
        .unwrap()
        .is_empty());
    assert!(start.elapsed() >= Duration::from_millis(150));
    let off = lo_cfg("lab", None, 0, 0);
    assert!(probe(&off, Duration::from_secs(10))
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn beacon_port_conflict_names_the_port() {
    // A socket without SO_REUSEPORT holds the port: binding it again must fail clearly.
    let holder = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    let port = holder.local_addr().unwrap().port();
    let (tx, _rx) = mpsc::channel(1);
    let r = Discovery::start(
        lo_cfg("lab", None, port, 0),
        member("x", 1),
        0,
        tx,
        &TaskTracker::new(),
        CancellationToken::new(),
        crate::runtime::grid::Clock::default().ticks(),
    )
    .await;
    let err = r.err().expect("port in use").to_string();
    assert!(err.contains(&port.to_string()), "{err}");
}

/// Moves the calling thread (and every thread and socket it creates from now on) into a
/// fresh network namespace with only `lo`, up. Needs CAP_SYS_ADMIN.
#[cfg(target_os = "linux")]
fn isolate_network() -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    use std::os::raw::{c_char, c_int, c_short, c_ulong};
    const CLONE_NEWNET: c_int = 0x4000_0000;
    const SIOCGIFFLAGS: c_ulong = 0x8913;
    const SIOCSIFFLAGS: c_ulong = 0x8914;
    const IFF_UP: c_short = 0x1;
    /// `struct ifreq`: the name, then a 24-byte union of which we use the flags.
    #[repr(C)]
    struct IfReq {
        name: [c_char; 16],
        flags: c_short,
        pad: [u8; 22],
    }
    extern "C" {
        fn unshare(flags: c_int) -> c_int;
        fn ioctl(fd: c_int, request: c_ulong, ...) -> c_int;
    }
    // SAFETY: unshare takes flags only; CLONE_NEWNET affects this thread alone.
    if unsafe { unshare(CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let sock = std::net::UdpSocket::bind("0.0.0.0:0")?;
    let mut req = IfReq {
        name: [0; 16],
        flags: 0,
        pad: [0; 22],
    };
    req.name[0] = b'l' as c_char;
    req.name[1] = b'o' as c_char;
    // SAFETY: `req` is a valid, initialised `struct ifreq` that outlives both calls.
    unsafe {
        if ioctl(sock.as_raw_fd(), SIOCGIFFLAGS, &mut req as *mut IfReq) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        req.flags |= IFF_UP;
        if ioctl(sock.as_raw_fd(), SIOCSIFFLAGS, &mut req as *mut IfReq) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Whether an mDNS test may run here: in a private namespace, or where no interface but
/// loopback has an IPv4 address (e.g. inside a container with `--network none`).
fn mdns_may_run() -> bool {
    #[cfg(target_os = "linux")]
    match isolate_network() {
        Ok(()) => return true,
        Err(e) => eprintln!("cannot enter a private network namespace: {e}"),
    }
    let real = if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .any(|i| !i.is_loopback() && i.ip().is_ipv4());
    // CI runs as root: there a failure to isolate is a failure, not a skip.
    assert!(
        !(real && std::env::var_os("CI").is_some()),
        "mDNS test cannot run isolated under CI"
    );
    if real {
        eprintln!(
            "SKIPPED: mdns-sd would join its multicast group on real interfaces (IGMP); \
             run as root to test mDNS in a private network namespace"
        );
    }
    !real
}

#[tokio::test]
async fn mdns_nodes_find_each_other_and_clients_find_them() {
    if !mdns_may_run() {
        return;
    }
    let cfg = lo_cfg("lab", Some(b"s3cret"), 0, free_port());
    let start = Instant::now();
    let mut a = serve(&cfg, "a").await;
    let mut b = serve(&cfg, "b").await;
    let (got_b, t_ab) = expect_found(&mut a, b.me.id, Duration::from_secs(10)).await;
    let (got_a, t_ba) = expect_found(&mut b, a.me.id, Duration::from_secs(10)).await;
    println!(
        "mdns: a found b in {t_ab:?}, then b found a in {t_ba:?} ({:?} in all)",
        start.elapsed()
    );
    assert_eq!((got_b.addr, got_b.name.as_str()), (b.me.addr, "b"));
    assert_eq!((got_a.addr, got_a.id), (a.me.addr, a.me.id));
    a.d.set_catalog_version(2);

    // Another cluster on the same port is counted, not reported.
    let other = serve(&lo_cfg("other", None, 0, cfg.mdns_port), "other").await;
    expect_stat(&a, "mDNS other-cluster drop", |s| s.mdns_other_cluster >= 1).await;
    while let Ok(m) = a.found.try_recv() {
        assert_ne!(m.id, other.me.id);
    }

    let t = Instant::now();
    let found = probe(&cfg, Duration::from_secs(10)).await.unwrap();
    println!(
        "mdns probe: found {} members in {:?}",
        found.len(),
        t.elapsed()
    );
    assert!(
        found.iter().any(|m| m.id == a.me.id || m.id == b.me.id),
        "{found:?}"
    );
    assert!(found.iter().all(|m| m.id != other.me.id));
    for r in [a, b, other] {
        stop(r).await;
    }
}
