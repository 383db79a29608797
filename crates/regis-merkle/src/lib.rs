//! RFC 6962 Merkle trees for Regis, and the C2SP tlog-tiles layout.
//!
//! - [`leaf_hash`], [`node_hash`]: RFC 6962 §2.1 hashing.
//! - [`Frontier`]: the incremental tree an appender keeps (O(log n) memory).
//! - [`HashReader`]: the stored-hash layout proofs and tiles are read from;
//!   [`postorder`]: where each stored hash sits in an append-only array.
//! - [`Edge`], [`inclusion_proof`], [`consistency_proof`]: proofs from stored
//!   hashes, without the tree in memory.
//! - [`verify_inclusion`], [`verify_consistency`]: RFC 9162 checks;
//!   [`root_with_run`]: stored hashes (a tile) checked against a trusted
//!   root, with the few others the tree needs.
//! - [`tile`]: tile paths, widths, contents and entry bundles;
//!   [`TileHashReader`]: stored hashes read from untrusted tiles, each tile
//!   verified against a trusted root before use.
//!
//! Pure: no I/O, no clock, no randomness, no panics on any input.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod check;
mod frontier;
mod hash;
pub mod postorder;
mod proof;
mod reader;
pub mod tile;
mod tile_reader;
mod verify;

pub use check::root_with_run;
pub use frontier::{Edge, Frontier};
pub use hash::{EMPTY_ROOT, Hash, leaf_hash, node_hash};
pub use proof::{ProofError, consistency_proof, inclusion_proof};
pub use reader::{HashReader, MemoryHashes, MissingHash};
pub use tile_reader::{TileHashReader, TileSource, TileVerifyError};
pub use verify::{
    VerifyError, consistency_proof_len, inclusion_proof_len, verify_consistency, verify_inclusion,
};

/// Levels of a tree with at most 2^64 - 1 leaves.
const MAX_LEVELS: usize = 64;

/// The tree already holds 2^64 - 1 leaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the tree is full (2^64 - 1 leaves)")]
pub struct TreeFull;

/// The root of the tree whose leaf hashes are `leaves`.
pub fn root_of(leaves: &[Hash]) -> Hash {
    let mut frontier = Frontier::new();
    for leaf in leaves {
        // A slice cannot hold 2^64 leaves.
        let _ = frontier.push_hash(*leaf, |_, _, _| {});
    }
    frontier.root()
}
