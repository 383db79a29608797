//! `B/download-rsf[/{start}[/{end}]]`: RSF streamed from a store snapshot
//! with constant memory: a blocking task writes through regis-model's
//! [`RsfWriter`] into a bounded channel that the response body drains, one
//! page of entries at a time.
//!
//! - The full dump is GOV.UK's layout: the empty-tree assertion, every item
//!   (one scan of the item table, in hash order, each once), every system
//!   entry, every user entry, the final assertion. The writer recomputes the
//!   user root as it goes; a dump whose root differs from the store's is cut
//!   short (the client sees a truncated body without its final assertion).
//! - A delta `{a}/{b}` (and `{a}`, to the current size) begins and ends with
//!   `assert-root-hash` of the user log at `a` and `b`, and carries user
//!   entries `a+1 ..= b`, each preceded by its items. It does **not** carry
//!   system entries: the store does not record the user-log size at which
//!   each system entry was appended, which regis-model's delta layout needs
//!   to place them.

use std::io::{self, Write};
use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use regis_merkle::Frontier;
use regis_model::rsf::RsfWriter;
use regis_model::{Entry, EntryType, Item, format_hash};
use regis_store::{DirBackend, KvSnapshot, Log, Snapshot};
use tokio::sync::{OwnedSemaphorePermit, mpsc};

use crate::app::RegisterState;
use crate::error::ApiError;
use crate::http;

/// Entries read per page while streaming.
const PAGE: u64 = 256;
/// Bytes buffered before a chunk is sent.
const CHUNK: usize = 64 * 1024;
/// Chunks in flight between the writer and the connection.
const CHUNKS: usize = 4;

/// Which RSF document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Range {
    /// The full dump.
    Full,
    /// The user log from size `start` to the current size.
    From(u64),
    /// The user log from size `start` to size `end`.
    Between(u64, u64),
}

/// Checks the range against the store and starts streaming it.
pub fn download<B: DirBackend>(
    reg: Arc<RegisterState<B>>,
    range: Range,
    permit: OwnedSemaphorePermit,
    patience: std::time::Duration,
) -> Result<Response, ApiError> {
    let size = reg.snapshot()?.size(Log::User);
    let bounds = match range {
        Range::Full => None,
        Range::From(start) => Some((start, None)),
        Range::Between(start, end) => Some((start, Some(end))),
    };
    if let Some((start, end)) = bounds {
        if let Some(end) = end
            && start > end
        {
            return Err(ApiError::bad_request(
                "bad-range",
                format!("the start size {start} is larger than the end size {end}"),
            ));
        }
        let last = end.unwrap_or(start);
        if last > size {
            return Err(ApiError::not_found(
                "beyond-tree",
                format!(
                    "register {} has {size} entries; there is no tree of size {last}",
                    reg.name
                ),
            ));
        }
    }
    let (sender, mut receiver) = mpsc::channel::<Result<Bytes, io::Error>>(CHUNKS);
    let runtime = tokio::runtime::Handle::try_current().map_err(ApiError::internal)?;
    let spawner = runtime.clone();
    spawner.spawn_blocking(move || {
        let _permit = permit;
        let mut out = ChannelWriter {
            sender: sender.clone(),
            buffer: Vec::with_capacity(CHUNK),
            runtime: runtime.clone(),
            patience,
        };
        let result = reg
            .store
            .snapshot()
            .map_err(io::Error::other)
            .and_then(|snapshot| write(&snapshot, range, &mut out))
            .and_then(|()| out.flush());
        if let Err(error) = result {
            tracing::warn!(register = %reg.name, %error, "RSF download cut short");
            let _ = runtime.block_on(tokio::time::timeout(patience, sender.send(Err(error))));
        }
    });
    let stream = futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx));
    Ok(http::ok(
        "application/uk-gov-rsf",
        http::SHORT,
        Body::from_stream(stream),
    ))
}

/// Sends what is written as body chunks; fails once the client is gone.
struct ChannelWriter {
    sender: mpsc::Sender<Result<Bytes, io::Error>>,
    buffer: Vec<u8>,
    runtime: tokio::runtime::Handle,
    patience: std::time::Duration,
}

impl Write for ChannelWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() >= CHUNK {
            self.flush()?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buffer,
            Vec::with_capacity(CHUNK),
        ));
        // A client that takes no chunk for `patience` is dropped, so a slow
        // reader cannot hold a permit and a thread for ever.
        let send = tokio::time::timeout(self.patience, self.sender.send(Ok(chunk)));
        match self.runtime.block_on(send) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the client went away",
            )),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client read nothing for the request timeout",
            )),
        }
    }
}

fn store_error(error: impl std::fmt::Display) -> io::Error {
    io::Error::other(error.to_string())
}

fn entry_of(log: Log, number: u64, leaf: &[u8]) -> io::Result<Entry> {
    let kind = match log {
        Log::User => EntryType::User,
        Log::System => EntryType::System,
    };
    Entry::parse_leaf(kind, leaf)
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

/// Writes entries `first ..= last` of `log`, a page at a time, each
/// preceded by its items when `with_items`.
fn write_entries<S: KvSnapshot, W: Write>(
    snapshot: &Snapshot<S>,
    writer: &mut RsfWriter<W>,
    log: Log,
    first: u64,
    last: u64,
    with_items: bool,
) -> io::Result<()> {
    let mut next = first;
    while next <= last {
        let limit = PAGE.min(last - next + 1);
        let page = snapshot.entries(log, next, limit).map_err(store_error)?;
        if page.is_empty() {
            return Err(store_error(format!("{log} entry {next} is missing")));
        }
        for (number, leaf) in page {
            let entry = entry_of(log, number, &leaf)?;
            if with_items {
                for hash in &entry.item_hashes {
                    writer.add_item(&item_of(snapshot, hash.as_bytes())?)?;
                }
            }
            writer.append_entry(&entry)?;
            if number >= last {
                return Ok(());
            }
            next = number + 1;
        }
    }
    Ok(())
}

fn write<S: KvSnapshot, W: Write>(snapshot: &Snapshot<S>, range: Range, out: W) -> io::Result<()> {
    let size = snapshot.size(Log::User);
    let (start, end) = match range {
        Range::Full => {
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
            write_entries(
                snapshot,
                &mut writer,
                Log::System,
                1,
                snapshot.size(Log::System),
                false,
            )?;
            write_entries(snapshot, &mut writer, Log::User, 1, size, false)?;
            return finish(snapshot, writer, size);
        }
        Range::From(start) => (start, size),
        Range::Between(start, end) => (start, end),
    };
    let frontier =
        Frontier::from_reader(&snapshot.hashes(Log::User), start).map_err(store_error)?;
    let mut writer = RsfWriter::resume(out, frontier);
    writer.assert_root_hash()?;
    write_entries(
        snapshot,
        &mut writer,
        Log::User,
        start.saturating_add(1),
        end,
        true,
    )?;
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
