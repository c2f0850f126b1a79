//! A kernel timer (Linux `timerfd`) that expires on the grid, read through tokio's reactor.
//!
//! Why not a tokio `Interval`: tokio's timer wheel keeps a deadline more than 64 ms away in
//! a coarser slot and wakes at that slot's start to move it down, then again at the
//! deadline, so a 250 ms tick costs an idle process two wakeups instead of one. A
//! `timerfd` armed with absolute expirations wakes the reactor once, exactly on the grid.
//! Written by hand on `libc`: the crates that wrap `timerfd` are blocking or unmaintained,
//! and this is three system calls.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// A periodic kernel timer on `CLOCK_MONOTONIC`.
#[derive(Debug)]
pub(crate) struct KernelTimer {
    fd: AsyncFd<OwnedFd>,
}

/// `CLOCK_MONOTONIC` now, in nanoseconds: the clock `std::time::Instant` reads on Linux.
pub(crate) fn monotonic_ns() -> u128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u128 * 1_000_000_000 + ts.tv_nsec as u128
}

fn timespec(ns: u128) -> libc::timespec {
    libc::timespec {
        tv_sec: (ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (ns % 1_000_000_000) as libc::c_long,
    }
}

impl KernelTimer {
    /// A timer that first expires at `first_ns` (on `CLOCK_MONOTONIC`) and every `period`
    /// after. Must be called within a tokio runtime (the descriptor joins its reactor).
    pub(crate) fn start(first_ns: u128, period: Duration) -> io::Result<KernelTimer> {
        // SAFETY: plain system call; the result is checked before use.
        let raw = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a descriptor we just created and own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let spec = libc::itimerspec {
            it_interval: timespec(period.as_nanos()),
            it_value: timespec(first_ns),
        };
        // SAFETY: `fd` is a timerfd, `spec` a valid itimerspec; the old value is not asked.
        let r = unsafe {
            libc::timerfd_settime(
                fd.as_raw_fd(),
                libc::TFD_TIMER_ABSTIME,
                &spec,
                std::ptr::null_mut(),
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: an `OwnedFd` keeps its descriptor open and unchanged until it is dropped,
        // which is when the `AsyncFd` is.
        let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
            .map_err(io::Error::from)?;
        Ok(KernelTimer { fd })
    }

    /// Waits for the next expiration; returns how many passed since the last wait (more
    /// than one when this task ran late).
    pub(crate) async fn wait(&self) -> io::Result<u64> {
        loop {
            let mut ready = self.fd.readable().await?;
            let read = ready.try_io(|fd| {
                let mut count = 0u64;
                // SAFETY: reads 8 bytes into a u64 from a timerfd, as timerfd(2) says.
                let n = unsafe {
                    libc::read(
                        fd.as_raw_fd(),
                        (&mut count as *mut u64).cast(),
                        std::mem::size_of::<u64>(),
                    )
                };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(count)
                }
            });
            match read {
                Ok(r) => return r,
                // Spurious readiness, now cleared by `try_io`: wait again.
                Err(_would_block) => continue,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_timer_expires_at_its_absolute_instants() {
        let period = Duration::from_millis(20);
        let first = monotonic_ns() + 30_000_000;
        let t = KernelTimer::start(first, period).expect("a timerfd");
        assert!(t.wait().await.expect("expires") >= 1);
        assert!(monotonic_ns() >= first, "not before its first instant");
        t.wait().await.expect("expires again");
        // Late by scheduling only, never early: the second wait ends a period later.
        assert!(monotonic_ns() >= first + period.as_nanos());
    }
}
