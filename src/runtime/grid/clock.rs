//! A node's grid clock: one timer that ticks on every grid instant; the chores it runs at
//! each tick (connection watchdogs), and the handles other periodic tasks (SWIM's timers,
//! the beacon) wait on instead of each arming its own.
//!
//! A handle waits for an instant, not for the next tick: the clock wakes it at the first
//! tick its instant is due at, and leaves it asleep at the ticks before. A tick that wakes
//! no task but its own is one thread's wakeup; one that woke every waiting task made tokio
//! wake a second worker thread to share them out, at every tick, for nothing.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::task::{Poll, Waker};

use parking_lot::Mutex;

use tokio::time::{Instant, Interval, MissedTickBehavior};

use super::{due, first_tick_after, TICK};

/// Work done on the clock's task at every tick, for as long as it returns `true`. It must
/// not wait: every chore of the node shares the one task.
pub(crate) type Chore = Box<dyn FnMut() -> bool + Send>;

/// The clock of one node. Its ticking task starts with the first [`Clock::ticks`] or
/// [`Clock::every_tick`] (inside the node's runtime) and ends at the first tick after the
/// clock and every [`Ticks`] are dropped.
#[derive(Default)]
pub(crate) struct Clock {
    board: OnceLock<Arc<Board>>,
    chores: Arc<Mutex<Vec<Chore>>>,
    /// Tick from tokio's timer even where a kernel timer exists (tests on paused time).
    #[cfg(test)]
    tokio_timer: bool,
}

/// What the ticking task shares with the handles: who waits for which instant.
#[derive(Debug, Default)]
struct Board {
    /// One entry per handle that waits (at most one each): bounded by the handles.
    waiting: Mutex<Vec<Waiting>>,
    next_id: AtomicU64,
}

/// A handle waiting for the tick at which `at` is due.
#[derive(Debug)]
struct Waiting {
    id: u64,
    at: Instant,
    waker: Waker,
}

/// A handle that waits for the clock's ticks.
#[derive(Debug)]
pub(crate) struct Ticks {
    board: Arc<Board>,
    id: u64,
}

impl Clock {
    /// A clock driven by tokio's timer, for tests that pause time.
    #[cfg(test)]
    pub(crate) fn on_tokio_timer() -> Clock {
        Clock {
            board: OnceLock::new(),
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

    /// A handle on this clock's ticks. Must be called within the runtime the clock is to
    /// tick in.
    pub(crate) fn ticks(&self) -> Ticks {
        let board = self.start().clone();
        let id = board.next_id.fetch_add(1, Relaxed);
        Ticks { board, id }
    }

    /// Starts the ticking task, once.
    fn start(&self) -> &Arc<Board> {
        self.board.get_or_init(|| {
            let board = Arc::new(Board::default());
            #[cfg(test)]
            let source = if self.tokio_timer {
                Source::Tokio(tokio_interval())
            } else {
                Source::start()
            };
            #[cfg(not(test))]
            let source = Source::start();
            tokio::spawn(tick(source, board.clone(), self.chores.clone()));
            board
        })
    }
}

impl Ticks {
    /// Waits for the first tick at which `at` is due (see [`due`]); returns at once if it
    /// is due now. Cancel-safe.
    pub(crate) async fn until(&mut self, at: Instant) {
        std::future::poll_fn(|cx| {
            if due(at, Instant::now()) {
                return Poll::Ready(());
            }
            let mut waiting = self.board.waiting.lock();
            let waker = cx.waker().clone();
            match waiting.iter_mut().find(|w| w.id == self.id) {
                Some(w) => (w.at, w.waker) = (at, waker),
                None => waiting.push(Waiting {
                    id: self.id,
                    at,
                    waker,
                }),
            }
            Poll::Pending
        })
        .await
    }

    /// Waits for the next tick. Cancel-safe.
    #[cfg(test)]
    pub(crate) async fn next(&mut self) {
        // Past the slack: a tick that read the clock a little early (see `SLACK`) is not
        // the next one again.
        self.until(first_tick_after(Instant::now() + super::SLACK))
            .await
    }
}

impl Drop for Ticks {
    fn drop(&mut self) {
        self.board.waiting.lock().retain(|w| w.id != self.id);
    }
}

/// Runs the chores and wakes the handles whose instant is due, at each tick, until no
/// handle is left.
async fn tick(mut source: Source, board: Arc<Board>, chores: Arc<Mutex<Vec<Chore>>>) {
    loop {
        source.wait().await;
        run(&chores);
        wake_due(&board);
        // Only this task holds the board: the clock and every handle are gone.
        if Arc::strong_count(&board) == 1 {
            return;
        }
    }
}

/// Wakes (and forgets) every handle whose instant is due now.
fn wake_due(board: &Board) {
    let now = Instant::now();
    let mut waiting = board.waiting.lock();
    if !waiting.iter().any(|w| due(w.at, now)) {
        return;
    }
    let (woken, left): (Vec<_>, Vec<_>) = std::mem::take(&mut *waiting)
        .into_iter()
        .partition(|w| due(w.at, now));
    *waiting = left;
    // Out of the lock: a woken task may run at once on another thread and wait again.
    drop(waiting);
    woken.into_iter().for_each(|w| w.waker.wake());
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
    use std::future::Future;

    #[tokio::test]
    async fn every_handle_waiting_for_a_tick_wakes_at_it_on_the_grid() {
        let clock = Clock::default();
        let (mut a, mut b) = (clock.ticks(), clock.ticks());
        for _ in 0..2 {
            let at = first_tick_after(Instant::now());
            let both = async { tokio::join!(a.until(at), b.until(at)) };
            tokio::time::timeout(TICK * 2, both)
                .await
                .expect("both woken");
            assert!(super::super::past_grid(Instant::now()) < TICK / 2);
        }
    }

    /// Counts its wakes.
    struct Counter(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Relaxed);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_handle_sleeps_through_the_ticks_before_its_instant() {
        let clock = Clock::on_tokio_timer();
        let (mut t, mut probe) = (clock.ticks(), clock.ticks());
        let at = Instant::now() + TICK * 5 / 2;
        let wakes = Arc::new(Counter(Default::default()));
        let waker = Waker::from(wakes.clone());
        let mut cx = std::task::Context::from_waker(&waker);
        let mut wait = std::pin::pin!(t.until(at));
        assert!(wait.as_mut().poll(&mut cx).is_pending());
        // Ticks go by (the probe sees each, after the clock woke whoever was due at it).
        let mut ticks = 0;
        loop {
            probe.next().await;
            ticks += 1;
            if due(at, Instant::now()) {
                break;
            }
            assert_eq!(
                wakes.0.load(Relaxed),
                0,
                "woken at tick {ticks}, before its instant"
            );
        }
        assert!(ticks >= 2, "{ticks} ticks");
        assert_eq!(
            wakes.0.load(Relaxed),
            1,
            "woken once, at the tick it is due"
        );
        assert!(wait.as_mut().poll(&mut cx).is_ready());
        assert!(due(at, Instant::now()) && Instant::now() < at + TICK);
    }

    #[tokio::test]
    async fn chores_run_at_each_tick_until_they_are_done() {
        use std::sync::atomic::AtomicUsize;
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
