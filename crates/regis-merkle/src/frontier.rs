//! The incremental tree: the right edge of a log, which is all an appender needs.

use crate::hash::{EMPTY_ROOT, Hash, leaf_hash, node_hash};
use crate::reader::HashReader;
use crate::{MAX_LEVELS, TreeFull};

/// The right edge of a Merkle tree of `size` leaves: for every set bit `L` of
/// `size`, the root of the perfect subtree of `2^L` leaves it stands for.
///
/// Appending costs one leaf hash plus, amortised, one node hash (the carries
/// of a binary increment); memory is a fixed 64 hashes whatever the size. Each
/// append reports the perfect-subtree hashes it completes, which is exactly
/// the stored-hash layout a tile store persists (see [`crate::tile`]).
#[derive(Clone)]
pub struct Frontier {
    size: u64,
    /// `peaks[L]` is meaningful iff bit `L` of `size` is set.
    peaks: [Hash; MAX_LEVELS],
}

impl Frontier {
    /// The empty tree.
    pub fn new() -> Self {
        Frontier {
            size: 0,
            peaks: [[0; 32]; MAX_LEVELS],
        }
    }

    /// Rebuilds the right edge of the tree of `size` leaves from stored
    /// hashes: one read per set bit of `size`, no hashing.
    pub fn from_reader<R: HashReader + ?Sized>(reader: &R, size: u64) -> Result<Self, R::Error> {
        let mut frontier = Frontier {
            size,
            peaks: [[0; 32]; MAX_LEVELS],
        };
        let mut start = 0u64;
        for level in (0..MAX_LEVELS).rev() {
            if size >> level & 1 == 1 {
                frontier.peaks[level] = reader.read_hash(level as u8, start >> level)?;
                start += 1 << level;
            }
        }
        Ok(frontier)
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends the leaf holding `data`; returns its index.
    pub fn push(&mut self, data: &[u8]) -> Result<u64, TreeFull> {
        self.push_hash(leaf_hash(data), |_, _, _| {})
    }

    /// Appends a leaf by its hash; `on_stored(level, index, hash)` is called
    /// for the leaf itself (level 0) and for every perfect subtree the append
    /// completes, bottom-up. Returns the leaf's index.
    pub fn push_hash(
        &mut self,
        leaf: Hash,
        mut on_stored: impl FnMut(u8, u64, &Hash),
    ) -> Result<u64, TreeFull> {
        let index = self.size;
        if index == u64::MAX {
            return Err(TreeFull);
        }
        let mut carry = leaf;
        let mut level = 0usize;
        on_stored(0, index, &carry);
        // Binary increment: each set low bit of `size` is a peak that merges
        // with the carry. `size < u64::MAX` bounds `level` below 64.
        while self.size >> level & 1 == 1 {
            carry = node_hash(&self.peaks[level], &carry);
            level += 1;
            on_stored(level as u8, index >> level, &carry);
        }
        self.peaks[level] = carry;
        self.size += 1;
        Ok(index)
    }

    /// The tree's root hash (RFC 6962 MTH); `popcount(size) - 1` node hashes.
    pub fn root(&self) -> Hash {
        let mut acc: Option<Hash> = None;
        for level in 0..MAX_LEVELS {
            if self.size >> level & 1 == 1 {
                acc = Some(match acc {
                    None => self.peaks[level],
                    Some(right) => node_hash(&self.peaks[level], &right),
                });
            }
        }
        acc.unwrap_or(EMPTY_ROOT)
    }

    /// The roots of the perfect subtrees of the right edge, largest (leftmost)
    /// first, with their level.
    pub fn peaks(&self) -> impl Iterator<Item = (u8, &Hash)> + '_ {
        (0..MAX_LEVELS)
            .rev()
            .filter(|level| self.size >> level & 1 == 1)
            .map(|level| (level as u8, &self.peaks[level]))
    }
}

impl Default for Frontier {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Frontier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frontier")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

/// Every hash on the right edge of a tree of one size, folded once so that
/// proofs against that size are pure look-ups.
///
/// The subtrees RFC 6962's recursion meets that are not perfect all end at
/// `size`; each starts at `size` with its low `L` bits cleared, for some `L`.
/// `hashes[L]` is the hash of that range (when it is not empty), and
/// `hashes[64]` is the root.
#[derive(Clone)]
pub struct Edge {
    size: u64,
    hashes: [Hash; MAX_LEVELS + 1],
}

impl Edge {
    /// Folds `frontier`: `popcount(size) - 1` node hashes.
    pub fn new(frontier: &Frontier) -> Self {
        let mut hashes = [[0; 32]; MAX_LEVELS + 1];
        let mut acc: Option<Hash> = None;
        for (level, slot) in hashes.iter_mut().take(MAX_LEVELS).enumerate() {
            if let Some(hash) = acc {
                *slot = hash;
            }
            if frontier.size >> level & 1 == 1 {
                acc = Some(match acc {
                    None => frontier.peaks[level],
                    Some(right) => node_hash(&frontier.peaks[level], &right),
                });
            }
        }
        hashes[MAX_LEVELS] = acc.unwrap_or(EMPTY_ROOT);
        Edge {
            size: frontier.size,
            hashes,
        }
    }

    /// Reads the right edge of the tree of `size` leaves from stored hashes.
    pub fn from_reader<R: HashReader + ?Sized>(reader: &R, size: u64) -> Result<Self, R::Error> {
        Ok(Edge::new(&Frontier::from_reader(reader, size)?))
    }

    /// Number of leaves of the tree this edge belongs to.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The tree's root hash.
    pub fn root(&self) -> Hash {
        self.hashes[MAX_LEVELS]
    }

    /// The hash of the leaves `[start, size)`, where `start` is `size` with
    /// its low bits cleared; `None` for any other `start`.
    pub(crate) fn right_subtree(&self, start: u64) -> Option<&Hash> {
        let len = self.size.checked_sub(start).filter(|&len| len > 0)?;
        let level = (u64::BITS - len.leading_zeros()) as usize;
        let mask = if level == 64 {
            u64::MAX
        } else {
            (1u64 << level) - 1
        };
        (start == self.size & !mask).then_some(&self.hashes[level])
    }
}

impl std::fmt::Debug for Edge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Edge")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}
