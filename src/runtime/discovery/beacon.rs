//! UDP broadcast beacon (DESIGN §4, way 2).
//!
//! Every serving node of a host binds the same well-known port on `0.0.0.0` with
//! `SO_REUSEPORT`, so each of them receives every broadcast sent to that port. Unicast to
//! that port would reach only one of them, so everything a node *sends* goes out of a second,
//! ephemeral socket whose address is its own: replies to it reach exactly that node.
//!
//! - `announce` (broadcast, at start and every `beacon_interval` while the node hears no
//!   other, more slowly once it does: see [`announce_every`]): "I am this member".
//!   A node answers the announce of a member it has not heard from lately with a unicast
//!   `answer`, so a newcomer learns every existing node at once instead of one interval later.
//! - `probe` (broadcast by a client, from its own ephemeral socket): every node answers
//!   with a unicast `answer`.
//!
//! Every datagram is sealed by [`crate::proto::datagram`] (cluster tag, sender id and
//! counter, destination; encrypted with a secret); rejected ones are dropped and counted by
//! reason.
//! With a secret each is accepted at most once: broadcasts are sealed anew for every
//! broadcast address and every send, answers are bound to the id of the node or client
//! that asked, and a client probes under a random sender id of its own.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{bump, now_ms, Counters, DiscoveryConfig, Sink};
use crate::proto::beacon::{announce_every, stale_after, BeaconKind, Payload};
use crate::proto::datagram::{self, Kind, Reject, ReplayWindow, Stamp, ANYONE};
use crate::proto::keyring::SharedKeyring;
use crate::proto::member::Member;
use crate::runtime::datagrams::Datagrams;
use crate::runtime::grid;

/// Largest datagram we read: the largest UDP payload, so that a member with very long
/// names is not cut short (beacons are usually a few hundred bytes).
const MAX_DATAGRAM: usize = 65_536;

/// When a client sends its probes, as offsets from the start: the first immediately, the
/// retries cover a lost datagram or a node still binding. After the last, every second.
const PROBE_SCHEDULE_MS: [u64; 4] = [0, 50, 200, 500];

/// Seals and opens the beacon datagrams of one cluster, counting what it rejects.
struct Envelope {
    tag: [u8; 8],
    secret: Option<SharedKeyring>,
    counters: Arc<Counters>,
    /// Our sender id: the node id of a serving node, a random one for a probing client.
    me: u64,
    /// Counter of our next beacon.
    next: u64,
    /// Our HTTP gateway, told in announces and answers.
    http: Option<String>,
    /// Beacon counters accepted per sender (with a secret).
    window: ReplayWindow,
}

impl Envelope {
    /// The envelope of `cfg`'s cluster for sender `me`.
    fn new(cfg: &DiscoveryConfig, counters: Arc<Counters>, me: u64) -> Self {
        Envelope {
            tag: datagram::cluster_tag(&cfg.cluster),
            secret: cfg.secret.clone(),
            counters,
            me,
            next: 0,
            http: cfg.http.map(|a| a.to_string()),
            window: ReplayWindow::default(),
        }
    }

    /// The datagram carrying `kind` (and `member`), for node `to` (or [`ANYONE`]). Each
    /// call takes a new counter: a sealed datagram is accepted once, so it is never resent.
    fn seal(&mut self, kind: BeaconKind, member: Option<&Member>, to: u64) -> Vec<u8> {
        let payload = Payload {
            kind,
            member: member.cloned(),
            http: self.http.clone().filter(|_| kind != BeaconKind::Probe),
        };
        let body = payload.encode();
        let stamp = Stamp {
            sender: self.me,
            counter: self.next,
            to,
        };
        self.next += 1;
        let ring = self.secret.as_ref().map(|k| k.get());
        datagram::seal(
            Kind::Beacon,
            &self.tag,
            ring.as_ref().map(|r| r.primary()),
            now_ms(),
            stamp,
            &body,
        )
    }

    /// The payload of a received datagram and its sender id, or `None` (counted) when it
    /// must be dropped.
    fn open(&mut self, data: &[u8]) -> Option<(Payload, u64)> {
        let c = &self.counters;
        let ring = self.secret.as_ref().map(|k| k.get());
        let opened = datagram::open_checked(
            data,
            &self.tag,
            ring.as_deref(),
            now_ms(),
            Kind::Beacon,
            self.me,
            &mut self.window,
        );
        let (body, sender) = match opened {
            Ok(d) => (d.payload, d.stamp.sender),
            Err(Reject::Malformed) => return count(&c.beacons_malformed),
            Err(Reject::OtherCluster) => return count(&c.beacons_other_cluster),
            Err(Reject::Unauthenticated) => return count(&c.beacons_unauthenticated),
            Err(Reject::Replayed) => {
                tracing::debug!("replayed beacon datagram dropped");
                return count(&c.beacons_replayed);
            }
        };
        match Payload::decode(&body) {
            Ok(p) if p.kind == BeaconKind::Probe || p.member.is_some() => Some((p, sender)),
            _ => count(&c.beacons_malformed),
        }
    }
}

/// Counts a dropped datagram.
fn count<T>(c: &std::sync::atomic::AtomicU64) -> Option<T> {
    bump(c);
    None
}

/// The address to reach `m` at: its own, unless it announced an unspecified IP (a node
/// listening on 0.0.0.0), in which case the address the datagram came from.
fn contact(mut m: Member, src: SocketAddr) -> Member {
    if m.addr.ip().is_unspecified() {
        m.addr.set_ip(src.ip());
    }
    m
}

/// A non-blocking UDP socket on `0.0.0.0:port` that may send broadcasts; `shared` lets
/// every node of the host bind the same port.
fn udp_socket(port: u16, shared: bool) -> std::io::Result<Datagrams> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    if shared {
        s.set_reuse_address(true)?;
        // Where SO_REUSEPORT does not exist, only the first node of a host gets the port.
        #[cfg(all(
            unix,
            not(any(
                target_os = "solaris",
                target_os = "illumos",
                target_os = "cygwin",
                target_os = "nuttx",
                target_os = "wasi"
            ))
        ))]
        s.set_reuse_port(true)?;
    }
    s.set_broadcast(true)?;
    s.set_nonblocking(true)?;
    s.bind(&SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port).into())?;
    Datagrams::from_std(s.into())
}

/// Broadcasts a beacon of `kind` on every selected broadcast address, counting. Each copy
/// is sealed on its own: a receiver reached by two of them (a node of this host hears the
/// copies sent to `lo` and to its LAN) must not take the second one for a replay.
async fn broadcast(
    sock: &Datagrams,
    cfg: &DiscoveryConfig,
    env: &mut Envelope,
    kind: BeaconKind,
    member: Option<&Member>,
) {
    for ip in cfg.broadcasts() {
        let data = env.seal(kind, member, ANYONE);
        let to = SocketAddr::from((ip, cfg.beacon_port));
        send(sock, to, &data, &env.counters).await;
    }
}

/// Sends one datagram, counting success or failure (failures are normal on an interface
/// that just went down, so they are only logged at debug).
async fn send(sock: &Datagrams, to: SocketAddr, data: &[u8], counters: &Counters) {
    match sock.send_to(data, to).await {
        Ok(_) => bump(&counters.beacons_sent),
        Err(e) => {
            bump(&counters.beacon_send_errors);
            tracing::debug!(%to, error = %e, "beacon send failed");
        }
    }
}

/// The beacon of a serving node: announces, answers, and reports who it hears.
pub(crate) struct Server {
    cfg: Arc<DiscoveryConfig>,
    me: Member,
    sink: Sink,
    env: Envelope,
    /// The host-wide beacon port: receives announces and probes.
    shared: Datagrams,
    /// This node's own address: sends everything, receives answers.
    own: Datagrams,
    /// When each other member was last heard, to answer only the announces of newcomers.
    heard: HashMap<u64, Instant>,
}

impl Server {
    /// Binds both sockets. The error names the port, e.g. when another program holds it
    /// without `SO_REUSEPORT`.
    pub(crate) fn bind(cfg: Arc<DiscoveryConfig>, me: Member, sink: Sink) -> crate::Result<Self> {
        let port = cfg.beacon_port;
        let shared = udp_socket(port, true).map_err(|e| {
            crate::Error::io(
                format!("cannot bind the discovery beacon port 0.0.0.0:{port} (UDP)"),
                e,
            )
        })?;
        let own = udp_socket(0, false).map_err(|e| {
            crate::Error::io(
                "cannot bind an ephemeral UDP socket for discovery beacons",
                e,
            )
        })?;
        Ok(Server {
            env: Envelope::new(&cfg, sink.counters.clone(), me.id),
            cfg,
            me,
            sink,
            shared,
            own,
            heard: HashMap::new(),
        })
    }

    /// Runs until `cancel`: announces at once and every interval (on the grid's ticks),
    /// and handles what arrives on either socket.
    pub(crate) async fn run(mut self, cancel: CancellationToken, mut ticks: grid::Ticks) {
        let mut next = Instant::now();
        let mut shared_buf = vec![0u8; MAX_DATAGRAM];
        let mut own_buf = vec![0u8; MAX_DATAGRAM];
        loop {
            if grid::due(next, Instant::now()) {
                self.announce().await;
                let every = announce_every(self.cfg.beacon_interval, self.heard.len());
                next = grid::snap(Instant::now() + every);
            }
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = ticks.until(next) => {}
                r = self.shared.recv_from(&mut shared_buf) => self.received(r, &shared_buf).await,
                r = self.own.recv_from(&mut own_buf) => self.received(r, &own_buf).await,
            }
        }
    }

    /// Broadcasts an announce and forgets members not heard from for a while.
    async fn announce(&mut self) {
        let me = Some(&self.me);
        broadcast(
            &self.own,
            &self.cfg,
            &mut self.env,
            BeaconKind::Announce,
            me,
        )
        .await;
        let stale = self.stale_after();
        self.heard.retain(|_, at| at.elapsed() < stale);
    }

    /// How long without hearing from a member before its next announce is answered again
    /// (and before it stops counting as heard): see [`stale_after`].
    fn stale_after(&self) -> Duration {
        stale_after(self.cfg.beacon_interval, self.heard.len())
    }

    /// Handles the outcome of one `recv_from` on either socket.
    async fn received(&mut self, r: std::io::Result<(usize, SocketAddr)>, buf: &[u8]) {
        let (n, src) = match r {
            Ok(x) => x,
            Err(e) => {
                // E.g. ECONNREFUSED left by an ICMP error for an answer to a client that
                // already left: harmless, the socket stays usable.
                tracing::debug!(error = %e, "beacon receive failed");
                return;
            }
        };
        if !accept_source(&self.cfg, src, &self.sink.counters) {
            return;
        }
        let Some((p, sender)) = self.env.open(&buf[..n]) else {
            return;
        };
        self.handle(p, sender, src).await;
    }

    /// Acts on a valid beacon of `sender` from `src`.
    async fn handle(&mut self, p: Payload, sender: u64, src: SocketAddr) {
        if p.kind == BeaconKind::Probe {
            bump(&self.sink.counters.beacons_received);
            return self.answer(src, sender).await;
        }
        // `Envelope::open` lets an announce or answer through only with a member.
        let Some(m) = p.member else { return };
        if m.id == self.me.id {
            return; // our own announce, looped back by the broadcast
        }
        bump(&self.sink.counters.beacons_received);
        let stale = self.stale_after();
        let newcomer = self
            .heard
            .insert(m.id, Instant::now())
            .is_none_or(|at| at.elapsed() >= stale);
        self.sink.report(contact(m, src));
        if p.kind == BeaconKind::Announce && newcomer {
            self.answer(src, sender).await;
        }
    }

    /// Tells sender `id`, at `to`, about us (unicast, bound to that sender).
    async fn answer(&mut self, to: SocketAddr, id: u64) {
        let data = self.env.seal(BeaconKind::Answer, Some(&self.me), id);
        send(&self.own, to, &data, &self.sink.counters).await;
    }
}

/// Whether a datagram from `src` came from a selected interface's subnet; counts it if not.
fn accept_source(cfg: &DiscoveryConfig, src: SocketAddr, counters: &Counters) -> bool {
    let ok = match src {
        SocketAddr::V4(a) => cfg.on_selected(*a.ip()),
        SocketAddr::V6(_) => false,
    };
    if !ok {
        bump(&counters.beacons_off_interface);
    }
    ok
}

/// A client's probe: who answers on the beacon port right now?
pub(crate) struct Prober {
    sock: Datagrams,
}

impl Prober {
    /// Binds the client's ephemeral socket.
    pub(crate) fn bind() -> crate::Result<Self> {
        let sock = udp_socket(0, false).map_err(|e| {
            crate::Error::io(
                "cannot bind an ephemeral UDP socket for discovery probes",
                e,
            )
        })?;
        Ok(Prober { sock })
    }

    /// Probes on the schedule of [`PROBE_SCHEDULE_MS`] and reports every answer to `sink`,
    /// until `stop`.
    pub(crate) async fn run(self, cfg: &DiscoveryConfig, sink: Sink, stop: CancellationToken) {
        let mut env = Envelope::new(cfg, sink.counters.clone(), rand::random());
        let start = Instant::now();
        let mut sent = 0usize;
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            let next = start + probe_offset(sent);
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep_until(next) => {
                    broadcast(&self.sock, cfg, &mut env, BeaconKind::Probe, None).await;
                    sent += 1;
                }
                r = self.sock.recv_from(&mut buf) => {
                    let Ok((n, src)) = r else { continue };
                    if !accept_source(cfg, src, &sink.counters) {
                        continue;
                    }
                    if let Some((Payload { kind: BeaconKind::Answer, member: Some(m), .. }, _)) = env.open(&buf[..n]) {
                        bump(&sink.counters.beacons_received);
                        sink.report(contact(m, src));
                    }
                }
            }
        }
    }
}

/// When the `n`-th probe (from 0) goes out, counted from the start.
fn probe_offset(n: usize) -> Duration {
    let last = PROBE_SCHEDULE_MS.len() - 1;
    let ms = match PROBE_SCHEDULE_MS.get(n) {
        Some(ms) => *ms,
        None => PROBE_SCHEDULE_MS[last] + 1000 * (n - last) as u64,
    };
    Duration::from_millis(ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::keyring::Keyring;

    fn cfg(cluster: &str, secret: Option<&[u8]>) -> DiscoveryConfig {
        DiscoveryConfig {
            cluster: cluster.into(),
            secret: secret.map(|s| SharedKeyring::new(Keyring::single(s))),
            interfaces: super::super::interfaces::select(&["127.0.0.1".into()]).unwrap(),
            beacon: true,
            beacon_port: 1,
            beacon_interval: Duration::from_secs(1),
            mdns: false,
            mdns_port: 1,
            http: None,
        }
    }

    fn member(addr: &str) -> Member {
        Member {
            addr: addr.parse().unwrap(),
            id: 42,
            name: "n".into(),
            role: "node".into(),
            host: "h".into(),
            started_ms: 1,
            bump: 0,
        }
    }

    #[test]
    fn announces_and_answers_carry_the_gateway_and_probes_do_not() {
        let mut c = cfg("lab", None);
        c.http = Some("127.0.0.1:7780".parse().unwrap());
        let counters = Arc::new(Counters::default());
        let mut node = Envelope::new(&c, counters.clone(), 1);
        let mut client = Envelope::new(&c, counters, 2);
        let m = member("127.0.0.1:7700");
        for kind in [BeaconKind::Announce, BeaconKind::Answer] {
            let (p, _) = client.open(&node.seal(kind, Some(&m), ANYONE)).unwrap();
            assert_eq!(p.http.as_deref(), Some("127.0.0.1:7780"), "{kind:?}");
        }
        let (p, _) = client
            .open(&node.seal(BeaconKind::Probe, None, ANYONE))
            .unwrap();
        assert_eq!(p.http, None);
    }

    #[test]
    fn payload_roundtrip_and_rejects_are_counted() {
        let counters = Arc::new(Counters::default());
        let mut env = Envelope::new(&cfg("lab", Some(b"s")), counters.clone(), 1);
        let m = member("127.0.0.1:7700");
        let d = env.seal(BeaconKind::Announce, Some(&m), ANYONE);
        let (p, sender) = env.open(&d).unwrap();
        assert_eq!((p.member, sender), (Some(m.clone()), 1));
        let mut other = Envelope::new(&cfg("other", Some(b"s")), counters.clone(), 2);
        assert!(other.open(&d).is_none());
        let mut unsigned = Envelope::new(&cfg("lab", None), counters.clone(), 3);
        assert!(env
            .open(&unsigned.seal(BeaconKind::Probe, None, ANYONE))
            .is_none());
        assert!(env.open(b"garbage").is_none());
        // A valid envelope around an announce without a member is malformed too.
        let body = rmp_serde::to_vec_named(&Payload {
            kind: BeaconKind::Announce,
            member: None,
            http: None,
        })
        .unwrap();
        let tag = datagram::cluster_tag("lab");
        let stamp = Stamp {
            sender: 4,
            counter: 0,
            to: ANYONE,
        };
        let bad = datagram::seal(Kind::Beacon, &tag, Some(b"s"), now_ms(), stamp, &body);
        assert!(env.open(&bad).is_none());
        let s = counters.snapshot();
        assert_eq!(
            (
                s.beacons_other_cluster,
                s.beacons_unauthenticated,
                s.beacons_malformed,
                s.beacons_replayed
            ),
            (1, 1, 2, 0)
        );
    }

    #[test]
    fn replayed_beacons_are_dropped_and_counted() {
        let counters = Arc::new(Counters::default());
        let c = cfg("lab", Some(b"s"));
        let mut node = Envelope::new(&c, counters.clone(), 10);
        let mut client = Envelope::new(&c, Arc::new(Counters::default()), 20);
        let probe = client.seal(BeaconKind::Probe, None, ANYONE);
        assert_eq!(node.open(&probe).map(|(_, from)| from), Some(20));
        assert!(node.open(&probe).is_none(), "a probe is taken once");
        // Each probe is sealed anew, so a client's repeated probes all get through.
        assert!(node
            .open(&client.seal(BeaconKind::Probe, None, ANYONE))
            .is_some());
        // An answer to the client is for the client only.
        let answer = node.seal(BeaconKind::Answer, Some(&member("127.0.0.1:7700")), 20);
        assert!(client.open(&answer).is_some());
        assert!(client.open(&answer).is_none(), "an answer is taken once");
        let mut third = Envelope::new(&c, counters.clone(), 30);
        assert!(third.open(&answer).is_none(), "not addressed to it");
        assert_eq!(counters.snapshot().beacons_replayed, 2);
    }

    #[test]
    fn kinds_are_lowercase_strings_on_the_wire() {
        let bytes = rmp_serde::to_vec_named(&Payload {
            kind: BeaconKind::Probe,
            member: None,
            http: None,
        })
        .unwrap();
        let v: rmpv::Value = rmp_serde::from_slice(&bytes).unwrap();
        let kind = v
            .as_map()
            .unwrap()
            .iter()
            .find(|(k, _)| k.as_str() == Some("kind"));
        assert_eq!(kind.unwrap().1.as_str(), Some("probe"));
    }

    #[test]
    fn unspecified_address_takes_the_source() {
        let src: SocketAddr = "127.0.0.9:40000".parse().unwrap();
        assert_eq!(
            contact(member("0.0.0.0:7700"), src).addr,
            "127.0.0.9:7700".parse().unwrap()
        );
        assert_eq!(
            contact(member("10.0.0.1:7700"), src).addr,
            "10.0.0.1:7700".parse().unwrap()
        );
    }

    #[test]
    fn probes_back_off() {
        let ms: Vec<u128> = (0..6).map(|n| probe_offset(n).as_millis()).collect();
        assert_eq!(ms, [0, 50, 200, 500, 1500, 2500]);
    }
}
