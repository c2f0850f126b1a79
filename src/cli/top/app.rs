//! The live screen: a poller task, a thread reading keys, and the loop that draws whenever
//! either brings something. The terminal is restored on every way out: quitting, an error,
//! a signal, and a panic (ratatui's panic hook restores it before the message prints).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use tokio::sync::mpsc;

use super::model::{Poll, Session, SortKey};
use super::poll::Poller;
use super::view::{self, Screen};

/// What a key (or the terminal) asks for.
#[derive(Debug, PartialEq)]
enum Input {
    Quit,
    Sort(SortKey),
    NextSort,
    /// Resized, or a key with no meaning: just redraw.
    Redraw,
    /// Reading the terminal failed.
    Failed(String),
}

/// What a key means; `None` for a key release or repeat of nothing.
fn input(key: KeyEvent) -> Option<Input> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    Some(match key.code {
        KeyCode::Char('c') if ctrl => Input::Quit,
        KeyCode::Char('q') | KeyCode::Esc => Input::Quit,
        KeyCode::Char('s') => Input::NextSort,
        KeyCode::Char('c') => Input::Sort(SortKey::Calls),
        KeyCode::Char('n') => Input::Sort(SortKey::Name),
        KeyCode::Char('p') => Input::Sort(SortKey::P99),
        KeyCode::Char('e') => Input::Sort(SortKey::Errors),
        _ => return None,
    })
}

/// Set by the panic hook: once a thread panicked the terminal is restored and the message
/// printed, so the screen must not draw over it again.
static PANICKED: AtomicBool = AtomicBool::new(false);

/// Wraps the panic hook (ratatui's, which restores the terminal, then the default printer)
/// to set [`PANICKED`] first.
fn watch_panics() {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICKED.store(true, Ordering::SeqCst);
        hook(info);
    }));
}

/// Restores the terminal when dropped, however the screen ends.
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        // After a panic the hook has restored it: a second restore would move the cursor
        // back over the panic message.
        if !PANICKED.load(Ordering::SeqCst) {
            ratatui::restore();
        }
    }
}

/// An error of the screen itself, as `top: WHAT`.
fn stopped(what: &str) -> mpreg::Error {
    mpreg::Error::Io {
        context: "top".into(),
        source: std::io::Error::other(what.to_string()),
    }
}

/// Runs the screen until `q`, Esc, Ctrl-C or a shutdown signal.
pub async fn run(
    poller: Poller,
    cluster: &str,
    interval: Duration,
    started: Instant,
) -> mpreg::Result<()> {
    let node = poller.node().clone();
    let (polls_tx, mut polls) = mpsc::channel::<Poll>(2);
    let poll_task = tokio::spawn(poll_forever(poller, interval, polls_tx));
    let stop = Arc::new(AtomicBool::new(false));
    let (keys_tx, mut keys) = mpsc::channel::<Input>(16);
    let reader = {
        let stop = stop.clone();
        std::thread::spawn(move || read_keys(&stop, &keys_tx))
    };
    let out = screen(&mut polls, &mut keys, cluster, interval, started).await;
    stop.store(true, Ordering::Relaxed);
    poll_task.abort();
    let _ = reader.join();
    node.shutdown().await;
    out
}

async fn screen(
    polls: &mut mpsc::Receiver<Poll>,
    keys: &mut mpsc::Receiver<Input>,
    cluster: &str,
    interval: Duration,
    started: Instant,
) -> mpreg::Result<()> {
    let io = |source| mpreg::Error::Io {
        context: "top: terminal".into(),
        source,
    };
    let mut terminal = ratatui::try_init().map_err(io)?;
    let _restore = Restore;
    watch_panics();
    let mut session = Session::default();
    let signal = mpreg::shutdown_signal();
    tokio::pin!(signal);
    loop {
        if PANICKED.load(Ordering::SeqCst) {
            return Err(stopped("stopped after the panic above"));
        }
        let tables = session.sorted();
        let status = (session.members() == 0).then_some("no member found yet: still looking");
        let s = Screen {
            cluster,
            interval,
            uptime: started.elapsed(),
            tables: &tables,
            events: session.events(),
            sort: session.sort,
            status,
        };
        terminal.draw(|f| view::draw(f, &s)).map_err(io)?;
        tokio::select! {
            p = polls.recv() => match p {
                Some(p) => session.update(p),
                None => return Err(stopped("the poller stopped")),
            },
            k = keys.recv() => match k {
                Some(Input::Quit) => return Ok(()),
                None => return Err(stopped("the key reader stopped")),
                Some(Input::Failed(e)) => {
                    return Err(stopped(&format!("reading the terminal: {e}")))
                }
                Some(Input::Sort(k)) => session.sort = k,
                Some(Input::NextSort) => session.sort = session.sort.next(),
                Some(Input::Redraw) => {}
            },
            _ = &mut signal => return Ok(()),
        }
    }
}

/// Polls every `interval` (a slow poll delays the next tick rather than bunching them) and
/// sends each one to the screen until it goes away.
async fn poll_forever(mut poller: Poller, interval: Duration, out: mpsc::Sender<Poll>) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let poll = poller.poll().await;
        if out.send(poll).await.is_err() {
            return;
        }
    }
}

/// Reads the terminal until `stop` is set or the screen went away; wakes every 100 ms to
/// look at `stop` (crossterm's reads block).
fn read_keys(stop: &AtomicBool, out: &mpsc::Sender<Input>) {
    while !stop.load(Ordering::Relaxed) {
        let got = match event::poll(Duration::from_millis(100)) {
            Ok(false) => continue,
            Ok(true) => event::read(),
            Err(e) => Err(e),
        };
        let msg = match got {
            Ok(Event::Key(k)) => match input(k) {
                Some(i) => i,
                None => continue,
            },
            Ok(Event::Resize(..)) => Input::Redraw,
            Ok(_) => continue,
            Err(e) => Input::Failed(e.to_string()),
        };
        let last = matches!(msg, Input::Quit | Input::Failed(_));
        if out.blocking_send(msg).is_err() || last {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode, modifiers: KeyModifiers) -> Option<Input> {
        input(KeyEvent::new(code, modifiers))
    }

    #[test]
    fn keys_quit_and_sort() {
        assert_eq!(
            key(KeyCode::Char('q'), KeyModifiers::NONE),
            Some(Input::Quit)
        );
        assert_eq!(key(KeyCode::Esc, KeyModifiers::NONE), Some(Input::Quit));
        assert_eq!(
            key(KeyCode::Char('c'), KeyModifiers::CONTROL),
            Some(Input::Quit)
        );
        assert_eq!(
            key(KeyCode::Char('c'), KeyModifiers::NONE),
            Some(Input::Sort(SortKey::Calls))
        );
        assert_eq!(
            key(KeyCode::Char('p'), KeyModifiers::NONE),
            Some(Input::Sort(SortKey::P99))
        );
        assert_eq!(
            key(KeyCode::Char('s'), KeyModifiers::NONE),
            Some(Input::NextSort)
        );
        assert_eq!(key(KeyCode::Char('x'), KeyModifiers::NONE), None);
        let mut release = KeyEvent::new(KeyCode::Char('q'), KeyModifiers::NONE);
        release.kind = KeyEventKind::Release;
        assert_eq!(input(release), None);
    }
}
