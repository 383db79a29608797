//! Checking inclusion and consistency proofs (RFC 9162 §2.1.3.2, §2.1.4.2).

use crate::hash::{EMPTY_ROOT, Hash, node_hash};

/// Why a proof did not verify. Every variant means "do not trust it".
#[derive(Clone, Copy, Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    /// The leaf index is not below the tree size.
    #[error("leaf index {index} is not below tree size {size}")]
    IndexOutOfRange {
        /// Leaf index claimed.
        index: u64,
        /// Tree size claimed.
        size: u64,
    },
    /// The old tree is larger than the new one.
    #[error("old size {old} is larger than new size {new}")]
    SizeOutOfRange {
        /// Old size claimed.
        old: u64,
        /// New size claimed.
        new: u64,
    },
    /// The proof has the wrong number of hashes for these sizes.
    #[error("proof has {got} hashes, expected {expected}")]
    WrongLength {
        /// Hashes in the proof.
        got: usize,
        /// Hashes the sizes call for.
        expected: usize,
    },
    /// The proof leads to a root other than the one claimed.
    #[error("proof computes a root that does not match the claimed root")]
    RootMismatch,
    /// The proof leads to an old root other than the one claimed.
    #[error("proof computes an old root that does not match the claimed old root")]
    OldRootMismatch,
}

/// Checks that `leaf_hash` is leaf `index` of the tree of `size` leaves
/// whose root is `root`.
pub fn verify_inclusion(
    leaf_hash: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), VerifyError> {
    if index >= size {
        return Err(VerifyError::IndexOutOfRange { index, size });
    }
    let expected = inclusion_proof_len(index, size);
    if proof.len() != expected {
        return Err(VerifyError::WrongLength {
            got: proof.len(),
            expected,
        });
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut hash = *leaf_hash;
    for sibling in proof {
        if fnode & 1 == 1 || fnode == snode {
            hash = node_hash(sibling, &hash);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            hash = node_hash(&hash, sibling);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if hash == *root {
        Ok(())
    } else {
        Err(VerifyError::RootMismatch)
    }
}

/// Checks that the tree of `old_size` leaves with root `old_root` is a prefix
/// of the tree of `new_size` leaves with root `new_root`.
///
/// **Size-0 policy.** The empty tree is a prefix of every tree, so from
/// `old_size == 0` the proof must be empty and `old_root` must be the
/// empty-tree hash; nothing else is checked. This is RFC 9162 §2.1.4 and what
/// C2SP tlog-witness requires of witnesses (a witness that has seen nothing
/// accepts any first checkpoint). transparency-dev/merkle instead refuses every
/// proof from size 0; Regis never needs that refusal, because a first
/// checkpoint is trusted for its signature, not for a proof.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    proof: &[Hash],
    old_root: &Hash,
    new_root: &Hash,
) -> Result<(), VerifyError> {
    if old_size > new_size {
        return Err(VerifyError::SizeOutOfRange {
            old: old_size,
            new: new_size,
        });
    }
    let expected = consistency_proof_len(old_size, new_size);
    if proof.len() != expected {
        return Err(VerifyError::WrongLength {
            got: proof.len(),
            expected,
        });
    }
    if old_size == 0 {
        return if *old_root == EMPTY_ROOT {
            Ok(())
        } else {
            Err(VerifyError::OldRootMismatch)
        };
    }
    if old_size == new_size {
        return if old_root == new_root {
            Ok(())
        } else {
            Err(VerifyError::RootMismatch)
        };
    }
    // When the old tree is a perfect subtree, the proof omits its root: the
    // verifier supplies it as the first node.
    let (first, rest) = if old_size.is_power_of_two() {
        (old_root, proof)
    } else {
        match proof.split_first() {
            Some(split) => split,
            None => return Err(VerifyError::WrongLength { got: 0, expected }),
        }
    };
    let (mut fnode, mut snode) = (old_size - 1, new_size - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut old_hash, mut new_hash) = (*first, *first);
    for node in rest {
        if fnode & 1 == 1 || fnode == snode {
            old_hash = node_hash(node, &old_hash);
            new_hash = node_hash(node, &new_hash);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            new_hash = node_hash(&new_hash, node);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if old_hash != *old_root {
        return Err(VerifyError::OldRootMismatch);
    }
    if new_hash != *new_root {
        return Err(VerifyError::RootMismatch);
    }
    Ok(())
}

/// Number of hashes in the audit path of leaf `index` in a tree of `size`.
pub fn inclusion_proof_len(index: u64, size: u64) -> usize {
    let mut len = 0;
    crate::proof::inclusion_ranges(index, size, |_, _| -> Result<(), ()> {
        len += 1;
        Ok(())
    })
    .map_or(0, |()| len)
}

/// Number of hashes in a consistency proof from `old_size` to `new_size`.
pub fn consistency_proof_len(old_size: u64, new_size: u64) -> usize {
    let mut len = 0;
    crate::proof::consistency_ranges(old_size, new_size, |_, _| -> Result<(), ()> {
        len += 1;
        Ok(())
    })
    .map_or(0, |()| len)
}
