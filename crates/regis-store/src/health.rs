//! Whether a register may still be trusted to serve, and whether it takes
//! writes: the first corruption any read of it found, and why its writes
//! are stopped (a write failed and the store could not yet be reopened).
//! Shared by every clone of its `Store` and every snapshot, so that one
//! corrupt read marks the whole register.

use std::sync::{Mutex, OnceLock, PoisonError};

/// A register's health, as its reads and writes found it.
#[derive(Debug, Default)]
pub struct Health {
    /// What the first corrupt read found; never replaced, so the report
    /// names where the damage was first seen.
    corrupt: OnceLock<String>,
    /// Why writes are stopped, while they are.
    writes: Mutex<Option<WriteFailure>>,
}

/// Why a register takes no writes for now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteFailure {
    /// The failed write, and why the store is not yet reopened.
    pub why: String,
    /// Whether the disk is full: room made lets writes resume.
    pub disk_full: bool,
}

impl Health {
    /// Records that writes are stopped (`Some`), or go on again (`None`).
    pub fn report_writes(&self, failure: Option<WriteFailure>) {
        *self.writes.lock().unwrap_or_else(PoisonError::into_inner) = failure;
    }

    /// Why writes are stopped, if they are.
    pub fn writes(&self) -> Option<WriteFailure> {
        self.writes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Records that a read found `what` corrupt (kept only if first).
    pub fn report_corrupt(&self, what: String) {
        // A later report loses to the first: that is the intent.
        let _ = self.corrupt.set(what);
    }

    /// What the first corrupt read found, if any did.
    pub fn corrupt(&self) -> Option<String> {
        self.corrupt.get().cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_report_is_kept() {
        let health = Health::default();
        assert_eq!(health.corrupt(), None);
        health.report_corrupt("user entry 3".into());
        health.report_corrupt("user entry 4".into());
        assert_eq!(health.corrupt().as_deref(), Some("user entry 3"));
    }
}
