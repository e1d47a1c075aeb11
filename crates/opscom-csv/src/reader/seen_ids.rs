//! [`SeenIds`]: the first line of each `unique_id` seen, by fingerprint, in an open-addressing
//! table: the only part of the reader whose memory grows with the file.

use std::collections::HashMap;

/// The first line of each `unique_id` seen, by a 64-bit hash of the id: an open-addressing
/// table (linear probing, at most half full) of 12-byte slots (the hash's two halves and the
/// line), so that a look-up touches one cache line. Lines past `u32::MAX` (a file of billions of
/// lines) are kept exactly in a map of their own.
#[derive(Debug, Default)]
pub(super) struct SeenIds {
    /// `[low half, high half, line]`; all 0 for an empty slot (a hash of 0 is stored as 1).
    slots: Vec<[u32; 3]>,
    len: usize,
    far: HashMap<u64, u64>,
}

impl SeenIds {
    const MIN_SLOTS: usize = 1 << 12;
    /// The most slots allocated ahead (24 MiB): a larger file grows the table as it goes.
    const MAX_AHEAD: usize = 1 << 21;

    /// A table with room for `rows` ids without growing (up to [`Self::MAX_AHEAD`] slots). The
    /// zeroed memory is mapped lazily, so room that is never used costs little.
    pub(super) fn with_room(rows: u64) -> Self {
        let want = usize::try_from(rows.saturating_add(1).saturating_mul(2)).unwrap_or(usize::MAX);
        let slots = want
            .checked_next_power_of_two()
            .unwrap_or(Self::MAX_AHEAD)
            .clamp(Self::MIN_SLOTS, Self::MAX_AHEAD);
        SeenIds {
            slots: vec![[0; 3]; slots],
            len: 0,
            far: HashMap::new(),
        }
    }

    /// The first line recorded for `hash`, or `None` after recording `line` as its first.
    #[inline]
    pub(super) fn first_or_insert(&mut self, hash: u64, line: u64) -> Option<u64> {
        let hash = hash.max(1);
        let (lo, hi) = (hash as u32, (hash >> 32) as u32);
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let mask = self.slots.len() - 1;
        let mut i = hash as usize & mask;
        loop {
            let slot = &mut self.slots[i];
            if slot[0] == lo && slot[1] == hi {
                return Some(match self.far.get(&hash) {
                    Some(&far) if slot[2] == u32::MAX => far,
                    _ => u64::from(slot[2]),
                });
            }
            if slot[0] == 0 && slot[1] == 0 {
                *slot = [lo, hi, u32::try_from(line).unwrap_or(u32::MAX)];
                if line >= u64::from(u32::MAX) {
                    self.far.insert(hash, line);
                }
                self.len += 1;
                return None;
            }
            i = (i + 1) & mask;
        }
    }

    #[cold]
    fn grow(&mut self) {
        let len = (self.slots.len() * 2).max(Self::MIN_SLOTS);
        let mut slots = vec![[0u32; 3]; len];
        let mask = len - 1;
        for slot in &self.slots {
            if slot[0] != 0 || slot[1] != 0 {
                let mut i = slot[0] as usize & mask;
                while slots[i][0] != 0 || slots[i][1] != 0 {
                    i = (i + 1) & mask;
                }
                slots[i] = *slot;
            }
        }
        self.slots = slots;
    }
}

#[cfg(test)]
mod tests {
    use super::SeenIds;
    use crate::reader::id_hash::id_hash;

    #[test]
    fn seen_ids_remember_the_first_line_through_growth_and_huge_lines() {
        // Room for 10 ids: the table grows many times on the way to 20 000.
        let mut seen = SeenIds::with_room(10);
        for i in 0..20_000u64 {
            let id = format!("S{i:08}");
            assert_eq!(
                seen.first_or_insert(id_hash(id.as_bytes()), i + 2),
                None,
                "{id}"
            );
        }
        for i in (0..20_000u64).step_by(997) {
            let id = format!("S{i:08}");
            assert_eq!(
                seen.first_or_insert(id_hash(id.as_bytes()), 99_999),
                Some(i + 2)
            );
        }
        // Lines past u32::MAX are kept exactly.
        let far = u64::from(u32::MAX) + 7;
        assert_eq!(seen.first_or_insert(id_hash(b"far"), far), None);
        assert_eq!(seen.first_or_insert(id_hash(b"far"), far + 1), Some(far));
        assert_eq!(seen.first_or_insert(id_hash(b"near"), 5), None);
        assert_eq!(seen.first_or_insert(id_hash(b"near"), 6), Some(5));
    }
}
