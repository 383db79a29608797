//! The verified-leaf stream: a log's entries, each checked against the
//! verified hash tiles of a checkpoint before it is handed on.
//! [`CheckedEntries`] is the one iterator the replays and the mirror read
//! entries through, with two sources:
//!
//! - an RSF delta (`download-rsf/{a}/{b}?system-size={s}`,
//!   [`Client::delta_entries`]): entries of both logs, each with its item,
//!   and `assert-root-hash` lines, each checked against the user log's
//!   root at that point;
//! - entry bundles (`tile/entries/…`, [`Client::bundle_entries`]): one
//!   log's leaves, without items, as any tlog-tiles server serves them.
//! - a static copy's RSF chunks (`download-rsf/{a}/{a+256}` to the tail,
//!   `static_copy.rs`), which [`Client::delta_entries`] reads where the
//!   delta answers 404 or 403, or where its path is a chunk's.
//!
//! Either way each entry's leaf hash must be the verified one at its index,
//! and the stream ends only where its source ended where it must: at the
//! checkpoint of each log read, whose root the leaves must fold to again
//! (which checks the whole independently of the tile reader).

use std::io::BufReader;

use regis_merkle::tile::{TILE_WIDTH, TileKind, TilePath, parse_bundle};
use regis_merkle::{Frontier, Hash, TileHashReader, TileSource as _, leaf_hash};
use regis_model::Log;
use regis_model::{Entry, Item, ItemHash};

use crate::client::{Client, parse_leaf_of, tiles_error};
use crate::delta::{DeltaReader, Step};
use crate::error::Error;
use crate::http::{HttpStream, HttpTiles};
use crate::leaves::LeafHashes;
use crate::static_copy::{ChunkEntries, is_chunk_delta};

/// An entry whose leaf hash is the verified one at its place in its log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckedEntry {
    /// Which log.
    pub log: Log,
    /// Its number (its leaf index + 1).
    pub number: u64,
    /// The entry.
    pub entry: Entry,
    /// Its item and the item's hash, which is the entry's one item hash,
    /// from a source that carries items (an RSF delta); `None` from entry
    /// bundles.
    pub item: Option<(ItemHash, Item)>,
    /// The leaf hash, `leaf_hash(entry.leaf_bytes(number))`.
    pub leaf_hash: Hash,
}

/// The entries of one log to check: those after the tree `from`, which the
/// reader holds, up to the checkpoint whose tiles `tiles` reads.
#[derive(Debug)]
pub struct LogRange<'t> {
    pub(crate) tiles: &'t TileHashReader<HttpTiles>,
    pub(crate) leaves: LeafHashes<'t>,
    pub(crate) tree: Frontier,
}

impl<'t> LogRange<'t> {
    /// The entries after `from` up to `tiles`' checkpoint (a reader from
    /// [`Client::tiles`] of the same log).
    pub fn new(tiles: &'t TileHashReader<HttpTiles>, from: Frontier) -> Self {
        LogRange {
            tiles,
            leaves: LeafHashes::new(tiles),
            tree: from,
        }
    }

    /// Entries read so far, with those held before.
    pub(crate) fn size(&self) -> u64 {
        self.tree.size()
    }

    /// The checkpoint's size.
    pub(crate) fn end(&self) -> u64 {
        self.tiles.size()
    }

    /// Verifies the checkpoint's right-edge tiles; a range must not start
    /// beyond its end.
    fn check_start(&self) -> Result<(), Error> {
        if self.size() > self.end() {
            return Err(Error::Shrunk {
                old: self.size(),
                new: self.end(),
            });
        }
        self.tiles.verify_root().map_err(tiles_error(self.end()))
    }

    /// Adds `leaf` as the next leaf if it is the verified one at its index;
    /// returns whether it was.
    pub(crate) fn push(&mut self, leaf: Hash) -> Result<bool, Error> {
        if self.leaves.get(self.size())? != leaf {
            return Ok(false);
        }
        // Cannot be full: it holds fewer leaves than the checkpoint.
        let _ = self.tree.push_hash(leaf, |_, _, _| {});
        Ok(true)
    }

    /// The leaves read reach the checkpoint and fold to its root.
    pub(crate) fn check_end(&self) -> Result<(), Error> {
        if self.size() != self.end() || self.tree.root() != *self.tiles.root() {
            return Err(Error::ReplayRoot { size: self.end() });
        }
        Ok(())
    }
}

/// Checked entries, in log order, from an RSF delta or entry bundles
/// (module docs). Yields `None` once the source has ended at the
/// checkpoints; after an error, nothing more.
#[derive(Debug)]
pub struct CheckedEntries<'t> {
    source: Source<'t>,
    done: bool,
}

#[derive(Debug)]
enum Source<'t> {
    Delta(Box<DeltaEntries<'t>>),
    Bundles(Box<BundleEntries<'t>>),
    Chunks(Box<ChunkEntries<'t>>),
}

impl Iterator for CheckedEntries<'_> {
    type Item = Result<CheckedEntry, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let next = match &mut self.source {
            Source::Delta(delta) => delta.next_entry(),
            Source::Bundles(bundles) => bundles.next_entry(),
            Source::Chunks(chunks) => chunks.next_entry(),
        };
        self.done = !matches!(next, Ok(Some(_)));
        next.transpose()
    }
}

impl Client {
    /// The entries of the RSF delta from `user`'s tree to its checkpoint
    /// (this must be the user log's client): every user entry, and with
    /// `system` every system entry after its tree up to its checkpoint,
    /// each with its item (re-hashed), each leaf checked against the
    /// verified tiles, each `assert-root-hash` against the user log's root
    /// where it stands.
    ///
    /// The delta is asked for as by a reader holding `system`'s tree, or
    /// without `system`, holding the system log of the current verified
    /// system checkpoint (`?system-size=`). A system entry beyond the
    /// system checkpoint was appended after it was read, at user size at
    /// least the user checkpoint's: it must come after the last user entry,
    /// and ends the stream. (Where a system entry falls among user entries
    /// is stated by no leaf and signed by nothing: the reader takes the
    /// server's word for it.) Where the delta's path is a static copy's
    /// tail (a static host ignores the query), or the delta answers 404 or
    /// 403, the chain of RSF chunks is read instead, from the chunk holding
    /// the last user entry held (`static_copy.rs`).
    pub fn delta_entries<'t>(
        &self,
        user: LogRange<'t>,
        system: Option<LogRange<'t>>,
    ) -> Result<CheckedEntries<'t>, Error> {
        let (from, to) = (user.size(), user.end());
        if self.log() != Log::User {
            return Err(Error::Delta {
                url: format!("{}/download-rsf/{from}/{to}", self.base_url()),
                line: 0,
                reason: "an RSF delta is read by the user log's client".into(),
            });
        }
        let held_system = match &system {
            Some(system) => system.size(),
            None => self.system()?.checkpoint()?.size(),
        };
        user.check_start()?;
        let mut entries = to - from;
        if let Some(system) = &system {
            system.check_start()?;
            entries = entries.saturating_add(system.end() - system.size());
        }
        // A static copy has no such delta: the chain of its RSF chunks
        // instead. Where the delta's path is a chunk's (a static host
        // ignores the query), the chain is the same one request.
        let chunks = |user, system| {
            Ok(CheckedEntries {
                source: Source::Chunks(Box::new(ChunkEntries::new(
                    self,
                    user,
                    system,
                    held_system,
                ))),
                done: false,
            })
        };
        if is_chunk_delta(from, to) {
            return chunks(user, system);
        }
        let path = format!("download-rsf/{from}/{to}?system-size={held_system}");
        let url = format!("{}/{path}", self.base_url());
        let stream = match self.http().stream(&path, self.http().timeout()) {
            Err(error) if error.is_missing() => return chunks(user, system),
            stream => stream?,
        };
        let reader = DeltaReader::new(url, BufReader::with_capacity(1 << 16, stream), entries);
        Ok(CheckedEntries {
            source: Source::Delta(Box::new(DeltaEntries {
                reader,
                ended: false,
                user,
                system,
                held_system,
            })),
            done: false,
        })
    }

    /// This log's entries after `range`'s tree up to its checkpoint, from
    /// entry bundles: each leaf checked against the verified tiles, then
    /// parsed as a v1 entry of this log that states its own number.
    pub fn bundle_entries<'t>(&self, range: LogRange<'t>) -> Result<CheckedEntries<'t>, Error> {
        range.check_start()?;
        Ok(CheckedEntries {
            source: Source::Bundles(Box::new(BundleEntries {
                log: self.log(),
                range,
                bundle: None,
            })),
            done: false,
        })
    }
}

/// An RSF delta being read.
#[derive(Debug)]
struct DeltaEntries<'t> {
    reader: DeltaReader<BufReader<HttpStream>>,
    /// Whether the last line read may end the delta: the final assertion,
    /// or a system entry appended after the checkpoints were read.
    ended: bool,
    user: LogRange<'t>,
    system: Option<LogRange<'t>>,
    /// The system entries the delta was asked to leave out.
    held_system: u64,
}

impl DeltaEntries<'_> {
    fn next_entry(&mut self) -> Result<Option<CheckedEntry>, Error> {
        while let Some(step) = self.reader.next_step()? {
            self.ended = false;
            let (entry, hash, item) = match step {
                Step::Assert(root) => {
                    if root != self.user.tree.root() {
                        return Err(self.reader.error(format!(
                            "assert-root-hash is not the root of the user log at size {}",
                            self.user.size()
                        )));
                    }
                    self.ended = self.user.size() == self.user.end();
                    continue;
                }
                Step::Entry(entry, hash, item) => (entry, hash, item),
            };
            let log = entry.log;
            let range = match log {
                Log::User => Some(&mut self.user),
                Log::System => self.system.as_mut(),
            };
            // A log not read holds what the delta leaves out: any entry of
            // it is beyond.
            let (number, end) = range.as_ref().map_or(
                (self.held_system.saturating_add(1), self.held_system),
                |range| (range.size() + 1, range.end()),
            );
            let Some(range) = range.filter(|_| number <= end) else {
                if log == Log::System && self.user.size() == self.user.end() {
                    // Appended after the checkpoints were read: a later
                    // reader's.
                    self.ended = true;
                    break;
                }
                return Err(self.reader.error(match log {
                    Log::User => format!("user entry {number} is beyond the checkpoint of size {end}"),
                    Log::System => format!(
                        "system entry {number} before user entry {}, beyond the system checkpoint of size {end}",
                        self.user.size() + 1
                    ),
                }));
            };
            let leaf = entry.leaf_hash(number);
            if !range.push(leaf)? {
                return Err(Error::DeltaLeafHash {
                    url: self.reader.url().to_owned(),
                    log,
                    number,
                });
            }
            return Ok(Some(CheckedEntry {
                log,
                number,
                entry,
                item: Some((hash, item)),
                leaf_hash: leaf,
            }));
        }
        self.reader.finish(self.ended, || {
            format!(
                "the delta ends at user size {} without its final assert-root-hash at {}",
                self.user.size(),
                self.user.end()
            )
        })?;
        if let Some(system) = &self.system {
            if system.size() != system.end() {
                return Err(self.reader.error(format!(
                    "the delta ends with {} system entries, but the system checkpoint has {}",
                    system.size(),
                    system.end()
                )));
            }
            system.check_end()?;
        }
        self.user.check_end()?;
        Ok(None)
    }
}

/// Entry bundles being read, one at a time.
#[derive(Debug)]
struct BundleEntries<'t> {
    log: Log,
    range: LogRange<'t>,
    /// The bundle being read and its leaves not yet read.
    bundle: Option<(TilePath, std::vec::IntoIter<Vec<u8>>)>,
}

impl BundleEntries<'_> {
    fn next_entry(&mut self) -> Result<Option<CheckedEntry>, Error> {
        loop {
            if let Some((tile, leaves)) = &mut self.bundle
                && let Some(leaf) = leaves.next()
            {
                let number = self.range.size() + 1;
                let hash = leaf_hash(&leaf);
                if !self.range.push(hash)? {
                    return Err(Error::LeafHash {
                        tile: *tile,
                        number,
                    });
                }
                return Ok(Some(CheckedEntry {
                    log: self.log,
                    number,
                    entry: parse_leaf_of(self.log, number, &leaf)?,
                    item: None,
                    leaf_hash: hash,
                }));
            }
            let (size, end) = (self.range.size(), self.range.end());
            let next = TilePath::in_tree(TileKind::Entries, size / u64::from(TILE_WIDTH), end);
            let Some(tile) = next.filter(|_| size < end) else {
                self.range.check_end()?;
                return Ok(None);
            };
            let bytes = self.range.tiles.source().fetch_tile(&tile)?;
            let leaves = parse_bundle(&bytes).map_err(|error| Error::Bundle { tile, error })?;
            if leaves.len() != usize::from(tile.width()) {
                return Err(Error::BundleWidth {
                    tile,
                    got: leaves.len(),
                    expected: tile.width(),
                });
            }
            // The leaves of the bundle the reader held already.
            let held = usize::try_from(size - tile.stored_range().start).unwrap_or(usize::MAX);
            let unread: Vec<Vec<u8>> = leaves.into_iter().skip(held).map(<[u8]>::to_vec).collect();
            self.bundle = Some((tile, unread.into_iter()));
        }
    }
}
