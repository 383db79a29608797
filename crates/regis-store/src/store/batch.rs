//! Batches: what one [`Writer::commit`] appends, in one transaction.

use std::collections::HashMap;

use regis_merkle::Hash;
use regis_model::{Item, ItemHash, PerLog};

use super::{NewEntry, SignedTree, TreeHead, Txn, Writer};
use crate::kv::{KvBackend, TxnSize};
use crate::{Log, StoreError};

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

impl<B: KvBackend> Writer<B> {
    /// Commits `batch` atomically and durably, or nothing of it. Returns the
    /// trees as they stand after it.
    pub fn commit(&mut self, batch: &Batch) -> Result<PerLog<TreeHead>, StoreError> {
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
                // Those before `end` not added yet: none when an earlier
                // entry's item came later in the batch.
                for item in batch.items.get(added..end).unwrap_or_default() {
                    match item {
                        BatchItem::Bytes(hash, json) => txn.add_item(hash, json)?,
                        BatchItem::Model(hash, item) => {
                            txn.add_new_canonical_item(hash.as_bytes(), item.as_str(), None)?
                        }
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
        Ok(PerLog::from_fn(|log| self.head(log)))
    }
}
