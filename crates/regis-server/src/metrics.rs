//! Prometheus metrics, through the Prometheus project's `prometheus-client`:
//! requests by route template and status class, latency histograms by
//! route, each register's log sizes, the write path (requests by outcome,
//! entries appended, batch sizes, time queued, to signed and to durable),
//! and each witnessed register's witnessing (per log and witness: the size
//! last cosigned, requests by outcome; per log: the witnessed size and its
//! lag behind the signed one), and with `[publish]` each register's
//! published sizes, lag and requests to the target. Every label comes from a fixed set (route
//! templates, status classes, outcomes, the registers the server holds,
//! the witnesses their policies name), never from client input, so the
//! series cannot grow with requests.

use std::sync::OnceLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use regis_model::PerLog;
use regis_store::{Log, Timing};

use crate::routes::ROUTES;

pub use prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Upper bounds of the latency buckets, in seconds.
const SECONDS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Upper bounds of the batch-size buckets, in entries.
const ENTRIES: [f64; 9] = [
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0,
];

/// The label of requests that matched no route.
pub const UNMATCHED: &str = "unmatched";

/// Status classes, indexed by the status's first digit less one.
const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteStatusLabels {
    route: &'static str,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RegisterLabels {
    register: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RegisterLogLabels {
    register: String,
    log: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WitnessLabels {
    register: String,
    log: &'static str,
    witness: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WitnessOutcomeLabels {
    register: String,
    log: &'static str,
    witness: String,
    outcome: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn seconds_histogram() -> Histogram {
    Histogram::new(SECONDS)
}

/// Request metrics.
#[derive(Debug)]
pub struct Metrics {
    requests: Family<RouteStatusLabels, Counter>,
    latency: HistogramFamily<RouteLabels>,
    /// Each route's series (one per route of [`ROUTES`], then one for
    /// unmatched requests), taken from the families the first time the
    /// route is answered: after that, recording a request takes no lock.
    /// A series exists once used, so the exposition lists no idle route.
    routes: Vec<RouteSeries>,
}

#[derive(Debug, Default)]
struct RouteSeries {
    /// By status class: 1xx..5xx.
    status: [OnceLock<Counter>; 5],
    latency: OnceLock<Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: Family::default(),
            latency: Family::new_with_constructor(seconds_histogram),
            routes: (0..=ROUTES.len()).map(|_| RouteSeries::default()).collect(),
        }
    }
}

impl Metrics {
    /// Records one request to `route` (a route template, or [`UNMATCHED`]).
    pub fn record(&self, route: &'static str, status: u16, elapsed: Duration) {
        let index = ROUTES
            .iter()
            .position(|spec| spec.template == route)
            .unwrap_or(ROUTES.len());
        let Some(series) = self.routes.get(index) else {
            return;
        };
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        let (Some(counter), Some(status)) = (series.status.get(class), STATUS_CLASSES.get(class))
        else {
            return;
        };
        counter
            .get_or_init(|| {
                self.requests
                    .get_or_create_owned(&RouteStatusLabels { route, status })
            })
            .inc();
        series
            .latency
            .get_or_init(|| self.latency.get_or_create_owned(&RouteLabels { route }))
            .observe(elapsed.as_secs_f64());
    }

    fn register(&self, registry: &mut Registry) {
        registry.register(
            "regis_http_requests",
            "HTTP requests by route and status class",
            self.requests.clone(),
        );
        registry.register(
            "regis_http_request_duration_seconds",
            "Time to the response's headers, by route",
            self.latency.clone(),
        );
    }
}

/// What a write request came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Committed, signed and acknowledged.
    Done,
    /// Refused for what it held (4xx): nothing written.
    Rejected,
    /// Refused for load (503 busy, stopping): nothing written; retry.
    Refused,
    /// The server failed (5xx).
    Failed,
}

impl Outcome {
    const ALL: [Outcome; 4] = [
        Outcome::Done,
        Outcome::Rejected,
        Outcome::Refused,
        Outcome::Failed,
    ];

    fn labels(self) -> OutcomeLabels {
        let outcome = match self {
            Outcome::Done => "done",
            Outcome::Rejected => "rejected",
            Outcome::Refused => "refused",
            Outcome::Failed => "failed",
        };
        OutcomeLabels { outcome }
    }
}

/// The write path's metrics.
#[derive(Debug)]
pub struct WriteMetrics {
    requests: Family<OutcomeLabels, Counter>,
    entries: Counter,
    batch_entries: Histogram,
    queued: Histogram,
    signed: Histogram,
    durable: Histogram,
}

impl Default for WriteMetrics {
    fn default() -> Self {
        let requests = Family::default();
        // Every outcome is shown from the start, at zero.
        for outcome in Outcome::ALL {
            let _ = requests.get_or_create(&outcome.labels());
        }
        WriteMetrics {
            requests,
            entries: Counter::default(),
            batch_entries: Histogram::new(ENTRIES),
            queued: seconds_histogram(),
            signed: seconds_histogram(),
            durable: seconds_histogram(),
        }
    }
}

impl WriteMetrics {
    /// Records a write request's outcome.
    pub fn outcome(&self, outcome: Outcome) {
        self.requests.get_or_create(&outcome.labels()).inc();
    }

    /// Records a committed request of `entries` entries and its timing.
    pub fn committed(&self, entries: u64, timing: &Timing) {
        self.entries.inc_by(entries);
        self.batch_entries.observe(timing.batch_entries as f64);
        self.queued.observe(timing.queued.as_secs_f64());
        self.signed.observe(timing.signed.as_secs_f64());
        self.durable.observe(timing.durable.as_secs_f64());
    }

    fn register(&self, registry: &mut Registry) {
        registry.register(
            "regis_write_requests",
            "Write requests by outcome",
            self.requests.clone(),
        );
        registry.register(
            "regis_write_entries",
            "Entries appended by write requests",
            self.entries.clone(),
        );
        let histograms = [
            (
                "regis_write_batch_entries",
                "Entries in the batch that committed each write",
                &self.batch_entries,
            ),
            (
                "regis_write_queued_seconds",
                "From a write's arrival at the sequencer to the start of its batch",
                &self.queued,
            ),
            (
                "regis_write_signed_seconds",
                "From a write's arrival at the sequencer to its checkpoints signed",
                &self.signed,
            ),
            (
                "regis_write_durable_seconds",
                "From a write's arrival at the sequencer to its durable commit",
                &self.durable,
            ),
        ];
        for (name, help, histogram) in histograms {
            registry.register(name, help, histogram.clone());
        }
    }
}

/// What an add-checkpoint request to a witness came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WitnessOutcome {
    /// 200 with a cosignature that verified.
    Cosigned,
    /// 409 with the witness's size.
    Conflict,
    /// Another 4xx (but 429): not asked again before a newer checkpoint.
    Refused,
    /// 200 without a valid cosignature from the witness's key.
    InvalidCosignature,
    /// 429, 5xx, a timeout, a failed connection, an answer too large:
    /// the witness is backed off.
    Unavailable,
}

impl WitnessOutcome {
    /// Every outcome, in the order of [`WitnessCounts::outcomes`].
    pub const ALL: [WitnessOutcome; 5] = [
        WitnessOutcome::Cosigned,
        WitnessOutcome::Conflict,
        WitnessOutcome::Refused,
        WitnessOutcome::InvalidCosignature,
        WitnessOutcome::Unavailable,
    ];

    /// Its place in [`WitnessOutcome::ALL`].
    pub fn index(self) -> usize {
        match self {
            WitnessOutcome::Cosigned => 0,
            WitnessOutcome::Conflict => 1,
            WitnessOutcome::Refused => 2,
            WitnessOutcome::InvalidCosignature => 3,
            WitnessOutcome::Unavailable => 4,
        }
    }

    /// Its label.
    pub fn as_str(self) -> &'static str {
        match self {
            WitnessOutcome::Cosigned => "cosigned",
            WitnessOutcome::Conflict => "conflict",
            WitnessOutcome::Refused => "refused",
            WitnessOutcome::InvalidCosignature => "invalid-cosignature",
            WitnessOutcome::Unavailable => "unavailable",
        }
    }
}

/// One witness's requests about one log of a register.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WitnessCounts {
    /// The witness's name in the policy.
    pub witness: String,
    /// The log.
    pub log: Log,
    /// The size it last cosigned (or said it had).
    pub cosigned_size: u64,
    /// Requests by outcome, indexed as [`WitnessOutcome::ALL`].
    pub outcomes: [u64; 5],
}

/// A witnessed register's witnessing, read at scrape time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WitnessingSizes {
    /// Each log's newest signed checkpoint's size.
    pub signed: PerLog<u64>,
    /// Each log's witnessed checkpoint's size, if it has one.
    pub witnessed: PerLog<Option<u64>>,
    /// Each witness with a URL, per log.
    pub witnesses: Vec<WitnessCounts>,
}

/// One register's sizes, read from a snapshot at scrape time.
#[derive(Debug)]
pub struct RegisterSizes {
    /// The register's name.
    pub name: String,
    /// Entries in the user log.
    pub user: u64,
    /// Entries in the system log.
    pub system: u64,
    /// Records (distinct keys) in the user log.
    pub records: u64,
    /// Its witnessing, if it has a witness policy.
    pub witnessing: Option<WitnessingSizes>,
}

fn gauge_value(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The exposition of every metric, in the Prometheus text format
/// ([`CONTENT_TYPE`]). The registry is built per scrape, so the register
/// gauges list exactly the registers the server holds now.
pub fn render(
    requests: &Metrics,
    writes: &WriteMetrics,
    registers: impl IntoIterator<Item = RegisterSizes>,
    published: Vec<crate::publishing::PublishedSizes>,
) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::default();
    requests.register(&mut registry);
    writes.register(&mut registry);
    crate::publishing::register_metrics(&mut registry, published);
    let log_size = Family::<RegisterLogLabels, Gauge>::default();
    let records = Family::<RegisterLabels, Gauge>::default();
    let witnessed_size = Family::<RegisterLogLabels, Gauge>::default();
    let witness_lag = Family::<RegisterLogLabels, Gauge>::default();
    let cosigned_size = Family::<WitnessLabels, Gauge>::default();
    let witness_requests = Family::<WitnessOutcomeLabels, Counter>::default();
    for sizes in registers {
        if let Some(witnessing) = &sizes.witnessing {
            for (log, signed) in witnessing.signed.iter() {
                let labels = RegisterLogLabels {
                    register: sizes.name.clone(),
                    log: log.as_str(),
                };
                let witnessed = witnessing.witnessed[log].unwrap_or(0);
                witnessed_size
                    .get_or_create(&labels)
                    .set(gauge_value(witnessed));
                witness_lag
                    .get_or_create(&labels)
                    .set(gauge_value(signed.saturating_sub(witnessed)));
            }
            for counts in &witnessing.witnesses {
                let labels = WitnessLabels {
                    register: sizes.name.clone(),
                    log: counts.log.as_str(),
                    witness: counts.witness.clone(),
                };
                cosigned_size
                    .get_or_create(&labels)
                    .set(gauge_value(counts.cosigned_size));
                for (outcome, count) in WitnessOutcome::ALL.iter().zip(counts.outcomes) {
                    witness_requests
                        .get_or_create(&WitnessOutcomeLabels {
                            register: labels.register.clone(),
                            log: labels.log,
                            witness: labels.witness.clone(),
                            outcome: outcome.as_str(),
                        })
                        .inc_by(count);
                }
            }
        }
        for (log, size) in [("user", sizes.user), ("system", sizes.system)] {
            let labels = RegisterLogLabels {
                register: sizes.name.clone(),
                log,
            };
            log_size
                .get_or_create(&labels)
                .set(i64::try_from(size).unwrap_or(i64::MAX));
        }
        records
            .get_or_create(&RegisterLabels {
                register: sizes.name,
            })
            .set(i64::try_from(sizes.records).unwrap_or(i64::MAX));
    }
    registry.register(
        "regis_log_size",
        "Entries in each register's logs",
        log_size,
    );
    registry.register(
        "regis_records",
        "Records (distinct keys) in each register",
        records,
    );
    registry.register(
        "regis_witnessed_size",
        "Entries in each witnessed register's newest checkpoint that meets its witness policy",
        witnessed_size,
    );
    registry.register(
        "regis_witness_lag_entries",
        "Entries signed but not yet in a checkpoint that meets the witness policy",
        witness_lag,
    );
    registry.register(
        "regis_witness_cosigned_size",
        "The log size each witness last cosigned (or said it had)",
        cosigned_size,
    );
    registry.register(
        "regis_witness_requests",
        "add-checkpoint requests to each witness, by outcome",
        witness_requests,
    );
    let mut text = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut text, &registry)?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_buckets_are_cumulative() {
        let metrics = Metrics::default();
        metrics.record("/healthz", 200, Duration::from_micros(100));
        metrics.record("/healthz", 200, Duration::from_millis(30));
        metrics.record(UNMATCHED, 404, Duration::from_secs(10));
        let text = render(&metrics, &WriteMetrics::default(), [], Vec::new()).unwrap();
        assert!(text.contains("regis_http_requests_total{route=\"/healthz\",status=\"2xx\"} 2\n"));
        assert!(text.contains("regis_http_requests_total{route=\"unmatched\",status=\"4xx\"} 1\n"));
        assert!(text.contains(
            "regis_http_request_duration_seconds_bucket{route=\"/healthz\",le=\"0.0005\"} 1\n"
        ));
        assert!(text.contains(
            "regis_http_request_duration_seconds_bucket{route=\"/healthz\",le=\"0.05\"} 2\n"
        ));
        assert!(text.contains(
            "regis_http_request_duration_seconds_bucket{route=\"unmatched\",le=\"5\"} 0\n"
        ));
        assert!(text.contains(
            "regis_http_request_duration_seconds_bucket{route=\"unmatched\",le=\"+Inf\"} 1\n"
        ));
        assert!(text.contains("regis_write_requests_total{outcome=\"failed\"} 0\n"));
    }
}
