//! A UDP socket that the reactor watches for reading only.
//!
//! tokio's `UdpSocket` registers for readable and writable readiness, edge-triggered. On
//! Linux a UDP socket signals "writable" again every time the kernel frees one of its sent
//! datagrams, so each datagram sent later wakes the node's I/O driver for nothing — nobody
//! waits to write, since a UDP send almost never finds its buffer full. On an idle cluster
//! that was about two of a node's fifteen wakeups a second (issue #17, `cargo bench --bench
//! idle`). Registered for reading alone, a send is a plain non-blocking `send_to`, and the
//! rare full buffer is waited out with short sleeps (a bounded number of them, then the
//! datagram is reported lost: gossip is built to survive loss).
//!
//! Written by hand: tokio offers the registration (`AsyncFd` with an interest) but no UDP
//! socket on top of it.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

#[cfg(unix)]
use tokio::io::{unix::AsyncFd, Interest};

/// Pause before retrying a send that found the socket's buffer full.
const FULL_PAUSE: Duration = Duration::from_millis(1);

/// Retries of a send that keeps finding the buffer full before it is given up.
const FULL_RETRIES: u32 = 100;

/// A non-blocking UDP socket registered with the runtime for reading only.
pub(crate) struct Datagrams {
    #[cfg(unix)]
    fd: AsyncFd<UdpSocket>,
    #[cfg(not(unix))]
    sock: tokio::net::UdpSocket,
}

impl Datagrams {
    /// Takes over `sock` (a tokio socket, moved off its registration).
    pub(crate) fn new(sock: tokio::net::UdpSocket) -> io::Result<Self> {
        Self::from_std(sock.into_std()?)
    }

    /// Registers `sock` with the runtime (which must be current), for reading only.
    pub(crate) fn from_std(sock: UdpSocket) -> io::Result<Self> {
        sock.set_nonblocking(true)?;
        #[cfg(unix)]
        {
            // SAFETY: the `UdpSocket` owns a valid descriptor, and it is neither replaced
            // nor closed while the `AsyncFd` holds it (it closes when the `AsyncFd` drops).
            let fd = unsafe { AsyncFd::register_with_interest(sock, Interest::READABLE)? };
            Ok(Datagrams { fd })
        }
        #[cfg(not(unix))]
        {
            Ok(Datagrams {
                sock: tokio::net::UdpSocket::from_std(sock)?,
            })
        }
    }

    /// The next datagram into `buf`: its length and sender. Cancel-safe.
    pub(crate) async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        #[cfg(unix)]
        loop {
            let mut ready = self.fd.readable().await?;
            match ready.try_io(|s| s.get_ref().recv_from(buf)) {
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
        #[cfg(not(unix))]
        self.sock.recv_from(buf).await
    }

    /// Sends `data` to `to`, pausing while the socket's buffer is full; an error once it
    /// stayed full through every retry.
    pub(crate) async fn send_to(&self, data: &[u8], to: SocketAddr) -> io::Result<usize> {
        #[cfg(unix)]
        {
            let mut retries = 0;
            loop {
                match self.fd.get_ref().send_to(data, to) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock && retries < FULL_RETRIES => {
                        retries += 1;
                        tokio::time::sleep(FULL_PAUSE).await;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    r => return r,
                }
            }
        }
        #[cfg(not(unix))]
        self.sock.send_to(data, to).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn datagrams_go_both_ways() {
        let a = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let b = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let (a, b) = (Datagrams::new(a).unwrap(), Datagrams::new(b).unwrap());
        assert_eq!(a.send_to(b"ping", b_addr).await.unwrap(), 4);
        let mut buf = [0u8; 16];
        let (n, from) = b.recv_from(&mut buf).await.unwrap();
        assert_eq!((&buf[..n], from), (&b"ping"[..], a_addr));
        b.send_to(b"pong", a_addr).await.unwrap();
        let (n, from) = a.recv_from(&mut buf).await.unwrap();
        assert_eq!((&buf[..n], from), (&b"pong"[..], b_addr));
    }
}
