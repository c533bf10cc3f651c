//! Per-key sliding windows, as `bastion_guard.rules.window` keeps them, and the table of them per rule.
//!
//! An entry is the Python window's stride of doubles: the event time, the packed evidence reference
//! (`position * 256 + source`, as `window.pack`) and, for connection and distinct-user rules, the pid or
//! the user hash. Keeping the very same numbers (not a "better" encoding) makes every comparison the
//! Python engine does come out the same here.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

/// `window.SOURCE_SLOTS`.
pub const SOURCE_SLOTS: i128 = 256;
const HASH_MASK: u64 = (1 << 52) - 1;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Entry {
    pub epoch: f64,
    pub reference: f64,
    /// The pid (-1 for none) or the user hash; 0 for rules that count events.
    pub extra: f64,
}

pub type Window = Vec<Entry>;

/// `window.pack`: exact in Python's integers, then one rounding to a double, as `float(...)` does.
pub fn pack(position: i64, source: i64) -> f64 {
    (i128::from(position) * SOURCE_SLOTS + i128::from(source)) as f64
}

/// `window.evidence`'s `divmod(int(reference), SOURCE_SLOTS)`: (position, source).
pub fn unpack(reference: f64) -> (i64, i64) {
    let packed = reference as i128;
    (packed.div_euclid(SOURCE_SLOTS) as i64, packed.rem_euclid(SOURCE_SLOTS) as i64)
}

/// A user name as a double that tells names apart, like `window.user_hash` (`None` and "" are one
/// name there too). Python's `hash` is salted per process, so the values differ, but only equality
/// between them is ever used, and a 52-bit collision is as unlikely here as there.
pub fn user_hash(user: Option<&[u8]>) -> f64 {
    let mut hasher = DefaultHasher::new();
    user.unwrap_or(b"").hash(&mut hasher);
    (hasher.finish() & HASH_MASK) as f64
}

/// `window.trim`: drop entries older than `cutoff` from the front only (so an older entry behind a
/// newer one, after a clock jump, stays, as it does in Python).
pub fn trim(window: &mut Window, cutoff: f64) {
    let stale = window.iter().take_while(|entry| entry.epoch < cutoff).count();
    // Python stops at the newest entry at the latest; never leave a window empty.
    window.drain(..stale.min(window.len().saturating_sub(1)));
}

/// `engine._forget_user`: drop the first earlier entry of the same user, so each name counts once.
pub fn forget_user(window: &mut Window, name_hash: f64) {
    if let Some(index) = window.iter().position(|entry| entry.extra == name_hash) {
        window.remove(index);
    }
}

/// `window.distinct_values` of the third column.
pub fn distinct_extras(window: &Window) -> usize {
    let mut seen: Vec<u64> = window.iter().map(|entry| entry.extra.to_bits()).collect();
    seen.sort_unstable();
    seen.dedup();
    seen.len()
}

/// One rule's windows by key text, remembering insertion order as a Python dict does: the `max_keys`
/// cap forgets the oldest-inserted tenth, and a key deleted and counted again is new.
#[derive(Default)]
pub struct Windows {
    table: HashMap<Box<[u8]>, (u64, Window)>,
    inserted: u64,
}

impl Windows {
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut Window> {
        self.table.get_mut(key).map(|(_, window)| window)
    }

    /// A key that is not in the table, at the end of the insertion order.
    pub fn insert(&mut self, key: &[u8], window: Window) {
        self.inserted += 1;
        self.table.insert(key.into(), (self.inserted, window));
    }

    pub fn remove(&mut self, key: &[u8]) -> Option<Window> {
        self.table.remove(key).map(|(_, window)| window)
    }

    /// Forget every window whose newest (last) entry is older than `cutoff`, as `Engine.sweep` does
    /// (`entries[-stride] < cutoff`: a NaN epoch is kept, hence the negated comparison).
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    pub fn forget_older_than(&mut self, cutoff: f64) {
        self.table.retain(|_, (_, window)| window.last().map_or(false, |entry| !(entry.epoch < cutoff)));
    }

    /// `Engine._enforce_cap`: past `max_keys`, forget the oldest-inserted tenth.
    pub fn enforce_cap(&mut self, max_keys: usize) {
        let length = self.table.len();
        if length <= max_keys {
            return;
        }
        let mut order: Vec<u64> = self.table.values().map(|(inserted, _)| *inserted).collect();
        order.sort_unstable();
        let dropped = length / 10;
        if dropped == 0 {
            return;
        }
        let newest_dropped = order[dropped - 1];
        self.table.retain(|_, (inserted, _)| *inserted > newest_dropped);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(epoch: f64) -> Entry {
        Entry { epoch, reference: 0.0, extra: 0.0 }
    }

    #[test]
    fn trim_stops_at_the_first_recent_entry() {
        let mut window = vec![entry(1.0), entry(5.0), entry(2.0), entry(9.0)];
        trim(&mut window, 4.0);
        assert_eq!(window, vec![entry(5.0), entry(2.0), entry(9.0)]);
    }

    #[test]
    fn cap_forgets_the_oldest_inserted_tenth() {
        let mut windows = Windows::default();
        for index in 0..25u8 {
            windows.insert(&[index], vec![entry(1.0)]);
        }
        windows.remove(&[0]);
        windows.insert(&[0], vec![entry(1.0)]); // re-inserted: now the newest
        windows.enforce_cap(20);
        assert_eq!(windows.len(), 23);
        assert!(windows.get_mut(&[0]).is_some() && windows.get_mut(&[1]).is_none() && windows.get_mut(&[2]).is_none());
        assert!(windows.get_mut(&[3]).is_some());
    }

    #[test]
    fn references_round_trip() {
        assert_eq!(unpack(pack(123_456, 3)), (123_456, 3));
    }
}
