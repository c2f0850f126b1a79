//! A node's grid clock: one timer that ticks on every grid instant; the chores it runs at
//! each tick (connection watchdogs), and the handles other periodic tasks (SWIM's timers,
//! the beacon) wait on instead of each arming its own.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;

use tokio::sync::watch;
use tokio::time::{Interval, MissedTickBehavior};

use super::{first_tick_after, TICK};

/// Work done on the clock's task at every tick, for as long as it returns `true`. It must
/// not wait: every chore of the node shares the one task.
pub(crate) type Chore = Box<dyn FnMut() -> bool + Send>;

/// The clock of one node. Its ticking task starts with the first [`Clock::ticks`] or
/// [`Clock::every_tick`] (inside the node's runtime) and ends at the first tick after the
/// clock and every [`Ticks`] are dropped.
#[derive(Default)]
pub(crate) struct Clock {
    ticks: OnceLock<watch::Receiver<()>>,
    chores: Arc<Mutex<Vec<Chore>>>,
    /// Tick from tokio's timer even where a kernel timer exists (tests on paused time).
    #[cfg(test)]
    tokio_timer: bool,
}

/// A handle that waits for the clock's ticks. A tick missed while the holder was busy is
/// skipped, not queued.
#[derive(Debug, Clone)]
pub(crate) struct Ticks {
    rx: watch::Receiver<()>,
}

impl Clock {
    /// A clock driven by tokio's timer, for tests that pause time.
    #[cfg(test)]
    pub(crate) fn on_tokio_timer() -> Clock {
        Clock {
            ticks: OnceLock::new(),
            tokio_timer: true,
            chores: Default::default(),
        }
    }

    /// Runs `chore` at every tick from the next on, until it returns `false`. Must be
    /// called within the runtime the clock is to tick in.
    pub(crate) fn every_tick(&self, chore: Chore) {
        self.chores.lock().push(chore);
        self.start();
    }

    /// A handle on this clock's ticks, from the next one on. Must be called within the
    /// runtime the clock is to tick in.
    pub(crate) fn ticks(&self) -> Ticks {
        let mut rx = self.start().clone();
        rx.mark_unchanged();
        Ticks { rx }
    }

    /// Starts the ticking task, once.
    fn start(&self) -> &watch::Receiver<()> {
        self.ticks.get_or_init(|| {
            let (tx, rx) = watch::channel(());
            #[cfg(test)]
            let source = if self.tokio_timer {
                Source::Tokio(tokio_interval())
            } else {
                Source::start()
            };
            #[cfg(not(test))]
            let source = Source::start();
            tokio::spawn(tick(source, tx, self.chores.clone()));
            rx
        })
    }
}

impl Ticks {
    /// Waits for the next tick. Cancel-safe. Never returns once the clock has stopped,
    /// which it does only when nothing holds it any more.
    pub(crate) async fn next(&mut self) {
        if self.rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Runs the chores and tells every handle of each tick, until no handle is left.
async fn tick(mut source: Source, tx: watch::Sender<()>, chores: Arc<Mutex<Vec<Chore>>>) {
    loop {
        source.wait().await;
        run(&chores);
        if tx.send(()).is_err() {
            return;
        }
    }
}

/// Runs every chore once, keeping those that want to go on. A chore that panics is dropped
/// (and logged) rather than ending the clock of every other.
fn run(chores: &Mutex<Vec<Chore>>) {
    // Out of the lock while they run: a chore may add another.
    let mut due = std::mem::take(&mut *chores.lock());
    due.retain_mut(|c| {
        std::panic::catch_unwind(AssertUnwindSafe(c)).unwrap_or_else(|_| {
            tracing::error!("a chore of the timer grid panicked; it is dropped");
            false
        })
    });
    let mut list = chores.lock();
    due.append(&mut list);
    *list = due;
}

/// What the clock ticks from.
#[derive(Debug)]
enum Source {
    /// One kernel timer: one wakeup per tick.
    #[cfg(target_os = "linux")]
    Kernel(super::timerfd::KernelTimer),
    /// tokio's timer: two wakeups per tick (see `timerfd`), on systems without `timerfd`.
    Tokio(Interval),
}

impl Source {
    fn start() -> Source {
        #[cfg(target_os = "linux")]
        match super::timerfd::KernelTimer::start(super::first_tick_ns(), TICK) {
            Ok(t) => return Source::Kernel(t),
            Err(e) => tracing::warn!(
                error = %e,
                "cannot create a kernel timer for the timer grid; using tokio's, which \
                 wakes an idle node twice as often"
            ),
        }
        Source::Tokio(tokio_interval())
    }

    async fn wait(&mut self) {
        match self {
            #[cfg(target_os = "linux")]
            Source::Kernel(t) => {
                if let Err(e) = t.wait().await {
                    tracing::warn!(
                        error = %e,
                        "the timer grid's kernel timer failed; using tokio's from now on"
                    );
                    *self = Source::Tokio(tokio_interval());
                }
            }
            Source::Tokio(i) => {
                i.tick().await;
            }
        }
    }
}

/// An interval of [`TICK`] on the grid; a late tick is skipped, not shifted.
fn tokio_interval() -> Interval {
    let mut i = tokio::time::interval_at(first_tick_after(tokio::time::Instant::now()), TICK);
    i.set_missed_tick_behavior(MissedTickBehavior::Skip);
    i
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn every_handle_sees_each_tick_on_the_grid() {
        let clock = Clock::default();
        let (mut a, mut b) = (clock.ticks(), clock.ticks());
        for _ in 0..2 {
            a.next().await;
            assert!(super::super::past_grid(tokio::time::Instant::now()) < TICK / 2);
            // `b` missed nothing: the tick is there for it too.
            tokio::time::timeout(Duration::from_millis(1), b.next())
                .await
                .expect("b sees the same tick");
        }
    }

    #[tokio::test]
    async fn chores_run_at_each_tick_until_they_are_done() {
        use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
        let clock = Clock::default();
        let runs = Arc::new(AtomicUsize::new(0));
        let r = runs.clone();
        clock.every_tick(Box::new(move || r.fetch_add(1, Relaxed) < 1));
        clock.every_tick(Box::new(|| panic!("a broken chore")));
        let mut t = clock.ticks();
        for _ in 0..3 {
            t.next().await;
        }
        assert_eq!(runs.load(Relaxed), 2, "ran until it said it was done");
        assert!(
            clock.chores.lock().is_empty(),
            "the done and the panicking are gone"
        );
    }

    #[tokio::test]
    async fn handles_keep_the_clock_ticking_after_it_is_dropped() {
        let clock = Clock::default();
        let mut t = clock.ticks();
        drop(clock);
        tokio::time::timeout(TICK * 3, t.next())
            .await
            .expect("ticks");
    }
}
