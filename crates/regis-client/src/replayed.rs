//! Every key's latest entry, as a replay re-derives them, in bounded memory.
//!
//! A replay meets entries in log order and must end with one record per
//! key, which is as many as the register has keys: millions for a large
//! register. So records are kept in memory up to [`IN_MEMORY`], then
//! written, in key order, to an unnamed temporary file as a sorted run;
//! [`ReplayedRecords::finish`] merges the runs into one, keeping each key's
//! latest entry, and [`ReplayedRecords::iter`] reads that back in key order.
//! A run holds each record as its entry's v1 leaf bytes (which state the
//! entry number, key, timestamp and items), length-prefixed.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};

use regis_model::{Entry, Log};

use crate::client::ReplayedRecord;
use crate::error::Error;

/// Records held in memory before they are written out as a run: about
/// 40 MB of entries with one item and short keys.
const IN_MEMORY: usize = 100_000;

/// Every key's latest entry, re-derived by a replay.
#[derive(Debug)]
pub struct ReplayedRecords {
    log: Log,
    in_memory: usize,
    latest: BTreeMap<String, ReplayedRecord>,
    runs: Vec<File>,
    /// After [`ReplayedRecords::finish`]: the one run, and its keys.
    merged: Option<(File, u64)>,
}

impl ReplayedRecords {
    /// None yet, for entries of `log`.
    pub(crate) fn new(log: Log) -> Self {
        Self::holding(log, IN_MEMORY)
    }

    /// [`ReplayedRecords::new`], writing a run every `in_memory` records.
    pub(crate) fn holding(log: Log, in_memory: usize) -> Self {
        ReplayedRecords {
            log,
            in_memory: in_memory.max(1),
            latest: BTreeMap::new(),
            runs: Vec::new(),
            merged: None,
        }
    }

    /// Entry `number`, the latest of its key so far (entries come in log
    /// order).
    pub(crate) fn insert(&mut self, number: u64, entry: Entry) -> Result<(), Error> {
        self.latest
            .insert(entry.key.clone(), ReplayedRecord { number, entry });
        if self.latest.len() >= self.in_memory {
            let run = write_run(std::mem::take(&mut self.latest).into_values())?;
            self.runs.push(run);
        }
        Ok(())
    }

    /// Merges what was gathered into one run, a record per key.
    pub(crate) fn finish(&mut self) -> Result<(), Error> {
        let runs = std::mem::take(&mut self.runs);
        let latest = std::mem::take(&mut self.latest);
        let mut count = 0;
        let merged = if runs.is_empty() {
            count = latest.len() as u64;
            write_run(latest.into_values())?
        } else {
            let mut sources: Vec<Source> = runs
                .into_iter()
                .map(|run| Source::Run(RunReader::new(run, self.log)))
                .collect();
            sources.push(Source::Memory(latest.into_values()));
            let mut output = Output::new()?;
            merge(sources, |record| {
                count += 1;
                output.push(&record)
            })?;
            output.finish()?
        };
        self.merged = Some((merged, count));
        Ok(())
    }

    /// How many keys there are (once the replay finished).
    pub fn len(&self) -> u64 {
        self.merged.as_ref().map_or(0, |(_, count)| *count)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The records in key order (once the replay finished), read
    /// back from their run.
    pub fn iter(&self) -> Result<impl Iterator<Item = Result<ReplayedRecord, Error>>, Error> {
        let run = match &self.merged {
            Some((run, _)) => {
                // A clone shares the file's offset: rewound, one reading at a time.
                let mut run = run.try_clone().map_err(spill_error)?;
                run.seek(SeekFrom::Start(0)).map_err(spill_error)?;
                Some(run)
            }
            None => None,
        };
        let mut reader = run.map(|run| RunReader::new(run, self.log));
        Ok(std::iter::from_fn(move || {
            reader.as_mut()?.next().transpose()
        }))
    }
}

fn spill_error(error: io::Error) -> Error {
    Error::Spill(error)
}

/// Writes records, already in key order, to a new unnamed file.
fn write_run(records: impl Iterator<Item = ReplayedRecord>) -> Result<File, Error> {
    let mut output = Output::new()?;
    for record in records {
        output.push(&record)?;
    }
    output.finish()
}

struct Output(BufWriter<File>);

impl Output {
    fn new() -> Result<Output, Error> {
        Ok(Output(BufWriter::with_capacity(
            1 << 16,
            tempfile::tempfile().map_err(spill_error)?,
        )))
    }

    fn push(&mut self, record: &ReplayedRecord) -> Result<(), Error> {
        let leaf = record.entry.leaf_bytes(record.number);
        let len = u32::try_from(leaf.len())
            .map_err(|_| spill_error(io::Error::other("a leaf of over 4 GiB")))?;
        self.0.write_all(&len.to_le_bytes()).map_err(spill_error)?;
        self.0.write_all(&leaf).map_err(spill_error)
    }

    /// The file, rewound for reading.
    fn finish(self) -> Result<File, Error> {
        let mut file = self
            .0
            .into_inner()
            .map_err(|error| spill_error(error.into_error()))?;
        file.seek(SeekFrom::Start(0)).map_err(spill_error)?;
        Ok(file)
    }
}

/// Reads a run's records back in order.
struct RunReader {
    reader: BufReader<File>,
    log: Log,
}

impl RunReader {
    fn new(file: File, log: Log) -> Self {
        RunReader {
            reader: BufReader::with_capacity(1 << 16, file),
            log,
        }
    }

    fn next(&mut self) -> Result<Option<ReplayedRecord>, Error> {
        let mut len = [0u8; 4];
        match self.reader.read_exact(&mut len) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(error) => return Err(spill_error(error)),
        }
        let mut leaf = vec![0; u32::from_le_bytes(len) as usize];
        self.reader.read_exact(&mut leaf).map_err(spill_error)?;
        // Bytes this replay wrote from an entry it had parsed: they parse.
        let (number, entry) = Entry::parse_leaf(self.log, &leaf).map_err(|error| {
            spill_error(io::Error::other(format!("a record read back: {error}")))
        })?;
        Ok(Some(ReplayedRecord { number, entry }))
    }
}

/// A sorted source of records: a run on disk, or the records still in
/// memory.
enum Source {
    Run(RunReader),
    Memory(std::collections::btree_map::IntoValues<String, ReplayedRecord>),
}

impl Source {
    fn next(&mut self) -> Result<Option<ReplayedRecord>, Error> {
        match self {
            Source::Run(run) => run.next(),
            Source::Memory(records) => Ok(records.next()),
        }
    }
}

/// Merges sorted sources, handing `emit` one record per key in key order:
/// of a key's records, the one with the highest entry number.
fn merge(
    mut sources: Vec<Source>,
    mut emit: impl FnMut(ReplayedRecord) -> Result<(), Error>,
) -> Result<(), Error> {
    // Heads of the sources: (key, source), smallest key first.
    let mut heads = BinaryHeap::new();
    let mut pending: Vec<Option<ReplayedRecord>> = Vec::with_capacity(sources.len());
    for (at, source) in sources.iter_mut().enumerate() {
        let head = source.next()?;
        if let Some(record) = &head {
            heads.push(Reverse((record.entry.key.clone(), at)));
        }
        pending.push(head);
    }
    let mut current: Option<ReplayedRecord> = None;
    while let Some(Reverse((_, at))) = heads.pop() {
        let Some(record) = pending.get_mut(at).and_then(Option::take) else {
            continue;
        };
        if let Some(next) = sources.get_mut(at).map(Source::next).transpose()?.flatten() {
            heads.push(Reverse((next.entry.key.clone(), at)));
            if let Some(slot) = pending.get_mut(at) {
                *slot = Some(next);
            }
        }
        current = match current {
            Some(held) if held.entry.key == record.entry.key => {
                Some(if record.number > held.number {
                    record
                } else {
                    held
                })
            }
            Some(held) => {
                emit(held)?;
                Some(record)
            }
            None => Some(record),
        };
    }
    match current {
        Some(held) => emit(held),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use regis_model::{ItemHash, Timestamp};

    fn entry(key: &str, item: u8) -> Entry {
        let timestamp = Timestamp::parse("2026-11-27T04:00:00Z").unwrap();
        Entry::new(Log::User, key, timestamp, ItemHash([item; 32]))
    }

    proptest! {
        /// Whatever the run size, the records read back are exactly each
        /// key's last entry, in key order.
        #[test]
        fn records_match_a_map_of_latest_entries(
            keys in proptest::collection::vec(0u16..300, 0..700),
            in_memory in 1usize..50,
        ) {
            let mut records = ReplayedRecords::holding(Log::User, in_memory);
            let mut model = BTreeMap::new();
            for (at, key) in keys.iter().enumerate() {
                let number = at as u64 + 1;
                let key = format!("k{key}");
                let entry = entry(&key, (at % 251) as u8);
                model.insert(key, (number, entry.clone()));
                records.insert(number, entry).unwrap();
            }
            records.finish().unwrap();
            prop_assert_eq!(records.len(), model.len() as u64);
            let read: Vec<(u64, Entry)> = records
                .iter()
                .unwrap()
                .map(|record| record.map(|record| (record.number, record.entry)))
                .collect::<Result<_, _>>()
                .unwrap();
            let expected: Vec<(u64, Entry)> = model.into_values().collect();
            prop_assert_eq!(read, expected);
        }
    }

    #[test]
    fn records_can_be_read_twice() {
        let mut records = ReplayedRecords::holding(Log::User, 2);
        for (number, key) in [(1, "b"), (2, "a"), (3, "b"), (4, "c")] {
            records.insert(number, entry(key, 1)).unwrap();
        }
        records.finish().unwrap();
        for _ in 0..2 {
            let numbers: Vec<u64> = records
                .iter()
                .unwrap()
                .map(|record| record.unwrap().number)
                .collect();
            assert_eq!(numbers, [2, 3, 4]);
        }
    }
}
