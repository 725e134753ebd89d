//! The client's sync engine: a pure state machine (no sockets, no clock, no randomness — all
//! injected). Inputs are what happened (a local change, a live "head moved" message, a timer,
//! a reply or a failure); the output is the next thing to do. A driver (`tandem_store::driver`)
//! performs it: HTTP calls, storing pulled events, correcting the clock, waiting.
//!
//! The algorithm (docs/protocol.md, "Sync algorithm"): pull until `has_more` is false, then, if
//! the outbox is not empty, push a batch with `cursor = head`; PULL_REQUIRED means someone
//! pushed in between: pull again (rebase happens when pulled events are stored) and retry. A
//! local change pushes first (no pull in front of it); a head heard past the cursor pulls.
//! Transport failures and 5xx back off exponentially with full jitter, capped; repeated
//! PULL_REQUIRED backs off too, so many clients pushing at once cannot livelock.

/// What the engine asks the driver to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Pull events after `cursor` (the driver stores them, then reports [`Input::Pulled`]).
    Pull { cursor: u64 },
    /// Push up to `limit` outbox events with this cursor (report [`Input::Pushed`]).
    Push { cursor: u64, limit: usize },
    /// Nothing to do before `until_ms` (or until an input arrives).
    Wait { until_ms: u64 },
    /// Nothing to do until an input arrives.
    Idle,
}

/// Why a step failed, as far as the engine cares. Every failure leaves the engine able to go
/// on: it retries (after a backoff where the failure could repeat) — only
/// [`Failure::LogMismatch`] stops, because only a person (or the recovery of a restored
/// server) can mend it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Network down, timeout, 5xx: retry later.
    Transport,
    /// BUSY (503): a bound of the server's was reached; retry after at least this long.
    Busy { retry_after_ms: u64 },
    /// PULL_REQUIRED: the head moved since our pull.
    PullRequired,
    /// CLOCK_DRIFT: the driver has corrected the clock (DESIGN.md rule 8); push again, backing
    /// off when the refusal repeats (the server's clock may have stepped back).
    ClockDrift,
    /// VERSION_CONFLICT or ID_REUSED: our log is behind the server's; pull and retry.
    Conflict,
    /// One event was refused for good (INVALID_EVENT, TOO_LARGE on its own) and the driver set
    /// it aside (rule 13): push what follows now.
    EventSetAside,
    /// The whole request was refused (MALFORMED, an answer without the fields the protocol
    /// promises): a bug somewhere; back off and retry.
    Refused,
    /// This device failed to store or project what it got (its disk, an undecodable event):
    /// back off and retry.
    Local,
    /// CURSOR_AHEAD: the server holds fewer events than this device (restored from an older
    /// backup?). Stop mixing logs.
    LogMismatch,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// The device recorded events.
    LocalChange,
    /// The server said (live) that a workspace's head is `head`.
    HeadAnnounced {
        head: u64,
    },
    /// The events a live message carried, continuing the cursor exactly, were stored (by the
    /// driver, between requests): the cursor is now `cursor`. No pull is owed for them.
    Applied {
        cursor: u64,
    },
    /// Periodic timer: heal anything the live channel missed.
    Tick,
    /// Try now (the user pressed "Sync now", the network came back): ends a backoff early,
    /// but never before a server's `Retry-After`.
    Retry,
    /// A pull was stored; the server's head is `head`.
    Pulled {
        cursor: u64,
        head: u64,
        has_more: bool,
    },
    /// A push was accepted; the cursor is now `cursor`.
    Pushed {
        cursor: u64,
    },
    /// A push was accepted but its acknowledgements did not follow the cursor (events stored
    /// earlier, others' events in between): pull to take them.
    PushedOutOfOrder {
        head: u64,
    },
    Failed(Failure),
}

/// Where the engine is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Idle,
    Pulling,
    Pushing,
    /// Waiting to retry after failures.
    BackingOff,
    /// Stopped: this device's log and the server's disagree ([`Failure::LogMismatch`]).
    Stopped,
}

/// Settings, all with sensible defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Events per push, at most.
    pub push_batch: usize,
    /// Bytes of events per push, at most (the server's body limit is 4 MiB by default); an
    /// event bigger than this alone still goes alone.
    pub push_bytes: usize,
    /// Events asked for per pull (the server clamps it to its maximum).
    pub pull_page: u64,
    pub backoff_base_ms: u64,
    pub backoff_cap_ms: u64,
    /// PULL_REQUIRED in a row before backing off (contention).
    pub contention_free_retries: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            push_batch: 500,
            push_bytes: 1024 * 1024,
            pull_page: 5_000,
            backoff_base_ms: 250,
            backoff_cap_ms: 30_000,
            contention_free_retries: 2,
        }
    }
}

/// Exponential backoff with full jitter: a uniform wait in
/// [0, min(cap, base × 2^attempt)). For request retries and for reconnecting the live socket.
pub fn backoff_ms(settings: &Settings, attempt: u32, random: u64) -> u64 {
    random % backoff_ceiling_ms(settings, attempt)
}

/// The exclusive upper bound of [`backoff_ms`] for `attempt` (at least 1).
pub fn backoff_ceiling_ms(settings: &Settings, attempt: u32) -> u64 {
    settings
        .backoff_base_ms
        .saturating_mul(1u64 << attempt.min(20))
        .min(settings.backoff_cap_ms)
        .max(1)
}

/// The engine's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Engine {
    settings: Settings,
    phase: Phase,
    cursor: u64,
    pending: usize,
    /// A pull is owed whatever the head (the first, a heal, after a failure, more pages).
    need_pull: bool,
    /// The greatest head the server announced or answered: a pull is owed while it is past
    /// the cursor. (An announcement of this device's own push, which may arrive before the
    /// push's answer, is then no reason to pull.)
    known_head: u64,
    /// The greatest head announced while a pull was in flight (its answer may predate it).
    /// (`tandem_store::driver` feeds announcements between requests, so there it stays 0; a
    /// driver that feeds them at once relies on it.)
    heard_while_pulling: u64,
    /// Consecutive failed cycles (reset by a push that got through, or by a pull when there
    /// is nothing to push): the backoff's attempt number.
    failures: u32,
    /// PULL_REQUIRED in a row.
    contention: u32,
    /// CLOCK_DRIFT in a row.
    drift: u32,
    wake_at: u64,
    /// The end of the last BUSY's `Retry-After` (a retry never comes before it).
    busy_until: u64,
}

impl Engine {
    /// `cursor`: the greatest seq this device holds; `pending`: its outbox size. A new engine
    /// pulls first.
    pub fn new(settings: Settings, cursor: u64, pending: usize) -> Self {
        Self {
            settings,
            phase: Phase::Idle,
            cursor,
            pending,
            need_pull: true,
            known_head: cursor,
            heard_while_pulling: 0,
            failures: 0,
            contention: 0,
            drift: 0,
            wake_at: 0,
            busy_until: 0,
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// Consecutive failed cycles.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Whether a request is in flight.
    pub fn busy(&self) -> bool {
        matches!(self.phase, Phase::Pulling | Phase::Pushing)
    }

    /// When a backoff ends (meaningful in [`Phase::BackingOff`]).
    pub fn wake_at(&self) -> u64 {
        self.wake_at
    }

    /// Tells the engine the outbox size (after recording, storing a pull or a push).
    pub fn set_pending(&mut self, pending: usize) {
        self.pending = pending;
    }

    /// Feeds an input; then ask [`Self::next`]. `random` feeds the backoff jitter.
    pub fn on(&mut self, input: Input, now_ms: u64, random: u64) {
        match input {
            // Push first: a push whose cursor is behind is refused with PULL_REQUIRED, and
            // pulls then. (Others' events are announced live and pulled when they come.)
            Input::LocalChange => {}
            Input::Tick => self.need_pull = true,
            Input::Retry => {
                self.need_pull = true;
                if self.phase == Phase::BackingOff {
                    self.wake_at = now_ms.max(self.busy_until);
                }
            }
            Input::HeadAnnounced { head } => {
                self.known_head = self.known_head.max(head);
                if self.phase == Phase::Pulling {
                    self.heard_while_pulling = self.heard_while_pulling.max(head);
                }
            }
            Input::Applied { cursor } => {
                self.cursor = self.cursor.max(cursor);
                self.known_head = self.known_head.max(cursor);
            }
            Input::Pulled {
                cursor,
                head,
                has_more,
            } => {
                self.cursor = cursor;
                // The answer is the server's word on its head (an announced head it does not
                // have costs one pull, not an endless loop of them); only an announcement made
                // while the pull was in flight, which its answer may predate, asks for another.
                if self.heard_while_pulling > head {
                    self.need_pull = true;
                }
                self.heard_while_pulling = 0;
                self.known_head = head;
                self.phase = Phase::Idle;
                if has_more || head > cursor {
                    self.need_pull = true;
                } else if self.pending == 0 {
                    // The cycle is complete: nothing failed and nothing is left to push.
                    self.failures = 0;
                }
            }
            Input::Pushed { cursor } => {
                self.cursor = cursor;
                self.failures = 0;
                self.contention = 0;
                self.drift = 0;
                self.phase = Phase::Idle;
            }
            Input::PushedOutOfOrder { head } => {
                self.failures = 0;
                self.contention = 0;
                self.drift = 0;
                self.phase = Phase::Idle;
                self.known_head = self.known_head.max(head);
            }
            Input::Failed(failure) => self.fail(failure, now_ms, random),
        }
    }

    fn fail(&mut self, failure: Failure, now_ms: u64, random: u64) {
        match failure {
            Failure::Transport | Failure::Conflict | Failure::Local | Failure::Refused => {
                self.failures = self.failures.saturating_add(1);
                self.need_pull = true;
                self.back_off(self.failures, 0, now_ms, random);
            }
            Failure::Busy { retry_after_ms } => {
                self.failures = self.failures.saturating_add(1);
                self.need_pull = true;
                self.back_off(self.failures, retry_after_ms, now_ms, random);
            }
            Failure::PullRequired => {
                self.contention = self.contention.saturating_add(1);
                self.need_pull = true;
                let free = self.settings.contention_free_retries;
                if self.contention > free {
                    self.back_off(self.contention - free, 0, now_ms, random);
                } else {
                    self.phase = Phase::Idle;
                }
            }
            Failure::ClockDrift => {
                self.drift = self.drift.saturating_add(1);
                if self.drift > 1 {
                    self.back_off(self.drift - 1, 0, now_ms, random);
                } else {
                    self.phase = Phase::Idle;
                }
            }
            Failure::EventSetAside => self.phase = Phase::Idle,
            Failure::LogMismatch => self.phase = Phase::Stopped,
        }
    }

    fn back_off(&mut self, attempt: u32, at_least_ms: u64, now_ms: u64, random: u64) {
        let wait = backoff_ms(&self.settings, attempt, random).max(at_least_ms);
        self.wake_at = now_ms.saturating_add(wait);
        self.busy_until = now_ms.saturating_add(at_least_ms);
        self.phase = Phase::BackingOff;
    }

    /// The next action at `now_ms`.
    pub fn next(&mut self, now_ms: u64) -> Action {
        match self.phase {
            Phase::Stopped | Phase::Pulling | Phase::Pushing => return Action::Idle,
            Phase::BackingOff if now_ms < self.wake_at => {
                return Action::Wait {
                    until_ms: self.wake_at,
                }
            }
            Phase::BackingOff | Phase::Idle => self.phase = Phase::Idle,
        }
        if self.need_pull || self.known_head > self.cursor {
            self.need_pull = false;
            self.phase = Phase::Pulling;
            return Action::Pull {
                cursor: self.cursor,
            };
        }
        if self.pending > 0 {
            self.phase = Phase::Pushing;
            return Action::Push {
                cursor: self.cursor,
                limit: self.settings.push_batch,
            };
        }
        Action::Idle
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine(cursor: u64, pending: usize) -> Engine {
        Engine::new(Settings::default(), cursor, pending)
    }

    #[test]
    fn pulls_before_pushing_and_until_nothing_more() {
        let mut e = engine(0, 2);
        assert_eq!(e.next(0), Action::Pull { cursor: 0 });
        assert_eq!(e.next(0), Action::Idle, "one request at a time");
        e.on(
            Input::Pulled {
                cursor: 500,
                head: 900,
                has_more: true,
            },
            0,
            0,
        );
        assert_eq!(e.next(0), Action::Pull { cursor: 500 });
        e.on(
            Input::Pulled {
                cursor: 900,
                head: 900,
                has_more: false,
            },
            0,
            0,
        );
        assert_eq!(
            e.next(0),
            Action::Push {
                cursor: 900,
                limit: 500
            }
        );
        e.on(Input::Pushed { cursor: 902 }, 0, 0);
        e.set_pending(0);
        assert_eq!(e.next(0), Action::Idle);
        assert_eq!(e.cursor(), 902);
    }

    #[test]
    fn a_local_change_pushes_at_once_and_its_own_announcement_pulls_nothing() {
        let mut e = engine(0, 0);
        assert_eq!(e.next(0), Action::Pull { cursor: 0 });
        e.on(
            Input::Pulled {
                cursor: 10,
                head: 10,
                has_more: false,
            },
            0,
            0,
        );
        assert_eq!(e.next(0), Action::Idle);
        // A command: push first, with the cursor held (no pull in front of it).
        e.set_pending(1);
        e.on(Input::LocalChange, 0, 0);
        assert_eq!(
            e.next(0),
            Action::Push {
                cursor: 10,
                limit: 500
            }
        );
        // The live socket announces the push before its answer comes: no pull for it.
        e.on(Input::HeadAnnounced { head: 11 }, 0, 0);
        e.on(Input::Pushed { cursor: 11 }, 0, 0);
        e.set_pending(0);
        assert_eq!(e.next(0), Action::Idle);
        // Announced after the answer: nothing either.
        e.on(Input::HeadAnnounced { head: 11 }, 0, 0);
        assert_eq!(e.next(0), Action::Idle);
        // Someone else's event: pull.
        e.on(Input::HeadAnnounced { head: 12 }, 0, 0);
        assert_eq!(e.next(0), Action::Pull { cursor: 11 });
    }

    #[test]
    fn an_announced_head_the_server_does_not_have_costs_one_pull_not_a_loop() {
        let mut e = engine(0, 0);
        e.next(0);
        e.on(
            Input::Pulled {
                cursor: 3,
                head: 3,
                has_more: false,
            },
            0,
            0,
        );
        e.on(Input::HeadAnnounced { head: u64::MAX }, 0, 0);
        assert_eq!(e.next(0), Action::Pull { cursor: 3 });
        e.on(
            Input::Pulled {
                cursor: 3,
                head: 3,
                has_more: false,
            },
            0,
            0,
        );
        assert_eq!(e.next(0), Action::Idle);
        // Announced while a pull is in flight: its answer may predate it, so pull once more.
        e.on(Input::Tick, 0, 0);
        assert_eq!(e.next(0), Action::Pull { cursor: 3 });
        e.on(Input::HeadAnnounced { head: 4 }, 0, 0);
        e.on(
            Input::Pulled {
                cursor: 3,
                head: 3,
                has_more: false,
            },
            0,
            0,
        );
        assert_eq!(e.next(0), Action::Pull { cursor: 3 });
    }

    #[test]
    fn pull_required_pulls_again_then_backs_off_under_contention() {
        let mut e = engine(5, 1);
        e.next(0);
        e.on(
            Input::Pulled {
                cursor: 5,
                head: 5,
                has_more: false,
            },
            0,
            0,
        );
        for round in 0..3 {
            assert_eq!(
                e.next(1_000),
                Action::Push {
                    cursor: 5 + round,
                    limit: 500
                }
            );
            e.on(Input::Failed(Failure::PullRequired), 1_000, 999);
            if round < 2 {
                assert_eq!(e.next(1_000), Action::Pull { cursor: 5 + round });
                e.on(
                    Input::Pulled {
                        cursor: 6 + round,
                        head: 6 + round,
                        has_more: false,
                    },
                    1_000,
                    0,
                );
            }
        }
        // The third PULL_REQUIRED in a row backs off (jittered) before pulling again.
        assert_eq!(e.phase(), Phase::BackingOff);
        assert!(
            matches!(e.next(1_000), Action::Wait { until_ms } if until_ms > 1_000 && until_ms <= 1_000 + 500)
        );
        assert_eq!(e.next(10_000), Action::Pull { cursor: 7 });
    }

    fn pulled(e: &mut Engine, cursor: u64) {
        e.on(
            Input::Pulled {
                cursor,
                head: cursor,
                has_more: false,
            },
            0,
            0,
        );
    }

    /// The wait the engine asks for after a failure at `now`.
    fn wait_after(e: &mut Engine, now: u64) -> u64 {
        match e.next(now) {
            Action::Wait { until_ms } => until_ms - now,
            other => panic!("should wait, got {other:?}"),
        }
    }

    #[test]
    fn every_backoff_wait_is_within_its_bound_for_extreme_inputs() {
        let s = Settings::default();
        for attempt in [0, 1, 2, 5, 7, 20, 21, 63, 64, u32::MAX] {
            let ceiling = backoff_ceiling_ms(&s, attempt);
            assert!(
                ceiling >= 1 && ceiling <= s.backoff_cap_ms,
                "{attempt}: {ceiling}"
            );
            for random in [
                0,
                1,
                ceiling - 1,
                ceiling,
                u64::MAX / 2,
                u64::MAX - 1,
                u64::MAX,
            ] {
                let wait = backoff_ms(&s, attempt, random);
                assert!(wait < ceiling, "attempt {attempt}, random {random}: {wait}");
            }
        }
        assert_eq!(backoff_ceiling_ms(&s, 0), 250);
        assert_eq!(backoff_ceiling_ms(&s, 3), 2_000);
        assert_eq!(backoff_ceiling_ms(&s, 7), 30_000, "capped");
        let zero = Settings {
            backoff_base_ms: 0,
            ..s
        };
        assert_eq!(
            backoff_ms(&zero, 4, u64::MAX),
            0,
            "a zero base never divides by zero"
        );
    }

    #[test]
    fn transport_failures_back_off_exponentially_with_a_cap() {
        let mut e = engine(0, 0);
        let s = Settings::default();
        let now = 1_000_000;
        for attempt in 1..=12u32 {
            assert!(matches!(e.next(u64::MAX), Action::Pull { .. }));
            // random = ceiling - 1 gives the greatest wait of each attempt.
            let ceiling = backoff_ceiling_ms(&s, attempt);
            e.on(Input::Failed(Failure::Transport), now, ceiling - 1);
            assert_eq!(wait_after(&mut e, now), ceiling - 1, "attempt {attempt}");
            assert_eq!(e.failures(), attempt);
        }
        e.next(u64::MAX);
        pulled(&mut e, 0);
        assert_eq!(e.failures(), 0, "a complete cycle resets the backoff");
    }

    #[test]
    fn a_successful_pull_does_not_reset_the_backoff_while_pushes_keep_failing() {
        // A server with a full disk: pulls work, pushes answer 5xx.
        let mut e = engine(0, 3);
        let s = Settings::default();
        let mut now = 1_000_000;
        let mut waits = vec![];
        for _ in 0..8 {
            assert!(matches!(e.next(now), Action::Pull { .. }));
            pulled(&mut e, 0);
            assert!(matches!(e.next(now), Action::Push { .. }));
            let ceiling = backoff_ceiling_ms(&s, e.failures() + 1);
            e.on(Input::Failed(Failure::Transport), now, ceiling - 1);
            let wait = wait_after(&mut e, now);
            waits.push(wait);
            now += wait;
        }
        assert_eq!(
            waits,
            vec![499, 999, 1_999, 3_999, 7_999, 15_999, 29_999, 29_999],
            "the waits grow to the cap instead of restarting at 250 ms after every pull"
        );
        e.next(now);
        pulled(&mut e, 0);
        e.next(now);
        e.on(Input::Pushed { cursor: 3 }, now, 0);
        assert_eq!(e.failures(), 0, "a push that got through resets it");
    }

    #[test]
    fn clock_drift_retries_at_once_then_backs_off_when_it_repeats() {
        let mut e = engine(3, 4);
        e.next(0);
        pulled(&mut e, 3);
        assert!(matches!(e.next(0), Action::Push { .. }));
        // The driver corrected the clock; the first refusal retries at once.
        e.on(Input::Failed(Failure::ClockDrift), 0, 0);
        assert_eq!(
            e.next(0),
            Action::Push {
                cursor: 3,
                limit: 500
            }
        );
        // The server's clock stepped back: the same refusal again backs off, growing.
        let mut last = 0;
        for _ in 0..4 {
            e.on(Input::Failed(Failure::ClockDrift), 0, u64::MAX - 1);
            let Action::Wait { until_ms } = e.next(0) else {
                panic!("a repeated refusal must wait");
            };
            assert!(until_ms >= last, "{until_ms} < {last}");
            last = until_ms;
            assert!(matches!(e.next(until_ms), Action::Push { .. }));
        }
        assert_eq!(e.phase(), Phase::Pushing);
    }

    #[test]
    fn no_failure_but_a_log_mismatch_stops_the_engine() {
        for failure in [
            Failure::Transport,
            Failure::Busy {
                retry_after_ms: 5_000,
            },
            Failure::PullRequired,
            Failure::ClockDrift,
            Failure::Conflict,
            Failure::EventSetAside,
            Failure::Refused,
            Failure::Local,
        ] {
            let mut e = engine(0, 1);
            e.next(0);
            pulled(&mut e, 0);
            assert!(matches!(e.next(0), Action::Push { .. }));
            e.on(Input::Failed(failure), 0, 7);
            assert_ne!(e.phase(), Phase::Stopped, "{failure:?}");
            // Within a minute something is tried again (the cap is 30 s).
            let action = match e.next(0) {
                Action::Wait { until_ms } => {
                    assert!(until_ms <= 30_000, "{failure:?}: {until_ms}");
                    e.next(until_ms)
                }
                action => action,
            };
            assert!(
                matches!(action, Action::Pull { .. } | Action::Push { .. }),
                "{failure:?}: {action:?}"
            );
        }
        let mut e = engine(0, 1);
        e.next(0);
        e.on(Input::Failed(Failure::LogMismatch), 0, 0);
        assert_eq!(e.phase(), Phase::Stopped);
        assert_eq!(e.next(u64::MAX), Action::Idle);
    }

    #[test]
    fn busy_waits_at_least_the_servers_retry_after() {
        let mut e = engine(0, 0);
        e.next(0);
        e.on(
            Input::Failed(Failure::Busy {
                retry_after_ms: 5_000,
            }),
            100,
            0,
        );
        assert_eq!(e.next(100), Action::Wait { until_ms: 5_100 });
    }

    #[test]
    fn retry_ends_a_backoff_but_not_before_a_servers_retry_after() {
        let mut e = engine(0, 0);
        e.next(0);
        for _ in 0..5 {
            e.on(Input::Failed(Failure::Transport), 100, u64::MAX);
        }
        assert!(matches!(e.next(100), Action::Wait { until_ms } if until_ms > 1_000));
        e.on(Input::Retry, 200, 0);
        assert_eq!(e.next(200), Action::Pull { cursor: 0 });
        e.on(
            Input::Failed(Failure::Busy {
                retry_after_ms: 5_000,
            }),
            300,
            0,
        );
        e.on(Input::Retry, 400, 0);
        assert_eq!(e.next(400), Action::Wait { until_ms: 5_300 });
        assert_eq!(e.next(5_300), Action::Pull { cursor: 0 });
    }

    #[test]
    fn live_heads_above_the_cursor_trigger_pulls() {
        let mut e = engine(4, 0);
        e.next(0);
        pulled(&mut e, 4);
        assert_eq!(e.next(0), Action::Idle);
        e.on(Input::HeadAnnounced { head: 4 }, 0, 0);
        assert_eq!(e.next(0), Action::Idle, "an old head changes nothing");
        e.on(Input::HeadAnnounced { head: 6 }, 0, 0);
        assert_eq!(e.next(0), Action::Pull { cursor: 4 });
    }

    #[test]
    fn events_applied_from_a_live_message_owe_no_pull_and_keep_a_backoff() {
        let mut e = engine(4, 0);
        e.next(0);
        pulled(&mut e, 4);
        e.on(Input::HeadAnnounced { head: 6 }, 0, 0);
        e.on(Input::Applied { cursor: 6 }, 0, 0);
        assert_eq!(e.cursor(), 6);
        assert_eq!(e.next(0), Action::Idle, "the announced head is held");
        e.on(Input::Applied { cursor: 5 }, 0, 0);
        assert_eq!(e.cursor(), 6, "the cursor never goes back");
        // Applied while backing off (the push failed): the wait stands, the push follows.
        e.set_pending(1);
        assert_eq!(
            e.next(0),
            Action::Push {
                cursor: 6,
                limit: 500
            }
        );
        e.on(Input::Failed(Failure::Transport), 100, 999);
        let wake = e.wake_at();
        e.on(Input::Applied { cursor: 8 }, 150, 0);
        assert_eq!(e.phase(), Phase::BackingOff);
        assert_eq!(e.next(150), Action::Wait { until_ms: wake });
        assert_eq!(e.next(wake), Action::Pull { cursor: 8 });
    }
}
