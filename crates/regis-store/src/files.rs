//! The append-only files of a register (`spec/store.md`, "Files"): its
//! items and entries in one data file, each log's entry offsets and stored
//! hashes in fixed-width files. They are written before the commit that
//! names their new lengths, and nothing beyond the committed lengths is ever
//! used (a record is read with the bytes after it, which its frame cuts off),
//! so the key-value commit stays the one atomic step.

use std::fmt;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use regis_merkle::{Hash, postorder};
use regis_model::{Entry, Timestamp};

use crate::field_index::{FileUsers, Runs};
use crate::keys::{Head, corrupt};
use crate::{Log, StoreError};

/// The data file: items and entries, framed, in the order appended.
pub const DATA_FILE: &str = "data";

/// Record tag of an item in the data file.
const TAG_ITEM: u8 = 1;
/// Record tags of user and system entries.
const TAG_USER_ENTRY: u8 = 2;
const TAG_SYSTEM_ENTRY: u8 = 3;
/// Tag and payload length before every data-file record.
const FRAME: usize = 5;
/// An entry record's payload before its key: previous entry of the key,
/// its ordinal among the key's entries, item hash, timestamp.
const ENTRY_FIXED: usize = 8 + 8 + 32 + 20;
/// Bytes a transaction gathers per file before writing them out.
const BUFFER_BYTES: usize = 1 << 20;

/// Every file of a register's store, besides its key-value database.
pub const FILE_NAMES: [&str; 7] = [
    DATA_FILE,
    "user.offsets",
    "user.hashes",
    "system.offsets",
    "system.hashes",
    "fields.0",
    "fields.1",
];

/// What the store needs of a file: positioned reads and writes, a length, a
/// data sync. `std::fs::File` is one; crash tests supply a disk that forgets
/// what was not synced.
#[allow(clippy::len_without_is_empty)] // Files are read by length, never asked if empty.
pub trait BlobFile: Send + Sync + fmt::Debug {
    /// The file's length.
    fn len(&self) -> io::Result<u64>;
    /// Fills `buf` from `offset`; fails if the file ends before.
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
    /// Fills as much of `buf` from `offset` as the file holds: the count.
    fn read_at_most(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let held = self.len()?.saturating_sub(offset);
        let count = buf.len().min(usize::try_from(held).unwrap_or(usize::MAX));
        self.read_exact_at(offset, &mut buf[..count])?;
        Ok(count)
    }
    /// Writes all of `data` at `offset`, extending the file.
    fn write_all_at(&self, offset: u64, data: &[u8]) -> io::Result<()>;
    /// Makes every write so far durable, with the length it implies.
    fn sync_data(&self) -> io::Result<()>;
    /// Truncates or extends the file.
    fn set_len(&self, len: u64) -> io::Result<()>;
}

impl BlobFile for std::fs::File {
    fn len(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        FileExt::read_exact_at(self, buf, offset)
    }
    fn read_at_most(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let mut count = 0;
        while count < buf.len() {
            match FileExt::read_at(self, &mut buf[count..], offset + count as u64) {
                Ok(0) => break,
                Ok(read) => count += read,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(count)
    }
    fn write_all_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        FileExt::write_all_at(self, data, offset)
    }
    fn sync_data(&self) -> io::Result<()> {
        std::fs::File::sync_data(self)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        std::fs::File::set_len(self, len)
    }
}

/// Which file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FileId {
    Data,
    Offsets(Log),
    Hashes(Log),
    /// Field-index runs: file 0 or 1 (`field_index`).
    Fields(u8),
}

impl FileId {
    const ALL: [FileId; 7] = [
        FileId::Data,
        FileId::Offsets(Log::User),
        FileId::Hashes(Log::User),
        FileId::Offsets(Log::System),
        FileId::Hashes(Log::System),
        FileId::Fields(0),
        FileId::Fields(1),
    ];

    fn slot(self) -> usize {
        match self {
            FileId::Data => 0,
            FileId::Offsets(Log::User) => 1,
            FileId::Hashes(Log::User) => 2,
            FileId::Offsets(Log::System) => 3,
            FileId::Hashes(Log::System) => 4,
            FileId::Fields(0) => 5,
            FileId::Fields(_) => 6,
        }
    }

    fn name(self) -> &'static str {
        FILE_NAMES[self.slot()]
    }

    /// The length `head` and `runs` give this file.
    fn committed_len(self, head: &Head, runs: &Runs) -> Result<u64, StoreError> {
        let too_big = || corrupt(format!("{}: the committed length overflows", self.name()));
        match self {
            FileId::Data => Ok(head.data),
            FileId::Fields(slot) => Ok(runs.lens()[usize::from(slot)]),
            FileId::Offsets(log) => head.size(log).checked_mul(8).ok_or_else(too_big),
            FileId::Hashes(log) => postorder::stored_count(head.size(log))
                .and_then(|count| count.checked_mul(32))
                .ok_or_else(too_big),
        }
    }
}

/// The files of a register, shared by its writer and every reader.
#[derive(Clone)]
pub struct Files {
    files: [Arc<dyn BlobFile>; 7],
    /// The newest published checkpoints (`published`).
    published: Arc<dyn BlobFile>,
    users: Arc<FileUsers>,
}

impl fmt::Debug for Files {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Files").finish_non_exhaustive()
    }
}

impl Files {
    /// Opens (creating if needed) the files in a register's directory.
    pub fn open_dir(dir: &Path) -> Result<Files, StoreError> {
        std::fs::create_dir_all(dir).map_err(StoreError::Io)?;
        let open = |name: &str| -> Result<Arc<dyn BlobFile>, StoreError> {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(dir.join(name))
                .map_err(StoreError::Io)?;
            Ok(Arc::new(file))
        };
        let mut files = Vec::with_capacity(FILE_NAMES.len());
        for name in FILE_NAMES {
            files.push(open(name)?);
        }
        let files = Files {
            files: files
                .try_into()
                .map_err(|_| corrupt("the list of files has the wrong length"))?,
            published: open(crate::published::PUBLISHED_FILE)?,
            users: Arc::default(),
        };
        // A created file's directory entry is durable once the directory is.
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(StoreError::Io)?;
        Ok(files)
    }

    /// Files on other storage, in [`FILE_NAMES`] order, and the file of
    /// published checkpoints (crash tests).
    pub fn from_parts(files: [Arc<dyn BlobFile>; 7], published: Arc<dyn BlobFile>) -> Files {
        Files {
            files,
            published,
            users: Arc::default(),
        }
    }

    /// The file of published checkpoints.
    pub(crate) fn published(&self) -> &dyn BlobFile {
        &*self.published
    }

    /// Who reads which field-index file.
    pub(crate) fn users(&self) -> &FileUsers {
        &self.users
    }

    fn file(&self, id: FileId) -> &dyn BlobFile {
        &*self.files[id.slot()]
    }

    /// Writes back the bytes of commits whose files were not synced (the
    /// rows of `file_tails`: each commit's appends, at their offsets), and
    /// syncs every file: a crash may have lost them from the files, never
    /// from the database. Writing them again is harmless when it did not.
    pub(crate) fn replay_tails(&self, tails: &[(u8, u64, Vec<u8>)]) -> Result<(), StoreError> {
        if tails.is_empty() {
            return Ok(());
        }
        for (slot, offset, bytes) in tails {
            let file = self
                .files
                .get(usize::from(*slot))
                .ok_or_else(|| corrupt(format!("a file tail names file {slot}")))?;
            file.write_all_at(*offset, bytes).map_err(StoreError::Io)?;
        }
        let all: Vec<&dyn BlobFile> = self.files.iter().map(|file| &**file).collect();
        sync_files(&all)
    }

    /// Brings every file to the length `head` gives it: longer files hold
    /// the writes of a transaction that never committed (cut off); a
    /// shorter one lost what a commit made durable (refused).
    pub(crate) fn recover(&self, head: &Head, runs: &Runs) -> Result<(), StoreError> {
        for id in FileId::ALL {
            let committed = id.committed_len(head, runs)?;
            let file = self.file(id);
            let len = file.len().map_err(StoreError::Io)?;
            if len < committed {
                return Err(corrupt(format!(
                    "{} has {len} bytes, the last commit wrote {committed}",
                    id.name()
                )));
            }
            if len > committed {
                file.set_len(committed).map_err(StoreError::Io)?;
                file.sync_data().map_err(StoreError::Io)?;
            }
        }
        Ok(())
    }

    /// A transaction's appenders, starting at the lengths `head` and
    /// `runs` give.
    pub(crate) fn appenders(&self, head: &Head, runs: &Runs) -> Result<Appenders<'_>, StoreError> {
        let mut lens = [0; 7];
        for id in FileId::ALL {
            lens[id.slot()] = id.committed_len(head, runs)?;
        }
        Ok(Appenders {
            files: self,
            appenders: lens.map(|start| Appender {
                start,
                flushed: start,
                buf: Vec::new(),
                restarted: false,
            }),
            failed: false,
        })
    }
}

/// Syncs `files`, overlapping the syncs: the disk completes them together.
fn sync_files(files: &[&dyn BlobFile]) -> Result<(), StoreError> {
    let sync = |file: &dyn BlobFile| file.sync_data().map_err(StoreError::Io);
    match files {
        [] => Ok(()),
        [file] => sync(*file),
        [first, rest @ ..] => std::thread::scope(|scope| {
            let others: Vec<_> = rest
                .iter()
                .map(|file| scope.spawn(move || sync(*file)))
                .collect();
            let mut result = sync(*first);
            for other in others {
                let done = other
                    .join()
                    .unwrap_or_else(|_| Err(corrupt("a file sync panicked")));
                result = result.and(done);
            }
            result
        }),
    }
}

/// Positioned reads of the files, as a snapshot or a transaction sees them.
pub(crate) trait ReadFiles {
    /// Fills `buf` from `offset`.
    fn read_at(&self, id: FileId, offset: u64, buf: &mut [u8]) -> Result<(), StoreError>;
    /// Fills as much of `buf` from `offset` as the file holds: the count.
    /// Bytes beyond the committed length may come back; the reader frames
    /// what it reads.
    fn read_at_most(&self, id: FileId, offset: u64, buf: &mut [u8]) -> Result<usize, StoreError>;
}

/// A failed read of `len` bytes of `id` at `offset`.
fn read_failed(id: FileId, offset: u64, len: usize, e: io::Error) -> StoreError {
    corrupt(format!(
        "{}: reading {len} bytes at {offset}: {e}",
        id.name()
    ))
}

impl ReadFiles for Files {
    fn read_at(&self, id: FileId, offset: u64, buf: &mut [u8]) -> Result<(), StoreError> {
        self.file(id)
            .read_exact_at(offset, buf)
            .map_err(|e| read_failed(id, offset, buf.len(), e))
    }

    fn read_at_most(&self, id: FileId, offset: u64, buf: &mut [u8]) -> Result<usize, StoreError> {
        self.file(id)
            .read_at_most(offset, buf)
            .map_err(|e| read_failed(id, offset, buf.len(), e))
    }
}

/// One file's part of a transaction: bytes appended past `flushed` wait in
/// `buf`; everything from `start` on is this transaction's.
#[derive(Debug)]
struct Appender {
    start: u64,
    flushed: u64,
    buf: Vec<u8>,
    /// Emptied by [`Appenders::restart`]: only a sync makes that durable.
    restarted: bool,
}

impl Appender {
    fn len(&self) -> u64 {
        self.flushed + self.buf.len() as u64
    }
}

/// The files as one write transaction appends to them.
#[derive(Debug)]
pub(crate) struct Appenders<'f> {
    files: &'f Files,
    appenders: [Appender; 7],
    /// Whether a write, length change or sync failed: the files' state
    /// past their last synced bytes is then unknown (a failed fsync may
    /// have dropped earlier unsynced writes too), whatever the caller does
    /// with the error.
    failed: bool,
}

impl Appenders<'_> {
    /// The length of `id` with this transaction's appends.
    pub fn len(&self, id: FileId) -> u64 {
        self.appenders[id.slot()].len()
    }

    /// Appends `bytes` to `id`; returns where they start.
    pub fn append(&mut self, id: FileId, bytes: &[u8]) -> Result<u64, StoreError> {
        let offset = self.len(id);
        let appender = &mut self.appenders[id.slot()];
        appender.buf.extend_from_slice(bytes);
        if appender.buf.len() >= BUFFER_BYTES {
            self.flush(id)?;
        }
        Ok(offset)
    }

    fn flush(&mut self, id: FileId) -> Result<(), StoreError> {
        let appender = &mut self.appenders[id.slot()];
        if appender.buf.is_empty() {
            return Ok(());
        }
        if let Err(error) = self
            .files
            .file(id)
            .write_all_at(appender.flushed, &appender.buf)
        {
            self.failed = true;
            return Err(StoreError::Io(error));
        }
        appender.flushed += appender.buf.len() as u64;
        appender.buf.clear();
        Ok(())
    }

    /// Empties `id` to write it anew (a field-index file no commit or
    /// reader uses any more).
    pub fn restart(&mut self, id: FileId) -> Result<(), StoreError> {
        if let Err(error) = self.files.file(id).set_len(0) {
            self.failed = true;
            return Err(StoreError::Io(error));
        }
        self.appenders[id.slot()] = Appender {
            start: 0,
            flushed: 0,
            buf: Vec::new(),
            restarted: true,
        };
        Ok(())
    }

    /// Bytes this transaction appended, over all files.
    pub fn appended(&self) -> u64 {
        self.appenders.iter().map(|a| a.len() - a.start).sum()
    }

    /// Whether a file was emptied, which only a sync makes durable.
    pub fn restarted(&self) -> bool {
        self.appenders.iter().any(|a| a.restarted)
    }

    /// Writes out every buffer (no sync).
    pub fn flush_all(&mut self) -> Result<(), StoreError> {
        for id in FileId::ALL {
            self.flush(id)?;
        }
        Ok(())
    }

    /// The files this transaction appended to, as a bit set of slots.
    pub fn touched(&self) -> u8 {
        FileId::ALL
            .iter()
            .filter(|id| {
                let appender = &self.appenders[id.slot()];
                appender.len() > appender.start || appender.restarted
            })
            .fold(0, |set, id| set | 1 << id.slot())
    }

    /// Each file's appended bytes, with the file's slot and where they
    /// start: what a commit logs instead of syncing the files.
    pub fn tails(&self) -> Result<Vec<(u8, u64, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        for id in FileId::ALL {
            let appender = &self.appenders[id.slot()];
            let len = appender.len() - appender.start;
            if len > 0 {
                let mut bytes =
                    vec![0; usize::try_from(len).map_err(|_| corrupt("tail too long"))?];
                self.read_at(id, appender.start, &mut bytes)?;
                out.push((id.slot() as u8, appender.start, bytes));
            }
        }
        Ok(out)
    }

    /// Writes out and syncs the files of the slots in `files` (a bit set):
    /// after this, a commit naming their lengths names durable bytes.
    pub fn sync(&mut self, files: u8) -> Result<(), StoreError> {
        self.flush_all()?;
        let dirty: Vec<&dyn BlobFile> = FileId::ALL
            .iter()
            .filter(|id| files & 1 << id.slot() != 0)
            .map(|id| self.files.file(*id))
            .collect();
        let synced = sync_files(&dirty);
        self.failed |= synced.is_err();
        synced
    }

    /// Whether writing the files failed in this transaction.
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// The lengths to commit in `head`, which must agree with the sizes.
    pub fn data_len(&self) -> u64 {
        self.len(FileId::Data)
    }
}

impl ReadFiles for Appenders<'_> {
    fn read_at(&self, id: FileId, offset: u64, buf: &mut [u8]) -> Result<(), StoreError> {
        let appender = &self.appenders[id.slot()];
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|end| *end <= appender.len())
            .ok_or_else(|| corrupt(format!("{}: read past the end at {offset}", id.name())))?;
        // The part below `flushed` is in the file, the rest in `buf`.
        let split = usize::try_from(appender.flushed.clamp(offset, end) - offset)
            .map_err(|_| corrupt("read too large"))?;
        let (from_file, from_buf) = buf.split_at_mut(split);
        if !from_file.is_empty() {
            self.files.read_at(id, offset, from_file)?;
        }
        if !from_buf.is_empty() {
            let at = usize::try_from(offset.max(appender.flushed) - appender.flushed)
                .map_err(|_| corrupt("read too large"))?;
            from_buf.copy_from_slice(&appender.buf[at..at + from_buf.len()]);
        }
        Ok(())
    }

    fn read_at_most(&self, id: FileId, offset: u64, buf: &mut [u8]) -> Result<usize, StoreError> {
        let held = self.appenders[id.slot()].len().saturating_sub(offset);
        let count = buf.len().min(usize::try_from(held).unwrap_or(usize::MAX));
        self.read_at(id, offset, &mut buf[..count])?;
        Ok(count)
    }
}

/// An entry as the data file keeps it: the entry, its item (the store
/// keeps entries of one item), and its place in its key's history
/// (`prev`: the key's entry before it in the same log, 0 for none;
/// `ordinal`: 1 for a key's first entry, and so on).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StoredEntry {
    pub entry: Entry,
    item: Hash,
    pub prev: u64,
    pub ordinal: u64,
}

impl StoredEntry {
    /// The hash of its item, the entry's one.
    pub fn item_hash(&self) -> Hash {
        self.item
    }
}

fn entry_tag(log: Log) -> u8 {
    match log {
        Log::User => TAG_USER_ENTRY,
        Log::System => TAG_SYSTEM_ENTRY,
    }
}

/// Frames a data-file record: tag ‖ len: u32 ‖ payload.
fn frame(tag: u8, payload_len: usize) -> Result<[u8; FRAME], StoreError> {
    let len = u32::try_from(payload_len)
        .map_err(|_| StoreError::Corrupt(format!("a record of {payload_len} bytes")))?;
    let mut out = [0; FRAME];
    out[0] = tag;
    out[1..].copy_from_slice(&len.to_be_bytes());
    Ok(out)
}

/// Appends an item record; returns its offset.
pub(crate) fn append_item(files: &mut Appenders<'_>, json: &[u8]) -> Result<u64, StoreError> {
    let mut record = Vec::with_capacity(FRAME + json.len());
    record.extend_from_slice(&frame(TAG_ITEM, json.len())?);
    record.extend_from_slice(json);
    files.append(FileId::Data, &record)
}

/// Appends an entry record of one item and its offset (it is entry
/// `offsets.len / 8 + 1` of its log), with its place in its key's history.
pub(crate) fn append_entry(
    files: &mut Appenders<'_>,
    entry: &Entry,
    item: &Hash,
    prev: u64,
    ordinal: u64,
) -> Result<(), StoreError> {
    let log = entry.log;
    let key = entry.key.as_bytes();
    let mut record = Vec::with_capacity(FRAME + ENTRY_FIXED + key.len());
    record.extend_from_slice(&frame(entry_tag(log), ENTRY_FIXED + key.len())?);
    record.extend_from_slice(&prev.to_be_bytes());
    record.extend_from_slice(&ordinal.to_be_bytes());
    record.extend_from_slice(item);
    record.extend_from_slice(entry.timestamp.as_str().as_bytes());
    record.extend_from_slice(key);
    let offset = files.append(FileId::Data, &record)?;
    files.append(FileId::Offsets(log), &offset.to_be_bytes())?;
    Ok(())
}

/// Appends a stored hash, which must be the next in post-order.
pub(crate) fn append_hash(
    files: &mut Appenders<'_>,
    log: Log,
    level: u8,
    index: u64,
    hash: &Hash,
) -> Result<(), StoreError> {
    let at = files.append(FileId::Hashes(log), hash)?;
    match postorder::position(level, index).and_then(|p| p.checked_mul(32)) {
        Some(expected) if expected == at => Ok(()),
        _ => Err(corrupt(format!(
            "{log} stored hash ({level}, {index}) would be written at {at}"
        ))),
    }
}

/// Bytes of a data record read at once: entries and most items fit, so
/// that a record costs one read, not two (its frame, then its payload).
const RECORD_READ: usize = 512;

/// Reads the record at `offset` of the data file: its tag and payload.
fn read_record(files: &dyn ReadFiles, offset: u64) -> Result<(u8, Vec<u8>), StoreError> {
    let mut first = [0; RECORD_READ];
    let read = files.read_at_most(FileId::Data, offset, &mut first)?;
    let Some(header) = first[..read].first_chunk::<FRAME>() else {
        return Err(corrupt(format!(
            "{}: the record at {offset} is cut short in its frame",
            FileId::Data.name()
        )));
    };
    let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]);
    let end = offset + FRAME as u64 + u64::from(len);
    let have = &first[FRAME..read];
    if let Some(payload) = have.get(..len as usize) {
        return Ok((header[0], payload.to_vec()));
    }
    // Read the rest in chunks, so that a rotten length fails at the end of
    // the file instead of allocating up to 4 GiB first.
    let mut payload = have.to_vec();
    let mut at = offset + read as u64;
    while at < end {
        let chunk = (end - at).min(BUFFER_BYTES as u64) as usize;
        let filled = payload.len();
        payload.resize(filled + chunk, 0);
        files.read_at(FileId::Data, at, &mut payload[filled..])?;
        at += chunk as u64;
    }
    Ok((header[0], payload))
}

/// The item record at `offset`: its canonical JSON.
pub(crate) fn read_item(files: &dyn ReadFiles, offset: u64) -> Result<Vec<u8>, StoreError> {
    match read_record(files, offset)? {
        (TAG_ITEM, json) => Ok(json),
        (tag, _) => Err(corrupt(format!(
            "data: the record at {offset} is not an item (tag {tag})"
        ))),
    }
}

/// Where entry `number` (1-based, within the log) is in the data file.
pub(crate) fn entry_offset(
    files: &dyn ReadFiles,
    log: Log,
    number: u64,
) -> Result<u64, StoreError> {
    let mut bytes = [0; 8];
    let at = number
        .checked_sub(1)
        .and_then(|index| index.checked_mul(8))
        .ok_or_else(|| corrupt(format!("{log} entry {number} has no offset")))?;
    files.read_at(FileId::Offsets(log), at, &mut bytes)?;
    Ok(u64::from_be_bytes(bytes))
}

/// Entry `number` of `log`, which the caller knows is committed (or
/// appended by the transaction reading it).
pub(crate) fn read_entry(
    files: &dyn ReadFiles,
    log: Log,
    number: u64,
) -> Result<StoredEntry, StoreError> {
    let offset = entry_offset(files, log, number)?;
    let (tag, payload) = read_record(files, offset)?;
    let bad = |what: &str| {
        corrupt(format!(
            "{log} entry {number} at data offset {offset}: {what}"
        ))
    };
    if tag != entry_tag(log) || payload.len() < ENTRY_FIXED {
        return Err(bad("not an entry record of this log"));
    }
    let (fixed, key) = payload.split_at(ENTRY_FIXED);
    let u64_at = |at: usize| {
        let mut bytes = [0; 8];
        bytes.copy_from_slice(&fixed[at..at + 8]);
        u64::from_be_bytes(bytes)
    };
    let mut item = [0; 32];
    item.copy_from_slice(&fixed[16..48]);
    let timestamp = std::str::from_utf8(&fixed[48..])
        .ok()
        .and_then(|text| Timestamp::parse(text).ok())
        .ok_or_else(|| bad("its timestamp does not parse"))?;
    let key = std::str::from_utf8(key).map_err(|_| bad("its key is not UTF-8"))?;
    Ok(StoredEntry {
        entry: Entry::new(log, key, timestamp, regis_model::ItemHash(item)),
        item,
        prev: u64_at(0),
        ordinal: u64_at(8),
    })
}

/// A stored hash of `log`.
pub(crate) fn read_hash(
    files: &dyn ReadFiles,
    log: Log,
    level: u8,
    index: u64,
) -> Result<Hash, StoreError> {
    let at = postorder::position(level, index)
        .and_then(|p| p.checked_mul(32))
        .ok_or_else(|| corrupt(format!("no stored hash ({level}, {index})")))?;
    let mut hash = [0; 32];
    files.read_at(FileId::Hashes(log), at, &mut hash)?;
    Ok(hash)
}

/// What a walk of the data file finds, record by record.
pub(crate) enum DataRecord {
    Item,
    Entry(Log),
}

/// Walks the data file's records up to `end`, in order, with their offsets,
/// reading it in large chunks: fsck's check that the file is whole and
/// framed.
pub(crate) fn walk_data(
    files: &dyn ReadFiles,
    end: u64,
    mut visit: impl FnMut(u64, DataRecord) -> Result<bool, StoreError>,
) -> Result<(), StoreError> {
    let mut chunk = Vec::new();
    let mut chunk_start = 0u64;
    let mut offset = 0u64;
    while offset < end {
        // Keep the next frame within the chunk.
        let chunk_end = chunk_start + chunk.len() as u64;
        if offset + FRAME as u64 > chunk_end {
            let len = (end - offset).min(BUFFER_BYTES as u64);
            chunk.resize(len as usize, 0);
            files.read_at(FileId::Data, offset, &mut chunk)?;
            chunk_start = offset;
        }
        let at = (offset - chunk_start) as usize;
        let header = chunk
            .get(at..at + FRAME)
            .ok_or_else(|| corrupt(format!("data: a record frame at {offset} is cut off")))?;
        let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]);
        let next = offset + (FRAME as u64) + u64::from(len);
        if next > end {
            return Err(corrupt(format!(
                "data: the record at {offset} runs past the end"
            )));
        }
        let record = match header[0] {
            TAG_ITEM => DataRecord::Item,
            TAG_USER_ENTRY => DataRecord::Entry(Log::User),
            TAG_SYSTEM_ENTRY => DataRecord::Entry(Log::System),
            tag => {
                return Err(corrupt(format!(
                    "data: unknown record tag {tag} at {offset}"
                )));
            }
        };
        if !visit(offset, record)? {
            break;
        }
        offset = next;
    }
    Ok(())
}
