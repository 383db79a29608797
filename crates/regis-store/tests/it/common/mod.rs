//! Test support shared by the conformance and crash tests: a register built
//! in memory the obvious way, against which a store is compared.

#![allow(dead_code)] // Each test binary uses a different part of this module.

use std::collections::{BTreeMap, BTreeSet};

use regis_merkle::{Frontier, Hash, MemoryHashes, leaf_hash};
use regis_store::{Batch, KvBackend, Log, NewEntry, Record, Snapshot, Store};
use sha2::{Digest, Sha256};

pub fn sha256(bytes: &[u8]) -> Hash {
    Sha256::digest(bytes).into()
}

pub fn hex(hash: &Hash) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

/// v1 leaf bytes, as spec/formats.md gives them (test data only: regis-model owns
/// the real builder).
pub fn leaf(number: u64, key: &str, item: &Hash) -> Vec<u8> {
    format!(
        r#"{{"index-entry-number":"{number}","entry-number":"{number}","entry-timestamp":"2026-11-26T12:00:00Z","key":"{key}","item-hash":["sha-256:{}"]}}"#,
        hex(item)
    )
    .into_bytes()
}

/// The files of a register in `dir`.
pub fn files(dir: &std::path::Path) -> regis_store::Files {
    regis_store::Files::open_dir(dir).unwrap()
}

/// Entry `number` of `log`: `key` taking the item `item`, at the time
/// [`leaf`] states.
pub fn new_entry(log: Log, number: u64, key: &str, item: &Hash) -> NewEntry {
    let timestamp = regis_model::Timestamp::parse("2026-11-26T12:00:00Z").unwrap();
    let entry = regis_model::Entry::new(log, key, timestamp, regis_model::ItemHash(*item));
    NewEntry::new(number, entry)
}

/// A small canonical item: `name` and a cardinality-n `tags`.
pub fn item(name: &str, tags: &[&str]) -> Vec<u8> {
    let tags: Vec<String> = tags.iter().map(|t| format!("\"{t}\"")).collect();
    format!(r#"{{"name":"{name}","tags":[{}]}}"#, tags.join(",")).into_bytes()
}

/// What a register should hold, computed without any store.
#[derive(Clone, Debug, Default)]
pub struct Model {
    pub leaves: [Vec<Vec<u8>>; 2],
    pub items: BTreeMap<Hash, Vec<u8>>,
    /// (log, key) → every (entry number, item hash), oldest first.
    pub history: BTreeMap<(u8, String), Vec<(u64, Hash)>>,
    /// item hash → (field, value) pairs.
    pub fields: BTreeMap<Hash, Vec<(String, String)>>,
    /// For each system entry, the user-log size when it was appended.
    pub positions: Vec<u64>,
}

fn slot(log: Log) -> usize {
    match log {
        Log::User => 0,
        Log::System => 1,
    }
}

impl Model {
    pub fn size(&self, log: Log) -> u64 {
        self.leaves[slot(log)].len() as u64
    }

    /// Adds an entry for `key` whose item has `name` and `tags`, to the
    /// model and to `batch`.
    pub fn append(&mut self, batch: &mut Batch, log: Log, key: &str, name: &str, tags: &[&str]) {
        let json = item(name, tags);
        let hash = sha256(&json);
        let mut pairs = vec![("name".to_owned(), name.to_owned())];
        pairs.extend(tags.iter().map(|t| ("tags".to_owned(), (*t).to_owned())));
        self.fields.insert(hash, pairs);
        self.items.insert(hash, json.clone());
        batch.add_item(hash, json);
        let number = self.size(log) + 1;
        if log == Log::System {
            self.positions.push(self.size(Log::User));
        }
        let bytes = leaf(number, key, &hash);
        self.leaves[slot(log)].push(bytes);
        self.history
            .entry((slot(log) as u8, key.to_owned()))
            .or_default()
            .push((number, hash));
        batch.add_entry(new_entry(log, number, key, &hash));
    }

    pub fn hashes(&self, log: Log) -> MemoryHashes {
        MemoryHashes::from_leaf_hashes(self.leaves[slot(log)].iter().map(|l| leaf_hash(l)))
    }

    pub fn root(&self, log: Log) -> Hash {
        let mut frontier = Frontier::new();
        for leaf in &self.leaves[slot(log)] {
            frontier.push(leaf).unwrap();
        }
        frontier.root()
    }

    /// Every record of `log`, in key order.
    pub fn records(&self, log: Log) -> Vec<Record> {
        self.history
            .iter()
            .filter(|((l, _), _)| usize::from(*l) == slot(log))
            .map(|((_, key), entries)| {
                let (entry_number, item_hash) = *entries.last().unwrap();
                Record {
                    key: key.clone(),
                    entry_number,
                    item_hash,
                }
            })
            .collect()
    }

    /// Records whose item has (field, value), in the order the records
    /// were first added (their first entry's number).
    pub fn records_by_field(&self, field: &str, value: &str) -> Vec<Record> {
        let mut found: Vec<_> = self
            .records(Log::User)
            .into_iter()
            .filter(|r| {
                self.fields[&r.item_hash]
                    .iter()
                    .any(|(f, v)| f == field && v == value)
            })
            .collect();
        found.sort_by_key(|r| self.history[&(slot(Log::User) as u8, r.key.clone())][0].0);
        found
    }

    /// Every (field, value) any item has.
    pub fn field_values(&self) -> BTreeSet<(String, String)> {
        self.fields.values().flatten().cloned().collect()
    }
}

/// A short, complete description of what a snapshot serves, for comparing
/// two stores (or one store before and after a reopen).
pub fn digest<S: regis_store::KvSnapshot>(snapshot: &Snapshot<S>) -> String {
    let mut out = String::new();
    for log in [Log::User, Log::System] {
        let size = snapshot.size(log);
        out += &format!(
            "{log} size {size} root {}\n",
            hex(&snapshot.root(log).unwrap())
        );
        for (number, leaf) in snapshot.entries(log, 1, size).unwrap() {
            out += &format!("{number} {}\n", String::from_utf8(leaf).unwrap());
        }
        for record in snapshot.records(log, 0, u64::MAX).unwrap() {
            out += &format!("{log} record {record:?}\n");
        }
        if let Some(checkpoint) = snapshot.checkpoint(log).unwrap() {
            out += &format!("{log} checkpoint {checkpoint:?}\n");
        }
    }
    for number in 1..=snapshot.size(Log::System) {
        out += &format!(
            "system entry {number} at user size {:?}\n",
            snapshot.system_position(number).unwrap()
        );
    }
    out += &format!("records {}\n", snapshot.record_count());
    out
}

/// Asserts that `store` serves exactly what `model` says, at every API.
pub fn assert_matches<B: KvBackend>(store: &Store<B>, model: &Model) {
    let snapshot = store.snapshot().unwrap();
    for log in [Log::User, Log::System] {
        let size = model.size(log);
        assert_eq!(snapshot.size(log), size, "{log} size");
        assert_eq!(snapshot.root(log).unwrap(), model.root(log), "{log} root");
        let leaves = &model.leaves[slot(log)];
        for (i, leaf) in leaves.iter().enumerate() {
            assert_eq!(
                snapshot.entry(log, i as u64 + 1).unwrap().as_ref(),
                Some(leaf)
            );
        }
        assert_eq!(snapshot.entry(log, 0).unwrap(), None);
        assert_eq!(snapshot.entry(log, size + 1).unwrap(), None);
        if log == Log::System {
            assert_system_positions(&snapshot, model);
        }
        // Pages of entries, including ones running past the end.
        for (start, limit) in [
            (1, 1),
            (1, 100),
            (7, 300),
            (size, 10),
            (size + 1, 5),
            (0, 3),
        ] {
            let page = snapshot.entries(log, start, limit).unwrap();
            let first = start.max(1);
            let expected: Vec<(u64, Vec<u8>)> = (first..first.saturating_add(limit))
                .take_while(|n| *n <= size)
                .map(|n| (n, leaves[n as usize - 1].clone()))
                .collect();
            assert_eq!(page, expected, "{log} entries {start}+{limit}");
        }
        // Stored hashes, served as tiles, equal regis-merkle's.
        let memory = model.hashes(log);
        let hashes = snapshot.hashes(log);
        for level in 0..3u8 {
            for index in 0..=(size >> (8 * level)) / 256 {
                let kind = regis_merkle::tile::TileKind::Hashes { level };
                let expected_tile = regis_merkle::tile::TilePath::in_tree(kind, index, size)
                    .map(|path| (path, regis_merkle::tile::read_tile(&memory, &path).unwrap()));
                match expected_tile {
                    Some((path, bytes)) => {
                        assert_eq!(snapshot.tile(log, &path).unwrap(), Some(bytes), "{path}");
                        // A full-width request for a partial tile is refused.
                        if !path.is_full() {
                            let full =
                                regis_merkle::tile::TilePath::hashes(level, index, 256).unwrap();
                            assert_eq!(snapshot.tile(log, &full).unwrap(), None);
                        }
                    }
                    None => {
                        let path = regis_merkle::tile::TilePath::hashes(level, index, 1).unwrap();
                        assert_eq!(snapshot.tile(log, &path).unwrap(), None, "{path}");
                    }
                }
            }
        }
        // Entry bundles hold the leaves.
        for index in 0..=size / 256 {
            let kind = regis_merkle::tile::TileKind::Entries;
            if let Some(path) = regis_merkle::tile::TilePath::in_tree(kind, index, size) {
                let bundle = snapshot.tile(log, &path).unwrap().unwrap();
                let parsed = regis_merkle::tile::parse_bundle(&bundle).unwrap();
                let range = path.stored_range();
                let expected: Vec<&[u8]> = leaves[range.start as usize..range.end as usize]
                    .iter()
                    .map(Vec::as_slice)
                    .collect();
                assert_eq!(parsed, expected, "{path}");
            }
        }
        // Proofs from stored hashes equal proofs from memory.
        if size > 0 {
            let edge = regis_merkle::Edge::from_reader(&hashes, size).unwrap();
            let memory_edge = regis_merkle::Edge::from_reader(&memory, size).unwrap();
            for index in [0, size / 2, size - 1] {
                assert_eq!(
                    regis_merkle::inclusion_proof(&hashes, &edge, index).unwrap(),
                    regis_merkle::inclusion_proof(&memory, &memory_edge, index).unwrap()
                );
            }
            // The snapshot's own proofs, through the store's proof cache,
            // which outlives snapshots and commits: at this size and at an
            // older one, the same.
            for tree in [size, size / 2 + 1] {
                let memory_edge = regis_merkle::Edge::from_reader(&memory, tree).unwrap();
                for index in (0..tree).step_by(7).chain([tree - 1]) {
                    assert_eq!(
                        snapshot.inclusion_proof(log, index, tree).unwrap(),
                        regis_merkle::inclusion_proof(&memory, &memory_edge, index).unwrap(),
                        "{log} inclusion of {index} at {tree}"
                    );
                }
                for old in (0..=tree).step_by(11) {
                    assert_eq!(
                        snapshot.consistency_proof(log, old, tree).unwrap(),
                        regis_merkle::consistency_proof(&memory, &memory_edge, old).unwrap(),
                        "{log} consistency {old} to {tree}"
                    );
                }
            }
        }
        // Records, pages of records, history.
        let records = model.records(log);
        assert_eq!(snapshot.records(log, 0, u64::MAX).unwrap(), records);
        for (offset, limit) in [(0, 1), (1, 3), (5, 7), (records.len() as u64, 4)] {
            let expected: Vec<Record> = records
                .iter()
                .skip(offset as usize)
                .take(limit as usize)
                .cloned()
                .collect();
            assert_eq!(snapshot.records(log, offset, limit).unwrap(), expected);
        }
        let memory_edge =
            (size > 0).then(|| regis_merkle::Edge::from_reader(&memory, size).unwrap());
        for record in &records {
            assert_eq!(
                snapshot.record(log, &record.key).unwrap().as_ref(),
                Some(record)
            );
            // The record with its entry, and with its proof: the entry the
            // leaf bytes say, the path regis-merkle makes from memory.
            let found = snapshot
                .record_with_leaf(log, &record.key, size)
                .unwrap()
                .unwrap();
            assert_eq!(&found.record, record);
            let leaf = &leaves[record.entry_number as usize - 1];
            assert_eq!(&found.leaf, leaf);
            assert_eq!(
                found.entry,
                regis_model::Entry::parse_leaf(log, leaf).unwrap().1,
                "{log} {}: the entry as read is the leaf's",
                record.key
            );
            let (proved, path) = snapshot
                .record_with_proof(log, &record.key, size)
                .unwrap()
                .unwrap();
            assert_eq!(proved, found);
            assert_eq!(
                path,
                regis_merkle::inclusion_proof(
                    &memory,
                    memory_edge.as_ref().unwrap(),
                    record.entry_number - 1
                )
                .unwrap(),
                "{log} proof of {}",
                record.key
            );
            let history = &model.history[&(slot(log) as u8, record.key.clone())];
            assert_eq!(
                &snapshot.history(log, &record.key, 0, u64::MAX).unwrap(),
                history
            );
            assert_eq!(
                snapshot.history(log, &record.key, 1, 1).unwrap(),
                history.iter().skip(1).take(1).cloned().collect::<Vec<_>>()
            );
        }
        assert_eq!(snapshot.record(log, "no such key").unwrap(), None);
        assert_eq!(
            snapshot
                .record_with_proof(log, "no such key", size)
                .unwrap(),
            None
        );
        assert!(
            snapshot
                .history(log, "no such key", 0, 10)
                .unwrap()
                .is_empty()
        );
    }
    assert_eq!(
        snapshot.record_count(),
        model.records(Log::User).len() as u64
    );
    // Items and the field index.
    for (hash, json) in &model.items {
        assert_eq!(snapshot.item(hash).unwrap().as_ref(), Some(json));
    }
    assert_eq!(snapshot.item(&[0; 32]).unwrap(), None);
    for (field, value) in model.field_values() {
        let expected = model.records_by_field(&field, &value);
        assert_eq!(
            snapshot
                .records_by_field(&field, &value, 0, u64::MAX)
                .unwrap(),
            expected,
            "records with {field} = {value}"
        );
        for (offset, limit) in [(0, 1), (1, 2), (expected.len() as u64, 3)] {
            let page: Vec<Record> = expected
                .iter()
                .skip(offset as usize)
                .take(limit as usize)
                .cloned()
                .collect();
            assert_eq!(
                snapshot
                    .records_by_field(&field, &value, offset, limit)
                    .unwrap(),
                page
            );
        }
    }
    // Keyset pages of records: each page starts after the last key.
    for log in [Log::User, Log::System] {
        let records = model.records(log);
        let mut after: Option<String> = None;
        let mut paged = Vec::new();
        loop {
            let page = snapshot.records_after(log, after.as_deref(), 5).unwrap();
            if page.is_empty() {
                break;
            }
            after = page.last().map(|r| r.key.clone());
            paged.extend(page);
        }
        assert_eq!(paged, records, "{log} records by keyset pages");
    }
    assert!(
        snapshot
            .records_by_field("name", "nobody", 0, 10)
            .unwrap()
            .is_empty()
    );
}

/// The commands of an RSF fixture, with their line numbers.
pub fn rsf_commands(relative: &str) -> Vec<(u64, regis_model::rsf::Command)> {
    let bytes = regis_fixtures::read(relative);
    regis_model::rsf::RsfReader::new(bytes.as_slice())
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{relative}: {e}"))
}

/// The register a document defines with its `name` system entry, else
/// `fallback`.
pub fn document_name(commands: &[(u64, regis_model::rsf::Command)], fallback: &str) -> String {
    use regis_model::rsf::Command;
    let mut items = std::collections::HashMap::new();
    let mut name = None;
    for (_, command) in commands {
        match command {
            Command::AddItem(item) => {
                items.insert(item.hash(), item.clone());
            }
            Command::AppendEntry(entry)
                if entry.log == regis_model::Log::System && entry.key == "name" =>
            {
                let item = &items[&entry.item_hashes[0]];
                name = item.get_one("name").map(|n| n.into_owned());
            }
            _ => {}
        }
    }
    name.unwrap_or_else(|| fallback.to_owned())
}

/// Each system entry's position, and the system entries every delta
/// `from/to` carries, as the model says.
fn assert_system_positions<S: regis_store::KvSnapshot>(snapshot: &Snapshot<S>, model: &Model) {
    for (number, position) in (1..).zip(&model.positions) {
        assert_eq!(snapshot.system_position(number).unwrap(), Some(*position));
    }
    assert_eq!(snapshot.system_position(0).unwrap(), None);
    let past = model.positions.len() as u64 + 1;
    assert_eq!(snapshot.system_position(past).unwrap(), None);
    let users = model.size(Log::User);
    for from in 0..=users.min(12) {
        for to in from..=users.min(from + 12) {
            let expected: Vec<u64> = (1..)
                .zip(&model.positions)
                .filter(|(_, position)| (from..to).contains(*position))
                .map(|(number, _)| number)
                .collect();
            let found: Vec<u64> = snapshot.system_entries_between(from, to).unwrap().collect();
            assert_eq!(
                found, expected,
                "system entries appended from user size {from} to {to}"
            );
        }
    }
}
