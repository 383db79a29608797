//! A blocked Bloom filter over uniform fingerprints, safe to add to and
//! read at once: the item filter's (`crate::item_filter`, over item
//! hashes) and a bulk transaction's written keys (`redb_backend::bulk`,
//! over hashed keys).

use std::sync::atomic::{AtomicU64, Ordering};

/// 24 uniformly distributed bytes: eight pick a block, sixteen the
/// probes in it. The first 24 bytes of a SHA-256 digest are one.
pub type Fingerprint = [u8; 24];

/// Bits per item a filter is sized for. With [`PROBES`] probes in one
/// block that gives about 0.1% false positives at capacity.
pub const BITS_PER_ITEM: u64 = 16;
/// Bits set per item, all in one 512-bit block (a cache line).
const PROBES: usize = 8;
const BLOCK_WORDS: usize = 8;
/// The smallest filter: 128 KiB.
pub const MIN_BITS: u64 = 1 << 20;
/// The largest filter: 16 MiB, sized for 8M items.
pub const MAX_BITS: u64 = 1 << 27;

/// One Bloom filter.
#[derive(Debug)]
pub struct Bloom {
    words: Box<[AtomicU64]>,
    /// Blocks minus one (their count is a power of two).
    block_mask: u64,
    /// Items added, and the count it is sized for.
    added: AtomicU64,
    capacity: u64,
}

impl Bloom {
    /// An empty filter for about `items` items (within the size bounds).
    pub fn for_items(items: u64) -> Bloom {
        let bits = items
            .saturating_mul(BITS_PER_ITEM)
            .clamp(MIN_BITS, MAX_BITS)
            .next_power_of_two()
            .min(MAX_BITS);
        // At most 2^21 words: fits any usize this builds for.
        let words = usize::try_from(bits / 64).unwrap_or(usize::MAX >> 6);
        let blocks = u64::try_from(words / BLOCK_WORDS).unwrap_or(1).max(1);
        Bloom {
            words: (0..words).map(|_| AtomicU64::new(0)).collect(),
            block_mask: blocks - 1,
            added: AtomicU64::new(0),
            capacity: bits / BITS_PER_ITEM,
        }
    }

    /// The words and bits of a fingerprint's probes: eight bytes pick the
    /// block, then nine bits per probe within it.
    fn probes(&self, fingerprint: &Fingerprint) -> impl Iterator<Item = (usize, u64)> {
        let mut block = [0u8; 8];
        block.copy_from_slice(&fingerprint[..8]);
        let block = u64::from_le_bytes(block) & self.block_mask;
        // `block` is below the block count, whose words all exist.
        let base = usize::try_from(block).unwrap_or(0) * BLOCK_WORDS;
        fingerprint[8..8 + 2 * PROBES]
            .chunks_exact(2)
            .map(move |pair| {
                let bit = u16::from_le_bytes([pair[0], pair[1]]) & 511;
                (base + usize::from(bit >> 6), 1u64 << (bit & 63))
            })
    }

    /// Adds an item.
    pub fn insert(&self, fingerprint: &Fingerprint) {
        for (word, bit) in self.probes(fingerprint) {
            if let Some(word) = self.words.get(word) {
                word.fetch_or(bit, Ordering::Relaxed);
            }
        }
        self.added.fetch_add(1, Ordering::Relaxed);
    }

    /// [`Bloom::insert`] for a filter that one thread at a time adds to
    /// (while others may read it): plain stores instead of locked
    /// read-modify-writes, which two adding threads could interleave and
    /// lose bits by.
    pub fn insert_by_sole_writer(&self, fingerprint: &Fingerprint) {
        for (word, bit) in self.probes(fingerprint) {
            if let Some(word) = self.words.get(word) {
                word.store(word.load(Ordering::Relaxed) | bit, Ordering::Relaxed);
            }
        }
        self.added
            .store(self.added.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    /// `false` if the item was never added; `true` if it was, or (rarely)
    /// if other items set the same bits.
    pub fn may_contain(&self, fingerprint: &Fingerprint) -> bool {
        self.probes(fingerprint).all(|(word, bit)| {
            self.words
                .get(word)
                .is_none_or(|word| word.load(Ordering::Relaxed) & bit != 0)
        })
    }

    /// Items added so far.
    pub fn added(&self) -> u64 {
        self.added.load(Ordering::Relaxed)
    }

    /// The items it is sized for.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Sets the count of items added, as if that many were.
    #[cfg(test)]
    pub fn pretend_added(&self, items: u64) {
        self.added.store(items, Ordering::Relaxed);
    }

    /// Its memory, in bytes.
    pub fn bytes(&self) -> u64 {
        self.words.len() as u64 * 8
    }
}

/// A fingerprint of a 64-bit hash (of arbitrary bytes), spread to 24
/// bytes by SplitMix64 steps (each output a bijective mix of the hash).
pub fn fingerprint_of(hash: u64) -> Fingerprint {
    let mut state = hash;
    let mut out = [0u8; 24];
    for chunk in out.chunks_exact_mut(8) {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        chunk.copy_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    fn digest(n: u64) -> Fingerprint {
        let hash: [u8; 32] = Sha256::digest(n.to_be_bytes()).into();
        let mut out = [0; 24];
        out.copy_from_slice(&hash[..24]);
        out
    }

    /// Items added are always found, others rarely: for digests and for
    /// hashed keys alike, added by either method.
    #[test]
    fn added_items_are_always_found_and_others_rarely() {
        use std::hash::BuildHasher;
        let hasher = std::hash::RandomState::new();
        let kinds: [&dyn Fn(u64) -> Fingerprint; 2] = [&digest, &|n| {
            fingerprint_of(hasher.hash_one(format!("key {n}").as_bytes()))
        }];
        for (fingerprint, sole) in kinds.into_iter().zip([false, true]) {
            let filter = Bloom::for_items(100_000);
            assert_eq!(filter.capacity(), (1 << 21) / BITS_PER_ITEM);
            let capacity = filter.capacity();
            for n in 0..capacity {
                if sole {
                    filter.insert_by_sole_writer(&fingerprint(n));
                } else {
                    filter.insert(&fingerprint(n));
                }
            }
            assert_eq!(filter.added(), capacity);
            assert!((0..capacity).all(|n| filter.may_contain(&fingerprint(n))));
            let false_positives = (capacity..capacity + 100_000)
                .filter(|&n| filter.may_contain(&fingerprint(n)))
                .count();
            // About 0.1% expected at capacity; 0.5% would mean broken probes.
            assert!(false_positives < 500, "{false_positives} in 100,000");
        }
    }

    #[test]
    fn sizes_stay_within_bounds() {
        assert_eq!(Bloom::for_items(0).bytes(), MIN_BITS / 8);
        assert_eq!(Bloom::for_items(u64::MAX).bytes(), MAX_BITS / 8);
        assert_eq!(
            Bloom::for_items(u64::MAX).capacity(),
            MAX_BITS / BITS_PER_ITEM
        );
    }
}
