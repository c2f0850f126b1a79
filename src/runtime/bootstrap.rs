//! Starting a node's network presence: the listening socket pair (TCP for calls, UDP for
//! gossip, one port number), joining the membership as a member, or, for a client, learning
//! the cluster from one node.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::proto::membership::{lan_config, Membership};
use crate::runtime::datagrams::Datagrams;
use crate::runtime::discovery::{probe, Discovery, DiscoveryConfig};
use crate::runtime::gossip::{self, Command, COMMAND_QUEUE};
use crate::runtime::{listener, Connection, Shared};

/// Attempts at finding a port free for both TCP and UDP when the port is chosen by the OS.
const PORT_ATTEMPTS: usize = 8;

/// Longest a client waits for the member list of the node it reached.
const MEMBERS_TIMEOUT: Duration = Duration::from_secs(3);

/// Binds TCP and UDP on the same port (the configured one, or one the OS picks that is free
/// for both).
pub(crate) async fn bind_pair(bind: IpAddr, port: u16) -> Result<(TcpListener, UdpSocket)> {
    let attempts = if port == 0 { PORT_ATTEMPTS } else { 1 };
    let mut last = None;
    for _ in 0..attempts {
        let addr = SocketAddr::new(bind, port);
        let tcp = TcpListener::bind(addr)
            .await
            .map_err(|e| Error::io(format!("cannot listen on {addr}"), e))?;
        let local = tcp
            .local_addr()
            .map_err(|e| Error::io("cannot read the listening address", e))?;
        match UdpSocket::bind(local).await {
            Ok(udp) => return Ok((tcp, udp)),
            Err(e) => last = Some((local, e)),
        }
    }
    let (local, e) = last.expect("at least one attempt");
    Err(Error::io(
        format!("cannot bind UDP {local} for gossip (TCP got it)"),
        e,
    ))
}

/// The address other members should use for us: the bind address if it is specific, else
/// the first selected non-loopback interface, else loopback.
pub(crate) fn advertise_ip(shared: &Shared) -> IpAddr {
    let bind = shared.config.bind;
    if !bind.is_unspecified() {
        return bind;
    }
    match crate::runtime::discovery::interfaces::select(&shared.config.interfaces) {
        Ok(ifaces) => ifaces
            .iter()
            .find(|i| !i.loopback)
            .map(|i| IpAddr::V4(i.ip))
            .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        Err(e) => {
            tracing::warn!(error = %e, "cannot list interfaces; advertising 127.0.0.1");
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        }
    }
}

/// The sockets of a member that listens but has not joined the membership yet.
pub(crate) struct Listening {
    udp: Datagrams,
}

/// Binds TCP and UDP and starts accepting connections; the membership starts later, with
/// [`join`], once the node's name is known to be free.
pub(crate) async fn listen(shared: &Arc<Shared>) -> Result<Listening> {
    let (tcp, udp) = bind_pair(shared.config.bind, shared.config.port).await?;
    let port = tcp
        .local_addr()
        .map_err(|e| Error::io("cannot read the listening address", e))?
        .port();
    shared.set_listen_port(port);
    let me = gossip::identity(shared, SocketAddr::new(advertise_ip(shared), port));
    tracing::info!(node = %shared.name, addr = %me.addr, cluster = %shared.cluster, "listening");
    let _ = shared.me.set(me);
    let udp = Datagrams::new(udp).map_err(|e| Error::io("cannot watch the gossip socket", e))?;
    shared.tasks.spawn(listener::run(shared.clone(), tcp));
    Ok(Listening { udp })
}

/// Joins the membership (SWIM over the UDP socket of [`listen`]).
pub(crate) fn join(shared: &Arc<Shared>, sockets: Listening) {
    let me = shared.me.get().cloned().expect("listen() set the identity");
    let seed = rand::random();
    let membership = Membership::new(me, lan_config(16), seed);
    let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
    let _ = shared.gossip.set(tx);
    shared
        .tasks
        .spawn(gossip::run(shared.clone(), sockets.udp, membership, rx));
    shared.tasks.spawn(first_round(shared.clone()));
}

/// Marks the member's first discovery round done (readiness, `/health/ready`) when SWIM
/// reports a first peer alive, or when the discovery wait, counted from start, ends with
/// none: a lone member is ready too, it simply is the whole cluster.
async fn first_round(shared: Arc<Shared>) {
    let until = tokio::time::Instant::from_std(shared.started + shared.config.discovery_wait());
    let mut changes = shared.view_epoch.subscribe();
    loop {
        changes.mark_unchanged();
        if !shared.directory.read().is_empty() {
            break;
        }
        tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            _ = tokio::time::sleep_until(until) => break,
            r = changes.changed() => if r.is_err() { break },
        }
    }
    shared
        .first_round_done
        .store(true, std::sync::atomic::Ordering::Release);
    tracing::debug!(node = %shared.name, peers = shared.directory.read().len(), "first discovery round done: ready");
}

/// How long a named node that found no peer by seeds looks for one by discovery before
/// it takes its name (a beacon answer on a LAN takes milliseconds).
const CLAIM_PROBE: Duration = Duration::from_millis(600);

/// Checks, before joining, that no live node elsewhere holds our name (DESIGN §3): asks
/// a node of the cluster (a seed, else one found by discovery) for its view; a holder that
/// answers a dial is live and the start fails with [`Error::NameTaken`]. A holder that
/// does not answer is a dead predecessor (a restart), which joining replaces.
pub(crate) async fn claim_name(shared: &Arc<Shared>) -> Result<()> {
    let mut via = shared
        .connections()
        .into_iter()
        .find(|c| c.peer.listen_port != 0);
    if via.is_none() {
        let cfg = DiscoveryConfig::from_config(&shared.config, shared.secret.clone())?;
        if cfg.beacon || cfg.mdns {
            let wait = shared.config.discovery_wait().min(CLAIM_PROBE);
            for m in probe(&cfg, wait).await.unwrap_or_default() {
                if let Ok(c) = shared.connect_to(&m.addr.to_string()).await {
                    via = Some(c);
                    break;
                }
            }
        }
    }
    let Some(via) = via else { return Ok(()) };
    let view = via.members(MEMBERS_TIMEOUT).await?;
    let holder = view
        .members
        .iter()
        .find(|i| i.member.name == shared.name && i.member.id != shared.id);
    let Some(holder) = holder else { return Ok(()) };
    let addr = holder.member.addr.to_string();
    match shared.connect_to(&addr).await {
        Ok(_) => Err(Error::NameTaken {
            name: shared.name.clone(),
            host: holder.member.host.clone(),
            addr,
        }),
        Err(e) => {
            tracing::info!(name = %shared.name, holder = ?holder.member, error = %e,
                "the name's holder does not answer; replacing it");
            Ok(())
        }
    }
}

/// How often members re-announce to their seeds. SWIM forgets members it declared down
/// after a while; without broadcast discovery, re-announcing is what merges two halves of
/// a healed partition (or islands left by heavy loss) back together.
const SEED_REANNOUNCE: Duration = Duration::from_secs(5);

/// Asks SWIM to join through each seed now and every few seconds.
pub(crate) async fn announce_seeds(shared: &Arc<Shared>, seeds: &[String]) {
    if seeds.is_empty() {
        return;
    }
    announce_once(shared, seeds).await;
    let (s, seeds) = (shared.clone(), seeds.to_vec());
    shared.tasks.spawn(async move {
        loop {
            tokio::select! {
                _ = s.shutdown.cancelled() => break,
                _ = tokio::time::sleep(SEED_REANNOUNCE) => announce_once(&s, &seeds).await,
            }
        }
    });
}

/// Asks SWIM to join through each seed — resolved here because seeds may be host names.
async fn announce_once(shared: &Shared, seeds: &[String]) {
    let Some(tx) = shared.gossip.get() else {
        return;
    };
    for seed in seeds {
        match tokio::net::lookup_host(seed.as_str()).await {
            Ok(addrs) => {
                for a in addrs.filter(SocketAddr::is_ipv4) {
                    let _ = tx.send(Command::Announce(a)).await;
                }
            }
            Err(e) => tracing::warn!(%seed, error = %e, "cannot resolve seed"),
        }
    }
}

/// A client learns the cluster from the first node it is connected to.
pub(crate) async fn learn_members(shared: &Arc<Shared>, conn: &Connection) -> Result<()> {
    let msg = conn.members(MEMBERS_TIMEOUT).await?;
    shared.adopt_members(&msg);
    shared.mailbox.membership_changed(shared);
    Ok(())
}

/// Members found by discovery queued for the membership task before being dropped (they
/// are found again by the next beacon or mDNS answer).
const FOUND_QUEUE: usize = 256;

/// Starts beacon and mDNS for a member; what they find is announced to SWIM.
pub(crate) async fn start_discovery(shared: &Arc<Shared>) -> Result<()> {
    let mut cfg = DiscoveryConfig::from_config(&shared.config, shared.secret.clone())?;
    cfg.http = shared.http_addr.get().copied();
    if !cfg.beacon && !cfg.mdns {
        return Ok(());
    }
    let me = shared.me.get().cloned().expect("members have an identity");
    let version = shared.catalog_version();
    let (tx, mut rx) = mpsc::channel(FOUND_QUEUE);
    let (tasks, shutdown, ticks) = (&shared.tasks, shared.shutdown.clone(), shared.grid.ticks());
    let d = Discovery::start(cfg, me, version, tx, tasks, shutdown, ticks).await?;
    let _ = shared.discovery.set(d);
    let s = shared.clone();
    shared.tasks.spawn(async move {
        loop {
            let found = tokio::select! {
                _ = s.shutdown.cancelled() => break,
                m = rx.recv() => m,
            };
            let Some(m) = found else { break };
            let known = s.directory.read().contains_key(&m.id);
            if !known {
                if let Some(g) = s.gossip.get() {
                    let _ = g.try_send(Command::Announce(m.addr));
                }
            }
        }
    });
    Ok(())
}

/// A client without seeds: find nodes by discovery and connect to the first that accepts.
pub(crate) async fn discover_and_connect(shared: &Arc<Shared>) -> Result<Option<Arc<Connection>>> {
    let cfg = DiscoveryConfig::from_config(&shared.config, shared.secret.clone())?;
    if !cfg.beacon && !cfg.mdns {
        return Ok(None);
    }
    let wait = shared.config.discovery_wait();
    let found = probe(&cfg, wait).await?;
    if found.is_empty() {
        shared.seed_errors.lock().insert(
            "discovery".into(),
            format!(
                "discovery found no node within {wait:?} (cluster `{}`, beacon {}, mDNS {})",
                shared.cluster,
                if cfg.beacon {
                    format!("port {}", cfg.beacon_port)
                } else {
                    "off".into()
                },
                if cfg.mdns {
                    format!("port {}", cfg.mdns_port)
                } else {
                    "off".into()
                },
            ),
        );
    }
    for m in found {
        match shared.connect_to(&m.addr.to_string()).await {
            Ok(c) => return Ok(Some(c)),
            Err(e) => {
                shared
                    .seed_errors
                    .lock()
                    .insert(m.addr.to_string(), e.to_string());
            }
        }
    }
    Ok(None)
}
