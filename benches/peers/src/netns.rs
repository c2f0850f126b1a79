//! Network isolation: as root, the benchmark moves itself into a private network namespace
//! whose only interface is its own loopback, before it starts any child process. Every
//! child (servers, clients, `nats-server`) inherits it, so no packet can leave the machine
//! whatever a system's defaults are.

use std::io;

/// Where the benchmark's traffic can go, for the report.
pub enum Isolation {
    /// A private network namespace: only its own `lo` exists.
    Namespace,
    /// Not root (or the kernel refused): the host's namespace, every system bound to
    /// 127.0.0.1 with discovery off.
    LoopbackOnly(String),
}

/// Moves this process (still single-threaded: call first in `main`) into a new network
/// namespace and brings its loopback up.
pub fn isolate() -> Isolation {
    // SAFETY: plain syscalls; geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Isolation::LoopbackOnly("not root".into());
    }
    // SAFETY: unshare with CLONE_NEWNET only changes this thread's network namespace; the
    // process has no other thread yet.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return Isolation::LoopbackOnly(format!("unshare: {}", io::Error::last_os_error()));
    }
    match loopback_up() {
        Ok(()) => Isolation::Namespace,
        // A namespace without a working loopback cannot run anything: that is fatal.
        Err(e) => panic!("cannot bring up lo in the private network namespace: {e}"),
    }
}

/// `ip link set lo up`, by ioctl.
fn loopback_up() -> io::Result<()> {
    // SAFETY: a datagram socket only used for the interface ioctls below, closed at the end;
    // `ifreq` is plain data, zeroed, then filled with the name "lo".
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut ifr: libc::ifreq = std::mem::zeroed();
        for (dst, src) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
            *dst = *src as libc::c_char;
        }
        let result = if libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut ifr) < 0 {
            Err(io::Error::last_os_error())
        } else {
            ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            if libc::ioctl(fd, libc::SIOCSIFFLAGS, &ifr) < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(())
            }
        };
        libc::close(fd);
        result
    }
}
