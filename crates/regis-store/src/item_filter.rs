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

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError, RwLock};
use std::thread::JoinHandle;

use regis_merkle::Hash;

/// Bits per item a filter is sized for. With [`PROBES`] probes in one
/// block that gives about 0.1% false positives at capacity.
const BITS_PER_ITEM: u64 = 16;
/// Bits set per item, all in one 512-bit block (a cache line).
const PROBES: usize = 8;
const BLOCK_WORDS: usize = 8;
/// The smallest filter: 128 KiB.
const MIN_BITS: u64 = 1 << 20;
/// The largest filter: 16 MiB, sized for 8M items.
pub const MAX_BITS: u64 = 1 << 27;

/// One Bloom filter of item hashes, safe to add to and read at once.
#[derive(Debug)]
pub struct ItemFilter {
    words: Box<[AtomicU64]>,
    /// Blocks minus one (their count is a power of two).
    block_mask: u64,
    /// Items added, and the count it is sized for.
    added: AtomicU64,
    capacity: u64,
}

impl ItemFilter {
    /// An empty filter for about `items` items (within the size bounds).
    pub fn for_items(items: u64) -> ItemFilter {
        let bits = items
            .saturating_mul(BITS_PER_ITEM)
            .clamp(MIN_BITS, MAX_BITS)
            .next_power_of_two()
            .min(MAX_BITS);
        // At most 2^21 words: fits any usize this builds for.
        let words = usize::try_from(bits / 64).unwrap_or(usize::MAX >> 6);
        let blocks = u64::try_from(words / BLOCK_WORDS).unwrap_or(1).max(1);
        ItemFilter {
            words: (0..words).map(|_| AtomicU64::new(0)).collect(),
            block_mask: blocks - 1,
            added: AtomicU64::new(0),
            capacity: bits / BITS_PER_ITEM,
        }
    }

    /// The words and bits of `hash`'s probes. A SHA-256 digest is uniform,
    /// so its bytes serve as the filter's hash functions: eight to pick the
    /// block, then nine bits per probe within it.
    fn probes(&self, hash: &Hash) -> impl Iterator<Item = (usize, u64)> {
        let mut block = [0u8; 8];
        block.copy_from_slice(&hash[..8]);
        let block = u64::from_le_bytes(block) & self.block_mask;
        // `block` is below the block count, whose words all exist.
        let base = usize::try_from(block).unwrap_or(0) * BLOCK_WORDS;
        hash[8..8 + 2 * PROBES].chunks_exact(2).map(move |pair| {
            let bit = u16::from_le_bytes([pair[0], pair[1]]) & 511;
            (base + usize::from(bit >> 6), 1u64 << (bit & 63))
        })
    }

    /// Adds an item.
    pub fn insert(&self, hash: &Hash) {
        for (word, bit) in self.probes(hash) {
            if let Some(word) = self.words.get(word) {
                word.fetch_or(bit, Ordering::Relaxed);
            }
        }
        self.added.fetch_add(1, Ordering::Relaxed);
    }

    /// `false` if the item was never added; `true` if it was, or (rarely)
    /// if other items set the same bits.
    pub fn may_contain(&self, hash: &Hash) -> bool {
        self.probes(hash).all(|(word, bit)| {
            self.words
                .get(word)
                .is_none_or(|word| word.load(Ordering::Relaxed) & bit != 0)
        })
    }

    /// Whether it holds more items than it was sized for, and a larger
    /// filter is allowed.
    fn outgrown(&self) -> bool {
        self.added.load(Ordering::Relaxed) > self.capacity
            && self.capacity < MAX_BITS / BITS_PER_ITEM
    }
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
        let held = published.map_or(0, |filter| filter.added.load(Ordering::Relaxed));
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
    fn added_items_are_always_found_and_others_rarely() {
        let filter = ItemFilter::for_items(100_000);
        assert_eq!(filter.capacity, (1 << 21) / BITS_PER_ITEM);
        let capacity = filter.capacity;
        for n in 0..capacity {
            filter.insert(&hash(n));
        }
        assert!((0..capacity).all(|n| filter.may_contain(&hash(n))));
        let false_positives = (capacity..capacity + 100_000)
            .filter(|&n| filter.may_contain(&hash(n)))
            .count();
        // About 0.1% expected at capacity; 0.5% would mean broken probes.
        assert!(false_positives < 500, "{false_positives} in 100,000");
        assert!(!filter.outgrown());
        filter.insert(&hash(capacity));
        assert!(filter.outgrown());
    }

    #[test]
    fn sizes_stay_within_bounds() {
        assert_eq!(ItemFilter::for_items(0).words.len() as u64, MIN_BITS / 64);
        assert_eq!(
            ItemFilter::for_items(u64::MAX).words.len() as u64,
            MAX_BITS / 64
        );
        let largest = ItemFilter::for_items(u64::MAX);
        largest.added.store(u64::MAX, Ordering::Relaxed);
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
        write.targets[0]
            .as_ref()
            .unwrap()
            .added
            .store(u64::MAX, Ordering::Relaxed);
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
