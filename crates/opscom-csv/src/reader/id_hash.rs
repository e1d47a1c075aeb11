//! [`id_hash`]: the deterministic 64-bit fingerprint of a `unique_id` that the duplicate check
//! ([`SeenIds`](super::seen_ids::SeenIds)) stores instead of the id.

/// A deterministic 64-bit fingerprint of an id, made of two well-mixed hashes (folded
/// 64×64→128-bit multiplies, 8 bytes at a time, in the manner of wyhash): the high 40 bits are
/// a hash of the whole id; the low 24 bits are a hash of its length and all its bytes but the
/// last, plus the last byte. So ids that differ only in their last byte (`S1001`, `S1002`, …:
/// the usual client file is sorted by id) get neighbouring low bits and land in neighbouring
/// slots of [`SeenIds`], sharing cache lines, while any two different ids still share a
/// fingerprint with a chance of about 2^-64 (about 3·10^-8 for some pair among a million ids).
pub(super) fn id_hash(id: &[u8]) -> u64 {
    const P0: u64 = 0xa076_1d64_78bd_642f;
    const P1: u64 = 0xe703_7ed1_a0b4_28db;
    const P2: u64 = 0x8ebc_6af0_9c88_c6e3;
    const P3: u64 = 0x5899_65cc_7537_4cc3;
    const LOW: u64 = (1 << 24) - 1;
    #[inline(always)]
    fn mix(a: u64, b: u64) -> u64 {
        let r = u128::from(a) * u128::from(b);
        (r as u64) ^ ((r >> 64) as u64)
    }
    let Some((&last, prefix)) = id.split_last() else {
        return P2;
    };
    let mut h = mix(id.len() as u64 ^ P0, P1);
    let mut chunks = prefix.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        h = mix(h ^ u64::from_le_bytes(word), P1);
    }
    let rest = chunks.remainder();
    let mut word = [0u8; 8];
    word[..rest.len()].copy_from_slice(rest);
    let near = mix(h ^ u64::from_le_bytes(word) ^ P2, P0);
    let whole = mix(near ^ u64::from(last) ^ P3, P1);
    (whole & !LOW) | (near.wrapping_add(u64::from(last)) & LOW)
}

#[cfg(test)]
mod tests {
    use super::id_hash;
    use std::collections::HashSet;

    #[test]
    fn id_fingerprints_differ_and_sorted_ids_are_neighbours() {
        let ids: Vec<String> = (0..200_000)
            .map(|i| format!("{i}"))
            .chain((0..50_000).map(|i| format!("E{i}")))
            .chain(
                [
                    "",
                    "a",
                    "b",
                    "ab",
                    "ba",
                    "abcdefgh",
                    "abcdefgi",
                    "abcdefghi",
                ]
                .map(String::from),
            )
            .collect();
        let hashes: HashSet<u64> = ids.iter().map(|id| id_hash(id.as_bytes())).collect();
        assert_eq!(hashes.len(), ids.len());
        // Ids that differ in their last byte only: neighbouring low bits.
        let (a, b) = (id_hash(b"S00001230"), id_hash(b"S00001231"));
        assert_eq!((b & 0xff_ffff).wrapping_sub(a & 0xff_ffff) & 0xff_ffff, 1);
        assert_ne!(a >> 24, b >> 24);
    }
}
