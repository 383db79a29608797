//! [`Publisher`]: continuous publication. It owns a thread running a small
//! tokio runtime with one task per register, which follows what the server
//! serves, publishes at most once per interval (an idle register sends
//! nothing), retries a failed publication after a back-off (1 s doubling to
//! 60 s) and never blocks the register's writes: a target that is down only
//! grows the lag.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use regis_model::PerLog;
use regis_store::{DirBackend, SignedTree};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::Settings;
use crate::publish::{Publication, Resume, SharedStatus, SnapshotOf, Source, Status, publishable};
use crate::target::Target;

/// What a register serves at `B/log/checkpoint` and
/// `B/system-log/checkpoint`, and when it changes.
#[derive(Debug)]
pub enum Served {
    /// Its newest signed checkpoints, as the sequencer announces them:
    /// the pair is read from the store snapshot (which holds the
    /// checkpoints committed with the entries they cover).
    Signed(watch::Receiver<PerLog<SignedTree>>),
    /// The newest checkpoints that meet its witness policy.
    Witnessed(watch::Receiver<PerLog<Option<SignedTree>>>),
}

impl Served {
    /// The pair served now (marked seen), with a snapshot at or beyond it.
    fn now<B: DirBackend>(
        &mut self,
        source: &Source<B>,
    ) -> Result<(Option<PerLog<SignedTree>>, SnapshotOf<B>), regis_store::StoreError> {
        match self {
            Served::Signed(receiver) => {
                receiver.borrow_and_update();
                let snapshot = source.store.snapshot()?;
                let pair = match (
                    snapshot.checkpoint(regis_model::Log::User)?,
                    snapshot.checkpoint(regis_model::Log::System)?,
                ) {
                    (Some(user), Some(system)) => Some(PerLog { user, system }),
                    _ => None,
                };
                Ok((pair, snapshot))
            }
            Served::Witnessed(receiver) => {
                let served = receiver.borrow_and_update().clone();
                let snapshot = source.store.snapshot()?;
                let pair = match (served.user, served.system) {
                    (Some(user), Some(system)) => Some(PerLog { user, system }),
                    _ => None,
                };
                Ok((pair, snapshot))
            }
        }
    }

    /// Waits for a change; `false` once nothing can change any more.
    async fn changed(&mut self) -> bool {
        match self {
            Served::Signed(receiver) => receiver.changed().await.is_ok(),
            Served::Witnessed(receiver) => receiver.changed().await.is_ok(),
        }
    }
}

/// One register's publishing, as [`Publisher::status`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisterStatus {
    /// The register.
    pub name: String,
    /// What its publishing has done.
    pub status: Status,
}

/// Publishes registers to one target, on a thread it owns, until stopped
/// (and joined) or dropped.
#[derive(Debug)]
pub struct Publisher {
    target: Arc<dyn Target>,
    settings: Settings,
    runtime: tokio::runtime::Handle,
    stop: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
    registers: Mutex<Vec<(String, SharedStatus)>>,
}

impl Publisher {
    /// Starts the thread.
    pub fn start(target: Arc<dyn Target>, settings: Settings) -> std::io::Result<Publisher> {
        let (stop, mut stopped) = watch::channel(false);
        let (sender, receiver) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("regis-publish".to_owned())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("regis-publish")
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        let _ = sender.send(Err(error));
                        return;
                    }
                };
                if sender.send(Ok(runtime.handle().clone())).is_err() {
                    return;
                }
                runtime.block_on(async move {
                    while !*stopped.borrow_and_update() {
                        if stopped.changed().await.is_err() {
                            break;
                        }
                    }
                });
                // Publications in flight are abandoned where they are; each
                // is redone from the state file at the next start.
                runtime.shutdown_timeout(Duration::from_secs(5));
            })?;
        let runtime = receiver
            .recv()
            .map_err(|_| std::io::Error::other("the publisher's thread ended at start"))??;
        Ok(Publisher {
            target,
            settings,
            runtime,
            stop,
            thread: Some(thread),
            registers: Mutex::new(Vec::new()),
        })
    }

    /// The target.
    pub fn target(&self) -> &Arc<dyn Target> {
        &self.target
    }

    /// Publishes `source`, following `served`: first catches the target up
    /// (from its checkpoints and the state file), then publishes each new
    /// pair served.
    pub fn add<B: DirBackend>(&self, source: Source<B>, served: Served) {
        let status = SharedStatus::default();
        self.registers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((source.name.clone(), Arc::clone(&status)));
        let publication = Publication {
            source,
            target: Arc::clone(&self.target),
            settings: self.settings,
            status,
        };
        let stop = self.stop.subscribe();
        self.runtime.spawn(follow(publication, served, stop));
    }

    /// Each register's publishing, by name.
    pub fn status(&self) -> Vec<RegisterStatus> {
        let registers = self.registers.lock().unwrap_or_else(|e| e.into_inner());
        registers
            .iter()
            .map(|(name, status)| RegisterStatus {
                name: name.clone(),
                status: status.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            })
            .collect()
    }

    /// Stops publishing and joins the thread.
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        self.stop.send_replace(true);
        if let Some(thread) = self.thread.take() {
            // A panic has already ended the publishing; nothing to report.
            let _ = thread.join();
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// Doubling pauses between failures.
struct BackOff {
    next: Duration,
    first: Duration,
    max: Duration,
}

impl BackOff {
    fn new(settings: &Settings) -> BackOff {
        BackOff {
            next: settings.first_back_off,
            first: settings.first_back_off,
            max: settings.max_back_off,
        }
    }

    fn failed(&mut self) -> Duration {
        let pause = self.next;
        self.next = (self.next * 2).min(self.max);
        pause
    }

    fn succeeded(&mut self) {
        self.next = self.first;
    }
}

/// Sleeps until `until`; `false` if told to stop first.
async fn pause(until: Instant, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        () = tokio::time::sleep_until(until) => true,
        _ = stop.wait_for(|&stop| stop) => false,
    }
}

fn record_error<B: DirBackend>(publication: &Publication<B>, error: &crate::PublishError) {
    tracing::warn!(%error, target = publication.target.url(), "publication failed");
    let mut status = publication.status.lock().unwrap_or_else(|e| e.into_inner());
    if error.is_refusal() {
        status.refused = Some(error.to_string());
    } else {
        status.last_error = Some(error.to_string());
        status
            .failing_since
            .get_or_insert_with(std::time::Instant::now);
    }
}

/// A register's publishing: start-up catch-up, then each new pair served.
async fn follow<B: DirBackend>(
    publication: Publication<B>,
    mut served: Served,
    mut stop: watch::Receiver<bool>,
) {
    let mut back_off = BackOff::new(&publication.settings);
    let Resume {
        mut from,
        mut floor,
    } = loop {
        match publication.resume().await {
            Ok(resume) => break resume,
            Err(error) if error.is_refusal() => {
                record_error(&publication, &error);
                return;
            }
            Err(error) => {
                record_error(&publication, &error);
                if !pause(Instant::now() + back_off.failed(), &mut stop).await {
                    return;
                }
            }
        }
    };
    back_off.succeeded();
    {
        let mut status = publication.status.lock().unwrap_or_else(|e| e.into_inner());
        status.published = floor;
        status.last_error = None;
        status.failing_since = None;
    }
    let mut open = true;
    loop {
        let started = Instant::now();
        let retry_at = match publish_served(&publication, &mut served, from, floor).await {
            Ok(Some(published)) => {
                from = published;
                floor = published;
                back_off.succeeded();
                let mut status = publication.status.lock().unwrap_or_else(|e| e.into_inner());
                status.last_error = None;
                status.failing_since = None;
                None
            }
            Ok(None) => None,
            Err(error) if error.is_refusal() => {
                record_error(&publication, &error);
                return;
            }
            Err(error) => {
                record_error(&publication, &error);
                Some(Instant::now() + back_off.failed())
            }
        };
        // The next publication: after a back-off if this one failed, else
        // once something changes; and never within the interval.
        match retry_at {
            Some(at) => {
                if !pause(at, &mut stop).await {
                    return;
                }
            }
            None => {
                let changed = tokio::select! {
                    changed = served.changed(), if open => Some(changed),
                    _ = stop.wait_for(|&stop| stop) => None,
                };
                match changed {
                    None => return,
                    Some(still) => open = still,
                }
                if !open {
                    // The register stopped serving: nothing new will come.
                    let _ = stop.wait_for(|&stop| stop).await;
                    return;
                }
            }
        }
        if !pause(started + publication.settings.interval, &mut stop).await {
            return;
        }
    }
}

/// Publishes the pair served now, if it is publishable, at or above the
/// target's checkpoints and new: the sizes published, or `None`.
async fn publish_served<B: DirBackend>(
    publication: &Publication<B>,
    served: &mut Served,
    from: PerLog<u64>,
    floor: PerLog<u64>,
) -> Result<Option<PerLog<u64>>, crate::PublishError> {
    let store_error = |error: regis_store::StoreError| crate::PublishError::Store {
        register: publication.source.name.clone(),
        error: error.to_string(),
    };
    let (pair, snapshot) = served.now(&publication.source).map_err(store_error)?;
    let Some(pair) = pair else {
        return Ok(None);
    };
    let sizes = PerLog::from_fn(|log| pair[log].size);
    publication
        .status
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .served = sizes;
    let below = PerLog::<()>::LOGS
        .into_iter()
        .any(|log| sizes[log] < floor[log]);
    if below || sizes == from || !publishable(&snapshot, sizes).map_err(store_error)? {
        return Ok(None);
    }
    publication.publish(snapshot, from, &pair).await?;
    Ok(Some(sizes))
}
