//! `B/download-rsf[/{start}[/{end}]]`: RSF streamed from a store snapshot
//! with constant memory: a blocking task writes regis-store's RSF
//! ([`regis_store::rsf`], which the publisher's chunks share) into a
//! bounded channel that the response body drains, one
//! page of entries at a time. The task waits while the channel is full, so
//! it produces no faster than the client reads ([`BUFFERED`] at most held
//! per download); it holds a slot of `limits.max-rsf-streams` (beyond, 503),
//! not one of `limits.concurrency`, and ends once its client has taken
//! nothing for `limits.write-timeout-seconds`.
//!
//! - The full dump is GOV.UK's layout: the empty-tree assertion, every item
//!   (one scan of the item table, in hash order, each once), every system
//!   entry, every user entry, the final assertion. The writer recomputes the
//!   user root as it goes; a dump whose root differs from the store's is cut
//!   short (the client sees a truncated body without its final assertion).
//!   `download-rsf/0` without `system-size` is the same bytes: GOV.UK's
//!   clients load a register through it.
//! - A delta `{a}/{b}` (and `{a}`, to the current size) is regis-model's
//!   delta layout (`regis_model::rsf`): `assert-root-hash` of the user log
//!   at `a`, then user entries `a+1 ..= b` and the system entries after
//!   the first `system-size` (the query parameter; its default is
//!   regis-model's) that were appended while the user log had at most `b`
//!   entries, each placed after as many user entries as the log had when
//!   it was appended (the store keeps that size,
//!   `Snapshot::system_position`); every entry preceded by its items; then
//!   `assert-root-hash` at `b`. A delta whose `b` is below the current
//!   size never changes (`Cache-Control` immutable); one to the current
//!   size may still gain system entries appended at that size.

use std::io::{self, Write};
use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use regis_store::rsf::Delta;
use regis_store::{DirBackend, KvSnapshot, Log, Snapshot};
use tokio::sync::{Semaphore, mpsc};

use crate::app::RegisterState;
use crate::config::Limits;
use crate::error::ApiError;
use crate::http;

/// Bytes buffered before a chunk is sent.
const CHUNK: usize = 64 * 1024;
/// Chunks in flight between the writer and the connection.
const CHUNKS: usize = 4;
/// What one download holds beyond hyper's connection buffer: the chunks in
/// the channel and the one being filled, each `CHUNK` bytes plus at most
/// one RSF line (an item, an entry) past it.
pub const BUFFERED: usize = (CHUNKS + 1) * CHUNK;

/// Which RSF document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Range {
    /// The full dump.
    Full,
    /// A delta.
    Delta {
        /// The user-log size it starts from.
        start: u64,
        /// The user-log size it ends at; `None` for the current size.
        end: Option<u64>,
        /// The system entries the reader holds (`system-size`), if stated.
        held: Option<u64>,
    },
}

impl Range {
    /// `download-rsf/{start}`: the full dump when `start` is 0 and no
    /// system size is stated, as GOV.UK served it; otherwise the delta to
    /// the current size.
    pub fn open_ended(start: u64, held: Option<u64>) -> Range {
        if start == 0 && held.is_none() {
            Range::Full
        } else {
            Range::Delta {
                start,
                end: None,
                held,
            }
        }
    }
}

/// Checks the range against the store (a 400 for sizes beyond either log,
/// as GOV.UK answered) and starts streaming it, in one of the `streams`
/// slots (503 when none is free).
pub fn download<B: DirBackend>(
    reg: Arc<RegisterState<B>>,
    range: Range,
    streams: &Arc<Semaphore>,
    limits: &Limits,
) -> Result<Response, ApiError> {
    let snapshot = reg.snapshot()?;
    let (size, system_size) = (snapshot.size(Log::User), snapshot.size(Log::System));
    drop(snapshot);
    let mut cache = http::SHORT;
    if let Range::Delta { start, end, held } = range {
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
            return Err(ApiError::bad_request(
                "beyond-tree",
                format!(
                    "register {} has {size} entries; there is no tree of size {last}",
                    reg.name
                ),
            ));
        }
        if let Some(held) = held.filter(|&held| held > system_size) {
            return Err(ApiError::bad_request(
                "beyond-tree",
                format!(
                    "register {} has {system_size} system entries; system-size {held} is beyond them",
                    reg.name
                ),
            ));
        }
        if end.is_some_and(|end| end < size) {
            // No system entry can join it any more: see the module docs.
            cache = http::IMMUTABLE;
        }
    }
    let permit = Arc::clone(streams).try_acquire_owned().map_err(|_| {
        ApiError::unavailable(
            "busy",
            format!(
                "the server streams {} RSF downloads, its limit; retry",
                limits.max_rsf_streams
            ),
        )
    })?;
    let patience = limits.write_timeout();
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
        cache,
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
        // reader cannot hold a stream slot and a thread for ever. (The
        // connection's write timeout closes it first; this covers a body
        // that is not polled at all.)
        let send = tokio::time::timeout(self.patience, self.sender.send(Ok(chunk)));
        match self.runtime.block_on(send) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the client went away",
            )),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client read nothing for the write timeout",
            )),
        }
    }
}

/// Writes `range` of `snapshot` to `out` (regis-store's RSF writer: the
/// publisher's chunks are the same bytes).
fn write<S: KvSnapshot, W: Write>(snapshot: &Snapshot<S>, range: Range, out: W) -> io::Result<()> {
    match range {
        Range::Full => regis_store::rsf::write_full(snapshot, out),
        Range::Delta { start, end, held } => {
            let delta = Delta {
                start,
                end: end.unwrap_or(snapshot.size(Log::User)),
                held,
                system_limit: None,
            };
            regis_store::rsf::write_delta(snapshot, delta, out)
        }
    }
}
