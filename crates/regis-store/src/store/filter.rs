//! Building the item filter (`crate::item_filter`) from the `items` table.

use std::sync::Arc;

use super::Store;
use crate::item_filter;
use crate::keys;
use crate::kv::{KvBackend, KvSnapshot, Table};

impl<B: KvBackend> Store<B> {
    /// Builds the item filter (`item_filter`), or a larger one once the
    /// register has outgrown it; does nothing if one fits or is being
    /// built. Returns whether a build started. A register of up to
    /// `inline_up_to` entries is scanned here (the sequencer passes
    /// [`INLINE_FILTER_ENTRIES`], so that a document loaded next into a new
    /// register has the filter); a larger one on a thread of its own,
    /// which the store owns: dropping the store's last clone, or
    /// [`Writer::recover`](super::Writer::recover), stops the build and
    /// joins the thread. For registers that take writes: until the filter
    /// is built, and if building fails, lookups answer as they would
    /// without it.
    pub fn start_item_filter(&self, inline_up_to: u64) -> bool {
        if !self.items.wants_build() {
            return false;
        }
        let Ok(snapshot) = self.snapshot() else {
            return false;
        };
        let entries = snapshot.head.user.saturating_add(snapshot.head.system);
        drop(snapshot);
        let Some(build) = self.items.begin_build(entries) else {
            return false;
        };
        if entries <= inline_up_to {
            fill_item_filter(&*self.kv, build);
            return true;
        }
        let kv = Arc::clone(&self.kv);
        self.item_filter_build
            .spawn(build, move |build| fill_item_filter(&*kv, build))
    }

    /// Whether the item filter is built: from then on, looking up an item
    /// that is not stored rarely reads the database.
    pub fn item_filter_built(&self) -> bool {
        self.items.is_published()
    }
}

/// Up to how many entries a register's item filter is built on the
/// caller's thread ([`Store::start_item_filter`]): a scan of a few
/// milliseconds.
pub const INLINE_FILTER_ENTRIES: u64 = 1 << 16;

/// Fills a build's filter from a scan of the `items` table once the writes
/// begun before it are done, and publishes it, unless the scan fails or
/// the build is stopped meanwhile.
fn fill_item_filter<B: KvBackend>(kv: &B, build: item_filter::Build) {
    build.wait_for_earlier_writes();
    let mut stopped = false;
    let filled = kv.snapshot().and_then(|kv| {
        kv.scan(Table::Items, &[], None, false, &mut |key, _| {
            build.filter.insert(&keys::read_hash(key, "item key")?);
            stopped = build.stopped();
            Ok(!stopped)
        })
    });
    if filled.is_ok() && !stopped {
        build.publish();
    }
}
