//! What checked proofs have read, kept for the next ones: the right edge of
//! the tree at the size proofs are asked against (the signed size, nearly
//! always), and the stored hashes of subtrees of 16 leaves or more. A
//! record proof then reads from the disk only the level-4 subtree around
//! its leaf (31 hashes in one read: its leaf hash and the bottom four of
//! its path), instead of all `O(log n)` of its hashes and the edge's peaks.
//!
//! Only what a proof that passed its checks read is kept: every hash of it
//! led to the signed root (`Snapshot::check_head`). Stored hashes never
//! change once they exist, and an edge is the edge of its size for ever
//! (the logs are append-only), so nothing kept is ever stale. Each proof
//! is still checked whole against the root before it is served.

use std::cell::RefCell;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use regis_merkle::{Edge, Hash, HashReader, postorder};
use regis_model::PerLog;

use super::LogHashes;
use crate::keys::corrupt;
use crate::{Log, StoreError};

/// Hashes below this level are read with the rest of their subtree of
/// `2^SPAN_HEIGHT` leaves, which post-order stores contiguously (31
/// hashes, 992 bytes): one read for what would be five. Hashes at this
/// level and above are kept.
const SPAN_HEIGHT: u8 = 4;

/// The kept hashes of one log take at most this much memory (about
/// 4 bytes an entry: a log of 2 million entries keeps every level from
/// `SPAN_HEIGHT` up; a larger one keeps its higher levels only).
const KEPT_BYTES: u64 = 8 << 20;

/// The proof material of one store, shared by its snapshots.
#[derive(Debug, Default)]
pub(crate) struct ProofCache {
    kept: RwLock<PerLog<Kept>>,
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
        let kept = self.kept.read().unwrap_or_else(PoisonError::into_inner);
        kept[log].get(level, index)
    }
}

/// One log's kept hashes: `levels[l]` holds level `SPAN_HEIGHT + l` by
/// index, each level as long as the largest tree a proof has checked
/// holds there.
#[derive(Debug, Default)]
struct Kept {
    levels: Vec<Vec<Option<Hash>>>,
}

impl Kept {
    fn get(&self, level: u8, index: u64) -> Option<Hash> {
        let slots = self
            .levels
            .get(usize::from(level.checked_sub(SPAN_HEIGHT)?))?;
        *slots.get(usize::try_from(index).ok()?)?
    }

    /// Keeps `hash`, stored hash `(level, index)` of a tree of `size`
    /// leaves, if its level is one kept at that size.
    fn keep(&mut self, size: u64, level: u8, index: u64, hash: Hash) {
        let lowest = lowest_kept_level(size);
        // A log grown past the budget gives up its lowest levels.
        for slots in self
            .levels
            .iter_mut()
            .take(usize::from(lowest - SPAN_HEIGHT))
        {
            *slots = Vec::new();
        }
        if level < lowest {
            return;
        }
        let at = usize::from(level - SPAN_HEIGHT);
        if self.levels.len() <= at {
            self.levels.resize_with(at + 1, Vec::new);
        }
        let (Ok(index), Ok(width)) = (
            usize::try_from(index),
            usize::try_from(size.checked_shr(u32::from(level)).unwrap_or(0)),
        ) else {
            return;
        };
        let slots = &mut self.levels[at];
        if slots.len() <= index {
            slots.resize(width.max(index + 1), None);
        }
        slots[index] = Some(hash);
    }
}

/// The lowest level kept for a tree of `size` leaves: the lowest whose
/// levels, from it up, fit in [`KEPT_BYTES`].
fn lowest_kept_level(size: u64) -> u8 {
    let slot = size_of::<Option<Hash>>() as u64;
    // Levels `level` and up hold fewer than `size >> (level - 1)` hashes.
    (SPAN_HEIGHT..64)
        .find(|level| (size >> (level - 1)).saturating_mul(slot) <= KEPT_BYTES)
        .unwrap_or(64)
}

/// A log's stored hashes read through a [`ProofCache`]: the kept ones from
/// memory, the level-4 subtree of what is not kept in one read, the rest
/// from the files, noting what it read so that [`CachedHashes::keep`] can
/// keep it once the proof checked.
pub(crate) struct CachedHashes<'a> {
    hashes: LogHashes<'a>,
    cache: &'a ProofCache,
    read: RefCell<Vec<(u8, u64, Hash)>>,
    /// The last level-4 subtree read: its index and its 31 hashes, in
    /// post-order.
    span: RefCell<Option<(u64, Vec<Hash>)>>,
}

impl<'a> CachedHashes<'a> {
    pub(crate) fn new(hashes: LogHashes<'a>, cache: &'a ProofCache) -> CachedHashes<'a> {
        CachedHashes {
            hashes,
            cache,
            read: RefCell::default(),
            span: RefCell::default(),
        }
    }

    /// Keeps what was read, and `edge`: call only once the proof made from
    /// them checked against the signed root.
    pub(crate) fn keep(self, edge: Arc<Edge>) {
        let log = self.hashes.log;
        let size = edge.size();
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
        let mut kept = self
            .cache
            .kept
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        for (level, index, hash) in read {
            kept[log].keep(size, level, index, hash);
        }
    }

    /// Stored hash `(level, index)`, below [`SPAN_HEIGHT`]: from the
    /// level-4 subtree around it, read whole if the tree holds all of it.
    fn spanned(&self, level: u8, index: u64) -> Result<Hash, StoreError> {
        let subtree = index >> (SPAN_HEIGHT - level);
        let at = |first: u64| {
            postorder::position(level, index)
                .and_then(|position| position.checked_sub(first))
                .and_then(|offset| usize::try_from(offset).ok())
        };
        let first = postorder::position(0, subtree << SPAN_HEIGHT)
            .ok_or_else(|| corrupt(format!("no stored hash ({level}, {index})")))?;
        let mut span = self.span.borrow_mut();
        if span.as_ref().is_none_or(|(kept, _)| *kept != subtree) {
            match self.hashes.read_subtree(SPAN_HEIGHT, subtree)? {
                Some(hashes) => *span = Some((subtree, hashes)),
                None => return self.hashes.read_hash(level, index),
            }
        }
        span.as_ref()
            .and_then(|(_, hashes)| hashes.get(at(first)?))
            .copied()
            .ok_or_else(|| corrupt(format!("no stored hash ({level}, {index}) in its subtree")))
    }
}

impl HashReader for CachedHashes<'_> {
    type Error = StoreError;

    fn read_hash(&self, level: u8, index: u64) -> Result<Hash, StoreError> {
        if level < SPAN_HEIGHT {
            return self.spanned(level, index);
        }
        if let Some(hash) = self.cache.hash(self.hashes.log, level, index) {
            return Ok(hash);
        }
        let hash = self.hashes.read_hash(level, index)?;
        self.read.borrow_mut().push((level, index, hash));
        Ok(hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_levels_fit_the_budget() {
        let slot = size_of::<Option<Hash>>() as u64;
        for size in [0, 1, 255, 100_000, 1 << 20, 2_000_000, 10_000_000, u64::MAX] {
            let lowest = lowest_kept_level(size);
            let kept: u64 = (lowest..64)
                .map(|level| (size >> level).saturating_mul(slot))
                .fold(0, u64::saturating_add);
            assert!(
                kept <= KEPT_BYTES,
                "size {size}: {kept} bytes from level {lowest}"
            );
            if lowest > SPAN_HEIGHT {
                // One level lower would not fit.
                let more = kept.saturating_add((size >> (lowest - 1)).saturating_mul(slot));
                assert!(
                    more > KEPT_BYTES / 2,
                    "size {size}: level {lowest} is too high"
                );
            }
        }
        assert_eq!(lowest_kept_level(1 << 20), SPAN_HEIGHT);
    }
}
