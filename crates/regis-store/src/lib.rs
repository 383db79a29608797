//! Durable storage for Regis registers: per register, append-only files of
//! entries, items and the stored Merkle hashes of both logs, and one
//! key-value database of indexes over them, changed only by one atomic,
//! durable commit at a time (`spec/store.md`).
//!
//! - [`KvBackend`], [`KvSnapshot`]: the small key-value interface the
//!   backends implement: [`RedbBackend`] (default) and `SledBackend`
//!   (feature `sled`). [`Files`]: the append-only files, on any
//!   [`BlobFile`].
//! - [`Store`], [`Writer`], [`Snapshot`]: everything that knows what the
//!   keys mean, once, for every backend: atomic [`Batch`] commits and
//!   write transactions ([`Txn`], which a bulk load of any size streams
//!   into), the open-time check against the last signed
//!   checkpoint, reads of entries, items, records, histories, stored
//!   hashes ([`LogHashes`] is a
//!   `regis_merkle::HashReader`), tiles and entry bundles.
//! - [`Sequencer`]: the one writer of a register: batches requests,
//!   validates them with regis-model's loader, signs, commits entries and
//!   checkpoints at once, then answers; a [`Request::Stream`] is loaded as
//!   it is read, in a transaction of its own.
//! - [`Registry`]: register directories, signing keys and origins.
//! - [`Tokens`]: write tokens, kept as hashes, checked in constant time.
//! - [`Mirror`]: a register copied from another server, verified by
//!   regis-mirror before it is stored: no signing key, the upstream's URL
//!   and pinned keys in its directory ([`Registry::open_mirror`]).
//! - [`rsf`]: RSF (the full dump and deltas) written from a snapshot.
//! - [`fsck()`]: recomputes everything and reports the first difference.
//! - [`link_census`]: a register's links, counted by what they resolve to.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod bloom;
mod error;
mod field_index;
mod files;
mod fsck;
mod health;
mod held_writes;
mod item_filter;
mod keys;
mod kv;
mod links;
mod mirror;
mod published;
mod redb_backend;
mod registry;
pub mod rsf;
mod sequencer;
#[cfg(feature = "sled")]
mod sled_backend;
mod store;
mod tokens;

pub use error::{BatchError, StoreError};
pub use files::{BlobFile, DATA_FILE, FILE_NAMES, Files};
pub use fsck::{FsckError, FsckReport, fsck, fsck_with_keys};
pub use health::{Health, WriteFailure};
pub use kv::{DirBackend, KvBackend, KvBatch, KvSnapshot, KvWriter, Table, TxnSize, Visit, Write};
pub use links::{link_census, resolve_among};
pub use mirror::{Mirror, RegisterKind, UPSTREAM_FILE, Upstream};
pub use published::PUBLISHED_FILE;
pub use redb_backend::{Opener, RECENT_FILES, REDB_FILE, RedbBackend, RedbOptions, RedbSnapshot};
pub use registry::{
    HOST_FILE, KEY_FILE, LogSigners, Register, Registry, RegistryError, write_atomically,
};
pub use sequencer::{
    Appended, Clock, Commands, Receipt, Request, Sequencer, SequencerConfig, SequencerError,
    SequencerHandle, Ticket, Timing, load_schema, system_clock,
};
#[cfg(feature = "sled")]
pub use sled_backend::{SLED_DIR, SledBackend, SledSnapshot};
pub use store::{
    Batch, INLINE_FILTER_ENTRIES, LogHashes, NewEntry, Record, RecordEntry, SignedTree, Snapshot,
    Store, TAIL_BYTES, TreeHead, Txn, Writer,
};
pub use tokens::{MintedToken, Scope, TOKENS_FILE, TokenError, Tokens};

/// Page cache per register database. The backends' defaults (1 GiB) are
/// per database and a server holds one database per register; the cache
/// bounds memory whatever the size of the log.
pub const CACHE_BYTES: usize = 64 << 20;

/// Which of a register's two logs: an entry's type is the log it is in
/// (regis-model's [`regis_model::Log`], named for what the store
/// keeps: `Log::User` is the user log, `Log::System` the system log).
pub use regis_model::Log;
