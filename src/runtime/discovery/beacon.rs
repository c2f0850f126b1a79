//! UDP broadcast beacon (DESIGN §4, way 2).
//!
//! Every serving node of a host binds the same well-known port on `0.0.0.0` with
//! `SO_REUSEPORT`, so each of them receives every broadcast sent to that port. Unicast to
//! that port would reach only one of them, so everything a node *sends* goes out of a second,
//! ephemeral socket whose address is its own: replies to it reach exactly that node.
//!
//! - `announce` (broadcast, every `beacon_interval` and at start): "I am this member".
//!   A node answers the announce of a member it has not heard from lately with a unicast
//!   `answer`, so a newcomer learns every existing node at once instead of one interval later.
//! - `probe` (broadcast by a client, from its own ephemeral socket): every node answers
//!   with a unicast `answer`.
//!
//! Every datagram is sealed by [`crate::proto::datagram`] (cluster tag, optional HMAC);
//! rejected ones are dropped and counted by reason.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::{bump, now_ms, Counters, DiscoveryConfig, Sink};
use crate::proto::datagram::{self, Kind, Reject};
use crate::proto::member::Member;

/// Largest datagram we read: the largest UDP payload, so that a member with very long
/// names is not cut short (beacons are usually a few hundred bytes).
const MAX_DATAGRAM: usize = 65_536;

/// When a client sends its probes, as offsets from the start: the first immediately, the
/// retries cover a lost datagram or a node still binding. After the last, every second.
const PROBE_SCHEDULE_MS: [u64; 4] = [0, 50, 200, 500];

/// What a beacon says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum BeaconKind {
    /// A serving node advertises itself (broadcast).
    Announce,
    /// A client asks who is there (broadcast).
    Probe,
    /// A serving node answers a probe or a new node's announce (unicast).
    Answer,
}

/// The payload of a beacon datagram (MessagePack, named fields).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Payload {
    /// What the datagram says.
    pub kind: BeaconKind,
    /// The sender, for `announce` and `answer`.
    pub member: Option<Member>,
}

/// Seals and opens the beacon datagrams of one cluster, counting what it rejects.
struct Envelope {
    tag: [u8; 8],
    secret: Option<Vec<u8>>,
    counters: Arc<Counters>,
}

impl Envelope {
    /// The envelope of `cfg`'s cluster.
    fn new(cfg: &DiscoveryConfig, counters: Arc<Counters>) -> Self {
        Envelope {
            tag: datagram::cluster_tag(&cfg.cluster),
            secret: cfg.secret.clone(),
            counters,
        }
    }

    /// The datagram carrying `kind` (and `member`).
    fn seal(&self, kind: BeaconKind, member: Option<&Member>) -> Vec<u8> {
        let payload = Payload {
            kind,
            member: member.cloned(),
        };
        let body = rmp_serde::to_vec_named(&payload).expect("a beacon payload always encodes");
        datagram::seal(
            Kind::Beacon,
            &self.tag,
            self.secret.as_deref(),
            now_ms(),
            &body,
        )
    }

    /// The payload of a received datagram, or `None` (counted) when it must be dropped.
    fn open(&self, data: &[u8]) -> Option<Payload> {
        let c = &self.counters;
        let body = match datagram::open(data, &self.tag, self.secret.as_deref(), now_ms()) {
            Ok((Kind::Beacon, body)) => body,
            Ok((Kind::Gossip, _)) | Err(Reject::Malformed) => return count(&c.beacons_malformed),
            Err(Reject::OtherCluster) => return count(&c.beacons_other_cluster),
            Err(Reject::Unauthenticated) => return count(&c.beacons_unauthenticated),
        };
        match rmp_serde::from_slice::<Payload>(body) {
            Ok(p) if p.kind == BeaconKind::Probe || p.member.is_some() => Some(p),
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
fn udp_socket(port: u16, shared: bool) -> std::io::Result<UdpSocket> {
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
    UdpSocket::from_std(s.into())
}

/// Sends `data` to every selected broadcast address on the beacon port, counting.
async fn broadcast(sock: &UdpSocket, cfg: &DiscoveryConfig, data: &[u8], counters: &Counters) {
    for ip in cfg.broadcasts() {
        send(
            sock,
            SocketAddr::from((ip, cfg.beacon_port)),
            data,
            counters,
        )
        .await;
    }
}

/// Sends one datagram, counting success or failure (failures are normal on an interface
/// that just went down, so they are only logged at debug).
async fn send(sock: &UdpSocket, to: SocketAddr, data: &[u8], counters: &Counters) {
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
    shared: UdpSocket,
    /// This node's own address: sends everything, receives answers.
    own: UdpSocket,
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
            env: Envelope::new(&cfg, sink.counters.clone()),
            cfg,
            me,
            sink,
            shared,
            own,
            heard: HashMap::new(),
        })
    }

    /// Runs until `cancel`: announces at once and every interval, and handles what arrives
    /// on either socket.
    pub(crate) async fn run(mut self, cancel: CancellationToken) {
        let mut tick = tokio::time::interval(self.cfg.beacon_interval);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut shared_buf = vec![0u8; MAX_DATAGRAM];
        let mut own_buf = vec![0u8; MAX_DATAGRAM];
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tick.tick() => self.announce().await,
                r = self.shared.recv_from(&mut shared_buf) => self.received(r, &shared_buf).await,
                r = self.own.recv_from(&mut own_buf) => self.received(r, &own_buf).await,
            }
        }
    }

    /// Broadcasts an announce and forgets members not heard from for a while.
    async fn announce(&mut self) {
        let data = self.env.seal(BeaconKind::Announce, Some(&self.me));
        broadcast(&self.own, &self.cfg, &data, &self.sink.counters).await;
        let stale = self.stale_after();
        self.heard.retain(|_, at| at.elapsed() < stale);
    }

    /// How long without hearing from a member before its next announce is answered again.
    fn stale_after(&self) -> Duration {
        self.cfg.beacon_interval * 3
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
        let Some(p) = self.env.open(&buf[..n]) else {
            return;
        };
        self.handle(p, src).await;
    }

    /// Acts on a valid beacon from `src`.
    async fn handle(&mut self, p: Payload, src: SocketAddr) {
        if p.kind == BeaconKind::Probe {
            bump(&self.sink.counters.beacons_received);
            return self.answer(src).await;
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
            self.answer(src).await;
        }
    }

    /// Tells `to` about us, unicast.
    async fn answer(&self, to: SocketAddr) {
        let data = self.env.seal(BeaconKind::Answer, Some(&self.me));
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
    sock: UdpSocket,
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
        let env = Envelope::new(cfg, sink.counters.clone());
        let probe = env.seal(BeaconKind::Probe, None);
        let start = Instant::now();
        let mut sent = 0usize;
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            let next = start + probe_offset(sent);
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep_until(next) => {
                    broadcast(&self.sock, cfg, &probe, &sink.counters).await;
                    sent += 1;
                }
                r = self.sock.recv_from(&mut buf) => {
                    let Ok((n, src)) = r else { continue };
                    if !accept_source(cfg, src, &sink.counters) {
                        continue;
                    }
                    if let Some(Payload { kind: BeaconKind::Answer, member: Some(m) }) = env.open(&buf[..n]) {
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

    fn cfg(cluster: &str, secret: Option<&[u8]>) -> DiscoveryConfig {
        DiscoveryConfig {
            cluster: cluster.into(),
            secret: secret.map(<[u8]>::to_vec),
            interfaces: super::super::interfaces::select(&["127.0.0.1".into()]).unwrap(),
            beacon: true,
            beacon_port: 1,
            beacon_interval: Duration::from_secs(1),
            mdns: false,
            mdns_port: 1,
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
    fn payload_roundtrip_and_rejects_are_counted() {
        let counters = Arc::new(Counters::default());
        let env = Envelope::new(&cfg("lab", Some(b"s")), counters.clone());
        let m = member("127.0.0.1:7700");
        let d = env.seal(BeaconKind::Announce, Some(&m));
        assert_eq!(env.open(&d).unwrap().member, Some(m.clone()));
        let other = Envelope::new(&cfg("other", Some(b"s")), counters.clone());
        assert!(other.open(&d).is_none());
        let unsigned = Envelope::new(&cfg("lab", None), counters.clone());
        assert!(env.open(&unsigned.seal(BeaconKind::Probe, None)).is_none());
        assert!(env.open(b"garbage").is_none());
        // A valid envelope around an announce without a member is malformed too.
        let body = rmp_serde::to_vec_named(&Payload {
            kind: BeaconKind::Announce,
            member: None,
        })
        .unwrap();
        let tag = datagram::cluster_tag("lab");
        assert!(env
            .open(&datagram::seal(
                Kind::Beacon,
                &tag,
                Some(b"s"),
                now_ms(),
                &body
            ))
            .is_none());
        let s = counters.snapshot();
        assert_eq!(
            (
                s.beacons_other_cluster,
                s.beacons_unauthenticated,
                s.beacons_malformed
            ),
            (1, 1, 2)
        );
    }

    #[test]
    fn kinds_are_lowercase_strings_on_the_wire() {
        let bytes = rmp_serde::to_vec_named(&Payload {
            kind: BeaconKind::Probe,
            member: None,
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
