//! What checked proofs have read, kept for the next ones: the right edge of
//! the tree at the size proofs are asked against (the signed size, nearly
//! always), and the stored hashes of subtrees of 256 leaves or more. A
//! record proof then reads from the disk only its leaf and the bottom of
//! its path, inside one level-0 tile (8 hashes), instead of all `O(log n)`
//! of its hashes and the edge's peaks.
//!
//! Only what a proof that passed its checks read is kept: every hash of it
//! led to the signed root (`Snapshot::check_head`). Stored hashes never
//! change once they exist, and an edge is the edge of its size for ever
//! (the logs are append-only), so nothing kept is ever stale. Each proof
//! is still checked whole against the root before it is served.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use regis_merkle::tile::TILE_HEIGHT;
use regis_merkle::{Edge, Hash, HashReader};
use regis_model::PerLog;

use super::LogHashes;
use crate::{Log, StoreError};

/// Hashes of subtrees this high or higher are kept: a level-0 tile's
/// subtree is one read away, every level above it would be one read each.
const LOWEST_KEPT_LEVEL: u8 = TILE_HEIGHT as u8;

/// At most this many hashes are kept (4 MiB or so). The first kept are the
/// highest, which every proof shares; a log of up to 2^23 entries fits
/// whole.
const KEPT_HASHES: usize = 1 << 16;

/// The proof material of one store, shared by its snapshots.
#[derive(Debug, Default)]
pub(crate) struct ProofCache {
    hashes: RwLock<HashMap<(Log, u8, u64), Hash>>,
    edges: Mutex<PerLog<Option<Arc<Edge>>>>,
}

impl ProofCache {
    /// The edge of `log`'s tree of `size` leaves, if kept.
    pub(crate) fn edge(&self, log: Log, size: u64) -> Option<Arc<Edge>> {
        let edges = self.edges.lock().unwrap_or_else(PoisonError::into_inner);
        edges[log]
            .as_ref()
            .filter(|edge| edge.size() == size)
            .map(Arc::clone)
    }

    fn hash(&self, log: Log, level: u8, index: u64) -> Option<Hash> {
        let hashes = self.hashes.read().unwrap_or_else(PoisonError::into_inner);
        hashes.get(&(log, level, index)).copied()
    }
}

/// A log's stored hashes read through a [`ProofCache`]: the kept ones from
/// memory, the rest from the files, noting what it read so that
/// [`CachedHashes::keep`] can keep it once the proof checked.
pub(crate) struct CachedHashes<'a> {
    hashes: LogHashes<'a>,
    cache: &'a ProofCache,
    read: RefCell<Vec<(u8, u64, Hash)>>,
}

impl<'a> CachedHashes<'a> {
    pub(crate) fn new(hashes: LogHashes<'a>, cache: &'a ProofCache) -> CachedHashes<'a> {
        CachedHashes {
            hashes,
            cache,
            read: RefCell::default(),
        }
    }

    /// Keeps what was read, and `edge`: call only once the proof made from
    /// them checked against the signed root.
    pub(crate) fn keep(self, edge: Arc<Edge>) {
        let log = self.hashes.log;
        {
            let mut edges = self
                .cache
                .edges
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            // The newest size wins: proofs are asked against the newest
            // signed checkpoint.
            if edges[log]
                .as_ref()
                .is_none_or(|kept| kept.size() < edge.size())
            {
                edges[log] = Some(edge);
            }
        }
        let read = self.read.into_inner();
        if read.is_empty() {
            return;
        }
        let mut hashes = self
            .cache
            .hashes
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        for (level, index, hash) in read {
            if hashes.len() >= KEPT_HASHES {
                break;
            }
            hashes.insert((log, level, index), hash);
        }
    }
}

impl HashReader for CachedHashes<'_> {
    type Error = StoreError;

    fn read_hash(&self, level: u8, index: u64) -> Result<Hash, StoreError> {
        if level < LOWEST_KEPT_LEVEL {
            return self.hashes.read_hash(level, index);
        }
        if let Some(hash) = self.cache.hash(self.hashes.log, level, index) {
            return Ok(hash);
        }
        let hash = self.hashes.read_hash(level, index)?;
        self.read.borrow_mut().push((level, index, hash));
        Ok(hash)
    }
}
