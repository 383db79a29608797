//! `fsck`: recompute everything a register's store derives, from the
//! ground up, and report the first difference. Reads every record of the
//! data file and every row once (and each entry's item, the key's previous
//! entry and its stored hashes by position); memory is the two trees'
//! right edges, whatever the log's size.

use regis_merkle::{Frontier, HashReader, leaf_hash};
use regis_model::{ItemHash, PerLog};
use regis_note::{SignedCheckpoint, Verifier, Verifiers};

use crate::field_index;
use crate::files::{self, DataRecord};
use crate::registry::LogSigners;
use crate::store::{canonical_item, item_fields};
use crate::{KvSnapshot, Log, SignedTree, Snapshot, StoreError};

/// What a clean `fsck` checked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FsckReport {
    /// Items whose hash and canonical form were checked.
    pub items: u64,
    /// Entries (user, system) whose leaves were parsed and hashed.
    pub entries: PerLog<u64>,
    /// Stored hashes recomputed and compared.
    pub stored_hashes: u64,
    /// Record rows checked against the entries (user, system).
    pub records: PerLog<u64>,
    /// Field-index rows found for the records' (field, value) pairs.
    pub field_rows: u64,
    /// Checkpoints whose signature, size and root were checked.
    pub checkpoints: u64,
}

/// Why `fsck` failed.
#[derive(Debug, thiserror::Error)]
pub enum FsckError {
    /// Reading failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The first thing found to be wrong.
    #[error("{0}")]
    Mismatch(String),
}

fn mismatch(text: impl Into<String>) -> FsckError {
    FsckError::Mismatch(text.into())
}

/// Checks a snapshot of a register against itself and its signers' keys.
pub fn fsck<S: KvSnapshot>(
    snapshot: &Snapshot<S>,
    signers: &LogSigners,
) -> Result<FsckReport, FsckError> {
    fsck_with_keys(
        snapshot,
        PerLog::from_fn(|log| signers.verifier(log)).as_ref(),
    )
}

/// [`fsck`] with the verifier keys of the user and the system log (each
/// named by its log's origin), for a register whose signing key is not
/// here: a mirror checks the upstream's checkpoints with the pinned keys.
pub fn fsck_with_keys<S: KvSnapshot>(
    snapshot: &Snapshot<S>,
    keys: PerLog<&Verifier>,
) -> Result<FsckReport, FsckError> {
    let mut report = FsckReport::default();
    check_all(snapshot, keys, &mut report).map_err(|error| match error {
        // What a checked read found wrong is the first difference too.
        FsckError::Store(StoreError::Corrupt(what)) => FsckError::Mismatch(what),
        other => other,
    })?;
    Ok(report)
}

fn check_all<S: KvSnapshot>(
    snapshot: &Snapshot<S>,
    keys: PerLog<&Verifier>,
    report: &mut FsckReport,
) -> Result<(), FsckError> {
    check_data(snapshot)?;
    check_items(snapshot, report)?;
    for (log, key) in keys {
        check_log(snapshot, key, log, report)?;
        check_records(snapshot, log, report)?;
    }
    check_system_positions(snapshot)?;
    check_field_index(snapshot, report)
}

/// The data file is whole: framed records up to its committed length, each
/// log's entries in order at the offsets its offsets file gives, and as
/// many items as the item index has rows.
fn check_data<S: KvSnapshot>(snapshot: &Snapshot<S>) -> Result<(), FsckError> {
    let mut items = 0u64;
    let mut next = PerLog {
        user: 1u64,
        system: 1,
    };
    let mut problem = None;
    files::walk_data(snapshot.files(), snapshot.data_len(), |offset, record| {
        match record {
            DataRecord::Item => items += 1,
            DataRecord::Entry(log) => {
                let number = next[log];
                if number > snapshot.size(log) {
                    problem = Some(format!(
                        "data: an entry record at {offset} beyond the {log} log's {} entries",
                        snapshot.size(log)
                    ));
                } else if files::entry_offset(snapshot.files(), log, number)? != offset {
                    problem = Some(format!(
                        "{log} entry {number} is not where its offset says (data offset {offset})"
                    ));
                }
                next[log] += 1;
            }
        }
        Ok(problem.is_none())
    })?;
    if let Some(problem) = problem {
        return Err(mismatch(problem));
    }
    for (log, next) in next {
        if next != snapshot.size(log) + 1 {
            return Err(mismatch(format!(
                "data holds {} {log} entries, the log has {}",
                next - 1,
                snapshot.size(log)
            )));
        }
    }
    let mut rows = 0u64;
    snapshot.scan_items(|_, _| {
        rows += 1;
        Ok(true)
    })?;
    if rows != items {
        return Err(mismatch(format!(
            "data holds {items} items, the item index has {rows} rows"
        )));
    }
    Ok(())
}

fn check_items<S: KvSnapshot>(
    snapshot: &Snapshot<S>,
    report: &mut FsckReport,
) -> Result<(), FsckError> {
    let mut problem = None;
    snapshot.scan_items(|hash, json| {
        let stated = ItemHash(*hash);
        if ItemHash::of(json) != stated {
            problem = Some(format!("item {stated}: its bytes hash to something else"));
        } else if canonical_item(json).is_none() {
            problem = Some(format!("item {stated}: not canonical item JSON"));
        }
        report.items += 1;
        Ok(problem.is_none())
    })?;
    problem.map_or(Ok(()), |text| Err(mismatch(text)))
}

/// Leaves, stored hashes, each entry's item and place in its key's
/// history, and checkpoints of one log.
fn check_log<S: KvSnapshot>(
    snapshot: &Snapshot<S>,
    key: &Verifier,
    log: Log,
    report: &mut FsckReport,
) -> Result<(), FsckError> {
    let size = snapshot.size(log);
    let checkpoint = snapshot.checkpoint(log)?;
    if let Some(checkpoint) = &checkpoint {
        if checkpoint.size > size {
            return Err(mismatch(format!(
                "the {log} checkpoint is for size {}, the log has {size} entries",
                checkpoint.size
            )));
        }
        check_checkpoint(log, checkpoint, key).map_err(mismatch)?;
        report.checkpoints += 1;
    }
    let hashes = snapshot.hashes(log);
    let mut frontier = Frontier::new();
    let check_root = |frontier: &Frontier| -> Result<(), FsckError> {
        match &checkpoint {
            Some(checkpoint) if checkpoint.size == frontier.size() => {
                if frontier.root() == checkpoint.root {
                    Ok(())
                } else {
                    Err(mismatch(format!(
                        "the {log} tree at size {} does not have its checkpoint's root",
                        checkpoint.size
                    )))
                }
            }
            _ => Ok(()),
        }
    };
    check_root(&frontier)?;
    for number in 1..=size {
        let stored = snapshot
            .stored_entry(log, number)?
            .ok_or_else(|| mismatch(format!("{log} entry {number} missing")))?;
        check_entry(snapshot, log, number, &stored)?;
        let leaf = stored.entry.leaf_bytes(number);
        let mut wrong = None;
        frontier
            .push_hash(leaf_hash(&leaf), |level, index, hash| {
                report.stored_hashes += 1;
                if wrong.is_none() {
                    match hashes.read_hash(level, index) {
                        Ok(stored) if stored == *hash => {}
                        Ok(_) => wrong = Some((level, index, None)),
                        Err(e) => wrong = Some((level, index, Some(e))),
                    }
                }
            })
            .map_err(|_| mismatch(format!("the {log} log is full")))?;
        if let Some((level, index, error)) = wrong {
            return Err(mismatch(format!(
                "{log} stored hash (level {level}, index {index}) is {}",
                error.map_or("wrong".to_owned(), |e| format!("unreadable: {e}"))
            )));
        }
        check_root(&frontier)?;
        report.entries[log] += 1;
    }
    Ok(())
}

/// A stored checkpoint of `log` parses, is signed by `key` under the key's
/// name as its origin (Regis names a log's key by the log's origin), and
/// states the size and root stored beside it. Opening a register checks
/// this too (`Registry::open`: one signature per log), so that a `host`
/// edited by hand, which makes other origins, or another key, is refused
/// instead of served beside the checkpoints signed before.
pub(crate) fn check_checkpoint(
    log: Log,
    checkpoint: &SignedTree,
    key: &Verifier,
) -> Result<(), String> {
    let parsed = SignedCheckpoint::parse(checkpoint.text.as_bytes())
        .map_err(|e| format!("the {log} checkpoint does not parse: {e}"))?;
    parsed
        .verify(key.name().as_str(), key, &Verifiers::default())
        .map_err(|e| format!("the {log} checkpoint does not verify: {e}"))?;
    if parsed.checkpoint().size() != checkpoint.size
        || parsed.checkpoint().root_hash() != &checkpoint.root
    {
        return Err(format!(
            "the {log} checkpoint's text and its stored size and root differ"
        ));
    }
    Ok(())
}

/// One entry's item, and its link to its key's previous entry: an earlier
/// entry of the same key, one place before it in the key's history.
fn check_entry<S: KvSnapshot>(
    snapshot: &Snapshot<S>,
    log: Log,
    number: u64,
    stored: &files::StoredEntry,
) -> Result<(), FsckError> {
    let key = &stored.entry.key;
    let item = stored.item_hash();
    if snapshot.item(&item)?.is_none() {
        return Err(mismatch(format!(
            "{log} entry {number}: item {} missing",
            ItemHash(item)
        )));
    }
    let linked = match stored.prev {
        0 => stored.ordinal == 1,
        prev if prev < number => match snapshot.stored_entry(log, prev)? {
            Some(before) => &before.entry.key == key && before.ordinal + 1 == stored.ordinal,
            None => false,
        },
        _ => false,
    };
    if !linked {
        return Err(mismatch(format!(
            "{log} entry {number} of {key:?} is not linked to the key's entry before it \
             (previous {}, ordinal {})",
            stored.prev, stored.ordinal
        )));
    }
    Ok(())
}

/// Each record row names an entry of its key; each entry links back to its
/// key's previous one (check_entry), so the rows' histories are disjoint
/// and hold `sum(ordinal)` entries: that sum is the log's size exactly when
/// every entry is in its key's history and each row is its key's latest.
fn check_records<S: KvSnapshot>(
    snapshot: &Snapshot<S>,
    log: Log,
    report: &mut FsckReport,
) -> Result<(), FsckError> {
    let size = snapshot.size(log);
    let mut records = 0u64;
    let mut covered = 0u64;
    let mut problem = None;
    snapshot.scan_record_rows(log, |key, number, first| {
        records += 1;
        match snapshot.stored_entry(log, number)? {
            Some(stored) if stored.entry.key == key => covered += stored.ordinal,
            _ => {
                problem = Some(format!(
                    "{log} record {key:?} names entry {number}, not its own"
                ))
            }
        }
        match snapshot.stored_entry(log, first)? {
            Some(stored) if stored.entry.key == key && stored.ordinal == 1 => {}
            _ => {
                problem = Some(format!(
                    "{log} record {key:?} names entry {first} as its first, which is not"
                ))
            }
        }
        Ok(problem.is_none())
    })?;
    if let Some(problem) = problem {
        return Err(mismatch(problem));
    }
    if covered != size {
        return Err(mismatch(format!(
            "{log} records' histories hold {covered} entries, the log has {size}: \
             a record is not its key's latest entry"
        )));
    }
    if log == Log::User && snapshot.record_count() != records {
        return Err(mismatch(format!(
            "the record count says {}, there are {records}",
            snapshot.record_count()
        )));
    }
    report.records[log] = records;
    Ok(())
}

/// One position per system entry and none beyond, never decreasing and
/// never past the user log. (Which user size each entry was appended at is
/// stated nowhere else, so that much is all that can be re-derived.)
fn check_system_positions<S: KvSnapshot>(snapshot: &Snapshot<S>) -> Result<(), FsckError> {
    let size = snapshot.size(Log::System);
    let users = snapshot.size(Log::User);
    let mut expected = 1u64;
    let mut previous = 0u64;
    let mut problem = None;
    snapshot.scan_system_positions(|number, position| {
        problem = if number != expected {
            Some(format!(
                "system positions: found entry {number}, expected {expected}"
            ))
        } else if number > size {
            Some(format!(
                "system positions: a row for entry {number}, beyond the {size} entries"
            ))
        } else if position < previous || position > users {
            Some(format!(
                "system entry {number} is placed after {position} user entries, \
                 between {previous} and {users} expected"
            ))
        } else {
            None
        };
        expected += 1;
        previous = position;
        Ok(problem.is_none())
    })?;
    if let Some(problem) = problem {
        return Err(mismatch(problem));
    }
    if expected <= size {
        return Err(mismatch(format!(
            "system positions: entry {expected} has none"
        )));
    }
    Ok(())
}

/// Field-index rows checked per pass over the runs (64 MiB).
const CHECK_ROWS: usize = 4 << 20;

/// The (field, value) pairs of user record `key`'s item.
fn record_pairs<S: KvSnapshot>(
    snapshot: &Snapshot<S>,
    key: &str,
) -> Result<Vec<(String, String)>, StoreError> {
    let record = snapshot
        .record(Log::User, key)?
        .ok_or_else(|| StoreError::Corrupt(format!("record {key:?} missing")))?;
    let json = snapshot
        .item(&record.item_hash)?
        .ok_or_else(|| StoreError::Corrupt(format!("record {key:?}: item missing")))?;
    item_fields(&record.item_hash, &json)
}

/// Checks that the field index holds every row of `expected` (which it
/// empties), in its runs or its table; describes the first it lacks.
fn missing_field_row<S: KvSnapshot>(
    snapshot: &Snapshot<S>,
    expected: &mut Vec<field_index::Row>,
) -> Result<Option<String>, StoreError> {
    expected.sort_unstable();
    expected.dedup();
    let outside = field_index::not_in_runs(snapshot.files(), snapshot.runs(), expected)?;
    expected.clear();
    for row in outside {
        if snapshot.field_table_has(row)? {
            continue;
        }
        // Say which record and pair: the row holds only their digest, and
        // the record's first entry.
        let first = row as u64;
        let Some(stored) = snapshot.stored_entry(Log::User, first)? else {
            return Ok(Some(format!(
                "a record's first entry, user entry {first}, is missing"
            )));
        };
        let key = stored.entry.key;
        let pair = record_pairs(snapshot, &key)?
            .into_iter()
            .find(|(field, value)| {
                field_index::row(crate::keys::field_prefix(field, value), first) == row
            });
        return Ok(Some(match pair {
            Some((field, value)) => {
                format!("the field index lacks {field} = {value:?} for record {key:?}")
            }
            None => format!(
                "the field index lacks a row of the record first added as user entry \
                 {first}, which is of key {key:?}, whose item gives no such row"
            ),
        }));
    }
    Ok(None)
}

/// The field index holds each user record's (field, value) pairs (rows
/// for pairs a record no longer has may remain: queries skip them), and
/// its runs are in order.
fn check_field_index<S: KvSnapshot>(
    snapshot: &Snapshot<S>,
    report: &mut FsckReport,
) -> Result<(), FsckError> {
    field_index::check_runs(snapshot.files(), snapshot.runs()).map_err(mismatch)?;
    // Each table row names a record by its first entry.
    let mut problem = None;
    snapshot.scan_field_table(|row| {
        let first = row as u64;
        let named = match snapshot.stored_entry(Log::User, first)? {
            Some(stored) if stored.ordinal == 1 => {
                snapshot.record(Log::User, &stored.entry.key)?.is_some()
            }
            _ => false,
        };
        if !named {
            problem = Some(format!(
                "a field index row names entry {first}, which begins no record"
            ));
        }
        Ok(problem.is_none())
    })?;
    if let Some(problem) = problem {
        return Err(mismatch(problem));
    }
    // Every record's rows, gathered and sorted a few million at a time,
    // each batch checked in one pass over the runs (a binary search per
    // row would take minutes at a million records).
    let mut rows = 0u64;
    let mut expected = Vec::new();
    snapshot.scan_record_rows(Log::User, |key, _, first| {
        let pairs = record_pairs(snapshot, key)?;
        for (field, value) in pairs {
            rows += 1;
            expected.push(field_index::row(
                crate::keys::field_prefix(&field, &value),
                first,
            ));
        }
        if expected.len() >= CHECK_ROWS {
            problem = missing_field_row(snapshot, &mut expected)?;
        }
        Ok(problem.is_none())
    })?;
    if problem.is_none() {
        problem = missing_field_row(snapshot, &mut expected)?;
    }
    if let Some(problem) = problem {
        return Err(mismatch(problem));
    }
    report.field_rows = rows;
    Ok(())
}
