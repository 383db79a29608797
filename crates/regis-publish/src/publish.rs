//! One register's publications to one target: where to resume from (the
//! state file and the target's own checkpoints, checked), whether a pair of
//! checkpoints is publishable, and one publication in the order of
//! `spec/static.md`: tiles, bundles, RSF chunks and tail, `B/register` and
//! `B/witness-policy`, then the checkpoints, then the state, then the
//! superseded objects' deletion.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use regis_merkle::Frontier;
use regis_model::{Log, PerLog, format_hash};
use regis_note::{SignedCheckpoint, Verifier, Verifiers};
use regis_store::rsf::{Delta, system_entries_through, write_delta};
use regis_store::{DirBackend, KvBackend, KvSnapshot, SignedTree, Snapshot, Store};

use crate::plan::{CHUNK, Object, Plan, plan};
use crate::state::{self, StateError};
use crate::target::{Headers, IMMUTABLE, NO_CACHE, Target, TargetError};

/// A store snapshot of backend `B`.
pub type SnapshotOf<B> = Arc<Snapshot<<B as KvBackend>::Snapshot>>;

/// Renders `B/register` from a snapshot (the server's own renderer: the
/// bucket's bytes are the origin's).
pub type RenderRegister<B> = Arc<dyn Fn(SnapshotOf<B>) -> Result<Vec<u8>, String> + Send + Sync>;

/// A log's origin and key: what the target's checkpoints must verify with.
#[derive(Clone, Debug)]
pub struct LogKey {
    /// The origin.
    pub origin: String,
    /// The verifier key.
    pub verifier: Verifier,
}

/// One register as the publisher reads it.
pub struct Source<B: DirBackend> {
    /// Its name.
    pub name: String,
    /// Its directory (the state files are in `published-to/`).
    pub dir: PathBuf,
    /// Its store.
    pub store: Store<B>,
    /// Its logs' origins and keys.
    pub keys: PerLog<LogKey>,
    /// Renders `B/register`.
    pub render_register: RenderRegister<B>,
    /// Its witness policy's bytes, if it has one (`B/witness-policy`).
    pub witness_policy: Option<Bytes>,
}

impl<B: DirBackend> std::fmt::Debug for Source<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("name", &self.name)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// How publications are made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// The least time between the starts of two publications of one
    /// register.
    pub interval: Duration,
    /// The longest one request may take.
    pub request_timeout: Duration,
    /// Uploads in flight at once, per register.
    pub concurrency: usize,
    /// Tries of one request before the publication fails.
    pub tries: u32,
    /// The first back-off after a failed publication (and, a tenth of it,
    /// after a failed request), doubled at each failure after it.
    pub first_back_off: Duration,
    /// The longest back-off.
    pub max_back_off: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            interval: Duration::from_secs(1),
            request_timeout: Duration::from_secs(30),
            concurrency: 8,
            tries: 3,
            first_back_off: Duration::from_secs(1),
            max_back_off: Duration::from_secs(60),
        }
    }
}

/// Why a publication failed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The target holds what this register cannot publish over: it is not
    /// published to that target (until the target is fixed).
    #[error(
        "register {register} is not published to {target}: its {log} checkpoint there {reason}"
    )]
    Refused {
        /// The register.
        register: String,
        /// The target's URL.
        target: String,
        /// The log whose checkpoint is wrong.
        log: Log,
        /// What is wrong, with both sizes.
        reason: String,
    },
    /// A request failed (after its tries).
    #[error("register {register}: {error}")]
    Target {
        /// The register.
        register: String,
        /// The request.
        error: TargetError,
    },
    /// Reading the register's store failed.
    #[error("register {register}: reading its store: {error}")]
    Store {
        /// The register.
        register: String,
        /// Why.
        error: String,
    },
    /// The state file could not be read or written.
    #[error("register {register}: {error}")]
    State {
        /// The register.
        register: String,
        /// Why.
        error: StateError,
    },
}

impl PublishError {
    /// Whether retrying cannot help (the target holds another log's data).
    pub fn is_refusal(&self) -> bool {
        matches!(self, PublishError::Refused { .. })
    }
}

/// What a request was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// An upload.
    Put,
    /// A download (the target's checkpoints at start-up).
    Get,
    /// A listing (of superseded objects).
    List,
    /// A deletion.
    Delete,
}

impl Request {
    /// Every kind, as [`Requests`] indexes them.
    pub const ALL: [Request; 4] = [Request::Put, Request::Get, Request::List, Request::Delete];

    /// Its name in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Request::Put => "put",
            Request::Get => "get",
            Request::List => "list",
            Request::Delete => "delete",
        }
    }
}

/// Requests made, by kind ([`Request::ALL`]'s order) and outcome
/// (succeeded, failed).
pub type Requests = [[u64; 2]; 4];

/// What a register's publishing has done, as `/metrics` and `/readyz` read
/// it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Status {
    /// Each log's size as published (its checkpoint in the target).
    pub published: PerLog<u64>,
    /// Each log's size as served (the newest pair seen).
    pub served: PerLog<u64>,
    /// Publications made since start.
    pub publications: u64,
    /// Requests made, by kind and outcome.
    pub requests: Requests,
    /// Why the last publication (or start-up check) failed, until one
    /// succeeds.
    pub last_error: Option<String>,
    /// Since when publications fail: the first failure after the last
    /// success.
    pub failing_since: Option<std::time::Instant>,
    /// Why the register is not published at all (the target holds another
    /// log's checkpoint, or one ahead of this data directory).
    pub refused: Option<String>,
}

/// Shared between a register's publishing and its readers.
pub type SharedStatus = Arc<Mutex<Status>>;

/// Where publications resume from, found at start-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resume {
    /// The sizes whose objects the target surely holds: for each log the
    /// smaller of the state file's and the target's checkpoint (0 without
    /// either).
    pub from: PerLog<u64>,
    /// The target's checkpoints' sizes: no publication goes below them.
    pub floor: PerLog<u64>,
}

/// One register and one target.
pub struct Publication<B: DirBackend> {
    /// The register.
    pub source: Source<B>,
    /// The target.
    pub target: Arc<dyn Target>,
    /// How.
    pub settings: Settings,
    /// What it has done.
    pub status: SharedStatus,
}

impl<B: DirBackend> std::fmt::Debug for Publication<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publication")
            .field("source", &self.source)
            .field("target", &self.target.url())
            .finish_non_exhaustive()
    }
}

/// Whether `pair` may be published: the system checkpoint holds every
/// system entry appended before the user log's last entry, and none
/// appended after it (`through(U−1) ≤ S ≤ through(U)`).
pub fn publishable<S: KvSnapshot>(
    snapshot: &Snapshot<S>,
    sizes: PerLog<u64>,
) -> Result<bool, regis_store::StoreError> {
    let (user, system) = (sizes[Log::User], sizes[Log::System]);
    let upper = system_entries_through(snapshot, user)?;
    let lower = match user {
        0 => 0,
        user => system_entries_through(snapshot, user - 1)?,
    };
    Ok(lower <= system && system <= upper)
}

fn sizes(pair: &PerLog<SignedTree>) -> PerLog<u64> {
    PerLog::from_fn(|log| pair[log].size)
}

impl<B: DirBackend> Publication<B> {
    fn count(&self, request: Request, ok: bool) {
        let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner());
        let kind = Request::ALL.iter().position(|&r| r == request).unwrap_or(0);
        status.requests[kind][usize::from(!ok)] += 1;
    }

    fn target_error(&self, error: TargetError) -> PublishError {
        PublishError::Target {
            register: self.source.name.clone(),
            error,
        }
    }

    fn store_error(&self, error: impl std::fmt::Display) -> PublishError {
        PublishError::Store {
            register: self.source.name.clone(),
            error: error.to_string(),
        }
    }

    fn timed_out(operation: &'static str, path: &str) -> TargetError {
        TargetError {
            operation,
            path: path.to_owned(),
            message: "no answer within the request timeout".to_owned(),
        }
    }

    /// Runs one request to the target, bounded by the request timeout,
    /// counted, tried `settings.tries` times with a back-off between.
    async fn request<T, F>(
        &self,
        kind: Request,
        operation: &'static str,
        path: &str,
        mut attempt: impl FnMut() -> F,
    ) -> Result<T, PublishError>
    where
        F: Future<Output = Result<T, TargetError>>,
    {
        let mut pause = self.settings.first_back_off / 10;
        let mut tries = 0;
        loop {
            tries += 1;
            let result = tokio::time::timeout(self.settings.request_timeout, attempt())
                .await
                .unwrap_or_else(|_| Err(Self::timed_out(operation, path)));
            self.count(kind, result.is_ok());
            match result {
                Ok(value) => return Ok(value),
                Err(error) if tries >= self.settings.tries => {
                    return Err(self.target_error(error));
                }
                Err(error) => {
                    tracing::debug!(register = self.source.name, %error, "retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(self.settings.max_back_off);
                }
            }
        }
    }

    async fn put(&self, object: Object, bytes: Bytes) -> Result<(), PublishError> {
        let path = object.path(&self.source.name);
        let headers = Headers {
            cache_control: if object.is_immutable() {
                IMMUTABLE
            } else {
                NO_CACHE
            },
            content_type: object.content_type(),
        };
        self.request(Request::Put, "PUT", &path, || {
            self.target.put(&path, bytes.clone(), headers)
        })
        .await
    }

    fn refused(&self, log: Log, reason: String) -> PublishError {
        PublishError::Refused {
            register: self.source.name.clone(),
            target: self.target.url().to_owned(),
            log,
            reason,
        }
    }

    /// The target's checkpoint of `log`, if it has one.
    async fn target_checkpoint(&self, log: Log) -> Result<Option<Bytes>, PublishError> {
        let path = Object::Checkpoint(log).path(&self.source.name);
        self.request(Request::Get, "GET", &path, || self.target.get(&path))
            .await
    }

    /// The size of the target's checkpoint `bytes` of `log`, checked:
    /// signed with the log's key, for its origin, no larger than the
    /// store's log, and with the store's root at its size. 0 if there is
    /// none.
    fn target_size(
        &self,
        snapshot: &SnapshotOf<B>,
        log: Log,
        bytes: Option<Bytes>,
    ) -> Result<u64, PublishError> {
        let Some(bytes) = bytes else {
            return Ok(0);
        };
        let key = &self.source.keys[log];
        let signed = SignedCheckpoint::parse(&bytes)
            .map_err(|error| self.refused(log, format!("is not a checkpoint: {error}")))?;
        signed
            .verify(&key.origin, &key.verifier, &Verifiers::default())
            .map_err(|error| self.refused(log, format!("is not this log's: {error}")))?;
        let (size, root) = (signed.checkpoint().size(), *signed.checkpoint().root_hash());
        let ours = snapshot.size(log);
        if size > ours {
            return Err(self.refused(
                log,
                format!("has size {size}, beyond this data directory's {ours}"),
            ));
        }
        let stored = Frontier::from_reader(&snapshot.hashes(log), size)
            .map_err(|error| self.store_error(error))?
            .root();
        if stored != root {
            return Err(self.refused(
                log,
                format!(
                    "has root {} at size {size}, where this data directory's tree (size {ours}) \
                     has {}",
                    format_hash(&root),
                    format_hash(&stored)
                ),
            ));
        }
        Ok(size)
    }

    /// Where to resume: the target's checkpoints (checked) and the state
    /// file. A refusal if the target holds another log or is ahead.
    pub async fn resume(&self) -> Result<Resume, PublishError> {
        let user = self.target_checkpoint(Log::User).await?;
        let system = self.target_checkpoint(Log::System).await?;
        let snapshot = self
            .source
            .store
            .snapshot()
            .map_err(|error| self.store_error(error))?;
        let floor = PerLog {
            user: self.target_size(&snapshot, Log::User, user)?,
            system: self.target_size(&snapshot, Log::System, system)?,
        };
        drop(snapshot);
        let saved = state::read(&self.source.dir, self.target.url()).map_err(|error| {
            PublishError::State {
                register: self.source.name.clone(),
                error,
            }
        })?;
        let from = PerLog::from_fn(|log| saved.map_or(0, |saved| saved[log]).min(floor[log]));
        Ok(Resume { from, floor })
    }

    /// The bytes of `object` at the sizes `to` (tiles are prefixes of
    /// newer ones, chunks and tails the same delta bytes the server
    /// streams).
    fn render(
        &self,
        snapshot: &SnapshotOf<B>,
        object: Object,
        to: &PerLog<SignedTree>,
    ) -> Result<Bytes, PublishError> {
        let delta = |start, end, system_limit| {
            let mut out = Vec::new();
            let delta = Delta {
                start,
                end,
                held: None,
                system_limit,
            };
            write_delta(snapshot, delta, &mut out)
                .map(|()| Bytes::from(out))
                .map_err(|error| self.store_error(error))
        };
        match object {
            Object::Tile(log, tile) => match snapshot.tile(log, &tile) {
                Ok(Some(bytes)) => Ok(Bytes::from(bytes)),
                Ok(None) => Err(self.store_error(format!("{log} {tile} is not in the store"))),
                Err(error) => Err(self.store_error(error)),
            },
            Object::RsfChunk(start) => delta(start, start + CHUNK, None),
            Object::RsfTail { start, end } => delta(start, end, Some(to[Log::System].size)),
            Object::WitnessPolicy => Ok(self.source.witness_policy.clone().unwrap_or_default()),
            Object::Checkpoint(log) => Ok(Bytes::from(to[log].text.clone())),
            Object::Register => Err(self.store_error("B/register is rendered last")),
        }
    }

    /// One publication, from `from` (whose objects the target holds) to
    /// the pair `to`, read from `snapshot` (at or beyond `to`; it must be
    /// publishable there): steps 1 to 6 of `spec/static.md`. Nothing is
    /// done if the sizes are the same.
    pub async fn publish(
        &self,
        snapshot: SnapshotOf<B>,
        from: PerLog<u64>,
        to: &PerLog<SignedTree>,
    ) -> Result<(), PublishError> {
        for (log, tree) in to.iter() {
            let stored = Frontier::from_reader(&snapshot.hashes(log), tree.size)
                .map_err(|error| self.store_error(error))?
                .root();
            if stored != tree.root {
                return Err(self.store_error(format!(
                    "its {log} checkpoint (size {}) does not match its tree",
                    tree.size
                )));
            }
        }
        let Some(Plan {
            objects,
            checkpoints,
            superseded,
        }) = plan(from, sizes(to), self.source.witness_policy.is_some())
        else {
            return Ok(());
        };
        // Steps 1 to 3: a batch rendered, then uploaded at once. The
        // snapshot goes to `B/register`'s renderer, after every object
        // read from it (the plan puts `B/register` last but for the policy).
        let mut snapshot = Some(snapshot);
        for batch in objects.chunks(self.settings.concurrency.max(1)) {
            let mut bodies = Vec::with_capacity(batch.len());
            for &object in batch {
                let bytes = match (object, snapshot.take()) {
                    (Object::Register, Some(taken)) => Bytes::from(
                        (self.source.render_register)(taken)
                            .map_err(|error| self.store_error(error))?,
                    ),
                    (object, Some(kept)) => {
                        let bytes = self.render(&kept, object, to)?;
                        snapshot = Some(kept);
                        bytes
                    }
                    (object, None) => self.render_without_snapshot(object, to)?,
                };
                bodies.push((object, bytes));
            }
            futures_util::future::try_join_all(
                bodies
                    .into_iter()
                    .map(|(object, bytes)| self.put(object, bytes)),
            )
            .await?;
        }
        drop(snapshot);
        // Step 4: the checkpoints, last, in order.
        for object in checkpoints {
            let Object::Checkpoint(log) = object else {
                continue;
            };
            self.put(object, Bytes::from(to[log].text.clone())).await?;
        }
        // Step 5: the new state, durably.
        let published = sizes(to);
        state::write(&self.source.dir, self.target.url(), published).map_err(|error| {
            PublishError::State {
                register: self.source.name.clone(),
                error,
            }
        })?;
        {
            let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner());
            status.published = published;
            status.publications += 1;
        }
        // Step 6: superseded objects. A failure leaves them behind, which
        // no reader minds; the publication stands.
        for folder in superseded {
            let name = &self.source.name;
            let prefix = folder.folder(name);
            let kept = folder.kept(name);
            let listed = self
                .request(Request::List, "LIST", &prefix, || self.target.list(&prefix))
                .await;
            let paths = match listed {
                Ok(paths) => paths,
                Err(error) => {
                    tracing::warn!(%error, "superseded objects left in place");
                    continue;
                }
            };
            for path in paths.into_iter().filter(|path| Some(path) != kept.as_ref()) {
                if let Err(error) = self
                    .request(Request::Delete, "DELETE", &path, || {
                        self.target.delete(&path)
                    })
                    .await
                {
                    tracing::warn!(%error, "a superseded object left in place");
                }
            }
        }
        Ok(())
    }

    /// The objects that need no snapshot (after `B/register` took it).
    fn render_without_snapshot(
        &self,
        object: Object,
        to: &PerLog<SignedTree>,
    ) -> Result<Bytes, PublishError> {
        match object {
            Object::WitnessPolicy => Ok(self.source.witness_policy.clone().unwrap_or_default()),
            Object::Checkpoint(log) => Ok(Bytes::from(to[log].text.clone())),
            other => Err(self.store_error(format!("{other:?} is planned after B/register"))),
        }
    }

    /// One publication to the pair `to` from where the target and the state
    /// file say (the one-shot catch-up of `regis publish`): `Ok(false)` if
    /// there was nothing to publish, or the pair is below the target's
    /// checkpoints or not publishable.
    pub async fn catch_up(&self, to: &PerLog<SignedTree>) -> Result<bool, PublishError> {
        let resume = self.resume().await?;
        let snapshot = self
            .source
            .store
            .snapshot()
            .map_err(|error| self.store_error(error))?;
        self.status.lock().unwrap_or_else(|e| e.into_inner()).served = sizes(to);
        let target_sizes = sizes(to);
        let below = PerLog::<()>::LOGS
            .into_iter()
            .any(|log| target_sizes[log] < resume.floor[log]);
        if below
            || target_sizes == resume.from
            || !publishable(&snapshot, target_sizes).map_err(|error| self.store_error(error))?
        {
            return Ok(false);
        }
        self.publish(snapshot, resume.from, to).await?;
        Ok(true)
    }
}
