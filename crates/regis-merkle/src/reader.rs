//! Where proofs get their hashes from: the stored-hash layout.
//!
//! A log stores the hash of every *perfect* subtree, addressed by `(level,
//! index)`: the subtree of `2^level` leaves starting at leaf `index << level`.
//! Level 0 holds the leaf hashes. A tree of `n` leaves has fewer than `2n`
//! such hashes, and every one of them is final the moment it exists, which is
//! what makes tiles immutable. [`crate::Frontier::push_hash`] reports them in
//! the order they become final.

use crate::hash::Hash;

/// Source of stored perfect-subtree hashes (a store, a tile cache, memory).
pub trait HashReader {
    /// Why a read failed (I/O, a missing tile…).
    type Error;

    /// The hash of the perfect subtree of `2^level` leaves starting at leaf
    /// `index << level`. Only asked for subtrees inside a tree the caller
    /// says exists.
    fn read_hash(&self, level: u8, index: u64) -> Result<Hash, Self::Error>;

    /// `count` consecutive hashes of one level, appended to `out`. Backends
    /// with range scans should override this; tiles are read through it.
    fn read_hashes(
        &self,
        level: u8,
        start: u64,
        count: u64,
        out: &mut Vec<Hash>,
    ) -> Result<(), Self::Error> {
        for index in start..start.saturating_add(count) {
            out.push(self.read_hash(level, index)?);
        }
        Ok(())
    }
}

impl<R: HashReader + ?Sized> HashReader for &R {
    type Error = R::Error;
    fn read_hash(&self, level: u8, index: u64) -> Result<Hash, Self::Error> {
        (**self).read_hash(level, index)
    }
    fn read_hashes(
        &self,
        level: u8,
        start: u64,
        count: u64,
        out: &mut Vec<Hash>,
    ) -> Result<(), Self::Error> {
        (**self).read_hashes(level, start, count, out)
    }
}

/// Every stored hash of a tree, in memory: for tests, benchmarks, small logs
/// and clients that rebuild a tree. A server reads them from its store.
#[derive(Clone, Debug, Default)]
pub struct MemoryHashes {
    levels: Vec<Vec<Hash>>,
}

/// A hash asked of [`MemoryHashes`] that it does not hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("no stored hash at level {level}, index {index}")]
pub struct MissingHash {
    /// Level asked for.
    pub level: u8,
    /// Index asked for.
    pub index: u64,
}

impl MemoryHashes {
    /// No hashes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a stored hash; hashes of one level must arrive in index order,
    /// as [`crate::Frontier::push_hash`] reports them.
    pub fn store(&mut self, level: u8, index: u64, hash: &Hash) {
        let level = usize::from(level);
        if self.levels.len() <= level {
            self.levels.resize_with(level + 1, Vec::new);
        }
        debug_assert_eq!(
            self.levels[level].len() as u64,
            index,
            "stored out of order"
        );
        self.levels[level].push(*hash);
    }

    /// Stores every hash of the tree over `leaves` (leaf hashes).
    pub fn from_leaf_hashes(leaves: impl IntoIterator<Item = Hash>) -> Self {
        let mut hashes = MemoryHashes::new();
        let mut frontier = crate::Frontier::new();
        for leaf in leaves {
            // A slice or iterator in memory cannot hold 2^64 leaves.
            let _ = frontier.push_hash(leaf, |level, index, hash| hashes.store(level, index, hash));
        }
        hashes
    }

    /// Number of leaves held.
    pub fn leaf_count(&self) -> u64 {
        self.levels.first().map_or(0, |leaves| leaves.len() as u64)
    }
}

impl HashReader for MemoryHashes {
    type Error = MissingHash;
    fn read_hash(&self, level: u8, index: u64) -> Result<Hash, MissingHash> {
        self.levels
            .get(usize::from(level))
            .and_then(|hashes| hashes.get(usize::try_from(index).ok()?))
            .copied()
            .ok_or(MissingHash { level, index })
    }
}
