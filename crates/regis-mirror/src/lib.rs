//! Mirroring: copying a remote register's two logs and items into a local
//! mirror register (regis-store's [`regis_store::Mirror`]), everything
//! verified by regis-client before it is stored.
//!
//! One sync:
//!
//! 1. The upstream's system, user and again system checkpoint are fetched
//!    and verified with the pinned key (the system log's key is derived
//!    from it, and `B/register` must state the same keys), and with the
//!    witness policy if one is given ([`Mirror::with_witness_policy`]:
//!    cosignatures meeting its quorum). The two system
//!    checkpoints must agree, so that both logs are seen as they stood at
//!    one moment (see "System entries" below).
//! 2. Each is checked to extend the mirror's stored checkpoint of its log,
//!    from the new tree's verified hash tiles (no server proof is used).
//! 3. The RSF delta from the mirror's sizes to the new user size is
//!    streamed (`B/download-rsf/{a}/{b}?system-size={s}`) as checked
//!    entries ([`regis_client::CheckedEntries`]): every entry's leaf bytes
//!    are rebuilt and their hash checked against the verified level-0 tile
//!    hash of its log, every item re-hashed, and entry, item and index rows
//!    written into one store transaction as they are read (memory does not
//!    grow with the delta).
//! 4. The upstream's two signed checkpoints are stored in the same
//!    transaction (the store checks again that they are its trees' roots),
//!    which then commits: all of a sync or none of it is stored. Each is
//!    stored as served, every signature line kept, so a server of the
//!    mirror hands out the witnesses' cosignatures with it.
//!
//! So a mirror is always at a state the upstream signed, a killed sync
//! leaves it at the previous one, and the next sync continues from there.
//!
//! **System entries.** Told the mirror holds `s` system entries, the delta
//! `a/b` carries the later ones appended while the user log had at most
//! `b` entries, each after the user entry it followed upstream. A system
//! checkpoint read before the user checkpoint of size `b`, and unchanged
//! after it, holds only such entries, so the delta carries all of them;
//! any it carries beyond were appended at user size `b` after the
//! checkpoints were read, so come after user entry `b`: the sync stops
//! reading there and leaves them to the next. (Where a system entry falls
//! among user entries is stated by no leaf and signed by nothing: a mirror
//! takes the upstream's word for it, as any reader of a delta does.)

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use std::sync::Arc;
use std::time::Duration;

use regis_client::{Client, Error, HttpTiles, LogRange, Received, StreamError, VerifiedCheckpoint};
use regis_merkle::TileHashReader;
use regis_model::rsf::RsfErrorKind;
use regis_model::{PerLog, RegisterName};
use regis_note::{Verifier, WitnessPolicy};
use regis_store::{
    DirBackend, KvBackend, Log, NewEntry, RegisterKind, Registry, RegistryError, SignedTree,
    Snapshot, Store, StoreError, TreeHead, Txn, Upstream, Writer,
};

/// How often the system checkpoint may change while the checkpoints are
/// read before a sync gives up.
const CHECKPOINT_TRIES: usize = 5;

/// Entries between progress reports.
const PROGRESS_EVERY: u64 = 1024;

/// Why a mirror could not be synced. Nothing of a failed sync is stored.
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    /// Something served does not verify (or could not be fetched).
    #[error(transparent)]
    Verify(#[from] Error),
    /// The mirror register could not be created or opened.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The mirror's store failed.
    #[error("the mirror's store: {0}")]
    Store(#[from] StoreError),
    /// The URL does not end with a register name.
    #[error("{0:?} does not end with a register name")]
    Name(String),
    /// The mirror exists and copies another upstream, or with another key.
    #[error("register {name} here mirrors {upstream}, not {asked}")]
    OtherUpstream {
        /// The mirror.
        name: String,
        /// What it mirrors (URL and key).
        upstream: String,
        /// What was asked for.
        asked: String,
    },
    /// `B/register` states another key for a log than the pinned (user) or
    /// derived (system) one.
    #[error("the upstream states {log} log key {served}, but the pinned key gives {expected}")]
    KeyMismatch {
        /// Which log.
        log: Log,
        /// What `B/register` states.
        served: String,
        /// The pinned or derived key.
        expected: String,
    },
    /// The system checkpoint kept changing while the checkpoints were read.
    #[error(
        "the upstream's system log moved {CHECKPOINT_TRIES} times while its checkpoints were read; try again"
    )]
    Moving,
    /// The mirror's store holds entries its checkpoint does not cover (no
    /// sync writes that).
    #[error("the mirror holds {stored} {log} entries, but its checkpoint covers {covered}")]
    Uncovered {
        /// Which log.
        log: Log,
        /// Entries stored.
        stored: u64,
        /// Entries its checkpoint covers.
        covered: u64,
    },
}

impl MirrorError {
    /// Whether the failure is the network's (a fetch that failed or timed
    /// out) or a log that moved while read, worth retrying, rather than
    /// something served that does not verify.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            MirrorError::Verify(Error::Fetch(_)) | MirrorError::Moving
        ) || matches!(
            self,
            MirrorError::Verify(Error::Tiles {
                error: regis_merkle::TileVerifyError::Fetch { .. },
                ..
            })
        ) || matches!(self, MirrorError::Verify(Error::Rsf { error, .. })
                if matches!(error.kind, RsfErrorKind::Io(_)))
    }
}

/// What a sync did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncReport {
    /// The mirror's trees before.
    pub before: PerLog<TreeHead>,
    /// And after: the upstream's signed checkpoints.
    pub after: PerLog<TreeHead>,
    /// Entries copied to each log.
    pub copied: PerLog<u64>,
    /// Items stored that the mirror did not hold.
    pub items: u64,
}

/// Progress of a sync: entries verified and written so far, of `total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncProgress {
    /// Entries done (both logs).
    pub done: u64,
    /// Entries to do.
    pub total: u64,
}

/// What `follow` reports as it goes.
#[derive(Debug)]
pub enum FollowEvent {
    /// Subscribed to the upstream's events.
    Connected,
    /// A sync committed.
    Synced(SyncReport),
    /// The stream or a sync failed on the network; retrying after `wait`.
    Retrying {
        /// Why.
        reason: String,
        /// The back-off.
        wait: Duration,
    },
}

/// A mirror register and the verifying client of its upstream.
#[derive(Debug)]
pub struct Mirror<B: regis_store::KvBackend> {
    name: RegisterName,
    user: Client,
    system: Client,
    store: Store<B>,
    writer: Writer<B>,
    keys_checked: bool,
}

/// The register name a base URL ends with.
pub fn register_name(url: &str) -> Result<RegisterName, MirrorError> {
    url.trim_end_matches('/')
        .rsplit('/')
        .next()
        .and_then(|name| RegisterName::new(name).ok())
        .ok_or_else(|| MirrorError::Name(url.to_owned()))
}

impl<B: DirBackend> Mirror<B> {
    /// Opens the mirror of `url` in `registry`, or creates it (empty) if
    /// there is none; the mirror is named by the URL's last segment. An
    /// existing mirror must copy the same URL with the same key. Returns
    /// whether it was created.
    pub fn open_or_create(
        registry: &Registry,
        url: &str,
        key: Verifier,
    ) -> Result<(Self, bool), MirrorError> {
        let client = Client::new(url, key.clone())?;
        let name = register_name(url)?;
        let upstream = Upstream::new(client.base_url(), key.clone()).ok_or(Error::SystemKey {
            key: key.to_string(),
        })?;
        let created = !registry.exists::<B>(&name) && registry.kind(&name) == RegisterKind::Own;
        let opened = if created {
            registry.create_mirror::<B>(&name, &upstream)?
        } else {
            registry.open_mirror::<B>(&name)?
        };
        if opened.upstream != upstream {
            return Err(MirrorError::OtherUpstream {
                name: name.to_string(),
                upstream: format!(
                    "{} ({})",
                    opened.upstream.url(),
                    opened.upstream.verifier(Log::User)
                ),
                asked: format!("{} ({key})", upstream.url()),
            });
        }
        Ok((Self::new(opened)?, created))
    }
}

impl<B: KvBackend> Mirror<B> {
    /// Syncs `mirror` from its upstream, with the keys it pinned.
    pub fn new(mirror: regis_store::Mirror<B>) -> Result<Self, MirrorError> {
        let user = Client::new(
            mirror.upstream.url(),
            mirror.upstream.verifier(Log::User).clone(),
        )?;
        let system = user.system()?;
        Ok(Mirror {
            name: mirror.name,
            user,
            system,
            store: mirror.store,
            writer: mirror.writer,
            keys_checked: false,
        })
    }

    /// This mirror, copying only upstream checkpoints whose cosignatures
    /// meet `policy` ([`Client::with_witness_policy`]; its stored
    /// checkpoints are checked against it too).
    pub fn with_witness_policy(self, policy: WitnessPolicy) -> Self {
        let policy = Arc::new(policy);
        Mirror {
            user: self.user.with_witness_policy(Arc::clone(&policy)),
            system: self.system.with_witness_policy(policy),
            ..self
        }
    }

    /// The mirror's name.
    pub fn name(&self) -> &RegisterName {
        &self.name
    }

    /// The mirror's store (for reading).
    pub fn store(&self) -> &Store<B> {
        &self.store
    }

    /// The client of the upstream's user log.
    pub fn client(&self) -> &Client {
        &self.user
    }

    /// The mirror's trees.
    pub fn heads(&self) -> PerLog<TreeHead> {
        PerLog::from_fn(|log| self.writer.head(log))
    }

    /// `B/register` must state the pinned user key and the derived system
    /// key. Checked once per mirror; never used instead of the derivation.
    fn check_keys(&mut self) -> Result<(), MirrorError> {
        if self.keys_checked {
            return Ok(());
        }
        let (served_user, served_system) = self.user.served_keys()?;
        for (log, served, client) in [
            (Log::User, served_user, &self.user),
            (Log::System, served_system, &self.system),
        ] {
            let expected = client.key().to_string();
            if served != expected {
                return Err(MirrorError::KeyMismatch {
                    log,
                    served,
                    expected,
                });
            }
        }
        self.keys_checked = true;
        Ok(())
    }

    /// The mirror's stored checkpoint of `log`, verified again with the
    /// pinned key; `None` before the first sync.
    fn stored_checkpoint<S: regis_store::KvSnapshot>(
        &self,
        snapshot: &Snapshot<S>,
        log: Log,
    ) -> Result<Option<VerifiedCheckpoint>, MirrorError> {
        let client = match log {
            Log::User => &self.user,
            Log::System => &self.system,
        };
        let stored = snapshot.size(log);
        let Some(tree) = snapshot.checkpoint(log)? else {
            return if stored == 0 {
                Ok(None)
            } else {
                Err(MirrorError::Uncovered {
                    log,
                    stored,
                    covered: 0,
                })
            };
        };
        if tree.size != stored {
            return Err(MirrorError::Uncovered {
                log,
                stored,
                covered: tree.size,
            });
        }
        let source = format!("the mirror's stored {log} checkpoint");
        Ok(Some(
            client.verify_saved_checkpoint(tree.text.as_bytes(), &source)?,
        ))
    }

    /// The upstream's user and system checkpoints as they stood at one
    /// moment: a system checkpoint read before the user one and unchanged
    /// after it.
    fn upstream_checkpoints(&self) -> Result<PerLog<VerifiedCheckpoint>, MirrorError> {
        for _ in 0..CHECKPOINT_TRIES {
            let before = self.system.checkpoint()?;
            let user = self.user.checkpoint()?;
            let after = self.system.checkpoint()?;
            if before.size() == after.size() && before.root() == after.root() {
                return Ok(PerLog {
                    user,
                    system: after,
                });
            }
            // It moved: it must at least have moved forward.
            self.system.consistency(&before, &after)?;
        }
        Err(MirrorError::Moving)
    }

    /// Brings the mirror up to the upstream's current checkpoints, or
    /// changes nothing. `progress` is called as entries are written.
    pub fn sync(
        &mut self,
        progress: &mut dyn FnMut(SyncProgress),
    ) -> Result<SyncReport, MirrorError> {
        match self.sync_once(progress) {
            // A static copy deleted a partial object of the checkpoints
            // read (nothing was stored): once more, from its newer ones.
            Err(MirrorError::Verify(error)) if error.is_superseded() => self.sync_once(progress),
            other => other,
        }
    }

    fn sync_once(
        &mut self,
        progress: &mut dyn FnMut(SyncProgress),
    ) -> Result<SyncReport, MirrorError> {
        self.check_keys()?;
        let snapshot = self.store.snapshot()?;
        let stored = PerLog {
            user: self.stored_checkpoint(&snapshot, Log::User)?,
            system: self.stored_checkpoint(&snapshot, Log::System)?,
        };
        let checkpoints = self.upstream_checkpoints()?;
        let clients = PerLog {
            user: &self.user,
            system: &self.system,
        };
        for (log, old) in stored.iter() {
            if let Some(old) = old {
                clients[log].consistency(old, &checkpoints[log])?;
            }
        }
        let before = self.heads();
        let mut report = SyncReport {
            before,
            after: before,
            copied: PerLog::default(),
            items: 0,
        };
        let up_to_date = stored.user.is_some()
            && stored.system.is_some()
            && before.user.size == checkpoints.user.size()
            && before.system.size == checkpoints.system.size();
        if up_to_date {
            return Ok(report);
        }
        let tiles = checkpoints
            .as_ref()
            .map(|log, checkpoint| clients[log].tiles(checkpoint));
        let plan = Plan {
            user: &self.user,
            checkpoints: &checkpoints,
            tiles: tiles.as_ref(),
            total: checkpoints
                .iter()
                .map(|(log, checkpoint)| checkpoint.size().saturating_sub(snapshot.size(log)))
                .sum(),
        };
        drop(snapshot);
        let copied = self.writer.transact(|txn| plan.apply(txn, progress))?;
        report.after = self.heads();
        report.copied = copied.entries;
        report.items = copied.items;
        Ok(report)
    }

    /// Syncs, then follows the upstream's events (`B/events`), syncing on
    /// each new checkpoint, until `stop` says so (checked at each line of
    /// the stream, at least every `idle`, and at each back-off). Network
    /// failures are retried with back-off (1 s doubling to 60 s); anything
    /// served that does not verify ends it with that error.
    pub fn follow(
        &mut self,
        idle: Duration,
        stop: &dyn Fn() -> bool,
        observe: &mut dyn FnMut(FollowEvent),
        progress: &mut dyn FnMut(SyncProgress),
    ) -> Result<(), MirrorError> {
        const FIRST_WAIT: Duration = Duration::from_secs(1);
        const LONGEST_WAIT: Duration = Duration::from_secs(60);
        let mut wait = FIRST_WAIT;
        while !stop() {
            match self.follow_once(idle, stop, observe, progress) {
                Ok(()) => return Ok(()),
                Err(FollowError::Mirror(error) | FollowError::Connected(error))
                    if !error.is_transient() =>
                {
                    return Err(error);
                }
                Err(error) => {
                    if !matches!(error, FollowError::Mirror(_)) {
                        // It had connected: start the back-off again.
                        wait = FIRST_WAIT;
                    }
                    observe(FollowEvent::Retrying {
                        reason: error.to_string(),
                        wait,
                    });
                }
            }
            let deadline = std::time::Instant::now() + wait;
            while std::time::Instant::now() < deadline && !stop() {
                std::thread::sleep(Duration::from_millis(50));
            }
            wait = (wait * 2).min(LONGEST_WAIT);
        }
        Ok(())
    }

    /// One connection: sync, subscribe, sync on events until the stream
    /// fails or `stop`.
    fn follow_once(
        &mut self,
        idle: Duration,
        stop: &dyn Fn() -> bool,
        observe: &mut dyn FnMut(FollowEvent),
        progress: &mut dyn FnMut(SyncProgress),
    ) -> Result<(), FollowError> {
        let report = self.sync(progress)?;
        observe(FollowEvent::Synced(report));
        let mut events = self
            .user
            .events(idle)
            .map_err(|e| FollowError::Mirror(e.into()))?;
        observe(FollowEvent::Connected);
        loop {
            if stop() {
                return Ok(());
            }
            match events.next_line() {
                Ok(Received::Checkpoint(event)) => {
                    let held = self.writer.head(event.log).size;
                    if event.size != held {
                        let report = self.sync(progress).map_err(FollowError::Connected)?;
                        observe(FollowEvent::Synced(report));
                    }
                }
                Ok(Received::Other) => {}
                Err(error) => return Err(FollowError::Stream(error)),
            }
        }
    }
}

/// Why one connection of `follow` ended.
#[derive(Debug, thiserror::Error)]
enum FollowError {
    /// Before subscribing: the first sync, or connecting.
    #[error(transparent)]
    Mirror(#[from] MirrorError),
    /// A sync after subscribing.
    #[error(transparent)]
    Connected(MirrorError),
    /// The stream failed after subscribing.
    #[error(transparent)]
    Stream(StreamError),
}

/// What one sync copies, all verified.
struct Plan<'a> {
    /// The user log's client, which reads the delta of both logs.
    user: &'a Client,
    checkpoints: &'a PerLog<VerifiedCheckpoint>,
    tiles: PerLog<&'a TileHashReader<HttpTiles>>,
    total: u64,
}

/// Counts of what was copied.
#[derive(Default)]
struct Copied {
    entries: PerLog<u64>,
    items: u64,
}

impl Plan<'_> {
    /// Writes the new entries and items into `txn`, each verified, and the
    /// upstream's checkpoints.
    fn apply(
        &self,
        txn: &mut Txn<'_>,
        progress: &mut dyn FnMut(SyncProgress),
    ) -> Result<Copied, MirrorError> {
        let mut copied = Copied::default();
        let mut report = |copied: &Copied, force: bool| {
            let done = copied.entries.user + copied.entries.system;
            if force || done.is_multiple_of(PROGRESS_EVERY) {
                progress(SyncProgress {
                    done,
                    total: self.total,
                });
            }
        };
        // The delta from the mirror's sizes to the new checkpoints.
        let ranges = self
            .tiles
            .map(|log, tiles| LogRange::new(tiles, txn.frontier(log).clone()));
        for checked in self.user.delta_entries(ranges.user, Some(ranges.system))? {
            let checked = checked?;
            if let Some((hash, item)) = &checked.item {
                copied.items += u64::from(txn.add_item(hash.as_bytes(), item.as_str().as_bytes())?);
            }
            txn.add_entry(&NewEntry {
                number: checked.number,
                entry: checked.entry,
                leaf_hash: checked.leaf_hash,
            })?;
            copied.entries[checked.log] += 1;
            report(&copied, false);
        }
        report(&copied, true);
        for (log, checkpoint) in self.checkpoints.iter() {
            txn.set_checkpoint(
                log,
                &SignedTree {
                    size: checkpoint.size(),
                    root: *checkpoint.root(),
                    text: checkpoint.to_string(),
                },
            )?;
        }
        Ok(copied)
    }
}
