//! mDNS discovery (DESIGN §4, way 1) on top of mdns-sd.
//!
//! A serving node registers `_mpreg._tcp.local.` with a small TXT record (never the catalog)
//! and browses the same type; a client only browses. mdns-sd runs its own thread and hands
//! events over a bounded flume channel that it silently closes when the consumer falls
//! behind, so events are drained by a dedicated task that never awaits anything else.
//!
//! mDNS is for finding peers, not for liveness: a crashed peer stays in mDNS caches for
//! minutes. SWIM handles failure detection.
//!
//! Replays: TXT records do not use the datagram envelope (mDNS packets are the DNS format,
//! cached and re-sent by every responder). With a secret they carry a MAC over their
//! fields, so nobody without it can forge one, but a captured record can be re-sent as it
//! is: it only repeats a contact (an address a member did advertise), which the node
//! still authenticates in the TCP handshake before trusting it, and never makes a member
//! alive in SWIM (gossip datagrams are replay-proof, see `proto::replay`).
//!
//! Note on isolation: mdns-sd joins 224.0.0.251 on *every* interface when its daemon starts,
//! before the interface selection below takes effect (the kernel then sends IGMP reports on
//! them). No mDNS message goes out of a deselected interface, but the membership reports do.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use mdns_sd::{IfKind, Receiver, ResolvedService, ServiceDaemon, ServiceEvent, ServiceInfo};
use sha2::Sha256;
use tokio_util::sync::CancellationToken;

use super::{bump, DiscoveryConfig, Sink};
use crate::proto::datagram::{cluster_tag, Reject};
use crate::proto::keyring::SharedKeyring;
use crate::proto::member::Member;

/// The service type mpreg nodes advertise.
pub(crate) const SERVICE_TYPE: &str = "_mpreg._tcp.local.";

/// A TXT entry (`key=value`) is one length-prefixed string: at most 255 bytes.
const TXT_ENTRY_MAX: usize = 255;

/// A DNS label is at most 63 bytes.
const LABEL_MAX: usize = 63;

/// Bytes of the truncated HMAC in the `mac` TXT entry.
const MAC_LEN: usize = 16;

/// How long `stop` waits for the daemon to confirm the goodbye and its exit.
const DAEMON_REPLY_TIMEOUT: Duration = Duration::from_secs(1);

/// Maps an mdns-sd error to the crate's error, with what was being done.
fn mdns_error(context: impl Into<String>, e: mdns_sd::Error) -> crate::Error {
    crate::Error::io(context, std::io::Error::other(e.to_string()))
}

/// Starts an mdns-sd daemon on `cfg.mdns_port`, confined to the selected interfaces.
///
/// Creating the daemon only spawns its thread (the sockets are opened on that thread), so
/// this does not block the caller's runtime worker for long.
fn daemon(cfg: &DiscoveryConfig) -> crate::Result<ServiceDaemon> {
    let port = cfg.mdns_port;
    let d = ServiceDaemon::new_with_port(port).map_err(|e| {
        mdns_error(
            format!("cannot start the mDNS daemon on UDP port {port}"),
            e,
        )
    })?;
    if let Err(e) = confine(&d, cfg) {
        let _ = d.shutdown();
        return Err(mdns_error("cannot select the mDNS interfaces", e));
    }
    Ok(d)
}

/// Disables every interface, then enables the IPv4 address of each selected one. Commands
/// are processed in order, so nothing is sent before this takes effect.
fn confine(d: &ServiceDaemon, cfg: &DiscoveryConfig) -> Result<(), mdns_sd::Error> {
    d.disable_interface(IfKind::All)?;
    for i in &cfg.interfaces {
        // By address rather than by name, so IPv6 stays off: members are IPv4 contacts.
        let kind = match i.loopback {
            true => IfKind::LoopbackV4,
            false => IfKind::Addr(IpAddr::V4(i.ip)),
        };
        d.enable_interface(kind)?;
    }
    Ok(())
}

/// The cluster as it appears in TXT: the hex of its 8-byte tag. Fixed length whatever the
/// cluster id, and it does not show the id to everybody on the LAN.
fn cluster_hex(cluster: &str) -> String {
    cluster_tag(cluster)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `s` cut to at most `max` bytes, on a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Instance name `{name}-{id:016x}`, within one DNS label.
fn instance_name(me: &Member) -> String {
    format!("{}-{:016x}", truncate(&me.name, LABEL_MAX - 17), me.id)
}

/// Host name `{name}-{id:x}.local.`, with the name reduced to a valid host label.
fn host_name(me: &Member) -> String {
    let label: String = me
        .name
        .chars()
        .map(|c| match c.is_ascii_alphanumeric() {
            true => c.to_ascii_lowercase(),
            false => '-',
        })
        .collect();
    let label = truncate(label.trim_matches('-'), LABEL_MAX - 17);
    let label = if label.is_empty() { "mpreg" } else { label };
    format!("{label}-{:x}.local.", me.id)
}

/// The TXT fields a node advertises, in a fixed order (the MAC covers them in this order).
fn txt_fields(me: &Member, cluster: &str, cv: u64) -> Vec<(&'static str, String)> {
    let fields = [
        ("id", format!("{:x}", me.id)),
        ("name", me.name.clone()),
        ("role", me.role.clone()),
        ("host", me.host.clone()),
        ("cluster", cluster.to_string()),
        ("started", me.started_ms.to_string()),
        ("cv", cv.to_string()),
    ];
    fields
        .into_iter()
        .map(|(k, v)| {
            let v = truncate(&v, TXT_ENTRY_MAX - k.len() - 1).to_string();
            (k, v)
        })
        .collect()
}

/// HMAC over the TXT fields and the port, so that with a secret nobody without it can
/// point nodes at an address of their choosing.
fn mac(secret: &[u8], fields: &[(&str, &str)], port: u16) -> Hmac<Sha256> {
    let mut m =
        <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("hmac takes any key length");
    m.update(b"mpreg-mdns-v1");
    for (k, v) in fields {
        // Length prefixes keep ("ab","c") and ("a","bc") apart.
        for part in [k.as_bytes(), v.as_bytes()] {
            m.update(&(part.len() as u32).to_be_bytes());
            m.update(part);
        }
    }
    m.update(&port.to_be_bytes());
    m
}

/// Hex of the truncated MAC of `fields`.
fn mac_hex(secret: &[u8], fields: &[(&str, &str)], port: u16) -> String {
    let full = mac(secret, fields, port).finalize().into_bytes();
    full[..MAC_LEN].iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `hex` is the MAC of `fields` (constant-time comparison).
fn mac_ok(secret: &[u8], fields: &[(&str, &str)], port: u16, hex: &str) -> bool {
    let Some(tag) = decode_hex(hex) else {
        return false;
    };
    tag.len() == MAC_LEN
        && mac(secret, fields, port)
            .verify_truncated_left(&tag)
            .is_ok()
}

/// Bytes of a lowercase or uppercase hex string.
fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// What a serving node advertises; rebuilt into a [`ServiceInfo`] whenever it changes.
struct Advert {
    me: Member,
    cluster: String,
    secret: Option<SharedKeyring>,
    ips: Vec<IpAddr>,
    cv: u64,
    /// Port of the node's HTTP gateway, advertised as `http=PORT` for clients in other
    /// languages (outside the MAC: such clients do not check it).
    http: Option<u16>,
    /// Set by the goodbye, so that a late catalog update cannot re-advertise.
    withdrawn: bool,
}

impl Advert {
    /// The mdns-sd registration of this advert.
    fn info(&self) -> Result<ServiceInfo, mdns_sd::Error> {
        let fields = txt_fields(&self.me, &self.cluster, self.cv);
        let mut props: Vec<(String, String)> = fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        if let Some(keys) = &self.secret {
            // With the primary as of this (re-)registration: adverts are registered anew
            // on every catalog change.
            let refs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let primary = keys.get();
            let mac = mac_hex(primary.primary(), &refs, self.me.addr.port());
            props.push(("mac".into(), mac));
        }
        if let Some(port) = self.http {
            props.push(("http".into(), port.to_string()));
        }
        let mut info = ServiceInfo::new(
            SERVICE_TYPE,
            &instance_name(&self.me),
            &host_name(&self.me),
            self.ips.as_slice(),
            self.me.addr.port(),
            props.as_slice(),
        )?;
        // Probing exists to detect name conflicts; ours embed a random 64-bit id, so there
        // are none, and skipping it saves about a second of discovery time (measured).
        info.set_requires_probe(false);
        Ok(info)
    }
}

/// A serving node's mDNS advertisement: shared by the [`Discovery`](super::Discovery)
/// handle (catalog updates) and the event task (goodbye).
pub(crate) struct Responder {
    daemon: ServiceDaemon,
    advert: Mutex<Advert>,
    fullname: String,
}

/// The task draining a serving node's browse events; says goodbye when it ends.
pub(crate) struct ResponderTask {
    responder: Arc<Responder>,
    events: Receiver<ServiceEvent>,
    cfg: Arc<DiscoveryConfig>,
    sink: Sink,
    my_id: u64,
}

impl Responder {
    /// Starts the daemon, registers `me` and starts browsing.
    pub(crate) fn start(
        cfg: Arc<DiscoveryConfig>,
        me: &Member,
        cv: u64,
        sink: Sink,
    ) -> crate::Result<(Arc<Responder>, ResponderTask)> {
        let daemon = daemon(&cfg)?;
        let advert = Advert {
            me: me.clone(),
            cluster: cluster_hex(&cfg.cluster),
            secret: cfg.secret.clone(),
            ips: cfg.interfaces.iter().map(|i| IpAddr::V4(i.ip)).collect(),
            cv,
            http: cfg.http.map(|a| a.port()),
            withdrawn: false,
        };
        let registered = advert.info().and_then(|info| {
            let fullname = info.get_fullname().to_string();
            daemon.register(info)?;
            Ok((fullname, daemon.browse(SERVICE_TYPE)?))
        });
        let (fullname, events) = match registered {
            Ok(x) => x,
            Err(e) => {
                let _ = daemon.shutdown();
                return Err(mdns_error(
                    format!("cannot advertise {SERVICE_TYPE} for `{}`", me.name),
                    e,
                ));
            }
        };
        let responder = Arc::new(Responder {
            daemon,
            advert: Mutex::new(advert),
            fullname,
        });
        let task = ResponderTask {
            responder: responder.clone(),
            events,
            cfg,
            sink,
            my_id: me.id,
        };
        Ok((responder, task))
    }

    /// Re-registers with catalog version `v` in TXT (mdns-sd then announces the change).
    pub(crate) fn set_catalog_version(&self, v: u64) {
        let mut advert = self.advert.lock();
        if advert.withdrawn || advert.cv == v {
            return;
        }
        advert.cv = v;
        if let Err(e) = advert.info().and_then(|info| self.daemon.register(info)) {
            tracing::debug!(error = %e, "cannot update the mDNS TXT record");
        }
    }

    /// Registers the advert again as it is, so that its TXT MAC is made with the keyring's
    /// primary of now (after `mpreg keys use`).
    pub(crate) fn readvertise(&self) {
        let advert = self.advert.lock();
        if advert.withdrawn {
            return;
        }
        if let Err(e) = advert.info().and_then(|info| self.daemon.register(info)) {
            tracing::debug!(error = %e, "cannot update the mDNS TXT record");
        }
    }

    /// Unregisters (mdns-sd multicasts a goodbye at once) and shuts the daemon down.
    /// Waiting for the daemon's replies is async, so no runtime worker blocks.
    async fn withdraw(&self) {
        {
            let mut advert = self.advert.lock();
            if std::mem::replace(&mut advert.withdrawn, true) {
                return;
            }
        }
        if let Ok(rx) = self.daemon.unregister(&self.fullname) {
            let _ = tokio::time::timeout(DAEMON_REPLY_TIMEOUT, rx.recv_async()).await;
        }
        // The daemon would repeat the goodbye 120 ms later; peers learn of the leave from
        // SWIM anyway, so stopping is not delayed for it.
        shutdown(&self.daemon).await;
    }
}

impl ResponderTask {
    /// Reports resolved peers until `cancel`, then withdraws the advertisement.
    pub(crate) async fn run(self, cancel: CancellationToken) {
        let cluster = cluster_hex(&self.cfg.cluster);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                ev = self.events.recv_async() => match ev {
                    Ok(ev) => on_event(ev, &self.cfg, &cluster, Some(self.my_id), &self.sink),
                    Err(_) => {
                        tracing::warn!("mDNS daemon stopped sending events; mDNS discovery is off");
                        cancel.cancelled().await;
                        break;
                    }
                },
            }
        }
        self.responder.withdraw().await;
    }
}

/// Asks the daemon to exit and waits (async, bounded) for it to confirm.
async fn shutdown(daemon: &ServiceDaemon) {
    if let Ok(rx) = daemon.shutdown() {
        let _ = tokio::time::timeout(DAEMON_REPLY_TIMEOUT, rx.recv_async()).await;
    }
}

/// A client's mDNS browse.
pub(crate) struct Browser {
    daemon: ServiceDaemon,
    events: Receiver<ServiceEvent>,
}

impl Browser {
    /// Starts a daemon and the browse; the first query goes out after mdns-sd's 10–50 ms
    /// jitter.
    pub(crate) fn start(cfg: &DiscoveryConfig) -> crate::Result<Self> {
        let daemon = daemon(cfg)?;
        match daemon.browse(SERVICE_TYPE) {
            Ok(events) => Ok(Browser { daemon, events }),
            Err(e) => {
                let _ = daemon.shutdown();
                Err(mdns_error(format!("cannot browse {SERVICE_TYPE}"), e))
            }
        }
    }

    /// Reports resolved nodes until `stop`, then shuts the daemon down without waiting:
    /// a client returns as soon as it has its answer.
    pub(crate) async fn run(self, cfg: &DiscoveryConfig, sink: Sink, stop: CancellationToken) {
        let cluster = cluster_hex(&cfg.cluster);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                ev = self.events.recv_async() => match ev {
                    Ok(ev) => on_event(ev, cfg, &cluster, None, &sink),
                    Err(_) => break,
                },
            }
        }
        let _ = self.daemon.shutdown();
    }
}

/// Reports a resolved service that is another member of our cluster; counts the rest.
fn on_event(
    ev: ServiceEvent,
    cfg: &DiscoveryConfig,
    cluster: &str,
    my_id: Option<u64>,
    sink: &Sink,
) {
    let ServiceEvent::ServiceResolved(r) = ev else {
        return;
    };
    let c = &sink.counters;
    match member_of(&r, cfg, cluster) {
        Ok(m) if Some(m.id) == my_id => {}
        Ok(m) => {
            bump(&c.mdns_resolved);
            sink.report(m);
        }
        Err(reason) => {
            tracing::debug!(service = %r.fullname, %reason, "mDNS service ignored");
            bump(match reason {
                Reject::Malformed => &c.mdns_malformed,
                Reject::OtherCluster => &c.mdns_other_cluster,
                // A TXT record is not a datagram and has no counter: `member_of` never
                // says `Replayed` (see the module docs on replays).
                Reject::Unauthenticated | Reject::Replayed => &c.mdns_unauthenticated,
            });
        }
    }
}

/// The member a resolved service describes, or why it is not one of ours.
fn member_of(r: &ResolvedService, cfg: &DiscoveryConfig, cluster: &str) -> Result<Member, Reject> {
    let txt: HashMap<&str, &str> = r
        .txt_properties
        .iter()
        .map(|p| (p.key(), p.val_str()))
        .collect();
    match txt.get("cluster") {
        Some(c) if *c == cluster => {}
        Some(_) => return Err(Reject::OtherCluster),
        None => return Err(Reject::Malformed),
    }
    if let Some(secret) = &cfg.secret {
        // Recompute over the same fields, in the same order, as the sender.
        let fields: Vec<(&str, &str)> = ["id", "name", "role", "host", "cluster", "started", "cv"]
            .into_iter()
            .map(|k| (k, txt.get(k).copied().unwrap_or("")))
            .collect();
        let sent = txt.get("mac").copied().unwrap_or("");
        let ring = secret.get();
        if !ring.keys().iter().any(|k| mac_ok(k, &fields, r.port, sent)) {
            return Err(Reject::Unauthenticated);
        }
    }
    let id = txt
        .get("id")
        .and_then(|h| u64::from_str_radix(h, 16).ok())
        .ok_or(Reject::Malformed)?;
    let ip = pick_address(r, cfg).ok_or(Reject::Malformed)?;
    let text = |k: &str| txt.get(k).map(|s| s.to_string()).unwrap_or_default();
    Ok(Member {
        addr: SocketAddr::from((ip, r.port)),
        id,
        name: text("name"),
        role: text("role"),
        host: text("host"),
        started_ms: txt.get("started").and_then(|s| s.parse().ok()).unwrap_or(0),
        bump: 0,
    })
}

/// An IPv4 address of `r` on a selected interface's subnet, else the lowest one (a
/// service lists every address of its host, and only some are reachable from here).
fn pick_address(r: &ResolvedService, cfg: &DiscoveryConfig) -> Option<Ipv4Addr> {
    let mut ips: Vec<Ipv4Addr> = r.get_addresses_v4().into_iter().collect();
    ips.sort();
    ips.iter()
        .copied()
        .find(|ip| cfg.on_selected(*ip))
        .or(ips.first().copied())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::keyring::Keyring;
    use crate::runtime::discovery::interfaces::Iface;

    fn cfg(secret: Option<&[u8]>) -> DiscoveryConfig {
        DiscoveryConfig {
            cluster: "lab".into(),
            secret: secret.map(|s| SharedKeyring::new(Keyring::single(s))),
            interfaces: vec![Iface {
                name: "eth0".into(),
                ip: Ipv4Addr::new(192, 168, 1, 5),
                netmask: Ipv4Addr::new(255, 255, 255, 0),
                broadcast: Ipv4Addr::new(192, 168, 1, 255),
                loopback: false,
            }],
            beacon: false,
            beacon_port: 1,
            beacon_interval: Duration::from_secs(1),
            mdns: true,
            mdns_port: 1,
            http: None,
        }
    }

    fn me(name: &str) -> Member {
        Member {
            addr: "10.0.0.1:7700".parse().unwrap(),
            id: 0xabc,
            name: name.into(),
            role: "worker".into(),
            host: "h1".into(),
            started_ms: 1234,
            bump: 0,
        }
    }

    /// What a browser would resolve for `advert`.
    fn resolved(advert: &Advert) -> ResolvedService {
        advert.info().unwrap().as_resolved_service()
    }

    fn advert(me: Member, cluster: &str, secret: Option<&[u8]>, ips: &[&str]) -> Advert {
        Advert {
            me,
            cluster: cluster_hex(cluster),
            secret: secret.map(|s| SharedKeyring::new(Keyring::single(s))),
            ips: ips.iter().map(|s| s.parse().unwrap()).collect(),
            cv: 7,
            http: Some(7780),
            withdrawn: false,
        }
    }

    #[test]
    fn txt_round_trips_to_a_member_on_our_subnet() {
        let a = advert(
            me("w1"),
            "lab",
            None,
            &["10.0.0.1", "192.168.1.9", "172.16.0.1"],
        );
        let r = resolved(&a);
        assert_eq!(r.get_property_val_str("cv"), Some("7"));
        assert_eq!(
            r.get_property_val_str("http"),
            Some("7780"),
            "the gateway's port"
        );
        let m = member_of(&r, &cfg(None), &cluster_hex("lab")).unwrap();
        assert_eq!(m.addr, "192.168.1.9:7700".parse().unwrap());
        assert_eq!(
            (m.id, m.name.as_str(), m.role.as_str(), m.host.as_str()),
            (0xabc, "w1", "worker", "h1")
        );
        assert_eq!(m.started_ms, 1234);
        // No address on a selected subnet: the lowest one.
        let r = resolved(&advert(me("w1"), "lab", None, &["10.0.0.1", "172.16.0.1"]));
        assert_eq!(
            member_of(&r, &cfg(None), &cluster_hex("lab"))
                .unwrap()
                .addr
                .ip()
                .to_string(),
            "10.0.0.1"
        );
    }

    #[test]
    fn other_cluster_and_bad_mac_are_rejected() {
        let lab = cluster_hex("lab");
        let r = resolved(&advert(me("w1"), "other", None, &["10.0.0.1"]));
        assert_eq!(member_of(&r, &cfg(None), &lab), Err(Reject::OtherCluster));
        let signed = resolved(&advert(me("w1"), "lab", Some(b"s"), &["10.0.0.1"]));
        assert!(member_of(&signed, &cfg(Some(b"s")), &lab).is_ok());
        assert_eq!(
            member_of(&signed, &cfg(Some(b"t")), &lab),
            Err(Reject::Unauthenticated)
        );
        let unsigned = resolved(&advert(me("w1"), "lab", None, &["10.0.0.1"]));
        assert_eq!(
            member_of(&unsigned, &cfg(Some(b"s")), &lab),
            Err(Reject::Unauthenticated)
        );
        let no_ip = resolved(&advert(me("w1"), "lab", None, &[]));
        assert_eq!(member_of(&no_ip, &cfg(None), &lab), Err(Reject::Malformed));
    }

    #[test]
    fn long_and_odd_names_fit_dns_and_txt_limits() {
        let long = "ü".repeat(300);
        let a = advert(me(&long), "lab", Some(b"s"), &["10.0.0.1"]);
        let info = a.info().unwrap();
        assert!(info.get_hostname().len() <= LABEL_MAX + ".local.".len());
        assert!(instance_name(&a.me).len() <= LABEL_MAX);
        let r = info.as_resolved_service();
        for p in r.txt_properties.iter() {
            assert!(p.key().len() + 1 + p.val().map_or(0, <[u8]>::len) <= TXT_ENTRY_MAX);
        }
        // The MAC covers the truncated values, so the record still verifies.
        assert!(member_of(&r, &cfg(Some(b"s")), &cluster_hex("lab")).is_ok());
        assert_eq!(host_name(&me("Web Server.1")), "web-server-1-abc.local.");
        assert_eq!(host_name(&me("..")), "mpreg-abc.local.");
    }

    #[test]
    fn hex_decoding() {
        assert_eq!(decode_hex("00ff10"), Some(vec![0, 255, 16]));
        assert_eq!(decode_hex("0"), None);
        assert_eq!(decode_hex("zz"), None);
    }
}
