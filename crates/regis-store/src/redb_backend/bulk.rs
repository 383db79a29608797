//! A bulk transaction of the main database: its writes held back, sorted,
//! and applied to redb's B-trees by a thread of their own while the
//! transaction goes on.
//!
//! An insert costs redb about 2 µs whatever the order of the rows (each
//! descends the tree from its root), and a load writes two rows an entry:
//! applied by the writing thread, they were half of a load's time. Here
//! the writing thread gathers a batch of writes ([`HeldWrites`]), hands it
//! to the applier thread when it is full, and gathers the next one
//! meanwhile. At most one batch is being applied: a full batch waits for
//! the one before, which bounds the memory to two batches.
//!
//! A read must see the transaction's own writes. A key is looked up in
//!  1. the batch being gathered, then the batch being applied;
//!  2. if the transaction may have written it before ([`WrittenKeys`], a
//!     Bloom filter of every key handed to the applier): the transaction's
//!     tables. The applier, between two rows, lets the reader in (the key
//!     is in no batch in hand, so the rows applied meanwhile do not change
//!     its value);
//!  3. else the database as it was when the transaction began: a read
//!     transaction begun before it (redb's MVCC lets it run beside the
//!     write), where the key has the value it has in the transaction's
//!     tables, as the transaction never wrote it.
//!
//! A load of new keys and items reads its own tables only for the
//! filter's false positives (about 0.1%). A load that updates many keys
//! written long before reads them often: once a batch's apply has let in
//! a reader per [`ROWS_PER_INTERRUPTION`] of its rows, the next read waits
//! for the apply to end, and reads go straight to the tables until the
//! next batch is handed over (the writes then run as if there were no
//! applier).

use std::cell::Cell;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{Scope, ScopedJoinHandle};

use redb::ReadableTable;

use super::{Bytes, Layer, backend_error};
use crate::StoreError;
use crate::bloom::{self, Bloom};
use crate::held_writes::{Held, HeldWrites};
use crate::kv::{KvWriter, Table};

/// A batch's apply lets in one reader per this many of its rows (and
/// [`INTERRUPTIONS`] more) before the next read waits for it to end: a
/// reader let in costs two thread wake-ups, tens of rows' time.
const ROWS_PER_INTERRUPTION: usize = 256;
const INTERRUPTIONS: usize = 64;

/// Bytes of Bloom filter [`WrittenKeys`] allocates at most; past it the
/// largest filter takes more keys than it was sized for, and answers
/// "maybe" more often (more reads of the transaction's tables), never
/// wrongly.
const WRITTEN_FILTER_BYTES: u64 = 32 << 20;

/// The main database's tables in a bulk transaction, indexed by [`Table`]
/// position, shared by the writing thread and the applier.
pub(super) struct Tables<'t> {
    open: Mutex<Vec<redb::Table<'t, Bytes, Bytes>>>,
    /// Set while the writing thread waits to read `open`: the applier lets
    /// go of it before its next row.
    wanted: AtomicBool,
    /// Signalled when the writing thread has read `open` and unset
    /// `wanted`.
    released: Condvar,
}

impl<'t> Tables<'t> {
    pub(super) fn new(open: Vec<redb::Table<'t, Bytes, Bytes>>) -> Self {
        Tables {
            open: Mutex::new(open),
            wanted: AtomicBool::new(false),
            released: Condvar::new(),
        }
    }

    /// Locks the tables. A panic while they were locked aborts the
    /// transaction (its error reaches the writing thread, which drops the
    /// transaction uncommitted), so what it left does not matter.
    fn lock(&self) -> MutexGuard<'_, Vec<redb::Table<'t, Bytes, Bytes>>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies `batch` in key order, adding each key to `written`, and
    /// letting a waiting reader in between rows.
    fn apply(&self, batch: &HeldWrites, written: &WrittenKeys) -> Result<(), StoreError> {
        let target = written.newest();
        let hasher = batch.hasher();
        let mut open = Some(self.lock());
        batch.for_each_sorted(|table, held| {
            if self.wanted.load(Ordering::Acquire)
                && let Some(guard) = open.take()
            {
                open = Some(
                    self.released
                        .wait_while(guard, |_| self.wanted.load(Ordering::Acquire))
                        .unwrap_or_else(PoisonError::into_inner),
                );
            }
            if let Some(target) = target {
                // The applier is the one thread that adds to the filters.
                target.insert_by_sole_writer(&fingerprint(table, hasher.hash_one(held.key)));
            }
            let open = open
                .as_deref_mut()
                .ok_or_else(|| StoreError::Corrupt("the bulk writes' tables were let go".into()))?;
            apply_row(open, table, held)
        })
    }

    /// Reads `key` from the tables: between two rows of the apply running,
    /// if any, when `interrupt`; else once it has ended.
    fn get(
        &self,
        table: Table,
        key: &[u8],
        interrupt: bool,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        if interrupt {
            self.wanted.store(true, Ordering::Release);
        }
        let open = self.lock();
        let value = table_of(&open, table).and_then(|open| {
            let value = open.get(key).map_err(backend_error)?;
            Ok(value.map(|guard| guard.value().to_vec()))
        });
        if interrupt {
            // Unset under the lock, where the applier checks it: it cannot
            // miss the signal below and wait for ever.
            self.wanted.store(false, Ordering::Release);
            drop(open);
            self.released.notify_all();
        }
        value
    }
}

fn table_of<'o, 't>(
    open: &'o [redb::Table<'t, Bytes, Bytes>],
    table: Table,
) -> Result<&'o redb::Table<'t, Bytes, Bytes>, StoreError> {
    open.get(table.position())
        .ok_or_else(|| StoreError::Corrupt(format!("table {} not open", table.name())))
}

fn apply_row(
    open: &mut [redb::Table<'_, Bytes, Bytes>],
    table: Table,
    held: Held<'_>,
) -> Result<(), StoreError> {
    let open = open
        .get_mut(table.position())
        .ok_or_else(|| StoreError::Corrupt(format!("table {} not open", table.name())))?;
    match held.value {
        Some(value) => open.insert(held.key, value).map(drop),
        None => open.remove(held.key).map(drop),
    }
    .map_err(backend_error)
}

/// The keys a transaction has handed to the applier: Bloom filters at 16
/// bits a key, the first for a million keys (2 MiB), each later one for
/// three times the keys of those before it, so that a load of any size
/// probes few of them (within [`WRITTEN_FILTER_BYTES`]).
#[derive(Default)]
struct WrittenKeys {
    filters: Vec<Arc<Bloom>>,
}

/// The fingerprint of `key` of `table`, whose hash is `hash`.
fn fingerprint(table: Table, hash: u64) -> bloom::Fingerprint {
    bloom::fingerprint_of(hash ^ u64::from(table.id()).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

impl WrittenKeys {
    /// Makes room in the newest filter for `keys` more (called while no
    /// apply runs: the applier adds to the newest filter).
    fn reserve(&mut self, keys: usize) {
        let keys = keys as u64;
        let room = self
            .filters
            .last()
            .is_some_and(|newest| newest.added() + keys <= newest.capacity());
        if room {
            return;
        }
        let held: u64 = self.filters.iter().map(|filter| filter.capacity()).sum();
        let bytes: u64 = self.filters.iter().map(|filter| filter.bytes()).sum();
        let next = Bloom::for_items(keys.max(held.saturating_mul(3)).max(1 << 20));
        if self.filters.is_empty() || bytes + next.bytes() <= WRITTEN_FILTER_BYTES {
            self.filters.push(Arc::new(next));
        }
    }

    fn newest(&self) -> Option<&Arc<Bloom>> {
        self.filters.last()
    }

    /// Whether the transaction may have handed `key` of `table`, whose
    /// hash is `hash`, to the applier.
    fn may_contain(&self, table: Table, hash: u64) -> bool {
        let fingerprint = fingerprint(table, hash);
        self.filters
            .iter()
            .any(|filter| filter.may_contain(&fingerprint))
    }
}

/// How the writes of a bulk transaction reach its tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Applier {
    /// On a thread of their own, a batch at a time.
    Thread,
    /// By the writing thread, when a batch is full: slower, but every
    /// write happens in one order (for crash tests).
    Inline,
}

/// A batch handed to the applier thread.
struct Applying<'scope> {
    batch: Arc<HeldWrites>,
    thread: ScopedJoinHandle<'scope, Result<(), StoreError>>,
    /// Readers it may still let in.
    interruptions: Cell<usize>,
}

/// The writes of a bulk transaction ([`KvWriter`]), as the module says.
pub(super) struct BulkWriter<'scope, 'env: 'scope, 't> {
    scope: &'scope Scope<'scope, 'env>,
    tables: &'env Tables<'t>,
    /// The main database as the transaction began.
    base: Layer,
    applier: Applier,
    /// A full batch's size, in [`HeldWrites::bytes`].
    batch_bytes: usize,
    gathering: HeldWrites,
    /// A batch's buffer, emptied, for the next one.
    spare: Option<HeldWrites>,
    applying: Option<Applying<'scope>>,
    written: Arc<WrittenKeys>,
    /// Hashes keys for every batch and for `written`.
    hasher: std::hash::RandomState,
}

impl<'scope, 'env: 'scope, 't: 'env> BulkWriter<'scope, 'env, 't> {
    pub(super) fn new(
        scope: &'scope Scope<'scope, 'env>,
        tables: &'env Tables<'t>,
        base: Layer,
        applier: Applier,
        batch_bytes: usize,
    ) -> Self {
        let hasher = std::hash::RandomState::new();
        BulkWriter {
            scope,
            tables,
            base,
            applier,
            batch_bytes,
            gathering: HeldWrites::with_capacity(batch_bytes, hasher.clone()),
            spare: None,
            applying: None,
            written: Arc::default(),
            hasher,
        }
    }

    fn hold(&mut self, table: Table, key: &[u8], value: Option<&[u8]>) -> Result<(), StoreError> {
        self.gathering.hold(table, key, value).map_err(|_| {
            StoreError::Corrupt(format!(
                "a row of table {} is longer than 4 GiB",
                table.name()
            ))
        })?;
        if self.gathering.bytes() >= self.batch_bytes {
            self.hand_over()?;
        }
        Ok(())
    }

    /// Waits for the batch being applied, if any, and keeps its buffer as
    /// the spare.
    fn wait_for_apply(&mut self) -> Result<(), StoreError> {
        let Some(applying) = self.applying.take() else {
            return Ok(());
        };
        let applied = applying.thread.join().unwrap_or_else(|_| {
            Err(StoreError::backend(std::io::Error::other(
                "the thread applying a bulk transaction's writes panicked",
            )))
        });
        // The thread has ended, and with it its clone of the batch.
        if let Ok(mut batch) = Arc::try_unwrap(applying.batch) {
            batch.clear();
            self.spare = Some(batch);
        }
        applied
    }

    /// Hands the gathered batch to the applier, once the one before is
    /// applied.
    fn hand_over(&mut self) -> Result<(), StoreError> {
        self.wait_for_apply()?;
        let next = self
            .spare
            .take()
            .unwrap_or_else(|| HeldWrites::with_capacity(self.batch_bytes, self.hasher.clone()));
        let batch = std::mem::replace(&mut self.gathering, next);
        // No apply runs: the filters are this thread's alone.
        let Some(written) = Arc::get_mut(&mut self.written) else {
            return Err(StoreError::Corrupt(
                "the bulk writes' key filter is still shared".into(),
            ));
        };
        written.reserve(batch.rows());
        let batch = Arc::new(batch);
        if self.applier == Applier::Thread {
            let (tables, written, theirs) =
                (self.tables, Arc::clone(&self.written), Arc::clone(&batch));
            let spawned = std::thread::Builder::new()
                .name("bulk applier".into())
                .spawn_scoped(self.scope, move || tables.apply(&theirs, &written));
            if let Ok(thread) = spawned {
                let interruptions = batch.rows() / ROWS_PER_INTERRUPTION + INTERRUPTIONS;
                self.applying = Some(Applying {
                    batch,
                    thread,
                    interruptions: Cell::new(interruptions),
                });
                return Ok(());
            }
            // No thread to be had: the batch is applied here.
        }
        self.tables.apply(&batch, &self.written)?;
        if let Ok(mut batch) = Arc::try_unwrap(batch) {
            batch.clear();
            self.spare = Some(batch);
        }
        Ok(())
    }

    /// Applies every write: the transaction's tables then hold them all.
    pub(super) fn finish(mut self) -> Result<(), StoreError> {
        self.wait_for_apply()?;
        self.tables.apply(&self.gathering, &self.written)
    }
}

impl Drop for BulkWriter<'_, '_, '_> {
    /// A transaction that failed waits for its applier, whose result no
    /// longer matters (the transaction is dropped uncommitted), so that
    /// the scope does not find a panicked thread.
    fn drop(&mut self) {
        // A read that panicked may have left the applier waiting for it.
        let open = self.tables.lock();
        self.tables.wanted.store(false, Ordering::Release);
        drop(open);
        self.tables.released.notify_all();
        let _ = self.wait_for_apply();
    }
}

impl KvWriter for BulkWriter<'_, '_, '_> {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let hash = self.hasher.hash_one(key);
        let in_hand = std::iter::once(&self.gathering)
            .chain(self.applying.as_ref().map(|applying| &*applying.batch));
        for batch in in_hand {
            if let Some(held) = batch.get(table, key, hash) {
                return Ok(held.map(<[u8]>::to_vec));
            }
        }
        if self.written.may_contain(table, hash) {
            let interrupt = self.applying.as_ref().is_some_and(|applying| {
                let left = applying.interruptions.get();
                applying.interruptions.set(left.saturating_sub(1));
                left > 0
            });
            return self.tables.get(table, key, interrupt);
        }
        Ok(self.base.get(table, key)?.flatten())
    }

    fn put(&mut self, table: Table, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.hold(table, key, Some(value))
    }

    fn delete(&mut self, table: Table, key: &[u8]) -> Result<(), StoreError> {
        self.hold(table, key, None)
    }
}
