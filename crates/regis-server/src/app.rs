//! What the server holds: its registers (each a shared read-side store, its
//! logs' origins and verifier keys, a handle to its sequencer, its bound on
//! writes in flight, and what its witnessing has gathered), the registry new
//! registers are created in, the write tokens, its limits and its metrics.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use regis_model::{PerLog, RegisterName, Schema};
use regis_store::{
    DirBackend, Log, Mirror, Register, RegisterKind, Registry, Sequencer, SequencerHandle,
    SignedTree, Snapshot, Store, Tokens, load_schema, system_clock,
};
use tokio::sync::{Semaphore, watch};

use crate::config::Limits;
use crate::error::{ApiError, ServerError};
use crate::http::quote;
use crate::links::LinkSettings;
use crate::metrics::{Metrics, WriteMetrics};
use crate::tile_cache::{TILE_CACHE_BYTES, TileCache};
use crate::witnessing::{
    LogKey, PolicyFile, PreparedWitnessing, WitnessSettings, WitnessedState, Witnessing,
};

/// One register as the server serves it.
#[derive(Debug)]
pub struct RegisterState<B: regis_store::KvBackend> {
    /// Its name.
    pub name: RegisterName,
    /// Its read side.
    pub store: Store<B>,
    origins: PerLog<String>,
    verifiers: PerLog<String>,
    /// Who writes it.
    source: Source,
    /// What its witnessing has gathered, if it has a witness policy.
    witnessed: Option<Arc<WitnessedState>>,
    /// Writes waiting for their commit (`limits.max-writes-in-flight`).
    pub writes: Arc<Semaphore>,
    /// The schema as of a system-log size.
    schema: Mutex<Option<(u64, Arc<Schema>)>>,
    /// How its links are resolved and checked (its `links.toml`).
    pub links: LinkSettings,
}

/// Who writes a register.
#[derive(Debug)]
enum Source {
    /// This server: its sequencer, the one writer.
    Own(SequencerHandle),
    /// Another server, copied by `regis mirror`: served read-only, its
    /// upstream's signed checkpoints as stored (which never change while
    /// this server has the store open; the sender keeps event streams open).
    Mirror {
        upstream: String,
        checkpoints: watch::Sender<PerLog<SignedTree>>,
    },
}

/// A register of this server's own, started: what reads need, its
/// sequencer and its witnessing (each stopped and joined at shutdown).
#[derive(Debug)]
pub struct Started<B: regis_store::KvBackend> {
    /// What reads need.
    pub state: RegisterState<B>,
    /// Its sequencer.
    pub sequencer: Sequencer,
    /// Its witnessing, if it has a witness policy.
    pub witnessing: Option<Witnessing>,
}

impl<B: DirBackend> RegisterState<B> {
    /// Starts `register` (in `dir`): reads its witnessing state if it has a
    /// witness `policy`, starts its sequencer (which first signs any tree
    /// no checkpoint covers), then its witnessing.
    pub fn start(
        register: Register<B>,
        dir: std::path::PathBuf,
        limits: &Limits,
        witness: &WitnessSettings,
        policy: Option<Arc<PolicyFile>>,
    ) -> Result<Started<B>, ServerError> {
        let origins = PerLog::from_fn(|log| register.signers.origin(log).to_owned());
        let verifiers = PerLog::from_fn(|log| register.signers.verifier(log).to_string());
        let name = register.name.clone();
        let links = LinkSettings::load(&dir)?;
        let prepared = policy
            .map(|policy| {
                PreparedWitnessing::prepare(
                    name.as_str(),
                    dir,
                    register.store.clone(),
                    PerLog::from_fn(|log| LogKey {
                        origin: register.signers.origin(log).to_owned(),
                        verifier: register.signers.verifier(log),
                    }),
                    policy,
                    witness,
                )
            })
            .transpose()?;
        let sequencer = Sequencer::spawn(
            name.as_str(),
            register.store.clone(),
            register.writer,
            register.signers,
            limits.sequencer(),
            system_clock(),
        )
        .map_err(|error| ServerError::Sequencer {
            name: name.to_string(),
            error: Box::new(error),
        })?;
        let witnessed = prepared.as_ref().map(PreparedWitnessing::state);
        let witnessing = match prepared {
            Some(prepared) => match prepared.spawn(sequencer.handle().checkpoints()) {
                Ok(witnessing) => Some(witnessing),
                Err(error) => {
                    sequencer.join();
                    return Err(error);
                }
            },
            None => None,
        };
        Ok(Started {
            state: RegisterState {
                name,
                store: register.store,
                origins,
                verifiers,
                source: Source::Own(sequencer.handle()),
                witnessed,
                writes: Arc::new(Semaphore::new(limits.max_writes_in_flight)),
                schema: Mutex::new(None),
                links,
            },
            sequencer,
            witnessing,
        })
    }

    /// Serves `mirror` read-only, with its upstream's origins, verifier keys
    /// and signed checkpoints. (Its writer is dropped: only `regis mirror`
    /// writes a mirror, verifying what it copies.)
    pub fn mirror(mirror: Mirror<B>, limits: &Limits) -> Result<RegisterState<B>, ServerError> {
        let Mirror {
            name,
            store,
            writer,
            upstream,
        } = mirror;
        drop(writer);
        let unreadable = |error: regis_store::StoreError| ServerError::Mirror {
            name: name.to_string(),
            error: error.to_string(),
        };
        let snapshot = store.snapshot().map_err(unreadable)?;
        let stored = |log| -> Result<SignedTree, ServerError> {
            snapshot
                .checkpoint(log)
                .map_err(unreadable)?
                .ok_or_else(|| ServerError::Mirror {
                    name: name.to_string(),
                    error: format!("no {log} checkpoint copied yet: run `regis mirror` first"),
                })
        };
        let checkpoints = PerLog {
            user: stored(Log::User)?,
            system: stored(Log::System)?,
        };
        drop(snapshot);
        Ok(RegisterState {
            origins: PerLog::from_fn(|log| upstream.origin(log).to_owned()),
            verifiers: PerLog::from_fn(|log| upstream.verifier(log).to_string()),
            source: Source::Mirror {
                upstream: upstream.url().to_owned(),
                checkpoints: watch::Sender::new(checkpoints),
            },
            witnessed: None,
            name,
            store,
            writes: Arc::new(Semaphore::new(limits.max_writes_in_flight)),
            schema: Mutex::new(None),
            // A mirror takes no writes; its links resolve on this server.
            links: LinkSettings::default(),
        })
    }

    /// Its sequencer, or the URL of the register it mirrors (which takes
    /// the writes).
    pub fn sequencer(&self) -> Result<&SequencerHandle, &str> {
        match &self.source {
            Source::Own(sequencer) => Ok(sequencer),
            Source::Mirror { upstream, .. } => Err(upstream),
        }
    }

    /// The latest (user, system) checkpoints, as they are published.
    pub fn checkpoints(&self) -> watch::Receiver<PerLog<SignedTree>> {
        match &self.source {
            Source::Own(sequencer) => sequencer.checkpoints(),
            Source::Mirror { checkpoints, .. } => checkpoints.subscribe(),
        }
    }

    /// The log's origin.
    pub fn origin(&self, log: Log) -> &str {
        &self.origins[log]
    }

    /// The log's verifier key.
    pub fn verifier(&self, log: Log) -> &str {
        &self.verifiers[log]
    }

    /// What its witnessing has gathered; `None` without a witness policy
    /// (its checkpoints are then served as signed).
    pub fn witnessed(&self) -> Option<&WitnessedState> {
        self.witnessed.as_deref()
    }

    /// A snapshot of the store.
    pub fn snapshot(
        &self,
    ) -> Result<Arc<Snapshot<<B as regis_store::KvBackend>::Snapshot>>, ApiError> {
        Ok(self.store.snapshot()?)
    }

    /// The register's schema as of `system_size` (cached per size).
    pub fn schema(&self, system_size: u64) -> Result<Arc<Schema>, ApiError> {
        let mut cached = self.schema.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((size, schema)) = cached.as_ref()
            && *size == system_size
        {
            return Ok(Arc::clone(schema));
        }
        let schema =
            Arc::new(load_schema(self.name.as_str(), &self.store).map_err(ApiError::internal)?);
        *cached = Some((system_size, Arc::clone(&schema)));
        Ok(schema)
    }
}

/// Why a register could not be opened, as clients and `/readyz` may see
/// it: the check or the operation that failed, without the paths the
/// server's log has.
fn public_reason(error: &ServerError) -> String {
    use regis_store::RegistryError;
    match error {
        ServerError::Registry(error) => match &**error {
            RegistryError::Io { what, error, .. } => format!("{what}: {error}"),
            RegistryError::Store { error, .. } => error.to_string(),
            other => other.to_string(),
        },
        ServerError::Sequencer { error, .. } => error.to_string(),
        other => other.to_string(),
    }
}

/// Everything a request handler reads.
#[derive(Debug)]
pub struct App<B: regis_store::KvBackend> {
    /// The registers served, by name; registers created over HTTP join it.
    registers: RwLock<BTreeMap<String, Arc<RegisterState<B>>>>,
    /// Their sequencers, joined when the server stops.
    sequencers: Mutex<Vec<Sequencer>>,
    /// Their witnessings, stopped and joined when the server stops.
    witnessings: Mutex<Vec<Witnessing>>,
    /// How registers are witnessed (the server's policy; registers created
    /// here get it).
    pub witness: WitnessSettings,
    /// Held while a register is created, so that two requests cannot
    /// create one name twice.
    creating: Mutex<()>,
    /// Where registers live.
    pub registry: Registry,
    /// Write tokens (`DIR/tokens`).
    pub tokens: Tokens,
    /// Registers that could not be opened, and why (logged; not served).
    pub unavailable: Vec<(String, String)>,
    /// Request bounds.
    pub limits: Limits,
    /// Request counts and latencies.
    pub metrics: Metrics,
    /// Appends: rates, batch sizes, time to signed and to durable.
    pub write_metrics: WriteMetrics,
    /// Requests in flight.
    pub permits: Arc<Semaphore>,
    ready: AtomicBool,
    /// Open `B/events` streams.
    pub event_permits: Arc<Semaphore>,
    /// Set when the server stops: event streams end, new writes are
    /// refused.
    stopping: watch::Sender<bool>,
    /// Full tiles recently served, of every register.
    pub tiles: TileCache,
    /// Room on the disk for writes: the reserve and each register's share.
    pub room: crate::room::Room,
    /// Its publishing to object storage, if `[publish]` says where.
    publishing: crate::publishing::PublishingSlot,
}

/// A server's state, and the sequencers and witnessings to join once it
/// has stopped.
#[derive(Debug)]
pub struct Opened<B: regis_store::KvBackend> {
    /// The shared state.
    pub app: Arc<App<B>>,
}

impl<B: regis_store::KvBackend> Opened<B> {
    /// Stops the publishing, the witnessings, then the sequencers (after
    /// the server has stopped): each sequencer finishes the requests
    /// queued, answering every waiter still there.
    pub fn shutdown(self) {
        // The publisher holds registers (their sequencer handles) until
        // its tasks end.
        let publishing = self
            .app
            .publishing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(publishing) = publishing {
            publishing.stop();
        }
        let witnessings = std::mem::take(
            &mut *self
                .app
                .witnessings
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        // All are told first, so that they stop together.
        for witnessing in &witnessings {
            witnessing.stop();
        }
        for witnessing in witnessings {
            witnessing.join();
        }
        let sequencers = std::mem::take(
            &mut *self
                .app
                .sequencers
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        // The registers' handles go with the app; a sequencer stops once
        // every handle is gone and its queue is drained.
        drop(self.app);
        for sequencer in sequencers {
            sequencer.join();
        }
    }
}

impl<B: DirBackend> App<B> {
    /// An app serving `registers` of `registry`, with their sequencers and
    /// witnessings.
    pub fn new(
        registry: Registry,
        registers: Vec<Started<B>>,
        unavailable: Vec<(String, String)>,
        limits: Limits,
        witness: WitnessSettings,
    ) -> App<B> {
        let mut states = BTreeMap::new();
        let mut sequencers = Vec::new();
        let mut witnessings = Vec::new();
        for started in registers {
            states.insert(started.state.name.to_string(), Arc::new(started.state));
            sequencers.push(started.sequencer);
            witnessings.extend(started.witnessing);
        }
        App {
            registers: RwLock::new(states),
            sequencers: Mutex::new(sequencers),
            witnessings: Mutex::new(witnessings),
            witness,
            creating: Mutex::new(()),
            tokens: Tokens::new(registry.data_dir()),
            registry,
            unavailable,
            metrics: Metrics::default(),
            write_metrics: WriteMetrics::default(),
            permits: Arc::new(Semaphore::new(limits.concurrency)),
            limits,
            ready: AtomicBool::new(false),
            event_permits: Arc::new(Semaphore::new(limits.max_event_streams)),
            stopping: watch::Sender::new(false),
            tiles: TileCache::new(TILE_CACHE_BYTES),
            room: crate::room::Room::default(),
            publishing: crate::publishing::PublishingSlot::default(),
        }
    }

    /// Publishes every register, and those created from now on, with
    /// `publishing`.
    pub fn set_publishing(&self, publishing: crate::publishing::Publishing) {
        *self.publishing.lock().unwrap_or_else(|e| e.into_inner()) = Some(publishing);
    }

    /// Each published register's publishing; `None` without `[publish]`.
    pub fn publishing_status(&self) -> Option<Vec<regis_publish::RegisterStatus>> {
        let publishing = self.publishing.lock().unwrap_or_else(|e| e.into_inner());
        publishing
            .as_ref()
            .map(crate::publishing::Publishing::status)
    }

    /// The reason, for `/readyz`, that each register whose publishing is
    /// refused, or has failed for `behind-after-seconds`, is behind.
    pub fn publish_problems(&self) -> Vec<(String, String)> {
        let publishing = self.publishing.lock().unwrap_or_else(|e| e.into_inner());
        publishing
            .as_ref()
            .map(|publishing| publishing.problems(std::time::Instant::now()))
            .unwrap_or_default()
    }

    /// [`App::open_with`] with no server-wide witness policy (a register
    /// with its own is still witnessed).
    pub fn open(registry: &Registry, limits: Limits) -> Result<Opened<B>, ServerError> {
        Self::open_with(registry, limits, WitnessSettings::default())
    }

    /// Opens every register of `registry` and starts its sequencer, and its
    /// witnessing if it has a witness policy (its own or `witness`'s). A
    /// register that fails to open (its tree forks from its last signed
    /// checkpoint, its files are damaged…) is logged and left out: it takes
    /// itself down, not the server. A witness policy that does not parse
    /// stops the server.
    pub fn open_with(
        registry: &Registry,
        limits: Limits,
        witness: WitnessSettings,
    ) -> Result<Opened<B>, ServerError> {
        let mut registers = Vec::new();
        let mut unavailable = Vec::new();
        let mut mirrors = Vec::new();
        for name in registry.list::<B>()? {
            let opened = match registry.kind(&name) {
                RegisterKind::Own => {
                    let dir = registry.dir(&name);
                    let policy = witness.policy_for(&dir)?;
                    registry
                        .open::<B>(&name)
                        .map_err(ServerError::from)
                        .and_then(|register| {
                            RegisterState::start(register, dir, &limits, &witness, policy)
                        })
                        .map(Some)
                }
                RegisterKind::Mirror => registry
                    .open_mirror::<B>(&name)
                    .map_err(ServerError::from)
                    .and_then(|mirror| RegisterState::mirror(mirror, &limits))
                    .map(|mirror| {
                        mirrors.push(mirror);
                        None
                    }),
            };
            match opened {
                Ok(Some(started)) => registers.push(started),
                Ok(None) => {}
                Err(error) => {
                    tracing::error!(register = %name, %error, "register not served");
                    unavailable.push((name.to_string(), public_reason(&error)));
                }
            }
        }
        let app = App::new(registry.clone(), registers, unavailable, limits, witness);
        app.registers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .extend(
                mirrors
                    .into_iter()
                    .map(|m| (m.name.to_string(), Arc::new(m))),
            );
        Ok(Opened { app: Arc::new(app) })
    }

    /// Creates register `name`, starts its sequencer, has `define` (run on
    /// the new register before anyone else can reach it) write its
    /// definition, and serves it. 409 if it exists. A definition that
    /// fails leaves an empty register, served, that a later definition
    /// (an RSF load) can complete.
    pub fn create_register<T>(
        &self,
        name: &RegisterName,
        define: impl FnOnce(&RegisterState<B>) -> Result<T, ApiError>,
    ) -> Result<(Arc<RegisterState<B>>, T), ApiError> {
        let _creating = self.creating.lock().unwrap_or_else(|e| e.into_inner());
        if self.registry.exists::<B>(name) {
            return Err(ApiError::new(
                axum::http::StatusCode::CONFLICT,
                "register-exists",
                format!("register {} exists already", quote(name.as_str())),
            ));
        }
        let register = self
            .registry
            .create::<B>(name)
            .map_err(ApiError::internal)?;
        let Started {
            state: register,
            sequencer,
            witnessing,
        } = RegisterState::start(
            register,
            self.registry.dir(name),
            &self.limits,
            &self.witness,
            self.witness.policy.clone(),
        )
        .map_err(ApiError::internal)?;
        self.sequencers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(sequencer);
        self.witnessings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(witnessing);
        let defined = define(&register);
        let register = Arc::new(register);
        self.registers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), Arc::clone(&register));
        if let Some(publishing) = &*self.publishing.lock().unwrap_or_else(|e| e.into_inner()) {
            publishing.add(self, &register);
        }
        Ok((register, defined?))
    }

    /// The register `name`: 400 for a name no register can have, 503 for
    /// one that failed to open (named check), 404 for one this server does
    /// not host.
    pub fn register(&self, name: &str) -> Result<Arc<RegisterState<B>>, ApiError> {
        if RegisterName::new(name).is_err() {
            return Err(ApiError::bad_request(
                "bad-register-name",
                format!(
                    "{} is not a register name: 1 to 64 of a-z, 0-9 and '-', not starting with '-'",
                    quote(name)
                ),
            ));
        }
        if let Some((_, reason)) = self.unavailable.iter().find(|(n, _)| n == name) {
            return Err(ApiError::unavailable(
                "register-unavailable",
                format!("register {} is not served: {reason}", quote(name)),
            ));
        }
        let registers = self.registers.read().unwrap_or_else(|e| e.into_inner());
        registers.get(name).cloned().ok_or_else(|| {
            ApiError::not_found(
                "no-register",
                format!("this server hosts no register {}", quote(name)),
            )
        })
    }

    /// Every register, by name.
    pub fn registers(&self) -> Vec<Arc<RegisterState<B>>> {
        let registers = self.registers.read().unwrap_or_else(|e| e.into_inner());
        registers.values().cloned().collect()
    }

    /// Marks the server ready (listening, registers open) or not (draining).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    /// Tells long-lived responses (event streams) that the server stops.
    pub fn stop(&self) {
        self.stopping.send_replace(true);
    }

    /// Changes when the server stops.
    pub fn stopping(&self) -> watch::Receiver<bool> {
        self.stopping.subscribe()
    }

    /// Whether the server is stopping (new writes are refused).
    pub fn is_stopping(&self) -> bool {
        *self.stopping.borrow()
    }

    /// Whether `/readyz` says yes.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }
}
