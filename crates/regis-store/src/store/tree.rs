//! A snapshot's reads of its trees: stored hashes, roots, checkpoints,
//! proofs and tiles, each checked against the last signed checkpoint.

use regis_merkle::tile::{TileKind, TilePath, push_bundle_entry};
use regis_merkle::{
    Edge, Frontier, Hash, HashReader, ProofError, consistency_proof, inclusion_proof, postorder,
    root_with_run, verify_consistency, verify_inclusion,
};

use std::sync::Arc;

use super::proof_cache::CachedHashes;
use super::read::reported;
use super::{LogHashes, RecordEntry, SignedTree, Snapshot};
use crate::files::{self, FileId, ReadFiles};
use crate::keys::{self, corrupt};
use crate::kv::KvSnapshot;
use crate::{Log, StoreError};

/// A `meta/checkpoint/*` row: size ‖ root ‖ text.
fn parse_checkpoint(log: Log, value: &[u8]) -> Result<SignedTree, StoreError> {
    if value.len() < 40 {
        return Err(corrupt(format!("the {log} checkpoint row is truncated")));
    }
    let (size, rest) = value.split_at(8);
    let (root, text) = rest.split_at(32);
    let text = String::from_utf8(text.to_vec())
        .map_err(|_| corrupt(format!("the {log} checkpoint is not UTF-8")))?;
    Ok(SignedTree {
        size: keys::read_u64(size, "checkpoint")?,
        root: keys::read_hash(root, "checkpoint")?,
        text,
    })
}

/// Hashes read in one go when a run of stored hashes lies within this many
/// post-order positions (a level-0 tile spans 511).
const SPAN_HASHES: u64 = 2048;

impl LogHashes<'_> {
    fn position(&self, level: u8, index: u64) -> Result<u64, StoreError> {
        let count = self.count.ok_or_else(|| {
            corrupt(format!(
                "the size of the {} log in meta/head is beyond any tree",
                self.log
            ))
        })?;
        postorder::position(level, index)
            .filter(|position| *position < count)
            .ok_or_else(|| {
                corrupt(format!(
                    "no stored hash at level {level}, index {index} of the {} log",
                    self.log
                ))
            })
    }

    fn read_span(
        &self,
        level: u8,
        start: u64,
        count: u64,
        out: &mut Vec<Hash>,
    ) -> Result<(), StoreError> {
        if count == 0 {
            return Ok(());
        }
        let last = start
            .checked_add(count - 1)
            .ok_or_else(|| corrupt("stored hash index overflows"))?;
        let first_at = self.position(level, start)?;
        let last_at = self.position(level, last)?;
        if last_at - first_at >= SPAN_HASHES {
            for index in start..=last {
                self.position(level, index)?;
                out.push(files::read_hash(self.files, self.log, level, index)?);
            }
            return Ok(());
        }
        let span = self.read_positions(first_at, last_at)?;
        for index in start..=last {
            let at = (self.position(level, index)? - first_at) as usize;
            out.push(span[at]);
        }
        Ok(())
    }

    /// The stored hashes of the perfect subtree `(height, index)`, all of
    /// them in post-order (`2^(height + 1) − 1`, ending with its root), in
    /// one read; `None` if the tree does not hold all of it yet.
    pub(super) fn read_subtree(
        &self,
        height: u8,
        index: u64,
    ) -> Result<Option<Vec<Hash>>, StoreError> {
        let root_at = postorder::position(height, index);
        let first_at = index
            .checked_shl(u32::from(height))
            .and_then(|leaf| postorder::position(0, leaf));
        match (first_at, root_at, self.count) {
            (Some(first_at), Some(root_at), Some(count)) if root_at < count => {
                reported(self.health, self.read_positions(first_at, root_at)).map(Some)
            }
            _ => Ok(None),
        }
    }

    /// The stored hashes at post-order positions `first..=last`, which the
    /// caller knows the tree holds: one read.
    fn read_positions(&self, first: u64, last: u64) -> Result<Vec<Hash>, StoreError> {
        let mut span = vec![0; ((last - first + 1) * 32) as usize];
        self.files
            .read_at(FileId::Hashes(self.log), first * 32, &mut span)?;
        Ok(span
            .chunks_exact(32)
            .map(|chunk| {
                let mut hash = [0; 32];
                hash.copy_from_slice(chunk);
                hash
            })
            .collect())
    }
}

impl HashReader for LogHashes<'_> {
    type Error = StoreError;

    fn read_hash(&self, level: u8, index: u64) -> Result<Hash, StoreError> {
        reported(
            self.health,
            self.position(level, index)
                .and_then(|_| files::read_hash(self.files, self.log, level, index)),
        )
    }

    /// One read when the run is close together in post-order (every
    /// level-0 tile), one read per hash otherwise.
    fn read_hashes(
        &self,
        level: u8,
        start: u64,
        count: u64,
        out: &mut Vec<Hash>,
    ) -> Result<(), StoreError> {
        reported(self.health, self.read_span(level, start, count, out))
    }
}

impl<S: KvSnapshot> Snapshot<S> {
    /// The stored hashes of `log`, unchecked (see [`LogHashes`]).
    pub fn hashes(&self, log: Log) -> LogHashes<'_> {
        LogHashes {
            files: &self.files,
            health: &self.health,
            log,
            count: postorder::stored_count(self.size(log)),
        }
    }

    /// The root of `log` at this snapshot's size: one read per set bit,
    /// checked against the last signed checkpoint.
    pub fn root(&self, log: Log) -> Result<Hash, StoreError> {
        self.watch(|| {
            let size = self.size(log);
            let root = Frontier::from_reader(&self.hashes(log), size)?.root();
            self.check_head(log, size, &root)?;
            Ok(root)
        })
    }

    /// The latest checkpoint stored for `log`. Its text is served as
    /// stored: its signature protects it, and opening the register
    /// verified it (`Registry::open`).
    pub fn checkpoint(&self, log: Log) -> Result<Option<SignedTree>, StoreError> {
        let checkpoint = &self.checkpoints[log];
        self.watch(|| {
            checkpoint
                .as_deref()
                .map(|row| parse_checkpoint(log, row))
                .transpose()
        })
    }

    /// Checks that `root`, computed from stored hashes as the root of
    /// `log` at `size`, is the signed tree's or consistent with it: equal
    /// at the signed size, else joined to the signed root by a consistency
    /// proof made from stored hashes (`O(log n)` reads and hashes). Without
    /// a checkpoint nothing is signed, so nothing is checked; beyond the
    /// signed size only the signed part is.
    fn check_head(&self, log: Log, size: u64, root: &Hash) -> Result<(), StoreError> {
        let Some(signed) = self.checkpoint(log)? else {
            return Ok(());
        };
        let hashes = self.hashes(log);
        let fails = || {
            corrupt(format!(
                "the {log} tree at size {size}: its stored hashes do not reach the signed root"
            ))
        };
        let consistent = match size.cmp(&signed.size) {
            std::cmp::Ordering::Equal => *root == signed.root,
            std::cmp::Ordering::Less => {
                let edge = Edge::from_reader(&hashes, signed.size)?;
                let proof = consistency_proof(&hashes, &edge, size).map_err(proof_error)?;
                verify_consistency(size, signed.size, &proof, root, &signed.root).is_ok()
            }
            std::cmp::Ordering::Greater => {
                let edge = Edge::from_reader(&hashes, size)?;
                let proof = consistency_proof(&hashes, &edge, signed.size).map_err(proof_error)?;
                verify_consistency(signed.size, size, &proof, &signed.root, root).is_ok()
            }
        };
        if consistent { Ok(()) } else { Err(fails()) }
    }

    /// The audit path of leaf `index` (entry `index + 1`) of `log` in the
    /// tree of `size` entries, made from stored hashes and checked before
    /// it is returned: the stored leaf hash and the path lead to the tree's
    /// root, which is the signed root or consistent with it
    /// (`Snapshot::check_head`). `O(log n)` reads and hashes. A tree
    /// larger than this snapshot's is [`ProofError::SizeOutOfRange`].
    pub fn inclusion_proof(
        &self,
        log: Log,
        index: u64,
        size: u64,
    ) -> Result<Vec<Hash>, ProofError<StoreError>> {
        if size > self.size(log) {
            return Err(ProofError::SizeOutOfRange {
                old: size,
                new: self.size(log),
            });
        }
        if index >= size {
            return Err(ProofError::IndexOutOfRange { index, size });
        }
        let hashes = CachedHashes::new(self.hashes(log), &self.proofs);
        self.watch(|| self.checked_inclusion(hashes, log, index, size))
            .map_err(ProofError::Read)
    }

    /// [`Snapshot::record_with_leaf`] in the tree of `size` entries, with
    /// the audit path of the record's entry, made and checked as
    /// [`Snapshot::inclusion_proof`] makes and checks it: `None` if the
    /// key has no entry that early. One read of the entry's subtree of 16
    /// leaves serves both the leaf's check and the bottom of its path.
    pub fn record_with_proof(
        &self,
        log: Log,
        key: &str,
        size: u64,
    ) -> Result<Option<(RecordEntry, Vec<Hash>)>, ProofError<StoreError>> {
        if size > self.size(log) {
            return Err(ProofError::SizeOutOfRange {
                old: size,
                new: self.size(log),
            });
        }
        let hashes = CachedHashes::new(self.hashes(log), &self.proofs);
        self.watch(|| {
            let Some(found) = self.record_via(&hashes, log, key, size)? else {
                return Ok(None);
            };
            let index = found.record.entry_number - 1;
            let path = self.checked_inclusion(hashes, log, index, size)?;
            Ok(Some((found, path)))
        })
        .map_err(ProofError::Read)
    }

    /// The checked audit path of leaf `index` in the tree of `size`
    /// leaves, which the snapshot holds; what was read is kept once it
    /// checked.
    fn checked_inclusion(
        &self,
        hashes: CachedHashes<'_>,
        log: Log,
        index: u64,
        size: u64,
    ) -> Result<Vec<Hash>, StoreError> {
        let edge = self.edge(&hashes, log, size)?;
        let path = inclusion_proof(&hashes, &edge, index).map_err(proof_error)?;
        let leaf = hashes.read_hash(0, index)?;
        if verify_inclusion(&leaf, index, size, &path, &edge.root()).is_err() {
            return Err(corrupt(format!(
                "the {log} inclusion proof of entry {} at size {size}: its stored hashes \
                 do not lead to the tree's root",
                index + 1
            )));
        }
        self.check_head(log, size, &edge.root())?;
        hashes.keep(edge);
        Ok(path)
    }

    /// The right edge of `log`'s tree of `size` leaves: kept from an
    /// earlier proof, or read.
    fn edge(
        &self,
        hashes: &CachedHashes<'_>,
        log: Log,
        size: u64,
    ) -> Result<Arc<Edge>, StoreError> {
        match self.proofs.edge(log, size) {
            Some(edge) => Ok(edge),
            None => Ok(Arc::new(Edge::from_reader(hashes, size)?)),
        }
    }

    /// The proof that the tree of `old` entries of `log` is a prefix of the
    /// tree of `new`, made from stored hashes and checked before it is
    /// returned: it joins the two roots computed from stored hashes, and the
    /// new one is the signed root or consistent with it
    /// (`Snapshot::check_head`). `O(log n)` reads and hashes. A tree
    /// larger than this snapshot's is [`ProofError::SizeOutOfRange`].
    pub fn consistency_proof(
        &self,
        log: Log,
        old: u64,
        new: u64,
    ) -> Result<Vec<Hash>, ProofError<StoreError>> {
        if old > new {
            return Err(ProofError::SizeOutOfRange { old, new });
        }
        if new > self.size(log) {
            return Err(ProofError::SizeOutOfRange {
                old: new,
                new: self.size(log),
            });
        }
        let hashes = CachedHashes::new(self.hashes(log), &self.proofs);
        self.watch(|| {
            let edge = self.edge(&hashes, log, new)?;
            let path = consistency_proof(&hashes, &edge, old).map_err(proof_error)?;
            let old_root = Frontier::from_reader(&hashes, old)?.root();
            if verify_consistency(old, new, &path, &old_root, &edge.root()).is_err() {
                return Err(corrupt(format!(
                    "the {log} consistency proof from size {old} to {new}: its stored hashes \
                     do not join the two roots"
                )));
            }
            self.check_head(log, new, &edge.root())?;
            hashes.keep(edge);
            Ok(path)
        })
        .map_err(ProofError::Read)
    }

    /// The bytes of a hash tile or entry bundle of `log` as it stands at
    /// this snapshot: `None` if the tree does not (yet) hold `path.width()`
    /// hashes or entries there. A partial tile narrower than what the tree
    /// now holds is served as the prefix it is.
    ///
    /// A bundle's entries are each checked against their leaf hashes; a
    /// hash tile's hashes against the signed root ([`root_with_run`]: the
    /// tile's hashes and `O(log n)` other stored hashes must give it), all
    /// of them when the tile lies within the signed tree, else those that
    /// do.
    pub fn tile(&self, log: Log, path: &TilePath) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(available) = TilePath::in_tree(path.kind(), path.index(), self.size(log)) else {
            return Ok(None);
        };
        if path.width() > available.width() {
            return Ok(None);
        }
        self.watch(|| match path.kind() {
            TileKind::Hashes { .. } => {
                let range = path.stored_range();
                let mut hashes = Vec::with_capacity(usize::from(path.width()));
                // Hash tiles exist only for tree levels below 64.
                self.hashes(log).read_hashes(
                    path.tree_level() as u8,
                    range.start,
                    range.end - range.start,
                    &mut hashes,
                )?;
                self.check_tile(log, path, &hashes)?;
                Ok(Some(hashes.concat()))
            }
            TileKind::Entries => {
                let range = path.stored_range();
                let mut bundle = Vec::new();
                // Leaf index i is entry number i + 1.
                for (number, leaf) in self.entries(log, range.start + 1, range.end - range.start)? {
                    push_bundle_entry(&mut bundle, &leaf).map_err(|_| {
                        corrupt(format!("{log} entry {number} is too long for a bundle"))
                    })?;
                }
                Ok(Some(bundle))
            }
        })
    }

    /// Checks the hashes of the tile at `path` against `log`'s signed
    /// root: those within the signed tree, with the other stored hashes
    /// the tree needs, must give it.
    fn check_tile(&self, log: Log, path: &TilePath, hashes: &[Hash]) -> Result<(), StoreError> {
        let Some(signed) = self.checkpoint(log)? else {
            return Ok(());
        };
        let level = path.tree_level();
        let start = path.stored_range().start;
        let signed_count = signed.size.checked_shr(level).unwrap_or(0);
        let within = signed_count.saturating_sub(start).min(hashes.len() as u64) as usize;
        if within == 0 {
            return Ok(());
        }
        // Hash tiles exist only for tree levels below 64.
        let run = &hashes[..within];
        let root = root_with_run(&self.hashes(log), signed.size, level as u8, start, run)
            .map_err(proof_error)?;
        if root != signed.root {
            return Err(corrupt(format!(
                "{log} {path}: does not reach the signed root"
            )));
        }
        Ok(())
    }
}

/// A proof that could not be made for sizes the caller checked: only a
/// failed read, or corruption.
fn proof_error(error: ProofError<StoreError>) -> StoreError {
    match error {
        ProofError::Read(error) => error,
        other => corrupt(format!("a proof between sizes the tree holds: {other}")),
    }
}
