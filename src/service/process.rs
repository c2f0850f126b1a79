//! A service's process: started with the environment that makes its node join this
//! cluster, in its own process group (so stopping it reaches what it started too), and
//! signalled by group.

use std::process::{ExitStatus, Stdio};

use tokio::process::{Child, Command};

use super::folder::Service;

/// Starts `service` with `env` (the controlling node's `MPREG_*` variables) under its
/// manifest's own variables, output piped for the log ring.
pub(crate) fn spawn(service: &Service, env: &[(String, String)]) -> std::io::Result<Child> {
    let m = &service.manifest;
    let mut c = Command::new(service.program());
    c.args(&m.args)
        .current_dir(service.working_dir())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .envs(&m.env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    #[cfg(unix)]
    c.process_group(0);
    #[cfg(target_os = "linux")]
    die_with_parent(&mut c);
    c.spawn().map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot run {}: {e}", service.program().display()),
        )
    })
}

/// Asks the kernel to SIGTERM the service when the node's process dies (kill -9 included),
/// so no service outlives its controller unsupervised. The signal is tied to the thread
/// that spawns it: services are spawned from the runtime's worker threads, which live as
/// long as the node.
#[cfg(target_os = "linux")]
fn die_with_parent(c: &mut Command) {
    // SAFETY: the closure runs in the forked child before exec and only makes
    // async-signal-safe calls (prctl, getppid).
    let parent = std::process::id() as libc::pid_t;
    unsafe {
        c.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl.
            if libc::getppid() != parent {
                return Err(std::io::Error::other("the controlling node exited"));
            }
            Ok(())
        });
    }
}

/// Sends `signal` to the process group led by `pid` (the service and what it started).
#[cfg(unix)]
pub(crate) fn signal_group(pid: u32, signal: i32) {
    // SAFETY: kill(2) with a negative pid signals a process group; no memory is involved.
    unsafe {
        libc::kill(-(pid as libc::pid_t), signal);
    }
}

/// SIGTERM.
#[cfg(unix)]
pub(crate) const TERM: i32 = libc::SIGTERM;
/// SIGKILL.
#[cfg(unix)]
pub(crate) const KILL: i32 = libc::SIGKILL;

/// How a process ended, in words: `exit code 3`, `killed by signal 9`.
pub(crate) fn describe(status: &ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exit code {code}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(s) = status.signal() {
            return format!("killed by signal {s}");
        }
    }
    "ended".into()
}
