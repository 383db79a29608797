//! Whether a register may still be trusted to serve: the first corruption
//! any read of it found. Shared by every clone of its `Store` and every
//! snapshot, so that one corrupt read marks the whole register.

use std::sync::OnceLock;

/// A register's health, as its reads found it.
#[derive(Debug, Default)]
pub struct Health {
    /// What the first corrupt read found; never replaced, so the report
    /// names where the damage was first seen.
    corrupt: OnceLock<String>,
}

impl Health {
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
