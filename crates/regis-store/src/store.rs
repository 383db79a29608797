//! What the files and keys mean: commits, the open-time check, and every
//! read, written once over [`KvBackend`] and [`Files`] so that both backends
//! share it.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use regis_merkle::tile::{TileKind, TilePath, push_bundle_entry};
use regis_merkle::{
    Edge, Frontier, Hash, HashReader, ProofError, consistency_proof, inclusion_proof, leaf_hash,
    postorder, root_with_run, verify_consistency, verify_inclusion,
};
use regis_model::{Entry, Item, ItemHash};

use crate::field_index::{self, Candidates, Row, Runs};
use crate::files::{self, Appenders, FileId, Files, ReadFiles, StoredEntry};
use crate::health::Health;
use crate::item_filter::{self, ItemFilters, WriteFilters};
use crate::keys::{
    self, FORMAT_VERSION, Head, META_FIELD_RUNS, META_FORMAT, META_HEAD, RecordRow, corrupt,
};
use crate::kv::{KvBackend, KvBatch, KvSnapshot, KvWriter, Table, TxnSize, prefix_end};
use crate::published::Published;
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

/// An entry to append: its number in its log (the entry's type), the entry,
/// and the RFC 6962 hash of its v1 leaf bytes, which whoever builds one has
/// already computed ([`NewEntry::new`] computes it; `regis fsck` re-checks
/// every leaf from the stored entry).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEntry {
    /// Its number: the log's size before it, plus one.
    pub number: u64,
    /// The entry (of one item: the store keeps no other).
    pub entry: Entry,
    /// `leaf_hash(entry.leaf_bytes(number))`.
    pub leaf_hash: Hash,
}

impl NewEntry {
    /// Entry `number` of its log, its leaf hash computed here.
    pub fn new(number: u64, entry: Entry) -> Self {
        let leaf_hash = entry.leaf_hash(number);
        NewEntry {
            number,
            entry,
            leaf_hash,
        }
    }

    /// The log it is appended to.
    pub fn log(&self) -> Log {
        self.entry.entry_type
    }
}

/// An item of a [`Batch`].
#[derive(Clone, Debug)]
enum BatchItem {
    /// Bytes from outside, checked at commit.
    Bytes(Hash, Vec<u8>),
    /// An item and its hash from regis-model, trusted, and new to the
    /// store (`Batch::add_new_model_item`).
    Model(ItemHash, Item),
}

impl BatchItem {
    fn hash(&self) -> &Hash {
        match self {
            BatchItem::Bytes(hash, _) => hash,
            BatchItem::Model(hash, _) => hash.as_bytes(),
        }
    }
}

/// Everything one commit appends: items, entries, and optionally the
/// checkpoints of the trees as they stand after it.
#[derive(Clone, Debug, Default)]
pub struct Batch {
    items: Vec<BatchItem>,
    entries: Vec<NewEntry>,
    checkpoints: Vec<(Log, SignedTree)>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an item: its SHA-256 and canonical JSON, both checked at
    /// commit. Items already stored are not written again.
    pub fn add_item(&mut self, hash: Hash, json: Vec<u8>) {
        self.items.push(BatchItem::Bytes(hash, json));
    }

    /// Adds an item regis-model made, with the hash regis-model computed
    /// for it: canonical and hashing to `hash` by construction, so not
    /// checked again; and not stored yet, so not looked up again (the
    /// sequencer's batches, staged against the store as it stands by its
    /// only writer).
    pub(crate) fn add_new_model_item(&mut self, hash: ItemHash, item: Item) {
        self.items.push(BatchItem::Model(hash, item));
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
    files: Files,
    items: Arc<ItemFilters>,
    /// Shared by every clone and snapshot: the first corrupt read marks it.
    health: Arc<Health>,
}

impl<B> Clone for Store<B> {
    fn clone(&self) -> Self {
        Store {
            kv: Arc::clone(&self.kv),
            files: self.files.clone(),
            items: Arc::clone(&self.items),
            health: Arc::clone(&self.health),
        }
    }
}

impl<B> Store<B> {
    /// The register's health: what the first read that found corruption
    /// found (every read checks what it serves; [`Snapshot`]).
    pub fn health(&self) -> &Health {
        &self.health
    }
}

/// The write side of a register: the only thing that commits. It keeps the
/// right edge of each tree (64 hashes at most), the record count, the data
/// file's committed length and the field index's runs.
#[derive(Debug)]
pub struct Writer<B> {
    /// The store it writes (the same as its readers').
    store: Store<B>,
    user: Frontier,
    system: Frontier,
    records: u64,
    data: u64,
    runs: Runs,
    /// Files appended to since they were last synced (a bit set of
    /// slots), the bytes appended, and the `file_tails` rows that log them.
    unsynced: Unsynced,
    /// Up to how many appended bytes are logged instead of synced.
    tail_bytes: u64,
    /// Whether it committed since it last settled.
    unsettled: bool,
    /// Why it takes no commits: a write failed, so what the files and the
    /// database hold past the last durable commit is unknown until
    /// [`Writer::recover`] reopens the store.
    failed: Option<String>,
    /// The newest checkpoints published (`published`).
    published: Published,
}

/// What small commits appended to the files without syncing them, logged
/// in `file_tails` instead (`spec/store.md`, "Commits").
#[derive(Clone, Debug, Default)]
struct Unsynced {
    files: u8,
    bytes: u64,
    rows: Vec<[u8; 9]>,
}

/// The state of the last durable commit, as opening finds it.
struct Durable {
    head: Head,
    runs: Runs,
    user: Frontier,
    system: Frontier,
    /// The logged appends written back, whose rows are still to delete.
    unsynced: Unsynced,
    published: Published,
}

/// Appends up to this many bytes (over all commits since the last sync) are
/// logged in the database instead of syncing the files, by default.
pub const TAIL_BYTES: u64 = 1 << 20;

fn tail_key(slot: u8, offset: u64) -> [u8; 9] {
    let mut key = [0; 9];
    key[0] = slot;
    key[1..].copy_from_slice(&offset.to_be_bytes());
    key
}

impl<B: KvBackend> Store<B> {
    /// Opens a register's database and files, initialising empty ones.
    /// Cuts the files back to the lengths of the last commit (a transaction
    /// that never committed may have written past them), and refuses (with
    /// [`StoreError::Corrupt`]) a store whose files are shorter than that or
    /// whose tree does not match its last signed checkpoint; the check reads
    /// `O(log n)` hashes and replays nothing.
    pub fn open(kv: B, files: Files) -> Result<(Store<B>, Writer<B>), StoreError> {
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
                batch.put(
                    Table::Meta,
                    META_FIELD_RUNS.to_vec(),
                    Runs::default().encode(),
                );
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
        let store = Store {
            kv: Arc::new(kv),
            files,
            items: Arc::default(),
            health: Arc::default(),
        };
        let mut durable = store.durable()?;
        if !durable.unsynced.rows.is_empty() {
            // The files are synced: the log of their tails can go.
            let mut batch = KvBatch::new();
            for key in &durable.unsynced.rows {
                batch.delete(Table::FileTails, key.to_vec());
            }
            store.kv.commit(batch)?;
            durable.unsynced = Unsynced::default();
        }
        let writer = Writer {
            store: store.clone(),
            user: durable.user,
            system: durable.system,
            records: durable.head.records,
            data: durable.head.data,
            runs: durable.runs,
            unsynced: durable.unsynced,
            tail_bytes: TAIL_BYTES,
            unsettled: false,
            failed: None,
            published: durable.published,
        };
        Ok((store, writer))
    }

    /// Brings the files to what the database says is durable (writing
    /// back logged appends, cutting off what no commit names) and checks
    /// each tree against its last signed checkpoint: what opening does, and
    /// recovering from a failed write.
    fn durable(&self) -> Result<Durable, StoreError> {
        let store = self;
        let snapshot = store.snapshot()?;
        let mut tails = Vec::new();
        snapshot
            .kv
            .scan(Table::FileTails, &[], None, false, &mut |key, bytes| {
                let (&slot, offset) = key
                    .split_first()
                    .ok_or_else(|| corrupt("an empty file tail key"))?;
                tails.push((
                    slot,
                    keys::read_u64(offset, "file tail key")?,
                    bytes.to_vec(),
                ));
                Ok(true)
            })?;
        store.files.replay_tails(&tails)?;
        // The files are synced; the rows that logged their tails go (on
        // open, at once; after a failure, with the next commit that syncs,
        // so that reopening needs no free space).
        let unsynced = Unsynced {
            files: 0,
            bytes: tails.iter().map(|(_, _, bytes)| bytes.len() as u64).sum(),
            rows: tails
                .iter()
                .map(|(slot, offset, _)| tail_key(*slot, *offset))
                .collect(),
        };
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
        // The trees must reach what was published, whatever the database
        // says: a store that lost acknowledged entries is not served (nor
        // signed over), and is refused before its files are cut.
        let published = Published::read(store.files.published())?.unwrap_or_default();
        for (log, frontier) in [Log::User, Log::System].into_iter().zip(&frontiers) {
            let (size, root) = published.tree(log);
            if size > frontier.size() {
                return Err(corrupt(format!(
                    "the {log} checkpoint of size {size} was published, but the store holds \
                     {} entries: acknowledged entries are missing",
                    frontier.size()
                )));
            }
            if size > 0 && Frontier::from_reader(&snapshot.hashes(log), size)?.root() != root {
                return Err(corrupt(format!(
                    "the stored {log} tree at size {size} does not match the checkpoint \
                     published at that size"
                )));
            }
        }
        store.files.recover(&snapshot.head, &snapshot.runs)?;
        let [user, system] = frontiers;
        Ok(Durable {
            head: snapshot.head,
            runs: snapshot.runs.clone(),
            user,
            system,
            unsynced,
            published,
        })
    }

    /// Builds the item filter (`item_filter`), or a larger one once the
    /// register has outgrown it; does nothing if one fits or is being
    /// built, or after [`Store::stop_item_filter`]. A register of up to
    /// `inline_up_to` entries is scanned here (the sequencer passes
    /// [`INLINE_FILTER_ENTRIES`], so that a document loaded next into a new
    /// register has the filter); a larger one on a thread of its own,
    /// which is returned: it holds the store open, so whoever starts it
    /// stops it and joins it before the store is closed. For registers that
    /// take writes: until the filter is built, and if building fails,
    /// lookups answer as they would without it.
    pub fn start_item_filter(&self, inline_up_to: u64) -> Option<std::thread::JoinHandle<()>> {
        if !self.items.wants_build() {
            return None;
        }
        let snapshot = self.snapshot().ok()?;
        let entries = snapshot.head.user.saturating_add(snapshot.head.system);
        drop(snapshot);
        let build = self.items.begin_build(entries)?;
        if entries <= inline_up_to {
            fill_item_filter(&*self.kv, build);
            return None;
        }
        let kv = Arc::clone(&self.kv);
        // If the thread cannot start, `build` is dropped with the closure:
        // abandoned, so a later call tries again.
        std::thread::Builder::new()
            .name("item filter".into())
            .spawn(move || fill_item_filter(&*kv, build))
            .ok()
    }

    /// Stops item-filter builds: the one running ends its scan without
    /// publishing, and no other starts.
    pub fn stop_item_filter(&self) {
        self.items.stop();
    }

    /// Whether the item filter is built: from then on, looking up an item
    /// that is not stored rarely reads the database.
    pub fn item_filter_built(&self) -> bool {
        self.items.is_published()
    }

    /// A consistent view of the store as of the last commit.
    pub fn snapshot(&self) -> Result<Snapshot<B::Snapshot>, StoreError> {
        // Hold both field-index files before reading which one is current,
        // so that no merge starts into it meanwhile (`field_index`).
        let [first, second] = self.files.users().both();
        let kv = self.kv.snapshot()?;
        let checkpoints = [
            kv.get(Table::Meta, keys::meta_checkpoint(Log::User))?,
            kv.get(Table::Meta, keys::meta_checkpoint(Log::System))?,
        ];
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
            head,
            runs,
            _runs_user: runs_user,
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

    /// Sets up to how many bytes appended to the files (over the commits
    /// since they were last synced) are logged in the database instead of
    /// syncing the files ([`TAIL_BYTES`] by default; 0 syncs them at every
    /// commit). Logging saves a small commit up to seven syncs; the log is
    /// written back on open after a crash.
    pub fn log_appends_up_to(&mut self, bytes: u64) {
        self.tail_bytes = bytes;
    }

    /// Makes the store quick to open after a crash, if it committed since
    /// it last did ([`KvBackend::settle`]): for when the writer is idle.
    pub fn settle(&mut self) -> Result<(), StoreError> {
        if self.unsettled {
            self.store.kv.settle()?;
            self.unsettled = false;
        }
        Ok(())
    }

    /// Commits `batch` atomically and durably, or nothing of it. Returns the
    /// trees as they stand after it.
    pub fn commit(&mut self, batch: &Batch) -> Result<[TreeHead; 2], StoreError> {
        // Each item goes in just before the first entry that names it, so
        // that the entry finds it as the transaction's most recent item
        // (`Txn::recent_item`) instead of looking it up and parsing it.
        let first_position: HashMap<&Hash, usize> = batch
            .items
            .iter()
            .enumerate()
            .rev()
            .map(|(position, item)| (item.hash(), position))
            .collect();
        self.transact_sized(TxnSize::Batch, |txn| {
            let mut added = 0;
            let mut add_items_to = |txn: &mut Txn<'_>, end: usize| {
                for item in batch.items.get(added..end).unwrap_or_default() {
                    match item {
                        BatchItem::Bytes(hash, json) => txn.add_item(hash, json)?,
                        BatchItem::Model(hash, item) => txn.add_new_canonical_item(
                            hash.as_bytes(),
                            item.as_str().as_bytes(),
                            None,
                        )?,
                    };
                }
                added = added.max(end);
                Ok::<_, StoreError>(())
            };
            for entry in &batch.entries {
                let named = entry.entry.item_hashes.first().map(|hash| &hash.0);
                if let Some(&position) = named.and_then(|hash| first_position.get(hash)) {
                    add_items_to(txn, position + 1)?;
                }
                txn.add_entry(entry)?;
            }
            add_items_to(txn, batch.items.len())?;
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
    /// The transaction appends to the files as it goes (a bounded buffer
    /// per file), syncs them when `work` is done, and only then commits the
    /// key-value transaction that names their new lengths. So `work` may
    /// append any number of entries (a bulk load) in bounded memory, and a
    /// crash at any instant leaves the last commit's lengths, beyond which
    /// nothing is read (`spec/store.md`, "Commits").
    pub fn transact<T, E: From<StoreError>>(
        &mut self,
        work: impl FnOnce(&mut Txn<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        self.transact_sized(TxnSize::Bulk, work)
    }

    /// [`Writer::transact`], telling the database how much `work` writes
    /// ([`TxnSize`]): a [`Writer::commit`] is a bounded batch.
    fn transact_sized<T, E: From<StoreError>>(
        &mut self,
        size: TxnSize,
        work: impl FnOnce(&mut Txn<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let before = Head {
            user: self.user.size(),
            system: self.system.size(),
            records: self.records,
            data: self.data,
        };
        let mut after = None;
        if let Some(why) = self.failed() {
            return Err(E::from(StoreError::Io(std::io::Error::other(format!(
                "writes are stopped until the store is reopened: {why}"
            )))));
        }
        let files = &self.store.files;
        // Dropped once the transaction has committed or failed (`item_filter`).
        let item_filters = self.store.items.begin_write();
        let (user, system, runs, unsynced, tail_bytes) = (
            &self.user,
            &self.system,
            &self.runs,
            &self.unsynced,
            self.tail_bytes,
        );
        // Whether the disk failed under the transaction (whatever `work`
        // made of the error), and whether the transaction failed for its
        // own reasons (a refused document) with the disk sound. Any other
        // failure is the database's (a commit, a merge).
        let mut disk_failed = false;
        let mut refused = false;
        let done = self.store.kv.transact(size, |kv| -> Result<T, E> {
            let mut watched = Watched { kv, failed: false };
            let mut txn = Txn {
                kv: &mut watched,
                files: files.appenders(&before, runs)?,
                runs: runs.clone(),
                field_rows: Vec::new(),
                recent_item: None,
                item_filters: &item_filters,
                user: user.clone(),
                system: system.clone(),
                records: before.records,
            };
            let result = Txn::finish(&mut txn, work, files, unsynced, tail_bytes, runs);
            disk_failed = txn.files.failed();
            drop(txn);
            disk_failed |= watched.failed;
            refused = result.is_err() && !disk_failed;
            let (done, state) = result?;
            after = Some(state);
            Ok(done)
        });
        drop(item_filters);
        if done.is_err() && !refused {
            self.failed = Some(if disk_failed {
                "a write to the disk failed".to_owned()
            } else {
                "the database failed".to_owned()
            });
        }
        let done = done?;
        // Only a durable commit moves the writer's state.
        if let Some((user, system, head, runs, unsynced)) = after {
            self.user = user;
            self.system = system;
            self.records = head.records;
            self.data = head.data;
            self.runs = runs;
            self.unsynced = unsynced;
            self.unsettled = true;
        }
        Ok(done)
    }

    /// Records durably that `checkpoints` (user, system), committed, are
    /// being handed out, before they are: a checkpoint that does not
    /// extend the last one published is refused, so the log never hands
    /// out two checkpoints of one size with different roots, and a store
    /// that lost published entries is refused on open.
    pub fn publish(&mut self, checkpoints: [&SignedTree; 2]) -> Result<(), StoreError> {
        if let Some(why) = self.failed() {
            return Err(StoreError::Io(std::io::Error::other(format!(
                "writes are stopped until the store is reopened: {why}"
            ))));
        }
        let written = self
            .published
            .next(checkpoints)
            .and_then(|next| match next {
                Some(next) => next
                    .write(self.store.files.published())
                    .map(|()| Some(next)),
                None => Ok(None),
            });
        match written {
            Ok(next) => {
                self.published = next.unwrap_or(self.published);
                Ok(())
            }
            // A fork refused, or a write whose outcome is unknown: no more
            // commits until the store is reopened (and checked) again.
            Err(error) => {
                self.failed = Some(format!("publishing checkpoints failed: {error}"));
                Err(error)
            }
        }
    }

    /// Why the writer takes no commits, if it does not: a write failed and
    /// [`Writer::recover`] has not yet reopened the store.
    pub fn failed(&self) -> Option<String> {
        self.failed
            .clone()
            .or_else(|| self.store.kv.failure().map(|error| error.to_string()))
    }

    /// Reopens the store after a failed write (the "fsyncgate" rule: a
    /// failed write or sync leaves the files' unsynced state unknown, so
    /// nothing is retried as if it were safe): the database is reopened
    /// from what is durable, the logged appends are written back and
    /// synced, the files are cut to their committed lengths, and the
    /// trees are checked against their checkpoints, as on open. The
    /// writer then stands at the last durable commit, which may be the
    /// one that reported the failure.
    pub fn recover(&mut self) -> Result<[TreeHead; 2], StoreError> {
        self.store.kv.recover()?;
        let durable = self.store.durable()?;
        self.user = durable.user;
        self.system = durable.system;
        self.records = durable.head.records;
        self.data = durable.head.data;
        self.runs = durable.runs;
        self.unsynced = durable.unsynced;
        self.published = durable.published;
        self.failed = None;
        Ok([self.head(Log::User), self.head(Log::System)])
    }
}

/// The state a transaction leaves: trees, head, runs, and what it logged
/// instead of syncing.
type After = (Frontier, Frontier, Head, Runs, Unsynced);

/// A transaction's key-value writer, noting whether the disk failed under
/// it (the error itself goes to the caller).
struct Watched<'a> {
    kv: &'a mut dyn KvWriter,
    failed: bool,
}

impl Watched<'_> {
    fn note<T>(&mut self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        self.failed |= matches!(&result, Err(error) if error.is_io());
        result
    }
}

impl KvWriter for Watched<'_> {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        // A failed read leaves redb refusing everything: the commit that
        // follows fails and is noted.
        self.kv.get(table, key)
    }

    fn put(&mut self, table: Table, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let result = self.kv.put(table, key, value);
        self.note(result)
    }

    fn delete(&mut self, table: Table, key: &[u8]) -> Result<(), StoreError> {
        let result = self.kv.delete(table, key);
        self.note(result)
    }
}

impl Txn<'_> {
    /// Runs `work`, then ends the transaction: the field index's rows,
    /// the files synced or their appends logged, and the new `head`.
    fn finish<T, E: From<StoreError>>(
        txn: &mut Txn<'_>,
        work: impl FnOnce(&mut Txn<'_>) -> Result<T, E>,
        files: &Files,
        unsynced: &Unsynced,
        tail_bytes: u64,
        runs: &Runs,
    ) -> Result<(T, After), E> {
        let done = work(txn)?;
        txn.finish_field_index(|slot| files.users().in_use(slot))?;
        {
            let touched = txn.files.touched();
            let appended = txn.files.appended();
            let unsynced = if !txn.files.restarted() && unsynced.bytes + appended <= tail_bytes {
                // A small commit: its appends are logged in the database,
                // which syncs anyway, instead of syncing up to seven files.
                txn.files.flush_all()?;
                let mut logged = unsynced.clone();
                for (slot, offset, bytes) in txn.files.tails()? {
                    let key = tail_key(slot, offset);
                    txn.kv.put(Table::FileTails, &key, &bytes)?;
                    logged.rows.push(key);
                }
                logged.files |= touched;
                logged.bytes += appended;
                logged
            } else {
                txn.files.sync(unsynced.files | touched)?;
                for key in &unsynced.rows {
                    txn.kv.delete(Table::FileTails, key)?;
                }
                Unsynced::default()
            };
            let head = Head {
                user: txn.user.size(),
                system: txn.system.size(),
                records: txn.records,
                data: txn.files.data_len(),
            };
            txn.kv.put(Table::Meta, META_HEAD, &head.encode())?;
            if txn.runs != *runs {
                txn.kv
                    .put(Table::Meta, META_FIELD_RUNS, &txn.runs.encode())?;
            }
            let after = (
                txn.user.clone(),
                txn.system.clone(),
                head,
                txn.runs.clone(),
                unsynced,
            );
            Ok((done, after))
        }
    }
}

/// One write transaction of a [`Writer`]: appends entries and items and
/// keeps every index, reading its own writes. Nothing of it is visible to
/// readers until [`Writer::transact`] commits it, and then all of it is.
pub struct Txn<'w> {
    kv: &'w mut dyn KvWriter,
    files: Appenders<'w>,
    runs: Runs,
    /// Field-index rows added, written at the end (`field_index`).
    field_rows: Vec<Row>,
    /// The field-index prefixes of the item added last: in authoring order
    /// its entry comes next, and needs them.
    recent_item: Option<(Hash, Vec<[u8; keys::FIELD_DIGEST]>)>,
    /// The item filters its new items go to, and that answer "not stored"
    /// without a lookup.
    item_filters: &'w WriteFilters<'w>,
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

/// A key's latest entry as a transaction sees it.
struct Latest {
    row: RecordRow,
    ordinal: u64,
    item: Hash,
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
        self.add_canonical_item(hash, json, None)
    }

    /// [`Self::add_item`] for an item known to be canonical JSON that hashes
    /// to `hash` (a regis-model `Item`, which is so by construction), with
    /// its field-index prefixes if they were worked out already.
    pub(crate) fn add_canonical_item(
        &mut self,
        hash: &Hash,
        json: &[u8],
        prefixes: Option<Vec<[u8; keys::FIELD_DIGEST]>>,
    ) -> Result<bool, StoreError> {
        if self.has_item(hash)? {
            return Ok(false);
        }
        self.add_new_canonical_item(hash, json, prefixes)
    }

    /// [`Self::add_canonical_item`] for an item the caller knows is not
    /// stored yet.
    fn add_new_canonical_item(
        &mut self,
        hash: &Hash,
        json: &[u8],
        prefixes: Option<Vec<[u8; keys::FIELD_DIGEST]>>,
    ) -> Result<bool, StoreError> {
        let offset = files::append_item(&mut self.files, json)?;
        self.item_filters.insert(hash);
        self.kv.put(Table::Items, hash, &offset.to_be_bytes())?;
        let prefixes = prefixes.unwrap_or_else(|| field_prefixes(json));
        self.recent_item = Some((*hash, prefixes));
        Ok(true)
    }

    /// Whether the item is stored or added by this transaction.
    pub fn has_item(&self, hash: &Hash) -> Result<bool, StoreError> {
        Ok(self.item_filters.may_contain(hash) && self.kv.get(Table::Items, hash)?.is_some())
    }

    /// An item's JSON, stored or added by this transaction.
    pub fn item(&self, hash: &Hash) -> Result<Option<Vec<u8>>, StoreError> {
        self.kv
            .get(Table::Items, hash)?
            .map(|offset| files::read_item(&self.files, keys::read_u64(&offset, "item offset")?))
            .transpose()
    }

    /// `key`'s latest entry in `log` (number and item hash), counting this
    /// transaction's entries.
    pub fn record(&self, log: Log, key: &str) -> Result<Option<(u64, Hash)>, StoreError> {
        Ok(self
            .latest(log, key)?
            .map(|latest| (latest.row.latest, latest.item)))
    }

    fn latest(&self, log: Log, key: &str) -> Result<Option<Latest>, StoreError> {
        let Some(row) = self.kv.get(Table::Records, &keys::record_key(log, key))? else {
            return Ok(None);
        };
        let row = RecordRow::decode(&row)?;
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
        let frontier = match log {
            Log::User => &mut self.user,
            Log::System => &mut self.system,
        };
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
                &self.user.size().to_be_bytes(),
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
    fn finish_field_index(&mut self, in_use: impl Fn(u8) -> bool) -> Result<(), StoreError> {
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
        let json = self
            .item(hash)?
            .ok_or_else(|| corrupt(format!("item sha-256:{} missing", hex(hash))))?;
        Ok(field_prefixes(&json))
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

/// The field-index prefixes of a canonical item (the store checked it when
/// it kept it): one per (field, value) pair, as [`item_fields`] gives them.
pub(crate) fn field_prefixes(json: &[u8]) -> Vec<[u8; keys::FIELD_DIGEST]> {
    let text = std::str::from_utf8(json).unwrap_or_default();
    let mut prefixes = Vec::new();
    for (field, value) in Item::fields_of_canonical(text) {
        for text in value.strings() {
            prefixes.push(keys::field_prefix(&field, text));
        }
    }
    // A list may repeat a value; its index row is one.
    prefixes.sort_unstable();
    prefixes.dedup();
    prefixes
}

/// Up to how many entries a register's item filter is built on the
/// caller's thread ([`Store::start_item_filter`]): a scan of a few
/// milliseconds.
pub const INLINE_FILTER_ENTRIES: u64 = 1 << 16;

/// Fills a build's filter from a scan of the `items` table once the writes
/// begun before it are done, and publishes it, unless the scan fails or
/// builds are stopped meanwhile.
fn fill_item_filter<B: KvBackend>(kv: &B, build: item_filter::Build) {
    build.wait_for_earlier_writes();
    let mut stopped = false;
    let filled = kv.snapshot().and_then(|kv| {
        kv.scan(Table::Items, &[], None, false, &mut |key, _| {
            build.filter.insert(&keys::read_hash(key, "item key")?);
            stopped = build.stopped();
            Ok(!stopped)
        })
    });
    if filled.is_ok() && !stopped {
        build.publish();
    }
}

/// Lowercase hex, for messages.
fn hex(hash: &Hash) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

/// A consistent read view: everything as of one commit.
///
/// Every read checks what it returns against what it must hash to (spec/
/// store.md, "Reads check what they serve"): an item against its hash, an
/// entry against its stored leaf hash, a record's entry against its key, a
/// hash tile and a proof against the last signed checkpoint. A failed check
/// is [`StoreError::Corrupt`], naming the object, and marks the register's
/// [`Health`].
#[derive(Debug)]
pub struct Snapshot<S> {
    kv: S,
    files: Files,
    items: Arc<ItemFilters>,
    health: Arc<Health>,
    head: Head,
    runs: Runs,
    /// Keeps the field-index file `runs` names from being merged into.
    _runs_user: Arc<()>,
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

/// `result`, having marked `health` if it is [`StoreError::Corrupt`].
fn reported<T>(health: &Health, result: Result<T, StoreError>) -> Result<T, StoreError> {
    if let Err(StoreError::Corrupt(what)) = &result {
        health.report_corrupt(what.clone());
    }
    result
}

/// The stored hashes of one log, as a [`HashReader`]: read from the log's
/// hash file, in post-order (`regis_merkle::postorder`). A hash read here
/// is not checked; [`Snapshot::tile`] and the proofs of [`Snapshot`] check
/// what they serve against the signed root.
#[derive(Debug)]
pub struct LogHashes<'a> {
    files: &'a Files,
    health: &'a Health,
    log: Log,
    /// Stored hashes in the tree of the snapshot's size: none beyond is read.
    count: u64,
}

/// Hashes read in one go when a run of stored hashes lies within this many
/// post-order positions (a level-0 tile spans 511).
const SPAN_HASHES: u64 = 2048;

impl LogHashes<'_> {
    fn position(&self, level: u8, index: u64) -> Result<u64, StoreError> {
        postorder::position(level, index)
            .filter(|position| *position < self.count)
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
        let mut span = vec![0; ((last_at - first_at + 1) * 32) as usize];
        self.files
            .read_at(FileId::Hashes(self.log), first_at * 32, &mut span)?;
        for index in start..=last {
            let at = ((self.position(level, index)? - first_at) * 32) as usize;
            let mut hash = [0; 32];
            hash.copy_from_slice(&span[at..at + 32]);
            out.push(hash);
        }
        Ok(())
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
    fn watch<T>(&self, read: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
        reported(&self.health, read())
    }

    /// The stored hashes of `log`, unchecked (see [`LogHashes`]).
    pub fn hashes(&self, log: Log) -> LogHashes<'_> {
        LogHashes {
            files: &self.files,
            health: &self.health,
            log,
            count: postorder::stored_count(self.size(log)).unwrap_or(u64::MAX),
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
        let checkpoint = match log {
            Log::User => &self.checkpoints[0],
            Log::System => &self.checkpoints[1],
        };
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
        let hashes = self.hashes(log);
        self.watch(|| {
            let edge = Edge::from_reader(&hashes, size)?;
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
            Ok(path)
        })
        .map_err(ProofError::Read)
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
        let hashes = self.hashes(log);
        self.watch(|| {
            let edge = Edge::from_reader(&hashes, new)?;
            let path = consistency_proof(&hashes, &edge, old).map_err(proof_error)?;
            let old_root = Frontier::from_reader(&hashes, old)?.root();
            if verify_consistency(old, new, &path, &old_root, &edge.root()).is_err() {
                return Err(corrupt(format!(
                    "the {log} consistency proof from size {old} to {new}: its stored hashes \
                     do not join the two roots"
                )));
            }
            self.check_head(log, new, &edge.root())?;
            Ok(path)
        })
        .map_err(ProofError::Read)
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
        self.watch(|| Ok(Some(self.read_entry(log, number)?.0)))
    }

    /// Entry `number` of `log` (which the files hold) and its leaf bytes,
    /// checked against its stored leaf hash: one more read of 32 bytes and
    /// one SHA-256 of the leaf.
    fn read_entry(&self, log: Log, number: u64) -> Result<(StoredEntry, Vec<u8>), StoreError> {
        let stored = files::read_entry(&self.files, log, number)?;
        let index = number - 1;
        let leaf = checked_leaf(
            log,
            number,
            &stored,
            &files::read_hash(&self.files, log, 0, index)?,
        )?;
        Ok((stored, leaf))
    }

    /// The leaf bytes of entry `number` (1-based) of `log`.
    pub fn entry(&self, log: Log, number: u64) -> Result<Option<Vec<u8>>, StoreError> {
        if number == 0 || number > self.size(log) {
            return Ok(None);
        }
        self.watch(|| Ok(Some(self.read_entry(log, number)?.1)))
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
        self.watch(|| {
            self.kv
                .get(Table::Items, hash)?
                .map(|offset| {
                    let json =
                        files::read_item(&self.files, keys::read_u64(&offset, "item offset")?)?;
                    checked_item(hash, json)
                })
                .transpose()
        })
    }

    /// Whether the item is stored (without reading it). A new item is
    /// usually known to be so from the item filter, without a lookup.
    pub fn has_item(&self, hash: &Hash) -> Result<bool, StoreError> {
        Ok(self.items.may_contain(hash) && self.kv.get(Table::Items, hash)?.is_some())
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

    /// `key`'s record row as stored: its latest entry (perhaps of a later
    /// commit, on sled) and its first.
    fn record_row(&self, log: Log, key: &str) -> Result<Option<RecordRow>, StoreError> {
        self.kv
            .get(Table::Records, &keys::record_key(log, key))?
            .map(|row| RecordRow::decode(&row))
            .transpose()
    }

    /// The record `key` of `log` (its latest entry at this snapshot).
    pub fn record(&self, log: Log, key: &str) -> Result<Option<Record>, StoreError> {
        self.watch(|| {
            let Some(row) = self.record_row(log, key)? else {
                return Ok(None);
            };
            Ok(self
                .latest_at_most(log, key, row.latest)?
                .map(|(entry_number, stored)| Record {
                    key: key.to_owned(),
                    entry_number,
                    item_hash: stored.item_hash(),
                }))
        })
    }

    /// Walks `key`'s history back from its entry `number` to the latest
    /// entry this snapshot holds: on a backend without snapshots (sled) a
    /// record row may come from a later commit, whose entries the files
    /// already hold. Each entry is checked against its leaf hash and must
    /// be of `key`: a record row that names another key's entry is corrupt.
    fn latest_at_most(
        &self,
        log: Log,
        key: &str,
        mut number: u64,
    ) -> Result<Option<(u64, StoredEntry)>, StoreError> {
        let size = self.size(log);
        loop {
            let stored = self.entry_of(log, key, number)?;
            if number <= size {
                return Ok(Some((number, stored)));
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

    /// Entry `number` of `log`, checked against its leaf hash and to be of
    /// `key`.
    fn entry_of(&self, log: Log, key: &str, number: u64) -> Result<StoredEntry, StoreError> {
        let (stored, _) = self.read_entry(log, number)?;
        if stored.entry.key != key {
            return Err(corrupt(format!(
                "{log} record {key:?}: its row or history names entry {number}, of key {:?}",
                stored.entry.key
            )));
        }
        Ok(stored)
    }

    /// Every item (hash and JSON), in hash order, until `visit` returns
    /// `false`; each checked against its hash.
    pub fn scan_items(
        &self,
        mut visit: impl FnMut(&Hash, &[u8]) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        self.watch(|| {
            self.kv
                .scan(Table::Items, &[], None, false, &mut |key, offset| {
                    let hash = keys::read_hash(key, "item key")?;
                    let json =
                        files::read_item(&self.files, keys::read_u64(offset, "item offset")?)?;
                    visit(&hash, &checked_item(&hash, json)?)
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
                    let Some((entry_number, stored)) = self.latest_at_most(log, key, row.latest)?
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
            let json = self
                .item(hash)?
                .ok_or_else(|| corrupt(format!("item sha-256:{} missing", hex(hash))))?;
            let fields = item_fields(&json)
                .ok_or_else(|| corrupt(format!("item sha-256:{} is malformed", hex(hash))))?;
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
            let Some(row) = self.record_row(log, key)? else {
                return Ok(Vec::new());
            };
            let Some((mut number, mut stored)) = self.latest_at_most(log, key, row.latest)? else {
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
                let before = self.entry_of(log, key, stored.prev)?;
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

/// A proof that could not be made for sizes the caller checked: only a
/// failed read, or corruption.
fn proof_error(error: ProofError<StoreError>) -> StoreError {
    match error {
        ProofError::Read(error) => error,
        other => corrupt(format!("a proof between sizes the tree holds: {other}")),
    }
}

/// The record key of a `records` row (after its log byte).
fn record_key_text(row: &[u8]) -> Result<&str, StoreError> {
    std::str::from_utf8(row.get(1..).unwrap_or_default())
        .map_err(|_| corrupt("record key is not UTF-8"))
}
