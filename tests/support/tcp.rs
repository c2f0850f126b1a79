//! This machine's IPv4 TCP sockets as the kernel lists them in `/proc/net/tcp`: what the
//! kernel says, whatever a node counts.
//!
//! The file is not a snapshot. It is produced a page per `read`, and between reads the
//! kernel resumes its walk by position, so while other sockets come and go (other tests,
//! other processes) one socket can be listed twice, or skipped. Hence sockets are told
//! apart by their inode, and absence is believed only when several reads agree.

use std::collections::HashSet;

/// The kernel's state codes (`include/net/tcp_states.h`).
pub const ESTABLISHED: &str = "01";
pub const CLOSE: &str = "07";
pub const CLOSE_WAIT: &str = "08";

/// One line of `/proc/net/tcp`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Socket {
    pub local_port: u16,
    pub remote: String,
    /// The state as the kernel's hex code, e.g. [`ESTABLISHED`].
    pub state: String,
    pub inode: u64,
}

/// Every socket listed, each once (by inode; a socket the kernel has orphaned has inode 0
/// and is told apart by its remote end).
pub fn sockets() -> Vec<Socket> {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("read /proc/net/tcp");
    let mut seen = HashSet::new();
    table
        .lines()
        .skip(1)
        .filter_map(parse)
        .filter(|s| seen.insert((s.inode, s.local_port, s.remote.clone())))
        .collect()
}

fn parse(line: &str) -> Option<Socket> {
    let f: Vec<&str> = line.split_whitespace().collect();
    let local_port = u16::from_str_radix(f.get(1)?.rsplit(':').next()?, 16).ok()?;
    Some(Socket {
        local_port,
        remote: f.get(2)?.to_string(),
        state: f.get(3)?.to_string(),
        inode: f.get(9)?.parse().ok()?,
    })
}

/// Established connections whose local port is `port` (accepted by a listener on it).
pub fn established_on(port: u16) -> usize {
    sockets()
        .iter()
        .filter(|s| s.local_port == port && s.state == ESTABLISHED)
        .count()
}

/// The state of the socket bound to local port `port`, `None` when it is gone: absent
/// from three reads in a row, since one read can skip a live socket.
pub fn state_of(port: u16) -> Option<String> {
    for _ in 0..3 {
        let found = sockets().into_iter().find(|s| s.local_port == port);
        if let Some(s) = found {
            return Some(s.state);
        }
    }
    None
}
