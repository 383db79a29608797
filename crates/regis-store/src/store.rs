//! What the keys mean: commits, the open-time check, and every read, written
//! once over [`KvBackend`] so that both backends share it.

use std::ops::Range;
use std::sync::Arc;

use regis_merkle::tile::{TileKind, TilePath, push_bundle_entry, read_tile};
use regis_merkle::{Frontier, Hash, HashReader, leaf_hash};
use regis_model::{Item, ItemHash};

use crate::keys::{self, FORMAT_VERSION, Head, META_FORMAT, META_HEAD, corrupt};
use crate::kv::{KvBackend, KvBatch, KvSnapshot, KvWriter, Table, prefix_end};
use crate::{BatchError, Log, StoreError};

/// A checkpoint as the store keeps it: the size and root that were signed,
/// and the signed note's text, opaque to the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedTree {
    /// Tree size the checkpoint states.
    pub size: u64,
    /// Root hash it states.
    pub root: Hash,
    /// The signed note, exactly as served.
    pub text: String,
}

/// An entry to append. Its leaf bytes must state `number`, `key` and
/// `item_hash` (regis-model builds them; `regis fsck` re-checks them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEntry {
    /// Which log.
    pub log: Log,
    /// Its number: the log's size before it, plus one.
    pub number: u64,
    /// The record key.
    pub key: String,
    /// SHA-256 of its item's canonical JSON.
    pub item_hash: Hash,
    /// The v1 leaf bytes.
    pub leaf: Vec<u8>,
}

/// Everything one commit appends: items, entries, and optionally the
/// checkpoints of the trees as they stand after it.
#[derive(Clone, Debug, Default)]
pub struct Batch {
    items: Vec<(Hash, Vec<u8>)>,
    entries: Vec<NewEntry>,
    checkpoints: Vec<(Log, SignedTree)>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an item: its SHA-256 and canonical JSON. Items already stored
    /// are not written again.
    pub fn add_item(&mut self, hash: Hash, json: Vec<u8>) {
        self.items.push((hash, json));
    }

    /// Appends an entry.
    pub fn add_entry(&mut self, entry: NewEntry) {
        self.entries.push(entry);
    }

    /// Stores `checkpoint` as `log`'s latest; it must state the tree as it
    /// stands after this batch.
    pub fn set_checkpoint(&mut self, log: Log, checkpoint: SignedTree) {
        self.checkpoints.push((log, checkpoint));
    }

    /// The entries added so far.
    pub fn entries(&self) -> &[NewEntry] {
        &self.entries
    }

    /// Whether the batch changes nothing.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty() && self.entries.is_empty() && self.checkpoints.is_empty()
    }
}

/// A tree's size and root.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TreeHead {
    /// Number of entries.
    pub size: u64,
    /// RFC 6962 root hash.
    pub root: Hash,
}

/// The latest entry of a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The record key.
    pub key: String,
    /// Number of its latest entry.
    pub entry_number: u64,
    /// SHA-256 of that entry's item.
    pub item_hash: Hash,
}

/// A register's store: cheap to clone, shared by every reader.
#[derive(Debug)]
pub struct Store<B> {
    kv: Arc<B>,
}

impl<B> Clone for Store<B> {
    fn clone(&self) -> Self {
        Store {
            kv: Arc::clone(&self.kv),
        }
    }
}

/// The write side of a register: the only thing that commits. It keeps the
/// right edge of each tree (64 hashes at most) and the record count.
#[derive(Debug)]
pub struct Writer<B> {
    kv: Arc<B>,
    user: Frontier,
    system: Frontier,
    records: u64,
}

impl<B: KvBackend> Store<B> {
    /// Opens a register's database, initialising an empty one. Refuses
    /// (with [`StoreError::Corrupt`]) a store whose tree does not match its
    /// last signed checkpoint; the check reads `O(log n)` hashes and replays
    /// nothing.
    pub fn open(kv: B) -> Result<(Store<B>, Writer<B>), StoreError> {
        let snapshot = kv.snapshot()?;
        match snapshot.get(Table::Meta, META_FORMAT)? {
            None => {
                if snapshot.get(Table::Meta, META_HEAD)?.is_some() {
                    return Err(corrupt("meta/head without meta/format"));
                }
                drop(snapshot);
                let mut batch = KvBatch::new();
                batch.put(
                    Table::Meta,
                    META_FORMAT.to_vec(),
                    FORMAT_VERSION.to_be_bytes().to_vec(),
                );
                batch.put(Table::Meta, META_HEAD.to_vec(), Head::default().encode());
                kv.commit(batch)?;
            }
            Some(format) => {
                let found = <[u8; 4]>::try_from(format.as_slice())
                    .map(u32::from_be_bytes)
                    .map_err(|_| corrupt("meta/format is not 4 bytes"))?;
                if found != FORMAT_VERSION {
                    return Err(StoreError::Format {
                        found,
                        expected: FORMAT_VERSION,
                    });
                }
            }
        }
        let store = Store { kv: Arc::new(kv) };
        let snapshot = store.snapshot()?;
        let mut frontiers = [Frontier::new(), Frontier::new()];
        for (log, frontier) in [Log::User, Log::System].into_iter().zip(&mut frontiers) {
            let hashes = snapshot.hashes(log);
            let size = snapshot.size(log);
            *frontier = Frontier::from_reader(&hashes, size)?;
            if let Some(checkpoint) = snapshot.checkpoint(log)? {
                if checkpoint.size > size {
                    return Err(corrupt(format!(
                        "the {log} checkpoint is for size {}, but the tree has {size} entries",
                        checkpoint.size
                    )));
                }
                let signed = Frontier::from_reader(&hashes, checkpoint.size)?;
                if signed.root() != checkpoint.root {
                    return Err(corrupt(format!(
                        "the stored {log} tree at size {} does not match its signed checkpoint",
                        checkpoint.size
                    )));
                }
            }
        }
        let [user, system] = frontiers;
        let writer = Writer {
            kv: Arc::clone(&store.kv),
            user,
            system,
            records: snapshot.head.records,
        };
        Ok((store, writer))
    }

    /// A consistent view of the store as of the last commit.
    pub fn snapshot(&self) -> Result<Snapshot<B::Snapshot>, StoreError> {
        let kv = self.kv.snapshot()?;
        let checkpoints = [
            kv.get(Table::Meta, keys::meta_checkpoint(Log::User))?,
            kv.get(Table::Meta, keys::meta_checkpoint(Log::System))?,
        ];
        let head = kv
            .get(Table::Meta, META_HEAD)?
            .ok_or_else(|| corrupt("meta/head missing"))?;
        let head = Head::decode(&head)?;
        Ok(Snapshot {
            kv,
            head,
            checkpoints,
        })
    }
}

impl<B: KvBackend> Writer<B> {
    /// The size and root of `log` as of the last commit.
    pub fn head(&self, log: Log) -> TreeHead {
        let frontier = self.frontier(log);
        TreeHead {
            size: frontier.size(),
            root: frontier.root(),
        }
    }

    /// The right edge of `log` as of the last commit.
    pub fn frontier(&self, log: Log) -> &Frontier {
        match log {
            Log::User => &self.user,
            Log::System => &self.system,
        }
    }

    /// Commits `batch` atomically and durably, or nothing of it. Returns the
    /// trees as they stand after it.
    pub fn commit(&mut self, batch: &Batch) -> Result<[TreeHead; 2], StoreError> {
        self.transact(|txn| {
            for (hash, json) in &batch.items {
                txn.add_item(hash, json)?;
            }
            for entry in &batch.entries {
                txn.add_entry(entry)?;
            }
            for (log, checkpoint) in &batch.checkpoints {
                txn.set_checkpoint(*log, checkpoint)?;
            }
            Ok::<_, StoreError>(())
        })?;
        Ok([self.head(Log::User), self.head(Log::System)])
    }

    /// Runs `work` in one write transaction ([`Txn`]) and commits what it
    /// appended, with the new `head`, atomically and durably; if `work`
    /// fails, nothing of it is written and the writer stays as it was.
    ///
    /// Both backends spill a large transaction to disk (redb to free pages
    /// of its file, sled to a redo tree), so `work` may append any number of
    /// entries (a bulk load) in bounded memory (`spec/store.md`, "Bulk
    /// loads").
    pub fn transact<T, E: From<StoreError>>(
        &mut self,
        work: impl FnOnce(&mut Txn<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut after = None;
        let done = self.kv.transact(|kv| -> Result<T, E> {
            let mut txn = Txn {
                kv,
                user: self.user.clone(),
                system: self.system.clone(),
                records: self.records,
            };
            let done = work(&mut txn)?;
            let head = Head {
                user: txn.user.size(),
                system: txn.system.size(),
                records: txn.records,
            };
            txn.kv.put(Table::Meta, META_HEAD, &head.encode())?;
            after = Some((txn.user, txn.system, txn.records));
            Ok(done)
        })?;
        // Only a durable commit moves the writer's state.
        if let Some((user, system, records)) = after {
            self.user = user;
            self.system = system;
            self.records = records;
        }
        Ok(done)
    }
}

/// One write transaction of a [`Writer`]: appends entries and items and
/// keeps every index, reading its own writes. Nothing of it is visible to
/// readers until [`Writer::transact`] commits it, and then all of it is.
pub struct Txn<'w> {
    kv: &'w mut dyn KvWriter,
    user: Frontier,
    system: Frontier,
    records: u64,
}

impl std::fmt::Debug for Txn<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Txn")
            .field("user", &self.user.size())
            .field("system", &self.system.size())
            .field("records", &self.records)
            .finish_non_exhaustive()
    }
}

impl Txn<'_> {
    /// The right edge of `log` with this transaction's entries.
    pub fn frontier(&self, log: Log) -> &Frontier {
        match log {
            Log::User => &self.user,
            Log::System => &self.system,
        }
    }

    /// Adds an item, its SHA-256 and canonical JSON, both checked; returns
    /// whether it was new (an item already stored is not written again).
    pub fn add_item(&mut self, hash: &Hash, json: &[u8]) -> Result<bool, StoreError> {
        if ItemHash::of(json).as_bytes() != hash {
            return Err(BatchError::ItemHash(hex(hash)).into());
        }
        if item_fields(json).is_none() {
            return Err(BatchError::ItemShape(hex(hash)).into());
        }
        self.add_canonical_item(hash, json)
    }

    /// [`Self::add_item`] for an item known to be canonical JSON that hashes
    /// to `hash` (a regis-model `Item`, which is so by construction).
    pub(crate) fn add_canonical_item(
        &mut self,
        hash: &Hash,
        json: &[u8],
    ) -> Result<bool, StoreError> {
        if self.kv.get(Table::Items, hash)?.is_some() {
            return Ok(false);
        }
        self.kv.put(Table::Items, hash, json)?;
        Ok(true)
    }

    /// An item's JSON, stored or added by this transaction.
    pub fn item(&self, hash: &Hash) -> Result<Option<Vec<u8>>, StoreError> {
        self.kv.get(Table::Items, hash)
    }

    /// `key`'s latest entry in `log` (number and item hash), counting this
    /// transaction's entries.
    pub fn record(&self, log: Log, key: &str) -> Result<Option<(u64, Hash)>, StoreError> {
        self.kv
            .get(Table::Records, &keys::record_key(log, key))?
            .map(|row| keys::parse_record_value(&row))
            .transpose()
    }

    /// Appends an entry: its number must be its log's next, and its item
    /// stored or added before it.
    pub fn add_entry(&mut self, entry: &NewEntry) -> Result<(), StoreError> {
        let log = entry.log;
        let (frontier, entries, hashes) = match log {
            Log::User => (&mut self.user, Table::UserEntries, Table::UserHashes),
            Log::System => (&mut self.system, Table::SystemEntries, Table::SystemHashes),
        };
        let expected = frontier.size() + 1;
        if entry.number != expected {
            return Err(BatchError::EntryNumber {
                log,
                found: entry.number,
                expected,
            }
            .into());
        }
        if entry.leaf.len() > usize::from(u16::MAX) {
            return Err(BatchError::LeafTooLong {
                log,
                number: entry.number,
                len: entry.leaf.len(),
            }
            .into());
        }
        let Some(new_item) = self.kv.get(Table::Items, &entry.item_hash)? else {
            return Err(BatchError::MissingItem {
                log,
                number: entry.number,
                item: hex(&entry.item_hash),
            }
            .into());
        };
        // The frontier reports each new stored hash through a callback that
        // cannot fail; the first failed write is kept and reported after
        // (any error aborts the whole transaction, frontier included).
        let kv = &mut *self.kv;
        let mut written = Ok(());
        frontier
            .push_hash(leaf_hash(&entry.leaf), |level, index, hash| {
                if written.is_ok() {
                    written = kv.put(hashes, &keys::hash_key(level, index), hash);
                }
            })
            .map_err(|_| BatchError::TreeFull(log))?;
        written?;
        kv.put(entries, &keys::entry_key(entry.number), &entry.leaf)?;
        kv.put(
            Table::History,
            &keys::history_key(log, &entry.key, entry.number),
            &entry.item_hash,
        )?;
        let previous = self.record(log, &entry.key)?;
        self.kv.put(
            Table::Records,
            &keys::record_key(log, &entry.key),
            &keys::record_value(entry.number, &entry.item_hash),
        )?;
        if log == Log::System {
            // Where it falls among user entries, which no leaf states and
            // the RSF deltas need (`Snapshot::system_entries_between`).
            return self.kv.put(
                Table::SystemPositions,
                &keys::entry_key(entry.number),
                &self.user.size().to_be_bytes(),
            );
        }
        match previous {
            None => self.records += 1,
            Some((_, old_hash)) if old_hash == entry.item_hash => return Ok(()),
            Some((_, old_hash)) => {
                let old = self.item(&old_hash)?.ok_or_else(|| {
                    corrupt(format!("record item sha-256:{} missing", hex(&old_hash)))
                })?;
                let fields = item_fields(&old).ok_or_else(|| {
                    corrupt(format!("item sha-256:{} is malformed", hex(&old_hash)))
                })?;
                for (field, value) in fields {
                    self.kv.delete(
                        Table::FieldIndex,
                        &keys::field_key(&field, &value, &entry.key),
                    )?;
                }
            }
        }
        // The item was checked when it was added, to this transaction or an
        // earlier one.
        let fields = item_fields(&new_item).ok_or_else(|| {
            corrupt(format!(
                "item sha-256:{} is malformed",
                hex(&entry.item_hash)
            ))
        })?;
        for (field, value) in fields {
            self.kv.put(
                Table::FieldIndex,
                &keys::field_key(&field, &value, &entry.key),
                &[],
            )?;
        }
        Ok(())
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

/// The (field, value) pairs an item is indexed under: one per string, one
/// per element of a list. `None` if the bytes are not a canonical item.
pub(crate) fn item_fields(json: &[u8]) -> Option<Vec<(String, String)>> {
    let item = Item::from_canonical(std::str::from_utf8(json).ok()?).ok()?;
    let mut pairs = Vec::new();
    for (field, value) in item.fields() {
        for text in value.strings() {
            pairs.push((field.to_string(), text.to_owned()));
        }
    }
    // A list may repeat a value; its index row is one.
    pairs.sort();
    pairs.dedup();
    Some(pairs)
}

/// Lowercase hex, for messages.
fn hex(hash: &Hash) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

/// A consistent read view: everything as of one commit.
#[derive(Debug)]
pub struct Snapshot<S> {
    kv: S,
    head: Head,
    /// The checkpoint rows (user, system), read before `head`: a
    /// checkpoint is stored after the entries it covers, so on a backend
    /// without snapshots (sled) this order keeps each within `head`.
    checkpoints: [Option<Vec<u8>>; 2],
}

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

/// The stored hashes of one log, as a [`HashReader`].
#[derive(Debug)]
pub struct LogHashes<'a, S> {
    kv: &'a S,
    table: Table,
}

impl<S: KvSnapshot> HashReader for LogHashes<'_, S> {
    type Error = StoreError;

    fn read_hash(&self, level: u8, index: u64) -> Result<Hash, StoreError> {
        let value = self
            .kv
            .get(self.table, &keys::hash_key(level, index))?
            .ok_or_else(|| {
                corrupt(format!(
                    "no stored hash at level {level}, index {index} of {}",
                    self.table.name()
                ))
            })?;
        keys::read_hash(&value, self.table.name())
    }

    /// One range scan.
    fn read_hashes(
        &self,
        level: u8,
        start: u64,
        count: u64,
        out: &mut Vec<Hash>,
    ) -> Result<(), StoreError> {
        let end = start.saturating_add(count);
        if end == start {
            return Ok(());
        }
        let mut next = start;
        let end_key = keys::hash_key(level, end);
        self.kv.scan(
            self.table,
            &keys::hash_key(level, start),
            Some(&end_key),
            false,
            &mut |key, value| {
                if key != keys::hash_key(level, next) {
                    return Err(corrupt(format!(
                        "no stored hash at level {level}, index {next} of {}",
                        self.table.name()
                    )));
                }
                out.push(keys::read_hash(value, self.table.name())?);
                next += 1;
                Ok(next < end)
            },
        )?;
        if next < end {
            return Err(corrupt(format!(
                "no stored hash at level {level}, index {next} of {}",
                self.table.name()
            )));
        }
        Ok(())
    }
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

    /// The stored hashes of `log`.
    pub fn hashes(&self, log: Log) -> LogHashes<'_, S> {
        LogHashes {
            kv: &self.kv,
            table: match log {
                Log::User => Table::UserHashes,
                Log::System => Table::SystemHashes,
            },
        }
    }

    /// The root of `log` at this snapshot's size: one read per set bit.
    pub fn root(&self, log: Log) -> Result<Hash, StoreError> {
        Ok(Frontier::from_reader(&self.hashes(log), self.size(log))?.root())
    }

    /// The latest checkpoint stored for `log`.
    pub fn checkpoint(&self, log: Log) -> Result<Option<SignedTree>, StoreError> {
        let checkpoint = match log {
            Log::User => &self.checkpoints[0],
            Log::System => &self.checkpoints[1],
        };
        checkpoint
            .as_deref()
            .map(|row| parse_checkpoint(log, row))
            .transpose()
    }

    fn entries_table(log: Log) -> Table {
        match log {
            Log::User => Table::UserEntries,
            Log::System => Table::SystemEntries,
        }
    }

    /// The leaf bytes of entry `number` (1-based) of `log`.
    pub fn entry(&self, log: Log, number: u64) -> Result<Option<Vec<u8>>, StoreError> {
        if number == 0 || number > self.size(log) {
            return Ok(None);
        }
        let leaf = self
            .kv
            .get(Self::entries_table(log), &keys::entry_key(number))?;
        leaf.map(Some)
            .ok_or_else(|| corrupt(format!("{log} entry {number} missing")))
    }

    /// Up to `limit` entries of `log` from number `start` on, with their
    /// numbers.
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
        let mut out = Vec::new();
        let mut expected = start;
        let end_key = last.checked_add(1).map(keys::entry_key);
        self.kv.scan(
            Self::entries_table(log),
            &keys::entry_key(start),
            end_key.as_ref().map(|key| key.as_slice()),
            false,
            &mut |key, value| {
                let number = keys::read_u64(key, "entry key")?;
                if number != expected {
                    return Err(corrupt(format!("{log} entry {expected} missing")));
                }
                out.push((number, value.to_vec()));
                expected += 1;
                Ok(expected <= last)
            },
        )?;
        if expected <= last {
            return Err(corrupt(format!("{log} entry {expected} missing")));
        }
        Ok(out)
    }

    /// An item's canonical JSON.
    pub fn item(&self, hash: &Hash) -> Result<Option<Vec<u8>>, StoreError> {
        self.kv.get(Table::Items, hash)
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
    /// at least `from` and fewer than `to` entries: those the RSF delta
    /// `from/to` carries. Positions never decrease along the system log, so
    /// this is two binary searches, `O(log n)` reads.
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
        let Some(row) = self.kv.get(Table::Records, &keys::record_key(log, key))? else {
            return Ok(None);
        };
        let row = keys::parse_record_value(&row)?;
        self.resolve(log, key, row)
    }

    /// `key`'s latest entry at this snapshot's size, given its latest row,
    /// which a backend without snapshots (sled) may have read from a later
    /// commit.
    fn resolve(
        &self,
        log: Log,
        key: &str,
        (number, item_hash): (u64, Hash),
    ) -> Result<Option<Record>, StoreError> {
        let size = self.size(log);
        if number <= size {
            return Ok(Some(Record {
                key: key.to_owned(),
                entry_number: number,
                item_hash,
            }));
        }
        Ok(self
            .latest_entry_of(log, key, size)?
            .map(|(entry_number, item_hash)| Record {
                key: key.to_owned(),
                entry_number,
                item_hash,
            }))
    }

    /// The latest history row of `key` with an entry number at most `max`.
    fn latest_entry_of(
        &self,
        log: Log,
        key: &str,
        max: u64,
    ) -> Result<Option<(u64, Hash)>, StoreError> {
        let prefix = keys::history_prefix(log, key);
        let end = max
            .checked_add(1)
            .map(|end| keys::history_key(log, key, end));
        let end = end.or_else(|| prefix_end(&prefix));
        let mut found = None;
        self.kv.scan(
            Table::History,
            &prefix,
            end.as_deref(),
            true,
            &mut |row, value| {
                found = Some((
                    keys::history_number(row)?,
                    keys::read_hash(value, "history")?,
                ));
                Ok(false)
            },
        )?;
        Ok(found)
    }

    /// Every item, in hash order, until `visit` returns `false`.
    pub fn scan_items(
        &self,
        mut visit: impl FnMut(&Hash, &[u8]) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        self.kv
            .scan(Table::Items, &[], None, false, &mut |key, value| {
                visit(&keys::read_hash(key, "item key")?, value)
            })
    }

    /// Every `history` row of `log` (key, entry number, item hash), in key
    /// then entry order, including rows past this snapshot's size on
    /// backends without snapshots.
    pub fn scan_history(
        &self,
        log: Log,
        mut visit: impl FnMut(&str, u64, &Hash) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        let prefix = keys::history_log_prefix(log);
        let end = prefix_end(&prefix);
        self.kv.scan(
            Table::History,
            &prefix,
            end.as_deref(),
            false,
            &mut |key, value| {
                let (record, number) = keys::parse_history_key(key)?;
                visit(record, number, &keys::read_hash(value, "history")?)
            },
        )
    }

    /// Every record row of `log` as stored (key, latest entry number, item
    /// hash), in key order.
    pub fn scan_record_rows(
        &self,
        log: Log,
        mut visit: impl FnMut(&str, u64, &Hash) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        let prefix = keys::records_prefix(log);
        let end = prefix_end(&prefix);
        self.kv.scan(
            Table::Records,
            &prefix,
            end.as_deref(),
            false,
            &mut |key, value| {
                let record = std::str::from_utf8(key.get(1..).unwrap_or_default())
                    .map_err(|_| corrupt("record key is not UTF-8"))?;
                let (number, item) = keys::parse_record_value(value)?;
                visit(record, number, &item)
            },
        )
    }

    /// Every field-index row (field, value, record key), in that order.
    pub fn scan_field_index(
        &self,
        mut visit: impl FnMut(&str, &str, &str) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        self.kv
            .scan(Table::FieldIndex, &[], None, false, &mut |key, _| {
                let (field, value, record) = keys::parse_field_key(key)?;
                visit(field, value, record)
            })
    }

    /// The item hash of `key`'s entry `number`, if the history holds it.
    pub fn history_entry(
        &self,
        log: Log,
        key: &str,
        number: u64,
    ) -> Result<Option<Hash>, StoreError> {
        self.kv
            .get(Table::History, &keys::history_key(log, key, number))?
            .map(|value| keys::read_hash(&value, "history"))
            .transpose()
    }

    /// Whether the field index holds (field, value, key).
    pub fn field_row(&self, field: &str, value: &str, key: &str) -> Result<bool, StoreError> {
        Ok(self
            .kv
            .get(Table::FieldIndex, &keys::field_key(field, value, key))?
            .is_some())
    }

    /// The latest entry of `key` in `log` (entry number and item hash)
    /// according to its history, ignoring the records table: what `fsck`
    /// checks the records table against.
    pub fn latest_history(&self, log: Log, key: &str) -> Result<Option<(u64, Hash)>, StoreError> {
        self.latest_entry_of(log, key, self.size(log))
    }

    /// Records of `log` in key order: `limit` of them after skipping
    /// `offset`. Costs `O(offset + limit)` reads, no memory beyond the page.
    pub fn records(&self, log: Log, offset: u64, limit: u64) -> Result<Vec<Record>, StoreError> {
        let prefix = keys::records_prefix(log);
        let end = prefix_end(&prefix);
        let mut out = Vec::new();
        let mut skip = offset;
        if limit == 0 {
            return Ok(out);
        }
        self.kv.scan(
            Table::Records,
            &prefix,
            end.as_deref(),
            false,
            &mut |key, value| {
                let key = std::str::from_utf8(key.get(1..).unwrap_or_default())
                    .map_err(|_| corrupt("record key is not UTF-8"))?;
                let Some(record) = self.resolve(log, key, keys::parse_record_value(value)?)? else {
                    return Ok(true);
                };
                if skip > 0 {
                    skip -= 1;
                    return Ok(true);
                }
                out.push(record);
                Ok((out.len() as u64) < limit)
            },
        )?;
        Ok(out)
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
        let prefix = keys::records_prefix(log);
        let end = prefix_end(&prefix);
        let start = match after {
            // The smallest key above `after`: `after` followed by a 0 byte.
            Some(after) => {
                let mut start = keys::record_key(log, after);
                start.push(0);
                start
            }
            None => prefix.to_vec(),
        };
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        self.kv.scan(
            Table::Records,
            &start,
            end.as_deref(),
            false,
            &mut |key, value| {
                let key = std::str::from_utf8(key.get(1..).unwrap_or_default())
                    .map_err(|_| corrupt("record key is not UTF-8"))?;
                if let Some(record) = self.resolve(log, key, keys::parse_record_value(value)?)? {
                    out.push(record);
                }
                Ok((out.len() as u64) < limit)
            },
        )?;
        Ok(out)
    }

    /// User records whose item has `value` in `field` (for a
    /// cardinality-n field: among its values), in key order.
    pub fn records_by_field(
        &self,
        field: &str,
        value: &str,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<Record>, StoreError> {
        let prefix = keys::field_prefix(field, value);
        let end = prefix_end(&prefix);
        let mut out = Vec::new();
        let mut skip = offset;
        if limit == 0 {
            return Ok(out);
        }
        self.kv.scan(
            Table::FieldIndex,
            &prefix,
            end.as_deref(),
            false,
            &mut |key, _| {
                let key = std::str::from_utf8(key.get(prefix.len()..).unwrap_or_default())
                    .map_err(|_| corrupt("field index key is not UTF-8"))?;
                let Some(row) = self
                    .kv
                    .get(Table::Records, &keys::record_key(Log::User, key))?
                else {
                    return Err(corrupt(format!(
                        "field index names record {key:?}, which is missing"
                    )));
                };
                let row = keys::parse_record_value(&row)?;
                let Some(record) = self.resolve(Log::User, key, row)? else {
                    return Ok(true);
                };
                // An index row and a record row read from different commits
                // (sled) agree whenever the record did not change after this
                // snapshot; when it did, ask its item at this snapshot.
                if record.entry_number != row.0
                    && !self.item_has(&record.item_hash, field, value)?
                {
                    return Ok(true);
                }
                if skip > 0 {
                    skip -= 1;
                    return Ok(true);
                }
                out.push(record);
                Ok((out.len() as u64) < limit)
            },
        )?;
        Ok(out)
    }

    fn item_has(&self, hash: &Hash, field: &str, value: &str) -> Result<bool, StoreError> {
        let json = self
            .item(hash)?
            .ok_or_else(|| corrupt(format!("item sha-256:{} missing", hex(hash))))?;
        let fields = item_fields(&json)
            .ok_or_else(|| corrupt(format!("item sha-256:{} is malformed", hex(hash))))?;
        Ok(fields.iter().any(|(f, v)| f == field && v == value))
    }

    /// The entries of `key` in `log`, oldest first: entry number and item
    /// hash, `limit` of them after skipping `offset`.
    pub fn history(
        &self,
        log: Log,
        key: &str,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<(u64, Hash)>, StoreError> {
        let size = self.size(log);
        let prefix = keys::history_prefix(log, key);
        let start = keys::history_key(log, key, 0);
        let end = keys::history_key(log, key, size.saturating_add(1));
        let mut out = Vec::new();
        let mut skip = offset;
        if limit == 0 {
            return Ok(out);
        }
        self.kv.scan(
            Table::History,
            &start,
            Some(&end),
            false,
            &mut |row, value| {
                if row.len() != prefix.len() + 8 {
                    return Err(corrupt("history key of the wrong length"));
                }
                if skip > 0 {
                    skip -= 1;
                    return Ok(true);
                }
                out.push((
                    keys::history_number(row)?,
                    keys::read_hash(value, "history")?,
                ));
                Ok((out.len() as u64) < limit)
            },
        )?;
        Ok(out)
    }

    /// The bytes of a hash tile or entry bundle of `log` as it stands at
    /// this snapshot: `None` if the tree does not (yet) hold `path.width()`
    /// hashes or entries there. A partial tile narrower than what the tree
    /// now holds is served as the prefix it is.
    pub fn tile(&self, log: Log, path: &TilePath) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(available) = TilePath::in_tree(path.kind(), path.index(), self.size(log)) else {
            return Ok(None);
        };
        if path.width() > available.width() {
            return Ok(None);
        }
        match path.kind() {
            TileKind::Hashes { .. } => read_tile(&self.hashes(log), path).map(Some),
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
        }
    }
}
