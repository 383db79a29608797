//! The stored hashes of a tree in post-order: the order in which
//! [`crate::Frontier::push_hash`] reports them (each leaf, then the perfect
//! subtrees it completes, bottom-up). An append-only array of 32-byte hashes
//! in this order grows at its end only, and the position of any stored hash
//! is a few instructions away: what a flat file of a tree needs.
//!
//! The perfect subtree `(level, index)` covers leaves `index·2^level ..
//! (index+1)·2^level`; it is reported by the append of its last leaf, after
//! the leaf and the subtrees below it, and before those above.

/// Number of stored hashes of a tree of `size` leaves: `2·size −
/// popcount(size)` (each leaf, plus one node per completed merge).
pub fn stored_count(size: u64) -> Option<u64> {
    size.checked_mul(2)
        .map(|twice| twice - u64::from(size.count_ones()))
}

/// Position (0-based) of the stored hash `(level, index)` in post-order, or
/// `None` if such a subtree cannot exist in a tree of at most `2^64 − 1`
/// leaves.
pub fn position(level: u8, index: u64) -> Option<u64> {
    // Leaves appended when the subtree completes.
    let leaves = index
        .checked_add(1)?
        .checked_mul(1u64.checked_shl(u32::from(level))?)?;
    let after = stored_count(leaves)?;
    // The last append reported `trailing_zeros(leaves) + 1` hashes, levels
    // 0 up to that count − 1; this one is `top − level` before the last.
    let top = u64::from(leaves.trailing_zeros());
    after.checked_sub(1 + top.checked_sub(u64::from(level))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Frontier, leaf_hash};

    #[test]
    fn positions_are_the_order_push_hash_reports() {
        let mut frontier = Frontier::new();
        let mut next = 0u64;
        for leaf in 0..1000u64 {
            frontier
                .push_hash(leaf_hash(&leaf.to_be_bytes()), |level, index, _| {
                    assert_eq!(position(level, index), Some(next), "({level}, {index})");
                    next += 1;
                })
                .unwrap();
            assert_eq!(stored_count(frontier.size()), Some(next));
        }
    }

    #[test]
    fn impossible_subtrees_have_no_position() {
        assert_eq!(position(64, 0), None);
        assert_eq!(position(1, u64::MAX / 2), None);
        assert_eq!(position(0, u64::MAX), None);
        assert_eq!(stored_count(u64::MAX), None);
        assert!(position(20, 1 << 40).is_some());
    }
}
