//! RSF written from a snapshot: the full dump and the delta layout of
//! regis-model (`regis_model::rsf`), one page of entries at a time, with
//! constant memory whatever the size of the log. The server streams these
//! bytes at `B/download-rsf[/{a}[/{b}]]` and the publisher (regis-publish)
//! stores them as RSF chunks: one piece of code makes both.
//!
//! - The full dump is GOV.UK's layout: the empty-tree assertion, every item
//!   (one scan of the item table, in hash order, each once), every system
//!   entry, every user entry, the final assertion.
//! - A delta `{a}/{b}` is `assert-root-hash` of the user log at `a`, then
//!   user entries `a+1 ..= b` and the system entries after the first
//!   `held` (regis-model's default when `None`) that were appended while
//!   the user log had at most `b` entries, each placed after as many user
//!   entries as the log had when it was appended
//!   ([`Snapshot::system_position`]), and none numbered beyond `system_limit`
//!   when one is given; every entry preceded by its items; then
//!   `assert-root-hash` at `b`.
//!
//! Either ends by checking that the entries written lead to the stored
//! root; a document whose root differs is cut short before its final
//! assertion.

use std::io::{self, Write};

use regis_merkle::Frontier;
use regis_model::rsf::{RsfWriter, delta_system_entries};
use regis_model::{Entry, Item, format_hash};

use crate::{KvSnapshot, Log, Snapshot};

/// Entries read per page.
const PAGE: u64 = 256;

/// A delta's bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delta {
    /// The user-log size it starts from.
    pub start: u64,
    /// The user-log size it ends at.
    pub end: u64,
    /// The system entries the reader holds; `None`: regis-model's default.
    pub held: Option<u64>,
    /// System entries numbered beyond this are left out (a published tail
    /// carries no system entry its system checkpoint does not cover);
    /// `None`: every one the delta holds.
    pub system_limit: Option<u64>,
}

fn store_error(error: impl std::fmt::Display) -> io::Error {
    io::Error::other(error.to_string())
}

fn entry_of(log: Log, number: u64, leaf: &[u8]) -> io::Result<Entry> {
    Entry::parse_leaf(log, leaf)
        .map(|(_, entry)| entry)
        .map_err(|e| store_error(format!("{log} entry {number}: {e}")))
}

fn item_of<S: KvSnapshot>(snapshot: &Snapshot<S>, hash: &regis_merkle::Hash) -> io::Result<Item> {
    let json = snapshot
        .item(hash)
        .map_err(store_error)?
        .ok_or_else(|| store_error(format!("item {} is missing", format_hash(hash))))?;
    let text = std::str::from_utf8(&json).map_err(store_error)?;
    Item::from_canonical(text).map_err(store_error)
}

/// Writes one entry of `log` from its leaf, preceded by its items when
/// `with_items`.
fn write_entry<S: KvSnapshot, W: Write>(
    snapshot: &Snapshot<S>,
    writer: &mut RsfWriter<W>,
    log: Log,
    number: u64,
    leaf: &[u8],
    with_items: bool,
) -> io::Result<()> {
    let entry = entry_of(log, number, leaf)?;
    if with_items {
        for hash in &entry.item_hashes {
            writer.add_item(&item_of(snapshot, hash.as_bytes())?)?;
        }
    }
    writer.append_entry(&entry)
}

/// The system entries a delta carries, written in their places among the
/// user entries: one read per system entry, none held beyond the next.
struct SystemEntries {
    /// The next to write and one past the last.
    numbers: std::ops::Range<u64>,
    /// The user-log size at which `numbers.start` was appended, once read.
    next_position: Option<u64>,
}

impl SystemEntries {
    /// Writes, with their items, the system entries appended before the
    /// user log reached `user_size` entries.
    fn write_before<S: KvSnapshot, W: Write>(
        &mut self,
        snapshot: &Snapshot<S>,
        writer: &mut RsfWriter<W>,
        user_size: u64,
    ) -> io::Result<()> {
        while !self.numbers.is_empty() {
            let number = self.numbers.start;
            let position = match self.next_position {
                Some(position) => position,
                None => snapshot
                    .system_position(number)
                    .map_err(store_error)?
                    .ok_or_else(|| store_error(format!("system entry {number} is missing")))?,
            };
            if position >= user_size {
                self.next_position = Some(position);
                return Ok(());
            }
            let leaf = snapshot
                .entry(Log::System, number)
                .map_err(store_error)?
                .ok_or_else(|| store_error(format!("system entry {number} is missing")))?;
            write_entry(snapshot, writer, Log::System, number, &leaf, true)?;
            self.numbers.start += 1;
            self.next_position = None;
        }
        Ok(())
    }
}

/// Writes entries `first ..= last` of `log`, a page at a time, each
/// preceded by its items when `with_items`, and before each user entry the
/// `system` entries that go before it.
fn write_entries<S: KvSnapshot, W: Write>(
    snapshot: &Snapshot<S>,
    writer: &mut RsfWriter<W>,
    log: Log,
    (first, last): (u64, u64),
    with_items: bool,
    mut system: Option<&mut SystemEntries>,
) -> io::Result<()> {
    let mut next = first;
    while next <= last {
        let limit = PAGE.min(last - next + 1);
        let page = snapshot.entries(log, next, limit).map_err(store_error)?;
        if page.is_empty() {
            return Err(store_error(format!("{log} entry {next} is missing")));
        }
        for (number, leaf) in page {
            if let Some(system) = system.as_deref_mut() {
                // User entry `number` is appended at size `number - 1`.
                system.write_before(snapshot, writer, number)?;
            }
            write_entry(snapshot, writer, log, number, &leaf, with_items)?;
            if number >= last {
                return Ok(());
            }
            next = number + 1;
        }
    }
    Ok(())
}

/// How many system entries were appended while the user log had at most
/// `n` entries: those before the first appended at `n + 1`.
pub fn system_entries_through<S: KvSnapshot>(
    snapshot: &Snapshot<S>,
    n: u64,
) -> Result<u64, crate::StoreError> {
    snapshot
        .system_entries_between(0, n.saturating_add(1))
        .map(|numbers| numbers.end.saturating_sub(1))
}

/// Writes the full dump of `snapshot` to `out`.
pub fn write_full<S: KvSnapshot, W: Write>(snapshot: &Snapshot<S>, out: W) -> io::Result<()> {
    let size = snapshot.size(Log::User);
    let mut writer = RsfWriter::new(out);
    writer.assert_root_hash()?;
    let mut failure = None;
    snapshot
        .scan_items(|_, json| {
            let item = std::str::from_utf8(json)
                .map_err(store_error)
                .and_then(|text| Item::from_canonical(text).map_err(store_error));
            match item.and_then(|item| writer.add_item(&item)) {
                Ok(()) => Ok(true),
                Err(error) => {
                    failure = Some(error);
                    Ok(false)
                }
            }
        })
        .map_err(store_error)?;
    if let Some(error) = failure {
        return Err(error);
    }
    let system = (1, snapshot.size(Log::System));
    write_entries(snapshot, &mut writer, Log::System, system, false, None)?;
    write_entries(snapshot, &mut writer, Log::User, (1, size), false, None)?;
    finish(snapshot, writer, size)
}

/// Writes the delta `delta` of `snapshot` to `out`; `delta.end` must be at
/// most the snapshot's user size (the caller checks its bounds).
pub fn write_delta<S: KvSnapshot, W: Write>(
    snapshot: &Snapshot<S>,
    delta: Delta,
    out: W,
) -> io::Result<()> {
    let Delta {
        start,
        end,
        held,
        system_limit,
    } = delta;
    let frontier =
        Frontier::from_reader(&snapshot.hashes(Log::User), start).map_err(store_error)?;
    let mut writer = RsfWriter::resume(out, frontier);
    writer.assert_root_hash()?;
    let mut numbers =
        delta_system_entries(start, end, held, |n| system_entries_through(snapshot, n))
            .map_err(store_error)?;
    if let Some(limit) = system_limit {
        numbers.end = numbers.end.min(limit.saturating_add(1)).max(numbers.start);
    }
    let mut system = SystemEntries {
        numbers,
        next_position: None,
    };
    let users = (start.saturating_add(1), end);
    write_entries(
        snapshot,
        &mut writer,
        Log::User,
        users,
        true,
        Some(&mut system),
    )?;
    // Those appended at user size `end`.
    system.write_before(snapshot, &mut writer, end.saturating_add(1))?;
    // Every system entry of the delta was appended at a size up to `end`;
    // none is left.
    if !system.numbers.is_empty() {
        return Err(store_error(format!(
            "system entries {:?} fall outside the delta {start}/{end}",
            system.numbers
        )));
    }
    finish(snapshot, writer, end)
}

/// The final assertion, after checking that the entries written lead to
/// the stored root at `size`.
fn finish<S: KvSnapshot, W: Write>(
    snapshot: &Snapshot<S>,
    mut writer: RsfWriter<W>,
    size: u64,
) -> io::Result<()> {
    let stored = Frontier::from_reader(&snapshot.hashes(Log::User), size)
        .map_err(store_error)?
        .root();
    if writer.user_log().root() != stored {
        return Err(store_error(format!(
            "the entries lead to root {}, but the stored tree at size {size} has {}",
            format_hash(&writer.user_log().root()),
            format_hash(&stored)
        )));
    }
    writer.assert_root_hash()?;
    let mut out = writer.into_inner();
    out.flush()
}
