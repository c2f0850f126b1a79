//! Acknowledgements of one publication on one node: every delivery that must be confirmed
//! carries an [`AckGuard`]; when the last guard is gone the tally is reported once.

use parking_lot::Mutex;
use std::sync::Arc;

use bytes::Bytes;

use crate::proto::wire::Failure;

/// What the subscribers of one node did with one publication.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub acked: u32,
    /// One line per subscriber that did not handle it, with why.
    pub missing: Vec<String>,
    /// The answering subscriber's result, for a request-publish.
    pub answer: Option<Result<Bytes, Failure>>,
}

type Done = Box<dyn FnOnce(Tally) + Send>;

/// Shared by the guards of one publication; reports when the last guard drops.
struct AckState {
    tally: Mutex<Tally>,
    done: Mutex<Option<Done>>,
}

impl Drop for AckState {
    fn drop(&mut self) {
        let done = self.done.get_mut().take();
        if let Some(done) = done {
            done(std::mem::take(self.tally.get_mut()));
        }
    }
}

/// Hands out guards for one publication and reports their tally to `done` once the last
/// guard (and this ledger) is gone.
pub(crate) struct Ledger(Arc<AckState>);

impl Ledger {
    pub(crate) fn new(done: impl FnOnce(Tally) + Send + 'static) -> Self {
        Ledger(Arc::new(AckState {
            tally: Mutex::new(Tally::default()),
            done: Mutex::new(Some(Box::new(done))),
        }))
    }

    /// A guard for the delivery to the subscriber `label`; `answers` if its result is the
    /// answer to a request-publish.
    pub(crate) fn guard(&self, label: Arc<str>, answers: bool) -> AckGuard {
        AckGuard {
            state: Some(self.0.clone()),
            label,
            answers,
        }
    }
}

/// One delivery awaiting its subscriber. Dropped unsettled, it counts as missing.
pub(crate) struct AckGuard {
    state: Option<Arc<AckState>>,
    label: Arc<str>,
    answers: bool,
}

impl AckGuard {
    /// Whether the publisher waits for this subscriber's result.
    pub(crate) fn answers(&self) -> bool {
        self.answers
    }

    /// The subscriber handled it; `result` is its outcome (the answer, if one is wanted).
    pub(crate) fn settle(mut self, result: Result<Bytes, Failure>) {
        if let Some(s) = self.state.take() {
            let mut t = s.tally.lock();
            match &result {
                Ok(_) => t.acked += 1,
                Err(f) => t
                    .missing
                    .push(format!("{} failed: {}", self.label, f.message)),
            }
            if self.answers {
                t.answer = Some(result);
            }
        }
    }

    /// The subscriber never got it, because of `why`.
    pub(crate) fn fail(mut self, why: &str) {
        self.record_missing(why);
    }

    fn record_missing(&mut self, why: &str) {
        if let Some(s) = self.state.take() {
            let mut t = s.tally.lock();
            t.missing.push(format!("{}: {why}", self.label));
            if self.answers {
                t.answer = Some(Err(Failure::internal(format!("{}: {why}", self.label))));
            }
        }
    }
}

impl Drop for AckGuard {
    fn drop(&mut self) {
        self.record_missing("dropped before it was handled (unsubscribed or shut down)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_once_when_the_last_guard_goes() {
        let (tx, rx) = std::sync::mpsc::channel();
        let ledger = Ledger::new(move |t| tx.send(t).unwrap());
        let a = ledger.guard("a".into(), false);
        let b = ledger.guard("b".into(), true);
        let c = ledger.guard("c".into(), false);
        drop(ledger);
        a.settle(Ok(Bytes::new()));
        b.settle(Ok(Bytes::from_static(&[1])));
        assert!(rx.try_recv().is_err(), "c is still out");
        c.fail("queue full");
        let t = rx.try_recv().unwrap();
        assert_eq!(t.acked, 2);
        assert_eq!(t.missing, vec!["c: queue full".to_string()]);
        assert_eq!(t.answer, Some(Ok(Bytes::from_static(&[1]))));
    }

    #[test]
    fn a_dropped_guard_counts_as_missing() {
        let (tx, rx) = std::sync::mpsc::channel();
        let ledger = Ledger::new(move |t| tx.send(t).unwrap());
        drop(ledger.guard("x".into(), false));
        drop(ledger);
        let t = rx.try_recv().unwrap();
        assert_eq!(t.acked, 0);
        assert_eq!(t.missing.len(), 1);
    }
}
