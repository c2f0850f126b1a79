//! foca's periodic gossip, held while it has nothing to send.
//!
//! foca re-arms its periodic gossip (every 200 ms) whether or not there is anything to
//! send: on an idle cluster it was most of a node's timer wakeups, each a context switch
//! for nothing (issue #17: an idle node should cost ≤ 0.1 % of a core). So a gossip timer
//! that comes due with nothing to send is not handed to foca (which would re-arm it) but
//! parked here; it is handed back, due at once, as soon as foca has updates or broadcasts
//! to gossip. Dissemination is as prompt as before, or a little more (the first gossip of
//! a change goes out at once).
//!
//! The announcements to down members (every second) are left to foca: holding them while
//! no member is down left a node whose renewed identity nobody had heard of stranded with
//! no timer at all (tests/simulation.rs `no_suspicion_outlives_a_heal`), and on the timer
//! grid they cost no wakeup of their own.

use foca::{Timer, TimerToken};

use crate::proto::member::Member;

/// The periodic timers being held, by foca's token.
///
/// foca stamps its timers with a token that changes when it resets (identity renewal,
/// losing every member) and ignores a timer with an old token: that ends the old chain of a
/// periodic timer, and foca starts a new one. Only a timer of the current chain may be
/// parked: a stale one parked in its place would be handed back, ignored, and leave the
/// node with no periodic gossip at all. The current token is the one on the timers foca
/// last asked for.
#[derive(Debug, Default)]
pub(super) struct Parked {
    gossip: Option<TimerToken>,
    current: Option<TimerToken>,
}

/// The token a foca timer carries, if any.
fn token_of(timer: &Timer<Member>) -> Option<TimerToken> {
    match timer {
        Timer::ProbeRandomMember(t)
        | Timer::PeriodicAnnounce(t)
        | Timer::PeriodicAnnounceDown(t)
        | Timer::PeriodicGossip(t) => Some(*t),
        Timer::SendIndirectProbe { token, .. } | Timer::ChangeSuspectToDown { token, .. } => {
            Some(*token)
        }
        Timer::RemoveDown(_) => None,
    }
}

/// What a node has for its periodic gossip to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Work {
    /// Membership updates or custom broadcasts waiting to be gossiped.
    pub(super) to_gossip: bool,
}

impl Parked {
    /// Notes a timer foca asked for: its token is foca's current one.
    pub(super) fn asked(&mut self, timer: &Timer<Member>) {
        if let Some(t) = token_of(timer) {
            self.current = Some(t);
        }
    }

    /// Parks `timer` if it is the periodic gossip with nothing to send; otherwise gives it
    /// back to be handed to foca. `work` is asked only for the periodic gossip.
    pub(super) fn park(
        &mut self,
        timer: Timer<Member>,
        work: impl FnOnce() -> Work,
    ) -> Option<Timer<Member>> {
        let Timer::PeriodicGossip(token) = timer else {
            return Some(timer);
        };
        if Some(token) != self.current {
            // An ended chain: foca would ignore it.
            return None;
        }
        if work().to_gossip {
            return Some(timer);
        }
        self.gossip = Some(token);
        None
    }

    /// The parked gossip timer if it now has work, to schedule at once. `work` is asked
    /// only while it is parked.
    pub(super) fn unpark(&mut self, work: impl FnOnce() -> Work) -> Option<Timer<Member>> {
        self.gossip?;
        if !work().to_gossip {
            return None;
        }
        self.gossip.take().map(Timer::PeriodicGossip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE: Work = Work { to_gossip: false };
    const BUSY: Work = Work { to_gossip: true };

    fn parked_at(token: TimerToken) -> Parked {
        let mut p = Parked::default();
        p.asked(&Timer::ProbeRandomMember(token));
        p
    }

    #[test]
    fn an_idle_gossip_timer_is_held_until_there_is_something_to_send() {
        let mut p = parked_at(3);
        assert_eq!(p.park(Timer::PeriodicGossip(3), || IDLE), None);
        assert_eq!(p.unpark(|| IDLE), None);
        assert_eq!(p.unpark(|| BUSY), Some(Timer::PeriodicGossip(3)));
        assert_eq!(p.unpark(|| BUSY), None, "handed back once");
    }

    #[test]
    fn a_busy_gossip_timer_or_another_timer_goes_to_foca() {
        let mut p = parked_at(1);
        assert_eq!(
            p.park(Timer::PeriodicGossip(1), || BUSY),
            Some(Timer::PeriodicGossip(1))
        );
        let other = Timer::PeriodicAnnounceDown(1);
        assert_eq!(
            p.park(other.clone(), || unreachable!("not gossip")),
            Some(other)
        );
        assert_eq!(p.unpark(|| BUSY), None);
    }

    #[test]
    fn a_timer_of_an_ended_chain_never_takes_the_place_of_the_live_one() {
        let mut p = parked_at(5);
        assert_eq!(p.park(Timer::PeriodicGossip(5), || IDLE), None);
        // foca reset: its new chain runs under token 6, and an old timer comes due.
        p.asked(&Timer::PeriodicGossip(6));
        assert_eq!(p.park(Timer::PeriodicGossip(4), || IDLE), None);
        assert_eq!(p.park(Timer::PeriodicGossip(6), || IDLE), None);
        assert_eq!(p.unpark(|| BUSY), Some(Timer::PeriodicGossip(6)));
    }
}
