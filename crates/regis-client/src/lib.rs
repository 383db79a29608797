//! A verifying client for Regis registers: it trusts nothing the server
//! says until it has checked it against a verifier key the caller pinned.
//!
//! - [`Client::checkpoint`]: the user log's signed checkpoint, verified
//!   against the pinned key, with the key's name as the origin (Regis names
//!   each log's key by its origin, `<host>/registers/<name>`).
//! - [`Client::system`]: the same for the system log, whose key is derived
//!   from the pinned one (Regis signs both logs with one key).
//! - [`Client::with_witness_policy`]: every checkpoint accepted, by any of
//!   the calls below too, must also carry witness cosignatures meeting a
//!   C2SP tlog-policy the caller pinned (the client reads the clock for
//!   the cosignatures' times: none may be in the future).
//! - [`Client::verify_tree`]: the right-edge hash tiles fold to that root.
//! - [`Client::record`]: a record by its C2SP tlog-proof: the leaf is
//!   re-hashed from its bytes, its key and number checked, and its items
//!   fetched and re-hashed; a proof against another checkpoint than the
//!   trusted one is accepted only if the two are consistent, from tiles.
//! - [`Client::record_with_links`]: a record with the records it links to,
//!   each proved in its own register against the key pinned for it
//!   ([`Client::proved_record`]: one record's proof as a bundle carries it).
//! - [`Client::consistency`]: an old checkpoint's root recomputed from the
//!   new tree's verified tiles; no server-made proof is used.
//! - [`Client::replay`]: every entry of the RSF delta `0/N`, every leaf
//!   checked against the verified level-0 tiles, every item re-hashed, the
//!   records re-derived and the root recomputed from the leaves
//!   ([`Client::replay_bundles`]: the same from entry bundles and items
//!   fetched one by one, for any tlog-tiles server).
//! - [`CheckedEntries`]: the stream of checked entries both replays and
//!   regis-mirror read, from an RSF delta ([`Client::delta_entries`]) or
//!   entry bundles ([`Client::bundle_entries`]): each leaf against the
//!   verified tiles, the delta's assertions against the root, the end at
//!   the checkpoint.
//! - A static copy (a bucket or CDN holding checkpoints, tiles, bundles and
//!   RSF chunks) read at the same base URL: where an origin's endpoint
//!   answers 404 or 403, a record comes from scanning entry bundles and a
//!   delta from the chain of RSF chunks, checked as fully
//!   ([`Client::at_checkpoint`] starts over once from a newer checkpoint
//!   when a partial object is gone).
//! - [`Client::events`]: the register's events, hints of new checkpoints.
//! - [`audit`]: an auditor keeping the last checkpoints and writing
//!   re-checkable evidence of a fork.
//!
//! HTTP is `ureq` 3: a blocking client (a verifier is a sequence of
//! dependent fetches, so async would buy nothing but a runtime), small,
//! maintained, with per-request timeouts and body limits, over rustls.
//! Every document is bounded in size and time ([`Limits`]); the streams (an
//! RSF delta, the event stream) in line length, line count (deltas) and
//! time between reads, as they may be long.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod audit;
mod client;
mod delta;
mod entries;
mod error;
mod events;
mod http;
mod leaves;
mod links;
mod replayed;
mod static_copy;

pub use client::{
    Client, RecordsCheck, Replay, ReplayedRecord, VerifiedCheckpoint, VerifiedRecord,
};
pub use entries::{CheckedEntries, CheckedEntry, LogRange};
pub use error::Error;
pub use events::{CheckpointEvent, Events, Received, StreamError};
pub use http::{FetchError, FetchFailure, HttpTiles, Limits};
pub use links::{KEY_FIELD, LinkCheck, LinkKeys, LinkOutcome, LinkedRecord, ProvedRecord};
pub use replayed::ReplayedRecords;
