//! The field index: which user records have a value in a field
//! (`spec/store.md`, "Field index").
//!
//! A row is 16 bytes: the first 8 bytes of SHA-256(len(field) ‖ field ‖
//! value), then the record's id, the number of its key's first entry (which
//! never changes), both big-endian, so rows sort by digest, then record.
//! Rows live in two places:
//!
//! - the `field_index` table, one key-value row each, for small commits;
//! - sorted runs of rows in one of two files, `fields.0` and `fields.1`,
//!   for large transactions (a bulk load writes millions of rows: inserted
//!   one by one into a B-tree they would cost more than the load itself).
//!   The meta row `field-runs` names the current file and its runs; when
//!   there are too many runs they are merged into the other file, which
//!   the same commit makes current.
//!
//! The index may hold stale rows (a record that no longer has the value:
//! rows in runs are never deleted) but never lacks a current one: a query
//! reads each candidate record's item and keeps only true matches.

use std::sync::Arc;

use crate::StoreError;
use crate::files::{Appenders, FileId, ReadFiles};
use crate::keys::{self, corrupt};
use crate::kv::{KvSnapshot, Table};

/// A row: digest (high 64 bits) ‖ record id (low 64 bits).
pub(crate) type Row = u128;

/// Rows a transaction gathers before writing them out as a run (16 MiB).
pub(crate) const RUN_CAP_ROWS: usize = 1 << 20;
/// Fewer rows than this at commit go to the table instead of a run.
pub(crate) const RUN_MIN_ROWS: usize = 1 << 12;
/// More runs than this are merged into the other file.
pub(crate) const MAX_RUNS: usize = 8;
/// Rows read per chunk when scanning or merging runs.
const CHUNK_ROWS: usize = 4096;

pub(crate) fn row(prefix: [u8; keys::FIELD_DIGEST], record: u64) -> Row {
    (u128::from(u64::from_be_bytes(prefix)) << 64) | u128::from(record)
}

fn digest_of(row: Row) -> u64 {
    (row >> 64) as u64
}

fn record_of(row: Row) -> u64 {
    row as u64
}

/// A run: `rows` rows from row `start` of the current file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Run {
    pub start: u64,
    pub rows: u64,
}

/// The `field-runs` meta row: the current file and its runs, back to back
/// from its start.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Runs {
    pub slot: u8,
    pub runs: Vec<Run>,
}

impl Runs {
    pub fn decode(bytes: &[u8]) -> Result<Runs, StoreError> {
        let Some((&slot, rest)) = bytes.split_first() else {
            return Err(corrupt("meta/field-runs is empty"));
        };
        if slot > 1 || rest.len() % 16 != 0 {
            return Err(corrupt("meta/field-runs is malformed"));
        }
        let mut runs = Vec::new();
        let mut end = 0;
        for pair in rest.chunks_exact(16) {
            let run = Run {
                start: keys::read_u64(&pair[..8], "field run")?,
                rows: keys::read_u64(&pair[8..], "field run")?,
            };
            if run.start != end {
                return Err(corrupt("meta/field-runs: runs are not back to back"));
            }
            end = run
                .start
                .checked_add(run.rows)
                .ok_or_else(|| corrupt("meta/field-runs overflows"))?;
            runs.push(run);
        }
        Ok(Runs { slot, runs })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![self.slot];
        for run in &self.runs {
            out.extend_from_slice(&run.start.to_be_bytes());
            out.extend_from_slice(&run.rows.to_be_bytes());
        }
        out
    }

    /// Rows in the current file.
    pub fn end(&self) -> u64 {
        self.runs.last().map_or(0, |run| run.start + run.rows)
    }

    pub fn file(&self) -> FileId {
        FileId::Fields(self.slot)
    }

    /// The committed lengths of `fields.0` and `fields.1`.
    pub fn lens(&self) -> [u64; 2] {
        let mut lens = [0; 2];
        lens[usize::from(self.slot)] = self.end() * 16;
        lens
    }
}

/// Sorts and dedups `rows`, appends them to the current file as a run.
pub(crate) fn append_run(
    files: &mut Appenders<'_>,
    runs: &mut Runs,
    rows: &mut Vec<Row>,
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    rows.sort_unstable();
    rows.dedup();
    let start = runs.end();
    let mut bytes = Vec::with_capacity(CHUNK_ROWS * 16);
    for chunk in rows.chunks(CHUNK_ROWS) {
        bytes.clear();
        for row in chunk {
            bytes.extend_from_slice(&row.to_be_bytes());
        }
        files.append(runs.file(), &bytes)?;
    }
    runs.runs.push(Run {
        start,
        rows: rows.len() as u64,
    });
    rows.clear();
    Ok(())
}

/// Merges every run into the other file when there are more than
/// `max_runs`, if no reader still uses that file (`in_use`): the caller
/// commits the result.
pub(crate) fn maybe_compact(
    files: &mut Appenders<'_>,
    runs: &mut Runs,
    max_runs: usize,
    in_use: impl Fn(u8) -> bool,
) -> Result<(), StoreError> {
    let other = 1 - runs.slot;
    if runs.runs.len() <= max_runs || in_use(other) {
        return Ok(());
    }
    files.restart(FileId::Fields(other))?;
    let mut cursors = runs
        .runs
        .iter()
        .map(|run| RunCursor::new(runs.file(), *run))
        .collect::<Vec<_>>();
    let mut heads = Vec::with_capacity(cursors.len());
    for cursor in &mut cursors {
        heads.push(cursor.next(&*files)?);
    }
    let mut out = Vec::with_capacity(CHUNK_ROWS * 16);
    let mut rows = 0u64;
    let mut last = None;
    while let Some(smallest) = heads.iter().flatten().min().copied() {
        for (head, cursor) in heads.iter_mut().zip(&mut cursors) {
            if *head == Some(smallest) {
                *head = cursor.next(&*files)?;
            }
        }
        if last != Some(smallest) {
            out.extend_from_slice(&smallest.to_be_bytes());
            rows += 1;
            last = Some(smallest);
            if out.len() >= CHUNK_ROWS * 16 {
                files.append(FileId::Fields(other), &out)?;
                out.clear();
            }
        }
    }
    files.append(FileId::Fields(other), &out)?;
    *runs = Runs {
        slot: other,
        runs: vec![Run { start: 0, rows }],
    };
    Ok(())
}

/// Reads one run in order, a chunk at a time.
struct RunCursor {
    file: FileId,
    next: u64,
    end: u64,
    chunk: Vec<Row>,
    at: usize,
}

impl RunCursor {
    fn new(file: FileId, run: Run) -> Self {
        RunCursor {
            file,
            next: run.start,
            end: run.start + run.rows,
            chunk: Vec::new(),
            at: 0,
        }
    }

    /// Starts at the first row not below `row`: a binary search, one read
    /// per step.
    fn seek(&mut self, files: &dyn ReadFiles, row: Row) -> Result<(), StoreError> {
        let (mut low, mut high) = (self.next, self.end);
        while low < high {
            let middle = low + (high - low) / 2;
            if read_row(files, self.file, middle)? < row {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        self.next = low;
        self.chunk.clear();
        self.at = 0;
        Ok(())
    }

    fn next(&mut self, files: &dyn ReadFiles) -> Result<Option<Row>, StoreError> {
        if self.at == self.chunk.len() {
            if self.next == self.end {
                return Ok(None);
            }
            let count = (self.end - self.next).min(CHUNK_ROWS as u64) as usize;
            let mut bytes = vec![0; count * 16];
            files.read_at(self.file, self.next * 16, &mut bytes)?;
            self.chunk = bytes
                .chunks_exact(16)
                .map(|row| {
                    let mut array = [0; 16];
                    array.copy_from_slice(row);
                    u128::from_be_bytes(array)
                })
                .collect();
            self.at = 0;
            self.next += count as u64;
        }
        let row = self.chunk[self.at];
        self.at += 1;
        Ok(Some(row))
    }
}

fn read_row(files: &dyn ReadFiles, file: FileId, index: u64) -> Result<Row, StoreError> {
    let mut bytes = [0; 16];
    files.read_at(file, index * 16, &mut bytes)?;
    Ok(u128::from_be_bytes(bytes))
}

/// Where a query reads candidates from.
enum Source<'a, S> {
    Run(RunCursor),
    Table {
        kv: &'a S,
        /// The next key to read from, `None` once done.
        from: Option<[u8; 16]>,
        end: [u8; 16],
        chunk: Vec<Row>,
        at: usize,
    },
}

impl<S: KvSnapshot> Source<'_, S> {
    fn next(&mut self, files: &dyn ReadFiles) -> Result<Option<Row>, StoreError> {
        match self {
            Source::Run(cursor) => cursor.next(files),
            Source::Table {
                kv,
                from,
                end,
                chunk,
                at,
            } => {
                if *at == chunk.len() {
                    let Some(start) = *from else {
                        return Ok(None);
                    };
                    chunk.clear();
                    *at = 0;
                    kv.scan(
                        Table::FieldIndex,
                        &start,
                        Some(end),
                        false,
                        &mut |key, _| {
                            let key: [u8; 16] = key
                                .try_into()
                                .map_err(|_| corrupt("a field index row is not 16 bytes"))?;
                            chunk.push(u128::from_be_bytes(key));
                            Ok(chunk.len() < CHUNK_ROWS)
                        },
                    )?;
                    *from = match chunk.last() {
                        Some(last) if chunk.len() == CHUNK_ROWS => {
                            last.checked_add(1).map(u128::to_be_bytes)
                        }
                        _ => None,
                    };
                    if chunk.is_empty() {
                        return Ok(None);
                    }
                }
                let row = chunk[*at];
                *at += 1;
                Ok(Some(row))
            }
        }
    }
}

/// The candidate records of one digest, in record-id order, each once:
/// the table's rows and every run's, merged.
pub(crate) struct Candidates<'a, S> {
    files: &'a dyn ReadFiles,
    digest: u64,
    sources: Vec<(Option<Row>, Source<'a, S>)>,
}

impl<'a, S: KvSnapshot> Candidates<'a, S> {
    pub fn new(
        kv: &'a S,
        files: &'a dyn ReadFiles,
        runs: &Runs,
        prefix: [u8; keys::FIELD_DIGEST],
    ) -> Result<Self, StoreError> {
        let first = row(prefix, 0);
        let digest = digest_of(first);
        let end = first | u128::from(u64::MAX);
        let mut sources = vec![Source::Table {
            kv,
            from: Some(first.to_be_bytes()),
            // Exclusive: a record id of u64::MAX cannot occur.
            end: end.to_be_bytes(),
            chunk: Vec::new(),
            at: 0,
        }];
        for run in &runs.runs {
            let mut cursor = RunCursor::new(runs.file(), *run);
            cursor.seek(files, first)?;
            sources.push(Source::Run(cursor));
        }
        let mut with_heads = Vec::with_capacity(sources.len());
        for mut source in sources {
            let head = source.next(files)?.filter(|row| digest_of(*row) == digest);
            with_heads.push((head, source));
        }
        Ok(Candidates {
            files,
            digest,
            sources: with_heads,
        })
    }

    /// The next candidate record id.
    pub fn next(&mut self) -> Result<Option<u64>, StoreError> {
        let Some(smallest) = self.sources.iter().filter_map(|(head, _)| *head).min() else {
            return Ok(None);
        };
        for (head, source) in &mut self.sources {
            if *head == Some(smallest) {
                *head = source
                    .next(self.files)?
                    .filter(|row| digest_of(*row) == self.digest);
            }
        }
        Ok(Some(record_of(smallest)))
    }
}

/// The rows of `sorted` (in order, each once) that no run holds: one pass
/// over every run, for fsck's check of millions of rows.
pub(crate) fn not_in_runs(
    files: &dyn ReadFiles,
    runs: &Runs,
    sorted: &[Row],
) -> Result<Vec<Row>, StoreError> {
    let mut found = vec![false; sorted.len()];
    for run in &runs.runs {
        let mut cursor = RunCursor::new(runs.file(), *run);
        let mut at = 0;
        while let Some(row) = cursor.next(files)? {
            while at < sorted.len() && sorted[at] < row {
                at += 1;
            }
            if at == sorted.len() {
                break;
            }
            if sorted[at] == row {
                found[at] = true;
            }
        }
    }
    Ok(sorted
        .iter()
        .zip(found)
        .filter(|(_, found)| !found)
        .map(|(row, _)| *row)
        .collect())
}

/// Checks that every run is strictly increasing (fsck); returns the rows.
pub(crate) fn check_runs(files: &dyn ReadFiles, runs: &Runs) -> Result<u64, String> {
    let mut total = 0;
    for (number, run) in runs.runs.iter().enumerate() {
        let mut cursor = RunCursor::new(runs.file(), *run);
        let mut last = None;
        while let Some(row) = cursor.next(files).map_err(|e| e.to_string())? {
            if last.is_some_and(|last| last >= row) {
                return Err(format!("field index run {number} is not in order"));
            }
            last = Some(row);
            total += 1;
        }
    }
    Ok(total)
}

/// Readers of each field-index file: a snapshot holds its file's token, and
/// a file is merged into only when nobody else does.
#[derive(Debug, Default)]
pub(crate) struct FileUsers([Arc<()>; 2]);

impl FileUsers {
    /// Tokens for both files: a snapshot takes both before it reads which
    /// file is current, then keeps one.
    pub fn both(&self) -> [Arc<()>; 2] {
        [Arc::clone(&self.0[0]), Arc::clone(&self.0[1])]
    }

    /// Whether anyone but the store holds `slot`'s token.
    pub fn in_use(&self, slot: u8) -> bool {
        Arc::strong_count(&self.0[usize::from(slot)]) > 1
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::files::Files;
    use crate::keys::Head;
    use crate::kv::Visit;

    /// A field-index table of a few rows, for the table source.
    struct TableRows(BTreeSet<Row>);

    impl KvSnapshot for TableRows {
        fn get(&self, _: Table, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
            let row = u128::from_be_bytes(key.try_into().unwrap());
            Ok(self.0.contains(&row).then(Vec::new))
        }

        fn scan(
            &self,
            _: Table,
            start: &[u8],
            end: Option<&[u8]>,
            _: bool,
            visit: &mut Visit<'_>,
        ) -> Result<(), StoreError> {
            let start = u128::from_be_bytes(start.try_into().unwrap());
            let end = u128::from_be_bytes(end.unwrap().try_into().unwrap());
            for row in self.0.range(start..end) {
                if !visit(&row.to_be_bytes(), &[])? {
                    break;
                }
            }
            Ok(())
        }
    }

    fn prefix(n: u64) -> [u8; keys::FIELD_DIGEST] {
        keys::field_prefix("f", &n.to_string())
    }

    fn candidates(files: &dyn ReadFiles, table: &TableRows, runs: &Runs, n: u64) -> Vec<u64> {
        let mut found = Candidates::new(table, files, runs, prefix(n)).unwrap();
        let mut out = Vec::new();
        while let Some(record) = found.next().unwrap() {
            out.push(record);
        }
        out
    }

    #[test]
    fn runs_and_the_table_merge_and_compact_to_the_same_candidates() {
        let dir = tempfile::tempdir().unwrap();
        let files = Files::open_dir(dir.path()).unwrap();
        let mut runs = Runs::default();
        let mut appenders = files.appenders(&Head::default(), &runs).unwrap();
        // Digests 0..5; each run has records of every digest, repeating
        // some of the earlier runs' rows and its own.
        let mut expected: Vec<BTreeSet<u64>> = vec![BTreeSet::new(); 5];
        for round in 0..5u64 {
            let mut rows = Vec::new();
            for record in 0..3000u64 {
                let value = (record * 7 + round) % 5;
                let id = record * 3 + round % 2;
                rows.push(row(prefix(value), id));
                rows.push(row(prefix(value), id));
                expected[value as usize].insert(id);
            }
            append_run(&mut appenders, &mut runs, &mut rows).unwrap();
            assert!(rows.is_empty());
        }
        assert_eq!(runs.runs.len(), 5);
        let table = TableRows([row(prefix(2), 1), row(prefix(2), 999_999)].into());
        expected[2].extend([1, 999_999]);
        let want = |value: usize| expected[value].iter().copied().collect::<Vec<_>>();
        for value in 0..5 {
            assert_eq!(
                candidates(&appenders, &table, &runs, value as u64),
                want(value)
            );
        }
        assert!(candidates(&appenders, &table, &runs, 77).is_empty());

        // Not merged while a reader holds the other file, or with few runs.
        let before = runs.clone();
        maybe_compact(&mut appenders, &mut runs, 4, |_| true).unwrap();
        maybe_compact(&mut appenders, &mut runs, 5, |_| false).unwrap();
        assert_eq!(runs, before);
        maybe_compact(&mut appenders, &mut runs, 4, |_| false).unwrap();
        assert_eq!(runs.slot, 1);
        assert_eq!(runs.runs.len(), 1);
        let total: usize = expected.iter().map(BTreeSet::len).sum();
        assert_eq!(runs.runs[0].rows as usize, total - 2);
        for value in 0..5 {
            assert_eq!(
                candidates(&appenders, &table, &runs, value as u64),
                want(value)
            );
        }
        assert_eq!(check_runs(&appenders, &runs).unwrap(), runs.runs[0].rows);
        let mut probe = vec![
            row(prefix(3), *expected[3].last().unwrap()),
            row(prefix(3), 7_777_777),
        ];
        probe.sort_unstable();
        assert_eq!(
            not_in_runs(&appenders, &runs, &probe).unwrap(),
            vec![row(prefix(3), 7_777_777)]
        );
        assert_eq!(Runs::decode(&runs.encode()).unwrap(), runs);
    }
}
