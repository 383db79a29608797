//! What the files and keys mean: commits, the open-time check, and every
//! read, written once over [`KvBackend`] and [`Files`] so that both backends
//! share it. The types live here; their work in the modules:
//!
//! - `batch`: [`Batch`], what one [`Writer::commit`] appends;
//! - `open`: opening a store, and reopening it after a failed write
//!   ([`Writer::recover`]): the files brought to the last durable commit
//!   and the trees checked against their checkpoints;
//! - `write`: the write path, [`Writer::transact`]: one transaction's
//!   files synced (or their appends logged) before the database commit
//!   that names their lengths;
//! - `txn`: what a write transaction ([`Txn`]) appends and indexes;
//! - `read`: [`Snapshot`]'s reads of entries, items, records, histories
//!   and the field index;
//! - `tree`: [`Snapshot`]'s reads of the trees: stored hashes
//!   ([`LogHashes`]), roots, checkpoints, proofs and tiles;
//! - `filter`: building the item filter (`crate::item_filter`).

mod batch;
mod filter;
mod open;
mod proof_cache;
mod read;
mod tree;
mod txn;
mod write;

use std::sync::{Arc, Mutex, PoisonError};

use regis_merkle::{Frontier, Hash};
use regis_model::{Entry, PerLog};

use crate::field_index::{Row, Runs};
use crate::files::{Appenders, Files};
use crate::health::Health;
use crate::item_filter::{BuildThread, ItemFilters, WriteFilters};
use crate::keys::{self, Head};
use crate::kv::{KvBackend, KvWriter};
use crate::published::Published;
use crate::{Log, StoreError};
use proof_cache::ProofCache;

pub use batch::Batch;
pub use filter::INLINE_FILTER_ENTRIES;
pub(crate) use read::item_text;
pub(crate) use txn::{canonical_item, field_prefixes, item_fields};

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
        self.entry.log
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

/// A record with its entry, read and checked against the entry's stored
/// leaf hash ([`Snapshot::record_with_leaf`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordEntry {
    /// The record.
    pub record: Record,
    /// Its entry.
    pub entry: Entry,
    /// The entry's leaf bytes.
    pub leaf: Vec<u8>,
}

/// A register's store: cheap to clone, shared by every reader.
pub struct Store<B: KvBackend> {
    kv: Arc<B>,
    files: Files,
    items: Arc<ItemFilters>,
    /// The item-filter build running on its own thread, if any: stopped
    /// and joined when the last clone is dropped.
    item_filter_build: Arc<BuildThread>,
    /// Shared by every clone and snapshot: the first corrupt read marks it.
    health: Arc<Health>,
    /// What checked proofs read, for the next ones.
    proofs: Arc<ProofCache>,
    /// The snapshot of the last commit, for the reads that begin before
    /// the next one.
    latest: Arc<Latest<B::Snapshot>>,
}

impl<B: KvBackend + std::fmt::Debug> std::fmt::Debug for Store<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("kv", &self.kv)
            .field("files", &self.files)
            .field("health", &self.health)
            .field("latest", &self.latest)
            .finish_non_exhaustive()
    }
}

impl<B: KvBackend> Clone for Store<B> {
    fn clone(&self) -> Self {
        Store {
            kv: Arc::clone(&self.kv),
            files: self.files.clone(),
            items: Arc::clone(&self.items),
            item_filter_build: Arc::clone(&self.item_filter_build),
            health: Arc::clone(&self.health),
            proofs: Arc::clone(&self.proofs),
            latest: Arc::clone(&self.latest),
        }
    }
}

/// The snapshot of the last commit, shared by every read that begins
/// before the next commit ([`Store::snapshot`]): a read then begins no
/// database transaction, opens no table and reads no head of its own.
struct Latest<S> {
    /// Commits (and reopenings) so far, and the snapshot made since the
    /// last one, if any was.
    state: Mutex<(u64, Option<Arc<Snapshot<S>>>)>,
}

impl<S> std::fmt::Debug for Latest<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("Latest")
            .field("commits", &state.0)
            .field("kept", &state.1.is_some())
            .finish()
    }
}

impl<S> Default for Latest<S> {
    fn default() -> Self {
        Latest {
            state: Mutex::new((0, None)),
        }
    }
}

impl<S> Latest<S> {
    /// The snapshot made since the last commit, else `make`'s, kept for
    /// the next reads unless a commit came meanwhile.
    fn get_or_make(
        &self,
        make: impl FnOnce() -> Result<Snapshot<S>, StoreError>,
    ) -> Result<Arc<Snapshot<S>>, StoreError> {
        let seen = {
            let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(latest) = &state.1 {
                return Ok(Arc::clone(latest));
            }
            state.0
        };
        // Made outside the lock: it reads the database. It holds every
        // commit counted in `seen` (each is counted once it is durable).
        let made = Arc::new(make()?);
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.0 == seen && state.1.is_none() {
            state.1 = Some(Arc::clone(&made));
        }
        Ok(made)
    }

    /// After a commit, or anything else that changes what a snapshot
    /// reads: the next read makes a new snapshot.
    fn committed(&self) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.0 += 1;
        state.1 = None;
    }
}

impl<B: KvBackend> Store<B> {
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
pub struct Writer<B: KvBackend> {
    /// The store it writes (the same as its readers').
    store: Store<B>,
    trees: PerLog<Frontier>,
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

/// Appends up to this many bytes (over all commits since the last sync) are
/// logged in the database instead of syncing the files, by default.
pub const TAIL_BYTES: u64 = 1 << 20;

fn tail_key(slot: u8, offset: u64) -> [u8; 9] {
    let mut key = [0; 9];
    key[0] = slot;
    key[1..].copy_from_slice(&offset.to_be_bytes());
    key
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
    trees: PerLog<Frontier>,
    records: u64,
}

impl std::fmt::Debug for Txn<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Txn")
            .field("user", &self.trees.user.size())
            .field("system", &self.trees.system.size())
            .field("records", &self.records)
            .finish_non_exhaustive()
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
/// is [`StoreError::Corrupt`](crate::StoreError::Corrupt), naming the
/// object, and marks the register's [`Health`].
#[derive(Debug)]
pub struct Snapshot<S> {
    kv: S,
    files: Files,
    items: Arc<ItemFilters>,
    health: Arc<Health>,
    proofs: Arc<ProofCache>,
    head: Head,
    runs: Runs,
    /// Keeps the field-index file `runs` names from being merged into.
    _runs_user: Arc<()>,
    /// The checkpoint rows (user, system), read before `head`: a
    /// checkpoint is stored after the entries it covers, so on a backend
    /// without snapshots (sled) this order keeps each within `head`.
    checkpoints: PerLog<Option<Vec<u8>>>,
}

/// The stored hashes of one log, as a [`HashReader`](regis_merkle::HashReader): read from the log's
/// hash file, in post-order (`regis_merkle::postorder`). A hash read here
/// is not checked; [`Snapshot::tile`] and the proofs of [`Snapshot`] check
/// what they serve against the signed root.
#[derive(Debug)]
pub struct LogHashes<'a> {
    files: &'a Files,
    health: &'a Health,
    log: Log,
    /// Stored hashes in the tree of the snapshot's size: none beyond is
    /// read. `None` if that size is too large for any tree (corrupt).
    count: Option<u64>,
}
