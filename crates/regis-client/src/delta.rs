//! What reading a Regis RSF delta needs beyond RSF: each entry's item is
//! on the `add-item` line just before it (regis-model's `rsf` module docs,
//! "Delta"), so a reader holds a few items at most. [`DeltaReader`] reads
//! a delta for the verified-leaf stream (`entries.rs`): it checks the
//! layout and each item, and hands each entry and each assertion on, to be
//! checked against what is verified.

use std::io::BufRead;

use regis_merkle::Hash;
use regis_model::rsf::{Command, RsfReader};
use regis_model::{Entry, Item, ItemHash};

use crate::error::Error;

/// `add-item` lines waiting for their entry: a delta puts an entry's items
/// just before it, so a few at most.
const MAX_PENDING_ITEMS: usize = 64;

/// The longest delta line accepted: an item (GOV.UK's are well under a
/// kilobyte) or an entry (at most 64 KiB as a leaf).
const MAX_DELTA_LINE: usize = 16 << 20;

/// The most lines a delta of `entries` entries (both logs) may have: an
/// item and an entry per entry, and a few assertions. Bounds what a
/// server can make a reader loop over (repeated assertions cost nothing
/// to make).
fn max_delta_lines(entries: u64) -> u64 {
    entries.saturating_mul(4).saturating_add(16)
}

/// What a delta holds, line by line, once its items are matched to their
/// entries.
#[derive(Debug)]
pub(crate) enum Step {
    /// `assert-root-hash`: the user log's root at this point, to be
    /// checked by the reader.
    Assert(Hash),
    /// An entry, with its item (which hashes to the entry's item hash).
    Entry(Entry, ItemHash, Item),
}

/// A delta served at `url`, read one [`Step`] at a time.
#[derive(Debug)]
pub(crate) struct DeltaReader<R> {
    url: String,
    commands: RsfReader<R>,
    max_lines: u64,
    pending: Vec<(ItemHash, Item)>,
    line: u64,
}

impl<R: BufRead> DeltaReader<R> {
    /// A delta of at most `entries` entries (both logs) read from `input`.
    pub(crate) fn new(url: String, input: R, entries: u64) -> Self {
        DeltaReader {
            url,
            commands: RsfReader::new(input).with_max_line(MAX_DELTA_LINE),
            max_lines: max_delta_lines(entries),
            pending: Vec::new(),
            line: 0,
        }
    }

    /// The delta's URL.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// An error at the line last read.
    pub(crate) fn error(&self, reason: impl Into<String>) -> Error {
        Error::Delta {
            url: self.url.clone(),
            line: self.line,
            reason: reason.into(),
        }
    }

    /// The next assertion or entry, or `None` at the end of the delta.
    pub(crate) fn next_step(&mut self) -> Result<Option<Step>, Error> {
        for command in self.commands.by_ref() {
            let (line, command) = command.map_err(|error| Error::Rsf {
                url: self.url.clone(),
                error: Box::new(error),
            })?;
            self.line = line;
            if line > self.max_lines {
                return Err(self.error(format!("more than {} lines", self.max_lines)));
            }
            match command {
                Command::AssertRootHash(root) => return Ok(Some(Step::Assert(root))),
                Command::AddItem(item) => {
                    if self.pending.len() >= MAX_PENDING_ITEMS {
                        return Err(self.error(format!(
                            "more than {MAX_PENDING_ITEMS} items before an entry"
                        )));
                    }
                    self.pending.push((item.hash(), item));
                }
                Command::AppendEntry(entry) => {
                    let (hash, item) =
                        take_item(&entry, &mut self.pending).map_err(|error| match error {
                            ItemError::Hash { expected, found } => {
                                Error::ItemHash { expected, found }
                            }
                            ItemError::Layout(reason) => self.error(reason),
                        })?;
                    return Ok(Some(Step::Entry(entry, hash, item)));
                }
            }
        }
        Ok(None)
    }

    /// Checks the end of the delta: its last step was the final assertion
    /// (`ended`, as the caller judged it) and no item waits for an entry;
    /// `short` says where the delta stopped instead.
    pub(crate) fn finish(&self, ended: bool, short: impl FnOnce() -> String) -> Result<(), Error> {
        if ended && self.pending.is_empty() {
            Ok(())
        } else {
            Err(self.error(short()))
        }
    }
}

/// Why an entry's item could not be taken.
#[derive(Debug)]
enum ItemError {
    /// The item before the entry hashes to something else than the item
    /// the entry refers to: altered, or another (stale) one.
    Hash {
        /// The entry's item hash.
        expected: ItemHash,
        /// The item served.
        found: ItemHash,
    },
    /// The delta is not laid out as one.
    Layout(String),
}

/// The item `entry` uses, from the `add-item` lines just before it, which
/// must be exactly its item.
fn take_item(
    entry: &Entry,
    pending: &mut Vec<(ItemHash, Item)>,
) -> Result<(ItemHash, Item), ItemError> {
    let [hash] = entry.item_hashes.as_slice() else {
        return Err(ItemError::Layout(format!(
            "an entry with {} items (Regis stores one per entry)",
            entry.item_hashes.len()
        )));
    };
    let Some(at) = pending.iter().position(|(held, _)| held == hash) else {
        return Err(match pending.first() {
            Some((found, _)) => ItemError::Hash {
                expected: *hash,
                found: *found,
            },
            None => ItemError::Layout(format!("no add-item line for the entry's item {hash}")),
        });
    };
    let found = pending.swap_remove(at);
    if let Some((unused, _)) = pending.first() {
        return Err(ItemError::Layout(format!(
            "item {unused} is added but not used by the entry after it"
        )));
    }
    Ok(found)
}

/// Hashes SHA-256 digests for a `HashSet`: they are already uniform, so a
/// keyed fold of their first eight bytes is enough, and far cheaper than
/// SipHash (a replay inserts one per entry). Keyed per set (from
/// `RandomState`) so that a server cannot grind items whose digests crowd
/// one bucket.
#[derive(Clone, Debug)]
pub(crate) struct DigestState {
    key: [u64; 2],
}

impl Default for DigestState {
    fn default() -> Self {
        use std::hash::BuildHasher as _;
        let random = std::collections::hash_map::RandomState::new();
        DigestState {
            key: [random.hash_one(0u8), random.hash_one(1u8) | 1],
        }
    }
}

impl std::hash::BuildHasher for DigestState {
    type Hasher = DigestHasher;

    fn build_hasher(&self) -> DigestHasher {
        DigestHasher {
            key: self.key,
            state: self.key[0],
        }
    }
}

/// See [`DigestState`].
#[derive(Debug)]
pub(crate) struct DigestHasher {
    key: [u64; 2],
    state: u64,
}

impl std::hash::Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        // A folded multiply: every input bit reaches every output bit.
        let product = u128::from(self.state) * u128::from(self.key[1]);
        (product as u64) ^ ((product >> 64) as u64)
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut word = [0u8; 8];
        let take = bytes.len().min(8);
        word[..take].copy_from_slice(&bytes[..take]);
        self.state = (self.state ^ u64::from_le_bytes(word)).rotate_left(23);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn digest_sets_tell_digests_apart() {
        let mut set: HashSet<ItemHash, DigestState> = HashSet::default();
        for i in 0u32..10_000 {
            assert!(set.insert(ItemHash::of(&i.to_be_bytes())));
        }
        assert!(!set.insert(ItemHash::of(&7u32.to_be_bytes())));
        assert_eq!(set.len(), 10_000);
    }
}
