//! The newest checkpoints a register has published (handed out in a
//! receipt), kept apart from the database (`spec/store.md`, "Published
//! checkpoints"). A log must never sign two checkpoints of one size with
//! different roots: the writer refuses to publish a checkpoint that does
//! not extend the last one published, and opening refuses a store whose
//! trees do not reach it, whatever the database says (a lost or rolled
//! back commit, a restored backup), rather than sign over it.
//!
//! The file holds two slots of [`RECORD`] bytes, at 0 and [`SLOT`]; each
//! update writes the slot after the newest one and syncs it, so a torn
//! write leaves the other slot, the one before, whole. A record is
//! `sequence: u64 ‖ user size: u64 ‖ user root ‖ system size: u64 ‖
//! system root ‖ the first 8 bytes of the SHA-256 of all that`.

use sha2::{Digest, Sha256};

use crate::files::BlobFile;
use crate::{Log, SignedTree, StoreError};
use regis_merkle::Hash;
use regis_model::PerLog;

/// The file, beside the others in a register's directory.
pub const PUBLISHED_FILE: &str = "published";

/// Where the second slot starts: apart from the first on disk.
const SLOT: u64 = 512;
/// Bytes of a record.
const RECORD: usize = 8 + 2 * (8 + 32) + 8;

/// The newest published size and root of each log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Published {
    sequence: u64,
    trees: PerLog<(u64, Hash)>,
}

impl Published {
    /// The published size and root of `log` (0, and zero bytes for the
    /// root, before any).
    pub fn tree(&self, log: Log) -> (u64, Hash) {
        self.trees[log]
    }

    fn encode(&self) -> [u8; RECORD] {
        let mut out = [0; RECORD];
        out[..8].copy_from_slice(&self.sequence.to_be_bytes());
        for (i, (_, (size, root))) in self.trees.iter().enumerate() {
            let at = 8 + i * 40;
            out[at..at + 8].copy_from_slice(&size.to_be_bytes());
            out[at + 8..at + 40].copy_from_slice(root);
        }
        let sum = Sha256::digest(&out[..RECORD - 8]);
        out[RECORD - 8..].copy_from_slice(&sum[..8]);
        out
    }

    /// A record whose checksum holds; `None` for a torn or empty slot.
    fn decode(bytes: &[u8; RECORD]) -> Option<Published> {
        let sum = Sha256::digest(&bytes[..RECORD - 8]);
        if sum[..8] != bytes[RECORD - 8..] || bytes.iter().all(|b| *b == 0) {
            return None;
        }
        let u64_at = |at: usize| {
            let mut word = [0; 8];
            word.copy_from_slice(&bytes[at..at + 8]);
            u64::from_be_bytes(word)
        };
        let tree = |at: usize| {
            let mut root = [0; 32];
            root.copy_from_slice(&bytes[at + 8..at + 40]);
            (u64_at(at), root)
        };
        Some(Published {
            sequence: u64_at(0),
            trees: PerLog {
                user: tree(8),
                system: tree(48),
            },
        })
    }

    /// The newest whole record in `file`, if any.
    pub fn read(file: &dyn BlobFile) -> Result<Option<Published>, StoreError> {
        let len = file.len().map_err(StoreError::Io)?;
        let mut newest: Option<Published> = None;
        for at in [0, SLOT] {
            if len < at + RECORD as u64 {
                continue;
            }
            let mut bytes = [0; RECORD];
            file.read_exact_at(at, &mut bytes).map_err(StoreError::Io)?;
            if let Some(record) = Published::decode(&bytes)
                && newest.is_none_or(|n| record.sequence > n.sequence)
            {
                newest = Some(record);
            }
        }
        Ok(newest)
    }

    /// What publishing `checkpoints` makes of this record, or why it must
    /// not be published: a checkpoint smaller than one published, or of
    /// the same size with another root (a fork). `None` when nothing
    /// changes.
    pub fn next(&self, checkpoints: PerLog<&SignedTree>) -> Result<Option<Published>, StoreError> {
        let mut next = *self;
        for (log, checkpoint) in checkpoints.iter() {
            let (size, root) = self.tree(log);
            // Size 0 has one root, the empty tree's (and is what a new
            // record holds, with no root).
            let forks = checkpoint.size == size && size > 0 && checkpoint.root != root;
            if checkpoint.size < size || forks {
                return Err(StoreError::Corrupt(format!(
                    "refusing to publish a {log} checkpoint of size {} that does not extend \
                     the one published at size {size}",
                    checkpoint.size
                )));
            }
            next.trees[log] = (checkpoint.size, checkpoint.root);
        }
        if next.trees == self.trees {
            return Ok(None);
        }
        next.sequence = self.sequence + 1;
        Ok(Some(next))
    }

    /// Writes this record over the older slot and syncs it.
    pub fn write(&self, file: &dyn BlobFile) -> Result<(), StoreError> {
        let at = if self.sequence.is_multiple_of(2) {
            0
        } else {
            SLOT
        };
        file.write_all_at(at, &self.encode())
            .and_then(|()| file.sync_data())
            .map_err(StoreError::Io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(size: u64, root: u8) -> SignedTree {
        SignedTree {
            size,
            root: [root; 32],
            text: String::new(),
        }
    }

    #[test]
    fn records_round_trip_and_torn_ones_are_not_read() {
        let record = Published {
            sequence: 7,
            trees: PerLog {
                user: (10, [1; 32]),
                system: (2, [2; 32]),
            },
        };
        let bytes = record.encode();
        assert_eq!(Published::decode(&bytes), Some(record));
        for at in 0..RECORD {
            let mut torn = bytes;
            torn[at] ^= 1;
            assert_eq!(Published::decode(&torn), None, "byte {at}");
        }
        assert_eq!(Published::decode(&[0; RECORD]), None);
    }

    fn both<'a>(user: &'a SignedTree, system: &'a SignedTree) -> PerLog<&'a SignedTree> {
        PerLog { user, system }
    }

    #[test]
    fn only_checkpoints_that_extend_the_published_ones_are_published() {
        let start = Published::default()
            .next(both(&signed(5, 1), &signed(1, 9)))
            .unwrap()
            .unwrap();
        assert_eq!(start.tree(Log::User), (5, [1; 32]));
        assert_eq!(
            start.next(both(&signed(5, 1), &signed(1, 9))).unwrap(),
            None
        );
        let grown = start
            .next(both(&signed(6, 2), &signed(1, 9)))
            .unwrap()
            .unwrap();
        assert_eq!(grown.sequence, start.sequence + 1);
        // The same size with another root, or a smaller size: refused.
        assert!(start.next(both(&signed(5, 3), &signed(1, 9))).is_err());
        assert!(start.next(both(&signed(4, 1), &signed(1, 9))).is_err());
        assert!(start.next(both(&signed(5, 1), &signed(1, 8))).is_err());
    }
}
