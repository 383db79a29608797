#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]
//! A witness for Regis logs and any other C2SP log with an Ed25519 key (C2SP
//! tlog-witness, cosignature/v1): it keeps the last checkpoint it cosigned
//! for each log it trusts, and cosigns a new one only if it extends that
//! one (the checks are regis-note's [`regis_note::check_add_checkpoint`]).
//!
//! - [`init`] makes a data directory with a new cosigning key; [`add_log`]
//!   trusts a log's key for its origin.
//! - [`Witness`] opens the directory; [`run`] (or [`router`], [`serve`]) answers
//!   `POST /add-checkpoint`, `GET /<origin hash>/checkpoint` and
//!   `GET /healthz`.
//!
//! Each log's requests are decided one at a time: the check, the new state
//! written durably (a temporary file, synced, renamed, the directory
//! synced), and only then the cosignature, so a witness killed at any point
//! restarts at the old state or the new, and never cosigned a state it
//! does not hold. A checkpoint of the size last cosigned with another root
//! is kept as fork evidence, in the format `regis audit --evidence`
//! checks. The files are specified byte by byte in `spec/witness.md`.

mod dir;
mod error;
mod files;
mod http;
mod witness;

pub use dir::{
    CHECKPOINT_FILE, EVIDENCE_DIR, KEY_FILE, LOG_FILE, LOGS_DIR, VKEY_FILE, add_log, init,
    origin_hash,
};
pub use error::WitnessError;
pub use files::{Disk, Storage, TEMPORARY_SUFFIX};
pub use http::{Limits, router, run, serve};
pub use witness::{Clock, Options, Witness, system_clock};
