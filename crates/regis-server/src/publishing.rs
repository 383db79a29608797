//! The server's `[publish]`: a [`Publisher`] (regis-publish) that keeps a
//! static copy of every register in object storage, fed by what each
//! register serves (its witnessed checkpoints when it has a witness policy,
//! else its sequencer's), with `B/register` rendered by the server's own
//! [`api::register_json`], and its progress in `/metrics` and `/readyz`.
//!
//! ```toml
//! [publish]
//! url = "s3://bucket/prefix"      # or file:///srv/regis-static
//! interval-ms = 1000
//! request-timeout-seconds = 30
//! behind-after-seconds = 60      # failing this long: /readyz publish-behind
//! aws_endpoint = "http://127.0.0.1:9000"   # any other key: object_store's
//! aws_allow_http = true
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use regis_model::PerLog;
use regis_note::Verifier;
use regis_publish::{
    LogKey, ObjectStoreTarget, Publisher, RegisterStatus, Request, Served, Settings, Source,
};
use regis_store::{DirBackend, Log};
use serde::Deserialize;

use crate::api;
use crate::app::{App, RegisterState};
use crate::error::ServerError;
use crate::request::RegisterRead;

/// `[publish]`: where and how often.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct PublishConfig {
    /// The target: `s3://bucket/prefix`, `file:///srv/regis-static`, or
    /// any URL `object_store` takes.
    pub url: String,
    /// The least time between the starts of two publications of one
    /// register.
    #[serde(default = "default_interval_ms")]
    pub interval_ms: u64,
    /// The longest one request to the target may take.
    #[serde(default = "default_request_timeout_seconds")]
    pub request_timeout_seconds: u64,
    /// How long publications may fail before `/readyz` reports the
    /// register (`publish-behind`): a bucket's blip, retried, is not a
    /// reason to take the origin out of service.
    #[serde(default = "default_behind_after_seconds")]
    pub behind_after_seconds: u64,
    /// Every other key: an `object_store` option (`aws_endpoint`,
    /// `aws_region`, `aws_allow_http`…).
    #[serde(flatten)]
    pub options: BTreeMap<String, OptionValue>,
}

/// An `object_store` option's value, as TOML writes it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum OptionValue {
    /// A string.
    Text(String),
    /// `true` or `false`.
    Flag(bool),
    /// A number.
    Number(i64),
}

impl OptionValue {
    fn text(&self) -> String {
        match self {
            OptionValue::Text(text) => text.clone(),
            OptionValue::Flag(flag) => flag.to_string(),
            OptionValue::Number(number) => number.to_string(),
        }
    }
}

fn default_interval_ms() -> u64 {
    1000
}

fn default_request_timeout_seconds() -> u64 {
    30
}

fn default_behind_after_seconds() -> u64 {
    60
}

impl PublishConfig {
    /// What is wrong with it, if anything.
    pub fn problem(&self) -> Option<&'static str> {
        if self.url.is_empty() {
            Some("publish.url must not be empty")
        } else if self.interval_ms > 3_600_000 {
            Some("publish.interval-ms must be at most 3600000")
        } else if self.request_timeout_seconds == 0 || self.request_timeout_seconds > 3600 {
            Some("publish.request-timeout-seconds must be from 1 to 3600")
        } else if self.behind_after_seconds > 86_400 {
            Some("publish.behind-after-seconds must be at most 86400")
        } else {
            None
        }
    }

    /// The publisher's settings.
    pub fn settings(&self) -> Settings {
        Settings {
            interval: Duration::from_millis(self.interval_ms),
            request_timeout: Duration::from_secs(self.request_timeout_seconds),
            ..Settings::default()
        }
    }

    /// The `object_store` options, as strings.
    pub fn options(&self) -> Vec<(String, String)> {
        self.options
            .iter()
            .map(|(key, value)| (key.clone(), value.text()))
            .collect()
    }
}

/// The server's publishing: one publisher, every register.
#[derive(Debug)]
pub struct Publishing {
    publisher: Publisher,
    behind_after: Duration,
}

impl Publishing {
    /// Opens the target and starts publishing every register of `app`.
    pub fn start<B: DirBackend>(
        config: &PublishConfig,
        app: &App<B>,
    ) -> Result<Publishing, ServerError> {
        let failed = |error: String| ServerError::Config {
            path: "[publish]".into(),
            error,
        };
        let target = ObjectStoreTarget::new(&config.url, &config.options())
            .map_err(|error| failed(error.to_string()))?;
        let publisher = Publisher::start(Arc::new(target), config.settings())
            .map_err(|error| failed(format!("starting the publisher: {error}")))?;
        let publishing = Publishing {
            publisher,
            behind_after: Duration::from_secs(config.behind_after_seconds),
        };
        for register in app.registers() {
            publishing.add(app, &register);
        }
        Ok(publishing)
    }

    /// Publishes `register` too (a register created over HTTP).
    pub fn add<B: DirBackend>(&self, app: &App<B>, register: &Arc<RegisterState<B>>) {
        match source(app.registry.dir(&register.name), register) {
            Ok(source) => {
                let served = match register.witnessed() {
                    Some(witnessed) => Served::Witnessed(witnessed.subscribe()),
                    None => Served::Signed(register.checkpoints()),
                };
                self.publisher.add(source, served);
            }
            Err(error) => tracing::error!(
                register = %register.name,
                %error,
                "not published: its verifier key does not parse"
            ),
        }
    }

    /// Each register's publishing.
    pub fn status(&self) -> Vec<RegisterStatus> {
        self.publisher.status()
    }

    /// Each register whose publishing is refused, or has failed for
    /// `behind_after` by `now`, and why.
    pub(crate) fn problems(&self, now: std::time::Instant) -> Vec<(String, String)> {
        self.status()
            .into_iter()
            .filter_map(|RegisterStatus { name, status }| {
                let failing_long = status
                    .failing_since
                    .is_some_and(|since| now.saturating_duration_since(since) >= self.behind_after);
                let reason = status
                    .refused
                    .or(status.last_error.filter(|_| failing_long))?;
                Some((name, reason))
            })
            .collect()
    }

    /// The target's URL.
    pub fn url(&self) -> &str {
        self.publisher.target().url()
    }

    /// Stops publishing and joins its thread.
    pub fn stop(self) {
        self.publisher.stop();
    }
}

/// `regis publish`: one publication of register `name` of `registry` to
/// `target`, from where the target and the state file say to the pair the
/// server would serve (its witnessed checkpoints if it has a witness
/// policy, `witness`'s or its own; no witness is asked). The register is
/// opened as the server opens it, so the server must not hold it.
/// `Ok(false)`: nothing to publish.
pub fn publish_once<B: DirBackend>(
    registry: &regis_store::Registry,
    name: &regis_model::RegisterName,
    witness: &crate::witnessing::WitnessSettings,
    target: Arc<dyn regis_publish::Target>,
    settings: Settings,
) -> Result<bool, ServerError> {
    use crate::witnessing::{LogKey as WitnessKey, PreparedWitnessing};
    let dir = registry.dir(name);
    let limits = crate::config::Limits::default();
    let (state, sequencer, witnessed) = match registry.kind(name) {
        regis_store::RegisterKind::Own => {
            let policy = witness.policy_for(&dir)?;
            let register = registry.open::<B>(name)?;
            let prepared = policy
                .map(|policy| {
                    PreparedWitnessing::prepare(
                        name.as_str(),
                        dir.clone(),
                        register.store.clone(),
                        PerLog::from_fn(|log| WitnessKey {
                            origin: register.signers.origin(log).to_owned(),
                            verifier: register.signers.verifier(log),
                        }),
                        policy,
                        witness,
                    )
                })
                .transpose()?;
            // Started without its policy: no witnessing thread, no witness
            // asked; the witnessed checkpoints are read from its state.
            let started = RegisterState::start(register, dir.clone(), &limits, witness, None)?;
            let witnessed = prepared.map(|prepared| {
                let state = prepared.state();
                let policy = bytes::Bytes::copy_from_slice(state.policy().bytes());
                let pair = PerLog::from_fn(|log| state.checkpoint(log));
                (policy, pair)
            });
            (started.state, Some(started.sequencer), witnessed)
        }
        regis_store::RegisterKind::Mirror => {
            let mirror = registry.open_mirror::<B>(name)?;
            (RegisterState::mirror(mirror, &limits)?, None, None)
        }
    };
    let register = Arc::new(state);
    let result = publish_started(dir, &register, witnessed, target, settings);
    drop(register);
    if let Some(sequencer) = sequencer {
        sequencer.join();
    }
    result
}

/// [`publish_once`] once the register is open.
fn publish_started<B: DirBackend>(
    dir: std::path::PathBuf,
    register: &Arc<RegisterState<B>>,
    witnessed: Option<(bytes::Bytes, PerLog<Option<regis_store::SignedTree>>)>,
    target: Arc<dyn regis_publish::Target>,
    settings: Settings,
) -> Result<bool, ServerError> {
    let failed = |error: regis_publish::PublishError| ServerError::Publish(Box::new(error));
    let store_failed = |error: String| {
        failed(regis_publish::PublishError::Store {
            register: register.name.to_string(),
            error,
        })
    };
    let mut source = source(dir, register).map_err(|error| store_failed(error.to_string()))?;
    let pair = match witnessed {
        Some((policy, pair)) => {
            source.witness_policy = Some(policy);
            match (pair.user, pair.system) {
                (Some(user), Some(system)) => PerLog { user, system },
                // Nothing witnessed yet: nothing to publish.
                _ => return Ok(false),
            }
        }
        None => {
            let snapshot = register
                .store
                .snapshot()
                .map_err(|error| store_failed(error.to_string()))?;
            match (
                snapshot.checkpoint(Log::User),
                snapshot.checkpoint(Log::System),
            ) {
                (Ok(Some(user)), Ok(Some(system))) => PerLog { user, system },
                (Err(error), _) | (_, Err(error)) => return Err(store_failed(error.to_string())),
                _ => return Ok(false),
            }
        }
    };
    let publication = regis_publish::Publication {
        source,
        target,
        settings,
        status: regis_publish::SharedStatus::default(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ServerError::Serve)?;
    runtime
        .block_on(publication.catch_up(&pair))
        .map_err(failed)
}

/// What the publisher reads of `register`.
fn source<B: DirBackend>(
    dir: std::path::PathBuf,
    register: &Arc<RegisterState<B>>,
) -> Result<Source<B>, regis_note::KeyError> {
    let key = |log| -> Result<LogKey, regis_note::KeyError> {
        Ok(LogKey {
            origin: register.origin(log).to_owned(),
            verifier: Verifier::parse(register.verifier(log))?,
        })
    };
    let keys = PerLog {
        user: key(Log::User)?,
        system: key(Log::System)?,
    };
    let rendered = Arc::clone(register);
    Ok(Source {
        name: register.name.to_string(),
        dir,
        store: register.store.clone(),
        keys,
        render_register: Arc::new(move |snapshot| {
            api::register_json(&RegisterRead::at(&rendered, snapshot))
                .map(String::into_bytes)
                .map_err(|error| error.to_string())
        }),
        witness_policy: register
            .witnessed()
            .map(|witnessed| bytes::Bytes::copy_from_slice(witnessed.policy().bytes())),
    })
}

/// The sizes `register` serves now.
pub fn served_sizes<B: DirBackend>(register: &RegisterState<B>) -> PerLog<u64> {
    match register.witnessed() {
        Some(witnessed) => {
            PerLog::from_fn(|log| witnessed.checkpoint(log).map_or(0, |tree| tree.size))
        }
        None => register
            .checkpoints()
            .borrow()
            .as_ref()
            .map(|_, tree| tree.size),
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct LogLabels {
    register: String,
    log: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct RegisterLabels {
    register: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct RequestLabels {
    register: String,
    kind: &'static str,
    outcome: &'static str,
}

/// A register's publishing as `/metrics` shows it: its status and the
/// sizes it serves now.
#[derive(Debug)]
pub struct PublishedSizes {
    /// Its publishing.
    pub status: RegisterStatus,
    /// What it serves now.
    pub served: PerLog<u64>,
}

impl<B: DirBackend> App<B> {
    /// Each published register's publishing, with what it serves now.
    pub fn published_sizes(&self) -> Vec<PublishedSizes> {
        let Some(statuses) = self.publishing_status() else {
            return Vec::new();
        };
        statuses
            .into_iter()
            .map(|status| {
                let served = self
                    .register(&status.name)
                    .map_or(status.status.served, |register| served_sizes(&register));
                PublishedSizes { status, served }
            })
            .collect()
    }
}

/// Registers the publishing families: `regis_published_size`,
/// `regis_publish_lag_entries` (served − published) per register and log,
/// `regis_publish_requests` by kind and outcome, and
/// `regis_publish_refused` (1 for a register the target refuses).
pub fn register_metrics(registry: &mut Registry, registers: Vec<PublishedSizes>) {
    let published = Family::<LogLabels, Gauge>::default();
    let lag = Family::<LogLabels, Gauge>::default();
    let requests = Family::<RequestLabels, Counter>::default();
    let refused = Family::<RegisterLabels, Gauge>::default();
    for PublishedSizes { status, served } in registers {
        refused
            .get_or_create(&RegisterLabels {
                register: status.name.clone(),
            })
            .set(i64::from(status.status.refused.is_some()));
        for log in PerLog::<()>::LOGS {
            let labels = LogLabels {
                register: status.name.clone(),
                log: log.as_str(),
            };
            let size = status.status.published[log];
            published
                .get_or_create(&labels)
                .set(i64::try_from(size).unwrap_or(i64::MAX));
            lag.get_or_create(&labels)
                .set(i64::try_from(served[log].saturating_sub(size)).unwrap_or(i64::MAX));
        }
        for (kind, counts) in Request::ALL.iter().zip(status.status.requests) {
            for (outcome, count) in ["ok", "failed"].into_iter().zip(counts) {
                requests
                    .get_or_create(&RequestLabels {
                        register: status.name.clone(),
                        kind: kind.as_str(),
                        outcome,
                    })
                    .inc_by(count);
            }
        }
    }
    registry.register(
        "regis_published_size",
        "Entries in each register's logs as published to the [publish] target",
        published,
    );
    registry.register(
        "regis_publish_lag_entries",
        "Entries served but not yet published to the [publish] target",
        lag,
    );
    registry.register(
        "regis_publish_requests",
        "Requests to the [publish] target, by kind and outcome",
        requests,
    );
    registry.register(
        "regis_publish_refused",
        "1 for a register not published because the target holds another log's checkpoint \
         or one ahead of this data directory",
        refused,
    );
}

/// The server's publishing, once started: set once, taken at shutdown.
pub type PublishingSlot = Mutex<Option<Publishing>>;
