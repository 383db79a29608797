//! Making inclusion and consistency proofs (RFC 9162 §2.1.3.1, §2.1.4.1)
//! from stored hashes.
//!
//! RFC 6962 defines both proofs by recursion on `D[lo:hi]`, splitting at the
//! largest power of two below `hi - lo`. Walked top-down, that recursion only
//! ever asks for two kinds of subtree hash: a perfect, aligned subtree (one
//! stored hash) or a subtree that ends at the tree size (one of the [`Edge`]
//! hashes). So with an [`Edge`] at hand a proof is `O(log n)` reads and no
//! hashing at all.

use crate::frontier::Edge;
use crate::hash::Hash;
use crate::reader::HashReader;

/// Why a proof could not be made.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProofError<E> {
    /// The leaf is not in the tree.
    #[error("leaf index {index} is not below tree size {size}")]
    IndexOutOfRange {
        /// Leaf index asked for.
        index: u64,
        /// Size of the tree.
        size: u64,
    },
    /// Consistency asked from a larger tree to a smaller one.
    #[error("old size {old} is larger than new size {new}")]
    SizeOutOfRange {
        /// Old size asked for.
        old: u64,
        /// New size asked for.
        new: u64,
    },
    /// The hash source failed.
    #[error("reading a stored hash: {0}")]
    Read(E),
}

/// The audit path of leaf `index` in the tree `edge` describes, bottom-up.
pub fn inclusion_proof<R: HashReader + ?Sized>(
    reader: &R,
    edge: &Edge,
    index: u64,
) -> Result<Vec<Hash>, ProofError<R::Error>> {
    let size = edge.size();
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    // The walk is top-down and the proof bottom-up: fill from the end.
    let mut path = Vec::with_capacity(64);
    inclusion_ranges(index, size, |lo, hi| {
        path.push(subtree_hash(reader, edge, lo, hi)?);
        Ok(())
    })?;
    path.reverse();
    Ok(path)
}

/// The proof that the tree of `old_size` leaves is a prefix of the tree
/// `edge` describes. Empty when `old_size` is 0 or equals the tree size: see
/// [`crate::verify_consistency`] for the size-0 policy.
pub fn consistency_proof<R: HashReader + ?Sized>(
    reader: &R,
    edge: &Edge,
    old_size: u64,
) -> Result<Vec<Hash>, ProofError<R::Error>> {
    let size = edge.size();
    if old_size > size {
        return Err(ProofError::SizeOutOfRange {
            old: old_size,
            new: size,
        });
    }
    let mut path = Vec::with_capacity(64);
    consistency_ranges(old_size, size, |lo, hi| {
        path.push(subtree_hash(reader, edge, lo, hi)?);
        Ok(())
    })?;
    path.reverse();
    Ok(path)
}

/// Calls `visit(lo, hi)` for each subtree `D[lo:hi]` of the audit path of
/// leaf `index` in a tree of `size` leaves, top-down (RFC 9162 PATH, unrolled).
/// Visits nothing when `index >= size`.
pub(crate) fn inclusion_ranges<E>(
    index: u64,
    size: u64,
    mut visit: impl FnMut(u64, u64) -> Result<(), E>,
) -> Result<(), E> {
    if index >= size {
        return Ok(());
    }
    let (mut lo, mut hi) = (0, size);
    while hi - lo > 1 {
        let mid = lo + split(hi - lo);
        if index < mid {
            visit(mid, hi)?;
            hi = mid;
        } else {
            visit(lo, mid)?;
            lo = mid;
        }
    }
    Ok(())
}

/// Calls `visit(lo, hi)` for each subtree `D[lo:hi]` of the consistency proof
/// from `old_size` to `size`, top-down (RFC 9162 SUBPROOF, unrolled). Visits
/// nothing when `old_size` is 0 or not below `size`.
pub(crate) fn consistency_ranges<E>(
    old_size: u64,
    size: u64,
    mut visit: impl FnMut(u64, u64) -> Result<(), E>,
) -> Result<(), E> {
    if old_size == 0 || old_size >= size {
        return Ok(());
    }
    // `whole_old_tree` is SUBPROOF's `b`: the old tree is still the left
    // part of the current range, so its root need not be sent.
    let (mut lo, mut hi, mut whole_old_tree) = (0, size, true);
    loop {
        if old_size == hi {
            if !whole_old_tree {
                visit(lo, hi)?;
            }
            return Ok(());
        }
        let mid = lo + split(hi - lo);
        if old_size <= mid {
            visit(mid, hi)?;
            hi = mid;
        } else {
            visit(lo, mid)?;
            lo = mid;
            whole_old_tree = false;
        }
    }
}

/// The largest power of two strictly below `n` (`n >= 2`).
pub(crate) fn split(n: u64) -> u64 {
    1 << (63 - (n - 1).leading_zeros())
}

/// The hash of `D[lo:hi]` as met by the proof recursions: a perfect aligned
/// subtree or a subtree ending at the tree size.
fn subtree_hash<R: HashReader + ?Sized>(
    reader: &R,
    edge: &Edge,
    lo: u64,
    hi: u64,
) -> Result<Hash, ProofError<R::Error>> {
    let len = hi - lo;
    if len.is_power_of_two() && lo.is_multiple_of(len) {
        let level = len.trailing_zeros() as u8;
        return reader
            .read_hash(level, lo >> level)
            .map_err(ProofError::Read);
    }
    // The recursions only produce ranges that are perfect or end at the tree
    // size, and every such range has an `Edge` hash: a miss here would be a
    // bug in this module, never a property of the input.
    match edge.right_subtree(lo) {
        Some(hash) if hi == edge.size() => Ok(*hash),
        _ => unreachable!(
            "proof recursion asked for D[{lo}:{hi}] in a tree of {}",
            edge.size()
        ),
    }
}
