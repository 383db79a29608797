//! A whole register in memory: items, both logs with every tree hash,
//! records and key histories. For tests and small tools; a server keeps the
//! same things in its store.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::io::{self, BufRead, Write};

use regis_merkle::{Frontier, Hash, MemoryHashes};

use crate::digest::ItemHash;
use crate::entry::{Entry, Log, PerLog, leaf_index};
use crate::item::Item;
use crate::rsf::{
    Command, LoadSummary, LoadTarget, Loader, Policy, RsfError, RsfReader, RsfWriter,
    delta_system_entries, write_dump,
};
use crate::schema::Schema;

/// One entry of a log with its number and items: a record (the latest entry
/// of a key) or one step of a key's history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// The entry's number in its log.
    pub number: u64,
    /// The entry.
    pub entry: &'a Entry,
    /// Its items, in the entry's order.
    pub items: Vec<&'a Item>,
}

/// One log: entries, the hashes of its tree, and each key's entries.
#[derive(Clone, Debug, Default)]
struct MemoryLog {
    entries: Vec<Entry>,
    tree: Frontier,
    hashes: MemoryHashes,
    /// Entry numbers of each key, oldest first; the last is the record.
    keys: HashMap<String, Vec<u64>>,
}

impl MemoryLog {
    fn entry(&self, number: u64) -> Option<&Entry> {
        self.entries.get(usize::try_from(leaf_index(number)?).ok()?)
    }
}

/// A register held in memory.
#[derive(Clone, Debug, Default)]
pub struct Register {
    items: HashMap<ItemHash, Item>,
    logs: PerLog<MemoryLog>,
    /// For each system entry, how many user entries existed when it was
    /// appended: where it falls among them (deltas use it).
    system_positions: Vec<u64>,
    schema: Schema,
}

/// A delta that cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum DeltaError {
    /// `a <= b <= size` does not hold.
    #[error("delta {a}/{b} is out of range: the register has {size} user entries")]
    Range {
        /// Start size.
        a: u64,
        /// End size.
        b: u64,
        /// The user log's size.
        size: u64,
    },
    /// The reader holds more system entries than the register has.
    #[error("a reader holding {held} system entries: the register has {size}")]
    SystemRange {
        /// The system entries the reader holds.
        held: u64,
        /// The system log's size.
        size: u64,
    },
    /// Writing failed.
    #[error("writing the delta failed: {0}")]
    Io(#[from] io::Error),
}

impl Register {
    /// An empty register.
    pub fn new() -> Register {
        Register::default()
    }

    /// An empty register whose name is known before any `name` entry (see
    /// [`Schema::named`]).
    pub fn named(name: impl Into<String>) -> Register {
        Register {
            schema: Schema::named(name),
            ..Register::default()
        }
    }

    /// Loads an RSF document, all or nothing.
    pub fn load_rsf<R: BufRead>(
        &mut self,
        input: R,
        policy: Policy,
    ) -> Result<LoadSummary, RsfError> {
        self.transaction(policy, |loader| loader.load(RsfReader::new(input)))
    }

    /// Applies commands (line numbers count from 1), all or nothing.
    pub fn apply(
        &mut self,
        commands: impl IntoIterator<Item = Command>,
        policy: Policy,
    ) -> Result<LoadSummary, RsfError> {
        self.transaction(policy, |mut loader| {
            for (line, command) in (1..).zip(commands) {
                loader.apply(line, command)?;
            }
            loader.finish()
        })
    }

    /// Runs a load on a copy and keeps the copy only if the load succeeds.
    fn transaction(
        &mut self,
        policy: Policy,
        load: impl FnOnce(Loader<'_, Register>) -> Result<LoadSummary, RsfError>,
    ) -> Result<LoadSummary, RsfError> {
        let mut staged = self.clone();
        let trees = staged.logs.as_ref().map(|_, log| log.tree.clone());
        let schema = staged.schema.clone();
        let summary = load(Loader::resume(&mut staged, policy, trees, schema))?;
        staged.schema = summary.schema.clone();
        *self = staged;
        Ok(summary)
    }

    /// The register's definition.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// An item.
    pub fn item(&self, hash: &ItemHash) -> Option<&Item> {
        self.items.get(hash)
    }

    /// How many distinct items the register holds.
    pub fn item_count(&self) -> usize {
        self.items.len()
    }

    /// The entries of a log, entry `n` at index `n - 1`.
    pub fn entries(&self, log: Log) -> &[Entry] {
        &self.log(log).entries
    }

    /// Entry `number` of a log, with its items.
    pub fn entry(&self, log: Log, number: u64) -> Option<Record<'_>> {
        let entry = self.log(log).entry(number)?;
        Some(Record {
            number,
            entry,
            items: self.items_of(entry),
        })
    }

    /// The number of entries of a log.
    pub fn size(&self, log: Log) -> u64 {
        self.log(log).tree.size()
    }

    /// The root of a log's tree.
    pub fn root(&self, log: Log) -> Hash {
        self.log(log).tree.root()
    }

    /// A log's tree (its right edge).
    pub fn tree(&self, log: Log) -> &Frontier {
        &self.log(log).tree
    }

    /// Every stored hash of a log's tree, for proofs.
    pub fn hashes(&self, log: Log) -> &MemoryHashes {
        &self.log(log).hashes
    }

    /// The record of `key`: its latest entry.
    pub fn record(&self, log: Log, key: &str) -> Option<Record<'_>> {
        let number = *self.log(log).keys.get(key)?.last()?;
        self.entry(log, number)
    }

    /// Every record, in the order of their entries.
    pub fn records(&self, log: Log) -> impl Iterator<Item = Record<'_>> {
        let log_entries = self.log(log);
        (1..)
            .zip(&log_entries.entries)
            .filter(|(number, entry)| {
                log_entries
                    .keys
                    .get(&entry.key)
                    .and_then(|numbers| numbers.last())
                    == Some(number)
            })
            .map(|(number, entry)| Record {
                number,
                entry,
                items: self.items_of(entry),
            })
    }

    /// The history of `key`, oldest first.
    pub fn history<'a>(&'a self, log: Log, key: &str) -> impl Iterator<Item = Record<'a>> + 'a {
        let numbers = self
            .log(log)
            .keys
            .get(key)
            .map(Vec::as_slice)
            .unwrap_or_default();
        numbers
            .iter()
            .filter_map(move |&number| self.entry(log, number))
    }

    /// Writes the full dump (GOV.UK's layout; items in the order entries
    /// first use them, system entries' items first). Returns the output.
    pub fn write_dump<W: Write>(&self, out: W) -> io::Result<W> {
        let items = self
            .first_used(&self.logs.system.entries)
            .chain(self.first_used(&self.logs.user.entries));
        write_dump(
            out,
            items,
            &self.logs.system.entries,
            &self.logs.user.entries,
        )
        .map(|(out, _)| out)
    }

    /// Writes the delta `a/b` for a reader holding `held` system entries
    /// (see the [RSF module docs](crate::rsf); `None` is the default).
    pub fn write_delta<W: Write>(
        &self,
        out: W,
        a: u64,
        b: u64,
        held: Option<u64>,
    ) -> Result<W, DeltaError> {
        let size = self.size(Log::User);
        if a > b || b > size {
            return Err(DeltaError::Range { a, b, size });
        }
        let system_size = self.size(Log::System);
        if let Some(held) = held.filter(|&held| held > system_size) {
            return Err(DeltaError::SystemRange {
                held,
                size: system_size,
            });
        }
        let numbers = delta_system_entries(a, b, held, |user_size| {
            let count = self
                .system_positions
                .partition_point(|&position| position <= user_size);
            Ok::<_, Infallible>(count as u64)
        })
        .unwrap_or_else(|never| match never {});
        // Cannot fail: every hash of a tree of `size >= a` leaves is held.
        let start = Frontier::from_reader(&self.logs.user.hashes, a).unwrap_or_default();
        let mut writer = RsfWriter::resume(out, start);
        writer.assert_root_hash()?;
        let mut system = self
            .logs
            .system
            .entries
            .iter()
            .zip(&self.system_positions)
            .skip(usize::try_from(numbers.start - 1).unwrap_or(usize::MAX))
            .take(usize::try_from(numbers.end - numbers.start).unwrap_or(usize::MAX))
            .peekable();
        for number in a + 1..=b {
            while let Some((entry, _)) = system.next_if(|(_, position)| **position < number) {
                self.write_entry(&mut writer, entry)?;
            }
            if let Some(entry) = self.logs.user.entry(number) {
                self.write_entry(&mut writer, entry)?;
            }
        }
        // Those appended at user size `b`.
        for (entry, _) in system {
            self.write_entry(&mut writer, entry)?;
        }
        writer.assert_root_hash()?;
        Ok(writer.into_inner())
    }

    fn write_entry<W: Write>(&self, writer: &mut RsfWriter<W>, entry: &Entry) -> io::Result<()> {
        for item in self.items_of(entry) {
            writer.add_item(item)?;
        }
        writer.append_entry(entry)
    }

    /// The items `entries` use, each once, in the order first used.
    fn first_used<'a>(&'a self, entries: &'a [Entry]) -> impl Iterator<Item = &'a Item> + 'a {
        let mut seen = HashSet::new();
        entries
            .iter()
            .flat_map(|entry| &entry.item_hashes)
            .filter(move |hash| seen.insert(**hash))
            .filter_map(|hash| self.items.get(hash))
    }

    fn items_of(&self, entry: &Entry) -> Vec<&Item> {
        entry
            .item_hashes
            .iter()
            .filter_map(|hash| self.items.get(hash))
            .collect()
    }

    fn log(&self, log: Log) -> &MemoryLog {
        &self.logs[log]
    }
}

impl LoadTarget for Register {
    type Error = Infallible;

    fn contains_item(&self, hash: &ItemHash) -> Result<bool, Infallible> {
        Ok(self.items.contains_key(hash))
    }

    fn item(&self, hash: &ItemHash) -> Result<Option<Item>, Infallible> {
        Ok(self.items.get(hash).cloned())
    }

    fn record_is(&self, log: Log, key: &str, items: &[ItemHash]) -> Result<bool, Infallible> {
        Ok(self
            .record(log, key)
            .is_some_and(|record| record.entry.item_hashes == items))
    }

    fn add_item(&mut self, hash: ItemHash, item: Item) -> Result<bool, Infallible> {
        let new = !self.items.contains_key(&hash);
        if new {
            self.items.insert(hash, item);
        }
        Ok(new)
    }

    fn append_entry(
        &mut self,
        number: u64,
        entry: Entry,
        leaf_hash: Hash,
    ) -> Result<(), Infallible> {
        if entry.log == Log::System {
            self.system_positions.push(self.logs.user.tree.size());
        }
        let log = &mut self.logs[entry.log];
        let MemoryLog {
            entries,
            tree,
            hashes,
            keys,
        } = log;
        // The loader numbers entries and bounds the tree; a full tree cannot
        // be reached in memory.
        let _ = tree.push_hash(leaf_hash, |level, index, hash| {
            hashes.store(level, index, hash)
        });
        keys.entry(entry.key.clone()).or_default().push(number);
        entries.push(entry);
        Ok(())
    }
}
