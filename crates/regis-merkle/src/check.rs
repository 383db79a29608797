//! Checking stored hashes against a trusted root: the tree's root
//! recomputed with a run of them in their places.

use crate::hash::{Hash, node_hash};
use crate::proof::{ProofError, split};
use crate::reader::HashReader;

/// The root of the tree of `size` leaves, computed with `run` as the stored
/// hashes of `level`, indexes `start ..`, and every other hash the tree
/// needs read from `reader`. Each hash of `run` is folded into the root, so
/// the result equals a trusted root only if every one of them is the tree's
/// own (RFC 6962's second-preimage resistance): this checks a tile, full or
/// partial, in `run.len()` plus `O(log size)` node hashes and `O(log size)`
/// reads, whatever else `reader` holds.
///
/// Fails with [`ProofError::IndexOutOfRange`] (the last leaf `run` covers)
/// when `run` is not within the tree's perfect subtrees at `level`.
pub fn root_with_run<R: HashReader + ?Sized>(
    reader: &R,
    size: u64,
    level: u8,
    start: u64,
    run: &[Hash],
) -> Result<Hash, ProofError<R::Error>> {
    let leaves = |index: u64| {
        index
            .checked_mul(1u64.checked_shl(u32::from(level))?)
            .filter(|&leaf| leaf <= size)
    };
    let end = start.saturating_add(run.len() as u64);
    let (Some(lo), Some(hi)) = (leaves(start), leaves(end)) else {
        return Err(ProofError::IndexOutOfRange {
            index: end.saturating_mul(1u64 << level.min(63)).saturating_sub(1),
            size,
        });
    };
    if size == 0 {
        return Ok(crate::hash::EMPTY_ROOT);
    }
    let run = Run {
        level,
        start,
        lo,
        hi,
        hashes: run,
    };
    run.subtree(reader, 0, size)
}

/// A run of stored hashes of one level, and the leaves `lo .. hi` it spans.
struct Run<'a> {
    level: u8,
    start: u64,
    lo: u64,
    hi: u64,
    hashes: &'a [Hash],
}

impl Run<'_> {
    /// The hash of leaves `lo .. hi` (not empty), by RFC 6962's recursion.
    /// Only ranges that straddle an end of the run split further, so at most
    /// two per depth do: `O(log size)` calls beside the run's own folds.
    fn subtree<R: HashReader + ?Sized>(
        &self,
        reader: &R,
        lo: u64,
        hi: u64,
    ) -> Result<Hash, ProofError<R::Error>> {
        let len = hi - lo;
        let perfect = len.is_power_of_two() && lo.is_multiple_of(len);
        if perfect {
            let level = len.trailing_zeros() as u8;
            if hi <= self.lo || lo >= self.hi {
                return reader
                    .read_hash(level, lo >> level)
                    .map_err(ProofError::Read);
            }
            // The run's ends are multiples of 2^level, so a perfect subtree
            // that meets the run and lies within it is at least that tall.
            if lo >= self.lo && hi <= self.hi && level >= self.level {
                let first = (lo >> self.level) - self.start;
                let count = len >> self.level;
                return Ok(fold(&self.hashes[first as usize..(first + count) as usize]));
            }
        }
        // Not perfect (it ends at `size`), or straddling an end of the run
        // (so longer than 2^level): either way at least two leaves.
        let mid = lo + split(len);
        Ok(node_hash(
            &self.subtree(reader, lo, mid)?,
            &self.subtree(reader, mid, hi)?,
        ))
    }
}

/// The root of a perfect subtree from its hashes at one level (a power of
/// two of them).
fn fold(hashes: &[Hash]) -> Hash {
    let mut level: Vec<Hash> = hashes.to_vec();
    while level.len() > 1 {
        level = level
            .chunks_exact(2)
            .map(|pair| node_hash(&pair[0], &pair[1]))
            .collect();
    }
    level.first().copied().unwrap_or(crate::hash::EMPTY_ROOT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Frontier, MemoryHashes, leaf_hash};

    fn tree(size: u64) -> MemoryHashes {
        MemoryHashes::from_leaf_hashes((0..size).map(|i| leaf_hash(&i.to_be_bytes())))
    }

    #[test]
    fn every_run_of_small_trees_gives_the_root_and_flips_fail() {
        for size in (1..=40u64).chain([63, 64, 65, 97]) {
            let stored = tree(size);
            let root = Frontier::from_reader(&stored, size).unwrap().root();
            for level in 0..=(63 - size.leading_zeros()) as u8 {
                let count = size >> level;
                for start in 0..count {
                    for end in start + 1..=count {
                        let mut run = Vec::new();
                        stored
                            .read_hashes(level, start, end - start, &mut run)
                            .unwrap();
                        let what = format!("size {size}, level {level}, {start}..{end}");
                        assert_eq!(
                            root_with_run(&stored, size, level, start, &run).unwrap(),
                            root,
                            "{what}"
                        );
                        let last = run.len() - 1;
                        for i in [0, last / 2, last] {
                            let mut bad = run.clone();
                            bad[i][i % 32] ^= 1;
                            assert_ne!(
                                root_with_run(&stored, size, level, start, &bad).unwrap(),
                                root,
                                "{what}, hash {i} flipped"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn a_run_beyond_the_tree_is_refused() {
        let stored = tree(10);
        let run = [[0; 32]; 3];
        assert!(matches!(
            root_with_run(&stored, 10, 1, 3, &run),
            Err(ProofError::IndexOutOfRange { size: 10, .. })
        ));
        assert!(matches!(
            root_with_run(&stored, 10, 0, 8, &run),
            Err(ProofError::IndexOutOfRange { index: 10, .. })
        ));
        assert!(root_with_run(&stored, 10, 0, 7, &run).is_ok());
        assert!(root_with_run(&stored, 10, 70, 0, &[[0; 32]]).is_err());
    }

    #[test]
    fn a_full_tile_costs_its_folds_and_a_few_reads() {
        use std::cell::Cell;
        struct Counting<'a>(&'a MemoryHashes, Cell<u32>);
        impl HashReader for Counting<'_> {
            type Error = crate::MissingHash;
            fn read_hash(&self, level: u8, index: u64) -> Result<Hash, Self::Error> {
                self.1.set(self.1.get() + 1);
                self.0.read_hash(level, index)
            }
        }
        let size = 100_000;
        let stored = tree(size);
        let root = Frontier::from_reader(&stored, size).unwrap().root();
        let mut run = Vec::new();
        stored.read_hashes(0, 256 * 77, 256, &mut run).unwrap();
        let counting = Counting(&stored, Cell::new(0));
        assert_eq!(
            root_with_run(&counting, size, 0, 256 * 77, &run).unwrap(),
            root
        );
        // One sibling per level above the tile, plus the right edge's peaks.
        assert!(counting.1.get() <= 2 * 17, "{} reads", counting.1.get());
    }
}
