//! Which network interfaces discovery uses (DESIGN §4, "Interface selection").
//!
//! [`select`] reads the host's IPv4 interfaces (if-addrs, plus the flags in
//! `/sys/class/net/<name>/flags` on Linux) and hands them to the pure [`filter`], which is
//! unit-tested over fabricated lists.

use std::net::Ipv4Addr;

use crate::error::Error;

/// `IFF_UP` in `/sys/class/net/<name>/flags`.
const IFF_UP: u32 = 0x1;
/// `IFF_MULTICAST` in `/sys/class/net/<name>/flags`.
const IFF_MULTICAST: u32 = 0x1000;

/// Broadcast address used on loopback. Linux delivers a datagram sent there to every
/// `SO_REUSEPORT` socket bound to `0.0.0.0:port` (measured), which is how several nodes of
/// one host hear each other's beacons; unicast to 127.0.0.1 would reach only one of them.
pub(crate) const LOOPBACK_BROADCAST: Ipv4Addr = Ipv4Addr::new(127, 255, 255, 255);

/// One IPv4 address of an interface that discovery sends and listens on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Iface {
    /// Interface name, e.g. `eth0`.
    pub name: String,
    /// This host's address on it.
    pub ip: Ipv4Addr,
    /// Subnet mask of `ip`: a datagram or mDNS address is "on" this interface when it lies
    /// in the same subnet.
    pub netmask: Ipv4Addr,
    /// Where beacons go (127.255.255.255 on loopback).
    pub broadcast: Ipv4Addr,
    /// Whether this is a loopback interface.
    pub loopback: bool,
}

impl Iface {
    /// Whether `ip` lies in this interface's subnet.
    pub(crate) fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = u32::from(self.netmask);
        u32::from(ip) & mask == u32::from(self.ip) & mask
    }
}

/// One IPv4 address as the OS reports it: the input of [`filter`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Candidate {
    /// Interface name.
    pub name: String,
    /// Address on the interface.
    pub ip: Ipv4Addr,
    /// Subnet mask.
    pub netmask: Ipv4Addr,
    /// Broadcast address as reported, if any.
    pub broadcast: Option<Ipv4Addr>,
    /// Loopback interface.
    pub loopback: bool,
    /// Interface flags (`IFF_*`), `None` where they cannot be read.
    pub flags: Option<u32>,
}

impl Candidate {
    /// The interface this candidate becomes once selected.
    fn to_iface(&self) -> Iface {
        let broadcast = if self.loopback {
            LOOPBACK_BROADCAST
        } else {
            // The directed broadcast of the subnet when the OS reports none.
            self.broadcast
                .unwrap_or_else(|| Ipv4Addr::from(u32::from(self.ip) | !u32::from(self.netmask)))
        };
        Iface {
            name: self.name.clone(),
            ip: self.ip,
            netmask: self.netmask,
            broadcast,
            loopback: self.loopback,
        }
    }

    /// Part of the default selection: loopback when up, other interfaces when up and
    /// multicast-capable. Unreadable flags keep the interface (better one useless socket
    /// than a silently deaf node).
    fn default_pick(&self) -> bool {
        let Some(flags) = self.flags else {
            return true;
        };
        let up = flags & IFF_UP != 0;
        // `lo` has no MULTICAST flag, yet broadcast and mDNS work on it (measured).
        up && (self.loopback || flags & IFF_MULTICAST != 0)
    }

    /// Whether the configured `entry` (an interface name or one of its IPv4 addresses)
    /// names this candidate.
    fn matches(&self, entry: &str) -> bool {
        self.name == entry || entry.parse::<Ipv4Addr>() == Ok(self.ip)
    }
}

/// Selects the interfaces discovery uses: every up, multicast-capable, non-loopback IPv4
/// interface plus loopback when `configured` is empty, else exactly the configured ones
/// (names or addresses).
pub(crate) fn select(configured: &[String]) -> Result<Vec<Iface>, Error> {
    filter(&candidates()?, configured)
}

/// The pure half of [`select`]. An entry of `configured` that matches nothing is a
/// configuration error that lists what exists, so the user can fix the typo.
pub(crate) fn filter(candidates: &[Candidate], configured: &[String]) -> Result<Vec<Iface>, Error> {
    let picked: Vec<&Candidate> = if configured.is_empty() {
        candidates.iter().filter(|c| c.default_pick()).collect()
    } else {
        let mut picked = Vec::new();
        for entry in configured {
            let entry = entry.trim();
            let matching: Vec<&Candidate> =
                candidates.iter().filter(|c| c.matches(entry)).collect();
            if matching.is_empty() {
                return Err(unknown_interface(entry, candidates));
            }
            picked.extend(matching);
        }
        picked
    };
    let mut out: Vec<Iface> = Vec::with_capacity(picked.len());
    for c in picked {
        // A name and one of its addresses may both be configured: keep one copy.
        if !out.iter().any(|i| i.name == c.name && i.ip == c.ip) {
            out.push(c.to_iface());
        }
    }
    Ok(out)
}

/// The error for a configured interface that does not exist.
fn unknown_interface(entry: &str, candidates: &[Candidate]) -> Error {
    let existing: Vec<String> = candidates
        .iter()
        .map(|c| format!("{} ({})", c.name, c.ip))
        .collect();
    let existing = if existing.is_empty() {
        "none with an IPv4 address".to_string()
    } else {
        existing.join(", ")
    };
    Error::Config(format!(
        "discovery interface `{entry}` matches no IPv4 interface name or address; interfaces here: {existing}"
    ))
}

/// The host's IPv4 interface addresses.
fn candidates() -> Result<Vec<Candidate>, Error> {
    let all =
        if_addrs::get_if_addrs().map_err(|e| Error::io("cannot list network interfaces", e))?;
    Ok(all
        .into_iter()
        .filter_map(|i| match i.addr {
            if_addrs::IfAddr::V4(ref a) => Some(Candidate {
                flags: read_flags(&i.name),
                loopback: a.ip.is_loopback(),
                name: i.name,
                ip: a.ip,
                netmask: a.netmask,
                broadcast: a.broadcast,
            }),
            if_addrs::IfAddr::V6(_) => None,
        })
        .collect())
}

/// The `IFF_*` flags of interface `name` (Linux sysfs; `None` elsewhere or when unreadable).
fn read_flags(name: &str) -> Option<u32> {
    let text = std::fs::read_to_string(format!("/sys/class/net/{name}/flags")).ok()?;
    let hex = text.trim().trim_start_matches("0x");
    u32::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(name: &str, ip: [u8; 4], prefix: u32, flags: Option<u32>) -> Candidate {
        let ip = Ipv4Addr::from(ip);
        Candidate {
            name: name.into(),
            ip,
            netmask: Ipv4Addr::from(u32::MAX.checked_shl(32 - prefix).unwrap_or(0)),
            broadcast: None,
            loopback: ip.is_loopback(),
            flags,
        }
    }

    fn host() -> Vec<Candidate> {
        vec![
            cand("lo", [127, 0, 0, 1], 8, Some(0x9)),
            cand("eth0", [192, 168, 1, 5], 24, Some(0x1003)),
            cand("eth0", [10, 0, 0, 5], 16, Some(0x1003)),
            cand("wg0", [10, 9, 0, 1], 24, Some(0x91)), // up, no multicast
            cand("eth1", [172, 16, 0, 2], 24, Some(0x1002)), // multicast, down
            cand("ib0", [192, 168, 50, 1], 24, None),   // flags unreadable
        ]
    }

    fn names(v: &[Iface]) -> Vec<String> {
        v.iter().map(|i| format!("{}={}", i.name, i.ip)).collect()
    }

    #[test]
    fn default_is_up_multicast_plus_loopback() {
        let got = filter(&host(), &[]).unwrap();
        assert_eq!(
            names(&got),
            [
                "lo=127.0.0.1",
                "eth0=192.168.1.5",
                "eth0=10.0.0.5",
                "ib0=192.168.50.1"
            ]
        );
        assert_eq!(got[0].broadcast, LOOPBACK_BROADCAST);
        assert!(got[0].loopback);
        assert_eq!(got[1].broadcast, Ipv4Addr::new(192, 168, 1, 255));
        assert_eq!(got[2].broadcast, Ipv4Addr::new(10, 0, 255, 255));
    }

    #[test]
    fn down_loopback_is_left_out() {
        let got = filter(&[cand("lo", [127, 0, 0, 1], 8, Some(0x8))], &[]).unwrap();
        assert!(got.is_empty());
    }

    #[test]
    fn configured_by_name_and_address() {
        let got = filter(&host(), &["lo".into()]).unwrap();
        assert_eq!(names(&got), ["lo=127.0.0.1"]);
        let got = filter(&host(), &["eth0".into()]).unwrap();
        assert_eq!(names(&got), ["eth0=192.168.1.5", "eth0=10.0.0.5"]);
        // An explicit choice wins over the flags; duplicates collapse.
        let got = filter(&host(), &["10.0.0.5".into(), "wg0".into(), "eth0".into()]).unwrap();
        assert_eq!(
            names(&got),
            ["eth0=10.0.0.5", "wg0=10.9.0.1", "eth0=192.168.1.5"]
        );
    }

    #[test]
    fn reported_broadcast_is_kept_except_on_loopback() {
        let mut c = cand("eth0", [192, 168, 1, 5], 24, Some(0x1003));
        c.broadcast = Some(Ipv4Addr::new(192, 168, 1, 127));
        let mut lo = cand("lo", [127, 0, 0, 1], 8, Some(0x9));
        lo.broadcast = Some(Ipv4Addr::new(127, 0, 0, 1));
        let got = filter(&[c, lo], &[]).unwrap();
        assert_eq!(got[0].broadcast, Ipv4Addr::new(192, 168, 1, 127));
        assert_eq!(got[1].broadcast, LOOPBACK_BROADCAST);
    }

    #[test]
    fn unknown_entry_names_it_and_lists_interfaces() {
        let err = filter(&host(), &["lo".into(), "eht0".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("`eht0`"), "{err}");
        assert!(err.contains("eth0 (192.168.1.5)"), "{err}");
        assert!(err.contains("lo (127.0.0.1)"), "{err}");
        let err = filter(&[], &["lo".into()]).unwrap_err().to_string();
        assert!(err.contains("none with an IPv4 address"), "{err}");
    }

    #[test]
    fn subnet_membership() {
        let got = filter(&host(), &["eth0".into(), "lo".into()]).unwrap();
        assert!(got[0].contains(Ipv4Addr::new(192, 168, 1, 77)));
        assert!(!got[0].contains(Ipv4Addr::new(192, 168, 2, 77)));
        assert!(got[2].contains(Ipv4Addr::new(127, 1, 2, 3)));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn loopback_is_found_on_this_host() {
        // Reads the real interface list, sends nothing.
        let got = select(&["lo".into()]).unwrap();
        assert!(got
            .iter()
            .all(|i| i.loopback && i.broadcast == LOOPBACK_BROADCAST));
        assert!(!got.is_empty());
    }
}
