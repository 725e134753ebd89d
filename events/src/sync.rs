//! The client's sync engine: a pure state machine (no sockets, no clock, no randomness — all
//! injected). Inputs are what happened (a local change, a live "head moved" message, a timer,
//! a reply or a failure); the output is the next thing to do. A driver (`tandem_store::sync`)
//! performs it: HTTP calls, storing pulled events, waiting.
//!
//! The algorithm (docs/protocol.md, "Sync algorithm"): pull until `has_more` is false, then, if
//! the outbox is not empty, push a batch with `cursor = head`; PULL_REQUIRED means someone
//! pushed in between: pull again (rebase happens when pulled events are stored) and retry.
//! Transport failures and 5xx back off exponentially with full jitter, capped; repeated
//! PULL_REQUIRED backs off too, so many clients pushing at once cannot livelock.

/// What the engine asks the driver to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Pull events after `cursor` (the driver stores them, then reports [`Input::Pulled`]).
    Pull { cursor: u64 },
    /// Push up to `limit` outbox events with this cursor (report [`Input::Pushed`]).
    Push { cursor: u64, limit: usize },
    /// Correct the device clock from the server's time and re-stamp the outbox (DESIGN.md
    /// rule 8), then report [`Input::ClockCorrected`].
    CorrectClock { server_time_ms: i64 },
    /// Nothing to do before `until_ms` (or until an input arrives).
    Wait { until_ms: u64 },
    /// Nothing to do until an input arrives.
    Idle,
}

/// Why a request failed, as far as the engine cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Network down, timeout, 5xx: retry later.
    Transport,
    /// PULL_REQUIRED: the head moved since our pull.
    PullRequired,
    /// CLOCK_DRIFT: this device's clock is ahead of the server's.
    ClockDrift { server_time_ms: i64 },
    /// VERSION_CONFLICT: our log is behind what we thought; pull and retry.
    VersionConflict,
    /// INVALID_EVENT, ID_REUSED, MALFORMED, TOO_LARGE, CURSOR_AHEAD (the server has fewer events
    /// than this device: restored from an old backup?): a bug or data only a person can fix.
    Rejected,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// The device recorded events.
    LocalChange,
    /// The server said (live) that a workspace's head is `head`.
    HeadAnnounced {
        head: u64,
    },
    /// Periodic timer: heal anything the live channel missed.
    Tick,
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
    ClockCorrected,
    Failed(Failure),
}

/// Where the engine is; shown to the user (CONTRACT.md `data-sync-state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Idle,
    Pulling,
    Pushing,
    CorrectingClock,
    /// Waiting to retry after failures.
    BackingOff,
    /// Stopped on a rejection only a person (or a newer version) can fix.
    Stopped,
}

/// Settings, all with sensible defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub push_batch: usize,
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
    let ceiling = settings
        .backoff_base_ms
        .saturating_mul(1u64 << attempt.min(20))
        .min(settings.backoff_cap_ms)
        .max(1);
    random % ceiling
}

/// The engine's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Engine {
    settings: Settings,
    phase: Phase,
    cursor: u64,
    pending: usize,
    need_pull: bool,
    failures: u32,
    contention: u32,
    wake_at: u64,
    correction: Option<i64>,
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
            failures: 0,
            contention: 0,
            wake_at: 0,
            correction: None,
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// Consecutive transport failures (the page shows "offline" while above 0).
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Whether a request is in flight.
    pub fn busy(&self) -> bool {
        matches!(
            self.phase,
            Phase::Pulling | Phase::Pushing | Phase::CorrectingClock
        )
    }

    /// Tells the engine the outbox size (after recording, storing a pull or a push).
    pub fn set_pending(&mut self, pending: usize) {
        self.pending = pending;
    }

    /// Feeds an input; then ask [`Self::next`]. `random` feeds the backoff jitter.
    pub fn on(&mut self, input: Input, now_ms: u64, random: u64) {
        match input {
            Input::LocalChange | Input::Tick => self.need_pull = true,
            Input::HeadAnnounced { head } => {
                if head > self.cursor {
                    self.need_pull = true;
                }
            }
            Input::Pulled {
                cursor,
                head,
                has_more,
            } => {
                self.cursor = cursor;
                self.failures = 0;
                self.phase = Phase::Idle;
                if has_more || head > cursor {
                    self.need_pull = true;
                }
            }
            Input::Pushed { cursor } => {
                self.cursor = cursor;
                self.failures = 0;
                self.contention = 0;
                self.phase = Phase::Idle;
            }
            Input::ClockCorrected => self.phase = Phase::Idle,
            Input::Failed(failure) => self.fail(failure, now_ms, random),
        }
    }

    fn fail(&mut self, failure: Failure, now_ms: u64, random: u64) {
        match failure {
            Failure::Transport | Failure::VersionConflict => {
                self.failures += 1;
                self.need_pull = true;
                self.back_off(self.failures, now_ms, random);
            }
            Failure::PullRequired => {
                self.contention += 1;
                self.need_pull = true;
                let free = self.settings.contention_free_retries;
                if self.contention > free {
                    self.back_off(self.contention - free, now_ms, random);
                } else {
                    self.phase = Phase::Idle;
                }
            }
            Failure::ClockDrift { server_time_ms } => {
                self.correction = Some(server_time_ms);
                self.phase = Phase::Idle;
            }
            Failure::Rejected => self.phase = Phase::Stopped,
        }
    }

    fn back_off(&mut self, attempt: u32, now_ms: u64, random: u64) {
        self.wake_at = now_ms.saturating_add(backoff_ms(&self.settings, attempt, random));
        self.phase = Phase::BackingOff;
    }

    /// The next action at `now_ms`.
    pub fn next(&mut self, now_ms: u64) -> Action {
        match self.phase {
            Phase::Stopped | Phase::Pulling | Phase::Pushing | Phase::CorrectingClock => {
                return Action::Idle
            }
            Phase::BackingOff if now_ms < self.wake_at => {
                return Action::Wait {
                    until_ms: self.wake_at,
                }
            }
            Phase::BackingOff | Phase::Idle => self.phase = Phase::Idle,
        }
        if let Some(server_time_ms) = self.correction.take() {
            self.phase = Phase::CorrectingClock;
            return Action::CorrectClock { server_time_ms };
        }
        if self.need_pull {
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

    #[test]
    fn transport_failures_back_off_exponentially_with_a_cap() {
        let mut e = engine(0, 0);
        let mut ceilings = vec![];
        for _ in 0..12 {
            let now = 1_000_000;
            assert!(matches!(e.next(u64::MAX), Action::Pull { .. }));
            // random = u64::MAX - 1 gives (almost) the ceiling of each wait.
            e.on(Input::Failed(Failure::Transport), now, u64::MAX);
            let Action::Wait { until_ms } = e.next(now) else {
                panic!("should wait")
            };
            ceilings.push(until_ms - now);
        }
        assert!(ceilings.windows(2).all(|w| w[1] >= w[0]), "{ceilings:?}");
        assert!(*ceilings.last().unwrap() < 30_000, "{ceilings:?}");
        assert!(ceilings[0] < 1_000, "{ceilings:?}");
        assert_eq!(e.failures(), 12);
        e.next(u64::MAX);
        e.on(
            Input::Pulled {
                cursor: 0,
                head: 0,
                has_more: false,
            },
            0,
            0,
        );
        assert_eq!(e.failures(), 0);
    }

    #[test]
    fn clock_drift_corrects_the_clock_then_retries_the_push() {
        let mut e = engine(3, 4);
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
        assert!(matches!(e.next(0), Action::Push { .. }));
        e.on(
            Input::Failed(Failure::ClockDrift { server_time_ms: 77 }),
            0,
            0,
        );
        assert_eq!(e.next(0), Action::CorrectClock { server_time_ms: 77 });
        assert_eq!(e.next(0), Action::Idle);
        e.on(Input::ClockCorrected, 0, 0);
        assert_eq!(
            e.next(0),
            Action::Push {
                cursor: 3,
                limit: 500
            }
        );
    }

    #[test]
    fn rejections_stop_until_a_person_acts_and_live_heads_trigger_pulls() {
        let mut e = engine(0, 1);
        e.next(0);
        e.on(
            Input::Pulled {
                cursor: 0,
                head: 0,
                has_more: false,
            },
            0,
            0,
        );
        e.next(0);
        e.on(Input::Failed(Failure::Rejected), 0, 0);
        assert_eq!(e.next(0), Action::Idle);
        assert_eq!(e.phase(), Phase::Stopped);

        let mut e = engine(4, 0);
        e.next(0);
        e.on(
            Input::Pulled {
                cursor: 4,
                head: 4,
                has_more: false,
            },
            0,
            0,
        );
        assert_eq!(e.next(0), Action::Idle);
        e.on(Input::HeadAnnounced { head: 4 }, 0, 0);
        assert_eq!(e.next(0), Action::Idle, "an old head changes nothing");
        e.on(Input::HeadAnnounced { head: 6 }, 0, 0);
        assert_eq!(e.next(0), Action::Pull { cursor: 4 });
    }
}
