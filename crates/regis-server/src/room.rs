//! Room on the data directory's file system. A write is refused with 507
//! before anything of it is written when it would leave less free space
//! than the reserve, or take its register past its share: a full disk
//! must never fail a write half-way, and one register's token must not
//! fill the disk for every register.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::config::Limits;
use crate::error::ApiError;

/// How many times a request's body a write may take on disk at most: the
/// spooled body, the files (items, entries, hashes) and the indexes.
const GROWTH: u64 = 3;

/// What the store may write at once besides a request's own bytes: redb
/// merges a recent database of up to 8 MiB of rows (4 times that when
/// merges fall behind) into the main one in one commit, rewriting the
/// pages it touches. Kept free on top of the reserve.
const MERGE_HEADROOM: u64 = 48 << 20;

/// How long a register's measured size is used before it is measured
/// again: walking its directory on every write would cost single-entry
/// writes a tenth of their rate, and a register's share is coarse.
const USAGE_TTL: Duration = Duration::from_secs(1);

/// The registers' sizes on disk, as last measured.
#[derive(Debug, Default)]
pub struct Room {
    usage: Mutex<HashMap<PathBuf, (Instant, u64)>>,
}

impl Room {
    /// Checks that a write of `incoming` body bytes to the register in
    /// `register_dir` fits: free space stays above the reserve, and the
    /// register within its share of the file system (as measured at most
    /// [`USAGE_TTL`] ago).
    pub fn check(
        &self,
        data_dir: &Path,
        register_dir: &Path,
        limits: &Limits,
        incoming: u64,
    ) -> Result<(), ApiError> {
        check(data_dir, limits, incoming, || self.usage(register_dir))
    }

    fn usage(&self, register_dir: &Path) -> u64 {
        let now = Instant::now();
        let mut usage = self.usage.lock().unwrap_or_else(PoisonError::into_inner);
        match usage.get(register_dir) {
            Some((measured, bytes)) if now.duration_since(*measured) < USAGE_TTL => *bytes,
            _ => {
                let bytes = register_bytes(register_dir);
                usage.insert(register_dir.to_owned(), (now, bytes));
                bytes
            }
        }
    }
}

fn check(
    data_dir: &Path,
    limits: &Limits,
    incoming: u64,
    register_usage: impl FnOnce() -> u64,
) -> Result<(), ApiError> {
    let stats = rustix::fs::statvfs(data_dir).map_err(|error| {
        ApiError::internal(format!(
            "reading the free space of the data directory: {error}"
        ))
    })?;
    let block = stats.f_frsize.max(1);
    let total = stats.f_blocks.saturating_mul(block);
    let free = stats.f_bavail.saturating_mul(block);
    let needed = incoming.saturating_mul(GROWTH);
    let reserve = total / 100 * u64::from(limits.reserve_free_percent) + MERGE_HEADROOM;
    if limits.reserve_free_percent > 0 && free.saturating_sub(needed) < reserve {
        return Err(full(format!(
            "the server keeps {}% of its disk and {} MiB free and has {} MiB free; this \
             write needs up to {} MiB",
            limits.reserve_free_percent,
            MERGE_HEADROOM >> 20,
            free >> 20,
            needed.div_ceil(1 << 20)
        )));
    }
    let share = total / 100 * u64::from(limits.max_register_percent);
    let used = register_usage();
    if used.saturating_add(needed) > share {
        return Err(full(format!(
            "the register holds {} MiB, and may hold {}% of the server's disk ({} MiB)",
            used >> 20,
            limits.max_register_percent,
            share >> 20
        )));
    }
    Ok(())
}

fn full(why: String) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::INSUFFICIENT_STORAGE,
        "disk-full",
        format!("the write was refused before anything of it was stored: {why}"),
    )
}

/// Bytes the files in a register's directory and the directories in it
/// (sled's) take on disk (allocated blocks, not lengths: redb's files are
/// sparse); files that vanish meanwhile count 0.
fn register_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => register_bytes(&entry.path()),
            Ok(meta) => meta.blocks().saturating_mul(512),
            Err(_) => 0,
        })
        .sum()
}
