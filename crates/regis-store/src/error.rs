//! The one error type of the store.

use crate::Log;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database itself failed (I/O, a lock held by another process…).
    /// Its message is in this one's (not a separate source), so that a
    /// one-line report does not repeat it.
    #[error("storage backend: {0}")]
    Backend(Box<dyn std::error::Error + Send + Sync>),
    /// Reading or writing the disk failed (a full disk, EIO, a read-only
    /// file system, a failed fsync). After a failed write, what the files
    /// and the database hold past the last durable commit is unknown: the
    /// writer takes no more commits until [`crate::Writer::recover`] has
    /// reopened the store from what is durable.
    #[error("disk: {0}")]
    Io(std::io::Error),
    /// What is on disk contradicts itself or the last signed checkpoint:
    /// the register must not be served.
    #[error("the store is corrupt: {0}")]
    Corrupt(String),
    /// The database was written by another layout version. (Version 1 did
    /// not record where each system entry falls among the user entries, and
    /// nothing on disk recovers it; version 2 kept entries, items and stored
    /// hashes as rows, version 3 keeps them in files, version 4 adds redb's
    /// recent databases: `spec/store.md`.)
    #[error(
        "store layout version {found}, this build reads version {expected}: load the register \
         again from RSF with this build (`regis load`)"
    )]
    Format {
        /// Version found on disk.
        found: u32,
        /// Version this build writes.
        expected: u32,
    },
    /// A batch that would break an invariant; nothing was written.
    #[error("batch refused: {0}")]
    Batch(#[from] BatchError),
}

/// Why a batch was refused. Nothing of a refused batch is written.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// Entries must be numbered densely from the current size plus one.
    #[error("{log} entry numbered {found}, expected {expected}")]
    EntryNumber {
        /// Log of the entry.
        log: Log,
        /// Number the batch gave.
        found: u64,
        /// The next number of that log.
        expected: u64,
    },
    /// An entry refers to an item that is neither stored nor in the batch.
    #[error("{log} entry {number} refers to item sha-256:{item} that is not stored")]
    MissingItem {
        /// Log of the entry.
        log: Log,
        /// Its number.
        number: u64,
        /// The item hash, hex.
        item: String,
    },
    /// An item's bytes do not hash to the hash it was given under.
    #[error("item given as sha-256:{0} does not hash to it")]
    ItemHash(String),
    /// An item is not canonical item JSON (a flat object of strings and
    /// arrays of strings, in regis-model's canonical form).
    #[error("item sha-256:{0} is not canonical item JSON")]
    ItemShape(String),
    /// An entry of other than one item: the store keeps one item per entry,
    /// as every published register has.
    #[error("{log} entry {number} has {count} items; the store keeps entries of one item")]
    ItemCount {
        /// Log of the entry.
        log: Log,
        /// Its number.
        number: u64,
        /// How many items it has.
        count: usize,
    },
    /// A leaf too long for an entry bundle's u16 length prefix.
    #[error("{log} entry {number} is {len} bytes; an entry bundle holds at most 65535")]
    LeafTooLong {
        /// Log of the entry.
        log: Log,
        /// Its number.
        number: u64,
        /// Its length.
        len: usize,
    },
    /// The log already holds 2^64 - 1 entries.
    #[error("the {0} log is full")]
    TreeFull(Log),
    /// A checkpoint for a size other than the log's size after the batch.
    #[error("{log} checkpoint for size {size}, but the tree will have {tree} entries")]
    CheckpointSize {
        /// Log of the checkpoint.
        log: Log,
        /// Size it states.
        size: u64,
        /// Size of the tree after the batch.
        tree: u64,
    },
    /// A checkpoint whose root is not the tree's root.
    #[error("{log} checkpoint root differs from the tree's root at size {size}")]
    CheckpointRoot {
        /// Log of the checkpoint.
        log: Log,
        /// Its size.
        size: u64,
    },
}

impl StoreError {
    /// Wraps a backend's own error.
    pub(crate) fn backend(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        StoreError::Backend(Box::new(error))
    }

    /// Whether the disk failed (as opposed to a refusal or corruption
    /// found in what was read).
    pub fn is_io(&self) -> bool {
        matches!(self, StoreError::Io(_))
    }

    /// Whether the disk (or a quota) is full: more room, not a repair,
    /// lets writes go on.
    pub fn is_disk_full(&self) -> bool {
        match self {
            StoreError::Io(error) => {
                error.kind() == std::io::ErrorKind::StorageFull
                    || matches!(error.raw_os_error(), Some(ENOSPC | EDQUOT))
            }
            _ => false,
        }
    }
}

/// Linux's "no space left on device" and "disk quota exceeded".
const ENOSPC: i32 = 28;
const EDQUOT: i32 = 122;
