//! Reading a static copy of a register: a base URL (a bucket, a CDN) that
//! serves only what a publisher uploaded (`spec/static.md`): checkpoints,
//! hash tiles, entry bundles, the RSF chunks `download-rsf/{a}/{a+256}`
//! and the tail `download-rsf/{a}/{size}`, `B/register` and
//! `B/witness-policy`. The client asks for the origin's endpoints first and
//! comes here when one answers 404 or 403 (S3's answer for a missing key
//! to a reader that may not list the bucket); what it reads here is checked
//! as fully as the origin's answers, so a server gains nothing by forcing
//! the fallback.
//!
//! - A record ([`Client::record`]): the entry bundles from the newest
//!   backwards, each leaf checked against the verified level-0 tiles, up
//!   to the first entry of the key, which is then provably its latest
//!   (every later entry was read); its item from the chunk holding it,
//!   re-hashed.
//! - Entries ([`ChunkEntries`], the third source of
//!   [`crate::CheckedEntries`]): the chunks from the one holding the
//!   reader's last user entry to the tail, every leaf checked against the
//!   verified tiles (held ones too, then skipped), every `assert-root-hash`
//!   against the root computed from tiles, system entries beyond the
//!   system checkpoint ignored (a newer publication at the same user size
//!   adds them to the tail).
//!
//! A chunk `a/b` (no `system-size`) carries the system entries appended
//! while the user log had more than `a` and at most `b` entries (all those
//! up to `b` for `a = 0`). An RSF entry states no number, so where a chain
//! starts past 0 the number of its first system entry is found by its leaf
//! hash: the leaf bytes state the number, so only the right one matches
//! the verified tile hash.

use std::io::BufReader;

use regis_merkle::tile::{TILE_WIDTH, TileKind, TilePath, parse_bundle};
use regis_merkle::{Edge, Hash, TileSource as _, leaf_hash};
use regis_model::{Entry, Item, Log};

use crate::client::{Client, VerifiedCheckpoint, VerifiedRecord, parse_leaf_of, tiles_error};
use crate::delta::{DeltaReader, Step};
use crate::entries::{CheckedEntry, LogRange};
use crate::error::Error;
use crate::http::{FetchError, FetchFailure, Http, HttpStream};
use crate::leaves::LeafHashes;

/// User entries per chunk: a level-0 tile's.
const CHUNK: u64 = TILE_WIDTH as u64;

/// Where the tail of a log of `size` user entries starts: the chunk
/// holding entry `size` (0 for an empty log).
fn tail_start(size: u64) -> u64 {
    size.saturating_sub(1) / CHUNK * CHUNK
}

/// The end of the chunk starting at `start` in a log of `size` user
/// entries: a full chunk's, or the tail's.
fn chunk_end(start: u64, size: u64) -> u64 {
    if start + CHUNK < size {
        start + CHUNK
    } else {
        size
    }
}

/// Whether `download-rsf/{start}/{end}` is a tail only, never a full
/// chunk's path (a tail of 256 entries has the path its full chunk has).
fn is_tail(start: u64, end: u64) -> bool {
    end != start + CHUNK
}

/// Whether `download-rsf/{from}/{to}` is the path of the tail of a log of
/// `to` user entries (the deltas a reader asks for end at the checkpoint).
pub(crate) fn is_chunk_delta(from: u64, to: u64) -> bool {
    from == tail_start(to)
}

/// The most system entries a chunk may carry beyond those of the system
/// checkpoint (a newer publication's, at the same user size): bounds what
/// a server can make a reader loop over, with the chunk's own entries.
const SYSTEM_MARGIN: u64 = CHUNK;

/// A chunk's stream, or [`Error::Superseded`] for a tail answered 404 or
/// 403 (the publisher deletes a tail once its chunk is full).
fn open_chunk(
    http: &Http,
    start: u64,
    end: u64,
    size: u64,
    system: u64,
) -> Result<DeltaReader<BufReader<HttpStream>>, Error> {
    let path = format!("download-rsf/{start}/{end}");
    let url = format!("{}/{path}", http.base());
    let stream = http
        .stream(&path, http.timeout())
        .map_err(|error| superseded(error, is_tail(start, end), size))?;
    let entries = (end - start)
        .saturating_add(system)
        .saturating_add(SYSTEM_MARGIN);
    Ok(DeltaReader::new(
        url,
        BufReader::with_capacity(1 << 16, stream),
        entries,
    ))
}

/// `error` as [`Error::Superseded`] if it is a 404 or 403 for a partial
/// object (`partial`) of the checkpoint of `size`.
fn superseded(error: FetchError, partial: bool, size: u64) -> Error {
    match error.failure {
        FetchFailure::Status(status) if partial && error.is_missing() => Error::Superseded {
            url: error.url,
            status,
            size,
        },
        _ => Error::Fetch(error),
    }
}

/// `error`, if an item that does not hash to its entry's item hash, named
/// with the chunk and line where it is.
fn located<R: std::io::BufRead>(reader: &DeltaReader<R>, error: Error) -> Error {
    match error {
        Error::ItemHash { expected, found } => {
            reader.error(format!("the item served for {expected} hashes to {found}"))
        }
        error => error,
    }
}

impl Client {
    /// The record `key` at `trusted` from a static copy, or at a newer
    /// checkpoint consistent with it if a partial object of `trusted` is
    /// gone (read again once).
    pub(crate) fn record_from_bundles(
        &self,
        key: &str,
        trusted: &VerifiedCheckpoint,
    ) -> Result<VerifiedRecord, Error> {
        match self.scan_bundles(key, trusted) {
            Err(error) if error.is_superseded() => {
                let newer = self.checkpoint()?;
                self.consistency(trusted, &newer)?;
                self.scan_bundles(key, &newer)
            }
            other => other,
        }
    }

    /// The key's latest entry at `checkpoint`: the entry bundles from the
    /// newest backwards, each leaf checked against the verified tiles,
    /// until the first entry of `key`; then its item from its chunk.
    fn scan_bundles(
        &self,
        key: &str,
        checkpoint: &VerifiedCheckpoint,
    ) -> Result<VerifiedRecord, Error> {
        let size = checkpoint.size();
        let tiles = self.tiles(checkpoint);
        tiles.verify_root().map_err(tiles_error(size))?;
        let mut leaves = LeafHashes::new(&tiles);
        for index in (0..size.div_ceil(CHUNK)).rev() {
            let Some(tile) = TilePath::in_tree(TileKind::Entries, index, size) else {
                continue;
            };
            let bytes = tiles
                .source()
                .fetch_tile(&tile)
                .map_err(|error| superseded(error, !tile.is_full(), size))?;
            let bundle = parse_bundle(&bytes).map_err(|error| Error::Bundle { tile, error })?;
            if bundle.len() != usize::from(tile.width()) {
                return Err(Error::BundleWidth {
                    tile,
                    got: bundle.len(),
                    expected: tile.width(),
                });
            }
            let first = tile.stored_range().start;
            for (offset, leaf) in bundle.into_iter().enumerate().rev() {
                let leaf_index = first + offset as u64;
                let number = leaf_index + 1;
                let hash = leaf_hash(leaf);
                if leaves.get(leaf_index)? != hash {
                    return Err(Error::LeafHash { tile, number });
                }
                let entry = parse_leaf_of(Log::User, number, leaf)?;
                if entry.key == key {
                    let items = self.chunk_item(number, hash, size)?;
                    return Ok(VerifiedRecord {
                        number,
                        entry,
                        items,
                        checkpoint: checkpoint.clone(),
                    });
                }
            }
        }
        Err(Error::NoRecord {
            key: key.to_owned(),
            size,
        })
    }

    /// The item of user entry `number` (whose verified leaf hash is
    /// `leaf`), from the chunk holding it, re-hashed.
    fn chunk_item(&self, number: u64, leaf: Hash, size: u64) -> Result<Vec<Item>, Error> {
        let start = (number - 1) / CHUNK * CHUNK;
        let system = self.system()?.checkpoint()?.size();
        let mut reader = open_chunk(self.http(), start, chunk_end(start, size), size, system)?;
        let mut position = start;
        while let Some(step) = reader
            .next_step()
            .map_err(|error| located(&reader, error))?
        {
            let Step::Entry(served, _, item) = step else {
                continue;
            };
            if served.log != Log::User {
                continue;
            }
            position += 1;
            if position == number {
                if served.leaf_hash(number) != leaf {
                    return Err(Error::DeltaLeafHash {
                        url: reader.url().to_owned(),
                        log: Log::User,
                        number,
                    });
                }
                return Ok(vec![item]);
            }
        }
        Err(reader.error(format!("the chunk ends before user entry {number}")))
    }
}

/// The system log in a chain of chunks.
#[derive(Debug)]
struct SystemChain<'t> {
    range: LogRange<'t>,
    /// Entries the reader held before.
    held: u64,
    /// The number of the next system entry in the chain, once known.
    next: Option<u64>,
}

/// The chunk being read.
#[derive(Debug)]
struct Chunk {
    start: u64,
    end: u64,
    reader: DeltaReader<BufReader<HttpStream>>,
}

/// Checked entries from the chain of a static copy's RSF chunks (module
/// docs): the user log's, and with a system range the system log's.
#[derive(Debug)]
pub(crate) struct ChunkEntries<'t> {
    http: Http,
    user: LogRange<'t>,
    /// `None` when only the user log is read (a replay): system entries
    /// are then passed over.
    system: Option<SystemChain<'t>>,
    /// The system checkpoint's size, for the chunks' line bound.
    system_size: u64,
    /// The chunk being read; `None` before the first and after the last.
    chunk: Option<Chunk>,
    /// Where the next chunk starts; `None` once the last is open.
    next_start: Option<u64>,
    /// Whether the last line read was the assertion at the chunk's end.
    ended: bool,
    /// User entries of the chain so far, held ones included.
    position: u64,
}

impl<'t> ChunkEntries<'t> {
    /// The chain from the chunk holding `user`'s last held entry (or the
    /// first) to the tail of its checkpoint. Without `system`,
    /// `system_size` is the size of the system checkpoint the reader
    /// trusts.
    pub(crate) fn new(
        client: &Client,
        user: LogRange<'t>,
        system: Option<LogRange<'t>>,
        system_size: u64,
    ) -> Self {
        let start = tail_start(user.size());
        let system_size = system.as_ref().map_or(system_size, LogRange::end);
        ChunkEntries {
            http: client.http().clone(),
            system: system.map(|range| SystemChain {
                held: range.size(),
                // A chain from 0 holds every system entry from the first.
                next: (start == 0).then_some(1),
                range,
            }),
            user,
            system_size,
            chunk: None,
            next_start: Some(start),
            ended: false,
            position: start,
        }
    }

    pub(crate) fn next_entry(&mut self) -> Result<Option<CheckedEntry>, Error> {
        loop {
            let Some(chunk) = &mut self.chunk else {
                let Some(start) = self.next_start.take() else {
                    return self.finish().map(|()| None);
                };
                let size = self.user.end();
                let end = chunk_end(start, size);
                let reader = open_chunk(&self.http, start, end, size, self.system_size)?;
                self.chunk = Some(Chunk { start, end, reader });
                self.ended = false;
                continue;
            };
            let step = chunk.reader.next_step();
            let Some(step) = step.map_err(|error| located(&chunk.reader, error))? else {
                let (start, end, position) = (chunk.start, chunk.end, self.position);
                chunk.reader.finish(self.ended, || {
                    format!(
                        "the chunk {start}/{end} ends at user size {position} without its final assert-root-hash"
                    )
                })?;
                if end == self.user.end() {
                    // The last chunk stays, to name it in `finish`'s errors.
                    return self.finish().map(|()| None);
                }
                self.next_start = Some(end);
                self.chunk = None;
                continue;
            };
            let end = chunk.end;
            self.ended = false;
            let (entry, item_hash, item) = match step {
                Step::Assert(root) => {
                    if root != self.root_at(self.position)? {
                        return Err(self.error(format!(
                            "assert-root-hash is not the root of the user log at size {}",
                            self.position
                        )));
                    }
                    self.ended = self.position == end;
                    continue;
                }
                Step::Entry(entry, hash, item) => (entry, hash, item),
            };
            let checked = match entry.log {
                Log::User => self.user_entry(entry, end)?,
                Log::System => self.system_entry(entry)?,
            };
            if let Some((log, number, entry, leaf_hash)) = checked {
                return Ok(Some(CheckedEntry {
                    log,
                    number,
                    entry,
                    item: Some((item_hash, item)),
                    leaf_hash,
                }));
            }
        }
    }

    /// The user log's root at `size`: the tree read so far, or for a size
    /// the reader held (the chain starts at a chunk's start, at most
    /// there), computed from the verified tiles.
    fn root_at(&self, size: u64) -> Result<Hash, Error> {
        if size == self.user.size() {
            return Ok(self.user.tree.root());
        }
        Edge::from_reader(self.user.tiles, size)
            .map(|edge| edge.root())
            .map_err(tiles_error(self.user.end()))
    }

    /// An error at the line last read.
    fn error(&self, reason: String) -> Error {
        match &self.chunk {
            Some(chunk) => chunk.reader.error(reason),
            None => Error::Delta {
                url: format!("{}/download-rsf", self.http.base()),
                line: 0,
                reason,
            },
        }
    }

    fn leaf_error(&self, log: Log, number: u64) -> Error {
        Error::DeltaLeafHash {
            url: self
                .chunk
                .as_ref()
                .map(|chunk| chunk.reader.url().to_owned())
                .unwrap_or_default(),
            log,
            number,
        }
    }

    /// The next user entry: checked against the verified tiles, then
    /// handed on, or passed over if held.
    /// `end` is the chunk's.
    fn user_entry(
        &mut self,
        entry: Entry,
        end: u64,
    ) -> Result<Option<(Log, u64, Entry, Hash)>, Error> {
        let number = self.position + 1;
        if number > end {
            return Err(self.error(format!(
                "user entry {number} is beyond the chunk's end at {end}"
            )));
        }
        let leaf = entry.leaf_hash(number);
        let held = number <= self.user.size();
        let verified = if held {
            self.user.leaves.get(number - 1)? == leaf
        } else {
            self.user.push(leaf)?
        };
        if !verified {
            return Err(self.leaf_error(Log::User, number));
        }
        self.position = number;
        Ok((!held).then_some((Log::User, number, entry, leaf)))
    }

    /// The next system entry: numbered (found by its leaf hash where the
    /// chain starts past 0), checked against the verified tiles and handed
    /// on, or passed over if held or beyond the system checkpoint.
    fn system_entry(&mut self, entry: Entry) -> Result<Option<(Log, u64, Entry, Hash)>, Error> {
        let Some(system) = &mut self.system else {
            return Ok(None);
        };
        let end = system.range.end();
        let number = match system.next {
            Some(number) => number,
            None => {
                // The first of the chain: one the reader held, or the next.
                let mut found = None;
                for candidate in (1..=system.held.saturating_add(1).min(end)).rev() {
                    if system.range.leaves.get(candidate - 1)? == entry.leaf_hash(candidate) {
                        found = Some(candidate);
                        break;
                    }
                }
                match found {
                    Some(number) => number,
                    // All held, and this one appended after the checkpoint.
                    None if system.held == end => end + 1,
                    None => {
                        let last = system.held + 1;
                        return Err(self.error(format!(
                            "system entry {:?} is none of the system log's entries 1 to {last}",
                            entry.key
                        )));
                    }
                }
            }
        };
        system.next = Some(number + 1);
        let leaf = entry.leaf_hash(number);
        if number > end {
            // Appended at the checkpoint's user size after it was
            // published: after its last user entry, a later reader's.
            if self.position < self.user.end() {
                return Err(self.error(format!(
                    "system entry {number} before user entry {}, beyond the system checkpoint of size {end}",
                    self.position + 1
                )));
            }
            return Ok(None);
        }
        let held = number <= system.held;
        let verified = if held {
            system.range.leaves.get(number - 1)? == leaf
        } else {
            system.range.push(leaf)?
        };
        if !verified {
            return Err(self.leaf_error(Log::System, number));
        }
        Ok((!held).then_some((Log::System, number, entry, leaf)))
    }

    /// The chain has ended: both logs read to their checkpoints.
    fn finish(&self) -> Result<(), Error> {
        if let Some(system) = &self.system {
            let (read, end) = (system.range.size(), system.range.end());
            if read != end {
                return Err(self.error(format!(
                    "the chunks end with {read} system entries, but the system checkpoint has {end}"
                )));
            }
            system.range.check_end()?;
        }
        self.user.check_end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_and_tails_are_where_the_publisher_puts_them() {
        // (size, the tail's start)
        for (size, start) in [
            (0, 0),
            (1, 0),
            (255, 0),
            (256, 0),
            (257, 256),
            (512, 256),
            (513, 512),
        ] {
            assert_eq!(tail_start(size), start, "{size}");
            assert_eq!(chunk_end(start, size), size, "{size}");
            assert!(is_chunk_delta(start, size), "{size}");
        }
        assert!(is_tail(0, 0) && is_tail(256, 300) && !is_tail(256, 512));
        assert_eq!(chunk_end(0, 257), 256);
        assert_eq!(chunk_end(256, 513), 512);
        // Deltas no static copy holds: the origin's.
        for (from, to) in [(1, 9), (256, 256), (0, 257), (255, 300), (300, 300)] {
            assert!(!is_chunk_delta(from, to), "{from}/{to}");
        }
    }
}
