//! A write transaction's appends: items, entries and their stored hashes,
//! record rows, the field index and checkpoints.

use regis_merkle::{Frontier, Hash};
use regis_model::{Item, ItemHash};

use super::{NewEntry, SignedTree, Txn, hex, read};
use crate::field_index;
use crate::files;
use crate::keys::{self, RecordRow, corrupt};
use crate::kv::Table;
use crate::{BatchError, Log, StoreError};

/// A key's latest entry as a transaction sees it.
struct Latest {
    row: RecordRow,
    ordinal: u64,
    item: Hash,
}

impl Txn<'_> {
    /// The right edge of `log` with this transaction's entries.
    pub fn frontier(&self, log: Log) -> &Frontier {
        &self.trees[log]
    }

    /// Adds an item, its SHA-256 and canonical JSON, both checked; returns
    /// whether it was new (an item already stored is not written again).
    pub fn add_item(&mut self, hash: &Hash, json: &[u8]) -> Result<bool, StoreError> {
        if ItemHash::of(json).as_bytes() != hash {
            return Err(BatchError::ItemHash(hex(hash)).into());
        }
        let Some(json) = canonical_item(json) else {
            return Err(BatchError::ItemShape(hex(hash)).into());
        };
        self.add_canonical_item(hash, json, None)
    }

    /// [`Self::add_item`] for an item known to be canonical JSON that hashes
    /// to `hash` (a regis-model `Item`, which is so by construction), with
    /// its field-index prefixes if they were worked out already.
    pub(crate) fn add_canonical_item(
        &mut self,
        hash: &Hash,
        json: &str,
        prefixes: Option<Vec<[u8; keys::FIELD_DIGEST]>>,
    ) -> Result<bool, StoreError> {
        if self.has_item(hash)? {
            return Ok(false);
        }
        self.add_new_canonical_item(hash, json, prefixes)
    }

    /// [`Self::add_canonical_item`] for an item the caller knows is not
    /// stored yet.
    pub(super) fn add_new_canonical_item(
        &mut self,
        hash: &Hash,
        json: &str,
        prefixes: Option<Vec<[u8; keys::FIELD_DIGEST]>>,
    ) -> Result<bool, StoreError> {
        let offset = files::append_item(&mut self.files, json.as_bytes())?;
        self.item_filters.insert(hash);
        self.kv.put(Table::Items, hash, &offset.to_be_bytes())?;
        let prefixes = prefixes.unwrap_or_else(|| field_prefixes(json));
        self.recent_item = Some((*hash, prefixes));
        Ok(true)
    }

    /// Whether the item is stored or added by this transaction.
    pub fn has_item(&self, hash: &Hash) -> Result<bool, StoreError> {
        read::has_item(self.kv, self.item_filters.may_contain(hash), hash)
    }

    /// An item's JSON, stored or added by this transaction, checked
    /// against its hash (one SHA-256).
    pub fn item(&self, hash: &Hash) -> Result<Option<Vec<u8>>, StoreError> {
        read::read_item(self.kv, &self.files, hash)
    }

    /// `key`'s latest entry in `log` (number and item hash), counting this
    /// transaction's entries.
    pub fn record(&self, log: Log, key: &str) -> Result<Option<(u64, Hash)>, StoreError> {
        Ok(self
            .latest(log, key)?
            .map(|latest| (latest.row.latest, latest.item)))
    }

    fn latest(&self, log: Log, key: &str) -> Result<Option<Latest>, StoreError> {
        let Some(row) = read::record_row(self.kv, log, key)? else {
            return Ok(None);
        };
        let stored = files::read_entry(&self.files, log, row.latest)?;
        Ok(Some(Latest {
            row,
            ordinal: stored.ordinal,
            item: stored.item_hash(),
        }))
    }

    /// Appends an entry: its number must be its log's next, and its item
    /// stored or added before it.
    pub fn add_entry(&mut self, new: &NewEntry) -> Result<(), StoreError> {
        let log = new.log();
        let entry = &new.entry;
        let expected = self.frontier(log).size() + 1;
        if new.number != expected {
            return Err(BatchError::EntryNumber {
                log,
                found: new.number,
                expected,
            }
            .into());
        }
        let [item] = entry.item_hashes.as_slice() else {
            return Err(BatchError::ItemCount {
                log,
                number: new.number,
                count: entry.item_hashes.len(),
            }
            .into());
        };
        let item = item.0;
        // A leaf is about 190 bytes and the key's escaped form (at most six
        // bytes a byte): only a very long key can make it too long.
        if entry.key.len() > 10_000 {
            let len = entry.leaf_bytes(new.number).len();
            if len > usize::from(u16::MAX) {
                return Err(BatchError::LeafTooLong {
                    log,
                    number: new.number,
                    len,
                }
                .into());
            }
        }
        let recent = matches!(&self.recent_item, Some((hash, _)) if *hash == item);
        if !recent && !self.has_item(&item)? {
            return Err(BatchError::MissingItem {
                log,
                number: new.number,
                item: hex(&item),
            }
            .into());
        }
        let previous = self.latest(log, &entry.key)?;
        // The frontier reports each new stored hash through a callback that
        // cannot fail; the first failed write is kept and reported after
        // (any error aborts the whole transaction, frontier included).
        let files = &mut self.files;
        let frontier = &mut self.trees[log];
        let mut written = Ok(());
        frontier
            .push_hash(new.leaf_hash, |level, index, hash| {
                if written.is_ok() {
                    written = files::append_hash(files, log, level, index, hash);
                }
            })
            .map_err(|_| BatchError::TreeFull(log))?;
        written?;
        let (prev, ordinal, first) = match &previous {
            Some(latest) => (latest.row.latest, latest.ordinal + 1, latest.row.first),
            None => (0, 1, new.number),
        };
        files::append_entry(&mut self.files, entry, &item, prev, ordinal)?;
        let row = RecordRow {
            latest: new.number,
            first,
        };
        self.kv.put(
            Table::Records,
            &keys::record_key(log, &entry.key),
            &row.encode(),
        )?;
        if log == Log::System {
            // Where it falls among user entries, which no leaf states and
            // the RSF deltas need (`Snapshot::system_entries_between`).
            return self.kv.put(
                Table::SystemPositions,
                &keys::entry_key(new.number),
                &self.trees.user.size().to_be_bytes(),
            );
        }
        match previous {
            None => self.records += 1,
            Some(latest) if latest.item == item => return Ok(()),
            Some(latest) => {
                // Rows of the table go; rows in runs stay, stale, and
                // queries skip them (`field_index`).
                for prefix in self.prefixes_of(&latest.item)? {
                    let row = field_index::row(prefix, first);
                    self.kv.delete(Table::FieldIndex, &row.to_be_bytes())?;
                }
            }
        }
        for prefix in self.prefixes_of(&item)? {
            if self.field_rows.len() == field_index::RUN_MIN_ROWS {
                // A transaction this large fills a run: its buffer is
                // taken once at the run's size, not grown by doubling
                // (which holds the old and the new buffer at once).
                self.field_rows
                    .reserve_exact(field_index::RUN_CAP_ROWS - field_index::RUN_MIN_ROWS);
            }
            self.field_rows.push(field_index::row(prefix, first));
        }
        if self.field_rows.len() >= field_index::RUN_CAP_ROWS {
            field_index::append_run(&mut self.files, &mut self.runs, &mut self.field_rows)?;
        }
        Ok(())
    }

    /// Writes the field-index rows this transaction added: as table rows
    /// when they are few, as a run otherwise; then merges the runs if there
    /// are too many and `in_use` does not say readers hold the other file.
    pub(super) fn finish_field_index(
        &mut self,
        in_use: impl Fn(u8) -> bool,
    ) -> Result<(), StoreError> {
        if self.field_rows.len() < field_index::RUN_MIN_ROWS {
            for row in self.field_rows.drain(..) {
                self.kv.put(Table::FieldIndex, &row.to_be_bytes(), &[])?;
            }
        } else {
            field_index::append_run(&mut self.files, &mut self.runs, &mut self.field_rows)?;
        }
        field_index::maybe_compact(
            &mut self.files,
            &mut self.runs,
            field_index::MAX_RUNS,
            in_use,
        )
    }

    /// The field-index prefixes of an item this store holds.
    fn prefixes_of(&self, hash: &Hash) -> Result<Vec<[u8; keys::FIELD_DIGEST]>, StoreError> {
        if let Some((recent, prefixes)) = &self.recent_item
            && recent == hash
        {
            return Ok(prefixes.clone());
        }
        let json = self.item(hash)?.ok_or_else(|| read::item_missing(hash))?;
        Ok(field_prefixes(read::item_text(hash, &json)?))
    }

    /// Stores `checkpoint` as `log`'s latest; it must state the tree as it
    /// stands now, in this transaction.
    pub fn set_checkpoint(&mut self, log: Log, checkpoint: &SignedTree) -> Result<(), StoreError> {
        let frontier = self.frontier(log);
        if checkpoint.size != frontier.size() {
            return Err(BatchError::CheckpointSize {
                log,
                size: checkpoint.size,
                tree: frontier.size(),
            }
            .into());
        }
        if checkpoint.root != frontier.root() {
            return Err(BatchError::CheckpointRoot {
                log,
                size: checkpoint.size,
            }
            .into());
        }
        let mut value = Vec::with_capacity(40 + checkpoint.text.len());
        value.extend_from_slice(&checkpoint.size.to_be_bytes());
        value.extend_from_slice(&checkpoint.root);
        value.extend_from_slice(checkpoint.text.as_bytes());
        self.kv.put(Table::Meta, keys::meta_checkpoint(log), &value)
    }
}

/// `json` as text, if it is an item in canonical form: the only form the
/// store keeps.
pub(crate) fn canonical_item(json: &[u8]) -> Option<&str> {
    std::str::from_utf8(json)
        .ok()
        .filter(|text| Item::from_canonical(text).is_ok())
}

/// The (field, value) pairs a stored item is indexed under, sorted, each
/// once. Every item is checked canonical before it is stored, and its
/// bytes against its hash when read: one that is not canonical is corrupt.
pub(crate) fn item_fields(hash: &Hash, json: &[u8]) -> Result<Vec<(String, String)>, StoreError> {
    let text = canonical_item(json);
    debug_assert!(text.is_some(), "a stored item is not canonical");
    let text =
        text.ok_or_else(|| corrupt(format!("item sha-256:{} is not canonical", hex(hash))))?;
    let mut pairs = Vec::new();
    for_each_field_pair(text, |field, value| {
        pairs.push((field.to_owned(), value.to_owned()));
    });
    pairs.sort();
    pairs.dedup();
    Ok(pairs)
}

/// The field-index prefixes of a canonical item (one regis-model made, or
/// the store checked): one per pair [`item_fields`] gives.
pub(crate) fn field_prefixes(json: &str) -> Vec<[u8; keys::FIELD_DIGEST]> {
    let mut prefixes = Vec::new();
    for_each_field_pair(json, |field, value| {
        prefixes.push(keys::field_prefix(field, value));
    });
    prefixes.sort_unstable();
    prefixes.dedup();
    prefixes
}

/// Calls `visit` with each (field, value) pair of a canonical item: one per
/// string, one per element of a list (which may repeat a value: callers
/// keep each pair once, as its index row is one).
fn for_each_field_pair(json: &str, mut visit: impl FnMut(&str, &str)) {
    for (field, value) in Item::fields_of_canonical(json) {
        for text in value.strings() {
            visit(&field, text);
        }
    }
}
