//! One service's supervisor: a task that runs its process, captures its output, notices
//! when its node joins, restarts it under its policy, and stops it when asked.

use std::io::Write;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use parking_lot::Mutex;
use tokio::io::AsyncRead;
use tokio::process::Child;
use tokio_util::codec::{AnyDelimiterCodec, AnyDelimiterCodecError, FramedRead};
use tokio_util::sync::CancellationToken;

use super::controller::{backoff, Controller, Unit};
use super::folder::Service;
use super::manifest::Restart;
use super::process;
use super::ring::LINE_BYTES;
use super::status::State;

/// A service that ran this long before failing starts a fresh count of restarts in a row.
const STABLE: Duration = Duration::from_secs(60);

/// How long output still arriving after the process exited (from what it started) is
/// waited for before the supervisor moves on.
const DRAIN: Duration = Duration::from_millis(500);

/// How one process of the service ended.
enum Ending {
    /// On its own.
    Exited(std::io::Result<ExitStatus>),
    /// Stopped by us: its status, when SIGTERM went (Unix ms), how long it took, killed.
    Stopped(std::io::Result<ExitStatus>, u64, u64, bool),
}

/// Supervises `service` until it is stopped, ends successfully, or fails for good.
pub(crate) async fn run(
    ctl: Arc<Controller>,
    unit: Arc<Unit>,
    service: Service,
    stop: CancellationToken,
) {
    let mut in_row = 0u32;
    loop {
        let spawned_ms = unix_ms();
        let mut child = match process::spawn(&service, &env(&ctl, &service)) {
            Ok(c) => c,
            Err(e) => {
                unit.note(format!("not started: {e}"));
                return finish(&unit, State::Failed, format!("not started: {e}"), None);
            }
        };
        let started = Instant::now();
        let pid = child.id();
        unit.note(format!(
            "started {} (pid {})",
            service.program().display(),
            pid.unwrap_or(0)
        ));
        let ready = ctl.is_ready(&service, spawned_ms);
        unit.update(|l| {
            l.pid = pid;
            l.since = Some(started);
            l.spawned_ms = spawned_ms;
            l.state = Some(if ready {
                State::Running
            } else {
                State::Starting
            });
        });
        let output = capture(&unit, &service, &mut child);
        let ending = watch(&ctl, &unit, &service, &mut child, &stop, spawned_ms).await;
        let _ = tokio::time::timeout(DRAIN, output).await;
        let (status, stopped) = match ending {
            Ending::Stopped(status, term_ms, took_ms, killed) => {
                (status, Some((term_ms, took_ms, killed)))
            }
            Ending::Exited(status) => (status, None),
        };
        let how = match &status {
            Ok(s) => process::describe(s),
            Err(e) => format!("lost track of it: {e}"),
        };
        if let Some(last) = stopped {
            unit.note(format!("stopped ({how})"));
            return finish(&unit, State::Stopped, how, Some(last));
        }
        if status.as_ref().is_ok_and(|s| s.success()) {
            unit.note(format!("exited ({how})"));
            return finish(&unit, State::Stopped, how, None);
        }
        if started.elapsed() >= STABLE {
            in_row = 0;
        }
        let max = match service.manifest.restart {
            Restart::Never => 0,
            Restart::OnFailure { max_restarts, .. } => max_restarts,
        };
        if in_row >= max {
            let why = match service.manifest.restart {
                Restart::Never => "restart policy `never`".to_string(),
                _ => format!("{max} restarts in a row used up"),
            };
            unit.note(format!("exited ({how}); not restarted: {why}"));
            return finish(&unit, State::Failed, how, None);
        }
        in_row += 1;
        let wait = backoff(&service.manifest.restart, in_row).unwrap_or_default();
        unit.note(format!(
            "exited ({how}); restart {in_row} of {max} in {} ms",
            wait.as_millis()
        ));
        unit.update(|l| {
            l.state = Some(State::Starting);
            l.pid = None;
            l.since = None;
            l.last_exit = Some(how.clone());
            l.restarts += 1;
        });
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.cancelled() => {
                unit.note("stopped while waiting to restart".into());
                return finish(&unit, State::Stopped, how, Some((unix_ms(), 0, false)));
            }
        }
    }
}

/// The last change of a supervisor: the service's final state; stops count as done.
fn finish(unit: &Unit, state: State, how: String, last_stop: Option<(u64, u64, bool)>) {
    unit.update(|l| {
        l.state = Some(state);
        l.pid = None;
        l.since = None;
        l.last_exit = Some(how);
        if last_stop.is_some() {
            l.last_stop = last_stop;
        }
        l.stop = None;
    });
}

/// The environment a service gets: the node's `MPREG_*` set, its node's name and its
/// resources (the manifest's own `env` goes on top, in `process::spawn`).
fn env(ctl: &Controller, service: &Service) -> Vec<(String, String)> {
    let mut env = ctl.env.clone();
    env.push(("MPREG_SERVICE".into(), service.name.clone()));
    env.push(("MPREG_NAME".into(), ctl.service_node(&service.name)));
    if !service.manifest.resources.is_empty() {
        env.push((
            "MPREG_RESOURCES".into(),
            service.manifest.resources.join(","),
        ));
    }
    env
}

/// Waits for the process to end on its own or to be stopped; meanwhile marks the service
/// running once its node has joined.
async fn watch(
    ctl: &Controller,
    unit: &Unit,
    service: &Service,
    child: &mut Child,
    stop: &CancellationToken,
    spawned_ms: u64,
) -> Ending {
    let mut changes = ctl.view.changes();
    let mut view_alive = true;
    loop {
        tokio::select! {
            status = child.wait() => return Ending::Exited(status),
            _ = stop.cancelled() => return terminate(unit, service, child).await,
            r = changes.changed(), if view_alive => {
                view_alive = r.is_ok();
                let starting = unit.life.lock().state == Some(State::Starting);
                if starting && ctl.is_ready(service, spawned_ms) {
                    unit.note(format!("ready: its node `{}` joined", ctl.service_node(&service.name)));
                    unit.update(|l| l.state = Some(State::Running));
                }
            }
        }
    }
}

/// SIGTERM to its process group, SIGKILL after `stop_timeout`.
async fn terminate(unit: &Unit, service: &Service, child: &mut Child) -> Ending {
    let term_ms = unix_ms();
    let t0 = Instant::now();
    unit.update(|l| l.state = Some(State::Stopping));
    let Some(pid) = child.id() else {
        // Already reaped: nothing to signal.
        return Ending::Stopped(child.wait().await, term_ms, 0, false);
    };
    process::signal_group(pid, process::TERM);
    let limit = service.manifest.stop_timeout();
    match tokio::time::timeout(limit, child.wait()).await {
        Ok(status) => Ending::Stopped(status, term_ms, t0.elapsed().as_millis() as u64, false),
        Err(_) => {
            unit.note(format!(
                "still running {} ms after SIGTERM (stop_timeout): SIGKILL",
                limit.as_millis()
            ));
            process::signal_group(pid, process::KILL);
            let status = child.wait().await;
            Ending::Stopped(status, term_ms, t0.elapsed().as_millis() as u64, true)
        }
    }
}

/// Copies the process's output, line by line, into the unit's ring (and its log file).
fn capture(unit: &Arc<Unit>, service: &Service, child: &mut Child) -> tokio::task::JoinHandle<()> {
    let file = service.manifest.log_file.as_ref().and_then(|f| {
        let path = service.folder().join(f);
        match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
        {
            Ok(file) => Some(Arc::new(Mutex::new(file))),
            Err(e) => {
                unit.note(format!("cannot open log file {}: {e}", path.display()));
                None
            }
        }
    });
    let out = pump(child.stdout.take(), "stdout", unit.clone(), file.clone());
    let err = pump(child.stderr.take(), "stderr", unit.clone(), file);
    tokio::spawn(async move {
        tokio::join!(out, err);
    })
}

async fn pump<R: AsyncRead + Unpin>(
    from: Option<R>,
    stream: &'static str,
    unit: Arc<Unit>,
    file: Option<Arc<Mutex<std::fs::File>>>,
) {
    let Some(from) = from else { return };
    let codec = AnyDelimiterCodec::new_with_max_length(b"\n".to_vec(), Vec::new(), LINE_BYTES);
    let mut lines = FramedRead::new(from, codec);
    while let Some(item) = lines.next().await {
        let text = match item {
            Ok(bytes) => String::from_utf8_lossy(&bytes)
                .trim_end_matches('\r')
                .to_string(),
            Err(AnyDelimiterCodecError::MaxChunkLengthExceeded) => {
                format!("[a line over {LINE_BYTES} bytes was dropped]")
            }
            Err(AnyDelimiterCodecError::Io(_)) => break,
        };
        if let Some(f) = &file {
            // A full disk must not stop the service: the ring still has the line.
            let _ = writeln!(f.lock(), "{stream}: {text}");
        }
        unit.logs.lock().push(stream, text);
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
