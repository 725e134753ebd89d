//! The merge rule of DESIGN.md rule 19, for one field of one item.
//!
//! Every edit carries `bases`: the stamps of the values its author replaced. An edit whose
//! stamp some edit names in its bases is superseded (stamps compared for equality, never with
//! `<`: HLC order is not causality). The value is the greatest edit not superseded; every other
//! edit not superseded is a conflict. Both are functions of the *set* of edits, so any arrival
//! order, with duplicates, gives the same answer.

use crate::hlc::Stamp;
use crate::ids::{DeviceId, EventId};

/// One edit of a field, as the merge sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edit<'a, V> {
    pub stamp: Stamp,
    pub event_id: EventId,
    pub device_id: DeviceId,
    pub value: &'a V,
}

/// All edits of one field received so far. Sorted vectors rather than trees: a field usually
/// has a handful of edits, and replays fold hundreds of thousands of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field<V> {
    /// Sorted by stamp, then event id: two events never share a stamp unless a device
    /// misbehaves, and even then the order stays total.
    edits: Vec<((Stamp, EventId), (DeviceId, V))>,
    /// Sorted, without duplicates: every stamp named in some edit's bases, whether or not that
    /// edit has arrived.
    superseded: Vec<Stamp>,
}

impl<V> Default for Field<V> {
    fn default() -> Self {
        Self {
            edits: Vec::new(),
            superseded: Vec::new(),
        }
    }
}

impl<V> Field<V> {
    /// Adds an edit. Adding the same edit again changes nothing.
    pub fn add(
        &mut self,
        stamp: Stamp,
        event_id: EventId,
        device_id: DeviceId,
        value: V,
        bases: &[Stamp],
    ) {
        let key = (stamp, event_id);
        if let Err(at) = self.edits.binary_search_by(|(k, _)| k.cmp(&key)) {
            self.edits.insert(at, (key, (device_id, value)));
        }
        for base in bases {
            if let Err(at) = self.superseded.binary_search(base) {
                self.superseded.insert(at, *base);
            }
        }
    }

    fn is_superseded(&self, stamp: &Stamp) -> bool {
        self.superseded.binary_search(stamp).is_ok()
    }

    fn live(&self) -> impl DoubleEndedIterator<Item = Edit<'_, V>> {
        self.edits
            .iter()
            .filter(|((stamp, _), _)| !self.is_superseded(stamp))
            .map(Self::edit)
    }

    fn edit(
        ((stamp, event_id), (device_id, value)): &((Stamp, EventId), (DeviceId, V)),
    ) -> Edit<'_, V> {
        Edit {
            stamp: *stamp,
            event_id: *event_id,
            device_id: *device_id,
            value,
        }
    }

    /// The current value: the greatest edit not superseded. If every edit is superseded (only
    /// possible with forged bases that form a cycle), the greatest edit, so a field that has
    /// edits always has a value.
    pub fn winner(&self) -> Option<Edit<'_, V>> {
        self.live()
            .next_back()
            .or_else(|| self.edits.last().map(Self::edit))
    }

    /// The edits not superseded other than the winner, in stamp order.
    pub fn conflicts(&self) -> Vec<Edit<'_, V>> {
        let winner = self.winner().map(|w| (w.stamp, w.event_id));
        self.live()
            .filter(|e| Some((e.stamp, e.event_id)) != winner)
            .collect()
    }

    /// The bases for a new edit: the shown value's stamp, plus every conflict's when the edit
    /// resolves them.
    pub fn bases(&self, resolving: bool) -> Vec<Stamp>
    where
        V: PartialEq,
    {
        self.bases_shown(None, resolving)
    }

    /// The bases for a new edit made over the value stamped `shown` (what the author's screen
    /// showed, DESIGN.md rule 19): a value that arrived since stays a conflict instead of being
    /// silently replaced. A `shown` stamp this field never had (the page's copy was re-stamped
    /// by a clock correction meanwhile) falls back to the current value. Standing edits with
    /// the shown value are named too: an equal value is the same value for the user (two people
    /// ticking the same box), so it must not come back as a conflict once the field changes.
    pub fn bases_shown(&self, shown: Option<Stamp>, resolving: bool) -> Vec<Stamp>
    where
        V: PartialEq,
    {
        let known = shown.and_then(|s| {
            self.edits
                .iter()
                .find(|((stamp, _), _)| *stamp == s)
                .map(|((stamp, _), (_, value))| (*stamp, value))
        });
        let Some((stamp, value)) = known.or_else(|| self.winner().map(|w| (w.stamp, w.value)))
        else {
            return vec![];
        };
        let mut bases = vec![stamp];
        for e in self.live() {
            if e.stamp != stamp && (resolving || e.value == value) && !bases.contains(&e.stamp) {
                bases.push(e.stamp);
            }
        }
        bases
    }

    pub fn is_empty(&self) -> bool {
        self.edits.is_empty()
    }

    /// The value of the edit stamped `stamp`, if it is here.
    pub fn value_at(&self, stamp: &Stamp) -> Option<&V> {
        self.edits
            .iter()
            .find(|((s, _), _)| s == stamp)
            .map(|(_, (_, v))| v)
    }

    /// The values competing for the user: the current one and every conflict whose value
    /// differs from it (DESIGN.md rule 19), as (stamp, device); empty without a conflict.
    pub fn competing(&self) -> Vec<(Stamp, DeviceId)>
    where
        V: PartialEq,
    {
        let Some(winner) = self.winner() else {
            return vec![];
        };
        let mut out: Vec<(Stamp, DeviceId)> = self
            .conflicts()
            .into_iter()
            .filter(|c| c.value != winner.value)
            .map(|c| (c.stamp, c.device_id))
            .collect();
        if !out.is_empty() {
            out.insert(0, (winner.stamp, winner.device_id));
        }
        out
    }

    /// Whether some edit named `stamp` in its bases (it was replaced).
    pub fn superseded(&self, stamp: &Stamp) -> bool {
        self.is_superseded(stamp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn dev(n: u8) -> DeviceId {
        DeviceId::from_uuid(uuid::Uuid::from_bytes([n; 16]))
    }
    fn eid(n: u32) -> EventId {
        let mut b = [0u8; 16];
        b[..4].copy_from_slice(&n.to_be_bytes());
        EventId::from_uuid(uuid::Uuid::from_bytes(b))
    }
    fn st(ms: u64, d: u8) -> Stamp {
        Stamp {
            ms,
            counter: 0,
            node: dev(d),
        }
    }

    #[test]
    fn a_later_edit_that_saw_the_value_replaces_it() {
        let mut f = Field::default();
        f.add(st(1, 1), eid(1), dev(1), "buy milk", &[]);
        f.add(st(2, 2), eid(2), dev(2), "buy oat milk", &[st(1, 1)]);
        assert_eq!(*f.winner().unwrap().value, "buy oat milk");
        assert!(f.conflicts().is_empty());
    }

    #[test]
    fn concurrent_edits_keep_the_loser_as_a_conflict_until_resolved() {
        let mut f = Field::default();
        f.add(st(1, 1), eid(1), dev(1), "a", &[]);
        f.add(st(5, 2), eid(2), dev(2), "from 2", &[st(1, 1)]);
        f.add(st(3, 3), eid(3), dev(3), "from 3", &[st(1, 1)]);
        assert_eq!(*f.winner().unwrap().value, "from 2");
        let conflicts = f.conflicts();
        assert_eq!(conflicts.len(), 1);
        assert_eq!(*conflicts[0].value, "from 3");
        assert_eq!(conflicts[0].device_id, dev(3));
        // A plain edit replaces only the shown value: the conflict stays.
        f.add(st(6, 2), eid(4), dev(2), "from 2 again", &f.bases(false));
        assert_eq!(f.conflicts().len(), 1);
        // A resolving edit names the conflict too.
        let bases = f.bases(true);
        f.add(st(7, 1), eid(5), dev(1), "merged", &bases);
        assert_eq!(*f.winner().unwrap().value, "merged");
        assert!(f.conflicts().is_empty());
    }

    #[test]
    fn a_late_edit_with_an_older_stamp_still_supersedes_what_it_names() {
        // HLC order is not causality: a base may carry a greater stamp than the edit naming it
        // only if a clock was corrected; equality, not `<`, decides.
        let mut f = Field::default();
        f.add(st(9, 1), eid(1), dev(1), "ahead", &[]);
        f.add(st(4, 2), eid(2), dev(2), "after seeing ahead", &[st(9, 1)]);
        assert_eq!(*f.winner().unwrap().value, "after seeing ahead");
        assert!(f.conflicts().is_empty());
    }

    #[test]
    fn forged_cycles_still_give_a_value() {
        let mut f = Field::default();
        f.add(st(1, 1), eid(1), dev(1), "x", &[st(2, 2)]);
        f.add(st(2, 2), eid(2), dev(2), "y", &[st(1, 1)]);
        assert_eq!(*f.winner().unwrap().value, "y");
        assert!(f.conflicts().is_empty());
    }

    proptest! {
        #[test]
        fn any_order_and_duplicates_give_the_same_result(
            edits in proptest::collection::vec((0u64..20, 0u8..4, proptest::collection::vec((0u64..20, 0u8..4), 0..3)), 1..20),
            seed in any::<u64>(),
        ) {
            let all: Vec<_> = edits.iter().enumerate().map(|(i, (ms, d, bases))| {
                (st(*ms, *d), eid(i as u32), dev(*d), i, bases.iter().map(|(m, d)| st(*m, *d)).collect::<Vec<_>>())
            }).collect();
            let mut forward = Field::default();
            for (s, e, d, v, b) in &all { forward.add(*s, *e, *d, *v, b); }
            // A deterministic shuffle with duplicates.
            let mut order: Vec<usize> = (0..all.len()).chain(0..all.len() / 2).collect();
            let mut x = seed | 1;
            for i in (1..order.len()).rev() {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                order.swap(i, (x % (i as u64 + 1)) as usize);
            }
            let mut shuffled = Field::default();
            for i in order { let (s, e, d, v, b) = &all[i]; shuffled.add(*s, *e, *d, *v, b); }
            prop_assert_eq!(forward.winner(), shuffled.winner());
            prop_assert_eq!(forward.conflicts(), shuffled.conflicts());
            // Nothing is lost: every edit is the winner, a conflict, or named by some base.
            let named: BTreeSet<Stamp> = all.iter().flat_map(|(.., b)| b.iter().copied()).collect();
            let w = forward.winner().map(|w| (w.stamp, w.event_id));
            let c: Vec<_> = forward.conflicts().iter().map(|c| (c.stamp, c.event_id)).collect();
            for (s, e, ..) in &all {
                prop_assert!(Some((*s, *e)) == w || c.contains(&(*s, *e)) || named.contains(s));
            }
        }
    }
}
