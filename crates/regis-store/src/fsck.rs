//! `fsck`: recompute everything a register's store derives, from the
//! ground up, and report the first difference. Reads every row once (and
//! each entry's history row, item and stored hashes by key); memory is one
//! page of entries and the two trees' right edges, whatever the log's size.

use regis_merkle::{Frontier, HashReader, leaf_hash};
use regis_model::{Entry, Item, ItemHash};
use regis_note::{SignedCheckpoint, Verifier, Verifiers};

use crate::registry::LogSigners;
use crate::store::item_fields;
use crate::{KvSnapshot, Log, Snapshot, StoreError};

/// Entries read per page.
const PAGE: u64 = 4096;

/// What a clean `fsck` checked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FsckReport {
    /// Items whose hash and canonical form were checked.
    pub items: u64,
    /// Entries (user, system) whose leaves were parsed and hashed.
    pub entries: [u64; 2],
    /// Stored hashes recomputed and compared.
    pub stored_hashes: u64,
    /// Record rows checked against the history (user, system).
    pub records: [u64; 2],
    /// Field-index rows checked.
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
        [&signers.verifier(Log::User), &signers.verifier(Log::System)],
    )
}

/// [`fsck`] with the verifier keys of the user and the system log (each
/// named by its log's origin), for a register whose signing key is not
/// here: a mirror checks the upstream's checkpoints with the pinned keys.
pub fn fsck_with_keys<S: KvSnapshot>(
    snapshot: &Snapshot<S>,
    keys: [&Verifier; 2],
) -> Result<FsckReport, FsckError> {
    let mut report = FsckReport::default();
    check_items(snapshot, &mut report)?;
    for (slot, log) in [Log::User, Log::System].into_iter().enumerate() {
        check_log(snapshot, keys[slot], log, slot, &mut report)?;
        check_records(snapshot, log, slot, &mut report)?;
    }
    check_system_positions(snapshot)?;
    check_field_index(snapshot, &mut report)?;
    Ok(report)
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
        } else if std::str::from_utf8(json)
            .ok()
            .and_then(|text| Item::from_canonical(text).ok())
            .is_none()
        {
            problem = Some(format!("item {stated}: not canonical item JSON"));
        }
        report.items += 1;
        Ok(problem.is_none())
    })?;
    problem.map_or(Ok(()), |text| Err(mismatch(text)))
}

/// Leaves, stored hashes, history rows and checkpoints of one log.
fn check_log<S: KvSnapshot>(
    snapshot: &Snapshot<S>,
    key: &Verifier,
    log: Log,
    slot: usize,
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
        let parsed = SignedCheckpoint::parse(checkpoint.text.as_bytes())
            .map_err(|e| mismatch(format!("the {log} checkpoint does not parse: {e}")))?;
        parsed
            // Regis names a log's key by the log's origin.
            .verify(key.name().as_str(), key, &Verifiers::default())
            .map_err(|e| mismatch(format!("the {log} checkpoint does not verify: {e}")))?;
        if parsed.checkpoint().size() != checkpoint.size
            || parsed.checkpoint().root_hash() != &checkpoint.root
        {
            return Err(mismatch(format!(
                "the {log} checkpoint's text and its stored size and root differ"
            )));
        }
        report.checkpoints += 1;
    }
    let hashes = snapshot.hashes(log);
    let mut frontier = Frontier::new();
    let mut per_level = [0u64; 64];
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
    let mut next = 1;
    while next <= size {
        let page = snapshot.entries(log, next, PAGE)?;
        for (number, leaf) in page {
            let (stated, entry) = Entry::parse_leaf(log, &leaf)
                .map_err(|e| mismatch(format!("{log} entry {number}: {e}")))?;
            if stated != number {
                return Err(mismatch(format!(
                    "{log} entry {number} says it is {stated}"
                )));
            }
            check_entry(snapshot, log, number, &entry)?;
            let mut wrong = None;
            frontier
                .push_hash(leaf_hash(&leaf), |level, index, hash| {
                    per_level[usize::from(level)] += 1;
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
            report.entries[slot] += 1;
            next = number + 1;
        }
    }
    // No stored hash beyond those the entries make.
    for (level, count) in per_level.iter().enumerate() {
        if hashes.read_hash(level as u8, *count).is_ok() {
            return Err(mismatch(format!(
                "{log} stored hash (level {level}, index {count}) exists beyond the tree"
            )));
        }
        report.stored_hashes += count;
    }
    Ok(())
}

/// One entry's item and history row.
fn check_entry<S: KvSnapshot>(
    snapshot: &Snapshot<S>,
    log: Log,
    number: u64,
    entry: &Entry,
) -> Result<(), FsckError> {
    let [item] = entry.item_hashes.as_slice() else {
        return Err(mismatch(format!("{log} entry {number} has several items")));
    };
    if snapshot.item(item.as_bytes())?.is_none() {
        return Err(mismatch(format!(
            "{log} entry {number}: item {item} missing"
        )));
    }
    match snapshot.history_entry(log, &entry.key, number)? {
        Some(stored) if stored == item.0 => Ok(()),
        Some(_) => Err(mismatch(format!(
            "{log} history of {:?} gives entry {number} another item",
            entry.key
        ))),
        None => Err(mismatch(format!(
            "{log} history of {:?} lacks entry {number}",
            entry.key
        ))),
    }
}

/// History rows belong to entries; each key's record is its latest entry.
fn check_records<S: KvSnapshot>(
    snapshot: &Snapshot<S>,
    log: Log,
    slot: usize,
    report: &mut FsckReport,
) -> Result<(), FsckError> {
    let size = snapshot.size(log);
    let mut rows = 0u64;
    let mut keys = 0u64;
    let mut last_key: Option<String> = None;
    let mut problem = None;
    snapshot.scan_history(log, |key, number, _| {
        rows += 1;
        if last_key.as_deref() != Some(key) {
            keys += 1;
            last_key = Some(key.to_owned());
        }
        if number == 0 || number > size {
            problem = Some(format!("{log} history of {key:?} names entry {number}"));
        }
        Ok(problem.is_none())
    })?;
    if let Some(problem) = problem {
        return Err(mismatch(problem));
    }
    // Every entry has its row (check_log) and every row is an entry: the
    // counts are equal exactly when the history is right.
    if rows != size {
        return Err(mismatch(format!(
            "{log} history has {rows} rows for {size} entries"
        )));
    }
    let mut records = 0u64;
    snapshot.scan_record_rows(log, |key, number, item| {
        records += 1;
        match snapshot.latest_history(log, key)? {
            Some((latest, latest_item)) if latest == number && latest_item == *item => {}
            _ => {
                problem = Some(format!(
                    "{log} record {key:?} is not its latest entry ({number})"
                ))
            }
        }
        Ok(problem.is_none())
    })?;
    if let Some(problem) = problem {
        return Err(mismatch(problem));
    }
    if records != keys {
        return Err(mismatch(format!(
            "{log} has {records} records for {keys} keys"
        )));
    }
    if log == Log::User && snapshot.record_count() != records {
        return Err(mismatch(format!(
            "the record count says {}, there are {records}",
            snapshot.record_count()
        )));
    }
    report.records[slot] = records;
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

/// The field index holds exactly each user record's (field, value) pairs.
fn check_field_index<S: KvSnapshot>(
    snapshot: &Snapshot<S>,
    report: &mut FsckReport,
) -> Result<(), FsckError> {
    let mut expected = 0u64;
    let mut problem = None;
    snapshot.scan_record_rows(Log::User, |key, _, item| {
        let json = snapshot
            .item(item)?
            .ok_or_else(|| StoreError::Corrupt(format!("record {key:?}: item missing")))?;
        let pairs = item_fields(&json)
            .ok_or_else(|| StoreError::Corrupt(format!("record {key:?}: item malformed")))?;
        for (field, value) in pairs {
            expected += 1;
            if !snapshot.field_row(&field, &value, key)? {
                problem = Some(format!(
                    "the field index lacks {field} = {value:?} for record {key:?}"
                ));
                return Ok(false);
            }
        }
        Ok(true)
    })?;
    if let Some(problem) = problem {
        return Err(mismatch(problem));
    }
    let mut rows = 0u64;
    snapshot.scan_field_index(|_, _, _| {
        rows += 1;
        Ok(true)
    })?;
    // Every expected row exists; equal counts leave no stale row.
    if rows != expected {
        return Err(mismatch(format!(
            "the field index has {rows} rows, the records make {expected}"
        )));
    }
    report.field_rows = rows;
    Ok(())
}
