//! A snapshot's reads of entries, items, records, histories and the field
//! index, each checked against what it must hash to.

use std::ops::Range;
use std::sync::Arc;

use regis_merkle::{Hash, HashReader, leaf_hash};
use regis_model::{ItemHash, PerLog};

use super::{Record, RecordEntry, Snapshot, Store, hex, item_fields};
use crate::field_index::{Candidates, Row, Runs};
use crate::files::{self, Files, ReadFiles, StoredEntry};
use crate::health::Health;
use crate::keys::{self, Head, META_FIELD_RUNS, META_HEAD, RecordRow, corrupt};
use crate::kv::{KvBackend, KvSnapshot, KvWriter, Table, prefix_end};
use crate::{Log, StoreError};

impl<B: KvBackend> Store<B> {
    /// A consistent view of the store as of the last commit, shared with
    /// the other reads made before the next commit.
    pub fn snapshot(&self) -> Result<Arc<Snapshot<B::Snapshot>>, StoreError> {
        self.latest.get_or_make(|| self.fresh_snapshot())
    }

    /// A view of the store as of the last commit, made now.
    fn fresh_snapshot(&self) -> Result<Snapshot<B::Snapshot>, StoreError> {
        // Hold both field-index files before reading which one is current,
        // so that no merge starts into it meanwhile (`field_index`).
        let [first, second] = self.files.users().both();
        let kv = self.kv.snapshot()?;
        let checkpoints = PerLog {
            user: kv.get(Table::Meta, keys::meta_checkpoint(Log::User))?,
            system: kv.get(Table::Meta, keys::meta_checkpoint(Log::System))?,
        };
        let head = kv
            .get(Table::Meta, META_HEAD)?
            .ok_or_else(|| corrupt("meta/head missing"))?;
        let head = Head::decode(&head)?;
        let runs = kv
            .get(Table::Meta, META_FIELD_RUNS)?
            .ok_or_else(|| corrupt("meta/field-runs missing"))?;
        let runs = Runs::decode(&runs)?;
        let runs_user = if runs.slot == 0 { first } else { second };
        Ok(Snapshot {
            kv,
            files: self.files.clone(),
            items: Arc::clone(&self.items),
            health: Arc::clone(&self.health),
            proofs: Arc::clone(&self.proofs),
            head,
            runs,
            _runs_user: runs_user,
            checkpoints,
        })
    }
}

/// `result`, having marked `health` if it is [`StoreError::Corrupt`].
pub(super) fn reported<T>(health: &Health, result: Result<T, StoreError>) -> Result<T, StoreError> {
    if let Err(StoreError::Corrupt(what)) = &result {
        health.report_corrupt(what.clone());
    }
    result
}

impl<S: KvSnapshot> Snapshot<S> {
    /// Number of entries in `log`.
    pub fn size(&self, log: Log) -> u64 {
        self.head.size(log)
    }

    /// Number of user records (distinct keys).
    pub fn record_count(&self) -> u64 {
        self.head.records
    }

    /// The committed length of the data file.
    pub(crate) fn data_len(&self) -> u64 {
        self.head.data
    }

    /// The files, for fsck.
    pub(crate) fn files(&self) -> &Files {
        &self.files
    }

    /// The field index's runs, for fsck.
    pub(crate) fn runs(&self) -> &Runs {
        &self.runs
    }

    /// Runs `read`, marking the register's health if it finds corruption.
    pub(super) fn watch<T>(
        &self,
        read: impl FnOnce() -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        reported(&self.health, read())
    }

    /// Entry `number` of `log` as stored, with its place in its key's
    /// history; `None` beyond this snapshot. Checked against its stored
    /// leaf hash.
    pub(crate) fn stored_entry(
        &self,
        log: Log,
        number: u64,
    ) -> Result<Option<StoredEntry>, StoreError> {
        if number == 0 || number > self.size(log) {
            return Ok(None);
        }
        self.watch(|| Ok(Some(self.read_entry(&self.hashes(log), log, number)?.0)))
    }

    /// Entry `number` of `log` (which the files hold) and its leaf bytes,
    /// checked against its stored leaf hash, read from `hashes` if this
    /// snapshot's tree holds it: one more read of 32 bytes and one SHA-256
    /// of the leaf.
    fn read_entry(
        &self,
        hashes: &impl HashReader<Error = StoreError>,
        log: Log,
        number: u64,
    ) -> Result<(StoredEntry, Vec<u8>), StoreError> {
        let stored = files::read_entry(&self.files, log, number)?;
        let index = number - 1;
        let stored_hash = if number <= self.size(log) {
            hashes.read_hash(0, index)?
        } else {
            // A later commit's entry (sled, `latest_at_most`).
            files::read_hash(&self.files, log, 0, index)?
        };
        let leaf = checked_leaf(log, number, &stored, &stored_hash)?;
        Ok((stored, leaf))
    }

    /// The leaf bytes of entry `number` (1-based) of `log`.
    pub fn entry(&self, log: Log, number: u64) -> Result<Option<Vec<u8>>, StoreError> {
        if number == 0 || number > self.size(log) {
            return Ok(None);
        }
        self.watch(|| Ok(Some(self.read_entry(&self.hashes(log), log, number)?.1)))
    }

    /// Up to `limit` entries of `log` from number `start` on, with their
    /// numbers and leaf bytes, each checked against its stored leaf hash
    /// (read together, in one read for a page of up to 1,000 or so).
    pub fn entries(
        &self,
        log: Log,
        start: u64,
        limit: u64,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let start = start.max(1);
        let size = self.size(log);
        if start > size || limit == 0 {
            return Ok(Vec::new());
        }
        let last = size.min(start.saturating_add(limit - 1));
        self.watch(|| {
            let mut leaves = Vec::new();
            self.hashes(log)
                .read_hashes(0, start - 1, last - start + 1, &mut leaves)?;
            (start..=last)
                .zip(&leaves)
                .map(|(number, leaf)| {
                    let stored = files::read_entry(&self.files, log, number)?;
                    Ok((number, checked_leaf(log, number, &stored, leaf)?))
                })
                .collect()
        })
    }

    /// An item's canonical JSON, checked against its hash (one SHA-256).
    pub fn item(&self, hash: &Hash) -> Result<Option<Vec<u8>>, StoreError> {
        self.watch(|| read_item(&self.kv, &self.files, hash))
    }

    /// Whether the item is stored (without reading it). A new item is
    /// usually known to be so from the item filter, without a lookup.
    pub fn has_item(&self, hash: &Hash) -> Result<bool, StoreError> {
        has_item(&self.kv, self.items.may_contain(hash), hash)
    }

    /// The user-log size when system entry `number` was appended: it goes
    /// after that many user entries.
    pub fn system_position(&self, number: u64) -> Result<Option<u64>, StoreError> {
        if number == 0 || number > self.size(Log::System) {
            return Ok(None);
        }
        let row = self
            .kv
            .get(Table::SystemPositions, &keys::entry_key(number))?
            .ok_or_else(|| corrupt(format!("the position of system entry {number} is missing")))?;
        keys::read_u64(&row, "system position").map(Some)
    }

    /// The numbers of the system entries appended while the user log had
    /// at least `from` and fewer than `to` entries (an RSF delta ending at
    /// `b` carries those up to `0, b + 1`). Positions never decrease along
    /// the system log, so this is two binary searches, `O(log n)` reads.
    pub fn system_entries_between(&self, from: u64, to: u64) -> Result<Range<u64>, StoreError> {
        let first = self.first_system_at(from)?;
        Ok(first..self.first_system_at(to)?.max(first))
    }

    /// The number of the first system entry appended at a user-log size of
    /// at least `size` (one past the last entry if none was).
    fn first_system_at(&self, size: u64) -> Result<u64, StoreError> {
        let (mut low, mut high) = (1, self.size(Log::System) + 1);
        while low < high {
            let middle = low + (high - low) / 2;
            let position = self
                .system_position(middle)?
                .ok_or_else(|| corrupt(format!("system entry {middle} missing")))?;
            if position < size {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        Ok(low)
    }

    /// Every `system_positions` row (system entry number, user-log size),
    /// in number order, including rows past this snapshot's size on
    /// backends without snapshots.
    pub fn scan_system_positions(
        &self,
        mut visit: impl FnMut(u64, u64) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        self.kv.scan(
            Table::SystemPositions,
            &[],
            None,
            false,
            &mut |key, value| {
                visit(
                    keys::read_u64(key, "system position key")?,
                    keys::read_u64(value, "system position")?,
                )
            },
        )
    }

    /// The record `key` of `log` (its latest entry at this snapshot).
    pub fn record(&self, log: Log, key: &str) -> Result<Option<Record>, StoreError> {
        self.record_at(log, key, self.size(log))
    }

    /// The record `key` of `log` as it was in the tree of `size` entries
    /// (its latest entry numbered at most `size`; a size beyond this
    /// snapshot's is this snapshot's): what a proof against an older
    /// checkpoint proves. `None` if the key has no entry that early. Walks
    /// back from the key's latest entry, one read per later entry of it.
    pub fn record_at(&self, log: Log, key: &str, size: u64) -> Result<Option<Record>, StoreError> {
        Ok(self
            .record_with_leaf(log, key, size)?
            .map(|found| found.record))
    }

    /// [`Snapshot::record_at`] with the record's entry and its leaf bytes,
    /// read and checked on the way, so that its reader need not read them
    /// again.
    pub fn record_with_leaf(
        &self,
        log: Log,
        key: &str,
        size: u64,
    ) -> Result<Option<RecordEntry>, StoreError> {
        self.watch(|| self.record_via(&self.hashes(log), log, key, size))
    }

    /// [`Snapshot::record_with_leaf`], its entries checked against leaf
    /// hashes read from `hashes`.
    pub(super) fn record_via(
        &self,
        hashes: &impl HashReader<Error = StoreError>,
        log: Log,
        key: &str,
        size: u64,
    ) -> Result<Option<RecordEntry>, StoreError> {
        let Some(row) = record_row(&self.kv, log, key)? else {
            return Ok(None);
        };
        let size = size.min(self.size(log));
        Ok(self
            .latest_at_most(hashes, log, key, row.latest, size)?
            .map(|(entry_number, stored, leaf)| RecordEntry {
                record: Record {
                    key: key.to_owned(),
                    entry_number,
                    item_hash: stored.item_hash(),
                },
                entry: stored.entry,
                leaf,
            }))
    }

    /// Walks `key`'s history back from its entry `number` to its latest
    /// entry numbered at most `size`: on a backend without snapshots (sled)
    /// a record row may come from a later commit, whose entries the files
    /// already hold, and a proof against an older checkpoint wants an
    /// older entry. Each entry is checked against its leaf hash and must
    /// be of `key`: a record row that names another key's entry is corrupt.
    fn latest_at_most(
        &self,
        hashes: &impl HashReader<Error = StoreError>,
        log: Log,
        key: &str,
        mut number: u64,
        size: u64,
    ) -> Result<Option<(u64, StoredEntry, Vec<u8>)>, StoreError> {
        loop {
            let (stored, leaf) = self.entry_of(hashes, log, key, number)?;
            if number <= size {
                return Ok(Some((number, stored, leaf)));
            }
            if stored.prev == 0 {
                return Ok(None);
            }
            if stored.prev >= number {
                return Err(corrupt(format!(
                    "{log} entry {number} names a later entry {} as its key's previous",
                    stored.prev
                )));
            }
            number = stored.prev;
        }
    }

    /// Entry `number` of `log` and its leaf bytes, checked against its leaf
    /// hash and to be of `key`.
    fn entry_of(
        &self,
        hashes: &impl HashReader<Error = StoreError>,
        log: Log,
        key: &str,
        number: u64,
    ) -> Result<(StoredEntry, Vec<u8>), StoreError> {
        let (stored, leaf) = self.read_entry(hashes, log, number)?;
        if stored.entry.key != key {
            return Err(corrupt(format!(
                "{log} record {key:?}: its row or history names entry {number}, of key {:?}",
                stored.entry.key
            )));
        }
        Ok((stored, leaf))
    }

    /// Every item (hash and JSON), in hash order, until `visit` returns
    /// `false`; each checked against its hash.
    pub fn scan_items(
        &self,
        mut visit: impl FnMut(&Hash, &[u8]) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        self.watch(|| {
            self.kv
                .scan(Table::Items, &[], None, false, &mut |key, row| {
                    let hash = keys::read_hash(key, "item key")?;
                    visit(&hash, &item_at(&self.files, &hash, row)?)
                })
        })
    }

    /// Every record row of `log` as stored (key, latest entry number, first
    /// entry number), in key order.
    pub fn scan_record_rows(
        &self,
        log: Log,
        mut visit: impl FnMut(&str, u64, u64) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        let prefix = keys::records_prefix(log);
        let end = prefix_end(&prefix);
        self.kv.scan(
            Table::Records,
            &prefix,
            end.as_deref(),
            false,
            &mut |key, value| {
                let row = RecordRow::decode(value)?;
                visit(record_key_text(key)?, row.latest, row.first)
            },
        )
    }

    /// Every row of the field-index table (not the runs), in order.
    pub(crate) fn scan_field_table(
        &self,
        mut visit: impl FnMut(Row) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        self.kv
            .scan(Table::FieldIndex, &[], None, false, &mut |key, _| {
                let key: [u8; 16] = key
                    .try_into()
                    .map_err(|_| corrupt("a field index row is not 16 bytes"))?;
                visit(u128::from_be_bytes(key))
            })
    }

    /// Whether the field-index table (not the runs) holds `row`.
    pub(crate) fn field_table_has(&self, row: Row) -> Result<bool, StoreError> {
        Ok(self
            .kv
            .get(Table::FieldIndex, &row.to_be_bytes())?
            .is_some())
    }

    /// Records of `log` in key order: `limit` of them after skipping
    /// `offset`. Costs `O(offset + limit)` reads, no memory beyond the page.
    pub fn records(&self, log: Log, offset: u64, limit: u64) -> Result<Vec<Record>, StoreError> {
        let prefix = keys::records_prefix(log);
        self.records_from(log, &prefix, offset, limit)
    }

    /// Up to `limit` records of `log` in key order, starting after the key
    /// `after` (from the first when `None`): `O(limit)` reads however deep
    /// the page, for clients that page by key.
    pub fn records_after(
        &self,
        log: Log,
        after: Option<&str>,
        limit: u64,
    ) -> Result<Vec<Record>, StoreError> {
        let start = match after {
            // The smallest key above `after`: `after` followed by a 0 byte.
            Some(after) => {
                let mut start = keys::record_key(log, after);
                start.push(0);
                start
            }
            None => keys::records_prefix(log).to_vec(),
        };
        self.records_from(log, &start, 0, limit)
    }

    /// Records of `log` from the row key `start` on, skipping `offset`.
    fn records_from(
        &self,
        log: Log,
        start: &[u8],
        offset: u64,
        limit: u64,
    ) -> Result<Vec<Record>, StoreError> {
        let end = prefix_end(&keys::records_prefix(log));
        let mut out = Vec::new();
        let mut skip = offset;
        if limit == 0 {
            return Ok(out);
        }
        self.watch(|| {
            self.kv.scan(
                Table::Records,
                start,
                end.as_deref(),
                false,
                &mut |key, value| {
                    let key = record_key_text(key)?;
                    let row = RecordRow::decode(value)?;
                    let Some((entry_number, stored, _)) = self.latest_at_most(
                        &self.hashes(log),
                        log,
                        key,
                        row.latest,
                        self.size(log),
                    )?
                    else {
                        return Ok(true);
                    };
                    if skip > 0 {
                        skip -= 1;
                        return Ok(true);
                    }
                    out.push(Record {
                        key: key.to_owned(),
                        entry_number,
                        item_hash: stored.item_hash(),
                    });
                    Ok((out.len() as u64) < limit)
                },
            )
        })?;
        Ok(out)
    }

    /// User records whose item has `value` in `field` (for a
    /// cardinality-n field: among its values), in the order the records
    /// were first added, `limit` of them after skipping `offset`.
    pub fn records_by_field(
        &self,
        field: &str,
        value: &str,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<Record>, StoreError> {
        let mut out = Vec::new();
        let mut skip = offset;
        if limit == 0 {
            return Ok(out);
        }
        let mut candidates = Candidates::new(
            &self.kv,
            &self.files,
            &self.runs,
            keys::field_prefix(field, value),
        )?;
        while let Some(first) = candidates.next()? {
            // A record of a later commit (sled) is not here yet.
            let Some(stored) = self.stored_entry(Log::User, first)? else {
                continue;
            };
            let Some(record) = self.record(Log::User, &stored.entry.key)? else {
                continue;
            };
            // A candidate may be stale, or another pair's digest: the
            // record's item at this snapshot decides.
            if !self.item_has(&record.item_hash, field, value)? {
                continue;
            }
            if skip > 0 {
                skip -= 1;
                continue;
            }
            out.push(record);
            if out.len() as u64 >= limit {
                break;
            }
        }
        Ok(out)
    }

    fn item_has(&self, hash: &Hash, field: &str, value: &str) -> Result<bool, StoreError> {
        self.watch(|| {
            let json = self.item(hash)?.ok_or_else(|| item_missing(hash))?;
            let fields = item_fields(hash, &json)?;
            Ok(fields.iter().any(|(f, v)| f == field && v == value))
        })
    }

    /// The entries of `key` in `log`, oldest first: entry number and item
    /// hash, `limit` of them after skipping `offset`. Walks the key's
    /// history back from its latest entry (each entry names the key's one
    /// before it): `O(history − offset)` reads, memory for the page only.
    ///
    /// Each entry walked is checked against its leaf hash, must be of `key`
    /// and one place before the last in the key's history (its ordinal one
    /// less); the walk goes one entry past the page (or to the key's first
    /// entry, ordinal 1), so that the ordinals that chose the page were each
    /// checked against a neighbour.
    pub fn history(
        &self,
        log: Log,
        key: &str,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<(u64, Hash)>, StoreError> {
        self.watch(|| {
            let Some(row) = record_row(&self.kv, log, key)? else {
                return Ok(Vec::new());
            };
            let Some((mut number, mut stored, _)) =
                self.latest_at_most(&self.hashes(log), log, key, row.latest, self.size(log))?
            else {
                return Ok(Vec::new());
            };
            let broken = |number: u64| {
                corrupt(format!(
                    "{log} entry {number}: its place in the history of {key:?} is wrong"
                ))
            };
            // Ordinals `offset + 1 ..= offset + limit` are the page.
            let last = offset.saturating_add(limit);
            let mut out = Vec::new();
            let mut walked = false;
            loop {
                if stored.ordinal > offset && stored.ordinal <= last {
                    out.push((number, stored.item_hash()));
                }
                if stored.prev == 0 {
                    if stored.ordinal != 1 {
                        return Err(broken(number));
                    }
                    break;
                }
                if stored.ordinal <= offset && walked {
                    break;
                }
                if stored.prev >= number {
                    return Err(broken(number));
                }
                let (before, _) = self.entry_of(&self.hashes(log), log, key, stored.prev)?;
                if before.ordinal.checked_add(1) != Some(stored.ordinal) {
                    return Err(broken(stored.prev));
                }
                number = stored.prev;
                stored = before;
                walked = true;
            }
            out.reverse();
            Ok(out)
        })
    }
}

/// `stored`, entry `number` of `log`, as leaf bytes, if they hash to its
/// stored leaf hash `stored_hash`.
fn checked_leaf(
    log: Log,
    number: u64,
    stored: &StoredEntry,
    stored_hash: &Hash,
) -> Result<Vec<u8>, StoreError> {
    let leaf = stored.entry.leaf_bytes(number);
    if leaf_hash(&leaf) != *stored_hash {
        return Err(corrupt(format!(
            "{log} entry {number}: its leaf hash differs from the stored hash (level 0, index {})",
            number - 1
        )));
    }
    Ok(leaf)
}

/// A key-value read, the same for a snapshot and for a write transaction
/// (which reads its own writes): the reads both make ([`read_item`],
/// [`has_item`], [`record_row`]) are written once over it.
pub(super) trait Lookup {
    /// The value at `key`.
    fn lookup(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
}

impl<S: KvSnapshot> Lookup for S {
    fn lookup(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.get(table, key)
    }
}

impl Lookup for dyn KvWriter + '_ {
    fn lookup(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.get(table, key)
    }
}

/// Item `hash`'s canonical JSON, checked against its hash (one SHA-256).
pub(super) fn read_item(
    kv: &(impl Lookup + ?Sized),
    files: &dyn ReadFiles,
    hash: &Hash,
) -> Result<Option<Vec<u8>>, StoreError> {
    kv.lookup(Table::Items, hash)?
        .map(|row| item_at(files, hash, &row))
        .transpose()
}

/// Whether item `hash` is stored, without reading it: `may_contain` is the
/// item filter's answer, and a "no" spares the lookup.
pub(super) fn has_item(
    kv: &(impl Lookup + ?Sized),
    may_contain: bool,
    hash: &Hash,
) -> Result<bool, StoreError> {
    Ok(may_contain && kv.lookup(Table::Items, hash)?.is_some())
}

/// `key`'s record row as stored: its latest entry (perhaps of a later
/// commit, on sled) and its first.
pub(super) fn record_row(
    kv: &(impl Lookup + ?Sized),
    log: Log,
    key: &str,
) -> Result<Option<RecordRow>, StoreError> {
    kv.lookup(Table::Records, &keys::record_key(log, key))?
        .map(|row| RecordRow::decode(&row))
        .transpose()
}

/// The item whose `items` row is `row` (its offset in the data file),
/// checked against the hash it was stored under.
fn item_at(files: &dyn ReadFiles, hash: &Hash, row: &[u8]) -> Result<Vec<u8>, StoreError> {
    let json = files::read_item(files, keys::read_u64(row, "item offset")?)?;
    checked_item(hash, json)
}

/// A stored item's JSON as text. Every item is checked canonical (so
/// UTF-8) before it is stored, and its bytes against its hash when read:
/// one that is not UTF-8 is corrupt.
pub(crate) fn item_text<'a>(hash: &Hash, json: &'a [u8]) -> Result<&'a str, StoreError> {
    let text = std::str::from_utf8(json);
    debug_assert!(text.is_ok(), "a stored item is not UTF-8");
    text.map_err(|_| corrupt(format!("item sha-256:{} is not UTF-8", hex(hash))))
}

/// A stored item that must be there (a record's) and is not.
pub(super) fn item_missing(hash: &Hash) -> StoreError {
    corrupt(format!("item sha-256:{} missing", hex(hash)))
}

/// `json`, if it hashes to the item hash `hash` it was read under.
fn checked_item(hash: &Hash, json: Vec<u8>) -> Result<Vec<u8>, StoreError> {
    let found = ItemHash::of(&json);
    if found.as_bytes() != hash {
        return Err(corrupt(format!(
            "item sha-256:{}: its bytes hash to sha-256:{}",
            hex(hash),
            hex(found.as_bytes())
        )));
    }
    Ok(json)
}

/// The record key of a `records` row (after its log byte). A row scanned
/// under its log's prefix has that byte.
fn record_key_text(row: &[u8]) -> Result<&str, StoreError> {
    let key = row.get(1..);
    debug_assert!(key.is_some(), "a records row without its log byte");
    let key = key.ok_or_else(|| corrupt("a records row without its log byte"))?;
    std::str::from_utf8(key).map_err(|_| corrupt("record key is not UTF-8"))
}
