//! The Hybrid Logical Clock (Kulkarni et al., "Logical Physical Clocks"): stamps are
//! `(physical ms, counter, device id)`, totally ordered in that order, and encoded as a
//! fixed-width string that sorts the same way, so SQLite can `ORDER BY hlc_timestamp`.
//!
//! The clock is pure: the caller passes the physical time in. It never goes backwards except
//! through [`Clock::correct`], the one correction DESIGN.md rule 8 allows after the server
//! refused a stamp as too far ahead.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ids::DeviceId;

/// Milliseconds are written with this many digits (enough until the year 33658).
const MS_DIGITS: usize = 15;
const MS_LIMIT: u64 = 1_000_000_000_000_000;
/// The counter is a u32, written with 10 digits.
const COUNTER_DIGITS: usize = 10;
/// `ms-counter-uuid`.
pub const ENCODED_LEN: usize = MS_DIGITS + 1 + COUNTER_DIGITS + 1 + 36;

/// One HLC timestamp. Ordered by physical ms, then counter, then device id: two devices never
/// produce equal stamps, and one device's stamps strictly increase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Stamp {
    pub ms: u64,
    pub counter: u32,
    pub node: DeviceId,
}

/// Clock failures, each naming the values involved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClockError {
    #[error("malformed HLC stamp {text:?}: expected {ENCODED_LEN} characters `{{ms:015}}-{{counter:010}}-{{uuid}}`")]
    Malformed { text: String },
    #[error("HLC stamp {stamp} is {ahead_ms} ms ahead of this clock; at most {max_drift_ms} ms is accepted")]
    Drift {
        stamp: Stamp,
        ahead_ms: u64,
        max_drift_ms: u64,
    },
    #[error("physical time {ms} ms is beyond what a stamp can hold")]
    OutOfRange { ms: u64 },
}

impl Stamp {
    /// The fixed-width text form.
    pub fn encode(&self) -> String {
        self.to_string()
    }

    /// The smallest stamp with this physical time (for range queries).
    pub fn floor(ms: u64) -> Self {
        Self {
            ms,
            counter: 0,
            node: DeviceId::from_uuid(uuid::Uuid::nil()),
        }
    }
}

impl fmt::Display for Stamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:0ms$}-{:0c$}-{}",
            self.ms,
            self.counter,
            self.node,
            ms = MS_DIGITS,
            c = COUNTER_DIGITS
        )
    }
}

impl FromStr for Stamp {
    type Err = ClockError;

    fn from_str(text: &str) -> Result<Self, ClockError> {
        let malformed = || ClockError::Malformed {
            text: text.chars().take(80).collect(),
        };
        if text.len() != ENCODED_LEN || !text.is_ascii() {
            return Err(malformed());
        }
        let (ms, rest) = text.split_at(MS_DIGITS);
        let (dash1, rest) = rest.split_at(1);
        let (counter, rest) = rest.split_at(COUNTER_DIGITS);
        let (dash2, node) = rest.split_at(1);
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if dash1 != "-" || dash2 != "-" || !digits(ms) || !digits(counter) {
            return Err(malformed());
        }
        // Lowercase only, so that the text order is the stamp order.
        if node.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(malformed());
        }
        Ok(Self {
            ms: ms.parse().map_err(|_| malformed())?,
            counter: counter.parse().map_err(|_| malformed())?,
            node: node.parse().map_err(|_| malformed())?,
        })
    }
}

impl Serialize for Stamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Stamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A device's clock: the last stamp it issued or observed, the offset (server time minus
/// device time) it adds to the physical clock, and the stamps it retired in a correction,
/// which it never issues again (DESIGN.md rule 8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clock {
    node: DeviceId,
    last_ms: u64,
    last_counter: u32,
    offset_ms: i64,
    retired: std::collections::BTreeSet<(u64, u32)>,
}

/// What a [`Clock`] persists (DESIGN.md rule 9: in events.db, so it never goes backwards
/// across restarts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockState {
    pub node: DeviceId,
    pub last_ms: u64,
    pub last_counter: u32,
    pub offset_ms: i64,
}

impl Clock {
    /// A new clock that has issued nothing.
    pub fn new(node: DeviceId) -> Self {
        Self {
            node,
            last_ms: 0,
            last_counter: 0,
            offset_ms: 0,
            retired: Default::default(),
        }
    }

    /// A clock restored from its persisted state.
    pub fn restore(state: ClockState) -> Self {
        Self {
            node: state.node,
            last_ms: state.last_ms,
            last_counter: state.last_counter,
            offset_ms: state.offset_ms,
            retired: Default::default(),
        }
    }

    /// The state to persist.
    pub fn state(&self) -> ClockState {
        ClockState {
            node: self.node,
            last_ms: self.last_ms,
            last_counter: self.last_counter,
            offset_ms: self.offset_ms,
        }
    }

    pub fn node(&self) -> DeviceId {
        self.node
    }

    /// The greatest stamp this clock issued or observed, with its own node id.
    pub fn last(&self) -> Stamp {
        Stamp {
            ms: self.last_ms,
            counter: self.last_counter,
            node: self.node,
        }
    }

    /// The physical time corrected by the server's offset.
    fn wall(&self, physical_ms: u64) -> u64 {
        physical_ms.saturating_add_signed(self.offset_ms)
    }

    /// Issues a new stamp (the HLC send rule): greater than every stamp issued or observed,
    /// and never one of the retired stamps.
    pub fn tick(&mut self, physical_ms: u64) -> Result<Stamp, ClockError> {
        let wall = self.wall(physical_ms);
        if wall > self.last_ms {
            self.last_ms = wall;
            self.last_counter = 0;
        } else {
            self.step();
        }
        while self.retired.contains(&(self.last_ms, self.last_counter)) {
            self.step();
        }
        if self.last_ms >= MS_LIMIT {
            return Err(ClockError::OutOfRange { ms: self.last_ms });
        }
        Ok(self.last())
    }

    fn step(&mut self) {
        if let Some(next) = self.last_counter.checked_add(1) {
            self.last_counter = next;
        } else {
            // 4 billion stamps in one millisecond: borrow the next millisecond.
            self.last_ms += 1;
            self.last_counter = 0;
        }
    }

    /// Observes a stamp from elsewhere (the HLC receive rule), so the next [`Self::tick`] is
    /// greater. No drift check: for stamps the server already accepted (DESIGN.md rule 8).
    pub fn observe(&mut self, remote: &Stamp) {
        if (remote.ms, remote.counter) > (self.last_ms, self.last_counter) {
            self.last_ms = remote.ms;
            self.last_counter = remote.counter;
        }
    }

    /// The server's guard: refuses (without moving) a stamp more than `max_drift_ms` ahead of
    /// this clock's physical time; otherwise observes it.
    pub fn observe_checked(
        &mut self,
        remote: &Stamp,
        physical_ms: u64,
        max_drift_ms: u64,
    ) -> Result<(), ClockError> {
        check_drift(remote, self.wall(physical_ms), max_drift_ms)?;
        self.observe(remote);
        Ok(())
    }

    /// Re-estimates the offset from a server's answer: `server_ms` read when this device's
    /// physical clock said `physical_ms`. Never moves the clock back: stamps keep increasing,
    /// and follow the corrected time once it passes the last stamp (DESIGN.md rule 8).
    pub fn set_offset(&mut self, server_ms: u64, physical_ms: u64) {
        self.offset_ms = clamp_offset(i128::from(server_ms) - i128::from(physical_ms));
    }

    /// Takes in what another copy of this clock learned (the copy a transaction advanced):
    /// its last stamp and its retired stamps.
    pub fn absorb(&mut self, other: &Clock) {
        self.observe(&other.last());
        self.retired.extend(other.retired.iter().copied());
    }

    /// Stamps this clock must never issue (they were retired by a correction).
    pub fn retire(&mut self, stamps: impl IntoIterator<Item = Stamp>) {
        self.retired
            .extend(stamps.into_iter().map(|s| (s.ms, s.counter)));
    }

    /// The one backwards move (DESIGN.md rule 8): after the server refused this device's
    /// stamps as too far ahead, adopt the server's time (`server_ms` read at `physical_ms` on
    /// this device) and restart from the greatest of that, `floor` (the greatest stamp received
    /// and the greatest stamp issued and kept) — never below a stamp still in use. The caller
    /// retires the refused stamps ([`Self::retire`]) and re-stamps their events with
    /// [`Self::tick`].
    pub fn set_back(&mut self, server_ms: u64, physical_ms: u64, floor: Option<&Stamp>) {
        self.set_offset(server_ms, physical_ms);
        self.last_ms = self.wall(physical_ms);
        self.last_counter = 0;
        if let Some(floor) = floor {
            self.observe(floor);
        }
    }

    /// The offset (ms) this clock adds to the physical time.
    pub fn offset_ms(&self) -> i64 {
        self.offset_ms
    }
}

fn clamp_offset(offset: i128) -> i64 {
    i64::try_from(offset).unwrap_or(if offset < 0 { i64::MIN } else { i64::MAX })
}

/// Fails with [`ClockError::Drift`] when `stamp` is more than `max_drift_ms` ahead of `now_ms`.
pub fn check_drift(stamp: &Stamp, now_ms: u64, max_drift_ms: u64) -> Result<(), ClockError> {
    let ahead_ms = stamp.ms.saturating_sub(now_ms);
    if ahead_ms > max_drift_ms {
        return Err(ClockError::Drift {
            stamp: *stamp,
            ahead_ms,
            max_drift_ms,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn node(n: u8) -> DeviceId {
        DeviceId::from_uuid(uuid::Uuid::from_bytes([n; 16]))
    }

    fn stamp() -> impl Strategy<Value = Stamp> {
        (0..MS_LIMIT, any::<u32>(), any::<[u8; 16]>()).prop_map(|(ms, counter, b)| Stamp {
            ms,
            counter,
            node: DeviceId::from_uuid(uuid::Uuid::from_bytes(b)),
        })
    }

    #[test]
    fn encodes_fixed_width() {
        let s = Stamp {
            ms: 1_732_400_000_123,
            counter: 7,
            node: node(0xab),
        };
        assert_eq!(
            s.encode(),
            "001732400000123-0000000007-abababab-abab-abab-abab-abababababab"
        );
        assert_eq!(s.encode().len(), ENCODED_LEN);
    }

    #[test]
    fn rejects_malformed_text() {
        let good = "001732400000123-0000000007-abababab-abab-abab-abab-abababababab";
        for bad in [
            "",
            "1-2-3",
            &good.replace('-', "_"),
            &good.to_uppercase(),
            &good.replacen('0', "x", 1),
            &format!("{good}0"),
            "00173240000012é-0000000007-abababab-abab-abab-abab-ababababab",
        ] {
            assert!(bad.parse::<Stamp>().is_err(), "{bad:?}");
        }
        assert!(good.parse::<Stamp>().is_ok());
    }

    #[test]
    fn ticks_follow_physical_time_and_count_within_a_millisecond() {
        let mut c = Clock::new(node(1));
        let a = c.tick(100).unwrap();
        let b = c.tick(100).unwrap();
        let d = c.tick(99).unwrap(); // physical clock went back
        let e = c.tick(200).unwrap();
        assert_eq!((a.ms, a.counter), (100, 0));
        assert_eq!((b.ms, b.counter), (100, 1));
        assert_eq!((d.ms, d.counter), (100, 2));
        assert_eq!((e.ms, e.counter), (200, 0));
    }

    #[test]
    fn the_drift_guard_refuses_without_moving_the_clock() {
        let mut server = Clock::new(node(9));
        server.tick(1_000).unwrap();
        let before = server.clone();
        let forged = Stamp {
            ms: 1_000 + 60_001,
            counter: 0,
            node: node(2),
        };
        let err = server.observe_checked(&forged, 1_000, 60_000).unwrap_err();
        assert_eq!(
            err,
            ClockError::Drift {
                stamp: forged,
                ahead_ms: 60_001,
                max_drift_ms: 60_000
            }
        );
        assert_eq!(server, before);
        let fine = Stamp {
            ms: 61_000,
            ..forged
        };
        server.observe_checked(&fine, 1_000, 60_000).unwrap();
        assert!(server.tick(1_000).unwrap() > fine);
    }

    #[test]
    fn correction_moves_back_to_server_time_but_not_below_received_stamps() {
        let mut device = Clock::new(node(1));
        // The device's physical clock runs 10 minutes ahead.
        let ahead = device.tick(1_600_000).unwrap();
        let received = Stamp {
            ms: 1_000_500,
            counter: 3,
            node: node(2),
        };
        device.set_back(1_000_000, 1_600_000, Some(&received));
        assert_eq!(device.offset_ms(), -600_000);
        let next = device.tick(1_600_001).unwrap();
        assert!(next < ahead, "the one allowed backwards move");
        assert!(next > received, "never below what it received");
        let later = device.tick(1_601_000).unwrap();
        assert_eq!(
            later.ms, 1_001_000,
            "later ticks use the server-corrected time"
        );
    }

    #[test]
    fn retired_stamps_are_never_issued_again() {
        let mut c = Clock::new(node(1));
        let first = c.tick(1_000).unwrap();
        let retired = c.tick(1_000).unwrap();
        c.retire([
            retired,
            Stamp {
                ms: 1_000,
                counter: 3,
                ..retired
            },
        ]);
        // Set back below them: the next stamps skip both.
        c.set_back(1_000, 1_000, Some(&first));
        let issued: Vec<(u64, u32)> = (0..4)
            .map(|_| c.tick(1_000).map(|s| (s.ms, s.counter)).unwrap())
            .collect();
        assert_eq!(issued, vec![(1_000, 2), (1_000, 4), (1_000, 5), (1_000, 6)]);
    }

    #[test]
    fn the_offset_follows_the_server_without_moving_the_clock_back() {
        let mut c = Clock::new(node(1));
        // 10 s fast, then told the server's time.
        let before = c.tick(1_010_000).unwrap();
        c.set_offset(1_000_000, 1_010_000);
        assert_eq!(c.offset_ms(), -10_000);
        let next = c.tick(1_010_001).unwrap();
        assert!(next > before, "never backwards");
        assert_eq!(
            c.tick(1_030_000).unwrap().ms,
            1_020_000,
            "follows server time"
        );
        // The device's clock gets fixed (now 5 ms behind): the next answer says so.
        c.set_offset(1_030_000, 1_029_995);
        assert_eq!(c.offset_ms(), 5);
        assert_eq!(c.tick(1_040_000).unwrap().ms, 1_040_005);
    }

    proptest! {
        #[test]
        fn encode_decode_round_trips(s in stamp()) {
            prop_assert_eq!(s.encode().parse::<Stamp>().unwrap(), s);
            let json = serde_json::to_string(&s).unwrap();
            prop_assert_eq!(serde_json::from_str::<Stamp>(&json).unwrap(), s);
        }

        #[test]
        fn text_order_is_stamp_order(a in stamp(), b in stamp()) {
            prop_assert_eq!(a.encode().cmp(&b.encode()), a.cmp(&b));
        }

        #[test]
        fn order_is_total_and_distinct_nodes_never_tie(a in stamp(), b in stamp()) {
            prop_assert_eq!(a == b, a.cmp(&b).is_eq());
            if a.node != b.node { prop_assert_ne!(a, b); }
        }

        #[test]
        fn ticks_strictly_increase_and_pass_everything_observed(
            steps in proptest::collection::vec((0u64..5_000, proptest::option::of(stamp())), 1..200),
            restart_at in 0usize..200,
        ) {
            let mut clock = Clock::new(node(7));
            let mut last: Option<Stamp> = None;
            let mut seen: Option<Stamp> = None;
            for (i, (physical, remote)) in steps.into_iter().enumerate() {
                if i == restart_at {
                    clock = Clock::restore(clock.state()); // a restart from persisted state
                }
                if let Some(r) = remote.filter(|r| r.ms < MS_LIMIT - 10) {
                    clock.observe(&r);
                    seen = seen.max(Some(r));
                }
                let s = clock.tick(physical).unwrap();
                prop_assert!(Some(s) > last, "monotonic");
                if let Some(r) = seen { prop_assert!(s > r, "passes observed stamps"); }
                last = Some(s);
            }
        }
    }
}
