//! The sequencer: the one writer of a register, on two threads. The stager
//! takes requests from a bounded channel, stages a batch of them (up to
//! `max_entries` entries or `max_delay` after the first), validates each
//! with regis-model's [`Loader`] so that a bad request fails alone, and
//! signs the new checkpoints in memory; the committer, which owns the
//! [`Writer`], commits the batch and its checkpoints in ONE atomic, durable
//! commit, THEN answers every request with the checkpoint that covers it.
//! The stager stages the next batch meanwhile, over the one in flight. Writers are serialised by the channel, never by a lock held
//! across requests; readers use [`Store`] snapshots and never wait for it. A document of any
//! size ([`Request::Stream`]) is applied as it is read, straight into one write transaction
//! ([`Txn`]) that also holds its checkpoints, instead of being staged in memory.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use regis_merkle::{Frontier, Hash};
use regis_model::rsf::{
    Command, LoadSummary, LoadTarget, LoadWarnings, Loader, Policy, RsfError, RsfErrorKind,
};
use regis_model::{Entry, Item, ItemError, ItemHash, Log, PerLog, Schema, SystemKey, Timestamp};
use tokio::sync::{oneshot, watch};

use crate::health::WriteFailure;
use crate::registry::{LogSigners, RegistryError};
use crate::{
    Batch, KvBackend, NewEntry, SignedTree, Snapshot, Store, StoreError, TreeHead, Txn, Writer,
};

/// How the sequencer batches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SequencerConfig {
    /// Stop gathering requests once they hold this many entries.
    pub max_entries: usize,
    /// Keep gathering this long after the first request of a batch. Zero
    /// (the default) is group commit: a batch is what is queued when the
    /// sequencer is free, so requests that arrive while a batch commits
    /// form the next one; batches grow with the load and a lone request
    /// waits for nothing but its own commit.
    pub max_delay: Duration,
    /// Requests that may wait in the channel; beyond, senders wait
    /// ([`SequencerHandle::submit`]) or are refused ([`SequencerHandle::try_submit`]).
    pub queue: usize,
}

impl Default for SequencerConfig {
    fn default() -> Self {
        SequencerConfig {
            max_entries: 4096,
            max_delay: Duration::ZERO,
            queue: 256,
        }
    }
}

/// What a request asks for.
#[derive(Debug)]
pub enum Request {
    /// New user entries: each key takes its item, stamped with the
    /// sequencer's clock, under every rule ([`Policy::APPEND`]).
    Append {
        /// Keys and their new items, in order.
        entries: Vec<(String, Item)>,
        /// Accept an entry whose item is already its key's record (a
        /// no-op that only records "still true at this time"); refused
        /// otherwise.
        allow_repeated: bool,
    },
    /// An RSF document's commands, with their line numbers, applied all or
    /// nothing under `policy`.
    Load {
        /// The commands.
        commands: Vec<(u64, Command)>,
        /// The rules to apply.
        policy: Policy,
    },
    /// A document of any size, read as it is applied (a bulk load): all or
    /// nothing under `policy`, in a write transaction of its own, never
    /// batched with other requests. Its memory does not grow with the
    /// document (`spec/store.md`, "Bulk loads").
    Stream {
        /// The commands, read one at a time; the first error fails the load.
        commands: Commands,
        /// The rules to apply.
        policy: Policy,
    },
}

impl Request {
    /// Appends `entries` under every rule, no-op entries refused.
    pub fn append(entries: Vec<(String, Item)>) -> Request {
        Request::Append {
            entries,
            allow_repeated: false,
        }
    }

    fn weight(&self) -> usize {
        match self {
            Request::Append { entries, .. } => entries.len(),
            Request::Load { commands, .. } => commands
                .iter()
                .filter(|(_, command)| matches!(command, Command::AppendEntry(_)))
                .count(),
            // Fills a batch on its own.
            Request::Stream { .. } => usize::MAX,
        }
    }
}

/// Commands read ahead per batch, and batches in flight.
const READ_AHEAD_COMMANDS: usize = 256;
const READ_AHEAD_BATCHES: usize = 8;

/// An item's hash and field-index prefixes, worked out by the reading
/// thread so that the sequencer's does not have to.
struct PreparedItem {
    hash: ItemHash,
    prefixes: Vec<[u8; 8]>,
}

/// Reads (and parses, and prepares the items of) a streamed document on a
/// thread of `scope` while the sequencer applies it: the two halves of a
/// bulk load run on two cores. At most `READ_AHEAD_BATCHES` batches wait;
/// when the consumer stops early (an error), the reader stops at its next
/// batch.
fn read_ahead<'scope>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    commands: Commands,
) -> impl Iterator<Item = (Result<(u64, Command), RsfError>, Option<PreparedItem>)> + 'scope {
    let (sender, receiver) = std::sync::mpsc::sync_channel(READ_AHEAD_BATCHES);
    scope.spawn(move || {
        let mut commands = commands.0.map(|command| {
            let prepared = match &command {
                Ok((_, Command::AddItem(item))) => Some(PreparedItem {
                    hash: item.hash(),
                    prefixes: crate::store::field_prefixes(item.as_str()),
                }),
                _ => None,
            };
            (command, prepared)
        });
        loop {
            let batch: Vec<_> = commands.by_ref().take(READ_AHEAD_COMMANDS).collect();
            let last = batch.len() < READ_AHEAD_COMMANDS;
            if batch.is_empty() || sender.send(batch).is_err() || last {
                return;
            }
        }
    });
    receiver.into_iter().flatten()
}

/// A document's commands with their line numbers, read as they are applied
/// ([`Request::Stream`]): an `RsfReader`, for instance.
pub struct Commands(Box<dyn Iterator<Item = Result<(u64, Command), RsfError>> + Send>);

impl Commands {
    /// Wraps a command source.
    pub fn new(
        commands: impl Iterator<Item = Result<(u64, Command), RsfError>> + Send + 'static,
    ) -> Self {
        Commands(Box::new(commands))
    }
}

impl std::fmt::Debug for Commands {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Commands(..)")
    }
}

/// One entry a request appended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Appended {
    /// Its log.
    pub log: Log,
    /// Its entry number.
    pub number: u64,
    /// Its key.
    pub key: String,
    /// Its item.
    pub item_hash: Hash,
    /// The RFC 6962 leaf hash of its leaf bytes.
    pub leaf_hash: Hash,
}

/// The answer to a request that was committed and signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// The entries an [`Request::Append`] made (empty for a load, which
    /// may be large: its counts are below).
    pub entries: Vec<Appended>,
    /// Items the store did not hold before.
    pub items_added: u64,
    /// Entries appended to each log.
    pub appended: PerLog<u64>,
    /// `assert-root-hash` lines checked.
    pub assertions: u64,
    /// What a load took that new writes refuse (published history's
    /// slips, under `Policy::IMPORT`).
    pub warnings: LoadWarnings,
    /// Each log's checkpoint covering the request.
    pub checkpoints: PerLog<SignedTree>,
    /// How long it took, and with what.
    pub timing: Timing,
}

/// Where a request's time went, measured from its submission.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timing {
    /// Entries in the batch that carried the request (its own included).
    pub batch_entries: u64,
    /// Until its batch began.
    pub queued: Duration,
    /// Until the checkpoints covering it were signed (in memory).
    pub signed: Duration,
    /// Until the commit holding it and those checkpoints was durable.
    pub durable: Duration,
}

/// Why a request was not done.
#[derive(Debug, thiserror::Error)]
pub enum SequencerError {
    /// The request is invalid (bad RSF, a failed assertion, an item its
    /// schema refuses…): nothing of it was written. The client's fault.
    #[error(transparent)]
    Rejected(#[from] RsfError),
    /// A document that defines another register than the one it is
    /// loaded into; nothing of it was written.
    #[error("the document defines register {defined:?}, not {register:?}")]
    WrongRegister {
        /// The name its `name` system entry gives.
        defined: String,
        /// The register it was sent to.
        register: String,
    },
    /// The server's clock is outside the years 0000–9999; appends are
    /// refused.
    #[error("the server's clock is outside the years 0000-9999")]
    Clock,
    /// The store failed; nothing of the batch is acknowledged.
    #[error("storing failed: {0}")]
    Store(Arc<StoreError>),
    /// The entries are durable but could not be signed.
    #[error("signing failed: {0}")]
    Sign(Arc<RegistryError>),
    /// The sequencer has stopped.
    #[error("the register's sequencer has stopped")]
    Stopped,
    /// The queue is full ([`SequencerHandle::try_submit`] only).
    #[error("the register is busy; retry later")]
    Busy,
}

impl From<StoreError> for SequencerError {
    fn from(error: StoreError) -> Self {
        SequencerError::Store(Arc::new(error))
    }
}

/// The answer to come for one request.
pub type Ticket = oneshot::Receiver<Result<Receipt, SequencerError>>;

struct Job {
    request: Request,
    waiter: Waiter,
}

/// Where a request's answer goes, and when it was submitted.
struct Waiter {
    reply: oneshot::Sender<Result<Receipt, SequencerError>>,
    submitted: Instant,
}

impl Waiter {
    fn new() -> (Waiter, Ticket) {
        let (reply, ticket) = oneshot::channel();
        let submitted = Instant::now();
        (Waiter { reply, submitted }, ticket)
    }

    fn fail(self, error: SequencerError) {
        // A waiter that went away needs no answer.
        let _ = self.reply.send(Err(error));
    }
}

/// Sends requests to a register's sequencer. Cheap to clone.
#[derive(Clone, Debug)]
pub struct SequencerHandle {
    sender: SyncSender<Job>,
    published: watch::Receiver<PerLog<SignedTree>>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("request", &self.request)
            .finish()
    }
}

impl SequencerHandle {
    /// Queues `request`, waiting while the queue is full. Await the ticket
    /// (or `blocking_recv` it outside async code) for the receipt.
    pub fn submit(&self, request: Request) -> Result<Ticket, SequencerError> {
        let (waiter, ticket) = Waiter::new();
        self.sender
            .send(Job { request, waiter })
            .map_err(|_| SequencerError::Stopped)?;
        Ok(ticket)
    }

    /// Queues `request`, or refuses it at once with [`SequencerError::Busy`]
    /// when the queue is full (for async callers, which must not block).
    pub fn try_submit(&self, request: Request) -> Result<Ticket, SequencerError> {
        let (waiter, ticket) = Waiter::new();
        self.sender
            .try_send(Job { request, waiter })
            .map_err(|error| match error {
                TrySendError::Full(_) => SequencerError::Busy,
                TrySendError::Disconnected(_) => SequencerError::Stopped,
            })?;
        Ok(ticket)
    }

    /// The latest (user, system) checkpoints, updated each time the
    /// sequencer stores new ones (what `/events` streams).
    pub fn checkpoints(&self) -> watch::Receiver<PerLog<SignedTree>> {
        self.published.clone()
    }

    /// Submits and waits for the receipt (for threads, not async tasks).
    pub fn run(&self, request: Request) -> Result<Receipt, SequencerError> {
        self.submit(request)?
            .blocking_recv()
            .map_err(|_| SequencerError::Stopped)?
    }
}

/// Where the sequencer reads the time for new entries; `None` when the
/// clock is outside the years 0000–9999 (appends are then refused).
pub type Clock = Box<dyn Fn() -> Option<Timestamp> + Send>;

/// The system clock, in whole seconds.
pub fn system_clock() -> Clock {
    Box::new(|| {
        let seconds = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_secs();
        Timestamp::from_unix_seconds(i64::try_from(seconds).ok()?)
    })
}

/// A running sequencer.
#[derive(Debug)]
pub struct Sequencer {
    handle: SequencerHandle,
    thread: JoinHandle<()>,
}

impl Sequencer {
    /// Starts the sequencer of a register on its own two threads. First, if the
    /// store holds entries no checkpoint covers (written by another path,
    /// such as an interrupted offline load) or no checkpoint at all, signs
    /// and stores them.
    pub fn spawn<B: KvBackend>(
        name: &str,
        store: Store<B>,
        writer: Writer<B>,
        signers: LogSigners,
        config: SequencerConfig,
        clock: Clock,
    ) -> Result<Sequencer, SequencerError> {
        let schema = load_schema(name, &store)?;
        let mut writer = writer;
        let latest = sign_if_behind(&store, &mut writer, &signers)?;
        // What readers may see from now on is published (and must extend
        // what was, which opening checked).
        writer.publish(latest.as_ref())?;
        let (published, watcher) = watch::channel(latest.clone());
        let signers = Arc::new(signers);
        let spawn_error = |e| SequencerError::Store(Arc::new(StoreError::backend(e)));
        // The committer takes one batch at a time and reports each outcome
        // before the stager hands it the next.
        let (work, work_receiver) = sync_channel(1);
        let (outcome_sender, outcomes) = sync_channel(1);
        let tip = Tip {
            trees: PerLog::from_fn(|log| writer.frontier(log).clone()),
            schema,
            signed: latest,
        };
        let reopened = Reopened::default();
        let committer = Committer {
            name: name.to_owned(),
            store: store.clone(),
            writer,
            signers: Arc::clone(&signers),
            published,
            reopened: Arc::clone(&reopened),
        };
        let committer = std::thread::Builder::new()
            .name(format!("committer {name}"))
            .spawn(move || committer.run(work_receiver, outcome_sender))
            .map_err(spawn_error)?;
        let stager = Stager {
            name: name.to_owned(),
            store,
            signers,
            clock,
            config,
            confirmed: tip,
            in_flight: None,
            work,
            outcomes,
            committer: Some(committer),
            failed: None,
            reopened: Arc::clone(&reopened),
        };
        let (sender, receiver) = sync_channel(config.queue.max(1));
        let thread = std::thread::Builder::new()
            .name(format!("sequencer {name}"))
            .spawn(move || stager.run(receiver))
            .map_err(spawn_error)?;
        Ok(Sequencer {
            handle: SequencerHandle {
                sender,
                published: watcher,
            },
            thread,
        })
    }

    /// A handle to send requests with.
    pub fn handle(&self) -> SequencerHandle {
        self.handle.clone()
    }

    /// Stops once every handle is dropped and the queue is drained.
    pub fn join(self) {
        drop(self.handle);
        // A panic in the sequencer thread has already failed its requests;
        // there is nothing more to report here.
        let _ = self.thread.join();
    }
}

/// The register's definition: named after the register (as GOV.UK's
/// configuration did) and its system records folded in (each key's latest
/// item; `Schema::apply` keeps the latest per key, so order does not
/// matter). Reads one row per system key, not the system log. A record
/// whose key is none of the five kinds (kept from published history,
/// `Policy::allow_unknown_system_keys`) defines nothing, as when it was
/// loaded.
pub fn load_schema<B: KvBackend>(name: &str, store: &Store<B>) -> Result<Schema, SequencerError> {
    let store_error = |e| SequencerError::Store(Arc::new(e));
    let snapshot = store.snapshot().map_err(store_error)?;
    let mut schema = Schema::named(name);
    for record in snapshot
        .records(Log::System, 0, u64::MAX)
        .map_err(store_error)?
    {
        if SystemKey::parse(&record.key).is_err() {
            continue;
        }
        let item = stored_item(&snapshot, &ItemHash(record.item_hash))
            .map_err(|e| store_error(StoreError::Corrupt(e.to_string())))?
            .ok_or_else(|| store_error(StoreError::Corrupt("system item missing".into())))?;
        schema.apply(&record.key, &item).map_err(|e| {
            store_error(StoreError::Corrupt(format!(
                "system record {}: {e}",
                record.key
            )))
        })?;
    }
    Ok(schema)
}

/// The state staging builds on: the trees, the schema and the latest
/// signed checkpoints as they stand once everything handed to the
/// committer is committed.
#[derive(Clone)]
struct Tip {
    trees: PerLog<Frontier>,
    schema: Schema,
    signed: PerLog<SignedTree>,
}

impl Tip {
    fn frontier(&self, log: Log) -> &Frontier {
        &self.trees[log]
    }
}

/// The sequencer's first thread: gathers requests into batches, stages
/// them (validation, entry numbers, hashes) and signs their trees, then
/// hands each batch to the committer, whose thread commits it while this
/// one stages the next. A batch is handed on only once the one before it
/// is known to be committed: one batch is in flight at most, and one whose
/// predecessor failed (and so was staged on a state that never came to
/// be) is refused with that failure.
struct Stager<B: KvBackend> {
    name: String,
    store: Store<B>,
    signers: Arc<LogSigners>,
    clock: Clock,
    config: SequencerConfig,
    /// The state after the last commit the committer reported.
    confirmed: Tip,
    /// The batch in the committer's hands: what it staged (read under the
    /// next batch's staging, as the store does not hold it yet) and the
    /// state it leaves.
    in_flight: Option<(Staged, Tip)>,
    work: SyncSender<Work>,
    outcomes: Receiver<Outcome>,
    committer: Option<JoinHandle<()>>,
    /// Why writes are refused: a write failed and the committer has not
    /// yet reported the store reopened.
    failed: Option<Arc<StoreError>>,
    reopened: Reopened,
}

/// The sequencer's second thread: the register's only writer.
struct Committer<B: KvBackend> {
    name: String,
    store: Store<B>,
    writer: Writer<B>,
    signers: Arc<LogSigners>,
    /// The latest checkpoints, for subscribers.
    published: watch::Sender<PerLog<SignedTree>>,
    reopened: Reopened,
}

/// What the stager hands the committer.
enum Work {
    /// A staged batch, committed and then acknowledged.
    Batch(Box<BatchWork>),
    /// Reopen the store: a read of it failed on the disk (redb then fails
    /// every later read and write until it is reopened).
    Reopen(Arc<StoreError>),
    /// A document loaded as it is read, in a transaction of its own, on
    /// the state `tip`.
    Stream {
        commands: Commands,
        policy: Policy,
        waiter: Waiter,
        tip: Box<Tip>,
    },
}

/// A staged batch with the checkpoints signed for it.
struct BatchWork {
    batch: Batch,
    signed: Vec<(Log, SignedTree)>,
    accepted: Vec<Accepted>,
    times: BatchTimes,
}

/// What the committer reports back for each [`Work`], before it answers
/// the work's requests: so a client that has its answer and sends another
/// request finds the stager knowing the outcome.
enum Outcome {
    /// Whether the batch was committed, or the failure (its waiters get
    /// it).
    Batch(Result<(), Failure>),
    /// The state a streamed document left, if it was loaded, or whether
    /// the writer failed.
    Stream(Result<Box<Tip>, Option<Arc<StoreError>>>),
}

/// Where the committer leaves the state of a store it reopened after a
/// failed write, for the stager to build on (`Committer::reopen`).
type Reopened = Arc<std::sync::Mutex<Option<Box<Tip>>>>;

fn take_reopened(reopened: &Reopened) -> Option<Box<Tip>> {
    reopened
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take()
}

/// A commit that failed.
struct Failure {
    error: Arc<StoreError>,
    /// Whether the disk failed under it: the committer reopens the store
    /// and leaves the state it holds in [`Reopened`]; until then writes
    /// are refused.
    reopening: bool,
}

/// A request held in memory, as commands under a policy, with its waiter.
struct StagedJob {
    commands: Vec<(u64, Command)>,
    policy: Policy,
    /// Whether its receipt lists its entries (appends: a few; not loads,
    /// which may be large).
    list_entries: bool,
    waiter: Waiter,
}

/// How long the sequencer waits for work before it settles the store
/// (`Writer::settle`): long enough that a busy register never pays for it.
const SETTLE_AFTER: Duration = Duration::from_millis(50);

/// Pauses between attempts to reopen a store after a failed write: the
/// first retry is quick (most failures leave the durable state readable),
/// later ones wait for an operator to make room.
const REOPEN_FIRST_PAUSE: Duration = Duration::from_millis(10);
const REOPEN_LAST_PAUSE: Duration = Duration::from_secs(2);

/// A request accepted into the batch, waiting for the commit.
struct Accepted {
    waiter: Waiter,
    entries: Vec<Appended>,
    tally: Tally,
}

impl<B: KvBackend> Stager<B> {
    fn run(mut self, receiver: Receiver<Job>) {
        loop {
            let first = match receiver.recv() {
                Ok(job) => job,
                Err(_) => break,
            };
            let deadline = Instant::now() + self.config.max_delay;
            let mut weight = first.request.weight();
            let mut jobs = vec![first];
            while weight < self.config.max_entries {
                // What is queued already joins the batch; then, until the
                // deadline, what arrives.
                let next = match receiver.try_recv() {
                    Ok(job) => Ok(job),
                    Err(_) => {
                        let left = deadline.saturating_duration_since(Instant::now());
                        if left.is_zero() {
                            break;
                        }
                        receiver.recv_timeout(left)
                    }
                };
                match next {
                    Ok(job) => {
                        weight = weight.saturating_add(job.request.weight());
                        jobs.push(job);
                    }
                    Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
                }
            }
            self.batch(jobs);
        }
        // Every handle is gone: the batch in flight is answered, then the
        // committer ends.
        let _ = self.settle_in_flight();
        drop(self.work);
        if let Some(committer) = self.committer.take() {
            // A panic in the committer has already failed its requests.
            let _ = committer.join();
        }
    }

    /// Answers the requests gathered: each stream on its own, in its
    /// place; the others staged, committed and signed together.
    fn batch(&mut self, jobs: Vec<Job>) {
        // A store reopened after a failed write holds what is durable,
        // which may include the commit that reported the failure.
        self.settle_if_done();
        if self.in_flight.is_none()
            && let Some(tip) = take_reopened(&self.reopened)
        {
            // A store reopened while idle may have been committed to
            // since: its state is then older than the confirmed one.
            let newer = |log| tip.frontier(log).size() >= self.confirmed.frontier(log).size();
            if newer(Log::User) && newer(Log::System) {
                self.confirmed = *tip;
            }
            self.failed = None;
        }
        if let Some(error) = &self.failed {
            for job in jobs {
                job.waiter.fail(SequencerError::Store(Arc::clone(error)));
            }
            return;
        }
        let started = Instant::now();
        // Staging and loads look up whether each new item is stored: the
        // item filter answers most of those without the database. Built at
        // the first write (its scan fills the page cache, which a register
        // that only serves reads should not pay for), and again, larger,
        // once the register outgrows it; cheap when it fits.
        self.store.start_item_filter(crate::INLINE_FILTER_ENTRIES);
        let mut staged = Vec::new();
        for Job { request, waiter } in jobs {
            match request {
                Request::Stream { commands, policy } => {
                    self.stage(std::mem::take(&mut staged), started);
                    self.stream(commands, policy, waiter);
                }
                Request::Append {
                    entries,
                    allow_repeated,
                } => match self.append_commands(entries) {
                    Ok(commands) => staged.push(StagedJob {
                        commands,
                        policy: Policy {
                            allow_repeated_items: allow_repeated,
                            ..Policy::APPEND
                        },
                        list_entries: true,
                        waiter,
                    }),
                    Err(error) => waiter.fail(error),
                },
                Request::Load { commands, policy } => staged.push(StagedJob {
                    commands,
                    policy,
                    list_entries: false,
                    waiter,
                }),
            }
        }
        self.stage(staged, started);
    }

    /// The state the next batch is staged on.
    fn tip(&self) -> &Tip {
        self.in_flight
            .as_ref()
            .map_or(&self.confirmed, |(_, tip)| tip)
    }

    /// Waits for the committer's outcome of the batch in flight, if any.
    fn settle_in_flight(&mut self) -> Result<(), SequencerError> {
        let Some((_, tip)) = self.in_flight.take() else {
            return Ok(());
        };
        let outcome = self.outcomes.recv();
        self.settled(outcome, tip)
    }

    /// Takes the outcome of the batch in flight if the committer has
    /// reported it already: the next batch is then staged on what is
    /// committed, not on a batch that failed.
    fn settle_if_done(&mut self) {
        if self.in_flight.is_none() {
            return;
        }
        if let Ok(outcome) = self.outcomes.try_recv()
            && let Some((_, tip)) = self.in_flight.take()
        {
            // Its failure has been answered to its own requests.
            let _ = self.settled(Ok(outcome), tip);
        }
    }

    /// Moves the confirmed state on to `tip` if the batch that leaves it
    /// was committed.
    fn settled(
        &mut self,
        outcome: Result<Outcome, std::sync::mpsc::RecvError>,
        tip: Tip,
    ) -> Result<(), SequencerError> {
        match outcome {
            Ok(Outcome::Batch(Ok(()))) => {
                self.confirmed = tip;
                Ok(())
            }
            Ok(Outcome::Batch(Err(Failure { error, reopening }))) => {
                if reopening {
                    self.failed = Some(Arc::clone(&error));
                }
                Err(SequencerError::Store(error))
            }
            Ok(Outcome::Stream(_)) | Err(_) => Err(SequencerError::Stopped),
        }
    }

    /// Stages and signs a batch of requests held in memory, and hands it to
    /// the committer.
    fn stage(&mut self, jobs: Vec<StagedJob>, started: Instant) {
        if jobs.is_empty() {
            return;
        }
        self.settle_if_done();
        let snapshot = match self.store.snapshot() {
            Ok(snapshot) => snapshot,
            Err(error) => {
                let error = Arc::new(error);
                self.reopen_if_the_disk_failed(&error);
                return fail_all(jobs.into_iter().map(|job| job.waiter), &error);
            }
        };
        let Tip {
            mut trees,
            mut schema,
            signed: latest,
        } = self.tip().clone();
        let in_flight = self.in_flight.as_ref().map(|(staged, _)| staged);
        let mut staged = Staged::default();
        let mut accepted = Vec::new();
        let mut read_failed = None;
        for StagedJob {
            commands,
            policy,
            list_entries,
            waiter,
        } in jobs
        {
            let mut target = RequestTarget::new(&snapshot, in_flight, &mut staged);
            let loaded = load(
                Loader::resume(&mut target, policy, trees.clone(), schema.clone()),
                commands,
            )
            .map_err(staging_error)
            .and_then(|summary| check_name(&self.name, &summary.schema).map(|()| summary));
            match loaded {
                Ok(mut summary) => {
                    let entries = if list_entries {
                        target.appended()
                    } else {
                        Vec::new()
                    };
                    accepted.push(Accepted {
                        waiter,
                        entries,
                        tally: tally(&mut summary),
                    });
                    trees = summary.logs;
                    schema = summary.schema;
                }
                Err(error) => {
                    target.undo();
                    if let SequencerError::Store(error) = &error {
                        read_failed.get_or_insert_with(|| Arc::clone(error));
                    }
                    waiter.fail(error);
                }
            }
        }
        drop(snapshot);
        if let Some(error) = read_failed {
            self.reopen_if_the_disk_failed(&error);
        }
        if accepted.is_empty() {
            return;
        }
        // Sign the new trees now, but publish the signatures only through
        // the same atomic, durable commit as the entries they cover: a
        // checkpoint never leaves this process before its data is on disk,
        // and no reader ever sees entries that no checkpoint covers.
        let mut batch = staged.take_batch();
        let signed = match sign_grown(&self.signers, &latest, trees.as_ref()) {
            Ok(signed) => signed,
            Err(error) => {
                let error = Arc::new(error);
                for accepted in accepted {
                    accepted
                        .waiter
                        .fail(SequencerError::Sign(Arc::clone(&error)));
                }
                return;
            }
        };
        let signed_at = Instant::now();
        for (log, checkpoint) in &signed {
            batch.set_checkpoint(*log, checkpoint.clone());
        }
        let mut checkpoints = latest;
        for (log, checkpoint) in &signed {
            checkpoints[*log] = checkpoint.clone();
        }
        // This batch builds on the one in flight: if that one failed, so
        // does this one, with its error.
        if let Err(error) = self.settle_in_flight() {
            for accepted in accepted {
                accepted.waiter.fail(match &error {
                    SequencerError::Store(error) => SequencerError::Store(Arc::clone(error)),
                    _ => SequencerError::Stopped,
                });
            }
            return;
        }
        let work = Work::Batch(Box::new(BatchWork {
            batch,
            signed,
            accepted,
            times: BatchTimes {
                started,
                signed: signed_at,
            },
        }));
        if let Err(std::sync::mpsc::SendError(work)) = self.work.send(work) {
            if let Work::Batch(work) = work {
                for accepted in work.accepted {
                    accepted.waiter.fail(SequencerError::Stopped);
                }
            }
            return;
        }
        let tip = Tip {
            trees,
            schema,
            signed: checkpoints,
        };
        self.in_flight = Some((staged, tip));
    }

    /// Has the committer load a document as it is read, once the batch in
    /// flight is done, and waits for it (what it changes is known only
    /// after).
    fn stream(&mut self, commands: Commands, policy: Policy, waiter: Waiter) {
        if let Err(error) = self.settle_in_flight() {
            return waiter.fail(error);
        }
        let work = Work::Stream {
            commands,
            policy,
            waiter,
            tip: Box::new(self.confirmed.clone()),
        };
        if let Err(std::sync::mpsc::SendError(work)) = self.work.send(work) {
            if let Work::Stream { waiter, .. } = work {
                waiter.fail(SequencerError::Stopped);
            }
            return;
        }
        match self.outcomes.recv() {
            Ok(Outcome::Stream(Ok(tip))) => self.confirmed = *tip,
            Ok(Outcome::Stream(Err(Some(error)))) => self.failed = Some(error),
            _ => {}
        }
    }

    /// After a read of the store failed on the disk: writes are refused
    /// and the committer reopens the store (once per failure).
    fn reopen_if_the_disk_failed(&mut self, error: &Arc<StoreError>) {
        if !error.is_io() || self.failed.is_some() {
            return;
        }
        self.failed = Some(Arc::clone(error));
        // A committer that has stopped needs no reopening.
        let _ = self.work.send(Work::Reopen(Arc::clone(error)));
    }

    /// An append as RSF commands: each item, then its entry, stamped now.
    fn append_commands(
        &self,
        entries: Vec<(String, Item)>,
    ) -> Result<Vec<(u64, Command)>, SequencerError> {
        let now = (self.clock)().ok_or(SequencerError::Clock)?;
        let mut commands = Vec::with_capacity(entries.len() * 2);
        for (position, (key, item)) in (1u64..).zip(entries) {
            let hash = item.hash();
            // "Line" numbers name the entry's position in the request.
            commands.push((position, Command::AddItem(item)));
            commands.push((
                position,
                Command::AppendEntry(Entry::new(Log::User, key, now, hash)),
            ));
        }
        Ok(commands)
    }
}

impl<B: KvBackend> Committer<B> {
    fn run(mut self, work: Receiver<Work>, outcomes: SyncSender<Outcome>) {
        loop {
            let next = match work.recv_timeout(SETTLE_AFTER) {
                Ok(next) => next,
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    // Idle: make the store quick to open after a crash (a
                    // failure costs only that, or fails the database, which
                    // is then reopened), and reopen it if the database
                    // failed outside a commit (a merge).
                    let _ = self.writer.settle();
                    if let Some(why) = self.writer.failed() {
                        let error = Arc::new(StoreError::Io(std::io::Error::other(why)));
                        if !self.reopen(&error, &work, &outcomes) {
                            break;
                        }
                    }
                    continue;
                }
            };
            match next {
                Work::Batch(batch) => self.commit(*batch, &work, &outcomes),
                Work::Reopen(error) => {
                    if !self.reopen(&error, &work, &outcomes) {
                        break;
                    }
                }
                Work::Stream {
                    commands,
                    policy,
                    waiter,
                    tip,
                } => self.stream(commands, policy, waiter, tip, &work, &outcomes),
            }
        }
    }

    /// Commits a staged batch and its checkpoints, publishes them, and
    /// acknowledges its requests (or fails them all).
    fn commit(
        &mut self,
        work: BatchWork,
        receiver: &Receiver<Work>,
        outcomes: &SyncSender<Outcome>,
    ) {
        let BatchWork {
            batch,
            signed,
            accepted,
            times:
                BatchTimes {
                    started,
                    signed: signed_at,
                },
        } = work;
        // The stager stops sending when it stops taking outcomes: a failed
        // send needs nothing more.
        let committed = self.writer.commit(&batch);
        let durable_at = Instant::now();
        let published = committed.and_then(|_| self.publish(signed));
        let checkpoints = match published {
            Ok(checkpoints) => checkpoints,
            Err(error) => {
                // Not committed, or committed but not publishable: nothing
                // is acknowledged (the store, reopened, says which).
                let error = Arc::new(error);
                let reopening = self.writer.failed().is_some();
                // Reopened at once if it can be, so that a client answered
                // with the failure finds the store open when it retries.
                let reopened = reopening && self.reopen_once(&error);
                let _ = outcomes.send(Outcome::Batch(Err(Failure {
                    error: Arc::clone(&error),
                    reopening,
                })));
                fail_all(accepted.into_iter().map(|a| a.waiter), &error);
                if reopening && !reopened {
                    self.reopen(&error, receiver, outcomes);
                }
                return;
            }
        };
        let _ = outcomes.send(Outcome::Batch(Ok(())));
        self.store.health().report_writes(None);
        let batch_entries = u64::try_from(batch.entries().len()).unwrap_or(u64::MAX);
        for accepted in accepted {
            let timing = Timing::of(
                &accepted.waiter,
                batch_entries,
                [started, signed_at, durable_at],
            );
            let receipt = receipt(accepted.entries, accepted.tally, &checkpoints, timing);
            // A waiter that went away needs no answer.
            let _ = accepted.waiter.reply.send(Ok(receipt));
        }
    }

    /// Loads a document as it is read, in one write transaction of its own
    /// that also stores the checkpoints of the trees it leaves: on error
    /// nothing of it is written and nothing is signed for it. Reports the
    /// state it leaves, if it was loaded.
    fn stream(
        &mut self,
        commands: Commands,
        policy: Policy,
        waiter: Waiter,
        tip: Box<Tip>,
        receiver: &Receiver<Work>,
        outcomes: &SyncSender<Outcome>,
    ) {
        let started = Instant::now();
        let mut signed_at = started;
        let (name, signers, schema, latest) = (&self.name, &self.signers, &tip.schema, &tip.signed);
        let writer = &mut self.writer;
        let result = std::thread::scope(|scope| {
            let commands = read_ahead(scope, commands);
            writer.transact(|txn| {
                let trees = PerLog::from_fn(|log| txn.frontier(log).clone());
                let prepared = std::cell::RefCell::new(None);
                let mut target = TxnTarget {
                    txn: &mut *txn,
                    prepared: &prepared,
                };
                let mut loader = Loader::resume(&mut target, policy, trees, schema.clone());
                for (command, item) in commands {
                    let (line, command) = command?;
                    *prepared.borrow_mut() = item;
                    loader.apply(line, command).map_err(staging_error)?;
                }
                let summary = loader.finish().map_err(staging_error)?;
                check_name(name, &summary.schema)?;
                let signed = sign_grown(signers, latest, summary.logs.as_ref())
                    .map_err(|error| SequencerError::Sign(Arc::new(error)))?;
                signed_at = Instant::now();
                for (log, checkpoint) in &signed {
                    txn.set_checkpoint(*log, checkpoint)?;
                }
                Ok::<_, SequencerError>((summary, signed))
            })
        });
        let durable_at = Instant::now();
        let result = result.and_then(|(summary, signed)| {
            let checkpoints = self.publish(signed).map_err(SequencerError::from)?;
            Ok((summary, checkpoints))
        });
        let (answer, left) = match result {
            Ok((mut summary, checkpoints)) => {
                self.store.health().report_writes(None);
                let tally = tally(&mut summary);
                let batch_entries = summary
                    .appended
                    .user
                    .saturating_add(summary.appended.system);
                let timing = Timing::of(&waiter, batch_entries, [started, signed_at, durable_at]);
                let left = Tip {
                    trees: summary.logs,
                    schema: summary.schema,
                    signed: checkpoints.clone(),
                };
                (
                    Ok(receipt(Vec::new(), tally, &checkpoints, timing)),
                    Ok(Box::new(left)),
                )
            }
            Err(error) => {
                let reopening = self.writer.failed().is_some().then(|| match &error {
                    SequencerError::Store(error) => Arc::clone(error),
                    other => Arc::new(StoreError::Io(std::io::Error::other(other.to_string()))),
                });
                (Err(error), Err(reopening))
            }
        };
        let reopening = match &left {
            Err(Some(error)) if !self.reopen_once(error) => Some(Arc::clone(error)),
            _ => None,
        };
        let _ = outcomes.send(Outcome::Stream(left));
        // A waiter that went away needs no answer.
        let _ = waiter.reply.send(answer);
        if let Some(error) = reopening {
            self.reopen(&error, receiver, outcomes);
        }
    }

    /// After a failed write: reopens the store from what is durable, trying
    /// again with growing pauses (a disk may need room made first), until
    /// it opens or the sequencer stops; then reports the state it holds
    /// (which may include the commit that reported the failure) and
    /// publishes its checkpoints. Writes are refused meanwhile.
    /// Returns `false` if the sequencer stops meanwhile.
    fn reopen(
        &mut self,
        error: &Arc<StoreError>,
        work: &Receiver<Work>,
        outcomes: &SyncSender<Outcome>,
    ) -> bool {
        let mut pause = REOPEN_FIRST_PAUSE;
        while !self.reopen_once(error) {
            // Work sent before the stager learnt of the failure (it sends
            // none after) is refused with it.
            match work.recv_timeout(pause) {
                Ok(Work::Batch(batch)) => {
                    let _ = outcomes.send(Outcome::Batch(Err(Failure {
                        error: Arc::clone(error),
                        reopening: true,
                    })));
                    fail_all(batch.accepted.into_iter().map(|a| a.waiter), error);
                }
                Ok(Work::Stream { waiter, .. }) => {
                    let _ = outcomes.send(Outcome::Stream(Err(Some(Arc::clone(error)))));
                    waiter.fail(SequencerError::Store(Arc::clone(error)));
                }
                Ok(Work::Reopen(_)) => {}
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return false,
            }
            pause = (pause * 2).min(REOPEN_LAST_PAUSE);
        }
        true
    }

    /// One attempt at reopening the store after `error`: on success the
    /// state it holds goes to the stager and its checkpoints to
    /// subscribers, and the register is healthy again; on failure the
    /// register's health says why writes are stopped.
    fn reopen_once(&mut self, error: &StoreError) -> bool {
        let reopened = self
            .writer
            .recover()
            .map_err(SequencerError::from)
            .and_then(|_| self.tip())
            .and_then(|tip| {
                self.publish(tip.signed.clone().into_iter().collect())?;
                Ok(tip)
            });
        match reopened {
            Ok(tip) => {
                *self
                    .reopened
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Box::new(tip));
                // A full disk stays reported until a commit succeeds: the
                // store reopens without room, the next write may not.
                self.store
                    .health()
                    .report_writes(error.is_disk_full().then(|| WriteFailure {
                        why: format!(
                            "{error}; the store is open, writes resume once there is room"
                        ),
                        disk_full: true,
                    }));
                true
            }
            Err(reopening) => {
                self.store.health().report_writes(Some(WriteFailure {
                    why: format!("{error}; reopening the store: {reopening}"),
                    disk_full: error.is_disk_full(),
                }));
                false
            }
        }
    }

    /// The state staging builds on, as the store holds it.
    fn tip(&self) -> Result<Tip, SequencerError> {
        let snapshot = self.store.snapshot()?;
        let signed = |log| -> Result<SignedTree, SequencerError> {
            snapshot.checkpoint(log)?.ok_or_else(|| {
                SequencerError::from(StoreError::Corrupt(format!("no {log} checkpoint stored")))
            })
        };
        Ok(Tip {
            trees: PerLog::from_fn(|log| self.writer.frontier(log).clone()),
            schema: load_schema(&self.name, &self.store)?,
            signed: PerLog {
                user: signed(Log::User)?,
                system: signed(Log::System)?,
            },
        })
    }

    /// Publishes checkpoints just stored: durably first (the store
    /// refuses one that does not extend the last published), then to
    /// subscribers; returns both logs' latest, to hand out.
    fn publish(
        &mut self,
        signed: Vec<(Log, SignedTree)>,
    ) -> Result<PerLog<SignedTree>, StoreError> {
        let mut checkpoints = self.published.borrow().clone();
        for (log, checkpoint) in signed {
            checkpoints[log] = checkpoint;
        }
        self.writer.publish(checkpoints.as_ref())?;
        self.published.send_if_modified(|published| {
            let changed = *published != checkpoints;
            if changed {
                published.clone_from(&checkpoints);
            }
            changed
        });
        Ok(checkpoints)
    }
}

/// A register's documents must name the register they are loaded into.
fn check_name(register: &str, schema: &Schema) -> Result<(), SequencerError> {
    match schema.name() {
        Some(name) if name != register => Err(SequencerError::WrongRegister {
            defined: name.to_owned(),
            register: register.to_owned(),
        }),
        _ => Ok(()),
    }
}

/// The checkpoints of the trees that have grown past their latest one,
/// signed in memory; the caller stores them with the entries they cover.
fn sign_grown(
    signers: &LogSigners,
    latest: &PerLog<SignedTree>,
    trees: PerLog<&Frontier>,
) -> Result<Vec<(Log, SignedTree)>, RegistryError> {
    let mut signed = Vec::new();
    for (log, tree) in trees.iter() {
        if latest[log].size == tree.size() {
            continue;
        }
        let head = TreeHead {
            size: tree.size(),
            root: tree.root(),
        };
        signed.push((log, signers.sign(log, head)?));
    }
    Ok(signed)
}

/// What a receipt reports of a load beyond its entries.
struct Tally {
    items_added: u64,
    appended: PerLog<u64>,
    assertions: u64,
    warnings: LoadWarnings,
}

/// A load's tally (its warnings taken out of the summary).
fn tally(summary: &mut LoadSummary) -> Tally {
    Tally {
        items_added: summary.items_added,
        appended: summary.appended,
        assertions: summary.assertions,
        warnings: std::mem::take(&mut summary.warnings),
    }
}

/// When a batch's staging began and when its checkpoints were signed.
struct BatchTimes {
    started: Instant,
    signed: Instant,
}

impl Timing {
    /// `waiter`'s timing in a batch of `batch_entries` that started, was
    /// signed and was durable at these instants.
    fn of(waiter: &Waiter, batch_entries: u64, [started, signed, durable]: [Instant; 3]) -> Timing {
        let since = |instant: Instant| instant.saturating_duration_since(waiter.submitted);
        Timing {
            batch_entries,
            queued: since(started),
            signed: since(signed),
            durable: since(durable),
        }
    }
}

fn receipt(
    entries: Vec<Appended>,
    tally: Tally,
    checkpoints: &PerLog<SignedTree>,
    timing: Timing,
) -> Receipt {
    Receipt {
        entries,
        items_added: tally.items_added,
        appended: tally.appended,
        assertions: tally.assertions,
        warnings: tally.warnings,
        checkpoints: checkpoints.clone(),
        timing,
    }
}

/// Signs and stores the checkpoint of each log whose tree has grown past
/// its last checkpoint (or has none); returns both logs' latest.
fn sign_if_behind<B: KvBackend>(
    store: &Store<B>,
    writer: &mut Writer<B>,
    signers: &LogSigners,
) -> Result<PerLog<SignedTree>, SequencerError> {
    let store_error = |e| SequencerError::Store(Arc::new(e));
    let snapshot = store.snapshot().map_err(store_error)?;
    let mut batch = Batch::new();
    let mut latest = |log| -> Result<SignedTree, SequencerError> {
        let head = writer.head(log);
        match snapshot.checkpoint(log).map_err(store_error)? {
            Some(checkpoint) if checkpoint.size == head.size => Ok(checkpoint),
            _ => {
                let signed = signers
                    .sign(log, head)
                    .map_err(|e| SequencerError::Sign(Arc::new(e)))?;
                batch.set_checkpoint(log, signed.clone());
                Ok(signed)
            }
        }
    };
    let both = PerLog {
        user: latest(Log::User)?,
        system: latest(Log::System)?,
    };
    drop(snapshot);
    if !batch.is_empty() {
        writer.commit(&batch).map_err(store_error)?;
    }
    Ok(both)
}

fn load<T: LoadTarget>(
    mut loader: Loader<'_, T>,
    commands: Vec<(u64, Command)>,
) -> Result<LoadSummary, RsfError> {
    for (line, command) in commands {
        loader.apply(line, command)?;
    }
    loader.finish()
}

/// A request that failed to stage: the request's fault, or the store's
/// (a read that failed), which is no fault of the client's.
fn staging_error(error: RsfError) -> SequencerError {
    let RsfError { line, kind } = error;
    match kind {
        RsfErrorKind::Target(target) => match target.downcast::<TargetError>() {
            Ok(target) => match *target {
                TargetError::Store(error) => SequencerError::Store(Arc::new(error)),
                other => SequencerError::Rejected(RsfError {
                    line,
                    kind: RsfErrorKind::Target(Box::new(other)),
                }),
            },
            Err(target) => SequencerError::Rejected(RsfError {
                line,
                kind: RsfErrorKind::Target(target),
            }),
        },
        kind => SequencerError::Rejected(RsfError { line, kind }),
    }
}

fn fail_all(waiters: impl Iterator<Item = Waiter>, error: &Arc<StoreError>) {
    for waiter in waiters {
        waiter.fail(SequencerError::Store(Arc::clone(error)));
    }
}

/// What requests have staged: items, records and entries not yet committed.
#[derive(Default)]
struct Staged {
    items: HashMap<ItemHash, Item>,
    /// Items in the order they were added (the commit writes them so).
    item_order: Vec<ItemHash>,
    records: HashMap<(Log, String), ItemHash>,
    entries: Vec<StagedEntry>,
}

/// An entry staged: its number, the entry, the one item it names, and its
/// leaf hash.
struct StagedEntry {
    number: u64,
    entry: Entry,
    item: ItemHash,
    leaf_hash: Hash,
}

impl Staged {
    /// The entries staged from the `from`-th on: `from` is the batch's
    /// length when a request began staging, and a batch only grows while
    /// the request stages (`RequestTarget::undo` cuts it back to `from`).
    fn appended(&self, from: usize) -> Vec<Appended> {
        debug_assert!(from <= self.entries.len());
        self.entries
            .iter()
            .skip(from)
            .map(|staged| Appended {
                log: staged.entry.log,
                number: staged.number,
                key: staged.entry.key.clone(),
                item_hash: staged.item.0,
                leaf_hash: staged.leaf_hash,
            })
            .collect()
    }

    /// The batch to commit: the entries (taken) and a copy of the items
    /// (kept, with the records, for the next batch's staging to read while
    /// this one is committed).
    fn take_batch(&mut self) -> Batch {
        let mut batch = Batch::new();
        for hash in std::mem::take(&mut self.item_order) {
            if let Some(item) = self.items.get(&hash) {
                batch.add_new_model_item(hash, item.clone());
            }
        }
        for staged in std::mem::take(&mut self.entries) {
            batch.add_entry(NewEntry {
                number: staged.number,
                entry: staged.entry,
                leaf_hash: staged.leaf_hash,
            });
        }
        batch
    }
}

/// Why staging a request failed on the store's side.
#[derive(Debug, thiserror::Error)]
enum TargetError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("a stored item is not canonical: {0}")]
    Item(#[from] ItemError),
    #[error("an entry with {0} items: Regis stores entries of exactly one item")]
    ItemCount(usize),
}

fn stored_item<S: crate::KvSnapshot>(
    snapshot: &Snapshot<S>,
    hash: &ItemHash,
) -> Result<Option<Item>, TargetError> {
    item_of(hash, snapshot.item(hash.as_bytes())?)
}

/// The item stored under `hash` as regis-model's `Item`, from its JSON as
/// a snapshot or a write transaction reads it.
fn item_of(hash: &ItemHash, json: Option<Vec<u8>>) -> Result<Option<Item>, TargetError> {
    let Some(json) = json else {
        return Ok(None);
    };
    let text = crate::store::item_text(hash.as_bytes(), &json)?;
    Ok(Some(Item::from_canonical(text)?))
}

/// One request's view: what it and the earlier requests of the batch
/// staged, over what the batch in flight staged, over the store. A request
/// stages straight into the batch, noting what it changed so that a
/// failure can take it back out: it fails alone.
struct RequestTarget<'a, S> {
    snapshot: &'a Snapshot<S>,
    /// What the batch in the committer's hands staged.
    in_flight: Option<&'a Staged>,
    batch: &'a mut Staged,
    /// The batch's item and entry counts before this request.
    items_before: usize,
    entries_before: usize,
    /// Each record this request set, with what the batch had for it
    /// before, in order.
    replaced: Vec<((Log, String), Option<ItemHash>)>,
}

impl<'a, S> RequestTarget<'a, S> {
    fn new(
        snapshot: &'a Snapshot<S>,
        in_flight: Option<&'a Staged>,
        batch: &'a mut Staged,
    ) -> Self {
        RequestTarget {
            snapshot,
            in_flight,
            items_before: batch.item_order.len(),
            entries_before: batch.entries.len(),
            batch,
            replaced: Vec::new(),
        }
    }

    /// The staged layers, newest first: the batch's (this request's
    /// included), the batch in flight's.
    fn layers(&self) -> impl Iterator<Item = &Staged> {
        [Some(&*self.batch), self.in_flight].into_iter().flatten()
    }

    /// The entries this request staged.
    fn appended(&self) -> Vec<Appended> {
        self.batch.appended(self.entries_before)
    }

    /// Takes what this request staged back out of the batch.
    fn undo(self) {
        let batch = self.batch;
        for hash in batch.item_order.drain(self.items_before..) {
            batch.items.remove(&hash);
        }
        batch.entries.truncate(self.entries_before);
        for (index, before) in self.replaced.into_iter().rev() {
            match before {
                Some(item) => batch.records.insert(index, item),
                None => batch.records.remove(&index),
            };
        }
    }
}

impl<S: crate::KvSnapshot> LoadTarget for RequestTarget<'_, S> {
    type Error = TargetError;

    fn contains_item(&self, hash: &ItemHash) -> Result<bool, TargetError> {
        Ok(self.layers().any(|staged| staged.items.contains_key(hash))
            || self.snapshot.has_item(hash.as_bytes())?)
    }

    fn item(&self, hash: &ItemHash) -> Result<Option<Item>, TargetError> {
        if let Some(item) = self.layers().find_map(|staged| staged.items.get(hash)) {
            return Ok(Some(item.clone()));
        }
        stored_item(self.snapshot, hash)
    }

    fn record_is(&self, log: Log, key: &str, items: &[ItemHash]) -> Result<bool, TargetError> {
        let index = (log, key.to_owned());
        let current = match self.layers().find_map(|staged| staged.records.get(&index)) {
            Some(hash) => Some(*hash),
            None => self
                .snapshot
                .record(log, key)?
                .map(|record| ItemHash(record.item_hash)),
        };
        Ok(matches!((current, items), (Some(current), [only]) if current == *only))
    }

    fn add_item(&mut self, hash: ItemHash, item: Item) -> Result<bool, TargetError> {
        if self.contains_item(&hash)? {
            return Ok(false);
        }
        self.batch.item_order.push(hash);
        self.batch.items.insert(hash, item);
        Ok(true)
    }

    fn append_entry(
        &mut self,
        number: u64,
        entry: Entry,
        leaf_hash: Hash,
    ) -> Result<(), TargetError> {
        let &[item] = entry.item_hashes.as_slice() else {
            return Err(TargetError::ItemCount(entry.item_hashes.len()));
        };
        let index = (entry.log, entry.key.clone());
        let before = self.batch.records.insert(index.clone(), item);
        self.replaced.push((index, before));
        self.batch.entries.push(StagedEntry {
            number,
            entry,
            item,
            leaf_hash,
        });
        Ok(())
    }
}

/// A streamed document's view: the write transaction it loads into, which
/// reads its own writes, so nothing is staged in memory.
struct TxnTarget<'t, 'w> {
    txn: &'t mut Txn<'w>,
    /// What the reading thread prepared for the command being applied.
    prepared: &'t std::cell::RefCell<Option<PreparedItem>>,
}

impl LoadTarget for TxnTarget<'_, '_> {
    type Error = TargetError;

    fn contains_item(&self, hash: &ItemHash) -> Result<bool, TargetError> {
        Ok(self.txn.has_item(hash.as_bytes())?)
    }

    fn item(&self, hash: &ItemHash) -> Result<Option<Item>, TargetError> {
        item_of(hash, self.txn.item(hash.as_bytes())?)
    }

    fn record_is(&self, log: Log, key: &str, items: &[ItemHash]) -> Result<bool, TargetError> {
        let current = self.txn.record(log, key)?;
        Ok(matches!((current, items), (Some((_, current)), [only]) if current == only.0))
    }

    fn add_item(&mut self, hash: ItemHash, item: Item) -> Result<bool, TargetError> {
        let prefixes = match self.prepared.borrow_mut().take() {
            Some(prepared) if prepared.hash == hash => Some(prepared.prefixes),
            _ => None,
        };
        // An `Item` is canonical and `hash` is its hash, by construction.
        Ok(self
            .txn
            .add_canonical_item(hash.as_bytes(), item.as_str(), prefixes)?)
    }

    fn append_entry(
        &mut self,
        number: u64,
        entry: Entry,
        leaf_hash: Hash,
    ) -> Result<(), TargetError> {
        if entry.item_hashes.len() != 1 {
            return Err(TargetError::ItemCount(entry.item_hashes.len()));
        }
        let new = NewEntry {
            number,
            entry,
            leaf_hash,
        };
        Ok(self.txn.add_entry(&new)?)
    }
}
