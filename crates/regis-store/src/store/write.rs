//! The write path: one transaction's appends to the files, synced or
//! logged in the database, before the database commit that names their
//! lengths (`spec/store.md`, "Commits"); publishing checkpoints.

use regis_merkle::Frontier;
use regis_model::PerLog;

use super::{SignedTree, TreeHead, Txn, Unsynced, Writer, tail_key};
use crate::field_index::Runs;
use crate::files::Files;
use crate::keys::{Head, META_FIELD_RUNS, META_HEAD};
use crate::kv::{KvBackend, KvWriter, Table, TxnSize};
use crate::{Log, StoreError};

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
        &self.trees[log]
    }

    /// Sets up to how many bytes appended to the files (over the commits
    /// since they were last synced) are logged in the database instead of
    /// syncing the files ([`TAIL_BYTES`](super::TAIL_BYTES) by default; 0 syncs them at every
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
    pub(super) fn transact_sized<T, E: From<StoreError>>(
        &mut self,
        size: TxnSize,
        work: impl FnOnce(&mut Txn<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let before = Head {
            user: self.trees.user.size(),
            system: self.trees.system.size(),
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
        let (trees, runs, unsynced, tail_bytes) =
            (&self.trees, &self.runs, &self.unsynced, self.tail_bytes);
        // Whether the disk failed under the transaction (whatever `work`
        // made of the error), and whether the transaction failed for its
        // own reasons (a refused document) with the disk sound. Any other
        // failure is the database's (a commit, a merge).
        let mut disk_failed = false;
        let mut refused = false;
        // No kept snapshot holds the database's pages through the commit
        // (redb reuses a page only once no read holds it).
        self.store.latest.committed();
        let done = self.store.kv.transact(size, |kv| -> Result<T, E> {
            let mut watched = Watched { kv, failed: false };
            let mut txn = Txn {
                kv: &mut watched,
                files: files.appenders(&before, runs)?,
                runs: runs.clone(),
                field_rows: Vec::new(),
                recent_item: None,
                item_filters: &item_filters,
                trees: trees.clone(),
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
        // Committed or not (a failed commit may have left the database
        // refusing reads): the next read takes a new snapshot.
        self.store.latest.committed();
        if done.is_err() && !refused {
            self.failed = Some(if disk_failed {
                "a write to the disk failed".to_owned()
            } else {
                "the database failed".to_owned()
            });
        }
        let done = done?;
        // Only a durable commit moves the writer's state.
        if let Some((trees, head, runs, unsynced)) = after {
            self.trees = trees;
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
    pub fn publish(&mut self, checkpoints: PerLog<&SignedTree>) -> Result<(), StoreError> {
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
}

/// The state a transaction leaves: trees, head, runs, and what it logged
/// instead of syncing.
type After = (PerLog<Frontier>, Head, Runs, Unsynced);

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
                user: txn.trees.user.size(),
                system: txn.trees.system.size(),
                records: txn.records,
                data: txn.files.data_len(),
            };
            txn.kv.put(Table::Meta, META_HEAD, &head.encode())?;
            if txn.runs != *runs {
                txn.kv
                    .put(Table::Meta, META_FIELD_RUNS, &txn.runs.encode())?;
            }
            let after = (txn.trees.clone(), head, txn.runs.clone(), unsynced);
            Ok((done, after))
        }
    }
}
