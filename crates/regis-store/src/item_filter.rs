//! The item filter: a Bloom filter of the hashes of the items a register
//! stores, so that staging a new item need not look it up to learn that it
//! is new. The `items` table is keyed by SHA-256, so each lookup of a new
//! item lands on a random B-tree leaf; under bulk writes those lookups were
//! over half of the stager's time. The filter answers "not stored" from
//! one cache line; "maybe" falls through to the database, as before.
//!
//! It is memory only, built from a scan of the `items` table (inline for a
//! small register, else on a thread of its own while writes go on:
//! `Store::start_item_filter`, and "How a filter is built" below), and
//! never persisted: a crash loses nothing but the time to build it again.
//! Its size follows the register's item count up to [`MAX_BITS`]
//! (16 MiB); past that it answers "maybe" more often, never wrongly.
//!
//! A build's thread reads the database, so it holds it open: the
//! [`BuildThread`] that starts it belongs to the register's store, which
//! stops and joins it when it closes or reopens the database.
//!
//! # How a filter is built
//!
//! A filter must never say "not stored" of an item a reader can see. Every
//! write transaction, when it begins, takes the filters it adds its items
//! to: the published one and the one being built, if any. A build
//! registers its filter (which later transactions will feed), waits for
//! every transaction that began before that to finish, then scans a
//! snapshot: an item is then either in the snapshot (committed by a
//! transaction that began before) or added to the filter directly (by one
//! that began after). Only then is the filter published, and readers read
//! whichever filter is published when they ask, which covers every commit
//! made so far (a sled view may see commits newer than when it was taken).
//! A transaction that fails leaves its items in the filters: a false
//! "maybe", which costs a lookup, never an error.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError, RwLock};
use std::thread::JoinHandle;

use regis_merkle::Hash;

use crate::bloom::{BITS_PER_ITEM, Bloom, Fingerprint, MAX_BITS};

/// One Bloom filter of item hashes.
#[derive(Debug)]
pub struct ItemFilter(Bloom);

impl ItemFilter {
    /// An empty filter for about `items` items (within [`Bloom`]'s size
    /// bounds).
    pub fn for_items(items: u64) -> ItemFilter {
        ItemFilter(Bloom::for_items(items))
    }

    /// Adds an item.
    pub fn insert(&self, hash: &Hash) {
        self.0.insert(fingerprint(hash));
    }

    /// `false` if the item was never added; `true` if it was, or (rarely)
    /// if other items set the same bits.
    pub fn may_contain(&self, hash: &Hash) -> bool {
        self.0.may_contain(fingerprint(hash))
    }

    /// Whether it holds more items than it was sized for, and a larger
    /// filter is allowed.
    fn outgrown(&self) -> bool {
        self.0.added() > self.0.capacity() && self.0.capacity() < MAX_BITS / BITS_PER_ITEM
    }
}

/// A SHA-256 digest is uniform: its first bytes are a fingerprint.
fn fingerprint(hash: &Hash) -> &Fingerprint {
    hash.first_chunk().unwrap_or(&[0; 24])
}

/// A register's item filters: the published one readers use, and the
/// one being built, fed by write transactions (the module's "How a filter
/// is built").
#[derive(Debug, Default)]
pub struct ItemFilters {
    published: RwLock<Option<Arc<ItemFilter>>>,
    writes: Mutex<Writes>,
    finished: Condvar,
}

#[derive(Debug, Default)]
struct Writes {
    building: Option<Arc<ItemFilter>>,
    /// Write transactions begun, and the last one finished: they run one
    /// at a time (a store has one [`crate::Writer`], which takes `&mut
    /// self` to write), so every one numbered up to it has finished.
    begun: u64,
    finished: u64,
}

/// A build under way: its filter and the last transaction that began
/// before it, which must finish before the build scans. Dropped without
/// [`Build::publish`] (a failed scan, a stopped one, a thread that could
/// not start), it is abandoned and the published filter, if any, stays.
#[derive(Debug)]
pub struct Build {
    filters: Arc<ItemFilters>,
    pub filter: Arc<ItemFilter>,
    after: u64,
    /// Set by [`BuildThread::stop`]: the scan ends without publishing.
    stop: Arc<AtomicBool>,
}

impl Build {
    /// Waits until every write transaction that began before the build was
    /// registered has finished: a snapshot taken then holds their items.
    pub fn wait_for_earlier_writes(&self) {
        let mut writes = self.filters.lock_writes();
        while writes.finished < self.after {
            writes = self
                .filters
                .finished
                .wait(writes)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Whether the build was stopped ([`BuildThread::stop`]).
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Publishes the filter, once it holds every item of a snapshot taken
    /// after [`Build::wait_for_earlier_writes`].
    pub fn publish(self) {
        let _writes = self.filters.lock_writes();
        *self
            .filters
            .published
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(Arc::clone(&self.filter));
        // `drop` ends the build, under the same lock.
    }
}

impl Drop for Build {
    fn drop(&mut self) {
        let mut writes = self.filters.lock_writes();
        if writes
            .building
            .as_ref()
            .is_some_and(|building| Arc::ptr_eq(building, &self.filter))
        {
            writes.building = None;
        }
    }
}

impl ItemFilters {
    /// `false` only if no transaction ever stored the item; `true` when
    /// it may have, or when no filter is built yet.
    pub fn may_contain(&self, hash: &Hash) -> bool {
        match self.published.read() {
            Ok(published) => published
                .as_ref()
                .is_none_or(|filter| filter.may_contain(hash)),
            Err(_) => true,
        }
    }

    /// Whether a filter is published.
    pub fn is_published(&self) -> bool {
        self.published_filter().is_some()
    }

    /// Whether a build is wanted: no filter is published, or it holds more
    /// items than it was sized for (and a larger one is allowed).
    pub fn wants_build(&self) -> bool {
        self.published_filter()
            .is_none_or(|published| published.outgrown())
    }

    /// Starts a build, unless one is running or none is wanted: a filter
    /// sized for `items` (doubled for growth, and at least what the
    /// published one holds).
    pub fn begin_build(self: &Arc<Self>, items: u64) -> Option<Build> {
        if !self.wants_build() {
            return None;
        }
        let published = self.published_filter();
        let held = published.map_or(0, |filter| filter.0.added());
        let mut writes = self.lock_writes();
        if writes.building.is_some() {
            return None;
        }
        let filter = Arc::new(ItemFilter::for_items(items.max(held).saturating_mul(2)));
        writes.building = Some(Arc::clone(&filter));
        Some(Build {
            filters: Arc::clone(self),
            filter,
            after: writes.begun,
            stop: Arc::default(),
        })
    }

    fn published_filter(&self) -> Option<Arc<ItemFilter>> {
        self.published
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    // A panic elsewhere cannot leave `Writes` half changed (each change is
    // one assignment), so a poisoned lock's state is used as it is.
    fn lock_writes(&self) -> std::sync::MutexGuard<'_, Writes> {
        self.writes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A write transaction begins: the filters its new items go to.
    pub fn begin_write(&self) -> WriteFilters<'_> {
        let mut writes = self.lock_writes();
        writes.begun += 1;
        let published = self.published_filter();
        WriteFilters {
            filters: self,
            number: writes.begun,
            targets: [published, writes.building.clone()],
        }
    }
}

/// The thread of a build run on its own, owned by what starts it (a
/// register's store): stopped and joined by [`BuildThread::stop`] and when
/// dropped, so that no build outlives the database it reads, as
/// `RedbBackend` joins its merger thread.
#[derive(Debug, Default)]
pub struct BuildThread {
    running: Mutex<Option<Running>>,
}

#[derive(Debug)]
struct Running {
    thread: JoinHandle<()>,
    stop: Arc<AtomicBool>,
}

impl BuildThread {
    /// Runs `fill(build)` on a thread of its own; returns whether the
    /// thread started (if not, `build` is abandoned, and a later build
    /// tries again). The thread of an earlier build is joined first: that
    /// build has ended ([`ItemFilters::begin_build`] begins one at a time),
    /// so its thread has returned or is about to.
    pub fn spawn(&self, build: Build, fill: impl FnOnce(Build) + Send + 'static) -> bool {
        let mut running = self.lock();
        if let Some(earlier) = running.take() {
            earlier.join();
        }
        let stop = Arc::clone(&build.stop);
        match std::thread::Builder::new()
            .name("item filter".into())
            .spawn(move || fill(build))
        {
            Ok(thread) => {
                *running = Some(Running { thread, stop });
                true
            }
            Err(_) => false,
        }
    }

    /// Stops the build running on the thread, if any (its scan ends
    /// without publishing), and joins the thread.
    pub fn stop(&self) {
        let running = self.lock().take();
        if let Some(running) = running {
            running.stop.store(true, Ordering::Relaxed);
            running.join();
        }
    }

    // A panic elsewhere cannot leave `running` half changed (each change
    // is one assignment), so a poisoned lock's state is used as it is.
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Running>> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Running {
    fn join(self) {
        // A build that panicked published nothing; lookups did without it.
        let _ = self.thread.join();
    }
}

impl Drop for BuildThread {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The filters one write transaction adds its items to; dropping it marks
/// the transaction finished, committed or not.
#[derive(Debug)]
pub struct WriteFilters<'a> {
    filters: &'a ItemFilters,
    number: u64,
    targets: [Option<Arc<ItemFilter>>; 2],
}

impl WriteFilters<'_> {
    /// Adds a new item to every filter, before it is committed.
    pub fn insert(&self, hash: &Hash) {
        for filter in self.targets.iter().flatten() {
            filter.insert(hash);
        }
    }

    /// [`ItemFilters::may_contain`] as this transaction sees the store:
    /// the filter published when it began holds every item committed
    /// before and every item it added (a filter published since may lack
    /// the latter).
    pub fn may_contain(&self, hash: &Hash) -> bool {
        self.targets[0]
            .as_ref()
            .is_none_or(|published| published.may_contain(hash))
    }
}

impl Drop for WriteFilters<'_> {
    fn drop(&mut self) {
        let mut writes = self.filters.lock_writes();
        writes.finished = writes.finished.max(self.number);
        self.filters.finished.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    fn hash(n: u64) -> Hash {
        Sha256::digest(n.to_be_bytes()).into()
    }

    #[test]
    fn a_filter_past_its_capacity_is_outgrown_below_the_largest() {
        let filter = ItemFilter::for_items(100_000);
        filter.0.pretend_added(filter.0.capacity());
        assert!(!filter.outgrown());
        filter.insert(&hash(0));
        assert!(filter.outgrown());
        let largest = ItemFilter::for_items(u64::MAX);
        largest.0.pretend_added(u64::MAX);
        assert!(!largest.outgrown(), "no filter beyond the largest");
    }

    #[test]
    fn no_filter_means_maybe_and_a_build_sees_every_write() {
        let filters = Arc::new(ItemFilters::default());
        assert!(filters.may_contain(&hash(1)));
        // Begun before the build: its item is the scan's to find.
        let early = filters.begin_write();
        early.insert(&hash(1));
        let build = filters.begin_build(10).unwrap();
        assert!(filters.begin_build(10).is_none(), "one build at a time");
        std::thread::scope(|scope| {
            let waiting = scope.spawn(|| build.wait_for_earlier_writes());
            std::thread::sleep(std::time::Duration::from_millis(20));
            assert!(!waiting.is_finished(), "waits for the earlier write");
            drop(early);
        });
        // Begun after: its item goes to the filter being built.
        let late = filters.begin_write();
        late.insert(&hash(2));
        drop(late);
        build.filter.insert(&hash(1)); // what the scan adds
        assert!(filters.may_contain(&hash(3)), "nothing published yet");
        build.publish();
        assert!(filters.may_contain(&hash(1)) && filters.may_contain(&hash(2)));
        assert!(!filters.may_contain(&hash(3)));
        assert!(!filters.wants_build() && filters.begin_build(10).is_none());
        let write = filters.begin_write();
        assert!(!write.may_contain(&hash(4)));
        write.insert(&hash(4));
        assert!(write.may_contain(&hash(4)));
        // A build abandoned (dropped) leaves the published filter.
        write.targets[0].as_ref().unwrap().0.pretend_added(u64::MAX);
        drop(write);
        assert!(filters.wants_build());
        drop(filters.begin_build(10).unwrap());
        assert!(filters.may_contain(&hash(4)) && !filters.may_contain(&hash(3)));
        assert!(filters.begin_build(10).is_some(), "not left building");
    }

    #[test]
    fn a_build_thread_is_stopped_and_joined_by_its_owner() {
        let filters = Arc::new(ItemFilters::default());
        let owner = BuildThread::default();
        let (started, starts) = std::sync::mpsc::channel();
        let held = Arc::new(());
        // Scans until stopped, holding `held` as a scan holds the database.
        let fill = |held: Arc<()>| {
            let started = started.clone();
            move |build: Build| {
                started.send(()).unwrap();
                while !build.stopped() {
                    std::thread::yield_now();
                }
                drop(held);
            }
        };
        assert!(owner.spawn(filters.begin_build(10).unwrap(), fill(held.clone())));
        starts.recv().unwrap();
        owner.stop();
        assert_eq!(Arc::strong_count(&held), 1, "stopped and joined");
        assert!(!filters.is_published(), "a stopped build publishes nothing");
        // Stopping abandons the build: another begins, and dropping the
        // owner stops and joins its thread.
        assert!(owner.spawn(filters.begin_build(10).unwrap(), fill(held.clone())));
        starts.recv().unwrap();
        drop(owner);
        assert_eq!(Arc::strong_count(&held), 1, "joined when dropped");
    }
}
